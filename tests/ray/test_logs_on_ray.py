"""JSON log lines from the hosts of a tree whose Ray job logs JSON (a fresh process)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_host_logs_json_with_the_tree_host_and_path(tmp_path: Path) -> None:
    """A bad checkpoint at start: the host's line names the tree, itself, the path, Ray's ids."""
    run = subprocess.run(
        [sys.executable, "-m", "tests.ray.log_process", str(tmp_path / "logs.sqlite")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    lines = [json.loads(line) for line in run.stdout.splitlines() if "unreadable" in line]
    assert lines, run.stdout[-2000:]
    record = lines[-1]
    assert record["levelname"] == "ERROR"
    assert record["message"] == "vsm:root: the checkpoint of root is unreadable; starting fresh"
    assert (record["vsm_tree"], record["vsm_host"], record["vsm_path"]) == ("logs", "root", "root")
    assert record["actor_name"] == "vsm:root"  # Ray's context, on the same line
    assert "MalformedDataError" in record["exc_text"]
