"""The ``u2s`` command line, end to end on temporary folders of real photos: every input form, both output forms."""

import json
import os
import subprocess
import sys

import datasets
import pytest
from conftest import rgb

from u2s_datasets import columns as C
from u2s_datasets.run import folders
from u2s_datasets.cli import main
from u2s_datasets.columns import OUTPUT_FEATURES
from u2s_datasets.inspect.detectors import CenterFaceDetector

PUBLIC = [name for name in OUTPUT_FEATURES if name not in (C.SAFE_IMAGE, C.PRIVATE_CAPTION)]  # what the images form keeps
CLASS_FILES = {
    "train": {"people/astronaut.jpg": "astronaut", "things/coffee.png": "coffee"},
    "test": {"people/camera.png": "camera", "things/chelsea.jpg": "chelsea"},
}


def base(statuses):
    """Statuses without any "; ..." detail."""
    return [s.split(";")[0] for s in statuses]


def u2s(*args, env=None):
    return subprocess.run([sys.executable, "-m", "u2s_datasets.cli", *args], capture_output=True, text=True, env=env)


def anonymize(*args) -> int:
    return main(["anonymize", *map(str, args)])


@pytest.fixture(autouse=True)
def own_datasets_cache(tmp_path_factory, monkeypatch):
    """Each test loads its folders into a cache of its own, so every run really runs the transform."""
    cache = tmp_path_factory.mktemp("hf_datasets_cache")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(cache))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(cache))


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


@pytest.fixture(scope="module")
def class_folder(tmp_path_factory, photo_bytes):
    """train/ and test/ split folders with one sub-folder per class."""
    folder = tmp_path_factory.mktemp("classes")
    for split, files in CLASS_FILES.items():
        for name, photo in files.items():
            (folder / split / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / split / name).write_bytes(photo_bytes[photo])
    return folder


def files_under(folder) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def rows_by_file(ds, root) -> dict:
    """Reloaded imagefolder rows keyed by their image's path relative to ``root``, with the image's bytes."""
    ds = ds.cast_column("image", datasets.Image(decode=False))
    rows = {}
    for row in ds:
        image = row.pop("image")
        with open(image["path"], "rb") as f:
            rows[os.path.relpath(image["path"], root)] = {**row, "image": f.read()}
    return rows


def test_anonymize_folder_to_saved_dataset(image_folder, tmp_path):
    result = u2s("anonymize", str(image_folder), str(tmp_path / "out"), "--editor", "pixelate")
    assert result.returncode == 0, result.stderr
    assert "4 rows: 2 flagged private, 2 edited, 1 passed through, 0 redacted, 1 errors" in result.stdout
    assert "images/s" in result.stdout and "Unsafe2Safe" in result.stderr  # progress bar
    ds = datasets.load_from_disk(str(tmp_path / "out"))
    assert isinstance(ds, datasets.Dataset)  # no split folders: one dataset
    statuses = dict(zip(ds["file_name"], base(ds["u2s_status"])))
    assert statuses["people/astronaut.jpg"] == "edited" and statuses["coffee.png"] == "passthrough"
    assert statuses["broken.jpg"].startswith("error: not a readable image")
    config = json.loads((tmp_path / "out" / "u2s_config.json").read_text())
    assert config["config"]["edit"]["editor"] == "pixelate" and len(config["config_hash"]) == 16


def test_anonymize_folder_to_image_folder(image_folder, tmp_path):
    out = tmp_path / "safe"
    assert anonymize(image_folder, out, "--format", "images") == 0
    written = sorted(files_under(out))
    assert written == ["coffee.png", "metadata.jsonl", "page.png", "people/astronaut.jpg", "u2s_config.json"]
    assert CenterFaceDetector()(rgb((out / "people" / "astronaut.jpg").read_bytes())) == []
    meta = [json.loads(line) for line in (out / "metadata.jsonl").read_text().splitlines()]
    assert {m["file_name"]: m["u2s_status"] for m in meta if m["file_name"]}["page.png"].split(";")[0] == "edited"
    reloaded = datasets.load_dataset("imagefolder", data_dir=str(out), split="train")
    # the broken row keeps its row and status, with no image: nothing safe could be written for it
    assert sorted(s.split(":")[0] for s in base(reloaded["u2s_status"])) == ["edited", "edited", "error", "passthrough"]
    assert [r["image"] for r in reloaded if r["u2s_status"].startswith("error")] == [None]


def test_class_folders_round_trip(class_folder, tmp_path, capsys):
    assert anonymize(class_folder, tmp_path / "saved") == 0
    printed = capsys.readouterr().out
    assert "private columns: image (original images), private_caption; kept in" in printed
    saved = datasets.load_from_disk(str(tmp_path / "saved"))
    assert sorted(saved) == ["test", "train"]
    for split, ds in saved.items():
        names = ds.features["label"].names
        assert names == ["people", "things"]
        assert {f: names[label] for f, label in zip(ds["file_name"], ds["label"])} == {
            f"{split}/{name}": name.split("/")[0] for name in CLASS_FILES[split]
        }
        for label, caption in zip(ds["label"], ds["public_caption"]):
            assert names[label] in caption  # the class column was found and named in the captions
    for name, data in files_under(tmp_path / "saved").items():
        assert str(class_folder).encode() not in data, f"{name} holds an absolute path of the input"

    assert anonymize(class_folder, tmp_path / "safe", "--format", "images") == 0
    assert "private columns: image (original images), private_caption; not written" in capsys.readouterr().out
    reloaded = datasets.load_dataset("imagefolder", data_dir=str(tmp_path / "safe"))
    assert sorted(reloaded) == ["test", "train"]
    for split, ds in reloaded.items():
        assert ds.column_names == ["image", "label", *PUBLIC]
        rows = rows_by_file(ds, tmp_path / "safe" / split)
        expected = saved[split].cast_column("safe_image", datasets.Image(decode=False))
        names = expected.features["label"].names
        for row in expected:
            name = row["file_name"].split("/", 1)[1]
            assert rows[name] == {"label": names[row["label"]], **{c: row[c] for c in PUBLIC}, "image": row["safe_image"]["bytes"]}
    private = [p for p, pub in zip(saved["train"]["private_caption"], saved["train"]["public_caption"]) if p and p != pub]
    assert private, "the astronaut's private caption differs from the public one"
    for name, data in files_under(tmp_path / "safe").items():
        assert not any(caption.encode() in data for caption in private), f"{name} holds a private caption"
        assert b"private_caption" not in data


@pytest.mark.parametrize("kind", ["csv", "jsonl"])
def test_metadata_folders_round_trip(kind, tmp_path, photo_bytes, capsys):
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    (folder / "astronaut.jpg").write_bytes(photo_bytes["astronaut"])
    (folder / "sub" / "coffee.png").write_bytes(photo_bytes["coffee"])
    meta = {"astronaut.jpg": {"caption": "a woman, a flag", "score": 1.5}, "sub/coffee.png": {"caption": "a cup", "score": 2.25}}
    if kind == "csv":
        lines = ["file_name,caption,score"] + [f'{f},"{m["caption"]}",{m["score"]}' for f, m in meta.items()]
        (folder / "metadata.csv").write_text("\n".join(lines) + "\n")
    else:
        for f, m in meta.items():
            m["tags"] = ["outdoor", f.split("/")[0]]
        (folder / "metadata.jsonl").write_text("".join(json.dumps({"file_name": f, **m}) + "\n" for f, m in meta.items()))

    assert anonymize(folder, tmp_path / "saved") == 0
    saved = datasets.load_from_disk(str(tmp_path / "saved"))
    user_columns = list(meta["astronaut.jpg"])
    assert saved.column_names == ["image", *user_columns, "file_name", *OUTPUT_FEATURES]
    assert {row["file_name"]: {k: row[k] for k in meta["astronaut.jpg"]} for row in saved} == meta
    statuses = dict(zip(saved["file_name"], base(saved["u2s_status"])))
    assert statuses == {"astronaut.jpg": "edited", "sub/coffee.png": "passthrough"}

    assert anonymize(folder, tmp_path / "safe", "--format", "images", "--include-private") == 0
    assert "written with --include-private" in capsys.readouterr().out
    reloaded = datasets.load_dataset("imagefolder", data_dir=str(tmp_path / "safe"), split="train")
    assert reloaded.column_names == ["image", "original_image", *user_columns, *PUBLIC, "private_caption"]
    rows = rows_by_file(reloaded.remove_columns("original_image"), tmp_path / "safe")
    assert {f: {k: row[k] for k in meta[f]} for f, row in rows.items()} == meta
    assert {f: row["private_caption"] for f, row in rows.items()} == dict(zip(saved["file_name"], saved["private_caption"]))
    originals = reloaded.cast_column("original_image", datasets.Image(decode=False))["original_image"]
    assert sorted(open(o["path"], "rb").read() for o in originals) == sorted((folder / f).read_bytes() for f in meta)
    assert rows["astronaut.jpg"]["image"] != (folder / "astronaut.jpg").read_bytes()


def test_parquet_file_and_parquet_folder(photo_dataset, tmp_path, capsys):
    pick = photo_dataset.select([0, 4])  # astronaut (a face), coffee (nothing private)
    labelled = pick.add_column("label", [0, 1]).cast_column("label", datasets.ClassLabel(names=["astronaut", "cup"]))
    labelled.to_parquet(str(tmp_path / "one.parquet"))
    (tmp_path / "hub" / "data").mkdir(parents=True)
    for split, rows in (("train", [0, 1]), ("test", [1])):
        labelled.select(rows).to_parquet(str(tmp_path / "hub" / "data" / f"{split}-00000-of-00001.parquet"))

    assert anonymize(tmp_path / "one.parquet", tmp_path / "out") == 0
    out = datasets.load_from_disk(str(tmp_path / "out"))
    assert out.features["label"] == labelled.features["label"] and out["name"] == ["astronaut", "coffee"]
    assert base(out["u2s_status"]) == ["edited", "passthrough"]
    assert "astronaut" in out["public_caption"][0] and "cup" in out["public_caption"][1]

    # a second image column was not anonymized: the images form leaves it out, and says so
    with_thumbnail = labelled.add_column("thumbnail", labelled["image"]).cast_column("thumbnail", datasets.Image(decode=False))
    with_thumbnail.to_parquet(str(tmp_path / "thumbnails.parquet"))
    assert anonymize(tmp_path / "thumbnails.parquet", tmp_path / "safe", "--format", "images") == 0
    assert "thumbnail (not anonymized); not written" in capsys.readouterr().out
    assert sorted(files_under(tmp_path / "safe")) == ["000000.jpg", "000001.png", "metadata.jsonl", "u2s_config.json"]
    reloaded = datasets.load_dataset("imagefolder", data_dir=str(tmp_path / "safe"), split="train")
    assert reloaded.column_names == ["image", "name", "label", *PUBLIC]
    assert reloaded["label"] == ["astronaut", "cup"]

    assert anonymize(tmp_path / "hub", tmp_path / "test_only", "--split", "test", "--streaming") == 0
    test_only = datasets.load_from_disk(str(tmp_path / "test_only"))
    assert test_only["name"] == ["coffee"] and base(test_only["u2s_status"]) == ["passthrough"]
    assert test_only["safe_image"][0].tobytes() == test_only.cast_column("image", datasets.Image())["image"][0].tobytes()

    # a dataset id with data files: the packaged "parquet" builder takes the place of a Hub id here
    test_file = str(tmp_path / "hub" / "data" / "test-00000-of-00001.parquet")
    assert anonymize("parquet", tmp_path / "by_id", "--data-files", test_file, "--split", "train", "--streaming") == 0
    assert datasets.load_from_disk(str(tmp_path / "by_id"))["name"] == ["coffee"]


def test_single_image_file(photo_bytes, tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "astronaut.jpg").write_bytes(photo_bytes["astronaut"])
    assert anonymize(tmp_path / "in" / "astronaut.jpg", tmp_path / "out", "--format", "images") == 0
    assert sorted(files_under(tmp_path / "out")) == ["astronaut.jpg", "metadata.jsonl", "u2s_config.json"]
    assert CenterFaceDetector()(rgb((tmp_path / "out" / "astronaut.jpg").read_bytes())) == []
    reloaded = datasets.load_dataset("imagefolder", data_dir=str(tmp_path / "out"), split="train")
    assert base(reloaded["u2s_status"]) == ["edited"] and reloaded["privacy_categories"] == [["people_faces"]]


def test_wrong_inputs_and_outputs_are_refused(image_folder, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.txt").write_text("not an image")
    cases = {
        (tmp_path / "empty", tmp_path / "a"): "is an empty folder",
        (tmp_path / "notes.txt", tmp_path / "b"): f"{str(tmp_path / 'notes.txt')!r} is not an image, a parquet file or a dataset folder",
        (image_folder, image_folder / "safe"): "is the input or inside it",
        (image_folder, image_folder): "is the input or inside it",
        (image_folder / "people", image_folder): "is inside the output",
        (tmp_path / "missing", tmp_path / "c"): "does not exist",
    }
    for (source, output), message in cases.items():
        assert anonymize(source, output) == 2
        assert message in capsys.readouterr().err
    assert anonymize(image_folder, tmp_path / "e", "--streaming") == 2
    assert "--streaming: for dataset ids and parquet folders only" in capsys.readouterr().err
    assert anonymize(image_folder, tmp_path / "f", "--split", "test") == 2
    assert "has no split 'test'; its splits: train" in capsys.readouterr().err
    assert sorted(files_under(image_folder)) == ["broken.jpg", "coffee.png", "notes.txt", "page.png", "people/astronaut.jpg"]
    offline = u2s("anonymize", "someone/no-such-dataset", str(tmp_path / "d"), env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert offline.returncode == 2
    assert "could not load dataset 'someone/no-such-dataset': it is not in the local cache, and HF_HUB_OFFLINE is set" in offline.stderr


def test_existing_output_needs_overwrite(photo_bytes, tmp_path, capsys):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "coffee.png").write_bytes(photo_bytes["coffee"])
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "old.txt").write_text("an earlier run")
    assert anonymize(tmp_path / "in", tmp_path / "out") == 2
    assert "already holds data; pass --overwrite" in capsys.readouterr().err
    assert anonymize(tmp_path / "in", tmp_path / "out", "--overwrite") == 0
    assert not (tmp_path / "out" / "old.txt").exists()
    assert datasets.load_from_disk(str(tmp_path / "out"))["file_name"] == ["coffee.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "out"]  # nothing temporary left beside it


def test_interrupted_image_write_leaves_nothing_loadable(class_folder, tmp_path, monkeypatch):
    write_image, calls = folders._write_image, []

    def interrupted(*args):
        calls.append(args)
        if len(calls) == 2:
            raise KeyboardInterrupt  # as if the run were stopped half-way through writing
        return write_image(*args)

    monkeypatch.setattr(folders, "_write_image", interrupted)
    with pytest.raises(KeyboardInterrupt):
        anonymize(class_folder, tmp_path / "safe", "--format", "images")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(Exception):
        datasets.load_dataset("imagefolder", data_dir=str(tmp_path / "safe"))

    # an interrupted --overwrite keeps the earlier output whole
    monkeypatch.setattr(folders, "_write_image", write_image)
    assert anonymize(class_folder, tmp_path / "safe", "--format", "images") == 0
    before = files_under(tmp_path / "safe")
    calls.clear()
    monkeypatch.setattr(folders, "_write_image", interrupted)
    with pytest.raises(KeyboardInterrupt):
        anonymize(class_folder, tmp_path / "safe", "--format", "images", "--overwrite")
    assert files_under(tmp_path / "safe") == before and [p.name for p in tmp_path.iterdir()] == ["safe"]


def test_anonymize_saved_dataset_and_clear_errors(photo_dataset, tmp_path, capsys):
    photo_dataset.save_to_disk(str(tmp_path / "in"))
    saved_files = files_under(tmp_path / "in")
    assert anonymize(tmp_path / "in", tmp_path / "out", "--set", "feather=4") == 0
    assert "6 rows: 4 flagged private, 4 edited, 2 passed through" in capsys.readouterr().out
    assert files_under(tmp_path / "in") == saved_files  # no cache files written beside the input's own
    assert anonymize(tmp_path / "in", tmp_path / "x", "--image-column", "photo") == 2
    assert "Image column 'photo' not found; the dataset has: image, name" in capsys.readouterr().err
    assert anonymize(tmp_path / "in", tmp_path / "y", "--set", "feathr=4") == 2
    assert "Unknown setting 'feathr'" in capsys.readouterr().err


def test_demo_writes_before_after_page(tmp_path):
    result = u2s("demo", "--out", str(tmp_path / "demo"))
    assert result.returncode == 0, result.stderr
    assert "8 rows: 4 flagged private, 4 edited, 4 passed through, 0 redacted, 0 errors" in result.stdout
    page = (tmp_path / "demo" / "index.html").read_text()
    assert page.count('class="row demo-row"') == 8 and page.count("data:image/jpeg;base64,") == 16
    assert "astronaut" in page and "passthrough" in page


def test_sharded_parquet_run_resumes_and_loads(class_folder, tmp_path, capsys):
    out = tmp_path / "shards"
    assert anonymize(class_folder / "train", out, "--format", "parquet", "--shard-size", "1", "--limit", "1") == 0
    assert "(1 written now, 0 already done)" in capsys.readouterr().out
    assert anonymize(class_folder / "train", out, "--format", "parquet", "--shard-size", "1") == 0
    assert "(1 written now, 1 already done)" in capsys.readouterr().out  # the trial's shard is kept
    safe = datasets.load_dataset("parquet", data_dir=str(out), split="train")
    assert len(safe) == len(CLASS_FILES["train"])
    assert safe.features["label"].names == ["people", "things"] and {C.SAFE_IMAGE, C.STATUS} <= set(safe.column_names)
    capsys.readouterr()
    assert anonymize(class_folder / "train", out, "--format", "parquet", "--shard-size", "1", "--editor", "pixelate") == 2
    assert "editor: 'blur' -> 'pixelate'" in capsys.readouterr().err  # another run's folder is refused
    assert anonymize(class_folder / "train", tmp_path / "other", "--engine", "ray") == 2
    assert "go with --format parquet" in capsys.readouterr().err
