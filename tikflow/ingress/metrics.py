"""The ingress's Prometheus metrics: events accepted, duplicates and rejections by reason."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, generate_latest

__all__ = ["IngressMetrics"]


class IngressMetrics:
    """Counters on a registry of their own (one per app, so tests and apps never share counts).

    Labels are bounded: `source` is `tiktok` or a route that exists, `reason` one of the ingress's
    fixed reasons; nothing a sender types becomes a label.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.accepted = Counter(
            "tikflow_ingress_events_accepted",
            "Events handed to Temporal (a workflow start or signal accepted).",
            ["source"],
            registry=self.registry,
        )
        self.duplicates = Counter(
            "tikflow_ingress_events_duplicate",
            "Redeliveries this replica answered without a second effect.",
            ["source"],
            registry=self.registry,
        )
        self.rejections = Counter(
            "tikflow_ingress_rejections",
            "Requests refused, by reason (temporal_unavailable included).",
            ["reason"],
            registry=self.registry,
        )

    def render(self) -> bytes:
        """The metrics in Prometheus' text format."""
        return generate_latest(self.registry)
