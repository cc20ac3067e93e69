"""Health of provider instances: what this process saw, and the shared state of breakers and limits.

Each gateway counts, per provider instance, the calls it made (a call is one
provider operation: a send, a bulk send, a lookup), how they ended (answered,
or failed by kind), how long the vendor took (latency percentiles over the last
:data:`SAMPLES` calls), and how long calls waited for their limits. The
:func:`~smsgate.hookspecs.smsgate_on_call` hook sees every call, for a metrics
system. :meth:`smsgate.Tenant.health` adds what every process shares: each
breaker's state and how full each limit is.
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from dataclasses import dataclass, field

from smsgate.traffic.breaker import BreakerState
from smsgate.traffic.gate import TrafficBackend
from smsgate.traffic.limits import (
    KeyState,
    LimitPlan,
    Rule,
    count_in_flight,
    lost_wait,
    spacing_wait,
    window_use,
    window_wait,
)

__all__ = ["SAMPLES", "CallCounter", "LimitState", "ProviderHealth", "limit_states"]

#: Calls whose latency the percentiles are computed over, per instance.
SAMPLES = 2048


@dataclass(frozen=True, slots=True)
class LimitState:
    """How full one limit is now: ``used`` of ``count`` ``unit`` within ``period`` seconds
    (unit ``requests``, period 0: a cap on requests in flight, ``used`` of them now)."""

    key: str
    unit: str
    count: int
    period: float
    used: int
    in_flight: int
    #: seconds until another request of one message fits (0: it fits now)
    wait: float
    #: the backend (a Redis) lost what was sent: the limit counts as full until ``wait`` has passed
    lost: bool = False

    @property
    def label(self) -> str:
        """Whose limit it is, as the CLI and :meth:`~smsgate.Tenant.explain_route` name it:
        ``""`` (the instance's), ``"tenant"``, ``"sender ACME"`` (the instance's, per sender ID)
        or ``"tenant sender ACME"``."""
        if self.key == "tenant":
            return "tenant"
        if self.key.startswith("sender:"):
            return f"tenant sender {self.key[len('sender:'):] or '(default)'}"
        _, sep, sender = self.key.partition(":sender:")
        return f"sender {sender or '(default)'}" if sep else ""

    @property
    def spacing(self) -> float | None:
        """Seconds between requests when ``wait`` is the spacing of a limit not full (``used``
        below ``count``: the rate spreads requests evenly, docs/routing.md); ``None`` when the
        limit is full (or lost), or nothing waits."""
        if self.unit == "requests" or self.lost or self.wait <= 0 or self.used >= self.count:
            return None
        return self.period / self.count


@dataclass(slots=True)
class ProviderHealth:
    """One provider instance: this process's counters, its breaker and its limits."""

    instance: str
    plugin: str
    breaker: BreakerState
    limits: list[LimitState] = field(default_factory=list)
    #: calls this process made through it, answered ones, failed ones by error type
    calls: int = 0
    answered: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    #: latency of answered and failed calls (excluding limit waits), seconds; ``None`` before any
    latency_p50: float | None = None
    latency_p95: float | None = None
    latency_p99: float | None = None
    #: calls that had to wait for a limit, and the seconds they waited in all
    limit_waits: int = 0
    limit_waited: float = 0.0
    #: calls skipped because the breaker was open
    skipped: int = 0


@dataclass(slots=True)
class _Counts:
    calls: int = 0
    answered: int = 0
    skipped: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=SAMPLES))
    waits: int = 0
    waited: float = 0.0


def _percentile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class CallCounter:
    """This process's counters of calls per (tenant, instance) (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str], _Counts] = {}

    def _get(self, tenant: str, instance: str) -> _Counts:
        counts = self._counts.get((tenant, instance))
        if counts is None:
            counts = self._counts.setdefault((tenant, instance), _Counts())
        return counts

    def call(self, tenant: str, instance: str, error: BaseException | None, seconds: float, waited: float) -> None:
        """Count a call that ran ``seconds`` (of which ``waited`` for its limits)."""
        with self._lock:
            counts = self._get(tenant, instance)
            counts.calls += 1
            if error is None:
                counts.answered += 1
            else:
                counts.failures[type(error).__name__] += 1
            counts.latencies.append(max(0.0, seconds - waited))
            if waited > 0:
                counts.waits += 1
                counts.waited += waited

    def skip(self, tenant: str, instance: str) -> None:
        """Count a call skipped because the instance's breaker was open."""
        with self._lock:
            self._get(tenant, instance).skipped += 1

    def fill(self, tenant: str, health: ProviderHealth) -> ProviderHealth:
        """``health`` with this process's counters of its instance."""
        with self._lock:
            counts = self._counts.get((tenant, health.instance))
            if counts is None:
                return health
            health.calls, health.answered, health.skipped = counts.calls, counts.answered, counts.skipped
            health.failures = dict(counts.failures)
            health.limit_waits, health.limit_waited = counts.waits, counts.waited
            ordered = sorted(counts.latencies)
        if ordered:
            health.latency_p50 = _percentile(ordered, 0.5)
            health.latency_p95 = _percentile(ordered, 0.95)
            health.latency_p99 = _percentile(ordered, 0.99)
        return health


def limit_states(backend: TrafficBackend, tenant: str, plan: LimitPlan, lease: float,
                 sender: str | None = None) -> list[LimitState]:
    """How full the instance's and the tenant's limits of ``plan`` are now, and the
    instance's cap on requests in flight (unit ``requests``, period 0) (read only). Limits
    per sender ID (``scope = "sender"``) have a key per sender: those of ``sender``, the
    sender ID the instance sends with when a send names none, are read (keys
    ``provider:<instance>:sender:<id>`` and ``sender:<id>``, as the gate charges them).
    ``wait`` is what the gate would make a request of one message wait: the window, the
    spacing between requests, and a lost state (``lease``: the instance's request lease; see
    :func:`~smsgate.traffic.limits.admit`)."""
    instance_key = f"provider:{plan.instance}"
    keyed: dict[str, tuple[Rule, ...]] = {}
    if plan.instance_rules or plan.concurrency is not None:
        keyed[instance_key] = plan.instance_rules
    if plan.sender_rules:
        keyed[f"{instance_key}:sender:{sender or ''}"] = plan.sender_rules
    if plan.tenant_rules:
        keyed["tenant"] = plan.tenant_rules
    if plan.tenant_sender_rules:
        keyed[f"sender:{sender or ''}"] = plan.tenant_sender_rules
    if not keyed:
        return []

    def look(states: dict[str, KeyState], now: float) -> list[LimitState]:
        out = []
        for key, rules in keyed.items():
            state = states[key]
            lost = lost_wait(state, rules, lease, now)
            for rule in rules:
                used, in_flight, _ = window_use(state.entries, rule, now)
                wait = max(lost, window_wait(state.entries, rule, 1, now), spacing_wait(state, rule, now))
                out.append(LimitState(key, rule.unit, rule.count, rule.period, used, in_flight, wait, lost > 0))
            if key == instance_key and plan.concurrency is not None:
                busy = count_in_flight(state.entries, now)
                out.append(LimitState(key, "requests", plan.concurrency, 0.0, busy, busy,
                                      lost, lost > 0))
        return out

    horizons = {key: max((r.period for r in rules), default=0.0) for key, rules in keyed.items()}
    return backend.traffic(tenant, horizons, look)
