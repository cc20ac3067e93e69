"""Vendor enums, status mappings and tolerant readers for Dynamic Messaging payloads.

Pure functions shared by the adapter and the emulator (no I/O, no Starlette).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from smsgate.models import CampaignStatus, Status

__all__ = [
    "CAMPAIGN_STATUS_MAP",
    "SMS_STATUS_MAP",
    "DMCampaignStatus",
    "DMSmsStatus",
    "ci_get",
    "format_datetime",
    "neutral_campaign_status",
    "neutral_sms_status",
    "parse_datetime",
    "to_decimal",
    "to_int",
]


class DMSmsStatus(enum.IntEnum):
    """SMS / delivery-report status codes (``status``, webhook ``statusCode``) [DOC]."""

    SENT = 0
    DELIVERED = 1
    ACCEPTED = 2
    EXPIRED = 3
    DELETED = 4
    UNDELIVERABLE = 5
    UNKNOWN = 6
    REJECTED = 7
    FAILED = 8  # "Other" on the current page; "Failed" on an older one
    FAILED_ROUTE_INVALID = 9  # "Other" on the current page; "Failed Route Invalid" on an older one
    OTHER = 10
    REJECTED_INVALID_RECIPIENT = 34
    FAILED_INSUFFICIENT_CREDIT = 1000


class DMCampaignStatus(enum.IntEnum):
    """Campaign status codes (published on the Voice "Value Types" page) [DOC, INF for SMS]."""

    PENDING = 0
    SENDING = 1
    SUBMITTED = 2
    PAUSED = 3
    CANCELLED = 4
    COMPLETED = 5


#: Vendor SMS status code -> neutral status. Unlisted codes map to ``unknown``.
SMS_STATUS_MAP: Final[Mapping[int, Status]] = {
    DMSmsStatus.SENT: Status.SENT,
    DMSmsStatus.DELIVERED: Status.DELIVERED,
    DMSmsStatus.ACCEPTED: Status.SUBMITTED,
    DMSmsStatus.EXPIRED: Status.EXPIRED,
    DMSmsStatus.DELETED: Status.FAILED,
    DMSmsStatus.UNDELIVERABLE: Status.UNDELIVERED,
    DMSmsStatus.UNKNOWN: Status.UNKNOWN,
    DMSmsStatus.REJECTED: Status.REJECTED,
    DMSmsStatus.FAILED: Status.FAILED,
    DMSmsStatus.FAILED_ROUTE_INVALID: Status.FAILED,
    DMSmsStatus.OTHER: Status.UNKNOWN,
    DMSmsStatus.REJECTED_INVALID_RECIPIENT: Status.REJECTED,
    DMSmsStatus.FAILED_INSUFFICIENT_CREDIT: Status.FAILED,
}

#: Vendor campaign status code -> neutral campaign state. Unlisted codes map to ``unknown``.
CAMPAIGN_STATUS_MAP: Final[Mapping[int, CampaignStatus]] = {
    DMCampaignStatus.PENDING: CampaignStatus.SCHEDULED,
    DMCampaignStatus.SENDING: CampaignStatus.RUNNING,
    DMCampaignStatus.SUBMITTED: CampaignStatus.RUNNING,
    DMCampaignStatus.PAUSED: CampaignStatus.PAUSED,
    DMCampaignStatus.CANCELLED: CampaignStatus.CANCELLED,
    DMCampaignStatus.COMPLETED: CampaignStatus.COMPLETED,
}


def to_int(value: Any) -> int | None:
    """An int from an int, a numeric string (``"1"``, ``" 1 "``) or an integral float; else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"[+-]?\d{1,18}", text):
            return int(text)
    return None


def to_decimal(value: Any) -> Decimal | None:
    """A Decimal from a number or numeric string; None otherwise."""
    if value is None or isinstance(value, bool):
        return None
    try:
        result = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        return None
    return result if result.is_finite() else None


def neutral_sms_status(code: Any) -> tuple[Status, str | None]:
    """Map a vendor SMS status (int or numeric string) to ``(neutral, raw)``; total."""
    number = to_int(code)
    if number is None:
        return Status.UNKNOWN, None if code is None else str(code)
    return SMS_STATUS_MAP.get(number, Status.UNKNOWN), str(number)


def neutral_campaign_status(code: Any) -> tuple[CampaignStatus, str | None]:
    """Map a vendor campaign status to ``(neutral, raw)``; total."""
    number = to_int(code)
    if number is None:
        return CampaignStatus.UNKNOWN, None if code is None else str(code)
    return CAMPAIGN_STATUS_MAP.get(number, CampaignStatus.UNKNOWN), str(number)


def ci_get(data: Mapping[str, Any], key: str, default: Any = None) -> Any:
    """``data[key]`` with the key matched case-insensitively (exact match first)."""
    if key in data:
        return data[key]
    lowered = key.lower()
    for k, v in data.items():
        if isinstance(k, str) and k.lower() == lowered:
            return v
    return default


_DT_RE: Final = re.compile(
    r"\s*(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?"
    r"\s*(Z|[+-]\d{2}:?\d{2})?\s*",
    re.IGNORECASE,
)


def parse_datetime(value: Any) -> datetime | None:
    """Parse the vendor's ISO-8601 timestamps (``Z``, offsets, 0-9 fraction digits).

    A timestamp without offset is taken as UTC [INF]. Returns None for anything
    that is not a valid date-time (the docs' own sample ``2023-01-91`` included).
    """
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if not isinstance(value, str):
        return None
    match = _DT_RE.fullmatch(value)
    if not match:
        return None
    year, month, day, hour, minute, second, frac, offset = match.groups()
    micro = int((frac or "0")[:6].ljust(6, "0"))
    try:
        tz = timezone.utc
        if offset and offset.upper() != "Z":
            sign = 1 if offset[0] == "+" else -1
            digits = offset[1:].replace(":", "")
            tz = timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))
        return datetime(
            int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0), micro, tz
        ).astimezone(timezone.utc)
    except ValueError:
        return None


def format_datetime(value: datetime) -> str:
    """``2023-06-27T03:04:01.374Z`` (UTC, milliseconds); a naive value is taken as UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    value = value.astimezone(timezone.utc)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
