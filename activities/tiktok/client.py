"""TikTok's official APIs as a provider: the declaration every call goes through, and its numbers."""

from __future__ import annotations

import re
from typing import Any

from activities.provider import Provider, bearer
from activities.ratelimit import Quota
from activities.registry import ActionContext
from activities.tiktok.errors import NAME, classify

__all__ = ["PROVIDER", "WINDOWS", "number"]

#: TikTok's documented limits per access token, one-minute sliding windows (Content Posting API
#: reference; Display API rate-limit doc). A 429 names no reset time, so calls are paced by these;
#: a window here is a second longer than TikTok's, for the latency between our clock and theirs.
WINDOWS = {
    path: Quota(requests, 61.0)
    for path, requests in {
        "/v2/post/publish/creator_info/query/": 20,
        "/v2/post/publish/video/init/": 6,
        "/v2/post/publish/inbox/video/init/": 6,
        "/v2/post/publish/status/fetch/": 30,
        "/v2/user/info/": 600,
        "/v2/video/list/": 600,
    }.items()
}

#: TikTok's official APIs as a provider (payloads come in `data`; tokens are kept fresh by
#: `activities.tokens`, so actions pass the access token as the credential).
PROVIDER = Provider(
    name=NAME,
    base_url="https://open.tiktokapis.com",
    fields=("client_key", "client_secret", "access_token", "refresh_token", "expires_at", "open_id"),
    required=("client_key", "client_secret"),
    classify=classify,
    auth=bearer("access_token"),
    reauth=("access_token", "refresh_token"),
    envelope="data",
    order=20,
    windows=WINDOWS,
)


def number(ctx: ActionContext, value: Any, what: str) -> int | None:
    """An integer field that TikTok may send as a number or a digit string (None when absent)."""
    if value is None:
        return None
    if isinstance(value, str) and re.fullmatch(r"-?[0-9]+", value):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise PROVIDER.malformed(ctx, f"`{what}` {value!r} is not a number")
    return value
