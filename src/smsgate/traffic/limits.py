"""Rate and concurrency limits: their configuration and the rule that admits a request.

A :class:`Limit` says how much traffic a provider instance (or one of its sender
IDs, or a whole tenant) takes: ``rate`` messages or message parts (``unit``) per
``per`` (second, minute, hour, day, or a number of seconds). What holds it is the
pair of tests :func:`admit` makes, the same in every backend (in this process,
SQLite or PostgreSQL shared by every process that uses the store):

* **The window, counted where the vendor counts.** A request may leave only if
  the requests that could reach the vendor within one ``per`` of it carry no
  more than the limit. A request occupies the window from the moment it may
  leave until ``per`` after its *answer* came back: the vendor received it at
  some point in between, so however long the network held it, no window the
  vendor looks at ever sees more than the limit. A request still in flight
  counts in full.
* **The spacing** (GCRA): requests are spread evenly at ``rate``, with no
  initial burst beyond ``burst`` (default 1: one request's worth at once). This
  is what keeps traffic smooth; the window is what makes the limit hold.

A concurrency limit (``max_concurrency``) counts requests in flight.

A request that must wait takes its place in each rule's queue at once (:func:`reserve`)
and sleeps until then. Its place is recorded in the key's state with a lease: the waiter
renews it (:func:`renew`) while it waits, with at least half of it left (every third of it
while it sleeps, see :data:`smsgate.traffic.gate.RENEW`; while :func:`admit` tells it to
wait, at the tries made with less than half of it left), and it ends once the request is
admitted (:func:`admit`) or gives it back (:func:`unreserve`). A place whose lease has lapsed belongs to a waiter that died
(SIGKILL, the OOM killer, a power cut): it is given back as if the waiter had given it
back (:func:`reap`, run before any rule's queue is read), so a killed process's places
stop holding the others back at most :data:`RESERVATION_LEASE` seconds after it died.

Everything here is pure: a backend loads the :class:`KeyState` of each key a
request is charged to, calls :func:`reserve`, :func:`admit` or :func:`release`
with its clock, and writes the states back, all in one transaction.

**One clock, which may step back.** A key's state is dated by one clock only, its backend's
(this process' monotonic clock, the SQLite host's wall clock, PostgreSQL's or Redis'): every
process sharing the state reads the same one. A wall clock can step back (NTP correcting it,
an operator setting it), and the state then holds times still to come. As it loads a key,
the backend hands it to :func:`steady`, which sees that (a request started or answered
later than now, a place's lease renewed further ahead than one lease) and brings the state
back to the clock: each request that seems to come counts as sent and answered *now*, a
full window from now (the vendor received it at the latest then: no window it looks at holds
more than the limit), and the spacing starts again from now. So a step back holds the sends
back by one window at most, never until the clock catches up. A waiter measures its own wait
with its process' monotonic clock too (:mod:`smsgate.traffic.gate`), never longer than its
place said when it took it. A step *forward* cannot be told from time passing: a window ends
that much early, once.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "CLOCK_SLACK",
    "MAX_WINDOW",
    "POLL",
    "RESERVATION_LEASE",
    "Charge",
    "Entry",
    "KeyState",
    "Limit",
    "LimitPlan",
    "Rule",
    "Slots",
    "Usage",
    "admit",
    "count_in_flight",
    "key_owner",
    "lost_wait",
    "reap",
    "release",
    "renew",
    "reserve",
    "spacing_wait",
    "steady",
    "unreserve",
    "window_use",
    "window_wait",
]

_PERIODS = {"second": 1.0, "minute": 60.0, "hour": 3600.0, "day": 86400.0}

#: Seconds to wait before trying again when only requests in flight stand in the way.
POLL = 0.005

#: The longest window a limit may have, in seconds (366 days): ``rate = 1, per = 366 * 86400`` is
#: one message a year. A longer one is no vendor's limit, and one near the float range cannot be
#: dated at all (the states' expiry in Redis, a wait's deadline).
MAX_WINDOW = 366 * 86400.0

#: How long a place a waiting request took in a rule's queue (:func:`reserve`) counts without
#: being renewed (:func:`renew`; its waiter renews it with half of it left at least, while it lives):
#: a waiter killed while it waits holds the others back this long at most.
RESERVATION_LEASE = 15.0

#: How far (seconds) a time in a key's state may lie ahead of its backend's clock before
#: :func:`steady` takes it for the clock having stepped back (a process' clock read an instant
#: before another's commits, rounding).
CLOCK_SLACK = 0.01


class Limit(BaseModel):
    """One limit, as configured: at most ``rate`` ``unit`` per ``per``.

    ``rate = 0.5`` with ``per = "second"`` is one message every two seconds;
    ``rate = 1, per = "day"`` one a day. ``burst`` (default 1) is how many requests'
    worth may go at once before the spacing applies (a bulk request may carry the
    limit's whole count); it cannot exceed the limit itself.
    ``scope = "sender"`` (provider limits only) applies the limit to each sender
    ID of the instance separately.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    rate: float = Field(gt=0, allow_inf_nan=False, description="how many per period")
    per: Literal["second", "minute", "hour", "day"] | float = "second"
    unit: Literal["messages", "segments"] = "messages"
    burst: int = Field(default=1, ge=1)
    scope: Literal["instance", "sender"] = "instance"

    @field_validator("per", mode="before")
    @classmethod
    def _known_period(cls, value: object) -> object:
        # one sentence rather than pydantic's two union branches (literal[...] and float)
        if isinstance(value, str) and value not in _PERIODS:
            try:
                float(value)
            except ValueError:
                raise ValueError(f"{value!r} is not a period: {', '.join(_PERIODS)}, "
                                 "or a number of seconds") from None
        return value

    @field_validator("per")
    @classmethod
    def _positive(cls, value: str | float) -> str | float:
        if isinstance(value, (int, float)) and not (value > 0 and math.isfinite(value)):
            raise ValueError("a period in seconds must be a positive number")
        return value

    @model_validator(mode="after")
    def _burst_fits(self) -> Limit:
        rule = self.rule()
        if not rule.period <= MAX_WINDOW:  # inf and nan too
            raise ValueError(f"{self.rate:g} per {self.per if isinstance(self.per, str) else f'{self.per:g} s'} is "
                             f"one every {rule.interval:.3g} s: a limit's window is at most 366 days "
                             f"({MAX_WINDOW:g} s; rate = 1, per = {MAX_WINDOW:g} is one message a year)")
        if self.burst > rule.count:
            raise ValueError(f"burst {self.burst} is more than the limit allows at once ({rule.count})")
        return self

    def rule(self) -> Rule:
        """The limit as :func:`admit` applies it: a whole count per period."""
        period = _PERIODS[self.per] if isinstance(self.per, str) else float(self.per)
        if self.rate >= 1:
            count, window = math.floor(self.rate), period
        else:  # 0.5 a second is one every two seconds
            count, window = 1, period / self.rate
        return Rule(self.unit, count, window, period / self.rate, self.burst)


@dataclass(frozen=True, slots=True)
class Rule:
    """A limit in the form :func:`admit` applies: ``count`` ``unit`` per ``period`` seconds,
    spaced ``interval`` seconds apart with up to ``burst`` at once."""

    unit: Literal["messages", "segments"]
    count: int
    period: float
    interval: float
    burst: int = 1

    @property
    def name(self) -> str:
        """Identifies the rule's spacing state within its key."""
        return f"{self.unit}/{self.count}/{self.period:g}"


@dataclass(frozen=True, slots=True)
class Usage:
    """What one request carries: ``messages`` and their ``segments``."""

    messages: int
    segments: int

    def cost(self, unit: str) -> int:
        """The request's size in ``unit``."""
        return self.messages if unit == "messages" else self.segments


@dataclass(frozen=True, slots=True)
class Charge:
    """One key a request is charged to: its rules, its concurrency limit, and what it carries."""

    key: str
    rules: tuple[Rule, ...]
    usage: Usage
    concurrency: int | None = None

    @property
    def horizon(self) -> float:
        """How long an answered request matters to this key (its longest period)."""
        return max((r.period for r in self.rules), default=0.0)


@dataclass(frozen=True, slots=True)
class LimitPlan:
    """The limits a request through one provider instance is charged to, compiled once.

    Keys (within the tenant): ``provider:<instance>``, ``provider:<instance>:sender:<id>``
    for limits with ``scope = "sender"``, ``tenant`` and ``sender:<id>`` for the
    tenant's own limits.
    """

    instance: str
    instance_rules: tuple[Rule, ...] = ()
    sender_rules: tuple[Rule, ...] = ()
    tenant_rules: tuple[Rule, ...] = ()
    tenant_sender_rules: tuple[Rule, ...] = ()
    concurrency: int | None = None

    @classmethod
    def build(cls, instance: str, *, rate_limit: float | None = None, limits: Sequence[Limit] = (),
              max_concurrency: int | None = None, tenant_limits: Sequence[Limit] = ()) -> LimitPlan | None:
        """The plan for ``instance`` (``None`` when nothing limits it)."""
        own = list(limits)
        if rate_limit:
            own.append(Limit(rate=rate_limit))
        plan = cls(
            instance,
            tuple(x.rule() for x in own if x.scope == "instance"),
            tuple(x.rule() for x in own if x.scope == "sender"),
            tuple(x.rule() for x in tenant_limits if x.scope == "instance"),
            tuple(x.rule() for x in tenant_limits if x.scope == "sender"),
            max_concurrency,
        )
        rules = plan.instance_rules + plan.sender_rules + plan.tenant_rules + plan.tenant_sender_rules
        return plan if rules or max_concurrency else None

    def capacity(self, unit: str) -> int | None:
        """The most ``unit`` one request may carry (the smallest limit's count), if limited."""
        counts = [r.count for r in self.instance_rules + self.sender_rules + self.tenant_rules
                  + self.tenant_sender_rules if r.unit == unit]
        return min(counts) if counts else None

    def charges(self, by_sender: Mapping[str, Usage]) -> tuple[Charge, ...]:
        """The charges of a request carrying ``by_sender`` (usage per sender ID)."""
        total = Usage(sum(u.messages for u in by_sender.values()), sum(u.segments for u in by_sender.values()))
        out = []
        if self.instance_rules or self.concurrency:
            out.append(Charge(f"provider:{self.instance}", self.instance_rules, total, self.concurrency))
        if self.tenant_rules:
            out.append(Charge("tenant", self.tenant_rules, total))
        for sender, usage in by_sender.items():
            if self.sender_rules:
                out.append(Charge(f"provider:{self.instance}:sender:{sender}", self.sender_rules, usage))
            if self.tenant_sender_rules:
                out.append(Charge(f"sender:{sender}", self.tenant_sender_rules, usage))
        return tuple(out)


def key_owner(key: str) -> str:
    """Whose limits a key of :meth:`LimitPlan.charges` keeps, in words: ``instance b``,
    ``instance b, sender ACME``, ``tenant`` or ``tenant, sender ACME``."""
    if key == "tenant":
        return "tenant"
    if key.startswith("sender:"):
        return f"tenant, sender {key[len('sender:'):] or '(default)'}"
    instance, sep, sender = key.removeprefix("provider:").partition(":sender:")
    return f"instance {instance}" + (f", sender {sender or '(default)'}" if sep else "")


@dataclass(slots=True)
class Entry:
    """One request charged to a key: admitted at ``start``, answered at ``end``
    (``None`` while in flight), counted as answered at ``expires`` if its process
    never says (it died)."""

    id: str
    messages: int
    segments: int
    start: float
    end: float | None
    expires: float

    def ended(self, now: float) -> float | None:
        """When the request counts as answered, or ``None`` while it is in flight."""
        if self.end is not None:
            return self.end
        return self.expires if self.expires <= now else None

    def cost(self, unit: str) -> int:
        """The request's size in ``unit``."""
        return self.messages if unit == "messages" else self.segments


@dataclass(slots=True)
class KeyState:
    """What a backend keeps per key: named numbers (``marks``: each rule's next slot, a
    circuit breaker's state) and the requests that still count.

    ``added``, ``answered``, ``moved`` and ``marks_changed`` say what changed since the state
    was loaded (for a backend that writes changes back; ``moved``: requests whose times
    :func:`steady` brought back to the clock). ``forgotten_at``: when the backend lost
    the states it kept (a Redis flushed or restarted empty), so what was sent before then is
    unknown (set by the backend as it loads the state; never written back).
    """

    key: str
    marks: dict[str, float] = field(default_factory=dict)
    entries: list[Entry] = field(default_factory=list)
    added: list[Entry] = field(default_factory=list)
    answered: dict[str, float] = field(default_factory=dict)
    moved: list[Entry] = field(default_factory=list)
    marks_changed: bool = False
    forgotten_at: float | None = None

    def prune(self, now: float, horizon: float) -> None:
        """Forget requests answered more than ``horizon`` seconds ago."""
        since = now - horizon
        self.entries = [e for e in self.entries if (t := e.ended(now)) is None or t > since]


def steady(state: KeyState, now: float) -> bool:
    """Bring ``state`` back to its backend's clock if that stepped back (see the module's
    docstring); whether it did. Called by every backend on each key it loads, before anything
    reads the state.

    The clock stepped back when the state holds what cannot be ahead of it: a request started
    or answered later than ``now`` (both are dated by the clock as they happen), or a place's
    lease renewed further ahead than :data:`RESERVATION_LEASE` (give or take
    :data:`CLOCK_SLACK`). Then each request dated ahead counts as started (answered) ``now``,
    keeping its lease's length (in ``moved``, for the backend to write), and the spacing
    starts again from ``now``: every mark (each rule's next slot, the places of the requests
    waiting and the holes) is dropped. A waiter whose place is dropped so still leaves at its
    time (its own clock says when, :mod:`smsgate.traffic.gate`) and :func:`admit` lets it go
    once the window allows: the window, not the spacing, keeps the limit.
    """
    ahead = now + CLOCK_SLACK
    entries = state.entries
    for e in entries:
        end = e.end
        if (e.start if end is None else end) > ahead:
            break
    else:
        lease_end = ahead + RESERVATION_LEASE
        if not any(until > lease_end and " slot " in name for name, until in state.marks.items()):
            return False
    for e in entries:
        end = e.end
        if e.start > now or (end is not None and end > now):
            lease = e.expires - e.start
            e.start = min(e.start, now)
            e.end = None if end is None else min(end, now)
            e.expires = e.start + lease
            state.moved.append(e)
    if state.marks:
        state.marks.clear()
        state.marks_changed = True
    return True


def spacing_wait(state: KeyState, rule: Rule, now: float) -> float:
    """Seconds until ``rule``'s next evenly spaced slot in ``state`` (``0.0``: now); the
    spacing :func:`reserve` applies. Places of waiters that died are given back first (:func:`reap`)."""
    reap(state, rule, now)
    tat = max(state.marks.get(rule.name, now), now)
    return max(0.0, tat - (rule.burst - 1) * rule.interval - now)


#: What :func:`reserve` took of each rule for one request, for :func:`unreserve`:
#: ``(key, rule name) -> (start, end)`` of its place in the rule's queue (seconds, the backend's
#: clock; the request may leave ``(burst - 1) * interval`` before ``start``).
Slots = dict[tuple[str, str], tuple[float, float]]

#: Two places in a rule's queue closer than this (seconds) are one (sums of floats).
_EPS = 1e-9


def _hole_prefix(rule: Rule) -> str:
    """The prefix of the marks recording ``rule``'s holes (see :func:`unreserve`)."""
    return f"{rule.name} hole "


def _place_prefix(rule_name: str) -> str:
    """The prefix of the marks recording the places waiters hold in a rule's queue: a mark
    ``"<rule> slot <start> <end>"`` says until when the place's lease lasts (see :func:`reap`)."""
    return f"{rule_name} slot "


def _place_name(rule_name: str, start: float, end: float) -> str:
    return f"{_place_prefix(rule_name)}{start!r} {end!r}"


def reserve(states: Mapping[str, KeyState], charges: Sequence[Charge], now: float,
            max_delay: float | None = None, slots: Slots | None = None) -> float:
    """Take the next evenly spaced slot of every rule; seconds until the request may try to leave.

    With ``max_delay``, a slot further away than that is not taken (nothing changes): the
    delay is returned for the caller to refuse the request. A request that reserved and
    then does not leave gives its slots back (:func:`unreserve`, with the ``slots`` this
    fills in: cleared, then the place taken in each rule's queue). With ``slots``, each place
    is recorded in the key's state with a lease of :data:`RESERVATION_LEASE` seconds: the
    waiter renews it (:func:`renew`) until :func:`admit` lets it go, or it is given back as
    a dead waiter's (:func:`reap`).
    """
    delay = 0.0
    taken: list[tuple[KeyState, str, float, float]] = []
    for charge in charges:
        state = states[charge.key]
        for rule in charge.rules:
            cost = charge.usage.cost(rule.unit)
            if not cost:
                continue
            delay = max(delay, spacing_wait(state, rule, now))
            start = max(state.marks.get(rule.name, now), now)
            taken.append((state, rule.name, start, start + cost * rule.interval))
    if slots is not None:
        slots.clear()  # (a backend may run this again on a newer state: only the last run counts)
    if max_delay is not None and delay > max_delay:
        return delay
    for state, name, start, end in taken:
        state.marks[name] = end
        state.marks_changed = True
        if slots is not None:
            slots[(state.key, name)] = (start, end)
            state.marks[_place_name(name, start, end)] = now + RESERVATION_LEASE
    return delay


def renew(states: Mapping[str, KeyState], charges: Sequence[Charge], now: float, slots: Slots,
          due: float = RESERVATION_LEASE) -> float:
    """Renew the leases of the places :func:`reserve` took for a request still waiting (for
    :data:`RESERVATION_LEASE` seconds from ``now``; only those ending within ``due`` seconds);
    seconds until it may try to leave.

    A place whose lease lapsed already (its waiter was suspended, or could not reach the
    backend, that long) was given back (:func:`reap`) and is not taken again: the request
    still leaves at its time, and :func:`admit` (the window) keeps the limit."""
    delay = 0.0
    for state, rule, start, end in _held(states, charges, slots):
        name = _place_name(rule.name, start, end)
        until = state.marks.get(name)
        if until is not None and until - now <= due:
            state.marks[name] = now + RESERVATION_LEASE
            state.marks_changed = True
        delay = max(delay, start - (rule.burst - 1) * rule.interval - now)
    return delay


def _held(states: Mapping[str, KeyState], charges: Sequence[Charge],
          slots: Slots) -> Iterator[tuple[KeyState, Rule, float, float]]:
    """Each place ``slots`` records (:func:`reserve`): its key's state, its rule, its start and end."""
    for charge in charges:
        state = states[charge.key]
        for rule in charge.rules:
            place = slots.get((charge.key, rule.name))
            if place is not None:
                yield state, rule, place[0], place[1]


def reap(state: KeyState, rule: Rule, now: float) -> None:
    """Give back the places in ``rule``'s queue whose lease has lapsed: their waiter died
    while it waited (a live one renews its lease with half of it left at least, and ends it as it is
    admitted or gives the place back), so nothing will leave in them. Each is given back
    as :func:`unreserve` gives a live waiter's (the end of the queue at once, one in the
    middle as a hole); the latest first."""
    prefix = _place_prefix(rule.name)
    lapsed = [name for name, until in state.marks.items() if until <= now and name.startswith(prefix)]
    if not lapsed:
        return
    places = []
    for name in lapsed:
        del state.marks[name]
        first, last = name[len(prefix):].split(" ")
        places.append((float(first), float(last)))
    for start, end in sorted(places, reverse=True):
        _give_back(state, rule, start, end, now)
    state.marks_changed = True


def unreserve(states: Mapping[str, KeyState], charges: Sequence[Charge], now: float, slots: Slots) -> None:
    """Give back the ``slots`` :func:`reserve` took for a request that will not leave (stopped or
    refused while it waited), so a stopped campaign does not hold a provider's traffic back.

    Each rule's slots form a queue ending at its mark. A place at the end of the queue is given
    back at once: the mark moves back to its start, and on over the holes just before it. A
    place in the middle, with requests after it still waiting for theirs, cannot be: moving the
    mark back would give a new request the same moment as the last waiting one (two at once
    under ``burst = 1``). It is kept as a *hole* (a mark ``"<rule> hole <start>" = end``),
    given back with the places after it once they all are, or forgotten once past. The limits
    themselves are kept by :func:`admit` (what was sent), so giving back never lets a window
    hold more. A place whose lease lapsed was given back already (:func:`reap`): nothing
    more is given back for it."""
    for state, rule, start, end in _held(states, charges, slots):
        if state.marks.pop(_place_name(rule.name, start, end), None) is None:
            continue  # reaped: given back already (and perhaps taken by another since)
        state.marks_changed = True
        reap(state, rule, now)
        _give_back(state, rule, start, end, now)


def _give_back(state: KeyState, rule: Rule, start: float, end: float, now: float) -> None:
    """Give back the place ``[start, end)`` in ``rule``'s queue (see :func:`unreserve`)."""
    marks = state.marks
    prefix = _hole_prefix(rule)
    for name in [n for n, e in marks.items() if n.startswith(prefix) and e <= now]:
        del marks[name]  # past: nothing to give back any more
    mark = marks.get(rule.name)
    state.marks_changed = True
    if mark is None or end <= now or end - mark > _EPS:  # past, or given back already
        return
    if mark - end > _EPS:  # others wait after it: a hole
        marks[prefix + repr(start)] = end
        return
    while True:  # the end of the queue: back to its start, and over the holes before it
        mark = start
        hole = next((n for n, e in marks.items() if n.startswith(prefix) and abs(e - mark) <= _EPS), None)
        if hole is None:
            break
        start = float(hole[len(prefix):])
        del marks[hole]
    marks[rule.name] = max(now, mark)


def count_in_flight(entries: Sequence[Entry], now: float) -> int:
    """How many of ``entries`` are requests still in flight (not answered, lease not ended)."""
    return sum(1 for e in entries if e.ended(now) is None)


def lost_wait(state: KeyState, rules: Sequence[Rule], lease: float, now: float) -> float:
    """Seconds until ``state``'s key, whose state the backend lost (``forgotten_at``), may
    count again (``0.0``: it was not lost, or long enough ago); see :func:`admit`. A key
    with no rules (a concurrency cap alone) waits out the lease: the requests in flight at the
    loss were answered by then, or their process died."""
    if state.forgotten_at is None:
        return 0.0
    return max(0.0, state.forgotten_at + lease + max((r.period for r in rules), default=0.0) - now)


def admit(states: Mapping[str, KeyState], charges: Sequence[Charge], now: float, entry_id: str,
          lease: float, slots: Slots | None = None) -> float:
    """Admit the request (``0.0``, recorded as in flight in every key) or say how long to wait.

    ``slots``: the places :func:`reserve` took for it. Admitted, their leases end (the
    places were used: never given back); told to wait, the leases with less than half their
    length left are renewed (:func:`renew`; the key's state is not written at every poll).

    A request larger than a limit's whole count (one long message under a small
    limit in segments) goes alone: once nothing else counts in that window.

    A key whose state the backend lost (``forgotten_at``) counts as full until nothing sent
    before the loss can matter: a request admitted then was answered within ``lease`` of
    the loss at the latest (or its process died), and counts one period after that (a
    concurrency cap alone: until the lease has passed; :func:`lost_wait`).
    """
    wait = 0.0
    for charge in charges:
        state = states[charge.key]
        entries = state.entries
        if charge.rules or charge.concurrency is not None:
            wait = max(wait, lost_wait(state, charge.rules, lease, now))
        if charge.concurrency is not None and count_in_flight(entries, now) >= charge.concurrency:
            wait = max(wait, POLL)
        for rule in charge.rules:
            cost = charge.usage.cost(rule.unit)
            if cost:
                wait = max(wait, window_wait(entries, rule, cost, now))
    if wait > 0:
        if slots:
            renew(states, charges, now, slots, RESERVATION_LEASE / 2)
        return wait
    if slots:
        for (key, name), (start, end) in slots.items():
            state = states[key]
            if state.marks.pop(_place_name(name, start, end), None) is not None:
                state.marks_changed = True
    for charge in charges:
        state = states[charge.key]
        entry = Entry(entry_id, charge.usage.messages, charge.usage.segments, now, None, now + lease)
        state.entries.append(entry)
        state.added.append(entry)
        for rule in charge.rules:
            cost = charge.usage.cost(rule.unit)
            if cost and state.marks.get(rule.name, now) <= now:
                # Held past its place (by the window, the concurrency cap, a dropped place after a
                # clock step back) with nobody queued after it: the spacing counts from now, when
                # it leaves, or the next request would leave right after it (two at once).
                state.marks[rule.name] = now + cost * rule.interval
                state.marks_changed = True
    return 0.0


def window_use(entries: Sequence[Entry], rule: Rule, now: float) -> tuple[int, int, list[tuple[float, int]]]:
    """What counts in ``rule``'s window now: in all, in flight, and (answer time, size) of the answered."""
    since = now - rule.period
    used = in_flight = 0
    answered: list[tuple[float, int]] = []
    for e in entries:
        size = e.cost(rule.unit)
        if not size:
            continue
        t = e.ended(now)
        if t is None:
            used += size
            in_flight += size
        elif t > since:
            used += size
            answered.append((t, size))
    return used, in_flight, answered


def window_wait(entries: Sequence[Entry], rule: Rule, cost: int, now: float) -> float:
    """Seconds until ``cost`` more fits ``rule``'s window (0.0: it fits now; :data:`POLL`
    while only answers to requests in flight can free it)."""
    used, _, answered = window_use(entries, rule, now)
    if not used or used + cost <= rule.count:
        return 0.0
    excess = used + cost - rule.count if cost <= rule.count else used
    freed = 0
    for t, size in sorted(answered):
        freed += size
        if freed >= excess:
            return max(t + rule.period - now, POLL)
    return POLL  # requests in flight stand in the way: their answers decide


def release(states: Mapping[str, KeyState], keys: Sequence[str], entry_id: str, now: float) -> None:
    """Record that the request ``entry_id`` was answered (or failed) at ``now``."""
    for key in keys:
        state = states[key]
        for e in state.entries:
            if e.id == entry_id and e.end is None:
                e.end = now
                state.answered[entry_id] = now
