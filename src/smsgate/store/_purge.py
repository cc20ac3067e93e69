"""Retention for the SQL stores: :meth:`Store.purge <smsgate.store.base.Store.purge>` written once.

Both SQL stores (:mod:`~smsgate.store.sqlite`, :mod:`~smsgate.store.postgres`) call
:func:`purge`; the SQL is written with ``?`` placeholders and rewritten by the
store's ``_q`` (see :mod:`smsgate.store._sql`).

How it stays out of the way of live traffic:

* every read that decides what to delete walks an existing index in bounded
  pages (``messages_created`` for messages, ``messages_campaign`` for a campaign's
  messages, primary keys elsewhere; a message's events are found the store's way,
  ``_events_of``: SQLite follows each message's chain of events by their primary key):
  no schema change, no table scan holding a lock;
* every delete is its own short transaction over at most ``batch_size`` messages
  (and their events and parts) or rows: PostgreSQL holds row locks for
  milliseconds, SQLite's write lock is released between batches so senders and
  report ingestion interleave;
* a message is deleted only if it is final when its batch's transaction runs (a
  final status never changes), and a campaign's rows only while it is still
  finished, checked (and, on PostgreSQL, locked) in every batch's transaction;
* the order is children first (events and parts, then the message; recipients and
  messages, then the campaign), so an interrupted purge leaves nothing dangling
  that a later run would not find;
* report parts are recorded before their report is matched, so a part of a message
  never logged, or one arriving after its message was purged, has an orphan report
  beside it: it goes in the batch deleting the last orphan report (before the cutoff)
  of its message id, unless a message has that id.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from smsgate.errors import ValidationError, check_bool
from smsgate.lifecycle import FINAL
from smsgate.models import FINISHED_CAMPAIGNS, utcnow
from smsgate.store._rules import to_utc
from smsgate.store.base import PurgeResult, RecipientState

__all__ = ["FINISHED", "check_purge", "purge"]

#: The largest ``batch_size``: a store's integer (SQLite's, PostgreSQL's ``bigint``) holds no more.
_MAX_BATCH = 2**63 - 1


def check_purge(tenant: object, before: object, dry_run: object, batch_size: object) -> datetime:
    """The arguments of :meth:`Store.purge <smsgate.store.base.Store.purge>` checked, for every
    store and for ``gw.purge`` / ``tenant.purge`` before they change anything: ``before`` as a
    UTC datetime; a :class:`ValidationError` naming the first bad one (``before="2026-01-01"``
    was an ``AttributeError``, ``batch_size="10"`` a ``TypeError``)."""
    if tenant is not None and (not isinstance(tenant, str) or not tenant.strip()):  # "" would purge nothing, silently
        raise ValidationError(f"expected a tenant name or None (every tenant), got {tenant!r}"
                              if isinstance(tenant, str) else
                              f"expected a tenant name or None (every tenant), got {type(tenant).__name__}",
                              field="tenant", location="purge")
    if not isinstance(before, datetime):
        raise ValidationError(f"expected a datetime (a naive one is UTC), got {type(before).__name__}: "
                              "for 'that long ago' use gw.purge(older_than='90d')", field="before", location="purge")
    check_bool("dry_run", dry_run, "purge")  # "false" would be a dry run, None a purge
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or not 1 <= batch_size <= _MAX_BATCH:
        raise ValidationError(f"batch_size must be a whole number from 1 to {_MAX_BATCH}, not {batch_size!r}",
                              field="batch_size", location="purge")
    return to_utc(before)

#: Campaign statuses a campaign can be purged in (:attr:`CampaignStatus.is_finished
#: <smsgate.models.CampaignStatus.is_finished>`: no run sends for it by itself any more).
FINISHED = tuple(sorted(FINISHED_CAMPAIGNS))

_FINAL = tuple(sorted(s.value for s in FINAL))
_FINAL_IN = f"({','.join('?' * len(_FINAL))})"
_FINISHED = tuple(s.value for s in FINISHED)
_FINISHED_IN = f"({','.join('?' * len(_FINISHED))})"
#: Values per ``IN (...)`` list (ids) or pair list (provider ids).
_CHUNK = 500

#: Tables whose tenants a purge of every tenant visits (each has an index led by ``tenant``).
_TENANT_TABLES = ("messages", "campaigns", "inbound_messages", "orphan_reports", "idempotency_keys",
                  "traffic_entries")

_MessageRow = tuple[Any, Any, Any]  # (id, provider, provider_message_id)


def purge(store: Any, tenant: str | None, *, before: datetime, dry_run: bool, batch_size: int,
          lock_campaign: str = "", give_way: Callable[[float], None] | None = None) -> PurgeResult:
    """:meth:`Store.purge` for a SQL store (a :class:`~smsgate.store._sql.SQLQueries`).

    ``lock_campaign`` is the clause locking a campaign row for the rest of a
    transaction (PostgreSQL: ``" FOR UPDATE"``; SQLite's write lock already excludes
    every other writer). ``give_way(seconds)`` is called after each write transaction
    with how long it lasted (SQLite: a pause, so that writers waiting for the database's
    one write lock get it between two batches).
    """
    before = check_purge(tenant, before, dry_run, batch_size)
    run = _Purge(store, before, dry_run, batch_size, lock_campaign, give_way)
    tenants = [tenant] if tenant is not None else run.tenants()
    for name in tenants:
        run.campaigns(name)
        run.messages(name)
        run.keys(name)
        run.traffic(name)
    run.by_id("inbound_messages", "received_at", tenant, "inbound")
    run.orphans(tenant)
    return run.result


class _Purge:
    def __init__(self, store: Any, before: datetime, dry_run: bool, batch: int, lock_campaign: str,
                 give_way: Callable[[float], None] | None) -> None:
        self.store = store
        self.give_way = give_way
        self.q = store._q
        self.before = before
        self.cutoff = store._encode_ts(before)
        self.batch = batch
        self.lock_campaign = lock_campaign
        self.result = PurgeResult(dry_run=dry_run)
        #: campaigns this run purges (or, dry, would): their messages are counted there
        self.purged_campaigns: set[str] = set()
        #: (tenant, provider, provider message id) whose dangling report parts went (dry: were counted)
        self.parts_done: set[tuple[str, str, str]] = set()

    @contextmanager
    def _batch(self) -> Iterator[Any]:
        """One batch's connection: a write transaction (then ``give_way``), or a read one for a dry run."""
        if self.result.dry_run:
            with self.store._read() as conn:
                yield conn
            return
        start = time.perf_counter()
        with self.store._tx() as conn:
            yield conn
        if self.give_way is not None:
            self.give_way(time.perf_counter() - start)

    # ------------------------------------------------------------------ tenants
    def tenants(self) -> list[str]:
        """Every tenant with rows a purge may delete: a loose index scan per table (one
        probe per tenant, not a scan of the rows)."""
        found: set[str] = set()
        with self.store._read() as conn:
            for table in _TENANT_TABLES:
                rows = conn.execute(self.q(
                    f"WITH RECURSIVE t(tenant) AS (SELECT min(tenant) FROM {table} UNION ALL "
                    f"SELECT (SELECT min(tenant) FROM {table} WHERE tenant > t.tenant) FROM t "
                    "WHERE t.tenant IS NOT NULL) SELECT tenant FROM t WHERE tenant IS NOT NULL")).fetchall()
                found.update(str(r[0]) for r in rows)
        return sorted(found)

    # ----------------------------------------------------------------- messages
    def messages(self, tenant: str) -> None:
        """Final messages logged before the cutoff that belong to no campaign (or to one
        no longer stored), walking ``messages_created`` (tenant, created_at, id) in pages."""
        anchor: tuple[Any, Any] | None = None
        known: dict[str, bool] = {}  # campaign id -> stored
        while True:
            where = "tenant = ? AND created_at < ?"
            params: list[object] = [tenant, self.cutoff]
            if anchor is not None:
                where += " AND (created_at, id) > (?, ?)"
                params.extend(anchor)
            with self.store._read() as conn:
                rows = conn.execute(self.q(
                    "SELECT id, provider, provider_message_id, status, campaign_id, created_at FROM messages "
                    f"WHERE {where} ORDER BY created_at, id LIMIT ?"), (*params, self.batch)).fetchall()
                unknown = sorted({r[4] for r in rows if r[4] is not None and r[4] not in known})
                for chunk in _chunks(unknown):
                    stored = {r[0] for r in conn.execute(self.q(
                        f"SELECT campaign_id FROM campaigns WHERE tenant = ? AND campaign_id IN {_marks(chunk)}"),
                        (tenant, *chunk))}
                    known.update((cid, cid in stored) for cid in chunk)
            if not rows:
                return
            anchor = (rows[-1][5], rows[-1][0])
            doomed: list[_MessageRow] = []
            for pk, provider, pmid, status, campaign_id, _ in rows:
                if campaign_id is not None and known.get(campaign_id):
                    if campaign_id not in self.purged_campaigns:
                        self.result.kept_messages += 1
                elif status in _FINAL:
                    doomed.append((pk, provider, pmid))
                else:
                    self.result.kept_messages += 1
            if doomed:
                self._drop_messages(tenant, [r[0] for r in doomed])
            if len(rows) < self.batch:
                return

    def _drop_messages(self, tenant: str, ids: Sequence[Any], campaign_id: str | None = None) -> int | None:
        """Delete (dry: count) those of these messages that are final, with their events
        and report parts, in one transaction; how many. With ``campaign_id`` only while
        that campaign is still finished (``None``, nothing done, otherwise)."""
        r = self.result
        with self._batch() as conn:
            if campaign_id is not None and not self._still_finished(conn, tenant, campaign_id):
                return None
            # by primary key alone: the ids come from this tenant's walk, and a tenant term
            # would make SQLite read all the tenant's rows through a (tenant, ...) index
            ids = list(ids)
            rows: list[_MessageRow] = []
            for chunk in _chunks(ids):
                rows.extend(conn.execute(self.q(
                    f"SELECT id, provider, provider_message_id FROM messages WHERE id IN "
                    f"{_marks(chunk)} AND status IN {_FINAL_IN}"), (*chunk, *_FINAL)).fetchall())
            pks = [row[0] for row in rows]
            pairs = sorted({(p, m) for _, p, m in rows if p is not None and m is not None})
            verb = "SELECT count(*) FROM" if r.dry_run else "DELETE FROM"
            for chunk in _chunks(pks):
                # the events first: a store may find them through their message's row
                r.events += self._run(conn, f"{verb} {self.store._events_of(_marks(chunk))}", (tenant, *chunk))
                r.messages += self._run(conn, f"{verb} messages WHERE id IN {_marks(chunk)}", chunk)
            for chunk_pairs in _chunks(pairs):
                values = ",".join("(?, ?)" for _ in chunk_pairs)
                r.report_parts += self._run(
                    conn, f"{verb} report_parts WHERE tenant = ? AND (provider, provider_message_id) IN "
                          f"(VALUES {values})", (tenant, *(x for pair in chunk_pairs for x in pair)))
        return len(pks)

    def _run(self, conn: Any, sql: str, params: Sequence[object]) -> int:
        """Run a ``DELETE`` (rows deleted) or a ``SELECT count(*)`` (its count)."""
        cur = conn.execute(self.q(sql), params)
        if self.result.dry_run:
            row = cur.fetchone()
            return int(row[0]) if row is not None else 0
        return int(cur.rowcount)

    # ---------------------------------------------------------------- campaigns
    def campaigns(self, tenant: str) -> None:
        """Campaigns finished before the cutoff, each whole (messages, recipients, runners,
        the campaign) when every message of it is final and no runner holds it."""
        with self.store._read() as conn:
            rows = conn.execute(self.q(
                f"SELECT campaign_id FROM campaigns WHERE tenant = ? AND status IN {_FINISHED_IN} "
                "AND updated_at < ? ORDER BY created_at, id"), (tenant, *_FINISHED, self.cutoff)).fetchall()
        for (campaign_id,) in rows:
            if self._campaign_busy(tenant, campaign_id):
                self.result.kept_campaigns += 1
                continue
            if self._drop_campaign(tenant, campaign_id):
                self.purged_campaigns.add(campaign_id)
            else:
                self.result.kept_campaigns += 1

    def _campaign_busy(self, tenant: str, campaign_id: str) -> bool:
        """Whether a runner still holds a live lease or a claim, or a message is not final."""
        held = (RecipientState.PENDING.value, RecipientState.SENDING.value)
        with self.store._read() as conn:
            if conn.execute(self.q("SELECT 1 FROM campaign_runners WHERE tenant = ? AND campaign_id = ? "
                                   "AND lease_until > ? LIMIT 1"),
                            (tenant, campaign_id, self.store._encode_ts(utcnow()))).fetchone():
                return True
            if conn.execute(self.q("SELECT 1 FROM campaign_recipients WHERE tenant = ? AND campaign_id = ? "
                                   "AND state IN (?, ?) LIMIT 1"), (tenant, campaign_id, *held)).fetchone():
                return True
            return conn.execute(self.q(f"SELECT 1 FROM messages WHERE tenant = ? AND campaign_id = ? "
                                       f"AND status NOT IN {_FINAL_IN} LIMIT 1"),
                                (tenant, campaign_id, *_FINAL)).fetchone() is not None

    def _still_finished(self, conn: Any, tenant: str, campaign_id: str) -> bool:
        """Whether the campaign is still finished and no runner took a live lease on it
        since it was chosen (checked in every batch's transaction)."""
        row = conn.execute(self.q("SELECT status FROM campaigns WHERE tenant = ? AND campaign_id = ?"
                                  + ("" if self.result.dry_run else self.lock_campaign)),
                           (tenant, campaign_id)).fetchone()
        if row is None or row[0] not in _FINISHED:
            return False
        return conn.execute(self.q("SELECT 1 FROM campaign_runners WHERE tenant = ? AND campaign_id = ? "
                                   "AND lease_until > ? LIMIT 1"),
                            (tenant, campaign_id, self.store._encode_ts(utcnow()))).fetchone() is None

    def _drop_campaign(self, tenant: str, campaign_id: str) -> bool:
        """Delete (dry: count) one campaign in batches: its messages, then its recipients,
        then its runners and row. False if it stopped being finished on the way."""
        r = self.result
        if r.dry_run:
            return self._count_campaign(tenant, campaign_id)
        while True:
            with self.store._read() as conn:
                ids = [row[0] for row in conn.execute(self.q(
                    "SELECT id FROM messages WHERE tenant = ? AND campaign_id = ? LIMIT ?"),
                    (tenant, campaign_id, self.batch))]
            if not ids:
                break
            if self._drop_messages(tenant, ids, campaign_id) != len(ids):
                return False  # no longer finished, or a message not final after all
        while True:
            with self._batch() as conn:
                if not self._still_finished(conn, tenant, campaign_id):
                    return False
                n = int(conn.execute(self.q(
                    "DELETE FROM campaign_recipients WHERE id IN (SELECT id FROM campaign_recipients "
                    "WHERE tenant = ? AND campaign_id = ? ORDER BY id LIMIT ?)"),
                    (tenant, campaign_id, self.batch)).rowcount)
            r.recipients += n
            if n < self.batch:
                break
        with self._batch() as conn:
            if not self._still_finished(conn, tenant, campaign_id):
                return False
            conn.execute(self.q("DELETE FROM campaign_runners WHERE tenant = ? AND campaign_id = ?"),
                         (tenant, campaign_id))
            r.campaigns += int(conn.execute(self.q(
                "DELETE FROM campaigns WHERE tenant = ? AND campaign_id = ?"), (tenant, campaign_id)).rowcount)
        return True

    def _count_campaign(self, tenant: str, campaign_id: str) -> bool:
        r = self.result
        with self.store._read() as conn:
            if not self._still_finished(conn, tenant, campaign_id):
                return False
            where = "tenant = ? AND campaign_id = ?"
            r.messages += _count(conn, self.q(f"SELECT count(*) FROM messages WHERE {where}"), (tenant, campaign_id))
            r.events += _count(conn, self.q(
                f"SELECT count(*) FROM {self.store._events_of(f'(SELECT id FROM messages WHERE {where})')}"),
                (tenant, tenant, campaign_id))
            r.report_parts += _count(conn, self.q(
                "SELECT count(*) FROM report_parts p WHERE p.tenant = ? AND (p.provider, p.provider_message_id) "
                f"IN (SELECT provider, provider_message_id FROM messages WHERE {where})"),
                (tenant, tenant, campaign_id))
            r.recipients += _count(conn, self.q(f"SELECT count(*) FROM campaign_recipients WHERE {where}"),
                                   (tenant, campaign_id))
            r.campaigns += 1
        return True

    # --------------------------------------------------------- keys and traffic
    def keys(self, tenant: str) -> None:
        """Idempotency keys bound before the cutoff, walking the primary key (tenant, key)."""
        self._walk(tenant, "idempotency_keys", ("key",), "created_at < ?", self.cutoff, "idempotency_keys")

    def traffic(self, tenant: str) -> None:
        """Rate-limit entries of requests answered (or expired) before the cutoff (the
        traffic clock is in seconds), walking the primary key (tenant, key, id)."""
        self._walk(tenant, "traffic_entries", ("key", "id"), "coalesce(ended, expires) < ?",
                   self.before.timestamp(), "traffic_entries")

    def _walk(self, tenant: str | None, table: str, key: tuple[str, ...], cond: str, param: object,
              counter: str, *, by_key: bool = False) -> None:
        """Delete (dry: count) the rows of ``table`` meeting ``cond`` (of ``tenant``, or
        of every tenant), a page of ``batch`` rows in primary key order (``key``, after
        ``tenant`` when given) at a time: each page is read by key, never by scanning."""
        r = self.result
        cols = ", ".join(key)
        tup = f"({cols})" if len(key) > 1 else cols
        marks = f"({', '.join('?' * len(key))})" if len(key) > 1 else "?"
        mine: tuple[object, ...] = () if tenant is None else (tenant,)
        # by_key: the primary key does not start with the tenant: an expression of it keeps
        # SQLite from reading the tenant's rows through another index instead of the key
        only = "" if tenant is None else ("tenant || '' = ? AND " if by_key else "tenant = ? AND ")
        verb = "SELECT count(*) FROM" if r.dry_run else "DELETE FROM"
        last: tuple[object, ...] | None = None
        while True:
            after = "" if last is None else f" AND {tup} > {marks}"
            bound = () if last is None else last
            with self.store._read() as conn:
                upto = conn.execute(self.q(
                    f"SELECT {cols} FROM {table} WHERE {only}1 = 1{after} ORDER BY {cols} LIMIT 1 OFFSET ?"),
                    (*mine, *bound, self.batch - 1)).fetchone()
            until = "" if upto is None else f" AND {tup} <= {marks}"
            with self._batch() as conn:
                n = self._run(conn, f"{verb} {table} WHERE {only}1 = 1{after}{until} AND {cond}",
                              (*mine, *bound, *(() if upto is None else tuple(upto)), param))
            setattr(r, counter, getattr(r, counter) + n)
            if upto is None:
                return
            last = tuple(upto)

    def orphans(self, tenant: str | None) -> None:
        """Orphan reports received before the cutoff (of ``tenant``, or of every tenant),
        walking the primary key a page at a time, and in each page's transaction the report
        parts of their message ids that nothing else keeps (:meth:`_dangling_parts`)."""
        r = self.result
        mine: tuple[object, ...] = () if tenant is None else (tenant,)
        only = "" if tenant is None else "tenant || '' = ? AND "  # the primary key, not the tenant index
        verb = "SELECT count(*) FROM" if r.dry_run else "DELETE FROM"
        last: object = None
        while True:
            after = "" if last is None else " AND id > ?"
            bound = () if last is None else (last,)
            with self.store._read() as conn:
                upto = conn.execute(self.q(
                    f"SELECT id FROM orphan_reports WHERE {only}1 = 1{after} ORDER BY id LIMIT 1 OFFSET ?"),
                    (*mine, *bound, self.batch - 1)).fetchone()
            window = f"{only}1 = 1{after}{'' if upto is None else ' AND id <= ?'} AND received_at < ?"
            params = (*mine, *bound, *(() if upto is None else (upto[0],)), self.cutoff)
            with self._batch() as conn:
                keys = {(str(t), str(p), str(m)) for t, p, m in conn.execute(self.q(
                    f"SELECT tenant, provider, provider_message_id FROM orphan_reports WHERE {window}"), params)}
                r.orphan_reports += self._run(conn, f"{verb} orphan_reports WHERE {window}", params)
                r.report_parts += self._dangling_parts(conn, keys)
            if upto is None:
                return
            last = upto[0]

    def _dangling_parts(self, conn: Any, keys: set[tuple[str, str, str]]) -> int:
        """Delete (dry: count) the report parts of these (tenant, provider, provider message
        id) keys that no message has and no orphan report received at or after the cutoff
        keeps (so a dry run and a purge agree, whatever the batches); how many."""
        keys -= self.parts_done
        self.parts_done |= keys
        verb = "SELECT count(*) FROM" if self.result.dry_run else "DELETE FROM"
        n = 0
        by_tenant: dict[str, list[tuple[str, str]]] = {}
        for t, p, m in sorted(keys):
            by_tenant.setdefault(t, []).append((p, m))
        for tenant, pairs in by_tenant.items():
            for chunk in _chunks(pairs):
                values = ",".join("(?, ?)" for _ in chunk)
                n += self._run(conn, (
                    f"{verb} report_parts WHERE tenant = ? AND (provider, provider_message_id) IN (VALUES {values}) "
                    "AND NOT EXISTS (SELECT 1 FROM messages m WHERE "
                    f"{self.store._PROVIDER_KEY_OF.format(row='report_parts')}) "
                    "AND NOT EXISTS (SELECT 1 FROM orphan_reports o WHERE o.tenant = report_parts.tenant "
                    "AND o.provider = report_parts.provider "
                    "AND o.provider_message_id = report_parts.provider_message_id AND o.received_at >= ?)"),
                    (tenant, *(x for pair in chunk for x in pair), self.cutoff))
        return n

    def by_id(self, table: str, column: str, tenant: str | None, counter: str) -> None:
        """Rows of ``table`` whose ``column`` is before the cutoff, walking its integer
        primary key (these tables have no index on the time)."""
        self._walk(tenant, table, ("id",), f"{column} < ?", self.cutoff, counter, by_key=True)


def _count(conn: Any, sql: str, params: Sequence[object]) -> int:
    row = conn.execute(sql, params).fetchone()
    return int(row[0]) if row is not None else 0


def _chunks(items: Sequence[Any]) -> list[Sequence[Any]]:
    return [items[i : i + _CHUNK] for i in range(0, len(items), _CHUNK)]


def _marks(chunk: Sequence[Any]) -> str:
    return f"({','.join('?' * len(chunk))})"
