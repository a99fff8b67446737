"""``u2s demo``: the local preset on real photos, with a before/after HTML page."""

import io
import os

from PIL import Image

from .. import columns as C
from ..run import anonymize
from ..templates import render, settings_rows, thumbnail_url
from ..samples import sample_dataset
from ..transform import Unsafe2Safe


def register(subparsers):
    p = subparsers.add_parser("demo", help="anonymize real sample photos offline and write a before/after page")
    p.add_argument("--out", default="u2s-demo", help="folder for index.html (default: u2s-demo)")
    p.add_argument("--editor", default="blur", help="blur, pixelate, fill or inpaint")
    p.set_defaults(run=run)


def run(args) -> int:
    transform = Unsafe2Safe(preset="local", editor=args.editor)
    result, summary = anonymize(sample_dataset(), transform, batch_size=4)
    os.makedirs(args.out, exist_ok=True)
    page = os.path.join(args.out, "index.html")
    with open(page, "w") as f:
        f.write(render_page(result, summary, transform))
    print(summary)
    print(f"before/after page: {page}")
    return 0


def render_page(result, summary, transform) -> str:
    """The before/after page: regions drawn over both images, click to enlarge, the settings as a table."""
    rows = []
    for row in result:
        before = Image.open(io.BytesIO(row["image"]["bytes"]))
        after = row[C.SAFE_IMAGE]
        rows.append({
            "name": row["name"], "status": row[C.STATUS], "before": thumbnail_url(before), "after": thumbnail_url(after),
            "width": before.width, "height": before.height, "regions": row[C.PRIVACY_REGIONS],
            "private_caption": row[C.PRIVATE_CAPTION], "public_caption": row[C.PUBLIC_CAPTION],
            "instruction": row[C.EDIT_INSTRUCTION], "categories": row[C.PRIVACY_CATEGORIES],
        })
    return render("demo.html", title="u2s demo", rows=rows, summary=str(summary), preset=transform.config.preset,
                  config_hash=transform.config.hash(), settings=settings_rows(transform.config.to_dict()))
