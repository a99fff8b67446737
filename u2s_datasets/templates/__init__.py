"""The HTML pages of the package (review page, demo page, evaluation report), rendered with jinja2.

One base layout and one set of macros: region overlays drawn in SVG over each image, click to
enlarge, settings as a table. Everything a page needs is inline, so it works with no network.
"""

import base64
import functools
import io

import jinja2


@functools.lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("u2s_datasets", "templates"),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["figure"] = figure_value
    return env


def render(template: str, **context) -> str:
    return environment().get_template(template).render(**context)


def thumbnail_url(image, side: int = 480, quality: int = 85) -> str:
    """A PIL image as a small JPEG data URL (for self-contained pages)."""
    image = image.convert("RGB")
    image.thumbnail((side, side))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


def settings_rows(config: dict, prefix: str = "") -> list:
    """A nested settings mapping as (name, value) rows, sections joined with dots."""
    rows = []
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            rows += settings_rows(value, name + ".")
        else:
            rows.append((name, "-" if value is None else ", ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)))
    return rows


def figure_value(value) -> str:
    """A figure for a table: floats to 4 places, None as 'undefined'."""
    if value is None:
        return "undefined"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)
