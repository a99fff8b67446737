import json
import os

import datasets
import pytest
from PIL import Image

from photos import astronaut, blurred, coffee, page, text_painted_over
from u2s_datasets import cli


@pytest.fixture
def evaluate_cli(monkeypatch):
    # Only the evaluate subcommand: the cli's other subcommands are not needed here.
    monkeypatch.setattr(cli, "COMMANDS", ("evaluate",))
    return cli.main


@pytest.fixture(scope="module")
def saved_dataset(tmp_path_factory):
    face, cup, document = astronaut(), coffee(), page()
    folder = str(tmp_path_factory.mktemp("saved") / "ds")
    ds = datasets.Dataset.from_dict({
        "image": [Image.fromarray(face), Image.fromarray(cup), Image.fromarray(document)],
        "safe_image": [Image.fromarray(blurred(face, 24)), Image.fromarray(cup), Image.fromarray(document)],
        "public_caption": ["a person in a suit", "a cup of coffee", "a printed page"],
        "privacy_regions": [[{"category": "people_faces", "box": [170, 40, 280, 190], "score": 0.9}], [], []],
    }, features=datasets.Features({"image": datasets.Image(), "safe_image": datasets.Image(),
                                   "public_caption": datasets.Value("string"),
                                   "privacy_regions": datasets.List({"category": datasets.Value("string"),
                                                                     "box": datasets.List(datasets.Value("int32")),
                                                                     "score": datasets.Value("float32")})}))
    ds.save_to_disk(folder)
    return folder


def test_saved_dataset_report(evaluate_cli, saved_dataset, tmp_path, capsys):
    out = str(tmp_path / "report")
    assert evaluate_cli(["evaluate", saved_dataset, "--metrics", "privacy,cheating", "--no-clip", "--out", out]) == 0
    metrics = json.load(open(os.path.join(out, "metrics.json")))
    privacy, cheating = metrics["privacy"], metrics["cheating"]
    assert privacy["face_survival_rate"] == 0.0  # the face was blurred away
    assert privacy["text_similarity"] == pytest.approx(1.0)  # the page was left as it was: the worst leak
    # The whole first image was blurred, not just its face region; the untouched coffee changed nowhere.
    assert cheating["per_image"]["changed_outside_regions"][0] > 0.5
    assert cheating["per_image"]["changed_outside_regions"][1] == 0.0
    report = open(os.path.join(out, "report.md")).read()
    assert "## privacy" in report and "## cheating" in report and "Worst leaks" in report
    assert "row 2" in report.split("Worst leaks")[1].splitlines()[2]  # the untouched page ranks first
    for line in report.splitlines():
        if line.startswith("!["):
            assert os.path.exists(os.path.join(out, line.split("](")[1].rstrip(")")))
    assert "<table>" in open(os.path.join(out, "report.html")).read()
    assert "privacy:" in capsys.readouterr().out


def test_image_folders_matched_by_name(evaluate_cli, tmp_path):
    originals, safes = tmp_path / "originals", tmp_path / "safe"
    originals.mkdir(), safes.mkdir()
    document = page()
    Image.fromarray(document).save(originals / "page.png")
    Image.fromarray(text_painted_over(document)).save(safes / "page.png")
    Image.fromarray(coffee()).save(originals / "unmatched.png")
    out = str(tmp_path / "out")
    assert evaluate_cli(["evaluate", str(originals), str(safes), "--metrics", "privacy", "--out", out]) == 0
    privacy = json.load(open(os.path.join(out, "metrics.json")))["privacy"]
    assert privacy["num_images"] == 1 and privacy["text_similarity"] < 0.1


def test_cli_errors_are_clear(evaluate_cli, saved_dataset, tmp_path, capsys):
    assert evaluate_cli(["evaluate", saved_dataset, "--metrics", "beauty", "--out", str(tmp_path)]) == 2
    assert "unknown metric" in capsys.readouterr().err
    assert evaluate_cli(["evaluate", str(tmp_path / "nope"), "--metrics", "privacy", "--out", str(tmp_path)]) == 2
    assert "no such" in capsys.readouterr().err
    assert evaluate_cli(["evaluate", saved_dataset, "--metrics", "privacy", "--safe-column", "edited",
                         "--out", str(tmp_path)]) == 2
    assert "no column 'edited'" in capsys.readouterr().err


def test_utility_recipe_paper_fine_tunes_mae_with_the_authors_recipe(evaluate_cli, tmp_path):
    from u2s_datasets.testing.evaluation_models import save_random_mae
    from u2s_datasets.reproduce.tiny import tiny_dataset

    data = tiny_dataset(views_per_photo=1)
    encoded = data["train"].cast_column("image", datasets.Image(decode=False))["image"]
    data["train"] = data["train"].add_column("safe_image", encoded, feature=datasets.Image())
    folder = str(tmp_path / "ds")
    data.save_to_disk(folder)
    mae = save_random_mae(str(tmp_path / "mae"))
    for recipe in ("paper", "default"):
        out = str(tmp_path / recipe)
        assert evaluate_cli(["evaluate", folder, "--metrics", "utility", "--out", out, "--utility-recipe", recipe,
                             "--utility-epochs", "1", "--backbone-model", mae, "--protocol", "paper"]) == 0
        utility = json.load(open(os.path.join(out, "metrics.json")))["utility"]
        assert utility["recipe"] == recipe and utility["protocol"] == "paper"
        assert mae in json.dumps(utility["models"]["backbone"])
        assert 0.0 <= utility["safe_accuracy"] <= 1.0 and utility["safe_accuracy"] == utility["raw_accuracy"]  # safe = raw here
