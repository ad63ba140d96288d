"""Prometheus ``/metrics`` for the proxy (text exposition format 0.0.4).

The hot path only bumps plain counters in :class:`~trunkline.proxy.status.ServerStats`;
this module turns a status snapshot into metric families at scrape time with
``prometheus-client``'s custom-collector API, so scraping costs nothing when
nobody scrapes. Names follow the Prometheus conventions (``_total`` for
counters, base units in seconds). With several workers the snapshot is
already the sum over all of them (:func:`trunkline.proxy.status.merge_snapshots`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

__all__ = ["SnapshotCollector", "render_metrics"]


class SnapshotCollector:
    """A collector over one status snapshot (see :meth:`ProxyServer.snapshot`)."""

    def __init__(self, snapshot: Mapping[str, Any]) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        data = self.snapshot
        yield GaugeMetricFamily(
            "trunkline_uptime_seconds", "Seconds since the server started", data.get("uptime", 0)
        )
        requests = CounterMetricFamily(
            "trunkline_sip_requests", "SIP requests received", labels=["method"]
        )
        for method, count in sorted(data.get("requests", {}).items()):
            requests.add_metric([method], count)
        yield requests
        responses = CounterMetricFamily(
            "trunkline_sip_responses", "SIP responses sent upstream", labels=["class"]
        )
        for klass, count in sorted(data.get("responses", {}).items()):
            responses.add_metric([klass], count)
        yield responses
        counters = CounterMetricFamily(
            "trunkline_proxy_events", "Proxy decisions and housekeeping", labels=["event"]
        )
        for name, count in data.get("counters", {}).items():
            counters.add_metric([name], count)
        yield counters
        registrar = data.get("registrar", {})
        yield CounterMetricFamily(
            "trunkline_registrations",
            "Successful REGISTER requests",
            registrar.get("registered", 0),
        )
        yield CounterMetricFamily(
            "trunkline_registrations_rejected",
            "REGISTER requests refused (not counting challenges)",
            registrar.get("rejected", 0),
        )
        flood = data.get("flood", {})
        yield CounterMetricFamily(
            "trunkline_auth_failures", "Wrong or unknown credentials", flood.get("auth_failures", 0)
        )
        yield CounterMetricFamily("trunkline_bans", "Sources banned", flood.get("bans", 0))
        dropped = CounterMetricFamily(
            "trunkline_security_drops", "Requests dropped by the anti-flood", labels=["reason"]
        )
        for name in ("dropped_banned", "dropped_scanner", "dropped_flood"):
            dropped.add_metric([name.removeprefix("dropped_")], flood.get(name, 0))
        yield dropped
        yield GaugeMetricFamily(
            "trunkline_banned_sources", "Sources banned right now", len(data.get("bans", []))
        )
        handoff = CounterMetricFamily(
            "trunkline_worker_handoff",
            "Datagrams passed between workers sharing the UDP port (proxy.handoff)",
            labels=["event"],
        )
        for name, count in data.get("handoff", {}).items():
            handoff.add_metric([name], count)
        yield handoff
        yield GaugeMetricFamily(
            "trunkline_registered_contacts",
            "Contacts in the location service",
            data.get("registered_contacts", 0),
        )
        yield GaugeMetricFamily(
            "trunkline_transactions", "Active SIP transactions", data.get("transactions", 0)
        )
        yield GaugeMetricFamily(
            "trunkline_active_dialogs",
            "Calls answered and not hung up",
            data.get("active_dialogs", 0),
        )
        workers = data.get("workers", [])
        yield GaugeMetricFamily(
            "trunkline_workers", "SIP worker processes reporting", max(1, len(workers))
        )
        ages = GaugeMetricFamily(
            "trunkline_worker_status_age_seconds",
            "How old each worker's part of these metrics is (stale ones are not summed)",
            labels=["worker"],
        )
        for worker in workers:
            ages.add_metric([str(worker["index"])], worker["age"])
        yield ages
        latency = HistogramMetricFamily(
            "trunkline_request_latency_seconds",
            "From a request's arrival to its final response upstream",
            labels=["method"],
        )
        for method, entry in sorted(data.get("latency", {}).items()):
            cumulative = 0
            buckets: list[tuple[str, float]] = []
            for bound, count in entry["buckets"]:
                cumulative += count
                buckets.append((repr(float(bound)), cumulative))
            buckets.append(("+Inf", entry["count"]))
            latency.add_metric([method], buckets, entry["sum"])
        yield latency


def render_metrics(snapshot: Mapping[str, Any]) -> bytes:
    """The Prometheus text exposition of ``snapshot``."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(snapshot))
    return generate_latest(registry)
