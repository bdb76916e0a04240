"""Benchmark ``federation``: intents served by a peer tree over RabbitMQ.

Against the same intents served locally, and against raw aio-pika request/reply.

Two trees on the local Ray cluster, each with its own namespace and bridge, joined over the
broker at ``VSM_AMQP_URL`` (default ``amqp://guest:guest@127.0.0.1:5672/``): ``alpha``
(root, and a child ``local`` offering ``local.sum``) and ``beta`` (root, and a child ``maps``
offering ``maps.sum``). Both capabilities run the ``sum`` kernel inline, one level below the
root, so the only difference is the way between the trees.

remote_intents_per_s
    One client pipelines N intents (``--quick``: N/5) for ``maps.sum`` to alpha and waits for
    every outcome. Each crosses twice as signed envelopes over the broker (the intent out;
    outcome and progress back), with publisher confirms, persistent messages, quorum queues
    and the receive checks (signature, expiry, replay). Checked: every outcome completed
    with the right sum.

remote_latency_ratio
    Median seconds of one remote intent (submitted, awaited) over the median of one local
    intent (``local.sum`` at alpha), interleaved, same run.

remote_vs_aiopika_ratio
    remote intents per second over raw aio-pika request/reply per second: a responder
    consuming a queue and publishing each reply to the requester's queue (the aio-pika RPC
    pattern: transient, no confirms), N requests of the size of an intent envelope
    pipelined from one connection, same broker, same run.

local_intents_per_s is reported beside: the same N pipelined intents served by ``local.sum``.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import tempfile
import time
import uuid
from pathlib import Path

import aio_pika
import ray

from actors._federation_kit import federate, forget_broker_state
from actors._runtime import RayTree
from bench._harness import Figure, Progress, Report, check, median
from vsm.intents import Intent, Status
from vsm.spec import CapabilitySpec, LimitsSpec, NodeSpec, TreeSpec

__all__ = ["run"]

URL = os.environ.get("VSM_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
INTENTS = 1_000
LATENCY_SAMPLES = 100
RUNS = 3
QUICK_RUNS = 2
PAYLOAD = 512  # bytes of a raw request: about a signed intent envelope

LIMITS = LimitsSpec(
    user_rate=1e6,
    user_burst=1e6,
    capability_rate=1e6,
    capability_burst=1e6,
    max_in_flight=100_000,
    resend_every=60.0,  # measure the way, not the resends of intents queued behind others
)


def _tree(name: str, root: str, child: str, tag: str, directory: Path) -> TreeSpec:
    capability = CapabilitySpec(name=f"{child}.sum", kernel="sum", description="sum", cpus=0)
    return TreeSpec(
        name=f"bench-{name}-{tag}",
        storage=str(directory / f"{name}.sqlite"),
        limits=LIMITS,
        root=NodeSpec(name=root, children=(NodeSpec(name=child, capabilities=(capability,)),)),
    )


def _pipelined(tree: RayTree, capability: str, count: int, prefix: str) -> float:
    intents = [
        Intent(id=f"{prefix}-{i}", capability=capability, params={"values": [i, 1]}, user="u")
        for i in range(count)
    ]
    start = time.perf_counter()
    outcomes = ray.get([tree.submit(intent) for intent in intents], timeout=600)
    elapsed = time.perf_counter() - start
    check(
        all(o.status is Status.COMPLETED for o in outcomes)
        and [o.result for o in outcomes] == [i + 1 for i in range(count)],
        f"every pipelined {capability} intent completed with its sum",
    )
    return elapsed


async def _aiopika_rate(count: int) -> float:
    """Raw aio-pika request/reply: requests per second, ``count`` pipelined."""
    connection = await aio_pika.connect(URL, timeout=10)
    async with connection:
        channel = await connection.channel()
        requests = await channel.declare_queue(f"bench-rpc-{uuid.uuid4().hex}", auto_delete=True)
        replies = await channel.declare_queue(exclusive=True, auto_delete=True)

        async def respond(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            await channel.default_exchange.publish(
                aio_pika.Message(body=message.body, correlation_id=message.correlation_id),
                routing_key=str(message.reply_to),
            )
            await message.ack()

        await requests.consume(respond)
        done = asyncio.Event()
        answered: set[str] = set()

        async def collect(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            answered.add(str(message.correlation_id))
            await message.ack()
            if len(answered) == count:
                done.set()

        await replies.consume(collect)
        body = os.urandom(PAYLOAD)
        start = time.perf_counter()
        for i in range(count):
            await channel.default_exchange.publish(
                aio_pika.Message(body=body, correlation_id=str(i), reply_to=replies.name),
                routing_key=requests.name,
            )
        await asyncio.wait_for(done.wait(), 300)
        elapsed = time.perf_counter() - start
    check(len(answered) == count, "every raw request was answered")
    return count / elapsed


def run(quick: bool) -> Report:
    """Run remote and local intents, and raw aio-pika request/reply; return the figures."""
    say = Progress()
    count = INTENTS // 5 if quick else INTENTS
    runs = QUICK_RUNS if quick else RUNS
    samples = LATENCY_SAMPLES // 3 if quick else LATENCY_SAMPLES
    started_here = not ray.is_initialized()
    if started_here:
        say("starting a local Ray cluster")
        ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
    tag = uuid.uuid4().hex[:8]
    with tempfile.TemporaryDirectory() as folder:
        directory = Path(folder)
        alpha_spec, beta_spec = federate(
            _tree("alpha", "alpha", "local", tag, directory),
            _tree("beta", "beta", "maps", tag, directory),
            directory=directory,
            url=URL,
            tag=tag,
        )
        trees: list[RayTree] = []
        try:
            say(f"starting two federated trees over {URL.split('@')[-1]}")
            trees = [RayTree.start(alpha_spec), RayTree.start(beta_spec)]
            alpha = trees[0]
            for tree in trees:
                check(bool(ray.get(tree.bridge().ready.remote(30.0))), "the bridge connected")
            ids = itertools.count()
            deadline = time.monotonic() + 60
            while (
                alpha.ask(Intent(id=f"probe{next(ids)}", capability="maps.sum", user="u")).status
                is not Status.COMPLETED
            ):
                check(time.monotonic() < deadline, "beta's maps became reachable from alpha")
                time.sleep(0.5)
            remote: list[float] = []
            local: list[float] = []
            raw: list[float] = []
            for run_index in range(runs):
                say(f"run {run_index + 1}/{runs}: {count:,} remote, local, raw aio-pika")
                remote.append(_pipelined(alpha, "maps.sum", count, f"r{run_index}"))
                local.append(_pipelined(alpha, "local.sum", count, f"l{run_index}"))
                raw.append(asyncio.run(_aiopika_rate(count)))
            say(f"latency: {samples} single intents, remote and local interleaved")
            one_remote: list[float] = []
            one_local: list[float] = []
            for _ in range(samples):
                for capability, into in (("maps.sum", one_remote), ("local.sum", one_local)):
                    intent = Intent(
                        id=f"s{next(ids)}", capability=capability, params={"values": [1]}, user="u"
                    )
                    start = time.perf_counter()
                    outcome = alpha.ask(intent, timeout=60)
                    into.append(time.perf_counter() - start)
                    check(outcome.status is Status.COMPLETED, "a single intent completed")
        finally:
            for tree in trees:
                tree.stop()
            asyncio.run(forget_broker_state(URL, alpha_spec, beta_spec))
            if started_here:
                ray.shutdown()
    remote_rate = count / median(remote)
    local_rate = count / median(local)
    raw_rate = median(raw)
    return Report(
        bench="federation",
        quick=quick,
        size=(
            f"{count:,} intents pipelined from one client, median of {runs} runs; latency: "
            f"median of {samples}; two trees on one Ray cluster, bridges over RabbitMQ"
        ),
        baseline=(
            "the same intents served by alpha's own child (local), and raw aio-pika "
            f"request/reply ({PAYLOAD}-byte requests, transient, no confirms), same broker, "
            "same run"
        ),
        figures=(
            Figure(
                "remote_intents_per_s",
                remote_rate,
                "1",
                "intents per second served by the peer tree, pipelined from one client",
            ),
            Figure("local_intents_per_s", local_rate, "1", "the same, served in alpha itself"),
            Figure(
                "remote_latency_ratio",
                median(one_remote) / median(one_local),
                "x",
                "median latency of one remote intent / of one local intent",
            ),
            Figure("remote_latency_s", median(one_remote), "s", "median latency, remote"),
            Figure("local_latency_s", median(one_local), "s", "median latency, local"),
            Figure(
                "remote_vs_aiopika_ratio",
                remote_rate / raw_rate,
                "x",
                "remote intents/s / raw aio-pika request-reply/s",
            ),
            Figure("aiopika_requests_per_s", raw_rate, "1", "raw aio-pika request/reply per s"),
        ),
    )
