"""The store interface: message log, status history, opt-outs, idempotency keys.

Every row carries its tenant and every method takes the tenant first: one
tenant can never read or change another's rows. Implementations:
:class:`~smsgate.store.sqlite.SQLiteStore` (embedded default),
:class:`~smsgate.store.postgres.PostgresStore` (production) and
:class:`~smsgate.store.memory.MemoryStore` (tests); all pass the same test-suite. Open one by URL with
:func:`smsgate.store.open_store`.

Status rules (all implementations): the current status only moves forward in
the lifecycle (``Status.rank``); a final status is never replaced, except that
``unknown`` may be replaced by anything. Every accepted change appends a
:class:`~smsgate.models.StatusEvent` to the history; a report repeating the
current status and raw status adds nothing.
"""

from __future__ import annotations

import abc
import enum
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from smsgate.models import CampaignStatus, Contact, DeliveryReport, MessageRecord, OptOut, Status

__all__ = [
    "CampaignRow",
    "ContactListRow",
    "MessageTimes",
    "MessageUpdate",
    "RecipientRow",
    "RecipientState",
    "RecipientUpdate",
    "Store",
]


class RecipientState(str, enum.Enum):
    """Where one campaign recipient is in dispatch.

    ``pending`` (to send) -> ``sending`` (claimed by a runner; a message id is
    assigned) -> ``sent`` | ``failed`` | ``unknown`` (the request may have reached
    the provider; resolved by lookup, never blindly re-sent); ``skipped``
    recipients (invalid, duplicate, opted out, missing variable, cancelled) are
    never sent.
    """

    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    UNKNOWN = "unknown"
    SKIPPED = "skipped"


@dataclass
class RecipientRow:
    """One row of a campaign's audience as stored."""

    seq: int
    phone: str
    state: RecipientState
    fields: dict[str, str] = field(default_factory=dict)
    reason: str | None = None
    detail: str | None = None
    message_id: str | None = None
    segments: int | None = None
    provider: str | None = None
    id: int | None = None


@dataclass
class RecipientUpdate:
    """A state change for one recipient (by store id). ``None`` fields stay unchanged."""

    id: int
    state: RecipientState
    reason: str | None = None
    detail: str | None = None
    message_id: str | None = None


@dataclass
class CampaignRow:
    """A campaign as stored: identity, status and its JSON-able spec/summary."""

    tenant: str
    campaign_id: str
    name: str
    status: CampaignStatus
    created_at: datetime
    updated_at: datetime
    spec: dict[str, Any] = field(default_factory=dict)
    start_at: datetime | None = None
    provider: str | None = None
    provider_campaign_id: str | None = None
    error: str | None = None


@dataclass
class ContactListRow:
    """A stored contact list (its contacts are read with :meth:`Store.list_contacts`)."""

    tenant: str
    list_id: str
    name: str
    created_at: datetime
    description: str = ""
    size: int = 0


@dataclass
class MessageTimes:
    """The fields statistics are computed from, for one logged message."""

    status: Status
    provider: str | None
    created_at: datetime
    submitted_at: datetime | None
    delivered_at: datetime | None
    segments: int | None
    cost: Decimal | None


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
    #: The sender ID the message went out with (the provider's or tenant's default
    #: when the caller gave none; another provider's after a failover).
    sender: str | None = None


class Store(abc.ABC):
    """Abstract store. All methods are synchronous and thread-safe."""

    #: Schema version this code expects (the same number for every store).
    SCHEMA_VERSION: int = 2

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

    # -------------------------------------------------------------- campaigns
    @abc.abstractmethod
    def create_campaign(self, row: CampaignRow) -> None:
        """Insert a campaign; :class:`ValueError` if ``(tenant, campaign_id)`` exists."""

    @abc.abstractmethod
    def get_campaign(self, tenant: str, campaign_id: str) -> CampaignRow:
        """One campaign, or :class:`~smsgate.errors.NotFound`."""

    @abc.abstractmethod
    def list_campaigns(self, tenant: str, *, limit: int = 100) -> list[CampaignRow]:
        """Campaigns, newest first."""

    @abc.abstractmethod
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
    ) -> CampaignRow:
        """Change the given fields (``None`` = unchanged; ``spec`` replaces the whole
        spec) and ``updated_at``; returns the new row. NotFound if missing."""

    @abc.abstractmethod
    def add_recipients(self, tenant: str, campaign_id: str, rows: Sequence[RecipientRow]) -> None:
        """Append audience rows in one transaction (ids are assigned by the store)."""

    @abc.abstractmethod
    def delete_recipients(self, tenant: str, campaign_id: str) -> int:
        """Remove every recipient of a campaign (to prepare it again); returns how many."""

    @abc.abstractmethod
    def claim_recipients(
        self, tenant: str, campaign_id: str, limit: int, new_message_id: Callable[[], str]
    ) -> list[RecipientRow]:
        """Atomically move up to ``limit`` ``pending`` recipients (lowest id first) to
        ``sending``, giving each ``message_id = new_message_id()``; returns them.

        Two runners claiming concurrently never get the same recipient.
        """

    @abc.abstractmethod
    def update_recipients(
        self, tenant: str, campaign_id: str, updates: Sequence[RecipientUpdate]
    ) -> None:
        """Apply recipient state changes in one transaction."""

    @abc.abstractmethod
    def recipients(
        self,
        tenant: str,
        campaign_id: str,
        *,
        states: Sequence[RecipientState] | None = None,
        after_id: int = 0,
        limit: int = 1000,
    ) -> list[RecipientRow]:
        """Recipients with ``id > after_id`` in id order (keyset paging), optionally by state."""

    @abc.abstractmethod
    def recipient_counts(
        self, tenant: str, campaign_id: str
    ) -> dict[tuple[RecipientState, str | None], int]:
        """Number of recipients per ``(state, reason)``."""

    # ------------------------------------------------------------ statistics
    @abc.abstractmethod
    def message_times(
        self,
        tenant: str,
        *,
        campaign_id: str | None = None,
        provider: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Iterator[MessageTimes]:
        """Stream the timing fields of matching messages (``since <= created_at < until``)."""

    # ----------------------------------------------------------- contact lists
    @abc.abstractmethod
    def create_contact_list(self, row: ContactListRow) -> None:
        """Insert an empty list; :class:`ValueError` if ``(tenant, list_id)`` exists."""

    @abc.abstractmethod
    def get_contact_list(self, tenant: str, list_id: str) -> ContactListRow:
        """One list with its current ``size``, or :class:`~smsgate.errors.NotFound`."""

    @abc.abstractmethod
    def list_contact_lists(self, tenant: str) -> list[ContactListRow]:
        """This tenant's lists with their sizes, newest first."""

    @abc.abstractmethod
    def delete_contact_list(self, tenant: str, list_id: str) -> bool:
        """Delete a list and its contacts; returns whether it existed."""

    @abc.abstractmethod
    def add_contacts(self, tenant: str, list_id: str, contacts: Sequence[Contact]) -> int:
        """Add or update contacts (E.164 ``phone`` is the key within the list), in one
        transaction; returns how many phones were new. An updated contact keeps its id;
        of one phone given twice the last wins. NotFound for an unknown list."""

    @abc.abstractmethod
    def remove_contacts(self, tenant: str, list_id: str, phones: Iterable[str]) -> int:
        """Remove contacts by phone; returns how many were removed (0 for an unknown list)."""

    @abc.abstractmethod
    def list_contacts(
        self, tenant: str, list_id: str, *, after_id: int = 0, limit: int = 1000
    ) -> list[tuple[int, Contact]]:
        """``(id, contact)`` pairs with ``id > after_id`` in id order (keyset paging).
        NotFound for an unknown list."""
