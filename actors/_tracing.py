"""OpenTelemetry spans of intents: one trace per intent, in every host and cluster it visits.

Rules:
    1. Ids derive from the intent: its trace id and its root span id are those of the W3C
       ``traceparent`` a federation envelope about it carries
       (:func:`protocol._federation.traceparent_of` of the id the client gave), so the hosts
       of a tree, and of peer trees, put their spans in one trace without passing any context
       along. An intent that peer ``c`` sent runs here as ``c:<id>``; its trace is ``<id>``'s.
    2. Spans: ``vsm.intent`` at the client desk, from submit to outcome (kind SERVER, the
       trace's root); ``vsm.s1 <path>`` for each viable system whose System 1 ended the
       intent, from its dispatch to its end (a child of the root; its span id derives from
       the intent and the path); ``vsm.kernel <name>`` for a kernel run as Ray tasks (a child
       of its viable system's S1 span); ``vsm.bridge.send <kind>`` and ``vsm.bridge.receive
       <kind>`` for each envelope about an intent (intent, outcome, progress, cancel) that a
       federation bridge published or took (children of the root: their trace is the one the
       envelope's ``traceparent`` names). Attributes are ``vsm.*``; the span of an intent that
       did not complete has status ERROR with its reason.
    3. Sampling by trace id: an intent is traced when the low 64 bits of its trace id fall
       under ``sample`` of their range (as OpenTelemetry's ``TraceIdRatioBased``), so every
       host, in every cluster, decides the same for one intent.
    4. Export: to a file or stdout, each host process writes its spans as they end, one
       JSON object per line (appending), synchronously, so a host killed by Ray has lost
       nothing it ended. To an OTLP/HTTP collector (``otlp``), spans go in batches from a
       background thread every ``OTLP_EVERY`` seconds, so a collector that is slow or away
       never holds up the host; a host killed by Ray loses what it ended since the last
       batch, and spans the collector refuses are dropped (OpenTelemetry's exporter logs it).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import threading
from collections.abc import Collection, Iterator
from contextvars import ContextVar
from typing import Any, TextIO

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, Tracer, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
)
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags
from opentelemetry.trace.status import Status as SpanStatus
from opentelemetry.trace.status import StatusCode

from protocol import Envelope
from protocol._federation import traceparent_of
from vsm.effects import Event
from vsm.intents import Intent, Outcome, Status
from vsm.spec import TracingSpec, TreeSpec

__all__ = ["IntentTracer", "s1_span_id", "sampled", "trace_ids"]

OTLP_EVERY = 0.5
"""Seconds between the batches a host sends to an OTLP collector (rule 4)."""
OTLP_TIMEOUT = 5.0
"""Seconds one batch may take to reach the collector."""

_ENDED = {f"intent.{status}" for status in Status}
_ABOUT_INTENTS = frozenset({"intent", "outcome", "progress", "cancel"})
_NEXT: ContextVar[tuple[int, int] | None] = ContextVar("vsm_next_ids", default=None)
_PROVIDERS: dict[tuple[str, str, str, str], TracerProvider] = {}
_LOCK = threading.Lock()


def original_id(intent_id: str, peers: Collection[str] = ()) -> str:
    """The id the client gave: ``c:<id>`` from a peer ``c`` is ``<id>`` (rule 1)."""
    cluster, sep, rest = intent_id.partition(":")
    return rest if sep and cluster in peers else intent_id


def trace_ids(intent_id: str) -> tuple[int, int]:
    """``(trace id, root span id)`` of the intent whose client-given id is ``intent_id``."""
    _, trace_hex, span_hex, _ = traceparent_of(intent_id).split("-")
    return int(trace_hex, 16) or 1, int(span_hex, 16) or 1


def s1_span_id(intent_id: str, path: str) -> int:
    """The span id of the S1 span of ``intent_id`` (client-given) at ``path`` (rule 2)."""
    digest = hashlib.blake2b(f"{intent_id}\x00{path}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") or 1


def sampled(trace_id: int, ratio: float) -> bool:
    """Whether the intent of ``trace_id`` is traced at ``ratio`` (rule 3)."""
    return (trace_id & 0xFFFF_FFFF_FFFF_FFFF) < round(ratio * 2**64)


class _DerivedIds(RandomIdGenerator):
    """Hands out the ids set in ``_NEXT`` (rule 1); random ones otherwise."""

    def generate_span_id(self) -> int:
        ids = _NEXT.get()
        return ids[1] if ids is not None else super().generate_span_id()

    def generate_trace_id(self) -> int:
        ids = _NEXT.get()
        return ids[0] if ids is not None else super().generate_trace_id()


@contextlib.contextmanager
def _ids(trace_id: int, span_id: int) -> Iterator[None]:
    token = _NEXT.set((trace_id, span_id))
    try:
        yield
    finally:
        _NEXT.reset(token)


def _one_line(span: ReadableSpan) -> str:
    return str(span.to_json(indent=None)) + os.linesep


class _LinesExporter(ConsoleSpanExporter):
    """OpenTelemetry's console exporter, one span a line, closing its file at shutdown."""

    def __init__(self, out: TextIO) -> None:
        super().__init__(out=out, formatter=_one_line)
        self._file = out

    def shutdown(self) -> None:
        if self._file is not sys.stdout:
            self._file.close()


def _processor(spec: TracingSpec) -> SpanProcessor:
    if spec.exporter == "otlp":
        exporter = OTLPSpanExporter(endpoint=spec.endpoint, timeout=OTLP_TIMEOUT)
        return BatchSpanProcessor(exporter, schedule_delay_millis=OTLP_EVERY * 1000)
    out: TextIO = (
        sys.stdout
        if spec.exporter == "console"
        else open(spec.path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115  # kept open
    )
    return SimpleSpanProcessor(_LinesExporter(out))


def _provider(spec: TracingSpec, tree: str, host: str) -> TracerProvider:
    key = (tree, host, spec.exporter, spec.endpoint if spec.exporter == "otlp" else spec.path)
    with _LOCK:
        provider = _PROVIDERS.get(key)
        if provider is None:
            provider = TracerProvider(
                resource=Resource.create(
                    {"service.name": "vsm-ray", "vsm.tree": tree, "vsm.host": host}
                ),
                id_generator=_DerivedIds(),
            )
            provider.add_span_processor(_processor(spec))
            _PROVIDERS[key] = provider
        return provider


def _parent(trace_id: int, span_id: int) -> Context:
    flags = TraceFlags(TraceFlags.SAMPLED)
    context = SpanContext(trace_id, span_id, is_remote=True, trace_flags=flags)
    return trace.set_span_in_context(NonRecordingSpan(context), Context())


def _end(span: trace.Span, ok: bool, reason: str, end_ns: int) -> None:
    if not ok:
        span.set_status(SpanStatus(StatusCode.ERROR, reason))
    span.end(end_time=end_ns)


class IntentTracer:
    """The spans one host records (module rules); a no-op for a tree without ``tracing``.

    Args:
        tree: The tree's spec.
        host: The host's label (a resource attribute of its spans).
    """

    def __init__(self, tree: TreeSpec, host: str) -> None:
        self.spec = tree.tracing
        self.enabled = self.spec is not None
        self._peers = (
            frozenset(p.cluster for p in tree.federation.peers) if tree.federation else frozenset()
        )
        self._tracer: Tracer | None = None
        self._provider: TracerProvider | None = None
        if self.spec is not None:
            self._provider = _provider(self.spec, tree.name, host)
            tracer = self._provider.get_tracer("vsm-ray")
            assert isinstance(tracer, Tracer)
            self._tracer = tracer

    def flush(self, timeout: float = OTLP_TIMEOUT) -> bool:
        """Send what is batched now (``otlp``); whether it all went within ``timeout`` s."""
        if self._provider is None:
            return True
        return bool(self._provider.force_flush(int(timeout * 1000)))

    def _traced(self, intent_id: str) -> tuple[str, int, int] | None:
        if self.spec is None:
            return None
        original = original_id(intent_id, self._peers)
        trace_id, root = trace_ids(original)
        return (original, trace_id, root) if sampled(trace_id, self.spec.sample) else None

    def intent(self, intent: Intent, outcome: Outcome, start_ns: int, end_ns: int) -> None:
        """The desk's span of ``intent``, submitted at ``start_ns``, answered at ``end_ns``."""
        traced = self._traced(intent.id)
        if traced is None or self._tracer is None:
            return
        _, trace_id, root = traced
        attributes: dict[str, Any] = {
            "vsm.intent_id": intent.id,
            "vsm.user": intent.user,
            "vsm.zone": intent.zone,
            "vsm.status": str(outcome.status),
            "vsm.path": outcome.path or "",
        }
        if intent.capability is not None:
            attributes["vsm.capability"] = intent.capability
        if outcome.reason is not None:
            attributes["vsm.reason"] = str(outcome.reason)
        with _ids(trace_id, root):
            span = self._tracer.start_span(
                "vsm.intent",
                context=Context(),
                kind=SpanKind.SERVER,
                attributes=attributes,
                start_time=start_ns,
            )
        _end(span, outcome.status is Status.COMPLETED, outcome.detail, end_ns)

    def ended(self, event: Event) -> None:
        """The S1 span of an ``intent.<status>`` event (others are ignored)."""
        if event.kind not in _ENDED or self._tracer is None:
            return
        data = event.data
        intent_id, seconds = data.get("intent"), data.get("seconds")
        if not isinstance(intent_id, str) or not isinstance(seconds, int | float):
            return
        traced = self._traced(intent_id)
        if traced is None:
            return
        original, trace_id, root = traced
        end_ns = int(event.at * 1e9)
        status = event.kind.removeprefix("intent.")
        attributes = {
            "vsm.intent_id": intent_id,
            "vsm.path": event.path,
            "vsm.status": status,
            "vsm.capability": str(data.get("capability") or ""),
            "vsm.unit": str(data.get("unit") or ""),
        }
        if data.get("reason") not in (None, "None"):
            attributes["vsm.reason"] = str(data.get("reason"))
        with _ids(trace_id, s1_span_id(original, event.path)):
            span = self._tracer.start_span(
                f"vsm.s1 {event.path}",
                context=_parent(trace_id, root),
                attributes=attributes,
                start_time=end_ns - int(float(seconds) * 1e9),
            )
        _end(span, status == str(Status.COMPLETED), str(data.get("reason")), end_ns)

    def kernel(
        self, path: str, intent_id: str, kernel: str, start_ns: int, end_ns: int, error: str | None
    ) -> None:
        """The span of kernel ``kernel`` run as Ray tasks for ``intent_id`` at ``path``."""
        traced = self._traced(intent_id)
        if traced is None or self._tracer is None:
            return
        original, trace_id, _ = traced
        span = self._tracer.start_span(
            f"vsm.kernel {kernel}",
            context=_parent(trace_id, s1_span_id(original, path)),
            attributes={"vsm.intent_id": intent_id, "vsm.path": path, "vsm.kernel": kernel},
            start_time=start_ns,
        )
        _end(span, error is None, error or "", end_ns)

    def envelope(
        self, direction: str, envelope: Envelope, peer: str, start_ns: int, end_ns: int
    ) -> None:
        """The span of an envelope about an intent that a bridge sent or took (rule 2).

        ``direction`` is ``"send"`` (published and confirmed) or ``"receive"`` (taken and
        acked); envelopes about no intent, or without a ``traceparent``, are not traced.
        """
        traceparent = envelope.causality.traceparent
        if (
            self.spec is None
            or self._tracer is None
            or envelope.kind not in _ABOUT_INTENTS
            or traceparent is None
        ):
            return
        _, trace_hex, span_hex, _ = traceparent.split("-")
        trace_id, root = int(trace_hex, 16), int(span_hex, 16)
        if not sampled(trace_id, self.spec.sample):
            return
        span = self._tracer.start_span(
            f"vsm.bridge.{direction} {envelope.kind}",
            context=_parent(trace_id, root),
            kind=SpanKind.PRODUCER if direction == "send" else SpanKind.CONSUMER,
            attributes={
                "vsm.envelope_id": envelope.id,
                "vsm.peer": peer,
                "vsm.recipient": envelope.recipient,
                "messaging.system": "rabbitmq",
            },
            start_time=start_ns,
        )
        span.end(end_time=end_ns)
