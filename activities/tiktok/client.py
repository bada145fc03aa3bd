"""One authorized call to TikTok's API: the account's fresh access token, the answer's `data` object."""

from __future__ import annotations

import re
from typing import Any

from activities.http import Reply, malformed, send
from activities.registry import ActionContext
from activities.tiktok.errors import PROVIDER, classify
from activities.tiktok.oauth import refresh_access_token
from activities.tokens import with_access_token

__all__ = ["api", "number"]


async def api(
    ctx: ActionContext,
    method: str,
    path: str,
    *,
    params: dict[str, Any] | None = None,
    json_body: Any = None,
) -> dict[str, Any]:
    """One authorized API call; returns the answer's `data` object."""

    async def call(token: str) -> Reply:
        return await send(
            ctx,
            PROVIDER,
            method,
            ctx.services.settings.base_url(PROVIDER) + path,
            classify=classify,
            params=params,
            json_body=json_body,
            headers={"Authorization": f"Bearer {token}"},
        )

    reply = await with_access_token(ctx, PROVIDER, refresh_access_token, call)
    data = reply.body.get("data")
    if not isinstance(data, dict):
        raise malformed(PROVIDER, f"{method} {path} has no `data` object", account=ctx.account)
    return data


def number(ctx: ActionContext, value: Any, what: str) -> int | None:
    """An integer field that TikTok may send as a number or a digit string (None when absent)."""
    if value is None:
        return None
    if isinstance(value, str) and re.fullmatch(r"-?[0-9]+", value):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise malformed(PROVIDER, f"`{what}` {value!r} is not a number", account=ctx.account)
    return value
