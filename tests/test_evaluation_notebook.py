"""notebooks/reproduce_paper.ipynb runs from the first cell to the last with tiny random models."""

import os

import nbformat
import pytest

NOTEBOOK = os.path.join(os.path.dirname(__file__), os.pardir, "notebooks", "reproduce_paper.ipynb")


def test_reproduce_paper_notebook_runs_with_tiny_models(monkeypatch):
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("U2S_NOTEBOOK_TINY", "1")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                                      os.environ.get("PYTHONPATH", "")]))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3").execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    table = next(o for cell in notebook.cells if "to_pandas()" in cell.source for o in cell.outputs
                 if o.get("output_type") == "execute_result")
    assert "target_caption" in table["data"]["text/plain"] and "edited" in table["data"]["text/plain"]
