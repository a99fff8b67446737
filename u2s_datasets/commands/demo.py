"""``u2s demo``: the local preset on real photos, with a before/after HTML page."""

import base64
import html
import io
import os

from PIL import Image

from .. import columns as C
from ..runner import anonymize
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
    rows = []
    for row in result:
        before = Image.open(io.BytesIO(row["image"]["bytes"]))
        after = row[C.SAFE_IMAGE]
        cells = "".join(
            f"<td><img src='{_data_url(image)}'></td>" for image in (before, after)
        )
        text = (
            f"<b>{html.escape(row['name'])}</b> &middot; {html.escape(row[C.STATUS])}<br>"
            f"<i>private:</i> {html.escape(row[C.PRIVATE_CAPTION])}<br>"
            f"<i>public:</i> {html.escape(row[C.PUBLIC_CAPTION])}<br>"
            f"<i>instruction:</i> {html.escape(row[C.EDIT_INSTRUCTION] or '-')}"
        )
        rows.append(f"<tr>{cells}<td>{text}</td></tr>")
    return (
        "<!doctype html><meta charset='utf-8'><title>u2s demo</title>"
        "<style>body{font-family:sans-serif}img{max-width:360px;max-height:300px}td{vertical-align:top;padding:6px}</style>"
        f"<h1>Unsafe2Safe, local preset</h1><p>{html.escape(str(summary))}<br>{html.escape(repr(transform))}</p>"
        f"<table><tr><th>before</th><th>after</th><th>triplet</th></tr>{''.join(rows)}</table>"
    )


def _data_url(image) -> str:
    image = image.convert("RGB")
    image.thumbnail((360, 360))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()
