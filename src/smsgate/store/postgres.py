"""The production store: PostgreSQL through psycopg 3 (``pip install 'smsgate[postgres]'``).

Same behaviour as :class:`~smsgate.store.sqlite.SQLiteStore` (both pass the shared
store test-suite), built for several processes sharing one database:

* **Connections**: a small pool of its own (up to ``pool_size`` connections,
  opened on demand, autocommit with explicit transactions), so one store object
  is shared by threads and concurrent callers really run concurrently. A
  connection found broken is discarded (the call that found it fails) and
  replaced on next use. No dependency beyond psycopg.
* **Schema**: versioned; :data:`MIGRATIONS` is a list of numbered migrations
  (version ``n`` is ``MIGRATIONS[n - 1]``). :meth:`PostgresStore.migrate` runs
  under a transaction-scoped advisory lock, so processes migrating at once wait
  for each other and each migration is applied exactly once. With ``schema=``
  the store creates and uses that PostgreSQL schema (``search_path``), which
  keeps several installations (or test runs) apart in one database.
* **Types**: ``timestamptz`` (returned in UTC), ``numeric`` costs (an equal
  :class:`~decimal.Decimal` comes back, scale included, in ``numeric``'s form: no negative zero,
  no positive exponent, ``1E+2`` is ``100``; every store gives that form,
  :func:`~smsgate.store._rules.stored_cost`), ``jsonb`` for campaign
  specs and recipient/contact fields (a contact's fields come back in the order given: their
  key order is kept beside them, schema 13; a recipient's are read by name), ``bigserial`` ids.
* **Batched writes**: messages, their history and campaign recipients are
  written with binary ``COPY``. Status updates load and lock the affected rows in
  one statement (in id order, so concurrent writers cannot deadlock), apply the
  shared rules of :mod:`smsgate.store._rules` in Python and write the changed
  columns of every changed row back in one ``UPDATE ... FROM unnest(...)``, then
  ``COPY`` the new history events.
* **Delivery reports are applied inside the server**: a batch is one statement
  (one round trip, no row sent to the client and back) that finds, updates (in id
  order, optimistically: a row rewritten meanwhile is applied again in a new
  statement) and logs the messages, with the status rule generated from the
  same definition as the Python one (``_rules.accepts_status_sql``); the store
  test-suite checks that every store leaves exactly what ``_rules.apply_report``
  gives. About 3x less client CPU per report than loading the rows.
* **Delivery reports are HOT updates**: no index of ``messages`` holds a column a
  report changes (status, raw status, times, cost...) and its pages keep 20 %
  free (``fillfactor``), so PostgreSQL rewrites the row in place without touching
  any index - about 5x cheaper than with a status index. The message a report
  names is found through a hash index of the provider message id
  (``messages_provider_id``, schema 11), tenant and provider checked on the row:
  cheaper for the server than a b-tree of the three text columns. The price:
  :meth:`~PostgresStore.count_by_status` reads the tenant's (or campaign's) rows
  rather than an index, and ``list_messages(status=...)`` filters the newest-first
  scan. A history event written by a store this release created inserts one index entry:
  ``message_events``' only index is its primary key ``(message_pk, id)``, the order every
  reader of a history uses (``_ONE_INDEX_HISTORY``); a store created before keeps its primary
  key on ``id`` plus the index ``(message_pk, id)`` until :meth:`~PostgresStore.upgrade_history`
  converts it (never :meth:`~PostgresStore.migrate`); both work the same.
  ``message_events.message_pk`` is not a declared foreign key (nor enforced
  in SQLite): the check would cost about as much as the insert; messages are never
  deleted.
* **Plans do not depend on statistics**: right after a bulk load a table has
  none, and the planner then takes ``tenant = ...`` to select almost nothing.
  Batch lookups are therefore one index probe per key (``LATERAL``), batch
  updates join their ``unnest()`` on the primary key with the tenant guard as an
  array column, and the store's sessions run with hash and merge joins off (every
  join here is a keyed probe of a bounded batch). Other queries do want
  statistics: a bulk :meth:`~PostgresStore.insert_messages` that is large for the
  table is followed by ``ANALYZE messages`` rather than waiting for autovacuum.
  Nor do plans depend on the table's size when a statement was first prepared:
  psycopg prepares a statement after a few executions and PostgreSQL would then
  keep a *generic* plan made for the table as it was. Made while a new store's
  ``messages`` was nearly empty, that plan filtered the tenant's rows through
  ``messages_created`` instead of probing the key's index, so every key read the
  whole table until the next ``ANALYZE`` (1,000 reports on 20,000 messages: 4 s
  instead of 50 ms). The sessions run with ``plan_cache_mode =
  force_custom_plan``: each execution is planned (~0.1-0.3 ms a statement) for
  the tables as they are.
* **Recipients** are claimed with ``FOR UPDATE SKIP LOCKED``: concurrent runners
  (threads or processes) never claim the same recipient and do not wait for each
  other.
"""
from __future__ import annotations

import functools
import hashlib
import itertools
import json
import random
import select
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

try:
    import psycopg
    from psycopg import errors as pg_errors
    from psycopg import sql
    from psycopg.pq import TransactionStatus
    from psycopg.rows import TupleRow
    from psycopg.types.json import Jsonb
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError(
        "the PostgreSQL store needs psycopg 3: pip install 'smsgate[postgres]'"
    ) from exc

from smsgate.errors import ConfigError, NotFound, StoreError
from smsgate.models import (
    CampaignStatus,
    Contact,
    DeliveryReport,
    InboundMessage,
    MessageRecord,
    OptOut,
    Status,
    StatusEvent,
    utcnow,
)
from smsgate.store._fork import INHERITED, reopen_after_fork
from smsgate.store._purge import purge as purge_rows
from smsgate.store._rules import (
    accepts_status,
    accepts_status_sql,
    apply_update,
    changed_ids,
    rank_sql,
    report_rounds,
    stored_cost,
    to_utc,
    written_provider_keys,
)
from smsgate.store._sql import CAMPAIGN_COLUMNS as _CAMPAIGN_COLUMNS
from smsgate.store._sql import INBOUND_COLUMNS, SQLQueries
from smsgate.store._sql import MESSAGE_COLUMNS as _MESSAGE_COLUMNS
from smsgate.store._sql import RECIPIENT_COLUMNS as _RECIPIENT_COLUMNS
from smsgate.store.base import (
    AppliedReport,
    CampaignRow,
    ContactListRow,
    Duplicate,
    LogResult,
    LogWrite,
    MessageTimes,
    MessageUpdate,
    NewMessage,
    PurgeResult,
    RecipientRow,
    RecipientState,
    RecipientUpdate,
    Store,
    check_contact_fields,
)

__all__ = ["MIGRATIONS", "PostgresStore"]

_Conn = psycopg.Connection[TupleRow]
_Row = tuple[Any, ...]

#: Keys per statement where a lock-free batch is split (opt-out checks, contact removal).
CHUNK = 10_000

#: Rows fetched per round trip when streaming :meth:`PostgresStore.message_times`.
_TIMES_PAGE = 5000

#: :meth:`PostgresStore.insert_messages` runs ``ANALYZE messages`` after a batch of at
#: least this many rows, or of at least ``ANALYZE_MIN_BATCH`` rows that grow the table
#: by more than ``ANALYZE_GROWTH`` (a table never analyzed counts as empty).
ANALYZE_ROWS = 10_000
ANALYZE_MIN_BATCH = 1_000
ANALYZE_GROWTH = 0.2

#: Seconds a caller waits for a free pooled connection before giving up.
POOL_TIMEOUT = 60.0

#: Numbered schema migrations; each is a sequence of SQL statements run in one
#: transaction. Never edit a released migration: append a new one. A migration must work on
#: both layouts of the history (``_ONE_INDEX_HISTORY``), and must not rebuild a big table
#: under live processes (``migrate`` runs while the previous release's processes work).
MIGRATIONS: list[tuple[str, ...]] = [
    # 1: initial schema
    (
        """
        CREATE TABLE schema_version (
            version     integer PRIMARY KEY,
            applied_at  timestamptz NOT NULL DEFAULT now()
        )
        """,
        """
        CREATE TABLE messages (
            id                  bigserial PRIMARY KEY,
            tenant              text NOT NULL,
            message_id          text NOT NULL,
            to_phone            text NOT NULL,
            status              text NOT NULL,
            raw_status          text,
            provider            text,
            provider_message_id text,
            batch_id            text,
            sender              text,
            reference           text,
            campaign_id         text,
            segments            integer,
            cost                numeric,
            currency            text,
            error               text,
            created_at          timestamptz NOT NULL,
            updated_at          timestamptz NOT NULL,
            submitted_at        timestamptz,
            delivered_at        timestamptz,
            CONSTRAINT messages_tenant_message_id UNIQUE (tenant, message_id)
        ) WITH (fillfactor = 80)
        """,
        # No index holds a column a delivery report changes (status, raw status,
        # times, cost...): report updates are then HOT (no index writes, the new row
        # version goes in the page's free space), about 5x cheaper. See the module doc.
        "CREATE INDEX messages_provider_id ON messages (tenant, provider, provider_message_id)",
        "CREATE INDEX messages_campaign ON messages (tenant, campaign_id)",
        "CREATE INDEX messages_to ON messages (tenant, to_phone)",
        "CREATE INDEX messages_created ON messages (tenant, created_at, id)",
        # message_pk is not a declared foreign key (nor enforced in SQLite): its check
        # would cost about as much as the event insert itself; messages are never deleted.
        """
        CREATE TABLE message_events (
            id          bigserial PRIMARY KEY,
            tenant      text NOT NULL,
            message_pk  bigint NOT NULL,
            status      text NOT NULL,
            raw_status  text,
            at          timestamptz NOT NULL,
            source      text NOT NULL DEFAULT '',
            detail      text
        )
        """,
        "CREATE INDEX message_events_message ON message_events (message_pk, id)",
        """
        CREATE TABLE optouts (
            tenant      text NOT NULL,
            phone       text NOT NULL,
            reason      text,
            source      text NOT NULL,
            created_at  timestamptz NOT NULL,
            PRIMARY KEY (tenant, phone)
        )
        """,
        """
        CREATE TABLE idempotency_keys (
            tenant      text NOT NULL,
            key         text NOT NULL,
            message_id  text NOT NULL,
            created_at  timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (tenant, key)
        )
        """,
        """
        CREATE TABLE campaigns (
            id                   bigserial PRIMARY KEY,
            tenant               text NOT NULL,
            campaign_id          text NOT NULL,
            name                 text NOT NULL,
            status               text NOT NULL,
            spec                 jsonb NOT NULL DEFAULT '{}',
            start_at             timestamptz,
            provider             text,
            provider_campaign_id text,
            error                text,
            created_at           timestamptz NOT NULL,
            updated_at           timestamptz NOT NULL,
            CONSTRAINT campaigns_tenant_campaign_id UNIQUE (tenant, campaign_id)
        )
        """,
        "CREATE INDEX campaigns_created ON campaigns (tenant, created_at, id)",
        """
        CREATE TABLE campaign_recipients (
            id           bigserial PRIMARY KEY,
            tenant       text NOT NULL,
            campaign_id  text NOT NULL,
            seq          bigint NOT NULL,
            phone        text NOT NULL,
            state        text NOT NULL,
            fields       jsonb NOT NULL DEFAULT '{}',
            reason       text,
            detail       text,
            message_id   text,
            segments     integer,
            provider     text
        )
        """,
        "CREATE INDEX campaign_recipients_campaign ON campaign_recipients (tenant, campaign_id, id)",
        "CREATE INDEX campaign_recipients_state ON campaign_recipients (tenant, campaign_id, state, id)",
        """
        CREATE TABLE contact_lists (
            id           bigserial PRIMARY KEY,
            tenant       text NOT NULL,
            list_id      text NOT NULL,
            name         text NOT NULL,
            description  text NOT NULL DEFAULT '',
            created_at   timestamptz NOT NULL,
            CONSTRAINT contact_lists_tenant_list_id UNIQUE (tenant, list_id)
        )
        """,
        """
        CREATE TABLE contacts (
            id       bigserial PRIMARY KEY,
            tenant   text NOT NULL,
            list_id  text NOT NULL,
            phone    text NOT NULL,
            name     text,
            fields   jsonb NOT NULL DEFAULT '{}',
            CONSTRAINT contacts_tenant_list_phone UNIQUE (tenant, list_id, phone)
        )
        """,
        "CREATE INDEX contacts_list_id ON contacts (tenant, list_id, id)",
    ),
    # 2: nothing to do (version 2 takes the status out of SQLite's indexes of
    # messages; here it never was in one).
    (),
    # 3: exactly-once dispatch: a claimed recipient has an owner, a runner a lease;
    # recipients are deduplicated by the store (a unique key per campaign), and keep
    # their audience line for messages about them.
    (
        "ALTER TABLE campaign_recipients ADD COLUMN line bigint",
        "ALTER TABLE campaign_recipients ADD COLUMN dedupe_key text",
        "ALTER TABLE campaign_recipients ADD COLUMN owner text",
        "CREATE UNIQUE INDEX campaign_recipients_key ON campaign_recipients (tenant, campaign_id, dedupe_key)",
        """
        CREATE TABLE campaign_runners (
            tenant       text NOT NULL,
            campaign_id  text NOT NULL,
            owner        text NOT NULL,
            lease_until  timestamptz NOT NULL,
            PRIMARY KEY (tenant, campaign_id, owner)
        )
        """,
    ),
    # 4: traffic control: the state of rate and concurrency limits shared by every
    # process using the store (smsgate.traffic): per key, each rule's spacing and the
    # requests that still count (in flight, or answered within the longest period)
    (
        """
        CREATE TABLE traffic_keys (
            tenant  text NOT NULL,
            key     text NOT NULL,
            marks   text NOT NULL,
            PRIMARY KEY (tenant, key)
        )
        """,
        """
        CREATE TABLE traffic_entries (
            tenant    text NOT NULL,
            key       text NOT NULL,
            id        text NOT NULL,
            messages  integer NOT NULL,
            segments  integer NOT NULL,
            started   double precision NOT NULL,
            ended     double precision,
            expires   double precision NOT NULL,
            PRIMARY KEY (tenant, key, id)
        )
        """,
    ),
    # 5: inbound messages and exact reports: delivery reports that matched no message
    # yet (kept until the message's provider id is logged), the status of each part
    # of a multipart message, and inbound messages once per vendor event
    (
        """
        CREATE TABLE orphan_reports (
            id                  bigserial PRIMARY KEY,
            tenant              text NOT NULL,
            provider            text NOT NULL,
            provider_message_id text NOT NULL,
            report              jsonb NOT NULL,
            received_at         timestamptz NOT NULL DEFAULT now()
        )
        """,
        "CREATE INDEX orphan_reports_key ON orphan_reports (tenant, provider, provider_message_id)",
        """
        CREATE TABLE report_parts (
            tenant              text NOT NULL,
            provider            text NOT NULL,
            provider_message_id text NOT NULL,
            part                integer NOT NULL,
            status              text NOT NULL,
            PRIMARY KEY (tenant, provider, provider_message_id, part)
        )
        """,
        """
        CREATE TABLE inbound_messages (
            id           bigserial PRIMARY KEY,
            tenant       text NOT NULL,
            provider     text NOT NULL,
            vendor_id    text NOT NULL,
            from_number  text NOT NULL,
            to_number    text,
            text         text NOT NULL,
            received_at  timestamptz NOT NULL,
            raw          jsonb NOT NULL DEFAULT '{}',
            action       text,
            UNIQUE (tenant, provider, vendor_id)
        )
        """,
        "CREATE INDEX inbound_messages_from ON inbound_messages (tenant, from_number, id)",
    ),
    # 6: tenants provisioned at run time (smsgate.tenants.StoredTenants): the tenant's
    # configuration without credentials, the credentials as a Fernet token (ciphertext
    # only), and one counter that changes on every write so gateways poll one row
    (
        """
        CREATE TABLE stored_tenants (
            name        text PRIMARY KEY,
            config      text NOT NULL,
            secrets     text NOT NULL,
            version     bigint NOT NULL,
            updated_at  timestamptz NOT NULL
        )
        """,
        "CREATE TABLE tenant_changes (version bigint NOT NULL)",
        "INSERT INTO tenant_changes (version) VALUES (0)",
    ),
    # 7: opt-outs have a scope: every sender ('*', what every earlier opt-out was) or
    # one sender ID (smsgate.models.optout_scope gives the stored form); the primary
    # key gains it, so a number can be opted out of several senders. (No partial index
    # for the status poller's in-flight scan: its predicate would hold the status, and
    # every delivery report would stop being a HOT update; see bench/inflight_index.py.)
    (
        "ALTER TABLE optouts ADD COLUMN scope text NOT NULL DEFAULT '*'",
        "ALTER TABLE optouts DROP CONSTRAINT optouts_pkey",
        "ALTER TABLE optouts ADD PRIMARY KEY (tenant, phone, scope)",
    ),
    # 8: send leases (see smsgate.core.recover): a sending process's lease and the
    # oldest of its messages still waiting for an answer
    (
        """
        CREATE TABLE send_leases (
            tenant       text NOT NULL,
            owner        text NOT NULL,
            lease_until  timestamptz NOT NULL,
            oldest       timestamptz NOT NULL,
            PRIMARY KEY (tenant, owner)
        )
        """,
    ),
    # 9: nothing to do (version 9 makes SQLite's history a chain per message instead of
    # the index (message_pk, id); PostgreSQL keeps its index, which costs it next to
    # nothing: bench/analysis.md, "2026-12-04, early morning")
    (),
    # 10: an inbound text over smsgate.models.MAX_INBOUND_TEXT characters is stored cut to
    # it, flagged (a process of the version-9 code writes false: it refused such texts)
    ("ALTER TABLE inbound_messages ADD COLUMN truncated boolean NOT NULL DEFAULT false",),
    # 11: the key a delivery report is matched on is a hash index of the provider message id
    # (same name), not a b-tree of (tenant, provider, provider_message_id): a probe reads one
    # bucket page and the row instead of descending three levels comparing three text
    # columns, -11 to -15% of the server's CPU per report, with no measurable change to the
    # send path's inserts and provider-id writes (bench/analysis.md, "2026-12-05, morning").
    # Tenant and provider are checked on the row (see _PROBE_GUARD). NULL ids, which no
    # lookup asks for, are not indexed. Building it reads messages once, under a lock that
    # holds back writes to messages meanwhile. (Hash indexes are WAL-logged, so crash-safe
    # and replicated, since PostgreSQL 10.)
    (
        "DROP INDEX messages_provider_id",
        "CREATE INDEX messages_provider_id ON messages USING hash (provider_message_id)",
    ),
    # 12: opt-ins by start word, with when the word was said (the latest per number and
    # scope): a stop word said before it but applied after it records no opt-out (see
    # Store.remove_optout). A process of the version-11 code records none (as before).
    (
        """
        CREATE TABLE optins (
            tenant   text NOT NULL,
            phone    text NOT NULL,
            scope    text NOT NULL,
            said_at  timestamptz NOT NULL,
            PRIMARY KEY (tenant, phone, scope)
        )
        """,
    ),
    # 13: the order of a contact's fields (a JSON array of its keys; jsonb sorts an object's
    # keys), so that they come back in the order given, as on the other stores. NULL on a row
    # written before (or by a process of the version-12 code): read in jsonb's order, every
    # field kept (a key the order lacks comes after those it names). Adding a nullable column
    # rewrites nothing.
    ("ALTER TABLE contacts ADD COLUMN field_order jsonb",),
]

def _in_order(fields: dict[str, str], order: list[str] | None) -> dict[str, str]:
    """A contact's ``fields`` (jsonb: keys sorted) in the order given when stored (``order``, the
    keys as written; ``None`` on a row written before schema 13): the keys ``order`` names
    first, then any other (a row a process of the version-12 code updated) in jsonb's order."""
    if not order:
        return fields
    ordered = {key: fields[key] for key in order if key in fields}
    if len(ordered) < len(fields):
        ordered.update(fields)
    return ordered


#: The history's layout on a database created by this code (run by :meth:`PostgresStore.migrate`
#: right after the migrations, in the same transaction, only when it creates the schema: the
#: table is new and empty and nothing else can see it yet). ``message_events`` has one index,
#: its primary key ``(message_pk, id)`` (the order every reader of a history uses: a message's
#: events oldest first, the purge's deletes by message), instead of a primary key on ``id``
#: plus the index ``(message_pk, id)``: each event written (a delivery report, the send path's
#: log, a campaign's write-ahead) inserts one index entry instead of two (bench/analysis.md,
#: "2026-12-05, early afternoon"). An existing database keeps the layout it has: ``migrate``
#: never rebuilds the history (that takes locks live processes would queue behind); it works
#: the same either way (no statement names the history's indexes, event ids still come from
#: the sequence). :meth:`PostgresStore.upgrade_history` (``smsgate store upgrade-history``)
#: converts one, on the operator's word.
_ONE_INDEX_HISTORY = (
    "ALTER TABLE message_events DROP CONSTRAINT message_events_pkey, ADD PRIMARY KEY (message_pk, id)",
    "DROP INDEX message_events_message",
)

#: The history's primary key in each layout, as ``pg_get_constraintdef`` writes it.
_HISTORY_KEYS = {"PRIMARY KEY (message_pk, id)": "one-index", "PRIMARY KEY (id)": "two-index"}

#: Session advisory lock of :meth:`PostgresStore.upgrade_history` (one upgrader per schema).
#: Databases created by this code at this schema version or later get ``_ONE_INDEX_HISTORY``
#: (a store opened as an older release, as tests do, creates that release's layout).
_ONE_INDEX_HISTORY_SINCE = 11

_UPGRADE_HISTORY_LOCK = "hashtext('smsgate.upgrade-history:' || coalesce(%s, current_schema(), ''))"

#: Binary COPY of messages: the column list and the PostgreSQL type of each column.
_MESSAGE_COPY_COLUMNS = (
    ("tenant", "text"),
    ("message_id", "text"),
    ("to_phone", "text"),
    ("status", "text"),
    ("raw_status", "text"),
    ("provider", "text"),
    ("provider_message_id", "text"),
    ("batch_id", "text"),
    ("sender", "text"),
    ("reference", "text"),
    ("campaign_id", "text"),
    ("segments", "int4"),
    ("cost", "numeric"),
    ("currency", "text"),
    ("error", "text"),
    ("created_at", "timestamptz"),
    ("updated_at", "timestamptz"),
    ("submitted_at", "timestamptz"),
    ("delivered_at", "timestamptz"),
)
_EVENT_COPY_COLUMNS = (
    ("tenant", "text"),
    ("message_pk", "int8"),
    ("status", "text"),
    ("raw_status", "text"),
    ("at", "timestamptz"),
    ("source", "text"),
    ("detail", "text"),
)


def _copy_sql(table: str, columns: Sequence[tuple[str, str]]) -> str:
    return f"COPY {table} ({', '.join(name for name, _ in columns)}) FROM STDIN (FORMAT BINARY)"


_COPY_MESSAGES = _copy_sql("messages", _MESSAGE_COPY_COLUMNS)
_COPY_MESSAGES_WITH_ID = _copy_sql("messages", (("id", "int8"), *_MESSAGE_COPY_COLUMNS))
_COPY_EVENTS = _copy_sql("message_events", _EVENT_COPY_COLUMNS)
_EVENT_COPY_TYPES = [t for _, t in _EVENT_COPY_COLUMNS]
_STATE_COLUMNS = (
    "id, message_id, status, raw_status, provider, provider_message_id, batch_id, "
    "segments, cost, currency, error, updated_at, submitted_at, delivered_at, sender"
)
#: Columns ``_State`` may change (in ``_STATE_COLUMNS`` order after ``id, message_id``),
#: with the type and placeholder of their array parameter.
_MUTABLE_COLUMNS = (
    ("status", "text", "%b"),
    ("raw_status", "text", "%b"),
    ("provider", "text", "%b"),
    ("provider_message_id", "text", "%b"),
    ("batch_id", "text", "%b"),
    ("segments", "integer", "%b"),
    ("cost", "numeric", "%t"),
    ("currency", "text", "%b"),
    ("error", "text", "%b"),
    ("updated_at", "timestamptz", "%b"),
    ("submitted_at", "timestamptz", "%b"),
    ("delivered_at", "timestamptz", "%b"),
    ("sender", "text", "%b"),
)


@functools.lru_cache(maxsize=256)
def _write_sql(columns: tuple[int, ...]) -> str:
    """``UPDATE`` of the given ``_MUTABLE_COLUMNS`` from arrays: ids, tenants, then the values.

    The tenant guard is an array column (a join condition), not a constant: a
    constant ``tenant = ...`` on a table without statistics yet makes the planner
    believe it selects almost nothing, and pick a plan that scans the whole tenant
    per batch (or worse). With hash and merge joins off (see ``_connect``) the
    join is a primary-key probe per row.
    """
    names = [_MUTABLE_COLUMNS[i][0] for i in columns]
    arrays = ", ".join(f"{_MUTABLE_COLUMNS[i][2]}::{_MUTABLE_COLUMNS[i][1]}[]" for i in columns)
    return (
        f"UPDATE messages AS m SET {', '.join(f'{n} = v.{n}' for n in names)} "
        f"FROM unnest(%b::bigint[], %b::text[], {arrays}) AS v(id, tenant, {', '.join(names)}) "
        "WHERE m.id = v.id AND m.tenant = v.tenant"
    )


def _lookup_sql() -> str:
    """Load and lock the messages whose ``message_id`` is in ``%(keys)b``, all in one
    statement, locking in id order.

    Plans do not depend on statistics (a freshly loaded table has none): each key
    is an index probe (a LATERAL subquery), the ids found are sorted, and each row
    is then locked by its primary key in that order, so concurrent writers (reports
    and status updates) always lock rows in the same order and cannot deadlock.
    The lock re-checks the key: a row whose key changed meanwhile is left out.
    """
    columns = ", ".join(f"m.{c.strip()}" for c in _STATE_COLUMNS.split(","))
    return (
        f"SELECT {columns} FROM ("
        " SELECT l.id, k.key FROM unnest(%(keys)b::text[]) AS k(key)"
        " CROSS JOIN LATERAL (SELECT id FROM messages"
        " WHERE tenant = %(tenant)s AND message_id = k.key OFFSET 0) AS l"
        " ORDER BY l.id OFFSET 0"
        ") AS ids CROSS JOIN LATERAL (SELECT * FROM messages"
        " WHERE id = ids.id AND tenant = %(tenant)s AND message_id = ids.key"
        " OFFSET 0 FOR UPDATE) AS m"
    )


_LOOKUP_BY_MESSAGE_ID = _lookup_sql()

#: A write-ahead's claim check and the ids of its new messages (the rows with a ``pk``, in
#: order), in one statement. The claimed recipients (``%s``: their ids, sorted) are locked
#: ``FOR SHARE`` in that order, each by a primary-key probe (a LATERAL subquery): as
#: ``tenant = ... AND id = ANY(...)``, on a table without statistics yet, the planner scanned
#: the tenant's whole audience for every write-ahead (1.5-3 ms for 5,000 recipients; see
#: bench/analysis.md, 2026-12-04 evening).
_CHECK_CLAIMS = (
    "WITH held AS MATERIALIZED (SELECT r.id, r.state, r.owner FROM unnest(%s::bigint[]) AS k(id) "
    "CROSS JOIN LATERAL (SELECT id, state, owner FROM campaign_recipients WHERE id = k.id AND tenant = %s "
    "OFFSET 0 FOR SHARE) AS r) "
    "SELECT id, state, owner, NULL::int8 FROM held "
    "UNION ALL SELECT NULL, NULL, NULL, nextval('messages_id_seq') FROM generate_series(1, %s)"
)

#: A recovery's takeover: the recipients ``recover_claims`` just locked (``FOR UPDATE``, in
#: id order) get their new owner. Joined on the primary key with the tenant guard as an array
#: column (as ``_write_sql``), so each row is one probe of ``campaign_recipients_pkey``: as
#: ``tenant = ... AND id = ANY(...)`` on a campaign COPY-loaded just before its run (no
#: statistics yet) the planner read the tenant's whole audience through a bitmap of
#: ``campaign_recipients_key`` and filtered it on the ids (bench/analysis.md, 2026-12-04 night).
_RECOVER_OWNER = (
    "UPDATE campaign_recipients AS r SET owner = %b "
    "FROM unnest(%b::bigint[], %b::text[]) AS v(id, tenant) WHERE r.id = v.id AND r.tenant = v.tenant"
)

#: The messages of a list of ``message_id`` (``messages_by_id``: the run's recovery reads the
#: messages its recovered recipients held): one probe of ``(tenant, message_id)`` per key, for
#: the same reason (a campaign's messages are written during its run; see the module doc).
_MESSAGES_BY_ID = (
    "SELECT m.* FROM unnest(%b::text[]) AS k(key) CROSS JOIN LATERAL "
    f"(SELECT {_MESSAGE_COLUMNS} FROM messages WHERE tenant = %b AND message_id = k.key OFFSET 0) AS m"
)

#: The dedupe keys already stored for a campaign among a chunk's (``add_recipients``), with
#: the line that holds each: one probe of ``campaign_recipients_key`` per key, since the
#: campaign's earlier chunks were COPY-loaded moments ago.
_KNOWN_KEYS = (
    "SELECT r.dedupe_key, r.line FROM unnest(%b::text[]) AS k(key) CROSS JOIN LATERAL "
    "(SELECT dedupe_key, line FROM campaign_recipients WHERE tenant = %b AND campaign_id = %b "
    "AND dedupe_key = k.key OFFSET 0) AS r"
)


#: The report fields ``_APPLY_REPORTS`` takes, in its ``unnest`` order, with their types.
_REPORT_COLUMNS = (
    ("providers", "text"),
    ("keys", "text"),
    ("status", "text"),
    ("raw", "text"),
    ("at", "timestamptz"),
    ("batch", "text"),
    ("segments", "int4"),
    ("cost", "text"),
    ("error", "text"),
)


def _report_columns(tenant: str, reports: Sequence[DeliveryReport]) -> dict[str, Any]:
    """The parameters of ``_APPLY_REPORTS`` for ``reports``.

    A field with the same value in every report (the provider, the status, its time,
    and the fields a delivery receipt leaves empty, usually) goes as that one value
    and a NULL array, which ``unnest`` pads with NULLs and the statement reads as
    ``coalesce(field, value)``: psycopg dumps array elements one by one in Python
    (client CPU per report 3.2-3.5 -> 2.2-2.5 us for a batch of delivery receipts,
    interleaved A/B), and the server no longer builds and unnests a filled array
    per field (``array_fill``: ~0.5 us of its CPU per report).
    """
    params: dict[str, Any] = {"tenant": tenant, "keys": [r.provider_message_id for r in reports]}
    columns: tuple[tuple[str, list[Any]], ...] = (
        ("providers", [r.provider for r in reports]),
        ("status", [_STATUS_VALUE[r.status] for r in reports]),
        ("raw", [r.raw_status for r in reports]),
        ("at", [to_utc(r.occurred_at) for r in reports]),
        ("batch", [r.batch_id for r in reports]),
        ("segments", [r.segments for r in reports]),
        ("cost", [None if r.cost is None else str(stored_cost(r.cost)) for r in reports]),
        ("error", [r.error_code for r in reports]),
    )
    for name, values in columns:
        first = values[0]
        if values.count(first) == len(values):
            params[name], params[name + "_fill"] = None, first
        else:
            params[name], params[name + "_fill"] = values, None
    return params


#: How a lookup by provider message id checks the tenant and provider, with the key
#: itself (``provider_message_id = ...``) found through the hash index ``messages_provider_id``
#: (schema 11): as a row ``IS NOT DISTINCT FROM``, which no index serves, so the plan never
#: depends on statistics. With ``tenant = ...`` a never-analyzed ``messages`` was probed by a
#: ``BitmapAnd`` of the key's index and ``messages_created``'s range of the whole tenant. The
#: same as ``=`` here: ``tenant`` is never NULL, nor is the provider of a lookup or of a
#: report part (``SQLQueries._PROVIDER_KEY`` and ``_PROVIDER_KEY_OF`` use it).
_PROBE_GUARD = "({columns}) IS NOT DISTINCT FROM ({values})"


def _apply_reports_sql() -> str:
    """One statement that applies a batch of delivery reports, each to a different message.

    Parameters: ``tenant`` and one array per report field (``providers``, ``keys``,
    ``status``, ``raw``, ``at``, ``batch``, ``segments``, ``cost`` as text,
    ``error``), and for every field but ``keys`` a value ``<field>_fill`` that
    stands for a NULL element: a field with one value for all reports comes as a
    NULL array (``unnest`` pads it with NULLs) and that value (see
    ``_report_columns``).
    One index probe per report finds the messages of its ``(provider, key)`` (one,
    as a rule) and the newest is kept: ``DISTINCT ON`` over the whole batch, one
    sort of its rows, rather than ``ORDER BY id DESC LIMIT 1`` in the probe, which
    set up and ran a sort for every report (-3% of the server's CPU per report:
    bench/analysis.md, "2026-12-05, late morning"); ``OFFSET 0`` keeps the probe a
    subquery per report (pulled up into a plain join, the planner scanned the tenant's
    rows of a never-analyzed table). It reads what the rules of
    :mod:`smsgate.store._rules` need
    (``accepts_status_sql`` for the status; a report's non-null fields are
    written unless it is behind the row's status, ``_rules.stale_report``; ``updated_at``
    moves forward). The modified rows are rewritten in id
    order (like every writer here, so concurrent writers cannot deadlock) by
    ``ctid`` (a HOT update) and a history event is appended per status change.

    No row is locked ahead (a ``FOR UPDATE`` pass costs a second probe and a WAL
    record per row): the ``ctid`` guard makes the write optimistic. A row another
    transaction rewrote since this statement's snapshot has a new ``ctid``, so the
    ``UPDATE`` (re-checking it on the newest version once the other commits) leaves
    it alone and neither writes nor logs anything for it. The statement then also
    returns the row ``(0, NULL)``, and the caller applies the reports it got no
    answer for again in a new statement (a new snapshot). A report found
    unchanged was decided on a committed version and writes nothing.

    Returns ``(n, message_id, changed)`` for every matched report applied or found
    unchanged (``n`` is its 1-based position; ``changed``: its status moved). Everything stays in the server: one
    round trip per batch, and no row travels to the client and back.
    """
    rank = rank_sql("x.report_status")
    accepts = accepts_status_sql("m.status", "m.raw_status", "v.status", "v.raw")
    arrays = ", ".join(f"%({name})b::{kind}[]" for name, kind in _REPORT_COLUMNS)
    fields = ("provider", "key", "status", "raw", "at", "batch_id", "segments", "cost", "error")
    values = ", ".join(
        f"f.{field}" if name == "keys" else f"coalesce(f.{field}, %({name}_fill)b::{kind}) AS {field}"
        for field, (name, kind) in zip(fields, _REPORT_COLUMNS, strict=True)
    )
    return f"""
WITH v AS (
  SELECT {values}, f.n FROM unnest({arrays})
    WITH ORDINALITY AS f({", ".join(fields)}, n)
), x AS (
  SELECT * FROM (SELECT DISTINCT ON (v.n) v.n, m.ctid AS row_ctid, m.id, m.tenant, m.message_id, c.changed,
    c.changed OR c.batch_mod OR c.segments_mod OR c.cost_mod OR c.error_mod AS modified,
    c.cost_mod, v.status AS report_status, v.raw AS report_raw, v.at AS report_at,
    v.batch_id, v.segments, v.cost, v.error
  FROM v CROSS JOIN LATERAL (
    SELECT ctid, id, tenant, message_id, status, raw_status, batch_id, segments, cost, error FROM messages
    WHERE provider_message_id = v.key
      AND {_PROBE_GUARD.format(columns="tenant, provider", values="%(tenant)s, v.provider")}
    OFFSET 0) AS m
  CROSS JOIN LATERAL (SELECT {accepts} AS changed) AS a
  CROSS JOIN LATERAL (SELECT a.changed,
    (a.changed OR v.status = m.status) AS current,
    v.batch_id IS NOT NULL AND v.batch_id IS DISTINCT FROM m.batch_id AS batch_mod,
    v.segments IS NOT NULL AND v.segments IS DISTINCT FROM m.segments AS segments_mod,
    v.cost IS NOT NULL AND (m.cost IS NULL OR v.cost <> m.cost::text) AS cost_mod,
    v.error IS NOT NULL AND v.error IS DISTINCT FROM m.error AS error_mod) AS c0
  CROSS JOIN LATERAL (SELECT c0.changed, c0.current AND c0.batch_mod AS batch_mod,
    c0.current AND c0.segments_mod AS segments_mod, c0.current AND c0.cost_mod AS cost_mod,
    c0.current AND c0.error_mod AS error_mod) AS c
  ORDER BY v.n, m.id DESC) AS newest
  ORDER BY id
), u AS (
  UPDATE messages AS t SET
    status = CASE WHEN x.changed THEN x.report_status ELSE t.status END,
    raw_status = CASE WHEN x.changed THEN x.report_raw ELSE t.raw_status END,
    batch_id = coalesce(x.batch_id, t.batch_id),
    segments = coalesce(x.segments, t.segments),
    cost = CASE WHEN x.cost_mod THEN x.cost::numeric ELSE t.cost END,
    error = coalesce(x.error, t.error),
    updated_at = greatest(t.updated_at, x.report_at),
    submitted_at = CASE WHEN x.changed AND t.submitted_at IS NULL AND {rank} >= {Status.SUBMITTED.rank}
      THEN x.report_at ELSE t.submitted_at END,
    delivered_at = CASE WHEN x.changed AND t.delivered_at IS NULL AND x.report_status = '{Status.DELIVERED.value}'
      THEN x.report_at ELSE t.delivered_at END
  FROM x WHERE x.modified AND t.ctid = x.row_ctid
  RETURNING x.n, x.id, x.tenant, x.message_id, x.changed, x.report_status, x.report_raw, x.report_at
), e AS (
  INSERT INTO message_events (tenant, message_pk, status, raw_status, at, source)
  SELECT tenant, id, report_status, report_raw, report_at, 'report' FROM u WHERE changed
)
SELECT n, message_id, changed FROM u
UNION ALL SELECT n, message_id, false FROM x WHERE NOT modified
UNION ALL SELECT 0, NULL, false WHERE (SELECT count(*) FROM x WHERE modified) <> (SELECT count(*) FROM u)"""


_APPLY_REPORTS = _apply_reports_sql()


_RECIPIENT_COPY_COLUMNS = (
    ("tenant", "text"),
    ("campaign_id", "text"),
    ("seq", "int8"),
    ("phone", "text"),
    ("state", "text"),
    ("fields", "jsonb"),
    ("reason", "text"),
    ("detail", "text"),
    ("message_id", "text"),
    ("segments", "int4"),
    ("provider", "text"),
    ("line", "int8"),
    ("dedupe_key", "text"),
)
_COPY_RECIPIENTS = _copy_sql("campaign_recipients", _RECIPIENT_COPY_COLUMNS)

_STATUS = {status.value: status for status in Status}
_STATUS_VALUE = {status: status.value for status in Status}
_STATE = {state.value: state for state in RecipientState}
_cursor_names = itertools.count(1)


# ------------------------------------------------------------------ helpers
def _chunks(items: Sequence[str], size: int = CHUNK) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _jsonb_spec(spec: dict[str, Any]) -> Jsonb:
    """A campaign spec for a ``jsonb`` column (a copy; ``TypeError`` if it is not JSON-able)."""
    return Jsonb(json.loads(json.dumps(spec)))


def _utc_opt(value: datetime | None) -> datetime | None:
    return None if value is None else to_utc(value)


@dataclass(slots=True)
class _State:
    """The mutable part of one loaded message row (see ``_rules.MutableMessage``)."""

    pk: int
    message_id: str
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
    #: The row as loaded (``_STATE_COLUMNS``).
    loaded: _Row = ()
    dirty: bool = False

    def changes(self) -> tuple[tuple[int, ...], list[object]]:
        """The indexes (into ``_MUTABLE_COLUMNS``) and values of the changed columns.

        ``_rules`` only assigns a field when its value differs, so identity with
        the loaded value means unchanged. (Written out long-hand: this runs once
        per updated row on the delivery-report hot path.)
        """
        (
            _,
            _,
            status,
            raw_status,
            provider,
            provider_message_id,
            batch_id,
            segments,
            cost,
            currency,
            error,
            updated_at,
            submitted_at,
            delivered_at,
            sender,
        ) = self.loaded
        columns: list[int] = []
        values: list[object] = []
        value = _STATUS_VALUE[self.status]
        if value != status:
            columns.append(0)
            values.append(value)
        if self.raw_status is not raw_status:
            columns.append(1)
            values.append(self.raw_status)
        if self.provider is not provider:
            columns.append(2)
            values.append(self.provider)
        if self.provider_message_id is not provider_message_id:
            columns.append(3)
            values.append(self.provider_message_id)
        if self.batch_id is not batch_id:
            columns.append(4)
            values.append(self.batch_id)
        if self.segments is not segments:
            columns.append(5)
            values.append(self.segments)
        if self.cost is not cost:
            columns.append(6)
            values.append(self.cost)
        if self.currency is not currency:
            columns.append(7)
            values.append(self.currency)
        if self.error is not error:
            columns.append(8)
            values.append(self.error)
        if self.updated_at is not updated_at:
            columns.append(9)
            values.append(self.updated_at)
        if self.submitted_at is not submitted_at:
            columns.append(10)
            values.append(self.submitted_at)
        if self.delivered_at is not delivered_at:
            columns.append(11)
            values.append(self.delivered_at)
        if self.sender is not sender:
            columns.append(12)
            values.append(self.sender)
        return tuple(columns), values


def _state(row: _Row) -> _State:
    return _State(
        row[0],
        row[1],
        _STATUS[row[2]],
        row[3],
        row[4],
        row[5],
        row[6],
        row[7],
        row[8],
        row[9],
        row[10],
        row[11],
        row[12],
        row[13],
        row[14],
        row,
    )


def _inbound(row: _Row) -> InboundMessage:
    return InboundMessage(id=row[0], tenant=row[1], provider=row[2], vendor_id=row[3], from_number=row[4],
                          to=row[5], text=row[6], received_at=row[7], raw=row[8], action=row[9],
                          truncated=row[10])


def _lock_key(tenant: str, what: str = "smsgate.orphans") -> int:
    """A signed 64-bit advisory lock key for a tenant's orphan reports (or its ``what``)."""
    digest = hashlib.blake2b(f"{what}\x1f{tenant}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _record(row: _Row, history: list[StatusEvent] | None = None) -> MessageRecord:
    return MessageRecord(
        tenant=row[1],
        message_id=row[2],
        to=row[3],
        status=_STATUS[row[4]],
        raw_status=row[5],
        provider=row[6],
        provider_message_id=row[7],
        batch_id=row[8],
        sender=row[9],
        reference=row[10],
        campaign_id=row[11],
        segments=row[12],
        cost=row[13],
        currency=row[14],
        error=row[15],
        created_at=row[16],
        updated_at=row[17],
        submitted_at=row[18],
        delivered_at=row[19],
        history=history or [],
    )


def _campaign(row: _Row) -> CampaignRow:
    return CampaignRow(
        tenant=row[0],
        campaign_id=row[1],
        name=row[2],
        status=CampaignStatus(row[3]),
        created_at=row[4],
        updated_at=row[5],
        spec=row[6],
        start_at=row[7],
        provider=row[8],
        provider_campaign_id=row[9],
        error=row[10],
    )


def _recipient(row: _Row) -> RecipientRow:
    return RecipientRow(
        id=row[0],
        seq=row[1],
        phone=row[2],
        state=_STATE[row[3]],
        fields=row[4],
        reason=row[5],
        detail=row[6],
        message_id=row[7],
        segments=row[8],
        provider=row[9],
        line=row[10],
        key=row[11],
        owner=row[12],
    )


#: host names that reach this machine's server: one server to :meth:`PostgresStore.location`
_LOOPBACK = {"", "localhost", "127.0.0.1", "::1"}


def location_of(dsn: str, schema: str | None) -> str:
    """:meth:`PostgresStore.location` of a store on ``dsn`` and ``schema`` (before it is opened)."""
    return f"postgresql://{server_of(dsn, canonical=True)}?schema={schema or 'public'}"


def server_of(dsn: str, *, canonical: bool = False) -> str:
    """``host:port/database`` of a libpq connection string or URL (never its password).
    ``canonical``: a loopback host or a local socket folder reads ``localhost``, and an unset
    database the user's name (libpq's default), so two spellings of one server compare equal."""
    try:
        where = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "(invalid PostgreSQL URL)"
    host = str(where.get("host") or "")
    dbname = where.get("dbname") or ""
    if canonical:
        host = "localhost" if host.lower() in _LOOPBACK or host.startswith("/") else host.lower()
        dbname = dbname or where.get("user") or ""
    return f"{host or 'localhost'}:{where.get('port') or 5432}/{dbname}"


def _ended_by_server(conn: _Conn) -> bool:
    """Whether the server has spoken on an idle pooled connection, which asked nothing: it
    ended it (a restart or failover, ``pg_terminate_backend``, an idle timeout), so the next
    statement on it would fail. One non-blocking ``select`` on its socket, no round trip."""
    try:
        readable, _, _ = select.select([conn.fileno()], [], [], 0)
    except ValueError:  # a descriptor select() cannot watch: the statement will tell
        return False
    except OSError:
        return True
    return bool(readable)


class _Pool:
    """At most ``size`` connections, opened on demand and reused (last in, first out).

    An idle connection the server ended meanwhile is replaced when taken, so a database
    restart between two transactions fails neither of them."""

    def __init__(self, connect: Callable[[], _Conn], size: int) -> None:
        self._connect = connect
        self._slots = threading.BoundedSemaphore(size)
        self._idle: list[_Conn] = []
        self._lock = threading.Lock()
        self._closed = False

    def get(self) -> _Conn:
        if not self._slots.acquire(timeout=POOL_TIMEOUT):
            raise StoreError(f"no free connection after {POOL_TIMEOUT:g} s (all pool_size connections in use)")
        try:
            with self._lock:
                if self._closed:
                    raise StoreError("the PostgreSQL store is closed")
                conn = self._idle.pop() if self._idle else None
            if conn is not None and not conn.closed and _ended_by_server(conn):
                conn.close()
            if conn is None or conn.closed:
                conn = self._connect()
            return conn
        except BaseException:
            self._slots.release()
            raise

    def put(self, conn: _Conn) -> None:
        try:
            reusable = (
                not conn.closed
                and not conn.broken
                and conn.info.transaction_status == TransactionStatus.IDLE
            )
            if reusable:
                with self._lock:
                    if not self._closed:
                        self._idle.append(conn)
                        return
            conn.close()
        finally:
            self._slots.release()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


class PostgresStore(SQLQueries, Store):
    """A :class:`~smsgate.store.base.Store` in a PostgreSQL database (thread-safe).

    ``dsn`` is a libpq connection string or URL (``postgresql://user@host/db``).
    ``schema`` (optional) is the PostgreSQL schema to create (on :meth:`migrate`)
    and use; by default the connection's ``search_path`` decides. ``pool_size``
    bounds the connections this store opens. Call :meth:`migrate` before use
    (:func:`smsgate.store.open_store` does).
    """

    _PARAM = "%s"
    #: a write-ahead transaction costs the server ~0.5-1 ms of CPU plus ~25 us a message: a
    #: campaign's write-aheads wait up to 3 ms to go several at a time (bench/analysis.md,
    #: 2026-12-04 evening)
    write_gather = 0.003
    #: Seconds a session of this store may sit inside a transaction between statements before
    #: the server ends it (``idle_in_transaction_session_timeout``) and so releases its row
    #: locks. A process stopped in the middle of one (SIGSTOP, a paused VM or container, a
    #: debugger) otherwise held them until continued: every other process waiting for the same
    #: rows (a campaign's claims, a limit's key) waited as long (tests/test_store_postgres.py).
    #: This store's transactions pass milliseconds between statements (a streamed read,
    #: :meth:`message_times`, which locks no row, is exempt: its consumer sets the pace). The
    #: stopped process, continued, gets a :class:`~smsgate.errors.StoreError` for that
    #: transaction, which was rolled back (as after a crash). ``0``: the server's setting stands.
    idle_in_transaction_timeout = 60.0
    _decode_record = staticmethod(_record)
    _decode_campaign = staticmethod(_campaign)
    _decode_inbound = staticmethod(_inbound)
    _encode_spec = staticmethod(_jsonb_spec)
    _DUPLICATE = pg_errors.UniqueViolation
    _PROVIDER_KEY = _PROBE_GUARD.format(columns="tenant, provider", values="?, ?") + " AND provider_message_id = ?"
    _PROVIDER_KEY_OF = (
        _PROBE_GUARD.format(columns="m.tenant, m.provider", values="{row}.tenant, {row}.provider")
        + " AND m.provider_message_id = {row}.provider_message_id"
    )
    _encode_ts = staticmethod(to_utc)
    _decode_ts = staticmethod(to_utc)

    def __init__(self, dsn: str, *, schema: str | None = None, pool_size: int = 4) -> None:
        if pool_size < 1:
            raise ConfigError(f"pool_size must be at least 1, not {pool_size}")
        if schema is not None and not schema:
            raise ConfigError("schema must be a non-empty name (or None)")
        self.dsn = dsn
        self.schema = schema
        self._pool = _Pool(self._connect, pool_size)
        self._pool_size = pool_size
        reopen_after_fork(self)
        self._where = server_of(dsn)
        self._location = location_of(dsn, schema)

    def _after_fork(self) -> None:
        """In a forked child (:mod:`smsgate.store._fork`): a pool of its own, opening connections
        as they are needed; the parent's pool and connections are left alone (closed there, the
        child's stays closed)."""
        inherited = self._pool
        INHERITED.append(inherited)
        self._pool = _Pool(self._connect, self._pool_size)
        if inherited._closed:
            self._pool.close()

    # ------------------------------------------------------------- internals
    def _connect(self) -> _Conn:
        try:
            conn = psycopg.connect(self.dsn, autocommit=True)
        except psycopg.ProgrammingError as exc:  # a value psycopg reads as it connects (connect_timeout=abc)
            raise ConfigError(f"invalid PostgreSQL store URL: {exc}") from None
        try:
            # Timestamps come back in UTC. Every join this store runs is a keyed
            # probe (batch lookups and updates join an unnest() of at most CHUNK
            # keys to a unique index): hash and merge joins are switched off so a
            # table without statistics yet (right after a bulk load) is never
            # scanned whole per batch.
            # Every statement is planned for the tables as they are when it runs
            # (force_custom_plan): a generic plan made while a table was nearly empty
            # is kept by the session and scans the tenant's rows per key as the table
            # grows (see the module doc).
            settings = {"TimeZone": "UTC", "enable_hashjoin": "off", "enable_mergejoin": "off",
                        "plan_cache_mode": "force_custom_plan"}
            if self.idle_in_transaction_timeout > 0:  # (see the attribute)
                settings["idle_in_transaction_session_timeout"] = f"{max(1, round(self.idle_in_transaction_timeout * 1000))}"
            if self.schema is not None:
                settings["search_path"] = sql.Identifier(self.schema).as_string(conn)
            conn.execute(
                "SELECT " + ", ".join("set_config(%s, %s, false)" for _ in settings),
                [item for pair in settings.items() for item in pair],
            )
        except BaseException:
            conn.close()
            raise
        return conn

    @contextmanager
    def _conn(self) -> Iterator[_Conn]:
        """A pooled connection in autocommit mode (each statement its own transaction).

        The server's failures (unreachable, connection lost, a lock, statement or
        idle-in-transaction timeout, read-only) and the pool's (closed, no free connection) are a :class:`StoreError` naming the server.

        So is a constraint the store did not expect (as in :meth:`SQLiteStore._errors
        <smsgate.store.sqlite.SQLiteStore._errors>`): a violation the store means to handle
        (``except self._DUPLICATE``: a campaign, contact list or message id that exists) is
        caught inside the ``with`` block, before it gets here; a :class:`psycopg.IntegrityError`
        that gets here (a ``NOT NULL``, check, foreign-key or unique constraint of a changed
        schema) is a :class:`StoreError` naming the server and the constraint.
        """
        try:
            conn = self._pool.get()
        except StoreError as exc:
            raise StoreError(exc.reason, store=self._where) from None
        except psycopg.OperationalError as exc:
            raise StoreError(f"cannot connect: {str(exc).strip()}", store=self._where) from exc
        try:
            yield conn
        except psycopg.IntegrityError as exc:  # its primary message only: the DETAIL shows the row's values
            primary = exc.diag.message_primary or str(exc).strip().split("\n", 1)[0]
            raise StoreError(f"{primary} (a constraint of the database refused the write; nothing was written)",
                             store=self._where) from exc
        except (psycopg.OperationalError, pg_errors.ReadOnlySqlTransaction,  # read-only: a standby
                pg_errors.IdleInTransactionSessionTimeout) as exc:  # stopped mid-transaction (see the attribute)
            raise StoreError(str(exc).strip(), store=self._where) from exc
        finally:
            self._pool.put(conn)

    #: Reads and single-statement writes run in autocommit mode (see ``SQLQueries``).
    _read = _conn
    _write = _conn

    @contextmanager
    def _tx(self) -> Iterator[_Conn]:
        """A pooled connection inside one transaction (committed on success)."""
        with self._conn() as conn, conn.transaction():
            yield conn

    @staticmethod
    @contextmanager
    def _duplicate_ids() -> Iterator[None]:
        """A message id that exists (in the batch or the store) as the ``ValueError`` the
        store contract names (inside the transaction: any other violation is a StoreError)."""
        try:
            yield
        except pg_errors.UniqueViolation as exc:
            raise ValueError(f"duplicate message id in batch or store: {exc}") from exc

    def _traffic_keys(self, conn: _Conn, tenant: str, keys: Sequence[str]) -> dict[str, str]:
        conn.execute(
            "INSERT INTO traffic_keys (tenant, key, marks) SELECT %s, k, '{}' FROM unnest(%s::text[]) AS k "
            "ON CONFLICT DO NOTHING",
            (tenant, list(keys)),
        )
        rows = conn.execute(
            "SELECT key, marks FROM traffic_keys WHERE tenant = %s AND key = ANY(%s) ORDER BY key FOR UPDATE",
            (tenant, list(keys)),
        ).fetchall()
        return dict(rows)

    def _traffic_now(self, conn: _Conn) -> float:
        row = conn.execute("SELECT extract(epoch FROM clock_timestamp())::float8").fetchone()
        assert row is not None
        return float(row[0])

    @staticmethod
    def _version(conn: _Conn) -> int:
        row = conn.execute("SELECT to_regclass('schema_version') IS NOT NULL").fetchone()
        if row is None or not row[0]:
            return 0
        row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
        return int(row[0]) if row is not None and row[0] is not None else 0

    @staticmethod
    def _write_states(conn: _Conn, tenant: str, states: Iterable[_State], events: list[_Row]) -> None:
        """Write back the modified states and insert ``events`` (pk, status, raw, at, source, detail).

        One ``UPDATE`` per set of changed columns (usually one per batch), so only
        the columns that changed are sent.
        """
        groups: dict[tuple[int, ...], list[tuple[int, list[object]]]] = {}
        for state in states:
            if state.dirty:
                columns, values = state.changes()
                if columns:
                    groups.setdefault(columns, []).append((state.pk, values))
        for columns, rows in groups.items():
            arrays = [[values[k] for _, values in rows] for k in range(len(columns))]
            conn.execute(_write_sql(columns), ([pk for pk, _ in rows], [tenant] * len(rows), *arrays))
        if events:
            with conn.cursor().copy(_COPY_EVENTS) as copy:
                copy.set_types(_EVENT_COPY_TYPES)
                for event in events:
                    copy.write_row((tenant, *event))

    # ------------------------------------------------------------- lifecycle
    def migrate(self) -> None:
        if len(MIGRATIONS) < self.SCHEMA_VERSION:  # pragma: no cover - a packaging error
            raise ConfigError(f"no migration to schema version {self.SCHEMA_VERSION}")
        with self._tx() as conn:
            # Concurrent migrators (of this schema) queue here; the lock is released
            # at commit, after which the others see the new version and do nothing.
            conn.execute(
                "SELECT pg_advisory_xact_lock(hashtext('smsgate.migrate:' || "
                "coalesce(%s, current_schema(), '')))",
                (self.schema,),
            )
            if self.schema is not None:
                conn.execute(
                    sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema))
                )
            current = self._version(conn)
            if current > self.SCHEMA_VERSION:
                raise ConfigError(
                    f"database schema version {current} is newer than this smsgate supports "
                    f"({self.SCHEMA_VERSION}); upgrade smsgate"
                )
            for version in range(current + 1, self.SCHEMA_VERSION + 1):
                for statement in MIGRATIONS[version - 1]:
                    conn.execute(statement)
                conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (version,))
            if current == 0 and self.SCHEMA_VERSION >= _ONE_INDEX_HISTORY_SINCE:
                for statement in _ONE_INDEX_HISTORY:  # a new, empty table: see _ONE_INDEX_HISTORY
                    conn.execute(statement)

    def history_layout(self) -> str:
        """The layout of the history table ``message_events``: ``"one-index"`` (its primary
        key is ``(message_pk, id)``; every database this release creates) or ``"two-index"``
        (a primary key on ``id`` plus the index ``(message_pk, id)``; a database created
        before, until :meth:`upgrade_history` converts it). The store works the same on both."""
        with self._read() as conn:
            return self._history_layout(conn)

    @staticmethod
    def _history_layout(conn: _Conn) -> str:
        row = conn.execute(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = 'message_events'::regclass AND contype = 'p'"
        ).fetchone()
        layout = _HISTORY_KEYS.get(row[0]) if row is not None else None
        if layout is None:
            raise StoreError(f"unexpected primary key of message_events: {row[0] if row else None}")
        return layout

    #: :meth:`upgrade_history`'s defaults: how long the key swap waits for the history's lock
    #: (live statements on the history queue behind that wait), how many times it tries, and
    #: the pause before the next try (growing by that much each time, at most 5 s).
    UPGRADE_LOCK_TIMEOUT = 0.5
    UPGRADE_ATTEMPTS = 20
    UPGRADE_PAUSE = 0.5

    def upgrade_history(
        self,
        *,
        lock_timeout: float | None = None,
        attempts: int | None = None,
        pause: float | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> str:
        """Convert a ``"two-index"`` history (:meth:`history_layout`) to ``"one-index"``, safely
        while processes use the store (``smsgate store upgrade-history``; docs/scaling.md).

        1. One upgrader per schema: a session advisory lock, tried once. When another
           upgrader holds it, nothing is done and ``"busy"`` is returned.
        2. ``CREATE UNIQUE INDEX CONCURRENTLY message_events_key ON message_events
           (message_pk, id)``, outside any transaction: reads and writes of the history go on
           meanwhile; the build waits for the transactions already writing the history, and
           for older snapshots, to end (it may take minutes on a big table). An index a
           build left invalid (interrupted) is dropped and built again; a valid one (an
           upgrade that gave up at step 3) is reused.
        3. In one short transaction, under ``lock_timeout`` (seconds): the history's exclusive
           lock, then catalog changes only (both columns are ``NOT NULL`` already: no scan):
           the old primary key dropped, the new index made the primary key, the index
           ``message_events_message`` dropped. Live statements on the history queue behind
           the lock's wait, so it is short; when it times out (a transaction holds the
           table), the transaction is tried again after a pause, ``attempts`` times in all,
           then a :class:`StoreError` names the sessions holding the table: nothing of the
           layout changed (the valid index of step 2 stays, kept up by every write, and is
           reused by the next run; ``DROP INDEX CONCURRENTLY message_events_key`` removes it).

        Idempotent: returns ``"already"`` when the history has one index, ``"upgraded"`` once
        this call converted it. ``progress`` receives a line per step (the CLI prints them).
        """
        lock_timeout = self.UPGRADE_LOCK_TIMEOUT if lock_timeout is None else lock_timeout
        attempts = self.UPGRADE_ATTEMPTS if attempts is None else attempts
        pause = self.UPGRADE_PAUSE if pause is None else pause
        if lock_timeout <= 0 or attempts < 1 or pause < 0:
            raise ConfigError("upgrade_history needs lock_timeout > 0, attempts >= 1 and pause >= 0")
        say = progress or (lambda _line: None)
        try:
            conn = self._connect()  # its own session: the advisory lock goes with it
        except psycopg.OperationalError as exc:
            raise StoreError(f"cannot connect: {str(exc).strip()}", store=self._where) from exc
        try:
            with conn:
                got = conn.execute(f"SELECT pg_try_advisory_lock({_UPGRADE_HISTORY_LOCK})", (self.schema,)).fetchone()
                if got is None or not got[0]:
                    say("another upgrade of this store's history is running: nothing done")
                    return "busy"
                if self._history_layout(conn) == "one-index":
                    say("the history has one index already: nothing to do")
                    return "already"
                self._build_history_key(conn, say)
                self._swap_history_key(conn, lock_timeout, attempts, pause, say)
                return "upgraded"
        except psycopg.OperationalError as exc:
            raise StoreError(str(exc).strip(), store=self._where) from exc

    @staticmethod
    def _build_history_key(conn: _Conn, say: Callable[[str], None]) -> None:
        """Step 2 of :meth:`upgrade_history`: the new key's index, built concurrently."""
        row = conn.execute(
            "SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass('message_events_key')"
        ).fetchone()
        if row is not None and row[0]:
            say("index message_events_key: built by an earlier run, reused")
            return
        # No timeout of the session cuts the build off (it waits for older transactions;
        # cut off, it would leave an invalid index that every write keeps up).
        conn.execute("SET statement_timeout = 0")
        if row is not None:
            say("index message_events_key: left invalid by an interrupted build, dropped")
            conn.execute("DROP INDEX CONCURRENTLY message_events_key")
        say("index message_events_key: building concurrently (the store stays in use; this waits "
            "for transactions already writing the history to end)")
        conn.execute("CREATE UNIQUE INDEX CONCURRENTLY message_events_key ON message_events (message_pk, id)")
        conn.execute("RESET statement_timeout")
        say("index message_events_key: built")

    def _swap_history_key(self, conn: _Conn, lock_timeout: float, attempts: int, pause: float,
                          say: Callable[[str], None]) -> None:
        """Step 3 of :meth:`upgrade_history`: the new index becomes the primary key."""
        for attempt in range(1, attempts + 1):
            try:
                with conn.transaction():
                    conn.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(
                        sql.Literal(f"{max(1, round(lock_timeout * 1000))}ms")))
                    conn.execute("LOCK TABLE message_events IN ACCESS EXCLUSIVE MODE")
                    conn.execute("ALTER TABLE message_events DROP CONSTRAINT message_events_pkey, "
                                 "ADD CONSTRAINT message_events_pkey PRIMARY KEY USING INDEX message_events_key")
                    conn.execute("DROP INDEX message_events_message")
                say(f"primary key (message_pk, id) swapped in (attempt {attempt}); index message_events_message dropped")
                return
            except pg_errors.LockNotAvailable:
                holders = self._history_lock_holders(conn)
                say(f"attempt {attempt} of {attempts}: the history's lock is held ({holders}); nothing changed")
                if attempt < attempts:
                    time.sleep(min(pause * attempt, 5.0))
        raise StoreError(
            f"could not take the lock of message_events in {attempts} attempts of {lock_timeout:g} s: "
            f"a transaction holds it ({self._history_lock_holders(conn)}); the layout is unchanged "
            "(two-index); run 'smsgate store upgrade-history' again once it ends (the index "
            "message_events_key built meanwhile is reused)",
            store=self._where)

    @staticmethod
    def _history_lock_holders(conn: _Conn) -> str:
        """The sessions holding a lock on ``message_events`` (pid, state, since), for messages."""
        rows = conn.execute(
            "SELECT DISTINCT a.pid, a.state, a.xact_start FROM pg_locks l JOIN pg_stat_activity a "
            "ON a.pid = l.pid WHERE l.relation = 'message_events'::regclass AND l.granted "
            "AND l.pid <> pg_backend_pid() ORDER BY a.xact_start NULLS LAST LIMIT 5"
        ).fetchall()
        if not rows:
            return "by a session gone since"
        return "; ".join(f"pid {pid} {state or '?'} since {start:%Y-%m-%d %H:%M:%S%z}" if start
                         else f"pid {pid} {state or '?'}" for pid, state, start in rows)

    def close(self) -> None:
        """Close the pooled connections (those in use close when given back)."""
        self._pool.close()

    def location(self) -> str | None:
        """``postgresql://host:port/database?schema=name`` (no user or password); loopback
        names and a local socket all read ``localhost``, an unset port ``5432``."""
        return self._location

    # -------------------------------------------------------------- messages
    def insert_messages(self, records: Sequence[MessageRecord]) -> None:
        if not records:
            return
        with self._tx() as conn, self._duplicate_ids():
            self._insert(conn, records)
        if len(records) >= ANALYZE_MIN_BATCH:
            self._analyze_if_grown(len(records))

    @staticmethod
    def _insert(conn: _Conn, records: Sequence[MessageRecord | NewMessage], pks: Sequence[int] = ()) -> None:
        """COPY ``records`` and their history; ``pks``: ids taken for them already (in order; a
        write-ahead takes them with its claim check, one statement fewer), else taken here."""
        with_history = any(r.history for r in records)
        cur = conn.cursor()
        if with_history and len(pks) < len(records):
            # Ids up front (in batch order), so the events can name their messages.
            cur.execute("SELECT nextval('messages_id_seq') FROM generate_series(1, %s)", (len(records),))
            pks = [int(row[0]) for row in cur.fetchall()]
        with cur.copy(_COPY_MESSAGES_WITH_ID if with_history else _COPY_MESSAGES) as copy:
            types = [t for _, t in _MESSAGE_COPY_COLUMNS]
            copy.set_types(["int8", *types] if with_history else types)
            for i, r in enumerate(records):
                row = (
                    r.tenant,
                    r.message_id,
                    r.to,
                    r.status.value,
                    r.raw_status,
                    r.provider,
                    r.provider_message_id,
                    r.batch_id,
                    r.sender,
                    r.reference,
                    r.campaign_id,
                    r.segments,
                    r.cost,
                    r.currency,
                    r.error,
                    to_utc(r.created_at),
                    to_utc(r.updated_at),
                    _utc_opt(r.submitted_at),
                    _utc_opt(r.delivered_at),
                )
                copy.write_row((pks[i], *row) if with_history else row)
        if with_history:
            with cur.copy(_COPY_EVENTS) as copy:
                copy.set_types(_EVENT_COPY_TYPES)
                for pk, r in zip(pks, records, strict=True):
                    for e in r.history:
                        copy.write_row((r.tenant, pk, e.status.value, e.raw_status, to_utc(e.at), e.source, e.detail))

    def _analyze_if_grown(self, added: int) -> None:
        """``ANALYZE messages`` after a bulk load that is large for the table.

        Autovacuum would analyze it too, but a minute or more later, while delivery
        reports for a bulk send arrive within seconds: until then the planner takes
        the table for its old (or no) size. The hot statements do not depend on
        statistics (see the module doc), but every other query (listing, statistics)
        plans better with them. A lock held by autovacuum (or another store) makes
        this step skip, never wait: the one holding it gathers the statistics.
        """
        with self._conn() as conn:
            row = conn.execute("SELECT reltuples FROM pg_class WHERE oid = 'messages'::regclass").fetchone()
            known = max(float(row[0]), 0.0) if row is not None else 0.0
            if added < ANALYZE_ROWS and added <= ANALYZE_GROWTH * known:
                return
            try:
                with conn.transaction():
                    conn.execute("SET LOCAL lock_timeout = '200ms'")
                    conn.execute("ANALYZE messages")
            except pg_errors.LockNotAvailable:
                pass

    def _load_states(self, conn: _Conn, tenant: str, message_ids: Iterable[str]) -> dict[str, _State]:
        ids = list(dict.fromkeys(message_ids))
        states: dict[str, _State] = {}
        for row in conn.execute(_LOOKUP_BY_MESSAGE_ID, {"keys": ids, "tenant": tenant}, binary=True):
            state = _state(row)
            states[state.message_id] = state
        return states

    def update_messages(self, tenant: str, updates: Sequence[MessageUpdate]) -> list[bool]:
        if not updates:
            return []
        with self._tx() as conn:
            return self._update(conn, tenant, updates)

    def _update(self, conn: _Conn, tenant: str, updates: Sequence[MessageUpdate]) -> list[bool]:
        states = self._load_states(conn, tenant, (u.message_id for u in updates))
        events: list[_Row] = []
        result: list[bool] = []
        for update in updates:
            state = states.get(update.message_id)
            if state is None:
                result.append(False)
                continue
            changed, modified = apply_update(state, update)
            if modified:
                state.dirty = True
            if changed:
                events.append(
                    (state.pk, update.status.value, update.raw_status, to_utc(update.at), update.source, update.detail)
                )
            result.append(changed)
        self._write_states(conn, tenant, states.values(), events)
        return result

    def get_message(self, tenant: str, message_id: str) -> MessageRecord:
        columns = ", ".join(f"m.{c.strip()}" for c in _MESSAGE_COLUMNS.split(","))
        with self._conn() as conn:
            rows = conn.execute(
                f"SELECT {columns}, e.status, e.raw_status, e.at, e.source, e.detail "
                "FROM messages m LEFT JOIN message_events e ON e.message_pk = m.id AND e.tenant = m.tenant "
                "WHERE m.tenant = %s AND m.message_id = %s ORDER BY e.id",
                (tenant, message_id),
            ).fetchall()
        if not rows:
            raise NotFound(f"no message {message_id!r} for tenant {tenant!r}")
        history = [
            StatusEvent(status=_STATUS[row[20]], raw_status=row[21], at=row[22], source=row[23], detail=row[24])
            for row in rows
            if row[20] is not None
        ]
        return _record(rows[0], history)

    def messages_by_id(self, tenant: str, message_ids: Sequence[str]) -> dict[str, MessageRecord]:
        """See :meth:`Store.messages_by_id`: one key probe per id (``_MESSAGES_BY_ID``)."""
        ids = list(dict.fromkeys(message_ids))
        if not ids:
            return {}
        with self._conn() as conn:
            rows = conn.execute(_MESSAGES_BY_ID, (ids, tenant)).fetchall()
        return {record.message_id: record for record in map(_record, rows)}

    def apply_reports(
        self, tenant: str, reports: Sequence[DeliveryReport], *, keep_orphans: bool = False
    ) -> list[str | None]:
        return [a.message_id for a in self.apply_reports_changes(tenant, reports, keep_orphans=keep_orphans)]

    def apply_reports_changes(
        self, tenant: str, reports: Sequence[DeliveryReport], *, keep_orphans: bool = False
    ) -> list[AppliedReport]:
        """Applied inside the server, one statement per batch (see ``_apply_reports_sql``).

        A batch naming one message several times runs in rounds (the first report of
        each message, then the second...), each seeing the previous one's writes, so
        the reports apply in order as the contract requires. With ``keep_orphans``
        the tenant's orphan lock is taken first (see ``_lock_orphans``) so a message
        logged meanwhile cannot miss its orphan.
        """
        if not any(r.provider_message_id is not None for r in reports):
            return [AppliedReport(None, False)] * len(reports)
        with self._tx() as conn:
            if keep_orphans:
                self._lock_orphans(conn, tenant, exclusive=True)
            result = self._apply_reports(conn, tenant, reports)
            if keep_orphans:
                orphans = [r for r, a in zip(reports, result, strict=True)
                           if a.message_id is None and r.provider_message_id is not None]
                if orphans:
                    conn.execute(
                        "INSERT INTO orphan_reports (tenant, provider, provider_message_id, report) "
                        "SELECT %s, p, m, r FROM unnest(%s::text[], %s::text[], %s::jsonb[]) "
                        "WITH ORDINALITY AS t(p, m, r, n) ORDER BY n",
                        (tenant, [r.provider for r in orphans], [r.provider_message_id for r in orphans],
                         [Jsonb(r.model_dump(mode="json")) for r in orphans]))
        return result

    def _apply_reports(self, conn: _Conn, tenant: str, reports: Sequence[DeliveryReport]) -> list[AppliedReport]:
        result = [AppliedReport(None, False)] * len(reports)
        pending = report_rounds(reports)
        while pending:
            positions = pending.pop(0)
            batch = [reports[i] for i in positions]
            rows = conn.execute(_APPLY_REPORTS, _report_columns(tenant, batch), binary=True).fetchall()
            applied = tuple.__new__  # AppliedReport(...) without its Python-level __new__ (client CPU)
            raced = False
            for n, message_id, changed in rows:
                if n == 0:  # a row changed under the statement: see _apply_reports_sql
                    raced = True
                    continue
                result[positions[n - 1]] = applied(AppliedReport, (message_id, changed))
            if raced:  # again, before the next round, on a new snapshot
                answered = {n - 1 for n, _, _ in rows if n}
                pending.insert(0, [p for k, p in enumerate(positions) if k not in answered])
        return result

    @staticmethod
    def _lock_orphans(conn: _Conn, tenant: str, *, exclusive: bool) -> None:
        """The tenant's orphan lock (transaction-scoped advisory lock, one per tenant).

        Log writes giving messages provider ids take it shared (they never wait for
        each other); keeping unmatched reports as orphans takes it exclusive, so a
        report kept while its message's write is in flight is seen by that write,
        or the write is seen by the report's match. One lock, not one per message
        id: a bulk write of thousands of answers would exhaust the lock table.
        """
        fn = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
        conn.execute(f"SELECT {fn}(%s)", (_lock_key(tenant),))

    def _adopt_orphans(self, conn: _Conn, tenant: str, keys: set[tuple[str, str]]) -> list[tuple[str, DeliveryReport]]:
        """Apply (and forget) the orphan reports of messages just given these provider ids;
        returns the ``(message id, report)`` applied."""
        if not keys:
            return []
        pairs = sorted(keys)
        rows = conn.execute(
            "DELETE FROM orphan_reports o USING unnest(%s::text[], %s::text[]) AS t(p, m) "
            "WHERE o.tenant = %s AND o.provider = t.p AND o.provider_message_id = t.m RETURNING o.id, o.report",
            ([p for p, _ in pairs], [m for _, m in pairs], tenant)).fetchall()
        if not rows:
            return []
        rows.sort(key=lambda row: int(row[0]))
        reports = [DeliveryReport.model_validate(r) for _, r in rows]
        matched = self._apply_reports(conn, tenant, reports)
        return [(a.message_id, r) for a, r in zip(matched, reports, strict=True) if a.message_id is not None]

    def record_parts(self, tenant: str, reports: Sequence[DeliveryReport]) -> list[dict[int, Status]]:
        result: list[dict[int, Status]] = []
        with self._tx() as conn:
            for r in reports:
                if r.part is None or r.parts is None or r.provider_message_id is None:
                    result.append({})
                    continue
                key = (tenant, r.provider, r.provider_message_id)
                conn.execute("INSERT INTO report_parts (tenant, provider, provider_message_id, part, status) "
                             "VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING", (*key, r.part, r.status.value))
                row = conn.execute("SELECT status FROM report_parts WHERE tenant = %s AND provider = %s "
                                   "AND provider_message_id = %s AND part = %s FOR UPDATE", (*key, r.part)).fetchone()
                if row is not None and accepts_status(_STATUS[row[0]], None, r.status, None):
                    conn.execute("UPDATE report_parts SET status = %s WHERE tenant = %s AND provider = %s "
                                 "AND provider_message_id = %s AND part = %s", (r.status.value, *key, r.part))
                result.append({part: _STATUS[status] for part, status in conn.execute(
                    "SELECT part, status FROM report_parts WHERE tenant = %s AND provider = %s "
                    "AND provider_message_id = %s", key)})
        return result

    # ------------------------------------------------------- inbound messages
    def record_inbound(
        self, tenant: str, messages: Sequence[InboundMessage]
    ) -> list[tuple[InboundMessage, bool]]:
        result: list[tuple[InboundMessage, bool]] = []
        with self._tx() as conn:
            for m in messages:
                new = conn.execute(
                    "INSERT INTO inbound_messages (tenant, provider, vendor_id, from_number, to_number, text, "
                    "received_at, raw, truncated) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
                    "ON CONFLICT DO NOTHING RETURNING id",
                    (tenant, m.provider, m.vendor_id, m.from_number, m.to, m.text, to_utc(m.received_at),
                     Jsonb(m.raw), m.truncated)).fetchone() is not None
                row = conn.execute(f"SELECT {INBOUND_COLUMNS} FROM inbound_messages WHERE tenant = %s "
                                   "AND provider = %s AND vendor_id = %s", (tenant, m.provider, m.vendor_id)).fetchone()
                assert row is not None
                result.append((_inbound(row), new))
        return result

    # -------------------------------------------------------------- opt-outs
    def _lock_optout(self, conn: _Conn, tenant: str, phone: str, scope: str) -> None:
        # a transaction-scoped advisory lock: a start word's opt-in and an older stop word's
        # opt-out of one number and scope, in two transactions at once, would each miss the other
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('smsgate.optout:' || %s || ':' || %s || ':' || %s))",
                     (tenant, phone, scope))

    @staticmethod
    def _lock_optouts(conn: _Conn, tenant: str, *, exclusive: bool) -> None:
        """The tenant's opt-out lock (transaction-scoped advisory lock, one per tenant): a
        write-ahead re-checking its numbers' opt-outs takes it shared before its read
        (:meth:`write_log`; write-aheads never wait for each other), adding opt-outs takes it
        exclusive (:meth:`add_optouts`). Under READ COMMITTED a write-ahead waiting for a lock
        after its read (a row, the orphans' lock) would otherwise commit ``queued`` after an
        opt-out committed meanwhile, unseen, and its request leave after the opt-out; now the
        opt-out waits for that commit (the message was logged ahead before it), or the read
        sees it. One lock, not one per number: a write-ahead of thousands of numbers (merged
        requests), or an import's batch, would exhaust the lock table (as :meth:`_lock_orphans`)."""
        fn = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
        conn.execute(f"SELECT {fn}(%s)", (_lock_key(tenant, "smsgate.optouts"),))

    def add_optouts(self, tenant: str, optouts: Sequence[OptOut], *, renew: bool = False) -> int:
        if not optouts:
            return 0
        phones, scopes, times = [o.phone for o in optouts], [o.scope for o in optouts], [to_utc(o.created_at)
                                                                                          for o in optouts]
        params: tuple[object, ...] = (tenant, phones, scopes, [o.reason for o in optouts],
                                      [o.source for o in optouts], times)
        held = ""
        if renew:  # none said before an opt-in of its number and scope (see Store.add_optouts)
            held = ("WHERE NOT EXISTS (SELECT 1 FROM optins i WHERE i.tenant = %s AND i.phone = v.phone "
                    "AND i.scope = v.scope AND i.said_at > v.created_at) ")
            params = (*params, tenant)
        with self._tx() as conn:
            self._lock_optouts(conn, tenant, exclusive=True)  # a write-ahead re-checking opt-outs waits, or is seen
            if renew:  # the opt-in of the same number and scope waits, or is seen (see _lock_optout)
                for phone, scope in sorted(set(zip(phones, scopes, strict=True))):
                    self._lock_optout(conn, tenant, phone, scope)
            cur = conn.execute(
                "INSERT INTO optouts (tenant, phone, scope, reason, source, created_at) "
                "SELECT %s, v.phone, v.scope, v.reason, v.source, v.created_at "
                "FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[], %b::timestamptz[]) WITH ORDINALITY "
                f"AS v(phone, scope, reason, source, created_at, n) {held}ORDER BY v.n "
                "ON CONFLICT (tenant, phone, scope) DO NOTHING",
                params,
            )
            new = cur.rowcount
            if renew:
                conn.execute(
                    "UPDATE optouts o SET created_at = v.created_at "
                    "FROM (SELECT phone, scope, max(created_at) AS created_at "
                    "      FROM unnest(%b::text[], %b::text[], %b::timestamptz[]) AS u(phone, scope, created_at) "
                    "      GROUP BY phone, scope) v "
                    "WHERE o.tenant = %s AND o.phone = v.phone AND o.scope = v.scope AND o.created_at < v.created_at",
                    (phones, scopes, times, tenant),
                )
            return new

    def optout_scopes(self, tenant: str, phones: Iterable[str]) -> dict[str, set[str]]:
        unique = list(dict.fromkeys(phones))
        if not unique:
            return {}
        with self._conn() as conn:
            return self._optout_scopes(conn, tenant, unique)

    @staticmethod
    def _optout_scopes(conn: _Conn, tenant: str, unique: Sequence[str]) -> dict[str, set[str]]:
        """:meth:`optout_scopes` of the distinct numbers ``unique`` on ``conn``."""
        found: dict[str, set[str]] = {}
        for chunk in _chunks(unique):
            for phone, scope in conn.execute(
                # One primary-key probe per phone, whatever the statistics say.
                "SELECT o.phone, o.scope FROM unnest(%b::text[]) AS k(phone) CROSS JOIN LATERAL "
                "(SELECT phone, scope FROM optouts WHERE tenant = %s AND phone = k.phone OFFSET 0) AS o",
                (list(chunk), tenant),
            ):
                found.setdefault(phone, set()).add(scope)
        return found

    def list_optouts(self, tenant: str, *, limit: int | None = None, offset: int = 0) -> list[OptOut]:
        with self._conn() as conn:
            rows = conn.execute(
                "SELECT phone, scope, reason, source, created_at FROM optouts WHERE tenant = %s "
                "ORDER BY phone, scope LIMIT %s OFFSET %s",
                (tenant, None if limit is None else max(limit, 0), max(offset, 0)),
            ).fetchall()
        return [
            OptOut(phone=phone, scope=scope, reason=reason, source=source, created_at=created_at)
            for phone, scope, reason, source, created_at in rows
        ]

    # ------------------------------------------------------- idempotency keys
    def claim_idempotency_key(self, tenant: str, key: str, message_id: str) -> str | None:
        with self._conn() as conn:
            # Two statements on purpose: the SELECT takes a new snapshot, so it sees a
            # key a concurrent claimer committed while our INSERT waited for it.
            cur = conn.execute(
                "INSERT INTO idempotency_keys (tenant, key, message_id) VALUES (%s, %s, %s) "
                "ON CONFLICT (tenant, key) DO NOTHING",
                (tenant, key, message_id),
            )
            if cur.rowcount == 1:
                return None
            row = conn.execute(
                "SELECT message_id FROM idempotency_keys WHERE tenant = %s AND key = %s", (tenant, key)
            ).fetchone()
            return str(row[0]) if row is not None else None

    def bound_keys(self, tenant: str, keys: Sequence[str]) -> dict[str, str]:
        with self._conn() as conn:
            rows = conn.execute("SELECT key, message_id FROM idempotency_keys WHERE tenant = %s AND key = ANY(%s)",
                                (tenant, list(dict.fromkeys(keys)))).fetchall()
        return {str(k): str(m) for k, m in rows}

    # -------------------------------------------------------------- campaigns
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
        new_spec = None if spec is None else Jsonb(json.loads(json.dumps(spec)))
        allowed = None if if_status is None else [s.value for s in if_status]
        with self._conn() as conn:
            row = conn.execute(
                "UPDATE campaigns SET status = coalesce(%s, status), spec = coalesce(%s, spec), "
                "start_at = coalesce(%s, start_at), provider = coalesce(%s, provider), "
                "provider_campaign_id = coalesce(%s, provider_campaign_id), error = coalesce(%s, error), "
                f"updated_at = %s WHERE tenant = %s AND campaign_id = %s "
                "AND (%s::text[] IS NULL OR status = ANY(%s::text[])) "
                f"RETURNING {_CAMPAIGN_COLUMNS}",
                (
                    None if status is None else status.value,
                    new_spec,
                    _utc_opt(start_at),
                    provider,
                    provider_campaign_id,
                    error,
                    utcnow(),
                    tenant,
                    campaign_id,
                    allowed,
                    allowed,
                ),
            ).fetchone()
        if row is None:
            if allowed is not None:  # not in one of those statuses (then it is returned as stored), or missing
                return self.get_campaign(tenant, campaign_id)
            raise NotFound(f"no campaign {campaign_id!r} for tenant {tenant!r}")
        return _campaign(row)

    def add_recipients(
        self, tenant: str, campaign_id: str, rows: Sequence[RecipientRow],
        on_duplicate: Callable[[RecipientRow, int | None], RecipientRow] | None = None,
    ) -> list[Duplicate]:
        if not rows:
            return []
        keys = list(dict.fromkeys(r.key for r in rows if r.key is not None))
        duplicates: list[Duplicate] = []
        with self._tx() as conn:
            # keys already stored (earlier chunks), then this chunk's own repeats: the
            # first row of a key wins; the unique index guards the rule
            first: dict[str, int | None] = {}
            if keys:
                first.update(conn.execute(_KNOWN_KEYS, (keys, tenant, campaign_id)).fetchall())
            with conn.cursor().copy(_COPY_RECIPIENTS) as copy:
                copy.set_types([t for _, t in _RECIPIENT_COPY_COLUMNS])
                for i, r in enumerate(rows):
                    key = r.key
                    if key is not None:
                        if key in first:
                            duplicates.append(Duplicate(i, first[key]))
                            if on_duplicate is None:
                                continue
                            r = on_duplicate(r, first[key])
                            key = None
                        else:
                            first[key] = r.line
                    copy.write_row(
                        (
                            tenant,
                            campaign_id,
                            r.seq,
                            r.phone,
                            r.state.value,
                            r.fields,  # the jsonb dumper encodes it (TypeError if not JSON-able)
                            r.reason,
                            r.detail,
                            r.message_id,
                            r.segments,
                            r.provider,
                            r.line,
                            key,
                        )
                    )
        return duplicates

    #: :meth:`delete_campaign` under live runners: how long one try waits for a row a runner's
    #: transaction holds, and how many tries it makes before it gives up.
    DELETE_LOCK_WAIT = 0.2
    DELETE_TRIES = 100

    def delete_campaign(self, tenant: str, campaign_id: str) -> bool:
        """See :meth:`Store.delete_campaign <smsgate.store.base.Store.delete_campaign>`.

        Under live runners (``delete(force=True)``) the ``DELETE`` of the recipients takes their
        rows in the order of its scan, while a runner's write locks its own in id order, one set
        after another in one transaction (the write-ahead's claims, then the answers of earlier
        requests): the two could wait for each other, and the server broke that by failing one of
        them (``deadlock detected``: the delete, or the runner's write; one PostgreSQL run in about
        eight of tests/test_verify7.py). So a try waits at most :data:`DELETE_LOCK_WAIT` for a row
        (``lock_timeout``, well under the server's ``deadlock_timeout``): past that it gives its
        locks back at once, so the runner's write goes on, and the delete is tried again."""
        with self._conn() as conn:
            for _ in range(self.DELETE_TRIES):
                try:
                    with conn.transaction():
                        conn.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(
                            sql.Literal(f"{round(self.DELETE_LOCK_WAIT * 1000)}ms")))
                        for table in ("campaign_runners", "campaign_recipients"):
                            conn.execute(sql.SQL("DELETE FROM {} WHERE tenant = %s AND campaign_id = %s").format(
                                sql.Identifier(table)), (tenant, campaign_id))
                        cur = conn.execute("DELETE FROM campaigns WHERE tenant = %s AND campaign_id = %s",
                                           (tenant, campaign_id))
                        return int(cur.rowcount) > 0
                except (pg_errors.LockNotAvailable, pg_errors.DeadlockDetected):
                    time.sleep(random.uniform(0.0, self.DELETE_LOCK_WAIT))
        raise StoreError(f"campaign {campaign_id!r} of tenant {tenant!r} was not deleted: its runners' writes held "
                         f"its recipients through {self.DELETE_TRIES} tries; stop them (pause or cancel it) and "
                         "delete it then", store=self._where)

    def claim_recipients(
        self, tenant: str, campaign_id: str, limit: int, new_message_id: Callable[[], str],
        *, owner: str | None = None,
    ) -> list[RecipientRow]:
        if limit <= 0:
            return []
        with self._tx() as conn:
            # SKIP LOCKED: rows another runner is claiming right now are passed over
            # (never claimed twice) instead of waited for.
            rows = conn.execute(
                f"SELECT {_RECIPIENT_COLUMNS} FROM campaign_recipients "
                "WHERE tenant = %s AND campaign_id = %s AND state = %s "
                "ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED",
                (tenant, campaign_id, RecipientState.PENDING.value, limit),
            ).fetchall()
            if not rows:
                return []
            claimed = [_recipient(row) for row in rows]
            for r in claimed:  # exactly one new id per claimed recipient, in id order
                r.state = RecipientState.SENDING
                r.message_id = new_message_id()
                r.owner = owner
            conn.execute(
                "UPDATE campaign_recipients AS r SET state = %s, message_id = v.message_id, owner = %s "
                "FROM unnest(%b::bigint[], %b::text[], %b::text[]) AS v(id, tenant, message_id) "
                "WHERE r.id = v.id AND r.tenant = v.tenant",
                (
                    RecipientState.SENDING.value,
                    owner,
                    [r.id for r in claimed],
                    [tenant] * len(claimed),
                    [r.message_id for r in claimed],
                ),
            )
        return claimed

    @staticmethod
    def _update_recipients(conn: _Conn, tenant: str, updates: Iterable[tuple[str, RecipientUpdate]]) -> int:
        # Several updates of one recipient collapse into one, as if applied in order.
        # Returns how many guarded updates applied (Store.update_recipients).
        merged: dict[int, list[Any]] = {}
        guarded: dict[int, list[Any]] = {}
        for campaign_id, u in updates:
            m = merged.get(u.id)
            pending = u.state is RecipientState.PENDING
            if u.if_message is not None:  # applied after the others, only while it holds that message
                guarded[u.id] = [u.state.value, u.reason, u.detail, None if pending else u.message_id, pending,
                                 campaign_id, u.if_message, u.if_sending]
                continue
            if m is None:
                merged[u.id] = [u.state.value, u.reason, u.detail, u.message_id, pending, campaign_id]
                continue
            m[0] = u.state.value
            if u.reason is not None:
                m[1] = u.reason
            if u.detail is not None:
                m[2] = u.detail
            if pending:
                m[3], m[4] = None, True
            elif u.message_id is not None:
                m[3], m[4] = u.message_id, False
        applied = 0
        for rows, guard in ((merged, False), (guarded, True)):
            if not rows:
                continue
            ids = sorted(rows)  # rows are locked in id order
            params: list[list[Any]] = [ids, [tenant] * len(ids), *([rows[i][k] for i in ids] for k in (5, 0, 1, 2, 3, 4))]
            columns = "id, tenant, campaign_id, state, reason, detail, message_id, clear"
            types = "%b::bigint[], %b::text[], %b::text[], %b::text[], %b::text[], %b::text[], %b::text[], %b::bool[]"
            where = "r.id = v.id AND r.tenant = v.tenant AND r.campaign_id = v.campaign_id"
            if guard:
                params += [[rows[i][6] for i in ids], [rows[i][7] for i in ids]]
                columns, types = columns + ", if_message, if_sending", types + ", %b::text[], %b::bool[]"
                where += " AND r.message_id = v.if_message AND (NOT v.if_sending OR r.state IN ('sending', 'unknown'))"
            # Tenant and campaign are array columns, not constants (see _write_sql).
            cur = conn.execute(
                "UPDATE campaign_recipients AS r SET state = v.state, reason = coalesce(v.reason, r.reason), "
                "detail = coalesce(v.detail, r.detail), "
                "message_id = CASE WHEN v.clear THEN NULL ELSE coalesce(v.message_id, r.message_id) END, "
                f"owner = CASE WHEN v.clear THEN NULL ELSE r.owner END FROM unnest({types}) AS v({columns}) "
                f"WHERE {where}",
                params,
            )
            if guard:
                applied = cur.rowcount
        return applied

    def update_recipients(self, tenant: str, campaign_id: str, updates: Sequence[RecipientUpdate]) -> int:
        if not updates:
            return 0
        with self._tx() as conn:
            return self._update_recipients(conn, tenant, ((campaign_id, u) for u in updates))

    def recover_claims(
        self, tenant: str, campaign_id: str, owner: str, now: datetime, limit: int,
    ) -> list[RecipientRow]:
        if limit <= 0:
            return []
        with self._tx() as conn:
            rows = conn.execute(
                f"SELECT {_RECIPIENT_COLUMNS} FROM campaign_recipients r "
                "WHERE tenant = %s AND campaign_id = %s AND state = %s AND (owner IS NULL OR owner <> %s) "
                "AND NOT EXISTS (SELECT 1 FROM campaign_runners w WHERE w.tenant = r.tenant "
                "AND w.campaign_id = r.campaign_id AND w.owner = r.owner AND w.lease_until > %s) "
                "ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED",
                (tenant, campaign_id, RecipientState.SENDING.value, owner, to_utc(now), limit),
            ).fetchall()
            taken = [_recipient(row) for row in rows]
            gone = sorted({r.owner for r in taken if r.owner})
            if gone:  # the runners gone lose their lease row: renew_runner tells them (Store.recover_claims)
                # (a renewal committed since the select kept its row alive: its claims stay its own)
                conn.execute("DELETE FROM campaign_runners WHERE tenant = %s AND campaign_id = %s "
                             "AND owner = ANY(%s) AND lease_until <= %s", (tenant, campaign_id, gone, to_utc(now)))
                live = {o for (o,) in conn.execute(
                    "SELECT owner FROM campaign_runners WHERE tenant = %s AND campaign_id = %s AND owner = ANY(%s)",
                    (tenant, campaign_id, gone))}
                if live:
                    taken = [r for r in taken if r.owner not in live]
            if taken:  # the rows are locked already (in id order): rewritten in that order
                conn.execute(_RECOVER_OWNER, (owner, [r.id for r in taken], [tenant] * len(taken)))
            for r in taken:
                r.owner = owner
        return taken

    # -------------------------------------------------------------- dispatch log
    def write_log(self, tenant: str, write: LogWrite) -> LogResult:
        result = LogResult()
        inserts = write.inserts
        provider_ids = written_provider_keys(inserts, write.updates)
        with self._tx() as conn:
            if write.rechecks:  # (a refusal replaces an insert: same ids, no provider id)
                phones = write.recheck_phones()
                self._lock_optouts(conn, tenant, exclusive=False)  # until the commit: see _lock_optouts
                write, result.refused = write.rechecked(self._optout_scopes(conn, tenant, list(phones)))
                inserts = write.inserts
            if provider_ids:  # before any row: see _lock_orphans
                self._lock_orphans(conn, tenant, exclusive=False)
            pks: list[int] = []
            if write.claims:
                ids = sorted({c.recipient_id for c in write.claims.values()})
                owners = {c.recipient_id: c.owner for c in write.claims.values()}
                # FOR SHARE: a runner recovering these claims waits for this transaction. The
                # inserts' ids come in the same statement (one round trip and one statement fewer
                # per write-ahead: bench/analysis.md, 2026-12-04 evening); a lost claim's id is a gap.
                held: set[int] = set()
                for rid, state, row_owner, pk in conn.execute(_CHECK_CLAIMS, (ids, tenant, len(inserts))):
                    if pk is not None:
                        pks.append(int(pk))
                    elif state == RecipientState.SENDING.value and row_owner == owners[rid]:
                        held.add(rid)
                result.lost = {mid for mid, c in write.claims.items() if c.recipient_id not in held}
            if write.keys:
                now = utcnow()
                for mid, key in write.keys.items():
                    if mid in result.lost:
                        continue
                    row = conn.execute(
                        "INSERT INTO idempotency_keys (tenant, key, message_id, created_at) VALUES (%s, %s, %s, %s) "
                        "ON CONFLICT (tenant, key) DO NOTHING RETURNING message_id", (tenant, key, mid, now),
                    ).fetchone()
                    if row is None:
                        bound = conn.execute("SELECT message_id FROM idempotency_keys WHERE tenant = %s AND key = %s",
                                             (tenant, key)).fetchone()
                        result.replays[mid] = str(bound[0]) if bound is not None else ""
            if result.lost or result.replays:
                kept = [i for i, r in enumerate(inserts) if r.message_id not in result.lost
                        and r.message_id not in result.replays]
                inserts = [inserts[i] for i in kept]
                pks = [pks[i] for i in kept] if pks else pks
            if inserts:
                with self._duplicate_ids():
                    self._insert(conn, inserts, pks)
            if write.updates:
                result.changed = changed_ids(write.updates, self._update(conn, tenant, write.updates))
            if write.withdrawn:
                self._withdraw(conn, tenant, write.withdrawn)
            if write.recipients:
                self._update_recipients(conn, tenant, write.recipients)
            result.adopted = self._adopt_orphans(conn, tenant, provider_ids)
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
        if limit <= 0 or (states is not None and not states):
            return []
        where = "tenant = %s AND campaign_id = %s AND id > %s"
        params: list[object] = [tenant, campaign_id, after_id]
        if states is not None:
            where += " AND state = ANY(%b::text[])"
            params.append(list(dict.fromkeys(state.value for state in states)))
        params.append(limit)
        with self._conn() as conn:
            rows = conn.execute(
                f"SELECT {_RECIPIENT_COLUMNS} FROM campaign_recipients WHERE {where} ORDER BY id LIMIT %s",
                params,
            ).fetchall()
        return [_recipient(row) for row in rows]

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
        """Streamed through a server-side cursor (``_TIMES_PAGE`` rows per round trip).

        The iterator holds one pooled connection (and a read transaction) until it
        is exhausted or closed.
        """
        where, params = self._times_filter(tenant, campaign_id, provider, since, until)
        query = (
            "SELECT status, provider, created_at, submitted_at, delivered_at, segments, cost, currency, raw_status "
            f"FROM messages WHERE {where} ORDER BY created_at, id"
        )
        return self._stream_times(query, params)

    def _stream_times(self, query: str, params: list[object]) -> Iterator[MessageTimes]:
        with (
            self._conn() as conn,
            conn.transaction(),
            conn.cursor(name=f"smsgate_times_{next(_cursor_names)}", binary=True) as cur,
        ):
            # a consumer may take its time between pages: this read takes no row lock, so it is
            # not held to idle_in_transaction_timeout (see the attribute)
            conn.execute("SET LOCAL idle_in_transaction_session_timeout = 0")
            cur.itersize = _TIMES_PAGE
            cur.execute(query, params)
            for row in cur:
                yield MessageTimes(
                    status=_STATUS[row[0]],
                    provider=row[1],
                    created_at=row[2],
                    submitted_at=row[3],
                    delivered_at=row[4],
                    segments=row[5],
                    cost=row[6],
                    currency=row[7],
                    raw_status=row[8],
                )

    # ----------------------------------------------------------- contact lists
    @staticmethod
    def _list_exists(conn: _Conn, tenant: str, list_id: str, *, lock: bool = False) -> bool:
        """Whether the list exists; with ``lock`` its row is locked until the transaction ends.

        Every writer of a list's contacts (add, remove, delete) takes that lock first,
        so they run one after the other: upserts and deletes of overlapping phones in
        different orders cannot deadlock, and a list deleted meanwhile is seen as gone.
        """
        row = conn.execute(
            "SELECT 1 FROM contact_lists WHERE tenant = %s AND list_id = %s"
            + (" FOR NO KEY UPDATE" if lock else ""),
            (tenant, list_id),
        ).fetchone()
        return row is not None

    @classmethod
    def _require_list(cls, conn: _Conn, tenant: str, list_id: str, *, lock: bool = False) -> None:
        if not cls._list_exists(conn, tenant, list_id, lock=lock):
            raise NotFound(f"no contact list {list_id!r} for tenant {tenant!r}")

    @staticmethod
    def _list_row(row: _Row) -> ContactListRow:
        return ContactListRow(
            tenant=row[0], list_id=row[1], name=row[2], created_at=row[3], description=row[4], size=int(row[5])
        )

    def delete_contact_list(self, tenant: str, list_id: str) -> bool:
        with self._tx() as conn:
            # The list row first: this waits for a writer of its contacts to commit, and
            # the next statement (a new snapshot) then sees and deletes what it added.
            cur = conn.execute(
                "DELETE FROM contact_lists WHERE tenant = %s AND list_id = %s", (tenant, list_id)
            )
            conn.execute("DELETE FROM contacts WHERE tenant = %s AND list_id = %s", (tenant, list_id))
            return cur.rowcount > 0

    def add_contacts(self, tenant: str, list_id: str, contacts: Sequence[Contact]) -> int:
        check_contact_fields(contacts)  # a field named phone or name: refused, nothing written
        # One row per phone (the last one wins, in the position of the first), as if
        # the contacts were added one by one.
        unique: dict[str, Contact] = {}
        for c in contacts:
            unique[c.phone] = c
        with self._tx() as conn:
            self._require_list(conn, tenant, list_id, lock=True)
            if not unique:
                return 0
            rows = conn.execute(
                "INSERT INTO contacts (tenant, list_id, phone, name, fields, field_order) "
                "SELECT %s, %s, v.phone, v.name, v.fields::jsonb, v.field_order::jsonb "
                "FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[]) WITH ORDINALITY "
                "AS v(phone, name, fields, field_order, n) "
                "ORDER BY v.n "
                "ON CONFLICT (tenant, list_id, phone) DO UPDATE SET name = excluded.name, fields = excluded.fields, "
                "field_order = excluded.field_order "
                "RETURNING (xmax = 0)",
                (
                    tenant,
                    list_id,
                    list(unique),
                    [c.name for c in unique.values()],
                    [json.dumps(c.fields) for c in unique.values()],
                    [json.dumps(list(c.fields)) for c in unique.values()],
                ),
            ).fetchall()
            return sum(1 for (inserted,) in rows if inserted)

    def remove_contacts(self, tenant: str, list_id: str, phones: Iterable[str]) -> int:
        removed = 0
        unique = sorted(set(phones))
        with self._tx() as conn:
            if not unique or not self._list_exists(conn, tenant, list_id, lock=True):
                return 0
            for chunk in _chunks(unique):
                cur = conn.execute(
                    "DELETE FROM contacts WHERE tenant = %s AND list_id = %s AND phone = ANY(%b::text[])",
                    (tenant, list_id, list(chunk)),
                )
                removed += cur.rowcount
        return removed

    def list_contacts(
        self, tenant: str, list_id: str, *, after_id: int = 0, limit: int = 1000
    ) -> list[tuple[int, Contact]]:
        with self._tx() as conn:
            self._require_list(conn, tenant, list_id)
            rows = conn.execute(
                "SELECT id, phone, name, fields, field_order FROM contacts "
                "WHERE tenant = %s AND list_id = %s AND id > %s ORDER BY id LIMIT %s",
                (tenant, list_id, after_id, limit),
            ).fetchall()
        return [(int(r[0]), Contact(phone=r[1], name=r[2], fields=_in_order(r[3], r[4]))) for r in rows]

    # -------------------------------------------------------------- retention
    def purge(self, tenant: str | None, *, before: datetime, dry_run: bool = False,
              batch_size: int = 1000) -> PurgeResult:
        """See :meth:`Store.purge <smsgate.store.base.Store.purge>`.

        Each batch is one short transaction (row locks on at most ``batch_size`` old
        messages, which nothing else writes); a campaign's row is locked (``FOR UPDATE``)
        in each batch deleting its rows, so its status cannot change under one.
        """
        return purge_rows(self, tenant, before=before, dry_run=dry_run, batch_size=batch_size,
                          lock_campaign=" FOR UPDATE")
