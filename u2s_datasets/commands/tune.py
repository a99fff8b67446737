"""``u2s tune INPUT``: what each detector finds at each threshold, on a sample, as a page of overlays.

The local preset's detectors look at up to ``--limit`` rows once, at the lowest threshold
asked; a region counts at threshold t when its score is t or more. The table (printed, and at
the top of the page) says how many faces and text lines each threshold finds and how many
lowering it to there adds; the page shows, threshold by threshold, the photos that gain
regions there with the new boxes in green, so ``face_threshold`` and ``text_threshold`` are
picked from what they add (faces, or fur and foliage).
"""

import itertools
import logging
import os

import datasets
from tqdm.auto import tqdm

from ..config import resolve_config
from ..run.folders import load_input
from ..imaging.decode import ImageError, decode
from ..imaging.modes import to_rgb
from ..imaging.metadata_policy import policy_of
from ..templates import render, thumbnail_url
from .anonymize import _parse_setting

logger = logging.getLogger(__name__)

DEFAULT_THRESHOLDS = (0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3)
DETECTORS = {"faces": ("people_faces",), "text": ("text_symbols", "licence_plates")}
SHOTS_PER_THRESHOLD = 24  # photos shown for each threshold: enough to judge, a page that still opens
ROWS_AT_ONCE = 4  # rows inspected together (their text is read side by side)


def register(subparsers):
    p = subparsers.add_parser("tune", help="count and show what the detectors find at each threshold, on a sample")
    p.add_argument("input", help="the same inputs as u2s anonymize: a folder of images, parquet, a saved dataset, a dataset id")
    p.add_argument("--limit", type=int, default=200, help="rows to look at (default: 200, the first ones)")
    p.add_argument("--out", default="u2s-tune", help="folder for index.html (default: u2s-tune)")
    p.add_argument("--thresholds", default=",".join(map(str, DEFAULT_THRESHOLDS)),
                   help="comma-separated thresholds to compare (default: 0.9 down to 0.3)")
    p.add_argument("--image-column", default="image")
    p.add_argument("--split", help="the split to sample (default: the first)")
    p.add_argument("--config", help="configuration of a dataset id")
    p.add_argument("--revision", help="revision of a dataset id")
    p.add_argument("--data-files", action="append", metavar="PATTERN", help="data files of a dataset id; repeatable")
    p.add_argument("--streaming", action="store_true", help="stream a dataset id (only --limit rows are read)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any other detector setting, e.g. --set face_min_size=24")
    p.set_defaults(run=run)


def run(args) -> int:
    thresholds = _thresholds(args.thresholds)
    if args.limit < 1:
        raise ValueError(f"--limit must be at least 1, got {args.limit}")
    overrides = dict(_parse_setting(s) for s in args.set)
    if "face_threshold" in overrides or "text_threshold" in overrides:
        raise ValueError("u2s tune compares thresholds: give them with --thresholds, not --set")
    floor = thresholds[-1]
    config = resolve_config("local", **overrides, face_threshold=floor, text_threshold=floor)  # checks the range too
    ds = load_input(args.input, args.image_column, split=args.split, config=args.config, revision=args.revision,
                    data_files=args.data_files, streaming=args.streaming)
    if isinstance(ds, (datasets.DatasetDict, datasets.IterableDatasetDict)):
        name = next(iter(ds))
        logger.warning("%s has splits %s; sampling %r (choose with --split)", args.input, ", ".join(ds), name)
        ds = ds[name]
    samples = find_regions(ds, args.image_column, args.limit, config)
    table = count_table(samples, thresholds)
    os.makedirs(args.out, exist_ok=True)
    page = os.path.join(args.out, "index.html")
    with open(page, "w") as f:
        f.write(render_page(samples, thresholds, table, args))
    print(format_table(table))
    print(f"{len(samples)} rows looked at; page with the boxes of each threshold: {page}")
    return 0


def _thresholds(text: str) -> list:
    try:
        values = sorted({float(v) for v in text.split(",") if v.strip()}, reverse=True)
    except ValueError:
        raise ValueError(f"--thresholds takes numbers separated by commas, got {text!r}") from None
    if not values:
        raise ValueError("--thresholds needs at least one threshold")
    return values


def find_regions(ds, image_column: str, limit: int, config) -> list:
    """Up to ``limit`` rows: for each, its name, size, thumbnail and the regions found at the floor."""
    from ..inspect.local import DetectorInspector

    if image_column not in (ds.column_names or []):
        raise KeyError(f"image column {image_column!r} not found; the dataset has: {', '.join(ds.column_names or [])}")
    inspector = DetectorInspector(config)
    rows = ds.select(range(min(limit, len(ds)))) if isinstance(ds, datasets.Dataset) else itertools.islice(ds, limit)
    total = min(limit, len(ds)) if isinstance(ds, datasets.Dataset) else limit
    samples, pending = [], []
    bake = policy_of(config.output).bake_orientation
    for index, row in enumerate(tqdm(rows, total=total, desc="u2s tune", unit="row")):
        try:
            image = to_rgb(decode(row[image_column], config.output.max_image_pixels, bake).image)
        except ImageError as e:
            logger.warning("row %d skipped: %s", index, e)
            continue
        pending.append((index, row.get("file_name") or f"row {index}", image))
        if len(pending) == ROWS_AT_ONCE:
            samples += _inspected(inspector, pending)
            pending = []
    return samples + _inspected(inspector, pending)


def _inspected(inspector, pending) -> list:
    if not pending:
        return []
    inspections = inspector.inspect([image for _, _, image in pending], [None] * len(pending))
    out = []
    for (index, name, image), inspection in zip(pending, inspections):
        regions = [{"detector": _detector(r.category), "category": r.category, "box": [int(v) for v in r.box], "score": float(r.score)}
                   for r in inspection.regions]
        out.append({"index": index, "name": name, "width": image.width, "height": image.height,
                    "thumbnail": thumbnail_url(image, side=320), "regions": regions})
    return out


def _detector(category: str) -> str:
    return next(name for name, categories in DETECTORS.items() if category in categories)


def count_table(samples: list, thresholds: list) -> list:
    """Per threshold, highest first: regions found at it and added by lowering to it, per detector; rows with any."""
    table, previous = [], {name: 0 for name in DETECTORS}
    for threshold in thresholds:
        found = {name: sum(r["detector"] == name and r["score"] >= threshold for s in samples for r in s["regions"])
                 for name in DETECTORS}
        rows = sum(any(r["score"] >= threshold for r in s["regions"]) for s in samples)
        table.append({"threshold": threshold, "found": found, "added": {n: found[n] - previous[n] for n in DETECTORS}, "rows": rows})
        previous = found
    return table


def format_table(table: list) -> str:
    lines = [f"{'threshold':>9}  {'faces':>6} {'(+new)':>7}  {'text':>6} {'(+new)':>7}  {'rows with any':>13}"]
    for line in table:
        found, added = line["found"], line["added"]
        lines.append(f"{line['threshold']:>9.2f}  {found['faces']:>6} {'+' + str(added['faces']):>7}  "
                     f"{found['text']:>6} {'+' + str(added['text']):>7}  {line['rows']:>13}")
    return "\n".join(lines)


def render_page(samples: list, thresholds: list, table: list, args) -> str:
    sections, higher = [], None
    for threshold in thresholds:
        shots = []
        for sample in samples:
            new = [r for r in sample["regions"] if r["score"] >= threshold and (higher is None or r["score"] < higher)]
            if not new:
                continue
            regions = [{**r, "state": "added" if r in new else ""} for r in sample["regions"] if r["score"] >= threshold]
            caption = f"{sample['name']}: " + ", ".join(f"{r['detector']} {r['score']:.2f}" for r in new)
            shots.append({**sample, "shown": regions, "caption": caption})
        sections.append({"threshold": threshold, "higher": higher, "shots": shots[:SHOTS_PER_THRESHOLD],
                         "more": max(0, len(shots) - SHOTS_PER_THRESHOLD)})
        higher = threshold
    source = os.path.basename(os.path.abspath(args.input)) if os.path.exists(args.input) else args.input  # no folders above it
    return render("tune.html", title="u2s tune", source=source, rows=len(samples), table=table, sections=sections,
                  detectors=list(DETECTORS))
