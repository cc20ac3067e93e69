"""Traffic control: rate and concurrency limits that hold at the vendor, across processes.

:mod:`smsgate.traffic.limits` says what a limit is and how a request is admitted
(pure); :mod:`smsgate.traffic.gate` where limits are kept (this process, or the
store) and the gates requests pass through. The kernel charges every request
that carries messages (single, bulk, campaign, failover, retries) to the
limits of its provider instance, its sender and its tenant, and skips an instance
whose circuit breaker is open (:mod:`smsgate.traffic.breaker`); see docs/routing.md.
"""

from smsgate.traffic.breaker import Breaker, BreakerBoard, BreakerState
from smsgate.traffic.gate import (
    AsyncGate,
    LimitWaitExceeded,
    LocalTraffic,
    StoppedWaiting,
    SyncGate,
    TrafficBackend,
)
from smsgate.traffic.health import LimitState, ProviderHealth
from smsgate.traffic.limits import Charge, KeyState, Limit, Rule, Usage

__all__ = [
    "AsyncGate",
    "Breaker",
    "BreakerBoard",
    "BreakerState",
    "Charge",
    "KeyState",
    "Limit",
    "LimitState",
    "LimitWaitExceeded",
    "LocalTraffic",
    "ProviderHealth",
    "Rule",
    "StoppedWaiting",
    "SyncGate",
    "TrafficBackend",
    "Usage",
]
