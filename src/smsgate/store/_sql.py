"""Query code shared by the SQL stores (:mod:`~smsgate.store.sqlite` and :mod:`~smsgate.store.postgres`).

:class:`SQLQueries` holds the methods whose SQL is the same in both dialects. They
are written once with ``?`` placeholders; :meth:`SQLQueries._q` rewrites them to
the store's placeholder (:attr:`SQLQueries._PARAM`) once per distinct query string
(cached), so a query costs the same as one written for the dialect. Each store
provides the hooks: how to get a connection for reading (``_read``), and how to
decode a row (``_decode_record``...), where the column types differ (SQLite keeps
datetimes and costs as text).

What legitimately differs stays in each store: batched writes, upserts, locking,
migrations and connection set-up.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, ClassVar, TypeVar

from smsgate.errors import NotFound, ValidationError
from smsgate.models import (
    EVERY_SENDER,
    CampaignStatus,
    DeliveryReport,
    InboundMessage,
    MessageRecord,
    Status,
    StatusEvent,
    optout_scope,
    utcnow,
)
from smsgate.store.base import (
    TENANT_DATA,
    CampaignRow,
    ContactListRow,
    RecipientState,
    TenantChanged,
    TenantRow,
    erase_refused,
)
from smsgate.traffic.limits import Entry, KeyState, steady

__all__ = ["CAMPAIGN_COLUMNS", "INBOUND_COLUMNS", "MESSAGE_COLUMNS", "RECIPIENT_COLUMNS", "SQLQueries"]

#: The columns of a ``messages`` row, in the order the stores decode them.
MESSAGE_COLUMNS = (
    "id, tenant, message_id, to_phone, status, raw_status, provider, provider_message_id, "
    "batch_id, sender, reference, campaign_id, segments, cost, currency, error, "
    "created_at, updated_at, submitted_at, delivered_at"
)
#: The columns of a ``campaigns`` row, in the order the stores decode them.
CAMPAIGN_COLUMNS = (
    "tenant, campaign_id, name, status, created_at, updated_at, spec, start_at, provider, "
    "provider_campaign_id, error"
)
#: The columns of a ``campaign_recipients`` row, in the order the stores decode them.
RECIPIENT_COLUMNS = (
    "id, seq, phone, state, fields, reason, detail, message_id, segments, provider, line, dedupe_key, owner"
)
#: The columns of an ``inbound_messages`` row, in the order the stores decode them.
INBOUND_COLUMNS = "id, tenant, provider, vendor_id, from_number, to_number, text, received_at, raw, action, truncated"

T = TypeVar("T")

#: The columns of a ``stored_tenants`` row, in the order :meth:`SQLQueries._tenant_row` decodes them.
_TENANT_COLUMNS = "name, config, secrets, version, updated_at"
#: The table behind each kind of :data:`~smsgate.store.base.TENANT_DATA`.
_TENANT_DATA_TABLES = dict(zip(TENANT_DATA, ("messages", "campaigns", "contact_lists", "optouts", "optins",
                                             "inbound_messages", "orphan_reports", "idempotency_keys"), strict=True))
#: Every table holding a tenant's data (a ``tenant`` column), children before parents.
_TENANT_TABLES = ("message_events", "report_parts", "orphan_reports", "campaign_recipients", "campaign_runners",
                  "messages", "campaigns", "contacts", "contact_lists", "optouts", "optins", "idempotency_keys",
                  "inbound_messages", "traffic_entries", "traffic_keys", "send_leases")

_STATUS = {status.value: status for status in Status}
_STATE = {state.value: state for state in RecipientState}


@functools.lru_cache(maxsize=1024)
def _rewrite(sql: str, param: str) -> str:
    return sql.replace("?", param)


class SQLQueries:
    """Mixin of the store methods whose SQL both dialects share (see the module doc)."""

    #: The dialect's positional placeholder.
    _PARAM: ClassVar[str] = "?"
    #: What the driver raises when an insert would duplicate a unique key.
    _DUPLICATE: ClassVar[type[Exception]]
    #: The condition finding a tenant's messages by provider and provider message id
    #: (parameters in that order). PostgreSQL's checks tenant and provider on the row (its
    #: index of the key is a hash of the id alone: ``postgres._PROBE_GUARD``).
    _PROVIDER_KEY: ClassVar[str] = "tenant = ? AND provider = ? AND provider_message_id = ?"
    #: The same for ``messages m`` against the key of a correlated row (``{row}``: its name).
    _PROVIDER_KEY_OF: ClassVar[str] = (
        "m.tenant = {row}.tenant AND m.provider = {row}.provider AND m.provider_message_id = {row}.provider_message_id"
    )

    @classmethod
    def _q(cls, sql: str) -> str:
        """``sql`` (written with ``?``) in this dialect's placeholders; cached per string."""
        param = cls._PARAM
        return sql if param == "?" else _rewrite(sql, param)

    # ------------------------------------------------------------------ hooks
    def _read(self) -> AbstractContextManager[Any]:
        """A connection to read with (one snapshot for the queries run on it)."""
        raise NotImplementedError

    def _write(self) -> AbstractContextManager[Any]:
        """A connection to run one writing statement with (committed on success)."""
        raise NotImplementedError

    def _tx(self) -> AbstractContextManager[Any]:
        """A connection inside one transaction of several statements (committed on success)."""
        raise NotImplementedError

    def _lock_optout(self, conn: Any, tenant: str, phone: str, scope: str) -> None:
        """Hold ``(tenant, phone, scope)``'s opt-out and opt-in for this transaction against a
        concurrent start or stop word of the same number and scope (see
        :meth:`~smsgate.store.base.Store.remove_optout`); nothing where the store's writers
        take turns already (SQLite's ``BEGIN IMMEDIATE``)."""

    def _traffic_keys(self, conn: Any, tenant: str, keys: Sequence[str]) -> dict[str, str]:
        """Lock ``tenant``'s traffic keys (creating them) for this transaction; their ``marks``."""
        raise NotImplementedError

    def _traffic_now(self, conn: Any) -> float:
        """The clock every process using this store agrees on, in seconds."""
        raise NotImplementedError

    @staticmethod
    def _decode_ts(value: Any) -> datetime:
        """A timestamp column's value as an aware UTC datetime."""
        raise NotImplementedError

    @staticmethod
    def _decode_record(row: Any) -> MessageRecord:
        """A ``messages`` row (``MESSAGE_COLUMNS``) as a record without history."""
        raise NotImplementedError

    @staticmethod
    def _encode_ts(value: datetime) -> Any:
        """A datetime as a query parameter."""
        raise NotImplementedError

    @staticmethod
    def _encode_spec(spec: dict[str, Any]) -> Any:
        """A campaign spec as a query parameter (``TypeError`` if it is not JSON-able)."""
        raise NotImplementedError

    @staticmethod
    def _decode_campaign(row: Any) -> CampaignRow:
        """A ``campaigns`` row (``CAMPAIGN_COLUMNS``)."""
        raise NotImplementedError

    @staticmethod
    def _list_row(row: Any) -> ContactListRow:
        """A row of ``_LIST_SQL``."""
        raise NotImplementedError

    @staticmethod
    def _decode_inbound(row: Any) -> InboundMessage:
        """An ``inbound_messages`` row (``INBOUND_COLUMNS``)."""
        raise NotImplementedError

    def _version(self, conn: Any) -> int:
        """The schema version recorded in the database (0: none)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ history
    def _histories(self, tenant: str, pks: Sequence[int]) -> tuple[str, Sequence[object]]:
        """A query (and its parameters) of the history events of ``tenant``'s messages ``pks``
        (at most 900), oldest first, as ``(message pk, status, raw_status, at, source, detail)``
        rows. Here through the index ``message_events (message_pk, id)``; the SQLite store
        follows its chains instead (its migration 9)."""
        return (self._q("SELECT message_pk, status, raw_status, at, source, detail FROM message_events "
                        f"WHERE tenant = ? AND message_pk IN ({','.join('?' * len(pks))}) ORDER BY id"),
                (tenant, *pks))

    def _events_of(self, messages: str) -> str:
        """``message_events WHERE`` the events of the messages whose ids ``messages`` gives (a
        parenthesised list or subquery), for a ``DELETE FROM`` or ``SELECT count(*) FROM``; its
        parameters are the tenant, then those of ``messages``. Read before the messages go."""
        return f"message_events WHERE tenant = ? AND message_pk IN {messages}"

    def _withdraw(self, conn: Any, tenant: str, message_ids: Sequence[str]) -> None:
        """Delete ``tenant``'s messages ``message_ids`` with their history, each only while still
        ``queued`` without a provider id: a write-ahead taken back (``LogWrite.withdrawn``)."""
        ids = list(dict.fromkeys(message_ids))
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = f"({','.join('?' * len(chunk))})"
            pks = [row[0] for row in conn.execute(self._q(
                f"SELECT id FROM messages WHERE tenant = ? AND message_id IN {marks} AND status = ? "
                "AND provider_message_id IS NULL"), (tenant, *chunk, Status.QUEUED.value)).fetchall()]
            if not pks:
                continue
            marks = f"({','.join('?' * len(pks))})"
            conn.execute(self._q(f"DELETE FROM {self._events_of(marks)}"), (tenant, *pks))  # (before the rows)
            conn.execute(self._q(f"DELETE FROM messages WHERE id IN {marks}"), pks)

    # ------------------------------------------------------------------ schema
    def schema_version(self) -> int:
        """The schema version recorded in the database (0: not migrated yet)."""
        with self._read() as conn:
            return self._version(conn)

    # --------------------------------------------------------------- inbound messages
    def set_inbound_action(self, tenant: str, inbound_id: int, action: str) -> None:
        """Record what was done about inbound message ``inbound_id`` (a keyword's action)."""
        with self._tx() as conn:
            conn.execute(self._q("UPDATE inbound_messages SET action = ? WHERE tenant = ? AND id = ?"),
                         (action, tenant, inbound_id))

    def list_inbound(
        self, tenant: str, *, from_number: str | None = None, limit: int = 100, before: int | None = None,
        since: datetime | None = None, action: str | None = None,
    ) -> list[InboundMessage]:
        """``tenant``'s inbound messages, newest first (``before``: ids below it, for paging)."""
        where, params = "tenant = ?", list[object]([tenant])
        if from_number is not None:
            where += " AND from_number = ?"
            params.append(from_number)
        if before is not None:
            where += " AND id < ?"
            params.append(before)
        if since is not None:
            where += " AND received_at >= ?"
            params.append(self._encode_ts(since))
        if action is not None:
            where += " AND action = ?"
            params.append(action)
        with self._read() as conn:
            rows = conn.execute(self._q(f"SELECT {INBOUND_COLUMNS} FROM inbound_messages WHERE {where} "
                                        "ORDER BY id DESC LIMIT ?"), (*params, max(limit, 0))).fetchall()
        decode = self._decode_inbound
        return [decode(row) for row in rows]

    # -------------------------------------------------------------- orphan reports
    def orphan_reports(self, tenant: str, *, provider: str | None = None, limit: int = 100) -> list[DeliveryReport]:
        where, params = "tenant = ?", list[object]([tenant])
        if provider is not None:
            where += " AND provider = ?"
            params.append(provider)
        with self._read() as conn:
            rows = conn.execute(self._q(f"SELECT report FROM orphan_reports WHERE {where} ORDER BY id LIMIT ?"),
                                (*params, max(limit, 0))).fetchall()
        # PostgreSQL hands jsonb back decoded, SQLite the text
        return [DeliveryReport.model_validate_json(r) if isinstance(r, (str, bytes))
                else DeliveryReport.model_validate(r) for (r,) in rows]

    # -------------------------------------------------------------- messages
    def messages_by_id(self, tenant: str, message_ids: Sequence[str]) -> dict[str, MessageRecord]:
        found: dict[str, MessageRecord] = {}
        ids = list(dict.fromkeys(message_ids))
        decode = self._decode_record
        with self._read() as conn:
            for start in range(0, len(ids), 900):
                part = ids[start : start + 900]
                marks = ",".join("?" * len(part))
                rows = conn.execute(
                    self._q(f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE tenant = ? AND message_id IN ({marks})"),
                    (tenant, *part),
                ).fetchall()
                for row in rows:
                    record = decode(row)
                    found[record.message_id] = record
        return found

    def find_by_provider_id(
        self, tenant: str, provider: str, provider_message_id: str
    ) -> MessageRecord | None:
        with self._read() as conn:
            row = conn.execute(
                self._q(
                    f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE {self._PROVIDER_KEY} ORDER BY id DESC LIMIT 1"
                ),
                (tenant, provider, provider_message_id),
            ).fetchone()
        return None if row is None else self._decode_record(row)

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
        where = ["tenant = ?"]
        params: list[object] = [tenant]
        if status is not None:
            where.append("status = ?")
            params.append(status.value)
        if to is not None:
            where.append("to_phone = ?")
            params.append(to)
        if campaign_id is not None:
            where.append("campaign_id = ?")
            params.append(campaign_id)
        if since is not None:
            where.append("created_at >= ?")
            params.append(self._encode_ts(since))
        with self._read() as conn:
            if before is not None:
                anchor = conn.execute(
                    self._q("SELECT created_at, id FROM messages WHERE tenant = ? AND message_id = ?"),
                    (tenant, before),
                ).fetchone()
                if anchor is None:
                    raise NotFound(f"no message {before!r} for tenant {tenant!r}")
                where.append("(created_at, id) < (?, ?)")
                params.extend(anchor)
            if limit <= 0:
                return []
            params.append(limit)
            rows = conn.execute(
                self._q(
                    f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE {' AND '.join(where)} "
                    "ORDER BY created_at DESC, id DESC LIMIT ?"
                ),
                params,
            ).fetchall()
        decode = self._decode_record
        return [decode(row) for row in rows]

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
        if limit <= 0 or not statuses or (providers is not None and not providers):
            return []
        where = [f"tenant = ? AND status IN ({','.join('?' * len(statuses))}) AND created_at < ?"]
        params: list[object] = [tenant, *(s.value for s in statuses), self._encode_ts(created_before)]
        if created_after is not None:
            where.append("created_at >= ?")
            params.append(self._encode_ts(created_after))
        if providers is not None:
            where.append(f"provider IN ({','.join('?' * len(providers))})")
            params.extend(providers)
        if exclude_providers is not None:
            where.append("provider IS NOT NULL")
            if exclude_providers:
                where.append(f"provider NOT IN ({','.join('?' * len(exclude_providers))})")
                params.extend(exclude_providers)
        decode, ts = self._decode_record, self._decode_ts
        with self._read() as conn:
            if after is not None:
                anchor = conn.execute(
                    self._q("SELECT created_at, id FROM messages WHERE tenant = ? AND message_id = ?"),
                    (tenant, after),
                ).fetchone()
                if anchor is None:
                    raise NotFound(f"no message {after!r} for tenant {tenant!r}")
                where.append("(created_at, id) > (?, ?)")
                params.extend(anchor)
            params.append(limit)
            rows = conn.execute(
                self._q(f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE {' AND '.join(where)} "
                        "ORDER BY created_at, id LIMIT ?"),
                params,
            ).fetchall()
            history: dict[int, list[StatusEvent]] = {row[0]: [] for row in rows}
            pks = list(history)
            for start in range(0, len(pks), 900):
                part = pks[start : start + 900]
                for pk, status, raw, at, source, detail in conn.execute(*self._histories(tenant, part)):
                    history[pk].append(StatusEvent(status=_STATUS[status], raw_status=raw, at=ts(at),
                                                   source=source, detail=detail))
        out = []
        for row in rows:
            record = decode(row)
            record.history = history[row[0]]
            out.append(record)
        return out

    def note_checks(self, tenant: str, message_ids: Sequence[str], *, at: datetime, source: str,
                    detail: str | None = None) -> int:
        if not message_ids:
            return 0
        written = 0
        sql = self._q("INSERT INTO message_events (tenant, message_pk, status, raw_status, at, source, detail) "
                      "SELECT tenant, id, status, raw_status, ?, ?, ? FROM messages "
                      "WHERE tenant = ? AND message_id = ?")
        when = self._encode_ts(at)
        with self._tx() as conn:
            for mid in dict.fromkeys(message_ids):
                written += conn.execute(sql, (when, source, detail, tenant, mid)).rowcount
        return written

    def count_by_status(
        self, tenant: str, *, campaign_id: str | None = None, provider: str | None = None
    ) -> dict[Status, int]:
        where = ["tenant = ?"]
        params: list[object] = [tenant]
        if campaign_id is not None:
            where.append("campaign_id = ?")
            params.append(campaign_id)
        if provider is not None:
            where.append("provider = ?")
            params.append(provider)
        counts = dict.fromkeys(Status, 0)
        with self._read() as conn:
            for status, n in conn.execute(
                self._q(f"SELECT status, count(*) FROM messages WHERE {' AND '.join(where)} GROUP BY status"),
                params,
            ):
                counts[_STATUS[status]] = int(n)
        return counts

    def _times_filter(
        self,
        tenant: str,
        campaign_id: str | None,
        provider: str | None,
        since: datetime | None,
        until: datetime | None,
    ) -> tuple[str, list[object]]:
        """The ``WHERE`` condition (in this dialect) and parameters of ``message_times``."""
        where = ["tenant = ?"]
        params: list[object] = [tenant]
        if campaign_id is not None:
            where.append("campaign_id = ?")
            params.append(campaign_id)
        if provider is not None:
            where.append("provider = ?")
            params.append(provider)
        if since is not None:
            where.append("created_at >= ?")
            params.append(self._encode_ts(since))
        if until is not None:
            where.append("created_at < ?")
            params.append(self._encode_ts(until))
        return self._q(" AND ".join(where)), params

    # -------------------------------------------------------------- opt-outs
    def remove_optout(self, tenant: str, phone: str, scope: str | None = EVERY_SENDER, *,
                      not_after: datetime | None = None) -> bool:
        sql, params = "DELETE FROM optouts WHERE tenant = ? AND phone = ?", [tenant, phone]
        if scope is not None:
            sql += " AND scope = ?"
            params.append(optout_scope(scope))
        if not_after is not None:
            sql += " AND created_at <= ?"
            params.append(self._encode_ts(not_after))
        if not_after is None or scope is None:
            with self._write() as conn:
                cur = conn.execute(self._q(sql), params)
                return bool(cur.rowcount > 0)
        key = optout_scope(scope)
        with self._tx() as conn:  # the opt-in recorded with the removal (see Store.remove_optout)
            self._lock_optout(conn, tenant, phone, key)
            conn.execute(self._q("INSERT INTO optins (tenant, phone, scope, said_at) VALUES (?, ?, ?, ?) "
                                 "ON CONFLICT (tenant, phone, scope) DO UPDATE SET said_at = excluded.said_at "
                                 "WHERE optins.said_at < excluded.said_at"),
                         (tenant, phone, key, self._encode_ts(not_after)))
            cur = conn.execute(self._q(sql), params)
            return bool(cur.rowcount > 0)

    def count_optouts(self, tenant: str) -> int:
        with self._read() as conn:
            row = conn.execute(self._q("SELECT count(*) FROM optouts WHERE tenant = ?"), (tenant,)).fetchone()
        return int(row[0]) if row is not None else 0

    # -------------------------------------------------------------- campaigns
    def create_campaign(self, row: CampaignRow) -> None:
        encode_ts = self._encode_ts
        params = (
            row.tenant,
            row.campaign_id,
            row.name,
            row.status.value,
            encode_ts(row.created_at),
            encode_ts(row.updated_at),
            self._encode_spec(row.spec),
            None if row.start_at is None else encode_ts(row.start_at),
            row.provider,
            row.provider_campaign_id,
            row.error,
        )
        with self._write() as conn:
            try:
                conn.execute(
                    self._q(f"INSERT INTO campaigns ({CAMPAIGN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"),
                    params,
                )
            except self._DUPLICATE as exc:
                raise ValidationError(
                    f"a campaign {row.campaign_id!r} already exists for tenant {row.tenant!r}; give another "
                    "campaign_id, or none for a new one", field="campaign_id"
                ) from exc

    def _get_campaign(self, conn: Any, tenant: str, campaign_id: str) -> CampaignRow:
        row = conn.execute(
            self._q(f"SELECT {CAMPAIGN_COLUMNS} FROM campaigns WHERE tenant = ? AND campaign_id = ?"),
            (tenant, campaign_id),
        ).fetchone()
        if row is None:
            raise NotFound(f"no campaign {campaign_id!r} for tenant {tenant!r}")
        return self._decode_campaign(row)

    def get_campaign(self, tenant: str, campaign_id: str) -> CampaignRow:
        with self._read() as conn:
            return self._get_campaign(conn, tenant, campaign_id)

    def campaign_tenants(self) -> list[str]:
        # a loose index scan of the campaigns' tenant-led index: one probe per tenant
        with self._read() as conn:
            rows = conn.execute(self._q(
                "WITH RECURSIVE t(tenant) AS (SELECT min(tenant) FROM campaigns UNION ALL "
                "SELECT (SELECT min(tenant) FROM campaigns WHERE tenant > t.tenant) FROM t "
                "WHERE t.tenant IS NOT NULL) SELECT tenant FROM t WHERE tenant IS NOT NULL")).fetchall()
        return sorted(str(r[0]) for r in rows)

    def campaigns_to_recover(self, tenant: str) -> list[str]:
        # one probe of the recipients' (tenant, campaign_id, state, id) index per campaign
        probe = ("EXISTS (SELECT 1 FROM campaign_recipients r WHERE r.tenant = c.tenant "
                 "AND r.campaign_id = c.campaign_id AND r.state = ?)")
        with self._read() as conn:
            rows = conn.execute(self._q(
                f"SELECT c.campaign_id FROM campaigns c WHERE c.tenant = ? AND ({probe} "
                f"OR (c.status = ? AND {probe})) ORDER BY c.created_at DESC, c.id DESC"),
                (tenant, RecipientState.SENDING.value, CampaignStatus.CANCELLED.value,
                 RecipientState.PENDING.value)).fetchall()
        return [str(r[0]) for r in rows]

    def list_campaigns(self, tenant: str, *, limit: int = 100) -> list[CampaignRow]:
        if limit <= 0:
            return []
        with self._read() as conn:
            rows = conn.execute(
                self._q(
                    f"SELECT {CAMPAIGN_COLUMNS} FROM campaigns WHERE tenant = ? "
                    "ORDER BY created_at DESC, id DESC LIMIT ?"
                ),
                (tenant, limit),
            ).fetchall()
        decode = self._decode_campaign
        return [decode(row) for row in rows]

    def delete_recipients(self, tenant: str, campaign_id: str) -> int:
        with self._write() as conn:
            cur = conn.execute(
                self._q("DELETE FROM campaign_recipients WHERE tenant = ? AND campaign_id = ?"),
                (tenant, campaign_id),
            )
            return int(cur.rowcount)

    def delete_campaign(self, tenant: str, campaign_id: str) -> bool:
        with self._tx() as conn:
            for table in ("campaign_runners", "campaign_recipients"):
                conn.execute(self._q(f"DELETE FROM {table} WHERE tenant = ? AND campaign_id = ?"),
                             (tenant, campaign_id))
            cur = conn.execute(self._q("DELETE FROM campaigns WHERE tenant = ? AND campaign_id = ?"),
                               (tenant, campaign_id))
            return int(cur.rowcount) > 0

    # --------------------------------------------------------- campaign runners
    def start_runner(self, tenant: str, campaign_id: str, owner: str, lease_until: datetime) -> None:
        with self._write() as conn:
            conn.execute(
                self._q(
                    "INSERT INTO campaign_runners (tenant, campaign_id, owner, lease_until) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (tenant, campaign_id, owner) DO UPDATE SET lease_until = excluded.lease_until"
                ),
                (tenant, campaign_id, owner, self._encode_ts(lease_until)),
            )

    def renew_runner(self, tenant: str, campaign_id: str, owner: str, lease_until: datetime) -> bool:
        with self._write() as conn:
            cur = conn.execute(
                self._q(
                    "UPDATE campaign_runners SET lease_until = ? WHERE tenant = ? AND campaign_id = ? AND owner = ?"
                ),
                (self._encode_ts(lease_until), tenant, campaign_id, owner),
            )
            return int(cur.rowcount) > 0

    def stop_runner(self, tenant: str, campaign_id: str, owner: str) -> None:
        with self._write() as conn:
            conn.execute(
                self._q("DELETE FROM campaign_runners WHERE tenant = ? AND campaign_id = ? AND owner = ?"),
                (tenant, campaign_id, owner),
            )

    def runner_leases(self, tenant: str, campaign_id: str) -> dict[str, datetime]:
        with self._read() as conn:
            rows = conn.execute(
                self._q("SELECT owner, lease_until FROM campaign_runners WHERE tenant = ? AND campaign_id = ?"),
                (tenant, campaign_id),
            ).fetchall()
        decode = self._decode_ts
        return {owner: decode(until) for owner, until in rows}

    # ------------------------------------------------------------- send leases
    def put_send_lease(self, tenant: str, owner: str, lease_until: datetime, oldest: datetime) -> None:
        with self._write() as conn:
            conn.execute(
                self._q(
                    "INSERT INTO send_leases (tenant, owner, lease_until, oldest) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (tenant, owner) DO UPDATE SET lease_until = excluded.lease_until, "
                    "oldest = excluded.oldest"
                ),
                (tenant, owner, self._encode_ts(lease_until), self._encode_ts(oldest)),
            )

    def end_send_lease(self, tenant: str, owner: str) -> None:
        with self._write() as conn:
            conn.execute(self._q("DELETE FROM send_leases WHERE tenant = ? AND owner = ?"), (tenant, owner))

    def send_leases(self, tenant: str) -> dict[str, tuple[datetime, datetime]]:
        with self._read() as conn:
            rows = conn.execute(
                self._q("SELECT owner, lease_until, oldest FROM send_leases WHERE tenant = ?"), (tenant,)
            ).fetchall()
        decode = self._decode_ts
        return {owner: (decode(until), decode(oldest)) for owner, until, oldest in rows}

    def recipient_counts(self, tenant: str, campaign_id: str) -> dict[tuple[RecipientState, str | None], int]:
        with self._read() as conn:
            rows = conn.execute(
                self._q(
                    "SELECT state, reason, count(*) FROM campaign_recipients "
                    "WHERE tenant = ? AND campaign_id = ? GROUP BY state, reason"
                ),
                (tenant, campaign_id),
            ).fetchall()
        return {(_STATE[state], reason): int(n) for state, reason, n in rows}

    # ----------------------------------------------------------- contact lists
    _LIST_SQL = (
        "SELECT l.tenant, l.list_id, l.name, l.created_at, l.description,"
        " (SELECT count(*) FROM contacts c WHERE c.tenant = l.tenant AND c.list_id = l.list_id)"
        " FROM contact_lists l WHERE l.tenant = ?"
    )

    # ---------------------------------------------------------------- tenants
    def tenants_version(self) -> int:
        with self._read() as conn:
            row = conn.execute("SELECT version FROM tenant_changes").fetchone()
        return int(row[0]) if row is not None else 0

    def _tenant_row(self, row: Any) -> TenantRow:
        return TenantRow(name=row[0], config=row[1], secrets=row[2], version=int(row[3]),
                         updated_at=self._decode_ts(row[4]))

    def get_tenant_row(self, name: str) -> TenantRow | None:
        with self._read() as conn:
            row = conn.execute(self._q(f"SELECT {_TENANT_COLUMNS} FROM stored_tenants WHERE name = ?"),
                               (name,)).fetchone()
        return None if row is None else self._tenant_row(row)

    def list_tenant_rows(self) -> list[TenantRow]:
        with self._read() as conn:
            rows = conn.execute(f"SELECT {_TENANT_COLUMNS} FROM stored_tenants ORDER BY name").fetchall()
        return [self._tenant_row(row) for row in rows]

    def put_tenant_row(self, name: str, config: str, secrets: str, *, create: bool | None = None,
                       expected_version: int | None = None) -> int:
        with self._tx() as conn:
            # the one-row counter is locked until commit: writers of tenants queue here
            conn.execute("UPDATE tenant_changes SET version = version + 1")
            version = int(conn.execute("SELECT version FROM tenant_changes").fetchone()[0])
            exists = conn.execute(self._q("SELECT version FROM stored_tenants WHERE name = ?"), (name,)).fetchone()
            if expected_version is not None and (exists is None or int(exists[0]) != expected_version):
                raise TenantChanged(f"tenant {name!r} changed since it was read (version {expected_version})")
            if exists is not None and create is True:
                raise ValueError(f"tenant {name!r} is already stored")
            if exists is None and create is False:
                raise NotFound(f"tenant {name!r} is not stored")
            now = self._encode_ts(utcnow())
            if exists is None:
                conn.execute(self._q("INSERT INTO stored_tenants (name, config, secrets, version, updated_at) "
                                     "VALUES (?, ?, ?, ?, ?)"), (name, config, secrets, version, now))
            else:
                conn.execute(self._q("UPDATE stored_tenants SET config = ?, secrets = ?, version = ?, "
                                     "updated_at = ? WHERE name = ?"), (config, secrets, version, now, name))
        return version

    def delete_tenant_row(self, name: str) -> bool:
        with self._tx() as conn:
            found = conn.execute(self._q("DELETE FROM stored_tenants WHERE name = ?"), (name,)).rowcount > 0
            if found:
                conn.execute("UPDATE tenant_changes SET version = version + 1")
        return bool(found)

    def tenant_data(self, tenant: str) -> list[str]:
        with self._read() as conn:
            return [kind for kind, table in _TENANT_DATA_TABLES.items()
                    if conn.execute(self._q(f"SELECT 1 FROM {table} WHERE tenant = ? LIMIT 1"), (tenant,)).fetchone()]

    def erase_tenant(self, tenant: str) -> int:
        deleted = 0
        with self._tx() as conn:
            # the tenants' counter row first, as put_tenant_row: a tenant stored meanwhile (one
            # adopting this data) waits for this transaction, or is seen by the check below
            conn.execute("UPDATE tenant_changes SET version = version + 1")
            if conn.execute(self._q("SELECT 1 FROM stored_tenants WHERE name = ?"), (tenant,)).fetchone():
                raise erase_refused(tenant)
            for table in _TENANT_TABLES:
                deleted += max(0, conn.execute(self._q(f"DELETE FROM {table} WHERE tenant = ?"), (tenant,)).rowcount)
        return deleted

    def create_contact_list(self, row: ContactListRow) -> None:
        with self._write() as conn:
            try:
                conn.execute(
                    self._q(
                        "INSERT INTO contact_lists (tenant, list_id, name, description, created_at) "
                        "VALUES (?, ?, ?, ?, ?)"
                    ),
                    (row.tenant, row.list_id, row.name, row.description, self._encode_ts(row.created_at)),
                )
            except self._DUPLICATE:
                raise ValidationError(
                    f"a contact list {row.list_id!r} already exists for tenant {row.tenant!r}; give another "
                    "list_id, or none for a new one", field="list_id"
                ) from None

    def get_contact_list(self, tenant: str, list_id: str) -> ContactListRow:
        with self._read() as conn:
            row = conn.execute(self._q(self._LIST_SQL + " AND l.list_id = ?"), (tenant, list_id)).fetchone()
        if row is None:
            raise NotFound(f"no contact list {list_id!r} for tenant {tenant!r}")
        return self._list_row(row)

    def list_contact_lists(self, tenant: str) -> list[ContactListRow]:
        with self._read() as conn:
            rows = conn.execute(
                self._q(self._LIST_SQL + " ORDER BY l.created_at DESC, l.id DESC"), (tenant,)
            ).fetchall()
        decode = self._list_row
        return [decode(r) for r in rows]

    # ----------------------------------------------------------------- traffic
    def traffic(self, tenant: str, horizons: Mapping[str, float],
                fn: Callable[[dict[str, KeyState], float], T]) -> T:
        keys = sorted(horizons)  # locked in one order by every process: no deadlock
        with self._tx() as conn:
            marks = self._traffic_keys(conn, tenant, keys)
            now = self._traffic_now(conn)
            states: dict[str, KeyState] = {}
            for key in keys:
                since = now - horizons[key]
                rows = conn.execute(
                    self._q(
                        "SELECT id, messages, segments, started, ended, expires FROM traffic_entries "
                        "WHERE tenant = ? AND key = ? AND coalesce(ended, expires) > ?"
                    ),
                    (tenant, key, since),
                ).fetchall()
                entries = [Entry(r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows]
                states[key] = state = KeyState(key, json.loads(marks[key]), entries)
                steady(state, now)  # the clock stepped back: the state brought back to it
            result = fn(states, now)
            for key, state in states.items():
                if state.marks_changed:
                    conn.execute(self._q("UPDATE traffic_keys SET marks = ? WHERE tenant = ? AND key = ?"),
                                 (json.dumps(state.marks), tenant, key))
                for e in state.added:
                    conn.execute(
                        self._q(
                            "INSERT INTO traffic_entries (tenant, key, id, messages, segments, started, ended, "
                            "expires) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                        ),
                        (tenant, key, e.id, e.messages, e.segments, e.start, e.end, e.expires),
                    )
                for e in state.moved:
                    conn.execute(
                        self._q("UPDATE traffic_entries SET started = ?, ended = ?, expires = ? "
                                "WHERE tenant = ? AND key = ? AND id = ?"),
                        (e.start, e.end, e.expires, tenant, key, e.id),
                    )
                for entry_id, ended in state.answered.items():
                    conn.execute(
                        self._q("UPDATE traffic_entries SET ended = ? WHERE tenant = ? AND key = ? AND id = ?"),
                        (ended, tenant, key, entry_id),
                    )
                if state.answered:  # forget what no longer counts, as requests are answered
                    conn.execute(
                        self._q(
                            "DELETE FROM traffic_entries WHERE tenant = ? AND key = ? "
                            "AND coalesce(ended, expires) <= ?"
                        ),
                        (tenant, key, now - horizons[key]),
                    )
        return result
