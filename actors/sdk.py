"""The client SDK: reach a running tree of viable systems, send intents, watch them.

``Client`` is synchronous; ``AsyncClient`` has the same methods as coroutines. Both connect to
the local Ray cluster by default (``address="auto"``: the one ``vsm up`` started), or to
``ray://host:10001`` or a cluster address, and find the tree by name — or the only tree
running, when no name is given. They are context managers; leaving one disconnects from Ray if
it connected.

    with Client() as client:
        handle = client.submit("math.sum", params={"values": [1, 2, 3]})
        assert handle.result(timeout=30) == 6

Errors say what to do: :class:`NoTreeError` (nothing running: ``vsm up SPEC``),
:class:`IntentRefused` (the tree answered, and not with a result: S5's policy, a rate
limit, no capability, a failed kernel — the outcome is attached), :class:`IntentTimeout`
(no outcome in time; the intent may still finish).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import Any

import ray
import ray.exceptions
from pydantic import BaseModel, ConfigDict, Field, model_validator

from actors._bridge import BRIDGE
from actors._metrics import MetricsServer, exposition, registry_for, serve_metrics
from actors._naming import namespace_of
from actors._runtime import RayTree, TreeNotRunningError
from protocol import Envelope, IntentBody, Sender, Signer, seal
from vsm.crdt import Stamp
from vsm.effects import Event
from vsm.intents import Intent, Outcome, Status
from vsm.messages import IntentProgress
from vsm.rules import Rule
from vsm.spec import TreeSpec

__all__ = [
    "AsyncClient",
    "AsyncIntentHandle",
    "Client",
    "IntentHandle",
    "IntentRefused",
    "IntentRequest",
    "IntentTimeout",
    "NoSuchViableSystem",
    "NoTreeError",
    "SdkError",
    "SignatureRequired",
    "running_trees",
]

_ids = itertools.count(1)


class IntentRequest(BaseModel):
    """An intent, as a client states it (validated; unknown fields refused).

    Exactly one of ``capability`` (a capability name) and ``text`` (free text S1 classifies).
    ``timeout`` is seconds from submission to the deadline the tree answers by.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    capability: str | None = Field(default=None, min_length=1)
    text: str | None = Field(default=None, min_length=1)
    params: dict[str, Any] = Field(default_factory=dict)
    user: str | None = None
    zone: str = "default"
    timeout: float | None = Field(default=None, gt=0)
    id: str | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _one_target(self) -> IntentRequest:
        if (self.capability is None) == (self.text is None):
            raise ValueError("give exactly one of capability= or text=")
        return self


class SdkError(Exception):
    """Root of the SDK's errors."""


class NoTreeError(SdkError, LookupError):
    """No tree (or not the one named) runs on the cluster; start one with ``vsm up SPEC``."""


class NoSuchViableSystem(SdkError, LookupError):
    """No viable system runs at the path given (it is not in the spec, or not up)."""


class IntentRefused(SdkError):
    """The tree answered the intent, but not with a result; ``outcome`` says who and why."""

    def __init__(self, outcome: Outcome) -> None:
        self.outcome = outcome
        reason = outcome.reason.value if outcome.reason is not None else "unknown"
        super().__init__(
            f"intent {outcome.intent_id!r} {outcome.status.value}: {reason} "
            f"(decided by {outcome.by.name if outcome.by else '?'} at {outcome.path}): "
            f"{outcome.detail}"
        )


class SignatureRequired(SdkError, PermissionError):
    """The tree takes signed intents only: give the client an ``identity`` it knows."""


class IntentTimeout(SdkError, TimeoutError):
    """No outcome within the timeout; the intent may still finish (ask again with its id)."""


def running_trees() -> list[str]:
    """Names of the trees running on the connected Ray cluster."""
    names = {
        entry["namespace"].removeprefix("vsm-")
        for entry in ray.util.list_named_actors(all_namespaces=True)
        if entry["namespace"].startswith("vsm-") and entry["name"].startswith("vsm:")
    }
    return sorted(names)


def _connect(address: str | None) -> bool:
    """Connect to Ray unless connected; return whether this call connected."""
    if ray.is_initialized():
        return False
    try:
        ray.init(
            address=address or "auto",
            log_to_driver=False,
            configure_logging=False,
            logging_level=logging.WARNING,
        )
    except ConnectionError as exc:
        raise NoTreeError(
            f"no Ray cluster at {address or 'this machine (auto)'}: start a tree with "
            "`vsm up SPEC` (it starts a local cluster), or pass address="
        ) from exc
    return True


def _find(tree: str | None) -> RayTree:
    names = running_trees()
    if tree is None:
        if not names:
            raise NoTreeError(
                "no tree is running on this Ray cluster: start one with `vsm up SPEC`"
            )
        if len(names) > 1:
            raise NoTreeError(f"several trees run ({', '.join(names)}): name one")
        tree = names[0]
    if tree not in names:
        running = ", ".join(names) or "none"
        raise NoTreeError(f"no tree named {tree!r} is running (running: {running})")
    namespace = namespace_of(tree)
    hosts = [
        e["name"]
        for e in ray.util.list_named_actors(all_namespaces=True)
        if e["namespace"] == namespace and e["name"].startswith("vsm:") and e["name"] != BRIDGE
    ]
    for name in sorted(hosts):
        try:
            host: Any = ray.get_actor(name, namespace=namespace)
            spec: TreeSpec = ray.get(host.spec.remote(), timeout=30)
        except (ValueError, ray.exceptions.RayError):
            continue
        try:
            return RayTree.connect(spec)
        except TreeNotRunningError as exc:
            raise NoTreeError(str(exc)) from exc
    raise NoTreeError(f"the tree {tree!r} has no live host to ask")


def _intent(
    capability: str | None,
    text: str | None,
    params: Mapping[str, Any] | None,
    user: str,
    zone: str,
    timeout: float | None,
    intent_id: str | None,
) -> Intent:
    if (capability is None) == (text is None):
        raise ValueError("give exactly one of capability= or text=")
    if timeout is not None and not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    return Intent(
        id=intent_id or f"sdk-{os.getpid()}-{next(_ids)}-{uuid.uuid4().hex[:8]}",
        capability=capability,
        text=text,
        params=dict(params or {}),
        user=user,
        zone=zone,
        deadline=None if timeout is None else time.time() + timeout,
    )


@contextlib.contextmanager
def _waiting_for(intent_id: str, timeout: float | None) -> Iterator[None]:
    """Turn what waiting on an intent's outcome can raise into the SDK's errors."""
    try:
        yield
    except TimeoutError as exc:  # ray.get's GetTimeoutError and asyncio's both are
        raise IntentTimeout(f"no outcome for {intent_id!r} within {timeout}s") from exc
    except ray.exceptions.RayActorError as exc:
        raise NoTreeError(f"the tree stopped before {intent_id!r} ended") from exc
    except ray.exceptions.RayTaskError as exc:
        if isinstance(exc.cause, PermissionError):
            raise SignatureRequired(str(exc.cause)) from None
        raise


def _settle(outcome: Outcome) -> Any:
    if outcome.status is not Status.COMPLETED:
        raise IntentRefused(outcome)
    return outcome.result


class IntentHandle:
    """One submitted intent: its outcome, its result, its progress."""

    def __init__(self, tree: RayTree, intent: Intent, ref: Any) -> None:
        self._tree = tree
        self.intent = intent
        self.id = intent.id
        self._ref = ref
        self._outcome: Outcome | None = None

    def outcome(self, timeout: float | None = None) -> Outcome:
        """Wait for the intent's one outcome.

        Raises:
            IntentTimeout: none within ``timeout`` seconds.
            NoTreeError: the tree went away.
        """
        if self._outcome is None:
            with _waiting_for(self.id, timeout):
                self._outcome = ray.get(self._ref, timeout=timeout)
        return self._outcome

    def result(self, timeout: float | None = None) -> Any:
        """The result of a completed intent.

        Raises:
            IntentRefused: it was rejected or failed (the outcome says why).
            IntentTimeout: no outcome within ``timeout`` seconds.
        """
        return _settle(self.outcome(timeout))

    def cancel(self, reason: str = "") -> None:
        """Cancel the intent; a no-op once the outcome is in.

        If it is still in flight, its outcome is a failure with reason ``CANCELLED``; every
        viable system it reached (in peer trees too) ends it, and a kernel already running
        finishes unheard.

        Raises:
            NoTreeError: the tree went away.
        """
        try:
            self._tree.cancel(self.id, reason)
        except TreeNotRunningError as exc:
            raise NoTreeError(str(exc)) from exc

    def done(self) -> bool:
        """Whether the outcome is in."""
        ready, _ = ray.wait([self._ref], timeout=0)
        return bool(ready) or self._outcome is not None

    def stream(self, poll: float = 0.1, timeout: float | None = None) -> Iterator[IntentProgress]:
        """Progress of the intent as it arrives, until its outcome is in."""
        seen = 0
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            finished = self.done()
            progress = self._tree.progress(self.id)
            yield from progress[seen:]
            seen = len(progress)
            if finished:
                return
            if deadline is not None and time.monotonic() > deadline:
                raise IntentTimeout(f"no outcome for {self.id!r} within {timeout}s")
            time.sleep(poll)


class Client:
    """A synchronous client of one running tree (see the module docstring).

    Args:
        tree: The tree's name; ``None`` for the only tree running.
        address: The Ray cluster: ``None``/``"auto"`` (local), ``ray://host:10001``, an address.
        user: The user intents are sent as, unless ``submit`` says otherwise.
        identity: Signs every intent as an aMCP envelope (a tree whose spec says
            ``clients.signed`` takes no other); the intent then runs as the user its key id
            names.

    Raises:
        NoTreeError: no Ray cluster, or no such tree on it.
    """

    def __init__(
        self,
        tree: str | None = None,
        *,
        address: str | None = None,
        user: str = "anonymous",
        identity: Signer | None = None,
    ) -> None:
        self.identity = identity
        self._connected = _connect(address)
        try:
            self._tree = _find(tree)
        except BaseException:
            self.close()
            raise
        self.user = user

    @property
    def name(self) -> str:
        """The tree's name."""
        return self._tree.spec.name

    @property
    def spec(self) -> TreeSpec:
        """The tree's spec."""
        return self._tree.spec

    def submit(
        self,
        capability: str | IntentRequest | None = None,
        *,
        text: str | None = None,
        params: Mapping[str, Any] | None = None,
        user: str | None = None,
        zone: str = "default",
        timeout: float | None = None,
        intent_id: str | None = None,
    ) -> IntentHandle:
        """Send an intent (by capability name, or free text S1 classifies); return its handle.

        The intent is the keyword arguments, or an :class:`IntentRequest` in their place.

        ``timeout`` becomes the intent's deadline; the tree answers by then.

        Raises:
            ValueError: neither or both of capability and text, or a bad timeout.
        """
        if isinstance(capability, IntentRequest):
            request = capability
            capability, text, params = request.capability, request.text, request.params
            user, zone, timeout, intent_id = (
                request.user,
                request.zone,
                request.timeout,
                request.id,
            )
        intent = _intent(capability, text, params, user or self.user, zone, timeout, intent_id)
        try:
            if self.identity is None:
                ref = self._tree.submit(intent)
            else:
                ref = self._tree.desk().submit_sealed.remote(self._seal(intent))
        except TreeNotRunningError as exc:
            raise NoTreeError(str(exc)) from exc
        return IntentHandle(self._tree, intent, ref)

    def _seal(self, intent: Intent) -> bytes:
        assert self.identity is not None
        now = time.time()
        ttl = (intent.deadline - now) if intent.deadline is not None else 300.0
        envelope = Envelope.new(
            sender=Sender(path="client", cluster="clients", key_id=self.identity.key_id),
            recipient=self._tree.spec.root.name,
            body=IntentBody.of(intent),
            hlc=Stamp(int(now * 1000), 0, self.identity.key_id),
            now=now,
            ttl=max(ttl, 1.0),
        )
        return seal(envelope, self.identity)

    def ask(self, capability: str | None = None, **options: Any) -> Any:
        """Submit and wait: the result, or :class:`IntentRefused` / :class:`IntentTimeout`."""
        timeout = options.get("timeout")
        return self.submit(capability, **options).result(
            timeout=None if timeout is None else timeout + 10
        )

    def tree(self) -> list[dict[str, Any]]:
        """Every viable system: path, hosts, placement, incarnation, units, registry size."""
        return self._tree.describe()

    def status(self) -> dict[str, Any]:
        """The tree at a glance: name, namespace, viable systems, actors, outcomes so far."""
        parts = self._tree.describe()
        replies = self._tree.replies()
        federated = {} if self.spec.federation is None else {"federation": self.federation()}
        return {
            **federated,
            "tree": self.name,
            "namespace": self._tree.namespace,
            "viable_systems": len(parts),
            "actors": self._tree.actor_names(),
            "in_flight": sum(p.get("in_flight") or 0 for p in parts),
            "answered": len(replies),
            "answered_twice": sorted(i for i, n in replies.items() if n > 1),
        }

    def federation(self) -> dict[str, Any] | None:
        """The federation bridge's status, or ``None`` for a tree that is not federated.

        ``{"cluster", "connected", "reconnects", "republished", "counts", "refused",
        "queued", "peer_announced", "peer_checkpoints"}``: envelopes sent and received by
        kind, refusals by reason (each one dead-lettered), envelopes waiting per peer, when
        each peer last announced its registry, and each peer's latest signed audit head.

        Raises:
            NoTreeError: the tree is federated but its bridge is not running.
        """
        try:
            return self._tree.federation()
        except TreeNotRunningError as exc:
            raise NoTreeError(str(exc)) from exc

    def metrics(self) -> list[dict[str, Any]]:
        """Every sample of the tree's Prometheus metrics, read now (docs/observability.md).

        Each is ``{"name", "labels", "value"}``, e.g. ``{"name": "vsm_outcomes_total",
        "labels": {"tree": "t", "status": "completed", "reason": ""}, "value": 3.0}``.
        """
        return [
            {"name": sample.name, "labels": dict(sample.labels), "value": sample.value}
            for family in registry_for(self._tree).collect()
            for sample in family.samples
        ]

    def metrics_text(self) -> str:
        """The tree's metrics in the Prometheus text format, read now."""
        return exposition(self._tree)

    def serve_metrics(self, port: int = 9464, host: str = "127.0.0.1") -> MetricsServer:
        """Serve the tree's metrics at ``http://host:port/metrics``, from a thread.

        It serves until the returned server's ``close()``; ``port=0`` takes a free port.

        Raises:
            OSError: the address cannot be bound (a port in use, say).
        """
        return serve_metrics(self._tree, port, host)

    def registry(self) -> list[dict[str, Any]]:
        """The root's registry replica: every live advert, as plain data."""
        found: list[dict[str, Any]] = ray.get(self._tree.desk().registry.remote())
        return found

    def events(self, since: float = 0.0) -> list[Event]:
        """Events recorded after ``since`` (seconds since the epoch), oldest first."""
        return self._tree.events(since)

    def rules(self, path: str | None = None) -> dict[str, Any]:
        """The GoldRush rules System 3 runs at ``path`` (default: the root).

        Returns:
            ``{"path", "rules", "version", "offered", "stats"}``: the rules' JSON forms in
            the order added, the set's version, the events offered to it, and per rule name
            its counters (``input``, ``matched``, ``filtered``, as
            ``RuleSet.statistics()["rules"]``).

        Raises:
            NoSuchViableSystem: nothing runs at ``path``.
        """
        try:
            found = self._tree.rules(path)
        except LookupError as exc:
            raise NoSuchViableSystem(str(exc)) from exc
        return found

    def patch_rules(
        self,
        add: Sequence[Rule | Mapping[str, Any]] = (),
        remove: Sequence[str] = (),
        path: str | None = None,
    ) -> dict[str, Any]:
        """Change the rules S3 runs at ``path`` (default: the root) while events flow.

        ``add`` holds rules (a :class:`~vsm.rules.Rule` or its JSON form, the condition may
        be text); each replaces the rule of its name or is added. Then the names in
        ``remove`` go. The set swaps at once: no event is lost or counted twice, and the
        patched rules are part of S3's checkpoint.

        Returns:
            The rule set afterwards, as :meth:`rules` gives it.

        Raises:
            ValueError: a rule is malformed (the message names ``add[k]`` and the problem),
                a name comes twice in ``add``, or ``remove`` names a rule the set does not
                hold; nothing is changed.
            NoSuchViableSystem: nothing runs at ``path``.
        """
        rules = []
        for k, rule in enumerate(add):
            try:
                rules.append(rule if isinstance(rule, Rule) else Rule.from_data(dict(rule)))
            except (TypeError, ValueError) as exc:
                raise ValueError(f"add[{k}]: {exc}") from exc
        names = [rule.name for rule in rules]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"add names a rule more than once: {twice}")
        if remove:
            held = {rule["name"] for rule in self.rules(path)["rules"]} | set(names)
            unknown = [name for name in remove if name not in held]
            if unknown:
                raise ValueError(f"remove names rules the set does not hold: {unknown}")
        try:
            return self._tree.patch_rules([r.to_data() for r in rules], list(remove), path)
        except LookupError as exc:
            raise NoSuchViableSystem(str(exc)) from exc

    def stop(self) -> None:
        """Stop the tree (all its actors)."""
        self._tree.stop()

    def close(self) -> None:
        """Disconnect from Ray if this client connected (the tree keeps running)."""
        if self._connected and ray.is_initialized():
            ray.shutdown()
        self._connected = False

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncIntentHandle:
    """One submitted intent, for ``asyncio`` code."""

    def __init__(self, handle: IntentHandle) -> None:
        self._handle = handle
        self.id = handle.id
        self.intent = handle.intent

    async def outcome(self, timeout: float | None = None) -> Outcome:
        """As :meth:`IntentHandle.outcome`."""
        with _waiting_for(self.id, timeout):
            outcome: Outcome = await asyncio.wait_for(self._handle._ref, timeout)
        self._handle._outcome = outcome
        return outcome

    async def result(self, timeout: float | None = None) -> Any:
        """As :meth:`IntentHandle.result`."""
        return _settle(await self.outcome(timeout))

    async def cancel(self, reason: str = "") -> None:
        """See :meth:`IntentHandle.cancel`."""
        await asyncio.to_thread(self._handle.cancel, reason)

    async def stream(self, poll: float = 0.1) -> AsyncIterator[IntentProgress]:
        """As :meth:`IntentHandle.stream`."""
        seen = 0
        while True:
            finished = self._handle.done()
            progress = await asyncio.to_thread(self._handle._tree.progress, self.id)
            for item in progress[seen:]:
                yield item
            seen = len(progress)
            if finished:
                return
            await asyncio.sleep(poll)


class AsyncClient:
    """The :class:`Client` methods as coroutines; build one with ``AsyncClient.connect()``."""

    def __init__(self, client: Client) -> None:
        self._client = client

    @classmethod
    async def connect(
        cls,
        tree: str | None = None,
        *,
        address: str | None = None,
        user: str = "anonymous",
        identity: Signer | None = None,
    ) -> AsyncClient:
        """Connect as :class:`Client` does."""
        client = await asyncio.to_thread(
            Client, tree, address=address, user=user, identity=identity
        )
        return cls(client)

    @property
    def name(self) -> str:
        """The tree's name."""
        return self._client.name

    async def submit(
        self, capability: str | IntentRequest | None = None, **options: Any
    ) -> AsyncIntentHandle:
        """As :meth:`Client.submit`."""
        return AsyncIntentHandle(self._client.submit(capability, **options))

    async def ask(self, capability: str | None = None, **options: Any) -> Any:
        """As :meth:`Client.ask`."""
        handle = await self.submit(capability, **options)
        timeout = options.get("timeout")
        return await handle.result(None if timeout is None else timeout + 10)

    async def tree(self) -> list[dict[str, Any]]:
        """As :meth:`Client.tree`."""
        return await asyncio.to_thread(self._client.tree)

    async def status(self) -> dict[str, Any]:
        """As :meth:`Client.status`."""
        return await asyncio.to_thread(self._client.status)

    async def metrics(self) -> list[dict[str, Any]]:
        """As :meth:`Client.metrics`."""
        return await asyncio.to_thread(self._client.metrics)

    async def metrics_text(self) -> str:
        """As :meth:`Client.metrics_text`."""
        return await asyncio.to_thread(self._client.metrics_text)

    async def registry(self) -> list[dict[str, Any]]:
        """As :meth:`Client.registry`."""
        return await asyncio.to_thread(self._client.registry)

    async def events(self, since: float = 0.0) -> list[Event]:
        """As :meth:`Client.events`."""
        return await asyncio.to_thread(self._client.events, since)

    async def federation(self) -> dict[str, Any] | None:
        """See :meth:`Client.federation`."""
        return await asyncio.to_thread(self._client.federation)

    async def rules(self, path: str | None = None) -> dict[str, Any]:
        """See :meth:`Client.rules`."""
        return await asyncio.to_thread(self._client.rules, path)

    async def patch_rules(
        self,
        add: Sequence[Rule | Mapping[str, Any]] = (),
        remove: Sequence[str] = (),
        path: str | None = None,
    ) -> dict[str, Any]:
        """See :meth:`Client.patch_rules`."""
        return await asyncio.to_thread(self._client.patch_rules, add, remove, path)

    async def stop(self) -> None:
        """As :meth:`Client.stop`."""
        await asyncio.to_thread(self._client.stop)

    async def close(self) -> None:
        """As :meth:`Client.close`."""
        await asyncio.to_thread(self._client.close)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
