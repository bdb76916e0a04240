"""The simulated network: loss, duplication, delay (hence reordering) and partitions."""

from __future__ import annotations

import random
from dataclasses import dataclass

from vsm.address import is_within

__all__ = ["Network", "NetworkConfig"]


@dataclass(frozen=True, slots=True)
class NetworkConfig:
    """How hostile the network is.

    Attributes:
        drop: Probability that a message between viable systems is lost.
        duplicate: Probability that it is delivered twice.
        min_delay: Smallest delay, in seconds.
        max_delay: Largest delay; messages overtake one another within it.
    """

    drop: float = 0.0
    duplicate: float = 0.0
    min_delay: float = 0.001
    max_delay: float = 0.005

    def __post_init__(self) -> None:
        for name in ("drop", "duplicate"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"NetworkConfig.{name} must be in [0, 1), got {value!r}")
        if not 0.0 <= self.min_delay <= self.max_delay:
            raise ValueError(
                f"need 0 <= min_delay <= max_delay, got {self.min_delay} and {self.max_delay}"
            )


class Network:
    """Decides the fate of each message between two viable systems.

    Args:
        config: Loss, duplication and delays.
        rng: The seeded source of every random choice.
    """

    __slots__ = ("_partitions", "config", "rng")

    def __init__(self, config: NetworkConfig, rng: random.Random) -> None:
        self.config = config
        self.rng = rng
        self._partitions: list[tuple[str, str]] = []

    def partition(self, a: str, b: str) -> None:
        """Cut every link between the subtree at ``a`` and the subtree at ``b``.

        When one subtree contains the other (``partition("root", "root/a")``), the inner
        subtree is cut from the rest of the outer one.
        """
        if a == b:
            raise ValueError(f"cannot partition {a!r} from itself")
        self._partitions.append((a, b))

    def heal(self) -> None:
        """Remove every partition."""
        self._partitions.clear()

    @property
    def partitioned(self) -> bool:
        """Whether any partition is in force."""
        return bool(self._partitions)

    def cut(self, src: str, dst: str) -> bool:
        """Whether a partition separates ``src`` and ``dst``."""
        for a, b in self._partitions:
            src_a, src_b = _side(src, a, b), _side(src, b, a)
            dst_a, dst_b = _side(dst, a, b), _side(dst, b, a)
            if (src_a and dst_b) or (src_b and dst_a):
                return True
        return False

    def delays(self, src: str, dst: str) -> list[float]:
        """Delays of the copies of one message that arrive (empty: lost)."""
        if self.cut(src, dst):
            return []
        cfg, rng = self.config, self.rng
        if cfg.drop and rng.random() < cfg.drop:
            return []
        copies = 2 if cfg.duplicate and rng.random() < cfg.duplicate else 1
        return [rng.uniform(cfg.min_delay, cfg.max_delay) for _ in range(copies)]


def _side(path: str, this: str, other: str) -> bool:
    """Whether ``path`` is on ``this`` side of a partition between ``this`` and ``other``."""
    return is_within(path, this) and not (is_within(other, this) and is_within(path, other))
