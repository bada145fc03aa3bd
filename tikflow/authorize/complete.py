"""Completing an authorization: check the state, spend it, store the credential, wake the runs.

One path for the ingress's callback and for `tikflow connect`'s paste-back. In order, and the
first failure ends it with a `LinkRefused` (a reason code and one line) having changed nothing:

1. the state is genuine, unexpired, a state (`activities.links.LinkSigner.check`), for the
   provider whose callback this is, and for whoever completes it (`ingress` or `paste`);
2. the provider did not answer an `error` (the person declined);
3. the state has not been spent: it is spent now (`claims`), before anything is stored, so two
   racing callbacks cannot both store;
4. TikAPI's `access_token` (the Account Key) is stored, or TikTok's / HighLevel's `code` is
   exchanged and the token pair stored (a refused exchange stores nothing), under the account the
   *state* names: nothing the redirect adds can choose the account;
5. every run waiting for a re-authorization of that account of that provider gets one
   `reauthorized` signal carrying only the account name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from activities.errors import ProviderError
from activities.links import LinkClaim, LinkRefused, LinkSigner
from activities.registry import Services
from tikflow.authorize.flows import flow_for

__all__ = ["Completed", "Spender", "check_state", "complete", "wake_waiting"]

# TikAPI documents keys as `^[a-zA-Z0-9]{10,}$` (the X-ACCOUNT-KEY pattern); codes are opaque.
_ACCOUNT_KEY = re.compile(r"[A-Za-z0-9]{10,512}")
_CODE = re.compile(r"[\x21-\x7e]{1,2048}")


class Spender(Protocol):
    """Spends a state once (`claims.TemporalClaims`, `claims.MemoryClaims`)."""

    async def spend(self, claim: LinkClaim) -> bool:
        """True the first time, False ever after."""
        ...


@dataclass(frozen=True)
class Completed:
    """What an authorization did (names only).

    Attributes:
        provider: Provider key.
        account: The credential name the result was stored under.
        resumed: The runs that were signalled.
        note: Why some runs may not have been resumed (empty when none).
    """

    provider: str
    account: str
    resumed: list[str] = field(default_factory=list)
    note: str = ""


def check_state(signer: LinkSigner, query: Mapping[str, str], provider: str, mode: str) -> LinkClaim:
    """The claim of the redirect's `state`, checked for this provider and completer (steps 1 and 2)."""
    claim = signer.check(query.get("state", ""), "state")
    if claim.provider != provider:
        raise LinkRefused("wrong_provider", f"this state is for {claim.provider}, not {provider}")
    if claim.mode != mode:
        where = "the command line that made it" if claim.mode == "paste" else "the ingress's callback"
        raise LinkRefused("wrong_mode", f"this state is completed by {where}")
    error = query.get("error")
    if error:
        code = error if re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", error) else "error"
        raise LinkRefused("denied", f"{provider} did not authorize the account ({code})")
    return claim


async def complete(
    services: Services,
    claim: LinkClaim,
    query: Mapping[str, str],
    *,
    app: Mapping[str, str],
    redirect: str,
    spender: Spender,
) -> None:
    """Spend the state, then store what the provider sent (steps 3 and 4).

    Raises:
        LinkRefused: Replayed (`replayed`), the redirect lacks what the flow returns
            (`incomplete`), or the provider refused the code (`exchange_failed`).
    """
    flow = flow_for(claim.provider)
    # Checked before the state is spent: a redirect without its answer leaves the state usable.
    value = query.get("access_token" if flow.answer == "token" else "code", "")
    pattern = _ACCOUNT_KEY if flow.answer == "token" else _CODE
    if not pattern.fullmatch(value):
        what = "an access_token" if flow.answer == "token" else "a code"
        raise LinkRefused("incomplete", f"the redirect from {claim.provider} carries no valid {what}")
    if not await spender.spend(claim):
        raise LinkRefused("replayed", "this link was already used: ask for a new one")
    if claim.provider == "tikapi":
        services.credentials.update("tikapi", claim.account, {**app, "account_key": value})
        return
    try:
        if claim.provider == "tiktok":
            from activities.tiktok import exchange_code

            await exchange_code(services, claim.account, code=value, redirect_uri=redirect, app=app)
        else:
            from activities.highlevel.oauth import exchange_code as exchange_highlevel

            await exchange_highlevel(services, claim.account, code=value, redirect_uri=redirect, app=app)
    except ProviderError as err:
        raise LinkRefused(
            "exchange_failed", f"{claim.provider} refused the authorization code ({err.code or err.status})"
        ) from None


async def wake_waiting(client: Any, provider: str, account: str, workflow_id: str = "") -> Completed:
    """Signal `reauthorized(account)` to every run waiting on that account of that provider (step 5).

    The run the link was made for is asked directly (a run that began waiting a moment ago may not
    be indexed yet); the others are found by the visibility search `tikflow reauth` uses.
    """
    from temporalio.client import WorkflowQueryFailedError
    from temporalio.service import RPCError

    from tikflow.commands.reauth import _status, find_waiting

    targets: list[str] = []
    note = ""
    if workflow_id:
        try:
            status = await _status(client, workflow_id)
            if status.awaiting_reauth.get(account) == provider:
                targets.append(workflow_id)
        except (RPCError, WorkflowQueryFailedError):
            pass  # ended meanwhile, or no worker answers: the search below may still find it
    try:
        targets += [
            w.workflow_id
            for w in await find_waiting(client, account)
            if w.provider == provider and w.workflow_id not in targets
        ]
    except RPCError as exc:
        note = f"searching for waiting runs failed ({exc.message})"
    resumed: list[str] = []
    for target in targets:
        try:
            await client.get_workflow_handle(target).signal("reauthorized", account)
        except RPCError:
            continue  # ended before it could be resumed
        resumed.append(target)
    return Completed(provider, account, resumed, note)
