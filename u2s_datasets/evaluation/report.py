"""metrics.json plus a markdown and an HTML report: corpus figures, per-image distributions, worst leaks.

The HTML report is drawn with the package's page templates (``u2s_datasets/templates``): the
same region overlays, click to enlarge and settings table as the review and demo pages.
"""

import json
import logging
import math
import os

from PIL import Image

from ..templates import render, settings_rows

logger = logging.getLogger(__name__)

LEAK_KEYS = ("face_similarity", "face_survival", "text_similarity", "vlm_score")
THUMBNAIL_SIDE = 512


def _numeric(values) -> list:
    return [float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)]


def _psnr_cap():
    from .cheating import PSNR_CAP

    return PSNR_CAP


def per_image_series(metric: str, key: str, values) -> tuple:
    """The numbers of one per-image series worth plotting, and a note when there is nothing to draw.

    A series that is undefined (None) for every image or zero for every image is said in words;
    PSNR's cap (identical images) is left out of the numbers and counted apart.
    """
    numbers = _numeric(values)
    if not numbers:
        return [], f"{key}: undefined for every image" if values else None
    if key == "psnr":
        cap = _psnr_cap()
        identical = sum(1 for v in numbers if v >= cap)
        numbers = [v for v in numbers if v < cap]
        if identical:
            rest = f"; mean of the other {len(numbers)}: {sum(numbers) / len(numbers):.2f} dB" if numbers else ""
            note = f"psnr: {identical} of {identical + len(numbers)} images are identical to their original (infinite PSNR, " \
                   f"stored as the {cap:g} dB cap) and are left out of the plot{rest}"
            return numbers, note
    if all(v == 0 for v in numbers):
        return [], f"{key}: 0 for every image" + (f" ({len(values) - len(numbers)} undefined)" if len(numbers) < len(values) else "")
    if len(set(numbers)) == 1:
        return [], f"{key}: {numbers[0]:.4g} for every image"
    return numbers, None


def _plot(metric: str, key: str, numbers: list, folder: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    low, high = min(numbers), max(numbers)
    pad = (high - low) * 0.05
    figure, axis = plt.subplots(figsize=(4, 2.6), dpi=100)
    axis.hist(numbers, bins=min(20, max(5, len(numbers))), range=(low, high), color="#4c72b0")
    axis.set_xlim(low - pad, high + pad)  # the axis fits the data, not a fixed range
    axis.yaxis.set_major_locator(MaxNLocator(integer=True))
    axis.set_title(f"{metric}: {key}", fontsize=9)
    axis.set_xlabel(key, fontsize=8)
    axis.set_ylabel("images", fontsize=8)
    axis.tick_params(labelsize=7)
    figure.tight_layout()
    name = f"{metric}_{key}.png"
    figure.savefig(os.path.join(folder, name))
    plt.close(figure)
    return os.path.join(os.path.basename(folder), name)


def leak_ranking(privacy: dict, regions=None) -> list:
    """Rows with something to leak, worst leak first.

    A row has something to leak when its original shows a face, text that is still read in the
    safe image, a stored private region (``regions``, per row) or a judge's score. Its leak is the
    largest of its face and text similarity (and 1 - judge score / 100). Other rows are not ranked.
    """
    per_image = privacy.get("per_image") or {}
    n = privacy.get("num_images", 0)
    scores = []
    for i in range(n):
        faces = (per_image.get("original_faces") or [0] * n)[i] or 0
        face = per_image["face_similarity"][i] if faces and "face_similarity" in per_image else None
        text = per_image["text_similarity"][i] if "text_similarity" in per_image else None
        judge = per_image["vlm_score"][i] if "vlm_score" in per_image else None
        values = [v for v in (face, text or None, None if judge is None else 1.0 - judge / 100.0) if v is not None]
        if values or (regions is not None and regions[i]):
            scores.append((max(values, default=0.0), -i))
    return [-i for _, i in sorted(scores, reverse=True)]


def _worst_leaks(results: dict, pairs, regions, folder: str, count: int) -> list:
    from .privacy import side_by_side

    privacy = results.get("privacy")
    if not privacy or pairs is None:
        return []
    os.makedirs(folder, exist_ok=True)
    shown = []
    for rank, i in enumerate(leak_ranking(privacy, regions)[:count]):
        name, original, safe = pairs[i]
        original, safe = _pil(original), _pil(safe)
        base = f"leak_{rank + 1:02d}"
        side_by_side(original, safe, height=256, gap=8).save(os.path.join(folder, base + ".jpg"), quality=90)
        for image, suffix in ((original, "original"), (safe.resize(original.size), "safe")):
            thumbnail = image.copy()
            thumbnail.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
            thumbnail.save(os.path.join(folder, f"{base}_{suffix}.jpg"), quality=88)
        per_image = privacy["per_image"]
        figures = {key: per_image[key][i] for key in LEAK_KEYS if key in per_image}
        relative = os.path.basename(folder)
        shown.append({
            "row": i, "label": f"row {i}" if name in (None, "", f"row {i}") else f"row {i} ({name})", "figures": figures,
            "image": f"{relative}/{base}.jpg", "original": f"{relative}/{base}_original.jpg", "safe": f"{relative}/{base}_safe.jpg",
            "width": original.width, "height": original.height, "regions": _regions(regions, i),
        })
    return shown


def _regions(regions, i) -> list:
    if regions is None or regions[i] is None:
        return []
    return [{"category": r["category"], "box": [float(v) for v in r["box"]], "score": float(r.get("score", 1.0))} for r in regions[i]]


def _pil(image):
    from .inputs import as_rgb

    return Image.fromarray(as_rgb(image, "report image"))


def _figures(result: dict, prefix: str = "") -> dict:
    """Corpus figures, nested ones with dotted names."""
    figures = {}
    for key, value in result.items():
        if key in ("per_image", "models"):
            continue
        if isinstance(value, dict):
            figures.update(_figures(value, f"{prefix}{key}."))
        else:
            figures[f"{prefix}{key}"] = value
    return figures


def _sections(results: dict, plots_folder: str) -> list:
    sections = []
    for metric, result in results.items():
        plots, notes = [], []
        figures = _figures(result)
        undefined = [k for k, v in figures.items() if v is None]
        if undefined:
            notes.append("undefined (nothing to measure in these images): " + ", ".join(undefined))
        for key, values in (result.get("per_image") or {}).items():
            if not any(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values) and any(v is not None for v in values):
                continue  # labels, not numbers
            numbers, note = per_image_series(metric, key, values)
            if key in undefined and not numbers:
                note = None  # already said among the undefined figures
            if key == "psnr" and len(numbers) < len(_numeric(values)):
                figures["psnr_without_identical"] = sum(numbers) / len(numbers) if numbers else None
            if note:
                notes.append(note)
            if len(numbers) >= 2:
                os.makedirs(plots_folder, exist_ok=True)
                plots.append({"key": key, "path": _plot(metric, key, numbers, plots_folder)})
        models = {k: (json.dumps(v, default=str) if isinstance(v, dict) else str(v)) for k, v in (result.get("models") or {}).items()}
        sections.append({"metric": metric, "figures": figures, "notes": notes, "plots": plots, "models": models})
    return sections


def write_report(results: dict, out_dir: str, pairs=None, worst: int = 6, title: str = "u2s evaluation", regions=None,
                 settings=None, stopped=None) -> dict:
    """Write ``metrics.json``, ``report.md``, ``report.html`` and their pictures into ``out_dir``.

    ``results``: metric name -> that metric's output. ``pairs``: per row ``(name, original, safe)``,
    for the worst-leak pictures; ``regions``: per row the stored private regions, drawn over them.
    ``settings``: the anonymization run's settings (shown as a table). ``stopped``: a line saying
    which metric could not run, when the suite stopped early.
    """
    os.makedirs(out_dir, exist_ok=True)
    paths = {"metrics": os.path.join(out_dir, "metrics.json"), "markdown": os.path.join(out_dir, "report.md"),
             "html": os.path.join(out_dir, "report.html")}
    with open(paths["metrics"], "w", encoding="utf-8") as f:
        json.dump(results, f, indent=2, default=str, allow_nan=False)
    context = {
        "title": title, "sections": _sections(results, os.path.join(out_dir, "plots")),
        "leaks": _worst_leaks(results, pairs, regions, os.path.join(out_dir, "worst_leaks"), worst),
        "settings": settings_rows(settings) if settings else [], "stopped": stopped,
        "no_leaks": "privacy" in results and pairs is not None,
    }
    with open(paths["markdown"], "w", encoding="utf-8") as f:
        f.write(render("report.md", **context))
    with open(paths["html"], "w", encoding="utf-8") as f:
        f.write(render("report.html", **context))
    return paths
