"""Which provider instances carry a message: the tenant's route rules, compiled once.

A tenant's ``routes`` are tried in order; the first rule that matches a message
gives its providers, in failover order::

    [[tenants.acme.routes]]
    kinds = ["otp", "transactional"]    # only messages sent with one of these kinds
    providers = ["premium", "squad"]

    [[tenants.acme.routes]]
    prefixes = ["+234"]                 # Nigerian numbers: Squad or Colony (3:1), then Broadcast
    providers = ["squad", "colony", "broadcast"]
    weights = { squad = 3, colony = 1 }

    [[tenants.acme.routes]]
    countries = ["ZA"]                  # by the number's region
    providers = ["colony"]

    [[tenants.acme.routes]]
    providers = ["broadcast"]           # no prefixes, countries or kinds: everything else

A rule matches a message when its number starts with one of ``prefixes`` or is in
one of ``countries`` (a rule with neither matches every number) **and** its kind
is one of ``kinds`` (a rule without ``kinds`` matches every kind, and messages
sent without one). A kind no rule names therefore falls to the rules without
``kinds``. A tenant without routes sends every message through its providers in
the order they are configured. A message no rule matches has no route.

``weights`` share a route's first providers (its *first tier*) by weight: each
message goes first to one of them, chosen by a hash of its idempotency key (else, for a
campaign, of the campaign and the number; else of its message id: see
:func:`weight_key`), so the same message always picks the same provider, in any
process; the others follow in the order of ``providers`` (failover).

:class:`Router` is the one implementation, used by single sends, bulk sends and
campaigns alike (through :class:`smsgate.core.policy.TenantPolicy`). It looks a
number's region up (a full phonenumbers parse) only when it reaches a rule with
``countries``. The explanation types (:class:`RouteExplanation`) are what
:meth:`smsgate.Tenant.explain_route` returns.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from smsgate import phone as phonelib
from smsgate.errors import ValidationError, shown_value
from smsgate.traffic.breaker import BreakerState
from smsgate.traffic.health import LimitState

__all__ = [
    "KIND_PATTERN",
    "CandidateExplanation",
    "Route",
    "RouteExplanation",
    "RouteRule",
    "Router",
    "RuleCheck",
    "check_kind",
    "share_of",
    "weight_key",
    "weighted_pick",
]

#: What a message kind looks like: a short lowercase identifier (``otp``, ``transactional``).
KIND_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,31}")


def _kind_problem(kind: object) -> str | None:
    if not isinstance(kind, str) or KIND_PATTERN.fullmatch(kind) is None:
        shown = shown_value(kind)
        return (f"kind {shown} is not a lowercase identifier (a letter, then letters, digits or '_', "
                "at most 32 characters)")
    return None


def check_kind(kind: str | None) -> str | None:
    """``kind`` if it is a valid message kind (or ``None``); else a :class:`ValidationError`."""
    if kind is None:
        return None
    problem = _kind_problem(kind)
    if problem is not None:
        raise ValidationError(problem, field="kind")
    return kind


#: A route prefix: E.164's '+', then the country code's first digit (never 0) and more digits.
_PREFIX = re.compile(r"\+[1-9][0-9]{0,14}")


def _prefix_problem(prefix: str) -> str:
    """Why ``prefix`` is no E.164 prefix, with the one it probably meant when there is one."""
    digits = re.sub(r"[\s().-]", "", prefix)
    if digits and not digits.startswith("+") and digits[0] != "0":
        digits = "+" + digits
    meant = f" (did you mean {digits!r}?)" if _PREFIX.fullmatch(digits) and digits != prefix else ""
    return (f"prefix {prefix!r} is not an E.164 prefix: '+', the country code, then digits, "
            f"as numbers are matched in E.164 form (e.g. '+234', '+234803'){meant}")


class RouteRule(BaseModel):
    """Which providers carry which messages, in failover order.

    A rule matches a message when its number starts with one of ``prefixes`` or is
    in one of ``countries`` (ISO region codes; a rule with neither matches every
    number) and its kind is one of ``kinds`` (a rule without kinds matches every
    kind). The first matching rule wins. ``weights`` (instance name -> weight)
    share the route's first providers by weight (see the module docstring).
    """

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    providers: list[str]
    prefixes: list[str] = Field(default_factory=list)
    countries: list[str] = Field(default_factory=list)
    kinds: list[str] = Field(default_factory=list)
    weights: dict[str, float] = Field(default_factory=dict)

    @field_validator("providers")
    @classmethod
    def _providers(cls, providers: list[str]) -> list[str]:
        if not providers:
            raise ValueError("a route needs at least one provider instance: an empty one matches its numbers "
                             "and can send none of them")
        twice = sorted({p for p in providers if providers.count(p) > 1})
        if twice:
            raise ValueError(f"names {', '.join(map(repr, twice))} twice: each provider is tried once, "
                             "in the order given")
        return providers

    @field_validator("prefixes")
    @classmethod
    def _prefixes(cls, prefixes: list[str]) -> list[str]:
        for prefix in prefixes:
            if _PREFIX.fullmatch(prefix) is None:
                raise ValueError(_prefix_problem(prefix))
        return prefixes

    @field_validator("countries")
    @classmethod
    def _countries(cls, countries: list[str]) -> list[str]:
        codes = []
        for country in countries:
            try:
                codes.append(phonelib.known_region(country))
            except ValueError as exc:
                raise ValueError(f"country {exc}: no number would ever be in it") from None
        return codes

    @field_validator("kinds")
    @classmethod
    def _kinds(cls, kinds: list[str]) -> list[str]:
        for kind in kinds:
            problem = _kind_problem(kind)
            if problem is not None:
                raise ValueError(problem)
        return kinds

    @field_validator("weights")
    @classmethod
    def _weights(cls, weights: dict[str, float], info: ValidationInfo) -> dict[str, float]:
        if not weights:
            return weights
        for name, weight in weights.items():
            if not math.isfinite(weight) or weight < 0:
                raise ValueError(f"weight of {name!r} must be a number of 0 or more, not {weight!r}")
        if not any(weights.values()):
            raise ValueError("every weight is 0: at least one provider needs a weight above 0")
        providers = info.data.get("providers")
        if providers is not None:
            first = providers[: len(weights)]
            if set(weights) != set(first):
                raise ValueError(
                    f"weights name {', '.join(map(repr, weights))}, but must name the route's first "
                    f"{len(weights)} provider(s) ({', '.join(map(repr, first)) or 'none'}): "
                    "the weighted first tier comes first in 'providers'"
                )
        return weights


def weight_key(message_id: str, idempotency_key: str | None = None, campaign_id: str | None = None,
               to: str = "") -> str:
    """What picks among a route's weighted providers for a message: its idempotency key, else
    for a campaign message ``"<campaign id>:<E.164 number>"`` (a recipient keeps its provider when a
    later run sends it, and the preview counts the split exactly), else its message id."""
    if idempotency_key:
        return idempotency_key
    if campaign_id:
        return f"{campaign_id}:{to}"
    return message_id


def weighted_pick(key: str, names: Sequence[str], weights: Sequence[float]) -> int:
    """Index of the name ``key`` picks, with probability proportional to its weight.

    Deterministic: a hash (BLAKE2b, not Python's per-process ``hash``) of ``key``
    gives a point in ``[0, total)``; the name whose share of the line holds it wins.
    Names of weight 0 are never picked.
    """
    total = sum(weights)
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest()
    point = int.from_bytes(digest, "big") / 2.0**64 * total
    last = 0
    upto = 0.0
    for i, w in enumerate(weights):
        if w <= 0:
            continue
        last = i
        upto += w
        if point < upto:
            return i
    return last  # float rounding at the very end of the line


@dataclass(frozen=True, slots=True)
class Route:
    """A compiled rule: what it matches and its providers (``index`` is ``None`` for the
    default route of a tenant without rules)."""

    index: int | None
    providers: tuple[str, ...]
    prefixes: tuple[str, ...] = ()
    countries: frozenset[str] = frozenset()
    kinds: frozenset[str] = frozenset()
    #: the weighted first tier (the first ``len(tier)`` providers) and their weights
    tier: tuple[str, ...] = ()
    weights: tuple[float, ...] = ()

    @property
    def any_number(self) -> bool:
        """Whether the rule matches every number (no prefixes, no countries)."""
        return not self.prefixes and not self.countries

    def order(self, key: str | None) -> tuple[str, ...]:
        """The providers in the order a message with weight key ``key`` tries them: the
        weighted choice first, then the others in configured order (``key=None``: as configured)."""
        if not self.tier or key is None:
            return self.providers
        chosen = self.tier[weighted_pick(key, self.tier, self.weights)]
        return (chosen, *(n for n in self.providers if n != chosen))

    def describe(self) -> str:
        """What the rule matches, in words (``prefix +234, kind otp``)."""
        parts = []
        if self.prefixes:
            parts.append("prefix " + "/".join(self.prefixes))
        if self.countries:
            parts.append("country " + "/".join(sorted(self.countries)))
        if self.kinds:
            parts.append("kind " + "/".join(sorted(self.kinds)))
        return ", ".join(parts) or "every message"


@dataclass(frozen=True, slots=True)
class RuleCheck:
    """Whether one route rule matched a message, and why (not)."""

    index: int
    matched: bool
    reason: str


class Router:
    """A tenant's route rules, compiled: ``router.route("+2348031234567")`` -> ``("squad", "colony")``."""

    __slots__ = ("_default", "_rules", "needs_region")

    def __init__(self, rules: Sequence[RouteRule], providers: Sequence[str]) -> None:
        self._rules = tuple(
            Route(i, tuple(r.providers), tuple(r.prefixes), frozenset(c.upper() for c in r.countries),
                  frozenset(r.kinds), tuple(r.weights) and tuple(r.providers[: len(r.weights)]),
                  tuple(r.weights[n] for n in r.providers[: len(r.weights)]))
            for i, r in enumerate(rules)
        )
        self._default: Route | None = None if rules else Route(None, tuple(providers))
        #: Whether some rule needs the number's region (a phonenumbers parse per number).
        self.needs_region = any(r.countries for r in rules)

    @property
    def rules(self) -> tuple[Route, ...]:
        """The compiled rules, in order."""
        return self._rules

    def match(self, phone: str, kind: str | None = None, region: str | None = None) -> Route | None:
        """The first rule matching ``phone`` (E.164) sent as ``kind``; ``None`` when none does.

        ``region`` is the number's region if the caller already knows it (it is looked
        up here otherwise, and only when a rule with ``countries`` is reached).
        """
        looked_up = region is not None
        for rule in self._rules:
            if rule.kinds and kind not in rule.kinds:
                continue
            prefixes, countries = rule.prefixes, rule.countries  # (rule.any_number, without its call per rule)
            if prefixes:
                if phone.startswith(prefixes):
                    return rule
            elif not countries:
                return rule
            if countries:
                if not looked_up:
                    region, looked_up = phonelib.region_of(phone), True
                if region in countries:
                    return rule
        return self._default

    def route(self, phone: str, region: str | None = None, *, kind: str | None = None,
              key: str | None = None) -> tuple[str, ...]:
        """Provider instances for ``phone`` (E.164) sent as ``kind``, in failover order; ``()``
        when no rule matches. ``key`` (an idempotency key or message id) picks among weighted
        providers; without it they are in configured order."""
        rule = self.match(phone, kind, region)
        return rule.order(key) if rule is not None else ()

    def first(self, phone: str, kind: str | None = None, key: str | None = None) -> str | None:
        """The first provider instance for ``phone`` (picked by weight with ``key``, else as
        configured), or ``None`` when it has no route."""
        names = self.route(phone, kind=kind, key=key)
        return names[0] if names else None

    def checks(self, phone: str, kind: str | None = None) -> list[RuleCheck]:
        """Every rule up to the first that matches, with why it did (not) match."""
        out: list[RuleCheck] = []
        region: str | None = None
        looked_up = False
        for rule in self._rules:
            assert rule.index is not None
            if rule.kinds and kind not in rule.kinds:
                why = f"kind {kind!r} is not one of {', '.join(sorted(rule.kinds))}" if kind else \
                    f"it is for kinds {', '.join(sorted(rule.kinds))} and the message has none"
                out.append(RuleCheck(rule.index, False, why))
                continue
            kinds = f" and kind {kind}" if rule.kinds else ""
            if rule.any_number:
                out.append(RuleCheck(rule.index, True, f"it matches every number{kinds}"))
                return out
            hit = next((p for p in rule.prefixes if phone.startswith(p)), None)
            if hit is not None:
                out.append(RuleCheck(rule.index, True, f"prefix {hit}{kinds}"))
                return out
            if rule.countries:
                if not looked_up:
                    region, looked_up = phonelib.region_of(phone), True
                if region in rule.countries:
                    out.append(RuleCheck(rule.index, True, f"country {region}{kinds}"))
                    return out
            out.append(RuleCheck(rule.index, False, f"{phone} is not in {rule.describe()}"))
        return out


# ------------------------------------------------------------------------- explanations
@dataclass(slots=True)
class CandidateExplanation:
    """One provider instance on a message's route, and what the kernel would do with it.

    ``action``: ``"try"`` (in this order), ``"skip"`` (a circuit breaker is open and a
    later provider can carry the message) or ``"excluded"`` (it lacks a capability the
    message needs; never tried).
    """

    instance: str
    plugin: str
    action: Literal["try", "skip", "excluded"]
    reasons: list[str] = field(default_factory=list)
    #: its weight and share of the route's first tier (``None``: not weighted)
    weight: float | None = None
    share: float | None = None
    #: capabilities the message needs that it lacks
    lacks: list[str] = field(default_factory=list)
    breaker: BreakerState | None = None
    limits: list[LimitState] = field(default_factory=list)


@dataclass(slots=True)
class RouteExplanation:
    """How a message would be routed now (see :meth:`smsgate.Tenant.explain_route`).

    ``candidates`` are in the order the kernel would try them, the excluded ones
    last; ``order`` is the names it would try. ``error`` says why the message could
    not be sent at all (no route, no provider with a capability it needs).
    """

    tenant: str
    to: str
    kind: str | None
    #: the key weights were applied with (idempotency key or message id), if any
    key: str | None
    #: the rule that matched (index in ``routes``), ``None`` without rules or with ``provider=``
    rule: int | None
    rule_matches: str
    checks: list[RuleCheck]
    requires: list[str]
    candidates: list[CandidateExplanation]
    order: list[str]
    error: str | None = None
    segments: int | None = None
    encoding: str | None = None

    def as_dict(self) -> dict[str, object]:
        """A plain, JSON-ready dict."""
        from dataclasses import asdict

        return asdict(self)


def share_of(route: Route | None) -> Mapping[str, tuple[float, float]]:
    """Weight and share of each weighted provider of ``route``."""
    if route is None or not route.tier:
        return {}
    total = sum(route.weights)
    return {n: (w, w / total) for n, w in zip(route.tier, route.weights, strict=True)}
