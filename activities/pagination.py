"""Shared page walking for the providers' cursor-paginated listings.

Every listing action fetches "up to `pages` pages": a loop that asks for a page, reads the next
cursor out of it and stops when the provider says there is no more, when the cursor is empty, or
when the page budget is spent. Providers differ only in where the cursor lives and what it looks
like, so each passes its own `next_cursor`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["Pages", "collect_pages"]

BodyT = TypeVar("BodyT")
CursorT = TypeVar("CursorT")


@dataclass(frozen=True)
class Pages(Generic[BodyT, CursorT]):
    """The pages one listing call fetched.

    Attributes:
        bodies: Every page's decoded body, in order.
        cursor: Where the next page starts (pass it back to resume), or None at the end.
        has_more: Whether the provider has more items after the last fetched page.
    """

    bodies: list[BodyT]
    cursor: CursorT | None
    has_more: bool


async def collect_pages(
    fetch: Callable[[CursorT | None], Awaitable[BodyT]],
    next_cursor: Callable[[BodyT], CursorT | None],
    *,
    start: CursorT | None,
    pages: int,
) -> Pages[BodyT, CursorT]:
    """Fetch pages from `start` until the listing ends or `pages` pages have been read.

    Args:
        fetch: Fetches the page at a cursor (None = the first page).
        next_cursor: The cursor of the page after this body, or None when the listing ends.
        start: The cursor to begin at (None = from the beginning).
        pages: At most this many requests.

    Returns:
        The bodies, the cursor to resume from and whether more pages exist.
    """
    bodies: list[BodyT] = []
    cursor = start
    for _ in range(pages):
        body = await fetch(cursor)
        bodies.append(body)
        following = next_cursor(body)
        if following is None or following == cursor:
            # A cursor that does not move would fetch the same page forever: treat it as the end.
            return Pages(bodies, None, False)
        cursor = following
    return Pages(bodies, cursor, True)
