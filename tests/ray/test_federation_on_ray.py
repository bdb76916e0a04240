"""Federation: two trees, each with its own namespace and bridge, joined over the real RabbitMQ.

The trees share the session's Ray cluster but nothing else: each bridge talks only to the
broker (its own exchanges in, the peer's out), so what one tree learns of the other came as a
signed envelope. ``alpha`` (cluster ``ca``) has no maps; ``beta`` (cluster ``cb``) has them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import ray

from actors._bridge import BRIDGE, BridgeActor
from actors._federation_kit import federate, forget_broker_state
from actors._runtime import RayTree
from actors._tracing import s1_span_id, trace_ids
from actors.sdk import Client, IntentRefused
from protocol import (
    AmqpTransport,
    Envelope,
    Identity,
    IntentBody,
    RegistryBody,
    Sender,
    route_for,
    seal,
)
from vsm.address import SystemId
from vsm.crdt import Stamp
from vsm.intents import Intent, Refusal, Status
from vsm.messages import Algedonic
from vsm.registry import Advert, CapabilityRegistry
from vsm.spec import (
    CapabilitySpec,
    LimitsSpec,
    NodeSpec,
    PolicySpec,
    TracingSpec,
    TreeSpec,
)

pytestmark = pytest.mark.amqp

ROOT = Path(__file__).resolve().parents[2]


LIMITS = LimitsSpec(user_rate=1_000, user_burst=2_000, resend_every=1.0)


def _cap(name: str, kernel: str = "echo", zone: str = "default") -> CapabilitySpec:
    return CapabilitySpec(name=name, kernel=kernel, description=name, zone=zone, cpus=0)


class Pair:
    """Two federated trees and what the test needs to reach them."""

    def __init__(self, url: str, tmp: Path, tracing: TracingSpec | None = None) -> None:
        tag = uuid.uuid4().hex[:8]
        self.url = url
        alpha = TreeSpec(
            name=f"fed-alpha-{tag}",
            storage=str(tmp / "alpha.sqlite"),
            tracing=tracing,
            policy=PolicySpec(max_depth=2, zones={"bob": ("eu",)}),
            limits=LIMITS,
            root=NodeSpec(
                name="alpha",
                capabilities=(_cap("alpha.echo"),),
                templates=tuple(
                    NodeSpec(name=f"ta{i}", capabilities=(_cap(f"ta{i}.echo"),)) for i in range(3)
                ),
            ),
        )
        beta = TreeSpec(
            name=f"fed-beta-{tag}",
            storage=str(tmp / "beta.sqlite"),
            tracing=tracing,
            policy=PolicySpec(max_depth=2, zones={"alice": ("eu",)}),
            limits=LIMITS,
            root=NodeSpec(
                name="beta",
                capabilities=(_cap("beta.secret", zone="eu"),),
                templates=tuple(
                    NodeSpec(name=f"tb{i}", capabilities=(_cap(f"tb{i}.echo"),)) for i in range(3)
                ),
                children=(
                    NodeSpec(
                        name="maps",
                        capabilities=(
                            _cap("maps.sum", "sum"),
                            CapabilitySpec(name="maps.tunnel", kernel="tunnel", cpus=1),
                        ),
                    ),
                ),
            ),
        )
        self.alpha, self.beta = federate(alpha, beta, directory=tmp, url=url, tag=tag)
        self.trees: list[RayTree] = []

    def identity(self, spec: TreeSpec) -> Identity:
        assert spec.federation is not None
        return Identity.load(spec.federation.identity, spec.federation.key_id)

    def prefix(self, spec: TreeSpec) -> str:
        assert spec.federation is not None
        return spec.federation.prefix

    def start(self) -> tuple[RayTree, RayTree]:
        for spec in (self.alpha, self.beta):
            self.trees.append(RayTree.start(spec, timeout=120))
        for tree in self.trees:
            assert ray.get(tree.bridge().ready.remote(30.0)), "the bridge did not connect"
        return self.trees[0], self.trees[1]

    def stop(self) -> None:
        for tree in self.trees:
            with contextlib.suppress(Exception):
                tree.stop()
        asyncio.run(forget_broker_state(self.url, self.alpha, self.beta))


@pytest.fixture
def pair(ray_cluster: None, amqp_url: str, tmp_path: Path) -> Iterator[Pair]:
    made = Pair(amqp_url, tmp_path)
    try:
        yield made
    finally:
        made.stop()


@pytest.fixture
def traced_pair(ray_cluster: None, amqp_url: str, tmp_path: Path) -> Iterator[Pair]:
    """A pair whose trees (and bridges) write their spans to one file, ``spans.jsonl``."""
    made = Pair(amqp_url, tmp_path, TracingSpec(path=str(tmp_path / "spans.jsonl")))
    try:
        yield made
    finally:
        made.stop()


def wait_for(what: str, check: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s")
        time.sleep(0.2)


def root_digest(tree: RayTree) -> list[bytes]:
    return ray.get(tree.desk().registry_digest.remote(tree.spec.root.name))  # type: ignore[no-any-return]


def bridge_status(tree: RayTree) -> dict[str, Any]:
    return ray.get(tree.bridge().status.remote())  # type: ignore[no-any-return]


def test_a_tree_uses_a_capability_only_its_peer_offers(pair: Pair) -> None:
    """Alpha uses beta's maps, found through signed announcements; both registries converge.

    beta's S5 policy holds for alpha's users; strong pain at alpha's root reaches beta's; each
    bridge holds the other's signed audit checkpoint.
    """
    alpha, beta = pair.start()
    with Client(alpha.spec.name, user="bob") as client:
        wait_for(
            "beta's adverts in alpha's registry",
            lambda: {"maps.sum", "beta.secret"} <= {a["capability"] for a in client.registry()},
        )
        handle = client.submit("maps.sum", params={"values": [1, 2, 3, 4]}, timeout=20)
        outcome = handle.outcome(timeout=30)
        assert (outcome.status, outcome.result, outcome.path) == (
            Status.COMPLETED,
            10,
            "beta/maps",
        )
        assert outcome.intent_id == handle.id  # correlated back under alpha's own id
        federation = client.status()["federation"]
        assert federation["connected"]
        assert federation["counts"]["sent_intent"] >= 1
        stages = [(p.stage, p.path) for p in alpha.progress(handle.id)]
        assert ("routed", "alpha") in stages  # alpha's S1 sent it to the beta unit
        assert any(path.startswith("beta") for _, path in stages)  # beta's progress came back

        # beta's S5 decides for beta: bob may use zone eu at alpha, not at beta
        with pytest.raises(IntentRefused) as refused:
            client.ask("beta.secret", zone="eu", timeout=20)
        assert refused.value.outcome.reason is Refusal.POLICY
        assert refused.value.outcome.path == "beta"
        assert "not granted zone 'eu'" in refused.value.outcome.detail

    wait_for("equal registries", lambda: root_digest(alpha) == root_digest(beta))

    # strong pain at alpha's root crosses to beta's S5; each holds the other's signed audit head
    pain = Algedonic(source="alpha/x", intensity=-0.95, detail="a unit keeps failing")
    ray.get(alpha.desk().deliver.remote("alpha", SystemId.S5, pain))
    wait_for(
        "alpha's pain at beta's S5",
        lambda: any(
            e.kind == "algedonic" and e.path == "beta" and e.data.get("source") == "alpha/x"
            for e in beta.events()
        ),
    )
    for tree, peer in ((alpha, "cb"), (beta, "ca")):
        status = wait_for("a peer checkpoint", lambda t=tree: bridge_status(t)["peer_checkpoints"])
        assert peer in status
        status = bridge_status(tree)
        assert status["refused"] == {}
        assert status["counts"]["received_registry"] >= 1


def test_forged_replayed_and_expired_envelopes_change_nothing(pair: Pair) -> None:
    """Envelopes injected into alpha's exchanges: each refused with its reason, none applied."""
    alpha, beta = pair.start()
    beta_key = pair.identity(pair.beta)
    stranger = Identity.generate("stranger")
    now = time.time()

    def intent_envelope(signer: Identity, cluster: str, intent_id: str, **kw: Any) -> Envelope:
        return Envelope.new(
            sender=Sender(path="beta", cluster=cluster, key_id=signer.key_id),
            recipient="alpha",
            body=IntentBody.of(Intent(id=intent_id, capability="alpha.echo", user="u")),
            hlc=Stamp(int(now * 1000), 0, "beta"),
            now=kw.get("now", now),
            ttl=kw.get("ttl", 30.0),
            meta={"reply": "S1"},
        )

    registry = CapabilityRegistry("alpha/x")
    foreign = registry.advertise(
        Advert("alpha.fake", "alpha/x", "vsm:alpha/x", lease_expires_ms=int((now + 60) * 1000)),
        int(now * 1000),
    )
    legit = seal(intent_envelope(beta_key, "cb", "fine"), beta_key)
    injected = [
        ("intents", seal(intent_envelope(stranger, "cb", "forged"), stranger)),
        ("intents", legit),
        ("intents", legit),  # a replay of the one before
        ("intents", seal(intent_envelope(beta_key, "cb", "late", now=now - 100), beta_key)),
        ("intents", seal(intent_envelope(beta_key, "cx", "liar"), beta_key)),
        (
            "announcements",
            seal(
                Envelope.new(
                    sender=Sender(path="beta", cluster="cb", key_id=beta_key.key_id),
                    recipient="alpha",
                    body=RegistryBody.of(foreign),
                    hlc=Stamp(int(now * 1000), 0, "beta"),
                    now=now,
                    ttl=30.0,
                ),
                beta_key,
            ),
        ),
        ("algedonic", b"not an envelope at all"),
    ]

    async def inject() -> None:
        transport = await AmqpTransport.connect(pair.url, prefix=pair.prefix(pair.alpha))
        try:
            for exchange, data in injected:
                await transport.publish(exchange, route_for("alpha"), data)
        finally:
            await transport.close()

    asyncio.run(inject())
    expected = {
        "unknown-key": 1,
        "expired": 1,
        "wrong-cluster": 1,
        "foreign-write": 1,
        "undecodable": 1,
    }
    wait_for(
        "every injected envelope settled",
        lambda: (
            bridge_status(alpha)["refused"] == expected
            and bridge_status(alpha)["counts"].get("replayed") == 1
        ),
    )
    status = bridge_status(alpha)
    assert status["counts"]["replayed"] == 1
    assert status["counts"]["received_intent"] == 1  # only the legit one, once
    assert "alpha.fake" not in {a["capability"] for a in Client(alpha.spec.name).registry()}
    answered = alpha.replies()
    assert "fine" not in answered  # it ran as cb:fine and its answer went to beta
    _ = beta


def test_a_bridge_restarted_by_ray_still_refuses_what_it_took_before(pair: Pair) -> None:
    """The replay window is kept in the tree's SQLite file: a restart opens no replay window."""
    alpha, _ = pair.start()
    beta_key = pair.identity(pair.beta)
    now = time.time()
    sealed = seal(
        Envelope.new(
            sender=Sender(path="beta", cluster="cb", key_id=beta_key.key_id),
            recipient="alpha",
            body=IntentBody.of(Intent(id="once", capability="alpha.echo", user="u")),
            hlc=Stamp(int(now * 1000), 0, "beta"),
            now=now,
            ttl=60.0,
            meta={"reply": "S1"},
        ),
        beta_key,
    )

    async def inject() -> None:
        transport = await AmqpTransport.connect(pair.url, prefix=pair.prefix(pair.alpha))
        try:
            await transport.publish("intents", route_for("alpha"), sealed)
        finally:
            await transport.close()

    asyncio.run(inject())
    wait_for("taken", lambda: bridge_status(alpha)["counts"].get("received_intent") == 1)
    ray.kill(alpha.bridge(), no_restart=False)  # Ray restarts it (max_restarts=-1)

    def restarted() -> bool:
        try:
            counts = bridge_status(alpha)["counts"]
        except ray.exceptions.RayError:  # still restarting
            return False
        return "received_intent" not in counts  # a new process: its counts start at zero

    wait_for("the bridge restarted", restarted)
    assert ray.get(alpha.bridge().ready.remote(30.0))
    asyncio.run(inject())  # the same bytes again, to the new process

    def settled() -> bool:
        counts = bridge_status(alpha)["counts"]
        return bool(counts.get("replayed") or counts.get("received_intent"))

    wait_for("the copy settled", settled)
    counts = bridge_status(alpha)["counts"]
    assert (counts.get("replayed"), counts.get("received_intent")) == (1, None)
    assert counts["replay_window_loaded"] >= 1


def test_remote_intents_survive_a_broker_restart(pair: Pair) -> None:
    """Rabbitmqctl stop_app / start_app during a stream: one terminal outcome per intent."""
    ctl = shutil.which("rabbitmqctl")
    if ctl is None:
        message = "rabbitmqctl is not on PATH; restarting the broker needs it"
        if os.environ.get("VSM_REQUIRE_AMQP") == "1":
            pytest.fail(message)
        pytest.skip(message)
    alpha, _ = pair.start()
    with Client(alpha.spec.name, user="bob") as client:
        wait_for(
            "beta's maps in alpha",
            lambda: "maps.sum" in {a["capability"] for a in client.registry()},
        )
        handles = []
        for i in range(30):
            handles.append(
                client.submit(
                    "maps.sum", params={"values": [i, 1]}, timeout=45, intent_id=f"stream-{i}"
                )
            )
            if i == 10:
                subprocess.run([ctl, "stop_app"], check=True, capture_output=True)
            if i == 15:
                subprocess.run([ctl, "start_app"], check=True, capture_output=True)
            time.sleep(0.1)
        outcomes = [h.outcome(timeout=90) for h in handles]
    assert all(o.status in (Status.COMPLETED, Status.FAILED, Status.REJECTED) for o in outcomes)
    completed = [o for o in outcomes if o.status is Status.COMPLETED]
    assert all(o.result == i + 1 for i, o in enumerate(outcomes) if o.status is Status.COMPLETED)
    assert len(completed) >= 25, [str(o.status) + ":" + o.detail for o in outcomes]
    replies = alpha.replies()
    assert all(replies[f"stream-{i}"] == 1 for i in range(30)), replies
    assert bridge_status(alpha)["reconnects"] >= 1  # the restart did cut the bridge off


def test_a_partition_fails_remote_intents_at_their_deadline_and_heals(pair: Pair) -> None:
    """Beta's bridge goes away, then comes back.

    Local work goes on; a remote intent fails at its deadline, with the reason; one sent
    meanwhile waits in beta's queue and is served after the heal; the registries converge.
    """
    alpha, beta = pair.start()
    with Client(alpha.spec.name, user="bob") as client:
        wait_for(
            "beta's maps in alpha",
            lambda: "maps.sum" in {a["capability"] for a in client.registry()},
        )
        # Served once first, so beta's hosts hold a handle of the bridge that goes away.
        assert client.ask("maps.sum", params={"values": [2, 2]}, timeout=30) == 4
        ray.kill(beta.bridge(), no_restart=True)
        wait_for("beta's bridge gone", lambda: beta.bridge() is None)
        assert client.ask("alpha.echo", params={"k": 1}, timeout=10) == {"k": 1}
        started = time.monotonic()
        lost = client.submit("maps.sum", params={"values": [1]}, timeout=2).outcome(timeout=20)
        assert time.monotonic() - started < 10  # failed at its deadline, never hung
        assert (lost.status, lost.reason) == (Status.FAILED, Refusal.DEADLINE)
        assert "beta" in lost.detail
        sent = bridge_status(alpha)["counts"].get("sent_intent", 0)
        queued = client.submit("maps.sum", params={"values": [2, 3]}, timeout=60)
        wait_for(  # confirmed into beta's queue while nobody consumes it
            "the intent published", lambda: bridge_status(alpha)["counts"]["sent_intent"] > sent
        )
        BridgeActor.options(
            name=BRIDGE, namespace=beta.namespace, lifetime="detached", max_restarts=-1
        ).remote(beta.spec, beta.storage)
        assert queued.result(timeout=60) == 5
    wait_for("equal registries again", lambda: root_digest(alpha) == root_digest(beta))


def test_two_ray_clusters_join_over_the_broker(pair: Pair, tmp_path: Path) -> None:
    """Beta runs in another process, with a Ray cluster of its own.

    alpha uses its maps, and the two registries (each read in its own cluster) converge.
    """
    spec_file = tmp_path / "beta.json"
    spec_file.write_text(pair.beta.model_dump_json())
    with subprocess.Popen(
        [sys.executable, "-m", "tests.ray.peer_process", str(spec_file)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "RAY_ADDRESS": ""},
    ) as peer:
        try:
            _use_the_peer_cluster(pair, peer)
        finally:
            if peer.poll() is None:
                peer.kill()


def _use_the_peer_cluster(pair: Pair, peer: subprocess.Popen[str]) -> None:
    assert peer.stdout is not None
    assert peer.stdin is not None
    assert peer.stdout.readline().strip() == "READY"
    alpha = RayTree.start(pair.alpha, timeout=120)
    pair.trees.append(alpha)
    assert ray.get(alpha.bridge().ready.remote(30.0))
    with Client(alpha.spec.name, user="bob") as client:
        wait_for(
            "beta's maps in alpha",
            lambda: "maps.sum" in {a["capability"] for a in client.registry()},
        )
        assert client.ask("maps.sum", params={"values": [20, 22]}, timeout=20) == 42

    def converged() -> bool:
        peer.stdin.write("digest\n")  # type: ignore[union-attr]
        peer.stdin.flush()  # type: ignore[union-attr]
        theirs = json.loads(peer.stdout.readline())  # type: ignore[union-attr]
        return bool(theirs == [bucket.hex() for bucket in root_digest(alpha)])

    wait_for("equal registries across clusters", converged)
    peer.stdin.write("stop\n")
    peer.stdin.flush()
    assert peer.wait(timeout=60) == 0


def test_a_cancel_reaches_the_peer_tree(pair: Pair) -> None:
    """A remote intent cancelled while beta works on it.

    CANCELLED at once for the client, one outcome; beta's viable systems end it too, and the
    kernel's late result is dropped.
    """
    alpha, beta = pair.start()
    lattice = {"cells": 50, "barrier_height": 1.0, "barrier_width": 0.3, "well_width": 0.5}
    params = {"lattice": lattice, "e_min": 0.05, "e_max": 5.0, "points": 1_000_000}
    with Client(alpha.spec.name, user="bob") as client:
        wait_for(
            "beta's tunnel in alpha",
            lambda: "maps.tunnel" in {a["capability"] for a in client.registry()},
        )
        handle = client.submit("maps.tunnel", params=params, timeout=60)
        wait_for(
            "the intent routed inside beta",
            lambda: any(p.path.startswith("beta") for p in alpha.progress(handle.id)),
        )
        handle.cancel("no longer needed")
        outcome = handle.outcome(timeout=20)
        assert (outcome.status, outcome.reason) == (Status.FAILED, Refusal.CANCELLED)
        assert outcome.detail == "cancelled by the requester: no longer needed"
    wait_for(
        "beta ended it as cancelled",
        lambda: any(
            e.kind == "intent.failed"
            and e.data.get("intent") == f"ca:{handle.id}"
            and e.data.get("reason") == "cancelled"
            for e in beta.events()
        ),
    )
    time.sleep(2.0)  # the kernel's result comes back, and is dropped
    assert alpha.replies()[handle.id] == 1
    assert bridge_status(beta)["counts"]["received_cancel"] == 1


def test_registries_are_equal_after_concurrent_changes_on_both_sides(pair: Pair) -> None:
    """Both trees spawn children at once (each advertises): the roots' registries end equal."""
    alpha, beta = pair.start()
    wait_for("the first equal registries", lambda: root_digest(alpha) == root_digest(beta))
    with Client(alpha.spec.name) as a, Client(beta.spec.name) as b:
        handles = [
            client.submit(f"{side}{i}.echo", params={"i": i}, timeout=60)
            for i in range(3)
            for client, side in ((a, "ta"), (b, "tb"))
        ]
        assert [h.result(timeout=90) for h in handles] == [{"i": i} for i in range(3) for _ in "ab"]
        wanted = {f"{side}{i}.echo" for i in range(3) for side in ("ta", "tb")}
        for client in (a, b):
            wait_for(
                "every spawned child's advert on both sides",
                lambda c=client: wanted <= {x["capability"] for x in c.registry()},
                timeout=60,
            )
    wait_for("equal registries", lambda: root_digest(alpha) == root_digest(beta), timeout=60)


def test_a_remote_intent_is_one_trace_across_both_clusters(
    traced_pair: Pair, tmp_path: Path
) -> None:
    """Desk, S1s, bridges on both sides: one trace, from ids each side derives itself."""
    alpha, _ = traced_pair.start()
    with Client(alpha.spec.name, user="bob") as client:
        wait_for(
            "beta's maps in alpha",
            lambda: "maps.sum" in {a["capability"] for a in client.registry()},
        )
        assert client.ask("maps.sum", params={"values": [1, 2]}, intent_id="far", timeout=30) == 3
    trace, root = trace_ids("far")
    wanted = {
        "vsm.intent",
        "vsm.s1 alpha",
        "vsm.bridge.send intent",
        "vsm.bridge.receive intent",
        "vsm.s1 beta",
        "vsm.s1 beta/maps",
        "vsm.bridge.send outcome",
        "vsm.bridge.receive outcome",
    }
    out = tmp_path / "spans.jsonl"

    def spans() -> dict[str, dict[str, Any]]:
        found = {}
        for line in out.read_text().splitlines() if out.exists() else []:
            span = json.loads(line)
            if span["context"]["trace_id"] == f"0x{trace:032x}":
                found[span["name"]] = span
        return found

    found = wait_for("the spans of both sides", lambda: wanted <= set(spans()) and spans())
    trees = {name: span["resource"]["attributes"]["vsm.tree"] for name, span in found.items()}
    assert trees["vsm.bridge.send intent"] == trees["vsm.s1 alpha"] == alpha.spec.name
    assert trees["vsm.bridge.receive intent"] == trees["vsm.s1 beta"] != alpha.spec.name
    for name in wanted - {"vsm.intent"}:
        assert found[name]["parent_id"] == f"0x{root:016x}", name
    # beta ran it as "ca:far" and still derived the S1 span of "far"
    assert found["vsm.s1 beta"]["context"]["span_id"] == f"0x{s1_span_id('far', 'beta'):016x}"
    assert found["vsm.s1 beta"]["attributes"]["vsm.intent_id"] == "ca:far"
