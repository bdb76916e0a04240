"""The bridge's replay log (actors._store.ReplayLog): what a restarted bridge loads."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors._store import CheckpointStore, ReplayLog
from protocol import ReplayError, ReplayGuard

items = st.lists(
    st.tuples(
        st.text(min_size=1, max_size=20), st.binary(min_size=1, max_size=24), st.floats(0, 100)
    ),
    max_size=30,
)


def test_live_items_are_loaded_and_expired_ones_pruned(tmp_path: Path) -> None:
    log = ReplayLog(str(tmp_path / "t.sqlite"), "tree")
    log.add([("a", b"n1", 10.0), ("b", b"n2", 20.0), ("a", b"n1", 8.0)])  # a repeat: one row
    assert sorted(log.live(now=5.0)) == [("a", b"n1", 10.0), ("b", b"n2", 20.0)]
    assert log.live(now=10.0) == [("b", b"n2", 20.0)]  # expired at its expiry, as in the guard
    log.add([("b", b"n2", 30.0)])  # the later expiry of a pair is kept
    assert log.live(now=25.0) == [("b", b"n2", 30.0)]
    assert log.prune(now=10.0) == 1
    assert log.prune(now=10.0) == 0
    log.close()


def test_trees_sharing_a_file_keep_their_own_windows(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.sqlite")
    one, two = ReplayLog(path, "one"), ReplayLog(path, "two")
    one.add([("s", b"x", 9.0)])
    assert two.live(now=0.0) == []
    assert one.live(now=0.0) == [("s", b"x", 9.0)]
    store = CheckpointStore(path)  # checkpoints and replays live side by side
    store.forget("one")  # forgetting checkpoints keeps the window (a replay is still one)
    assert ReplayLog(path, "one").live(now=0.0) == [("s", b"x", 9.0)]
    store.close()


@settings(max_examples=30, deadline=None)
@given(kept=items, now=st.floats(0, 100))
def test_a_guard_restored_from_the_log_refuses_every_live_item(
    kept: list[tuple[str, bytes, float]], now: float
) -> None:
    """After a restart, every unexpired recorded (sender, nonce) is a replay."""
    with tempfile.TemporaryDirectory() as directory:
        log = ReplayLog(str(Path(directory) / "r.sqlite"), "t")
        log.add(kept)
        guard = ReplayGuard(max_entries=1_000)
        for item in ReplayLog(str(Path(directory) / "r.sqlite"), "t").live(now):
            guard.record(*item)
        for sender, nonce, expires in kept:
            if expires > now:
                with pytest.raises(ReplayError) as refused:
                    guard.check(sender, nonce, expires, now)
                assert refused.value.reason == "replayed"
        log.close()
