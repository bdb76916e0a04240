"""Prometheus metrics of a running tree: counted in its hosts, served by prometheus-client.

Rules:
    1. Every host counts, in its event loop, what its components emit: one counter per
       ``(path, event kind)``; for each intent a viable system's S1 ended (the events
       ``intent.completed``, ``intent.failed``, ``intent.rejected``) one per ``(path,
       capability, status, reason)`` and the seconds from S1's dispatch to the end, in a
       histogram per ``(path, capability)``. The client desk counts every outcome it gives a
       client, refusals before S1 included, by ``(status, reason)``, with the seconds from
       submit to outcome. A count is a dict increment; nothing is sent anywhere.
    2. A host's :meth:`HostMetrics.snapshot` is plain data, read with the host's ``metrics()``
       call. :func:`families` sums the snapshots of all hosts by label set (a path's S1 lives
       in one host, so nothing is counted twice) and adds the bridge's counters.
    3. :class:`TreeCollector` is a prometheus-client collector that reads the snapshots at
       each scrape; hosts that do not answer within ``SCRAPE_TIMEOUT`` seconds are left out
       (``vsm_hosts_answered`` says how many did). :func:`serve_metrics` serves it over HTTP,
       on ``127.0.0.1`` unless told otherwise.
    4. Counters restart from zero when a host restarts (Prometheus' ``rate`` and
       ``increase`` take resets into account).
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from vsm.effects import Event
from vsm.intents import Outcome, Status

__all__ = [
    "BUCKETS",
    "SCRAPE_TIMEOUT",
    "HostMetrics",
    "MetricsServer",
    "TreeCollector",
    "families",
    "serve_metrics",
]

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
"""Upper bounds (seconds) of the latency histograms' buckets; ``+Inf`` follows."""

SCRAPE_TIMEOUT = 5.0
"""Seconds a scrape waits for each host's snapshot."""

_ENDED = {f"intent.{status}": str(status) for status in Status}


def _label(value: object) -> str:
    return "" if value is None or value == "None" else str(value)


@dataclass(slots=True)
class _Histogram:
    counts: list[int] = field(default_factory=lambda: [0] * (len(BUCKETS) + 1))
    total: float = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(BUCKETS, seconds)] += 1  # a bucket holds values <= le
        self.total += seconds

    def data(self) -> list[Any]:
        return [list(self.counts), self.total]


class HostMetrics:
    """What one host counts (rule 1)."""

    def __init__(self) -> None:
        self.events: Counter[tuple[str, str]] = Counter()
        self.intents: Counter[tuple[str, str, str, str]] = Counter()
        self.intent_seconds: dict[tuple[str, str], _Histogram] = {}
        self.outcomes: Counter[tuple[str, str]] = Counter()
        self.outcome_seconds: dict[str, _Histogram] = {}

    def count(self, event: Event) -> None:
        """Count one emitted event (and, for an intent S1 ended, its outcome and seconds)."""
        self.events[event.path, event.kind] += 1
        status = _ENDED.get(event.kind)
        if status is None:
            return
        data = event.data
        capability = _label(data.get("capability"))
        self.intents[event.path, capability, status, _label(data.get("reason"))] += 1
        seconds = data.get("seconds")
        if isinstance(seconds, int | float):
            key = (event.path, capability)
            histogram = self.intent_seconds.get(key)
            if histogram is None:
                histogram = self.intent_seconds[key] = _Histogram()
            histogram.observe(float(seconds))

    def outcome(self, outcome: Outcome, seconds: float) -> None:
        """Count one outcome the desk gave a client, ``seconds`` after it was submitted."""
        status = str(outcome.status)
        self.outcomes[status, _label(outcome.reason)] += 1
        histogram = self.outcome_seconds.get(status)
        if histogram is None:
            histogram = self.outcome_seconds[status] = _Histogram()
        histogram.observe(seconds)

    def snapshot(self) -> dict[str, Any]:
        """The counts as plain data (rule 2)."""
        return {
            "events": [[*key, n] for key, n in self.events.items()],
            "intents": [[*key, n] for key, n in self.intents.items()],
            "intent_seconds": [[*key, *h.data()] for key, h in self.intent_seconds.items()],
            "outcomes": [[*key, n] for key, n in self.outcomes.items()],
            "outcome_seconds": [[key, *h.data()] for key, h in self.outcome_seconds.items()],
        }


def _summed(rows: Iterable[list[Any]]) -> dict[tuple[str, ...], float]:
    total: dict[tuple[str, ...], float] = {}
    for *key, n in rows:
        total[tuple(key)] = total.get(tuple(key), 0) + n
    return total


def _histograms(rows: Iterable[list[Any]]) -> dict[tuple[str, ...], tuple[list[int], float]]:
    total: dict[tuple[str, ...], tuple[list[int], float]] = {}
    for *labels, counts, seconds in rows:
        key = tuple(labels)
        before = total.get(key)
        if before is None:
            total[key] = (list(counts), float(seconds))
        else:
            merged = [a + b for a, b in zip(before[0], counts, strict=True)]
            total[key] = (merged, before[1] + float(seconds))
    return total


def _buckets(counts: list[int]) -> list[tuple[str, float]]:
    cumulative, out = 0, []
    for bound, n in zip([*(str(b) for b in BUCKETS), "+Inf"], counts, strict=True):
        cumulative += n
        out.append((bound, float(cumulative)))
    return out


def families(
    tree: str, hosts: list[Mapping[str, Any]], bridge: Mapping[str, Any] | None = None
) -> list[Metric]:
    """The metric families of ``tree`` from its hosts' ``metrics()`` answers (rule 2).

    Each answer is ``{"host", "processed", "in_flight": [[path, n]], "kernels": {...},
    **HostMetrics.snapshot()}``; ``bridge`` is the bridge's ``status()``, if federated.
    """
    snapshots = [h for h in hosts if h]

    def rows(name: str) -> list[list[Any]]:
        return [row for h in snapshots for row in h.get(name, ())]

    events = CounterMetricFamily(
        "vsm_events",
        "Events the Systems emitted, by viable system and kind.",
        labels=["tree", "path", "kind"],
    )
    for (path, kind), n in sorted(_summed(rows("events")).items()):
        events.add_metric([tree, path, kind], n)
    intents = CounterMetricFamily(
        "vsm_intents",
        "Intents a viable system's System 1 ended, by capability, status and reason.",
        labels=["tree", "path", "capability", "status", "reason"],
    )
    for key, n in sorted(_summed(rows("intents")).items()):
        intents.add_metric([tree, *key], n)
    intent_seconds = HistogramMetricFamily(
        "vsm_intent_duration_seconds",
        "Seconds from System 1's dispatch of an intent to its end, by viable system.",
        labels=["tree", "path", "capability"],
    )
    for key, (counts, total) in sorted(_histograms(rows("intent_seconds")).items()):
        intent_seconds.add_metric([tree, *key], _buckets(counts), total)
    outcomes = CounterMetricFamily(
        "vsm_outcomes",
        "Outcomes the client desk gave clients (S5's refusals, which S1 never sees, included).",
        labels=["tree", "status", "reason"],
    )
    for key, n in sorted(_summed(rows("outcomes")).items()):
        outcomes.add_metric([tree, *key], n)
    outcome_seconds = HistogramMetricFamily(
        "vsm_outcome_duration_seconds",
        "Seconds from an intent's submission at the desk to its outcome.",
        labels=["tree", "status"],
    )
    for key, (counts, total) in sorted(_histograms(rows("outcome_seconds")).items()):
        outcome_seconds.add_metric([tree, *key], _buckets(counts), total)
    in_flight = GaugeMetricFamily(
        "vsm_intents_in_flight",
        "Intents a viable system's System 1 is tracking now.",
        labels=["tree", "path"],
    )
    for (path,), n in sorted(_summed(rows("in_flight")).items()):
        in_flight.add_metric([tree, path], n)
    messages = CounterMetricFamily(
        "vsm_messages", "Messages a host handed to its components.", labels=["tree", "host"]
    )
    stopped = CounterMetricFamily(
        "vsm_kernel_tasks_stopped",
        "Kernel tasks cancelled because their intent ended without them.",
        labels=["tree", "host"],
    )
    tunnels = CounterMetricFamily(
        "vsm_tunnels", "Tunnel chunks computed, by result.", labels=["tree", "host", "result"]
    )
    for h in sorted(snapshots, key=lambda h: str(h.get("host"))):
        host, kernels = str(h.get("host")), h.get("kernels") or {}
        messages.add_metric([tree, host], h.get("processed", 0))
        stopped.add_metric([tree, host], kernels.get("stopped_tasks", 0))
        tunnels.add_metric([tree, host, "successful"], kernels.get("successful_tunnels", 0))
        tunnels.add_metric([tree, host, "failed"], kernels.get("failed_tunnels", 0))
    answered = GaugeMetricFamily(
        "vsm_hosts_answered", "Hosts whose counts this scrape holds.", labels=["tree"]
    )
    answered.add_metric([tree], len(snapshots))
    found: list[Metric] = [
        events,
        intents,
        intent_seconds,
        outcomes,
        outcome_seconds,
        in_flight,
        messages,
        stopped,
        tunnels,
        answered,
    ]
    if bridge is not None:
        found += _bridge_families(tree, bridge)
    return found


def _bridge_families(tree: str, bridge: Mapping[str, Any]) -> list[Metric]:
    connected = GaugeMetricFamily(
        "vsm_federation_connected",
        "Whether the bridge is connected to the broker.",
        labels=["tree"],
    )
    connected.add_metric([tree], 1.0 if bridge.get("connected") else 0.0)
    counted = CounterMetricFamily(
        "vsm_federation_envelopes",
        "What the bridge counted: envelopes sent and received by kind, replays, retries.",
        labels=["tree", "event"],
    )
    for event, n in sorted((bridge.get("counts") or {}).items()):
        counted.add_metric([tree, event], n)
    refused = CounterMetricFamily(
        "vsm_federation_refused",
        "Envelopes refused and dead-lettered, by reason.",
        labels=["tree", "reason"],
    )
    for reason, n in sorted((bridge.get("refused") or {}).items()):
        refused.add_metric([tree, reason], n)
    queued = GaugeMetricFamily(
        "vsm_federation_queued",
        "Envelopes waiting to be published, by peer.",
        labels=["tree", "peer"],
    )
    for peer, n in sorted((bridge.get("queued") or {}).items()):
        queued.add_metric([tree, peer], n)
    return [connected, counted, refused, queued]


class TreeCollector(Collector):
    """Reads a running tree's counts at each scrape (rule 3).

    Args:
        tree: An :class:`actors._runtime.RayTree` (anything with ``spec``, ``host_metrics``
            and ``federation``).
    """

    def __init__(self, tree: Any) -> None:
        self.tree = tree

    def collect(self) -> Iterator[Metric]:
        hosts = self.tree.host_metrics(timeout=SCRAPE_TIMEOUT)
        try:
            bridge = self.tree.federation()
        except LookupError:  # federated, but the bridge is away: its counters are missing
            bridge = None
        yield from families(self.tree.spec.name, hosts, bridge)


def registry_for(tree: Any) -> CollectorRegistry:
    """A registry holding only ``tree``'s collector."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(TreeCollector(tree))
    return registry


def exposition(tree: Any) -> str:
    """``tree``'s metrics in the Prometheus text format, read now."""
    return generate_latest(registry_for(tree)).decode()


@dataclass(frozen=True, slots=True)
class MetricsServer:
    """A running ``/metrics`` endpoint; :meth:`close` stops it."""

    host: str
    port: int
    _server: Any
    _thread: Any

    @property
    def url(self) -> str:
        """Where Prometheus scrapes it."""
        return f"http://{self.host}:{self.port}/metrics"

    def close(self) -> None:
        """Stop serving and free the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def serve_metrics(tree: Any, port: int = 9464, host: str = "127.0.0.1") -> MetricsServer:
    """Serve ``tree``'s metrics at ``http://host:port/metrics`` from a thread (rule 3).

    ``port=0`` takes a free port (see :attr:`MetricsServer.port`).

    Raises:
        OSError: the address cannot be bound.
    """
    server, thread = start_http_server(port, addr=host, registry=registry_for(tree))
    return MetricsServer(host, int(server.server_port), server, thread)
