"""The deterministic simulator: whole trees in one process, for hypothesis to attack."""

from vsm.sim._network import Network, NetworkConfig
from vsm.sim._simulation import Simulation

__all__ = ["Network", "NetworkConfig", "Simulation"]
