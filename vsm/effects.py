"""Effects: what a System asks its host to do. Data only; the host carries them out.

A System's ``handle(message, now)`` returns a list of these. The simulator carries them out on
virtual time; the Ray shell carries them out with actor calls and tasks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import field
from typing import Any

from vsm._record import record
from vsm.address import Address
from vsm.intents import Outcome
from vsm.messages import IntentProgress, Message
from vsm.spec import NodeSpec

__all__ = [
    "Cancel",
    "Effect",
    "Emit",
    "Event",
    "Notify",
    "Reply",
    "RunKernel",
    "Schedule",
    "Send",
    "Spawn",
    "Stop",
    "StopKernel",
]


@record
class Event:
    """A structured fact for observers (metrics, the event stream, the rule runtime).

    Attributes:
        kind: Dotted kind: ``intent.accepted``, ``intent.completed``, ``unit.health``...
        path: The viable system it happened in.
        at: When (the ``now`` of the handler that emitted it).
        data: Details (msgpack-plain).
    """

    kind: str
    path: str
    at: float
    data: Mapping[str, Any] = field(default_factory=dict)


@record
class Send:
    """Deliver ``message`` to ``to``."""

    to: Address
    message: Message


@record
class Reply:
    """Deliver an intent's terminal outcome: to ``to`` as ``IntentFinished``, or to the client."""

    to: Address | None
    outcome: Outcome


@record
class Notify:
    """Deliver progress of an intent: to ``to`` as ``IntentProgress``, or to the client's stream."""

    to: Address | None
    progress: IntentProgress


@record
class Spawn:
    """Start (or restart) the child viable system ``spec`` at ``path``."""

    path: str
    spec: NodeSpec


@record
class Stop:
    """Stop the viable system at ``path`` and everything below it."""

    path: str
    reason: str


@record
class Emit:
    """Publish an event."""

    event: Event


@record
class Schedule:
    """Deliver ``message`` to ``to`` after ``delay`` seconds.

    ``background`` timers (heartbeats, sweeps, gossip) do not keep a simulation from going
    quiet. A timer with a ``key`` can be cancelled; keys are unique per viable system.
    """

    delay: float
    to: Address
    message: Message
    background: bool = False
    key: str | None = None


@record
class Cancel:
    """Cancel the pending timer scheduled with ``key`` (nothing happens if it has fired)."""

    key: str


@record
class RunKernel:
    """Run ``kernel`` on ``params`` for an intent; answer ``KernelFinished`` to ``reply_to``.

    ``cpus`` is what the kernel's task asks of the cluster; ``0`` runs it inside the host
    (for trivial kernels, where a task would cost more than the work).
    """

    kernel: str
    params: Mapping[str, Any]
    intent_id: str
    reply_to: Address
    cpus: float = 1.0


@record
class StopKernel:
    """Stop the kernel running for ``intent_id``: its result is no longer wanted.

    Nothing happens if it has finished; its ``KernelFinished``, if it still comes, is dropped.
    """

    intent_id: str


Effect = Send | Reply | Notify | Spawn | Stop | Emit | Schedule | Cancel | RunKernel | StopKernel
"""Every effect a System may return."""
