"""Tree specs: what a tree of viable systems is made of, validated once at the edge.

A :class:`TreeSpec` describes a whole tree; each :class:`NodeSpec` a viable system: the
capabilities its leaf units offer, its children, the templates it may spawn on demand, its
placement on Ray, and its policy and limits. The same spec runs in the simulator and on Ray.

Rules:
    1. A child's policy tightens its parent's and never loosens it: :meth:`PolicySpec.tighten`
       intersects grants and takes the smaller of every limit. ``None`` means "inherit".
    2. A spec whose static tree is deeper than its depth guard is refused at validation.
    3. Names are path segments; sibling names are unique.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from vsm.address import check_path

__all__ = [
    "CapabilitySpec",
    "ClientsSpec",
    "FederationSpec",
    "LimitsSpec",
    "NodeSpec",
    "PeerSpec",
    "Placement",
    "PolicySpec",
    "TracingSpec",
    "TreeSpec",
]

Placement = Literal["node", "system", "pooled"]

# Specs come from YAML or TOML, where a list stands for a tuple: lax types, but no unknown keys.
_MODEL = ConfigDict(extra="forbid", frozen=True)


class CapabilitySpec(BaseModel):
    """A capability served by a leaf unit of a viable system (a kernel)."""

    model_config = _MODEL

    name: str = Field(min_length=1, description="capability name, e.g. 'patterns.generate'")
    description: str = ""
    kernel: str = Field(min_length=1, description="name of the kernel that serves it")
    cpus: float = Field(
        default=1.0,
        ge=0,
        description="CPUs the kernel's Ray task asks for; 0 runs it inside the host (trivial work)",
    )
    cost: float = Field(default=1.0, ge=0)
    zone: str = "default"


class PolicySpec(BaseModel):
    """S5's policy: who may act in which zone, and the recursion guard."""

    model_config = _MODEL

    zones: dict[str, tuple[str, ...]] = Field(
        default_factory=dict, description="user -> zones granted beyond the open zones"
    )
    open_zones: tuple[str, ...] = ("default",)
    max_depth: int = Field(default=3, ge=0, le=32)
    max_params: int = Field(default=64, ge=0)
    default_deadline: float = Field(default=30.0, gt=0)
    spawn_failure_threshold: int = Field(default=3, ge=1)
    spawn_reset_after: float = Field(default=60.0, gt=0)
    algedonic_threshold: float = Field(default=0.5, ge=0, le=1)
    version: int = Field(default=1, ge=1)

    def grants(self, user: str, zone: str) -> bool:
        """Whether ``user`` may act in ``zone``."""
        return zone in self.open_zones or zone in self.zones.get(user, ())

    def tighten(self, child: PolicySpec | None) -> PolicySpec:
        """The effective policy of a child: this policy, tightened by ``child`` (rule 1)."""
        if child is None:
            return self
        open_zones = tuple(z for z in self.open_zones if z in child.open_zones)
        zones: dict[str, tuple[str, ...]] = {}
        for user in sorted(self.zones.keys() | child.zones.keys()):
            candidates = (*self.zones.get(user, ()), *child.zones.get(user, ()))
            granted = tuple(
                dict.fromkeys(
                    z
                    for z in candidates
                    if z not in open_zones and self.grants(user, z) and child.grants(user, z)
                )
            )
            if granted:
                zones[user] = granted
        return PolicySpec(
            zones=zones,
            open_zones=open_zones,
            max_depth=min(self.max_depth, child.max_depth),
            max_params=min(self.max_params, child.max_params),
            default_deadline=min(self.default_deadline, child.default_deadline),
            spawn_failure_threshold=min(
                self.spawn_failure_threshold, child.spawn_failure_threshold
            ),
            spawn_reset_after=max(self.spawn_reset_after, child.spawn_reset_after),
            algedonic_threshold=max(self.algedonic_threshold, child.algedonic_threshold),
            version=child.version,
        )


class LimitsSpec(BaseModel):
    """S2's and S3's limits: rates, supervision, failure detection."""

    model_config = _MODEL

    user_rate: float = Field(default=200.0, gt=0, description="intents per second per user")
    user_burst: float = Field(default=400.0, ge=1)
    capability_rate: float = Field(default=1000.0, gt=0)
    capability_burst: float = Field(default=2000.0, ge=1)
    max_in_flight: int = Field(default=10_000, ge=1)
    restart_max: int = Field(default=3, ge=0)
    restart_within: float = Field(default=60.0, gt=0)
    resend_every: float = Field(
        default=1.0, gt=0, description="seconds between resends of an unanswered child intent"
    )
    heartbeat_every: float = Field(default=1.0, gt=0)
    warning_after: float = Field(default=3.0, gt=0)
    zombie_after: float = Field(default=6.0, gt=0)
    dead_after: float = Field(default=12.0, gt=0)
    audit_every: float = Field(default=5.0, gt=0)
    gossip_every: float = Field(default=1.0, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> LimitsSpec:
        if not self.warning_after < self.zombie_after < self.dead_after:
            raise ValueError(
                "need warning_after < zombie_after < dead_after, got "
                f"{self.warning_after} / {self.zombie_after} / {self.dead_after}"
            )
        return self


class NodeSpec(BaseModel):
    """One viable system: its leaf capabilities, children, templates, placement, policy."""

    model_config = _MODEL

    name: str
    capabilities: tuple[CapabilitySpec, ...] = ()
    children: tuple[NodeSpec, ...] = ()
    templates: tuple[NodeSpec, ...] = Field(
        default=(), description="children S4 may propose spawning when demand appears"
    )
    placement: Placement = "node"
    policy: PolicySpec | None = None
    limits: LimitsSpec | None = None
    rules: tuple[dict[str, Any], ...] = Field(
        default=(),
        description="GoldRush rules S3 runs over this viable system's events (docs/rules.md)",
    )

    @field_validator("rules")
    @classmethod
    def _rules(cls, rules: tuple[dict[str, Any], ...]) -> tuple[dict[str, Any], ...]:
        from vsm.rules import Rule  # here: vsm.rules imports the messages, which import this

        names = []
        for k, data in enumerate(rules):
            try:
                names.append(Rule.from_data(data).name)
            except ValueError as exc:
                raise ValueError(f"rules[{k}]: {exc}") from exc
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"rules named twice: {dupes}")
        return rules

    @field_validator("name")
    @classmethod
    def _segment(cls, name: str) -> str:
        if "/" in name:
            raise ValueError(f"a node name is one path segment, got {name!r}")
        check_path(name)
        return name

    @model_validator(mode="after")
    def _unique(self) -> NodeSpec:
        for group, items in (("children", self.children), ("templates", self.templates)):
            names = [c.name for c in items]
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise ValueError(f"node {self.name!r} has duplicate {group}: {dupes}")
        caps = [c.name for c in self.capabilities]
        dupes = sorted({n for n in caps if caps.count(n) > 1})
        if dupes:
            raise ValueError(f"node {self.name!r} lists capabilities twice: {dupes}")
        return self

    def offered(self) -> set[str]:
        """Every capability this node or its subtree (static or by template) can offer."""
        out = {c.name for c in self.capabilities}
        for child in (*self.children, *self.templates):
            out |= child.offered()
        return out

    def descriptions(self) -> dict[str, str]:
        """Capability name -> description, over this node's subtree and templates."""
        out: dict[str, str] = {}
        for child in (*self.children, *self.templates):
            out.update(child.descriptions())
        out.update({c.name: c.description or c.name for c in self.capabilities})
        return out

    def height(self) -> int:
        """Levels of static children below this node (0 for a leaf)."""
        return 1 + max((c.height() for c in self.children), default=-1)


class ClientsSpec(BaseModel):
    """Who may send intents to the tree from outside, and whether they must sign them."""

    model_config = _MODEL

    signed: bool = Field(
        default=False, description="require intents sealed as aMCP envelopes by a known key"
    )
    keys: dict[str, str] = Field(
        default_factory=dict, description="key id -> Ed25519 public key (64 hex digits)"
    )

    @field_validator("keys")
    @classmethod
    def _hex_keys(cls, keys: dict[str, str]) -> dict[str, str]:
        for key_id, public in keys.items():
            _hex_key(public, f"key {key_id!r}")
        return keys


def _hex_key(value: str, what: str) -> str:
    if len(value) != 64 or any(c not in "0123456789abcdefABCDEF" for c in value):
        raise ValueError(f"{what}: expected 64 hex digits (an Ed25519 public key)")
    return value


def _name(value: str, what: str) -> str:
    if "/" in value:
        raise ValueError(f"{what} {value!r} must be one path segment (no '/')")
    check_path(value)
    return value


def _prefix_name(value: str) -> str:
    if not value or any(c in value for c in "*# "):
        raise ValueError(f"prefix must be a non-empty name without '*', '#' or spaces: {value!r}")
    return value


class PeerSpec(BaseModel):
    """Another cluster's tree this one federates with (docs/federation.md)."""

    model_config = _MODEL

    cluster: str = Field(description="the peer cluster's name, as its envelopes say it")
    root: str = Field(description="the name of the peer tree's root (unique in the federation)")
    key_id: str = Field(min_length=1, description="the key id the peer signs with")
    public_key: str = Field(description="the peer's Ed25519 public key (64 hex digits)")
    prefix: str = Field(description="the peer's exchange prefix: where envelopes to it go")
    revoked: bool = Field(
        default=False, description="refuse (dead-letter) everything signed with this key"
    )

    @field_validator("cluster", "root")
    @classmethod
    def _segment(cls, value: str) -> str:
        return _name(value, "a peer's cluster or root name")

    @field_validator("public_key")
    @classmethod
    def _key(cls, value: str) -> str:
        return _hex_key(value, "public_key")

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        return _prefix_name(value)


class FederationSpec(BaseModel):
    """This tree as a member of a federation over RabbitMQ (docs/federation.md)."""

    model_config = _MODEL

    cluster: str = Field(description="this cluster's name in the federation")
    key_id: str = Field(min_length=1, description="the key id this cluster signs with")
    identity: str = Field(description="path of this cluster's Ed25519 private key (PEM)")
    prefix: str = Field(description="this cluster's exchange prefix (its peers publish there)")
    amqp_url: str = Field(
        default="amqp://guest:guest@127.0.0.1:5672/", description="the broker (VSM_AMQP_URL)"
    )
    peers: tuple[PeerSpec, ...] = Field(default=(), description="the clusters joined")
    algedonic_threshold: float = Field(
        default=0.8, ge=0.0, le=1.0, description="|intensity| from which root signals cross"
    )
    announce_every: float = Field(
        default=2.0, gt=0.0, le=60.0, description="seconds between registry announcements"
    )

    @field_validator("cluster")
    @classmethod
    def _segment(cls, value: str) -> str:
        return _name(value, "cluster")

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        return _prefix_name(value)

    @model_validator(mode="after")
    def _distinct(self) -> FederationSpec:
        clusters = [self.cluster, *(p.cluster for p in self.peers)]
        prefixes = [self.prefix, *(p.prefix for p in self.peers)]
        roots = [p.root for p in self.peers]
        for what, names in (("cluster", clusters), ("prefix", prefixes), ("root", roots)):
            twice = sorted({n for n in names if names.count(n) > 1})
            if twice:
                raise ValueError(f"each peer needs its own {what}; named twice: {twice}")
        return self


class TracingSpec(BaseModel):
    """OpenTelemetry spans of the tree's intents (docs/observability.md)."""

    model_config = _MODEL

    exporter: Literal["file", "console", "otlp"] = Field(
        default="file",
        description="JSON lines appended to `path`, printed to stdout, or sent to `endpoint`",
    )
    path: str = Field(
        default="vsm-traces.jsonl",
        min_length=1,
        description="the file spans are appended to (resolved against the caller's directory)",
    )
    endpoint: str = Field(
        default="http://127.0.0.1:4318/v1/traces",
        pattern=r"^https?://[^\s/]+(/\S*)?$",
        description="where `otlp` sends spans: an OTLP/HTTP collector's traces URL",
    )
    sample: float = Field(
        default=1.0, ge=0.0, le=1.0, description="fraction of intents traced (by trace id)"
    )


class TreeSpec(BaseModel):
    """A whole tree of viable systems."""

    model_config = _MODEL

    name: str = Field(min_length=1, description="tree name; the Ray namespace derives from it")
    root: NodeSpec
    policy: PolicySpec = PolicySpec()
    limits: LimitsSpec = LimitsSpec()
    storage: str = Field(default="vsm.sqlite", description="SQLite path for checkpoints")
    pool_size: int = Field(
        default=4, ge=1, le=1024, description="Ray actors hosting the `pooled` viable systems"
    )
    clients: ClientsSpec = ClientsSpec()
    federation: FederationSpec | None = Field(
        default=None, description="peers in other clusters, joined over RabbitMQ"
    )
    tracing: TracingSpec | None = Field(
        default=None, description="export OpenTelemetry spans of the intents"
    )

    @model_validator(mode="after")
    def _peers(self) -> TreeSpec:
        if self.federation is not None:
            clash = [p.cluster for p in self.federation.peers if p.root == self.root.name]
            if clash:
                raise ValueError(
                    f"peer {clash[0]!r} has a root named {self.root.name!r}, like this tree's: "
                    "roots must be unique in a federation (they name the providers)"
                )
        return self

    @model_validator(mode="after")
    def _depth(self) -> TreeSpec:
        guard = self.policy.tighten(self.root.policy).max_depth
        if self.root.height() > guard:
            raise ValueError(
                f"the static tree is {self.root.height()} levels deep but the depth guard "
                f"(policy.max_depth) is {guard}"
            )
        return self
