"""HighLevel as a provider: the declaration every call goes through, and the location acted in."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

from pydantic import Field

from activities.highlevel.errors import NAME, classify, retry_after
from activities.provider import Provider
from activities.registry import ActionContext

__all__ = ["API_VERSION", "PROVIDER", "LocationId", "location_credential"]

API_VERSION = "2021-07-28"


def _auth(ctx: ActionContext, path: str, credential: Mapping[str, str]) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {credential['token']}",
        "Version": API_VERSION,
        "Accept": "application/json",
    }


#: HighLevel as a provider (payloads come in `results`).
PROVIDER = Provider(
    name=NAME,
    base_url="https://services.leadconnectorhq.com",
    fields=("token", "location_id", "user_id", "client_id", "client_secret", "refresh_token", "expires_at"),
    required=("token",),
    classify=classify,
    auth=_auth,
    reauth=("token", "refresh_token"),
    envelope="results",
    retry_after=retry_after,
    order=30,
)


def location_credential(
    ctx: ActionContext, location_id: str | None, *, user: bool = False
) -> tuple[dict[str, str], str]:
    """The account's credential and the location to act in (`location_id`, else the credential's).

    Args:
        ctx: The action invocation.
        location_id: The location the step names, if any.
        user: The credential must also hold the `user_id` posts are created by.

    Raises:
        CredentialsRejected: The credential lacks the token, or a field the call needs.
    """
    need = [] if location_id else ["location_id"]
    if user:
        need.append("user_id")
    credential = PROVIDER.credential(ctx, need=need)
    return credential, location_id or credential["location_id"]


#: The `location_id` input of every action: the sub-account to act in.
LocationId = Annotated[str | None, Field(description="Location (sub-account); default: the credential's.")]
