"""Statistics computed from the local message log, for every provider.

The figures match what Squad's hourly statistics report (counts per status,
average queue and delivery time) and are available for any provider because
they come from smsgate's own log: per tenant, per provider, per campaign;
bucketed by hour, day or month in the tenant's time zone.

* queue time: ``submitted_at - created_at`` (time until the provider accepted it);
* delivery time: ``delivered_at - submitted_at``; each time at least 0 (a vendor's clock behind
  ours dates a report before the message was sent: counted as at once, never as a negative time
  that would pull the average below what any message took);
* ``opted_out``: the ``rejected`` messages refused because their number had opted out (raw
  status ``opted_out``). ``invalid`` and ``absent`` are the provider's own figures
  (``include_provider=True``): 0 here;
* ``not_sent``: the ``failed`` messages that never left (raw status ``not_sent``), left out of
  ``delivery_rate`` as ``rejected`` ones are.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from smsgate.errors import ValidationError
from smsgate.models import NOT_SENT, OPTED_OUT, Stats, StatsBucket, Status
from smsgate.store.base import MessageTimes

__all__ = ["PERIODS", "compute"]

PERIODS = ("hour", "day", "month")

_FIELD = {
    Status.QUEUED: "queued",
    Status.SUBMITTED: "submitted",
    Status.SENT: "sent",
    Status.DELIVERED: "delivered",
    Status.UNDELIVERED: "undelivered",
    Status.FAILED: "failed",
    Status.REJECTED: "rejected",
    Status.EXPIRED: "expired",
    Status.UNKNOWN: "unknown",
}


def _floor(dt: datetime, period: str) -> datetime:
    if period == "hour":
        return dt.replace(minute=0, second=0, microsecond=0)
    if period == "day":
        return dt.replace(hour=0, minute=0, second=0, microsecond=0)
    return dt.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _label(dt: datetime, period: str) -> str:
    return dt.strftime({"hour": "%Y-%m-%d %H:00", "day": "%Y-%m-%d", "month": "%Y-%m"}[period])


def compute(times: Iterable[MessageTimes], *, tz: str = "UTC", period: str = "hour",
            provider: str | None = None) -> Stats:
    """Aggregate message timings into :class:`~smsgate.models.Stats` with per-period detail."""
    if period not in PERIODS:
        raise ValidationError(f"period must be one of {', '.join(PERIODS)}", field="period", value=period)
    zone = ZoneInfo(tz)
    total = Stats(provider=provider)
    buckets: dict[datetime, StatsBucket] = {}
    queue_sum = delivery_sum = 0.0
    queue_n = delivery_n = 0
    costs: dict[str, Decimal] = {}
    for m in times:
        local = m.created_at.astimezone(zone)
        start = _floor(local, period)
        bucket = buckets.get(start)
        if bucket is None:
            bucket = buckets[start] = StatsBucket(period_start=start, label=_label(start, period))
        name = _FIELD[m.status]
        opted_out = m.status is Status.REJECTED and m.raw_status == OPTED_OUT
        not_sent = m.status is Status.FAILED and m.raw_status == NOT_SENT
        for target in (total, bucket):
            target.total += 1
            setattr(target, name, getattr(target, name) + 1)
            if opted_out:  # one of the rejected ones
                target.opted_out += 1
            if not_sent:  # one of the failed ones
                target.not_sent += 1
        if m.submitted_at is not None:
            queue_sum += max(0.0, (m.submitted_at - m.created_at).total_seconds())
            queue_n += 1
            if m.delivered_at is not None:
                delivery_sum += max(0.0, (m.delivered_at - m.submitted_at).total_seconds())
                delivery_n += 1
        if m.cost is not None:
            unit = m.currency or ""
            costs[unit] = costs.get(unit, Decimal(0)) + m.cost
    total.avg_queue_seconds = queue_sum / queue_n if queue_n else None
    total.avg_delivery_seconds = delivery_sum / delivery_n if delivery_n else None
    total.costs = costs
    if len(costs) == 1:  # costs in several currencies have no meaningful sum
        ((unit, amount),) = costs.items()
        total.cost, total.currency = amount, unit or None
    total.detail = [buckets[k] for k in sorted(buckets)]
    if total.detail:
        total.period_start = total.detail[0].period_start
    return total
