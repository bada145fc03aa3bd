"""The small pages a person sees after a link: what happened, in a line or two, and nothing secret."""

from __future__ import annotations

from html import escape

from starlette.responses import HTMLResponse

__all__ = ["page"]

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem;"
    "line-height:1.5;color:#222}h1{font-size:1.4rem}.ok{color:#0a6b2d}.no{color:#a31515}"
)


def page(title: str, lines: list[str], *, ok: bool, status: int = 200) -> HTMLResponse:
    """An HTML page: a title and lines of text (escaped), green when `ok`, red otherwise."""
    body = "".join(f"<p>{escape(line)}</p>" for line in lines)
    html = (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body>"
        f"<h1 class={'ok' if ok else 'no'} id=result>{escape(title)}</h1>{body}</body></html>"
    )
    # Nothing here may be cached or leak the URL (its state) to another site.
    headers = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
    return HTMLResponse(html, status_code=status, headers=headers)
