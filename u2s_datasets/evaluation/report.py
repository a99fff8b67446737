"""metrics.json plus a markdown and an HTML report: corpus figures, per-image distributions, worst leaks."""

import html
import json
import logging
import math
import os

from PIL import Image

logger = logging.getLogger(__name__)



def _numeric(values) -> list:
    return [float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)]


def _plot_distributions(results: dict, folder: str) -> list:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(folder, exist_ok=True)
    plots = []
    for metric, result in results.items():
        for key, values in (result.get("per_image") or {}).items():
            numbers = _numeric(values)
            if len(numbers) < 1:
                continue
            figure, axis = plt.subplots(figsize=(4, 2.6), dpi=100)
            axis.hist(numbers, bins=min(20, max(5, len(numbers))), color="#4c72b0")
            axis.set_title(f"{metric}: {key}", fontsize=9)
            axis.set_xlabel(key, fontsize=8)
            axis.set_ylabel("images", fontsize=8)
            axis.tick_params(labelsize=7)
            figure.tight_layout()
            name = f"{metric}_{key}.png"
            figure.savefig(os.path.join(folder, name))
            plt.close(figure)
            plots.append((metric, key, os.path.join(os.path.basename(folder), name)))
    return plots


def leak_ranking(privacy: dict) -> list:
    """Row indices, worst leak first: the largest of the row's face and text similarity."""
    per_image = privacy.get("per_image") or {}
    n = privacy.get("num_images", 0)
    scores = []
    for i in range(n):
        values = [per_image[key][i] for key in ("face_similarity", "text_similarity") if key in per_image]
        values = [v for v in values if v is not None]
        if "vlm_score" in per_image and per_image["vlm_score"][i] is not None:
            values.append(1.0 - per_image["vlm_score"][i] / 100.0)
        if values:
            scores.append((max(values), i))
    return [i for _, i in sorted(scores, reverse=True)]


def _worst_leaks(results: dict, pairs, folder: str, count: int) -> list:
    from .privacy import side_by_side

    privacy = results.get("privacy")
    if not privacy or pairs is None:
        return []
    os.makedirs(folder, exist_ok=True)
    shown = []
    for rank, i in enumerate(leak_ranking(privacy)[:count]):
        name, original, safe = pairs[i]
        picture = side_by_side(_pil(original), _pil(safe), height=256, gap=8)
        file_name = f"leak_{rank + 1:02d}.jpg"
        picture.save(os.path.join(folder, file_name), quality=90)
        per_image = privacy["per_image"]
        figures = {key: per_image[key][i] for key in ("face_similarity", "face_survival", "text_similarity", "vlm_score")
                   if key in per_image}
        shown.append({"row": i, "name": name, "image": os.path.join(os.path.basename(folder), file_name), "figures": figures})
    return shown


def _pil(image):
    from .inputs import as_rgb

    return Image.fromarray(as_rgb(image, "report image"))


def _corpus(result: dict) -> dict:
    return {k: v for k, v in result.items() if k not in ("per_image", "models")}


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, dict):
        return json.dumps(value, default=str)
    return str(value)


def write_report(results: dict, out_dir: str, pairs=None, worst: int = 6, title: str = "u2s evaluation") -> dict:
    """Write ``metrics.json``, ``report.md``, ``report.html`` and their pictures into ``out_dir``.

    ``results``: metric name -> that metric's output. ``pairs``: per row ``(name, original, safe)``,
    for the worst-leak pictures.
    """
    os.makedirs(out_dir, exist_ok=True)
    paths = {"metrics": os.path.join(out_dir, "metrics.json"), "markdown": os.path.join(out_dir, "report.md"),
             "html": os.path.join(out_dir, "report.html")}
    with open(paths["metrics"], "w", encoding="utf-8") as f:
        json.dump(results, f, indent=2, default=str, allow_nan=False)
    plots = _plot_distributions(results, os.path.join(out_dir, "plots"))
    leaks = _worst_leaks(results, pairs, os.path.join(out_dir, "worst_leaks"), worst)

    md = [f"# {title}", ""]
    body = [f"<h1>{html.escape(title)}</h1>"]
    for metric, result in results.items():
        md += [f"## {metric}", "", "| figure | value |", "| --- | --- |"]
        body += [f"<h2>{html.escape(metric)}</h2>", "<table><tr><th>figure</th><th>value</th></tr>"]
        for key, value in _corpus(result).items():
            md.append(f"| {key} | {_fmt(value)} |")
            body.append(f"<tr><td>{html.escape(key)}</td><td>{html.escape(_fmt(value))}</td></tr>")
        body.append("</table>")
        models = result.get("models") or {}
        if models:
            md += ["", "Models: " + "; ".join(f"{k}: {_fmt(v)}" for k, v in models.items())]
            body.append("<p>Models: " + html.escape("; ".join(f"{k}: {_fmt(v)}" for k, v in models.items())) + "</p>")
        md.append("")
        for plot_metric, key, path in plots:
            if plot_metric == metric:
                md.append(f"![{metric} {key}]({path})")
                body.append(f'<img src="{html.escape(path)}" alt="{html.escape(metric)} {html.escape(key)}">')
        md.append("")
    if leaks:
        md += ["## Worst leaks (original left, safe right)", ""]
        body.append("<h2>Worst leaks (original left, safe right)</h2>")
        for leak in leaks:
            caption = f"row {leak['row']} ({leak['name']}): " + ", ".join(f"{k}={_fmt(v)}" for k, v in leak["figures"].items())
            md += [f"**{caption}**", "", f"![{leak['name']}]({leak['image']})", ""]
            body.append(f"<figure><img src=\"{html.escape(leak['image'])}\"><figcaption>{html.escape(caption)}</figcaption></figure>")
    with open(paths["markdown"], "w", encoding="utf-8") as f:
        f.write("\n".join(md) + "\n")
    with open(paths["html"], "w", encoding="utf-8") as f:
        f.write("<!doctype html><html><head><meta charset='utf-8'><title>" + html.escape(title) + "</title>"
                "<style>body{font-family:sans-serif;max-width:1100px;margin:auto}td,th{padding:2px 10px;text-align:left}"
                "img{margin:4px}</style></head><body>" + "\n".join(body) + "</body></html>\n")
    return paths
