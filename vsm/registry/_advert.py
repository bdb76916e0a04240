"""The advert: one viable system's offer of one capability."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from vsm.crdt._data import require
from vsm.errors import MalformedDataError

__all__ = ["Advert"]

_FIELDS = (
    "capability",
    "provider",
    "endpoint",
    "version",
    "cost",
    "zone",
    "description",
    "lease_expires_ms",
)


@dataclass(frozen=True, slots=True)
class Advert:
    """What a viable system says about a capability it offers.

    Attributes:
        capability: The capability's name (``"patterns.generate"``).
        provider: Path of the viable system that offers it (``"root/billing"``); only that
            viable system may write this advert.
        endpoint: Where to reach it (an actor name, a queue, a URL).
        version: Version of the capability's interface.
        cost: Relative cost of one call (>= 0); lookups prefer cheaper providers.
        zone: The zone the capability lives in (policies grant zones).
        description: Free text, read by S1's lexical classifier.
        lease_expires_ms: The advert is live strictly before this time; renew by advertising
            again.
    """

    capability: str
    provider: str
    endpoint: str
    version: str = "1"
    cost: float = 1.0
    zone: str = "default"
    description: str = ""
    lease_expires_ms: int = 0

    def __post_init__(self) -> None:
        for name in ("capability", "provider", "endpoint", "version", "zone"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise ValueError(f"Advert.{name} must be a non-empty str, got {value!r}")
        if not isinstance(self.description, str):
            raise ValueError(f"Advert.description must be a str, got {self.description!r}")
        cost = self.cost
        if (
            isinstance(cost, bool)
            or not isinstance(cost, int | float)
            or (isinstance(cost, int) and not cost < 2**64)
            or not math.isfinite(cost)
        ):
            raise ValueError(f"Advert.cost must be a finite number below 2**64, got {cost!r}")
        if cost < 0:
            raise ValueError(f"Advert.cost must be >= 0, got {cost!r}")
        object.__setattr__(self, "cost", float(cost))  # one type, so round trips are exact
        lease = self.lease_expires_ms
        if type(lease) is not int or not 0 <= lease < 2**64:
            raise ValueError(f"Advert.lease_expires_ms must be an int in [0, 2**64), got {lease!r}")

    @property
    def key(self) -> tuple[str, str]:
        """The registry key: ``(capability, provider)``."""
        return (self.capability, self.provider)

    def live(self, now_ms: int) -> bool:
        """Whether the lease still holds at ``now_ms``."""
        return now_ms < self.lease_expires_ms

    def to_data(self) -> list[Any]:
        """Return the advert as a plain list, in field order."""
        return [
            self.capability,
            self.provider,
            self.endpoint,
            self.version,
            float(self.cost),
            self.zone,
            self.description,
            self.lease_expires_ms,
        ]

    @classmethod
    def from_data(cls, data: object) -> Advert:
        """Rebuild an advert from :meth:`to_data` output (or a dict of its fields).

        Raises:
            MalformedDataError: ``data`` does not describe a valid advert.
        """
        if isinstance(data, dict):
            fields = require(data, "Advert", _FIELDS)
            values = [fields[name] for name in _FIELDS]
        elif isinstance(data, list | tuple) and len(data) == len(_FIELDS):
            values = list(data)
        else:
            raise MalformedDataError("Advert", "", f"expected a list of {_FIELDS}", data)
        try:
            return cls(*values)
        except (TypeError, ValueError) as exc:
            raise MalformedDataError("Advert", "", str(exc), data) from exc
