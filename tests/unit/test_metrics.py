"""Metrics (actors._metrics): what hosts count, how scrapes sum it, and the /metrics endpoint."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections import Counter
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from actors._metrics import BUCKETS, HostMetrics, exposition, families, serve_metrics
from vsm.address import SystemId
from vsm.effects import Event
from vsm.intents import Outcome, Refusal, Status
from vsm.spec import NodeSpec, TreeSpec


def ended(
    path: str, status: str, capability: str = "c", reason: str = "None", seconds: float = 0.01
) -> Event:
    data = {"capability": capability, "reason": reason, "seconds": seconds, "intent": "i"}
    return Event(kind=f"intent.{status}", path=path, at=0.0, data=data)


def host(metrics: HostMetrics, name: str = "vsm:root", **extra: Any) -> dict[str, Any]:
    return {
        "host": name,
        "processed": 0,
        "in_flight": [],
        "kernels": {},
        **metrics.snapshot(),
        **extra,
    }


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


class FakeTree:
    """What the collector needs of a RayTree: a spec, host_metrics and federation."""

    def __init__(self, hosts: list[dict[str, Any]], bridge: dict[str, Any] | None = None) -> None:
        self.spec = TreeSpec(name="t", root=NodeSpec(name="root"))
        self.hosts = hosts
        self.bridge = bridge

    def host_metrics(self, timeout: float = 10.0) -> list[dict[str, Any]]:
        return self.hosts

    def federation(self) -> dict[str, Any] | None:
        if self.bridge == {}:
            raise LookupError("the bridge is away")
        return self.bridge


def labels(**given: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted({"tree": "t", **given}.items()))


def test_a_host_counts_events_and_the_intents_s1_ended() -> None:
    metrics = HostMetrics()
    metrics.count(Event(kind="intent.accepted", path="root", at=0.0, data={}))
    metrics.count(ended("root", "completed"))
    metrics.count(ended("root/a", "failed", reason="deadline", seconds=2.0))
    found = samples(exposition(FakeTree([host(metrics)])))
    assert found["vsm_events_total", labels(kind="intent.accepted", path="root")] == 1
    done = labels(capability="c", path="root", reason="", status="completed")
    assert found["vsm_intents_total", done] == 1
    failed = labels(capability="c", path="root/a", reason="deadline", status="failed")
    assert found["vsm_intents_total", failed] == 1
    slow = {"capability": "c", "path": "root/a"}
    assert found["vsm_intent_duration_seconds_sum", labels(**slow)] == 2.0
    assert found["vsm_intent_duration_seconds_bucket", labels(**slow, le="1.0")] == 0
    assert found["vsm_intent_duration_seconds_bucket", labels(**slow, le="2.5")] == 1


def test_the_desk_counts_outcomes_with_their_seconds() -> None:
    metrics = HostMetrics()
    metrics.outcome(Outcome.completed("a", {}, "root"), 0.001)  # on a bound: in its bucket
    metrics.outcome(
        Outcome.refused("b", Status.REJECTED, Refusal.POLICY, SystemId.S5, "root", "no"), 100.0
    )
    found = samples(exposition(FakeTree([host(metrics)])))
    assert found["vsm_outcomes_total", labels(reason="", status="completed")] == 1
    assert found["vsm_outcomes_total", labels(reason="policy", status="rejected")] == 1
    fast = labels(le="0.001", status="completed")
    assert found["vsm_outcome_duration_seconds_bucket", fast] == 1
    assert found["vsm_outcome_duration_seconds_bucket", labels(le="60.0", status="rejected")] == 0
    assert found["vsm_outcome_duration_seconds_bucket", labels(le="+Inf", status="rejected")] == 1
    assert found["vsm_outcome_duration_seconds_count", labels(status="rejected")] == 1


events = st.lists(
    st.tuples(
        st.sampled_from(["root", "root/a", "root/b"]),
        st.sampled_from(["completed", "failed", "rejected"]),
        st.sampled_from(["c", "d"]),
        st.floats(0, 100),
        st.integers(0, 3),  # the host that counted it
    ),
    max_size=60,
)


@settings(max_examples=50, deadline=None)
@given(events)
def test_a_scrape_of_many_hosts_equals_one_host_counting_everything(
    stream: list[tuple[str, str, str, float, int]],
) -> None:
    """Summing hosts by label set loses and doubles nothing, whatever host counted what."""
    one, many = HostMetrics(), [HostMetrics() for _ in range(4)]
    for path, status, capability, seconds, where in stream:
        event = ended(path, status, capability, seconds=seconds)
        one.count(event)
        many[where].count(event)
    alone = samples(exposition(FakeTree([host(one)])))
    split = samples(exposition(FakeTree([host(m, f"vsm:pool/{k}") for k, m in enumerate(many)])))
    per_host = {"vsm_messages_total", "vsm_kernel_tasks_stopped_total", "vsm_tunnels_total"}
    drop = per_host | {"vsm_hosts_answered"}
    assert {k: v for k, v in alone.items() if k[0] not in drop} == pytest.approx(
        {k: v for k, v in split.items() if k[0] not in drop}
    )
    total = Counter(status for _, status, *_ in stream)
    for status, n in total.items():
        got = sum(
            v
            for (name, labels), v in split.items()
            if name == "vsm_intents_total" and ("status", status) in labels
        )
        assert got == n


def test_bucket_bounds_are_sorted_and_end_in_inf() -> None:
    assert list(BUCKETS) == sorted(BUCKETS)
    family = next(f for f in families("t", [host(HostMetrics())]) if f.name == "vsm_hosts_answered")
    assert family.samples[0].value == 1


def test_the_bridge_counters_are_exported_when_federated() -> None:
    bridge = {
        "connected": True,
        "counts": {"sent_intent": 3, "replayed": 1},
        "refused": {"bad-signature": 2},
        "queued": {"cb": 0},
    }
    found = samples(exposition(FakeTree([host(HostMetrics())], bridge)))
    assert found["vsm_federation_connected", labels()] == 1
    assert found["vsm_federation_envelopes_total", labels(event="sent_intent")] == 3
    assert found["vsm_federation_refused_total", labels(reason="bad-signature")] == 2
    assert found["vsm_federation_queued", labels(peer="cb")] == 0
    away = samples(exposition(FakeTree([host(HostMetrics())], {})))  # the bridge is away
    assert not any(name.startswith("vsm_federation") for name, _ in away)


def test_the_endpoint_serves_the_text_format_on_loopback() -> None:
    metrics = HostMetrics()
    metrics.count(ended("root", "completed"))
    server = serve_metrics(FakeTree([host(metrics)]), port=0)
    try:
        assert server.host == "127.0.0.1"
        with urllib.request.urlopen(server.url, timeout=10) as response:  # loopback
            assert response.status == 200
            body = response.read().decode()
        assert "vsm_intents_total" in body
        assert samples(body) == samples(exposition(FakeTree([host(metrics)])))
    finally:
        server.close()
    with pytest.raises(urllib.error.URLError, match="refused"):  # closed: nobody listens
        urllib.request.urlopen(server.url, timeout=2)
