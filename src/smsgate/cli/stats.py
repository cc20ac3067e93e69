"""``smsgate stats``: a tenant's statistics; :func:`print_stats` also serves ``smsgate campaign stats``."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from smsgate.cli._common import (
    ConfigOpt,
    JsonOpt,
    TenantOpt,
    app,
    compact_table,
    console,
    flags_named,
    open_tenant,
)
from smsgate.errors import ValidationError
from smsgate.filters import point_in_time
from smsgate.stats import PERIODS

__all__ = ["check_period", "print_stats", "stats"]


@app.command()
def stats(config: ConfigOpt = None, tenant: TenantOpt = None,
          period: Annotated[str, typer.Option(help="hour, day or month.")] = "day",
          provider: Annotated[str | None, typer.Option(help="One provider instance.")] = None,
          since: Annotated[str | None, typer.Option(
              help="Only messages logged in this last while (30s, 5m, 2h, 1d).")] = None,
          as_json: JsonOpt = False) -> None:
    """Statistics of a tenant's messages, from the local log."""
    check_period(period)
    if since is not None:  # its error names the flag, not the library's field
        point_in_time(since, "--since")  # too long a while ago too (99999999d)
    gw, t = open_tenant(config, tenant, read_only=True)
    with gw, flags_named({"provider": "--provider"}):
        # a provider the tenant never had (a typo) is an error of tenant.stats(), not all zeros
        result = t.stats(period, provider=provider, since=since)
    print_stats(result, as_json)


def check_period(period: str) -> None:
    """``--period`` is one the statistics bucket by, else an error naming the flag (before the
    store is opened)."""
    if period not in PERIODS:
        raise ValidationError(f"{period!r} is not a period: {', '.join(PERIODS[:-1])} or {PERIODS[-1]}",
                              field="--period")


def print_stats(stats: Any, as_json: bool) -> None:
    """Print :class:`~smsgate.stats.Stats` as JSON, or as a summary line and a table per period,
    each message status counted under its own name (``failed`` adds ``undelivered``)."""
    if as_json:
        print(stats.model_dump_json())
        return
    rate = stats.delivery_rate
    # each status as itself, in lifecycle order: "sent" (handed on, no delivery report yet) was
    # counted as "pending" with queued and submitted, against 'campaign status' saying "sent"
    console.print(f"total {stats.total}: queued {stats.queued}, submitted {stats.submitted}, sent {stats.sent}, "
                  f"delivered {stats.delivered}, failed {stats.failed + stats.undelivered}"
                  + (f" ({stats.not_sent} never sent)" if stats.not_sent else "") + ", "
                  f"rejected {stats.rejected}, expired {stats.expired}, unknown {stats.unknown}; "
                  f"delivery rate {'-' if rate is None else f'{rate:.1%}'}; "
                  f"avg queue {_seconds(stats.avg_queue_seconds)}, avg delivery {_seconds(stats.avg_delivery_seconds)}"
                  + _costs(stats.costs))
    table = compact_table("period", "total", "queued", "submitted", "sent", "delivered", "failed", "rejected",
                          "expired", "unknown")
    for b in stats.detail:
        table.add_row(b.label, str(b.total), str(b.queued), str(b.submitted), str(b.sent), str(b.delivered),
                      str(b.failed + b.undelivered), str(b.rejected), str(b.expired), str(b.unknown))
    console.print(table)


def _costs(costs: dict[str, Any]) -> str:
    """``; cost 10.82 NGN, 1 credits``: the total in each currency, a cost given without one last
    (``0.035 (no currency)``); nothing when no cost was logged."""
    if not costs:
        return ""
    named = [f"{amount} {unit}" for unit, amount in sorted(costs.items()) if unit]
    bare = [f"{costs['']} (no currency)"] if "" in costs else []
    return "; cost " + ", ".join(named + bare)


def _seconds(value: float | None) -> str:
    """An average in seconds, ``-`` when there is none (nothing queued, nothing delivered yet)."""
    return "-" if value is None else f"{value:.2f}s"
