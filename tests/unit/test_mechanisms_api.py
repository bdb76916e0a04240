"""The surface of vsm.mechanisms: exact exports, documented rules and names, slotted state."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

from vsm import mechanisms
from vsm.mechanisms import (
    AdaptiveRate,
    CircuitBreaker,
    FailureDetector,
    RestartIntensity,
    TokenBucket,
    TokenBuckets,
)

EXPECTED_ALL = [
    "AdaptiveRate",
    "CircuitBreaker",
    "CircuitState",
    "Decision",
    "FailureDetector",
    "Health",
    "RestartIntensity",
    "TokenBucket",
    "TokenBuckets",
]

MODULES = sorted(
    f"vsm.mechanisms.{info.name}" for info in pkgutil.iter_modules(mechanisms.__path__)
)

INSTANCES = {
    "AdaptiveRate": lambda: AdaptiveRate(10.0, 1.0, 20.0),
    "CircuitBreaker": lambda: CircuitBreaker(3, 5.0),
    "FailureDetector": lambda: FailureDetector(1.0, 2.0, 3.0),
    "RestartIntensity": lambda: RestartIntensity(3, 5.0),
    "TokenBucket": lambda: TokenBucket(1.0, 2.0),
    "TokenBuckets": lambda: TokenBuckets(1.0, 2.0),
}


def test_all_is_exact_and_every_name_is_there():
    """The package re-exports exactly the promised names, each importable."""
    assert mechanisms.__all__ == EXPECTED_ALL
    for name in EXPECTED_ALL:
        assert getattr(mechanisms, name).__module__.startswith("vsm.mechanisms._")


@pytest.mark.parametrize("name", MODULES)
def test_every_module_opens_with_its_rules(name):
    """Every module has a docstring with a Rules: section and an exact __all__."""
    module = importlib.import_module(name)
    assert "Rules:" in (module.__doc__ or "")
    for exported in module.__all__:
        assert getattr(module, exported).__module__ == name


@pytest.mark.parametrize("name", EXPECTED_ALL)
def test_every_public_name_is_documented(name):
    """Each exported class, and each of its public methods and properties, has a docstring."""
    cls = getattr(mechanisms, name)
    assert (cls.__doc__ or "").strip()
    for attr, member in vars(cls).items():
        if attr.startswith("_") or not (inspect.isfunction(member) or isinstance(member, property)):
            continue
        assert (member.__doc__ or "").strip(), f"{name}.{attr} has no docstring"


@pytest.mark.parametrize("name", sorted(INSTANCES))
def test_state_is_slotted_and_readable(name):
    """Instances keep their state in __slots__ and print it in their repr."""
    instance = INSTANCES[name]()
    assert not hasattr(instance, "__dict__")
    assert repr(instance).startswith(f"{name}(")
    assert isinstance(instance.statistics(), dict)
