"""Test-session configuration: hypothesis profiles and the broker requirement.

- ``VSM_HYPOTHESIS_PROFILE`` picks the hypothesis profile: ``dev`` (default, fast, random),
  ``ci`` (thorough and derandomized, so a given commit always meets the same examples and CI
  never flakes; ``.ci/run`` selects it) or ``explore`` (thorough and random: run it before
  landing to look for counterexamples the fixed CI seed does not reach).
- ``VSM_REQUIRE_AMQP=1`` turns a missing RabbitMQ from a skip into a failure (CI sets it).
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("dev", max_examples=60, deadline=None)
_THOROUGH = {
    "max_examples": 400,
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow],
    "print_blob": True,
}
settings.register_profile("ci", derandomize=True, database=None, **_THOROUGH)
settings.register_profile("explore", **_THOROUGH)
settings.load_profile(os.environ.get("VSM_HYPOTHESIS_PROFILE", "dev"))

AMQP_URL = os.environ.get("VSM_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


def _broker_reachable(url: str) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 5672), 2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def amqp_url() -> str:
    """The RabbitMQ URL; skips (or fails, when VSM_REQUIRE_AMQP=1) if nothing listens there."""
    if not _broker_reachable(AMQP_URL):
        message = f"RabbitMQ is not reachable at {AMQP_URL}"
        if os.environ.get("VSM_REQUIRE_AMQP") == "1":
            pytest.fail(f"{message}, and VSM_REQUIRE_AMQP=1 requires it")
        pytest.skip(f"{message} (set VSM_AMQP_URL, or start rabbitmq-server)")
    return AMQP_URL


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark tests by the tier folder they live in, so ``-m`` selects tiers."""
    for item in items:
        parts = item.path.parts
        if "ray" in parts:
            item.add_marker(pytest.mark.ray)
        if "integration" in parts:
            item.add_marker(pytest.mark.amqp)
