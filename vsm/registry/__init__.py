"""The capability registry: adverts of who offers what, as a CRDT that converges by merging.

See :mod:`vsm.registry._registry` for the rules (provider-only writes, leases, digests).
"""

from vsm.registry._advert import Advert
from vsm.registry._gossip import DeltaOutbox
from vsm.registry._registry import CapabilityRegistry, RegistryDelta, bucket_of

__all__ = ["Advert", "CapabilityRegistry", "DeltaOutbox", "RegistryDelta", "bucket_of"]
