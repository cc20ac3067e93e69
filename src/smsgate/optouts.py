"""A tenant's opt-out registry: ``tenant.optouts``.

::

    acme.optouts.add("08031234567", reason="replied STOP")   # never texted again by this tenant
    acme.optouts.add("08031234567", scope="AcmeShop")        # never texted again from sender AcmeShop
    acme.optouts.check("+2348031234567")                      # True: opted out of every sender
    acme.optouts.check("+2348031234567", sender="AcmeBank")   # True if opted out of every sender or AcmeBank
    acme.optouts.remove("08031234567", scope="AcmeShop")     # back in for AcmeShop only
    acme.optouts.scopes("08031234567")                        # {"*"}: what it opted out of
    acme.optouts.sync()          # pull the opt-outs recorded at the vendors that keep them
    acme.optouts.push("08031234567")   # record locally and at every vendor that accepts opt-outs
    report = acme.optouts.add_many(CsvAudience("stops.csv"), reason="old CRM")   # many at once
    print(report.added, report.already, report.invalid)   # invalid rows with file and line

An opt-out has a **scope**: every sender of the tenant (``"*"``, the default, and
what ``scope=None`` means) or one sender ID / short code / brand, so a STOP to one
brand does not silence another brand of the same tenant (see docs/inbound.md).
Scopes are stored as :func:`smsgate.models.optout_scope` gives them (numbers as
digits, names case-folded). Numbers are stored in E.164 (normalised with the
tenant's region). Every send, bulk send and campaign checks the registry before
anything is sent: a message is refused when its number opted out of every sender
or of the sender ID it would go out with. Under an :class:`~smsgate.AsyncGateway`
the same methods are coroutines (:class:`AsyncOptOuts`), and the store is never
called on the event loop.
"""

from __future__ import annotations

import builtins
import logging
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from smsgate.core.policy import TenantPolicy, check_stored_text
from smsgate.core.steps import Call, Plan, Query
from smsgate.errors import InvalidPhoneNumber, Unsupported, ValidationError, check_bool
from smsgate.filters import check_count
from smsgate.models import EVERY_SENDER, Contact, OptOut, optout_scope, utcnow

if TYPE_CHECKING:
    from smsgate.campaigns.audiences import Audience
    from smsgate.campaigns.model import RowError
    from smsgate.gateway import AsyncTenant, Tenant
    from smsgate.store.base import Store

__all__ = ["BATCH", "EVERY_SENDER", "AsyncOptOuts", "OptOutImport", "OptOuts", "import_optouts", "scope_key"]

#: How many numbers :meth:`OptOuts.add_many` writes in one store transaction.
BATCH = 1000
#: How many invalid rows an :class:`OptOutImport` keeps (all are counted).
MAX_INVALID = 1000

log = logging.getLogger("smsgate")


def scope_key(scope: str | None, policy: TenantPolicy | None = None) -> str:
    """The stored form of an opt-out scope (:func:`smsgate.models.optout_scope`; with the tenant's
    ``policy``, a number read as :meth:`~smsgate.core.policy.TenantPolicy.scope_of` reads it: in
    any form, the sender it is), a bad one raising :class:`~smsgate.errors.ValidationError` naming it."""
    if scope is not None and not isinstance(scope, str):
        raise ValidationError(f"a sender ID (str) or '*', not {type(scope).__name__}: write {str(scope)!r}",
                              field="scope")
    if scope is not None and not scope.strip():  # an unset variable must not widen an opt-out
        raise ValidationError("is blank: give a sender ID, or '*' (or no scope) for every sender", field="scope")
    try:
        return optout_scope(scope) if policy is None or scope is None else policy.scope_of(scope)
    except ValueError as exc:
        raise ValidationError(str(exc), field="scope") from None


# ---------------------------------------------------------------------------- plans
def _check_reason_source(reason: str | None, source: str) -> None:
    """A bad ``reason`` or ``source`` of an opt-out: a :class:`ValidationError` naming it."""
    if reason is not None and not isinstance(reason, str):
        raise ValidationError(f"a text or None, not {type(reason).__name__}", field="reason")
    check_stored_text("reason", reason)
    check_stored_text("source", source)
    if not isinstance(source, str) or not source.strip():
        raise ValidationError(f"a non-blank text such as 'api', not {source!r}", field="source")


def add_plan(policy: TenantPolicy, phone: str, reason: str | None, source: str,
             scope: str | None = EVERY_SENDER) -> Plan[bool]:
    """Opt ``phone`` out of ``scope`` (every sender, or one sender ID); True if it was new."""
    _check_reason_source(reason, source)
    optout = OptOut(phone=policy.normalize(phone), reason=reason, source=source, scope=scope_key(scope, policy))
    added: int = yield Query("add_optouts", policy.name, [optout])
    return added == 1


def remove_plan(policy: TenantPolicy, phone: str, scope: str | None = EVERY_SENDER,
                every_scope: bool = False) -> Plan[bool]:
    """Opt ``phone`` back in to ``scope`` (or to every scope it opted out of); True if it was opted out."""
    check_bool("every_scope", every_scope)  # every_scope="no" removed every scope
    key = scope_key(scope, policy)  # a blank or bad scope is refused as such, with or without every_scope
    if every_scope and key != EVERY_SENDER:
        # one sender's scope and every scope: which was meant? every scope would remove more than asked
        raise ValidationError(f"every_scope=True removes every opt-out of the number, and scope={scope!r} "
                              "only that sender's: give one of them", field="every_scope")
    e164 = policy.normalize(phone)
    if every_scope:
        every: bool = yield Query("remove_optout", policy.name, e164, None)
        return every
    removed = False
    for stored in (yield from policy.scopes_named(e164, key)):  # the sender's number in any form it was kept in
        removed = (yield Query("remove_optout", policy.name, e164, stored)) or removed
    return removed


def check_plan(policy: TenantPolicy, phone: str, sender: str | None = None) -> Plan[bool]:
    """True if ``phone`` must not get a message from ``sender`` (opted out of every sender, or of it)."""
    if sender is not None:
        if not isinstance(sender, str):
            raise ValidationError(f"a sender ID (str), not {type(sender).__name__}: write {str(sender)!r}",
                                  field="sender")
        if not sender.strip():  # as send() refuses it: a blank sender asks about no sender at all
            raise ValidationError("is blank: give a sender ID, or leave it out to ask about every sender",
                                  field="sender")
        sender = scope_key(sender, policy)  # a bad sender ID is an error, not a "no"
    e164 = policy.normalize(phone)
    found: dict[str, set[str]] = yield Query("optout_scopes", policy.name, [e164])
    return policy.optout_holds(found.get(e164, set()), sender)


def scopes_plan(policy: TenantPolicy, phone: str) -> Plan[set[str]]:
    """The scopes ``phone`` opted out of (``"*"``: every sender); empty if none."""
    e164 = policy.normalize(phone)
    found: dict[str, set[str]] = yield Query("optout_scopes", policy.name, [e164])
    return set(found.get(e164, ()))


def list_plan(policy: TenantPolicy, limit: int | None, offset: int) -> Plan[list[OptOut]]:
    """Opt-outs ordered by phone, then scope."""
    if limit is not None:
        check_count(limit, "limit")
    check_count(offset, "offset")
    found: list[OptOut] = yield Query("list_optouts", policy.name, limit=limit, offset=offset)
    return found


def count_plan(policy: TenantPolicy) -> Plan[int]:
    """Number of opt-outs (one per number and scope)."""
    n: int = yield Query("count_optouts", policy.name)
    return n


def sync_plan(policy: TenantPolicy, provider: str | None) -> Plan[int]:
    """Pull opt-outs from the vendor(s) that keep them; returns how many were new."""
    names = [provider] if provider else list(policy.config.providers)
    targets = [n for n in names if policy.provider(n).capabilities.optout_sync]
    if provider and not targets:
        raise Unsupported(provider, "opt-out sync")
    added = 0
    for name in targets:
        optouts: list[OptOut] = yield Call(name, policy.provider(name).list_optouts())
        clean = _normalised(policy, name, optouts)
        n: int = yield Query("add_optouts", policy.name, clean)
        added += n
    return added


def push_plan(policy: TenantPolicy, phone: str, reason: str | None, provider: str | None) -> Plan[None]:
    """Record an opt-out from every sender locally and at every provider that accepts opt-outs
    (``provider``: at that one, :class:`~smsgate.errors.Unsupported` if it keeps none, raised
    before anything is recorded)."""
    check_stored_text("reason", reason)
    e164 = policy.normalize(phone)
    if provider and not policy.provider(provider).capabilities.optout_sync:
        raise Unsupported(provider, "opt-out push", "the vendor keeps no opt-out list; optouts.add() "
                          "records it here, where every send checks it")
    yield Query("add_optouts", policy.name, [OptOut(phone=e164, reason=reason, source="api")])
    names = [provider] if provider else list(policy.config.providers)
    for name in names:
        prov = policy.provider(name)
        if not prov.capabilities.optout_sync:
            continue
        try:
            yield Call(name, prov.add_optout(e164, reason))
        except Unsupported:
            if provider:  # asked for by name: say so (the local opt-out stays)
                raise
            continue


def _normalised(policy: TenantPolicy, instance: str, optouts: Sequence[OptOut]) -> list[OptOut]:
    """Opt-outs reported by a provider, normalised (invalid numbers skipped)."""
    clean = []
    for o in optouts:
        try:
            phone = policy.normalize(o.phone)
        except ValidationError:
            log.warning("ignoring an invalid opt-out number from %s", instance)
            continue
        clean.append(o.model_copy(update={"phone": phone, "source": f"provider:{instance}"}))
    return clean


# ---------------------------------------------------------------------------- bulk import
@dataclass
class OptOutImport:
    """What :meth:`OptOuts.add_many` did.

    ``rows``: rows read; ``added``: opt-outs recorded now; ``already``: numbers that were
    already opted out of that scope before (or meanwhile, by another process); ``repeated``:
    rows whose number an earlier row of the same import had (``08031234567`` after
    ``+2348031234567`` too), counted once in ``added`` or ``already``;
    ``invalid``: the rows not recorded, each with where (``stops.csv, line 7`` or
    ``contact 3``) and why (the first :data:`MAX_INVALID`; ``invalid_count`` counts them all).
    """

    rows: int = 0
    added: int = 0
    already: int = 0
    repeated: int = 0
    invalid_count: int = 0
    invalid: list[RowError] = field(default_factory=list)


PhoneRows = Iterable[str | Contact | Mapping[str, Any]]


def import_optouts(store: Store, policy: TenantPolicy, phones: Audience | PhoneRows, *,
                   scope: str | None = EVERY_SENDER, reason: str | None = None, source: str = "import",
                   batch_size: int = BATCH) -> OptOutImport:
    """Opt many numbers out of ``scope``, ``batch_size`` at a time (one store transaction
    each, through ``Store.add_optouts``); see :meth:`OptOuts.add_many`."""
    from smsgate.campaigns.audiences import Audience, ContactsAudience, check_contacts
    from smsgate.campaigns.model import RowError

    _check_reason_source(reason, source)
    key = scope_key(scope, policy)
    check_contacts(phones, "phones")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValidationError(f"a whole number >= 1, not {batch_size!r}", field="batch_size")
    audience = phones if isinstance(phones, Audience) else ContactsAudience(phones, "phones")
    report = OptOutImport()
    # the numbers of the batch being read, each once (a number repeated within it is counted
    # at once); the batches before are in ``seen``, on disk
    batch: dict[str, None] = {}
    seen = _ImportedNumbers()

    def invalid(seq: int, location: str, phone: str, detail: str) -> None:
        report.invalid_count += 1
        if len(report.invalid) < MAX_INVALID:
            report.invalid.append(RowError(seq=seq, location=location, phone=phone, reason="invalid",
                                           detail=detail))

    def flush(last: bool) -> None:
        # a number an earlier batch of this import had is a repeat: the store would find it
        # opted out (by this import) and it would be counted as "already"
        before = seen.known(batch)
        report.repeated += len(before)
        fresh = [p for p in batch if p not in before]
        batch.clear()
        found = store.optout_scopes(policy.name, fresh)
        # opted out of that scope already: under its key, or its number in another form (same_scope)
        new = [p for p in fresh if not any(policy.same_scope(s, key) for s in found.get(p, ()))]
        now = utcnow()
        added = store.add_optouts(policy.name, [OptOut(phone=p, reason=reason, source=source, scope=key,
                                                       created_at=now) for p in new])
        report.added += added
        report.already += len(fresh) - added  # known before, or added meanwhile by another process
        if not last:  # the last batch's numbers are never asked about again
            seen.add(fresh)

    try:
        for row in audience.rows():
            report.rows += 1
            if row.error:
                invalid(row.seq, row.location, row.phone, row.error)
                continue
            try:
                phone = policy.normalize(row.phone)
            except InvalidPhoneNumber as exc:
                invalid(row.seq, row.location, row.phone, exc.reason)
                continue
            if phone in batch:
                report.repeated += 1
                continue
            batch[phone] = None
            if len(batch) >= batch_size:
                flush(last=False)
        if batch:
            flush(last=True)
    finally:
        seen.close()
    return report


class _ImportedNumbers:
    """The distinct numbers of an opt-out import's batches written so far, to tell a number
    repeated in a later batch (:attr:`OptOutImport.repeated`) from one opted out before.

    Kept on disk, in a private temporary SQLite database (SQLite deletes it when it is
    closed), each number as an integer key (its E.164 digits): the memory an import takes
    stays the same whatever its size (a set of 10 million numbers took ~1 GB). An import of
    one batch never creates it.
    """

    #: Numbers asked about in one statement (under SQLite's oldest limit of 999 parameters).
    CHUNK = 500
    #: The database's page cache, in KiB: the most memory it takes.
    CACHE_KIB = 16_384

    def __init__(self) -> None:
        self._db: sqlite3.Connection | None = None

    def known(self, numbers: Iterable[str]) -> builtins.set[str]:
        """Those of ``numbers`` (E.164) added before."""
        if self._db is None:
            return builtins.set()
        keys = {int(p[1:]): p for p in numbers}
        found: builtins.set[str] = builtins.set()
        ordered = list(keys)
        for i in range(0, len(ordered), self.CHUNK):
            chunk = ordered[i:i + self.CHUNK]
            rows = self._db.execute(f"SELECT n FROM seen WHERE n IN ({','.join('?' * len(chunk))})", chunk)
            found.update(keys[n] for (n,) in rows)
        return found

    def add(self, numbers: Sequence[str]) -> None:
        """Remember ``numbers`` (E.164, none added before)."""
        if self._db is None:
            # "": a temporary database on disk; no journal, no syncs: it is thrown away at the end
            self._db = sqlite3.connect("", isolation_level=None)
            self._db.execute("PRAGMA journal_mode = OFF")
            self._db.execute("PRAGMA synchronous = OFF")
            # KiB: pages beyond it are on disk (read back from the OS's file cache); 16 MiB holds
            # the numbers of a 1.5-million-row import (4 MiB made a 1-million-row import 10% slower)
            self._db.execute(f"PRAGMA cache_size = -{self.CACHE_KIB}")
            self._db.execute("CREATE TABLE seen (n INTEGER PRIMARY KEY)")
        with self._db:  # one transaction
            self._db.execute("BEGIN")
            self._db.executemany("INSERT INTO seen (n) VALUES (?)", ((int(p[1:]),) for p in numbers))

    def close(self) -> None:
        """Delete the numbers (SQLite removes the file)."""
        if self._db is not None:
            self._db.close()
            self._db = None


# ---------------------------------------------------------------------------- handles
class OptOuts:
    """A tenant's opt-out registry (sync gateway)."""

    def __init__(self, tenant: Tenant) -> None:
        self._tenant = tenant

    @property
    def _policy(self) -> TenantPolicy:
        # asked per call, as the tenant handle does: a registry kept across a rotation syncs with
        # the new credentials, one kept across the tenant's removal is refused (UnknownTenant)
        return self._tenant._policy

    def add(self, phone: str, reason: str | None = None, source: str = "api", *,
            scope: str | None = EVERY_SENDER) -> bool:
        """Opt ``phone`` out of this tenant's messages from ``scope``: every sender (``"*"``
        or ``None``, the default) or one sender ID / brand; True if it was new."""
        return self._tenant._drive(add_plan(self._policy, phone, reason, source, scope))

    def add_many(self, phones: Audience | PhoneRows, *, scope: str | None = EVERY_SENDER,
                 reason: str | None = None, source: str = "import", batch_size: int = BATCH) -> OptOutImport:
        """Opt many numbers out of ``scope`` at once: a :class:`~smsgate.campaigns.CsvAudience`
        (its ``phone`` column; other columns are ignored) or any iterable of numbers, contacts
        or mappings with a ``"phone"``.

        Returns an :class:`OptOutImport`: how many were added, how many were already opted out,
        how many rows repeated a number of an earlier row, and the invalid rows (not a number of the tenant's region, an empty cell, a row with the
        wrong number of columns) with where they are; the valid rows are recorded all the same.
        Numbers are written ``batch_size`` at a time, one store transaction a batch: if the
        input cannot be read part-way (a CSV file's error names the file and line), the batches
        before stay recorded, and importing the fixed file again adds only the rest. The numbers
        of the batches written are kept on disk (a temporary SQLite database, removed at the
        end), so the memory an import takes does not grow with its input. A bad
        ``scope``, ``reason`` or ``source``, or one number given as a string, is a
        :class:`~smsgate.errors.ValidationError` naming it, before anything is recorded.
        """
        return import_optouts(self._tenant._core.store, self._policy, phones, scope=scope, reason=reason,
                              source=source, batch_size=batch_size)

    def remove(self, phone: str, *, scope: str | None = EVERY_SENDER, every_scope: bool = False) -> bool:
        """Opt ``phone`` back in to ``scope`` (the opt-out from every sender by default; with
        ``every_scope``, every opt-out of the number); True if it was opted out."""
        return self._tenant._drive(remove_plan(self._policy, phone, scope, every_scope))

    def check(self, phone: str, sender: str | None = None) -> bool:
        """True if ``phone`` must not get a message from ``sender``: it opted out of every
        sender, or of ``sender`` (``None``: only an opt-out from every sender counts)."""
        return self._tenant._drive(check_plan(self._policy, phone, sender))

    def scopes(self, phone: str) -> set[str]:
        """What ``phone`` opted out of: ``"*"`` (every sender) and / or sender IDs, as stored
        (case-folded); empty if it is not opted out at all."""
        return self._tenant._drive(scopes_plan(self._policy, phone))

    def list(self, limit: int | None = None, offset: int = 0) -> builtins.list[OptOut]:
        """Opt-outs (with their ``scope``), ordered by phone, then scope."""
        return self._tenant._drive(list_plan(self._policy, limit, offset))

    def count(self) -> int:
        """Number of opt-outs (a number opted out of two senders counts twice)."""
        return self._tenant._drive(count_plan(self._policy))

    def sync(self, provider: str | None = None) -> int:
        """Pull opt-outs recorded at the vendor(s) into the registry; returns how many were new."""
        return self._tenant._drive(sync_plan(self._policy, provider))

    def push(self, phone: str, reason: str | None = None, provider: str | None = None) -> None:
        """Record an opt-out locally and at every provider that accepts opt-outs; with
        ``provider``, at that one (:class:`~smsgate.errors.Unsupported` if it keeps none)."""
        self._tenant._drive(push_plan(self._policy, phone, reason, provider))


class AsyncOptOuts:
    """A tenant's opt-out registry (async gateway): :class:`OptOuts` with coroutines."""

    def __init__(self, tenant: AsyncTenant) -> None:
        # the tenant's policy is asked at each call (a tenant source's tenant: loaded off the loop)
        self._tenant = tenant

    async def add(self, phone: str, reason: str | None = None, source: str = "api", *,
                  scope: str | None = EVERY_SENDER) -> bool:
        """Opt ``phone`` out of this tenant's messages from ``scope``: every sender (``"*"``
        or ``None``, the default) or one sender ID / brand; True if it was new."""
        return await self._tenant._drive(add_plan(await self._tenant._ready(), phone, reason, source, scope))

    async def add_many(self, phones: Audience | PhoneRows, *, scope: str | None = EVERY_SENDER,
                       reason: str | None = None, source: str = "import", batch_size: int = BATCH) -> OptOutImport:
        """See :meth:`OptOuts.add_many` (the file and the store are read in the gateway's worker
        threads, never on the event loop)."""
        policy = await self._tenant._ready()
        report: OptOutImport = await self._tenant._in_thread(
            lambda: import_optouts(self._tenant._core.store, policy, phones, scope=scope, reason=reason,
                                   source=source, batch_size=batch_size))
        return report

    async def remove(self, phone: str, *, scope: str | None = EVERY_SENDER, every_scope: bool = False) -> bool:
        """Opt ``phone`` back in to ``scope`` (the opt-out from every sender by default; with
        ``every_scope``, every opt-out of the number); True if it was opted out."""
        return await self._tenant._drive(remove_plan(await self._tenant._ready(), phone, scope, every_scope))

    async def check(self, phone: str, sender: str | None = None) -> bool:
        """True if ``phone`` must not get a message from ``sender``: it opted out of every
        sender, or of ``sender`` (``None``: only an opt-out from every sender counts)."""
        return await self._tenant._drive(check_plan(await self._tenant._ready(), phone, sender))

    async def scopes(self, phone: str) -> set[str]:
        """What ``phone`` opted out of: ``"*"`` (every sender) and / or sender IDs, as stored
        (case-folded); empty if it is not opted out at all."""
        return await self._tenant._drive(scopes_plan(await self._tenant._ready(), phone))

    async def list(self, limit: int | None = None, offset: int = 0) -> builtins.list[OptOut]:
        """Opt-outs (with their ``scope``), ordered by phone, then scope."""
        return await self._tenant._drive(list_plan(await self._tenant._ready(), limit, offset))

    async def count(self) -> int:
        """Number of opt-outs (a number opted out of two senders counts twice)."""
        return await self._tenant._drive(count_plan(await self._tenant._ready()))

    async def sync(self, provider: str | None = None) -> int:
        """Pull opt-outs recorded at the vendor(s) into the registry; returns how many were new."""
        return await self._tenant._drive(sync_plan(await self._tenant._ready(), provider))

    async def push(self, phone: str, reason: str | None = None, provider: str | None = None) -> None:
        """Record an opt-out locally and at every provider that accepts opt-outs; with
        ``provider``, at that one (:class:`~smsgate.errors.Unsupported` if it keeps none)."""
        await self._tenant._drive(push_plan(await self._tenant._ready(), phone, reason, provider))
