"""An in-process store: plain dicts keyed by tenant, guarded by one lock.

The reference behaviour for the store contract (tests run every store against the
same suite) and a convenient store for tests and demos. Nothing is persisted.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from smsgate.errors import NotFound
from smsgate.models import DeliveryReport, MessageRecord, OptOut, Status, StatusEvent
from smsgate.store._rules import apply_update, report_to_update, to_utc
from smsgate.store.base import MessageUpdate, Store

__all__ = ["MemoryStore"]

_ProviderKey = tuple[str, str]


@dataclass
class _Row:
    seq: int
    record: MessageRecord


@dataclass
class _Tenant:
    messages: dict[str, _Row] = field(default_factory=dict)
    by_provider_id: dict[_ProviderKey, set[str]] = field(default_factory=dict)
    optouts: dict[str, OptOut] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)


def _normalised(record: MessageRecord) -> MessageRecord:
    """A private deep copy of ``record`` with every datetime in UTC."""
    copy = record.model_copy(deep=True)
    copy.created_at = to_utc(copy.created_at)
    copy.updated_at = to_utc(copy.updated_at)
    if copy.submitted_at is not None:
        copy.submitted_at = to_utc(copy.submitted_at)
    if copy.delivered_at is not None:
        copy.delivered_at = to_utc(copy.delivered_at)
    for event in copy.history:
        event.at = to_utc(event.at)
    return copy


def _without_history(record: MessageRecord) -> MessageRecord:
    return record.model_copy(update={"history": []}, deep=True)


class MemoryStore(Store):
    """A :class:`~smsgate.store.base.Store` held in memory (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._tenants: dict[str, _Tenant] = {}
        self._seq = 0
        self._version = 0

    # ------------------------------------------------------------- lifecycle
    def migrate(self) -> None:
        with self._lock:
            self._version = self.SCHEMA_VERSION

    def schema_version(self) -> int:
        with self._lock:
            return self._version

    def close(self) -> None:
        """Nothing to release; the data stays readable."""

    # ------------------------------------------------------------- internals
    def _tenant(self, tenant: str) -> _Tenant:
        data = self._tenants.get(tenant)
        if data is None:
            data = self._tenants[tenant] = _Tenant()
        return data

    def _peek(self, tenant: str) -> _Tenant | None:
        return self._tenants.get(tenant)

    @staticmethod
    def _index(data: _Tenant, record: MessageRecord) -> None:
        if record.provider is not None and record.provider_message_id is not None:
            key = (record.provider, record.provider_message_id)
            data.by_provider_id.setdefault(key, set()).add(record.message_id)

    @staticmethod
    def _unindex(data: _Tenant, record: MessageRecord) -> None:
        if record.provider is not None and record.provider_message_id is not None:
            key = (record.provider, record.provider_message_id)
            ids = data.by_provider_id.get(key)
            if ids is not None:
                ids.discard(record.message_id)
                if not ids:
                    del data.by_provider_id[key]

    def _match(self, data: _Tenant, provider: str, provider_message_id: str) -> _Row | None:
        ids = data.by_provider_id.get((provider, provider_message_id))
        if not ids:
            return None
        # Several messages with one provider id: the newest (last inserted) wins.
        return max((data.messages[mid] for mid in ids), key=lambda row: row.seq)

    def _apply(self, data: _Tenant, update: MessageUpdate) -> bool:
        row = data.messages.get(update.message_id)
        if row is None:
            return False
        record = row.record
        self._unindex(data, record)
        changed, _ = apply_update(record, update)
        self._index(data, record)
        if changed:
            record.history.append(
                StatusEvent(
                    status=update.status,
                    raw_status=update.raw_status,
                    at=to_utc(update.at),
                    source=update.source,
                    detail=update.detail,
                )
            )
        return changed

    # -------------------------------------------------------------- messages
    def insert_messages(self, records: Sequence[MessageRecord]) -> None:
        with self._lock:
            seen: set[tuple[str, str]] = set()
            for record in records:
                key = (record.tenant, record.message_id)
                existing = self._peek(record.tenant)
                if key in seen or (existing is not None and record.message_id in existing.messages):
                    raise ValueError(
                        f"message {record.message_id!r} already exists for tenant {record.tenant!r}"
                    )
                seen.add(key)
            for record in records:
                data = self._tenant(record.tenant)
                self._seq += 1
                copy = _normalised(record)
                data.messages[copy.message_id] = _Row(self._seq, copy)
                self._index(data, copy)

    def update_messages(self, tenant: str, updates: Sequence[MessageUpdate]) -> list[bool]:
        with self._lock:
            data = self._peek(tenant)
            if data is None:
                return [False] * len(updates)
            return [self._apply(data, update) for update in updates]

    def get_message(self, tenant: str, message_id: str) -> MessageRecord:
        with self._lock:
            data = self._peek(tenant)
            row = data.messages.get(message_id) if data is not None else None
            if row is None:
                raise NotFound(f"no message {message_id!r} for tenant {tenant!r}")
            return row.record.model_copy(deep=True)

    def find_by_provider_id(
        self, tenant: str, provider: str, provider_message_id: str
    ) -> MessageRecord | None:
        with self._lock:
            data = self._peek(tenant)
            row = self._match(data, provider, provider_message_id) if data is not None else None
            return _without_history(row.record) if row is not None else None

    def list_messages(
        self,
        tenant: str,
        *,
        status: Status | None = None,
        to: str | None = None,
        campaign_id: str | None = None,
        limit: int = 100,
        before: str | None = None,
    ) -> list[MessageRecord]:
        with self._lock:
            data = self._peek(tenant)
            cursor = None
            if before is not None:
                anchor = data.messages.get(before) if data is not None else None
                if anchor is None:
                    raise NotFound(f"no message {before!r} for tenant {tenant!r}")
                cursor = (anchor.record.created_at, anchor.seq)
            if data is None or limit <= 0:
                return []
            rows = [
                row
                for row in data.messages.values()
                if (status is None or row.record.status is status)
                and (to is None or row.record.to == to)
                and (campaign_id is None or row.record.campaign_id == campaign_id)
                and (cursor is None or (row.record.created_at, row.seq) < cursor)
            ]
            rows.sort(key=lambda row: (row.record.created_at, row.seq), reverse=True)
            return [_without_history(row.record) for row in rows[:limit]]

    def count_by_status(
        self, tenant: str, *, campaign_id: str | None = None, provider: str | None = None
    ) -> dict[Status, int]:
        with self._lock:
            counts = dict.fromkeys(Status, 0)
            data = self._peek(tenant)
            if data is not None:
                for row in data.messages.values():
                    record = row.record
                    if campaign_id is not None and record.campaign_id != campaign_id:
                        continue
                    if provider is not None and record.provider != provider:
                        continue
                    counts[record.status] += 1
            return counts

    def apply_reports(self, tenant: str, reports: Sequence[DeliveryReport]) -> list[str | None]:
        with self._lock:
            data = self._peek(tenant)
            matched: list[str | None] = []
            for report in reports:
                row = None
                if data is not None and report.provider_message_id is not None:
                    row = self._match(data, report.provider, report.provider_message_id)
                if row is None or data is None:
                    matched.append(None)
                    continue
                self._apply(data, report_to_update(row.record.message_id, report))
                matched.append(row.record.message_id)
            return matched

    # -------------------------------------------------------------- opt-outs
    def add_optouts(self, tenant: str, optouts: Sequence[OptOut]) -> int:
        with self._lock:
            data = self._tenant(tenant)
            new = 0
            for optout in optouts:
                if optout.phone not in data.optouts:
                    copy = optout.model_copy(update={"created_at": to_utc(optout.created_at)})
                    data.optouts[optout.phone] = copy
                    new += 1
            return new

    def remove_optout(self, tenant: str, phone: str) -> bool:
        with self._lock:
            data = self._peek(tenant)
            return data is not None and data.optouts.pop(phone, None) is not None

    def opted_out(self, tenant: str, phones: Iterable[str]) -> set[str]:
        with self._lock:
            data = self._peek(tenant)
            if data is None:
                return set()
            return {phone for phone in phones if phone in data.optouts}

    def list_optouts(self, tenant: str, *, limit: int | None = None, offset: int = 0) -> list[OptOut]:
        with self._lock:
            data = self._peek(tenant)
            if data is None:
                return []
            phones = sorted(data.optouts)[max(offset, 0) :]
            if limit is not None:
                phones = phones[: max(limit, 0)]
            return [data.optouts[phone].model_copy() for phone in phones]

    def count_optouts(self, tenant: str) -> int:
        with self._lock:
            data = self._peek(tenant)
            return len(data.optouts) if data is not None else 0

    # ------------------------------------------------------- idempotency keys
    def claim_idempotency_key(self, tenant: str, key: str, message_id: str) -> str | None:
        with self._lock:
            keys = self._tenant(tenant).keys
            existing = keys.get(key)
            if existing is None:
                keys[key] = message_id
            return existing
