"""The time zone of a region, for a tenant that names a ``default_region`` but no ``timezone``.

The countries' zones come from the IANA time zone database's ``zone.tab`` (one row per
country and zone), read from the same place :mod:`zoneinfo` reads the zones from: the
system's ``zoneinfo.TZPATH`` directories, else the ``tzdata`` package. A region has *one*
time zone when it has exactly one row there, or when all its zones keep the same clock
from today over the next 400 days (Germany's ``Europe/Berlin`` and ``Europe/Busingen``,
Argentina's twelve zones); then its first-listed zone is the one. Otherwise (the US,
Russia, Brazil, Spain with the Canary Islands...) or when the region has no row, the
region says nothing about local time and :func:`region_zone` returns ``None``.
"""

from __future__ import annotations

import functools
import importlib.resources
import zoneinfo
from datetime import datetime, time, timedelta, timezone
from pathlib import Path
from typing import Literal

from smsgate.errors import shown_value

__all__ = [
    "QUIET_HOURS_OFF",
    "campaign_quiet_hours",
    "check_quiet_hours",
    "check_timezone",
    "parse_quiet_hours",
    "region_zone",
    "region_zones",
]

#: What a command line writes for "no quiet hours" (``--quiet-hours off``), case-insensitively;
#: :func:`parse_quiet_hours` reads them as ``False``, the library's value for it.
QUIET_HOURS_OFF = ("off", "none")

#: how far ahead the zones of one region must keep the same clock to count as one
_HORIZON = timedelta(days=400)


@functools.cache
def _zone_table() -> dict[str, tuple[str, ...]]:
    """ISO region -> its zones, in ``zone.tab`` order (empty when no ``zone.tab`` is found)."""
    text = None
    for folder in zoneinfo.TZPATH:
        path = Path(folder) / "zone.tab"
        if path.is_file():
            text = path.read_text(encoding="utf-8")
            break
    if text is None:
        try:
            text = importlib.resources.files("tzdata").joinpath("zoneinfo").joinpath("zone.tab").read_text(encoding="utf-8")
        except (ModuleNotFoundError, FileNotFoundError):
            return {}
    table: dict[str, list[str]] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) >= 3:
            table.setdefault(fields[0].strip().upper(), []).append(fields[2].strip())
    return {region: tuple(zones) for region, zones in table.items()}


def region_zones(region: str) -> tuple[str, ...]:
    """The IANA zones of ISO region ``region`` (``"US"`` -> 29 zones), ``()`` if none is known."""
    return _zone_table().get(region.upper(), ())


@functools.cache
def region_zone(region: str, today: datetime | None = None) -> str | None:
    """The one time zone of ``region`` (``"NG"`` -> ``"Africa/Lagos"``), or ``None`` when the
    region has several zones with different clocks, or none known.

    ``today`` (UTC, default now) starts the 400 days over which several zones of one region
    must agree hour by hour to count as one.
    """
    names = [name for name in region_zones(region) if _loadable(name)]
    if not names:
        return None
    if len(names) == 1:
        return names[0]
    start = (today or datetime.now(timezone.utc)).replace(minute=0, second=0, microsecond=0)
    if len({start.astimezone(zoneinfo.ZoneInfo(name)).utcoffset() for name in names}) > 1:
        return None  # different clocks already now (the US, Russia...): no need to look ahead
    hours = [start + timedelta(hours=h) for h in range(int(_HORIZON.total_seconds()) // 3600)]
    first = [t.astimezone(zoneinfo.ZoneInfo(names[0])).utcoffset() for t in hours]
    for name in names[1:]:
        zone = zoneinfo.ZoneInfo(name)
        if any(t.astimezone(zone).utcoffset() != offset for t, offset in zip(hours, first, strict=True)):
            return None
    return names[0]


def check_timezone(name: str) -> str:
    """``name`` if it is an IANA time zone (``Africa/Lagos``); else a ``ValueError`` saying
    what one looks like, with the zone it likely meant (``Lagos``: ``Africa/Lagos``) or, for a
    UTC offset (``+01:00``), that an offset is not a zone (it knows no summer time)."""
    if _loadable(name):
        return name
    if name.strip().upper().startswith(("+", "-", "UTC+", "UTC-", "GMT+", "GMT-")):
        hint = "; a UTC offset is not a time zone (it knows no summer time): name the place's zone"
    else:
        wanted = name.strip().replace(" ", "_").casefold()
        near = sorted(z for z in zoneinfo.available_timezones()
                      if z.casefold() == wanted or z.rpartition("/")[2].casefold() == wanted)
        hint = f"; did you mean {near[0]!r}?" if near else ""
    raise ValueError(f"{shown_value(name)} is not an IANA time zone name such as 'Africa/Lagos' or 'Europe/London'"
                     f"{hint}")


def _loadable(name: str) -> bool:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True


def check_quiet_hours(window: object, *, others: str = "", written: str | None = None,
                      example: str = "['21:00', '08:00']", unset: str = "no quiet_hours") -> tuple[str, str]:
    """Refuse (``ValueError`` saying what to give) quiet hours that are not a pair of ``HH:MM``
    times, start then end, or whose start is their end (quiet never, or always?); return the
    pair as a tuple. The one rule for a tenant's ``quiet_hours``, a campaign's and
    ``--quiet-hours`` (``others``: what else the caller takes, said when ``window`` is no pair at
    all; ``written``, ``example`` and ``unset``: the window as the user wrote it, a good one and
    how to have none, in the caller's own syntax)."""
    if isinstance(window, (str, bool)) or not isinstance(window, (list, tuple)) or len(window) != 2:
        raise ValueError(f"a pair of times (start, end) in the tenant's time zone such as ['21:00', '08:00']"
                         f"{others}, not {window!r}")
    clocks = []
    for value in window:
        try:
            hh, mm = str(value).split(":")
            clocks.append(time(int(hh), int(mm)))
        except ValueError:
            shown = shown_value(value)
            raise ValueError(f"quiet hours {shown}: expected HH:MM") from None
    if clocks[0] == clocks[1]:
        shown = written if written is not None else repr(list(window))
        raise ValueError(f"{shown} start and end at the same time: give the window to keep quiet, "
                         f"e.g. {example}, or {unset}")
    return (str(window[0]), str(window[1]))


def campaign_quiet_hours(window: object, tenant: tuple[str, str] | None) -> tuple[str, str] | None:
    """The quiet hours a campaign keeps, from its ``quiet_hours`` argument and its tenant's:
    ``None`` inherits the tenant's (``tenant``, which may be none), ``False`` means none for
    this campaign even when its tenant has some, and a pair of ``HH:MM`` times is its own
    window (checked by :func:`check_quiet_hours`). Anything else (``True``, one text, a
    malformed pair) is a ``ValueError`` saying what to give. The one rule for
    ``campaigns.create(quiet_hours=...)`` and ``smsgate campaign create --quiet-hours``."""
    if window is None:
        return tenant
    if window is False:
        return None
    return check_quiet_hours(window, others=" (None: the tenant's quiet hours; False: none for this campaign)",
                             unset="quiet_hours=False for none")


def parse_quiet_hours(text: str) -> tuple[str, str] | Literal[False]:
    """Quiet hours written as one text, ``"21:00-08:00"`` (start-end, as a command line
    takes them), as the pair :func:`check_quiet_hours` accepts, or ``"off"`` (or ``"none"``,
    :data:`QUIET_HOURS_OFF`) as ``False``: no quiet hours (:func:`campaign_quiet_hours`);
    ``ValueError`` saying what to give for anything else."""
    if text.strip().casefold() in QUIET_HOURS_OFF:
        return False
    start, dash, end = text.partition("-")
    if not dash or "-" in end:
        raise ValueError(f"START-END in the tenant's time zone such as 21:00-08:00, or off for none, not {text!r}")
    window = (start.strip(), end.strip())
    check_quiet_hours(window, written=repr(text), example="21:00-08:00", unset="off for none")
    return window
