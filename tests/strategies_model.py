"""Builders and hypothesis strategies for the VSM model: specs, policies, intents, networks.

The builders (:func:`cap`, :func:`viable`, the effect filters and :func:`pump`) keep the System
tests short: a test builds a viable system, hands one of its Systems a message with a ``now``,
and reads the effects it returned. :func:`pump` plays the host for one viable system when a test
wants the Systems to talk to each other (local messages delivered at once, kernels run inline).

The strategies draw policies (for :meth:`PolicySpec.tighten`'s laws) and everything the
simulation state machine does to :data:`MACHINE_TREE`: its intents, policy patches, signals and
networks.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

from hypothesis import strategies as st

from vsm.address import Address
from vsm.effects import Effect, Emit, Event, Reply, RunKernel, Send
from vsm.intents import Intent, Outcome
from vsm.kernels import BUILTIN_KERNELS, Kernel, run_kernel
from vsm.messages import IntentFinished, KernelFinished, Message
from vsm.sim import NetworkConfig
from vsm.spec import CapabilitySpec, LimitsSpec, NodeSpec, PolicySpec, TreeSpec
from vsm.systems import ViableSystem

T = TypeVar("T")

# ---------------------------------------------------------------- builders


def cap(
    name: str, kernel: str = "echo", description: str = "", zone: str = "default"
) -> CapabilitySpec:
    """A capability served by one of the built-in kernels."""
    return CapabilitySpec(name=name, kernel=kernel, description=description, zone=zone)


def viable(
    spec: NodeSpec,
    path: str | None = None,
    *,
    limits: LimitsSpec | None = None,
    policy: PolicySpec | None = None,
) -> ViableSystem:
    """The viable system ``spec`` at ``path`` (its name by default) under ``policy``."""
    return ViableSystem(
        path or spec.name,
        spec,
        limits=limits or LimitsSpec(),
        parent_policy=policy or PolicySpec(),
    )


def of(effects: Iterable[Effect], kind: type[T]) -> list[T]:
    """The effects of one kind, in order."""
    return [e for e in effects if isinstance(e, kind)]


def sent(effects: Iterable[Effect], kind: type[T], to: Address | None = None) -> list[T]:
    """The messages of one kind sent (to ``to`` when given), in order."""
    return [
        e.message
        for e in effects
        if isinstance(e, Send) and isinstance(e.message, kind) and (to is None or e.to == to)
    ]


def sends_to(effects: Iterable[Effect], kind: type[Message]) -> list[Address]:
    """Where the messages of one kind were sent, in order."""
    return [e.to for e in effects if isinstance(e, Send) and isinstance(e.message, kind)]


def events(effects: Iterable[Effect], kind: str | None = None) -> list[Event]:
    """The events emitted (of one kind when given), in order."""
    return [
        e.event for e in effects if isinstance(e, Emit) and (kind is None or e.event.kind == kind)
    ]


def replied(effects: Iterable[Effect]) -> list[Outcome]:
    """The outcomes replied, in order."""
    return [e.outcome for e in effects if isinstance(e, Reply)]


def pump(
    vs: ViableSystem,
    effects: list[Effect],
    now: float,
    *,
    kernels: dict[str, Kernel] | None = None,
    limit: int = 1_000,
) -> list[Effect]:
    """Play the host for one viable system until its Systems have nothing left to say.

    Messages and replies to ``vs``'s own Systems are delivered at once, in order (a reply as
    ``IntentFinished``), and kernels run inline (their ``KernelFinished`` delivered like a local
    message). Everything else (timers, replies to others, messages to other viable systems,
    spawns, events) is returned, in order.
    """
    table = dict(kernels or BUILTIN_KERNELS)
    queue = list(effects)
    out: list[Effect] = []
    steps = 0
    while queue:
        steps += 1
        assert steps <= limit, "the viable system keeps talking to itself"
        effect = queue.pop(0)
        if isinstance(effect, Send) and effect.to.path == vs.path:
            queue += vs.handle(effect.to.system, effect.message, now)
        elif isinstance(effect, Reply) and effect.to is not None and effect.to.path == vs.path:
            finished = IntentFinished(outcome=effect.outcome)
            queue += vs.handle(effect.to.system, finished, now)
        elif isinstance(effect, RunKernel) and effect.reply_to.path == vs.path:
            result, error = run_kernel(table, effect.kernel, effect.params)
            done = KernelFinished(intent_id=effect.intent_id, result=result, error=error)
            queue += vs.handle(effect.reply_to.system, done, now)
        else:
            out.append(effect)
    return out


# ---------------------------------------------------------------- policies

USERS = ("alice", "bob", "carol")
ZONES = ("default", "eu", "us", "secret")

zone_sets = st.lists(st.sampled_from(ZONES), unique=True, max_size=len(ZONES)).map(tuple)

policies = st.builds(
    PolicySpec,
    zones=st.dictionaries(st.sampled_from(USERS), zone_sets, max_size=len(USERS)),
    open_zones=zone_sets,
    max_depth=st.integers(0, 32),
    max_params=st.integers(0, 100),
    default_deadline=st.floats(0.001, 1e6, allow_nan=False),
    spawn_failure_threshold=st.integers(1, 20),
    spawn_reset_after=st.floats(0.001, 1e6, allow_nan=False),
    algedonic_threshold=st.floats(0.0, 1.0, allow_nan=False),
    version=st.integers(1, 1_000),
)
"""Any valid policy, over a small domain of users and zones so grants overlap."""

# ---------------------------------------------------------------- the machine's tree

MACHINE_GUARD = 2
"""The depth guard of :data:`MACHINE_TREE`: its static tree is exactly this deep."""

MACHINE_TREE = TreeSpec(
    name="machine",
    policy=PolicySpec(
        max_depth=MACHINE_GUARD,
        zones={"alice": ("secret",)},
        default_deadline=20.0,
    ),
    limits=LimitsSpec(user_rate=20.0, user_burst=8.0, restart_max=1, restart_within=60.0),
    root=NodeSpec(
        name="root",
        capabilities=(
            cap("root.echo", description="echo the request parameters back"),
            cap("root.sum", "sum", "add up a list of numbers"),
        ),
        children=(
            NodeSpec(
                name="a",
                capabilities=(
                    cap("a.fail", "fail", "always fails on purpose"),
                    cap("shared.echo", description="shared mirror served twice"),
                ),
                children=(
                    NodeSpec(
                        name="b",
                        capabilities=(cap("b.echo", description="reflect from the deepest leaf"),),
                        templates=(
                            # b sits at the guard: spawning this is refused (DEPTH_GUARD).
                            NodeSpec(name="v", capabilities=(cap("v.echo", description="vortex"),)),
                        ),
                    ),
                ),
                templates=(
                    NodeSpec(
                        name="u", capabilities=(cap("u.echo", description="tunnel scribble"),)
                    ),
                    # At the guard itself, but with a static child below it: refused too.
                    NodeSpec(
                        name="z",
                        children=(NodeSpec(name="zz", capabilities=(cap("zz.echo"),)),),
                    ),
                ),
            ),
            NodeSpec(
                name="c",
                capabilities=(
                    cap("c.sum", "sum", "count totals in the side branch"),
                    cap("shared.echo", description="shared mirror served twice"),
                ),
            ),
        ),
        templates=(
            NodeSpec(name="t", capabilities=(cap("t.echo", description="glimmer pattern maker"),)),
        ),
    ),
)
"""The tree the simulation state machine attacks: three levels, two units sharing a capability,
templates at every level (two of them past the guard), low user rates, and supervisors that give
up on a child's second death within a minute (so escalations happen)."""

MACHINE_CAPABILITIES = tuple(sorted(MACHINE_TREE.root.offered()))
MACHINE_TEXTS = (
    "please add up these numbers",
    "echo my request back",
    "reflect from the leaf",
    "make a glimmer pattern",
    "scribble a tunnel",
    "count the totals",
    "something nobody understands",
)
MACHINE_PATHS = ("root/a", "root/a/b", "root/c", "root/t", "root/a/u")
"""Non-root paths that can exist in :data:`MACHINE_TREE` (static children and templates)."""

params = st.fixed_dictionaries({}, optional={"values": st.lists(st.integers(-5, 5), max_size=3)})

exact_intents = st.builds(
    lambda capability, p, user: {"capability": capability, "params": p, "user": user},
    st.sampled_from(MACHINE_CAPABILITIES),
    params,
    st.sampled_from(USERS),
)
text_intents = st.builds(
    lambda text, user: {"text": text, "user": user},
    st.sampled_from(MACHINE_TEXTS),
    st.sampled_from(USERS),
)
unknown_intents = st.builds(
    lambda name, user: {"capability": name, "user": user},
    st.sampled_from(("nobody.offers", "root.echo2", "t")),
    st.sampled_from(USERS),
)
forbidden_intents = st.builds(
    lambda capability, user, zone: {"capability": capability, "user": user, "zone": zone},
    st.sampled_from(MACHINE_CAPABILITIES),
    st.sampled_from(("bob", "carol")),
    st.sampled_from(("secret", "us")),
)
step_specs = st.one_of(exact_intents, text_intents, unknown_intents)
plan_intents = st.builds(
    lambda steps, parallel, user: {"plan": steps, "parallel": parallel, "user": user},
    st.lists(step_specs, min_size=1, max_size=3),
    st.booleans(),
    st.sampled_from(USERS),
)
intent_specs = st.one_of(
    exact_intents, text_intents, plan_intents, unknown_intents, forbidden_intents
)
"""Keyword arguments of an intent for :data:`MACHINE_TREE`, without its id: exact capability,
free text, a composite plan, an unknown capability, or a zone its user is not granted."""


def make_intent(intent_id: str, spec: dict[str, Any], deadline: float | None = None) -> Intent:
    """Build an intent from :data:`intent_specs` output (plan steps get ids ``step<k>``)."""
    fields = dict(spec)
    if "plan" in fields:
        fields["plan"] = tuple(
            make_intent(f"step{k}", step) for k, step in enumerate(fields["plan"])
        )
    return Intent(id=intent_id, deadline=deadline, **fields)


patches = st.fixed_dictionaries(
    {
        "max_params": st.integers(0, 64),
        "default_deadline": st.floats(1.0, 30.0, allow_nan=False),
        "algedonic_threshold": st.sampled_from((0.0, 0.3, 0.5, 0.8, 1.0)),
        "zones": st.sampled_from(({"alice": ("secret",)}, {}, {"bob": ("secret", "us")})),
    }
)
"""Fields of a policy patch (the machine adds a version that raises the current one)."""

networks = st.builds(
    NetworkConfig,
    drop=st.sampled_from((0.0, 0.02, 0.1, 0.3)),
    duplicate=st.sampled_from((0.0, 0.05, 0.2, 0.5)),
    min_delay=st.just(0.001),
    max_delay=st.sampled_from((0.001, 0.005, 0.05, 0.5)),
)
"""Hostile networks: loss, duplication, and delays long enough to reorder."""
