"""The SDK and the ``vsm`` verbs end to end, against real trees on the session's Ray cluster.

The CLI runs in this process (``actors.cli.main``), so it finds the session's cluster already
connected; one test runs ``vsm demo`` as a fresh process, which starts a cluster of its own.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import ray
from prometheus_client.parser import text_string_to_metric_families

from actors.cli import main
from actors.sdk import (
    AsyncClient,
    Client,
    IntentRefused,
    IntentRequest,
    IntentTimeout,
    NoTreeError,
    SignatureRequired,
)
from protocol import Identity
from tests.ray.conftest import tree_spec
from vsm.intents import Intent, Refusal, Status
from vsm.spec import ClientsSpec

ROOT = Path(__file__).resolve().parents[2]


def vsm(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any]:
    """Run ``vsm ARGV --format json``; return the exit code and the parsed JSON output."""
    code = main([*argv, "--format", "json"])
    out = capsys.readouterr().out.strip()
    lines = [json.loads(line) for line in out.splitlines() if line.startswith(("{", "["))]
    return code, lines[0] if len(lines) == 1 else lines


@pytest.fixture
def spec_file(tmp_path: Path) -> Path:
    spec = tree_spec("node")
    path = tmp_path / "tree.json"
    path.write_text(spec.model_dump_json(indent=2))
    return path


def test_the_cli_runs_a_tree_from_up_to_down(
    ray_cluster: None, spec_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """up, send (by capability and by text), tree, status, events, down — JSON parsed."""
    name = json.loads(spec_file.read_text())["name"]
    code, up = vsm(capsys, "up", str(spec_file))
    assert code == 0
    assert up["viable_systems"] == 4
    assert "vsm:root/a/b" in up["actors"]
    try:
        code, sent = vsm(capsys, "send", "-c", "a.sum", "-p", "values=[1,2,3]", "--tree", name)
        assert (code, sent["status"], sent["result"], sent["path"]) == (0, "completed", 6, "root/a")
        code, sent = vsm(capsys, "send", "-c", "no.such", "--tree", name)
        assert (code, sent["status"], sent["reason"]) == (1, "rejected", "no_capability")
        code, sent = vsm(capsys, "send", "-c", "c.echo", "--zone", "eu", "--tree", name)
        assert (code, sent["reason"], sent["by"]) == (1, "policy", "S5")
        code, late = vsm(capsys, "send", "-c", "b.echo", "--timeout", "0.000001", "--tree", name)
        assert (code, late["status"]) == (1, "rejected")  # the deadline passed on the way
        assert "deadline" in late["detail"]
        code, tree = vsm(capsys, "tree", "--tree", name)
        assert code == 0
        assert [part["path"] for part in tree] == ["root", "root/a", "root/a/b", "root/c"]
        assert {part["status"] for part in tree} == {"healthy"}
        code, status = vsm(capsys, "status", "--tree", name)
        assert (code, status["viable_systems"], status["answered_twice"]) == (0, 4, [])
        code, events = vsm(capsys, "events", "--tree", name, "--kind", "intent.")
        assert code == 0
        assert {e["kind"] for e in events} >= {"intent.accepted", "intent.completed"}
        code, _ = vsm(capsys, "up", str(spec_file))
        assert code == 1  # a tree of that name runs already
    finally:
        code, down = vsm(capsys, "down", "--tree", name)
    assert (code, down) == (0, {"stopped": name})
    code, _ = vsm(capsys, "down", "--tree", name)
    assert code == 3  # no such tree any more


def test_cli_failure_modes_have_their_exit_codes(
    ray_cluster: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: t\nroot:\n  name: root\n  placement: everywhere\n")
    assert main(["up", str(bad)]) == 2
    assert "root.placement (line 4)" in capsys.readouterr().out
    assert main(["status", "--tree", "never-started"]) == 3
    assert "no tree named 'never-started'" in capsys.readouterr().out
    with pytest.raises(SystemExit) as usage:
        main(["send", "--timeout", "soon"])
    assert usage.value.code == 2


def test_the_sdk_submits_streams_and_reads_the_tree(start_tree: Any) -> None:
    tree = start_tree(tree_spec("node"))
    with Client(tree.spec.name, user="alice") as client:
        handle = client.submit("b.echo", params={"x": 1})
        progress = list(handle.stream(timeout=60))
        assert handle.result(timeout=30) == {"x": 1}
        assert progress, "S1 streams progress to the client"
        assert {p.intent_id for p in progress} == {handle.id}
        assert client.ask("c.echo", zone="eu", timeout=30) == {}  # alice holds zone eu
        with pytest.raises(IntentRefused) as refused:
            client.ask("c.echo", zone="eu", user="bob", timeout=30)
        assert refused.value.outcome.reason is Refusal.POLICY
        assert "policy" in str(refused.value)
        assert (
            client.submit(text="add up a list of numbers", params={"values": [2, 3]}).result(
                timeout=30
            )
            == 5
        )
        with pytest.raises(ValueError, match="exactly one"):
            client.submit("b.echo", text="both")
        request = IntentRequest(capability="a.sum", params={"values": [4, 4]}, timeout=30)
        assert client.submit(request).result(timeout=30) == 8
        with pytest.raises(ValueError, match="exactly one"):
            IntentRequest(capability="a.sum", text="and text")
        with pytest.raises(IntentTimeout):
            client.submit("b.echo").outcome(timeout=0)  # asked before the tree could answer
        assert [p["path"] for p in client.tree()] == ["root", "root/a", "root/a/b", "root/c"]
        assert client.status()["viable_systems"] == 4
        everything = {"root.echo", "a.sum", "b.echo", "c.echo"}
        deadline = time.monotonic() + 30  # the grandchild's advert is two gossip hops away
        while {a["capability"] for a in client.registry()} != everything:
            assert time.monotonic() < deadline, f"root's registry: {client.registry()}"
            time.sleep(0.2)
        assert any(e.kind == "intent.completed" for e in client.events())
    with pytest.raises(NoTreeError, match="no tree named 'elsewhere'"):
        Client("elsewhere")


def test_the_async_client_does_the_same(start_tree: Any) -> None:
    tree = start_tree(tree_spec("pooled"))

    async def scenario() -> list[Any]:
        async with await AsyncClient.connect(tree.spec.name) as client:
            handles = [await client.submit("a.sum", params={"values": [i, i]}) for i in range(5)]
            results = [await h.result(timeout=60) for h in handles]
            outcome = await (await client.submit("no.such")).outcome(timeout=60)
            assert outcome.status is Status.REJECTED
            assert len(await client.tree()) == 4
            return results

    assert asyncio.run(scenario()) == [0, 2, 4, 6, 8]


def test_vsm_demo_runs_the_main_job_in_a_fresh_process(ray_cluster: None) -> None:
    """``vsm demo`` starts its own local cluster, runs the demo tree on Ray, stops cleanly."""
    done = subprocess.run(
        [sys.executable, "-m", "actors.cli", "demo", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    data = json.loads(done.stdout.strip().splitlines()[-1])
    assert data["contract_holds"] is True
    outcomes = data["outcomes"]
    assert outcomes["sum-1"]["result"] == 6
    assert outcomes["eu-bob"]["reason"] == "policy"
    assert outcomes["unknown-1"]["reason"] == "no_capability"
    assert outcomes["weather-1"]["path"] == "root/weather"  # spawned from a template
    assert outcomes["plan-1"]["status"] == "completed"
    assert data["by_status"].get("rejected (rate_limit)", 0) > 0
    assert data["tree"]["root/math/audit"]["depth"] == 2


def test_a_tree_that_requires_signatures_takes_only_signed_intents(start_tree: Any) -> None:
    """Only intents sealed by a key of the spec run, as the user the key names.

    Unsigned intents raise SignatureRequired; an unknown key's and a replayed envelope are
    refused with the reason.
    """
    alice, stranger = Identity.generate("alice"), Identity.generate("mallory")
    spec = tree_spec("node").model_copy(
        update={"clients": ClientsSpec(signed=True, keys={"alice": alice.public_key_bytes().hex()})}
    )
    tree = start_tree(spec)
    with Client(spec.name) as anonymous, pytest.raises(SignatureRequired, match="signed intents"):
        anonymous.ask("b.echo", timeout=30)
    with Client(spec.name, identity=alice, user="bob") as client:
        # zone eu is granted to alice: the signature, not the claimed user, decides
        assert client.ask("c.echo", zone="eu", params={"v": 1}, timeout=30) == {"v": 1}
        sealed = client._seal(Intent(id="sealed-once", capability="b.echo", user="alice"))
    with Client(spec.name, identity=stranger) as forger, pytest.raises(IntentRefused) as refused:
        forger.ask("b.echo", timeout=30)
    assert "unknown-key" in refused.value.outcome.detail
    first = ray.get(tree.desk().submit_sealed.remote(sealed))
    again = ray.get(tree.desk().submit_sealed.remote(sealed))
    assert first.status is Status.COMPLETED
    assert (again.status, again.reason) == (Status.REJECTED, Refusal.POLICY)
    assert "replayed" in again.detail


def test_the_tree_s_metrics_count_what_happened(
    start_tree: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """Outcomes at the desk, intents at each S1, summed over the pool's hosts; served too."""
    tree = start_tree(tree_spec("pooled"))
    with Client(tree.spec.name, user="bob") as client:
        for i in range(4):
            assert client.ask("b.echo", params={"i": i}, timeout=30) == {"i": i}
        for capability, zone in (("c.echo", "eu"), ("no.such", "default")):
            with pytest.raises(IntentRefused):
                client.ask(capability, zone=zone, timeout=30)

        def value(name: str, **labels: str) -> float:
            return sum(
                s["value"]
                for s in client.metrics()
                if s["name"] == name and labels.items() <= s["labels"].items()
            )

        assert value("vsm_outcomes_total", status="completed") == 4
        assert value("vsm_outcomes_total", status="rejected", reason="policy") == 1
        assert value("vsm_outcomes_total") == 6
        # Every level the intents went through ended them: the root's S1 and the leaf's.
        assert value("vsm_intents_total", path="root", status="completed") == 4
        assert value("vsm_intents_total", path="root/a/b", status="completed") == 4
        assert value("vsm_intent_duration_seconds_count", path="root/a/b") == 4
        assert value("vsm_outcome_duration_seconds_count", status="completed") == 4
        assert value("vsm_hosts_answered") == tree.spec.pool_size
        assert value("vsm_messages_total") > 0

        server = client.serve_metrics(port=0)
        try:
            assert server.host == "127.0.0.1"
            with urllib.request.urlopen(server.url, timeout=30) as response:
                body = response.read().decode()
        finally:
            server.close()
        scraped = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(body)
            for s in family.samples
            if s.name == "vsm_outcomes_total"
        }
        assert sum(scraped.values()) == 6

    assert main(["metrics", "--tree", tree.spec.name]) == 0
    text = capsys.readouterr().out
    assert "# TYPE vsm_outcomes_total counter" in text
    code, lines = vsm(capsys, "metrics", "--tree", tree.spec.name)
    assert code == 0
    assert any(line["name"] == "vsm_outcomes_total" for line in lines)
