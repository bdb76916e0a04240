"""System 3, control: KPIs, OTP supervision with escalation, S3* audits, the audit chain."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac

import pytest

from tests.strategies_model import cap, events, of, sends_to, sent, viable
from vsm.address import Address, SystemId
from vsm.audit import verify_chain
from vsm.effects import Schedule, Spawn, Stop
from vsm.messages import (
    Algedonic,
    AuditProbe,
    AuditReport,
    AuditTick,
    ChildSpawned,
    Escalated,
    Measured,
    ReportStrain,
    Started,
    UnitDied,
)
from vsm.spec import LimitsSpec, NodeSpec


@dataclasses.dataclass(frozen=True)
class HmacKey:
    """Signs and verifies checkpoints with one HMAC key (a stand-in for Ed25519)."""

    key_id: str = "s3-test"
    key: bytes = b"not a secret"

    def sign(self, message: bytes) -> bytes:
        return hmac.new(self.key, message, hashlib.sha256).digest()

    def verify(self, key_id: str, message: bytes, signature: bytes) -> bool:
        return key_id == self.key_id and hmac.compare_digest(self.sign(message), signature)


A = NodeSpec(name="a", capabilities=(cap("a.x"),))
B = NodeSpec(name="b", capabilities=(cap("b.x"),))


def system3(path: str = "root", *, restart_max: int = 2, restart_within: float = 10.0, signer=None):
    spec = NodeSpec(name=path.rsplit("/", 1)[-1], children=(A, B))
    limits = LimitsSpec(restart_max=restart_max, restart_within=restart_within, audit_every=5.0)
    vs = viable(spec, path, limits=limits)
    if signer is not None:
        vs.s3.signer = signer
    return vs.s3


# ---------------------------------------------------------------- KPIs (rule 1)


def test_kpis_follow_measured_reports():
    """Each Measured counts one served intent per unit, its error, and its latency."""
    s3 = system3()
    s3.handle(Measured(unit="root/a", capability="a.x", ok=True, latency=1.0), 0.0)
    s3.handle(Measured(unit="root/a", capability="a.x", ok=False, latency=3.0), 0.0)
    s3.handle(Measured(unit="local", capability="c", ok=True, latency=0.5), 0.0)
    a = s3.kpis["root/a"]
    assert (a.served, a.errors, a.mean_latency) == (2, 1, 2.0)
    assert (s3.kpis["local"].served, s3.kpis["local"].errors) == (1, 0)
    assert "root/b" not in s3.kpis


# ---------------------------------------------------------------- supervision (rule 2)


def test_dead_child_is_restarted_up_to_restart_max_then_stopped_and_escalated():
    """restart_max restarts within restart_within; the next failure stops it and escalates."""
    s3 = system3("root/n", restart_max=2, restart_within=10.0)
    for now in (0.0, 1.0):
        effects = s3.handle(UnitDied(unit="root/n/a", reason="missed heartbeats"), now)
        assert of(effects, Spawn) == [Spawn(path="root/n/a", spec=A)]
        spawned = ChildSpawned(path="root/n/a", offers=frozenset({"a.x"}))
        assert sends_to(effects, ChildSpawned) == [
            Address("root/n", SystemId.S1),
            Address("root/n", SystemId.S2),
        ]
        assert set(sent(effects, ChildSpawned)) == {spawned}
        assert events(effects, "unit.restart")[0].data == {
            "unit": "root/n/a",
            "reason": "missed heartbeats",
        }
    effects = s3.handle(UnitDied(unit="root/n/a", reason="missed heartbeats"), 2.0)
    assert not of(effects, Spawn)
    (stop,) = of(effects, Stop)
    assert stop.path == "root/n/a"
    assert "3 times within 10.0s" in stop.reason
    assert events(effects, "unit.escalate")
    assert sends_to(effects, Escalated) == [Address("root", SystemId.S3)]
    assert sent(effects, Escalated) == [Escalated(path="root/n", reason=stop.reason)]
    assert "root/n/a" not in s3.node.children
    # A stopped child is no longer supervised.
    assert s3.handle(UnitDied(unit="root/n/a", reason="again"), 3.0) == []


def test_restarts_outside_the_window_do_not_count():
    """Failures spread wider than restart_within keep being restarted."""
    s3 = system3(restart_max=2, restart_within=10.0)
    for now in (0.0, 6.0, 12.0, 18.0, 24.0):
        assert of(s3.handle(UnitDied(unit="root/a", reason="x"), now), Spawn)


def test_escalation_at_the_root_becomes_algedonic_pain():
    """At the root, giving up on a child sends full pain to the root's own S5."""
    s3 = system3("root", restart_max=0)
    effects = s3.handle(UnitDied(unit="root/b", reason="crashed"), 5.0)
    assert [s.path for s in of(effects, Stop)] == ["root/b"]
    assert not sent(effects, Escalated)
    (pain,) = sent(effects, Algedonic, Address("root", SystemId.S5))
    assert (pain.source, pain.intensity) == ("root", -1.0)
    assert "crashed" in pain.detail


def test_escalation_from_a_child_is_a_failure_of_that_unit():
    """An Escalated from a child is supervised like that child dying."""
    s3 = system3("root", restart_max=1)
    effects = s3.handle(Escalated(path="root/a", reason="root/a/x failed 2 times"), 0.0)
    assert of(effects, Spawn) == [Spawn(path="root/a", spec=A)]
    effects = s3.handle(Escalated(path="root/a", reason="again"), 1.0)
    assert [s.path for s in of(effects, Stop)] == ["root/a"]


def test_unknown_unit_is_not_supervised():
    """A death report for a unit that is not a child (local, or already gone) does nothing."""
    s3 = system3()
    assert s3.handle(UnitDied(unit="root/zzz", reason="x"), 0.0) == []
    assert len(s3.chain) == 0


def test_supervision_decisions_go_into_the_audit_chain():
    """Every restart and escalation is appended to the chain, which verifies."""
    s3 = system3(restart_max=1)
    s3.handle(UnitDied(unit="root/a", reason="r1"), 0.0)
    s3.handle(UnitDied(unit="root/a", reason="r2"), 1.0)
    entries = s3.chain.entries()
    assert [(e.kind, e.data["decision"], e.data["reason"]) for e in entries] == [
        ("supervision", "restart", "r1"),
        ("supervision", "escalate", "r2"),
    ]
    assert s3.chain.verify().ok


# ---------------------------------------------------------------- S3* audits (rules 3, 4)


def test_started_arms_the_audit_timer():
    """On start S3 schedules its first audit tick, in the background."""
    (timer,) = of(system3().handle(Started(), 0.0), Schedule)
    assert (timer.delay, timer.message, timer.background) == (5.0, AuditTick(), True)


def test_audit_tick_probes_children_in_turn_straight_at_their_s1():
    """Each tick probes the next child's S1 (bypassing S2), with S3 as the auditor."""
    s3 = system3()
    probed = []
    for n in range(1, 4):
        effects = s3.handle(AuditTick(), 5.0 * n)
        (probe,) = sent(effects, AuditProbe)
        assert probe == AuditProbe(audit_id=f"root:{n}", auditor=Address("root", SystemId.S3))
        probed += [a.path for a in sends_to(effects, AuditProbe)]
        assert sends_to(effects, AuditProbe)[0].system is SystemId.S1
        assert [t.message for t in of(effects, Schedule)] == [AuditTick()]
    assert probed == ["root/a", "root/b", "root/a"]


def test_audit_tick_without_children_only_rearms():
    """A viable system with no children has nobody to audit."""
    s3 = viable(NodeSpec(name="leaf"), "root/leaf").s3
    effects = s3.handle(AuditTick(), 5.0)
    assert [type(e) for e in effects] == [Schedule]


def test_audit_report_is_chained_and_checkpointed_and_verifies():
    """A report and S3's own view go into the chain; with a signer each is checkpointed."""
    key = HmacKey()
    s3 = system3(signer=key)
    s3.handle(Measured(unit="root/a", capability="a.x", ok=False, latency=1.0), 0.0)
    s3.handle(AuditTick(), 5.0)
    report = AuditReport(audit_id="root:1", unit="root/a", in_flight=2, completed=7, failed=1)
    effects = s3.handle(report, 5.1)
    assert events(effects, "audit")[0].data == {"unit": "root/a", "in_flight": 2}
    (entry,) = s3.chain.entries()
    assert (entry.kind, entry.actor, entry.at) == ("audit", "root#S3", 5.1)
    assert entry.data == {
        "audit": "root:1",
        "unit": "root/a",
        "reported": [2, 7, 1],
        "observed": [1, 1],
    }
    s3.handle(UnitDied(unit="root/b", reason="x"), 6.0)
    s3.handle(AuditReport(audit_id="root:2", unit="root/b", in_flight=0, completed=0, failed=0), 9)
    assert len(s3.checkpoints) == 2
    assert s3.chain.verify(s3.checkpoints, key).ok
    # The checkpoints hold the chain to its length: dropping the last entry is caught.
    truncated = verify_chain(s3.chain.entries()[:-1], s3.checkpoints, key, name=s3.chain.name)
    assert (truncated.ok, truncated.problem) == (False, "truncated")


def test_audit_report_without_signer_adds_no_checkpoint():
    """Without a signer the chain grows but no checkpoint is made."""
    s3 = system3()
    s3.handle(AuditReport(audit_id="x", unit="root/a", in_flight=0, completed=0, failed=0), 1.0)
    assert (len(s3.chain), s3.checkpoints) == (1, [])


# ---------------------------------------------------------------- strain (rule 5)


@pytest.mark.parametrize(
    ("oks", "strained"),
    [
        ([False, False, False, True, True], True),
        ([False, False, True, True, True], False),
        ([False, False, False, False], False),
        ([False] * 10, True),
    ],
)
def test_strain_is_reported_when_most_intents_of_a_period_fail(oks, strained):
    """An audit period with enough intents, at least half failed, proposes holding steady."""
    s3 = system3()
    for ok in oks:
        s3.handle(Measured(unit="local", capability="c", ok=ok, latency=0.1), 1.0)
    effects = s3.handle(AuditTick(), 5.0)
    reports = sent(effects, ReportStrain, Address("root", SystemId.S5))
    if strained:
        (report,) = reports
        failed = oks.count(False)
        assert report.level == failed / len(oks)
        assert f"{failed} of {len(oks)}" in report.detail
    else:
        assert reports == []
    # The next period starts afresh.
    assert not sent(s3.handle(AuditTick(), 10.0), ReportStrain)
