"""Parts of self-contained HTML reports: the page, headline cards, figures and thumbnails as data URIs.

Embedding instead of linking keeps each report one file that can be e-mailed or archived.
"""

from __future__ import annotations

import base64
import html
import io
import os

from ..data.images import load_image
from ..errors import ImageLoadError


def figure_uri(fig) -> str:
    """A matplotlib figure as a PNG data URI."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def data_uri(data: bytes, media_type: str) -> str:
    return f"data:{media_type};base64," + base64.b64encode(data).decode()


def image_uri(img, size: int = 160) -> str:
    """A PIL image, shrunk to fit `size` pixels, as a JPEG data URI."""
    img = img.convert("RGB")
    img.thumbnail((size, size))
    buffer = io.BytesIO()
    img.save(buffer, format="JPEG", quality=80)
    return data_uri(buffer.getvalue(), "image/jpeg")


def thumbnail_uri(path: str | os.PathLike, size: int = 160) -> str | None:
    """A JPEG thumbnail of an image file as a data URI, or None when it does not decode."""
    try:
        img = load_image(path, min_side=size)
    except ImageLoadError:
        return None
    return image_uri(img, size)


STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1100px;padding:0 1rem;color:#222}
p,h1,h2,figcaption,td.text,code{overflow-wrap:anywhere}
.scroll{overflow-x:auto;max-width:100%}.scroll-hint{display:none;color:#666;font-size:.8rem;margin:.5rem 0 0}
@media (max-width:600px){body{margin:1rem auto}.scroll-hint{display:block}td,th{padding:.2rem .4rem}}
.verdict{font-size:1.1rem}.memorised{color:#666;background:#f4f4f4;padding:.2rem 1rem 1rem;border-radius:8px}
img{height:auto}
.cards{display:flex;flex-wrap:wrap;gap:.8rem}.card{border:1px solid #ddd;border-radius:8px;padding:.7rem 1rem;min-width:8rem}
.card b{display:block;font-size:1.5rem}.card span{color:#666;font-size:.85rem}
table{border-collapse:collapse;margin:1rem 0}td,th{border-bottom:1px solid #eee;padding:.25rem .8rem;text-align:right}
td:first-child,th:first-child{text-align:left}img.plot{max-width:100%}
.grid{display:flex;flex-wrap:wrap;gap:1rem}figure{margin:0;width:170px;font-size:.8rem;overflow-wrap:anywhere}
figure img{max-width:160px;max-height:160px}.noimg{width:160px;height:100px;background:#eee}.note{color:#8a4b00}
.mistake{display:flex;flex-wrap:wrap;gap:1rem;align-items:flex-start;padding:.8rem 0;border-bottom:1px solid #eee}
.near{display:flex;flex-wrap:wrap;gap:.6rem}.near figure{width:110px}.near figure img{max-width:100px;max-height:100px}
.near .noimg{width:100px;height:60px}img.panel{max-width:100%}
td.text{text-align:left}tr.untested td{color:#888;font-style:italic}.facts td:first-child{font-weight:600;white-space:nowrap}
"""


def scroll_box(table_html: str) -> str:
    """A wide table in a box that scrolls sideways on a phone and says so, so the page itself
    never scrolls sideways."""
    return ('<div class=scroll role=region tabindex=0 aria-label="table (scrolls sideways)">'
            f'<p class=scroll-hint>scroll the table sideways →</p>{table_html}</div>')


def cards(items: list[tuple[str, object]]) -> str:
    """Headline numbers as a row of cards: (name, value) pairs."""
    return "<div class=cards>" + "".join(
        f"<div class=card><b>{html.escape(str(value))}</b><span>{html.escape(name)}</span></div>" for name, value in items
    ) + "</div>"


def thumbnail_figure(path: str | os.PathLike, caption_html: str) -> str:
    """A thumbnail with a caption (already escaped HTML); a grey box when the file does not decode."""
    uri = thumbnail_uri(path)
    image = f'<img src="{uri}" alt="">' if uri else "<div class=noimg>no preview</div>"
    return f"<figure>{image}<figcaption>{caption_html}</figcaption></figure>"


def page(title: str, body: str) -> str:
    """A complete HTML document with the shared report style."""
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>\n"
        f"<h1>{html.escape(title)}</h1>\n{body}\n</body></html>\n"
    )
