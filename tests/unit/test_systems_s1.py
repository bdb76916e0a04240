"""System 1, operations: classify, route through S2, track every intent to exactly one end."""

from __future__ import annotations

import pytest

from tests.strategies_model import cap, events, of, pump, replied, sends_to, sent, viable
from vsm.address import Address, SystemId
from vsm.effects import Cancel, Reply, RunKernel, Schedule
from vsm.intents import Intent, Outcome, Refusal, Status
from vsm.messages import (
    Assign,
    AuditProbe,
    AuditReport,
    ChildSpawned,
    Coordinate,
    DeadlineExpired,
    Dispatch,
    IntentFinished,
    KernelFinished,
    Measured,
    Redeliver,
    Released,
    Resend,
    Routes,
    SubmitIntent,
    UnitDown,
    Unroutable,
)
from vsm.spec import LimitsSpec, NodeSpec, PolicySpec

SPEC = NodeSpec(
    name="root",
    capabilities=(
        cap("maths.sum", "sum", "add up a list of numbers"),
        cap("text.echo", "echo", "repeat the words back"),
    ),
    children=(
        NodeSpec(name="a", capabilities=(cap("work.do", description="do the heavy work"),)),
        NodeSpec(
            name="b",
            capabilities=(
                cap("work.do", description="do the heavy work"),
                cap("b.only", description="something only b offers"),
            ),
        ),
    ),
)
CLIENT = Address("up", SystemId.S1)
S1 = Address("root", SystemId.S1)
S2 = Address("root", SystemId.S2)
S3 = Address("root", SystemId.S3)
S4 = Address("root", SystemId.S4)


def dispatch(vs, intent: Intent, now: float = 0.0, deadline: float = 10.0):
    return vs.s1.handle(Dispatch(intent=intent, reply_to=CLIENT, deadline=deadline), now)


def routed(vs, intent: Intent, now: float = 0.0, deadline: float = 10.0):
    """Dispatch ``intent`` and let S2 pick its unit; return S1's effects of the assignment."""
    (coordinate,) = sent(dispatch(vs, intent, now, deadline), Coordinate)
    (assign,) = sent(vs.s2.handle(coordinate, now), Assign)
    return vs.s1.handle(assign, now)


@pytest.fixture
def vs():
    return viable(SPEC, limits=LimitsSpec(resend_every=2.0))


# ---------------------------------------------------------------- routing (rules 3, 4)


def test_exact_capability_goes_to_the_local_kernel_through_s2(vs):
    """An exact local capability: a deadline timer, Coordinate to S2, then RunKernel on Assign."""
    intent = Intent(id="i", capability="maths.sum", params={"values": [1, 2]})
    effects = dispatch(vs, intent, 1.0, deadline=10.0)
    (timer,) = of(effects, Schedule)
    assert (timer.delay, timer.to, timer.message, timer.key) == (
        9.0,
        S1,
        DeadlineExpired(intent_id="i"),
        "deadline:i",
    )
    assert not timer.background
    assert sends_to(effects, Coordinate) == [S2]
    assert sent(effects, Coordinate) == [
        Coordinate(intent=intent, capability="maths.sum", candidates=("local",))
    ]
    assert vs.s1.in_flight == 1
    (assign,) = sent(vs.s2.handle(sent(effects, Coordinate)[0], 1.0), Assign)
    assert (assign.unit, assign.outcome) == ("local", None)
    started = vs.s1.handle(assign, 1.0)
    assert of(started, RunKernel) == [
        RunKernel(kernel="sum", params={"values": [1, 2]}, intent_id="i", reply_to=S1)
    ]
    assert events(started, "intent.routed")[0].data == {"intent": "i", "unit": "local"}
    assert not of(started, Schedule)  # no resends to a local kernel


def test_kernel_result_completes_the_intent_and_tidies_up(vs):
    """A kernel's result is replied once; the timers are cancelled, S2 released, S3 measured."""
    routed(vs, Intent(id="i", capability="maths.sum", params={"values": [1, 2]}), 1.0)
    effects = vs.s1.handle(KernelFinished(intent_id="i", result=3), 1.5)
    assert of(effects, Reply) == [Reply(to=CLIENT, outcome=Outcome.completed("i", 3, "root"))]
    assert {c.key for c in of(effects, Cancel)} == {"deadline:i", "resend:i"}
    assert sent(effects, Released, S2) == [Released(unit="local")]
    assert sent(effects, Measured, S3) == [
        Measured(unit="local", capability="maths.sum", ok=True, latency=0.5)
    ]
    assert events(effects, "intent.completed")[0].data["intent"] == "i"
    assert (vs.s1.in_flight, vs.s1.completed, vs.s1.failed) == (0, 1, 0)


def test_kernel_error_fails_the_intent_with_unit_failed(vs):
    """A kernel that raised fails its intent (UNIT_FAILED, by S1) with the error in the detail."""
    routed(vs, Intent(id="i", capability="maths.sum"))
    effects = vs.s1.handle(KernelFinished(intent_id="i", error="KernelError: boom"), 1.0)
    (outcome,) = replied(effects)
    assert (outcome.status, outcome.reason, outcome.by, outcome.path) == (
        Status.FAILED,
        Refusal.UNIT_FAILED,
        SystemId.S1,
        "root",
    )
    assert "boom" in outcome.detail
    assert sent(effects, Measured)[0].ok is False
    assert vs.s1.failed == 1


@pytest.mark.parametrize(
    ("text", "capability"),
    [
        ("please add up these numbers", "maths.sum"),
        ("repeat my words back to me", "text.echo"),
        ("something only b offers", "b.only"),
        ("maths.sum", "maths.sum"),
    ],
)
def test_free_text_is_classified_to_the_right_capability(vs, text, capability):
    """Free text is classified (exact name, else BM25 over descriptions) to its capability."""
    effects = dispatch(vs, Intent(id="i", text=text))
    assert [c.capability for c in sent(effects, Coordinate)] == [capability]


@pytest.mark.parametrize(
    ("intent", "capability"),
    [
        (Intent(id="i", capability="nobody.offers"), "nobody.offers"),
        (Intent(id="i", text="zebra quantum xylophone"), None),
    ],
)
def test_unknown_capability_goes_to_s4_which_answers_through_s1(vs, intent, capability):
    """What no unit offers goes to S4; S1 keeps tracking it and relays S4's answer, once."""
    effects = dispatch(vs, intent, 2.0, deadline=9.0)
    assert sends_to(effects, Unroutable) == [S4]
    assert sent(effects, Unroutable) == [
        Unroutable(intent=intent, reply_to=S1, deadline=9.0, capability=capability)
    ]
    assert [t.message for t in of(effects, Schedule)] == [DeadlineExpired(intent_id="i")]
    assert vs.s1.in_flight == 1
    refusal = Outcome.refused("i", Status.REJECTED, Refusal.NO_CAPABILITY, SystemId.S4, "root", "")
    answered = vs.s1.handle(IntentFinished(outcome=refusal), 2.5)
    assert of(answered, Reply) == [Reply(to=CLIENT, outcome=refusal)]
    assert [c.key for c in of(answered, Cancel)] == ["deadline:i", "resend:i"]
    assert not sent(answered, Released)  # S4 is no unit of S2's
    assert vs.s1.handle(IntentFinished(outcome=refusal), 3.0) == []
    assert vs.s1.handle(Redeliver(intent_id="i", reply_to=CLIENT), 3.0) == [
        Reply(to=CLIENT, outcome=refusal)
    ]


def test_handed_off_intent_is_routed_once_a_unit_appears(vs):
    """An intent S4 handed back (after a spawn) is routed to the new unit, not tracked twice."""
    intent = Intent(id="i", capability="t.echo")
    first = dispatch(vs, intent, 0.0, deadline=9.0)
    assert sent(first, Unroutable)
    vs.s1.handle(ChildSpawned(path="root/t", offers=frozenset({"t.echo"})), 0.1)
    again = dispatch(vs, intent, 0.1, deadline=9.0)
    assert not of(again, Schedule)  # the deadline timer is already armed
    assert [c.candidates for c in sent(again, Coordinate)] == [("root/t",)]
    assert vs.s1.in_flight == 1
    assert dispatch(vs, intent, 0.2, deadline=9.0) == []  # now it is being served


def test_handed_off_intent_still_meets_its_deadline(vs):
    """If S4 never answers, S1's deadline ends the intent; S4's late answer is dropped."""
    dispatch(vs, Intent(id="i", capability="nobody.offers"), 0.0, deadline=5.0)
    (outcome,) = replied(vs.s1.handle(DeadlineExpired(intent_id="i"), 5.0))
    assert (outcome.reason, outcome.by) == (Refusal.DEADLINE, SystemId.S1)
    late = Outcome.refused("i", Status.REJECTED, Refusal.NO_CAPABILITY, SystemId.S4, "root", "")
    assert vs.s1.handle(IntentFinished(outcome=late), 6.0) == []


def test_composite_intent_goes_to_s4(vs):
    """A composite intent is S4's to plan, even when its steps are routable here."""
    intent = Intent(id="p", plan=(Intent(id="s", capability="maths.sum"),))
    effects = dispatch(vs, intent)
    (unroutable,) = sent(effects, Unroutable)
    assert unroutable.intent == intent
    assert not sent(effects, Coordinate)


def test_child_unit_gets_the_intent_at_its_s5_with_reply_to_s1(vs):
    """A child unit is asked through its S5; S1 wants the answer and will resend until it comes."""
    intent = Intent(id="i", capability="b.only", params={"k": 1})
    effects = dispatch(vs, intent, 1.0, deadline=8.0)
    assert sent(effects, Coordinate)[0].candidates == ("root/b",)
    started = routed(vs, Intent(id="j", text="something only b offers"), 1.0, deadline=8.0)
    assert sends_to(started, SubmitIntent) == [Address("root/b", SystemId.S5)]
    (submit,) = sent(started, SubmitIntent)
    assert submit.reply_to == S1
    assert (submit.intent.id, submit.intent.capability, submit.intent.deadline) == (
        "j",
        "b.only",
        8.0,
    )
    (resend,) = of(started, Schedule)
    assert (resend.delay, resend.message, resend.key) == (2.0, Resend(intent_id="j"), "resend:j")


def test_unanswered_child_intent_is_resent_until_it_ends(vs):
    """A Resend timer resubmits to the child and rearms itself; after the end it does nothing."""
    routed(vs, Intent(id="i", capability="b.only"))
    effects = vs.s1.handle(Resend(intent_id="i"), 2.0)
    assert sends_to(effects, SubmitIntent) == [Address("root/b", SystemId.S5)]
    assert [s.key for s in of(effects, Schedule)] == ["resend:i"]
    vs.s1.handle(IntentFinished(outcome=Outcome.completed("i", "ok", "root/b")), 3.0)
    assert vs.s1.handle(Resend(intent_id="i"), 4.0) == []


def test_child_outcome_is_passed_up(vs):
    """A child's outcome ends the intent here and is replied as it came."""
    routed(vs, Intent(id="i", capability="b.only"))
    done = Outcome.completed("i", {"k": 1}, "root/b")
    effects = vs.s1.handle(IntentFinished(outcome=done), 1.0)
    assert replied(effects) == [done]
    assert sent(effects, Released) == [Released(unit="root/b")]


def test_redeliver_answers_an_ended_intent_again_until_its_deadline(vs):
    """A repeat of an ended intent gets the same outcome again (the first may have been lost)."""
    routed(vs, Intent(id="i", capability="maths.sum", params={"values": [2]}), 0.0, deadline=10.0)
    vs.s1.handle(KernelFinished(intent_id="i", result=2), 1.0)
    assert vs.s1.handle(Redeliver(intent_id="i", reply_to=CLIENT), 5.0) == [
        Reply(to=CLIENT, outcome=Outcome.completed("i", 2, "root"))
    ]
    assert vs.s1.handle(Redeliver(intent_id="other", reply_to=CLIENT), 5.0) == []
    assert vs.s1.handle(Redeliver(intent_id="i", reply_to=CLIENT), 10.5) == []


def test_redeliver_of_an_intent_in_flight_is_ignored(vs):
    """A repeat of an intent still in flight is ignored: it will be answered when it ends."""
    routed(vs, Intent(id="i", capability="b.only"))
    assert vs.s1.handle(Redeliver(intent_id="i", reply_to=CLIENT), 1.0) == []


@pytest.mark.parametrize(
    ("capability", "reason"),
    [("v.echo", Refusal.DEPTH_GUARD), ("nobody.offers", Refusal.NO_CAPABILITY)],
)
def test_refusal_decided_past_s1_is_answered_again_on_resend(capability, reason):
    """A refusal S4 or S5 decided after admission is answered again when the parent resends."""
    # The parent resends until it hears back; if the first answer was lost, the repeat must get
    # it again (rule 2), whichever System decided it.
    spec = NodeSpec(name="b", templates=(NodeSpec(name="v", capabilities=(cap("v.echo"),)),))
    vs = viable(spec, "root/a/b", policy=PolicySpec(max_depth=2))
    parent = Address("root/a", SystemId.S1)
    submit = SubmitIntent(
        intent=Intent(id="i", capability=capability, deadline=10.0), reply_to=parent
    )
    first = pump(vs, vs.s5.handle(submit, 0.0), 0.0)
    (answer,) = of(first, Reply)
    assert (answer.to, answer.outcome.reason) == (parent, reason)
    again = pump(vs, vs.s5.handle(submit, 1.0), 1.0)
    assert of(again, Reply) == [answer]


# ---------------------------------------------------------------- exactly one end (rule 1)


def test_deadline_expiry_fails_the_intent_exactly_once(vs):
    """The deadline fails the intent (DEADLINE, by S1) once; later timers and answers drop."""
    routed(vs, Intent(id="i", capability="b.only"), 0.0, deadline=5.0)
    effects = vs.s1.handle(DeadlineExpired(intent_id="i"), 5.0)
    (outcome,) = replied(effects)
    assert (outcome.status, outcome.reason, outcome.by) == (
        Status.FAILED,
        Refusal.DEADLINE,
        SystemId.S1,
    )
    assert "root/b" in outcome.detail
    assert sent(effects, Released) == [Released(unit="root/b")]
    assert vs.s1.handle(DeadlineExpired(intent_id="i"), 5.0) == []
    late = Outcome.completed("i", "late", "root/b")
    assert vs.s1.handle(IntentFinished(outcome=late), 6.0) == []
    assert vs.s1.handle(KernelFinished(intent_id="i", result=1), 6.0) == []
    assert vs.s1.failed == 1


def test_deadline_before_assignment_fails_and_gives_the_unit_back(vs):
    """An intent that expires while S2 decides fails once; the late Assign releases the unit."""
    (coordinate,) = sent(dispatch(vs, Intent(id="i", capability="maths.sum")), Coordinate)
    (outcome,) = replied(vs.s1.handle(DeadlineExpired(intent_id="i"), 10.0))
    assert outcome.reason is Refusal.DEADLINE
    assert "(unit" not in outcome.detail
    (assign,) = sent(vs.s2.handle(coordinate, 10.0), Assign)
    effects = vs.s1.handle(assign, 10.0)
    assert sends_to(effects, Released) == [S2]
    assert sent(effects, Released) == [Released(unit="local")]
    assert len(effects) == 1


@pytest.mark.parametrize("kind", ["kernel", "child"])
def test_duplicate_outcomes_are_dropped(vs, kind):
    """A second (duplicated) answer for an intent that has ended changes nothing."""
    if kind == "kernel":
        routed(vs, Intent(id="i", capability="maths.sum"))
        answer = KernelFinished(intent_id="i", result=1)
    else:
        routed(vs, Intent(id="i", capability="b.only"))
        answer = IntentFinished(outcome=Outcome.completed("i", 1, "root/b"))
    assert len(replied(vs.s1.handle(answer, 1.0))) == 1
    assert vs.s1.handle(answer, 1.0) == []
    assert (vs.s1.completed, vs.s1.failed) == (1, 0)


def test_duplicate_dispatch_is_ignored(vs):
    """A Dispatch for an intent already in flight starts nothing new."""
    intent = Intent(id="i", capability="maths.sum")
    dispatch(vs, intent)
    assert dispatch(vs, intent) == []
    assert vs.s1.in_flight == 1


def test_refusal_from_s2_is_the_outcome(vs):
    """When S2 refuses (no unit), its outcome is replied and no unit is released."""
    dispatch(vs, Intent(id="i", capability="maths.sum"))
    refusal = Outcome.refused("i", Status.REJECTED, Refusal.RATE_LIMIT, SystemId.S2, "root", "x")
    assign = Assign(intent_id="i", capability="maths.sum", unit=None, outcome=refusal)
    effects = vs.s1.handle(assign, 1.0)
    assert replied(effects) == [refusal]
    assert not sent(effects, Released)
    assert not sent(effects, Measured)


# ---------------------------------------------------------------- units coming and going


def test_unit_down_moves_work_to_another_unit_offering_the_capability(vs):
    """When a unit dies, its intents go back to S2 with the units left that offer them."""
    started = routed(vs, Intent(id="i", capability="work.do"))
    assert sends_to(started, SubmitIntent) == [Address("root/a", SystemId.S5)]
    effects = vs.s1.handle(UnitDown(unit="root/a"), 1.0)
    assert not replied(effects)
    assert sent(effects, Released) == [Released(unit="root/a")]
    (coordinate,) = sent(effects, Coordinate)
    assert (coordinate.intent.id, coordinate.candidates) == ("i", ("root/b",))
    (assign,) = sent(vs.s2.handle(coordinate, 1.0), Assign)
    moved = vs.s1.handle(assign, 1.0)
    assert sends_to(moved, SubmitIntent) == [Address("root/b", SystemId.S5)]
    assert "root/a" not in vs.s1.units()


def test_unit_down_with_no_other_unit_fails_unit_lost(vs):
    """When the only unit offering a capability dies, its intents fail (UNIT_LOST, by S1)."""
    routed(vs, Intent(id="i", capability="b.only"))
    routed(vs, Intent(id="j", capability="maths.sum"))
    effects = vs.s1.handle(UnitDown(unit="root/b"), 1.0)
    (outcome,) = replied(effects)
    assert (outcome.intent_id, outcome.status, outcome.reason, outcome.by) == (
        "i",
        Status.FAILED,
        Refusal.UNIT_LOST,
        SystemId.S1,
    )
    assert "root/b" in outcome.detail
    assert "'b.only'" in outcome.detail
    assert sent(effects, Released) == [Released(unit="root/b")]
    assert vs.s1.in_flight == 1  # the local one is untouched
    assert "b.only" not in vs.s1.capabilities()


def test_spawned_child_becomes_a_unit(vs):
    """ChildSpawned makes the child a candidate for what it offers."""
    vs.s1.handle(ChildSpawned(path="root/t", offers=frozenset({"t.echo"})), 0.0)
    effects = dispatch(vs, Intent(id="i", capability="t.echo"))
    assert sent(effects, Coordinate)[0].candidates == ("root/t",)


def test_routes_from_s4_replace_the_child_units_and_keep_local(vs):
    """S4's Routes replace the child units (and descriptions); local kernels always stay."""
    vs.s1.handle(
        Routes(
            units={"root/a": frozenset({"work.do", "deep.thing"})},
            descriptions={"deep.thing": "grandchild magic"},
        ),
        0.0,
    )
    assert set(vs.s1.units()) == {"local", "root/a"}
    effects = dispatch(vs, Intent(id="i", text="some grandchild magic"))
    assert sent(effects, Coordinate) == [
        Coordinate(
            intent=Intent(id="i", text="some grandchild magic"),
            capability="deep.thing",
            candidates=("root/a",),
        )
    ]
    assert sent(dispatch(vs, Intent(id="j", capability="maths.sum")), Coordinate)[0].candidates == (
        "local",
    )


# ---------------------------------------------------------------- S3* audits (rule 5)


def test_audit_probe_is_answered_straight_to_the_auditor(vs):
    """An AuditProbe is answered with an AuditReport sent directly to the auditor."""
    routed(vs, Intent(id="done", capability="maths.sum"))
    vs.s1.handle(KernelFinished(intent_id="done", result=0), 1.0)
    routed(vs, Intent(id="bad", capability="maths.sum"))
    vs.s1.handle(KernelFinished(intent_id="bad", error="x"), 1.0)
    routed(vs, Intent(id="open", capability="b.only"))
    auditor = Address("up", SystemId.S3)
    effects = vs.s1.handle(AuditProbe(audit_id="up:1", auditor=auditor), 2.0)
    assert sends_to(effects, AuditReport) == [auditor]
    assert sent(effects, AuditReport) == [
        AuditReport(audit_id="up:1", unit="root", in_flight=1, completed=1, failed=1)
    ]
    assert len(effects) == 1
