"""`tikflow connect PROVIDER --account NAME`: authorize an account by OAuth, no token pasted by hand.

Prints (and, on a desktop, opens) the provider's consent page with a signed, expiring, single-use
`state` naming the account (`activities.links`). Then one of two endings:

- with a public ingress (`TIKFLOW_PUBLIC_URL` set, `--paste` not given): the provider sends the
  person to the ingress's `/oauth/<provider>/callback`, which stores the credential and wakes the
  runs waiting on the account; this command is done once it has printed the address;
- without one (paste-back, the usual command-line fallback): the person approves, copies the
  address the browser was sent to (an error page is fine: only its query matters) and pastes it
  here; this command checks that it carries *its* state, stores the credential, and wakes the
  waiting runs if Temporal is reachable.

The app's own fields (TikAPI's `client_id`, TikTok's `client_key`/`client_secret`, HighLevel's
`client_id`/`client_secret`) come from the account's credential or from `--app` (default `main`)
and are copied into the connected account. The first run creates the link signing key.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any
from urllib.parse import parse_qsl, urlsplit

__all__ = ["add_parser", "cmd_connect"]

EXIT_INVALID = 2
#: Where paste-back's redirect URI points when no public URL is set (the ingress's default port).
LOCAL_BASE = "http://127.0.0.1:8500"


def add_parser(subparsers: Any) -> None:
    """Add `connect` to the `tikflow` command line."""
    p = subparsers.add_parser(
        "connect",
        help="connect an account by OAuth (tikapi, tiktok, highlevel)",
        description="Prints the provider's consent page for the account; the ingress's callback (or "
        "the redirected address pasted back) stores the credential and resumes the runs waiting on it.",
    )
    p.add_argument("provider", choices=["tikapi", "tiktok", "highlevel"], help="the provider")
    p.add_argument("--account", required=True, help="credential name to store the account under")
    p.add_argument(
        "--app", default="main", help="credential holding the app's client id/secret (default main)"
    )
    p.add_argument("--scope", help="scopes to ask for (default: what tikflow's actions need)")
    p.add_argument(
        "--redirect-uri", help="the redirect URI registered at the provider (default: the ingress's)"
    )
    p.add_argument("--paste", action="store_true", help="paste the redirected address back here")
    p.add_argument("--no-browser", action="store_true", help="only print the address")
    p.set_defaults(func=cmd_connect)


def cmd_connect(args: argparse.Namespace) -> int:
    """Print the consent page; with paste-back, complete the authorization from the pasted address."""
    return asyncio.run(_connect(args))


async def _connect(args: argparse.Namespace) -> int:
    from activities.contracts import account_name_problem
    from activities.credentials import CredentialStore, resolve_path
    from activities.links import LinkRefused, LinkSigner, signing_key
    from tikflow.authorize.claims import MemoryClaims
    from tikflow.authorize.complete import check_state, complete
    from tikflow.authorize.flows import ConnectError, app_credential, authorization_url, redirect_uri
    from tikflow.cli import UserError, engine_config

    problem = account_name_problem(args.account)
    if problem:
        raise UserError(problem, EXIT_INVALID)
    config = engine_config()
    store = CredentialStore(resolve_path(config.credentials_file)[0], seed=config.credentials_seed)
    try:
        app = app_credential(store, args.provider, args.account, args.app)
    except ConnectError as exc:
        raise UserError(str(exc), EXIT_INVALID) from None
    had_key = signing_key(store) is not None
    key = signing_key(store, create=True)
    assert key is not None
    if not had_key:
        print(f"created the link signing key (credential links/main in {store.path})")
    paste = args.paste or not config.public_url
    redirect = args.redirect_uri or redirect_uri(config.public_url or LOCAL_BASE, args.provider)
    signer = LinkSigner(key)
    state = signer.issue("state", args.provider, args.account, mode="paste" if paste else "ingress")
    settings = config.settings()
    url = authorization_url(settings, args.provider, app, redirect=redirect, state=state, scope=args.scope)
    print(f"Open this address to connect {args.provider} account {args.account!r}:\n\n  {url}\n", flush=True)
    if not args.no_browser and _desktop():
        import webbrowser

        webbrowser.open(url)
    if not paste:
        print(f"Approve there; the ingress stores the credential ({redirect}).")
        return 0
    print(
        "Approve there, then paste the address your browser was sent to (an error page is fine: "
        "copy it from the address bar):",
        flush=True,
    )
    pasted = sys.stdin.readline().strip()
    parts = urlsplit(pasted)
    query = dict(parse_qsl(parts.query)) or dict(parse_qsl(parts.fragment))
    try:
        if query.get("state") != state:
            # Single use, in this process: only the state this command just made completes here.
            if query.get("state"):
                signer.check(query["state"], "state")
            raise LinkRefused("wrong_state", "the pasted address is not the answer to this authorization")
        claim = check_state(signer, query, args.provider, "paste")
        services = _services(store, settings)
        try:
            await complete(services, claim, query, app=app, redirect=redirect, spender=MemoryClaims())
        finally:
            await services.http.aclose()
    except LinkRefused as exc:
        raise UserError(f"not connected: {exc.message}", EXIT_INVALID) from None
    print(f"connected {args.provider} account {args.account!r} (stored in {store.path})")
    await _wake(args.provider, args.account)
    return 0


def _services(store: Any, settings: Any) -> Any:
    from activities.http import make_http_client
    from activities.ratelimit import RateLimiter
    from activities.registry import Services

    return Services(
        http=make_http_client(settings), credentials=store, settings=settings, limiter=RateLimiter()
    )


async def _wake(provider: str, account: str) -> None:
    """Resume the runs waiting on the account, if Temporal answers (a first connect has none)."""
    from tikflow.authorize.complete import wake_waiting
    from tikflow.cli import _client

    try:
        client = await asyncio.wait_for(_client(), timeout=10)
        done = await asyncio.wait_for(wake_waiting(client, provider, account), timeout=30)
    except Exception as exc:  # no Temporal (a first connect), no search attributes, …
        why = type(exc).__name__
        print(f"note: waiting runs not resumed ({why}); `tikflow reauth --account {account}` does it")
        return
    if done.resumed:
        print(f"resumed {len(done.resumed)} run(s): {', '.join(done.resumed)}")


def _desktop() -> bool:
    """Whether a person sits at this terminal (Python's `webbrowser` then finds their browser, if any)."""
    return sys.stdin.isatty() and sys.stdout.isatty()
