"""Prometheus metrics (prometheus-client), one registry per app.

Decisions and writes are counted by the authorizer as plain ints (the check
path stays cheap) and read when Prometheus scrapes; the check latency is a
histogram of one check in 64.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from orgguard.api.probe import DatabaseProbe
from orgguard.service import Authorizer
from orgguard.storage.listener import ChangeListener

LATENCY_BUCKETS = (
    1e-6, 2e-6, 3e-6, 5e-6, 1e-5, 2e-5, 5e-5, 1e-4, 1e-3, 1e-2,
)  # fmt: skip


class _AuthorizerCollector(Collector):
    def __init__(
        self,
        authorizer: Authorizer,
        probe: DatabaseProbe,
        listener: ChangeListener | None,
    ) -> None:
        self.authorizer = authorizer
        self.probe = probe
        self.listener = listener

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        authorizer = self.authorizer
        tally = authorizer.tally
        decisions = CounterMetricFamily(
            "orgguard_decisions",
            "Checks decided, by result (error: an internal error, denied)",
            labels=["result"],
        )
        decisions.add_metric(["allowed"], tally.allowed)
        decisions.add_metric(["denied"], tally.denied)
        decisions.add_metric(["error"], tally.errors)
        yield decisions
        writes = CounterMetricFamily(
            "orgguard_writes", "Writes committed by this process", labels=["action"]
        )
        for action, count in sorted(tally.writes.items()):
            writes.add_metric([action], count)
        yield writes
        caught_up = CounterMetricFamily(
            "orgguard_catch_ups",
            "Other processes' changes taken in: replayed (changes, from the "
            "change log) or reloaded (whole policy reloads)",
            labels=["how"],
        )
        caught_up.add_metric(["replayed"], tally.replayed)
        caught_up.add_metric(["reloaded"], tally.reloads)
        yield caught_up
        if self.listener is not None:
            yield GaugeMetricFamily(
                "orgguard_listener_connected",
                "1 while the LISTEN connection to PostgreSQL is up",
                value=int(self.listener.connected.is_set()),
            )
            yield CounterMetricFamily(
                "orgguard_listener_connections",
                "LISTEN connections made (each reconnect adds one)",
                value=self.listener.connections,
            )
        yield GaugeMetricFamily(
            "orgguard_revision",
            "Policy revision this process serves",
            value=authorizer.revision,
        )
        lag = GaugeMetricFamily(
            "orgguard_revision_lag",
            "Revisions the database is ahead of this process (-1: unreachable)",
        )
        stored = self.probe.stored
        lag.add_metric([], -1 if stored is None else stored - authorizer.revision)
        yield lag


def make_registry(
    authorizer: Authorizer,
    probe: DatabaseProbe,
    listener: ChangeListener | None = None,
) -> CollectorRegistry:
    """The metrics; the revision lag is the probe's last answer (the
    /metrics route asks it first)."""
    registry = CollectorRegistry()
    registry.register(_AuthorizerCollector(authorizer, probe, listener))
    latency = Histogram(
        "orgguard_check_seconds",
        "Time to decide one check in process (one check in 64 is timed)",
        buckets=LATENCY_BUCKETS,
        registry=registry,
    )
    authorizer.on_latency = latency.observe
    return registry
