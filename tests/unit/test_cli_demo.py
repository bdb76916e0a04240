"""The main job (``vsm demo``) runs the real registry and checks convergence."""

from __future__ import annotations

import json

import pytest

from actors._model_demo import run_model_demo
from actors._registry_demo import run_registry_demo
from actors.cli import main


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_demo_converges_under_loss_and_reordering(seed: int) -> None:
    """Replicas converge although a third of the deltas are dropped and the rest shuffled."""
    report = run_registry_demo(fanout=2, depth=3, writes=80, seed=seed, loss=0.35)
    assert report.dropped > 0, "the network must actually lose messages for this test to mean it"
    assert report.repaired_buckets > 0
    assert report.converged
    assert report.adverts > 0
    assert set(report.cheapest) <= {
        "patterns.generate",
        "tunnel.transmission",
        "billing.invoice",
        "audit.sample",
        "weather.forecast",
    }


def test_demo_is_repeatable_for_a_seed() -> None:
    """The same seed gives the same run."""
    assert run_registry_demo(seed=11) == run_registry_demo(seed=11)


def test_cli_gossip_json(capsys: pytest.CaptureFixture[str]) -> None:
    """``vsm gossip --format json`` prints one JSON object and exits 0 when replicas agree."""
    code = main(["gossip", "--format", "json", "--writes", "30", "--seed", "5"])
    data = json.loads(capsys.readouterr().out)
    assert code == 0
    assert data["converged"] is True
    assert data["replicas"] == 13
    assert data["writes"] == 30


def test_cli_rejects_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    """A bad argument is a usage error (exit 2) that names the problem."""
    with pytest.raises(SystemExit) as exc:
        main(["gossip", "--loss", "1.5"])
    assert exc.value.code == 2
    assert "must be in [0, 1)" in capsys.readouterr().err


def test_model_demo_keeps_the_intent_contract() -> None:
    """The main job's tree answers every intent exactly once and shows every kind of outcome."""
    report = run_model_demo(seed=3)
    assert report.contract_holds
    statuses = report.by_status()
    for kind in (
        "completed",
        "rejected (policy)",
        "rejected (rate_limit)",
        "rejected (no_capability)",
        "failed (unit_failed)",
    ):
        assert statuses[kind] > 0, kind
    assert report.outcomes["weather-1"].path == "root/weather"  # spawned from its template
    assert report.outcomes["plan-1"].result == [{"step": 1}, 30]
    assert "root/math/audit" in report.tree


def test_cli_demo_json(capsys: pytest.CaptureFixture[str]) -> None:
    """``vsm demo --sim --format json`` prints one JSON object; exit 0 when the contract holds."""
    code = main(["demo", "--sim", "--format", "json", "--seed", "4"])
    data = json.loads(capsys.readouterr().out)
    assert code == 0
    assert data["contract_holds"] is True
    assert data["outcomes"]["sum-1"]["result"] == 6
    assert data["outcomes"]["eu-bob"]["by"] == "S5"


def test_example_tree_file_is_the_demo_tree() -> None:
    """``examples/demo-tree.toml`` validates and describes the same tree the demo runs."""
    import tomllib
    from pathlib import Path

    from actors._model_demo import DEMO_TREE
    from vsm.spec import TreeSpec

    path = Path(__file__).resolve().parents[2] / "examples" / "demo-tree.toml"
    with path.open("rb") as handle:
        from_file = TreeSpec.model_validate(tomllib.load(handle))
    assert from_file == TreeSpec.model_validate(DEMO_TREE)
