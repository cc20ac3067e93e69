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
import functools
import inspect
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, NamedTuple, TypeVar

from smsgate._enum import StrEnum
from smsgate.errors import ConfigError, InvalidPhoneNumber, NotFound, SmsgateError, ValidationError
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
    builtin_field,
    builtin_field_error,
    optout_applies,
)
from smsgate.phone import PhoneNormalizer, is_e164
from smsgate.traffic.limits import KeyState

__all__ = [
    "MAX_COUNT",
    "PAGING_ARGUMENTS",
    "TENANT_DATA",
    "AppliedReport",
    "CampaignRow",
    "Claim",
    "ContactListRow",
    "Duplicate",
    "LogResult",
    "LogWrite",
    "MessageTimes",
    "MessageUpdate",
    "NewEvent",
    "NewMessage",
    "PurgeResult",
    "Recheck",
    "RecipientRow",
    "RecipientState",
    "RecipientUpdate",
    "Store",
    "TenantChanged",
    "TenantRow",
    "check_contact_fields",
    "check_count",
    "erase_refused",
]

#: The kinds of data :meth:`Store.tenant_data` reports a tenant name holds, in its order.
TENANT_DATA = ("messages", "campaigns", "contact lists", "opt-outs", "opt-ins", "inbound messages",
               "kept delivery reports", "idempotency keys")


#: Reads the numbers a store is asked about: the send path's rule, without a region.
_REGIONLESS = PhoneNormalizer()


def optout_key(phone: object, field: str) -> str:
    """The E.164 number opt-outs of ``phone`` are kept under (:meth:`Store.opted_out`): ``phone``
    read as the send path reads it, without a region; an :class:`InvalidPhoneNumber` naming
    ``field`` when it cannot be read so. An E.164-shaped number phonenumbers does not know (an
    opt-out a vendor listed) is looked up as given, as it was stored."""
    try:
        return _REGIONLESS.normalize(phone)  # type: ignore[arg-type]  # (another type: refused)
    except InvalidPhoneNumber as exc:
        if isinstance(phone, str) and is_e164(phone):
            return phone
        raise InvalidPhoneNumber("is no number in international form (E.164, or + and the country code with "
                                 "spaces or dashes): the store keeps opt-outs by E.164 number and knows no region "
                                 "to read a national one; tenant.optouts.check() reads it with the tenant's region",
                                 field=field, value=exc.value) from None


def erase_refused(tenant: str) -> ConfigError:
    """The error of :meth:`Store.erase_tenant` for ``tenant``, a stored tenant's name."""
    return ConfigError(f"tenant {tenant!r} is stored: remove it first (its data is what it sends with)",
                       field=f"tenants.{tenant}")


class AppliedReport(NamedTuple):
    """What :meth:`Store.apply_reports_changes` did with one delivery report."""

    #: the message the report matched (``None``: none)
    message_id: str | None
    #: whether it moved the message's status (a history event was written); ``False``
    #: for a repeat of a report already applied, or one the forward-only rule refused
    changed: bool

T = TypeVar("T")


class RecipientState(StrEnum):
    """Where one campaign recipient is in dispatch.

    ``pending`` (to send) -> ``sending`` (claimed by a runner, its ``owner``; a
    message id is assigned) -> ``sent`` | ``failed`` | ``unknown`` (the request may
    have reached the provider; resolved by lookup, never blindly re-sent);
    ``skipped`` recipients (invalid, duplicate, opted out, missing variable,
    cancelled) are never sent. A recipient put back to ``pending`` loses its owner
    and message id.
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
    #: Where the row is in its audience (a CSV line), for messages about it.
    line: int | None = None
    #: Deduplication key (the E.164 number for a row that could be sent): unique
    #: within the campaign; ``None`` for rows that never take part (invalid numbers).
    key: str | None = None
    #: The runner holding a ``sending`` recipient.
    owner: str | None = None


@dataclass(frozen=True)
class TenantRow:
    """A tenant provisioned at run time (see :mod:`smsgate.tenants`), as the store keeps it.

    ``config`` is the tenant's configuration as JSON *without* its credentials;
    ``secrets`` is opaque ciphertext (a Fernet token holding the credentials): the
    store never sees a credential in plain text. ``version`` changes on every write
    of this tenant (an etag).
    """

    name: str
    config: str
    secrets: str
    version: int
    updated_at: datetime

    def __repr__(self) -> str:
        return f"TenantRow(name={self.name!r}, version={self.version}, secrets=<{len(self.secrets)} bytes encrypted>)"


class TenantChanged(SmsgateError):
    """:meth:`Store.put_tenant_row` with ``expected_version``: another writer changed (or
    removed) the tenant since it was read; nothing was written. Read it again and retry."""


@dataclass(frozen=True)
class Duplicate:
    """A row :meth:`Store.add_recipients` did not store: its ``key`` is already in the campaign."""

    index: int
    first_line: int | None


@dataclass(frozen=True)
class Claim:
    """A campaign recipient held by a runner: its message is logged only while it still holds it."""

    campaign_id: str
    recipient_id: int
    owner: str
    #: error codes (exception class names) of failures that certainly did not reach the vendor
    #: and that the runner retries later: the recipient stays claimed (reason ``retry``) until
    #: the runner puts it back to ``pending``, or its recovery does (see core.campaign.resolve)
    retry: frozenset[str] = frozenset()
    #: ``time.monotonic()`` when the runner checked the recipient's opt-outs (its chunk's
    #: preparation): a request leaving more than :data:`smsgate.core.deliver.RECHECK_AFTER` later
    #: checks them again (``0``: always)
    checked: float = field(default=0.0, compare=False)


#: The ``source`` of a :class:`NewMessage`'s first history event.
NEW_MESSAGE_SOURCE = "gateway"


@dataclass(slots=True)
class NewEvent:
    """The first history event of a :class:`NewMessage`."""

    status: Status
    raw_status: str | None
    at: datetime
    source: str
    detail: str | None


@dataclass(slots=True)
class NewMessage:
    """A message entering the log (what :meth:`Store.write_log` inserts): a light
    :class:`~smsgate.models.MessageRecord` with one history event, its first status."""

    tenant: str
    message_id: str
    to: str
    status: Status
    created_at: datetime
    raw_status: str | None = None
    sender: str | None = None
    reference: str | None = None
    campaign_id: str | None = None
    segments: int | None = None
    error: str | None = None
    provider: str | None = None
    provider_message_id: str | None = None
    batch_id: str | None = None
    cost: Decimal | None = None
    currency: str | None = None
    submitted_at: datetime | None = None
    delivered_at: datetime | None = None

    @property
    def updated_at(self) -> datetime:
        return self.created_at

    @property
    def history(self) -> list[NewEvent]:
        return [NewEvent(self.status, self.raw_status, self.created_at, NEW_MESSAGE_SOURCE, self.error)]

    def record(self) -> MessageRecord:
        """The same message as a :class:`~smsgate.models.MessageRecord`."""
        return MessageRecord(
            tenant=self.tenant, message_id=self.message_id, to=self.to, status=self.status,
            raw_status=self.raw_status, sender=self.sender, reference=self.reference,
            campaign_id=self.campaign_id, segments=self.segments, error=self.error, provider=self.provider,
            provider_message_id=self.provider_message_id, batch_id=self.batch_id, cost=self.cost,
            currency=self.currency, created_at=self.created_at, updated_at=self.created_at,
            submitted_at=self.submitted_at, delivered_at=self.delivered_at,
            history=[StatusEvent(status=e.status, raw_status=e.raw_status, at=e.at, source=e.source,
                                 detail=e.detail) for e in self.history],
        )


@dataclass(slots=True)
class Recheck:
    """Messages of a write-ahead whose numbers' opt-outs are read again in its own transaction
    (:meth:`Store.write_log`), after a wait since they were prepared (a campaign chunk's
    requests waiting for the run's limits): those whose number opted out meanwhile are logged
    refused instead, never sent (:attr:`LogResult.refused`). Messages logged ahead already (a
    ``send`` failed over to, or sent again through, a provider whose limits it waited for)
    are re-checked by a write of rechecks alone: their refusals are updates."""

    #: the numbers (as stored: E.164) whose opt-outs are read
    phones: set[str]
    #: given the scopes each number opted out of (:meth:`Store.optout_scopes`' answer for
    #: ``phones``), what to write instead for the messages that must not leave: their refused
    #: inserts (same message ids as the inserts they replace), or the updates refusing messages
    #: logged already, and, for campaign recipients, their updates; an empty write when none is
    #: refused. The kernel's rule, called by the store inside the transaction (no I/O of its own)
    refuse: Callable[[Mapping[str, set[str]]], LogWrite]


@dataclass
class LogWrite:
    """One write of the dispatch log; drivers merge concurrent ones into one transaction.

    Applied in this order: ``rechecks`` (the opt-outs of the numbers they name are read in the
    transaction, and the messages they refuse replaced, see :meth:`rechecked`), ``inserts``
    (the messages about to leave, or refused before leaving), each bound to its idempotency
    key in ``keys`` and, for a campaign recipient, only while its ``claims`` entry still
    holds; then ``updates`` (answers), ``withdrawn`` and ``recipients`` (campaign states, by
    campaign id).
    """

    inserts: list[MessageRecord | NewMessage] = field(default_factory=list)
    #: message id -> idempotency key, bound atomically with the message's insert
    keys: dict[str, str] = field(default_factory=dict)
    #: message id -> the claim that must still hold for the message to be inserted
    claims: dict[str, Claim] = field(default_factory=dict)
    updates: list[MessageUpdate] = field(default_factory=list)
    #: write-aheads taken back: messages logged ``queued`` whose request certainly never reached a
    #: vendor (a campaign run stopped while they waited for a failover provider's limit), deleted
    #: with their history, each only while still ``queued`` without a provider id (never answered)
    withdrawn: list[str] = field(default_factory=list)
    recipients: list[tuple[str, RecipientUpdate]] = field(default_factory=list)
    #: opt-outs read again in the transaction, before the inserts (see :class:`Recheck`)
    rechecks: list[Recheck] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.inserts or self.updates or self.withdrawn or self.recipients)

    def extend(self, other: LogWrite) -> None:
        """Append ``other``'s writes after this one's."""
        self.inserts.extend(other.inserts)
        self.keys.update(other.keys)
        self.claims.update(other.claims)
        self.updates.extend(other.updates)
        self.withdrawn.extend(other.withdrawn)
        self.recipients.extend(other.recipients)
        self.rechecks.extend(other.rechecks)

    def recheck_phones(self) -> set[str]:
        """The numbers whose opt-outs the :attr:`rechecks` read (none: no read is needed)."""
        if len(self.rechecks) == 1:
            return self.rechecks[0].phones
        phones: set[str] = set()
        for recheck in self.rechecks:
            phones |= recheck.phones
        return phones

    def rechecked(self, scopes: Mapping[str, set[str]]) -> tuple[LogWrite, set[str]]:
        """This write as a store applies it once the opt-outs of :meth:`recheck_phones` are read
        in its transaction (``scopes``, as :meth:`Store.optout_scopes` answers): the inserts its
        rechecks refuse replaced by their refusals, the refusals' updates (of messages logged
        already) and recipient updates added; and the ids of the messages refused. Itself (not
        copied) when none is; it is never changed, so a transaction tried again applies it again
        from the start."""
        refusals = LogWrite()
        if scopes:
            for recheck in self.rechecks:
                refusals.extend(recheck.refuse(scopes))
        if not refusals.inserts and not refusals.updates:
            return self, set()
        refused = {r.message_id for r in refusals.inserts}
        inserts = [r for r in self.inserts if r.message_id not in refused]
        inserts.extend(refusals.inserts)
        refused.update(u.message_id for u in refusals.updates)
        write = LogWrite(inserts, self.keys, self.claims, [*self.updates, *refusals.updates], self.withdrawn,
                         [*self.recipients, *refusals.recipients])
        return write, refused


@dataclass
class PurgeResult:
    """What :meth:`Store.purge` deleted (with ``dry_run``: would delete), by kind of row."""

    #: messages deleted (each with its history events and report parts)
    messages: int = 0
    #: status history events of those messages
    events: int = 0
    #: per-part delivery reports of those messages (multipart messages), and those kept
    #: beside orphan reports deleted (their message never logged, or purged before they came)
    report_parts: int = 0
    #: kept delivery reports that never matched a message
    orphan_reports: int = 0
    #: inbound messages
    inbound: int = 0
    #: idempotency keys (a send repeating such a key is sent again)
    idempotency_keys: int = 0
    #: rate-limit entries of requests answered (or expired) before the cutoff
    traffic_entries: int = 0
    #: finished campaigns deleted (with their recipients and messages)
    campaigns: int = 0
    #: recipients of those campaigns
    recipients: int = 0
    #: messages logged before the cutoff and kept: not final yet (awaiting a report or
    #: in flight), or in a campaign that is kept
    kept_messages: int = 0
    #: campaigns finished before the cutoff and kept: a message of theirs is not final
    #: yet, or a runner still holds a lease or a claim
    kept_campaigns: int = 0
    #: True when nothing was deleted (the counts are what a purge would delete)
    dry_run: bool = False

    #: The fields counting deleted rows (``kept_*`` and ``dry_run`` excluded).
    DELETED = ("messages", "events", "report_parts", "orphan_reports", "inbound", "idempotency_keys",
               "traffic_entries", "campaigns", "recipients")

    @property
    def deleted(self) -> int:
        """Rows deleted (or, with ``dry_run``, that would be), every kind together."""
        return sum(getattr(self, name) for name in self.DELETED)

    def as_dict(self) -> dict[str, int | bool]:
        """The counts by name (JSON-able)."""
        return {name: getattr(self, name) for name in (*self.DELETED, "kept_messages", "kept_campaigns",
                                                         "dry_run")}


@dataclass
class LogResult:
    """What :meth:`Store.write_log` did not insert, and why."""

    #: message id -> the message its idempotency key was already bound to (not inserted)
    replays: dict[str, str] = field(default_factory=dict)
    #: messages not inserted because their recipient's claim is no longer held
    lost: set[str] = field(default_factory=set)
    #: orphan reports the write applied (their message's provider id was just logged):
    #: ``(message id, report)`` in the order applied, each once (it is no orphan after)
    adopted: list[tuple[str, DeliveryReport]] = field(default_factory=list)
    #: messages whose status an entry of ``updates`` changed (by the same rule as
    #: :meth:`Store.update_messages`): the kernel tells the status hook of those
    changed: set[str] = field(default_factory=set)
    #: messages logged refused instead of as written: a :class:`Recheck` of the write found their
    #: number opted out in its transaction (those in ``lost`` or ``replays`` were not inserted)
    refused: set[str] = field(default_factory=set)


@dataclass
class RecipientUpdate:
    """A state change for one recipient (by store id). ``None`` fields stay unchanged.

    ``if_message``: apply it only while the recipient still holds that message (its
    ``message_id``), else skip it: a verdict about one message (found, or never received,
    at the vendor) never overrides what happened to the recipient since, e.g. another runner
    put it back and sent it again. A guarded update is applied after the unguarded ones of
    the same call. ``if_sending`` (with ``if_message``): only while the recipient's outcome is
    also still unsettled, ``sending`` (claimed) or ``unknown``: a verdict that adds nothing to
    what another runner has settled since (``unknown``: a send's answer lost, a look-up that
    could not tell) never overrides it (``sent``, ``failed``, put back ``pending``).
    """

    id: int
    state: RecipientState
    reason: str | None = None
    detail: str | None = None
    message_id: str | None = None
    if_message: str | None = None
    if_sending: bool = False


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

    def as_dict(self) -> dict[str, object]:
        """The campaign as JSON values (``smsgate campaign list --json``): ``campaign_id``,
        ``name``, ``status``, ``created_at``, ``updated_at``, ``start_at`` (ISO 8601 or
        ``None``), ``provider``, ``provider_campaign_id``, ``error`` and ``kind`` (its messages'
        route kind, ``campaign create --kind``, or ``None``); not the rest of its spec (its text)."""
        kind = self.spec.get("kind")
        return {"campaign_id": self.campaign_id, "name": self.name, "status": self.status.value,
                "created_at": self.created_at.isoformat(), "updated_at": self.updated_at.isoformat(),
                "start_at": self.start_at.isoformat() if self.start_at else None, "provider": self.provider,
                "provider_campaign_id": self.provider_campaign_id, "error": self.error,
                "kind": kind if isinstance(kind, str) else None}


@dataclass
class ContactListRow:
    """A stored contact list (its contacts are read with :meth:`Store.list_contacts`)."""

    tenant: str
    list_id: str
    name: str
    created_at: datetime
    description: str = ""
    size: int = 0

    def as_dict(self) -> dict[str, object]:
        """The list as JSON values (``smsgate contacts ... --json``, ``export(format="json")``):
        ``list_id``, ``name``, ``description``, ``size`` and ``created_at`` (ISO 8601)."""
        return {"list_id": self.list_id, "name": self.name, "description": self.description, "size": self.size,
                "created_at": self.created_at.isoformat()}


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
    currency: str | None = None  #: the currency of ``cost``, as the provider gave it
    raw_status: str | None = None  #: as logged: ``opted_out`` for a message refused for an opt-out


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


#: The largest ``limit`` / ``offset`` / row id a store takes: a store's integer (SQLite's,
#: PostgreSQL's ``bigint``) holds no more.
MAX_COUNT = 2**63 - 1


def check_count(value: object, field: str, location: str | None = None) -> None:
    """Refuse a ``limit`` / ``offset`` that is not a whole number >= 0 (not a bool, not a
    string): a store would read a negative one as "nothing" or "everything"; nor one over
    :data:`MAX_COUNT`, which no store's integer holds. A :class:`~smsgate.errors.ValidationError`
    naming ``field``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValidationError(f"expected a whole number >= 0, not {value!r}", field=field, location=location)
    if value > MAX_COUNT:
        raise ValidationError(f"expected a whole number at most {MAX_COUNT}, not {value!r}", field=field,
                              location=location)


#: The paging arguments of the Store API (method -> its arguments that are counts or row ids),
#: checked with :func:`check_count` before any store's own code runs (see :class:`Store`).
PAGING_ARGUMENTS: dict[str, tuple[str, ...]] = {
    "list_messages": ("limit",),
    "in_flight": ("limit",),
    "orphan_reports": ("limit",),
    "list_inbound": ("limit", "before"),
    "list_optouts": ("limit", "offset"),
    "list_campaigns": ("limit",),
    "claim_recipients": ("limit",),
    "recover_claims": ("limit",),
    "recipients": ("after_id", "limit"),
    "list_contacts": ("after_id", "limit"),
}


def _checking_paging(method: Callable[..., Any], names: tuple[str, ...]) -> Callable[..., Any]:
    """``method`` with its arguments ``names`` checked by :func:`check_count` (``None``, where
    a method takes it, passes: "no limit", "from the newest")."""
    params = list(inspect.signature(method).parameters)
    where = f"Store.{method.__name__}"
    spots = [(name, params.index(name)) for name in names]  # (name, position counting self)

    @functools.wraps(method)
    def checked(*args: Any, **kwargs: Any) -> Any:
        for name, pos in spots:
            value = kwargs[name] if name in kwargs else args[pos] if pos < len(args) else None
            if value is not None:
                check_count(value, name, where)
        return method(*args, **kwargs)

    checked.__smsgate_paging__ = True  # type: ignore[attr-defined]
    return checked


def check_contact_fields(contacts: Sequence[Contact]) -> None:
    """Refuse (a :class:`~smsgate.errors.ValidationError` naming ``fields.<key>``) a contact whose
    field is named like a built-in column (:func:`smsgate.models.builtin_field`): what
    :meth:`Store.add_contacts` checks on every store before it writes anything."""
    for n, contact in enumerate(contacts, start=1):
        key = builtin_field(contact.fields)
        if key is not None:
            raise ValidationError(builtin_field_error(key), field=f"fields.{key}",
                                  location=f"Store.add_contacts, contact {n} ({contact.phone})")


class Store(abc.ABC):
    """Abstract store. All methods are synchronous and thread-safe.

    The paging arguments of its methods (:data:`PAGING_ARGUMENTS`: ``limit``, ``offset``,
    ``after_id``, an inbound ``before``) are checked the same way for every store, its
    subclasses' overrides included, before the store's own code runs: a whole number from 0 to
    :data:`MAX_COUNT` (2**63 - 1, a SQL ``bigint``), else a
    :class:`~smsgate.errors.ValidationError` naming the argument (``limit=2**63`` was accepted
    by the memory store, an ``OverflowError`` on SQLite and an error of psycopg on PostgreSQL).
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name, args in PAGING_ARGUMENTS.items():
            # the method as the class resolves it: its own, a mixin's (the SQL stores' common
            # code) or a base's (then already checking, unless it is Store's abstract one)
            method = next((c.__dict__[name] for c in cls.__mro__ if name in c.__dict__), None)
            if inspect.isfunction(method) and not getattr(method, "__smsgate_paging__", False) \
                    and not getattr(method, "__isabstractmethod__", False):
                setattr(cls, name, _checking_paging(method, args))

    #: Schema version this code expects (the same number for every store).
    SCHEMA_VERSION: int = 13
    #: Seconds an event loop's log writer may hold a campaign's write-ahead to gather more
    #: requests' write-aheads into its transaction (0: written at once). Worth it where a
    #: transaction costs far more than a row (a database server's CPU per commit and statement).
    write_gather: float = 0.0

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

    def location(self) -> str | None:
        """Where this store's data lives, the same for every store object opened on it (a
        SQLite file's real path; a PostgreSQL server, database and schema), never a password;
        ``None`` when only this object holds it (``memory://``, ``sqlite:///:memory:``). Tells
        whether two store objects share their data (the gateway's and a tenant source's)."""
        return None

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

    def messages_by_id(self, tenant: str, message_ids: Sequence[str]) -> dict[str, MessageRecord]:
        """The logged messages among ``message_ids`` (without history), by id."""
        found = {}
        for mid in message_ids:
            try:
                record = self.get_message(tenant, mid)
            except NotFound:
                continue
            found[mid] = record.model_copy(update={"history": []})
        return found

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
        since: datetime | None = None,
    ) -> list[MessageRecord]:
        """Newest first, without history; ``before`` is a message id for keyset paging;
        ``since``: only messages logged at or after it."""

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
        """Messages in one of ``statuses`` created in ``[created_after, created_before)``,
        oldest first, each **with** its history; with ``providers``, only messages of
        those provider instances (the status poller's candidates, see
        :mod:`smsgate.core.reconcile`); with ``exclude_providers``, only messages that
        have a provider instance, not one of those (instances that left the tenant). ``after`` is a message id for keyset paging
        (:class:`~smsgate.errors.NotFound` if it is not logged)."""
        raise NotImplementedError(f"{type(self).__name__} does not list messages in flight")

    def note_checks(self, tenant: str, message_ids: Sequence[str], *, at: datetime, source: str,
                    detail: str | None = None) -> int:
        """Append to each message's history an event repeating its current status and raw
        status (a check that changed nothing, such as a status lookup answering what the log
        already says), in one transaction; the message itself is not changed. Returns the
        number of events written (unknown ids are ignored)."""
        raise NotImplementedError(f"{type(self).__name__} does not record checks")

    @abc.abstractmethod
    def count_by_status(
        self, tenant: str, *, campaign_id: str | None = None, provider: str | None = None
    ) -> dict[Status, int]:
        """Number of messages per current status."""

    @abc.abstractmethod
    def apply_reports(
        self, tenant: str, reports: Sequence[DeliveryReport], *, keep_orphans: bool = False
    ) -> list[str | None]:
        """Ingest delivery reports in one transaction.

        Each report is matched by ``(report.provider, report.provider_message_id)``
        and applied as a :class:`MessageUpdate` (source ``"report"``). Returns the
        matched message id per report (``None`` when unmatched).

        With ``keep_orphans`` an unmatched report naming a provider message id is
        kept, in the same transaction, as an *orphan*: :meth:`write_log` applies it
        (and forgets it) when it writes a message with that provider and provider
        message id (a report that overtook its message's own write). The match and
        the keeping exclude a concurrent :meth:`write_log` of the same id, so no
        report falls between them.
        """

    def apply_reports_changes(
        self, tenant: str, reports: Sequence[DeliveryReport], *, keep_orphans: bool = False
    ) -> list[AppliedReport]:
        """:meth:`apply_reports`, saying also which reports changed their message's status
        (what ``smsgate_on_status`` is called for: a vendor retrying a callback must not
        make an application hear of one delivery twice).

        The default, for a store that cannot tell, counts every matched report as a
        change; the stores shipped with smsgate say exactly.
        """
        return [AppliedReport(mid, mid is not None)
                for mid in self.apply_reports(tenant, reports, keep_orphans=keep_orphans)]

    @abc.abstractmethod
    def orphan_reports(self, tenant: str, *, provider: str | None = None, limit: int = 100) -> list[DeliveryReport]:
        """Kept reports that matched no message yet (see :meth:`apply_reports`), oldest first."""

    @abc.abstractmethod
    def record_parts(self, tenant: str, reports: Sequence[DeliveryReport]) -> list[dict[int, Status]]:
        """Record part reports of multipart messages, in one transaction; per report,
        every part's status known so far for its ``(provider, provider_message_id)``.

        Only reports with ``part``, ``parts`` and a provider message id are recorded
        (the others get ``{}``). A part's status moves forward only (the lifecycle
        rule), so a repeated or late report of a part changes nothing.
        """

    # ------------------------------------------------------- inbound messages
    @abc.abstractmethod
    def record_inbound(
        self, tenant: str, messages: Sequence[InboundMessage]
    ) -> list[tuple[InboundMessage, bool]]:
        """Store inbound messages once per ``(tenant, provider, vendor_id)``, in one transaction.

        Returns, per message, the stored message (with its ``id`` and ``action``)
        and whether it is new (``False``: the same vendor event was stored before).
        """

    @abc.abstractmethod
    def set_inbound_action(self, tenant: str, inbound_id: int, action: str) -> None:
        """Record the keyword action taken for a stored inbound message."""

    @abc.abstractmethod
    def list_inbound(
        self, tenant: str, *, from_number: str | None = None, limit: int = 100, before: int | None = None,
        since: datetime | None = None, action: str | None = None,
    ) -> list[InboundMessage]:
        """Stored inbound messages, newest first; ``before`` is an ``id`` for keyset paging;
        ``since``: only those received at or after it (``received_at``); ``action``: only those
        whose recorded action is it."""

    # -------------------------------------------------------------- opt-outs
    @abc.abstractmethod
    def add_optouts(self, tenant: str, optouts: Sequence[OptOut], *, renew: bool = False) -> int:
        """Record opt-outs (E.164 phones, each with its scope); returns how many were new.

        An opt-out is one ``(phone, scope)``: a phone may be opted out of several
        senders, and of every sender (:data:`~smsgate.models.EVERY_SENDER`) too. One
        recorded before is kept as it is; with ``renew``, its ``created_at`` moves to the
        given one's when that is later (a stop word said again: see :meth:`remove_optout`'s
        ``not_after``).

        ``renew`` (an opt-out by stop word, dated when the word was said) also records nothing
        for a ``(phone, scope)`` whose opt-in (a start word, see :meth:`remove_optout`) was said
        after it: the person's last word stands when the start word was applied first (a poll
        listing replies newest first, a retried callback).
        """

    @abc.abstractmethod
    def remove_optout(self, tenant: str, phone: str, scope: str | None = EVERY_SENDER, *,
                      not_after: datetime | None = None) -> bool:
        """Remove the opt-out of ``phone`` from ``scope`` (``None``: from every scope it has);
        returns whether one existed. ``not_after``: only an opt-out whose ``created_at`` is
        not after it (a start word removes no opt-out newer than itself); with a ``scope``, the
        opt-in is also recorded, at ``not_after`` (the latest one kept, whether or not an opt-out
        was removed), in the same transaction, so an older stop word applied later (``add_optouts``
        with ``renew``) records nothing. Opt-ins are kept as opt-outs are (``purge`` leaves them:
        a poll lists a purged reply again); :meth:`erase_tenant` deletes them."""

    @abc.abstractmethod
    def optout_scopes(self, tenant: str, phones: Iterable[str]) -> dict[str, set[str]]:
        """The scopes each of ``phones`` opted out of (phones with none are left out;
        one query per chunk of phones). ``phones`` are keys as stored (E.164, as the kernel
        holds them): looked up exactly; :meth:`opted_out` reads a number in another form."""

    def opted_out(self, tenant: str, phones: Iterable[str], sender: str | None = None) -> set[str]:
        """The subset of ``phones`` (as given) that must not get a message from ``sender``: opted
        out of every sender, or of ``sender`` (``None``: only opt-outs from every sender count).

        Opt-outs are kept by E.164 number. Each of ``phones`` is read as the send path reads a
        number, without a region (the store knows none): E.164, or any international form
        (``+234 803-123-4567``, ``(+234) 803.123.4567``, ``002348031234567``) is looked up as its
        E.164 number, on every store. A number that needs a region (national, ``08031234567``)
        or is no number is an :class:`~smsgate.errors.InvalidPhoneNumber` naming the argument
        (``phones``; ``phone`` for :meth:`is_opted_out`), never a silent "not opted out":
        ``tenant.optouts.check()`` reads any form with the tenant's region."""
        if isinstance(phones, str):
            raise ValidationError("expected numbers, got one string: use is_opted_out() for one number",
                                  field="phones")
        keys = {phone: optout_key(phone, "phones") for phone in phones}
        found = self.optout_scopes(tenant, set(keys.values()))
        return {phone for phone, key in keys.items() if optout_applies(found.get(key, ()), sender)}

    def is_opted_out(self, tenant: str, phone: str, sender: str | None = None) -> bool:
        """Whether ``phone`` must not get this tenant's messages from ``sender``; ``phone`` is read
        as :meth:`opted_out` reads it (an :class:`~smsgate.errors.InvalidPhoneNumber` naming
        ``phone`` when it is national, or no number)."""
        key = optout_key(phone, "phone")
        return optout_applies(self.optout_scopes(tenant, [key]).get(key, ()), sender)

    @abc.abstractmethod
    def list_optouts(
        self, tenant: str, *, limit: int | None = None, offset: int = 0
    ) -> list[OptOut]:
        """Opt-outs ordered by phone, then scope."""

    @abc.abstractmethod
    def count_optouts(self, tenant: str) -> int:
        """Number of opt-outs (a phone opted out of two senders counts twice)."""

    # ------------------------------------------------------- idempotency keys
    @abc.abstractmethod
    def claim_idempotency_key(self, tenant: str, key: str, message_id: str) -> str | None:
        """Atomically bind ``key`` to ``message_id``.

        Returns ``None`` if the key was new (the caller may send), or the message
        id it was already bound to (the caller must not send again).
        """

    def bound_keys(self, tenant: str, keys: Sequence[str]) -> dict[str, str]:
        """Which of ``keys`` are bound already: key -> the message it is bound to (read only).

        The kernel asks before a request with idempotency keys waits for its rate limits,
        so that a repeated key is answered at once, taking no place in them. A store that
        cannot say answers ``{}`` (the default): the write-ahead still finds every repeat.
        """
        return {}

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

    def campaigns_to_recover(self, tenant: str) -> list[str]:
        """Ids of the campaigns of ``tenant`` whose claims a purge must resolve
        (:func:`smsgate.core.campaign.recover_expired`), newest first: those with a ``sending``
        recipient (a claim), and ``cancelled`` ones with a ``pending`` recipient (released by a
        runner after the cancellation). One query in the SQL stores; this default lists every
        campaign (a store of its own may override it)."""
        return [row.campaign_id for row in self.list_campaigns(tenant, limit=1_000_000_000)]

    def campaign_tenants(self) -> list[str]:
        """Every tenant with a campaign in the store (configured or not any more), sorted."""
        raise NotImplementedError(f"{type(self).__name__} does not list the tenants of its campaigns")

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
        if_status: Collection[CampaignStatus] | None = None,
    ) -> CampaignRow:
        """Change the given fields (``None`` = unchanged; ``spec`` replaces the whole
        spec) and ``updated_at``; returns the new row. NotFound if missing.

        ``if_status``: change them only while the campaign's status is one of these, checked
        and written at once (one statement, or under the write lock): otherwise nothing
        changes and the row is returned as stored (see
        :func:`smsgate.core.campaign.reopen`)."""

    @abc.abstractmethod
    def delete_campaign(self, tenant: str, campaign_id: str) -> bool:
        """Delete a campaign with its recipients and runners; returns whether it existed."""

    @abc.abstractmethod
    def add_recipients(
        self, tenant: str, campaign_id: str, rows: Sequence[RecipientRow],
        on_duplicate: Callable[[RecipientRow, int | None], RecipientRow] | None = None,
    ) -> list[Duplicate]:
        """Append audience rows in one transaction (ids are assigned by the store, in row order).

        A row whose ``key`` is already in the campaign (from an earlier call or an
        earlier row of this one) is a :class:`Duplicate` (returned, with the
        ``line`` of the row that holds the key): stored as ``on_duplicate(row,
        first_line)`` gives it (a row without a key), in its place, or not at all
        without ``on_duplicate``.
        """

    @abc.abstractmethod
    def delete_recipients(self, tenant: str, campaign_id: str) -> int:
        """Remove every recipient of a campaign (to prepare it again); returns how many."""

    @abc.abstractmethod
    def claim_recipients(
        self, tenant: str, campaign_id: str, limit: int, new_message_id: Callable[[], str],
        *, owner: str | None = None,
    ) -> list[RecipientRow]:
        """Atomically move up to ``limit`` ``pending`` recipients (lowest id first) to
        ``sending``, held by ``owner``, giving each ``message_id = new_message_id()``;
        returns them.

        Two runners claiming concurrently never get the same recipient.
        """

    @abc.abstractmethod
    def update_recipients(
        self, tenant: str, campaign_id: str, updates: Sequence[RecipientUpdate]
    ) -> int:
        """Apply recipient state changes in one transaction (``pending`` clears owner and message id).

        Returns how many of the guarded updates (``if_message`` given) applied: those whose
        recipient still held that message (and, with ``if_sending``, was still ``sending`` or
        ``unknown``). Unguarded updates are not counted (they apply to every recipient of the
        campaign), so a caller that guards every update learns how many of its reads still held.
        """

    # --------------------------------------------------------- campaign runners
    @abc.abstractmethod
    def start_runner(self, tenant: str, campaign_id: str, owner: str, lease_until: datetime) -> None:
        """Register runner ``owner`` of a campaign, alive until ``lease_until`` unless renewed."""

    @abc.abstractmethod
    def renew_runner(self, tenant: str, campaign_id: str, owner: str, lease_until: datetime) -> bool:
        """Extend ``owner``'s lease; False if it has no lease any more (it must stop sending): it
        stopped, or another runner took claims of it over (:meth:`recover_claims`)."""

    @abc.abstractmethod
    def stop_runner(self, tenant: str, campaign_id: str, owner: str) -> None:
        """Remove ``owner``'s lease (its remaining claims can be recovered at once)."""

    @abc.abstractmethod
    def runner_leases(self, tenant: str, campaign_id: str) -> dict[str, datetime]:
        """The registered runners of a campaign and when their leases end."""

    # ----------------------------------------------------------- send leases
    def put_send_lease(self, tenant: str, owner: str, lease_until: datetime, oldest: datetime) -> None:
        """Register or renew process ``owner``'s lease on the ``queued`` messages it logged ahead
        for ``tenant``: alive until ``lease_until``, none of its messages still waiting for an
        answer was logged before ``oldest`` (see :mod:`smsgate.core.recover`)."""
        raise NotImplementedError(f"{type(self).__name__} does not keep send leases")

    def end_send_lease(self, tenant: str, owner: str) -> None:
        """Remove ``owner``'s send lease (it sends nothing more)."""
        raise NotImplementedError(f"{type(self).__name__} does not keep send leases")

    def send_leases(self, tenant: str) -> dict[str, tuple[datetime, datetime]]:
        """Every send lease of ``tenant``: owner -> (``lease_until``, ``oldest``)."""
        raise NotImplementedError(f"{type(self).__name__} does not keep send leases")

    @abc.abstractmethod
    def recover_claims(
        self, tenant: str, campaign_id: str, owner: str, now: datetime, limit: int,
    ) -> list[RecipientRow]:
        """Atomically take over up to ``limit`` ``sending`` recipients (lowest id first)
        whose runner is gone (no lease ending after ``now``, or no owner at all), for
        ``owner``; returns them. Claims of live runners are never touched.

        A runner whose claims are taken loses its lease row in the same transaction, so that
        :meth:`renew_runner` tells it, should it only have been paused: it must send none of
        its claims any more (the runner's fence, :class:`smsgate.campaigns.handles.RunnerBeat`).
        A renewal that commits while the takeover runs either keeps the row alive (its claims
        are not taken) or finds it gone.
        """

    # -------------------------------------------------------------- dispatch log
    @abc.abstractmethod
    def write_log(self, tenant: str, write: LogWrite) -> LogResult:
        """Apply one :class:`LogWrite` in one transaction (see its order of application).

        Its ``rechecks`` first: the opt-outs of their numbers read inside the transaction
        (as :meth:`optout_scopes` reads them) and the write applied as
        :meth:`LogWrite.rechecked` gives it, its refused messages in ``refused``.
        A message whose idempotency key is already bound is not inserted (it is in
        ``replays`` with the message the key belongs to); a campaign message whose
        claim no longer holds (its recipient is not ``sending`` for that owner) is
        not inserted either (it is in ``lost``): the caller must not send those.
        """

    # ------------------------------------------------------------------ traffic
    @abc.abstractmethod
    def traffic(self, tenant: str, horizons: Mapping[str, float],
                fn: Callable[[dict[str, KeyState], float], T]) -> T:
        """Run ``fn`` over ``tenant``'s rate-limit state of each key of ``horizons``, atomically.

        The states are loaded (requests answered more than the key's horizon ago
        left out) and each brought back to the clock if it stepped back
        (:func:`smsgate.traffic.limits.steady`), ``fn(states, now)`` is called with the
        store's clock in seconds (PostgreSQL's, so every host agrees; the one clock the
        states are dated by), and what it changed is written back (``moved`` entries too),
        all in one transaction that excludes every other ``traffic`` call on those
        keys. See :mod:`smsgate.traffic`.
        """

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

    # ---------------------------------------------------------------- tenants
    @abc.abstractmethod
    def tenants_version(self) -> int:
        """A number that changes whenever any stored tenant is added, changed or removed
        (one cheap read: callers poll it to know when to reload)."""

    @abc.abstractmethod
    def get_tenant_row(self, name: str) -> TenantRow | None:
        """The stored tenant ``name``, or ``None``."""

    @abc.abstractmethod
    def list_tenant_rows(self) -> list[TenantRow]:
        """Every stored tenant, by name."""

    @abc.abstractmethod
    def put_tenant_row(self, name: str, config: str, secrets: str, *, create: bool | None = None,
                       expected_version: int | None = None) -> int:
        """Write a tenant in one transaction; its new ``version``.

        ``create=True``: :class:`ValueError` if it exists; ``create=False``:
        :class:`~smsgate.errors.NotFound` if it does not; ``None``: either.
        ``expected_version``: write only if the stored row still has this version (a
        read-modify-write such as a credential rotation), else :class:`TenantChanged`
        and nothing is written.
        """

    @abc.abstractmethod
    def delete_tenant_row(self, name: str) -> bool:
        """Delete a stored tenant; whether it existed."""

    @abc.abstractmethod
    def tenant_data(self, tenant: str) -> list[str]:
        """The kinds of data the store holds under the tenant name ``tenant`` (of
        :data:`TENANT_DATA`, in that order; empty: none). One indexed probe per kind."""

    @abc.abstractmethod
    def erase_tenant(self, tenant: str) -> int:
        """Delete everything stored under the tenant name ``tenant``, in one transaction:
        messages with their history, campaigns with their recipients, contact lists,
        opt-outs and opt-ins, idempotency keys, inbound messages, kept reports, rate-limit entries
        (not a stored tenant's configuration: :meth:`delete_tenant_row`). Returns the
        rows deleted. Other tenants' data is untouched.

        :class:`~smsgate.errors.ConfigError` (:func:`erase_refused`), deleting nothing, when
        ``tenant`` is a stored tenant when the transaction runs (its data is what it sends
        with: one stored meanwhile, e.g. adopting this data, is never erased)."""

    # ----------------------------------------------------------- contact lists
    @abc.abstractmethod
    def create_contact_list(self, row: ContactListRow) -> None:
        """Insert an empty list; a :class:`~smsgate.errors.ValidationError` (a :class:`ValueError`,
        field ``list_id``) if ``(tenant, list_id)`` exists."""

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

    # -------------------------------------------------------------- retention
    def purge(self, tenant: str | None, *, before: datetime, dry_run: bool = False,
              batch_size: int = 1000) -> PurgeResult:
        """Delete the data of ``tenant`` (``None``: of every tenant in the store) older than ``before``.

        Deleted: messages logged before ``before`` in a final status (see
        :data:`smsgate.lifecycle.FINAL`), with their history events and report parts;
        orphan reports received (with the report parts of their message ids that no
        message has and no newer orphan report keeps), inbound messages received,
        idempotency keys bound and rate-limit entries ended before it; finished
        campaigns (:attr:`~smsgate.models.CampaignStatus.is_finished`: ``completed``,
        ``cancelled`` or ``failed``, last changed before it), with *all* their
        recipients and messages, once every one of those messages is final and no
        runner holds a live lease or a claim on it, checked again in every batch (a
        campaign goes whole or not at all: its report never shows part of it).
        ``interrupted`` and ``paused`` campaigns are not finished: kept.

        Never deleted: a message not final (awaiting a report, in flight or
        ``unknown``), a message of a campaign that is kept (not finished, finished
        after ``before``, or holding a non-final message), opt-outs, contact lists,
        stored tenants. Those kept are counted in ``kept_messages`` and
        ``kept_campaigns``.

        Works in batches of at most ``batch_size`` messages (or rows), each in its
        own short transaction: safe to run beside senders, report ingestion and
        campaign runners, and resumable (an interrupted purge leaves consistent data;
        run it again). With ``dry_run`` nothing is deleted: the counts are what would be.
        """
        raise NotImplementedError(f"{type(self).__name__} does not purge")
