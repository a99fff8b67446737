"""The evaluation report: worst leaks are rows with something to leak, worst first, by file name;
degenerate figures are said in words; PSNR's cap is kept apart; a missing model stops the suite
with one line while the figures already computed are written."""

import json
import os

import datasets
import numpy as np
import pytest
from PIL import Image

from photos import astronaut, blurred, chelsea, coffee, page
from u2s_datasets import cli
from u2s_datasets.evaluation.report import leak_ranking, per_image_series, write_report


@pytest.fixture
def evaluate_cli(monkeypatch):
    monkeypatch.setattr(cli, "COMMANDS", ("evaluate",))
    return cli.main


def _small(array, side=256):
    image = Image.fromarray(array).convert("RGB")
    image.thumbnail((side, side))
    return image


@pytest.fixture(scope="module")
def known_leaks(tmp_path_factory):
    """Two clean scenes, a face fully blurred, a face barely blurred, and a page left as it was."""
    face = np.asarray(_small(astronaut(), 384))
    document = np.asarray(_small(page(), 512))
    images = [np.asarray(_small(coffee())), face, face, document, np.asarray(_small(chelsea()))]
    safes = [images[0], blurred(face, 12), blurred(face, 1), document, images[4]]
    names = ["coffee.png", "astronaut_hidden.png", "astronaut_kept.png", "page.png", "chelsea.png"]
    folder = str(tmp_path_factory.mktemp("leaks") / "ds")
    regions = [[], [{"category": "people_faces", "box": [130.0, 20.0, 210.0, 130.0], "score": 0.9}],
               [{"category": "people_faces", "box": [130.0, 20.0, 210.0, 130.0], "score": 0.4}], [], []]
    datasets.Dataset.from_dict({
        "image": [Image.fromarray(a) for a in images], "safe_image": [Image.fromarray(a) for a in safes],
        "file_name": names, "privacy_regions": regions,
    }, features=datasets.Features({"image": datasets.Image(), "safe_image": datasets.Image(), "file_name": datasets.Value("string"),
                                   "privacy_regions": datasets.List({"category": datasets.Value("string"),
                                                                     "box": datasets.List(datasets.Value("float32"), length=4),
                                                                     "score": datasets.Value("float32")})})).save_to_disk(folder)
    with open(os.path.join(folder, "u2s_config.json"), "w") as f:
        json.dump({"config": {"preset": "local", "edit": {"editor": "blur", "feather": 8}}, "config_hash": "x"}, f)
    return folder


def test_worst_leaks_are_rows_with_something_to_leak_by_file_name(evaluate_cli, known_leaks, tmp_path):
    out = tmp_path / "report"
    assert evaluate_cli(["evaluate", known_leaks, "--metrics", "privacy,cheating", "--no-clip", "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    ranking = leak_ranking(metrics["privacy"])
    assert ranking[:2] == [3, 2]  # the untouched page, then the barely blurred face
    assert 0 not in ranking and 4 not in ranking  # clean scenes have nothing to leak
    markdown = (out / "report.md").read_text()
    leaks = markdown.split("## Worst leaks")[1]
    assert leaks.index("page.png") < leaks.index("astronaut_kept.png")
    assert "coffee.png" not in leaks and "chelsea.png" not in leaks
    html = (out / "report.html").read_text()
    assert html.count('class="shot enlargeable"') >= 4  # original and safe of each leak, click to enlarge
    assert 'data-category="people_faces"' in html  # the stored region drawn over the face rows
    assert "<td>edit.editor</td><td class=\"value\">blur</td>" in html  # the run's settings as a table, not a repr
    assert "https://" not in html and "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    # Three images are identical to their originals: their capped PSNR is counted apart, not averaged in.
    assert "3 of 5 images are identical to their original" in markdown
    psnr = metrics["cheating"]["per_image"]["psnr"]
    assert f"| psnr_without_identical | {(psnr[1] + psnr[2]) / 2:.4f} |" in markdown
    for line in markdown.splitlines():
        if line.startswith("!["):
            assert (out / line.split("](")[1].rstrip(")")).exists()


def test_degenerate_series_are_said_in_words(tmp_path):
    assert per_image_series("privacy", "text_similarity", [0.0, 0.0, 0.0]) == ([], "text_similarity: 0 for every image")
    assert per_image_series("privacy", "face_similarity", [None, None]) == ([], "face_similarity: undefined for every image")
    numbers, note = per_image_series("cheating", "psnr", [100.0, 31.0, 33.0])
    assert numbers == [31.0, 33.0] and "1 of 3 images are identical" in note and "32.00 dB" in note
    results = {"privacy": {"num_images": 3, "face_similarity": None,
                           "per_image": {"face_similarity": [None] * 3, "text_similarity": [0.0] * 3}}}
    write_report(results, str(tmp_path))
    markdown = (tmp_path / "report.md").read_text()
    assert "| face_similarity | undefined |" in markdown and "text_similarity: 0 for every image" in markdown
    assert not (tmp_path / "plots").exists()  # nothing worth a plot


def test_a_model_that_cannot_load_stops_with_one_line_and_keeps_what_was_computed(evaluate_cli, known_leaks, tmp_path,
                                                                                 monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    out = tmp_path / "report"
    code = evaluate_cli(["evaluate", known_leaks, "--metrics", "privacy,cheating", "--clip-model", "someone/not-here",
                         "--out", str(out), "--limit", "2"])
    assert code == 2
    error = [line for line in capsys.readouterr().err.splitlines() if line.startswith("u2s ")]
    assert error == ["u2s evaluate: error: cheating: cannot load the model someone/not-here (offline and not in the "
                     "Hugging Face cache); skip it with --no-clip (or give a local folder with --clip-model)"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert list(metrics) == ["privacy"] and metrics["privacy"]["num_images"] == 2
    assert "Stopped early" in (out / "report.md").read_text()


def test_demo_page_draws_regions_and_shows_settings_as_a_table(tmp_path):
    from review_output import fresh_output
    from u2s_datasets.commands.demo import render_page
    from u2s_datasets.run import summarize
    from u2s_datasets.transform import Unsafe2Safe

    result = datasets.load_from_disk(fresh_output(tmp_path / "out")).rename_column("file_name", "name")
    result = result.cast_column("image", datasets.Image(decode=False))
    page = render_page(result, summarize([result]), Unsafe2Safe(editor="pixelate"))
    assert page.count('class="row demo-row"') == 5
    assert page.count('data-category="people_faces"') == 4  # two faces, drawn over before and after
    assert page.count('data-category="text_symbols"') == 14  # seven lines of the page, twice
    assert '<td>edit.editor</td><td class="value">pixelate</td>' in page and "Unsafe2Safe(" not in page
    assert page.count('class="shot enlargeable"') == 10
