"""The ``u2s`` command line, end to end on a temporary folder of real photos."""

import json
import subprocess
import sys

import datasets
import pytest
from conftest import rgb

from u2s_datasets.inspect.detectors import CenterFaceDetector


def u2s(*args):
    return subprocess.run([sys.executable, "-m", "u2s_datasets.cli", *args], capture_output=True, text=True)


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory, photo_bytes):
    folder = tmp_path_factory.mktemp("photos")
    (folder / "people").mkdir()
    (folder / "people" / "astronaut.jpg").write_bytes(photo_bytes["astronaut"])
    (folder / "page.png").write_bytes(photo_bytes["page"])
    (folder / "coffee.png").write_bytes(photo_bytes["coffee"])
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_anonymize_folder_to_saved_dataset(image_folder, tmp_path):
    result = u2s("anonymize", str(image_folder), str(tmp_path / "out"), "--editor", "pixelate")
    assert result.returncode == 0, result.stderr
    assert "4 rows: 2 flagged private, 2 edited, 1 passed through, 0 redacted, 1 errors" in result.stdout
    assert "images/s" in result.stdout and "Unsafe2Safe" in result.stderr  # progress bar
    ds = datasets.load_from_disk(str(tmp_path / "out"))
    statuses = dict(zip(ds["file_name"], ds["u2s_status"]))
    assert statuses["people/astronaut.jpg"] == "edited" and statuses["coffee.png"] == "passthrough"
    assert statuses["broken.jpg"].startswith("error: not a readable image")
    config = json.loads((tmp_path / "out" / "u2s_config.json").read_text())
    assert config["config"]["edit"]["editor"] == "pixelate" and len(config["config_hash"]) == 16


def test_anonymize_folder_to_image_folder(image_folder, tmp_path):
    out = tmp_path / "safe"
    result = u2s("anonymize", str(image_folder), str(out), "--format", "images")
    assert result.returncode == 0, result.stderr
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert written == ["coffee.png", "metadata.jsonl", "page.png", "people/astronaut.jpg"]  # the broken row has no size
    assert CenterFaceDetector()(rgb((out / "people" / "astronaut.jpg").read_bytes())) == []
    meta = [json.loads(line) for line in (out / "metadata.jsonl").read_text().splitlines()]
    assert {m["file_name"]: m["u2s_status"] for m in meta}["page.png"] == "edited"
    reloaded = datasets.load_dataset("imagefolder", data_dir=str(out), split="train")
    assert set(reloaded["u2s_status"]) == {"edited", "passthrough"}


def test_anonymize_saved_dataset_and_clear_errors(photo_dataset, tmp_path):
    photo_dataset.save_to_disk(str(tmp_path / "in"))
    result = u2s("anonymize", str(tmp_path / "in"), str(tmp_path / "out"), "--set", "feather=4")
    assert result.returncode == 0, result.stderr
    assert "6 rows: 4 flagged private, 4 edited, 2 passed through" in result.stdout
    missing = u2s("anonymize", str(tmp_path / "in"), str(tmp_path / "x"), "--image-column", "photo")
    assert missing.returncode == 2 and "Image column 'photo' not found; the dataset has: image, name" in missing.stderr
    bad = u2s("anonymize", str(tmp_path / "in"), str(tmp_path / "y"), "--set", "feathr=4")
    assert bad.returncode != 0 and "Unknown setting 'feathr'" in bad.stderr


def test_demo_writes_before_after_page(tmp_path):
    result = u2s("demo", "--out", str(tmp_path / "demo"))
    assert result.returncode == 0, result.stderr
    assert "8 rows: 4 flagged private, 4 edited, 4 passed through, 0 redacted, 0 errors" in result.stdout
    page = (tmp_path / "demo" / "index.html").read_text()
    assert page.count('class="row demo-row"') == 8 and page.count("data:image/jpeg;base64,") == 16
    assert "astronaut" in page and "passthrough" in page
