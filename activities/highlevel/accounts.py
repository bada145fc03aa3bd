"""The social accounts connected to a location, and the TikTok profiles behind them."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from activities.highlevel.client import PROVIDER, LocationId, location_credential
from activities.highlevel.errors import NAME
from activities.highlevel.oauth import request
from activities.http import listed
from activities.registry import ActionContext, ActionInput, action

__all__ = ["AccountsInput", "TiktokProfileInput"]


class AccountsInput(ActionInput):
    """Inputs of `highlevel.accounts`."""

    location_id: LocationId = None


@action("highlevel.accounts", AccountsInput, endpoint="GET /social-media-posting/{locationId}/accounts")
async def accounts(ctx: ActionContext, params: AccountsInput) -> dict[str, Any]:
    """The social accounts connected to the location, in `items` (and the account groups)."""
    credential, location = location_credential(ctx, params.location_id)
    results = await request(ctx, "GET", f"/social-media-posting/{location}/accounts", credential=credential)
    items = [
        {
            "id": a.get("id"),
            "name": a.get("name"),
            "platform": a.get("platform"),
            "type": a.get("type"),
            "profile_id": a.get("profileId"),
            "oauth_id": a.get("oauthId"),
            "expire": a.get("expire"),
            "is_expired": bool(a.get("isExpired")),
            "meta": a.get("meta") or {},
        }
        for a in PROVIDER.items(ctx, results, "accounts", what="results.accounts", strict=False)
    ]
    return {"items": items, "groups": listed(results.get("groups"), "results.groups", NAME, ctx.account)}


class TiktokProfileInput(ActionInput):
    """Inputs of `highlevel.tiktok_profile`."""

    account_id: str = Field(min_length=1, description="The TikTok account's id (from `highlevel.accounts`).")
    location_id: LocationId = None


@action(
    "highlevel.tiktok_profile",
    TiktokProfileInput,
    endpoint="GET /social-media-posting/oauth/{locationId}/tiktok/accounts/{accountId}",
)
async def tiktok_profile(ctx: ActionContext, params: TiktokProfileInput) -> dict[str, Any]:
    """The TikTok profile(s) behind a connected account, in `items`."""
    credential, location = location_credential(ctx, params.location_id)
    results = await request(
        ctx,
        "GET",
        f"/social-media-posting/oauth/{location}/tiktok/accounts/{params.account_id}",
        credential=credential,
    )
    items = [
        {
            "id": p.get("id"),
            "name": p.get("name"),
            "username": p.get("username"),
            "avatar": p.get("avatar"),
            "verified": bool(p.get("verified")),
            "is_connected": bool(p.get("isConnected")),
            "type": p.get("type"),
        }
        for p in PROVIDER.items(ctx, results, "profile", what="results.profile", strict=False)
    ]
    return {"items": items}
