"""A federated tree in a Ray cluster of its own: the peer of tests/ray/test_federation_on_ray.py.

Run as ``python -m tests.ray.peer_process SPEC.json``. It starts a new local Ray cluster (one
CPU, no dashboard), starts the tree, prints ``READY``, then answers commands read from stdin,
one per line: ``digest`` prints the root registry's digest as JSON (hex buckets), ``stop``
(or the end of stdin) stops the tree and the cluster.
"""

from __future__ import annotations

import json
import sys

import ray

from actors._runtime import RayTree
from vsm.spec import TreeSpec


def main(path: str) -> int:
    with open(path, encoding="utf-8") as file:
        spec = TreeSpec.model_validate_json(file.read())
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        tree = RayTree.start(spec, timeout=120)
        assert ray.get(tree.bridge().ready.remote(30.0)), "the bridge did not connect"
        sys.stdout.write("READY\n")
        sys.stdout.flush()
        for line in sys.stdin:
            command = line.strip()
            if command == "digest":
                digest = ray.get(tree.desk().registry_digest.remote(spec.root.name))
                sys.stdout.write(json.dumps([bucket.hex() for bucket in digest]) + "\n")
                sys.stdout.flush()
            elif command == "stop":
                break
        tree.stop()
        return 0
    finally:
        ray.shutdown()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
