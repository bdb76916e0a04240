"""A tree on a Ray cluster of its own, whose job logs JSON lines.

It starts the tree on an unreadable checkpoint and prints the host's line about it (run by
tests/ray/test_logs_on_ray.py in a fresh process).

Usage: python -m tests.ray.log_process STORAGE
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import ray

from actors._logs import logging_config
from actors._runtime import RayTree
from actors._store import CheckpointStore
from vsm.spec import NodeSpec, TreeSpec


def main(storage: str) -> int:
    spec = TreeSpec(name="logs", storage=storage, root=NodeSpec(name="root"))
    store = CheckpointStore(storage)
    store.save("logs", "root", 1, {"parts": {"S5": {"not": "a policy"}}})  # unreadable
    store.close()
    ray.init(
        num_cpus=1,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
        logging_config=logging_config("json"),
    )
    try:
        tree = RayTree.start(spec, resume=True, timeout=120)
        logs = Path(ray._private.worker._global_node.get_logs_dir_path())
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            for file in sorted(logs.glob("worker-*")):
                for line in file.read_text(errors="replace").splitlines():
                    if "unreadable" in line:
                        sys.stdout.write(line + "\n")
                        tree.stop()
                        return 0
            time.sleep(0.2)
        tree.stop()
        return 1
    finally:
        ray.shutdown()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
