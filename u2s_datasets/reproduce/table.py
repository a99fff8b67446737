"""The reproduction's table in the paper's layout: one row per method, the four metric groups as columns.

A cell is ``{"value": float | None, "note": str | None}``: a number, or ``None`` with a note
saying why there is none (the paper has no such figure for the dataset, or the model's answers
gave none). The published figures are a separate, labelled reference row.
"""

import json
import math
import os

from .stages import METHODS

# (group, key, header, how to read it from a method's metrics)
COLUMNS = (
    ("Quality", "clip_score", "CLIP score ↑", ("quality", "clip_score", 1.0)),
    ("Cheating", "lpips", "LPIPS", ("cheating", "lpips", 1.0)),
    ("Cheating", "ssim", "SSIM", ("cheating", "ssim", 1.0)),
    ("Privacy", "face_sim", "FaceSim ↓", ("privacy", "face_similarity_paper", 1.0)),
    ("Privacy", "text_sim", "TextSim ↓", ("privacy", "text_similarity", 1.0)),
    ("Privacy", "race_entropy", "Race entropy ↑", ("privacy", "race_entropy", 1.0)),
    ("Privacy", "vlm_score", "VLMScore ↑", ("privacy", "vlm_score", 1.0)),
    ("Utility", "accuracy", "Accuracy (%) ↑", ("utility", "safe_accuracy", 100.0)),
)
ROW_LABELS = {"raw": "raw", "blur": "blur", "zero-shot": "zero-shot editor (MagicBrush)",
              "fine-tuned": "fine-tuned editor (MagicBrush + SafeAttention)"}
# Figures of Unsafe2Safe's own editor published in the paper (arXiv 2603.28605), as far as they are cited here.
PAPER_REFERENCE = {
    "caltech101": {"accuracy": 94.926, "clip_score": 30.94},
    "indoor67": {"accuracy": 82.537, "clip_score": 34.48},
    "coco": {},
}
REFERENCE_LABEL = "paper, published (Unsafe2Safe)"


def _reason(key: str, group: dict) -> str:
    if key == "face_sim":
        return f"n/a: no original face kept a face in the safe image ({group.get('original_faces', 0)} original faces)"
    if key == "text_sim":
        return "n/a: no original image had text"
    if key == "race_entropy":
        return (f"n/a: no answer listed races ({group.get('race_unparsed', 0)} answers off the format, "
                f"{group.get('race_images', 0)} images with a person)")
    if key == "vlm_score":
        return f"n/a: no ANONYMIZATION_SCORE in the judge's answers ({group.get('vlm_unparsed', 0)} unparsed)"
    return "n/a: the metric gave no figure"


def cell(metrics: dict, key: str, source: tuple, dataset: str) -> dict:
    group_name, field, scale = source
    if group_name == "utility" and "utility" not in metrics:
        why = "captioning (BLIP-2), not run by this command" if dataset == "coco" else "no class labels"
        return {"value": None, "note": f"n/a: the utility task here is {why}"}
    group = metrics.get(group_name) or {}
    value = group.get(field)
    if value is None or not math.isfinite(float(value)):
        return {"value": None, "note": _reason(key, group)}
    return {"value": float(value) * scale, "note": None}


def build_table(dataset: str, metrics: dict, settings: dict) -> dict:
    """``metrics``: method -> its saved metrics. Returns the table as a JSON-able dict."""
    columns = [{"group": g, "key": k, "header": h} for g, k, h, _ in COLUMNS]
    rows = [{"method": m, "label": ROW_LABELS[m], "cells": {k: cell(metrics[m], k, s, dataset) for _, k, _, s in COLUMNS}}
            for m in METHODS]
    published = PAPER_REFERENCE.get(dataset, {})
    reference = {"label": REFERENCE_LABEL, "cells": {
        k: {"value": published[k], "note": None} if k in published else {"value": None, "note": "not cited"} for _, k, _, _ in COLUMNS}}
    return {"dataset": dataset, "columns": columns, "rows": rows, "reference": reference, "settings": settings,
            "evaluated_rows": {m: metrics[m].get("rows") for m in METHODS}}


def _text(c: dict) -> str:
    return f"{c['value']:.3f}" if c["value"] is not None else c["note"]


def markdown(table: dict) -> str:
    headers = [c["header"] for c in table["columns"]]
    groups = [c["group"] for c in table["columns"]]
    lines = [f"### Unsafe2Safe reproduction: {table['dataset']}" + (" (tiny random models: figures only show that every step runs)"
                                                                      if table["settings"].get("tiny") else ""), ""]
    lines.append("| method | " + " | ".join(f"{g}: {h}" for g, h in zip(groups, headers)) + " |")
    lines.append("|---" * (len(headers) + 1) + "|")
    for row in table["rows"]:
        lines.append(f"| {row['label']} | " + " | ".join(_text(row["cells"][c["key"]]) for c in table["columns"]) + " |")
    ref = table["reference"]
    lines.append(f"| *{ref['label']}* | " + " | ".join(_text(ref["cells"][c["key"]]) for c in table["columns"]) + " |")
    lines += ["", "Quality, cheating and privacy on the rows stage 1 flagged private of the "
              f"{table['settings'].get('eval_split', 'evaluation')} split; utility trained on each method's training split, "
              "tested on the real test split. Privacy under protocol=\"paper\", utility under recipe=\"paper\"."]
    return "\n".join(lines) + "\n"


def write_table(table: dict, out: str) -> dict:
    paths = {"markdown": os.path.join(out, "table.md"), "json": os.path.join(out, "table.json")}
    with open(paths["markdown"], "w") as f:
        f.write(markdown(table))
    with open(paths["json"], "w") as f:
        json.dump(table, f, indent=2, default=str)
    return paths
