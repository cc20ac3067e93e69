"""Which provider instances carry a number: the tenant's route rules, compiled once.

A tenant's ``routes`` are tried in order; the first rule that matches a number
gives its providers, in failover order::

    [[tenants.acme.routes]]
    prefixes = ["+234"]                 # Nigerian numbers: Squad, then Colony
    providers = ["squad", "colony"]

    [[tenants.acme.routes]]
    countries = ["ZA"]                  # by the number's region
    providers = ["colony"]

    [[tenants.acme.routes]]
    providers = ["broadcast"]           # no prefixes, no countries: every other number

A tenant without routes sends every number through its providers in the order
they are configured. A number no rule matches has no route.

:class:`Router` is the one implementation, used by single sends, bulk sends and
campaign preparation alike. It looks a number's region up (a full phonenumbers
parse) only when it reaches a rule with ``countries``.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

from smsgate import phone as phonelib

__all__ = ["RouteRule", "Router"]


class RouteRule(BaseModel):
    """Which providers carry which numbers, in failover order.

    A rule matches a number when it starts with one of ``prefixes`` or is in one
    of ``countries`` (ISO region codes); a rule with neither matches every number.
    The first matching rule wins.
    """

    model_config = ConfigDict(extra="forbid")

    providers: list[str]
    prefixes: list[str] = Field(default_factory=list)
    countries: list[str] = Field(default_factory=list)


class Router:
    """A tenant's route rules, compiled: ``router.route("+2348031234567")`` -> ``("squad", "colony")``."""

    __slots__ = ("_default", "_rules", "needs_region")

    def __init__(self, rules: Sequence[RouteRule], providers: Sequence[str]) -> None:
        #: (prefixes, countries, providers, catch-all) per rule, in order
        self._rules = tuple(
            (tuple(r.prefixes), frozenset(c.upper() for c in r.countries), tuple(r.providers),
             not r.prefixes and not r.countries)
            for r in rules
        )
        self._default: tuple[str, ...] = () if rules else tuple(providers)
        #: Whether some rule needs the number's region (a phonenumbers parse per number).
        self.needs_region = any(r.countries for r in rules)

    def route(self, phone: str, region: str | None = None) -> tuple[str, ...]:
        """Provider instances for ``phone`` (E.164), in failover order; ``()`` when no rule matches.

        ``region`` is the number's region if the caller already knows it (it is looked
        up here otherwise, and only when a rule with ``countries`` is reached).
        """
        looked_up = region is not None
        for prefixes, countries, names, catch_all in self._rules:
            if catch_all or (prefixes and phone.startswith(prefixes)):
                return names
            if countries:
                if not looked_up:
                    region, looked_up = phonelib.region_of(phone), True
                if region in countries:
                    return names
        return self._default

    def first(self, phone: str) -> str | None:
        """The first provider instance for ``phone``, or ``None`` when it has no route."""
        names = self.route(phone)
        return names[0] if names else None
