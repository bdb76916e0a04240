"""The S3 audit chain: hash links, signed checkpoints, and verification that finds any tampering."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import math

import msgpack
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from tests.strategies_audit import actors, audit_chains, kinds, plain_data, times
from vsm.audit import (
    CHECKPOINT_DOMAIN,
    ENTRY_DOMAIN,
    GENESIS,
    AuditChain,
    AuditEntry,
    Checkpoint,
    Signer,
    Verifier,
    VerifyReport,
    verify_chain,
)
from vsm.crdt import pack
from vsm.crdt._data import canonical
from vsm.errors import MalformedDataError, VsmError


@dataclasses.dataclass(frozen=True)
class HmacSigner:
    """A stand-in signer (the real one, Ed25519, lives in ``protocol``)."""

    key_id: str
    key: bytes

    def sign(self, message: bytes) -> bytes:
        return hmac.new(self.key, message, hashlib.sha256).digest()


@dataclasses.dataclass(frozen=True)
class HmacVerifier:
    """Verifies HMAC signatures by key id; unknown keys verify nothing."""

    keys: dict[str, bytes]

    def verify(self, key_id: str, message: bytes, signature: bytes) -> bool:
        key = self.keys.get(key_id)
        if key is None:
            return False
        return hmac.compare_digest(hmac.new(key, message, hashlib.sha256).digest(), signature)


SIGNER = HmacSigner("s3-key-1", b"secret one")
OTHER = HmacSigner("s3-key-2", b"secret two")
VERIFIER = HmacVerifier({SIGNER.key_id: SIGNER.key, OTHER.key_id: OTHER.key})


def _checkpoint_at(chain: AuditChain, length: int, at: float = 0.0) -> Checkpoint:
    """A checkpoint of ``chain`` as it was when it had ``length`` entries."""
    entries = chain.entries()
    head = entries[length - 1].digest if length else GENESIS
    return Checkpoint.sign(chain.name, length, head, at, SIGNER)


def _relink(entries: list[AuditEntry], start: int) -> list[AuditEntry]:
    """Reseal ``entries[start:]`` so that every digest and link is honest again."""
    out = entries[:start]
    for entry in entries[start:]:
        prev = out[-1].digest if out else GENESIS
        out.append(AuditEntry.seal(len(out), entry.at, entry.actor, entry.kind, entry.data, prev))
    return out


def _differs(a: object, b: object) -> bool:
    """Whether two values hash differently inside an entry (canonical msgpack bytes differ)."""
    return pack(canonical(a)) != pack(canonical(b))


def _flip(digest: bytes, bit: int) -> bytes:
    """``digest`` with one bit flipped."""
    flipped = bytearray(digest)
    flipped[bit // 8] ^= 1 << (bit % 8)
    return bytes(flipped)


def _roundtrip(data: object) -> object:
    return msgpack.unpackb(msgpack.packb(data, use_bin_type=True), raw=False)


# ---------------------------------------------------------------- entries and links


def test_empty_chain_has_genesis_head_and_verifies() -> None:
    """A new chain is empty, its head is 32 zero bytes, and it verifies."""
    chain = AuditChain("root#S3")
    assert len(chain) == 0
    assert chain.head == GENESIS == bytes(32)
    assert chain.verify().ok


def test_entries_link_to_the_one_before() -> None:
    """The first entry links to GENESIS, each later one to the digest of the one before."""
    chain = AuditChain("root#S3")
    first = chain.append("intent.accepted", "root#S1", {"intent": 1}, at=1.0)
    second = chain.append("intent.completed", "root#S1", {"intent": 1}, at=2.0)
    assert (first.index, first.prev) == (0, GENESIS)
    assert (second.index, second.prev) == (1, first.digest)
    assert chain.head == second.digest
    assert chain.entries() == (first, second)


def test_entry_digest_is_domain_separated_blake2b() -> None:
    """The digest is BLAKE2b-256 over the entry prefix and msgpack of the fields (format v1)."""
    entry = AuditEntry.seal(0, 1.5, "root#S3", "intent.accepted", {"b": 2, "a": [1]}, GENESIS)
    body = msgpack.packb(
        [0, 1.5, "root#S3", "intent.accepted", {"a": [1], "b": 2}, GENESIS], use_bin_type=True
    )
    assert entry.digest == hashlib.blake2b(ENTRY_DOMAIN + body, digest_size=32).digest()
    assert entry.digest != hashlib.blake2b(body, digest_size=32).digest()


def test_entry_digest_format_is_pinned() -> None:
    """A known entry keeps a known digest: changing the format must be a deliberate v2."""
    data = {"b": 2, "a": [1, "x", b"\x00"]}
    entry = AuditEntry.seal(0, 1.5, "root#S3", "intent.accepted", data, GENESIS)
    assert entry.digest.hex() == "4b66b09d16ab7aa4834f33b0b0d70c23d2196fc798c6f2d7696a9cdd2e12dc45"


def test_data_is_canonicalised_before_hashing() -> None:
    """Tuples become lists and dict order does not matter, so equal content hashes equally."""
    one = AuditEntry.seal(0, 1, "root#S3", "k", {"x": (1, 2), "y": None}, GENESIS)
    two = AuditEntry.seal(0, 1.0, "root#S3", "k", {"y": None, "x": [1, 2]}, GENESIS)
    assert one == two
    assert one.data == {"x": [1, 2], "y": None}
    assert isinstance(one.at, float)


def test_entries_are_hashable_despite_dict_data() -> None:
    """Entries can go in sets even though their data is a dict."""
    chain = AuditChain("root#S3")
    entry = chain.append("k", "root#S1", {"a": [1]}, at=0.0)
    assert {entry, dataclasses.replace(entry)} == {entry}


@pytest.mark.parametrize(
    ("kind", "actor", "data", "at", "error"),
    [
        ("", "root#S1", None, 0.0, ValueError),
        ("k", "", None, 0.0, ValueError),
        ("k", 3, None, 0.0, ValueError),
        ("k", "root#S1", None, math.nan, ValueError),
        ("k", "root#S1", None, math.inf, ValueError),
        ("k", "root#S1", None, True, ValueError),
        ("k", "root#S1", object(), 0.0, TypeError),
        ("k", "root#S1", {1, 2}, 0.0, TypeError),
        ("k", "root#S1", 2**64, 0.0, TypeError),
    ],
)
def test_append_refuses_bad_arguments_and_changes_nothing(kind, actor, data, at, error) -> None:
    """A refused append raises the matching built-in, shows the value, and records nothing."""
    chain = AuditChain("root#S3")
    chain.append("k", "root#S1", None, at=0.0)
    head = chain.head
    with pytest.raises(error):
        chain.append(kind, actor, data, at)
    assert (len(chain), chain.head) == (1, head)


@pytest.mark.parametrize("name", ["", None, 7])
def test_chain_name_must_be_text(name) -> None:
    """A chain's name is a non-empty str, and the error shows what was given."""
    with pytest.raises(ValueError, match=repr(name)):
        AuditChain(name)


def test_entries_slices_by_index() -> None:
    """``entries(start, stop)`` returns that stretch, refusing negative or inverted bounds."""
    chain = AuditChain("root#S3")
    for i in range(5):
        chain.append("k", "root#S1", i, at=float(i))
    assert [e.index for e in chain.entries(1, 3)] == [1, 2]
    assert [e.index for e in chain.entries(3)] == [3, 4]
    assert chain.entries(4, 99) == chain.entries(4)
    for start, stop in [(-1, None), (3, 2), (0, -1)]:
        with pytest.raises(ValueError, match="must be"):
            chain.entries(start, stop)


# ---------------------------------------------------------------- checkpoints


def test_checkpoint_signs_a_domain_separated_message() -> None:
    """A checkpoint signs its own prefix plus [chain, length, head, at], and says whose key."""
    chain = AuditChain("root#S3")
    chain.append("k", "root#S1", None, at=0.0)
    cp = chain.checkpoint(SIGNER, at=5)
    body = pack(["root#S3", 1, chain.head, 5.0])
    assert cp.message() == CHECKPOINT_DOMAIN + body
    assert cp.signature == SIGNER.sign(CHECKPOINT_DOMAIN + body)
    assert (cp.chain, cp.length, cp.head, cp.at, cp.key_id) == (
        "root#S3",
        1,
        chain.head,
        5.0,
        "s3-key-1",
    )
    assert cp.verify(VERIFIER)
    assert CHECKPOINT_DOMAIN != ENTRY_DOMAIN


def test_test_keys_satisfy_the_protocols() -> None:
    """The HMAC stand-ins used here satisfy ``Signer`` and ``Verifier``."""
    assert isinstance(SIGNER, Signer)
    assert isinstance(VERIFIER, Verifier)


def test_checkpoint_of_an_empty_chain_verifies() -> None:
    """An empty chain can be checkpointed; the checkpoint holds GENESIS and verifies."""
    chain = AuditChain("root#S3")
    cp = chain.checkpoint(SIGNER, at=0.0)
    assert (cp.length, cp.head) == (0, GENESIS)
    assert chain.verify([cp], VERIFIER).ok


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("chain", ""),
        ("length", -1),
        ("length", 1.0),
        ("head", b"short"),
        ("at", math.nan),
        ("key_id", ""),
        ("signature", "not bytes"),
    ],
)
def test_checkpoint_refuses_bad_fields(field, value) -> None:
    """Every checkpoint field is validated, and the error names the field and the value."""
    good = {
        "chain": "c",
        "length": 1,
        "head": bytes(32),
        "at": 0.0,
        "key_id": "k",
        "signature": b"",
    }
    with pytest.raises(ValueError, match=f"Checkpoint.{field}"):
        Checkpoint(**{**good, field: value})


def test_empty_checkpoint_must_claim_genesis() -> None:
    """A checkpoint of zero entries cannot claim any head but GENESIS."""
    with pytest.raises(ValueError, match="GENESIS"):
        Checkpoint("c", 0, b"\x01" * 32, 0.0, "k", b"")


def test_without_a_verifier_signatures_are_not_checked() -> None:
    """With no verifier, a checkpoint's claims are checked but its signature is not."""
    chain = AuditChain("root#S3")
    chain.append("k", "root#S1", None, at=0.0)
    forged = dataclasses.replace(chain.checkpoint(SIGNER, at=1.0), signature=b"forged")
    assert chain.verify([forged]).ok
    assert chain.verify([forged], VERIFIER).problem == "signature"


def test_a_checkpoint_by_an_unknown_key_is_a_bad_signature() -> None:
    """A signature by a key the verifier does not know is not valid."""
    chain = AuditChain("root#S3")
    cp = chain.checkpoint(HmacSigner("stranger", b"?"), at=0.0)
    report = chain.verify([cp], VERIFIER)
    assert (report.ok, report.problem, report.checkpoint) == (False, "signature", 0)
    assert "stranger" in (report.reason or "")


def test_a_checkpoint_of_another_chain_is_reported() -> None:
    """A chain refuses to be held to another chain's checkpoint."""
    ours, theirs = AuditChain("root#S3"), AuditChain("root/billing#S3")
    report = ours.verify([theirs.checkpoint(SIGNER, at=0.0)], VERIFIER)
    assert (report.ok, report.problem, report.index) == (False, "chain", None)


def test_report_is_truthy_exactly_when_ok() -> None:
    """A report reads as a boolean: true when ok, false when a problem was found."""
    assert VerifyReport(ok=True, entries=0, checkpoints=0)
    assert not VerifyReport(ok=False, entries=1, checkpoints=0, problem="digest", index=0)


def test_a_consistently_rewritten_tail_needs_a_checkpoint_to_be_seen() -> None:
    """Rewriting the last entry and resealing it fools the links, but not a checkpoint."""
    chain = AuditChain("root#S3")
    for i in range(3):
        chain.append("k", "root#S1", i, at=float(i))
    cp = chain.checkpoint(SIGNER, at=3.0)
    entries = list(chain.entries())
    entries[-1] = dataclasses.replace(entries[-1], data="rewritten")
    entries = _relink(entries, 2)
    assert verify_chain(entries).ok
    report = verify_chain(entries, [cp], VERIFIER)
    assert (report.problem, report.index, report.checkpoint) == ("head", 2, 0)


# ---------------------------------------------------------------- plain data


@pytest.mark.parametrize(
    "data",
    [
        None,
        [],
        [0, 1.0, "a", "k", None, GENESIS],
        [-1, 1.0, "a", "k", None, GENESIS, GENESIS],
        [0, "1", "a", "k", None, GENESIS, GENESIS],
        [0, 1.0, "", "k", None, GENESIS, GENESIS],
        [0, 1.0, "a", "k", None, b"\x00" * 31, GENESIS],
        [0, 1.0, "a", "k", None, GENESIS, "digest"],
        [0, 1.0, "a", "k", {1, 2}, GENESIS, GENESIS],
    ],
)
def test_entry_from_data_refuses_malformed_data(data) -> None:
    """Malformed entry data raises MalformedDataError (a VsmError and a ValueError)."""
    with pytest.raises(MalformedDataError) as caught:
        AuditEntry.from_data(data)
    assert isinstance(caught.value, VsmError)
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(
    "data",
    [
        None,
        ["c", 1, GENESIS, 0.0, "k"],
        ["c", "1", GENESIS, 0.0, "k", b""],
        ["c", 1, GENESIS, 0.0, "k", "sig"],
        ["", 1, GENESIS, 0.0, "k", b""],
    ],
)
def test_checkpoint_from_data_refuses_malformed_data(data) -> None:
    """Malformed checkpoint data raises MalformedDataError."""
    with pytest.raises(MalformedDataError, match="Checkpoint"):
        Checkpoint.from_data(data)


def _chain_data() -> dict:
    chain = AuditChain("root#S3")
    for i in range(3):
        chain.append("k", "root#S1", i, at=float(i))
    return chain.to_data()


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d.pop("name"),
        lambda d: d.update(type="orset"),
        lambda d: d.update(name=""),
        lambda d: d.update(entries="many"),
        lambda d: d["entries"].append(["junk"]),
        lambda d: d["entries"][1].__setitem__(4, "edited"),
        lambda d: d["entries"].pop(0),
        lambda d: d["entries"].reverse(),
    ],
    ids=[
        "no-name",
        "wrong-type",
        "empty-name",
        "entries-not-list",
        "junk",
        "edit",
        "drop",
        "reverse",
    ],
)
def test_chain_from_data_refuses_malformed_or_tampered_data(change) -> None:
    """A chain is only rebuilt from data whose entries are well-formed and still link."""
    data = _chain_data()
    change(data)
    with pytest.raises(MalformedDataError, match="AuditChain"):
        AuditChain.from_data(data)


@given(audit_chains(), st.data())
def test_chain_entries_and_checkpoints_round_trip_through_msgpack(chain, data) -> None:
    """A chain, each of its entries and a checkpoint survive to_data, msgpack and from_data."""
    back = AuditChain.from_data(_roundtrip(chain.to_data()))
    assert (back.name, back.entries(), back.head) == (chain.name, chain.entries(), chain.head)
    assert back.to_data() == chain.to_data()
    for entry in chain.entries():
        assert AuditEntry.from_data(_roundtrip(entry.to_data())) == entry
    cp = _checkpoint_at(chain, data.draw(st.integers(0, len(chain))), data.draw(times))
    assert Checkpoint.from_data(_roundtrip(cp.to_data())) == cp


@given(
    st.integers(0, 2**63 - 1), times, actors, kinds, plain_data, st.binary(min_size=32, max_size=32)
)
def test_any_entry_round_trips_through_msgpack(index, at, actor, kind, value, prev) -> None:
    """An entry with any plain data and any finite time survives msgpack, digest and all."""
    entry = AuditEntry.seal(index, at, actor, kind, value, prev)
    back = AuditEntry.from_data(_roundtrip(entry.to_data()))
    assert back == entry
    assert back.compute_digest() == entry.digest


# ---------------------------------------------------------------- verification finds tampering


@given(audit_chains(), st.data())
def test_untouched_chains_verify(chain, data) -> None:
    """A chain as appended verifies against any of its own checkpoints, signatures checked."""
    lengths = data.draw(st.lists(st.integers(0, len(chain)), max_size=4))
    cps = [_checkpoint_at(chain, n) for n in lengths]
    report = chain.verify(cps, VERIFIER)
    assert report == VerifyReport(ok=True, entries=len(chain), checkpoints=len(cps))
    assert verify_chain(chain.entries(), cps, VERIFIER, name=chain.name).ok


FIELD_EDITS = {
    "data": plain_data,
    "kind": kinds,
    "actor": actors,
    "at": times,
}


@given(audit_chains(min_size=1), st.sampled_from(sorted(FIELD_EDITS)), st.data())
def test_editing_any_field_is_detected(chain, field, data) -> None:
    """Changing the data, kind, actor or time of one entry (digest left as it was) is found."""
    entries = list(chain.entries())
    i = data.draw(st.integers(0, len(entries) - 1))
    value = data.draw(FIELD_EDITS[field])
    assume(_differs(value, getattr(entries[i], field)))
    entries[i] = dataclasses.replace(entries[i], **{field: value})
    report = verify_chain(entries)
    assert (report.ok, report.problem, report.index) == (False, "digest", i)


@given(audit_chains(min_size=1), st.data())
def test_an_edit_resealed_with_an_honest_digest_is_still_detected(chain, data) -> None:
    """Resealing an edited entry breaks the next link, or the checkpoint over the tail."""
    cp = chain.checkpoint(SIGNER, at=0.0)
    entries = list(chain.entries())
    i = data.draw(st.integers(0, len(entries) - 1))
    value = data.draw(plain_data.filter(lambda v: _differs(v, entries[i].data)))
    e = entries[i]
    entries[i] = AuditEntry.seal(e.index, e.at, e.actor, e.kind, value, e.prev)
    report = verify_chain(entries, [cp], VERIFIER)
    assert not report.ok
    assert (report.problem, report.index) in {("prev", i + 1), ("head", i)}


@given(audit_chains(min_size=1), st.data())
def test_a_consistent_rewrite_below_a_checkpoint_is_detected(chain, data) -> None:
    """Rewriting entry i and resealing every later entry is found by a checkpoint past i."""
    entries = list(chain.entries())
    length = data.draw(st.integers(1, len(entries)))
    cp = _checkpoint_at(chain, length)
    i = data.draw(st.integers(0, length - 1))
    value = data.draw(plain_data.filter(lambda v: _differs(v, entries[i].data)))
    entries[i] = dataclasses.replace(entries[i], data=value)
    entries = _relink(entries, i)
    assert verify_chain(entries).ok  # the links alone cannot tell
    report = verify_chain(entries, [cp], VERIFIER)
    assert (report.ok, report.problem, report.index) == (False, "head", length - 1)


@given(audit_chains(min_size=2), st.data())
def test_swapping_two_entries_is_detected(chain, data) -> None:
    """Swapping any two entries is found at the first of them."""
    entries = list(chain.entries())
    i, j = sorted(
        data.draw(st.lists(st.integers(0, len(entries) - 1), min_size=2, max_size=2, unique=True))
    )
    entries[i], entries[j] = entries[j], entries[i]
    report = verify_chain(entries)
    assert (report.ok, report.problem, report.index) == (False, "index", i)


@given(audit_chains(min_size=1), st.data())
def test_dropping_an_entry_is_detected(chain, data) -> None:
    """Dropping any entry is found: a gap in the middle, or a checkpoint over the tail."""
    cp = chain.checkpoint(SIGNER, at=0.0)
    entries = list(chain.entries())
    i = data.draw(st.integers(0, len(entries) - 1))
    del entries[i]
    report = verify_chain(entries, [cp], VERIFIER)
    assert not report.ok
    expected = ("truncated", i) if i == len(entries) else ("index", i)
    assert (report.problem, report.index) == expected


@given(audit_chains(min_size=1), st.data(), st.booleans())
def test_slipping_an_entry_in_is_detected(chain, data, copy) -> None:
    """A copy of entry i put after it, or an honestly sealed entry put before it, is found."""
    entries = list(chain.entries())
    i = data.draw(st.integers(0, len(entries) - 1))
    if copy:
        entries.insert(i + 1, entries[i])
    else:
        e = entries[i]
        value = data.draw(plain_data)
        entries.insert(i, AuditEntry.seal(i, e.at, e.actor, e.kind, value, e.prev))
    report = verify_chain(entries)
    assert (report.ok, report.problem, report.index) == (False, "index", i + 1)


@given(audit_chains(min_size=1), st.data())
def test_truncating_below_a_checkpoint_is_detected(chain, data) -> None:
    """Cutting the tail below a checkpoint's length is found as truncation."""
    length = data.draw(st.integers(1, len(chain)))
    cp = _checkpoint_at(chain, length)
    keep = data.draw(st.integers(0, length - 1))
    report = verify_chain(chain.entries(0, keep), [cp], VERIFIER)
    assert (report.ok, report.problem, report.index, report.checkpoint) == (
        False,
        "truncated",
        keep,
        0,
    )


@given(audit_chains(min_size=1), st.data())
def test_tampering_with_a_signed_checkpoint_breaks_its_signature(chain, data) -> None:
    """A forged signature, or a changed length, head, time or key id, fails verification."""
    lengths = data.draw(st.lists(st.integers(0, len(chain)), min_size=1, max_size=3))
    cps = [_checkpoint_at(chain, n) for n in lengths]
    k = data.draw(st.integers(0, len(cps) - 1))
    cp = cps[k]
    field = data.draw(st.sampled_from(["signature", "length", "head", "at", "key_id"]))
    if field == "signature":
        change: dict[str, object] = {
            "signature": data.draw(st.binary(max_size=40).filter(lambda s: s != cp.signature))
        }
    elif field == "length":
        change = {"length": data.draw(st.integers(1, 9).filter(lambda n: n != cp.length))}
    elif field == "head":
        # An empty chain's checkpoint must hold GENESIS, so claim one entry as well.
        change = {
            "head": _flip(cp.head, data.draw(st.integers(0, 255))),
            "length": max(cp.length, 1),
        }
    elif field == "at":
        change = {"at": data.draw(times.filter(lambda t: pack(t) != pack(cp.at)))}
    else:
        change = {"key_id": OTHER.key_id}
    cps[k] = dataclasses.replace(cp, **change)
    report = chain.verify(cps, VERIFIER)
    assert (report.ok, report.problem, report.checkpoint) == (False, "signature", k)


@given(audit_chains(min_size=1), st.data())
def test_a_validly_signed_false_claim_is_detected(chain, data) -> None:
    """Even a properly signed checkpoint is held to the chain: a wrong length or head is found."""
    n = len(chain)
    length = data.draw(st.integers(1, n + 3))
    if length <= n:
        head = _flip(chain.entries()[length - 1].digest, data.draw(st.integers(0, 255)))
    else:
        head = chain.head
    cp = Checkpoint.sign(chain.name, length, head, 0.0, SIGNER)
    report = chain.verify([cp], VERIFIER)
    expected = ("truncated", n) if length > n else ("head", length - 1)
    assert (report.ok, report.problem, report.index) == (False, *expected)
