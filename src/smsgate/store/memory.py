"""An in-process store: plain dicts keyed by tenant, guarded by one lock.

The reference behaviour for the store contract (tests run every store against the
same suite) and a convenient store for tests and demos. Nothing is persisted.
"""

from __future__ import annotations

import bisect
import copy
import json
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, TypeVar

from smsgate.errors import NotFound, ValidationError
from smsgate.models import (
    EVERY_SENDER,
    CampaignStatus,
    Contact,
    DeliveryReport,
    InboundMessage,
    MessageRecord,
    OptOut,
    Status,
    StatusEvent,
    optout_scope,
    utcnow,
)
from smsgate.store._purge import FINISHED as _FINISHED
from smsgate.store._purge import check_purge
from smsgate.store._rules import (
    accepts_status,
    apply_update,
    changed_ids,
    report_to_update,
    stale_report,
    stored_cost,
    to_utc,
    written_provider_keys,
)
from smsgate.store.base import (
    TENANT_DATA,
    AppliedReport,
    CampaignRow,
    ContactListRow,
    Duplicate,
    LogResult,
    LogWrite,
    MessageTimes,
    MessageUpdate,
    PurgeResult,
    RecipientRow,
    RecipientState,
    RecipientUpdate,
    Store,
    TenantChanged,
    TenantRow,
    check_contact_fields,
    erase_refused,
)
from smsgate.traffic.gate import LocalTraffic
from smsgate.traffic.limits import KeyState

__all__ = ["MemoryStore"]

T = TypeVar("T")

_ProviderKey = tuple[str, str]


@dataclass
class _Row:
    seq: int
    record: MessageRecord


@dataclass
class _Campaign:
    seq: int
    row: CampaignRow


@dataclass
class _Audience:
    """A campaign's recipients by id (ids only grow: insertion order is id order)."""

    recipients: dict[int, RecipientRow] = field(default_factory=dict)
    ids: list[int] = field(default_factory=list)
    #: dedupe key -> the recipient id holding it
    keys: dict[str, int] = field(default_factory=dict)
    #: runner -> end of its lease
    runners: dict[str, datetime] = field(default_factory=dict)


@dataclass
class _Tenant:
    messages: dict[str, _Row] = field(default_factory=dict)
    by_provider_id: dict[_ProviderKey, set[str]] = field(default_factory=dict)
    #: phone -> scope -> opt-out
    optouts: dict[str, dict[str, OptOut]] = field(default_factory=dict)
    #: (phone, scope) -> when its latest start word was said (see Store.remove_optout)
    optins: dict[tuple[str, str], datetime] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    #: idempotency key -> when it was bound
    key_times: dict[str, datetime] = field(default_factory=dict)
    campaigns: dict[str, _Campaign] = field(default_factory=dict)
    audiences: dict[str, _Audience] = field(default_factory=dict)
    lists: dict[str, _List] = field(default_factory=dict)
    orphans: list[DeliveryReport] = field(default_factory=list)
    #: when each of ``orphans`` was received (same order)
    orphans_received: list[datetime] = field(default_factory=list)
    parts: dict[_ProviderKey, dict[int, Status]] = field(default_factory=dict)
    inbound: dict[tuple[str, str], InboundMessage] = field(default_factory=dict)


@dataclass
class _List:
    row: ContactListRow
    contacts: dict[str, tuple[int, Contact]] = field(default_factory=dict)


def _normalised(record: MessageRecord) -> MessageRecord:
    """A private deep copy of ``record`` with every datetime in UTC and its cost as stored."""
    copy = record.model_copy(deep=True)
    copy.cost = stored_cost(copy.cost)  # as every store gives it back (PostgreSQL's numeric)
    copy.created_at = to_utc(copy.created_at)
    copy.updated_at = to_utc(copy.updated_at)
    if copy.submitted_at is not None:
        copy.submitted_at = to_utc(copy.submitted_at)
    if copy.delivered_at is not None:
        copy.delivered_at = to_utc(copy.delivered_at)
    for event in copy.history:
        event.at = to_utc(event.at)
    return copy


def _json_copy(value: dict[str, Any]) -> dict[str, Any]:
    """A deep copy, and a check that ``value`` is JSON-able (as the SQL stores need)."""
    result: dict[str, Any] = json.loads(json.dumps(value))
    return result


def _campaign_copy(row: CampaignRow) -> CampaignRow:
    return replace(row, spec=copy.deepcopy(row.spec))


def _recipient_copy(row: RecipientRow) -> RecipientRow:
    return replace(row, fields=dict(row.fields))


def _without_history(record: MessageRecord) -> MessageRecord:
    return record.model_copy(update={"history": []}, deep=True)


class MemoryStore(Store):
    """A :class:`~smsgate.store.base.Store` held in memory (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._next_contact = 0
        self._tenants: dict[str, _Tenant] = {}
        self._seq = 0
        self._recipient_seq = 0
        self._version = 0
        self._traffic = LocalTraffic(time.time)
        self._stored_tenants: dict[str, TenantRow] = {}
        self._tenant_changes = 0
        self._send_leases: dict[str, dict[str, tuple[datetime, datetime]]] = {}

    # ------------------------------------------------------------- lifecycle
    def migrate(self) -> None:
        with self._lock:
            self._version = self.SCHEMA_VERSION

    def schema_version(self) -> int:
        with self._lock:
            return self._version

    def close(self) -> None:
        """Nothing to release; the data stays readable."""

    # ------------------------------------------------------------------ tenants
    def tenants_version(self) -> int:
        with self._lock:
            return self._tenant_changes

    def get_tenant_row(self, name: str) -> TenantRow | None:
        with self._lock:
            return self._stored_tenants.get(name)

    def list_tenant_rows(self) -> list[TenantRow]:
        with self._lock:
            return [self._stored_tenants[name] for name in sorted(self._stored_tenants)]

    def put_tenant_row(self, name: str, config: str, secrets: str, *, create: bool | None = None,
                       expected_version: int | None = None) -> int:
        with self._lock:
            exists = name in self._stored_tenants
            if expected_version is not None and (not exists or self._stored_tenants[name].version != expected_version):
                raise TenantChanged(f"tenant {name!r} changed since it was read (version {expected_version})")
            if exists and create is True:
                raise ValueError(f"tenant {name!r} is already stored")
            if not exists and create is False:
                raise NotFound(f"tenant {name!r} is not stored")
            self._tenant_changes += 1
            self._stored_tenants[name] = TenantRow(name, config, secrets, self._tenant_changes, utcnow())
            return self._tenant_changes

    def delete_tenant_row(self, name: str) -> bool:
        with self._lock:
            if self._stored_tenants.pop(name, None) is None:
                return False
            self._tenant_changes += 1
            return True

    def tenant_data(self, tenant: str) -> list[str]:
        with self._lock:
            data = self._tenants.get(tenant)
            if data is None:
                return []
            held = (data.messages, data.campaigns, data.lists, any(data.optouts.values()), data.optins, data.inbound,
                    data.orphans, data.keys)
            return [kind for kind, rows in zip(TENANT_DATA, held, strict=True) if rows]

    def erase_tenant(self, tenant: str) -> int:
        with self._lock:
            if tenant in self._stored_tenants:
                raise erase_refused(tenant)
            data = self._tenants.pop(tenant, None)
            # counted as a SQL store counts its rows: traffic keys and entries, send leases
            erased = self._traffic.erase(tenant) + len(self._send_leases.pop(tenant, {}))
            if data is None:
                return erased
            return erased + (sum(1 + len(row.record.history) for row in data.messages.values())
                    + sum(len(a.recipients) for a in data.audiences.values()) + len(data.campaigns)
                    + sum(1 + len(lst.contacts) for lst in data.lists.values())
                    + sum(len(scopes) for scopes in data.optouts.values()) + len(data.optins) + len(data.keys)
                    + len(data.orphans) + len(data.inbound) + sum(len(p) for p in data.parts.values()))

    # ------------------------------------------------------------------ traffic
    def traffic(self, tenant: str, horizons: Mapping[str, float],
                fn: Callable[[dict[str, KeyState], float], T]) -> T:
        return self._traffic.traffic(tenant, horizons, fn)

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
        since: datetime | None = None,
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
                and (since is None or row.record.created_at >= to_utc(since))
                and (cursor is None or (row.record.created_at, row.seq) < cursor)
            ]
            rows.sort(key=lambda row: (row.record.created_at, row.seq), reverse=True)
            return [_without_history(row.record) for row in rows[:limit]]

    def in_flight(
        self,
        tenant: str,
        statuses: Sequence[Status],
        *,
        created_before: datetime,
        created_after: datetime | None = None,
        providers: Sequence[str] | None = None,
        limit: int = 100,
        after: str | None = None,
        exclude_providers: Sequence[str] | None = None,
    ) -> list[MessageRecord]:
        before, since = to_utc(created_before), None if created_after is None else to_utc(created_after)
        wanted, among = set(statuses), None if providers is None else set(providers)
        left = None if exclude_providers is None else set(exclude_providers)
        with self._lock:
            data = self._peek(tenant)
            cursor = None
            if after is not None:
                anchor = data.messages.get(after) if data is not None else None
                if anchor is None:
                    raise NotFound(f"no message {after!r} for tenant {tenant!r}")
                cursor = (anchor.record.created_at, anchor.seq)
            if data is None or limit <= 0:
                return []
            rows = [
                row
                for row in data.messages.values()
                if row.record.status in wanted and row.record.created_at < before
                and (since is None or row.record.created_at >= since)
                and (among is None or row.record.provider in among)
                and (left is None or (row.record.provider is not None and row.record.provider not in left))
                and (cursor is None or (row.record.created_at, row.seq) > cursor)
            ]
            rows.sort(key=lambda row: (row.record.created_at, row.seq))
            return [row.record.model_copy(deep=True) for row in rows[:limit]]

    def note_checks(self, tenant: str, message_ids: Sequence[str], *, at: datetime, source: str,
                    detail: str | None = None) -> int:
        written = 0
        with self._lock:
            data = self._peek(tenant)
            if data is None:
                return 0
            for mid in dict.fromkeys(message_ids):
                row = data.messages.get(mid)
                if row is not None:
                    row.record.history.append(StatusEvent(status=row.record.status, raw_status=row.record.raw_status,
                                                          at=to_utc(at), source=source, detail=detail))
                    written += 1
        return written

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

    def apply_reports(
        self, tenant: str, reports: Sequence[DeliveryReport], *, keep_orphans: bool = False
    ) -> list[str | None]:
        return [a.message_id for a in self.apply_reports_changes(tenant, reports, keep_orphans=keep_orphans)]

    def apply_reports_changes(
        self, tenant: str, reports: Sequence[DeliveryReport], *, keep_orphans: bool = False
    ) -> list[AppliedReport]:
        with self._lock:
            data = self._tenant(tenant) if keep_orphans else self._peek(tenant)
            matched: list[AppliedReport] = []
            for report in reports:
                row = None
                if data is not None and report.provider_message_id is not None:
                    row = self._match(data, report.provider, report.provider_message_id)
                if row is None or data is None:
                    if keep_orphans and data is not None and report.provider_message_id is not None:
                        data.orphans.append(report.model_copy(deep=True))
                        data.orphans_received.append(utcnow())
                    matched.append(AppliedReport(None, False))
                    continue
                changed = not stale_report(row.record, report) and \
                    self._apply(data, report_to_update(row.record.message_id, report))
                matched.append(AppliedReport(row.record.message_id, changed))
            return matched

    def _adopt_orphans(self, data: _Tenant, keys: set[_ProviderKey]) -> list[tuple[str, DeliveryReport]]:
        """Apply (and forget) the orphan reports of messages just given these provider ids;
        returns the ``(message id, report)`` applied."""
        if not data.orphans or not keys:
            return []
        adopted = [r for r in data.orphans if (r.provider, r.provider_message_id) in keys]
        applied: list[tuple[str, DeliveryReport]] = []
        if adopted:
            kept = [(r, at) for r, at in zip(data.orphans, data.orphans_received, strict=True)
                    if (r.provider, r.provider_message_id) not in keys]
            data.orphans, data.orphans_received = [r for r, _ in kept], [at for _, at in kept]
            for report in adopted:
                assert report.provider_message_id is not None
                row = self._match(data, report.provider, report.provider_message_id)
                if row is not None:
                    if not stale_report(row.record, report):
                        self._apply(data, report_to_update(row.record.message_id, report))
                    applied.append((row.record.message_id, report.model_copy(deep=True)))
        return applied

    def orphan_reports(self, tenant: str, *, provider: str | None = None, limit: int = 100) -> list[DeliveryReport]:
        with self._lock:
            data = self._peek(tenant)
            found = [] if data is None else [r for r in data.orphans if provider is None or r.provider == provider]
            return [r.model_copy(deep=True) for r in found[: max(limit, 0)]]

    def record_parts(self, tenant: str, reports: Sequence[DeliveryReport]) -> list[dict[int, Status]]:
        with self._lock:
            data = self._tenant(tenant)
            result: list[dict[int, Status]] = []
            for report in reports:
                if report.part is None or report.parts is None or report.provider_message_id is None:
                    result.append({})
                    continue
                known = data.parts.setdefault((report.provider, report.provider_message_id), {})
                old = known.get(report.part)
                if old is None or accepts_status(old, None, report.status, None):
                    known[report.part] = report.status
                result.append(dict(known))
            return result

    # ------------------------------------------------------- inbound messages
    def record_inbound(
        self, tenant: str, messages: Sequence[InboundMessage]
    ) -> list[tuple[InboundMessage, bool]]:
        with self._lock:
            data = self._tenant(tenant)
            result: list[tuple[InboundMessage, bool]] = []
            for msg in messages:
                key = (msg.provider, msg.vendor_id)
                stored = data.inbound.get(key)
                new = stored is None
                if stored is None:
                    self._seq += 1
                    stored = msg.model_copy(deep=True, update={
                        "tenant": tenant, "id": self._seq, "action": None,
                        "received_at": to_utc(msg.received_at), "raw": _json_copy(msg.raw)})
                    data.inbound[key] = stored
                result.append((stored.model_copy(deep=True), new))
            return result

    def set_inbound_action(self, tenant: str, inbound_id: int, action: str) -> None:
        with self._lock:
            data = self._peek(tenant)
            for msg in data.inbound.values() if data is not None else ():
                if msg.id == inbound_id:
                    msg.action = action

    def list_inbound(
        self, tenant: str, *, from_number: str | None = None, limit: int = 100, before: int | None = None,
        since: datetime | None = None, action: str | None = None,
    ) -> list[InboundMessage]:
        after = None if since is None else to_utc(since)
        with self._lock:
            data = self._peek(tenant)
            found = sorted(
                (m for m in (data.inbound.values() if data is not None else ())
                 if (from_number is None or m.from_number == from_number)
                 and (before is None or (m.id or 0) < before)
                 and (after is None or to_utc(m.received_at) >= after)
                 and (action is None or m.action == action)),
                key=lambda m: m.id or 0, reverse=True)
            return [m.model_copy(deep=True) for m in found[: max(limit, 0)]]

    # -------------------------------------------------------------- opt-outs
    def add_optouts(self, tenant: str, optouts: Sequence[OptOut], *, renew: bool = False) -> int:
        with self._lock:
            data = self._tenant(tenant)
            new = 0
            for optout in optouts:
                scopes = data.optouts.setdefault(optout.phone, {})
                at = to_utc(optout.created_at)
                held = scopes.get(optout.scope)
                opted_in = data.optins.get((optout.phone, optout.scope)) if renew else None
                if held is None and opted_in is not None and opted_in > at:
                    pass  # said before an opt-in of its number and scope (see Store.add_optouts)
                elif held is None:
                    scopes[optout.scope] = optout.model_copy(update={"created_at": at})
                    new += 1
                elif renew and held.created_at < at:
                    scopes[optout.scope] = held.model_copy(update={"created_at": at})
            return new

    def remove_optout(self, tenant: str, phone: str, scope: str | None = EVERY_SENDER, *,
                      not_after: datetime | None = None) -> bool:
        with self._lock:
            limit = None if not_after is None else to_utc(not_after)
            if limit is not None and scope is not None:  # the opt-in (see Store.remove_optout)
                optins = self._tenant(tenant).optins
                said = (phone, optout_scope(scope))
                optins[said] = max(limit, optins.get(said, limit))
            data = self._peek(tenant)
            scopes = data.optouts.get(phone) if data is not None else None
            if data is None or not scopes:
                return False
            keys = list(scopes) if scope is None else [optout_scope(scope)]
            gone = [k for k in keys if k in scopes and (limit is None or scopes[k].created_at <= limit)]
            for key in gone:
                del scopes[key]
            if not scopes:
                del data.optouts[phone]
            return bool(gone)

    def optout_scopes(self, tenant: str, phones: Iterable[str]) -> dict[str, set[str]]:
        with self._lock:
            data = self._peek(tenant)
            if data is None or not data.optouts:
                return {}
            known = data.optouts
            return {phone: set(known[phone]) for phone in phones if phone in known}

    def list_optouts(self, tenant: str, *, limit: int | None = None, offset: int = 0) -> list[OptOut]:
        with self._lock:
            data = self._peek(tenant)
            if data is None:
                return []
            rows = [scopes[scope] for phone, scopes in sorted(data.optouts.items()) for scope in sorted(scopes)]
            rows = rows[max(offset, 0) :]
            if limit is not None:
                rows = rows[: max(limit, 0)]
            return [o.model_copy() for o in rows]

    def count_optouts(self, tenant: str) -> int:
        with self._lock:
            data = self._peek(tenant)
            return sum(len(scopes) for scopes in data.optouts.values()) if data is not None else 0

    # ------------------------------------------------------- idempotency keys
    def claim_idempotency_key(self, tenant: str, key: str, message_id: str) -> str | None:
        with self._lock:
            keys = self._tenant(tenant).keys
            existing = keys.get(key)
            if existing is None:
                keys[key] = message_id
                self._tenant(tenant).key_times[key] = utcnow()
            return existing

    def bound_keys(self, tenant: str, keys: Sequence[str]) -> dict[str, str]:
        with self._lock:
            data = self._peek(tenant)
            if data is None:
                return {}
            return {k: data.keys[k] for k in keys if k in data.keys}

    # -------------------------------------------------------------- campaigns
    def _campaign(self, tenant: str, campaign_id: str) -> _Campaign:
        data = self._peek(tenant)
        camp = data.campaigns.get(campaign_id) if data is not None else None
        if camp is None:
            raise NotFound(f"no campaign {campaign_id!r} for tenant {tenant!r}")
        return camp

    def _audience(self, tenant: str, campaign_id: str, *, create: bool = False) -> _Audience | None:
        """A campaign's recipients (like the SQL stores, independent of the campaign row)."""
        data = self._tenant(tenant) if create else self._peek(tenant)
        if data is None:
            return None
        audience = data.audiences.get(campaign_id)
        if audience is None and create:
            audience = data.audiences[campaign_id] = _Audience()
        return audience

    def create_campaign(self, row: CampaignRow) -> None:
        with self._lock:
            data = self._tenant(row.tenant)
            if row.campaign_id in data.campaigns:
                raise ValidationError(
                    f"a campaign {row.campaign_id!r} already exists for tenant {row.tenant!r}; give another "
                    "campaign_id, or none for a new one", field="campaign_id"
                )
            self._seq += 1
            stored = replace(
                row,
                spec=_json_copy(row.spec),
                created_at=to_utc(row.created_at),
                updated_at=to_utc(row.updated_at),
                start_at=None if row.start_at is None else to_utc(row.start_at),
            )
            data.campaigns[row.campaign_id] = _Campaign(self._seq, stored)

    def get_campaign(self, tenant: str, campaign_id: str) -> CampaignRow:
        with self._lock:
            return _campaign_copy(self._campaign(tenant, campaign_id).row)

    def campaign_tenants(self) -> list[str]:
        with self._lock:
            return sorted(name for name, data in self._tenants.items() if data.campaigns)

    def campaigns_to_recover(self, tenant: str) -> list[str]:
        with self._lock:
            data = self._peek(tenant)
            out = []
            for row in self.list_campaigns(tenant, limit=len(data.campaigns) if data is not None else 0):
                camp = self._audience(tenant, row.campaign_id)
                states = {r.state for r in camp.recipients.values()} if camp is not None else set()
                if RecipientState.SENDING in states or (
                        row.status is CampaignStatus.CANCELLED and RecipientState.PENDING in states):
                    out.append(row.campaign_id)
            return out

    def list_campaigns(self, tenant: str, *, limit: int = 100) -> list[CampaignRow]:
        with self._lock:
            data = self._peek(tenant)
            if data is None or limit <= 0:
                return []
            camps = sorted(data.campaigns.values(), key=lambda c: (c.row.created_at, c.seq), reverse=True)
            return [_campaign_copy(c.row) for c in camps[:limit]]

    def update_campaign(
        self,
        tenant: str,
        campaign_id: str,
        *,
        status: CampaignStatus | None = None,
        spec: dict[str, Any] | None = None,
        start_at: datetime | None = None,
        provider: str | None = None,
        provider_campaign_id: str | None = None,
        error: str | None = None,
        if_status: Collection[CampaignStatus] | None = None,
    ) -> CampaignRow:
        with self._lock:
            row = self._campaign(tenant, campaign_id).row
            if if_status is not None and row.status not in if_status:
                return _campaign_copy(row)
            if status is not None:
                row.status = status
            if spec is not None:
                row.spec = _json_copy(spec)
            if start_at is not None:
                row.start_at = to_utc(start_at)
            if provider is not None:
                row.provider = provider
            if provider_campaign_id is not None:
                row.provider_campaign_id = provider_campaign_id
            if error is not None:
                row.error = error
            row.updated_at = utcnow()
            return _campaign_copy(row)

    def delete_campaign(self, tenant: str, campaign_id: str) -> bool:
        with self._lock:
            data = self._peek(tenant)
            if data is None:
                return False
            data.audiences.pop(campaign_id, None)
            return data.campaigns.pop(campaign_id, None) is not None

    def add_recipients(
        self, tenant: str, campaign_id: str, rows: Sequence[RecipientRow],
        on_duplicate: Callable[[RecipientRow, int | None], RecipientRow] | None = None,
    ) -> list[Duplicate]:
        with self._lock:
            if not rows:
                return []
            for r in rows:
                _json_copy(dict(r.fields))
            camp = self._audience(tenant, campaign_id, create=True)
            assert camp is not None
            duplicates = []
            for i, r in enumerate(rows):
                if r.key is not None:
                    first = camp.keys.get(r.key)
                    if first is not None:
                        line = camp.recipients[first].line
                        duplicates.append(Duplicate(i, line))
                        if on_duplicate is None:
                            continue
                        r = on_duplicate(r, line)
                self._recipient_seq += 1
                rid = self._recipient_seq
                camp.recipients[rid] = replace(r, id=rid, fields=dict(r.fields))
                camp.ids.append(rid)
                if r.key is not None:
                    camp.keys[r.key] = rid
            return duplicates

    def delete_recipients(self, tenant: str, campaign_id: str) -> int:
        with self._lock:
            camp = self._audience(tenant, campaign_id)
            if camp is None:
                return 0
            n = len(camp.recipients)
            camp.recipients, camp.ids, camp.keys = {}, [], {}
            return n

    def claim_recipients(
        self, tenant: str, campaign_id: str, limit: int, new_message_id: Callable[[], str],
        *, owner: str | None = None,
    ) -> list[RecipientRow]:
        with self._lock:
            camp = self._audience(tenant, campaign_id)
            claimed: list[RecipientRow] = []
            if camp is None or limit <= 0:
                return claimed
            for r in camp.recipients.values():
                if r.state is RecipientState.PENDING:
                    r.state = RecipientState.SENDING
                    r.message_id = new_message_id()
                    r.owner = owner
                    claimed.append(_recipient_copy(r))
                    if len(claimed) >= limit:
                        break
            return claimed

    @staticmethod
    def _update_recipient(camp: _Audience, u: RecipientUpdate) -> bool:
        """Apply ``u``; returns whether it applied."""
        r = camp.recipients.get(u.id)
        if r is None or (u.if_message is not None and r.message_id != u.if_message):
            return False
        if u.if_message is not None and u.if_sending and r.state not in (RecipientState.SENDING, RecipientState.UNKNOWN):
            return False
        r.state = u.state
        if u.reason is not None:
            r.reason = u.reason
        if u.detail is not None:
            r.detail = u.detail
        if u.state is RecipientState.PENDING:
            r.message_id = r.owner = None
        elif u.message_id is not None:
            r.message_id = u.message_id
        return True

    def update_recipients(self, tenant: str, campaign_id: str, updates: Sequence[RecipientUpdate]) -> int:
        with self._lock:
            camp = self._audience(tenant, campaign_id)
            if camp is None:
                return 0
            applied = 0
            for u in updates:
                if self._update_recipient(camp, u) and u.if_message is not None:
                    applied += 1
            return applied

    # --------------------------------------------------------- campaign runners
    def start_runner(self, tenant: str, campaign_id: str, owner: str, lease_until: datetime) -> None:
        with self._lock:
            camp = self._audience(tenant, campaign_id, create=True)
            assert camp is not None
            camp.runners[owner] = to_utc(lease_until)

    def renew_runner(self, tenant: str, campaign_id: str, owner: str, lease_until: datetime) -> bool:
        with self._lock:
            camp = self._audience(tenant, campaign_id)
            if camp is None or owner not in camp.runners:
                return False
            camp.runners[owner] = to_utc(lease_until)
            return True

    def stop_runner(self, tenant: str, campaign_id: str, owner: str) -> None:
        with self._lock:
            camp = self._audience(tenant, campaign_id)
            if camp is not None:
                camp.runners.pop(owner, None)

    def runner_leases(self, tenant: str, campaign_id: str) -> dict[str, datetime]:
        with self._lock:
            camp = self._audience(tenant, campaign_id)
            return dict(camp.runners) if camp is not None else {}

    # ------------------------------------------------------------- send leases
    def put_send_lease(self, tenant: str, owner: str, lease_until: datetime, oldest: datetime) -> None:
        with self._lock:
            self._send_leases.setdefault(tenant, {})[owner] = (to_utc(lease_until), to_utc(oldest))

    def end_send_lease(self, tenant: str, owner: str) -> None:
        with self._lock:
            self._send_leases.get(tenant, {}).pop(owner, None)

    def send_leases(self, tenant: str) -> dict[str, tuple[datetime, datetime]]:
        with self._lock:
            return dict(self._send_leases.get(tenant, {}))

    def recover_claims(
        self, tenant: str, campaign_id: str, owner: str, now: datetime, limit: int,
    ) -> list[RecipientRow]:
        with self._lock:
            camp = self._audience(tenant, campaign_id)
            taken: list[RecipientRow] = []
            if camp is None or limit <= 0:
                return taken
            now = to_utc(now)
            live = {o for o, until in camp.runners.items() if until > now}
            for rid in camp.ids:
                r = camp.recipients[rid]
                if r.state is RecipientState.SENDING and r.owner != owner and r.owner not in live:
                    if r.owner is not None:  # a runner gone loses its lease (see Store.recover_claims)
                        camp.runners.pop(r.owner, None)
                    r.owner = owner
                    taken.append(_recipient_copy(r))
                    if len(taken) >= limit:
                        break
            return taken

    # -------------------------------------------------------------- dispatch log
    def write_log(self, tenant: str, write: LogWrite) -> LogResult:
        with self._lock:
            result = LogResult()
            data = self._tenant(tenant)
            if write.rechecks:
                write, result.refused = write.rechecked(self.optout_scopes(tenant, write.recheck_phones()))
            inserts = []
            binding: dict[str, str] = {}
            for record in write.inserts:
                mid = record.message_id
                claim = write.claims.get(mid)
                if claim is not None:
                    camp = self._audience(tenant, claim.campaign_id)
                    r = camp.recipients.get(claim.recipient_id) if camp is not None else None
                    if r is None or r.state is not RecipientState.SENDING or r.owner != claim.owner:
                        result.lost.add(mid)
                        continue
                key = write.keys.get(mid)
                if key is not None:
                    bound = data.keys.get(key) or binding.get(key)
                    if bound is not None:
                        result.replays[mid] = bound
                        continue
                    binding[key] = mid
                inserts.append(record if isinstance(record, MessageRecord) else record.record())
            self.insert_messages(inserts)  # raises (changing nothing) on a duplicate message id
            data.keys.update(binding)
            data.key_times.update(dict.fromkeys(binding, utcnow()))
            if write.updates:
                result.changed = changed_ids(write.updates, self.update_messages(tenant, write.updates))
            if data.orphans:
                result.adopted = self._adopt_orphans(data, written_provider_keys(inserts, write.updates))
            for mid in write.withdrawn:  # a write-ahead taken back: only while queued, never answered
                row = data.messages.get(mid)
                if row is not None and row.record.status is Status.QUEUED and row.record.provider_message_id is None:
                    del data.messages[mid]
            for campaign_id, u in write.recipients:
                camp = self._audience(tenant, campaign_id)
                if camp is not None:
                    self._update_recipient(camp, u)
            return result

    def recipients(
        self,
        tenant: str,
        campaign_id: str,
        *,
        states: Sequence[RecipientState] | None = None,
        after_id: int = 0,
        limit: int = 1000,
    ) -> list[RecipientRow]:
        with self._lock:
            camp = self._audience(tenant, campaign_id)
            found: list[RecipientRow] = []
            if camp is None or limit <= 0:
                return found
            wanted = None if states is None else set(states)
            ids = camp.ids
            for rid in ids[bisect.bisect_right(ids, after_id) :]:
                r = camp.recipients.get(rid)
                if r is None or (wanted is not None and r.state not in wanted):
                    continue
                found.append(_recipient_copy(r))
                if len(found) >= limit:
                    break
            return found

    def recipient_counts(self, tenant: str, campaign_id: str) -> dict[tuple[RecipientState, str | None], int]:
        with self._lock:
            camp = self._audience(tenant, campaign_id)
            counts: dict[tuple[RecipientState, str | None], int] = {}
            if camp is not None:
                for r in camp.recipients.values():
                    key = (r.state, r.reason)
                    counts[key] = counts.get(key, 0) + 1
            return counts

    # ------------------------------------------------------------ statistics
    def message_times(
        self,
        tenant: str,
        *,
        campaign_id: str | None = None,
        provider: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Iterator[MessageTimes]:
        lo = None if since is None else to_utc(since)
        hi = None if until is None else to_utc(until)
        with self._lock:
            data = self._peek(tenant)
            rows = sorted(
                (row for row in data.messages.values()) if data is not None else (),
                key=lambda row: (row.record.created_at, row.seq),
            )
            times = [
                MessageTimes(
                    status=r.status,
                    provider=r.provider,
                    created_at=r.created_at,
                    submitted_at=r.submitted_at,
                    delivered_at=r.delivered_at,
                    segments=r.segments,
                    cost=r.cost,
                    currency=r.currency,
                    raw_status=r.raw_status,
                )
                for r in (row.record for row in rows)
                if (campaign_id is None or r.campaign_id == campaign_id)
                and (provider is None or r.provider == provider)
                and (lo is None or r.created_at >= lo)
                and (hi is None or r.created_at < hi)
            ]
        return iter(times)

    # ----------------------------------------------------------- contact lists
    def _list(self, tenant: str, list_id: str) -> _List:
        found = self._tenant(tenant).lists.get(list_id)
        if found is None:
            raise NotFound(f"no contact list {list_id!r} for tenant {tenant!r}")
        return found

    def _list_row(self, data: _List) -> ContactListRow:
        return replace(data.row, size=len(data.contacts))

    def create_contact_list(self, row: ContactListRow) -> None:
        with self._lock:
            lists = self._tenant(row.tenant).lists
            if row.list_id in lists:
                raise ValidationError(
                    f"a contact list {row.list_id!r} already exists for tenant {row.tenant!r}; give another "
                    "list_id, or none for a new one", field="list_id"
                )
            lists[row.list_id] = _List(replace(row, created_at=to_utc(row.created_at), size=0))

    def get_contact_list(self, tenant: str, list_id: str) -> ContactListRow:
        with self._lock:
            return self._list_row(self._list(tenant, list_id))

    def list_contact_lists(self, tenant: str) -> list[ContactListRow]:
        with self._lock:
            rows = [self._list_row(d) for d in self._tenant(tenant).lists.values()]
        return sorted(rows, key=lambda r: r.created_at, reverse=True)

    def delete_contact_list(self, tenant: str, list_id: str) -> bool:
        with self._lock:
            return self._tenant(tenant).lists.pop(list_id, None) is not None

    def add_contacts(self, tenant: str, list_id: str, contacts: Sequence[Contact]) -> int:
        check_contact_fields(contacts)  # a field named phone or name: refused, nothing written
        with self._lock:
            data = self._list(tenant, list_id)
            new = 0
            for c in contacts:
                existing = data.contacts.get(c.phone)
                if existing is None:
                    self._next_contact += 1
                    data.contacts[c.phone] = (self._next_contact, c.model_copy(deep=True))
                    new += 1
                else:
                    data.contacts[c.phone] = (existing[0], c.model_copy(deep=True))
            return new

    def remove_contacts(self, tenant: str, list_id: str, phones: Iterable[str]) -> int:
        with self._lock:
            data = self._tenant(tenant).lists.get(list_id)
            if data is None:  # like the SQL stores: nothing to remove
                return 0
            return sum(1 for p in set(phones) if data.contacts.pop(p, None) is not None)

    def list_contacts(
        self, tenant: str, list_id: str, *, after_id: int = 0, limit: int = 1000
    ) -> list[tuple[int, Contact]]:
        with self._lock:
            data = self._list(tenant, list_id)
            items = sorted((cid, c) for cid, c in data.contacts.values() if cid > after_id)
        return [(cid, c.model_copy(deep=True)) for cid, c in items[:limit]]

    # -------------------------------------------------------------- retention
    def purge(self, tenant: str | None, *, before: datetime, dry_run: bool = False,
              batch_size: int = 1000) -> PurgeResult:
        """See :meth:`Store.purge <smsgate.store.base.Store.purge>` (the same rules; held in
        memory, it runs under the store's lock in one go: ``batch_size`` is checked only)."""
        before = check_purge(tenant, before, dry_run, batch_size)
        result = PurgeResult(dry_run=dry_run)
        with self._lock:
            names = [tenant] if tenant is not None else sorted(self._tenants)
            for name in names:
                data = self._peek(name)
                if data is not None:
                    self._purge_tenant(data, before, result)
            result.traffic_entries = self._traffic.forget(tenant, before.timestamp(), dry_run=dry_run)
        return result

    def _purge_tenant(self, data: _Tenant, before: datetime, result: PurgeResult) -> None:
        dry = result.dry_run
        now = utcnow()
        gone: set[str] = set()  # campaigns purged
        for cid, camp in list(data.campaigns.items()):
            row = camp.row
            if row.status not in _FINISHED or row.updated_at >= before:
                continue
            audience = data.audiences.get(cid)
            held = audience is not None and (
                any(until > now for until in audience.runners.values())
                or any(r.state in (RecipientState.PENDING, RecipientState.SENDING)
                       for r in audience.recipients.values()))
            mine = [m for m, r in data.messages.items() if r.record.campaign_id == cid]
            if held or any(not data.messages[m].record.status.is_final for m in mine):
                result.kept_campaigns += 1
                continue
            self._drop_messages(data, mine, result)
            result.recipients += len(audience.recipients) if audience is not None else 0
            result.campaigns += 1
            gone.add(cid)
            if not dry:
                data.audiences.pop(cid, None)
                del data.campaigns[cid]
        doomed = []
        for mid, r in data.messages.items():
            record = r.record
            if record.created_at >= before:
                continue
            owner = record.campaign_id
            if owner is not None and owner in data.campaigns:
                if owner not in gone:
                    result.kept_messages += 1
            elif owner is not None and owner in gone:
                continue  # counted with its campaign (dry run)
            elif record.status.is_final:
                doomed.append(mid)
            else:
                result.kept_messages += 1
        self._drop_messages(data, doomed, result)
        old_orphans = [i for i, at in enumerate(data.orphans_received) if at < before]
        result.orphan_reports += len(old_orphans)
        # parts recorded for those reports' message ids that no message has and no newer
        # orphan keeps (a message purged above still counts as present in a dry run)
        kept_keys = {(r.provider, r.provider_message_id) for r, at in zip(data.orphans, data.orphans_received,
                                                                          strict=True) if at >= before}
        present = {(m.record.provider, m.record.provider_message_id) for m in data.messages.values()}
        dangling: set[_ProviderKey] = set()
        for i in old_orphans:
            pmid = data.orphans[i].provider_message_id
            pk = (data.orphans[i].provider, pmid or "")
            if pmid is not None and pk not in kept_keys and pk not in present and pk in data.parts:
                dangling.add(pk)
        result.report_parts += sum(len(data.parts[pk]) for pk in dangling)
        old_inbound = [k for k, m in data.inbound.items() if to_utc(m.received_at) < before]
        result.inbound += len(old_inbound)
        old_keys = [k for k, at in data.key_times.items() if at < before]
        result.idempotency_keys += len(old_keys)
        if dry:
            return
        for part_key in dangling:
            del data.parts[part_key]
        drop = set(old_orphans)
        data.orphans = [r for i, r in enumerate(data.orphans) if i not in drop]
        data.orphans_received = [at for i, at in enumerate(data.orphans_received) if i not in drop]
        for k in old_inbound:
            del data.inbound[k]
        for key in old_keys:
            del data.keys[key], data.key_times[key]

    def _drop_messages(self, data: _Tenant, message_ids: Sequence[str], result: PurgeResult) -> None:
        """Delete (dry run: count) these messages with their history and report parts."""
        parts: set[_ProviderKey] = set()
        for mid in message_ids:
            record = data.messages[mid].record
            result.messages += 1
            result.events += len(record.history)
            if record.provider is not None and record.provider_message_id is not None:
                parts.add((record.provider, record.provider_message_id))
        result.report_parts += sum(len(data.parts.get(key, {})) for key in parts)
        if result.dry_run:
            return
        for mid in message_ids:
            self._unindex(data, data.messages.pop(mid).record)
        for key in parts:
            data.parts.pop(key, None)
