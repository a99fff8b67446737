"""Datasets from every input form, and privacy-safe image folders out (used by ``u2s anonymize``).

``load_input`` reads a folder of images (through ``datasets``' ``imagefolder``: class
sub-folders, ``metadata.csv``/``.jsonl`` columns, train/test splits), a parquet file or
folder, a ``save_to_disk`` folder, one image file or a dataset id. ``write_image_folder``
writes the safe images with a ``metadata.jsonl`` per split that ``imagefolder`` loads back.
``staged_output`` builds an output under a temporary name and moves it into place when done.
"""

import contextlib
import json
import io
import logging
import os
import shutil
import tempfile

import datasets
from datasets.packaged_modules.imagefolder.imagefolder import ImageFolder
from PIL import Image as PILImage
from tqdm.auto import tqdm

from .. import columns as C

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = tuple(ImageFolder.EXTENSIONS)
FILE_NAME = "file_name"  # relative path of each image of a folder input, for naming outputs
ORIGINALS_FOLDER = "u2s_original"  # where --include-private puts the original images, per split
METADATA_FILE = "metadata.jsonl"
_SAVED_MARKERS = ("state.json", "dataset_dict.json")
_DATASET_ID_ONLY = ("config", "revision", "data_files", "streaming")


# -- reading


def load_input(path: str, image_column: str = "image", *, split=None, config=None, revision=None, data_files=None, streaming=False):
    """The dataset at ``path``, with images undecoded so that a corrupt file reaches the transform.

    ``path`` is a folder of images, a parquet file or a folder of parquet files (such as a Hub
    snapshot or ``u2s publish --dry-run``'s staging folder), a ``save_to_disk`` folder, one image
    file, or a dataset id (with ``config``, ``revision``, ``data_files``, ``streaming``).
    Folder and file inputs of images get a relative ``file_name`` column.
    """
    given = {"config": config, "revision": revision, "data_files": data_files, "streaming": streaming}
    if os.path.isdir(path):
        if any(os.path.exists(os.path.join(path, name)) for name in _SAVED_MARKERS):
            _refuse_options(path, "a save_to_disk folder", given)
            return _pick_split(datasets.load_from_disk(path), split, path)
        files = _data_files(path)
        if any(f.lower().endswith(IMAGE_EXTENSIONS) for f in files):
            _refuse_options(path, "a folder of images", given)
            return image_folder(path, image_column, split)
        if any(f.endswith(".parquet") for f in files):
            return _undecoded(_load_dataset(path, split, **given), image_column)
        if not files:
            raise ValueError(f"{path!r} is an empty folder")
        raise ValueError(f"{path!r} holds no images ({', '.join(IMAGE_EXTENSIONS[:6])}, ...), parquet files or saved dataset")
    if os.path.isfile(path):
        if path.endswith(".parquet"):
            _refuse_options(path, "a parquet file", {**given, "data_files": None, "streaming": False})
            loaded = _load_dataset("parquet", split or "train", data_files=path, streaming=streaming, source=path)
            return _undecoded(loaded, image_column)
        _refuse_options(path, "an image file", given)
        return image_file(path, image_column)
    if path.startswith((".", "/", "~")) or path.count("/") > 1 or path.lower().endswith((".parquet", *IMAGE_EXTENSIONS)):
        raise FileNotFoundError(f"{path!r} does not exist")
    return _undecoded(_load_dataset(path, split, **given), image_column)


def image_folder(folder: str, image_column: str = "image", split=None):
    """A folder of images through ``imagefolder``: a Dataset, or a DatasetDict when it has split folders."""
    loaded = datasets.load_dataset("imagefolder", data_dir=folder)
    splits = {}
    for name, ds in loaded.items():
        ds = ds.cast_column("image", datasets.Image(decode=False))
        if image_column != "image":
            ds = ds.rename_column("image", image_column)
        splits[name] = ds.add_column(FILE_NAME, _relative_names(ds[image_column], folder))
    _warn_unlisted(folder, splits)
    if split is not None:
        return _pick_split(datasets.DatasetDict(splits), split, folder)
    if len(splits) == 1 and not os.path.isdir(os.path.join(folder, next(iter(splits)))):
        return next(iter(splits.values()))  # no split folders: one plain Dataset
    return datasets.DatasetDict(splits)


def image_file(path: str, image_column: str = "image") -> datasets.Dataset:
    """One image file as a one-row dataset (a damaged image still gets a row, and an error status)."""
    if not path.lower().endswith(IMAGE_EXTENSIONS):
        try:
            with PILImage.open(path):
                pass
        except Exception:
            raise ValueError(f"{path!r} is not an image, a parquet file or a dataset folder") from None
    return datasets.Dataset.from_dict(
        {image_column: [{"bytes": None, "path": os.path.abspath(path)}], FILE_NAME: [os.path.basename(path)]},
        features=datasets.Features({image_column: datasets.Image(decode=False), FILE_NAME: datasets.Value("string")}),
    )


def materialize(ds, cache_dir: str):
    """A streamed dataset written out once (to ``cache_dir``), so it can be mapped and saved like any other."""
    if isinstance(ds, datasets.IterableDatasetDict):
        return datasets.DatasetDict({name: materialize(part, cache_dir) for name, part in ds.items()})
    if not isinstance(ds, datasets.IterableDataset):
        return ds
    return datasets.Dataset.from_generator(_stream_rows, gen_kwargs={"ds": ds}, features=ds.features, cache_dir=cache_dir)


def _stream_rows(ds):
    yield from ds


def _load_dataset(path, split, config=None, revision=None, data_files=None, streaming=False, source=None):
    source = source or path
    try:
        return datasets.load_dataset(path, name=config, split=split, revision=revision, data_files=data_files, streaming=streaming)
    except Exception as e:
        if datasets.config.HF_HUB_OFFLINE and not os.path.exists(source):
            raise ValueError(f"could not load dataset {source!r}: it is not in the local cache, and HF_HUB_OFFLINE is set") from None
        raise ValueError(f"could not load {source!r} ({type(e).__name__}: {e})") from None


def _undecoded(ds, image_column):
    splits = ds.values() if isinstance(ds, (datasets.DatasetDict, datasets.IterableDatasetDict)) else [ds]
    if all(isinstance((part.features or {}).get(image_column), datasets.Image) for part in splits):
        return ds.cast_column(image_column, datasets.Image(decode=False))
    return ds  # the transform names the missing column


def _pick_split(ds, split, path):
    if split is None or not isinstance(ds, datasets.DatasetDict):
        return ds
    if split not in ds:
        raise ValueError(f"{path!r} has no split {split!r}; its splits: {', '.join(ds)}")
    return ds[split]


def _refuse_options(path, form, given):
    named = [f"--{k.replace('_', '-')}" for k in _DATASET_ID_ONLY if given.get(k)]
    if named:
        raise ValueError(f"{', '.join(named)}: for dataset ids and parquet folders only; {path!r} is {form}")


def _data_files(folder):
    """Files under ``folder`` the way ``datasets`` sees them: hidden files and folders left out."""
    found = []
    for _, dirs, names in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith((".", "__"))]
        found += [name for name in names if not name.startswith((".", "__"))]
    return found


def _relative_names(images, folder):
    root = os.path.realpath(folder)
    names = []
    for image in images:
        path = (image or {}).get("path")
        if not path:
            names.append(None)
            continue
        relative = os.path.relpath(os.path.realpath(path), root)
        names.append(relative.replace(os.sep, "/") if not relative.startswith("..") else os.path.basename(path))
    return names


def _warn_unlisted(folder, splits):
    listed = sum(len(ds) for ds in splits.values())
    found = sum(f.lower().endswith(IMAGE_EXTENSIONS) for f in _data_files(folder))
    if found > listed:
        logger.warning("%s: %d images are not listed in its metadata file and are left out", folder, found - listed)


# -- writing


def check_output(output: str, input_path: str, overwrite: bool = False) -> None:
    """Refuse an output that would mix with or destroy the input, or replace data without ``overwrite``."""
    out = os.path.realpath(output)
    if os.path.exists(input_path):
        source = os.path.realpath(input_path)
        if out == source or out.startswith(source + os.sep):
            raise ValueError(f"the output {output!r} is the input or inside it; write it somewhere else")
        if source.startswith(out + os.sep):
            raise ValueError(f"the input {input_path!r} is inside the output {output!r}; write it somewhere else")
    if os.path.exists(out) and not overwrite and (not os.path.isdir(out) or os.listdir(out)):
        raise ValueError(f"{output!r} already holds data; pass --overwrite to replace it")


@contextlib.contextmanager
def staged_output(output: str):
    """A temporary folder beside ``output`` that becomes ``output`` only when the block completes.

    Its name starts with a dot, which ``datasets`` skips when it looks for data files, so an
    interrupted run leaves nothing that loads.
    """
    parent, name = os.path.split(os.path.abspath(output))
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{name}.partial-", dir=parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(staging, 0o777 & ~umask)  # the permissions of a folder made the ordinary way, not mkdtemp's 0o700
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    old = None
    if os.path.lexists(output):
        old = tempfile.mkdtemp(prefix=f".{name}.old-", dir=parent)
        os.replace(output, os.path.join(old, name))
    os.replace(staging, output)
    if old:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def cache_outside(ds, folder: str):
    """Keep ``datasets``' cache files out of ``folder``: a dataset loaded from disk would get them beside its own files."""
    root = os.path.realpath(folder) + os.sep
    parts = ds.values() if isinstance(ds, datasets.DatasetDict) else [ds]
    inside = any(os.path.realpath(f["filename"]).startswith(root) for part in parts for f in getattr(part, "cache_files", []))
    if not inside or not datasets.is_caching_enabled():
        yield
        return
    datasets.disable_caching()  # cache files go to a temporary folder of the system instead
    try:
        yield
    finally:
        datasets.enable_caching()


def private_columns(features, image_column: str) -> list:
    """Columns that hold private data after the transform: the original images, the private caption,
    and any other media or binary column, which the transform did not look at."""
    others = [n for n, f in features.items() if n not in (image_column, C.SAFE_IMAGE) and _holds_media(f)]
    return [image_column, C.PRIVATE_CAPTION, *others]


def _holds_media(feature) -> bool:
    if isinstance(feature, dict):
        return any(_holds_media(f) for f in feature.values())
    if isinstance(feature, (list, tuple)):
        return any(_holds_media(f) for f in feature)
    if hasattr(feature, "feature"):  # List, LargeList
        return _holds_media(feature.feature)
    return hasattr(feature, "decode_example") or (isinstance(feature, datasets.Value) and "binary" in feature.dtype)


def write_image_folder(result, folder: str, image_column: str = "image", include_private: bool = False) -> dict:
    """Safe images under their own names, and a ``metadata.jsonl`` per split that ``imagefolder`` loads back.

    Labels are written as class names, and every public column is kept; the original images
    (under ``u2s_original/``) and the private caption only with ``include_private``.
    Returns the number of rows written per split.
    """
    if isinstance(result, datasets.DatasetDict):
        return {name: _write_split(ds, os.path.join(folder, name), name, image_column, include_private) for name, ds in result.items()}
    return {"": _write_split(result, folder, None, image_column, include_private)}


def _write_split(ds, root, split, image_column, include_private):
    private = set(private_columns(ds.features, image_column))
    images = [image_column, C.SAFE_IMAGE]
    public = [n for n in ds.column_names if n not in private and n not in (C.SAFE_IMAGE, FILE_NAME)]
    if include_private:
        public.append(C.PRIVATE_CAPTION)
    labels = {n: f for n, f in ds.features.items() if isinstance(f, datasets.ClassLabel) and n in public}
    undecoded = ds.cast_column(C.SAFE_IMAGE, datasets.Image(decode=False)).cast_column(image_column, datasets.Image(decode=False))
    names = ds[FILE_NAME] if FILE_NAME in ds.column_names else [None] * len(ds)
    key, written = _file_name_key(image_column), set()
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, METADATA_FILE), "w") as meta:
        rows = undecoded.select_columns(images + public)
        for index, (name, row) in enumerate(tqdm(zip(names, rows), total=len(ds), desc=f"Writing images{f' [{split}]' if split else ''}")):
            name = _inside(_within_split(name or f"{index:06d}", split), index)
            safe, original = row.pop(C.SAFE_IMAGE), row.pop(image_column)
            record = {key: _write_image(root, name, safe, written)}
            if include_private:
                record[f"original_{image_column}_{FILE_NAME}"] = _write_image(root, f"{ORIGINALS_FOLDER}/{name}", original, written)
            for column, feature in labels.items():
                row[column] = feature.int2str(row[column]) if row[column] is not None and row[column] >= 0 else None
            meta.write(json.dumps({**record, **row}, default=str) + "\n")
    if not written and len(ds):
        logger.warning("%s: no row could be made safe; metadata.jsonl lists the errors, but imagefolder cannot load a folder without images", root)
    return len(ds)


def _file_name_key(image_column):
    # imagefolder turns "file_name" into "image" and "<name>_file_name" into "<name>"
    return FILE_NAME if image_column == "image" else f"{image_column}_{FILE_NAME}"


def _write_image(root, name, image, written):
    """Write one image under ``name`` (its extension made to match the bytes); its path relative to ``root``."""
    if image is None:
        return None  # a row that failed with an unknown size: nothing safe to write
    data = image["bytes"]
    if data is None:
        with open(image["path"], "rb") as f:
            data = f.read()
    renamed = _with_extension(name, data)
    if renamed in written:  # "a.bmp" saved as PNG next to an "a.png" of its own
        renamed = _with_extension(name + os.path.splitext(renamed)[1], data)
    name = renamed
    written.add(name)
    path = os.path.join(root, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    return name


def _within_split(name, split):
    """A folder input's name without its leading split folder, which the output already has."""
    head, _, rest = name.partition("/")
    return rest if split is not None and head == split and rest else name


def _inside(name: str, index: int) -> str:
    """A relative file name that stays inside the output folder."""
    clean = os.path.normpath(name)
    if os.path.isabs(clean) or clean.startswith(".."):
        raise ValueError(f"Row {index}: file_name {name!r} would be written outside the output folder")
    return clean.replace(os.sep, "/")


_EXTENSION_OF_FORMAT = {"JPEG": ".jpg", "PNG": ".png", "TIFF": ".tiff", "WEBP": ".webp", "GIF": ".gif", "BMP": ".bmp", "AVIF": ".avif"}


def _with_extension(name: str, data: bytes) -> str:
    """``name`` with the extension of the format ``data`` is in (a JPEG keeps its own .jpg/.jpeg)."""
    stem, ext = os.path.splitext(name)
    with PILImage.open(io.BytesIO(data)) as image:
        kind = _EXTENSION_OF_FORMAT.get(image.format, ext)
    return stem + (ext if kind == ".jpg" and ext.lower() in (".jpg", ".jpeg") else kind)
