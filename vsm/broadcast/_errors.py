"""The errors of the broadcaster, each naming who is at fault and showing the bad value.

Every error subclasses :class:`BroadcastError` (a :class:`~vsm.errors.VsmError`) and the
built-in it resembles, so a caller may catch either. All of them are the caller's fault
(a bad argument, an id it never had); the broadcaster never raises for what a subscriber does.
"""

from __future__ import annotations

from vsm.errors import VsmError

__all__ = [
    "ArgumentError",
    "BroadcastError",
    "SubscriptionError",
    "TopicError",
    "UnknownDeliveryError",
    "UnknownSubscriberError",
    "show",
]


def show(value: object, limit: int = 80) -> str:
    """``repr(value)``, cut to ``limit`` characters so that messages stay short."""
    shown = repr(value)
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


class BroadcastError(VsmError):
    """Root of every error raised by :mod:`vsm.broadcast`."""


class TopicError(BroadcastError, ValueError):
    """A topic or a subscription pattern is malformed.

    Attributes:
        what: ``"topic"`` or ``"pattern"``.
        value: The offending topic or pattern.
        problem: What is wrong with it, in words.
    """

    def __init__(self, what: str, value: object, problem: str) -> None:
        self.what = what
        self.value = value
        self.problem = problem
        super().__init__(f"bad {what} {show(value)}: {problem}")


class ArgumentError(BroadcastError, ValueError):
    """An argument is out of range: a subscription option, a setting, a ``now``, a reason.

    Attributes:
        name: The argument's name, dotted for nested options (``"buffer"``,
            ``"backoff.factor"``, ``"now"``).
        value: The offending value.
        expected: What the argument accepts, in words.
    """

    def __init__(self, name: str, value: object, expected: str) -> None:
        self.name = name
        self.value = value
        self.expected = expected
        super().__init__(f"{name} must be {expected}, got {show(value)}")


class SubscriptionError(BroadcastError, ValueError):
    """A subscription is refused: the id is malformed or taken, or the broadcaster is full.

    Attributes:
        subscriber_id: The id asked for.
    """

    def __init__(self, subscriber_id: object, problem: str) -> None:
        self.subscriber_id = subscriber_id
        super().__init__(f"cannot subscribe {show(subscriber_id)}: {problem}")


class UnknownSubscriberError(BroadcastError, KeyError):
    """No subscriber has this id (it never subscribed, or it unsubscribed).

    Attributes:
        subscriber_id: The id asked for.
    """

    def __init__(self, subscriber_id: object) -> None:
        self.subscriber_id = subscriber_id
        super().__init__(f"no subscriber {show(subscriber_id)}")

    def __str__(self) -> str:
        # KeyError.__str__ would repr() the message, quoting it a second time.
        return str(self.args[0])


class UnknownDeliveryError(BroadcastError, KeyError):
    """A delivery id that this broadcaster never handed out.

    A delivery id that *was* handed out and is settled, timed out or evicted is not an error:
    :meth:`~vsm.broadcast.Broadcaster.ack` and :meth:`~vsm.broadcast.Broadcaster.nack`
    return ``False`` for it (a late answer is normal under at-least-once delivery).

    Attributes:
        delivery_id: The id given.
    """

    def __init__(self, delivery_id: object) -> None:
        self.delivery_id = delivery_id
        super().__init__(f"delivery id {show(delivery_id)} was never handed out by ready()")

    def __str__(self) -> str:
        # KeyError.__str__ would repr() the message, quoting it a second time.
        return str(self.args[0])
