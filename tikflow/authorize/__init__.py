"""Links out: connecting accounts by OAuth and re-authorizing them by link.

`flows` (each provider's consent page and what comes back), `claims` (the single-use record of
spent states, in Temporal), `complete` (store the credential, wake the waiting runs), `pages` (the
small HTML pages a person sees), `routes` (the ingress's `GET /reauth/<link>` and `GET
/oauth/<provider>/callback`). The tokens themselves are `activities.links`.
"""

from tikflow.authorize.claims import MemoryClaims, TemporalClaims
from tikflow.authorize.complete import complete, wake_waiting
from tikflow.authorize.flows import FLOWS, Flow, app_credential, authorization_url, redirect_uri
from tikflow.authorize.routes import LinkRoutes

__all__ = [
    "FLOWS",
    "Flow",
    "LinkRoutes",
    "MemoryClaims",
    "TemporalClaims",
    "app_credential",
    "authorization_url",
    "complete",
    "redirect_uri",
    "wake_waiting",
]
