"""Publishing cost per row: the full-row column audit and a whole dry run, on synthetic rows.

    python benchmarks/bench_publish.py [--rows 20000]

Every value of every source column is looked at (nested ones too), so the audit grows with
the rows; the images are checked, not re-encoded, so staging grows with the image bytes.
"""

import argparse
import io
import tempfile
import time

import numpy as np
from datasets import Dataset, Features, Value
from PIL import Image

from u2s_datasets import columns as C
from u2s_datasets.hub import push_safe_dataset
from u2s_datasets.hub.audit import audit_columns


def synthetic(rows: int) -> Dataset:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buffer, format="PNG")
    png = buffer.getvalue()
    features = Features({**C.OUTPUT_FEATURES, "caption": Value("string"), "meta": {"source": Value("string"), "tags": [Value("string")]}})
    data = {
        C.SAFE_IMAGE: [{"bytes": png, "path": None}] * rows,
        C.IS_PRIVATE: [False] * rows,
        C.PRIVACY_CATEGORIES: [[]] * rows,
        C.PRIVATE_CAPTION: [""] * rows,
        C.PUBLIC_CAPTION: ["a street with parked cars"] * rows,
        C.EDIT_INSTRUCTION: [""] * rows,
        C.PRIVACY_REGIONS: [[]] * rows,
        C.STATUS: [C.STATUS_PASSTHROUGH] * rows,
        "caption": [f"photo number {i} taken on a sunny afternoon near the river" for i in range(rows)],
        "meta": [{"source": f"camera {i % 7}", "tags": ["outdoor", "city"]} for i in range(rows)],
    }
    return Dataset.from_dict(data, features=features)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=20_000)
    args = parser.parse_args()
    ds = synthetic(args.rows)

    start = time.perf_counter()
    audit = audit_columns(ds, ["caption", "meta"])
    audit_s = time.perf_counter() - start
    assert not audit.paths and len(audit.text) == 3

    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        result = push_safe_dataset(ds, "org/bench", dry_run=f"{folder}/staging", allow_text_columns=True, image_column="image")
        stage_s = time.perf_counter() - start
    assert result.counts["total"]["image_files"]["unchanged"] == args.rows
    print(f"rows: {args.rows}")
    print(f"column audit (2 source columns, 3 text fields): {audit_s:.2f} s, {args.rows / audit_s:,.0f} rows/s")
    print(f"dry run (audit + image check + parquet + card): {stage_s:.2f} s, {args.rows / stage_s:,.0f} rows/s")


if __name__ == "__main__":
    main()
