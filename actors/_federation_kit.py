"""Two federated trees on one machine, for the live tests, the benchmark and the docs.

:func:`federate` gives each of two tree specs a :class:`~vsm.spec.FederationSpec` naming the
other as its peer: a fresh Ed25519 key per cluster (written, private, under ``directory``),
exchange prefixes of their own (``tag`` keeps runs apart on a shared broker).
:func:`forget_broker_state` deletes the queues and exchanges a pair declared (they are durable
and would outlive it).
"""

from __future__ import annotations

from pathlib import Path

import aio_pika

from actors._bridge import bridge_queue
from protocol import EXCHANGES, Identity
from vsm.spec import FederationSpec, PeerSpec, TreeSpec

__all__ = ["federate", "forget_broker_state"]


def federate(
    first: TreeSpec,
    second: TreeSpec,
    *,
    directory: Path,
    url: str,
    tag: str,
    clusters: tuple[str, str] = ("ca", "cb"),
    announce_every: float = 0.5,
) -> tuple[TreeSpec, TreeSpec]:
    """``first`` and ``second`` joined as peers over the broker at ``url``."""
    trees = (first, second)
    keys = {c: Identity.generate(f"{c}-{tag}") for c in clusters}
    prefixes = {c: f"vsm-{tag}-{c}" for c in clusters}
    for cluster, identity in keys.items():
        identity.save(directory / f"{cluster}-{tag}.pem", overwrite=True)
    joined = []
    for k, tree in enumerate(trees):
        me, other = clusters[k], clusters[1 - k]
        peer = PeerSpec(
            cluster=other,
            root=trees[1 - k].root.name,
            key_id=keys[other].key_id,
            public_key=keys[other].public_key_bytes().hex(),
            prefix=prefixes[other],
        )
        federation = FederationSpec(
            cluster=me,
            key_id=keys[me].key_id,
            identity=str(directory / f"{me}-{tag}.pem"),
            prefix=prefixes[me],
            amqp_url=url,
            announce_every=announce_every,
            peers=(peer,),
        )
        joined.append(tree.model_copy(update={"federation": federation}))
    return joined[0], joined[1]


async def forget_broker_state(url: str, *trees: TreeSpec) -> None:
    """Delete the bridge queues, dead-letter queue and exchanges of federated ``trees``."""
    connection = await aio_pika.connect(url, timeout=10)
    async with connection:
        channel = await connection.channel()
        for tree in trees:
            federation = tree.federation
            if federation is None:
                continue
            prefix, cluster = federation.prefix, federation.cluster
            for exchange in EXCHANGES:
                await channel.queue_delete(f"{prefix}.{bridge_queue(cluster, exchange)}")
            await channel.queue_delete(f"{prefix}.dead")
            for exchange in [*EXCHANGES, "dead"]:
                await channel.exchange_delete(f"{prefix}.{exchange}")
