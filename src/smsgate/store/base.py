"""The store interface: message log, status history, opt-outs, idempotency keys.

Every row carries its tenant and every method takes the tenant first: one
tenant can never read or change another's rows. Implementations:
:class:`~smsgate.store.sqlite.SQLiteStore` (embedded default) and
:class:`~smsgate.store.memory.MemoryStore` (tests). Open one by URL with
:func:`smsgate.store.open_store`.

Status rules (all implementations): the current status only moves forward in
the lifecycle (``Status.rank``); a final status is never replaced, except that
``unknown`` may be replaced by anything. Every accepted change appends a
:class:`~smsgate.models.StatusEvent` to the history; a report repeating the
current status and raw status adds nothing.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from smsgate.models import DeliveryReport, MessageRecord, OptOut, Status

__all__ = ["MessageUpdate", "Store"]


@dataclass
class MessageUpdate:
    """A change to one message: a new status plus any fields learnt with it.

    ``None`` fields are left unchanged.
    """

    message_id: str
    status: Status
    at: datetime
    raw_status: str | None = None
    source: str = ""
    detail: str | None = None
    provider: str | None = None
    provider_message_id: str | None = None
    batch_id: str | None = None
    segments: int | None = None
    cost: Decimal | None = None
    currency: str | None = None
    error: str | None = None


class Store(abc.ABC):
    """Abstract store. All methods are synchronous and thread-safe."""

    #: Schema version this code expects.
    SCHEMA_VERSION: int = 1

    # ------------------------------------------------------------- lifecycle
    @abc.abstractmethod
    def migrate(self) -> None:
        """Create or upgrade the schema to ``SCHEMA_VERSION`` (idempotent)."""

    @abc.abstractmethod
    def schema_version(self) -> int:
        """The schema version present in the database (0 if empty)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release connections."""

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -------------------------------------------------------------- messages
    @abc.abstractmethod
    def insert_messages(self, records: Sequence[MessageRecord]) -> None:
        """Insert new messages (one transaction), with their ``history`` events.

        ``(tenant, message_id)`` is unique; inserting an existing one raises
        :class:`ValueError`.
        """

    @abc.abstractmethod
    def update_messages(self, tenant: str, updates: Sequence[MessageUpdate]) -> list[bool]:
        """Apply status updates in one transaction.

        Returns, per update, whether the status changed (see the module rules).
        Non-status fields (provider ids, cost, error...) are written whenever
        given. Sets ``submitted_at`` on the first move to submitted/sent or later
        and ``delivered_at`` on delivered. Unknown message ids return False.
        """

    @abc.abstractmethod
    def get_message(self, tenant: str, message_id: str) -> MessageRecord:
        """One message with its full history, or :class:`~smsgate.errors.NotFound`."""

    @abc.abstractmethod
    def find_by_provider_id(
        self, tenant: str, provider: str, provider_message_id: str
    ) -> MessageRecord | None:
        """The message a provider knows as ``provider_message_id`` (no history)."""

    @abc.abstractmethod
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
        """Newest first, without history; ``before`` is a message id for keyset paging."""

    @abc.abstractmethod
    def count_by_status(
        self, tenant: str, *, campaign_id: str | None = None, provider: str | None = None
    ) -> dict[Status, int]:
        """Number of messages per current status."""

    @abc.abstractmethod
    def apply_reports(self, tenant: str, reports: Sequence[DeliveryReport]) -> list[str | None]:
        """Ingest delivery reports in one transaction.

        Each report is matched by ``(report.provider, report.provider_message_id)``
        and applied as a :class:`MessageUpdate` (source ``"report"``). Returns the
        matched message id per report (``None`` when unmatched).
        """

    # -------------------------------------------------------------- opt-outs
    @abc.abstractmethod
    def add_optouts(self, tenant: str, optouts: Sequence[OptOut]) -> int:
        """Record opt-outs (E.164 phones); returns how many were new."""

    @abc.abstractmethod
    def remove_optout(self, tenant: str, phone: str) -> bool:
        """Remove an opt-out; returns whether one existed."""

    @abc.abstractmethod
    def opted_out(self, tenant: str, phones: Iterable[str]) -> set[str]:
        """The subset of ``phones`` that opted out (one query per chunk of phones)."""

    def is_opted_out(self, tenant: str, phone: str) -> bool:
        """Whether ``phone`` opted out of this tenant's messages."""
        return bool(self.opted_out(tenant, [phone]))

    @abc.abstractmethod
    def list_optouts(
        self, tenant: str, *, limit: int | None = None, offset: int = 0
    ) -> list[OptOut]:
        """Opt-outs ordered by phone."""

    @abc.abstractmethod
    def count_optouts(self, tenant: str) -> int:
        """Number of opt-outs."""

    # ------------------------------------------------------- idempotency keys
    @abc.abstractmethod
    def claim_idempotency_key(self, tenant: str, key: str, message_id: str) -> str | None:
        """Atomically bind ``key`` to ``message_id``.

        Returns ``None`` if the key was new (the caller may send), or the message
        id it was already bound to (the caller must not send again).
        """
