"""Signing identities: Ed25519 at trust boundaries, HMAC-SHA256 inside one trusted cluster.

Rules:
    1. An identity is a key and a ``key_id``; the id travels with every signature so that a
       verifier finds the matching key in its :class:`~protocol.KeyStore`. The verifier, not
       the sender, decides which algorithm a key id uses (no algorithm field to lie in).
    2. :class:`Identity` (Ed25519, the ``cryptography`` package) is the default, and the only
       choice between clusters and for clients. :class:`HmacIdentity` (HMAC-SHA256, a shared
       secret of at least 32 bytes) is an explicit, cheaper choice for traffic that stays inside
       one cluster whose members all hold the secret: any holder can sign as any other.
    3. Private keys are stored as unencrypted PKCS8 PEM, created with mode 0600 and written
       atomically (temporary file, then rename); :meth:`Identity.save` refuses to replace an
       existing file unless asked.
    4. Loading a private key whose file group or others may read is allowed but logged as a
       warning: container runtimes mount secrets 0644 by default, and refusing to start there
       would push operators to worse workarounds. Everything else that is wrong with a key file
       (missing, unreadable, too large, not PEM, encrypted, not Ed25519) is a
       :class:`~protocol.errors.KeyFileError` naming the path and the problem.
    5. Secrets never appear in ``repr``, logs or error messages.

Both identity classes satisfy :class:`Signer`, which has the shape of :class:`vsm.audit.Signer`,
so either can sign audit checkpoints too.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
from pathlib import Path
from typing import ClassVar, Protocol, runtime_checkable

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from protocol.errors import KeyFileError

__all__ = [
    "ED25519_PUBLIC_KEY_SIZE",
    "ED25519_SIGNATURE_SIZE",
    "HMAC_SIGNATURE_SIZE",
    "MAX_KEY_FILE_SIZE",
    "MIN_HMAC_SECRET_SIZE",
    "HmacIdentity",
    "Identity",
    "Signer",
    "load_public_key",
]

logger = logging.getLogger(__name__)

ED25519_PUBLIC_KEY_SIZE = 32
"""Length of a raw Ed25519 public key, in bytes."""

ED25519_SIGNATURE_SIZE = 64
"""Length of an Ed25519 signature, in bytes."""

HMAC_SIGNATURE_SIZE = hashlib.sha256().digest_size
"""Length of an HMAC-SHA256 signature, in bytes."""

MIN_HMAC_SECRET_SIZE = 32
"""The shortest HMAC secret accepted, in bytes (the SHA-256 output size)."""

MAX_KEY_FILE_SIZE = 64 * 1024
"""Key files larger than this are refused unread: no key is that big."""


@runtime_checkable
class Signer(Protocol):
    """Something that signs with one key; the shape of :class:`vsm.audit.Signer`."""

    @property
    def key_id(self) -> str:
        """The id under which verifiers find the matching key."""
        ...

    def sign(self, message: bytes) -> bytes:
        """Return the signature of ``message``."""
        ...


def _check_key_id(key_id: str) -> str:
    if not isinstance(key_id, str) or not key_id:
        raise ValueError(f"key_id must be a non-empty str, got {key_id!r}")
    return key_id


def _read_key_file(path: Path) -> bytes:
    try:
        with path.open("rb") as file:
            data = file.read(MAX_KEY_FILE_SIZE + 1)
    except FileNotFoundError as exc:
        raise KeyFileError(path, "no such file") from exc
    except IsADirectoryError as exc:
        raise KeyFileError(path, "is a directory, not a key file") from exc
    except OSError as exc:
        raise KeyFileError(path, f"cannot be read ({exc.strerror or exc})") from exc
    if len(data) > MAX_KEY_FILE_SIZE:
        raise KeyFileError(path, f"is larger than {MAX_KEY_FILE_SIZE} bytes; not a key file")
    return data


def _warn_if_readable_by_others(path: Path) -> None:
    if os.name != "posix":
        return
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        logger.warning(
            "private key file %s has mode %04o; group and others should have no access (chmod 600)",
            path,
            mode,
        )


class Identity:
    """An Ed25519 signing identity: a private key and the id verifiers know it by.

    Args:
        key_id: The id written next to every signature.
        private_key: The Ed25519 private key.

    Raises:
        ValueError: ``key_id`` is empty.
    """

    __slots__ = ("_key", "_key_id")

    algorithm: ClassVar[str] = "ed25519"
    """Name of the signature algorithm."""

    def __init__(self, key_id: str, private_key: Ed25519PrivateKey) -> None:
        self._key_id = _check_key_id(key_id)
        self._key = private_key

    @classmethod
    def generate(cls, key_id: str) -> Identity:
        """Make an identity with a fresh random key (from the OS's CSPRNG)."""
        return cls(key_id, Ed25519PrivateKey.generate())

    @property
    def key_id(self) -> str:
        """The id verifiers find this identity's public key under."""
        return self._key_id

    def sign(self, message: bytes) -> bytes:
        """Return the 64-byte Ed25519 signature of ``message``."""
        return self._key.sign(message)

    def public_key_bytes(self) -> bytes:
        """Return the raw 32-byte public key, as :meth:`KeyStore.add` takes it."""
        return self._key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )

    def public_key_pem(self) -> bytes:
        """Return the public key as SubjectPublicKeyInfo PEM, as :func:`load_public_key` reads."""
        return self._key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def to_pem(self) -> bytes:
        """Return the private key as unencrypted PKCS8 PEM. Handle it as a secret."""
        return self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    @classmethod
    def from_pem(cls, key_id: str, pem: bytes, *, source: object = "<bytes>") -> Identity:
        """Rebuild an identity from :meth:`to_pem` output.

        Args:
            key_id: The id to give the identity.
            pem: Unencrypted PKCS8 PEM holding an Ed25519 private key.
            source: Where ``pem`` came from, named in errors (a path, or ``"<bytes>"``).

        Raises:
            KeyFileError: ``pem`` is not PEM, is encrypted, or holds another kind of key.
        """
        try:
            key = serialization.load_pem_private_key(pem, password=None)
        except TypeError as exc:  # the only TypeError here: an encrypted key, no password
            raise KeyFileError(
                source,
                "holds an encrypted private key; store it unencrypted with mode 0600 instead",
            ) from exc
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise KeyFileError(source, f"is not a PEM private key ({exc})") from exc
        if not isinstance(key, Ed25519PrivateKey):
            raise KeyFileError(source, f"holds a {type(key).__name__}, expected an Ed25519 key")
        return cls(key_id, key)

    def save(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> None:
        """Write the private key to ``path`` as PKCS8 PEM with mode 0600, atomically (rule 3).

        Raises:
            KeyFileError: ``path`` exists and ``overwrite`` is false, or it cannot be written.
        """
        target = Path(path)
        if target.exists() and not overwrite:
            raise KeyFileError(target, "already exists; pass overwrite=True to replace it")
        temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        try:
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.fchmod(descriptor, 0o600)  # umask may only remove bits; make it exact
                os.write(descriptor, self.to_pem())
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
            os.replace(temporary, target)
        except OSError as exc:
            temporary.unlink(missing_ok=True)
            raise KeyFileError(target, f"cannot be written ({exc.strerror or exc})") from exc

    @classmethod
    def load(cls, path: str | os.PathLike[str], key_id: str | None = None) -> Identity:
        """Read an identity saved by :meth:`save` (rule 4).

        Args:
            path: The PEM file.
            key_id: The id to give the identity; defaults to the file name without its
                suffix (``keys/root-2025.pem`` is ``"root-2025"``).

        Raises:
            KeyFileError: the file is missing, unreadable, not PEM, or not an Ed25519 key.
        """
        source = Path(path)
        name = source.stem if key_id is None else key_id
        identity = cls.from_pem(name, _read_key_file(source), source=source)
        _warn_if_readable_by_others(source)
        return identity

    def __repr__(self) -> str:
        return f"Identity(key_id={self._key_id!r}, public={self.public_key_bytes()[:8].hex()}…)"


class HmacIdentity:
    """An HMAC-SHA256 signing identity for traffic inside one trusted cluster (rule 2).

    Args:
        key_id: The id written next to every signature.
        secret: The shared secret, at least :data:`MIN_HMAC_SECRET_SIZE` bytes.

    Raises:
        ValueError: ``key_id`` is empty or ``secret`` is too short (its length is shown, never
            its bytes).
    """

    __slots__ = ("_key_id", "_secret")

    algorithm: ClassVar[str] = "hmac-sha256"
    """Name of the signature algorithm."""

    def __init__(self, key_id: str, secret: bytes) -> None:
        self._key_id = _check_key_id(key_id)
        if not isinstance(secret, bytes) or len(secret) < MIN_HMAC_SECRET_SIZE:
            shown = f"{len(secret)} bytes" if isinstance(secret, bytes) else type(secret).__name__
            raise ValueError(
                f"HMAC secret for {key_id!r} must be bytes of length >= {MIN_HMAC_SECRET_SIZE}, "
                f"got {shown}"
            )
        self._secret = secret

    @classmethod
    def generate(cls, key_id: str) -> HmacIdentity:
        """Make an identity with a fresh random 32-byte secret (from the OS's CSPRNG)."""
        return cls(key_id, os.urandom(MIN_HMAC_SECRET_SIZE))

    @property
    def key_id(self) -> str:
        """The id verifiers find the shared secret under."""
        return self._key_id

    @property
    def secret(self) -> bytes:
        """The shared secret, to hand to :meth:`KeyStore.add_hmac`. Handle it as a secret."""
        return self._secret

    def sign(self, message: bytes) -> bytes:
        """Return the 32-byte HMAC-SHA256 of ``message``."""
        return hmac.digest(self._secret, message, "sha256")

    def __repr__(self) -> str:
        return f"HmacIdentity(key_id={self._key_id!r})"


def load_public_key(path: str | os.PathLike[str]) -> bytes:
    """Read an Ed25519 public key file and return its raw 32 bytes.

    The file holds either SubjectPublicKeyInfo PEM (``-----BEGIN PUBLIC KEY-----``, as
    :meth:`Identity.public_key_pem` writes) or exactly 32 raw bytes.

    Raises:
        KeyFileError: the file is missing, unreadable, or holds no Ed25519 public key.
    """
    source = Path(path)
    data = _read_key_file(source)
    if len(data) == ED25519_PUBLIC_KEY_SIZE and not data.startswith(b"-----"):
        return data
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise KeyFileError(
            source, f"is neither a PEM public key nor {ED25519_PUBLIC_KEY_SIZE} raw bytes ({exc})"
        ) from exc
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFileError(source, f"holds a {type(key).__name__}, expected an Ed25519 key")
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
