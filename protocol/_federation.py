"""Federation: the messages of a tree's root that cross to peer trees, as signed envelopes.

A federated tree knows its peers by name (cluster, root, key, exchange prefix; see
:class:`vsm.spec.FederationSpec`). Every root name is unique in the federation, so a path
names one viable system in one cluster: ``beta/maps`` can only be in the tree whose root is
``beta``. :class:`Federation` is the pure half of a cluster's bridge: it turns the model's
messages addressed into a peer tree into sealed envelopes, and envelopes from peers into
messages for this tree, refusing what a peer may not say. The bridge (``actors/_bridge.py``)
adds the broker, the replay guard and the retries.

Rules:
    1. Out: ``SubmitIntent`` to a peer's S5 → an ``intent`` envelope (ttl: the intent's
       deadline); ``IntentFinished`` and ``IntentProgress`` to a peer's S1 → ``outcome`` and
       ``progress`` envelopes correlated by intent id; ``CancelIntent`` to a peer's S5 → a
       ``cancel`` envelope; ``Algedonic`` to a peer's S5 → an ``algedonic`` envelope.
       Anything else addressed into a peer tree does not cross (:class:`Unsupported`). Every
       envelope is signed by this cluster's key, sent to the peer's exchanges (its prefix)
       routed by recipient path, and carries a W3C ``traceparent``: for those about an
       intent its trace id derives from the intent id (one intent, one trace, in every
       cluster it visits); any other starts a trace of its own.
    2. In: an envelope is taken only when its key belongs to a declared peer, its sender is
       that peer's cluster and lies in that peer's tree, and its recipient lies in this tree;
       else :class:`Refused`, with a reason code for the dead-letter header.
    3. Intent ids are unique per client, not across clusters: an intent from peer ``c`` runs
       here under the id ``c:<id>``, and its outcome and progress go back under ``<id>``.
    4. Provider-only writes across clusters: a registry announcement from peer ``c`` may hold
       adverts of providers in ``c``'s tree only (``foreign-write``); within it, the registry's
       own rule (a provider's entries carry its own dots only) still holds when it merges.
    5. A peer's algedonic signal must come from its own tree; an audit checkpoint is kept as
       the peer's latest (with its chain head), for this tree's S3 to see.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from protocol._codec import seal
from protocol._envelope import (
    AlgedonicBody,
    AuditBody,
    CancelBody,
    Causality,
    Envelope,
    IntentBody,
    OutcomeBody,
    ProgressBody,
    RegistryBody,
    Sender,
)
from protocol._identity import Signer
from protocol._keystore import KeyStore
from protocol._transport import route_for
from protocol.errors import ProtocolError
from vsm.address import Address, SystemId, is_within
from vsm.crdt import HLC
from vsm.messages import (
    Algedonic,
    CancelIntent,
    IntentFinished,
    IntentProgress,
    Message,
    RegistryGossip,
    SubmitIntent,
)
from vsm.registry import RegistryDelta

__all__ = [
    "DEFAULT_TTL",
    "Federation",
    "Inbound",
    "Outgoing",
    "Peer",
    "Refused",
    "Unsupported",
    "peers_of",
    "traceparent_of",
]

DEFAULT_TTL = 60.0
"""Seconds an outcome, progress, registry, algedonic or audit envelope stays valid."""

MIN_TTL = 1.0
"""The shortest ttl an intent envelope gets (its deadline may be closer, or passed)."""


class Refused(ProtocolError, ValueError):
    """An envelope from a peer that the peer may not send (rule 2, 4, 5); never applied."""

    reason = "refused"

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message, reason=reason)


class Unsupported(ValueError):
    """A message addressed into a peer tree that does not cross clusters (rule 1)."""


@dataclass(frozen=True, slots=True)
class Peer:
    """A peer tree: its cluster's name, its root, the key it signs with, its exchanges."""

    cluster: str
    root: str
    key_id: str
    public_key: bytes
    prefix: str
    revoked: bool = False


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A sealed envelope to publish: to ``peer`` (a cluster), on ``exchange`` by ``route``."""

    peer: str
    exchange: str
    route: str
    data: bytes
    envelope: Envelope


@dataclass(frozen=True, slots=True)
class Inbound:
    """What an envelope from a peer means here: messages to deliver, or a checkpoint kept."""

    peer: str
    messages: tuple[tuple[str, SystemId, Message], ...] = ()
    checkpoint: dict[str, Any] | None = None


def traceparent_of(intent_id: str) -> str:
    """The W3C ``traceparent`` of an intent: its trace id derives from the id (rule 1)."""
    digest = hashlib.blake2b(intent_id.encode(), digest_size=24).digest()
    trace, span = digest[:16].hex(), digest[16:].hex()
    return f"00-{trace}-{span}-01"


@dataclass(slots=True)
class Federation:
    """The pure half of a cluster's bridge (see the module docstring).

    Args:
        cluster: This cluster's name.
        root: This tree's root name.
        signer: Signs every envelope (its key id is this cluster's).
        peers: The declared peer trees.
    """

    cluster: str
    root: str
    signer: Signer
    peers: Sequence[Peer]
    _by_root: dict[str, Peer] = field(init=False, repr=False)
    _by_key: dict[str, Peer] = field(init=False, repr=False)
    _clock: HLC = field(init=False, repr=False)
    keys: KeyStore = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._by_root = {p.root: p for p in self.peers}
        self._by_key = {p.key_id: p for p in self.peers}
        self._clock = HLC(f"{self.cluster}/{self.root}")
        self.keys = KeyStore()
        for peer in self.peers:
            self.keys.add(peer.key_id, peer.public_key)
            if peer.revoked:
                self.keys.revoke(peer.key_id)

    # ---------------------------------------------------------------- out

    def peer_of(self, path: str) -> Peer | None:
        """The peer whose tree holds ``path`` (``None``: this tree, or no known tree)."""
        return self._by_root.get(path.split("/", 1)[0])

    def outbound(self, path: str, system: SystemId, message: Message, now: float) -> Outgoing:
        """Seal ``message`` to ``system`` at ``path`` (in a peer tree) for its peer (rule 1).

        Raises:
            Unsupported: ``path`` is in no peer tree, or the message does not cross.
        """
        peer = self.peer_of(path)
        if peer is None:
            raise Unsupported(f"{path!r} lies in no peer tree ({sorted(self._by_root)})")
        match message:
            case SubmitIntent(intent=intent, reply_to=reply_to) if system is SystemId.S5:
                if reply_to is None or intent.composite:
                    raise Unsupported("only a routed, single intent crosses to a peer")
                ttl = (intent.deadline - now) if intent.deadline is not None else DEFAULT_TTL
                return self._seal(
                    peer,
                    "intents",
                    path,
                    IntentBody.of(intent),
                    now,
                    max(ttl, MIN_TTL),
                    sender=reply_to.path,
                    trace=intent.id,
                    meta={"reply": reply_to.system.name},
                )
            case IntentFinished(outcome=outcome):
                intent_id = self._their_id(peer, outcome.intent_id)
                body = OutcomeBody.of(dataclasses.replace(outcome, intent_id=intent_id))
                return self._seal(
                    peer,
                    "intents",
                    path,
                    body,
                    now,
                    DEFAULT_TTL,
                    correlation=intent_id,
                    trace=intent_id,
                    meta={"system": system.name},
                )
            case IntentProgress() as progress:
                intent_id = self._their_id(peer, progress.intent_id)
                return self._seal(
                    peer,
                    "intents",
                    path,
                    ProgressBody.of(dataclasses.replace(progress, intent_id=intent_id)),
                    now,
                    DEFAULT_TTL,
                    correlation=intent_id,
                    trace=intent_id,
                    meta={"system": system.name},
                )
            case CancelIntent(intent_id=intent_id) as cancel if system is SystemId.S5:
                return self._seal(
                    peer,
                    "intents",
                    path,
                    CancelBody.of(cancel),
                    now,
                    DEFAULT_TTL,
                    correlation=intent_id,
                    trace=intent_id,
                )
            case Algedonic() as signal if system is SystemId.S5:
                signal_body = AlgedonicBody.of(signal)
                return self._seal(peer, "algedonic", path, signal_body, now, DEFAULT_TTL)
            case _:
                raise Unsupported(f"{type(message).__name__} to {system.name} does not cross")

    def announcement(self, delta: RegistryDelta, now: float) -> list[Outgoing]:
        """This tree's registry part, as one signed announcement per peer (rule 4)."""
        body = RegistryBody.of(delta)
        return [
            self._seal(peer, "announcements", peer.root, body, now, DEFAULT_TTL)
            for peer in self.peers
            if not peer.revoked
        ]

    def checkpoint(self, checkpoint: dict[str, Any], now: float) -> list[Outgoing]:
        """An S3 audit checkpoint of this tree's root, for every peer (rule 5)."""
        body = AuditBody(checkpoint=checkpoint)
        return [
            self._seal(peer, "audit", peer.root, body, now, DEFAULT_TTL)
            for peer in self.peers
            if not peer.revoked
        ]

    def _their_id(self, peer: Peer, intent_id: str) -> str:
        prefix = f"{peer.cluster}:"
        if not intent_id.startswith(prefix):
            raise Unsupported(f"intent {intent_id!r} did not come from {peer.cluster!r}")
        return intent_id[len(prefix) :]

    def _seal(
        self,
        peer: Peer,
        exchange: str,
        recipient: str,
        body: Any,
        now: float,
        ttl: float,
        *,
        sender: str | None = None,
        correlation: str | None = None,
        trace: str | None = None,
        meta: dict[str, str] | None = None,
    ) -> Outgoing:
        wall = int(now * 1000)
        envelope = Envelope.new(
            sender=Sender(
                path=sender or self.root, cluster=self.cluster, key_id=self.signer.key_id
            ),
            recipient=recipient,
            body=body,
            hlc=self._clock.now(wall),
            now=now,
            ttl=ttl if math.isfinite(ttl) else DEFAULT_TTL,
            correlation_id=correlation,
            # an envelope about no intent starts a trace of its own
            causality=Causality(traceparent=traceparent_of(trace or uuid.uuid4().hex)),
            meta=meta,
        )
        return Outgoing(
            peer.cluster, exchange, route_for(recipient), seal(envelope, self.signer), envelope
        )

    # ---------------------------------------------------------------- in

    def inbound(self, envelope: Envelope) -> Inbound:
        """What ``envelope`` (unsealed: signature, expiry and replay checked) means here.

        Raises:
            Refused: the peer may not send it (rules 2, 4, 5); the reason is a short code.
        """
        peer = self._by_key.get(envelope.sender.key_id)
        if peer is None:  # the key store knows only peers' keys: unseal refused it already
            raise Refused("unknown-key", f"key {envelope.sender.key_id!r} is no peer's")
        sender = envelope.sender
        if sender.cluster != peer.cluster:
            raise Refused(
                "wrong-cluster",
                f"key {sender.key_id!r} is {peer.cluster!r}'s; the sender says {sender.cluster!r}",
            )
        if not is_within(sender.path, peer.root):
            raise Refused(
                "foreign-path", f"{peer.cluster!r} sent as {sender.path!r}, outside {peer.root!r}"
            )
        body = envelope.body
        if isinstance(body, RegistryBody):
            return Inbound(peer.cluster, self._registry(peer, body))
        if isinstance(body, AuditBody):
            return Inbound(peer.cluster, checkpoint=dict(body.checkpoint))
        if not is_within(envelope.recipient, self.root):
            raise Refused("not-ours", f"{envelope.recipient!r} is not in this tree ({self.root!r})")
        to = envelope.recipient
        if isinstance(body, IntentBody):
            intent = body.intent()
            local = dataclasses.replace(intent, id=f"{peer.cluster}:{intent.id}")
            reply = _system(envelope.meta.get("reply", "S1"))
            submit = SubmitIntent(intent=local, reply_to=Address(sender.path, reply))
            return Inbound(peer.cluster, ((to, SystemId.S5, submit),))
        if isinstance(body, CancelBody):
            cancel = CancelIntent(intent_id=f"{peer.cluster}:{body.intent_id}", reason=body.reason)
            return Inbound(peer.cluster, ((to, SystemId.S5, cancel),))
        system = _system(envelope.meta.get("system", "S1"))
        if isinstance(body, OutcomeBody):
            return Inbound(peer.cluster, ((to, system, IntentFinished(outcome=body.outcome())),))
        if isinstance(body, ProgressBody):
            return Inbound(peer.cluster, ((to, system, body.progress()),))
        assert isinstance(body, AlgedonicBody)
        signal = body.algedonic()
        if not is_within(signal.source, peer.root):
            raise Refused("foreign-path", f"{peer.cluster!r} sent a signal of {signal.source!r}")
        return Inbound(peer.cluster, ((self.root, SystemId.S5, signal),))

    def _registry(
        self, peer: Peer, body: RegistryBody
    ) -> tuple[tuple[str, SystemId, Message], ...]:
        try:
            delta = body.delta()
        except ProtocolError as exc:
            problem = f"{peer.cluster!r} sent a bad registry delta: {exc}"
            raise Refused("undecodable", problem) from exc
        foreign = sorted(
            {a.provider for a in delta.adverts() if not is_within(a.provider, peer.root)}
        )
        if foreign:
            raise Refused(
                "foreign-write",
                f"{peer.cluster!r} announced adverts of {foreign[:5]}, outside {peer.root!r}",
            )
        gossip = RegistryGossip(delta=delta, origin=peer.root)
        return ((self.root, SystemId.S4, gossip),)


def _system(name: str) -> SystemId:
    try:
        return SystemId[name]
    except KeyError:
        raise Refused("undecodable", f"no System named {name!r}") from None


def peers_of(specs: Iterable[Any]) -> list[Peer]:
    """:class:`Peer` values from :class:`vsm.spec.PeerSpec` values."""
    return [
        Peer(p.cluster, p.root, p.key_id, bytes.fromhex(p.public_key), p.prefix, p.revoked)
        for p in specs
    ]
