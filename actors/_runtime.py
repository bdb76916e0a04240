"""Start, reach and stop a tree of viable systems on Ray.

Rules:
    1. ``RayTree.start`` needs a connected Ray (``ray.init``); the tree lives in its own
       namespace (:func:`actors._naming.namespace_of`). The root's hosts and the pool are
       detached named actors; every other host is created, and so owned, by its parent's
       host. Stopping kills the root's hosts and the pool, and Ray takes the rest with them.
    2. ``start`` returns once every static viable system of the spec is hosted (the model
       spawns them), or raises :class:`TreeStartError` naming the missing ones.
    3. Intents go to the client desk (the host of the root's S5); each gets one outcome.
       The desk's handle is looked up by name at most once every ``DESK_TTL`` seconds (a
       lookup asks the GCS and builds a handle: it cost more than the intent itself), so a
       desk started again under its name — the tree stopped and started elsewhere — is
       found within that time; ``stop`` forgets it at once.
    4. Checkpoints go to the SQLite file ``spec.storage`` (resolved against the current
       directory); a tree started with ``resume=True`` takes up where the last run left.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import ray
import ray.exceptions

from actors._bridge import BRIDGE, BridgeActor
from actors._host import HostActor
from actors._naming import (
    actor_name,
    actor_names,
    find_actor,
    host_in,
    namespace_of,
    pool_name,
    spec_at,
    uses_pool,
)
from actors._store import CheckpointStore
from protocol import Identity, KeyFileError
from vsm.address import SystemId
from vsm.effects import Event
from vsm.intents import Intent, Outcome
from vsm.messages import IntentProgress
from vsm.spec import NodeSpec, TreeSpec

__all__ = ["DESK_TTL", "RayTree", "TreeExistsError", "TreeNotRunningError", "TreeStartError"]

DESK_TTL = 1.0
"""Seconds a looked-up handle of the client desk is reused (rule 3)."""


class TreeStartError(RuntimeError):
    """The tree did not come up in time; the message names what is missing."""


class TreeExistsError(RuntimeError):
    """A tree of that name is already running in this Ray cluster."""


class TreeNotRunningError(LookupError):
    """No tree of that name is running in this Ray cluster."""


def _with_readable_identity(spec: TreeSpec) -> TreeSpec:
    """``spec`` with its federation key file as an absolute path, checked here.

    The bridge runs in a Ray worker, whose working directory is not the caller's: a relative
    path is resolved against the caller's, like ``storage``, and a key that cannot be used
    fails the start at once, with the reason, instead of the bridge.

    Raises:
        TreeStartError: the key file is missing, unreadable, or not an Ed25519 private key.
    """
    federation = spec.federation
    if federation is None:
        return spec
    path = str(Path(federation.identity).resolve())
    try:
        Identity.load(path, federation.key_id)
    except KeyFileError as exc:
        raise TreeStartError(f"the federation key of {spec.name!r}: {exc}") from exc
    return spec.model_copy(update={"federation": federation.model_copy(update={"identity": path})})


def _static_paths(node: NodeSpec, prefix: str = "") -> Iterator[str]:
    path = f"{prefix}{node.name}"
    yield path
    for child in node.children:
        yield from _static_paths(child, path + "/")


class RayTree:
    """A handle on a running tree (module rules). Get one from :meth:`start` or :meth:`connect`."""

    def __init__(self, spec: TreeSpec, storage: str | None = None) -> None:
        self.spec = spec
        self.storage = storage
        self.namespace = namespace_of(spec.name)
        self.pool_size = spec.pool_size if uses_pool(spec) else 0
        root = spec.root
        self._root_names = actor_names(root.name, root.placement, max(self.pool_size, 1))
        self._desk_name = (
            actor_name(root.name, SystemId.S5)
            if root.placement == "system"
            else self._root_names[0]
        )
        self._desk_handle: tuple[float, Any] | None = None  # (when looked up, handle)

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    def start(
        cls,
        spec: TreeSpec,
        *,
        timeout: float = 120.0,
        resume: bool = False,
        checkpoints: bool = True,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> RayTree:
        """Start ``spec`` on the connected Ray cluster (rules 1, 2 and 4).

        Args:
            spec: The tree.
            timeout: Seconds to wait for the static tree.
            resume: Take up the checkpoints a previous run of this tree left in
                ``spec.storage``; otherwise they are deleted first.
            checkpoints: Whether the hosts checkpoint to ``spec.storage`` at all.
            on_progress: Called with (viable systems up, viable systems wanted) while waiting.

        Raises:
            RuntimeError: Ray is not initialised.
            TreeExistsError: a tree of this name runs already.
            TreeStartError: the static tree was not up within ``timeout`` seconds.
        """
        if not ray.is_initialized():
            raise RuntimeError("Ray is not initialised: call ray.init() (or use the SDK client)")
        storage = str(Path(spec.storage).resolve()) if checkpoints else None
        spec = _with_readable_identity(spec)
        if spec.tracing is not None and spec.tracing.exporter == "file":  # the caller's directory
            tracing = spec.tracing.model_copy(
                update={"path": str(Path(spec.tracing.path).resolve())}
            )
            spec = spec.model_copy(update={"tracing": tracing})
        tree = cls(spec, storage)
        if tree._alive(tree._desk_name):
            raise TreeExistsError(
                f"a tree named {spec.name!r} already runs in namespace {tree.namespace!r}; "
                "stop it first (RayTree.connect(name).stop())"
            )
        if storage is not None and not resume:
            store = CheckpointStore(storage)
            store.forget(spec.name)
            store.close()
        root = spec.root
        actors = []
        if tree.pool_size:
            for index in range(tree.pool_size):
                actors.append(tree._detached(pool_name(index), restarts=-1))
        pools = dict(zip(tree._pool_names(), actors, strict=True))
        starts = []
        for name in tree._root_names:
            handle = pools.get(name) or tree._detached(name, restarts=0)
            actors.append(handle)
            systems = (
                (SystemId[name.rsplit("#", 1)[1]],)
                if root.placement == "system"
                else tuple(SystemId)
            )
            starts.append(
                handle.start.remote(root.name, root, spec.limits, spec.policy, 0, systems, None)
            )
        if spec.federation is not None:  # supervised by Ray: restarted whenever it dies
            bridge = BridgeActor.options(
                name=BRIDGE, namespace=tree.namespace, lifetime="detached", max_restarts=-1
            ).remote(spec, storage)
            actors.append(bridge)
            starts.append(bridge.start.remote())
        try:
            ray.get(starts, timeout=timeout)
        except (ray.exceptions.RayError, TimeoutError) as exc:
            tree._kill(actors)
            raise TreeStartError(f"the root of {spec.name!r} did not start: {exc}") from exc
        tree._await_static(timeout, on_progress)
        return tree

    def bridge(self) -> Any:
        """The handle of the tree's federation bridge, or ``None`` (not federated, or down)."""
        return self._get(BRIDGE)

    def federation(self) -> dict[str, Any] | None:
        """The bridge's status (see ``Bridge.status``); ``None`` if the tree is not federated.

        Raises:
            TreeNotRunningError: the tree is federated but its bridge is not running.
        """
        if self.spec.federation is None:
            return None
        bridge = self.bridge()
        if bridge is None:
            raise TreeNotRunningError(f"the bridge of {self.spec.name!r} is not running")
        found: dict[str, Any] = ray.get(bridge.status.remote(), timeout=10)
        return found

    @classmethod
    def connect(cls, spec: TreeSpec) -> RayTree:
        """A handle on the running tree of ``spec``.

        Raises:
            TreeNotRunningError: no such tree runs in the connected cluster.
        """
        tree = cls(spec)
        if not tree._alive(tree._desk_name):
            raise TreeNotRunningError(f"no tree named {spec.name!r} runs in {tree.namespace!r}")
        return tree

    def stop(self, timeout: float = 30.0) -> None:
        """Kill the tree's actors and wait until none of them is alive (rule 1).

        The root's hosts and the pool are killed; Ray takes the actors they own with them.
        Any named actor of the namespace still alive after that (none, normally) is killed
        too. Nothing here asks a host anything, so a stuck tree stops as fast as a healthy one.

        Raises:
            TimeoutError: some actor of the namespace is still alive after ``timeout`` s.
        """
        self._desk_handle = None
        handles = [h for n in [*self._root_names, *self._pool_names()] if (h := self._get(n))]
        self._kill(handles)
        deadline = time.monotonic() + timeout
        while names := self._named_alive():
            if time.monotonic() > deadline:
                raise TimeoutError(f"actors still alive {timeout}s after stop: {names}")
            self._kill([h for n in names if (h := self._get(n))])
            time.sleep(0.2)

    def _named_alive(self) -> list[str]:
        """Names of the live named actors of this tree's namespace (from the GCS)."""
        return sorted(
            entry["name"]
            for entry in ray.util.list_named_actors(all_namespaces=True)
            if entry["namespace"] == self.namespace
        )

    # ------------------------------------------------------------------ intents

    def submit(self, intent: Intent) -> ray.ObjectRef[Outcome]:
        """Send ``intent`` to the desk; the returned ref resolves to its one Outcome."""
        ref: ray.ObjectRef[Outcome] = self._desk().submit.remote(intent)
        return ref

    def ask(self, intent: Intent, timeout: float | None = None) -> Outcome:
        """Submit ``intent`` and wait for its outcome."""
        outcome: Outcome = ray.get(self.submit(intent), timeout=timeout)
        return outcome

    def cancel(self, intent_id: str, reason: str = "") -> None:
        """Cancel ``intent_id``: it ends ``CANCELLED`` wherever it is in flight (S1 rule 8)."""
        ray.get(self._desk().cancel.remote(intent_id, reason))

    def progress(self, intent_id: str) -> list[IntentProgress]:
        """The progress the desk received for ``intent_id``."""
        found: list[IntentProgress] = ray.get(self._desk().progress.remote(intent_id))
        return found

    def replies(self) -> dict[str, int]:
        """Intent id -> terminal outcomes the tree sent the client."""
        found: dict[str, int] = ray.get(self._desk().replies.remote())
        return found

    # ------------------------------------------------------------------ inspection

    def describe(self, full: bool = True) -> list[dict[str, Any]]:
        """Every hosted component, found by walking the tree from its root, sorted by path.

        ``full=False`` leaves out each registry's summary (cheaper on big trees).
        """
        seen: dict[str, dict[str, Any]] = {}
        frontier = [*self._root_names, *self._pool_names()]
        visited: set[str] = set()
        while frontier:
            name = frontier.pop()
            if name in visited:
                continue
            visited.add(name)
            handle = self._get(name)
            if handle is None:
                continue
            try:
                parts = ray.get(handle.describe.remote(full), timeout=30)
            except ray.exceptions.RayError:
                continue
            for part in parts:
                entry = seen.setdefault(part["path"], {**part, "hosts": []})
                entry["hosts"].append(part["host"])
                if part["units"] is not None:
                    entry["units"], entry["in_flight"] = part["units"], part["in_flight"]
                if part["registry"] is not None:
                    entry["registry"] = part["registry"]
                if part["health"] is not None:
                    entry["health"] = part["health"]
                for child in part["children"]:
                    frontier += self._names_of(child)
        for path, entry in seen.items():  # each node's health, as its parent's S2 sees it
            parent = seen.get(path.rsplit("/", 1)[0]) if "/" in path else None
            entry["status"] = (parent or {}).get("health", {}).get(path, "healthy")
        return [seen[p] for p in sorted(seen)]

    def actor_names(self) -> list[str]:
        """Names of the tree's actors that are alive now (every one is named, in its namespace)."""
        return self._named_alive()

    def handle(self, name: str) -> Any:
        """The handle of the tree's actor ``name`` (``vsm:root/a``), or ``None``."""
        return self._get(name)

    # ------------------------------------------------------------------ internals

    def _names_of(self, path: str) -> list[str]:
        spec = spec_at(self.spec, path)
        placement = spec.placement if spec is not None else "node"
        return actor_names(path, placement, max(self.pool_size, 1))

    def _pool_names(self) -> list[str]:
        return [pool_name(i) for i in range(self.pool_size)]

    def _await_static(
        self, timeout: float, on_progress: Callable[[int, int], None] | None = None
    ) -> None:
        wanted = set(_static_paths(self.spec.root))
        guard = self.spec.policy.tighten(self.spec.root.policy).max_depth
        wanted = {p for p in wanted if p.count("/") <= guard}
        deadline = time.monotonic() + timeout
        while True:
            hosted = {part["path"] for part in self.describe(full=False)}
            missing = wanted - hosted
            if on_progress is not None:
                on_progress(len(wanted) - len(missing), len(wanted))
            if not missing:
                return
            if time.monotonic() > deadline:
                self.stop()
                shown = ", ".join(sorted(missing)[:10]) + (" …" if len(missing) > 10 else "")
                raise TreeStartError(
                    f"{len(missing)} viable systems of {self.spec.name!r} did not start within "
                    f"{timeout}s: {shown}"
                )
            time.sleep(0.5)

    def _detached(self, name: str, restarts: int) -> Any:
        return HostActor.options(
            name=name, namespace=self.namespace, lifetime="detached", max_restarts=restarts
        ).remote(self.spec, name.removeprefix("vsm:"), self.pool_size, self.storage)

    def desk(self) -> Any:
        """The handle of the client desk (the host of the root's S5).

        Raises:
            TreeNotRunningError: the tree is not running.
        """
        return self._desk()

    def events(self, since: float = 0.0) -> list[Event]:
        """Every event the tree's hosts recorded after ``since`` (seconds), oldest first."""
        found: list[Event] = [e for part in self._ask_all("events", since) for e in part]
        return sorted(found, key=lambda e: e.at)

    def processed(self) -> int:
        """Messages the tree's hosts have handled so far."""
        return sum(int(n) for n in self._ask_all("processed_count"))

    def host_metrics(self, timeout: float = 10.0) -> list[dict[str, Any]]:
        """What every live host counted (``Host.metrics``).

        Hosts that did not answer within ``timeout`` seconds are left out.
        """
        return self._ask_all("metrics", timeout=timeout)

    def _ask_all(self, method: str, *args: Any, timeout: float = 10.0) -> list[Any]:
        """Call ``method`` on every live host at once; the answers that came in time.

        ``timeout`` seconds for all of them together; hosts that failed are left out.
        """
        names = [n for n in self.actor_names() if n != BRIDGE]  # the bridge hosts nothing
        handles = [h for n in names if (h := self._get(n))]
        refs = [getattr(h, method).remote(*args) for h in handles]
        if not refs:
            return []
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=timeout)
        answers = []
        for ref in ready:
            try:
                answers.append(ray.get(ref))
            except ray.exceptions.RayError:
                continue
        return answers

    def rules(self, path: str | None = None) -> dict[str, Any]:
        """The rule set of the S3 at ``path`` (default: the root): rules, version, counters.

        Raises:
            LookupError: no viable system at ``path`` is running.
        """
        path = path or self.spec.root.name
        found: dict[str, Any] | None = ray.get(self._s3_host(path).rules.remote(path))
        if found is None:
            raise LookupError(f"no viable system at {path!r} is running in {self.spec.name!r}")
        return found

    def patch_rules(
        self, rules: list[dict[str, Any]], remove: list[str], path: str | None = None
    ) -> dict[str, Any]:
        """Send ``PatchRules`` to the S3 at ``path`` (default: the root); its rule set after.

        Raises:
            LookupError: no viable system at ``path`` is running.
        """
        path = path or self.spec.root.name
        host = self._s3_host(path)
        found: dict[str, Any] | None = ray.get(host.patch_rules.remote(path, rules, remove))
        if found is None:
            raise LookupError(f"no viable system at {path!r} is running in {self.spec.name!r}")
        return found

    def _s3_host(self, path: str) -> Any:
        if spec_at(self.spec, path) is None:
            raise LookupError(f"no viable system at {path!r} in the spec of {self.spec.name!r}")
        name = host_in(self.spec, path, SystemId.S3, max(self.pool_size, 1))
        handle = self._get(name)
        if handle is None:
            raise LookupError(f"no viable system at {path!r} is running (no actor {name!r})")
        return handle

    def _desk(self) -> Any:
        now = time.monotonic()
        if self._desk_handle is not None and now - self._desk_handle[0] < DESK_TTL:
            return self._desk_handle[1]
        desk = self._get(self._desk_name)
        self._desk_handle = None if desk is None else (now, desk)
        if desk is None:
            raise TreeNotRunningError(
                f"the tree {self.spec.name!r} is not running (no actor {self._desk_name!r})"
            )
        return desk

    def _get(self, name: str) -> Any:
        return find_actor(name, self.namespace)

    def _alive(self, name: str) -> bool:
        return self._get(name) is not None

    @staticmethod
    def _kill(handles: list[Any]) -> None:
        for handle in handles:
            with contextlib.suppress(ray.exceptions.RayError):
                ray.kill(handle, no_restart=True)
