"""TikAPI (api.tikapi.io): the unofficial TikTok API, as registered `tikapi.*` actions.

Request shapes follow the official client (PyPI `tikapi` 3.2.2, see
`shared/reference/tikapi-endpoints.md`): `X-API-KEY` on every request, `X-ACCOUNT-KEY` on
`/user/*` and `/creator/*`, GET parameters in the query string, POST parameters as a JSON body,
only declared parameters sent. Listings are walked the way the client's `next_items()` walks them
(`next_cursor`), up to the action's `pages`.

Results are normalized so recipes see stable snake_case keys whatever TikTok's payload looks like
this month: videos are `video_item`s, comments `comment_item`s, users `user_item`s; listings return
`items`, `cursor` (pass it back to resume) and `has_more`.

The package's rooms: `client` (errors, auth, the `PROVIDER` declaration), `shapes` (TikAPI's items;
the TikTok ones are `activities.shapes`), `paging`, `identity` (who we are, what this worker did),
`inputs`, `reads` and `effects`.

Actions that change the world check before they act, so a retried activity (a worker killed after
the POST, before the result was recorded) never does the work twice; each docstring says how.
"""

from __future__ import annotations

from activities.shapes import comment_item, user_item, video_item
from activities.tikapi import effects, reads
from activities.tikapi.client import PROVIDER, classify
from activities.tikapi.paging import next_cursor
from activities.tikapi.shapes import conversation_item, message_item

__all__ = [
    "PROVIDER",
    "classify",
    "comment_item",
    "conversation_item",
    "effects",
    "message_item",
    "next_cursor",
    "reads",
    "user_item",
    "video_item",
]
