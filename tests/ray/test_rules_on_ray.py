"""GoldRush rules on a live tree: patched through the SDK and the CLI, then firing on Ray.

The tree starts with no rules, so no System sends S3 its events; a patch through the SDK adds
the spike rule, S3 tells the other Systems to send theirs (``Watch``: with ``system``
placement they are other actors), and a burst from one user gets that user throttled by S2
while another user is served.
"""

from __future__ import annotations

import itertools
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from actors.cli import main
from actors.sdk import Client, IntentRefused, NoSuchViableSystem
from tests.ray.conftest import cap
from vsm.intents import Refusal
from vsm.spec import LimitsSpec, NodeSpec, Placement, PolicySpec, TreeSpec

SPIKE = {
    "name": "spike",
    "condition": 'count(kind == "intent.accepted") by user within 5s > 5',
    "response": {
        "type": "throttle",
        "target": "user",
        "key_field": "user",
        "rate": 0.2,
        "seconds": 60.0,
    },
}


_names = itertools.count(1)


def _spec(placement: Placement) -> TreeSpec:
    return TreeSpec(
        name=f"rules{next(_names)}-{placement}-{os.getpid()}",
        policy=PolicySpec(max_depth=1),
        limits=LimitsSpec(user_rate=1_000, user_burst=2_000),
        root=NodeSpec(name="root", placement=placement, capabilities=(cap("work"),)),
    )


def _burst(client: Client, user: str, count: int) -> list[Any]:
    """Send ``count`` intents as ``user``, 50 ms apart; their outcomes."""
    handles = []
    for i in range(count):
        handles.append(client.submit("work", user=user, intent_id=f"{user}-{i}", timeout=20))
        time.sleep(0.05)
    return [h.outcome(timeout=30) for h in handles]


@pytest.mark.parametrize("placement", ["node", "system"])
def test_a_rule_patched_through_the_sdk_throttles_a_spiking_user(
    start_tree: Any, placement: Placement
) -> None:
    """No rules, then a patch: the spiking user is refused naming the rule; others pass."""
    tree = start_tree(_spec(placement))
    with Client(tree.spec.name) as client:
        before = client.rules()
        assert (before["path"], before["rules"], before["version"]) == ("root", [], 0)
        assert client.ask("work", user="warm", timeout=20) == {}
        after = client.patch_rules(add=[SPIKE])
        assert [rule["name"] for rule in after["rules"]] == ["spike"]
        assert after["version"] == 1

        outcomes = _burst(client, "spiky", 20)
        refused = [o for o in outcomes if o.reason is Refusal.RATE_LIMIT]
        assert refused, [str(o.status) for o in outcomes]
        assert all("rule 'spike'" in (o.detail or "") for o in refused)
        assert client.ask("work", user="calm", timeout=20) == {}  # others are still served
        with pytest.raises(IntentRefused, match="spike"):
            client.ask("work", user="spiky", timeout=20)

        counted = client.rules()
        assert counted["stats"]["spike"]["matched"] >= 1
        assert counted["stats"]["spike"]["input"] >= 20
        kinds = {event.kind for event in client.events()}
        assert {"rules.patched", "rule.matched", "throttle.started"} <= kinds

        removed = client.patch_rules(remove=["spike"])
        assert (removed["rules"], removed["version"]) == ([], 2)


def test_bad_patches_are_refused_whole_and_change_nothing(start_tree: Any) -> None:
    """A malformed rule, a twice-named rule, an unknown removal, an unknown path: errors."""
    tree = start_tree(_spec("node"))
    with Client(tree.spec.name) as client:
        client.patch_rules(add=[SPIKE])
        bad = {**SPIKE, "name": "bad", "condition": "cpu >> 0.8"}
        with pytest.raises(ValueError, match=r"add\[1\]"):
            client.patch_rules(add=[{**SPIKE, "name": "ok"}, bad])
        with pytest.raises(ValueError, match=r"more than once.*'spike'"):
            client.patch_rules(add=[SPIKE, SPIKE])
        with pytest.raises(ValueError, match=r"does not hold.*'nope'"):
            client.patch_rules(remove=["nope"])
        with pytest.raises(NoSuchViableSystem, match="root/zz"):
            client.patch_rules(add=[SPIKE], path="root/zz")
        found = client.rules()
        assert [rule["name"] for rule in found["rules"]] == ["spike"]
        assert found["version"] == 1


def test_vsm_rules_shows_and_patches(
    start_tree: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``vsm rules`` lists the set; ``--add FILE`` and ``--remove`` patch it; errors exit 2."""
    tree = start_tree(_spec("node"))
    name = tree.spec.name
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "rules:\n"
        "  - name: spike\n"
        '    condition: count(kind == "intent.accepted") by user within 5s > 5\n'
        "    response: {type: throttle, target: user, key_field: user, rate: 0.2, seconds: 60}\n"
    )

    def vsm(*argv: str) -> tuple[int, Any]:
        code = main([*argv, "--tree", name, "--format", "json"])
        out = capsys.readouterr().out.strip()
        return code, json.loads(out) if out.startswith("{") else out

    assert vsm("rules")[1]["rules"] == []
    code, patched = vsm("rules", "--add", str(rules))
    assert code == 0
    assert [rule["name"] for rule in patched["rules"]] == ["spike"]
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps([{"name": "x", "condition": "cpu >", "response": {}}]))
    assert vsm("rules", "--add", str(broken))[0] == 2
    assert vsm("rules", "--add", str(tmp_path / "missing.toml"))[0] == 2
    assert vsm("rules", "--remove", "nope")[0] == 2
    assert vsm("rules", "--path", "root/zz")[0] == 1
    code, removed = vsm("rules", "--remove", "spike")
    assert (code, removed["rules"]) == (0, [])
    assert main(["rules", "--tree", name]) == 0  # the table form
