"""The public surface: exact ``__all__`` lists, layer docstrings, typed packages."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

PACKAGES = [
    "vsm",
    "vsm.address",
    "vsm.audit",
    "vsm.classify",
    "vsm.crdt",
    "vsm.effects",
    "vsm.errors",
    "vsm.intents",
    "vsm.kernels",
    "vsm.mechanisms",
    "vsm.messages",
    "vsm.registry",
    "vsm.sim",
    "vsm.spec",
    "vsm.systems",
    "protocol",
    "protocol.errors",
    "actors",
]

EXPECTED_ALL = {
    "vsm": ["ClockDriftError", "ForeignWriteError", "MalformedDataError", "VsmError"],
    "vsm.crdt": [
        "HLC",
        "CausalContext",
        "Dot",
        "GCounter",
        "Key",
        "LWWRegister",
        "Mergeable",
        "ORMap",
        "ORSet",
        "PNCounter",
        "Stamp",
        "from_data",
        "pack",
    ],
    "vsm.registry": ["Advert", "CapabilityRegistry", "DeltaOutbox", "RegistryDelta", "bucket_of"],
    "vsm.mechanisms": [
        "AdaptiveRate",
        "CircuitBreaker",
        "CircuitState",
        "Decision",
        "FailureDetector",
        "Health",
        "RestartIntensity",
        "TokenBucket",
        "TokenBuckets",
    ],
    "vsm.audit": [
        "CHECKPOINT_DOMAIN",
        "DIGEST_SIZE",
        "ENTRY_DOMAIN",
        "GENESIS",
        "AuditChain",
        "AuditEntry",
        "Checkpoint",
        "Problem",
        "Signer",
        "Verifier",
        "VerifyReport",
        "entry_digest",
        "verify_chain",
    ],
    "vsm.classify": [
        "STOP_WORDS",
        "BM25Classifier",
        "ChainClassifier",
        "Classification",
        "Classifier",
        "ExactClassifier",
        "stem",
        "tokenize",
    ],
    "vsm.systems": [
        "LOCAL",
        "Decision",
        "Kpi",
        "Node",
        "System1",
        "System2",
        "System3",
        "System4",
        "System5",
        "ViableSystem",
    ],
    "vsm.sim": ["Network", "NetworkConfig", "Simulation"],
    "vsm.kernels": [
        "BUILTIN_KERNELS",
        "ArtefactError",
        "ArtefactHashError",
        "CrystalLattice",
        "Kernel",
        "KernelError",
        "LatticeError",
        "ParallelKernel",
        "Pattern",
        "PatternConfig",
        "PatternMeta",
        "PatternType",
        "QuantumBridge",
        "ResourceMetrics",
        "TunnelConfig",
        "TunnelController",
        "TunnelError",
        "TunnelMetrics",
        "band_mask",
        "barrier_transmission",
        "generate_batch",
        "generate_pattern",
        "pattern_body",
        "pattern_from_body",
        "read_artefact",
        "reflection",
        "run_kernel",
        "transmission",
        "write_artefact",
    ],
    "protocol": [
        "DEFAULT_MAX_ATTEMPTS",
        "DOMAIN",
        "ED25519_PUBLIC_KEY_SIZE",
        "ED25519_SIGNATURE_SIZE",
        "EXCHANGES",
        "FRAME_VERSION",
        "HMAC_SIGNATURE_SIZE",
        "MAX_ENVELOPE_SIZE",
        "MAX_KEY_FILE_SIZE",
        "MAX_META_ENTRIES",
        "MAX_PLAIN_DEPTH",
        "MIN_HMAC_SECRET_SIZE",
        "NONCE_SIZE",
        "SCHEMA_VERSION",
        "AlgedonicBody",
        "AlreadySettled",
        "AmqpStatistics",
        "AmqpTransport",
        "AuditBody",
        "AuditVerifier",
        "Body",
        "Causality",
        "ConsumeStatistics",
        "DeadLetter",
        "DecodeError",
        "Delivery",
        "Envelope",
        "ExchangeKind",
        "ExpiredError",
        "HmacIdentity",
        "Identity",
        "IntentBody",
        "KeyFileError",
        "KeyStore",
        "MemoryTransport",
        "OutcomeBody",
        "ProgressBody",
        "ProtocolError",
        "PublishTimeout",
        "QueueFull",
        "RegistryBody",
        "ReplayError",
        "ReplayGuard",
        "ReplayStatistics",
        "Sender",
        "Settler",
        "SignatureError",
        "Signer",
        "Subscription",
        "TooLargeError",
        "Transport",
        "TransportClosed",
        "TransportError",
        "TransportStatistics",
        "UnknownKeyError",
        "Unroutable",
        "Verifier",
        "consume",
        "load_public_key",
        "replay_id",
        "replay_key",
        "route_for",
        "seal",
        "topic_matches",
        "unseal",
    ],
    "actors": [
        "AsyncClient",
        "AsyncIntentHandle",
        "Client",
        "IntentHandle",
        "IntentRefused",
        "IntentRequest",
        "IntentTimeout",
        "NoTreeError",
        "RayTree",
        "SdkError",
        "SignatureRequired",
        "SpecError",
        "TreeExistsError",
        "TreeNotRunningError",
        "TreeStartError",
        "load_spec",
        "parse_spec",
        "running_trees",
    ],
}


@pytest.mark.parametrize("name", sorted(EXPECTED_ALL))
def test_all_is_exact(name: str) -> None:
    """Each package re-exports exactly the names it promises (ruff keeps them sorted)."""
    module = importlib.import_module(name)
    assert module.__all__ == EXPECTED_ALL[name]
    for attr in module.__all__:
        assert hasattr(module, attr), f"{name}.{attr} is listed in __all__ but missing"


@pytest.mark.parametrize("name", PACKAGES)
def test_every_package_documents_itself(name: str) -> None:
    """Every package and module of the public surface has a docstring."""
    module = importlib.import_module(name)
    assert (module.__doc__ or "").strip()


@pytest.mark.parametrize("name", ["vsm", "protocol", "actors"])
def test_layer_packages_are_typed_and_state_their_layer(name: str) -> None:
    """The three layers ship ``py.typed`` and say which layer they are."""
    module = importlib.import_module(name)
    assert module.__file__ is not None
    assert (Path(module.__file__).parent / "py.typed").exists()
    assert "Layer:" in (module.__doc__ or "")


def test_issue_names_are_importable() -> None:
    """The names other projects' tests import are where the issue says they are."""
    from vsm.crdt import HLC, GCounter, LWWRegister, ORMap, ORSet, PNCounter, Stamp
    from vsm.registry import Advert, CapabilityRegistry

    for crdt in (LWWRegister, GCounter, PNCounter, ORSet, ORMap):
        for method in ("merge", "to_data", "from_data"):
            assert callable(getattr(crdt, method))
    assert {HLC, Stamp, Advert, CapabilityRegistry}
