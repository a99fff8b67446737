"""``u2s anonymize INPUT OUTPUT``: a privacy-safe copy of a dataset or a folder of images."""

import json
import os

import datasets

from .. import columns as C
from ..runner import anonymize, load_input, write_config
from ..transform import Unsafe2Safe

TRIPLET = (C.IS_PRIVATE, C.PRIVACY_CATEGORIES, C.PRIVATE_CAPTION, C.PUBLIC_CAPTION, C.EDIT_INSTRUCTION, C.PRIVACY_REGIONS, C.STATUS)


def register(subparsers):
    p = subparsers.add_parser("anonymize", help="write a privacy-safe copy of a dataset or a folder of images")
    p.add_argument("input", help="a folder of images, a save_to_disk folder, or a dataset id")
    p.add_argument("output", help="a save_to_disk folder, or a folder of images with --format images")
    p.add_argument("--preset", default="local", help="local (offline default) or paper")
    p.add_argument("--editor", help="blur, pixelate, fill, inpaint, or a model-backed editor")
    p.add_argument("--format", choices=("dataset", "images"), default="dataset", help="output form (default: dataset)")
    p.add_argument("--image-column", default="image")
    p.add_argument("--class-column")
    p.add_argument("--split", help="only this split of a dataset id or a saved DatasetDict")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--num-proc", type=int, help="worker processes (each loads its own models)")
    p.add_argument("--on-error", choices=("redact", "drop", "raise"))
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="any other setting, e.g. --set feather=12")
    p.set_defaults(run=run)


def run(args) -> int:
    overrides = dict(_parse_setting(s) for s in args.set)
    if args.editor:
        overrides["editor"] = args.editor
    if args.on_error:
        overrides["on_error"] = args.on_error
    transform = Unsafe2Safe(preset=args.preset, image_column=args.image_column, class_column=args.class_column, **overrides)
    ds = load_input(args.input, args.image_column, args.split)
    result, summary = anonymize(ds, transform, batch_size=args.batch_size, num_proc=args.num_proc)
    if args.format == "images":
        write_image_folder(result, args.output)
    else:
        result.save_to_disk(args.output)
        write_config(args.output, transform)
    print(summary)
    if summary.categories:
        print("categories: " + ", ".join(f"{k} {v}" for k, v in summary.categories.items()))
    print(f"written to {args.output}")
    return 0


def write_image_folder(result, folder: str) -> None:
    """Safe images under their original names plus ``metadata.jsonl`` (loadable as an imagefolder)."""
    splits = result.items() if isinstance(result, datasets.DatasetDict) else [("", result)]
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "metadata.jsonl"), "w") as meta:
        for split, ds in splits:
            ds = ds.cast_column(C.SAFE_IMAGE, datasets.Image(decode=False))
            names = ds["file_name"] if "file_name" in ds.column_names else [f"{i:06d}" for i in range(len(ds))]
            for i, (name, row) in enumerate(zip(names, ds.select_columns([C.SAFE_IMAGE, *TRIPLET]))):
                image = row.pop(C.SAFE_IMAGE)
                if image is None:
                    continue  # an error row whose size was unknown: nothing safe to write
                name = os.path.join(split, _with_extension(_inside(name, i), image["bytes"]))
                os.makedirs(os.path.dirname(os.path.join(folder, name)) or folder, exist_ok=True)
                with open(os.path.join(folder, name), "wb") as f:
                    f.write(image["bytes"])
                meta.write(json.dumps({"file_name": name, **row}) + "\n")


def _inside(name: str, index: int) -> str:
    """A relative file name that stays inside the output folder."""
    clean = os.path.normpath(name)
    if os.path.isabs(clean) or clean.startswith(".."):
        raise ValueError(f"Row {index}: file_name {name!r} would be written outside the output folder")
    return clean


def _with_extension(name: str, data: bytes) -> str:
    stem, ext = os.path.splitext(name)
    kind = ".jpg" if data[:2] == b"\xff\xd8" else ".png" if data[:4] == b"\x89PNG" else ".tiff" if data[:2] in (b"II", b"MM") else ext
    return stem + (ext if kind == ".jpg" and ext.lower() in (".jpg", ".jpeg") else kind)


def _parse_setting(text: str):
    key, sep, value = text.partition("=")
    if not sep:
        raise ValueError(f"--set takes KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value
