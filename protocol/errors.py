"""The exceptions of the wire.

Every error raised by ``protocol`` derives from :class:`ProtocolError` and from the built-in it
resembles, so callers may catch either::

    ProtocolError                            root; ``reason`` is a short machine-readable code
    ├── DecodeError     (ValueError)  "undecodable"   bytes that are not a valid envelope
    ├── SignatureError  (ValueError)  "bad-signature" a signature that does not verify
    ├── UnknownKeyError (KeyError)    "unknown-key"   a key id that is unknown, revoked or retired
    ├── ExpiredError    (ValueError)  "expired"       a message past its ``expires`` time
    ├── ReplayError     (ValueError)  "replayed"      a message already seen ("window-full":
    │                                                 the replay window has no room left)
    ├── TooLargeError   (ValueError)  "too-large"     bytes over a size limit
    └── KeyFileError    (ValueError)  "bad-key-file"  a key file that cannot be used

Who is at fault: every error but :class:`KeyFileError` describes something that arrived from a
remote peer (reject it, dead-letter it, never crash on it); :class:`KeyFileError` is local
configuration (fail at start-up). The ``reason`` code is what a transport writes into a
dead-letter header or a metric label; it never contains secrets or peer-controlled text.

:class:`KeyFileError` is a :class:`ValueError`, not an :class:`OSError`: most of what goes wrong
with a key file (not PEM, not Ed25519, encrypted, too large) is about its content, and an
``OSError`` promises ``errno`` semantics that such failures do not have. When the file cannot be
read at all, the ``OSError`` is kept as ``__cause__``.
"""

from __future__ import annotations

__all__ = [
    "DecodeError",
    "ExpiredError",
    "KeyFileError",
    "ProtocolError",
    "ReplayError",
    "SignatureError",
    "TooLargeError",
    "UnknownKeyError",
]

_SHOWN_BYTES = 32
"""How many raw bytes an error keeps and shows; the rest is cut."""


def _show(value: object, limit: int = 80) -> str:
    shown = repr(value)
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


class ProtocolError(Exception):
    """Root of every error raised by the wire.

    Attributes:
        reason: A short, stable, machine-readable code (``"replayed"``, ``"expired"``...), fit
            for a dead-letter header or a metric label. Each subclass sets a default.
    """

    reason: str = "protocol-error"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        if reason is not None:
            self.reason = reason
        super().__init__(message)


class DecodeError(ProtocolError, ValueError):
    """Bytes from a peer do not decode into a valid envelope (or snapshot).

    Attributes:
        raw: The first bytes of the offending input (cut to keep errors small).
        size: The full length of the input.
        cause: What went wrong: the underlying exception, or a description.
    """

    reason = "undecodable"

    def __init__(self, raw: bytes, cause: BaseException | str) -> None:
        self.raw = bytes(raw[:_SHOWN_BYTES])
        self.size = len(raw)
        self.cause = cause
        more = "..." if self.size > _SHOWN_BYTES else ""
        super().__init__(f"cannot decode {self.size} bytes {self.raw!r}{more}: {cause}")


class SignatureError(ProtocolError, ValueError):
    """A signature does not verify against the key it names.

    Attributes:
        key_id: The key the signature claims.
    """

    reason = "bad-signature"

    def __init__(self, key_id: str, problem: str = "the signature does not match") -> None:
        self.key_id = key_id
        super().__init__(f"signature by key {key_id!r} refused: {problem}")


class UnknownKeyError(ProtocolError, KeyError):
    """A key id is not in the key store, or its key was revoked or has retired.

    Attributes:
        key_id: The key id asked for.
    """

    reason = "unknown-key"

    def __init__(self, key_id: str, problem: str = "no such key in the key store") -> None:
        self.key_id = key_id
        super().__init__(f"key {_show(key_id)} refused: {problem}")

    def __str__(self) -> str:
        # KeyError.__str__ would repr() the message, quoting it a second time.
        return str(self.args[0])


class ExpiredError(ProtocolError, ValueError):
    """A message arrived at or after its ``expires`` time.

    Attributes:
        sender: Who sent it.
        expires: The message's expiry (seconds).
        now: The receiver's time it was compared with.
    """

    reason = "expired"

    def __init__(self, sender: str, expires: float, now: float) -> None:
        self.sender = sender
        self.expires = expires
        self.now = now
        super().__init__(
            f"message from {_show(sender)} expired at {expires!r}, and it is now {now!r}"
        )


class ReplayError(ProtocolError, ValueError):
    """A message was refused by the replay guard.

    ``reason`` is ``"replayed"`` when the (sender, nonce) pair was already recorded and has
    not expired, and ``"window-full"`` when the guard holds its maximum of unexpired entries
    and refuses anything new rather than forget one (retry later; the message is not at fault).

    Attributes:
        sender: Who sent it.
        nonce: The nonce it carried.
    """

    reason = "replayed"

    def __init__(
        self, sender: str, nonce: bytes, problem: str, *, reason: str | None = None
    ) -> None:
        self.sender = sender
        self.nonce = nonce
        super().__init__(
            f"message from {_show(sender)} with nonce {_show(nonce)} refused: {problem}",
            reason=reason,
        )


class TooLargeError(ProtocolError, ValueError):
    """Bytes exceed a configured size limit; nothing was decoded.

    Attributes:
        size: The size found, in bytes.
        limit: The largest size allowed, in bytes.
        what: What was measured (``"envelope"``, ``"body"``...).
    """

    reason = "too-large"

    def __init__(self, size: int, limit: int, what: str = "envelope") -> None:
        self.size = size
        self.limit = limit
        self.what = what
        super().__init__(f"{what} of {size} bytes is over the limit of {limit} bytes")


class KeyFileError(ProtocolError, ValueError):
    """A key file is missing, unreadable, or does not hold the kind of key expected.

    Attributes:
        path: The file.
        problem: What is wrong with it.
    """

    reason = "bad-key-file"

    def __init__(self, path: object, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"key file {str(path)!r}: {problem}")
