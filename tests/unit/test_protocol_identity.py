"""Identities, the key store and key files (``protocol._identity``, ``protocol._keystore``)."""

from __future__ import annotations

import logging
import os
import re
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

import protocol
from protocol import (
    AuditVerifier,
    DecodeError,
    ExpiredError,
    HmacIdentity,
    Identity,
    KeyFileError,
    KeyStore,
    ProtocolError,
    ReplayError,
    SignatureError,
    Signer,
    TooLargeError,
    UnknownKeyError,
    Verifier,
    load_public_key,
)
from vsm import audit

ED = Identity.generate("ed-1")
HM = HmacIdentity("hm-1", b"k" * 32)
SIGNERS = [ED, HM]


def _store(*signers: Identity | HmacIdentity) -> KeyStore:
    store = KeyStore()
    for signer in signers:
        if isinstance(signer, Identity):
            store.add(signer.key_id, signer.public_key_bytes())
        else:
            store.add_hmac(signer.key_id, signer.secret)
    return store


STORE = _store(ED, HM)
signers = st.sampled_from(SIGNERS)
payloads = st.binary(max_size=256)


def _flip(data: bytes, bit: int) -> bytes:
    bit %= len(data) * 8
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


# ---------------------------------------------------------------- signing and verifying


@given(signer=signers, data=payloads)
def test_sign_verify_round_trip(signer: Identity | HmacIdentity, data: bytes) -> None:
    """A signature verifies under its own key id, in both modes."""
    STORE.verify(signer.key_id, data, signer.sign(data), now=0.0)


@given(signer=signers, data=payloads.filter(bool), bit=st.integers(min_value=0))
def test_any_bit_flip_in_data_is_refused(
    signer: Identity | HmacIdentity, data: bytes, bit: int
) -> None:
    """Changing one bit of the signed data makes the signature fail."""
    signature = signer.sign(data)
    with pytest.raises(SignatureError) as info:
        STORE.verify(signer.key_id, _flip(data, bit), signature, now=0.0)
    assert info.value.key_id == signer.key_id


@given(signer=signers, data=payloads, bit=st.integers(min_value=0))
def test_any_bit_flip_in_signature_is_refused(
    signer: Identity | HmacIdentity, data: bytes, bit: int
) -> None:
    """Changing one bit of the signature makes it fail."""
    with pytest.raises(SignatureError):
        STORE.verify(signer.key_id, data, _flip(signer.sign(data), bit), now=0.0)


@given(signer=signers, data=payloads, cut=st.integers(min_value=0, max_value=80))
def test_signature_of_wrong_length_is_refused(
    signer: Identity | HmacIdentity, data: bytes, cut: int
) -> None:
    """A truncated or padded signature is refused, naming the length expected."""
    signature = signer.sign(data)
    bad = (
        signature[:cut] if cut < len(signature) else signature + b"\0" * (cut - len(signature) + 1)
    )
    with pytest.raises(SignatureError, match="expected"):
        STORE.verify(signer.key_id, data, bad, now=0.0)


def test_the_store_not_the_message_chooses_the_algorithm() -> None:
    """An HMAC tag presented under an Ed25519 key id (and the reverse) is refused."""
    with pytest.raises(SignatureError):
        STORE.verify(ED.key_id, b"m", HM.sign(b"m"), now=0.0)
    with pytest.raises(SignatureError):
        STORE.verify(HM.key_id, b"m", ED.sign(b"m"), now=0.0)
    assert STORE.algorithm(ED.key_id) == Identity.algorithm == "ed25519"
    assert STORE.algorithm(HM.key_id) == HmacIdentity.algorithm == "hmac-sha256"


def test_a_signature_by_another_key_is_refused() -> None:
    """Another key's signature does not verify under this key id."""
    other = Identity.generate("ed-2")
    with pytest.raises(SignatureError):
        STORE.verify(ED.key_id, b"m", other.sign(b"m"), now=0.0)


def test_ed25519_signatures_are_deterministic_and_64_bytes() -> None:
    """Ed25519 signs the same message the same way; sizes are as published."""
    assert ED.sign(b"m") == ED.sign(b"m")
    assert len(ED.sign(b"m")) == protocol.ED25519_SIGNATURE_SIZE
    assert len(ED.public_key_bytes()) == protocol.ED25519_PUBLIC_KEY_SIZE
    assert len(HM.sign(b"m")) == protocol.HMAC_SIGNATURE_SIZE


# ---------------------------------------------------------------- the key store


@given(data=payloads)
def test_unknown_key_is_refused(data: bytes) -> None:
    """A key id the store never heard of is an UnknownKeyError naming it."""
    with pytest.raises(UnknownKeyError, match="nobody") as info:
        STORE.verify("nobody", data, ED.sign(data), now=0.0)
    assert info.value.key_id == "nobody"
    assert isinstance(info.value, KeyError)


@pytest.mark.parametrize("signer", SIGNERS, ids=["ed25519", "hmac"])
def test_revoked_key_is_refused_at_once_and_for_ever(signer: Identity | HmacIdentity) -> None:
    """Revocation takes effect immediately, and the id can never be trusted again."""
    store = _store(signer)
    store.revoke(signer.key_id)
    with pytest.raises(UnknownKeyError, match="revoked"):
        store.verify(signer.key_id, b"m", signer.sign(b"m"), now=0.0)
    with pytest.raises(ValueError, match="revoked"):
        store.add_hmac(signer.key_id, b"z" * 32)
    with pytest.raises(ValueError, match="revoked"):
        store.add(signer.key_id, Identity.generate("x").public_key_bytes())
    assert signer.key_id not in store


def test_an_id_may_be_revoked_before_it_is_added() -> None:
    """Revoking an unknown id blocks it from being added later."""
    store = KeyStore()
    store.revoke(ED.key_id)
    with pytest.raises(ValueError, match="revoked"):
        store.add(ED.key_id, ED.public_key_bytes())


@pytest.mark.parametrize("signer", SIGNERS, ids=["ed25519", "hmac"])
def test_retired_key_verifies_until_its_retirement(signer: Identity | HmacIdentity) -> None:
    """A retired key verifies while now < at, and is refused from at on."""
    store = _store(signer)
    store.retire(signer.key_id, at=100.0)
    signature = signer.sign(b"m")
    store.verify(signer.key_id, b"m", signature, now=99.999)
    for now in (100.0, 1e9):
        with pytest.raises(UnknownKeyError, match=r"retired at 100\.0"):
            store.verify(signer.key_id, b"m", signature, now=now)


def test_rotation_old_key_until_retired_new_key_after() -> None:
    """During rotation both keys verify; after the old key retires only the new one does."""
    old, new = Identity.generate("svc-2024"), Identity.generate("svc-2025")
    store = _store(old)
    store.add(new.key_id, new.public_key_bytes())
    store.retire(old.key_id, at=50.0)
    for now in (0.0, 49.0):
        store.verify(old.key_id, b"m", old.sign(b"m"), now=now)
        store.verify(new.key_id, b"m", new.sign(b"m"), now=now)
    with pytest.raises(UnknownKeyError):
        store.verify(old.key_id, b"m", old.sign(b"m"), now=50.0)
    store.verify(new.key_id, b"m", new.sign(b"m"), now=1e12)
    assert sorted(store.key_ids()) == ["svc-2024", "svc-2025"]


def test_retirement_only_comes_forward() -> None:
    """A later retirement time does not undo an earlier one; an earlier one replaces it."""
    store = KeyStore()
    store.add(ED.key_id, ED.public_key_bytes(), not_after=100.0)
    store.retire(ED.key_id, at=200.0)
    assert store.not_after(ED.key_id) == 100.0
    store.retire(ED.key_id, at=10.0)
    assert store.not_after(ED.key_id) == 10.0


def test_not_after_on_add_is_a_scheduled_retirement() -> None:
    """``add(..., not_after=t)`` behaves as ``retire(at=t)``."""
    store = KeyStore()
    store.add_hmac(HM.key_id, HM.secret, not_after=5.0)
    store.verify(HM.key_id, b"m", HM.sign(b"m"), now=4.0)
    with pytest.raises(UnknownKeyError, match="retired"):
        store.verify(HM.key_id, b"m", HM.sign(b"m"), now=5.0)


def test_retiring_an_unknown_key_is_an_error() -> None:
    """Retiring an id that is not held names the id."""
    with pytest.raises(UnknownKeyError, match="ghost"):
        KeyStore().retire("ghost", at=1.0)


def test_key_ids_are_never_reused_but_re_adding_is_idempotent() -> None:
    """The same key under the same id is a no-op; another key under it is refused."""
    store = _store(ED, HM)
    store.add(ED.key_id, ED.public_key_bytes())
    store.add_hmac(HM.key_id, HM.secret)
    assert len(store) == 2
    with pytest.raises(ValueError, match="never reused"):
        store.add(ED.key_id, Identity.generate("x").public_key_bytes())
    with pytest.raises(ValueError, match="never reused"):
        store.add(HM.key_id, ED.public_key_bytes())
    with pytest.raises(ValueError, match="retire"):
        store.add(ED.key_id, ED.public_key_bytes(), not_after=3.0)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda s: s.add("k", b"short"), "32 bytes"),
        (lambda s: s.add("", ED.public_key_bytes()), "non-empty"),
        (lambda s: s.add_hmac("k", b"x" * 31), "got 31 bytes"),
        (lambda s: s.add_hmac("k", "text"), "got str"),
        (lambda s: s.add("k", ED.public_key_bytes(), not_after=float("nan")), "not_after"),
    ],
    ids=["short-public-key", "empty-id", "short-secret", "str-secret", "nan-not-after"],
)
def test_bad_keys_are_refused_showing_the_bad_value(call, match: str) -> None:
    """Invalid arguments are ValueErrors that say what was wrong."""
    with pytest.raises(ValueError, match=match):
        call(KeyStore())


def test_short_hmac_secret_is_refused_without_showing_it() -> None:
    """The error for a short secret gives its length, never its bytes."""
    with pytest.raises(ValueError, match="got 10 bytes") as info:
        HmacIdentity("k", b"s3cr3t-abc")
    assert "s3cr3t" not in str(info.value)


def test_reprs_never_show_secrets() -> None:
    """Neither identity's repr contains key material."""
    assert "k" * 32 not in repr(HM)
    assert ED.to_pem().decode() not in repr(ED)
    assert repr(HM) == "HmacIdentity(key_id='hm-1')"
    assert "KeyStore(keys=2" in repr(STORE)


# ---------------------------------------------------------------- the audit chain's protocols


def test_identities_and_store_satisfy_both_protocol_pairs() -> None:
    """Both identities are Signers (ours and the audit chain's); the store is a Verifier."""
    for signer in SIGNERS:
        assert isinstance(signer, Signer)
        assert isinstance(signer, audit.Signer)
    assert isinstance(STORE, Verifier)
    assert isinstance(STORE.audit_verifier(), audit.Verifier)


@pytest.mark.parametrize("signer", SIGNERS, ids=["ed25519", "hmac"])
def test_audit_checkpoints_verify_through_the_adapter(signer: Identity | HmacIdentity) -> None:
    """An audit chain checkpointed by an identity verifies against the key store."""
    chain = audit.AuditChain("s3")
    chain.append("audit", "root", {"n": 1}, at=1.0)
    checkpoint = chain.checkpoint(signer, at=2.0)
    assert chain.verify([checkpoint], STORE.audit_verifier()).ok
    assert not chain.verify([checkpoint], _store().audit_verifier()).ok


def test_audit_adapter_answers_instead_of_raising() -> None:
    """Unknown, revoked, retired (with ``now``) or forged all answer False."""
    store = _store(ED, HM)
    store.retire(HM.key_id, at=10.0)
    adapter = AuditVerifier(store)
    assert adapter.verify(HM.key_id, b"m", HM.sign(b"m"))  # now=None ignores retirement
    assert not store.audit_verifier(now=10.0).verify(HM.key_id, b"m", HM.sign(b"m"))
    assert store.audit_verifier(now=9.0).verify(HM.key_id, b"m", HM.sign(b"m"))
    assert not adapter.verify("nobody", b"m", ED.sign(b"m"))
    assert not adapter.verify(ED.key_id, b"m", ED.sign(b"x"))
    store.revoke(ED.key_id)
    assert not adapter.verify(ED.key_id, b"m", ED.sign(b"m"))
    assert "now=None" in repr(adapter)


# ---------------------------------------------------------------- key files


def test_pem_round_trip_keeps_the_key() -> None:
    """``from_pem(to_pem())`` signs exactly as the original."""
    again = Identity.from_pem("ed-1", ED.to_pem())
    assert again.public_key_bytes() == ED.public_key_bytes()
    assert again.sign(b"m") == ED.sign(b"m")
    assert ED.to_pem().startswith(b"-----BEGIN PRIVATE KEY-----")


def test_save_load_round_trip_with_mode_0600(tmp_path: Path) -> None:
    """A saved key is PKCS8 PEM with mode 0600 and loads back under its file's stem."""
    path = tmp_path / "root-2025.pem"
    ED.save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = Identity.load(path)
    assert loaded.key_id == "root-2025"
    assert loaded.public_key_bytes() == ED.public_key_bytes()
    assert Identity.load(str(path), key_id="explicit").key_id == "explicit"
    assert [p.name for p in tmp_path.iterdir()] == ["root-2025.pem"]  # no temporary left


def test_save_refuses_to_overwrite_unless_asked(tmp_path: Path) -> None:
    """An existing key file is only replaced with ``overwrite=True``."""
    path = tmp_path / "k.pem"
    ED.save(path)
    other = Identity.generate("k")
    with pytest.raises(KeyFileError, match="already exists") as info:
        other.save(path)
    assert info.value.path == path
    other.save(path, overwrite=True)
    assert Identity.load(path).public_key_bytes() == other.public_key_bytes()


def test_save_into_a_missing_directory_is_a_key_file_error(tmp_path: Path) -> None:
    """A key that cannot be written is a KeyFileError naming the path."""
    path = tmp_path / "missing" / "k.pem"
    with pytest.raises(KeyFileError, match=re.escape(str(path))):
        ED.save(path)


def _ec_pem() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _encrypted_pem() -> bytes:
    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"password"),
    )


BAD_PRIVATE_FILES = {
    "missing": (None, "no such file"),
    "empty": (b"", "not a PEM private key"),
    "junk": (b"hello, world\n", "not a PEM private key"),
    "corrupt-pem": (ED.to_pem().replace(b"M", b"A", 3), "not a PEM private key"),
    "public-key": (ED.public_key_pem(), "not a PEM private key"),
    "ec-key": (_ec_pem(), "expected an Ed25519 key"),
    "encrypted": (_encrypted_pem(), "encrypted"),
    "too-large": (b"x" * (protocol.MAX_KEY_FILE_SIZE + 1), "larger than"),
}


@pytest.mark.parametrize("case", sorted(BAD_PRIVATE_FILES))
def test_every_bad_private_key_file_is_a_key_file_error(tmp_path: Path, case: str) -> None:
    """Each way a key file can be wrong gives a KeyFileError naming the path and the problem."""
    content, problem = BAD_PRIVATE_FILES[case]
    path = tmp_path / f"{case}.pem"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(KeyFileError, match=problem) as info:
        Identity.load(path)
    assert info.value.path == path
    assert str(path) in str(info.value)
    assert info.value.reason == "bad-key-file"


def test_a_directory_is_not_a_key_file(tmp_path: Path) -> None:
    """Pointing at a directory is a KeyFileError, with the OSError kept as the cause."""
    with pytest.raises(KeyFileError, match="directory") as info:
        Identity.load(tmp_path)
    assert isinstance(info.value.__cause__, OSError)


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
def test_loose_permissions_are_a_warning_not_an_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A key readable by others loads, with a warning that names the file and the mode."""
    path = tmp_path / "k.pem"
    ED.save(path)
    with caplog.at_level(logging.WARNING, logger="protocol._identity"):
        Identity.load(path)
        assert not caplog.records
        path.chmod(0o644)
        Identity.load(path)
    assert len(caplog.records) == 1
    assert str(path) in caplog.text
    assert "0644" in caplog.text


def test_public_key_files_load_from_pem_and_raw(tmp_path: Path) -> None:
    """A public key file is SubjectPublicKeyInfo PEM or exactly 32 raw bytes."""
    pem, raw = tmp_path / "ed.pub", tmp_path / "ed.raw"
    pem.write_bytes(ED.public_key_pem())
    raw.write_bytes(ED.public_key_bytes())
    assert load_public_key(pem) == load_public_key(raw) == ED.public_key_bytes()
    store = KeyStore()
    store.add(ED.key_id, load_public_key(pem))
    store.verify(ED.key_id, b"m", ED.sign(b"m"), now=0.0)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "no such file"),
        (b"x" * 31, "neither a PEM public key"),
        (ED.to_pem(), "neither a PEM public key"),
        (
            ec.generate_private_key(ec.SECP256R1())
            .public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
            "expected an Ed25519 key",
        ),
    ],
    ids=["missing", "31-bytes", "private-pem", "ec-public"],
)
def test_every_bad_public_key_file_is_a_key_file_error(
    tmp_path: Path, content: bytes | None, problem: str
) -> None:
    """Bad public key files give a KeyFileError naming the path."""
    path = tmp_path / "bad.pub"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(KeyFileError, match=problem) as info:
        load_public_key(path)
    assert info.value.path == path


# ---------------------------------------------------------------- the error family and exports


@pytest.mark.parametrize(
    ("error", "builtin", "reason"),
    [
        (DecodeError(b"\x00" * 100, "truncated"), ValueError, "undecodable"),
        (SignatureError("k"), ValueError, "bad-signature"),
        (UnknownKeyError("k"), KeyError, "unknown-key"),
        (ExpiredError("root", 1.0, 2.0), ValueError, "expired"),
        (ReplayError("root", b"n", "seen"), ValueError, "replayed"),
        (TooLargeError(10, 5), ValueError, "too-large"),
        (KeyFileError("/k.pem", "bad"), ValueError, "bad-key-file"),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, Exception) else "",
)
def test_errors_subclass_the_root_and_a_builtin(
    error: ProtocolError, builtin: type[Exception], reason: str
) -> None:
    """Every error is a ProtocolError and the matching built-in, with a stable reason code."""
    assert isinstance(error, ProtocolError)
    assert isinstance(error, builtin)
    assert error.reason == reason


def test_error_messages_show_the_offending_values() -> None:
    """Messages carry the bad value; raw bytes are cut; KeyError's quoting is undone."""
    decode = DecodeError(b"\xff" * 100, "truncated")
    assert decode.size == 100
    assert len(decode.raw) == 32
    assert "100 bytes" in str(decode)
    assert "..." in str(decode)
    assert str(UnknownKeyError("k1")) == "key 'k1' refused: no such key in the key store"
    assert "expired at 1.0" in str(ExpiredError("root", 1.0, 2.0))
    assert "over the limit of 5" in str(TooLargeError(10, 5))
    full = ReplayError("root", b"n", "full", reason="window-full")
    assert full.reason == "window-full"
    assert ReplayError.reason == "replayed"


def test_protocol_all_is_sorted_and_complete() -> None:
    """``protocol.__all__`` is in RUF022 order (constants, classes, functions) and importable."""
    names = protocol.__all__

    def order(name: str) -> tuple[int, str]:
        kind = 0 if name.isupper() else 1 if name[0].isupper() else 2
        return (kind, name)

    assert names == sorted(names, key=order)
    assert all(hasattr(protocol, name) for name in names)
    assert {"Identity", "KeyStore", "ReplayGuard", "ProtocolError"} <= set(names)
