"""Circuit breakers: stop trying a provider instance that is down, and try it again later.

A breaker per provider instance counts the failures that mean the vendor is down
(the connection failed, a 5xx, a timeout, an answer no adapter can read). After
``failures`` of them within ``window`` seconds it *opens*: while a message has
another provider on its route, the instance is skipped at once (:class:`CircuitOpen`,
which fails over like a refused request) instead of paying a timeout per message.
After ``cooldown`` seconds one request is let through as a probe (*half-open*): a
success closes the breaker, a failure opens it for another ``cooldown``. A message
with no other provider is always tried.

The state is kept where the limits are (:mod:`smsgate.traffic.gate`: the store,
shared by every process, or this process), under the key ``breaker:<instance>``.
Each process keeps a view of it and reads it again at most every :data:`REFRESH`
seconds, so a request through a closed breaker costs no store round trip; a
failure is written at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from smsgate.errors import MalformedResponse, ProviderUnavailable, TransportError, UnknownOutcome
from smsgate.traffic.gate import TrafficBackend
from smsgate.traffic.limits import KeyState

__all__ = ["REFRESH", "Breaker", "BreakerBoard", "BreakerState", "is_down", "observe", "settle", "steady"]

log = logging.getLogger("smsgate.traffic")

#: Seconds a process trusts its view of a closed breaker before reading it again.
REFRESH = 1.0

_DOWN = (TransportError, ProviderUnavailable, UnknownOutcome, MalformedResponse)


class Breaker(BaseModel):
    """A provider instance's circuit breaker, as configured (``breaker = {...}``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    enabled: bool = True
    failures: int = Field(default=5, ge=1, description="failures within the window that open it")
    window: float = Field(default=30.0, gt=0, allow_inf_nan=False, description="seconds")
    cooldown: float = Field(default=30.0, gt=0, allow_inf_nan=False, description="seconds open before a probe")


def is_down(exc: BaseException) -> bool:
    """Whether ``exc`` says the vendor is down (what a breaker counts)."""
    return isinstance(exc, _DOWN)


@dataclass(frozen=True, slots=True)
class BreakerState:
    """A breaker as seen now: ``closed``, ``open`` or ``half-open`` (a probe may go or is out)."""

    state: str
    failures: int = 0
    #: seconds until a probe may go (``open``), else 0
    retry_in: float = 0.0


def steady(marks: dict[str, float], now: float) -> None:
    """A breaker's state brought back to its backend's clock if that stepped back (NTP
    correcting a wall clock; see :func:`smsgate.traffic.limits.steady`): a breaker opened,
    or a window of failures begun, later than ``now`` by that clock did so now as far as it can
    tell (the cooldown counts from now: one cooldown more at most, never the step's length; a
    probe out then no longer holds the others back). Every read of the shared state applies it
    first (:class:`BreakerBoard`), before :func:`settle` or :func:`observe`."""
    if marks.get("opened_at", 0.0) > now:
        marks["opened_at"] = now
        marks.pop("probe_until", None)
    if marks.get("since", 0.0) > now:
        marks["since"] = now


def settle(marks: dict[str, float], cfg: Breaker, now: float, probe: float) -> str:
    """Whether a request may go: ``"closed"``, ``"open"`` (skip it) or ``"probe"`` (it is
    the half-open breaker's one probe, held for ``probe`` seconds)."""
    opened = marks.get("opened_at", 0.0)
    if not opened:
        return "closed"
    if now < opened + cfg.cooldown or marks.get("probe_until", 0.0) > now:
        return "open"
    marks["probe_until"] = now + probe
    return "probe"


def observe(marks: dict[str, float], cfg: Breaker, now: float, ok: bool) -> str | None:
    """Count a call's outcome; returns ``"opened"`` or ``"closed"`` when the breaker changes."""
    opened = marks.get("opened_at", 0.0)
    if ok:
        had = bool(opened)
        for name in ("opened_at", "probe_until", "count", "since"):
            marks.pop(name, None)
        return "closed" if had else None
    if opened:  # a probe (or a request from before it opened) failed: open again
        marks["opened_at"], marks["probe_until"] = now, 0.0
        return None
    if now - marks.get("since", 0.0) > cfg.window:
        marks["since"], marks["count"] = now, 0.0
    marks["count"] = marks.get("count", 0.0) + 1
    if marks["count"] >= cfg.failures:
        marks["opened_at"] = now
        return "opened"
    return None


@dataclass(slots=True)
class _View:
    marks: dict[str, float]
    at: float  # time.monotonic() when read
    offset: float  # the backend's clock minus time.monotonic()


class BreakerBoard:
    """Every breaker of a gateway: each process's view, and the backend that keeps them."""

    def __init__(self, backend: TrafficBackend) -> None:
        self.backend = backend
        self._lock = threading.Lock()
        self._views: dict[tuple[str, str], _View] = {}

    @staticmethod
    def key(instance: str) -> str:
        """The traffic key of ``instance``'s breaker."""
        return f"breaker:{instance}"

    def _keep(self, tenant: str, instance: str, marks: dict[str, float], now: float) -> None:
        mono = time.monotonic()
        with self._lock:
            self._views[(tenant, instance)] = _View(dict(marks), mono, now - mono)

    def _transact(self, tenant: str, instance: str, fn: Callable[[dict[str, float], float], str | None]) -> str | None:
        key = self.key(instance)

        def run(states: dict[str, KeyState], now: float) -> str | None:
            state = states[key]
            before = dict(state.marks)
            steady(state.marks, now)  # (kept, and written back, even when fn reads a copy)
            answer = fn(state.marks, now)
            state.marks_changed = state.marks != before
            self._keep(tenant, instance, state.marks, now)
            return answer

        return self.backend.traffic(tenant, {key: 0.0}, run)

    # ------------------------------------------------------------------ asking
    def quick_allow(self, tenant: str, instance: str, cfg: Breaker) -> bool | None:
        """Whether a request may go, from this process's view; ``None``: ask :meth:`allow`."""
        if not cfg.enabled:
            return True
        view = self._views.get((tenant, instance))
        if view is None:
            return None
        mono = time.monotonic()
        opened = view.marks.get("opened_at", 0.0)
        if not opened:
            return True if mono - view.at < REFRESH else None
        if mono + view.offset < opened + cfg.cooldown:
            return False
        return None  # a probe may be due: the backend decides who sends it

    def may_allow(self, tenant: str, instance: str, cfg: Breaker) -> bool:
        """Whether a request may go now, as :meth:`allow` would answer, without claiming the
        half-open probe (read only; refreshes this process's view): a request about to wait
        for its limits asks so first, and its call claims the probe (:meth:`allow`)."""
        quick = self.quick_allow(tenant, instance, cfg)
        if quick is not None:
            return quick
        return self._transact(tenant, instance, lambda marks, now: settle(dict(marks), cfg, now, 0.0)) != "open"

    def allow(self, tenant: str, instance: str, cfg: Breaker, probe: float) -> bool:
        """Whether a request may go (reads the shared state; may claim the half-open probe)."""
        quick = self.quick_allow(tenant, instance, cfg)
        if quick is not None:
            return quick
        answer = self._transact(tenant, instance, lambda marks, now: settle(marks, cfg, now, probe))
        if answer == "probe":
            log.info("circuit breaker of %s: half-open, one probe request goes", instance)
        return answer != "open"

    # --------------------------------------------------------------- recording
    def quick_record(self, tenant: str, instance: str, cfg: Breaker, ok: bool) -> bool:
        """Record a call's outcome if that changes nothing (``True``); else :meth:`record` it."""
        if not cfg.enabled:
            return True
        view = self._views.get((tenant, instance))
        if not ok or view is None:
            return False
        return not view.marks.get("opened_at") and not view.marks.get("count")

    def record(self, tenant: str, instance: str, cfg: Breaker, ok: bool) -> None:
        """Record a call's outcome in the shared state (opening or closing the breaker).

        Never raises: it runs once the call ended, whose outcome (the vendor's answer, or
        its error) stands; a backend that fails here leaves the breaker as it was (logged)."""
        if self.quick_record(tenant, instance, cfg, ok):
            return
        try:
            change = self._transact(tenant, instance, lambda marks, now: observe(marks, cfg, now, ok))
        except Exception as exc:
            log.warning("circuit breaker of %s: a call's outcome could not be recorded (%s: %s)", instance,
                        type(exc).__name__, exc)
            return
        if change == "opened":
            log.warning("circuit breaker of %s opened after %d failures within %gs; it is skipped for %gs "
                        "while another provider can carry its messages", instance, cfg.failures, cfg.window,
                        cfg.cooldown)
        elif change == "closed":
            log.warning("circuit breaker of %s closed: it answers again", instance)

    def state(self, tenant: str, instance: str, cfg: Breaker) -> BreakerState:
        """The breaker as the backend has it now (read only)."""
        key = self.key(instance)

        def look(states: dict[str, KeyState], now: float) -> BreakerState:
            marks = dict(states[key].marks)
            steady(marks, now)
            opened = marks.get("opened_at", 0.0)
            count = int(marks.get("count", 0.0)) if now - marks.get("since", 0.0) <= cfg.window else 0
            if not opened:
                return BreakerState("closed", count)
            wait = opened + cfg.cooldown - now
            return BreakerState("open", count, wait) if wait > 0 else BreakerState("half-open", count)

        return self.backend.traffic(tenant, {key: 0.0}, look)
