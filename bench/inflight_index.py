#!/usr/bin/env python3
"""Should the status poller's in-flight scan have a partial index on PostgreSQL? (It does not.)

``.venv/bin/python bench/inflight_index.py [--n 300000] [--dsn postgresql://postgres@127.0.0.1:5432/test]``

The status poller (:mod:`smsgate.core.reconcile`) pages through
``messages WHERE tenant = ? AND status IN ('submitted', 'sent') AND created_at in a window
ORDER BY created_at, id`` (``Store.in_flight``). Today that is a range scan of
``messages_created (tenant, created_at, id)`` that filters out every finished message of
the window. A partial index ``(tenant, created_at, id) WHERE status IN ('submitted', 'sent',
'unknown')`` reads only the messages still in flight -- but PostgreSQL counts the columns
of an index predicate as indexed, so every status change (every delivery report) stops
being a HOT update: the store's reports are HOT by design (module doc of
:mod:`smsgate.store.postgres`, ``test_schema_types_and_indexes`` guards it).

This script loads ``--n`` messages over two days (0.5 % still ``submitted``) into a
scratch schema, runs ``EXPLAIN (ANALYZE, BUFFERS)`` of the poller's first page without
and with the partial index, and counts HOT updates among 1,000 report-like status
updates in each case. Measured on the 2-core dev machine, PostgreSQL 15, n = 300,000::

    without: Index Scan using messages_created, Rows Removed by Filter: 19900,
             435 buffers, 11.7 ms; report updates 1000/1000 HOT
    with:    Index Scan using messages_in_flight, 102 buffers, 0.28 ms;
             report updates 0/1000 HOT (80 kB index against 12 MB for messages_created)

So the index makes one poller page about 40x cheaper and every delivery report write all
of ``messages``' indexes again; reports outnumber poller pages by orders of magnitude, so
schema 7 does not add it. The scratch schema is dropped at the end.
"""

from __future__ import annotations

import argparse
import time
import uuid

import psycopg

from smsgate.store.postgres import PostgresStore

QUERY = ("SELECT id FROM messages WHERE tenant = 'a' AND status IN ('submitted', 'sent') "
         "AND created_at < now() - interval '5 minutes' AND created_at >= now() - interval '3 days' "
         "AND provider IN ('one') ORDER BY created_at, id LIMIT 100")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=300_000)
    parser.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    schema = f"bench_inflight_{uuid.uuid4().hex[:8]}"
    store = PostgresStore(args.dsn, schema=schema)
    store.migrate()
    store.close()
    try:
        with psycopg.connect(args.dsn, autocommit=True) as conn:
            conn.execute(psycopg.sql.SQL("SET search_path = {}").format(psycopg.sql.Identifier(schema)))
            conn.execute(
                "INSERT INTO messages (tenant, message_id, to_phone, status, provider, provider_message_id, "
                "created_at, updated_at) "
                "SELECT 'a', 'm' || g, '+23480' || lpad(g::text, 8, '0'), "
                "CASE WHEN g %% 200 = 0 THEN 'submitted' ELSE 'delivered' END, 'one', 'p' || g, "
                "now() - interval '2 days' + (g * interval '2 days' / %s), now() "
                "FROM generate_series(1, %s) g", (args.n, args.n))
            conn.execute("ANALYZE messages")
            run(conn, schema, "without a partial index")
            conn.execute("CREATE INDEX messages_in_flight ON messages (tenant, created_at, id) "
                         "WHERE status IN ('submitted', 'sent', 'unknown')")
            conn.execute("ANALYZE messages")
            run(conn, schema, "with messages_in_flight")
    finally:
        with psycopg.connect(args.dsn, autocommit=True) as conn:
            conn.execute(psycopg.sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(psycopg.sql.Identifier(schema)))


def run(conn: psycopg.Connection, schema: str, label: str) -> None:
    print(f"--- {label}")
    for (line,) in conn.execute("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING OFF) " + QUERY):
        print("   ", line)

    def counts() -> tuple[int, int]:
        conn.execute("SELECT pg_stat_force_next_flush()")
        time.sleep(0.6)
        row = conn.execute("SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables "
                           "WHERE relname = 'messages' AND schemaname = %s", (schema,)).fetchone()
        assert row is not None
        return int(row[0]), int(row[1])

    ids = [r[0] for r in conn.execute("SELECT id FROM messages WHERE status = 'submitted' LIMIT 1000")]
    upd0, hot0 = counts()
    for pk in ids:  # one report each: submitted -> delivered
        conn.execute("UPDATE messages SET status = 'delivered', updated_at = now() WHERE id = %s", (pk,))
    upd1, hot1 = counts()
    print(f"    report updates: {upd1 - upd0}, HOT: {hot1 - hot0}")
    conn.execute("UPDATE messages SET status = 'submitted' WHERE id = ANY(%s)", (ids,))


if __name__ == "__main__":
    main()
