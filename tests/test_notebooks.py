"""The notebooks in notebooks/ run from top to bottom on a fresh kernel, offline, and what they
store is small and names no folder of the machine they were run on."""

import glob
import importlib.util
import os
import re

import nbformat
import pytest
from nbclient import NotebookClient

# reproduce_paper.ipynb switches to tiny models through its own variable: test_evaluation_notebook.py runs it.
NOTEBOOKS = sorted(p for p in glob.glob(os.path.join(os.path.dirname(__file__), "..", "notebooks", "*.ipynb"))
                   if os.path.basename(p) != "reproduce_paper.ipynb")
MACHINE_PATHS = re.compile(r"(/work/|/tmp/|/root/|/home/|/Users/|[A-Z]:\\|site-packages|\.venv)")
MAX_BYTES = 150_000


def _outputs(nb) -> list:
    return [output for cell in nb.cells if cell.cell_type == "code" for output in cell.outputs]


def _text(output) -> str:
    if output.output_type == "stream":
        return output.text
    if output.output_type == "error":
        return "\n".join(output.traceback)
    return "\n".join(value for key, value in output.get("data", {}).items() if key.startswith("text/"))


def test_the_notebooks_are_there():
    names = {os.path.basename(p) for p in NOTEBOOKS}
    assert {"quickstart.ipynb", "paper_preset.ipynb", "evaluation.ipynb", "review_and_publish.ipynb", "finetuning.ipynb"} <= names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=os.path.basename)
def test_notebook_runs_and_keeps_its_outputs_clean(path, tmp_path):
    assert os.path.getsize(path) < MAX_BYTES
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    stored = _outputs(nb)
    assert stored, "the notebook is stored executed"
    assert not [o for o in stored if o.output_type == "error"]
    assert not [o for o in stored if o.get("name") == "stderr"], "progress bars and warnings are not stored"
    for output in stored:
        assert not MACHINE_PATHS.search(_text(output)), _text(output)[:300]

    # Run it again, in an empty folder of its own, as CI and a newcomer would.
    needs = nb.metadata.get("u2s", {}).get("requires")
    if needs and importlib.util.find_spec(needs) is None:
        pytest.skip(f"{os.path.basename(path)} needs {needs}, which this checkout does not have")
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    for output in _outputs(nb):
        assert output.output_type != "error"
        if output.get("name") != "stderr":
            assert not MACHINE_PATHS.search(_text(output)), _text(output)[:300]
