"""Small pure control mechanisms: rate limits, circuit breakers, restart intensity, heartbeats.

Systems 2, 3 and 5 hold these as plain state and call them from ``handle(message, now)``:

====================  ======  ============================================================
name                  user    what it does
====================  ======  ============================================================
``TokenBucket``       S2      rate limit with bursts (an attenuator)
``TokenBuckets``      S2      one bucket per user or capability, in bounded memory
``AdaptiveRate``      S2      sets a bucket's rate from the load behind it (AIMD)
``FailureDetector``   S2      heartbeat ages: healthy, warning, zombie, dead
``RestartIntensity``  S3      OTP supervision: at most N restarts in T seconds, then escalate
``CircuitBreaker``    S5      refuses spawning after repeated failures, probes now and then
====================  ======  ============================================================

One clock rule for all of them: every method that takes ``now`` (seconds on the caller's clock,
virtual or wall) first moves the object's clock to ``max(clock, now)``. A ``now`` that goes
backwards counts as no time elapsed, so a clock that steps back stalls them until it catches up:
no tokens are minted, no window or open breaker is cut short, nobody ages. Give them a monotonic
clock where you can.

Bad arguments, a non-finite ``now`` included, raise ``ValueError`` showing the bad value; an
unknown unit raises ``KeyError`` naming it. Each module opens with its rules.
"""

from vsm.mechanisms._adaptive_rate import AdaptiveRate
from vsm.mechanisms._circuit_breaker import CircuitBreaker, CircuitState
from vsm.mechanisms._failure_detector import FailureDetector, Health
from vsm.mechanisms._restart_intensity import Decision, RestartIntensity
from vsm.mechanisms._token_bucket import TokenBucket
from vsm.mechanisms._token_buckets import TokenBuckets

__all__ = [
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
