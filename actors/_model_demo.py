"""The model demo: a tree of viable systems answers a mix of intents on a hostile network.

Until the Ray runtime lands this is what ``vsm demo`` runs: the real Systems 1-5 in the
deterministic simulator, on a network that drops and duplicates messages. It sends intents
routed to every level, free text, a composite plan, demand that spawns a child from a
template, and intents that policy, the rate limit or the lack of a capability refuse — then
checks the intent contract: every intent has exactly one terminal outcome.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from vsm.intents import Intent, Outcome
from vsm.sim import NetworkConfig, Simulation
from vsm.spec import TreeSpec

__all__ = ["DEMO_TREE", "ModelReport", "run_model_demo"]

DEMO_TREE: dict[str, Any] = {
    "name": "demo",
    "policy": {"max_depth": 2, "open_zones": ["default"], "zones": {"alice": ["eu"]}},
    "limits": {"user_rate": 50.0, "user_burst": 20.0},
    "root": {
        "name": "root",
        "capabilities": [
            {"name": "echo", "kernel": "echo", "description": "repeat the parameters back"}
        ],
        "children": [
            {
                "name": "math",
                "capabilities": [
                    {"name": "math.sum", "kernel": "sum", "description": "add up a list of numbers"}
                ],
                "children": [
                    {
                        "name": "audit",
                        "capabilities": [
                            {
                                "name": "audit.fail",
                                "kernel": "fail",
                                "description": "a unit that always fails",
                            }
                        ],
                    }
                ],
            },
            {
                "name": "eu",
                "capabilities": [
                    {
                        "name": "eu.echo",
                        "kernel": "echo",
                        "description": "echo inside the eu zone",
                        "zone": "eu",
                    }
                ],
            },
        ],
        "templates": [
            {
                "name": "weather",
                "capabilities": [
                    {
                        "name": "weather.forecast",
                        "kernel": "echo",
                        "description": "forecast the weather for a city",
                    }
                ],
            }
        ],
    },
}
"""The demo tree (also in ``examples/demo-tree.toml``)."""


@dataclass(frozen=True, slots=True)
class ModelReport:
    """What the model demo did and found."""

    intents: list[Intent]
    outcomes: dict[str, Outcome]
    replies: dict[str, int]
    lost: set[str]
    tree: dict[str, dict[str, Any]]
    variety: dict[str, object]
    messages: int
    virtual_seconds: float
    quiet: bool

    @property
    def contract_holds(self) -> bool:
        """Every intent has exactly one outcome, none lost, none answered twice."""
        ids = {i.id for i in self.intents}
        return (
            self.quiet
            and set(self.outcomes) == ids
            and not self.lost
            and all(self.replies.get(i, 0) == 1 for i in ids)
        )

    def by_status(self) -> Counter[str]:
        """How many outcomes of each status (and refusal reason)."""
        return Counter(
            f"{o.status}" + (f" ({o.reason})" if o.reason else "") for o in self.outcomes.values()
        )


def _intents(flood: int = 30) -> list[Intent]:
    intents = [
        Intent(id="echo-1", capability="echo", params={"hello": "world"}),
        Intent(id="sum-1", capability="math.sum", params={"values": [1, 2, 3]}),
        Intent(id="sum-text", text="please add up these numbers", params={"values": [4, 5]}),
        Intent(id="eu-alice", capability="eu.echo", user="alice", zone="eu", params={"x": 1}),
        Intent(id="eu-bob", capability="eu.echo", user="bob", zone="eu", params={"x": 2}),
        Intent(id="audit-1", capability="audit.fail", params={"reason": "audit found a gap"}),
        Intent(id="weather-1", capability="weather.forecast", params={"city": "Oslo"}),
        Intent(id="weather-text", text="what is the weather forecast", params={"city": "Rome"}),
        Intent(id="unknown-1", capability="teleport"),
        Intent(
            id="plan-1",
            plan=(
                Intent(id="a", capability="echo", params={"step": 1}),
                Intent(id="b", capability="math.sum", params={"values": [10, 20]}),
            ),
        ),
    ]
    intents += [
        Intent(id=f"flood-{i}", capability="echo", user="flood", params={"i": i})
        for i in range(flood)
    ]
    return intents


def run_model_demo(*, seed: int = 7, loss: float = 0.05) -> ModelReport:
    """Run the demo and report; the same seed gives the same run."""
    tree = TreeSpec.model_validate(DEMO_TREE)
    sim = Simulation(tree, seed=seed, network=NetworkConfig(drop=loss, duplicate=loss))
    sim.run_until_quiet(max_time=60)  # the tree starts and its registries settle
    intents = _intents()
    for intent in intents:
        sim.submit(intent)
    quiet = sim.run_until_quiet(max_time=600)
    return ModelReport(
        intents=intents,
        outcomes=sim.outcomes(),
        replies=sim.replies(),
        lost=sim.lost(),
        tree=sim.tree(),
        variety=sim.node(sim.root).variety(),
        messages=int(sim.processed),
        virtual_seconds=sim.now,
        quiet=quiet,
    )
