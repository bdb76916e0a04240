"""actors — the Ray shell: hosts, runtime, supervision, client SDK, CLI.

Layer: the top of three (``vsm`` ← ``protocol`` ← ``actors``); the only package that knows about
Ray. Ray actors here are thin adapters: receive, call the pure core in ``vsm``, carry out the
effects it returns, reply.

The public surface: :class:`Client` and :class:`AsyncClient` (the SDK), :class:`RayTree` (start
and stop trees), :func:`load_spec` (tree specs from TOML, YAML or JSON), and their errors.
"""

from actors._runtime import RayTree, TreeExistsError, TreeNotRunningError, TreeStartError
from actors.sdk import (
    AsyncClient,
    AsyncIntentHandle,
    Client,
    IntentHandle,
    IntentRefused,
    IntentRequest,
    IntentTimeout,
    NoTreeError,
    SdkError,
    SignatureRequired,
    running_trees,
)
from actors.specfile import SpecError, load_spec, parse_spec

__all__ = [
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
]
