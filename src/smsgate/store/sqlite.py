"""The embedded default store: one SQLite file (WAL), standard library only.

One connection per store object, opened with ``check_same_thread=False`` and
guarded by a re-entrant lock, so a store can be shared by threads; several store
objects (or processes) may open the same file: writes take the write lock up
front (``BEGIN IMMEDIATE``) and wait up to the busy timeout for it.

Datetimes are stored as ISO-8601 UTC text with microseconds (they sort as text and
come back timezone-aware); costs as decimal text (they come back as an equal
:class:`~decimal.Decimal` with its scale, in the form every store gives:
:func:`~smsgate.store._rules.stored_cost`). The schema is versioned: :data:`MIGRATIONS` is a list
of numbered migrations (version ``n`` is ``MIGRATIONS[n - 1]``) applied in order
by :meth:`SQLiteStore.migrate`; a new schema version appends one.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from itertools import accumulate, chain, pairwise
from json.encoder import encode_basestring_ascii
from operator import itemgetter
from pathlib import Path
from typing import Any
from urllib.parse import unquote

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
    apply_report,
    apply_update,
    changed_ids,
    stored_cost,
    to_utc,
    written_provider_keys,
)
from smsgate.store._sql import INBOUND_COLUMNS, SQLQueries
from smsgate.store._sql import MESSAGE_COLUMNS as _MESSAGE_COLUMNS
from smsgate.store._sql import RECIPIENT_COLUMNS as _RECIPIENT_COLUMNS
from smsgate.store.base import (
    NEW_MESSAGE_SOURCE,
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

__all__ = ["MIGRATIONS", "SQLiteStore"]

#: Placeholders per ``IN (...)`` query.
CHUNK = 500

#: Page cache per connection, in KiB (``PRAGMA cache_size``).
CACHE_KIB = 65_536

#: WAL pages between automatic checkpoints (``PRAGMA wal_autocheckpoint``).
WAL_AUTOCHECKPOINT_PAGES = 16_384

#: What to do about SQLite's commonest failures (said with the error).
_HINTS = {
    "database is locked": "another connection held the write lock for longer than the busy timeout; retry, "
                          "or keep write transactions short",
    "attempt to write a readonly database": "the file, or its folder, is not writable by this process",
    "unable to open database file": "the file or its folder cannot be opened (missing, or not readable)",
    "database or disk is full": "free some disk space",
}

#: Numbered schema migrations; each is a sequence of SQL statements run in one
#: transaction. Never edit a released migration: append a new one.
MIGRATIONS: list[tuple[str, ...]] = [
    # 1: initial schema
    (
        """
        CREATE TABLE schema_version (
            version     INTEGER PRIMARY KEY,
            applied_at  TEXT NOT NULL
        )
        """,
        """
        CREATE TABLE messages (
            id                  INTEGER PRIMARY KEY,
            tenant              TEXT NOT NULL,
            message_id          TEXT NOT NULL,
            to_phone            TEXT NOT NULL,
            status              TEXT NOT NULL,
            raw_status          TEXT,
            provider            TEXT,
            provider_message_id TEXT,
            batch_id            TEXT,
            sender              TEXT,
            reference           TEXT,
            campaign_id         TEXT,
            segments            INTEGER,
            cost                TEXT,
            currency            TEXT,
            error               TEXT,
            created_at          TEXT NOT NULL,
            updated_at          TEXT NOT NULL,
            submitted_at        TEXT,
            delivered_at        TEXT,
            UNIQUE (tenant, message_id)
        )
        """,
        "CREATE INDEX messages_provider_id ON messages (tenant, provider, provider_message_id)",
        "CREATE INDEX messages_campaign_status ON messages (tenant, campaign_id, status)",
        "CREATE INDEX messages_to ON messages (tenant, to_phone)",
        "CREATE INDEX messages_status ON messages (tenant, status)",
        "CREATE INDEX messages_created ON messages (tenant, created_at, id)",
        """
        CREATE TABLE message_events (
            id          INTEGER PRIMARY KEY,
            tenant      TEXT NOT NULL,
            message_pk  INTEGER NOT NULL REFERENCES messages (id),
            status      TEXT NOT NULL,
            raw_status  TEXT,
            at          TEXT NOT NULL,
            source      TEXT NOT NULL DEFAULT '',
            detail      TEXT
        )
        """,
        "CREATE INDEX message_events_message ON message_events (message_pk, id)",
        """
        CREATE TABLE optouts (
            tenant      TEXT NOT NULL,
            phone       TEXT NOT NULL,
            reason      TEXT,
            source      TEXT NOT NULL,
            created_at  TEXT NOT NULL,
            PRIMARY KEY (tenant, phone)
        ) WITHOUT ROWID
        """,
        """
        CREATE TABLE idempotency_keys (
            tenant      TEXT NOT NULL,
            key         TEXT NOT NULL,
            message_id  TEXT NOT NULL,
            created_at  TEXT NOT NULL,
            PRIMARY KEY (tenant, key)
        ) WITHOUT ROWID
        """,
        """
        CREATE TABLE campaigns (
            id                   INTEGER PRIMARY KEY,
            tenant               TEXT NOT NULL,
            campaign_id          TEXT NOT NULL,
            name                 TEXT NOT NULL,
            status               TEXT NOT NULL,
            spec                 TEXT NOT NULL DEFAULT '{}',
            start_at             TEXT,
            provider             TEXT,
            provider_campaign_id TEXT,
            error                TEXT,
            created_at           TEXT NOT NULL,
            updated_at           TEXT NOT NULL,
            UNIQUE (tenant, campaign_id)
        )
        """,
        "CREATE INDEX campaigns_created ON campaigns (tenant, created_at, id)",
        """
        CREATE TABLE campaign_recipients (
            id           INTEGER PRIMARY KEY,
            tenant       TEXT NOT NULL,
            campaign_id  TEXT NOT NULL,
            seq          INTEGER NOT NULL,
            phone        TEXT NOT NULL,
            state        TEXT NOT NULL,
            fields       TEXT NOT NULL DEFAULT '{}',
            reason       TEXT,
            detail       TEXT,
            message_id   TEXT,
            segments     INTEGER,
            provider     TEXT
        )
        """,
        "CREATE INDEX campaign_recipients_campaign ON campaign_recipients (tenant, campaign_id, id)",
        "CREATE INDEX campaign_recipients_state ON campaign_recipients (tenant, campaign_id, state, id)",
        """
        CREATE TABLE contact_lists (
            id           INTEGER PRIMARY KEY,
            tenant       TEXT NOT NULL,
            list_id      TEXT NOT NULL,
            name         TEXT NOT NULL,
            description  TEXT NOT NULL DEFAULT '',
            created_at   TEXT NOT NULL,
            UNIQUE (tenant, list_id)
        )
        """,
        """
        CREATE TABLE contacts (
            id       INTEGER PRIMARY KEY,
            tenant   TEXT NOT NULL,
            list_id  TEXT NOT NULL,
            phone    TEXT NOT NULL,
            name     TEXT,
            fields   TEXT NOT NULL DEFAULT '{}',
            UNIQUE (tenant, list_id, phone)
        )
        """,
    ),
    # 2: no index of messages holds its status any more, so a delivery report (or
    # any status change) rewrites the row and no index entry: about a third fewer
    # pages written per report (bench/analysis.md, "ingestion"). count_by_status and
    # list_messages(status=...) read the tenant's or campaign's rows instead, like
    # the PostgreSQL store.
    (
        "DROP INDEX messages_status",
        "DROP INDEX messages_campaign_status",
        "CREATE INDEX messages_campaign ON messages (tenant, campaign_id)",
    ),
    # 3: exactly-once dispatch: a claimed recipient has an owner, a runner a lease;
    # recipients are deduplicated by the store (a unique key per campaign), and keep
    # their audience line for messages about them.
    (
        "ALTER TABLE campaign_recipients ADD COLUMN line INTEGER",
        "ALTER TABLE campaign_recipients ADD COLUMN dedupe_key TEXT",
        "ALTER TABLE campaign_recipients ADD COLUMN owner TEXT",
        "CREATE UNIQUE INDEX campaign_recipients_key ON campaign_recipients (tenant, campaign_id, dedupe_key)",
        """
        CREATE TABLE campaign_runners (
            tenant       TEXT NOT NULL,
            campaign_id  TEXT NOT NULL,
            owner        TEXT NOT NULL,
            lease_until  TEXT NOT NULL,
            PRIMARY KEY (tenant, campaign_id, owner)
        ) WITHOUT ROWID
        """,
    ),
    # 4: traffic control (see the PostgreSQL store's migration 4)
    (
        """
        CREATE TABLE traffic_keys (
            tenant  TEXT NOT NULL,
            key     TEXT NOT NULL,
            marks   TEXT NOT NULL,
            PRIMARY KEY (tenant, key)
        ) WITHOUT ROWID
        """,
        """
        CREATE TABLE traffic_entries (
            tenant    TEXT NOT NULL,
            key       TEXT NOT NULL,
            id        TEXT NOT NULL,
            messages  INTEGER NOT NULL,
            segments  INTEGER NOT NULL,
            started   REAL NOT NULL,
            ended     REAL,
            expires   REAL NOT NULL,
            PRIMARY KEY (tenant, key, id)
        ) WITHOUT ROWID
        """,
    ),
    # 5: inbound messages and exact reports (see the PostgreSQL store's migration 5)
    (
        """
        CREATE TABLE orphan_reports (
            id                  INTEGER PRIMARY KEY,
            tenant              TEXT NOT NULL,
            provider            TEXT NOT NULL,
            provider_message_id TEXT NOT NULL,
            report              TEXT NOT NULL,
            received_at         TEXT NOT NULL
        )
        """,
        "CREATE INDEX orphan_reports_key ON orphan_reports (tenant, provider, provider_message_id)",
        """
        CREATE TABLE report_parts (
            tenant              TEXT NOT NULL,
            provider            TEXT NOT NULL,
            provider_message_id TEXT NOT NULL,
            part                INTEGER NOT NULL,
            status              TEXT NOT NULL,
            PRIMARY KEY (tenant, provider, provider_message_id, part)
        ) WITHOUT ROWID
        """,
        """
        CREATE TABLE inbound_messages (
            id           INTEGER PRIMARY KEY,
            tenant       TEXT NOT NULL,
            provider     TEXT NOT NULL,
            vendor_id    TEXT NOT NULL,
            from_number  TEXT NOT NULL,
            to_number    TEXT,
            text         TEXT NOT NULL,
            received_at  TEXT NOT NULL,
            raw          TEXT NOT NULL DEFAULT '{}',
            action       TEXT,
            UNIQUE (tenant, provider, vendor_id)
        )
        """,
        "CREATE INDEX inbound_messages_from ON inbound_messages (tenant, from_number, id)",
    ),
    # 6: tenants provisioned at run time (see the PostgreSQL store's migration 6)
    (
        """
        CREATE TABLE stored_tenants (
            name        TEXT PRIMARY KEY,
            config      TEXT NOT NULL,
            secrets     TEXT NOT NULL,
            version     INTEGER NOT NULL,
            updated_at  TEXT NOT NULL
        ) WITHOUT ROWID
        """,
        "CREATE TABLE tenant_changes (version INTEGER NOT NULL)",
        "INSERT INTO tenant_changes (version) VALUES (0)",
    ),
    # 7: opt-outs have a scope: every sender ('*', what every earlier opt-out was) or
    # one sender ID (see the PostgreSQL store's migration 7). The primary key gains
    # the scope, so the table is rebuilt (SQLite cannot change a primary key).
    (
        """
        CREATE TABLE optouts_v7 (
            tenant      TEXT NOT NULL,
            phone       TEXT NOT NULL,
            scope       TEXT NOT NULL DEFAULT '*',
            reason      TEXT,
            source      TEXT NOT NULL,
            created_at  TEXT NOT NULL,
            PRIMARY KEY (tenant, phone, scope)
        ) WITHOUT ROWID
        """,
        "INSERT INTO optouts_v7 (tenant, phone, scope, reason, source, created_at) "
        "SELECT tenant, phone, '*', reason, source, created_at FROM optouts",
        "DROP TABLE optouts",
        "ALTER TABLE optouts_v7 RENAME TO optouts",
    ),
    # 8: send leases: a process sending (send / send_many) says until when it lives and
    # that none of its messages waiting for an answer was logged before ``oldest``, so
    # the queued messages a crashed process left are told from those of live ones
    # (see smsgate.core.recover and the PostgreSQL store's migration 8)
    (
        """
        CREATE TABLE send_leases (
            tenant       TEXT NOT NULL,
            owner        TEXT NOT NULL,
            lease_until  TEXT NOT NULL,
            oldest       TEXT NOT NULL,
            PRIMARY KEY (tenant, owner)
        ) WITHOUT ROWID
        """,
    ),
    # 9: a message's history is a chain: each event holds the id of the message's event
    # before it (``prev``) and the message row the id of its newest (``last_event``). The
    # index ``(message_pk, id)`` it replaces cost ~27% of a delivery report's CPU: its
    # leaves are hit at random by every batch, where the chain adds nothing to write (an
    # event is appended, and the message row, which the same report rewrites anyway,
    # carries the new head). See bench/analysis.md, "2026-12-04 night". The backfill is
    # ``lag(id) OVER (PARTITION BY message_pk ORDER BY id)`` written as a lookup in the
    # index it replaces (no window function or ``UPDATE ... FROM``: SQLite 3.25 / 3.33).
    (
        "ALTER TABLE message_events ADD COLUMN prev INTEGER",
        "ALTER TABLE messages ADD COLUMN last_event INTEGER",
        "UPDATE message_events SET prev = (SELECT max(p.id) FROM message_events p "
        "WHERE p.message_pk = message_events.message_pk AND p.id < message_events.id)",
        "UPDATE messages SET last_event = (SELECT max(e.id) FROM message_events e WHERE e.message_pk = messages.id)",
        "DROP INDEX message_events_message",
        # A process still running the version-8 code (a rolling upgrade: the first new
        # process to open the file migrates it under the old ones) writes events without
        # ``prev`` and messages without ``last_event``; its events would be outside their
        # chains (missing from histories, left behind by a purge). This links an event
        # written without ``prev`` to its message's newest when it is newer than it. This
        # code's own events without ``prev`` (a message's first) are written after their
        # message's ``last_event`` (equal or newer), so only the WHEN's lookup of the
        # message by primary key runs for them (~0.5 us per new message; tests/test_attack_4.py).
        """
        CREATE TRIGGER message_events_chain AFTER INSERT ON message_events
        WHEN NEW.prev IS NULL
         AND coalesce((SELECT last_event FROM messages WHERE id = NEW.message_pk), 0) < NEW.id
        BEGIN
            UPDATE message_events SET prev = (SELECT last_event FROM messages WHERE id = NEW.message_pk)
             WHERE id = NEW.id;
            UPDATE messages SET last_event = NEW.id WHERE id = NEW.message_pk;
        END
        """,
    ),
    # 10: an inbound text over smsgate.models.MAX_INBOUND_TEXT characters is stored cut to
    # it, flagged (a process of the version-9 code writes 0: it refused such texts)
    ("ALTER TABLE inbound_messages ADD COLUMN truncated INTEGER NOT NULL DEFAULT 0",),
    # 11: nothing to do (version 11 makes PostgreSQL's messages_provider_id a hash index;
    # SQLite has none and keeps its b-tree)
    (),
    # 12: opt-ins by start word, with when the word was said (the latest per number and
    # scope): a stop word said before it but applied after it records no opt-out (see
    # Store.remove_optout). A process of the version-11 code records none (as before).
    (
        """
        CREATE TABLE optins (
            tenant   TEXT NOT NULL,
            phone    TEXT NOT NULL,
            scope    TEXT NOT NULL,
            said_at  TEXT NOT NULL,
            PRIMARY KEY (tenant, phone, scope)
        ) WITHOUT ROWID
        """,
    ),
    # 13: nothing to do (version 13 keeps the order of PostgreSQL's contact fields, which
    # SQLite's JSON text always kept)
    (),
]

_INSERT_MESSAGE = (
    "INSERT INTO messages (tenant, message_id, to_phone, status, raw_status, provider, "
    "provider_message_id, batch_id, sender, reference, campaign_id, segments, cost, currency, "
    "error, created_at, updated_at, submitted_at, delivered_at, last_event) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
#: A history event with its id and the id of its message's event before it (the chain: see
#: migration 9). Every writer of events runs under the write lock (``BEGIN IMMEDIATE``),
#: takes ids from :func:`_next_event` and writes the newest into ``messages.last_event``.
_INSERT_EVENT = (
    "INSERT INTO message_events (id, tenant, message_pk, status, raw_status, at, source, detail, prev) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
#: The history of one message, oldest first: its chain from ``messages.last_event`` (bound)
#: back (``e.id < h.id``: a chain only goes to older events, so a damaged one cannot loop).
_HISTORY = (
    "WITH RECURSIVE h(id, prev, status, raw_status, at, source, detail) AS ("
    "SELECT id, prev, status, raw_status, at, source, detail FROM message_events WHERE id = ? "
    "UNION ALL SELECT e.id, e.prev, e.status, e.raw_status, e.at, e.source, e.detail "
    "FROM h JOIN message_events e ON e.id = h.prev AND e.id < h.id) "
    "SELECT status, raw_status, at, source, detail FROM h ORDER BY id"
)


def _histories_sql(n: int) -> str:
    """The histories of ``n`` messages (``messages.id IN``) as ``(message pk, status, raw_status,
    at, source, detail)`` rows in event order: each message's chain, as in ``_HISTORY``."""
    return (
        "WITH RECURSIVE h(pk, id, prev, status, raw_status, at, source, detail) AS ("
        "SELECT m.id, e.id, e.prev, e.status, e.raw_status, e.at, e.source, e.detail "
        f"FROM messages m JOIN message_events e ON e.id = m.last_event WHERE m.id IN ({_marks(n)}) "
        "UNION ALL SELECT h.pk, e.id, e.prev, e.status, e.raw_status, e.at, e.source, e.detail "
        "FROM h JOIN message_events e ON e.id = h.prev AND e.id < h.id) "
        "SELECT pk, status, raw_status, at, source, detail FROM h ORDER BY id"
    )


def _next_event(conn: sqlite3.Connection) -> int:
    """The id the next history event gets (in a write transaction: no other writer until it ends)."""
    return int(conn.execute("SELECT coalesce(max(id), 0) + 1 FROM message_events").fetchone()[0])


#: The first history events of the messages rows just inserted (``NewMessage``s, all with
#: a rowid above the one bound), read from the rows themselves: one statement, where a
#: ``SELECT`` of the new rows' ids (stepped, and the GIL given back, row by row) and an
#: ``INSERT`` of events built and bound in Python were two or more (bench/analysis.md,
#: 2026-12-04 late afternoon). Its ``at`` is the row's ``created_at``, its detail the row's error,
#: its id the row's ``last_event`` (written with the row: the first link of its chain).
_INSERT_FIRST_EVENTS = (
    "INSERT INTO message_events (id, tenant, message_pk, status, raw_status, at, source, detail) "
    f"SELECT last_event, tenant, id, status, raw_status, created_at, '{NEW_MESSAGE_SOURCE}', error FROM messages "
    "WHERE id > ? ORDER BY id"
)
_STATE_COLUMNS = (
    "id, message_id, status, raw_status, provider, provider_message_id, batch_id, segments, "
    "cost, currency, error, updated_at, submitted_at, delivered_at, sender, last_event"
)
#: ``_STATE_COLUMNS`` as a delivery report needs them: a report never changes a message's
#: provider, currency or sender (``apply_report`` gives the rule none), so they are not read
#: (each text column a row costs SQLite and pysqlite ~0.1 us; ``NULL`` here is ``None`` in the
#: state, and ``_State.changes`` sees it unchanged, so the row keeps its stored values; the
#: store contract's ``test_apply_reports_keep_what_a_report_does_not_carry`` fails if not).
_REPORT_STATE_COLUMNS = (
    "id, message_id, status, raw_status, NULL, provider_message_id, batch_id, segments, "
    "cost, NULL, error, updated_at, submitted_at, delivered_at, NULL, last_event"
)
#: The history events of a batch of delivery reports, as ``_values_rows`` rows of ``(id,
#: message pk, status, raw_status, at, prev)``: the tenant bound once a statement (the first
#: parameter), the source and detail written in (binding a text costs pysqlite and SQLite
#: ~800 instructions; an event had two of them the same for the whole batch).
_REPORT_EVENTS_HEAD = (
    "INSERT INTO message_events (id, tenant, message_pk, status, raw_status, at, source, detail, prev) "
    "SELECT column1, ?, column2, column3, column4, column5, 'report', NULL, column6 FROM (VALUES "
)
_REPORT_EVENT_ROW = "(?, ?, ?, ?, ?, ?)"
#: Values a recipient row binds in a multi-row INSERT (the tenant and campaign id are bound once).
_RECIPIENT_VALUES = 11
#: Rows per multi-row recipient INSERT (SQLite allows 32,766 parameters per statement since
#: 3.32, 999 before).
_RECIPIENTS_PER_INSERT = (32_766 - 2 if sqlite3.sqlite_version_info >= (3, 32, 0) else 999 - 2) // _RECIPIENT_VALUES
#: ``INSERT ... ON CONFLICT DO NOTHING`` (SQLite 3.24): a taken key leaves its row out.
_UPSERT = sqlite3.sqlite_version_info >= (3, 24, 0)
_IGNORE_TAKEN_KEYS = " ON CONFLICT (tenant, campaign_id, dedupe_key) DO NOTHING"
#: Values per ``IN (...)`` list (SQLite's parameter limit, as above).
_IN_LIST = 30_000 if sqlite3.sqlite_version_info >= (3, 32, 0) else 900

#: The lengths below CHUNK an opt-out look-up's list of numbers is padded to (:func:`_padded_length`).
_SHORT_LISTS = (1, 4, 16, 64, 256)


def _padded_length(n: int) -> int:
    """The length a list of ``n`` numbers to look up is padded to: the next of :data:`_SHORT_LISTS`,
    else the next multiple of CHUNK. A few statement texts, each prepared once; a short list
    (one ``send()``, a request's re-check in its write-ahead) is not padded to CHUNK: a look-up
    of one number padded to 500 took ~64 us, of one ~2 us."""
    for size in _SHORT_LISTS:
        if n <= size:
            return size
    return -(-n // CHUNK) * CHUNK
_RECIPIENT_STATE_VALUE = {state: state.value for state in RecipientState}
_RECIPIENT_STATE = {state.value: state for state in RecipientState}
_FIELDS_JSON = json.JSONEncoder().encode  # json.dumps(fields) without its per-call set-up
_JSON_STRING = encode_basestring_ascii


def _fields_json(fields: dict[str, str]) -> str:
    """``json.dumps(fields)`` for a recipient's fields, each string put through the json module's
    own string encoder (0.9 against 2.8 us: an encoder call per row was the largest cost of a
    campaign preparation's writer thread); anything but strings goes through ``json.dumps``."""
    try:
        return "{" + ", ".join([_JSON_STRING(k) + ": " + _JSON_STRING(v) for k, v in fields.items()]) + "}"
    except TypeError:
        return _FIELDS_JSON(fields)


@functools.lru_cache(maxsize=4)
def _insert_recipients_sql(n: int) -> str:
    """A multi-row INSERT of ``n`` recipients: the tenant and the campaign id bound once
    (``?1``, ``?2``), then :data:`_RECIPIENT_VALUES` values a row (a placeholder without a
    number takes the next one)."""
    return (
        "INSERT INTO campaign_recipients (tenant, campaign_id, seq, phone, state, fields, reason, detail, "
        "message_id, segments, provider, line, dedupe_key) VALUES "
        + ", ".join(["(?1, ?2, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"] * n)
    )


_UPDATE_RECIPIENTS_HEAD = (
    "UPDATE campaign_recipients SET state = v.column1, reason = coalesce(v.column2, reason), "
    "detail = coalesce(v.column3, detail), "
    "message_id = CASE WHEN v.column4 THEN NULL ELSE coalesce(v.column5, message_id) END, "
    "owner = CASE WHEN v.column4 THEN NULL ELSE owner END FROM (VALUES "
)
_UPDATE_RECIPIENTS_TAIL = (
    ") AS v WHERE campaign_recipients.id = v.column6 AND campaign_recipients.tenant = v.column7 "
    "AND campaign_recipients.campaign_id = v.column8"
)

_UPDATE_RECIPIENT_SQL = (
    "UPDATE campaign_recipients SET state = ?, reason = coalesce(?, reason), "
    "detail = coalesce(?, detail), message_id = CASE WHEN ?4 THEN NULL ELSE coalesce(?5, message_id) "
    "END, owner = CASE WHEN ?4 THEN NULL ELSE owner END WHERE id = ?6 AND tenant = ?7 "
    "AND campaign_id = ?8"
)

_CLAIM_HEAD = "UPDATE campaign_recipients SET state = ?, owner = ?, message_id = v.column2 FROM (VALUES "
_CLAIM_TAIL = ") AS v WHERE campaign_recipients.id = v.column1 AND campaign_recipients.tenant = ?"

_TIMES_PAGE = 5000
_Params = tuple[object, ...]
_Row = tuple[Any, ...]


# ----------------------------------------------------------------- encoding
def _ts(value: datetime) -> str:
    return to_utc(value).isoformat(timespec="microseconds")


_dt = datetime.fromisoformat


def _dt_any(value: Any) -> datetime:
    return _dt(value)


def _dt_opt(value: str | None) -> datetime | None:
    return None if value is None else _dt(value)


def _dec(value: str | None) -> Decimal | None:
    """A stored cost (decimal text) as every store gives it back (:func:`~smsgate.store._rules.stored_cost`:
    a cost an earlier version stored as ``1E+2`` or ``-0`` too)."""
    return None if value is None else stored_cost(Decimal(value))


def _held_claims_sql(n: int) -> str:
    """The ids of ``n`` recipients (``id IN``) still ``sending`` for one owner, as one ``group_concat``.

    ``NOT INDEXED``: the ids are looked up by rowid. Without statistics SQLite picks the
    ``(tenant, ...)`` unique index for an ``IN`` list of ids and walks every recipient of
    the tenant: 1.9 ms instead of 37 us for 40 ids among 10,000 recipients, so the
    write-ahead of every campaign request grew with the size of the campaign.
    """
    return ("SELECT group_concat(id) FROM campaign_recipients NOT INDEXED "
            f"WHERE tenant = ? AND state = ? AND owner = ? AND id IN ({_marks(n)})")


def location_of(path: str) -> str | None:
    """:meth:`SQLiteStore.location` of a store on the file ``path`` (before it is opened;
    a relative path is the current folder's now; an SQLite URI, ``file:...``, its file's)."""
    file = _uri_file(path) if path.startswith("file:") else None if path == ":memory:" else path
    return None if file is None else f"sqlite:{os.path.realpath(file)}"


def _uri_file(uri: str) -> str | None:
    """The file of the SQLite URI ``uri`` (``file:/srv/sms.db?mode=rwc``: ``/srv/sms.db``);
    ``None`` for a database in memory (``file::memory:``, ``mode=memory``)."""
    rest = uri[len("file:"):]
    name = rest.split("?", 1)[0].split("#", 1)[0]
    if name.startswith("//"):  # an authority: file:///srv/sms.db, file://localhost/srv/sms.db
        name = "/" + name[2:].partition("/")[2]
    if not name or name.startswith(":memory:") or "mode=memory" in rest:
        return None
    return unquote(name)


def _chunks(items: Sequence[str], size: int = CHUNK) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _marks(n: int) -> str:
    return ",".join("?" * n)


#: Multi-row statements (SQLite 3.32: 32,766 parameters a statement) release the GIL once for
#: many rows, where executemany releases and re-takes it per row (and each re-take can wait a
#: whole switch interval while the event loop's thread runs).
_MULTI_ROW = sqlite3.sqlite_version_info >= (3, 33, 0)
_MAX_PARAMS = 32_000


#: Rows per multi-row statement, at most: its text is then one of a few (see ``_sizes``),
#: which the connection's statement cache keeps compiled. Compiling a new 1,000-row
#: statement for every log write cost ~5% of the write (callgrind, sync send path; 16 to
#: 128 rows all within 1% of each other).
_BLOCK = 64


def _sizes(n: int, block: int) -> Iterator[int]:
    """``n`` rows as statements of ``block`` rows, the rest in powers of two (largest first)."""
    for _ in range(n // block):
        yield block
    rest, size = n % block, 1 << max(0, block.bit_length() - 1)
    while rest:
        if size <= rest:
            yield size
            rest -= size
        size >>= 1


@functools.lru_cache(maxsize=256)
def _multi_sql(head: str, one: str, count: int, tail: str = "") -> str:
    return head + ", ".join([one] * count) + tail


@functools.lru_cache(maxsize=64)
def _with_nulls(one: str, nulls: tuple[int, ...]) -> str:
    """The row ``one`` (``(?, ?, ...)``) with ``NULL`` written in for the placeholders at ``nulls``."""
    marks = one.strip()[1:-1].split(", ")
    for i in nulls:
        assert marks[i] == "?", one
        marks[i] = "NULL"
    return "(" + ", ".join(marks) + ")"


def _runs(rows: Sequence[Sequence[object]]) -> Iterator[tuple[int, int, tuple[int, ...]]]:
    """``(start, end, nulls)``: runs of consecutive rows holding ``None`` in the same columns."""
    start, n = 0, len(rows)
    while start < n:
        first = rows[start]
        nulls = tuple([i for i, v in enumerate(first) if v is None])
        end = start + 1
        if nulls:
            count, pick = len(nulls), itemgetter(*nulls)
            want = pick(first)
            while end < n and rows[end].count(None) == count and pick(rows[end]) == want:
                end += 1
        else:
            while end < n and None not in rows[end]:
                end += 1
        yield start, end, nulls
        start = end


def _picker(keep: Sequence[int]) -> Callable[[Sequence[object]], tuple[object, ...]]:
    """``itemgetter`` for zero or one index that still gives a tuple."""
    return lambda row: tuple(row[i] for i in keep)


def _insert_rows(conn: sqlite3.Connection, sql: str, rows: Sequence[_Params]) -> None:
    """``sql`` (an ``INSERT ... VALUES`` of one row) for every row, in as few statements as fit.

    Rows go in statements of :data:`_BLOCK` rows (and a few smaller sizes for the rest),
    so each statement is compiled once per connection, not once per call. Columns that
    are ``None`` in a run of rows are written as ``NULL`` in the statement, not bound:
    CPython's sqlite3 looks for an adapter for every ``None`` parameter (about 3,000
    instructions each on Python 3.11, where a log row has a dozen).
    """
    if not rows:
        return
    if not _MULTI_ROW:
        conn.executemany(sql, rows)
        return
    head, _, one = sql.rpartition("VALUES")
    _values_rows(conn, head + "VALUES ", one, rows)


def _values_rows(conn: sqlite3.Connection, head: str, one: str, rows: Sequence[Sequence[object]],
                 tail: str = "", *, before: Sequence[object] = (), after: Sequence[object] = ()) -> None:
    """``head`` + the rows as ``one`` (``(?, ?, ...)``) each, comma-separated, + ``tail``, for
    every row: in blocks of cached statements, ``None`` columns written in (see ``_insert_rows``).
    ``before`` and ``after``: the parameters of ``head`` and ``tail``, bound in every statement."""
    for start, end, nulls in _runs(rows):
        keep = [i for i in range(len(rows[start])) if i not in nulls]
        row_sql = _with_nulls(one, nulls)
        get: Callable[[Sequence[object]], Iterable[object]] = itemgetter(*keep) if len(keep) > 1 else _picker(keep)
        block = max(1, min(_BLOCK, (_MAX_PARAMS - len(before) - len(after)) // max(1, len(keep))))
        for size in _sizes(end - start, block):
            params = list(chain.from_iterable(map(get, rows[start:start + size])))
            if before or after:
                params = [*before, *params, *after]
            conn.execute(_multi_sql(head, row_sql, size, tail), params)
            start += size


def _update_rows(conn: sqlite3.Connection, columns: Sequence[str], rows: Sequence[_Params]) -> None:
    """``UPDATE messages SET <columns>`` from rows of ``(*values, id, tenant)``, in few statements.

    The multi-row ``UPDATE ... FROM (VALUES ...)`` form, in blocks of :data:`_BLOCK` rows
    (compiled once): it gives the GIL back once per block, not once per row as
    ``executemany`` would, which matters for log writes made while an event loop runs; for
    the sync send path's log writes the two cost the same to within 1% (callgrind).
    Delivery reports have a statement of their own (``_report_update_sql``).
    """
    if not _MULTI_ROW or len(rows) == 1:
        assignments = ", ".join(f"{c} = ?" for c in columns)
        conn.executemany(f"UPDATE messages SET {assignments} WHERE id = ? AND tenant = ?", rows)
        return
    n = len(columns)
    assignments = ", ".join(f"{c} = v.column{i + 1}" for i, c in enumerate(columns))
    width = n + 2
    block = max(1, min(_BLOCK, _MAX_PARAMS // width))
    marks = "(" + ", ".join(["?"] * width) + ")"
    head = f"UPDATE messages SET {assignments} FROM (VALUES "
    tail = f") AS v WHERE messages.id = v.column{n + 1} AND messages.tenant = v.column{n + 2}"
    start = 0
    for size in _sizes(len(rows), block):
        part = rows[start : start + size]
        start += size
        conn.execute(_multi_sql(head, marks, size, tail), [x for row in part for x in row])


@functools.lru_cache(maxsize=64)
def _report_update_sql(columns: tuple[int, ...]) -> str:
    """``UPDATE messages`` of the ``_MUTABLE_COLUMNS`` at ``columns`` for rows of ``(*values, id)``."""
    return f"UPDATE messages SET {', '.join(f'{_MUTABLE_COLUMNS[i]} = ?' for i in columns)} WHERE id = ?"


class _TimestampCache(dict[datetime, str]):
    """Encodes each distinct datetime once per batch (``isoformat`` is the slow part)."""

    def __missing__(self, key: datetime) -> str:
        value = self[key] = _ts(key)
        return value


class _TimeCache(dict[str, datetime]):
    """Decodes each distinct stored time text once per batch (messages written together share theirs)."""

    def __missing__(self, key: str) -> datetime:
        value = self[key] = _dt(key)
        return value


#: Columns ``_State`` may change, in ``_STATE_COLUMNS`` order after ``id, message_id``.
_MUTABLE_COLUMNS = (
    "status",
    "raw_status",
    "provider",
    "provider_message_id",
    "batch_id",
    "segments",
    "cost",
    "currency",
    "error",
    "updated_at",
    "submitted_at",
    "delivered_at",
    "sender",
    "last_event",
)


_STATUS = {status.value: status for status in Status}
_STATUS_VALUE = {status: status.value for status in Status}


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
    #: The id of the message's newest history event (its chain's head; ``None``: no history).
    last_event: int | None
    #: The values of ``_MUTABLE_COLUMNS`` as loaded.
    loaded: tuple[object, ...] = ()
    dirty: bool = False

    @classmethod
    def from_row(cls, row: _Row, times: _TimeCache | None = None) -> _State:
        """The state of a ``_STATE_COLUMNS`` row; ``times``: decodes each distinct time text once."""
        dt = _dt if times is None else times.__getitem__
        cost = row[8]
        submitted_at = row[12]
        delivered_at = row[13]
        # The loaded values first, then the state from the very same objects (``changes``
        # compares them by identity): no second tuple built by ``values()``.
        loaded = (
            _STATUS[row[2]],
            row[3],
            row[4],
            row[5],
            row[6],
            row[7],
            _dec(cost),
            row[9],
            row[10],
            dt(row[11]),
            None if submitted_at is None else dt(submitted_at),
            None if delivered_at is None else dt(delivered_at),
            row[14],
            row[15],
        )
        return cls(row[0], row[1], *loaded, loaded)

    def changes(self, cache: _TimestampCache) -> tuple[tuple[int, ...], list[object]]:
        """The indexes (into ``_MUTABLE_COLUMNS``) and encoded values of changed columns.

        ``apply_update`` only assigns a field when its value differs, so identity
        with the loaded value means unchanged. (Written out long-hand: this runs
        once per updated row on the delivery-report hot path.)
        """
        (
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
            last_event,
        ) = self.loaded
        columns: list[int] = []
        values: list[object] = []
        if self.status is not status:
            columns.append(0)
            values.append(_STATUS_VALUE[self.status])
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
            values.append(None if self.cost is None else str(self.cost))
        if self.currency is not currency:
            columns.append(7)
            values.append(self.currency)
        if self.error is not error:
            columns.append(8)
            values.append(self.error)
        if self.updated_at is not updated_at:
            columns.append(9)
            values.append(cache[self.updated_at])
        if self.submitted_at is not submitted_at:
            columns.append(10)
            values.append(None if self.submitted_at is None else cache[self.submitted_at])
        if self.delivered_at is not delivered_at:
            columns.append(11)
            values.append(None if self.delivered_at is None else cache[self.delivered_at])
        if self.sender is not sender:
            columns.append(12)
            values.append(self.sender)
        if self.last_event != last_event:  # an event id (set by ``add_event``): compared by value
            columns.append(13)
            values.append(self.last_event)
        return tuple(columns), values

    def add_event(self, event_id: int) -> int | None:
        """Make ``event_id`` the message's newest event (the row is then written); the one before it."""
        prev, self.last_event = self.last_event, event_id
        self.dirty = True
        return prev


def _record(row: _Row, history: list[StatusEvent] | None = None) -> MessageRecord:
    return MessageRecord(
        tenant=row[1],
        message_id=row[2],
        to=row[3],
        status=Status(row[4]),
        raw_status=row[5],
        provider=row[6],
        provider_message_id=row[7],
        batch_id=row[8],
        sender=row[9],
        reference=row[10],
        campaign_id=row[11],
        segments=row[12],
        cost=_dec(row[13]),
        currency=row[14],
        error=row[15],
        created_at=_dt(row[16]),
        updated_at=_dt(row[17]),
        submitted_at=_dt_opt(row[18]),
        delivered_at=_dt_opt(row[19]),
        history=history or [],
    )


def _spec_json(spec: dict[str, Any]) -> str:
    return json.dumps(spec)


def _inbound(row: _Row) -> InboundMessage:
    return InboundMessage(id=row[0], tenant=row[1], provider=row[2], vendor_id=row[3], from_number=row[4],
                          to=row[5], text=row[6], received_at=_dt_any(row[7]), raw=json.loads(row[8]),
                          action=row[9], truncated=bool(row[10]))


def _campaign(row: _Row) -> CampaignRow:
    return CampaignRow(
        tenant=row[0],
        campaign_id=row[1],
        name=row[2],
        status=CampaignStatus(row[3]),
        created_at=_dt(row[4]),
        updated_at=_dt(row[5]),
        spec=json.loads(row[6]),
        start_at=_dt_opt(row[7]),
        provider=row[8],
        provider_campaign_id=row[9],
        error=row[10],
    )


def _recipient(row: _Row) -> RecipientRow:
    return RecipientRow(
        id=row[0],
        seq=row[1],
        phone=row[2],
        state=_RECIPIENT_STATE[row[3]],
        fields={} if row[4] == "{}" else json.loads(row[4]),  # an audience of numbers alone: no decoder
        reason=row[5],
        detail=row[6],
        message_id=row[7],
        segments=row[8],
        provider=row[9],
        line=row[10],
        key=row[11],
        owner=row[12],
    )


def _add_changes(groups: dict[tuple[int, ...], list[_Params]], state: _State, cache: _TimestampCache,
                 tenant: str | None) -> None:
    """Add ``state``'s changed columns, if any, to ``groups`` (by column set) as ``UPDATE`` rows of
    ``(*values, id, tenant)``, or ``(*values, id)`` with no ``tenant`` (the caller read the row
    by tenant in the same write transaction)."""
    if state.dirty:
        columns, values = state.changes(cache)
        if columns:
            rows = groups.get(columns)
            if rows is None:
                rows = groups[columns] = []
            rows.append((*values, state.pk) if tenant is None else (*values, state.pk, tenant))


#: The mode a new database file is created with (under the umask: ``0o640`` under the usual
#: ``022``): the log holds every message's text (one-time codes) and number, so other users of
#: the machine never read it; SQLite gives its ``-wal`` and ``-shm`` files the database's mode.
NEW_FILE_MODE = 0o660


def _create_private(path: str) -> None:
    """Create the database file ``path``, when it does not exist, with :data:`NEW_FILE_MODE`
    (an empty file is an empty SQLite database); an existing file keeps its mode."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, NEW_FILE_MODE)
    except OSError:  # it exists (another process may just have made it), or sqlite3 will say why not
        return
    os.close(fd)


class WriteGroup:
    """The write transaction a :meth:`SQLiteStore._write_group` holds open over several writes."""

    def __init__(self, store: SQLiteStore) -> None:
        self._store = store
        #: when (``time.monotonic()``) the open transaction began; ``None``: none is open
        self.began: float | None = None

    @property
    def open(self) -> bool:
        """Whether a transaction is open (a write since the last commit)."""
        return self.began is not None

    def age(self) -> float:
        """Seconds the open transaction has held the write lock (0.0 when none is open)."""
        return 0.0 if self.began is None else time.monotonic() - self.began

    def commit(self) -> None:
        """Commit the open transaction (if any): its writes are durable, the write lock is free."""
        store = self._store
        with store._lock, store._errors():
            if store._conn.in_transaction:
                store._conn.execute("COMMIT")
            self.began = None


class SQLiteStore(SQLQueries, Store):
    """A :class:`~smsgate.store.base.Store` in one SQLite database file.

    ``path`` is a file path or ``":memory:"``. Call :meth:`migrate` before use
    (:func:`smsgate.store.open_store` does). ``timeout``: seconds a statement waits for
    another connection's write lock; ``cache_kib``: the connection's page cache
    (:data:`CACHE_KIB` unless given); ``create=False``: open the database file only if it
    exists (never make one: a :class:`~smsgate.errors.StoreError` instead).
    """

    _decode_record = staticmethod(_record)
    _decode_campaign = staticmethod(_campaign)
    _decode_inbound = staticmethod(_inbound)
    _encode_spec = staticmethod(_spec_json)
    _DUPLICATE = sqlite3.IntegrityError
    _encode_ts = staticmethod(_ts)
    _decode_ts = staticmethod(_dt_any)

    def __init__(self, path: str, *, timeout: float = 5.0, cache_kib: int | None = None,
                 create: bool = True) -> None:
        self.path = path
        #: seconds a statement waits for another connection's write lock
        self.timeout = timeout
        self._real_path = os.path.realpath(path)  # now: a relative path is the current folder's
        self._location = location_of(path)
        self._lock = threading.RLock()
        self._closed = False  # (close(): a forked child's copy stays closed too)
        self._group: WriteGroup | None = None  # writes held in one transaction (_write_group)
        #: the database file this store opened (its device and file number; ``None`` in memory):
        #: another file found at its path later (it was moved, or replaced) is another database
        self.file_id: tuple[int, int] | None = None
        on_disk = path not in ("", ":memory:") and not path.startswith("file:")
        with self._errors():
            target, uri = path, False
            if on_disk and create:
                _create_private(path)
            elif on_disk:  # SQLite's read-write mode, without its "create"
                target, uri = f"{Path(self._real_path).as_uri()}?mode=rw", True
            self._conn = sqlite3.connect(target, timeout=timeout, isolation_level=None, check_same_thread=False,
                                         uri=uri)
            if on_disk:
                try:
                    st = os.stat(self._real_path)
                    self.file_id = (st.st_dev, st.st_ino)
                except OSError:  # pragma: no cover - gone at once
                    pass
            self._cache_kib = CACHE_KIB if cache_kib is None else cache_kib
            self._setup(path, timeout, self._cache_kib)
        reopen_after_fork(self)

    def _after_fork(self) -> None:
        """In a forked child (:mod:`smsgate.store._fork`): a connection of its own to the file,
        the parent's left alone. A database in memory is the child's own copy: kept. Failing to
        open (the file gone), the store is closed: its use is a ``StoreError``."""
        self._lock = threading.RLock()
        self._group = None
        if self.file_id is None or self._closed:
            return
        INHERITED.append(self._conn)
        try:
            self._conn = sqlite3.connect(f"{Path(self._real_path).as_uri()}?mode=rw", timeout=self.timeout,
                                         isolation_level=None, check_same_thread=False, uri=True)
            self._setup(self.path, self.timeout, self._cache_kib, wal=False)
        except Exception:
            self._conn = sqlite3.connect(":memory:")
            self._conn.close()

    def _setup(self, path: str, timeout: float, cache_kib: int, wal: bool = True) -> None:
        """The connection's settings; ``wal=False``: the file is in WAL mode already (a forked
        child's connection: no statement that may wait for the parent's lock)."""
        self._conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
        if wal and path not in ("", ":memory:") and not path.startswith("file::memory:"):
            mode = self._conn.execute("PRAGMA journal_mode = WAL").fetchone()
            if mode is None or str(mode[0]).lower() != "wal":  # pragma: no cover - exotic filesystems
                raise ConfigError(f"could not switch SQLite database {path!r} to WAL mode")
        self._conn.execute("PRAGMA synchronous = NORMAL")
        # A batch of delivery reports touches rows all over the table (reports come in
        # no particular order): a 64 MB page cache (the default is 2 MB) keeps those
        # pages, and checkpointing every 16,384 pages (64 MB of WAL) instead of every
        # 1,000 stops a checkpoint with its fsync from running after nearly every batch
        # (bench/analysis.md, "ingestion"). Both are per connection; memory is only
        # used as pages are read.
        self._conn.execute(f"PRAGMA cache_size = -{int(cache_kib)}")
        self._conn.execute(f"PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT_PAGES}")

    # ------------------------------------------------------------- internals
    @contextmanager
    def _errors(self) -> Iterator[None]:
        """SQLite's own failures (locked, read-only, I/O, closed) as a :class:`StoreError`
        naming the file, and so a constraint the store did not expect.

        A unique violation the store means to handle (``except self._DUPLICATE``: a campaign
        or contact list that exists) is caught inside the ``with`` block, before it gets here:
        an :class:`sqlite3.IntegrityError` that gets here was not handled (a ``NOT NULL``
        column without a value, a constraint or trigger of a changed schema) and is a
        :class:`StoreError` naming the file and the constraint, not a raw sqlite3 error.
        """
        try:
            yield
        except sqlite3.IntegrityError as exc:
            raise StoreError(f"{exc} (a constraint of the database refused the write; nothing was written)",
                             store=repr(self.path)) from exc
        except sqlite3.InterfaceError:
            raise
        except sqlite3.ProgrammingError as exc:
            if "closed" not in str(exc):
                raise
            raise StoreError("the SQLite store is closed", store=repr(self.path)) from None
        except sqlite3.DatabaseError as exc:  # OperationalError, "file is not a database", ...
            reason = str(exc)
            hint = _HINTS.get(reason)
            raise StoreError(f"{reason} ({hint})" if hint else reason, store=repr(self.path)) from exc

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """A write transaction holding the database write lock from the start (within a
        :meth:`_write_group`: a savepoint in the group's transaction, begun by the first write)."""
        with self._lock, self._errors():
            conn = self._conn
            group = self._group
            if group is not None:
                if not conn.in_transaction:
                    conn.execute("BEGIN IMMEDIATE")
                    group.began = time.monotonic()
                # the write all or nothing within the group's transaction, as it is alone
                conn.execute("SAVEPOINT smsgate_write")
                try:
                    yield conn
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK TO smsgate_write")
                        conn.execute("RELEASE smsgate_write")
                    raise
                conn.execute("RELEASE smsgate_write")
                return
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: several queries see one snapshot."""
        with self._lock, self._errors():
            conn = self._conn
            if self._group is not None and conn.in_transaction:  # the group's: its writes seen
                yield conn
                return
            conn.execute("BEGIN")
            try:
                yield conn
            finally:
                if conn.in_transaction:
                    conn.execute("COMMIT")

    @contextmanager
    def _write_group(self) -> Iterator[WriteGroup]:
        """Writes in the block share write transactions: the first one begins a transaction
        (``BEGIN IMMEDIATE``), which stays open, holding the database's write lock, until the
        group's :meth:`~WriteGroup.commit`; the next write begins another. Each write is still
        all or nothing (a savepoint); reads in the block see the group's writes. What is not
        committed when the block ends (normally or not) is rolled back: only ``commit()``
        makes the group's writes durable. The block holds the store's lock (other threads'
        use of this store object waits); another connection's write waits for the group's
        commit (up to its busy timeout), so the caller commits often (the campaign writer
        process: :mod:`smsgate.campaigns.writer_process`)."""
        with self._lock:
            if self._group is not None:
                raise RuntimeError("a write group is open on this store already")
            group = self._group = WriteGroup(self)
            try:
                yield group
            finally:
                self._group, group.began = None, None
                with contextlib.suppress(sqlite3.Error):  # (a failure's own error is the one raised)
                    if self._conn.in_transaction:
                        self._conn.execute("ROLLBACK")

    #: Single-statement writes of ``SQLQueries`` take the write lock up front too.
    _write = _tx

    def _traffic_keys(self, conn: sqlite3.Connection, tenant: str, keys: Sequence[str]) -> dict[str, str]:
        # BEGIN IMMEDIATE holds the database's write lock: no other process is in here
        places = ",".join("?" * len(keys))
        found = dict(conn.execute(f"SELECT key, marks FROM traffic_keys WHERE tenant = ? AND key IN ({places})",
                                  (tenant, *keys)).fetchall())
        for key in keys:
            if key not in found:
                conn.execute("INSERT INTO traffic_keys (tenant, key, marks) VALUES (?, ?, '{}')", (tenant, key))
                found[key] = "{}"
        return found

    def _traffic_now(self, conn: sqlite3.Connection) -> float:
        return time.time()  # one host shares a SQLite file: its clock

    def _version(self, conn: sqlite3.Connection) -> int:
        exists = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
        ).fetchone()
        if exists is None:
            return 0
        row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
        return int(row[0]) if row is not None and row[0] is not None else 0

    def _load_states(
        self, conn: sqlite3.Connection, tenant: str, message_ids: Iterable[str]
    ) -> dict[str, _State]:
        ids = list(dict.fromkeys(message_ids))
        states: dict[str, _State] = {}
        for chunk in _chunks(ids):
            rows = conn.execute(
                f"SELECT {_STATE_COLUMNS} FROM messages WHERE tenant = ? AND message_id IN ({_marks(len(chunk))})",
                (tenant, *chunk),
            )
            for row in rows:
                state = _State.from_row(row)
                states[state.message_id] = state
        return states

    @staticmethod
    def _write_states(
        conn: sqlite3.Connection,
        tenant: str,
        states: Iterable[_State],
        events: list[_Params],
        cache: _TimestampCache,
    ) -> None:
        # One statement per set of changed columns (usually one or two sets per
        # batch): untouched indexed columns are not rewritten.
        groups: dict[tuple[int, ...], list[_Params]] = {}
        for state in states:
            _add_changes(groups, state, cache, tenant)
        for columns, params in groups.items():
            _update_rows(conn, [_MUTABLE_COLUMNS[i] for i in columns], params)
        _insert_rows(conn, _INSERT_EVENT, events)

    @staticmethod
    def _apply(
        state: _State,
        update: MessageUpdate,
        tenant: str,
        events: list[_Params],
        cache: _TimestampCache,
        first_event: int,
    ) -> bool:
        """Apply ``update`` to ``state``; a history event (its id ``first_event`` + the events
        before it in ``events``, chained to the message's newest) if the status changed."""
        changed, modified = apply_update(state, update)
        if modified:
            state.dirty = True
        if changed:
            event_id = first_event + len(events)
            events.append(
                (
                    event_id,
                    tenant,
                    state.pk,
                    _STATUS_VALUE[update.status],
                    update.raw_status,
                    cache[to_utc(update.at)],
                    update.source,
                    update.detail,
                    state.add_event(event_id),
                )
            )
        return changed

    # ------------------------------------------------------------- lifecycle
    def migrate(self) -> None:
        with self._lock, self._errors():
            current = self._version(self._conn)
            if current > self.SCHEMA_VERSION:
                raise ConfigError(
                    f"database schema version {current} is newer than this smsgate supports "
                    f"({self.SCHEMA_VERSION}); upgrade smsgate"
                )
            if len(MIGRATIONS) < self.SCHEMA_VERSION:  # pragma: no cover - a packaging error
                raise ConfigError(f"no migration to schema version {self.SCHEMA_VERSION}")
            for version in range(current + 1, self.SCHEMA_VERSION + 1):
                with self._tx() as conn:
                    # Another connection may have migrated since we looked.
                    if self._version(conn) >= version:
                        continue
                    for statement in MIGRATIONS[version - 1]:
                        conn.execute(statement)
                    conn.execute(
                        "INSERT INTO schema_version (version, applied_at) VALUES (?, ?)",
                        (version, _ts(utcnow())),
                    )

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._conn.close()

    def location(self) -> str | None:
        """``sqlite:`` and the file's real path (``None`` for ``:memory:``)."""
        return self._location

    def journal_mode(self) -> str:
        """The database's journal mode (``"wal"`` for a file, ``"memory"`` in memory)."""
        with self._lock, self._errors():
            row = self._conn.execute("PRAGMA journal_mode").fetchone()
            return str(row[0]).lower() if row is not None else ""

    # -------------------------------------------------------------- messages
    def insert_messages(self, records: Sequence[MessageRecord]) -> None:
        if not records:
            return
        with self._tx() as conn:
            self._insert(conn, records)

    @staticmethod
    def _insert(conn: sqlite3.Connection, records: Sequence[MessageRecord | NewMessage]) -> None:
        cache = _TimestampCache()
        new = all(type(r) is NewMessage for r in records)
        # Each row is written with the id of its newest history event (``last_event``): the
        # events get ids from ``first_event`` on, in the order of the records and their history.
        first_event = _next_event(conn)
        heads: Iterable[int | None]
        if new:  # one event each
            heads = range(first_event, first_event + len(records))
        else:
            ends = list(accumulate((len(r.history) for r in records), initial=first_event - 1))
            heads = [end if end != start else None for start, end in pairwise(ends)]
        rows = [
            (
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
                None if r.cost is None else str(stored_cost(r.cost)),
                r.currency,
                r.error,
                cache[to_utc(r.created_at)],
                cache[to_utc(r.updated_at)],
                None if r.submitted_at is None else cache[to_utc(r.submitted_at)],
                None if r.delivered_at is None else cache[to_utc(r.delivered_at)],
                head,
            )
            for r, head in zip(records, heads, strict=True)
        ]
        if new:  # every row's history is its first event: inserted from the rows (``_INSERT_FIRST_EVENTS``)
            (before,) = conn.execute("SELECT coalesce(max(id), 0) FROM messages").fetchone()
        try:
            _insert_rows(conn, _INSERT_MESSAGE, rows)
        except sqlite3.IntegrityError as exc:
            raise ValueError(f"duplicate message id in batch or store: {exc}") from exc
        if new:
            # rowids above the largest are what SQLite gives new rows (below 2**63 - 1), and the
            # transaction holds the write lock: the rows above ``before`` are exactly these
            added = conn.execute(_INSERT_FIRST_EVENTS, (before,)).rowcount
            if added != len(rows):  # pragma: no cover - rowids exhausted
                raise StoreError(f"{len(rows)} messages inserted but {added} rows above rowid {before}")
            return
        with_history: dict[str, list[str]] = {}
        for r in records:
            if r.history:
                with_history.setdefault(r.tenant, []).append(r.message_id)
        pks: dict[tuple[str, str], int] = {}
        for tenant, message_ids in with_history.items():
            for chunk in _chunks(message_ids):
                for pk, mid in conn.execute(
                    f"SELECT id, message_id FROM messages WHERE tenant = ? AND message_id IN ({_marks(len(chunk))})",
                    (tenant, *chunk),
                ):
                    pks[(tenant, mid)] = pk
        events: list[_Params] = []
        for r in records:
            prev: int | None = None
            for e in r.history:
                event_id = first_event + len(events)
                events.append((event_id, r.tenant, pks[(r.tenant, r.message_id)], e.status.value, e.raw_status,
                               cache[to_utc(e.at)], e.source, e.detail, prev))
                prev = event_id
        _insert_rows(conn, _INSERT_EVENT, events)

    def update_messages(self, tenant: str, updates: Sequence[MessageUpdate]) -> list[bool]:
        if not updates:
            return []
        with self._tx() as conn:
            return self._update(conn, tenant, updates)

    def _update(self, conn: sqlite3.Connection, tenant: str, updates: Sequence[MessageUpdate]) -> list[bool]:
        states = self._load_states(conn, tenant, (u.message_id for u in updates))
        events: list[_Params] = []
        result: list[bool] = []
        cache = _TimestampCache()
        first_event = _next_event(conn)
        for update in updates:
            state = states.get(update.message_id)
            result.append(state is not None and self._apply(state, update, tenant, events, cache, first_event))
        self._write_states(conn, tenant, states.values(), events, cache)
        return result

    def get_message(self, tenant: str, message_id: str) -> MessageRecord:
        with self._read() as conn:
            row = conn.execute(
                f"SELECT {_MESSAGE_COLUMNS}, last_event FROM messages WHERE tenant = ? AND message_id = ?",
                (tenant, message_id),
            ).fetchone()
            if row is None:
                raise NotFound(f"no message {message_id!r} for tenant {tenant!r}")
            history = [
                StatusEvent(status=Status(s), raw_status=raw, at=_dt(at), source=source, detail=detail)
                for s, raw, at, source, detail in conn.execute(_HISTORY, (row[20],))
            ]
        return _record(row, history)

    def _histories(self, tenant: str, pks: Sequence[int]) -> tuple[str, Sequence[object]]:
        return _histories_sql(len(pks)), pks  # the pks are the tenant's (read with it)

    def _events_of(self, messages: str) -> str:
        return ("message_events WHERE tenant = ? AND id IN (WITH RECURSIVE c(id) AS ("
                f"SELECT last_event FROM messages WHERE id IN {messages} AND last_event IS NOT NULL "
                "UNION ALL SELECT e.prev FROM c JOIN message_events e ON e.id = c.id "
                "WHERE e.prev IS NOT NULL AND e.prev < e.id) SELECT id FROM c)")

    def note_checks(self, tenant: str, message_ids: Sequence[str], *, at: datetime, source: str,
                    detail: str | None = None) -> int:
        if not message_ids:
            return 0
        written = 0
        when = _ts(at)
        with self._tx() as conn:
            event_id = _next_event(conn)
            for mid in dict.fromkeys(message_ids):
                row = conn.execute("SELECT id, status, raw_status, last_event FROM messages "
                                   "WHERE tenant = ? AND message_id = ?", (tenant, mid)).fetchone()
                if row is None:
                    continue
                pk, status, raw_status, prev = row
                conn.execute(_INSERT_EVENT, (event_id, tenant, pk, status, raw_status, when, source, detail, prev))
                conn.execute("UPDATE messages SET last_event = ? WHERE id = ?", (event_id, pk))
                event_id += 1
                written += 1
        return written

    def apply_reports(
        self, tenant: str, reports: Sequence[DeliveryReport], *, keep_orphans: bool = False
    ) -> list[str | None]:
        return [a.message_id for a in self.apply_reports_changes(tenant, reports, keep_orphans=keep_orphans)]

    def apply_reports_changes(
        self, tenant: str, reports: Sequence[DeliveryReport], *, keep_orphans: bool = False
    ) -> list[AppliedReport]:
        if not reports:
            return []
        with self._tx() as conn:
            result = self._apply_reports(conn, tenant, reports)
            if keep_orphans:
                now = _ts(utcnow())
                conn.executemany(
                    "INSERT INTO orphan_reports (tenant, provider, provider_message_id, report, received_at) "
                    "VALUES (?, ?, ?, ?, ?)",
                    [(tenant, r.provider, r.provider_message_id, r.model_dump_json(), now)
                     for r, a in zip(reports, result, strict=True)
                     if a.message_id is None and r.provider_message_id is not None])
        return result

    def _adopt_orphans(self, conn: sqlite3.Connection, tenant: str,
                       keys: set[tuple[str, str]]) -> list[tuple[str, DeliveryReport]]:
        """Apply (and forget) the orphan reports of messages just given these provider ids;
        returns the ``(message id, report)`` applied."""
        if not keys:
            return []
        found: list[tuple[int, str]] = []
        by_provider: dict[str, list[str]] = {}
        for provider, pmid in keys:
            by_provider.setdefault(provider, []).append(pmid)
        for provider, pmids in by_provider.items():
            for chunk in _chunks(pmids):
                found.extend(conn.execute(
                    f"SELECT id, report FROM orphan_reports WHERE tenant = ? AND provider = ? "
                    f"AND provider_message_id IN ({_marks(len(chunk))})", (tenant, provider, *chunk)))
        if not found:
            return []
        found.sort()
        conn.executemany("DELETE FROM orphan_reports WHERE id = ?", [(pk,) for pk, _ in found])
        reports = [DeliveryReport.model_validate_json(r) for _, r in found]
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
                row = conn.execute("SELECT status FROM report_parts WHERE tenant = ? AND provider = ? "
                                   "AND provider_message_id = ? AND part = ?", (*key, r.part)).fetchone()
                if row is None:
                    conn.execute("INSERT INTO report_parts (tenant, provider, provider_message_id, part, status) "
                                 "VALUES (?, ?, ?, ?, ?)", (*key, r.part, r.status.value))
                elif accepts_status(Status(row[0]), None, r.status, None):
                    conn.execute("UPDATE report_parts SET status = ? WHERE tenant = ? AND provider = ? "
                                 "AND provider_message_id = ? AND part = ?", (r.status.value, *key, r.part))
                result.append({part: Status(status) for part, status in conn.execute(
                    "SELECT part, status FROM report_parts WHERE tenant = ? AND provider = ? "
                    "AND provider_message_id = ?", key)})
        return result

    # ------------------------------------------------------- inbound messages
    def record_inbound(
        self, tenant: str, messages: Sequence[InboundMessage]
    ) -> list[tuple[InboundMessage, bool]]:
        result: list[tuple[InboundMessage, bool]] = []
        with self._tx() as conn:
            for m in messages:
                cur = conn.execute(
                    "INSERT OR IGNORE INTO inbound_messages (tenant, provider, vendor_id, from_number, to_number, "
                    "text, received_at, raw, truncated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (tenant, m.provider, m.vendor_id, m.from_number, m.to, m.text, _ts(m.received_at),
                     json.dumps(m.raw), int(m.truncated)))
                row = conn.execute(f"SELECT {INBOUND_COLUMNS} FROM inbound_messages WHERE tenant = ? "
                                   "AND provider = ? AND vendor_id = ?", (tenant, m.provider, m.vendor_id)).fetchone()
                result.append((_inbound(row), cur.rowcount == 1))
        return result

    def _apply_reports(
        self, conn: sqlite3.Connection, tenant: str, reports: Sequence[DeliveryReport]
    ) -> list[AppliedReport]:
        # A message's state lives from its report to its row's UPDATE parameters (plain
        # values, which the cyclic GC stops tracking), not to the end of the batch: half the
        # young collections of a batch (101 -> 51 over bench/run.py's 50 batches), and few
        # tracked objects promoted towards the full ones (which walk the whole process). Only
        # a message named by several reports of the batch keeps its state until the end.
        wanted: dict[str, dict[str, None]] = {}  # provider -> provider message ids (ordered set)
        twice: set[tuple[str, str]] = set()  # the keys named by more than one report
        keys: list[tuple[str, str | None]] = []  # each report's (provider, provider message id)
        for report in reports:
            provider, pmid = report.provider, report.provider_message_id
            keys.append((provider, pmid))
            if pmid is not None:
                pmids = wanted.get(provider)
                if pmids is None:
                    pmids = wanted[provider] = {}
                if pmid in pmids:
                    twice.add((provider, pmid))
                else:
                    pmids[pmid] = None
        # provider -> provider message id -> row; the newest row wins on duplicates.
        found: dict[str, dict[str, _Row]] = {}
        for provider, pmids in wanted.items():
            rows = found[provider] = {}
            for chunk in _chunks(list(pmids)):
                for row in conn.execute(
                    f"SELECT {_REPORT_STATE_COLUMNS} FROM messages WHERE tenant = ? AND provider = ? "
                    f"AND provider_message_id IN ({_marks(len(chunk))})",
                    (tenant, provider, *chunk),
                ):
                    other = rows.get(row[5])
                    if other is None or other[0] < row[0]:
                        rows[row[5]] = row
        times = _TimeCache()
        from_row = _State.from_row
        cache = _TimestampCache()
        groups: dict[tuple[int, ...], list[_Params]] = {}
        kept: dict[tuple[str, str], _State] = {}  # the states of messages named twice or more
        events: list[_Params] = []
        add_event = events.append
        result: list[AppliedReport] = []
        add_result = result.append
        unmatched = AppliedReport(None, False)
        applied = tuple.__new__  # AppliedReport(...) without its Python-level __new__
        no_rows: dict[str, _Row] = {}
        first_event = _next_event(conn)
        for report, (provider, pmid) in zip(reports, keys, strict=True):
            row = None if pmid is None else found.get(provider, no_rows).get(pmid)
            if row is None or pmid is None:
                add_result(unmatched)
                continue
            again = bool(twice) and (provider, pmid) in twice
            if again:
                state = kept.get((provider, pmid))
                if state is None:
                    state = kept[provider, pmid] = from_row(row, times)
            else:
                state = from_row(row, times)
            changed, modified = apply_report(state, report)
            if modified:
                state.dirty = True
            if changed:
                event_id = first_event + len(events)
                add_event(
                    (
                        event_id,
                        state.pk,
                        _STATUS_VALUE[report.status],
                        report.raw_status,
                        cache[to_utc(report.occurred_at)],
                        state.add_event(event_id),
                    )
                )
            add_result(applied(AppliedReport, (state.message_id, changed)))
            if not again:
                _add_changes(groups, state, cache, None)
        for state in kept.values():
            _add_changes(groups, state, cache, None)
        # The cheaper per-row update (see _update_rows): ingestion throughput is
        # what a report batch is measured by (bench/run.py, ingestion).
        # Rows by id alone: each was read by tenant in this write transaction.
        for columns, params in groups.items():
            conn.executemany(_report_update_sql(columns), params)
        if events:
            _values_rows(conn, _REPORT_EVENTS_HEAD, _REPORT_EVENT_ROW, events, ")", before=(tenant,))
        return result

    # -------------------------------------------------------------- opt-outs
    def add_optouts(self, tenant: str, optouts: Sequence[OptOut], *, renew: bool = False) -> int:
        if not optouts:
            return 0
        rows = [(tenant, o.phone, o.scope, o.reason, o.source, _ts(o.created_at)) for o in optouts]
        with self._tx() as conn:
            before = conn.total_changes
            if renew:  # none said before an opt-in of its number and scope (see Store.add_optouts)
                conn.executemany(
                    "INSERT OR IGNORE INTO optouts (tenant, phone, scope, reason, source, created_at) "
                    "SELECT ?, ?, ?, ?, ?, ? WHERE NOT EXISTS (SELECT 1 FROM optins "
                    "WHERE tenant = ? AND phone = ? AND scope = ? AND said_at > ?)",
                    [(*row, row[0], row[1], row[2], row[5]) for row in rows],
                )
            else:
                conn.executemany(
                    "INSERT OR IGNORE INTO optouts (tenant, phone, scope, reason, source, created_at) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    rows,
                )
            new = conn.total_changes - before
            if renew:
                conn.executemany("UPDATE optouts SET created_at = ? WHERE tenant = ? AND phone = ? AND scope = ? "
                                 "AND created_at < ?", [(at, t, phone, scope, at) for t, phone, scope, _, _, at in rows])
            return new

    def optout_scopes(self, tenant: str, phones: Iterable[str]) -> dict[str, set[str]]:
        unique = list(dict.fromkeys(phones))
        if not unique:
            return {}
        with self._read() as conn:
            return self._optout_scopes(conn, tenant, unique)

    @staticmethod
    def _optout_scopes(conn: sqlite3.Connection, tenant: str, unique: Sequence[str]) -> dict[str, set[str]]:
        """:meth:`optout_scopes` of the distinct numbers ``unique`` on ``conn``."""
        found: dict[str, set[str]] = {}
        # as few statements as SQLite takes (a campaign's preparation asks for thousands of
        # numbers from its writer thread, and each statement re-takes the GIL), each list
        # padded with its last number to one of a few lengths (_padded_length): a few statement
        # texts, prepared once (a list of CHUNKs: padded, it never passes what this SQLite takes)
        for chunk in _chunks(unique, max(CHUNK, _IN_LIST // CHUNK * CHUNK)):
            padded = [*chunk, *[chunk[-1]] * (_padded_length(len(chunk)) - len(chunk))]
            for phone, scope in conn.execute(
                f"SELECT phone, scope FROM optouts WHERE tenant = ? AND phone IN ({_marks(len(padded))})",
                (tenant, *padded),
            ):
                found.setdefault(phone, set()).add(scope)
        return found

    def list_optouts(self, tenant: str, *, limit: int | None = None, offset: int = 0) -> list[OptOut]:
        lim = -1 if limit is None else max(limit, 0)
        with self._read() as conn:
            rows = conn.execute(
                "SELECT phone, scope, reason, source, created_at FROM optouts WHERE tenant = ? "
                "ORDER BY phone, scope LIMIT ? OFFSET ?",
                (tenant, lim, max(offset, 0)),
            ).fetchall()
        return [
            OptOut(phone=phone, scope=scope, reason=reason, source=source, created_at=_dt(created_at))
            for phone, scope, reason, source, created_at in rows
        ]

    # ------------------------------------------------------- idempotency keys
    def claim_idempotency_key(self, tenant: str, key: str, message_id: str) -> str | None:
        with self._tx() as conn:
            cur = conn.execute(
                "INSERT OR IGNORE INTO idempotency_keys (tenant, key, message_id, created_at) "
                "VALUES (?, ?, ?, ?)",
                (tenant, key, message_id, _ts(utcnow())),
            )
            if cur.rowcount == 1:
                return None
            row = conn.execute(
                "SELECT message_id FROM idempotency_keys WHERE tenant = ? AND key = ?",
                (tenant, key),
            ).fetchone()
            return str(row[0]) if row is not None else None

    def bound_keys(self, tenant: str, keys: Sequence[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        unique = list(dict.fromkeys(keys))
        with self._read() as conn:
            for i in range(0, len(unique), 500):  # under SQLite's bound-parameter limit
                part = unique[i:i + 500]
                marks = ", ".join("?" * len(part))
                found.update(conn.execute(
                    f"SELECT key, message_id FROM idempotency_keys WHERE tenant = ? AND key IN ({marks})",
                    (tenant, *part)).fetchall())
        return found

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
        with self._tx() as conn:  # BEGIN IMMEDIATE: no writer between the read and the write
            row = self._get_campaign(conn, tenant, campaign_id)
            if if_status is not None and row.status not in if_status:
                return row
            if status is not None:
                row.status = status
            if spec is not None:
                row.spec = json.loads(json.dumps(spec))
            if start_at is not None:
                row.start_at = to_utc(start_at)
            if provider is not None:
                row.provider = provider
            if provider_campaign_id is not None:
                row.provider_campaign_id = provider_campaign_id
            if error is not None:
                row.error = error
            row.updated_at = utcnow()
            conn.execute(
                "UPDATE campaigns SET status = ?, spec = ?, start_at = ?, provider = ?, "
                "provider_campaign_id = ?, error = ?, updated_at = ? WHERE tenant = ? AND campaign_id = ?",
                (
                    row.status.value,
                    json.dumps(row.spec),
                    None if row.start_at is None else _ts(row.start_at),
                    row.provider,
                    row.provider_campaign_id,
                    row.error,
                    _ts(row.updated_at),
                    tenant,
                    campaign_id,
                ),
            )
            return row

    def add_recipients(
        self, tenant: str, campaign_id: str, rows: Sequence[RecipientRow],
        on_duplicate: Callable[[RecipientRow, int | None], RecipientRow] | None = None,
    ) -> list[Duplicate]:
        # Multi-row INSERTs of up to _RECIPIENTS_PER_INSERT rows: one sqlite3 step per
        # statement rather than per row. Besides being cheaper than executemany, the GIL
        # is then released for a whole statement: executemany releases and re-takes it
        # for every row, and each re-take waits up to a switch interval (5 ms) while
        # another thread runs Python code (a campaign's preparation writes from a thread).
        # For the same reason a chunk takes few statements (each one a re-take): no
        # read-back at all when every row went in.
        if not rows:
            return []
        dumps = _fields_json
        state_value = _RECIPIENT_STATE_VALUE

        def values(r: RecipientRow, key: str | None) -> tuple[object, ...]:
            return (r.seq, r.phone, state_value[r.state], dumps(r.fields), r.reason, r.detail, r.message_id,
                    r.segments, r.provider, r.line, key)

        if not _UPSERT:
            return self._add_recipients_checked(tenant, campaign_id, rows, on_duplicate, values)
        # The unique index decides: rows whose key is taken (by an earlier chunk, or an
        # earlier row of this one: rows are inserted in order) are left out, and come back
        # as duplicates. How many went in is the connection's change count; only when some
        # did not are their seqs read back, in one step (group_concat over the new rowids).
        per = _RECIPIENTS_PER_INSERT
        flatten = chain.from_iterable
        statements: list[tuple[int, list[object]]] = []  # (rows, parameters), built before the write lock is taken
        for start in range(0, len(rows), per):
            part = rows[start : start + per]
            flat: list[object] = [tenant, campaign_id]
            # values(r, r.key), inlined (a call less per row); a generator, so that no row's tuple
            # outlives its copy into ``flat`` (kept, they set off the garbage collector, which walks
            # each of them again in each collection)
            flat += flatten((r.seq, r.phone, state_value[r.state], dumps(r.fields), r.reason, r.detail,
                             r.message_id, r.segments, r.provider, r.line, r.key) for r in part)
            statements.append((len(part), flat))
        with self._tx() as conn:
            changes = conn.total_changes
            last = 0
            for count, flat in statements:
                last = conn.execute(_insert_recipients_sql(count) + _IGNORE_TAKEN_KEYS, flat).lastrowid or last
            inserted = conn.total_changes - changes
            if inserted == len(rows):
                return []
            stored: set[int] = set()
            if inserted:
                # A new row's rowid is one more than the table's largest (SQLite's rule for an
                # INTEGER PRIMARY KEY; a row left out takes none): in this write transaction the
                # new rows have the rowids up to the last one inserted, in row order.
                seqs, count = conn.execute("SELECT group_concat(seq), count(*) FROM campaign_recipients WHERE id > ?",
                                           (last - inserted,)).fetchone()
                if count != inserted:  # pragma: no cover - a table at the largest rowid gets random ones
                    raise StoreError(f"recipient rowids are not consecutive ({count} rows for {inserted} inserted)",
                                     store=repr(self.path))
                stored = set(map(int, seqs.split(",")))
            left = [i for i, r in enumerate(rows) if r.key is not None and r.seq not in stored]
            if not left:
                return []
            taken = list(dict.fromkeys(rows[i].key for i in left))
            first: dict[str, int | None] = {}
            for start in range(0, len(taken), _IN_LIST):
                part2 = taken[start : start + _IN_LIST]
                first.update(conn.execute(
                    f"SELECT dedupe_key, line FROM campaign_recipients WHERE tenant = ? AND campaign_id = ? "
                    f"AND dedupe_key IN ({_marks(len(part2))})", (tenant, campaign_id, *part2)).fetchall())
            duplicates = [Duplicate(i, first.get(rows[i].key or "")) for i in left]
            if on_duplicate is not None:
                again = [values(on_duplicate(rows[d.index], d.first_line), None) for d in duplicates]
                for start in range(0, len(again), per):
                    stored_again = again[start : start + per]
                    flat = [tenant, campaign_id]
                    flat += flatten(stored_again)
                    conn.execute(_insert_recipients_sql(len(stored_again)), flat)
        return duplicates

    def _add_recipients_checked(
        self, tenant: str, campaign_id: str, rows: Sequence[RecipientRow],
        on_duplicate: Callable[[RecipientRow, int | None], RecipientRow] | None,
        values: Callable[[RecipientRow, str | None], tuple[object, ...]],
    ) -> list[Duplicate]:
        """:meth:`add_recipients` for SQLite before 3.24 (no upsert): the chunk's keys are
        looked up first, and duplicates stored in their place."""
        keys = list(dict.fromkeys(r.key for r in rows if r.key is not None))
        with self._tx() as conn:
            first: dict[str, int | None] = {}
            for start in range(0, len(keys), _IN_LIST):
                part = keys[start : start + _IN_LIST]
                first.update(conn.execute(
                    f"SELECT dedupe_key, line FROM campaign_recipients WHERE tenant = ? AND campaign_id = ? "
                    f"AND dedupe_key IN ({_marks(len(part))})", (tenant, campaign_id, *part)).fetchall())
            duplicates: list[Duplicate] = []
            params: list[object] = [tenant, campaign_id]
            count = 0
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
                params += values(r, key)
                count += 1
                if count == _RECIPIENTS_PER_INSERT:
                    conn.execute(_insert_recipients_sql(count), params)
                    params, count = [tenant, campaign_id], 0
            if count:
                conn.execute(_insert_recipients_sql(count), params)
        return duplicates

    def claim_recipients(
        self, tenant: str, campaign_id: str, limit: int, new_message_id: Callable[[], str],
        *, owner: str | None = None,
    ) -> list[RecipientRow]:
        if limit <= 0:
            return []
        with self._tx() as conn:
            rows = conn.execute(
                f"SELECT {_RECIPIENT_COLUMNS} FROM campaign_recipients "
                "WHERE tenant = ? AND campaign_id = ? AND state = ? ORDER BY id LIMIT ?",
                (tenant, campaign_id, RecipientState.PENDING.value, limit),
            ).fetchall()
            claimed = [_recipient(row) for row in rows]
            for r in claimed:
                r.state = RecipientState.SENDING
                r.message_id = new_message_id()
                r.owner = owner
            if not claimed:
                return claimed
            if not _MULTI_ROW:
                conn.executemany(
                    "UPDATE campaign_recipients SET state = ?, message_id = ?, owner = ? WHERE id = ? AND tenant = ?",
                    [(RecipientState.SENDING.value, r.message_id, owner, r.id, tenant) for r in claimed],
                )
                return claimed
            # in blocks of cached statements: one statement of the whole chunk was compiled
            # for every claim (~11,000 instructions a row, bench/analysis.md, 2026-12-04 late afternoon)
            _values_rows(conn, _CLAIM_HEAD, "(?, ?)", [(r.id, r.message_id) for r in claimed], _CLAIM_TAIL,
                         before=(RecipientState.SENDING.value, owner), after=(tenant,))
        return claimed

    @staticmethod
    def _update_recipients(conn: sqlite3.Connection, tenant: str,
                           updates: Iterable[tuple[str, RecipientUpdate]]) -> int:
        # Several updates of one recipient collapse into one, as if applied in order; then one
        # multi-row UPDATE ... FROM (VALUES ...) per few thousand (not a statement per row).
        # Returns how many guarded updates applied (Store.update_recipients).
        pending = RecipientState.PENDING
        merged: dict[int, list[Any]] = {}
        guarded: list[tuple[Any, ...]] = []
        for campaign_id, u in updates:
            clear = u.state is pending
            if u.if_message is not None:  # applied after the others, only while it holds that message
                guarded.append((u.state.value, u.reason, u.detail, int(clear), u.message_id, u.id, tenant,
                                campaign_id, u.if_message, int(u.if_sending)))
                continue
            m = merged.get(u.id)
            if m is None:
                merged[u.id] = [u.state.value, u.reason, u.detail, int(clear), u.message_id, u.id, tenant,
                                campaign_id]
                continue
            m[0] = u.state.value
            if u.reason is not None:
                m[1] = u.reason
            if u.detail is not None:
                m[2] = u.detail
            if clear:
                m[3], m[4] = 1, None
            elif u.message_id is not None:
                m[3], m[4] = 0, u.message_id
        rows = list(merged.values())
        if rows and not _MULTI_ROW:
            conn.executemany(_UPDATE_RECIPIENT_SQL, rows)
        elif rows:
            # in blocks of cached statements, ``None`` (no reason, detail or message id: most
            # outcomes) written into the statement (see ``_insert_rows``)
            _values_rows(conn, _UPDATE_RECIPIENTS_HEAD, "(?, ?, ?, ?, ?, ?, ?, ?)", rows, _UPDATE_RECIPIENTS_TAIL)
        if not guarded:
            return 0
        # executemany's rowcount sums the rows each execution changed
        return conn.executemany(_UPDATE_RECIPIENT_SQL + " AND message_id = ?9 AND (?10 = 0 OR state IN "
                                "('sending', 'unknown'))", guarded).rowcount

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
                "WHERE tenant = ? AND campaign_id = ? AND state = ? AND (owner IS NULL OR owner <> ?) "
                "AND NOT EXISTS (SELECT 1 FROM campaign_runners w WHERE w.tenant = r.tenant "
                "AND w.campaign_id = r.campaign_id AND w.owner = r.owner AND w.lease_until > ?) "
                "ORDER BY id LIMIT ?",
                (tenant, campaign_id, RecipientState.SENDING.value, owner, _ts(now), limit),
            ).fetchall()
            taken = [_recipient(row) for row in rows]
            conn.executemany("UPDATE campaign_recipients SET owner = ? WHERE id = ? AND tenant = ?",
                             [(owner, r.id, tenant) for r in taken])
            # the runners gone lose their lease row: renew_runner tells them (see Store.recover_claims)
            conn.executemany("DELETE FROM campaign_runners WHERE tenant = ? AND campaign_id = ? AND owner = ?",
                             [(tenant, campaign_id, o) for o in {r.owner for r in taken if r.owner}])
            for r in taken:
                r.owner = owner
        return taken

    # -------------------------------------------------------------- dispatch log
    def write_log(self, tenant: str, write: LogWrite) -> LogResult:
        result = LogResult()
        with self._tx() as conn:
            if write.rechecks:
                phones = write.recheck_phones()
                write, result.refused = write.rechecked(self._optout_scopes(conn, tenant, list(phones)))
            inserts = write.inserts
            if write.claims:
                # the claims still held, per owner, read in one step each (group_concat): stepping
                # row by row would give the GIL back and forth per row
                held: set[int] = set()
                by_owner: dict[str, list[int]] = {}
                for c in write.claims.values():
                    by_owner.setdefault(c.owner, []).append(c.recipient_id)
                for owner, ids in by_owner.items():
                    for start in range(0, len(ids), _IN_LIST):
                        part = ids[start : start + _IN_LIST]
                        (found,) = conn.execute(_held_claims_sql(len(part)),
                                                (tenant, RecipientState.SENDING.value, owner, *part)).fetchone()
                        if found:
                            held.update(map(int, found.split(",")))
                for mid, claim in write.claims.items():
                    if claim.recipient_id not in held:
                        result.lost.add(mid)
            if write.keys:
                for mid, key in write.keys.items():
                    if mid in result.lost:
                        continue
                    cur = conn.execute(
                        "INSERT OR IGNORE INTO idempotency_keys (tenant, key, message_id, created_at) "
                        "VALUES (?, ?, ?, ?)", (tenant, key, mid, _ts(utcnow())))
                    if cur.rowcount != 1:
                        row = conn.execute("SELECT message_id FROM idempotency_keys WHERE tenant = ? AND key = ?",
                                           (tenant, key)).fetchone()
                        result.replays[mid] = str(row[0])
            if result.lost or result.replays:
                inserts = [r for r in inserts if r.message_id not in result.lost
                           and r.message_id not in result.replays]
            if inserts:
                self._insert(conn, inserts)
            if write.updates:
                result.changed = changed_ids(write.updates, self._update(conn, tenant, write.updates))
            if write.withdrawn:
                self._withdraw(conn, tenant, write.withdrawn)
            if write.recipients:
                self._update_recipients(conn, tenant, write.recipients)
            result.adopted = self._adopt_orphans(conn, tenant, written_provider_keys(inserts, write.updates))
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
        where = "tenant = ? AND campaign_id = ? AND id > ?"
        params: list[object] = [tenant, campaign_id, after_id]
        if states is not None:
            values = list(dict.fromkeys(state.value for state in states))
            where += f" AND state IN ({_marks(len(values))})"
            params.extend(values)
        params.append(limit)
        with self._read() as conn:
            rows = conn.execute(
                f"SELECT {_RECIPIENT_COLUMNS} FROM campaign_recipients WHERE {where} ORDER BY id LIMIT ?",
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
        # Pages in (created_at, id) order, each read under the lock and released
        # before yielding, so a slow consumer never blocks other users of the store.
        where, params = self._times_filter(tenant, campaign_id, provider, since, until)
        sql = (
            "SELECT status, provider, created_at, submitted_at, delivered_at, segments, cost, id, currency, "
            "raw_status "
            f"FROM messages WHERE {where} AND (created_at, id) > (?, ?) "
            "ORDER BY created_at, id LIMIT ?"
        )
        cursor: tuple[str, int] = ("", 0)
        while True:
            with self._read() as conn:
                rows = conn.execute(sql, (*params, *cursor, _TIMES_PAGE)).fetchall()
            for row in rows:
                yield MessageTimes(
                    status=_STATUS[row[0]],
                    provider=row[1],
                    created_at=_dt(row[2]),
                    submitted_at=_dt_opt(row[3]),
                    delivered_at=_dt_opt(row[4]),
                    segments=row[5],
                    cost=_dec(row[6]),
                    currency=row[8],
                    raw_status=row[9],
                )
            if len(rows) < _TIMES_PAGE:
                return
            cursor = (rows[-1][2], rows[-1][7])

    # ----------------------------------------------------------- contact lists
    @staticmethod
    def _list_exists(conn: sqlite3.Connection, tenant: str, list_id: str) -> None:
        if conn.execute("SELECT 1 FROM contact_lists WHERE tenant = ? AND list_id = ?",
                        (tenant, list_id)).fetchone() is None:
            raise NotFound(f"no contact list {list_id!r} for tenant {tenant!r}")

    @staticmethod
    def _list_row(row: Any) -> ContactListRow:
        return ContactListRow(tenant=row[0], list_id=row[1], name=row[2], created_at=_dt(row[3]),
                              description=row[4], size=int(row[5]))

    def delete_contact_list(self, tenant: str, list_id: str) -> bool:
        with self._tx() as conn:
            conn.execute("DELETE FROM contacts WHERE tenant = ? AND list_id = ?", (tenant, list_id))
            cur = conn.execute("DELETE FROM contact_lists WHERE tenant = ? AND list_id = ?", (tenant, list_id))
            return cur.rowcount > 0

    def add_contacts(self, tenant: str, list_id: str, contacts: Sequence[Contact]) -> int:
        check_contact_fields(contacts)  # a field named phone or name: refused, nothing written
        with self._tx() as conn:
            self._list_exists(conn, tenant, list_id)
            before = conn.execute("SELECT count(*) FROM contacts WHERE tenant = ? AND list_id = ?",
                                  (tenant, list_id)).fetchone()[0]
            conn.executemany(
                "INSERT INTO contacts (tenant, list_id, phone, name, fields) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (tenant, list_id, phone) DO UPDATE SET name = excluded.name, fields = excluded.fields",
                [(tenant, list_id, c.phone, c.name, json.dumps(c.fields)) for c in contacts],
            )
            after = conn.execute("SELECT count(*) FROM contacts WHERE tenant = ? AND list_id = ?",
                                 (tenant, list_id)).fetchone()[0]
            return int(after - before)

    def remove_contacts(self, tenant: str, list_id: str, phones: Iterable[str]) -> int:
        removed = 0
        with self._tx() as conn:
            for chunk in _chunks(sorted(set(phones))):
                cur = conn.execute(
                    f"DELETE FROM contacts WHERE tenant = ? AND list_id = ? AND phone IN ({_marks(len(chunk))})",
                    (tenant, list_id, *chunk),
                )
                removed += cur.rowcount
        return removed

    def list_contacts(
        self, tenant: str, list_id: str, *, after_id: int = 0, limit: int = 1000
    ) -> list[tuple[int, Contact]]:
        with self._read() as conn:
            self._list_exists(conn, tenant, list_id)
            rows = conn.execute(
                "SELECT id, phone, name, fields FROM contacts WHERE tenant = ? AND list_id = ? AND id > ?"
                " ORDER BY id LIMIT ?",
                (tenant, list_id, after_id, limit),
            ).fetchall()
        return [(int(r[0]), Contact(phone=r[1], name=r[2], fields=json.loads(r[3]))) for r in rows]

    # -------------------------------------------------------------- retention
    def purge(self, tenant: str | None, *, before: datetime, dry_run: bool = False,
              batch_size: int = 1000) -> PurgeResult:
        """See :meth:`Store.purge <smsgate.store.base.Store.purge>`.

        Each batch holds the database's write lock for one short transaction; after it the
        purge pauses as long as it held the lock (at least :attr:`PURGE_GIVE_WAY` seconds),
        so writers waiting in SQLite's busy handler (which polls at growing intervals) get
        the lock between two batches instead of waiting behind the whole purge.
        """
        return purge_rows(self, tenant, before=before, dry_run=dry_run, batch_size=batch_size,
                          give_way=self._give_way)

    #: The shortest pause of a purge between two write transactions (seconds).
    PURGE_GIVE_WAY = 0.01

    def _give_way(self, held: float) -> None:
        time.sleep(max(held, self.PURGE_GIVE_WAY))
