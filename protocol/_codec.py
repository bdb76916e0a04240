"""The envelope codec: msgpack frames whose signature covers the exact body bytes.

A sealed envelope is the msgpack array ``[FRAME_VERSION, key_id, body_bytes, signature]``:
``body_bytes`` is the msgpack of the envelope as plain data, and ``signature`` is the signer's
signature of ``DOMAIN + body_bytes``. msgpack has no canonical form, so nothing is re-encoded
to check a signature: the bytes signed are the bytes sent.

:func:`unseal` checks, in this order, and raises the first failure:

    1. size (:class:`~protocol.errors.TooLargeError`, before any parsing);
    2. the outer frame parses (:class:`~protocol.errors.DecodeError`);
    3. the signature verifies (:class:`~protocol.errors.UnknownKeyError`,
       :class:`~protocol.errors.SignatureError`);
    4. the body decodes and validates into an :class:`Envelope` (``DecodeError``; a newer
       ``schema_version`` is ``DecodeError`` with ``reason="unsupported-version"``);
    5. the frame's key id is the sender's (``SignatureError``);
    6. expiry (:class:`~protocol.errors.ExpiredError`);
    7. replay (:class:`~protocol.errors.ReplayError`) via :meth:`ReplayGuard.check`.

Decoding (4) comes before the replay check because the nonce and expiry live inside the signed
body; the signature has been checked by then. Nothing but a
:class:`~protocol.errors.ProtocolError` ever escapes :func:`unseal`, whatever the bytes.
:func:`unseal` records nothing: once the envelope's effect is committed, the receiver calls
``guard.record(*replay_id(envelope))``.
"""

from __future__ import annotations

from typing import Any

import msgpack
from pydantic import ValidationError

from protocol._envelope import SCHEMA_VERSION, Envelope
from protocol._identity import Signer
from protocol._keystore import Verifier
from protocol._replay import ReplayGuard
from protocol.errors import (
    DecodeError,
    ExpiredError,
    ProtocolError,
    SignatureError,
    TooLargeError,
)

__all__ = ["DOMAIN", "FRAME_VERSION", "MAX_ENVELOPE_SIZE", "replay_id", "seal", "unseal"]

DOMAIN = b"vsm-ray/amcp/v1\x00"
"""Domain-separation prefix of every envelope signature."""

FRAME_VERSION = 1
"""The outer frame's version (the first element of the array)."""

MAX_ENVELOPE_SIZE = 1_048_576
"""Default size limit of a sealed envelope, in bytes."""


def _refuse_ext(code: int, data: bytes) -> Any:
    raise ValueError(f"msgpack extension type {code} is not allowed")


def _unpack(data: bytes) -> Any:
    size = len(data)
    try:
        return msgpack.unpackb(
            data,
            raw=False,
            strict_map_key=True,
            use_list=True,
            ext_hook=_refuse_ext,
            max_str_len=size,
            max_bin_len=size,
            max_array_len=size,
            max_map_len=size,
            max_ext_len=0,
        )
    except Exception as exc:  # msgpack raises ValueError, TypeError, UnicodeDecodeError...
        raise DecodeError(data, exc) from exc


def seal(envelope: Envelope, identity: Signer) -> bytes:
    """Encode and sign ``envelope`` with ``identity``; return the frame to send.

    Raises:
        ValueError: ``identity.key_id`` is not the envelope's ``sender.key_id``.
        TypeError: plain data in the body that msgpack cannot encode.
    """
    if identity.key_id != envelope.sender.key_id:
        raise ValueError(
            f"identity {identity.key_id!r} cannot seal an envelope from key "
            f"{envelope.sender.key_id!r}"
        )
    body = msgpack.packb(envelope.model_dump(mode="python"), use_bin_type=True)
    signature = identity.sign(DOMAIN + body)
    return msgpack.packb([FRAME_VERSION, identity.key_id, body, signature], use_bin_type=True)


def unseal(
    data: bytes,
    keys: Verifier,
    guard: ReplayGuard,
    now: float,
    *,
    max_size: int = MAX_ENVELOPE_SIZE,
) -> Envelope:
    """Check and decode a frame from :func:`seal`; record nothing (see the module docstring).

    Raises:
        TooLargeError: ``data`` is longer than ``max_size``.
        DecodeError: the frame or the body is not a valid envelope of a known schema.
        UnknownKeyError: the frame's key is unknown, revoked or retired.
        SignatureError: the signature does not verify, or the key is not the sender's.
        ExpiredError: the envelope expired at or before ``now``.
        ReplayError: the guard refused it (already seen, or its window is full).
    """
    try:
        return _unseal(data, keys, guard, now, max_size)
    except ProtocolError:
        raise
    except Exception as exc:  # rule: only ProtocolError leaves, whatever arrived
        raise DecodeError(bytes(data) if isinstance(data, bytes | bytearray) else b"", exc) from exc


def _unseal(data: bytes, keys: Verifier, guard: ReplayGuard, now: float, max_size: int) -> Envelope:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise DecodeError(b"", f"expected bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) > max_size:
        raise TooLargeError(len(data), max_size)
    frame = _unpack(data)
    if type(frame) is not list or len(frame) != 4:
        raise DecodeError(data, "the frame is not [version, key_id, body, signature]")
    version, key_id, body, signature = frame
    if type(version) is not int or version != FRAME_VERSION:
        raise DecodeError(data, f"unknown frame version {version!r}")
    if type(key_id) is not str or not key_id:
        raise DecodeError(data, "the frame's key id is not a non-empty str")
    if type(body) is not bytes or type(signature) is not bytes:
        raise DecodeError(data, "the frame's body and signature must be bytes")
    keys.verify(key_id, DOMAIN + body, signature, now)
    plain = _unpack(body)
    if type(plain) is dict:
        version = plain.get("schema_version")
        if type(version) is int and version > SCHEMA_VERSION:
            error = DecodeError(
                body, f"schema version {version} is newer than {SCHEMA_VERSION}; upgrade"
            )
            error.reason = "unsupported-version"
            raise error
    try:
        envelope = Envelope.model_validate(plain)
    except ValidationError as exc:
        raise DecodeError(body, exc) from exc
    if envelope.sender.key_id != key_id:
        raise SignatureError(key_id, "the frame's key is not the sender's key")
    sender, nonce, expires = replay_id(envelope)
    if not expires > now:
        raise ExpiredError(sender, expires, now)
    guard.check(sender, nonce, expires, now)
    return envelope


def replay_id(envelope: Envelope) -> tuple[str, bytes, float]:
    """``(sender_id, nonce, expires)`` of ``envelope``, for ``guard.record`` after the effect.

    ``sender_id`` is ``"cluster/path#key_id"``.
    """
    return envelope.replay_id()
