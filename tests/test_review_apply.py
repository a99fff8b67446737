"""Review decisions written into a saved output: exactly the reviewed rows change, the way the
decisions say, with the run's editor and seed; the review is recorded and gates publishing."""

import io
import json
import os

import datasets
import numpy as np
import pytest
from PIL import Image

from review_output import fresh_output
from u2s_datasets.cli import main
from u2s_datasets.review import ReviewRequired, apply_review, require_review, review_status
from u2s_datasets.review import decisions as D
from u2s_datasets.review.saved import CONFIG_FILE

ASTRONAUT, GRACE, PAGE, COFFEE, CHELSEA = range(5)


def _rgb(value):
    return np.asarray(Image.open(io.BytesIO(value["bytes"])).convert("RGB"))


def _load(folder):
    return datasets.load_from_disk(folder).cast_column("safe_image", datasets.Image(decode=False))


def _decide(folder, row, action, category=None, box=None, reviewer="ann", os_user=None):
    D.append(folder, D.decision("", row, action, reviewer, category, box, os_user=os_user))


@pytest.fixture
def output(tmp_path):
    return fresh_output(tmp_path / "out")


def test_reviewed_rows_change_as_decided_and_nothing_else(output):
    before = _load(output)
    face = before[ASTRONAUT]["privacy_regions"][0]
    _decide(output, GRACE, "accept")
    _decide(output, ASTRONAUT, "delete_region", face["category"], face["box"])  # every region gone: passthrough
    _decide(output, CHELSEA, "redact_image", reviewer="bob")
    summary = apply_review(output)
    after = _load(output)

    assert summary["rows_rerendered"] == 2 and summary["rows"] == ["0", "4"]
    for row in (GRACE, PAGE, COFFEE):
        assert after[row]["safe_image"]["bytes"] == before[row]["safe_image"]["bytes"]
        assert after[row]["u2s_status"] == before[row]["u2s_status"]
    # The reviewer said the face was not private: the original pixels come back, flagged no more.
    assert np.array_equal(_rgb(after[ASTRONAUT]["safe_image"]), _rgb(before[ASTRONAUT]["image"]))
    assert not after[ASTRONAUT]["is_private"] and after[ASTRONAUT]["privacy_regions"] == []
    assert after[ASTRONAUT]["u2s_status"].startswith("passthrough; ")
    # Redacted whole: black, private, and the status says who.
    assert _rgb(after[CHELSEA]["safe_image"]).max() == 0
    assert after[CHELSEA]["is_private"]
    assert after[CHELSEA]["u2s_status"] == "redacted_fallback; redacted by reviewer; reviewed by bob"
    # The original images and every other column are untouched.
    for row in range(5):
        assert after[row]["image"] == before[row]["image"] and after[row]["file_name"] == before[row]["file_name"]
    assert after.features == before.features


def test_a_region_drawn_again_gives_the_first_rendering_back(output):
    """Delete a face and draw it back: the editor and seed of the run give the same pixels as before."""
    before = _load(output)
    assert len(before[ASTRONAUT]["privacy_regions"]) == 1  # one region: deleting it gives the original back
    face = before[ASTRONAUT]["privacy_regions"][0]
    _decide(output, ASTRONAUT, "delete_region", face["category"], face["box"])
    apply_review(output)
    assert np.array_equal(_rgb(_load(output)[ASTRONAUT]["safe_image"]), _rgb(before[ASTRONAUT]["image"]))
    _decide(output, ASTRONAUT, "add_region", face["category"], face["box"])
    apply_review(output)
    after = _load(output)
    assert np.array_equal(_rgb(after[ASTRONAUT]["safe_image"]), _rgb(before[ASTRONAUT]["safe_image"]))
    assert after[ASTRONAUT]["privacy_regions"][0]["box"] == face["box"]


def test_applying_twice_changes_nothing_and_the_review_is_recorded(output):
    _decide(output, COFFEE, "add_region", "private_belongings", [10, 10, 60, 50])
    first = apply_review(output)
    once = _load(output)[COFFEE]["safe_image"]["bytes"]
    second = apply_review(output)
    assert (first["rows_rerendered"], second["rows_rerendered"]) == (1, 0)
    assert _load(output)[COFFEE]["safe_image"]["bytes"] == once
    with open(os.path.join(output, CONFIG_FILE)) as f:
        run = json.load(f)
    review = run["review"]
    assert review["stage1_rerun"] is False and review["editor"] == "pixelate" and review["reviewers"] == ["ann"]
    assert review["decisions"] == 1 and review["rows_reviewed"] == 1
    assert run["config_hash"]  # the run's own record is kept
    assert os.path.exists(os.path.join(output, D.REVIEW_FILE))


def test_out_folder_leaves_the_reviewed_output_as_it_was(output, tmp_path):
    before = _load(output)
    _decide(output, COFFEE, "redact_image")
    assert main(["apply-review", output, "--out", str(tmp_path / "reviewed")]) == 0
    assert _load(output)[COFFEE]["safe_image"]["bytes"] == before[COFFEE]["safe_image"]["bytes"]
    reviewed = _load(str(tmp_path / "reviewed"))
    assert _rgb(reviewed[COFFEE]["safe_image"]).max() == 0
    assert os.path.exists(tmp_path / "reviewed" / D.REVIEW_FILE)


def test_publishing_can_require_a_complete_applied_review(output):
    with pytest.raises(ReviewRequired, match="no review"):
        require_review(output)
    _decide(output, ASTRONAUT, "accept")
    _decide(output, GRACE, "accept")
    with pytest.raises(ReviewRequired, match="1 of 3 flagged rows are not reviewed"):
        require_review(output)
    _decide(output, PAGE, "redact_image")
    with pytest.raises(ReviewRequired, match="not applied yet"):
        require_review(output)
    apply_review(output)
    status = require_review(output)
    assert (status["reviewed_rows"], status["pending_rows"], status["redacted_by_reviewer_rows"]) == (3, 0, 1)
    assert review_status(output)["reviewers"] == ["ann"]


def test_bad_decisions_are_refused_with_the_reason():
    with pytest.raises(D.DecisionError, match="unknown action"):
        D.decision("", 0, "approve", "ann")
    with pytest.raises(D.DecisionError, match="x1 > x0"):
        D.decision("", 0, "add_region", "ann", "people_faces", [50, 10, 40, 20])
    with pytest.raises(D.DecisionError, match="needs a category"):
        D.decision("", 0, "delete_region", "ann", None, [0, 0, 4, 4])


def test_publish_dry_run_requires_the_review_and_shows_its_counts(output, tmp_path, capsys):
    staging = tmp_path / "staging"
    assert main(["publish", output, "someone/safe", "--dry-run", str(staging), "--require-review"]) == 2
    assert "review required" in capsys.readouterr().err and not staging.exists()
    for row in (ASTRONAUT, GRACE, PAGE):
        _decide(output, row, "accept")
    assert main(["publish", output, "someone/safe", "--dry-run", str(staging), "--require-review"]) == 0
    card = (staging / "README.md").read_text()
    assert "3 of 5 rows were looked at by a person before publishing (3 of 3 rows flagged private)" in card
    assert "**Regions removed by review: 0**." in card and "review." not in card.split("## Evaluation results")[-1]
    assert "self-declared: each decision records the name the reviewer typed on the review page, which nothing verifies." in card


def test_publish_lists_the_regions_a_review_removed_and_the_card_counts_them(output, tmp_path, capsys):
    """Deleting a real face's region stays possible (false positives exist), but never goes out unsaid."""
    before = _load(output)
    face, line = before[ASTRONAUT]["privacy_regions"][0], before[PAGE]["privacy_regions"][-1]
    assert len(before[ASTRONAUT]["privacy_regions"]) == 1 and len(before[PAGE]["privacy_regions"]) > 1
    _decide(output, ASTRONAUT, "delete_region", face["category"], face["box"], os_user="ann")  # its only region: passthrough
    _decide(output, PAGE, "delete_region", line["category"], line["box"])  # one text line of many
    _decide(output, PAGE, "delete_region", line["category"], line["box"])  # twice: still one region
    _decide(output, GRACE, "accept")
    _decide(output, COFFEE, "add_region", "private_belongings", [10, 10, 60, 50])  # drawn, then taken back:
    _decide(output, COFFEE, "delete_region", "private_belongings", [10, 10, 60, 50])  # not a region of the run

    assert main(["publish", output, "someone/safe", "--dry-run", str(tmp_path / "pending")]) == 0
    printed = capsys.readouterr().out
    assert "  row 0 (astronaut.png): removed people_faces (not applied yet)" in printed

    apply_review(output)
    assert _load(output)[ASTRONAUT]["u2s_status"].startswith("passthrough")
    staging = tmp_path / "staging"
    assert main(["publish", output, "someone/safe", "--dry-run", str(staging), "--require-review"]) == 0
    printed = capsys.readouterr().out.splitlines()
    start = next(i for i, text in enumerate(printed) if text.startswith("Review (complete, as --require-review asks): "))
    assert printed[start:start + 3] == [  # the astronaut, cleared, is flagged no more: 2 of 2 flagged
        "Review (complete, as --require-review asks): 4 of 5 rows reviewed (2 of 2 flagged), 0 not applied yet; "
        "2 regions removed by review in 2 rows, their content published as it was:",
        "  row 0 (astronaut.png): removed people_faces (now passthrough)",
        "  row 2 (page.png): removed text_symbols (its other regions still edited)",
    ]
    card = (staging / "README.md").read_text()
    assert "**Regions removed by review: 2**, in 2 rows (1 of them now published unchanged)" in card
    assert "or, for 1 of them, because a reviewer removed every region found" in card
    assert "which nothing verifies, beside the operating-system account that ran the review server." in card
    provenance = json.loads((staging / "provenance.json").read_text())
    assert (provenance["review"]["regions_removed"], provenance["review"]["rows_passthrough_after_removal"]) == (2, 1)
    assert "astronaut" not in json.dumps(provenance["review"])  # counts only, no row names


def test_splits_of_a_dataset_dict_are_reviewed_apart(output, tmp_path):
    one = datasets.load_from_disk(output)
    folder = str(tmp_path / "dict")
    datasets.DatasetDict({"train": one, "test": one}).save_to_disk(folder)
    os.replace(os.path.join(output, CONFIG_FILE), os.path.join(folder, CONFIG_FILE))
    D.append(folder, D.decision("test", CHELSEA, "redact_image", "ann"))
    assert apply_review(folder)["rows"] == ["test/4"]
    after = datasets.load_from_disk(folder).cast_column("safe_image", datasets.Image(decode=False))
    assert _rgb(after["test"][CHELSEA]["safe_image"]).max() == 0
    assert after["train"][CHELSEA]["safe_image"]["bytes"] == _load(output)[CHELSEA]["safe_image"]["bytes"]
    with pytest.raises(ReviewRequired, match=r"row train/0 \(astronaut.png\)"):
        require_review(folder)
