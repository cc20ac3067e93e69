"""Pure parsers of Colony's answers: JSON in, typed models out, no I/O and no provider state.

Every function takes already-decoded JSON (``response.json()``, a webhook body, a stored
payload) and returns :mod:`smsgate_colony.models` objects, or raises
:class:`~smsgate.errors.MalformedResponse` saying what is wrong and where. The adapter
(:class:`~smsgate_colony.provider.ColonyProvider`) calls them and adds its instance name;
other code (e.g. inbound-message handling) can call them directly::

    from smsgate_colony.wire import parse_inbound_messages
    messages = parse_inbound_messages(stored_json)          # a listing: array or DRF page
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import ValidationError as PydanticValidationError

from smsgate.errors import MalformedResponse
from smsgate_colony.models import ColonyCollateCampaign, ColonyInboundMessage, ColonyModel

__all__ = [
    "Listing",
    "parse_collate_campaign",
    "parse_inbound_message",
    "parse_inbound_messages",
    "parse_listing",
    "parse_object",
]

M = TypeVar("M", bound=ColonyModel)


@dataclass(frozen=True)
class Listing:
    """One listing answer: its raw items, the DRF ``next`` link (as sent) and ``count``."""

    items: list[Any]
    next: object = None
    total: int | None = None


def parse_object(cls: type[M], data: object, where: str) -> M:
    """``data`` as a ``cls``; :class:`MalformedResponse` names the first bad field."""
    if not isinstance(data, dict):
        raise MalformedResponse(f"{where}: expected a {cls.__name__} object, got {type(data).__name__}")
    try:
        return cls.model_validate(data)
    except PydanticValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"]) or "?"
        raise MalformedResponse(f"{where}: unexpected {cls.__name__}: field {loc!r}: {err['msg']}") from None


def parse_listing(body: object, where: str) -> Listing:
    """A listing answer: a plain JSON array, a DRF page ``{count, next, previous, results}``,
    or nothing (``None``: an empty body). Anything else is :class:`MalformedResponse`."""
    if body is None:
        return Listing([])
    if isinstance(body, list):
        return Listing(body, None, len(body))
    if isinstance(body, Mapping) and isinstance(body.get("results"), list):
        count = body.get("count")
        try:
            total = int(count) if count is not None else None
        except (TypeError, ValueError):
            total = None
        return Listing(body["results"], body.get("next"), total)
    raise MalformedResponse(f"{where}: expected a JSON array or a page {{count, next, previous, results}}")


def parse_inbound_message(data: object, where: str = "inbound message") -> ColonyInboundMessage:
    """One inbound (collate) message object."""
    return parse_object(ColonyInboundMessage, data, where)


def parse_inbound_messages(body: object, where: str = "inbound messages") -> list[ColonyInboundMessage]:
    """Every message of one listing answer (array or DRF page; the ``next`` link is not followed)."""
    listing = parse_listing(body, where)
    return [parse_inbound_message(item, f"{where}: item {i}") for i, item in enumerate(listing.items)]


def parse_collate_campaign(data: object, where: str = "collate campaign") -> ColonyCollateCampaign:
    """One collate campaign object."""
    return parse_object(ColonyCollateCampaign, data, where)
