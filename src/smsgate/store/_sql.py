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
from contextlib import AbstractContextManager
from typing import Any, ClassVar

from smsgate.errors import NotFound
from smsgate.models import MessageRecord, Status

__all__ = ["CAMPAIGN_COLUMNS", "MESSAGE_COLUMNS", "RECIPIENT_COLUMNS", "SQLQueries"]

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
RECIPIENT_COLUMNS = "id, seq, phone, state, fields, reason, detail, message_id, segments, provider"

_STATUS = {status.value: status for status in Status}


@functools.lru_cache(maxsize=1024)
def _rewrite(sql: str, param: str) -> str:
    return sql.replace("?", param)


class SQLQueries:
    """Mixin of the store methods whose SQL both dialects share (see the module doc)."""

    #: The dialect's positional placeholder.
    _PARAM: ClassVar[str] = "?"

    @classmethod
    def _q(cls, sql: str) -> str:
        """``sql`` (written with ``?``) in this dialect's placeholders; cached per string."""
        param = cls._PARAM
        return sql if param == "?" else _rewrite(sql, param)

    # ------------------------------------------------------------------ hooks
    def _read(self) -> AbstractContextManager[Any]:
        """A connection to read with (one snapshot for the queries run on it)."""
        raise NotImplementedError

    @staticmethod
    def _decode_record(row: Any) -> MessageRecord:
        """A ``messages`` row (``MESSAGE_COLUMNS``) as a record without history."""
        raise NotImplementedError

    # -------------------------------------------------------------- messages
    def find_by_provider_id(
        self, tenant: str, provider: str, provider_message_id: str
    ) -> MessageRecord | None:
        with self._read() as conn:
            row = conn.execute(
                self._q(
                    f"SELECT {MESSAGE_COLUMNS} FROM messages "
                    "WHERE tenant = ? AND provider = ? AND provider_message_id = ? ORDER BY id DESC LIMIT 1"
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
