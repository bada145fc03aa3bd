"""Signed, expiring links out: the OAuth `state` and the re-authorization link a notification carries.

Two kinds of token, both signed with the deployment's link key (`itsdangerous`, HMAC-SHA1 over a
salted key derivation, URL-safe) and both carrying their own expiry, checked against a clock the
caller may give (tests cross hours without sleeping):

- a **state** (`purpose="state"`) goes to the provider in the authorization URL and comes back
  on the redirect. It names the provider and the account the credential is stored under (the
  callback reads the account from here and nowhere else, so a callback cannot be pointed at
  another account without breaking the signature), the run that asked for it (if any), whether
  the ingress or a waiting command line completes it (`mode`), and a random nonce: the state is
  single use, and the nonce is what the used-state record remembers (`tikflow.authorize.claims`).
  It lives `STATE_TTL_S`: long enough for one consent, a login included.
- an **approval link** (`purpose="approval"`, `tikflow.authorize.approvals`) names a run and the
  approval in it (`subject`), expires with the step's timeout, and decides once.
- a **re-authorization link** (`purpose="reauth"`) is what a person gets when a run waits for an
  account (`{public_url}/reauth/<token>`). It names the same things, lives as long as a run
  waits (`REAUTH_LINK_TTL_S`), and is not single use: each opening mints a fresh single-use state
  and redirects to the provider, so a link previewed by a chat app still works for its person.

Neither token holds a secret: a token is a signed claim, readable by whoever holds it (base64
JSON), so it carries names only. The key is a credential (kind `links`, account `main`, field
`signing_key`; `TIKFLOW_LINKS_SIGNING_KEY` in the environment), created on first use by
`tikflow connect` (`signing_key(create=True)`), never logged and never passed to a workflow.

Refusals are `LinkRefused` with a short machine reason (`forged`, `malformed`, `expired`,
`wrong_purpose`, `replayed`, `wrong_provider`, `wrong_mode`) and a one-line text for people.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from itsdangerous import BadSignature, URLSafeSerializer

if TYPE_CHECKING:
    from activities.credentials import CredentialStore

__all__ = [
    "KEY_ACCOUNT",
    "KEY_FIELD",
    "KEY_KIND",
    "REAUTH_LINK_TTL_S",
    "STATE_TTL_S",
    "LinkClaim",
    "LinkRefused",
    "LinkSigner",
    "approval_link",
    "approval_link_for",
    "reauth_link",
    "reauth_link_for",
    "signing_key",
]

#: How long an OAuth state is good for (seconds).
STATE_TTL_S = 15 * 60
#: How long a re-authorization link is good for (seconds): a recipe's default reauth deadline.
REAUTH_LINK_TTL_S = 7 * 86_400
#: Where the signing key lives in the credential store.
KEY_KIND, KEY_ACCOUNT, KEY_FIELD = "links", "main", "signing_key"

_SALT = "tikflow.links.v1"
Purpose = Literal["state", "reauth", "approval"]
Mode = Literal["ingress", "paste"]


class LinkRefused(Exception):
    """A link or state that is not honoured; `reason` is a short code, the message one line.

    Attributes:
        reason: `forged`, `malformed`, `expired`, `wrong_purpose`, `replayed`, `wrong_provider`,
            `wrong_mode`, `denied` (the person declined at the provider) or `incomplete`.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class LinkClaim:
    """What a checked token says (names only, never a secret).

    Attributes:
        purpose: `state` or `reauth`.
        provider: Provider key (`tikapi`, `tiktok`, `highlevel`).
        account: The credential name the result is stored under.
        nonce: Random, unique per token: the single-use record's key.
        expires_at: Epoch seconds after which the token is refused.
        mode: Who completes a state: the ingress's callback or a command line waiting for a paste.
        workflow_id: The run that asked for it (a re-authorization, an approval), or empty.
        subject: What in that run it is about (an approval's id), or empty.
    """

    purpose: Purpose
    provider: str
    account: str
    nonce: str
    expires_at: float
    mode: Mode = "ingress"
    workflow_id: str = ""
    subject: str = ""


class LinkSigner:
    """Makes and checks link tokens with one key.

    Args:
        key: The signing key (a `links` credential's `signing_key`).
        clock: Seconds since the epoch (default `time.time`).
    """

    def __init__(self, key: str, clock: Callable[[], float] = time.time) -> None:
        if len(key) < 32:
            raise ValueError("the link signing key must be at least 32 characters")
        self._serializer = URLSafeSerializer(key, salt=_SALT)
        self._clock = clock

    def issue(
        self,
        purpose: Purpose,
        provider: str,
        account: str,
        *,
        ttl_s: float | None = None,
        mode: Mode = "ingress",
        workflow_id: str = "",
        subject: str = "",
    ) -> str:
        """A signed token for `purpose` naming `provider` and `account` (and a run's `subject`)."""
        ttl = ttl_s if ttl_s is not None else (STATE_TTL_S if purpose == "state" else REAUTH_LINK_TTL_S)
        payload = {
            "k": purpose,
            "p": provider,
            "a": account,
            "n": secrets.token_urlsafe(12),
            "x": int(self._clock() + ttl),
            "m": mode,
            "w": workflow_id,
        }
        if subject:
            payload["s"] = subject
        token: str = self._serializer.dumps(payload)
        return token

    def check(self, token: str, purpose: Purpose) -> LinkClaim:
        """The claim of a genuine, unexpired token of `purpose`.

        Raises:
            LinkRefused: Forged or altered (`forged`), not a token (`malformed`), too old
                (`expired`) or of another purpose (`wrong_purpose`).
        """
        if not token or len(token) > 2048:
            raise LinkRefused("malformed", "the link is not a tikflow link")
        try:
            payload: Any = self._serializer.loads(token)
        except BadSignature:
            raise LinkRefused(
                "forged", "the link's signature does not match: it was altered or forged"
            ) from None
        if not isinstance(payload, dict) or not all(
            isinstance(payload.get(k), str) for k in ("k", "p", "a", "n", "m", "w")
        ):
            raise LinkRefused("malformed", "the link is not a tikflow link")
        expires_at = payload.get("x")
        if not isinstance(expires_at, int):
            raise LinkRefused("malformed", "the link is not a tikflow link")
        if payload["k"] != purpose:
            article = "an" if purpose[0] in "aeiou" else "a"
            raise LinkRefused("wrong_purpose", f"this is not {article} {purpose} link")
        if expires_at <= self._clock():
            raise LinkRefused("expired", "the link has expired: ask for a new one")
        mode = payload["m"]
        return LinkClaim(
            purpose=purpose,
            provider=payload["p"],
            account=payload["a"],
            nonce=payload["n"],
            expires_at=float(expires_at),
            mode="paste" if mode == "paste" else "ingress",
            workflow_id=payload["w"],
            subject=str(payload.get("s") or ""),
        )


def signing_key(store: CredentialStore, *, create: bool = False) -> str | None:
    """The deployment's link signing key; None when there is none (and `create` is False).

    With `create`, a missing key is made (256 random bits) and written to the store, whose file is
    0600 and rewritten atomically.
    """
    from activities.errors import CredentialsRejected

    try:
        return store.get(KEY_KIND, KEY_ACCOUNT, required=(KEY_FIELD,))[KEY_FIELD]
    except CredentialsRejected:
        if not create:
            return None
    key = secrets.token_urlsafe(32)
    store.update(KEY_KIND, KEY_ACCOUNT, {KEY_FIELD: key})
    return key


def reauth_link(public_url: str, token: str) -> str:
    """The address a person opens to re-authorize: the ingress's `/reauth/<token>`."""
    return f"{public_url.rstrip('/')}/reauth/{token}"


def reauth_link_for(
    store: CredentialStore, public_url: str | None, provider: str, account: str, workflow_id: str = ""
) -> str | None:
    """A fresh re-authorization link for `account` of `provider`, for the run `workflow_id`.

    None when links are not set up: no public URL (`TIKFLOW_PUBLIC_URL`) or no signing key, or a
    provider `tikflow connect` cannot authorize by link.
    """
    if not public_url or provider not in ("tikapi", "tiktok", "highlevel"):
        return None
    key = signing_key(store)
    if key is None:
        return None
    token = LinkSigner(key).issue("reauth", provider, account, workflow_id=workflow_id)
    return reauth_link(public_url, token)


def approval_link(
    signer: LinkSigner, public_url: str, workflow_id: str, approval_id: str, ttl_s: float
) -> str:
    """The address of the page deciding `approval_id` of run `workflow_id`, good for `ttl_s` seconds."""
    token = signer.issue("approval", "", "", ttl_s=ttl_s, workflow_id=workflow_id, subject=approval_id)
    return f"{public_url.rstrip('/')}/approve/{token}"


def approval_link_for(
    store: CredentialStore,
    public_url: str | None,
    workflow_id: str,
    approval_id: str,
    expires_at: float,
    clock: Callable[[], float] = time.time,
) -> str | None:
    """A link to decide `approval_id` of `workflow_id`, expiring at `expires_at` (epoch seconds).

    None when links are not set up (no public URL or no signing key), or the approval is over.
    """
    if not public_url:
        return None
    key = signing_key(store)
    ttl = expires_at - clock()
    if key is None or ttl <= 0:
        return None
    return approval_link(LinkSigner(key, clock=clock), public_url, workflow_id, approval_id, ttl)
