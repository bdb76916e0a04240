"""Spans of intents (actors._tracing): derived ids, sampling, and what a host writes."""

from __future__ import annotations

import http.server
import json
import threading
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from pydantic import ValidationError

from actors._tracing import IntentTracer, original_id, s1_span_id, sampled, trace_ids
from protocol import Causality, Envelope, IntentBody, RegistryBody, Sender
from protocol._federation import traceparent_of
from vsm.address import SystemId
from vsm.crdt import Stamp
from vsm.effects import Event
from vsm.intents import Intent, Outcome, Refusal, Status
from vsm.registry import RegistryDelta
from vsm.spec import FederationSpec, NodeSpec, PeerSpec, TracingSpec, TreeSpec

KEY = "ab" * 32


def tree(path: Path, sample: float = 1.0, federated: bool = False) -> TreeSpec:
    federation = (
        FederationSpec(
            cluster="ca",
            key_id="ka",
            identity="k.pem",
            prefix="pa",
            peers=(PeerSpec(cluster="cb", root="beta", key_id="kb", public_key=KEY, prefix="pb"),),
        )
        if federated
        else None
    )
    return TreeSpec(
        name="t",
        root=NodeSpec(name="root"),
        tracing=TracingSpec(path=str(path), sample=sample),
        federation=federation,
    )


def spans(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def ended(intent_id: str, path: str, status: str = "completed", at: float = 100.0) -> Event:
    data = {"intent": intent_id, "seconds": 0.25, "capability": "c", "reason": "None"}
    return Event(kind=f"intent.{status}", path=path, at=at, data=data)


def test_the_ids_are_those_of_the_federation_traceparent() -> None:
    trace_id, root = trace_ids("i-1")
    assert traceparent_of("i-1") == f"00-{trace_id:032x}-{root:016x}-01"
    assert s1_span_id("i-1", "root") != s1_span_id("i-1", "root/a")
    assert original_id("cb:i-1", {"cb"}) == "i-1"
    assert original_id("cx:i-1", {"cb"}) == "cx:i-1"  # not a peer's prefix: an id with a colon


@given(st.integers(1, 2**128 - 1), st.floats(0, 1), st.floats(0, 1))
def test_sampling_is_a_threshold_on_the_trace_id(trace_id: int, low: float, high: float) -> None:
    low, high = min(low, high), max(low, high)
    assert not sampled(trace_id, 0.0)
    assert sampled(trace_id, 1.0)
    assert sampled(trace_id, low) <= sampled(trace_id, high)  # more sample, never fewer traced


def test_a_host_writes_one_trace_per_intent_with_derived_parents(tmp_path: Path) -> None:
    out = tmp_path / "spans.jsonl"
    tracer = IntentTracer(tree(out), "vsm:root")
    intent = Intent(id="i-1", capability="c", user="u")
    tracer.ended(ended("i-1", "root/a", at=100.0))
    tracer.ended(ended("i-1", "root", at=100.1))
    tracer.ended(Event(kind="intent.accepted", path="root", at=99.0, data={"intent": "i-1"}))
    tracer.kernel("root/a", "i-1", "tunnel", 99_800_000_000, 99_900_000_000, None)
    tracer.intent(intent, Outcome.completed("i-1", 1, "root/a"), 99_700_000_000, 100_200_000_000)
    found = {s["name"]: s for s in spans(out)}
    assert set(found) == {"vsm.s1 root/a", "vsm.s1 root", "vsm.kernel tunnel", "vsm.intent"}
    trace_id, root = trace_ids("i-1")
    assert {s["context"]["trace_id"] for s in found.values()} == {f"0x{trace_id:032x}"}
    assert found["vsm.intent"]["parent_id"] is None
    assert found["vsm.intent"]["context"]["span_id"] == f"0x{root:016x}"
    assert found["vsm.s1 root"]["parent_id"] == f"0x{root:016x}"
    assert found["vsm.s1 root/a"]["context"]["span_id"] == f"0x{s1_span_id('i-1', 'root/a'):016x}"
    assert found["vsm.kernel tunnel"]["parent_id"] == f"0x{s1_span_id('i-1', 'root/a'):016x}"
    assert found["vsm.intent"]["attributes"]["vsm.status"] == "completed"
    assert found["vsm.intent"]["status"]["status_code"] == "UNSET"


def test_refusals_are_errors_and_peer_intents_join_the_origin_trace(tmp_path: Path) -> None:
    out = tmp_path / "spans.jsonl"
    tracer = IntentTracer(tree(out, federated=True), "vsm:root")
    tracer.ended(ended("cb:i-9", "root", status="failed"))  # sent here by peer cb
    refused = Outcome.refused("x", Status.REJECTED, Refusal.POLICY, SystemId.S5, "root", "no")
    tracer.intent(Intent(id="x", capability="c", user="u"), refused, 1, 2)
    peer, desk = spans(out)
    assert peer["context"]["trace_id"] == f"0x{trace_ids('i-9')[0]:032x}"
    assert peer["status"]["status_code"] == "ERROR"
    assert desk["status"] == {"status_code": "ERROR", "description": "no"}
    assert desk["attributes"]["vsm.reason"] == "policy"


def test_nothing_is_written_for_an_unsampled_intent_or_without_tracing(tmp_path: Path) -> None:
    out = tmp_path / "spans.jsonl"
    tracer = IntentTracer(tree(out, sample=0.0), "vsm:root")
    tracer.ended(ended("i-1", "root"))
    assert not out.read_text()
    plain = IntentTracer(TreeSpec(name="t", root=NodeSpec(name="root")), "vsm:root")
    assert not plain.enabled
    plain.ended(ended("i-1", "root"))  # a no-op


class _Collector(http.server.BaseHTTPRequestHandler):
    """An OTLP/HTTP collector on loopback: keeps the spans it is sent."""

    spans: ClassVar[list[Any]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        request = trace_service_pb2.ExportTraceServiceRequest()
        request.ParseFromString(body)
        for resource in request.resource_spans:
            for scope in resource.scope_spans:
                type(self).spans.extend(scope.spans)
        reply = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args: object) -> None:  # quiet
        pass


def test_spans_reach_an_otlp_collector() -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        endpoint = f"http://127.0.0.1:{server.server_port}/v1/traces"
        spec = TreeSpec(
            name="t",
            root=NodeSpec(name="root"),
            tracing=TracingSpec(exporter="otlp", endpoint=endpoint),
        )
        tracer = IntentTracer(spec, "vsm:root")
        tracer.ended(ended("i-7", "root"))
        outcome = Outcome.completed("i-7", 1, "root")
        tracer.intent(Intent(id="i-7", capability="c", user="u"), outcome, 1, 2)
        assert tracer.flush()
        got = {span.name: span for span in _Collector.spans}
        assert set(got) == {"vsm.s1 root", "vsm.intent"}
        trace_id, root = trace_ids("i-7")
        assert {span.trace_id for span in got.values()} == {trace_id.to_bytes(16, "big")}
        assert got["vsm.s1 root"].parent_span_id == root.to_bytes(8, "big")
    finally:
        server.shutdown()
        server.server_close()


def test_a_bad_endpoint_is_refused_with_the_field_named() -> None:
    with pytest.raises(ValidationError, match="endpoint"):
        TracingSpec(exporter="otlp", endpoint="not a url")


def test_a_bridge_traces_envelopes_about_intents_only(tmp_path: Path) -> None:
    out = tmp_path / "spans.jsonl"
    tracer = IntentTracer(tree(out), "#bridge")
    sender = Sender(path="beta", cluster="cb", key_id="kb")
    context = Causality(traceparent=traceparent_of("i-3"))

    def envelope(body: Any) -> Envelope:
        return Envelope.new(
            sender=sender,
            recipient="root",
            body=body,
            hlc=Stamp(1_000, 0, "beta"),
            now=1.0,
            ttl=30.0,
            causality=context,
        )

    intent = envelope(IntentBody.of(Intent(id="cb:i-3", capability="c", user="u")))
    tracer.envelope("receive", intent, "cb", 1, 2)
    registry = envelope(RegistryBody.of(RegistryDelta()))
    tracer.envelope("receive", registry, "cb", 1, 2)  # about no intent: no span
    (span,) = spans(out)
    assert span["name"] == "vsm.bridge.receive intent"
    assert span["kind"] == "SpanKind.CONSUMER"
    assert span["parent_id"] == f"0x{trace_ids('i-3')[1]:016x}"
    assert span["attributes"]["vsm.envelope_id"] == intent.id
