"""Spans of intents on Ray: one trace per intent across the hosts of a depth-3 tree."""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from actors._tracing import s1_span_id, trace_ids
from tests.ray.conftest import _names
from vsm.intents import Intent, Status
from vsm.spec import CapabilitySpec, LimitsSpec, NodeSpec, TracingSpec, TreeSpec

TUNNEL = {
    "lattice": {"cells": 10, "barrier_height": 1.0, "barrier_width": 0.3, "well_width": 0.5},
    "e_min": 0.05,
    "e_max": 3.0,
    "points": 2_001,
}


def traced_tree(out: Path) -> TreeSpec:
    name = f"tr{next(_names)}-{os.getpid()}"
    leaf = NodeSpec(
        name="b", capabilities=(CapabilitySpec(name="b.tunnel", kernel="tunnel", cpus=1),)
    )
    return TreeSpec(
        name=name,
        storage=os.path.join(tempfile.gettempdir(), f"vsm-test-{name}.sqlite"),
        limits=LimitsSpec(user_rate=1_000, user_burst=2_000),
        tracing=TracingSpec(path=str(out)),
        root=NodeSpec(name="root", children=(NodeSpec(name="a", children=(leaf,)),)),
    )


def read(out: Path, trace: int, count: int) -> list[dict[str, Any]]:
    """The spans of ``trace`` in ``out`` once there are ``count`` of them (30 s at most)."""
    deadline = time.monotonic() + 30
    while True:
        found = [
            span
            for line in (out.read_text().splitlines() if out.exists() else [])
            if (span := json.loads(line))["context"]["trace_id"] == f"0x{trace:032x}"
        ]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def test_an_intent_served_two_levels_down_is_one_trace(start_tree: Any, tmp_path: Path) -> None:
    out = tmp_path / "spans.jsonl"
    tree = start_tree(traced_tree(out))
    outcome = tree.ask(Intent(id="deep", capability="b.tunnel", params=TUNNEL, user="u"), 60)
    assert outcome.status is Status.COMPLETED
    trace, root = trace_ids("deep")
    spans = {s["name"]: s for s in read(out, trace, 5)}
    assert set(spans) == {
        "vsm.intent",
        "vsm.s1 root",
        "vsm.s1 root/a",
        "vsm.s1 root/a/b",
        "vsm.kernel tunnel",
    }
    assert spans["vsm.intent"]["parent_id"] is None  # the root, at the desk
    for path in ("root", "root/a", "root/a/b"):
        span = spans[f"vsm.s1 {path}"]
        assert span["parent_id"] == f"0x{root:016x}"
        assert span["context"]["span_id"] == f"0x{s1_span_id('deep', path):016x}"
        assert span["attributes"]["vsm.status"] == "completed"
    kernel = spans["vsm.kernel tunnel"]
    assert kernel["parent_id"] == f"0x{s1_span_id('deep', 'root/a/b'):016x}"
    # Each level's span holds the one below it (the hosts share this machine's clock).
    assert spans["vsm.s1 root/a/b"]["end_time"] <= spans["vsm.s1 root/a"]["end_time"]
    assert spans["vsm.s1 root/a"]["end_time"] <= spans["vsm.s1 root"]["end_time"]
    assert spans["vsm.s1 root"]["end_time"] <= spans["vsm.intent"]["end_time"]
    assert spans["vsm.intent"]["start_time"] <= spans["vsm.s1 root"]["start_time"]
    hosts = {s["resource"]["attributes"]["vsm.host"] for s in spans.values()}
    assert hosts == {"root", "root/a", "root/a/b"}  # written by three processes

    refused = tree.ask(Intent(id="nothing", capability="no.such", user="u"), 60)
    assert refused.status is Status.REJECTED
    found = {s["name"]: s for s in read(out, trace_ids("nothing")[0], 2)}
    assert set(found) == {"vsm.intent", "vsm.s1 root"}  # the root's S1 found no unit for it
    desk = found["vsm.intent"]
    assert desk["status"]["status_code"] == "ERROR"
    assert desk["attributes"]["vsm.status"] == "rejected"
