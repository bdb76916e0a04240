"""The aMCP envelope and its codec: round trips, tampering, garbage, replay and expiry.

The central property: whatever bytes arrive, :func:`protocol.unseal` either returns a valid
envelope or raises a :class:`protocol.ProtocolError`, and any change to a sealed envelope is
refused.
"""

from __future__ import annotations

import math
import os
import uuid
from typing import Any

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from protocol import (
    DOMAIN,
    FRAME_VERSION,
    SCHEMA_VERSION,
    AlgedonicBody,
    AuditBody,
    Causality,
    DecodeError,
    Envelope,
    ExpiredError,
    HmacIdentity,
    Identity,
    IntentBody,
    KeyStore,
    OutcomeBody,
    ProgressBody,
    ProtocolError,
    RegistryBody,
    ReplayError,
    ReplayGuard,
    Sender,
    SignatureError,
    TooLargeError,
    UnknownKeyError,
    replay_id,
    seal,
    unseal,
)
from vsm.address import SystemId
from vsm.crdt import Stamp
from vsm.intents import Intent, Outcome, Refusal, Status
from vsm.messages import Algedonic, IntentProgress
from vsm.registry import Advert, CapabilityRegistry

ED = Identity.generate("ed-1")
HM = HmacIdentity.generate("hm-1")
STRANGER = Identity.generate("stranger")
KEYS = KeyStore()
KEYS.add(ED.key_id, ED.public_key_bytes())
KEYS.add_hmac(HM.key_id, HM.secret)
IDENTITIES = {"ed25519": ED, "hmac": HM}
NOW = 1_000.0
TTL = 60.0

# ---------------------------------------------------------------- strategies

names = st.text("abcxyz/._-0123456789", min_size=1, max_size=12)
texts = st.text(max_size=20)
plain = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False)
    | texts
    | st.binary(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=8,
)
plain_maps = st.dictionaries(texts, plain, max_size=4)


def registry_delta(provider: str, capability: str) -> Any:
    """A real registry delta: ``provider`` advertises ``capability``."""
    registry = CapabilityRegistry(provider)
    return registry.advertise(Advert(capability, provider, "endpoint"), 1_000)


intent_bodies = st.builds(
    IntentBody,
    intent_id=names,
    capability=st.none() | names,
    text=st.none() | texts,
    params=plain_maps,
    user=names,
    zone=names,
    deadline=st.none() | st.floats(0, 1e9),
)
outcome_bodies = st.builds(
    OutcomeBody.model_validate,
    st.fixed_dictionaries(
        {
            "intent_id": names,
            "status": st.sampled_from([s.value for s in Status]),
            "result": plain,
            "reason": st.none() | st.sampled_from([r.value for r in Refusal]),
            "detail": texts,
            "by": st.none() | st.sampled_from([s.value for s in SystemId]),
            "path": names,
        }
    ),
)
progress_bodies = st.builds(ProgressBody, intent_id=names, path=names, stage=names, detail=texts)
registry_bodies = st.builds(
    lambda provider, capability: RegistryBody.of(registry_delta(provider, capability)),
    st.sampled_from(["root", "root/a", "root/b/c"]),
    names,
)
algedonic_bodies = st.builds(AlgedonicBody, source=names, intensity=st.floats(-1, 1), detail=texts)
audit_bodies = st.builds(AuditBody, checkpoint=plain_maps)
BODIES = {
    "intent": intent_bodies,
    "outcome": outcome_bodies,
    "progress": progress_bodies,
    "registry": registry_bodies,
    "algedonic": algedonic_bodies,
    "audit": audit_bodies,
}
bodies = st.one_of(*BODIES.values())
traceparents = st.builds(
    lambda t, s, f: f"00-{t:032x}-{s:016x}-{f:02x}",
    st.integers(0, 2**128 - 1),
    st.integers(0, 2**64 - 1),
    st.integers(0, 255),
)
causalities = st.builds(
    Causality,
    parents=st.lists(st.uuids().map(lambda u: u.hex), max_size=3).map(tuple),
    traceparent=st.none() | traceparents,
    tracestate=st.none() | st.text("abc=,", max_size=10),
)


def envelope_for(identity: Any, body: Any, **kwargs: Any) -> Envelope:
    """A fresh envelope from ``identity``'s key, created at :data:`NOW`."""
    options: dict[str, Any] = {"now": NOW, "ttl": TTL, "hlc": Stamp(5, 0, "root/a")}
    options.update(kwargs)
    return Envelope.new(
        sender=Sender(path="root/a", cluster="c1", key_id=identity.key_id),
        recipient="root",
        body=body,
        **options,
    )


@st.composite
def envelopes(draw: st.DrawFn, identity: Any = None) -> tuple[Any, Envelope]:
    """An identity and an envelope signed by it, with every field drawn."""
    if identity is None:
        identity = draw(st.sampled_from([ED, HM]))
    envelope = Envelope.new(
        sender=Sender(path=draw(names), cluster=draw(names), key_id=identity.key_id),
        recipient=draw(names),
        body=draw(bodies),
        hlc=Stamp(draw(st.integers(0, 2**64 - 1)), draw(st.integers(0, 2**64 - 1)), draw(names)),
        now=NOW,
        ttl=draw(st.floats(0.001, 1e6)),
        correlation_id=draw(st.none() | names),
        causality=draw(causalities),
        meta=draw(st.dictionaries(names, texts, max_size=4)),
    )
    return identity, envelope


def small_sealed() -> bytes:
    """A small sealed envelope (a few hundred bytes), signed with HMAC."""
    body = AlgedonicBody(source="s", intensity=-0.5)
    return seal(envelope_for(HM, body), HM)


def rejects(data: bytes, guard: ReplayGuard | None = None) -> ProtocolError:
    """Unseal ``data`` at :data:`NOW`; return the ProtocolError raised (fail if none)."""
    with pytest.raises(ProtocolError) as caught:
        unseal(data, KEYS, guard or ReplayGuard(), NOW)
    return caught.value


def only_protocol_errors(data: bytes) -> None:
    """Unsealing ``data`` returns an envelope or raises a ProtocolError, nothing else."""
    try:
        result = unseal(data, KEYS, ReplayGuard(), NOW)
    except ProtocolError:
        return
    assert isinstance(result, Envelope)


# ---------------------------------------------------------------- round trips


@pytest.mark.parametrize("kind", sorted(BODIES))
@pytest.mark.parametrize("algorithm", sorted(IDENTITIES))
@given(data=st.data())
def test_round_trip_every_kind(kind: str, algorithm: str, data: st.DataObject) -> None:
    """Every body kind survives seal/unseal with both Ed25519 and HMAC identities."""
    identity = IDENTITIES[algorithm]
    envelope = envelope_for(identity, data.draw(BODIES[kind]))
    out = unseal(seal(envelope, identity), KEYS, ReplayGuard(), NOW)
    assert out == envelope
    assert out.kind == kind


@given(envelopes())
def test_round_trip_any_envelope(drawn: tuple[Any, Envelope]) -> None:
    """An envelope with every field drawn decodes to itself."""
    identity, envelope = drawn
    assert unseal(seal(envelope, identity), KEYS, ReplayGuard(), NOW) == envelope


def test_frame_layout() -> None:
    """The frame is [version, key_id, body bytes, signature of DOMAIN + body bytes]."""
    envelope = envelope_for(HM, AuditBody(checkpoint={"n": 1}))
    version, key_id, body, signature = msgpack.unpackb(seal(envelope, HM))
    assert (version, key_id) == (FRAME_VERSION, HM.key_id)
    assert signature == HM.sign(DOMAIN + body)
    assert msgpack.unpackb(body)["schema_version"] == SCHEMA_VERSION


def test_registry_body_delta() -> None:
    """A registry body gives back the delta it was made from, validated on access."""
    delta = registry_delta("root/a", "cap")
    envelope = envelope_for(ED, RegistryBody.of(delta))
    out = unseal(seal(envelope, ED), KEYS, ReplayGuard(), NOW)
    assert isinstance(out.body, RegistryBody)
    assert out.body.delta() == delta
    with pytest.raises(DecodeError):
        RegistryBody(data={"type": "nonsense"}).delta()


# ---------------------------------------------------------------- tampering


@given(st.data())
def test_any_byte_change_is_refused(data: st.DataObject) -> None:
    """Changing any one byte of a sealed envelope makes unseal raise a ProtocolError."""
    identity, envelope = data.draw(envelopes())
    sealed = bytearray(seal(envelope, identity))
    position = data.draw(st.integers(0, len(sealed) - 1))
    sealed[position] ^= data.draw(st.integers(1, 255))
    rejects(bytes(sealed))


@given(st.data())
def test_truncation_and_extension_are_refused(data: st.DataObject) -> None:
    """A strict prefix of a sealed envelope, or one with bytes appended, is refused."""
    identity, envelope = data.draw(envelopes())
    sealed = seal(envelope, identity)
    rejects(sealed[: data.draw(st.integers(0, len(sealed) - 1))])
    rejects(sealed + data.draw(st.binary(min_size=1, max_size=8)))


def test_every_byte_value_at_every_position_of_one_envelope() -> None:
    """Every other value of every byte of one small envelope, and each truncation, is refused."""
    sealed = small_sealed()
    for position in range(len(sealed)):
        for value in range(256):
            if value != sealed[position]:
                changed = bytearray(sealed)
                changed[position] = value
                rejects(bytes(changed))
    for end in range(len(sealed)):
        rejects(sealed[:end])


# ---------------------------------------------------------------- garbage


@given(st.binary(max_size=600))
def test_random_bytes_raise_only_protocol_errors(data: bytes) -> None:
    """Arbitrary bytes never raise anything but a ProtocolError."""
    only_protocol_errors(data)


@given(plain)
def test_msgpack_garbage_raises_only_protocol_errors(value: Any) -> None:
    """Valid msgpack that is not a frame never raises anything but a ProtocolError."""
    only_protocol_errors(msgpack.packb(value))
    only_protocol_errors(msgpack.packb([FRAME_VERSION, HM.key_id, msgpack.packb(value), b"x"]))


@given(plain, st.sampled_from([ED, HM]))
def test_signed_garbage_body_raises_only_protocol_errors(value: Any, identity: Any) -> None:
    """A correctly signed body that is not an envelope is refused with a DecodeError."""
    body = msgpack.packb(value)
    frame = msgpack.packb([FRAME_VERSION, identity.key_id, body, identity.sign(DOMAIN + body)])
    with pytest.raises(DecodeError):
        unseal(frame, KEYS, ReplayGuard(), NOW)


@given(st.data())
def test_signed_field_swaps_raise_only_protocol_errors(data: st.DataObject) -> None:
    """A correctly signed envelope with one field replaced by garbage decodes or is refused."""
    identity, envelope = data.draw(envelopes())
    fields = envelope.model_dump(mode="python")
    fields[data.draw(st.sampled_from(sorted(fields)))] = data.draw(plain)
    if data.draw(st.booleans()):
        body_fields = fields["body"] if isinstance(fields["body"], dict) else {}
        if body_fields:
            body_fields[data.draw(st.sampled_from(sorted(body_fields)))] = data.draw(plain)
    body = msgpack.packb(fields)
    frame = msgpack.packb([FRAME_VERSION, identity.key_id, body, identity.sign(DOMAIN + body)])
    only_protocol_errors(frame)


@pytest.mark.parametrize(
    "value",
    [
        msgpack.ExtType(5, b"abc"),
        msgpack.Timestamp(1, 0),
        [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]],
        {"a": 2**64 - 1, "b": -(2**63)},
        {1: 2},
    ],
)
def test_awkward_msgpack_is_refused(value: Any) -> None:
    """Extension types, timestamps, deep nesting and int keys in a signed body are refused."""
    for place in ("params", "envelope"):
        envelope = envelope_for(HM, IntentBody(intent_id="i", capability="c"))
        fields = envelope.model_dump(mode="python")
        if place == "params":
            fields["body"]["params"] = {"x": value}
        else:
            fields = value
        body = msgpack.packb(fields)
        frame = msgpack.packb([FRAME_VERSION, HM.key_id, body, HM.sign(DOMAIN + body)])
        if (
            place == "params"
            and isinstance(value, dict)
            and not any(isinstance(k, int) for k in value)
        ):
            unseal(frame, KEYS, ReplayGuard(), NOW)  # plain enough: accepted
        else:
            rejects(frame)


def test_deep_nesting_is_refused() -> None:
    """Nesting deeper than msgpack's or the plain-data limit is a DecodeError, not a crash."""
    rejects(b"\x91" * 5_000 + b"\xc0")
    deep: Any = None
    for _ in range(100):
        deep = [deep]
    envelope = envelope_for(HM, IntentBody(intent_id="i", capability="c"))
    fields = envelope.model_dump(mode="python")
    fields["body"]["params"] = {"x": deep}
    body = msgpack.packb(fields)
    frame = msgpack.packb([FRAME_VERSION, HM.key_id, body, HM.sign(DOMAIN + body)])
    assert isinstance(rejects(frame), DecodeError)


# ---------------------------------------------------------------- replay and expiry


@given(envelopes())
def test_replay_refused_after_record(drawn: tuple[Any, Envelope]) -> None:
    """Once recorded, the same envelope is refused; a fresh one from the sender is not."""
    identity, envelope = drawn
    guard = ReplayGuard()
    sealed = seal(envelope, identity)
    out = unseal(sealed, KEYS, guard, NOW)
    unseal(sealed, KEYS, guard, NOW)  # not recorded yet: still accepted (redelivery)
    guard.record(*replay_id(out))
    assert isinstance(rejects(sealed, guard), ReplayError)
    fresh = envelope.model_copy(update={"id": uuid.uuid4().hex, "nonce": os.urandom(16)})
    assert unseal(seal(fresh, identity), KEYS, guard, NOW) == fresh


@given(st.lists(st.sampled_from([ED, HM]), min_size=1, max_size=10))
def test_fresh_envelopes_are_never_refused(senders: list[Any]) -> None:
    """Fresh envelopes (new nonces) pass a guard that recorded all earlier ones."""
    guard = ReplayGuard()
    for identity in senders:
        out = unseal(
            seal(
                envelope_for(identity, ProgressBody(intent_id="i", path="p", stage="s")), identity
            ),
            KEYS,
            guard,
            NOW,
        )
        guard.record(*replay_id(out))


def test_replay_refused_after_snapshot_restore() -> None:
    """A guard restored from its snapshot still refuses what it recorded."""
    guard = ReplayGuard()
    sealed = [seal(envelope_for(i, AuditBody(checkpoint={})), i) for i in (ED, HM, ED)]
    for data in sealed:
        guard.record(*replay_id(unseal(data, KEYS, guard, NOW)))
    restored = ReplayGuard.from_bytes(guard.to_bytes())
    for data in sealed:
        assert isinstance(rejects(data, restored), ReplayError)
    unseal(seal(envelope_for(HM, AuditBody(checkpoint={})), HM), KEYS, restored, NOW)


def test_replay_id_names_cluster_path_and_key() -> None:
    """The replay id is ("cluster/path#key_id", nonce, expires)."""
    envelope = envelope_for(ED, AuditBody(checkpoint={}))
    assert replay_id(envelope) == ("c1/root/a#ed-1", envelope.nonce, NOW + TTL)


@given(st.floats(0, 1e6), st.sampled_from([ED, HM]))
def test_expired_envelopes_are_refused(late: float, identity: Any) -> None:
    """An envelope unsealed at or after its expiry raises ExpiredError."""
    sealed = seal(envelope_for(identity, AuditBody(checkpoint={})), identity)
    with pytest.raises(ExpiredError):
        unseal(sealed, KEYS, ReplayGuard(), NOW + TTL + late)


# ---------------------------------------------------------------- size, keys, versions


class _CountingVerifier:
    """A verifier that counts its calls (and accepts everything)."""

    def __init__(self) -> None:
        self.calls = 0

    def verify(self, key_id: str, message: bytes, signature: bytes, now: float) -> None:
        self.calls += 1


def test_oversized_data_is_refused_before_parsing() -> None:
    """Data over max_size raises TooLargeError without being parsed or verified."""
    verifier = _CountingVerifier()
    with pytest.raises(TooLargeError):
        unseal(b"\xc1" * 101, verifier, ReplayGuard(), NOW, max_size=100)  # 0xc1: never valid
    assert verifier.calls == 0
    sealed = small_sealed()
    with pytest.raises(TooLargeError):
        unseal(sealed, KEYS, ReplayGuard(), NOW, max_size=len(sealed) - 1)
    unseal(sealed, KEYS, ReplayGuard(), NOW, max_size=len(sealed))


def test_unknown_key_is_refused() -> None:
    """An envelope signed by a key the store does not hold raises UnknownKeyError."""
    sealed = seal(envelope_for(STRANGER, AuditBody(checkpoint={})), STRANGER)
    with pytest.raises(UnknownKeyError):
        unseal(sealed, KEYS, ReplayGuard(), NOW)


def test_frame_key_must_be_the_senders() -> None:
    """A frame signed by a known key that is not the sender's key raises SignatureError."""
    envelope = envelope_for(ED, AuditBody(checkpoint={}))
    body = msgpack.packb(envelope.model_dump(mode="python"))
    frame = msgpack.packb([FRAME_VERSION, HM.key_id, body, HM.sign(DOMAIN + body)])
    with pytest.raises(SignatureError):
        unseal(frame, KEYS, ReplayGuard(), NOW)


def test_signature_without_domain_is_refused() -> None:
    """A signature of the body bytes alone (no domain prefix) does not verify."""
    envelope = envelope_for(HM, AuditBody(checkpoint={}))
    body = msgpack.packb(envelope.model_dump(mode="python"))
    frame = msgpack.packb([FRAME_VERSION, HM.key_id, body, HM.sign(body)])
    with pytest.raises(SignatureError):
        unseal(frame, KEYS, ReplayGuard(), NOW)


def test_newer_schema_version_is_refused() -> None:
    """A newer schema version is a DecodeError with reason "unsupported-version"."""
    fields = envelope_for(HM, AuditBody(checkpoint={})).model_dump(mode="python")
    fields["schema_version"] = SCHEMA_VERSION + 1
    body = msgpack.packb(fields)
    frame = msgpack.packb([FRAME_VERSION, HM.key_id, body, HM.sign(DOMAIN + body)])
    error = rejects(frame)
    assert isinstance(error, DecodeError)
    assert error.reason == "unsupported-version"


def test_seal_refuses_a_foreign_identity() -> None:
    """Sealing refuses an identity whose key is not the envelope's sender key."""
    with pytest.raises(ValueError, match="cannot seal"):
        seal(envelope_for(ED, AuditBody(checkpoint={})), HM)


# ---------------------------------------------------------------- the model


def test_intent_conversion_round_trips() -> None:
    """Intent -> IntentBody -> Intent is the identity for plain intents; plans are refused."""
    intent = Intent(id="i1", capability="c", params={"a": [1, 2]}, user="u", deadline=5.0)
    assert IntentBody.of(intent).intent() == intent
    with pytest.raises(ValueError, match="composite"):
        IntentBody.of(Intent(id="p", plan=(intent,)))


@pytest.mark.parametrize("status", list(Status))
def test_outcome_conversion_round_trips(status: Status) -> None:
    """Outcome -> OutcomeBody -> Outcome is the identity, for every status and refusal."""
    for reason in [None, *Refusal]:
        for by in [None, *SystemId]:
            outcome = Outcome(
                intent_id="i", status=status, result={"x": 1}, reason=reason, by=by, path="r"
            )
            assert OutcomeBody.of(outcome).outcome() == outcome


def test_progress_and_algedonic_conversions_round_trip() -> None:
    """IntentProgress and Algedonic convert to bodies and back unchanged."""
    progress = IntentProgress(intent_id="i", path="root", stage="routed", detail="d")
    assert ProgressBody.of(progress).progress() == progress
    signal = Algedonic(source="root/a", intensity=-0.25, detail="pain")
    assert AlgedonicBody.of(signal).algedonic() == signal


def test_envelope_validation() -> None:
    """Strict validation: bad trace context, meta, kind, extra fields and coercion are refused."""
    good = envelope_for(HM, AuditBody(checkpoint={})).model_dump(mode="python")
    bad: list[dict[str, Any]] = [
        {**good, "causality": {"traceparent": "01-00-00-00"}},
        {**good, "causality": {"traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-0"}},
        {**good, "meta": {str(i): "v" for i in range(33)}},
        {**good, "meta": {"k": "v" * 257}},
        {**good, "kind": "intent"},
        {**good, "extra": 1},
        {**good, "schema_version": "1"},
        {**good, "nonce": b"short"},
        {**good, "expires": math.inf},
        {**good, "id": "not-hex"},
        {**good, "hlc": (-1, 0, "r")},
        {**good, "body": {"kind": "unknown"}},
        {**good, "kind": "unknown", "body": {"kind": "unknown"}},
    ]
    Envelope.model_validate(good)
    for fields in bad:
        with pytest.raises(ValidationError):
            Envelope.model_validate(fields)
    with pytest.raises(ValidationError):
        AlgedonicBody(source="s", intensity=1.5)
    with pytest.raises(ValueError, match="ttl"):
        envelope_for(HM, AuditBody(checkpoint={}), ttl=0.0)


def test_new_fills_id_nonce_and_expiry() -> None:
    """Envelope.new gives distinct ids and nonces and expires = now + ttl."""
    a = envelope_for(HM, AuditBody(checkpoint={}))
    b = envelope_for(HM, AuditBody(checkpoint={}))
    assert a.id != b.id
    assert a.nonce != b.nonce
    assert len(a.nonce) == 16
    assert a.expires == NOW + TTL
    assert a.stamp() == Stamp(5, 0, "root/a")
