"""The exceptions of the model.

Every error raised by ``vsm`` derives from :class:`VsmError` and from the built-in it
resembles, so callers may catch either::

    VsmError
    ├── ClockDriftError      (ValueError)       a remote stamp is too far ahead of local time
    ├── MalformedDataError   (ValueError)       serialised data does not describe a valid state
    └── ForeignWriteError    (PermissionError)  a replica wrote an entry it does not own
"""

from __future__ import annotations

__all__ = ["ClockDriftError", "ForeignWriteError", "MalformedDataError", "VsmError"]


class VsmError(Exception):
    """Root of every error raised by the model."""


class ClockDriftError(VsmError, ValueError):
    """A stamp from another replica lies further ahead of local time than allowed.

    Attributes:
        remote_ms: The physical time of the offending stamp.
        local_ms: The local wall time it was compared with.
        max_drift_ms: The configured bound.
    """

    def __init__(self, remote_ms: int, local_ms: int, max_drift_ms: int) -> None:
        self.remote_ms = remote_ms
        self.local_ms = local_ms
        self.max_drift_ms = max_drift_ms
        super().__init__(
            f"remote stamp at {remote_ms} ms is {remote_ms - local_ms} ms ahead of local time "
            f"{local_ms} ms; the allowed drift is {max_drift_ms} ms"
        )


class MalformedDataError(VsmError, ValueError):
    """Serialised data does not describe a valid state.

    Attributes:
        what: The kind of state being decoded (``"ORSet"``, ``"Advert"``...).
        path: Where in the data the problem is, as a dotted path.
        value: The offending value (``repr`` is cut to keep messages short).
    """

    def __init__(self, what: str, path: str, problem: str, value: object = None) -> None:
        self.what = what
        self.path = path
        self.value = value
        shown = repr(value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        super().__init__(f"malformed {what} at {path or '<root>'}: {problem} (got {shown})")


class ForeignWriteError(VsmError, PermissionError):
    """A write, or a merged delta, touches an entry owned by another replica.

    Attributes:
        owner: The replica that owns the entry.
        writer: The replica that stamped the write.
        key: The entry's key.
    """

    def __init__(self, owner: str, writer: str, key: object, why: str | None = None) -> None:
        self.owner = owner
        self.writer = writer
        self.key = key
        super().__init__(
            why or f"entry {key!r} belongs to {owner!r}; a write stamped by {writer!r} is refused"
        )
