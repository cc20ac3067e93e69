"""Errors specific to the Dynamic Messaging Campaigns API adapter.

::

    smsgate.errors.RequestRejected
    └── CampaignRejected            the vendor refused a campaign (400 ProblemDetails);
                                    .contacts lists each bad contact (ContactError),
                                    .field_errors the other field messages
    smsgate.errors.ValidationError
    └── WebhookRejected             a delivery-report callback is not a Dynamic
                                    Messaging webhook body
    smsgate.errors.AuthFailed
    └── WebhookTokenRejected        a delivery-report callback failed the token check
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from smsgate.errors import AuthFailed, RequestRejected, ValidationError

__all__ = ["CampaignRejected", "ContactError", "WebhookRejected", "WebhookTokenRejected"]


@dataclass(frozen=True)
class ContactError:
    """Why the vendor refused one contact of a campaign.

    ``index`` is the contact's position in the campaign (0-based, as sent),
    ``phone`` the number as the campaign held it (E.164 when it was one),
    ``sent_as`` the string sent to the vendor, ``field`` the vendor's field name
    (``phoneNumber``, ``contactGroupId`` ...) and ``reason`` the vendor's message(s).
    """

    index: int
    phone: str | None
    reason: str
    field: str | None = None
    sent_as: str | None = None

    def __str__(self) -> str:
        what = f"contact {self.index}"
        if self.phone:
            what += f" ({self.phone})"
        if self.field:
            what += f" {self.field}"
        return f"{what}: {self.reason}"


class CampaignRejected(RequestRejected):
    """The vendor refused a campaign; ``contacts`` says which contacts and why.

    Raised by ``create_campaign`` / ``update_campaign`` when the vendor answers
    400 with validation errors (RFC 7807 ProblemDetails ``errors``).
    """

    def __init__(
        self,
        message: str,
        *,
        contacts: list[ContactError] | None = None,
        field_errors: dict[str, list[str]] | None = None,
        **kw: Any,
    ) -> None:
        self.contacts: list[ContactError] = list(contacts or [])
        self.field_errors: dict[str, list[str]] = dict(field_errors or {})
        super().__init__(message, **kw)


class WebhookRejected(ValidationError):
    """A webhook request was refused: a body that is not a DLR."""


class WebhookTokenRejected(AuthFailed):
    """A webhook request without the configured ``webhook_token`` (or with a wrong one)."""
