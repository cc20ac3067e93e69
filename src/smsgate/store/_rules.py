"""How an update mutates a stored message row, shared by every store.

Pure functions, no I/O: :class:`~smsgate.store.memory.MemoryStore` applies them to
its records, :class:`~smsgate.store.sqlite.SQLiteStore` and
:class:`~smsgate.store.postgres.PostgresStore` to rows they have loaded, so all
behave identically. The status decision itself is :func:`smsgate.lifecycle.accepts`
(the one transition rule; the PostgreSQL store applies delivery reports inside the
database with its SQL form, :func:`smsgate.lifecycle.accepts_sql`); the store
test-suite checks that the result is the same.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from decimal import Decimal
from typing import Protocol

from smsgate.lifecycle import Status, rank_sql
from smsgate.lifecycle import accepts as accepts_status
from smsgate.lifecycle import accepts_sql as accepts_status_sql
from smsgate.models import DeliveryReport, MessageRecord
from smsgate.store.base import MessageUpdate, NewMessage

__all__ = [
    "MutableMessage",
    "accepts_status",
    "accepts_status_sql",
    "apply_report",
    "apply_update",
    "rank_sql",
    "report_rounds",
    "report_to_update",
    "stale_report",
    "stored_cost",
    "to_utc",
    "written_provider_keys",
]

_SUBMITTED_RANK = Status.SUBMITTED.rank


def to_utc(value: datetime) -> datetime:
    """``value`` as a timezone-aware UTC datetime (a naive value is taken to be UTC)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    if value.tzinfo is timezone.utc:
        return value
    return value.astimezone(timezone.utc)


def report_rounds(reports: Sequence[DeliveryReport]) -> list[list[int]]:
    """Positions of the reports that name a provider message id, split into rounds:
    the first report of each ``(provider, provider_message_id)`` in round 0, the
    second in round 1, and so on, each round in batch order.

    A store that applies a round as one set-based statement (where each message
    may appear once) applies the rounds in order, each seeing the previous one's
    writes: the same result as applying the reports one by one.
    """
    rounds: list[list[int]] = []
    seen: dict[tuple[str, str], int] = {}
    for i, report in enumerate(reports):
        pmid = report.provider_message_id
        if pmid is None:
            continue
        key = (report.provider, pmid)
        k = seen.get(key, 0)
        seen[key] = k + 1
        if k == len(rounds):
            rounds.append([])
        rounds[k].append(i)
    return rounds


class MutableMessage(Protocol):
    """The mutable part of a stored message (a ``MessageRecord`` or a loaded row)."""

    status: Status
    raw_status: str | None
    provider: str | None
    provider_message_id: str | None
    batch_id: str | None
    segments: int | None
    cost: Decimal | None
    currency: str | None
    error: str | None
    updated_at: datetime
    submitted_at: datetime | None
    delivered_at: datetime | None
    sender: str | None


def apply_update(row: MutableMessage, update: MessageUpdate) -> tuple[bool, bool]:
    """Apply ``update`` to ``row`` in place; returns ``(status_changed, row_modified)``.

    On an accepted status change the status and raw status are replaced (the raw
    status by the update's, even ``None``: it describes the new status),
    ``submitted_at`` is set on the first move to submitted or later and
    ``delivered_at`` on delivered. Non-status fields that are not ``None`` are
    written whether or not the status changed. ``updated_at`` becomes the update's
    time if the row was modified and that time is later.
    """
    return _apply(
        row,
        update.status,
        update.raw_status,
        to_utc(update.at),
        update.provider,
        update.provider_message_id,
        update.batch_id,
        update.segments,
        update.cost,
        update.currency,
        update.error,
        update.sender,
    )


def stale_report(row: MutableMessage, report: DeliveryReport, accepted: bool | None = None) -> bool:
    """Whether ``report`` is behind ``row``'s status: refused by the status rule and not of the
    row's current status (``sent`` after ``delivered``, ``failed`` after ``delivered``).

    Such a report (a vendor retrying an old callback, a replay of a signed one) tells of an
    earlier state: none of its fields (cost, segments, error, batch id) is written either, so
    it cannot put a delivered message's cost back to an estimate or give it an error.
    ``accepted``: the status rule's answer for this report, when the caller has it already.
    """
    if report.status is row.status:
        return False
    if accepted is None:
        accepted = accepts_status(row.status, row.raw_status, report.status, report.raw_status)
    return not accepted


def apply_report(row: MutableMessage, report: DeliveryReport) -> tuple[bool, bool]:
    """``apply_update(row, report_to_update(..., report))`` without building the update, and
    nothing written for a report behind the row's status (:func:`stale_report`).

    (The delivery-report hot path of the SQL stores.)
    """
    accepted = accepts_status(row.status, row.raw_status, report.status, report.raw_status)
    if stale_report(row, report, accepted):
        return False, False
    return _apply(
        row,
        report.status,
        report.raw_status,
        to_utc(report.occurred_at),
        None,
        None,
        report.batch_id,
        report.segments,
        report.cost,
        None,
        report.error_code,
        accepted=accepted,
    )


def stored_cost(cost: Decimal | None) -> Decimal | None:
    """``cost`` as every store gives it back: its value and its scale (``1.50`` stays ``1.50``),
    in the form PostgreSQL's ``numeric`` keeps, which has no negative zero and no positive
    exponent: ``-0`` / ``-0.00`` come back as ``0`` / ``0.00``, ``1E+2`` as ``100`` (equal
    values; :class:`~decimal.Decimal` compares them equal). Memory and SQLite apply it when they
    store (SQLite also when it reads a cost an earlier version stored)."""
    if cost is None or not cost.is_finite():
        return cost
    exponent = cost.as_tuple().exponent
    if isinstance(exponent, int) and exponent > 0:
        cost = Decimal(int(cost))  # exact: an integral value (no context rounding)
    if cost.is_zero() and cost.is_signed():
        cost = cost.copy_abs()
    return cost


def _apply(
    row: MutableMessage,
    status: Status,
    raw_status: str | None,
    at: datetime,
    provider: str | None,
    provider_message_id: str | None,
    batch_id: str | None,
    segments: int | None,
    cost: Decimal | None,
    currency: str | None,
    error: str | None,
    sender: str | None = None,
    accepted: bool | None = None,
) -> tuple[bool, bool]:
    # ``accepted``: the status rule's answer when the caller has it already
    changed = accepts_status(row.status, row.raw_status, status, raw_status) if accepted is None else accepted
    modified = changed
    if changed:
        row.status = status
        row.raw_status = raw_status
        if row.submitted_at is None and status.rank >= _SUBMITTED_RANK:
            row.submitted_at = at
        if row.delivered_at is None and status is Status.DELIVERED:
            row.delivered_at = at
    if provider is not None and provider != row.provider:
        row.provider = provider
        modified = True
    if provider_message_id is not None and provider_message_id != row.provider_message_id:
        row.provider_message_id = provider_message_id
        modified = True
    if batch_id is not None and batch_id != row.batch_id:
        row.batch_id = batch_id
        modified = True
    if segments is not None and segments != row.segments:
        row.segments = segments
        modified = True
    cost = stored_cost(cost)
    if cost is not None and (row.cost is None or str(cost) != str(row.cost)):
        row.cost = cost
        modified = True
    if currency is not None and currency != row.currency:
        row.currency = currency
        modified = True
    if error is not None and error != row.error:
        row.error = error
        modified = True
    if sender is not None and sender != row.sender:
        row.sender = sender
        modified = True
    if modified and at > row.updated_at:
        row.updated_at = at
    return changed, modified


def report_to_update(message_id: str, report: DeliveryReport) -> MessageUpdate:
    """The :class:`MessageUpdate` a matched delivery report stands for.

    Reports carry no provider ids (they were matched on them) and no currency.
    """
    return MessageUpdate(
        message_id=message_id,
        status=report.status,
        at=report.occurred_at,
        raw_status=report.raw_status,
        source="report",
        batch_id=report.batch_id,
        segments=report.segments,
        cost=report.cost,
        error=report.error_code,
    )


def written_provider_keys(
    inserts: Iterable[MessageRecord | NewMessage], updates: Iterable[MessageUpdate]
) -> set[tuple[str, str]]:
    """The ``(provider, provider message id)`` pairs a log write gives messages: the
    keys whose orphan reports (see :meth:`~smsgate.store.base.Store.apply_reports`) it adopts."""
    keys = {(r.provider, r.provider_message_id) for r in inserts
            if r.provider is not None and r.provider_message_id is not None}
    keys.update((u.provider, u.provider_message_id) for u in updates
                if u.provider is not None and u.provider_message_id is not None)
    return keys


def changed_ids(updates: Sequence[MessageUpdate], changed: Sequence[bool]) -> set[str]:
    """The ids of the messages whose status ``updates`` changed (``changed``: per update, as
    :meth:`~smsgate.store.base.Store.update_messages` returns): a log write's
    :attr:`~smsgate.store.base.LogResult.changed`."""
    return {u.message_id for u, c in zip(updates, changed, strict=True) if c}
