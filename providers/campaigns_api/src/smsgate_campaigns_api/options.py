"""``options`` of a ``campaigns_api`` provider instance.

Unknown keys are errors; the names and their validation messages are part of the
configuration users write (``[tenants.x.providers.y.options]``), so they do not change.
"""

from __future__ import annotations

from typing import Literal

import phonenumbers
from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["DEFAULT_MERGE_TOKENS", "CampaignsApiOptions"]

#: Vendor merge tokens for the three per-contact fields [INF: the legacy API's ``{Name}`` style].
DEFAULT_MERGE_TOKENS: dict[str, str] = {"name": "{Name}", "custom1": "{Custom1}", "custom2": "{Custom2}"}


class CampaignsApiOptions(BaseModel):
    """``options`` of a ``campaigns_api`` provider instance.

    * ``auth``: where the API key goes: ``bearer`` (``Authorization: Bearer``, the
      default), ``header`` (``api-key:``) or ``query`` (``?api-key=``) [DOC: all three].
      Prefer a header mode: in ``query`` mode the key is part of every URL (proxies and
      the vendor's access logs see it); smsgate's logs strip it (``HttpxLogRedactor``).
    * ``write_verbs``: ``rest`` sends update/delete as ``PUT``/``DELETE``
      ``/api/Campaigns/{id}`` (the section headings); ``documented`` sends both as
      ``POST /api/Campaigns/{id}`` as the method lines are written (update with a
      body, delete without).
    * ``number_format``: how E.164 numbers are sent: ``national`` (``07912345678``,
      as the docs' samples), ``international`` (``447912345678``), or ``auto``
      (national for numbers with the ``home_region``'s country code, +44,
      international digits otherwise).
    * ``home_region``: the vendor's home country for ``auto`` and for reading
      national numbers back (``GB``).
    * ``page_size``: ``pageSize`` asked for on listings (1-1000).
    * ``ignore_invalid_phone_numbers``: default of the create flag; ``None`` uses the
      plain ``POST /api/Campaigns`` path (the vendor's default applies).
    * ``merge_tokens``: the vendor tokens the neutral ``{name}``/``{custom1}``/
      ``{custom2}`` placeholders become.
    * ``webhook_message_id``: which callback field identifies the message:
      ``phoneNumberId``, ``Id``, or ``auto`` (``phoneNumberId`` when present).
    * ``webhook_token_param``: query parameter holding the shared secret
      (credential ``webhook_token``) in the callback URL.
    * ``webhook_token_required``: the vendor signs nothing, so a callback is only
      applied when it carries ``webhook_token`` (default). ``False`` accepts
      unauthenticated callbacks when no token is configured (only behind another
      control, e.g. an IP allow-list at the proxy).
    * ``fetch_after_create``: read the campaign back after creating it, so the
      result carries the vendor's state and recipient count.
    """

    model_config = ConfigDict(extra="forbid")

    auth: Literal["bearer", "header", "query"] = "bearer"
    write_verbs: Literal["rest", "documented"] = "rest"
    number_format: Literal["auto", "national", "international"] = "auto"
    home_region: str = "GB"
    page_size: int = Field(default=100, ge=1, le=1000)
    ignore_invalid_phone_numbers: bool | None = None
    merge_tokens: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_MERGE_TOKENS))
    webhook_message_id: Literal["auto", "phoneNumberId", "Id"] = "auto"
    webhook_token_param: str = "token"
    webhook_token_required: bool = True
    fetch_after_create: bool = True

    @field_validator("merge_tokens")
    @classmethod
    def _check_tokens(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = set(value) - set(DEFAULT_MERGE_TOKENS)
        if unknown:
            raise ValueError(f"unknown merge fields {sorted(unknown)}; expected name, custom1, custom2")
        merged = dict(DEFAULT_MERGE_TOKENS)
        merged.update(value)
        if any(not token for token in merged.values()):
            raise ValueError("merge tokens must not be empty")
        return merged

    @field_validator("home_region")
    @classmethod
    def _region(cls, value: str) -> str:
        code = value.upper()
        if code not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"unknown region {value!r}; expected an ISO 3166 alpha-2 code such as 'GB'")
        return code
