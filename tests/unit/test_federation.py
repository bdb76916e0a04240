"""Federation, the pure half: what crosses between peer trees, what is refused, and the spec."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from actors.cli import main
from protocol import (
    AlgedonicBody,
    AuditBody,
    Envelope,
    Identity,
    IntentBody,
    ReplayGuard,
    Sender,
    UnknownKeyError,
    unseal,
)
from protocol._federation import Federation, Peer, Refused, Unsupported, traceparent_of
from vsm.address import Address, SystemId
from vsm.crdt import Stamp
from vsm.effects import Send
from vsm.intents import Intent, Outcome, Refusal, Status
from vsm.messages import (
    Algedonic,
    CancelIntent,
    Heartbeat,
    IntentFinished,
    IntentProgress,
    RegistryGossip,
    SubmitIntent,
)
from vsm.registry import Advert, CapabilityRegistry
from vsm.spec import FederationSpec, NodeSpec, TreeSpec
from vsm.systems import ViableSystem

A_KEY = Identity.generate("ca-key")
B_KEY = Identity.generate("cb-key")
NOW = 1_800_000_000.0


def pair(revoked: bool = False) -> tuple[Federation, Federation]:
    a = Federation(
        "ca", "alpha", A_KEY, [Peer("cb", "beta", "cb-key", B_KEY.public_key_bytes(), "b", revoked)]
    )
    b = Federation(
        "cb", "beta", B_KEY, [Peer("ca", "alpha", "ca-key", A_KEY.public_key_bytes(), "a")]
    )
    return a, b


def across(sender: Federation, receiver: Federation, path: str, system: SystemId, message: object):
    out = sender.outbound(path, system, message, NOW)  # type: ignore[arg-type]
    return out, receiver.inbound(unseal(out.data, receiver.keys, ReplayGuard(), NOW))


def test_an_intent_and_its_outcome_and_progress_cross_correlated() -> None:
    """From alpha to beta, the intent runs as ca:<id>; back, outcome and progress as <id>."""
    a, b = pair()
    intent = Intent(
        id="i-1", capability="maps.sum", params={"values": [1]}, user="bob", deadline=NOW + 5
    )
    submit = SubmitIntent(intent=intent, reply_to=Address("alpha", SystemId.S1))
    out, inbound = across(a, b, "beta", SystemId.S5, submit)
    assert (out.peer, out.exchange, out.route) == ("cb", "intents", "beta")
    assert out.envelope.expires == pytest.approx(NOW + 5)
    assert out.envelope.causality.traceparent == traceparent_of("i-1")
    ((path, system, message),) = inbound.messages
    assert (path, system) == ("beta", SystemId.S5)
    assert isinstance(message, SubmitIntent)
    assert message.intent.id == "ca:i-1"
    assert message.reply_to == Address("alpha", SystemId.S1)
    assert (message.intent.user, message.intent.params) == ("bob", {"values": [1]})

    done = IntentFinished(outcome=Outcome.completed("ca:i-1", 1, "beta/maps"))
    out, inbound = across(b, a, "alpha", SystemId.S1, done)
    assert out.envelope.correlation_id == "i-1"
    assert out.envelope.causality.traceparent == traceparent_of("i-1")  # one trace
    ((path, system, message),) = inbound.messages
    assert (path, system) == ("alpha", SystemId.S1)
    assert message == IntentFinished(outcome=Outcome.completed("i-1", 1, "beta/maps"))

    step = IntentProgress(intent_id="ca:i-1", path="beta", stage="routed", detail="beta/maps")
    _, inbound = across(b, a, "alpha", SystemId.S1, step)
    assert inbound.messages[0][2] == IntentProgress(
        intent_id="i-1", path="beta", stage="routed", detail="beta/maps"
    )


def test_only_the_peers_own_intents_are_answered_to_it() -> None:
    """An outcome to alpha for an intent that did not come from alpha does not cross."""
    _, b = pair()
    with pytest.raises(Unsupported, match="did not come from 'ca'"):
        b.outbound(
            "alpha", SystemId.S1, IntentFinished(outcome=Outcome.completed("x", 1, "beta")), NOW
        )


@pytest.mark.parametrize(
    ("path", "system", "message", "match"),
    [
        ("gamma", SystemId.S5, Algedonic(source="alpha", intensity=-1.0), "no peer tree"),
        ("beta", SystemId.S2, Heartbeat(unit="alpha"), "Heartbeat to S2 does not cross"),
        (
            "beta",
            SystemId.S5,
            SubmitIntent(intent=Intent(id="c", capability="x"), reply_to=None),
            "routed, single intent",
        ),
    ],
)
def test_what_does_not_cross_is_unsupported(
    path: str, system: SystemId, message: object, match: str
) -> None:
    a, _ = pair()
    with pytest.raises(Unsupported, match=match):
        a.outbound(path, system, message, NOW)  # type: ignore[arg-type]


def _envelope(
    signer: Identity, *, cluster: str, path: str, recipient: str, body: object
) -> Envelope:
    return Envelope.new(
        sender=Sender(path=path, cluster=cluster, key_id=signer.key_id),
        recipient=recipient,
        body=body,  # type: ignore[arg-type]
        hlc=Stamp(1, 0, "x"),
        now=NOW,
        ttl=30.0,
    )


@pytest.mark.parametrize(
    ("cluster", "path", "recipient", "reason"),
    [
        ("cx", "beta", "alpha", "wrong-cluster"),
        ("cb", "alpha/x", "alpha", "foreign-path"),
        ("cb", "beta", "gamma", "not-ours"),
    ],
)
def test_a_peer_may_speak_only_for_its_tree_and_only_to_this_one(
    cluster: str, path: str, recipient: str, reason: str
) -> None:
    a, _ = pair()
    body = IntentBody.of(Intent(id="i", capability="alpha.echo"))
    with pytest.raises(Refused) as refused:
        a.inbound(_envelope(B_KEY, cluster=cluster, path=path, recipient=recipient, body=body))
    assert refused.value.reason == reason


def test_registry_announcements_hold_the_peers_providers_only() -> None:
    """A peer's adverts become RegistryGossip to the root's S4; others' are a foreign write."""
    a, b = pair()
    registry = CapabilityRegistry("beta/maps")
    delta = registry.advertise(Advert("maps.sum", "beta/maps", "e", lease_expires_ms=10**13), 1)
    (out,) = b.announcement(delta, NOW)
    assert (out.peer, out.exchange) == ("ca", "announcements")
    inbound = a.inbound(unseal(out.data, a.keys, ReplayGuard(), NOW))
    ((path, system, message),) = inbound.messages
    assert (path, system) == ("alpha", SystemId.S4)
    assert isinstance(message, RegistryGossip)
    assert message.origin == "beta"
    assert message.delta == delta

    forged = CapabilityRegistry("alpha/x").advertise(Advert("x", "alpha/x", "e"), 1)
    (out,) = b.announcement(forged, NOW)
    with pytest.raises(Refused) as refused:
        a.inbound(unseal(out.data, a.keys, ReplayGuard(), NOW))
    assert refused.value.reason == "foreign-write"


def test_signals_cross_from_the_peers_tree_only_and_checkpoints_are_kept() -> None:
    a, b = pair()
    _, inbound = across(b, a, "alpha", SystemId.S5, Algedonic(source="beta/maps", intensity=-0.9))
    assert inbound.messages == (
        ("alpha", SystemId.S5, Algedonic(source="beta/maps", intensity=-0.9)),
    )
    echo = _envelope(
        B_KEY,
        cluster="cb",
        path="beta",
        recipient="alpha",
        body=AlgedonicBody(source="alpha", intensity=-0.9),
    )
    with pytest.raises(Refused) as refused:
        a.inbound(echo)
    assert refused.value.reason == "foreign-path"
    (out,) = b.checkpoint({"checkpoint": [1, 2]}, NOW)
    assert out.envelope.causality.traceparent is not None  # every envelope carries one
    kept = a.inbound(unseal(out.data, a.keys, ReplayGuard(), NOW))
    assert kept.checkpoint == {"checkpoint": [1, 2]}
    assert kept.messages == ()
    assert isinstance(out.envelope.body, AuditBody)


def test_a_revoked_peer_is_refused_at_the_signature() -> None:
    """A revoked key fails unseal (UnknownKeyError: dead-lettered as unknown-key)."""
    a, b = pair(revoked=True)
    out = b.outbound("alpha", SystemId.S5, Algedonic(source="beta", intensity=-1.0), NOW)
    with pytest.raises(UnknownKeyError):
        unseal(out.data, a.keys, ReplayGuard(), NOW)
    assert (
        a.announcement(CapabilityRegistry("alpha").advertise(Advert("c", "alpha", "e"), 1), NOW)
        == []
    )


@given(st.text(min_size=1, max_size=40))
def test_traceparent_is_a_valid_w3c_header_fixed_by_the_intent(intent_id: str) -> None:
    parent = traceparent_of(intent_id)
    version, trace, span, flags = parent.split("-")
    assert (version, flags, len(trace), len(span)) == ("00", "01", 32, 16)
    assert parent == traceparent_of(intent_id)


# ---------------------------------------------------------------- the spec and the model


def _peer(**change: object) -> dict[str, object]:
    return {
        "cluster": "cb",
        "root": "beta",
        "key_id": "k",
        "public_key": "a" * 64,
        "prefix": "b",
        **change,
    }


def _federation(*peers: dict[str, object]) -> dict[str, object]:
    return {
        "cluster": "ca",
        "key_id": "ka",
        "identity": "a.pem",
        "prefix": "a",
        "peers": list(peers),
    }


@pytest.mark.parametrize(
    ("federation", "match"),
    [
        (_federation(_peer(public_key="xyz")), "64 hex digits"),
        (_federation(_peer(root="be/ta")), "one path segment"),
        (_federation(_peer(prefix="b#")), "prefix must be"),
        (_federation(_peer(), _peer(root="gamma")), "own cluster; named twice: \\['cb'\\]"),
        (_federation(_peer(cluster="ca")), "own cluster; named twice: \\['ca'\\]"),
        (_federation(_peer(prefix="a")), "own prefix"),
        (_federation(_peer(root="alpha")), "roots must be unique"),
    ],
)
def test_bad_federation_specs_are_refused_with_the_problem(
    federation: dict[str, object], match: str
) -> None:
    with pytest.raises(ValidationError, match=match):
        TreeSpec.model_validate({"name": "t", "root": {"name": "alpha"}, "federation": federation})


def test_a_federated_root_routes_to_peer_roots_and_sends_them_its_signals() -> None:
    """Peer adverts make the peer root a unit for S1; strong own signals cross, echoes do not."""
    spec = TreeSpec(
        name="t",
        root=NodeSpec(name="alpha"),
        federation=FederationSpec.model_validate(
            _federation(_peer(), _peer(cluster="cc", root="gamma", prefix="c"))
        ),
    )
    root = ViableSystem.root(spec)
    assert root.node.peers == ("beta", "gamma")
    assert root.node.unit_of("beta/maps") == "beta"
    assert root.node.unit_of("delta/x") is None
    delta = CapabilityRegistry("beta/maps").advertise(
        Advert("maps.sum", "beta/maps", "e", lease_expires_ms=int((time.time() + 60) * 1000)),
        int(time.time() * 1000),
    )
    effects = root.handle(SystemId.S4, RegistryGossip(delta=delta, origin="beta"), time.time())
    routes = [
        e.message for e in effects if isinstance(e, Send) and type(e.message).__name__ == "Routes"
    ]
    assert routes
    assert routes[-1].units["beta"] == frozenset({"maps.sum"})

    strong = root.handle(SystemId.S5, Algedonic(source="alpha/x", intensity=-0.9), 0.0)
    sent = sorted(e.to.path for e in strong if isinstance(e, Send))
    assert sent == ["beta", "gamma"]
    weak = root.handle(SystemId.S5, Algedonic(source="alpha/x", intensity=-0.5), 0.0)
    assert not [e for e in weak if isinstance(e, Send)]
    echo = root.handle(SystemId.S5, Algedonic(source="beta", intensity=-1.0), 0.0)
    assert not [e for e in echo if isinstance(e, Send)]
    refused = Outcome.refused("i", Status.REJECTED, Refusal.POLICY, SystemId.S5, "beta", "no")
    assert refused.path == "beta"


def test_vsm_keygen_writes_a_private_key_and_prints_the_public_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The key file loads back to the printed public key; an existing file is refused (exit 2)."""
    path = tmp_path / "ca.pem"
    assert main(["keygen", "ca-key", str(path), "--format", "json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    loaded = Identity.load(path, "ca-key")
    assert printed["public_key"] == loaded.public_key_bytes().hex()
    assert path.stat().st_mode & 0o777 == 0o600
    assert main(["keygen", "ca-key", str(path)]) == 2
    assert "already exists" in capsys.readouterr().out


def test_a_cancel_crosses_under_the_peers_name_for_the_intent() -> None:
    """Alpha cancels i-1 at beta: beta's S5 gets CancelIntent for ca:i-1, same trace."""
    a, b = pair()
    out, inbound = across(a, b, "beta", SystemId.S5, CancelIntent(intent_id="i-1", reason="stop"))
    assert (out.exchange, out.envelope.kind, out.envelope.correlation_id) == (
        "intents",
        "cancel",
        "i-1",
    )
    assert out.envelope.causality.traceparent == traceparent_of("i-1")
    assert inbound.messages == (
        ("beta", SystemId.S5, CancelIntent(intent_id="ca:i-1", reason="stop")),
    )


def test_the_federation_key_is_found_and_checked_where_the_caller_stands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A relative key path is resolved against the caller's directory; a bad key fails at once.

    The bridge runs in a Ray worker, elsewhere; a missing key fails the start with the reason.
    """
    from actors._runtime import TreeStartError, _with_readable_identity

    Identity.generate("ka").save(tmp_path / "a.pem")
    monkeypatch.chdir(tmp_path)
    spec = TreeSpec.model_validate(
        {"name": "t", "root": {"name": "alpha"}, "federation": _federation(_peer())}
    )
    assert spec.federation is not None
    assert spec.federation.identity == "a.pem"
    resolved = _with_readable_identity(spec)
    assert resolved.federation is not None
    assert resolved.federation.identity == str(tmp_path / "a.pem")
    missing = spec.model_copy(
        update={"federation": spec.federation.model_copy(update={"identity": "nope.pem"})}
    )
    with pytest.raises(TreeStartError, match=r"federation key of 't'.*nope\.pem"):
        _with_readable_identity(missing)
    assert (
        _with_readable_identity(TreeSpec(name="t", root=NodeSpec(name="alpha"))).federation is None
    )
