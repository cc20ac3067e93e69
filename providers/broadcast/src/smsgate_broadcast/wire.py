"""Typed WAABOT records for contacts, contact groups and the message log, with pure parsers.

Each ``parse_*`` function takes one decoded JSON object (the ``data`` of an answer, or an
item of a list) and returns a frozen pydantic model, or raises
:class:`~smsgate.errors.MalformedResponse` naming the field and where it was read. No I/O,
no provider state: :class:`~smsgate_broadcast.provider.BroadcastProvider` calls them and
adds its instance name; other code may call them directly.

Field sources: FACTS.md section 4.3 (vendor docs ``api-documentation``): contact ``{_id,
name, number, client_id, group_id, channel, transaction:{survey_id, survey_sort_id}}``,
group ``{_id, title, is_default, survey_id, survey_sort_id}``. The message-log record is
not documented ([INF]): only its ``_id`` is required, every other field is kept as sent.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from smsgate.provider import parse_model

__all__ = [
    "WaabotContact",
    "WaabotContactGroup",
    "WaabotMessageLog",
    "WaabotRecord",
    "parse_contact",
    "parse_contact_group",
    "parse_message_log",
]

R = TypeVar("R", bound="WaabotRecord")


class WaabotRecord(BaseModel):
    """Base of WAABOT's Mongo-style documents: ``_id`` (required), ``client_id``, timestamps.

    Extra fields (``__v``, anything new) are kept; :meth:`raw` gives the object back.
    """

    model_config = ConfigDict(extra="allow", populate_by_name=True, frozen=True)

    id: str = Field(alias="_id", min_length=1)
    client_id: str | None = None
    created_at: datetime | None = Field(default=None, alias="createdAt")
    updated_at: datetime | None = Field(default=None, alias="updatedAt")

    @field_validator("created_at", "updated_at", mode="after")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        # the docs' timestamps end in Z; a naive one is read as UTC
        return value.replace(tzinfo=timezone.utc) if value is not None and value.tzinfo is None else value

    def raw(self) -> dict[str, Any]:
        """The record with WAABOT's field names (JSON-friendly)."""
        return self.model_dump(mode="json", by_alias=True)


class WaabotContact(WaabotRecord):
    """A contact of a bot: a WhatsApp ``number`` (international digits), optionally in a group."""

    number: str = Field(min_length=1)
    name: str | None = None
    group_id: str | None = None
    channel: str | None = None
    transaction: dict[str, Any] | None = None


class WaabotContactGroup(WaabotRecord):
    """A contact group: what a ``send_type="group"`` broadcast names in ``to``."""

    title: str
    is_default: bool | None = None
    survey_id: str | None = None
    survey_sort_id: str | None = None


class WaabotMessageLog(WaabotRecord):
    """One entry of ``GET /message-log`` (fields undocumented [INF]; all kept as extras)."""

    def get(self, field: str) -> Any:
        """The value of a field as WAABOT sent it, or ``None``."""
        return self.raw().get(field)


def _parse(cls: type[R], data: object, where: str) -> R:
    return parse_model(cls, data, where)


def parse_contact(data: object, where: str = "contact") -> WaabotContact:
    """One contact object."""
    return _parse(WaabotContact, data, where)


def parse_contact_group(data: object, where: str = "contact group") -> WaabotContactGroup:
    """One contact-group object."""
    return _parse(WaabotContactGroup, data, where)


def parse_message_log(data: object, where: str = "message log") -> WaabotMessageLog:
    """One message-log entry."""
    return _parse(WaabotMessageLog, data, where)
