"""The five Systems of a viable system, and the viable system that groups them.

Each System is a state machine with one entry point, ``handle(message, now) -> list[Effect]``;
its rules open its module. ``ViableSystem`` groups the five of one path.
"""

from vsm.systems._node import LOCAL, Node
from vsm.systems._s1 import System1
from vsm.systems._s2 import System2
from vsm.systems._s3 import Kpi, System3
from vsm.systems._s4 import System4
from vsm.systems._s5 import Decision, System5
from vsm.systems._viable import ViableSystem

__all__ = [
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
]
