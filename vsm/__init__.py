"""vsm — the Viable System Model, pure and sans-I/O.

Layer: the bottom of three (``vsm`` ← ``protocol`` ← ``actors``). This package imports no
``ray``, ``aio_pika`` or ``asyncio``, reads no wall clock and uses no global randomness: time,
randomness and keys come in as arguments. numpy is allowed. The rule is checked in CI by
import-linter (see ``pyproject.toml``).

Subpackages:
    vsm.crdt: hybrid logical clock and the delta-state CRDTs.
    vsm.registry: the capability registry, an ORMap of adverts.
    vsm.mechanisms: token buckets, adaptive rates, circuit breaker, restart intensity,
        failure detector.
    vsm.audit: the hash-chained audit log with signed checkpoints (S3).
    vsm.classify: intent classifiers (exact, BM25) for S1.
    vsm.systems: Systems 1 to 5 and the viable system that groups them.
    vsm.sim: the deterministic simulator.
    vsm.kernels: the pure functions leaf units run.

Modules: vsm.address, vsm.intents, vsm.messages, vsm.effects, vsm.spec, vsm.errors.
"""

from vsm.errors import ClockDriftError, ForeignWriteError, MalformedDataError, VsmError

__all__ = ["ClockDriftError", "ForeignWriteError", "MalformedDataError", "VsmError"]
