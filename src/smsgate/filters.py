"""The filters of the message log and of statistics, read one way for every store.

``tenant.messages(...)`` and ``tenant.stats(...)`` (sync and async) check them here,
before any store sees them:

* ``status``: a :class:`~smsgate.models.Status` or its value (``"sent"``, any case);
  anything else is a :class:`~smsgate.errors.ValidationError` listing the statuses;
* ``since`` / ``until``: a :class:`~datetime.datetime` (a naive one is UTC), a
  :class:`~datetime.timedelta` (that long ago) or a duration such as ``"90s"``,
  ``"5m"``, ``"1h"``, ``"90d"`` (that long ago; :func:`parse_duration`, the CLI's too);
* ``limit``: a whole number >= 0; ``to``, ``campaign_id``, ``before``: text a store can hold
  (:func:`smsgate.core.policy.check_id`: no NUL, no lone surrogate).

``tenant.inbound(...)`` checks its own here too (:func:`inbound_filters`): ``since`` read as
above, ``action`` one of :data:`~smsgate.core.inbound.ACTIONS`' values.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from smsgate.core.inbound import ACTIONS
from smsgate.core.policy import check_id
from smsgate.errors import InvalidPhoneNumber, ValidationError
from smsgate.lifecycle import Status
from smsgate.models import utcnow
from smsgate.store.base import MAX_COUNT, check_count

__all__ = ["MAX_COUNT", "MAX_DURATION", "MESSAGE_FILTERS", "check_count", "check_number_filter", "check_page", "inbound_filters", "message_filters", "parse_duration", "point_in_time", "status_filter"]

_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*", re.IGNORECASE)
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}

#: The longest duration argument (``older_than``, ``max_age``, ``backoff``...), in seconds: 1,000
#: years, far past anything stored, and short enough that "that long ago" is a date.
MAX_DURATION = 1000 * 365.25 * 86400

#: The filters ``tenant.messages()`` takes.
MESSAGE_FILTERS = ("status", "to", "campaign_id", "limit", "before", "since")


def parse_duration(text: str, field: str = "duration", location: str | None = None, *, bounded: bool = False) -> float:
    """Seconds in a duration such as ``90``, ``30s``, ``5m``, ``2h``, ``1d`` (a number
    without a unit is seconds); :class:`~smsgate.errors.ValidationError` naming ``field`` otherwise.
    ``bounded``: at most :data:`MAX_DURATION` (a duration argument's bound; a ``since`` is bounded
    by the calendar instead, :func:`point_in_time`)."""
    match = _DURATION.fullmatch(text)
    if match is None:
        raise ValidationError(
            f"not a duration: {text!r} (expected e.g. 30s, 5m, 2h, 1d)", field=field, location=location
        )
    seconds = float(match.group(1)) * _UNIT[(match.group(2) or "s").lower()]
    if not seconds < float("inf") or (bounded and seconds > MAX_DURATION):
        raise ValidationError(f"duration too long: {text!r}" + (" (at most 1,000 years)" if bounded else ""),
                              field=field, location=location)
    return seconds


def check_page(limit: object, before: object = None) -> None:
    """Refuse a page's ``limit`` and keyset ``before`` (an id; ``None``: from the newest) that
    :func:`check_count` refuses (``tenant.inbound()``, ``tenant.orphan_reports()``)."""
    check_count(limit, "limit")
    if before is not None:
        check_count(before, "before")


def status_filter(value: object, field: str = "status") -> Status | None:
    """``value`` as a :class:`Status` (``None`` stays ``None``): a status or its value, any case."""
    if value is None or isinstance(value, Status):
        return value
    if isinstance(value, str):
        try:
            return Status(value.strip().lower())
        except ValueError:
            pass
    valid = ", ".join(s.value for s in Status)
    raise ValidationError(
        f"unknown status {value!r}; expected a smsgate.Status or one of: {valid}", field=field
    )


def point_in_time(
    value: object, field: str, location: str | None = None, *, now: Callable[[], datetime] | None = None
) -> datetime | None:
    """The moment ``value`` names (``None`` stays ``None``): a datetime, or a timedelta or
    duration string (``"1h"``, ``"90d"``) meaning that long before now."""
    if value is None:
        return None
    if isinstance(value, datetime):
        # a naive one is UTC (as every store reads it): aware, so that it compares with the other bound
        return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)
    if isinstance(value, timedelta):
        ago = value.total_seconds()
    elif isinstance(value, str):
        ago = parse_duration(value, field, location)
    else:
        raise ValidationError(
            f"expected a datetime, a timedelta or a duration such as '1h' or '90d', "
            f"got {type(value).__name__}",
            field=field,
            location=location,
        )
    if ago < 0:
        raise ValidationError(
            f"a duration ago must not be negative, not {value!r}", field=field, location=location
        )
    try:
        return (now or utcnow)() - timedelta(seconds=ago)
    except OverflowError:
        raise ValidationError(f"duration too long: {value!r}", field=field, location=location) from None


def message_filters(filters: Mapping[str, Any], normalize: Callable[[str], str]) -> dict[str, Any]:
    """``filters`` of ``tenant.messages()`` checked and in the store's terms (``to`` read by
    ``normalize``); a :class:`ValidationError` naming the first bad one."""
    where = "messages"
    unknown = [k for k in filters if k not in MESSAGE_FILTERS]
    if unknown:
        raise ValidationError(
            f"unknown filter {unknown[0]!r}; the filters are: {', '.join(MESSAGE_FILTERS)}",
            field=unknown[0],
            location=where,
        )
    out = dict(filters)
    if "status" in out:
        out["status"] = status_filter(out["status"])
    if "since" in out:
        out["since"] = point_in_time(out["since"], "since", where)
    if "limit" in out:
        check_count(out["limit"], "limit", where)
    for name in ("campaign_id", "before"):
        if out.get(name) is not None:
            check_id(name, out[name], where)
    if out.get("to") is not None:
        check_number_filter(out["to"], "to", where)
        try:
            out["to"] = normalize(out["to"])
        except InvalidPhoneNumber as exc:  # named as the filter, not as the phone reader's argument
            raise InvalidPhoneNumber(exc.reason, field="to", value=exc.value, location=where) from None
    return out


def inbound_filters(since: object, action: object) -> tuple[datetime | None, str | None]:
    """``tenant.inbound()``'s ``since`` (as :func:`point_in_time` reads it: a datetime, a
    timedelta or a duration such as ``"1h"``) and ``action`` (``optout``, ``optin``, ``help``,
    ``none``, any case) in the store's terms; a :class:`ValidationError` naming the bad one."""
    where = "inbound"
    moment = point_in_time(since, "since", where)
    if action is None:
        return moment, None
    actions = sorted(set(ACTIONS.values()))
    word = action.strip().lower() if isinstance(action, str) else None
    if word not in actions:
        raise ValidationError(f"unknown action {action!r}; expected one of: {', '.join(actions)}", field="action",
                              location=where)
    return moment, word


def check_number_filter(value: object, field: str, location: str | None = None) -> None:
    """Refuse a number filter (``messages(to=...)``, ``inbound(from_number=...)``) that is not a
    string, or is blank: an empty form field or an int would otherwise match every message or
    none, without a word. ``None`` (no filter) is fine."""
    if value is None:
        return
    if not isinstance(value, str):
        raise ValidationError(f"expected a string, got {type(value).__name__}", field=field, location=location)
    if not value.strip():
        raise ValidationError(f"is blank ({value!r}): give a number, or leave the filter out (None)",
                              field=field, location=location)
    check_id(field, value, location)  # no NUL or lone surrogate: a store's error otherwise
