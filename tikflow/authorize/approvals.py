"""Approval links (issue 16, item 4): the signed link, the page a person decides on, the one decision.

The recipe's `approval:` step (`workflows.interpreter.Interpreter._approval`) keeps the contract
below; nothing else of the run is needed here:

- the run creates the link in an activity (`notify.send` makes it with
  `activities.links.approval_link_for`: the signing key never enters a workflow), with the
  approval's id (its step path and a tag of the run and poll) and the step's timeout as the link's
  lifetime;
- the page shows what the run asks to approve: `Describe(client, workflow_id, approval_id)`
  answers it (default: the run's query `approval_request(approval_id)`, a mapping of label → text:
  the caption, the video URL, the reply text), or raises when the approval is no longer pending;
- the decision reaches the run once: `Deliver(client, workflow_id, decision)` (default: the signal
  `approval` with `{"id", "decision": "approve" | "reject", "comment", "via": "link"}`);
  `decide_once` is that path for `tikflow approve` / `tikflow reject` too (`via: "cli"`).

`GET /approve/<link>` shows the page (Approve, Reject, an optional comment; ids `approve`, `reject`,
`comment`); `POST /approve/<link>` decides. A decision is recorded in Temporal before it is
delivered, under one record per (run, approval) (`workflows.links`), whichever link carries it: a
second decision, through the same link or another one for the same approval, is refused; so is a
forged, altered or expired link. The run and the approval come from the signed link alone, so a
link cannot decide another run's approval.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from activities.links import LinkClaim, LinkRefused, LinkSigner, approval_link
from tikflow.authorize.complete import Spender
from tikflow.authorize.pages import page
from workflows.links import APPROVAL_QUERY, APPROVAL_SIGNAL, approval_nonce

__all__ = [
    "APPROVAL_QUERY",
    "APPROVAL_SIGNAL",
    "Decision",
    "approval_link",
    "decide",
    "decide_once",
    "decision_page",
    "default_deliver",
    "default_describe",
]

_MAX_COMMENT = 500
_MAX_FORM = 8192

Describe = Callable[[Any, str, str], Awaitable[Mapping[str, str]]]
Deliver = Callable[[Any, str, "Decision"], Awaitable[None]]


@dataclasses.dataclass(frozen=True)
class Decision:
    """One person's decision on one approval (no secret: it goes into the run's history)."""

    id: str
    decision: Literal["approve", "reject"]
    comment: str = ""
    via: str = "link"

    def payload(self) -> dict[str, str]:
        """The signal's argument."""
        return dataclasses.asdict(self)


def _once_per_approval(claim: LinkClaim) -> LinkClaim:
    """The claim whose nonce is the (run, approval) pair's: every link to one approval shares it."""
    return dataclasses.replace(claim, nonce=approval_nonce(claim.workflow_id, claim.subject))


async def decide_once(
    client: Any, spender: Spender, workflow_id: str, decision: Decision, deliver: Deliver | None = None
) -> bool:
    """Record `decision` as the one decision of its approval, then deliver it; False if decided before.

    The page and `tikflow approve` / `tikflow reject` both decide through here, so whichever
    comes first is the decision and the other is refused.
    """
    claim = LinkClaim("approval", "", "", "", 0.0, workflow_id=workflow_id, subject=decision.id)
    if not await spender.spend(_once_per_approval(claim)):
        return False
    await (deliver or default_deliver)(client, workflow_id, decision)
    return True


async def default_describe(client: Any, workflow_id: str, approval_id: str) -> Mapping[str, str]:
    """What the run asks to approve, from its `approval_request` query."""
    answer = await client.get_workflow_handle(workflow_id).query(APPROVAL_QUERY, approval_id)
    return {str(k): str(v) for k, v in dict(answer).items()}


async def default_deliver(client: Any, workflow_id: str, decision: Decision) -> None:
    """Signal the decision to the run."""
    await client.get_workflow_handle(workflow_id).signal(APPROVAL_SIGNAL, decision.payload())


def decision_page(claim: LinkClaim, summary: Mapping[str, str], action: str) -> HTMLResponse:
    """The page with what is to be approved and the Approve / Reject form."""
    from html import escape

    rows = "".join(
        f"<dt>{escape(label)}</dt><dd>{escape(text)}</dd>" for label, text in list(summary.items())[:20]
    )
    html = (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width,initial-scale=1"><title>Approve?</title>'
        "<style>body{font-family:system-ui,sans-serif;max-width:36rem;margin:3rem auto;padding:0 1rem}"
        "dt{font-weight:600;margin-top:.6rem}textarea{width:100%}</style></head><body>"
        f"<h1 id=result>Approve?</h1><p>Run {escape(claim.workflow_id)} asks:</p><dl>{rows}</dl>"
        f'<form method=post action="{escape(action)}">'
        f"<textarea id=comment name=comment maxlength={_MAX_COMMENT} placeholder='comment (optional)'>"
        "</textarea><p><button id=approve name=decision value=approve>Approve</button> "
        "<button id=reject name=decision value=reject>Reject</button></p></form></body></html>"
    )
    return HTMLResponse(html, headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})


async def decide(
    signer: LinkSigner,
    token: str,
    request: Request,
    *,
    client: Any,
    spender: Spender,
    describe: Describe = default_describe,
    deliver: Deliver = default_deliver,
) -> Response:
    """Answer `GET` (the page) or `POST` (the decision) of `/approve/<token>`.

    Raises:
        LinkRefused: A forged, altered or expired link, a decided approval (`replayed`), one no longer
            pending (`not_pending`), or a form without a decision (`incomplete`).
    """
    claim = signer.check(token, "approval")
    if not claim.workflow_id or not claim.subject:
        raise LinkRefused("malformed", "the link is not a tikflow approval link")
    try:
        summary = await describe(client, claim.workflow_id, claim.subject)
    except Exception:
        raise LinkRefused("not_pending", "this approval is no longer waiting for a decision") from None
    if request.method != "POST":
        return decision_page(claim, summary, request.url.path)
    length = request.headers.get("content-length", "")
    if not length.isdigit() or int(length) > _MAX_FORM:
        raise LinkRefused("incomplete", "the form is missing or too large")
    form = dict(parse_qsl((await request.body())[:_MAX_FORM].decode("utf-8", "replace")))
    choice: Literal["approve", "reject"]
    if form.get("decision") == "approve":
        choice = "approve"
    elif form.get("decision") == "reject":
        choice = "reject"
    else:
        raise LinkRefused("incomplete", "choose Approve or Reject")
    comment = " ".join(form.get("comment", "").split())[:_MAX_COMMENT]
    decision = Decision(claim.subject, choice, comment)
    if not await decide_once(client, spender, claim.workflow_id, decision, deliver):
        raise LinkRefused("replayed", "this approval was already decided")
    verb = "Approved" if choice == "approve" else "Rejected"
    return page(verb, [f"{verb}: the run {claim.workflow_id} goes on.", "You can close this page."], ok=True)
