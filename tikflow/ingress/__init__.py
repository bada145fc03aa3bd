"""The ingress: the one door from the outside, turning signed webhooks into durable Temporal events.

`app` (the ASGI app and its checks), `verify` (TikTok, Standard Webhooks and token senders),
`delivery` (Temporal: route lookups, signals, mailboxes), `metrics` (Prometheus), `server` (uvicorn).
The workflows that keep the events are in `workflows.events`.
"""

from tikflow.ingress.app import CREDENTIAL_FIELDS, CREDENTIAL_KIND, IngressConfig, create_app
from tikflow.ingress.delivery import register_route
from tikflow.ingress.server import running_ingress, serve

__all__ = [
    "CREDENTIAL_FIELDS",
    "CREDENTIAL_KIND",
    "IngressConfig",
    "create_app",
    "register_route",
    "running_ingress",
    "serve",
]
