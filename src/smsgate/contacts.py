"""Stored contact lists: ``tenant.contact_lists``.

::

    lists = acme.contact_lists
    report = lists.create("VIP", CsvAudience("vip.csv"))     # or any iterable of contacts
    print(report.added, report.errors)                      # invalid rows with their line numbers
    camp = acme.campaigns.create("VIP sale", text="Hi {name}", audience=lists.audience(report.contact_list.list_id))
    lists.export(report.contact_list.list_id, "vip-export.csv")   # phone, name and every field

Numbers are stored in E.164 (normalised with the tenant's region); a phone is
unique within a list (adding it again updates its name and fields). A number given
twice in one import is stored from its first row; the later rows are reported as
``duplicates`` (where, and where the number was first). Lists are per tenant like
everything else in the store.
"""

from __future__ import annotations

import builtins
import contextlib
import csv
import json
import os
import stat
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

from smsgate._stop import Event, Work, check, run_stoppable, stoppable
from smsgate.campaigns.audiences import (
    Audience,
    AudienceRow,
    ContactsAudience,
    check_contacts,
    spreadsheet_quote,
)
from smsgate.campaigns.model import RowError
from smsgate.core.policy import MAX_NAME, TenantPolicy, check_id, check_label, check_stored_text, unstorable
from smsgate.errors import InvalidPhoneNumber, ValidationError
from smsgate.ids import new_id
from smsgate.models import UNSTORABLE, Contact, builtin_field, builtin_field_error, utcnow
from smsgate.store.base import ContactListRow, Store

__all__ = ["MAX_ROW_ERRORS", "AsyncContactLists", "ContactLists", "ExportFormat", "ImportReport", "StoredListAudience"]

#: What :meth:`ContactLists.export` writes: CSV (reads back with ``CsvAudience``) or JSON.
ExportFormat = Literal["csv", "json"]

CHUNK = 5000

#: Longest list id (a key), in characters (a list's name: :data:`smsgate.core.policy.MAX_NAME`).
MAX_LIST_ID = 64

_CREATE = "contact_lists.create"


def _check_text(value: object, field: str, longest: int, blank: str) -> str:
    """:func:`~smsgate.core.policy.check_label` in ``contact_lists.create``."""
    return check_label(field, value, longest, blank, _CREATE)


#: How many invalid rows, and how many duplicate rows, an :class:`ImportReport` keeps (all are counted).
MAX_ROW_ERRORS = 1000


#: What a blank ``list_id`` is told to give instead (its ValidationError, not NotFound).
LIST_ID = "the list's id (lst_..., as contact_lists.create() returned it in ImportReport.list_id)"


@dataclass
class ImportReport:
    """What adding contacts to a list did: ``rows`` read, of which ``added`` (numbers new to the
    list), ``updated`` (numbers the list had before this import: their name and fields are
    replaced), ``duplicate_count`` (rows whose number an earlier row of this import gave: not
    stored, the earlier row is kept) and ``invalid_count`` (invalid rows, not stored).
    ``rows == added + updated + duplicate_count + invalid_count``.

    ``duplicates`` and ``errors`` are the first :data:`MAX_ROW_ERRORS` of each, with where and
    why (reason ``duplicate``, the detail naming where the number was first; reason
    ``invalid``): an upload of a million junk lines keeps a report of a few hundred KB."""

    contact_list: ContactListRow
    rows: int = 0
    added: int = 0
    updated: int = 0
    errors: list[RowError] = field(default_factory=list)
    duplicates: list[RowError] = field(default_factory=list)
    invalid_count: int = 0
    duplicate_count: int = 0

    def invalid(self, row: RowError) -> None:
        """Count an invalid row, kept among the first :data:`MAX_ROW_ERRORS`."""
        self.invalid_count += 1
        if len(self.errors) < MAX_ROW_ERRORS:
            self.errors.append(row)

    def duplicate(self, row: RowError) -> None:
        """Count a duplicate row, kept among the first :data:`MAX_ROW_ERRORS`."""
        self.duplicate_count += 1
        if len(self.duplicates) < MAX_ROW_ERRORS:
            self.duplicates.append(row)


class StoredListAudience(Audience):
    """A stored contact list as a campaign audience (streamed page by page)."""

    tenant: str  # the list's tenant: only its campaigns take the audience

    def __init__(self, store: Store, tenant: str, list_id: str) -> None:
        self._store = store
        self.tenant = tenant
        self.list_id = list_id
        row = store.get_contact_list(tenant, list_id)  # NotFound early, not mid-campaign
        self.description = f"contact list {row.name!r} ({list_id})"

    def locate(self, line: int) -> str:
        """``list <id>, contact N``."""
        return f"list {self.list_id}, contact {line}"

    variables_are = "fields"

    def variables_for(self, names: set[str]) -> set[str] | None:
        """The fields (and ``name``) the list's contacts have: read until each of ``names`` is
        found (one short page for a template the list fills), the whole list otherwise, so that a
        placeholder none of its contacts has is refused as a CSV file's missing column is;
        ``None`` for an empty list."""
        seen: set[str] = set()
        after, limit, empty = 0, 100, True
        while not names <= seen:
            page = self._store.list_contacts(self.tenant, self.list_id, after_id=after, limit=limit)
            if not page:
                break
            empty = False
            for _, contact in page:
                seen.update(contact.fields)
                if contact.name is not None:
                    seen.add("name")
            after, limit = page[-1][0], CHUNK
        return None if empty else seen

    def rows(self) -> Iterator[AudienceRow]:
        """Every contact of the list, in the order they were added."""
        after, seq = 0, 0
        while True:
            page = self._store.list_contacts(self.tenant, self.list_id, after_id=after, limit=CHUNK)
            if not page:
                return
            for _, contact in page:
                seq += 1
                fields = dict(contact.fields)
                if contact.name is not None:  # the contact's own name (never a field of the same name)
                    fields["name"] = contact.name
                yield AudienceRow(seq, contact.phone, fields, None, self.locate(seq), seq)
            after = page[-1][0]


class ContactLists:
    """``tenant.contact_lists``: create, fill, read and delete stored lists."""

    def __init__(self, store: Store | Callable[[], Store], policy: TenantPolicy, work: Work | None = None,
                 closed: Callable[[], BaseException] | None = None) -> None:
        # a callable: asked at each use (a tenant handle's, refused once its gateway is closed)
        self._store_of = store if callable(store) else lambda: store
        self._policy = policy
        #: (a gateway's tenant) imports register as work under way; its close stops them between chunks
        self._work = work
        self._closed = closed

    @property
    def _store(self) -> Store:
        return self._store_of()

    def create(
        self,
        name: str,
        contacts: Audience | Iterable[Contact | str | Mapping[str, Any]] = (),
        *,
        description: str = "",
        list_id: str | None = None,
    ) -> ImportReport:
        """Create a list and add ``contacts`` (a CSV audience, or any iterable).

        ``name``: 1-200 printable characters, not blank (names need not be unique: a list
        is found by its id). ``list_id``: leave it out for a new one, or give 1-64 printable
        characters not used by another list of the tenant. A bad ``name``, ``description``
        or ``list_id`` (wrong type, blank, too long, a line break, an id in use), or
        ``contacts`` that are one string or one mapping rather than a collection of them, is
        a :class:`~smsgate.errors.ValidationError` naming the argument and
        ``contact_lists.create``, and nothing is created. Creation is atomic: if the contacts
        cannot be read (a CSV file's error names the file and line), no list is left behind; nor
        when its gateway is closed meanwhile (from another thread: the close waits for the
        import to stop between two chunks of contacts, and it raises
        :class:`~smsgate.errors.GatewayClosed`).
        """
        with stoppable(self._work, self._closed) as stops:
            return self._create(name, contacts, description=description, list_id=list_id, stops=stops)

    def _create(self, name: str, contacts: Audience | Iterable[Contact | str | Mapping[str, Any]] = (), *,
                description: str = "", list_id: str | None = None, stops: Sequence[Event] = ()) -> ImportReport:
        """:meth:`create`, stopped (:class:`~smsgate._stop.Stopped`, the list removed) between two chunks once
        one of ``stops`` (events) is set."""
        _check_text(name, "name", MAX_NAME, "a list needs a name")
        if not isinstance(description, str):
            raise ValidationError(f"expected a string, got {type(description).__name__}", field="description",
                                  location=_CREATE)
        if list_id is not None:
            _check_text(list_id, "list_id", MAX_LIST_ID, "give an id, or leave list_id out for a new one")
        check_stored_text("description", description)  # name and list_id: printable, above
        check_contacts(contacts, "contacts")
        row = ContactListRow(tenant=self._policy.name, list_id=list_id or new_id("lst"), name=name,
                             created_at=utcnow(), description=description)
        store = self._store  # (once: a closing gateway's tenant refuses it, and the list is removed below)
        try:
            store.create_contact_list(row)
        except ValidationError as exc:  # the id is taken
            raise ValidationError(exc.reason, field=exc.field, location=_CREATE) from None
        try:
            return self._add(row.list_id, contacts, stops)
        except BaseException:  # a file that cannot be read, the store, Ctrl-C, a stop: no list left behind
            store.delete_contact_list(self._policy.name, row.list_id)
            raise

    def add(self, list_id: str, contacts: Audience | Iterable[Contact | str | Mapping[str, Any]]) -> ImportReport:
        """Add or update contacts; invalid rows are reported (with where and why), not stored.

        A row is read flat: its ``name`` is the contact's name, every other column a field. A
        field named like a built-in column (a ``Contact`` with a name and a field ``name``, any
        field ``phone``, such as a CSV column ``phone`` beside the numbers' ``mobile``) is an
        invalid row naming it (:func:`~smsgate.models.builtin_field`): it would shadow the
        contact's own name or number, or be lost from every export.

        A number that an earlier row of the same call gave (in any format the tenant's region
        reads) is not stored again: the row is in the report's ``duplicates`` (``vip.csv,
        line 7``: ``+2348031234561 already at vip.csv, line 3``) and the earlier row's name
        and fields stay. To tell them apart, the call remembers each number it stored (about
        100 bytes a number: some 100 MB for a million distinct numbers in one call).

        Contacts are stored 5,000 at a time: if the audience cannot be read part-way (a CSV
        file's error names the file and line), those stored before stay; adding the fixed
        file again updates them. Its gateway closed meanwhile (from another thread), it stops
        between two chunks (the close waits for it) and raises
        :class:`~smsgate.errors.GatewayClosed`; the chunks stored before stay, as above.
        """
        with stoppable(self._work, self._closed) as stops:
            return self._add(list_id, contacts, stops)

    def _add(self, list_id: str, contacts: Audience | Iterable[Contact | str | Mapping[str, Any]],
             stops: Sequence[Event] = ()) -> ImportReport:
        """:meth:`add`, stopped (:class:`~smsgate._stop.Stopped`) before a chunk once one of ``stops`` is set."""
        check_id("list_id", list_id, blank=LIST_ID)
        check_contacts(contacts, "contacts")
        store, tenant = self._store, self._policy.name
        store.get_contact_list(tenant, list_id)
        audience = contacts if isinstance(contacts, Audience) else ContactsAudience(contacts)
        report = ImportReport(contact_list=store.get_contact_list(tenant, list_id))
        batch: list[Contact] = []
        # each number stored by this call -> where its row was: a line for audience.locate(), or
        # the row's own location for an audience whose rows carry no line
        first: dict[str, int | str] = {}

        def flush() -> None:
            check(stops)
            if batch:
                new = store.add_contacts(tenant, list_id, batch)
                report.added += new
                report.updated += len(batch) - new
                batch.clear()

        for src in audience.rows():
            report.rows += 1
            if src.error:
                report.invalid(RowError(seq=src.seq, location=src.location, phone=src.phone,
                                              reason="invalid", detail=src.error))
                continue
            try:
                phone = self._policy.normalize(src.phone)
            except InvalidPhoneNumber as exc:
                report.invalid(RowError(seq=src.seq, location=src.location, phone=src.phone,
                                              reason="invalid",
                                        detail=f"column {audience.phone_column}: {exc.reason}"))
                continue
            fields = dict(src.fields)
            # what no store keeps (NUL, a lone surrogate): the policy's rule, the same on every store
            bad = next(((k, p) for k, v in fields.items() if (p := unstorable(k) or unstorable(v))), None)
            if bad is not None:
                column = UNSTORABLE.sub("?", bad[0])
                report.invalid(RowError(seq=src.seq, location=src.location, phone=src.phone, reason="invalid",
                                              detail=f"column {column}: {bad[1]}, which the store cannot keep"))
                continue
            name = fields.pop("name", None) or None  # the name column: the contact's name
            shadow = builtin_field(fields)  # a column "phone" beside the numbers' (--phone-column mobile)
            if shadow is not None:
                report.invalid(RowError(seq=src.seq, location=src.location, phone=src.phone, reason="invalid",
                                        detail=builtin_field_error(shadow)))
                continue
            earlier = first.get(phone)
            if earlier is not None:
                where = audience.locate(earlier) if isinstance(earlier, int) else earlier
                report.duplicate(RowError(seq=src.seq, location=src.location, phone=src.phone,
                                                  reason="duplicate", detail=f"{phone} already at {where}"))
                continue
            first[phone] = src.line if src.line > 0 else src.location
            batch.append(Contact(phone=phone, name=name, fields=fields))
            if len(batch) >= CHUNK:
                flush()
        flush()
        report.contact_list = store.get_contact_list(tenant, list_id)
        return report

    def remove(self, list_id: str, phones: Sequence[str]) -> int:
        """Remove contacts by number (any format the tenant's region reads); returns how many.

        ``phones`` is a list of numbers: one number as a string is a
        :class:`~smsgate.errors.ValidationError` (field ``phones``), not read a digit a number.
        A list that does not exist is :class:`~smsgate.errors.NotFound`.
        """
        check_id("list_id", list_id, blank=LIST_ID)
        if isinstance(phones, (str, bytes, bytearray)):
            raise ValidationError(f"a list of numbers, not one {type(phones).__name__}: wrap it in a list "
                                  f"([{phones!r}])", field="phones")
        if not isinstance(phones, Iterable):
            raise ValidationError(f"a list of numbers, not {type(phones).__name__}", field="phones")
        self._store.get_contact_list(self._policy.name, list_id)  # NotFound, not "0 removed"
        return self._store.remove_contacts(self._policy.name, list_id, [self._policy.normalize(p) for p in phones])

    def get(self, list_id: str) -> ContactListRow:
        """One list with its size (:class:`~smsgate.errors.NotFound` if missing; a ``list_id``
        that is not a string, such as the :class:`ImportReport` :meth:`create` returns, a
        :class:`~smsgate.errors.ValidationError` naming ``list_id``)."""
        check_id("list_id", list_id, blank=LIST_ID)
        return self._store.get_contact_list(self._policy.name, list_id)

    def list(self) -> list[ContactListRow]:
        """This tenant's lists, newest first."""
        return self._store.list_contact_lists(self._policy.name)

    def delete(self, list_id: str) -> bool:
        """Delete a list and its contacts."""
        check_id("list_id", list_id, blank=LIST_ID)
        return self._store.delete_contact_list(self._policy.name, list_id)

    def contacts(self, list_id: str) -> Iterator[Contact]:
        """Stream a list's contacts."""
        check_id("list_id", list_id, blank=LIST_ID)  # now, not at the first next()
        return self._contacts(list_id)

    def _contacts(self, list_id: str) -> Iterator[Contact]:
        after = 0
        while True:
            page = self._store.list_contacts(self._policy.name, list_id, after_id=after, limit=CHUNK)
            if not page:
                return
            for _, contact in page:
                yield contact
            after = page[-1][0]

    def audience(self, list_id: str) -> StoredListAudience:
        """The list as a campaign audience."""
        check_id("list_id", list_id, blank=LIST_ID)
        return StoredListAudience(self._store, self._policy.name, list_id)

    def export(self, list_id: str, path_or_file: str | Path | IO[str], *, format: ExportFormat = "csv") -> int:
        """Write a list's contacts to a path or an open text file (UTF-8); returns how many.

        ``format="csv"`` (the default): the header is ``phone``, ``name``, then every field
        any contact has (in the order first seen); a contact without a field has an empty
        cell. A contact an earlier version stored with a field named ``phone`` or ``name``
        (:func:`~smsgate.models.builtin_field`), which the CSV cannot hold beside its own
        column, is a :class:`~smsgate.errors.ValidationError` naming it before the file is
        opened (``format="json"`` keeps it). The file reads back as it was with ``CsvAudience``
        (``contact_lists.create(name, CsvAudience(path))``). ``format="json"``: one JSON
        object, the list (:meth:`~smsgate.store.base.ContactListRow.as_dict`) with its
        ``contacts`` (:class:`~smsgate.models.Contact` as ``model_dump()`` gives it), one contact a line.

        Contacts are read from the store a page at a time (for CSV twice: fields, then
        rows), never all in memory. A list that does not exist is
        :class:`~smsgate.errors.NotFound`, an unknown ``format`` a
        :class:`~smsgate.errors.ValidationError` (field ``format``), both before the file is
        opened; a path that cannot be written, or a write that fails (a full disk, a contact
        holding what the file's encoding cannot), is a ``ValidationError`` naming it; a write
        that fails for any reason (the list deleted meanwhile, Ctrl-C) removes the incomplete
        regular file.
        """
        if format not in ("csv", "json"):
            raise ValidationError(f"{format!r} is not an export format: 'csv' or 'json'", field="format")
        check_id("list_id", list_id, blank=LIST_ID)
        if not isinstance(path_or_file, (str, Path)) and not callable(getattr(path_or_file, "write", None)):
            raise ValidationError(f"expected a path or an open text file, got {type(path_or_file).__name__}",
                                  field="path_or_file")
        row = self._store.get_contact_list(self._policy.name, list_id)
        if format == "json":
            return self._to_file(path_or_file, lambda fh: self._write_json(row, fh))
        columns: dict[str, None] = {}
        for contact in self.contacts(list_id):
            shadow = builtin_field(contact.fields)  # stored by an earlier version: never dropped silently
            if shadow is not None:
                raise ValidationError(f"contact {contact.phone} has a field {shadow!r} (stored by an earlier version), "
                                      f"which a CSV export cannot hold beside its own {shadow!r} column: export it "
                                      "with format='json', or add the contact again without that field",
                                      field=f"fields.{shadow}", location=f"contact list {list_id}")
            columns.update(dict.fromkeys(contact.fields))
        header = ["phone", "name", *columns]
        return self._to_file(path_or_file, lambda fh: self._write(list_id, fh, header))

    @staticmethod
    def _to_file(path_or_file: str | Path | IO[str], write: Callable[[IO[str]], int]) -> int:
        if not isinstance(path_or_file, (str, Path)):
            return write(path_or_file)
        try:
            fh = open(path_or_file, "w", newline="", encoding="utf-8")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise ValidationError(f"cannot write the export file: {exc.strerror}", location=str(path_or_file),
                                  ) from None
        try:
            with fh:
                return write(fh)
        except BaseException as exc:  # the file is incomplete: a full disk, a contact it cannot hold, Ctrl-C
            removed = ""
            with contextlib.suppress(OSError):
                if stat.S_ISREG(os.stat(path_or_file).st_mode):  # never a device (/dev/full)
                    os.unlink(path_or_file)
                    removed = " (the incomplete file was removed)"
            if isinstance(exc, OSError):
                raise ValidationError(f"cannot write the export file: {exc.strerror or exc}{removed}",
                                      location=str(path_or_file)) from None
            if isinstance(exc, ValidationError):
                raise ValidationError(f"{exc.reason}{removed}", field=exc.field, location=str(path_or_file)) from None
            raise

    def _write(self, list_id: str, fh: IO[str], header: builtins.list[str]) -> int:
        writer = csv.writer(fh)
        writer.writerow(map(spreadsheet_quote, header))
        fields = header[2:]
        n = 0
        for contact in self.contacts(list_id):
            try:
                writer.writerow([contact.phone, *map(spreadsheet_quote, [contact.name or "",
                                                                         *(contact.fields.get(k, "") for k in fields)])])
            except UnicodeEncodeError as exc:  # a lone surrogate an earlier version stored; a file's own encoding
                raise ValidationError(f"cannot write the export file: contact {contact.phone} holds "
                                      f"{exc.object[exc.start:exc.end]!a}, which its encoding ({exc.encoding}) "
                                      f"cannot hold ({exc.reason}): add the contact again with that value mended",
                                      ) from None
            n += 1
        return n

    def _write_json(self, row: ContactListRow, fh: IO[str]) -> int:
        head = json.dumps(row.as_dict())
        fh.write(head[:-1] + ', "contacts": [')  # {...the list's keys, "contacts": [
        n = 0
        for contact in self.contacts(row.list_id):
            fh.write(("," if n else "") + "\n" + json.dumps(contact.model_dump()))
            n += 1
        fh.write("\n]}\n" if n else "]}\n")
        return n


class AsyncContactLists:
    """``tenant.contact_lists`` of an :class:`~smsgate.AsyncTenant`: :class:`ContactLists` with
    coroutines (the store work runs in the gateway's worker threads)."""

    def __init__(self, store: Store | Callable[[], Store],
                 policy: TenantPolicy | Callable[[], Awaitable[TenantPolicy]],
                 in_thread: Callable[..., Awaitable[Any]], work: Work | None = None,
                 closed: Callable[[], BaseException] | None = None) -> None:
        # ``policy``: the tenant's, or a coroutine function giving it (asked at each call: an
        # AsyncTenant's loads a tenant source's tenant in a worker thread, never on the loop)
        self._store_arg = store
        self._policy_of = policy
        self._in_thread = in_thread
        #: (an AsyncGateway's tenant) imports register as work under way (see ContactLists)
        self._work = work
        self._closed = closed

    async def _import(self, job: Callable[..., ImportReport], *args: Any, created: bool = False,
                      **kwargs: Any) -> ImportReport:
        """``job(*args, stops=..., **kwargs)`` (an import) in a worker thread. Cancelled, the
        thread stops between two chunks and this waits for it before the cancellation is
        raised (``created``: a list the job finished creating meanwhile, whose id its caller
        never learns, is removed); the gateway closed meanwhile (``aclose()`` waits for it),
        it raises the gateway's ``GatewayClosed``."""
        async def undo(report: ImportReport) -> None:  # a list it finished before it saw the stop
            if created and report.contact_list is not None:
                await self._in_thread((await self._ready()).delete, report.contact_list.list_id)

        return await run_stoppable(lambda stops: self._in_thread(job, *args, stops=stops, **kwargs),
                                   self._work, self._closed, undo)

    async def _ready(self) -> ContactLists:
        policy = self._policy_of
        return ContactLists(self._store_arg, policy if isinstance(policy, TenantPolicy) else await policy())

    async def create(self, name: str, contacts: Audience | Iterable[Contact | str | Mapping[str, Any]] = (), *,
                     description: str = "", list_id: str | None = None) -> ImportReport:
        """See :meth:`ContactLists.create`. Cancelled (a request's timeout, an anyio cancel scope), or
        its gateway closed meanwhile (``aclose()`` waits for it), it stops between two chunks of
        contacts and leaves no list behind: the cancellation (or
        :class:`~smsgate.errors.GatewayClosed`) is raised once the list is removed (one it finished
        meanwhile too: its caller never learns its id)."""
        return await self._import((await self._ready())._create, name, contacts, created=True,
                                  description=description, list_id=list_id)

    async def add(self, list_id: str, contacts: Audience | Iterable[Contact | str | Mapping[str, Any]]
                  ) -> ImportReport:
        """See :meth:`ContactLists.add`. Cancelled, or its gateway closed meanwhile, it stops between
        two chunks of contacts (those stored before stay) and the cancellation (or
        :class:`~smsgate.errors.GatewayClosed`) is raised once it stopped."""
        return await self._import((await self._ready())._add, list_id, contacts)

    async def remove(self, list_id: str, phones: Sequence[str]) -> int:
        """See :meth:`ContactLists.remove`."""
        n: int = await self._in_thread((await self._ready()).remove, list_id, phones)
        return n

    async def get(self, list_id: str) -> ContactListRow:
        """See :meth:`ContactLists.get`."""
        row: ContactListRow = await self._in_thread((await self._ready()).get, list_id)
        return row

    async def list(self) -> builtins.list[ContactListRow]:
        """See :meth:`ContactLists.list`."""
        rows: builtins.list[ContactListRow] = await self._in_thread((await self._ready()).list)
        return rows

    async def delete(self, list_id: str) -> bool:
        """See :meth:`ContactLists.delete`."""
        done: bool = await self._in_thread((await self._ready()).delete, list_id)
        return done

    async def contacts(self, list_id: str) -> builtins.list[Contact]:
        """A list's contacts (all of them; use the sync gateway to stream a very large one)."""
        found: builtins.list[Contact] = await self._in_thread(lambda lists: [*lists.contacts(list_id)], await self._ready())
        return found

    async def export(self, list_id: str, path_or_file: str | Path | IO[str], *, format: ExportFormat = "csv") -> int:
        """See :meth:`ContactLists.export` (written in the gateway's worker threads)."""
        n: int = await self._in_thread((await self._ready()).export, list_id, path_or_file, format=format)
        return n

    async def audience(self, list_id: str) -> StoredListAudience:
        """The list as a campaign audience."""
        aud: StoredListAudience = await self._in_thread((await self._ready()).audience, list_id)
        return aud
