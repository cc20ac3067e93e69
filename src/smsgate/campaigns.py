"""The provider-neutral campaign engine.

::

    from smsgate import Gateway
    from smsgate.campaigns import CsvAudience

    with Gateway("smsgate.toml") as gw:
        acme = gw.tenant("acme")
        camp = acme.campaigns.create(
            "Spring sale", text="Hi {name}, 20% off today. Reply STOP to opt out.",
            audience=CsvAudience("customers.csv", phone="msisdn"),
        )
        print(camp.preview())          # counts, skipped by reason, segments, cost, samples
        camp.run(progress=print)       # crash-safe, resumable, rate limited

Creating a campaign streams its audience through the preparation pipeline into
the store, in chunks: numbers are normalised with the tenant's region, duplicates
dropped, opted-out and invalid numbers skipped (each with its reason, row and
column), the per-contact text rendered (a missing variable skips that row with
the variable named, never sends a blank), segments counted and the cost
estimated per provider. Nothing is sent until :meth:`CampaignHandle.run`.

Dispatch is crash-safe. Every recipient's state is in the store:
``pending -> sending -> sent | failed | unknown`` (or ``skipped``). A runner
claims a chunk (``sending``, with a fresh message id) before anything leaves,
so after a crash (even ``kill -9``) a new run resolves the claimed rows: a
message the log shows accepted is ``sent``; one that never reached the
gateway's log is sent again; one whose request may have left is looked up at
the provider by its client reference (sent if found, sent again if the vendor
never got it) and otherwise stays ``unknown``, never blindly re-sent
(:meth:`CampaignHandle.retry_unknown` re-sends those on purpose).
"""

from __future__ import annotations

import asyncio
import csv
import logging
import os
import queue
import sys
import threading
from array import array
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta, timezone
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field

from smsgate import phone as phonelib
from smsgate import text as textlib
from smsgate.errors import (
    ConfigError,
    NotFound,
    ProviderError,
    TemplateError,
    Unsupported,
    ValidationError,
)
from smsgate.ids import new_id
from smsgate.models import (
    Campaign,
    CampaignStatus,
    Contact,
    DeliveryReport,
    OutboundMessage,
    Stats,
    Status,
    Template,
    utcnow,
)
from smsgate.store.base import (
    CampaignRow,
    MessageUpdate,
    RecipientRow,
    RecipientState,
    RecipientUpdate,
)

if TYPE_CHECKING:
    from concurrent.futures import Future, ProcessPoolExecutor

    from smsgate.config import TenantConfig
    from smsgate.gateway import AsyncTenant, Tenant, _TenantCore

__all__ = [
    "Audience",
    "CampaignHandle",
    "CampaignManager",
    "CampaignPreview",
    "ContactsAudience",
    "CsvAudience",
    "Progress",
    "ProviderListAudience",
    "RowError",
    "in_quiet_hours",
]

log = logging.getLogger("smsgate.campaigns")

CHUNK = 5000

Mode = Literal["auto", "fanout", "native"]


# --------------------------------------------------------------------------- audiences
@dataclass
class AudienceRow:
    """One input row: its number (as given), name, fields, and a read error if any."""

    seq: int
    phone: str
    fields: dict[str, str]
    error: str | None = None
    location: str = ""
    line: int = 0


#: One audience row as preparation reads it: (seq, line, phone, fields, error, location);
#: ``location`` None means ``audience.locate(line)`` (only computed for skipped rows).
_Record = tuple[int, int, str, dict[str, str], str | None, str | None]


class Audience:
    """Where a campaign's recipients come from. Subclasses stream :class:`AudienceRow`."""

    description: str = ""

    def rows(self) -> Iterator[AudienceRow]:
        """Stream the rows (any size; never all in memory)."""
        raise NotImplementedError

    def locate(self, line: int) -> str:
        """Human-readable place of a row, from its ``line``."""
        return f"row {line}"

    def _records(self) -> Iterator[_Record]:
        """:meth:`rows` as the tuples preparation reads."""
        for r in self.rows():
            yield (r.seq, r.line, r.phone, r.fields, r.error, r.location)


class CsvAudience(Audience):
    """A CSV file, streamed row by row.

    ``phone`` names the column holding numbers; ``name`` the optional name column;
    ``fields`` maps template variable -> column (default: every other column under
    its own name). Row numbers in errors are file line numbers (the header is line 1).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        phone: str = "phone",
        name: str | None = "name",
        fields: Mapping[str, str] | Sequence[str] | None = None,
        delimiter: str = ",",
        encoding: str = "utf-8-sig",
    ) -> None:
        self.path = Path(path)
        self.phone_column = phone
        self.name_column = name
        self.fields = fields
        self.delimiter = delimiter
        self.encoding = encoding
        self.description = f"CSV {self.path.name}"

    def locate(self, line: int) -> str:
        """``name.csv, line N``."""
        return f"{self.path.name}, line {line}"

    def _mapping(self, header: list[str]) -> dict[str, str]:
        if self.fields is None:
            mapping = {c: c for c in header if c and c != self.phone_column}
        elif isinstance(self.fields, Mapping):
            mapping = dict(self.fields)
        else:
            mapping = {c: c for c in self.fields}
        if self.name_column and self.name_column in header:
            mapping.setdefault("name", self.name_column)
        missing = [col for col in mapping.values() if col not in header]
        if missing:
            raise ValidationError(
                f"column(s) {', '.join(map(repr, missing))} not in header {header!r}",
                location=f"{self.path.name}, line 1",
            )
        return mapping

    def rows(self) -> Iterator[AudienceRow]:
        """Stream rows; a malformed file raises :class:`ValidationError` naming the line."""
        locate = self.locate
        for seq, line, number, values, err, _where in self._records():
            yield AudienceRow(seq, number, values, err, locate(line), line)

    def _records(self) -> Iterator[_Record]:
        """:meth:`rows` as plain tuples, the location left to :meth:`locate` (preparation's fast path)."""
        try:
            fh = open(self.path, newline="", encoding=self.encoding)  # noqa: SIM115 - closed below
        except OSError as exc:
            raise ValidationError(f"cannot open audience file: {exc.strerror}", location=str(self.path)) from None
        with fh:
            reader = csv.reader(fh, delimiter=self.delimiter)
            try:
                header = [h.strip() for h in next(reader)]
            except StopIteration:
                raise ValidationError("the file is empty", location=f"{self.path.name}, line 1") from None
            if self.phone_column not in header:
                raise ValidationError(
                    f"no {self.phone_column!r} column in header {header!r}",
                    location=f"{self.path.name}, line 1", field=self.phone_column,
                )
            mapping = self._mapping(header)
            phone_idx = header.index(self.phone_column)
            idx = [(var, header.index(col)) for var, col in mapping.items()]
            width = len(header)
            empty = f"column {self.phone_column!r} is empty"
            seq = 0
            try:
                for row in reader:
                    n = len(row)
                    if not n or (n == 1 and not row[0].strip()):
                        continue
                    seq += 1
                    if n != width:
                        yield (seq, reader.line_num, row[phone_idx].strip() if n > phone_idx else "", {},
                               f"expected {width} columns, found {n}", None)
                        continue
                    number = row[phone_idx].strip()
                    yield (seq, reader.line_num, number, {var: row[i].strip() for var, i in idx},
                           None if number else empty, None)
            except csv.Error as exc:
                raise ValidationError(f"malformed CSV: {exc}", location=f"{self.path.name}, line {reader.line_num}") from None


class ContactsAudience(Audience):
    """Any iterable of :class:`~smsgate.models.Contact`, phone strings or dicts."""

    def __init__(self, contacts: Iterable[Contact | str | Mapping[str, Any]], description: str = "contacts") -> None:
        self.contacts = contacts
        self.description = description

    def locate(self, line: int) -> str:
        """``contact N`` (1-based position in the iterable)."""
        return f"contact {line}"

    def rows(self) -> Iterator[AudienceRow]:
        """Stream the contacts as rows."""
        for seq, item in enumerate(self.contacts, start=1):
            where = self.locate(seq)
            if isinstance(item, str):
                yield AudienceRow(seq, item, {}, None, where, seq)
            elif isinstance(item, Contact):
                fields = dict(item.fields)
                if item.name is not None:
                    fields.setdefault("name", item.name)
                yield AudienceRow(seq, item.phone, fields, None, where, seq)
            elif isinstance(item, Mapping):
                data = {str(k): "" if v is None else str(v) for k, v in item.items()}
                number = data.pop("phone", "")
                yield AudienceRow(seq, number, data, None if number else "no 'phone' value", where, seq)
            else:
                yield AudienceRow(seq, "", {}, f"unsupported contact type {type(item).__name__}", where, seq)


class ProviderListAudience(Audience):
    """A list that already lives at a provider (a Squad bucket, a Colony contact list).

    The campaign runs natively at that provider against the list: the vendor
    resolves its members, so smsgate cannot preview per-recipient counts, check
    opt-outs or personalise per row for it (the provider's own list and opt-out
    handling apply). Requires a provider with ``contact_lists`` and
    ``native_campaigns``.
    """

    def __init__(self, provider: str, list_id: str) -> None:
        self.provider = provider
        self.list_id = str(list_id)
        self.description = f"provider list {self.list_id} at {provider}"

    def rows(self) -> Iterator[AudienceRow]:
        """No local rows: the provider expands the list."""
        return iter(())


# --------------------------------------------------------------------------- reports
class RowError(BaseModel):
    """Why one audience row was skipped."""

    seq: int
    location: str
    phone: str
    reason: str
    detail: str


class CampaignPreview(BaseModel):
    """What a campaign will do, computed without sending."""

    campaign_id: str
    name: str
    status: CampaignStatus
    mode: str
    total_rows: int
    recipients: int
    skipped: dict[str, int]
    segments: int
    encoding: dict[str, int]
    cost: dict[str, Decimal]
    currency: dict[str, str | None]
    by_provider: dict[str, int]
    samples: list[dict[str, str]]
    errors: list[RowError] = Field(default_factory=list)

    def __str__(self) -> str:
        lines = [
            f"campaign {self.campaign_id} {self.name!r} ({self.status.value}, mode {self.mode})",
            f"  rows: {self.total_rows}, to send: {self.recipients}, segments: {self.segments}",
            "  skipped: " + (", ".join(f"{k}={v}" for k, v in sorted(self.skipped.items())) or "none"),
        ]
        for prov, n in sorted(self.by_provider.items()):
            cost = self.cost.get(prov)
            cur = self.currency.get(prov) or ""
            lines.append(f"  via {prov}: {n} recipients" + (f", est. cost {cost} {cur}".rstrip() if cost is not None else ""))
        for s in self.samples:
            lines.append(f"  sample to {s['to']}: {s['text']}")
        return "\n".join(lines)


@dataclass
class Progress:
    """Dispatch progress of one campaign."""

    campaign_id: str
    status: CampaignStatus
    total: int = 0
    pending: int = 0
    sending: int = 0
    sent: int = 0
    failed: int = 0
    unknown: int = 0
    skipped: int = 0
    skipped_by_reason: dict[str, int] = field(default_factory=dict)

    @property
    def done(self) -> int:
        """Recipients with a final dispatch state."""
        return self.sent + self.failed + self.unknown + self.skipped

    @property
    def to_send(self) -> int:
        """Recipients that are or were to be sent (total minus skipped)."""
        return self.total - self.skipped


# --------------------------------------------------------------------------- helpers
def _parse_clock(value: str) -> time:
    try:
        hh, mm = value.split(":")
        return time(int(hh), int(mm))
    except ValueError:
        raise ConfigError(f"quiet hours {value!r}: expected HH:MM") from None


def in_quiet_hours(now: datetime, window: Sequence[str] | None, tz: str) -> datetime | None:
    """If ``now`` falls in the quiet ``window`` (``["21:00", "08:00"]`` in zone ``tz``),
    the UTC time it ends; else ``None``. Windows may span midnight."""
    if not window:
        return None
    start, end = _parse_clock(window[0]), _parse_clock(window[1])
    local = now.astimezone(ZoneInfo(tz))
    t = local.time().replace(tzinfo=None)
    inside = (start <= t < end) if start <= end else (t >= start or t < end)
    if not inside:
        return None
    end_dt = local.replace(hour=end.hour, minute=end.minute, second=0, microsecond=0)
    if end_dt <= local:
        end_dt += timedelta(days=1)
    return end_dt.astimezone(timezone.utc)


def _template_from_spec(spec: Mapping[str, Any]) -> Template | None:
    t = spec.get("template")
    return Template.model_validate(t) if t else None


def _body(spec: Mapping[str, Any]) -> str:
    tpl = _template_from_spec(spec)
    return tpl.body if tpl is not None else str(spec.get("text") or "")


# --------------------------------------------------------------------------- preparation
#: Audience rows per chunk: the unit of work of the worker processes, one opt-out query
#: and one store write (a transaction, on the writer thread) each.
PREP_CHUNK = 5000
#: Errors kept in a campaign's summary (the store keeps every skipped row with its reason).
MAX_ERRORS = 1000
#: Distinct rendered texts whose segment counts are remembered during one preparation.
SEGMENT_CACHE = 10_000
#: CSV audiences from this size on (~130,000 rows) have their numbers normalised by
#: worker processes (Linux, 2+ usable cores), the preparing process doing the rest.
PARALLEL_MIN_BYTES = 4_000_000
#: Worker processes for that (None: by the idle cores, see _parallel_workers(); 0: never).
PARALLEL_WORKERS: int | None = None
#: Chunks handed to the workers ahead of the one being classified.
PARALLEL_WINDOW = 4

#: A compiled route table: (forced provider, rules, default provider); each rule is
#: (prefixes, countries, its first provider, catch-all). Hashable and picklable.
_RouteSpec = tuple[str | None, tuple[tuple[tuple[str, ...], frozenset[str], str | None, bool], ...], str | None]
#: What normalising one row gives: (E.164, provider or None when no route) for a valid
#: number, (None, why it is invalid) otherwise, (None, None) for a row with a read error
#: (from workers, "" stands for None).
_Normalized = tuple[str | None, str | None]


def _route_spec(config: TenantConfig, forced: str | None) -> _RouteSpec:
    rules = tuple((tuple(r.prefixes), frozenset(r.countries), r.providers[0] if r.providers else None,
                   not r.prefixes and not r.countries) for r in config.routes)
    return (forced or None, rules, None if config.routes else next(iter(config.providers), None))


@lru_cache(maxsize=16)
def _router(spec: _RouteSpec) -> Callable[[str], str | None]:
    """The first provider :meth:`TenantConfig.route_for` gives a number, or None.

    The same rules, compiled: prefixes are one ``str.startswith(tuple)`` and the
    number's region (a parse) is only looked up when a country rule is reached.
    """
    forced, rules, default = spec
    if forced:
        return lambda _phone: forced
    if not rules:
        return lambda _phone: default
    region_of = phonelib.region_of
    unknown = object()

    def route(phone: str) -> str | None:
        region: object = unknown
        for prefixes, countries, first, catch_all in rules:
            if catch_all or (prefixes and phone.startswith(prefixes)):
                return first
            if countries:
                if region is unknown:
                    region = region_of(phone)
                if region in countries:
                    return first
        return None

    return route


def _normalize_chunk(raws: list[str | None], region: str | None, routes: _RouteSpec) -> list[_Normalized]:
    """Normalise and route one chunk of numbers (in the preparing process or a worker).

    The same steps as :meth:`PhoneNormalizer.normalize` (phonelib's fast path, then
    phonenumbers; the same E.164 result or the same message), without its shared
    cache: a million distinct numbers would only churn it (and fill it, ~45 MB).
    """
    fast, slow, invalid = phonelib._normalize_fast, phonelib._normalize_slow, phonelib._invalid
    route = _router(routes)
    out: list[_Normalized] = []
    append = out.append
    for raw in raws:
        if raw is None:
            append((None, None))
        elif e164 := fast(raw, region):
            append((e164, route(e164)))
        else:
            number, reason = slow(raw, region)
            append((number, route(number)) if number is not None else (None, invalid(raw, reason).reason))
    return out


def _normalize_joined(raws: str, region: str | None, routes: _RouteSpec) -> tuple[str, str]:
    """:func:`_normalize_chunk` for a worker process: the numbers NUL-joined ("" for a row
    with an error), the E.164 numbers and the providers/reasons NUL-joined back ("" for
    None). One string each way pickles at memory speed; lists of small strings do not.
    A reason (a repr) and an E.164 number hold no NUL; chunks with one in a number stay
    in the preparing process."""
    out = _normalize_chunk([raw or None for raw in raws.split("\0")], region, routes)
    return "\0".join([e164 or "" for e164, _ in out]), "\0".join([extra or "" for _, extra in out])


def _parallel_workers() -> int:
    """Worker processes for a large preparation: 0 where they cannot help or are unsafe.

    Linux only by default: workers are forked (a spawned worker would re-import the
    user's main module) and run nothing but the pure normalisation code above. They
    only pay off on an idle core: on a busy machine they cost CPU (IPC, pages copied
    after the fork) for no gain, so the load average decides how many (at most 2).
    """
    if not hasattr(os, "fork"):
        return 0
    if PARALLEL_WORKERS is not None:
        return max(0, PARALLEL_WORKERS)
    if not sys.platform.startswith("linux"):
        return 0
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - Linux has sched_getaffinity
        cores = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except OSError:  # pragma: no cover - Linux has a load average
        load = 0.0
    return max(0, min(2, cores - 1, int(cores - load - 0.5)))


_GOLDEN = 0x9E3779B97F4A7C15  # 2**64 / golden ratio: Fibonacci hashing
_M64 = (1 << 64) - 1


class _SeenNumbers:
    """The numbers a preparation has seen, each with the line of its first row.

    An open-addressing hash table (Fibonacci hashing, linear probing) in two flat
    arrays of 16 bytes a slot, at most 60% full: a million distinct numbers take
    32-48 MB, where a dict of E.164 strings to line numbers takes about 130 MB (at
    ~1 us more per row). A number is kept as the integer of its E.164 digits (at
    most 15 digits, never 0, which marks an empty slot).
    """

    __slots__ = ("_keys", "_limit", "_lines", "_mask", "_shift", "_used")

    def __init__(self, bits: int = 16) -> None:
        self._used = 0
        self._alloc(bits)

    @staticmethod
    def bits_for(rows: int) -> int:
        """Table size (log2) holding ``rows`` numbers without growing (16-22)."""
        return max(16, min(22, (rows * 5 // 3).bit_length()))

    def _alloc(self, bits: int) -> None:
        self._keys = array("q", bytes(8 << bits))
        self._lines = array("q", bytes(8 << bits))
        self._mask = (1 << bits) - 1
        self._shift = 64 - bits
        self._limit = (3 << bits) // 5

    def __len__(self) -> int:
        return self._used

    def first(self, e164: str, line: int) -> int | None:
        """The line of ``e164``'s first row; None (and ``line`` remembered) if it is new."""
        key = int(e164)  # "+2348031234567" -> 2348031234567
        keys = self._keys
        i = ((key * _GOLDEN) & _M64) >> self._shift
        while True:
            k = keys[i]
            if k == key:
                return self._lines[i]
            if not k:
                keys[i] = key
                self._lines[i] = line
                self._used += 1
                if self._used > self._limit:
                    self._grow()
                return None
            i = (i + 1) & self._mask

    def _grow(self) -> None:
        old = zip(self._keys, self._lines, strict=True)
        self._alloc(65 - self._shift)
        keys, lines, mask, shift = self._keys, self._lines, self._mask, self._shift
        for key, line in old:
            if key:
                i = ((key * _GOLDEN) & _M64) >> shift
                while keys[i]:
                    i = (i + 1) & mask
                keys[i] = key
                lines[i] = line


class _Writer:
    """Stores batches of recipient rows, in order, on a background thread.

    The store's own work (SQLite's C code, a PostgreSQL round trip) then overlaps the
    parsing of the next rows. A failed write stops the preparation at its next
    :meth:`put` (or at :meth:`close`) with the store's error.
    """

    def __init__(self, write: Callable[[list[RecipientRow]], object], depth: int = 2) -> None:
        self._write = write
        self._queue: queue.Queue[list[RecipientRow] | None] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="smsgate-campaign-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            batch = self._queue.get()
            if batch is None:
                return
            if self._error is None:  # after a failure, drain without writing
                try:
                    self._write(batch)
                except BaseException as exc:  # re-raised in the preparing thread
                    self._error = exc

    def put(self, batch: list[RecipientRow]) -> None:
        """Queue ``batch`` (waits while ``depth`` batches are queued)."""
        if self._error is not None:
            raise self._error
        self._queue.put(batch)

    def close(self, *, check: bool = True) -> None:
        """Wait until every queued batch is written; raise a write error if ``check``."""
        self._queue.put(None)
        self._thread.join()
        if check and self._error is not None:
            raise self._error


class _Preparation:
    """One campaign's preparation (see :meth:`CampaignHandle._prepare`).

    Rows are streamed in chunks of :data:`PREP_CHUNK`. A chunk's numbers are
    normalised and routed (by :func:`_normalize_chunk`: here, or for a CSV file of
    :data:`PARALLEL_MIN_BYTES` or more by worker processes; the same function either
    way, so the same results), then classified in row order: duplicates (by
    E.164, the first row wins) and rows with an error, an invalid number, a missing
    template variable or no route are skipped; the rest are checked against the
    opt-out list in one store query, rendered and segment-counted. The chunk's rows
    go, in row order, to a background writer thread (while it writes one chunk, the
    next is prepared). No pydantic model is built per row and the summary is kept in
    a few counters.
    """

    def __init__(self, core: _TenantCore, campaign_id: str, audience: Audience, body: str,
                 forced: str | None) -> None:
        self.core = core
        self.campaign_id = campaign_id
        self.audience = audience
        self.body = body
        self.names = tuple(sorted(textlib.template_variables(body)))
        self.region = core.normalizer.region
        self.routes = _route_spec(core.config, forced)
        self.rows = 0
        self.skipped: dict[str, int] = {}
        self.errors: list[dict[str, Any]] = []
        self.samples: list[dict[str, str]] = []
        #: recipients per (provider, encoding, segments)
        self.counts: dict[tuple[str, str, int], int] = {}
        self.workers = 0  # worker processes used (0: all in this process)
        self._first_line: Callable[[str, int], int | None] = _SeenNumbers(4).first  # see run()
        self._segments: dict[str, textlib.SegmentInfo] = {}

    def _size_hint(self) -> int:
        """Rows the audience probably has (a CSV file's size / 32; 0: unknown)."""
        if isinstance(self.audience, CsvAudience):
            try:
                return self.audience.path.stat().st_size // 32
            except OSError:
                return 0
        return 0

    def run(self, records: Iterator[_Record]) -> None:
        """Prepare every record into the store."""
        store, tenant, cid = self.core.store, self.core.name, self.campaign_id
        pool = self._pool()  # forked first, while this process is small and has no writer thread
        # after the fork: pages the workers share with this process get copied when written
        self._first_line = _SeenNumbers(_SeenNumbers.bits_for(self._size_hint())).first
        try:
            writer = _Writer(lambda batch: store.add_recipients(tenant, cid, batch))
            ok = False
            try:
                for chunk, normalized in self._normalized(records, pool):
                    self.rows += len(chunk)
                    writer.put(self._classify(chunk, normalized))
                ok = True
            finally:
                writer.close(check=ok)
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)

    # ---------------------------------------------------------- normalising
    def _pool(self) -> ProcessPoolExecutor | None:
        """Worker processes for a large CSV audience (None: normalise here)."""
        audience = self.audience
        if not isinstance(audience, CsvAudience):
            return None
        try:
            size = audience.path.stat().st_size
        except OSError:
            return None  # reading it reports the error
        workers = _parallel_workers() if size >= PARALLEL_MIN_BYTES else 0
        if not workers or any("\0" in (name or "") for name in self._provider_names()):
            return None
        from concurrent.futures import ProcessPoolExecutor
        from multiprocessing import get_context

        pool = ProcessPoolExecutor(workers, mp_context=get_context("fork"))
        pool.submit(_normalize_joined, "", self.region, self.routes)  # forks the workers now
        self.workers = workers
        return pool

    def _provider_names(self) -> list[str | None]:
        forced, rules, default = self.routes
        return [forced, default, *(first for _p, _c, first, _a in rules)]

    def _chunks(self, records: Iterator[_Record]) -> Iterator[tuple[list[_Record], list[str | None]]]:
        chunk: list[_Record] = []
        for record in records:
            chunk.append(record)
            if len(chunk) >= PREP_CHUNK:
                yield chunk, [None if r[4] else r[2] for r in chunk]
                chunk = []
        if chunk:
            yield chunk, [None if r[4] else r[2] for r in chunk]

    def _normalized(self, records: Iterator[_Record], pool: ProcessPoolExecutor | None,
                    ) -> Iterator[tuple[list[_Record], Iterable[_Normalized]]]:
        """Chunks with their numbers normalised and routed, in order."""
        region, routes = self.region, self.routes
        if pool is None:
            for chunk, raws in self._chunks(records):
                yield chunk, _normalize_chunk(raws, region, routes)
            return
        ahead: deque[tuple[list[_Record], Future[tuple[str, str]] | list[_Normalized]]] = deque()

        def result() -> tuple[list[_Record], Iterable[_Normalized]]:
            done, pending = ahead.popleft()
            if isinstance(pending, list):
                return done, pending
            e164s, extras = pending.result()
            return done, zip(e164s.split("\0"), extras.split("\0"), strict=True)

        for chunk, raws in self._chunks(records):
            joined = "\0".join([raw or "" for raw in raws])
            if joined.count("\0") == len(raws) - 1:
                ahead.append((chunk, pool.submit(_normalize_joined, joined, region, routes)))
            else:  # a NUL inside a number (csv reads it): this chunk is done here
                ahead.append((chunk, _normalize_chunk(raws, region, routes)))
            if len(ahead) > PARALLEL_WINDOW:
                yield result()
        while ahead:
            yield result()

    # --------------------------------------------------------- classifying
    def _classify(self, chunk: list[_Record], normalized: Iterable[_Normalized]) -> list[RecipientRow]:
        """One chunk's stored rows, in row order (one per record)."""
        first_line = self._first_line
        names = self.names
        locate = self.audience.locate
        skip = self._skip
        pending = RecipientState.PENDING
        out: list[RecipientRow] = []
        append = out.append
        candidates: list[int] = []
        notes: dict[int, tuple[str, str, str]] = {}  # by index: (location, phone as given, detail)
        for (seq, line, raw, fields, error, location), (e164, extra) in zip(chunk, normalized, strict=True):
            if error:
                append(skip(notes, len(out), seq, line, location, raw, raw, fields, "invalid", error))
            elif not e164:
                append(skip(notes, len(out), seq, line, location, raw, raw, fields, "invalid",
                            f"column phone: {extra}"))
            elif (first := first_line(e164, line)) is not None:
                append(skip(notes, len(out), seq, line, location, raw, e164, fields, "duplicate",
                            f"{e164} already at {locate(first)}"))
            elif names and not all(map(fields.get, names)):
                # an empty cell counts: never send a blank where a name belongs
                missing = ", ".join(repr(n) for n in names if not fields.get(n))
                append(skip(notes, len(out), seq, line, location, raw, e164, fields, "missing_variable",
                            f"missing variable(s) {missing}"))
            elif not extra:
                append(skip(notes, len(out), seq, line, location, raw, e164, fields, "no_route",
                            f"no route for {e164}"))
            else:
                candidates.append(len(out))
                append(RecipientRow(seq, e164, pending, fields, None, None, None, None, extra))
        if candidates:
            self._finish(chunk, out, candidates, notes)
        if notes:
            errors = self.errors
            for i in sorted(notes):
                if len(errors) >= MAX_ERRORS:
                    break
                location, raw, detail = notes[i]
                r = out[i]
                errors.append({"seq": r.seq, "location": location, "phone": raw, "reason": r.reason,
                               "detail": detail})
        return out

    def _skip(self, notes: dict[int, tuple[str, str, str]], index: int, seq: int, line: int,
              location: str | None, raw: str, phone: str, fields: dict[str, str], reason: str,
              detail: str) -> RecipientRow:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1
        if location is None:
            location = self.audience.locate(line)
        if len(self.errors) < MAX_ERRORS:
            notes[index] = (location, raw, detail)
        return RecipientRow(seq, phone, RecipientState.SKIPPED, fields, reason, f"{location}: {detail}")

    def _finish(self, chunk: list[_Record], out: list[RecipientRow], candidates: list[int],
                notes: dict[int, tuple[str, str, str]]) -> None:
        """Opt-out check, rendering and segment counting of a chunk's candidates."""
        opted = self.core.store.opted_out(self.core.name, [out[i].phone for i in candidates])
        body = self.body
        fixed = body if not self.names and "{" not in body else None
        smart = self.core.config.smart_encoding
        segments_cache = self._segments
        counts, samples = self.counts, self.samples
        for i in candidates:
            r = out[i]
            if opted and r.phone in opted:
                seq, line, raw, fields, _error, location = chunk[i]
                out[i] = self._skip(notes, i, seq, line, location, raw, r.phone, fields, "opted_out",
                                    f"{r.phone} opted out")
                continue
            text = fixed if fixed is not None else textlib.render_template(body, r.fields)
            if smart:
                text = textlib.smart_encode(text)
            info = segments_cache.get(text)
            if info is None:
                info = textlib.segment_info(text)
                if len(segments_cache) < SEGMENT_CACHE:
                    segments_cache[text] = info
            r.segments = info.segments
            key = (r.provider or "", info.encoding.value, info.segments)
            counts[key] = counts.get(key, 0) + 1
            if len(samples) < 5:
                samples.append({"to": r.phone, "text": text})

    def summary(self) -> dict[str, Any]:
        """The campaign's ``spec["summary"]`` (what :meth:`CampaignHandle.preview` shows)."""
        by_provider: dict[str, int] = {}
        segments_by_provider: dict[str, int] = {}
        encoding: dict[str, int] = {}
        for (prov, enc, segs), n in self.counts.items():
            by_provider[prov] = by_provider.get(prov, 0) + n
            segments_by_provider[prov] = segments_by_provider.get(prov, 0) + n * segs
            encoding[enc] = encoding.get(enc, 0) + n
        return {"rows": self.rows, "recipients": sum(by_provider.values()),
                "segments": sum(segments_by_provider.values()), "skipped": dict(self.skipped),
                "by_provider": by_provider, "segments_by_provider": segments_by_provider,
                "encoding": encoding, "samples": self.samples, "errors": self.errors}


# --------------------------------------------------------------------------- manager
class CampaignManager:
    """``tenant.campaigns``: create, find and list campaigns."""

    def __init__(self, tenant: Tenant | AsyncTenant) -> None:
        self._tenant = tenant
        self._core: _TenantCore = tenant._core

    def create(
        self,
        name: str,
        *,
        audience: Audience | Iterable[Contact | str | Mapping[str, Any]],
        text: str | None = None,
        template: Template | None = None,
        sender: str | None = None,
        provider: str | None = None,
        mode: Mode = "auto",
        start_at: datetime | None = None,
        quiet_hours: Sequence[str] | None = None,
        batch_size: int = 500,
        concurrency: int = 32,
        provider_options: Mapping[str, Any] | None = None,
        campaign_id: str | None = None,
    ) -> CampaignHandle:
        """Create a campaign and prepare its audience into the store (nothing is sent)."""
        if (text is None) == (template is None):
            raise ValidationError("give exactly one of text or template", field="text")
        if mode not in ("auto", "fanout", "native"):
            raise ValidationError(f"unknown mode {mode!r}", field="mode")
        if provider is not None and provider not in self._core.config.providers:
            raise ConfigError(f"tenant {self._core.name!r} has no provider {provider!r}")
        body = template.body if template is not None else str(text)
        textlib.template_variables(body)  # a malformed template fails here, before anything is stored
        if quiet_hours is not None:
            for v in quiet_hours:
                _parse_clock(v)
        if not isinstance(audience, Audience):
            audience = ContactsAudience(audience)
        if isinstance(audience, ProviderListAudience):
            if provider not in (None, audience.provider) or mode == "fanout":
                raise ValidationError("a provider-side list can only be sent natively by its own provider",
                                      field="audience")
            if audience.provider not in self._core.config.providers:
                raise ConfigError(f"tenant {self._core.name!r} has no provider {audience.provider!r}")
            caps = self._core.gw.provider(self._core.name, audience.provider).capabilities
            if not (caps.contact_lists and caps.native_campaigns):
                raise Unsupported(audience.provider, "campaigns to provider-side lists")
            provider, mode = audience.provider, "native"
        now = utcnow()
        spec: dict[str, Any] = {
            "text": text,
            "template": template.model_dump(mode="json") if template is not None else None,
            "sender": sender,
            "provider": provider,
            "mode": mode,
            "quiet_hours": list(quiet_hours) if quiet_hours else (
                list(self._core.config.quiet_hours) if self._core.config.quiet_hours else None),
            "batch_size": batch_size,
            "concurrency": concurrency,
            "provider_options": dict(provider_options or {}),
            "audience": audience.description,
            "provider_list_id": audience.list_id if isinstance(audience, ProviderListAudience) else None,
        }
        row = CampaignRow(
            tenant=self._core.name, campaign_id=campaign_id or new_id("cmp"), name=name,
            status=CampaignStatus.DRAFT, created_at=now, updated_at=now, spec=spec, start_at=start_at,
        )
        self._core.store.create_campaign(row)
        handle = CampaignHandle(self._tenant, row.campaign_id)
        handle._prepare(audience)
        return handle

    def get(self, campaign_id: str) -> CampaignHandle:
        """The campaign ``campaign_id`` of this tenant (:class:`NotFound` otherwise)."""
        self._core.store.get_campaign(self._core.name, campaign_id)
        return CampaignHandle(self._tenant, campaign_id)

    def list(self, limit: int = 100) -> list[CampaignRow]:
        """This tenant's campaigns, newest first."""
        return self._core.store.list_campaigns(self._core.name, limit=limit)


class CampaignHandle:
    """One campaign: preview, run, pause, resume, cancel, progress and statistics."""

    def __init__(self, tenant: Tenant | AsyncTenant, campaign_id: str) -> None:
        self._tenant = tenant
        self._core: _TenantCore = tenant._core
        self.campaign_id = campaign_id

    def __repr__(self) -> str:
        return f"<Campaign {self.campaign_id}>"

    # ------------------------------------------------------------ state
    @property
    def row(self) -> CampaignRow:
        """The stored campaign row (re-read each time)."""
        return self._core.store.get_campaign(self._core.name, self.campaign_id)

    def _set(self, **kw: Any) -> CampaignRow:
        return self._core.store.update_campaign(self._core.name, self.campaign_id, **kw)

    def progress(self) -> Progress:
        """Counts of recipients per dispatch state."""
        counts = self._core.store.recipient_counts(self._core.name, self.campaign_id)
        p = Progress(self.campaign_id, self.row.status)
        for (state, reason), n in counts.items():
            p.total += n
            setattr(p, state.value, getattr(p, state.value) + n)
            if state is RecipientState.SKIPPED:
                key = reason or "other"
                p.skipped_by_reason[key] = p.skipped_by_reason.get(key, 0) + n
        return p

    def pause(self) -> None:
        """Ask running dispatchers to stop after their current chunk (resume with :meth:`resume`)."""
        status = self.row.status
        if status in (CampaignStatus.COMPLETED, CampaignStatus.CANCELLED):
            raise ValidationError(f"campaign is {status.value}; it cannot be paused", field="status")
        self._set(status=CampaignStatus.PAUSED)

    def resume(self) -> None:
        """Allow dispatch again after :meth:`pause` (then call :meth:`run`)."""
        if self.row.status is not CampaignStatus.PAUSED:
            raise ValidationError(f"campaign is {self.row.status.value}, not paused", field="status")
        self._set(status=CampaignStatus.SCHEDULED)

    def cancel(self) -> int:
        """Stop the campaign for good: pending recipients become ``skipped`` (cancelled).

        Returns how many recipients were cancelled.
        """
        self._set(status=CampaignStatus.CANCELLED)
        store, tenant = self._core.store, self._core.name
        n = 0
        while True:
            rows = store.recipients(tenant, self.campaign_id, states=[RecipientState.PENDING], limit=CHUNK)
            if not rows:
                return n
            store.update_recipients(tenant, self.campaign_id, [
                RecipientUpdate(r.id or 0, RecipientState.SKIPPED, reason="cancelled") for r in rows])
            n += len(rows)

    # ------------------------------------------------------------ prepare
    def _prepare(self, audience: Audience) -> None:
        spec = self.row.spec
        records = audience._records()
        if isinstance(audience, CsvAudience) and type(audience).rows is not CsvAudience.rows:
            records = Audience._records(audience)  # a subclass with rows of its own
        prep = _Preparation(self._core, self.campaign_id, audience, _body(spec), spec.get("provider"))
        prep.run(records)
        spec = dict(spec)
        spec["summary"] = prep.summary()
        status = CampaignStatus.SCHEDULED if self.row.start_at else CampaignStatus.DRAFT
        self._set(spec=spec, status=status)

    def preview(self) -> CampaignPreview:
        """Counts, skipped-by-reason, segments, cost per provider and sample messages."""
        row = self.row
        summary = row.spec.get("summary") or {}
        cost: dict[str, Decimal] = {}
        currency: dict[str, str | None] = {}
        for prov, segs in summary.get("segments_by_provider", {}).items():
            settings = self._core.config.providers.get(prov)
            if settings is not None and settings.price_per_segment is not None:
                cost[prov] = Decimal(str(settings.price_per_segment)) * segs
                currency[prov] = settings.currency
        return CampaignPreview(
            campaign_id=row.campaign_id, name=row.name, status=row.status, mode=self._mode(),
            total_rows=summary.get("rows", 0), recipients=summary.get("recipients", 0),
            skipped=summary.get("skipped", {}), segments=summary.get("segments", 0),
            encoding=summary.get("encoding", {}), cost=cost, currency=currency,
            by_provider=summary.get("by_provider", {}), samples=summary.get("samples", []),
            errors=[RowError(**e) for e in summary.get("errors", [])],
        )

    def _mode(self) -> str:
        spec = self.row.spec
        mode = spec.get("mode", "auto")
        if mode != "auto":
            return str(mode)
        prov = spec.get("provider")
        if prov and self._core.gw.provider(self._core.name, prov).capabilities.native_campaigns:
            return "native"
        return "fanout"

    # ------------------------------------------------------------ run
    def run(self, *, progress: Callable[[Progress], None] | None = None, wait: bool = True,
            http_client: Any = None) -> Progress:
        """Dispatch (or resume) the campaign; blocks until done, paused, cancelled or quiet hours.

        With ``wait=False`` a campaign whose ``start_at`` is in the future or that
        is inside quiet hours returns at once (status ``scheduled``).
        """
        return asyncio.run(self.arun(progress=progress, wait=wait, http_client=http_client))

    async def arun(self, *, progress: Callable[[Progress], None] | None = None, wait: bool = True,
                   http_client: Any = None) -> Progress:
        """Async :meth:`run`."""
        from smsgate.gateway import AsyncGateway

        core = self._core
        gw = AsyncGateway(core.gw.settings, store=core.store, plugins=core.gw.plugins, http_client=http_client)
        try:
            tenant = gw.tenant(core.name)
            runner = _Runner(self, tenant, progress)
            return await runner.run(wait)
        finally:
            if http_client is None:
                await gw._client.aclose()

    def retry_unknown(self) -> int:
        """Put recipients whose outcome stayed unknown back to ``pending`` (may duplicate!)."""
        store, tenant = self._core.store, self._core.name
        n, after = 0, 0
        while True:
            rows = store.recipients(tenant, self.campaign_id, states=[RecipientState.UNKNOWN], after_id=after, limit=CHUNK)
            if not rows:
                return n
            store.update_recipients(tenant, self.campaign_id, [
                RecipientUpdate(r.id or 0, RecipientState.PENDING, reason="retry_unknown") for r in rows])
            n += len(rows)
            after = rows[-1].id or 0

    # ------------------------------------------------------------ statistics
    def stats(self, period: str = "hour", *, include_provider: bool = False) -> Stats:
        """Statistics of this campaign's messages from the local log (tenant time zone).

        With ``include_provider=True``, a campaign handed to a provider's campaign
        API (native mode) also gets that provider's own statistics for it, under
        ``stats.raw["provider"]`` (skipped quietly when the provider has none).
        """
        from smsgate.stats import compute

        times = self._core.store.message_times(self._core.name, campaign_id=self.campaign_id)
        stats = compute(times, tz=self._core.config.timezone, period=period)
        row = self.row
        if include_provider and row.provider and row.provider_campaign_id:
            prov = self._core.gw.provider(self._core.name, row.provider)
            if prov.capabilities.statistics:
                theirs = self._run_sync(row.provider, prov.statistics(campaign_id=row.provider_campaign_id))
                stats.raw["provider"] = theirs.model_dump(mode="json")
        return stats

    def _run_sync(self, instance: str, operation: Any) -> Any:
        run = self._tenant.run(instance, operation)
        if asyncio.iscoroutine(run):  # an AsyncTenant: drive it to completion here
            return asyncio.run(run)
        return run


class _Runner:
    """Dispatches one campaign through an async tenant."""

    def __init__(self, handle: CampaignHandle, tenant: AsyncTenant, progress: Callable[[Progress], None] | None) -> None:
        self.h = handle
        self.tenant = tenant
        self.core = tenant._core
        self.store = self.core.store
        self.name = self.core.name
        self.cid = handle.campaign_id
        self.progress_cb = progress
        self.limiters: dict[str, Any] = {}

    def _limiter(self, instance: str) -> Any:
        if instance not in self.limiters:
            rate = self.core.config.providers[instance].rate_limit
            if rate:
                from aiolimiter import AsyncLimiter

                self.limiters[instance] = AsyncLimiter(rate, 1.0)
            else:
                self.limiters[instance] = None
        return self.limiters[instance]

    async def _throttle(self, instance: str, n: int) -> None:
        limiter = self._limiter(instance)
        if limiter is None:
            return
        while n > 0:
            take = min(n, int(limiter.max_rate) or 1)
            await limiter.acquire(take)
            n -= take

    def _report(self) -> Progress:
        p = self.h.progress()
        if self.progress_cb is not None:
            self.progress_cb(p)
        return p

    async def run(self, wait: bool) -> Progress:
        row = self.h.row
        if row.status in (CampaignStatus.CANCELLED, CampaignStatus.PAUSED):
            return self._report()
        # a completed campaign runs again only to resolve recipients left sending/unknown
        spec = row.spec
        # scheduled start
        if row.start_at is not None and row.start_at > utcnow():
            self.h._set(status=CampaignStatus.SCHEDULED)
            if not wait:
                return self._report()
            await self._sleep_until(row.start_at)
        mode = self.h._mode()
        await self._recover()
        self.h._set(status=CampaignStatus.RUNNING)
        if mode == "native":
            await self._native(spec)
            return self._finish()
        template = _template_from_spec(spec)
        body = _body(spec)
        batch_size = int(spec.get("batch_size") or 500)
        concurrency = int(spec.get("concurrency") or 32)
        while True:
            status = self.h.row.status
            if status in (CampaignStatus.PAUSED, CampaignStatus.CANCELLED):
                return self._report()
            quiet_end = in_quiet_hours(utcnow(), spec.get("quiet_hours"), self.core.config.timezone)
            if quiet_end is not None:
                if not wait:
                    self.h._set(status=CampaignStatus.SCHEDULED)
                    return self._report()
                await self._sleep_until(quiet_end)
                continue
            claimed = self.store.claim_recipients(self.name, self.cid, batch_size * max(1, concurrency // 4),
                                                  lambda: new_id("msg"))
            if not claimed:
                break
            await self._dispatch(claimed, spec, template, body, concurrency)
            self._report()
        return self._finish()

    def _finish(self) -> Progress:
        p = self.h.progress()
        if p.pending == 0 and p.sending == 0 and self.h.row.status is CampaignStatus.RUNNING:
            self.h._set(status=CampaignStatus.COMPLETED)
        return self._report()

    async def _sleep_until(self, when: datetime) -> None:
        while True:
            left = (when - utcnow()).total_seconds()
            if left <= 0:
                return
            if self.h.row.status in (CampaignStatus.PAUSED, CampaignStatus.CANCELLED):
                return
            await asyncio.sleep(min(left, 5.0))

    async def _dispatch(self, rows: list[RecipientRow], spec: Mapping[str, Any], template: Template | None,
                        body: str, concurrency: int) -> None:
        core = self.core
        msgs: list[OutboundMessage] = []
        by_msg: dict[str, RecipientRow] = {}
        bad: list[RecipientUpdate] = []
        for r in rows:
            try:
                text = textlib.render_template(body, r.fields)
                if core.config.smart_encoding:
                    text = textlib.smart_encode(text)
            except TemplateError as exc:
                bad.append(RecipientUpdate(r.id or 0, RecipientState.SKIPPED, reason="missing_variable",
                                           detail=str(exc)))
                continue
            assert r.message_id is not None
            msg = OutboundMessage(
                to=r.phone, text=text, sender=spec.get("sender") or None, message_id=r.message_id,
                reference=self.cid, variables=r.fields, campaign_id=self.cid,
                provider_options=dict(spec.get("provider_options") or {}),
            )
            msgs.append(msg)
            by_msg[msg.message_id] = r
        if bad:
            self.store.update_recipients(self.name, self.cid, bad)
        prepared = core.prepare_many(msgs, spec.get("provider"))
        done, plans = core.plans(prepared, template)
        results = dict(done)
        pending = iter(plans)

        async def worker() -> None:
            for batch in pending:
                await self._throttle(batch.instance, batch.size)
                results.update(await self.tenant._drive(batch.plan))

        n = max(1, min(concurrency, len(plans)))
        await asyncio.gather(*(worker() for _ in range(n)))
        updates = []
        for mid, res in results.items():
            rec = by_msg.get(mid)
            if rec is None:
                continue
            updates.append(_recipient_update(rec, res.status, res.error_code, res.error))
        self.store.update_recipients(self.name, self.cid, updates)

    async def _recover(self) -> None:
        """Resolve recipients left ``sending`` by a crashed run, and ``unknown`` ones."""
        after = 0
        while True:
            rows = self.store.recipients(self.name, self.cid, states=[RecipientState.SENDING, RecipientState.UNKNOWN],
                                         after_id=after, limit=CHUNK)
            if not rows:
                return
            after = rows[-1].id or 0
            updates = []
            for r in rows:
                upd = await self._resolve(r)
                if upd is not None:
                    updates.append(upd)
            if updates:
                self.store.update_recipients(self.name, self.cid, updates)

    async def _resolve(self, r: RecipientRow) -> RecipientUpdate | None:
        rid = r.id or 0
        if not r.message_id:
            return RecipientUpdate(rid, RecipientState.PENDING)
        try:
            rec = self.store.get_message(self.name, r.message_id)
        except NotFound:
            # claimed but never logged by the gateway: it never left
            return RecipientUpdate(rid, RecipientState.PENDING, message_id="")
        if rec.status not in (Status.QUEUED, Status.UNKNOWN):
            return _recipient_update(r, rec.status, rec.raw_status, rec.error)
        # the request may have left: ask the providers that could have received it
        names = [rec.provider] if rec.provider else self.core.config.route_for(rec.to, phonelib.region_of(rec.to))
        asked = 0
        for name in names:
            prov = self.tenant.provider(name)
            if not prov.capabilities.client_reference:
                continue
            try:
                report = await self.tenant.run(name, prov.find_by_reference(rec.message_id, rec.to))
            except (Unsupported, ProviderError) as exc:
                log.warning("could not resolve %s at %s: %s", rec.message_id, name, exc)
                continue
            asked += 1
            if report is not None:
                self._record_found(rec.message_id, name, report)
                return RecipientUpdate(rid, RecipientState.SENT, reason=None)
        if names and asked == len(names):
            # every provider that could have it says it never arrived: safe to send again
            self.store.update_messages(self.name, [MessageUpdate(
                message_id=rec.message_id, status=Status.FAILED, at=utcnow(), raw_status="not_received",
                source="campaign:resolve", error="not received by the provider (resolved by reference lookup)",
            )])
            return RecipientUpdate(rid, RecipientState.PENDING, message_id="")
        if rec.status is not Status.UNKNOWN:
            self.store.update_messages(self.name, [MessageUpdate(
                message_id=rec.message_id, status=Status.UNKNOWN, at=utcnow(), raw_status="interrupted",
                source="campaign:resolve", error="run interrupted after the send may have left",
            )])
        return RecipientUpdate(rid, RecipientState.UNKNOWN, reason="unresolved")

    def _record_found(self, message_id: str, instance: str, report: DeliveryReport) -> None:
        status = report.status if report.status is not Status.UNKNOWN else Status.SUBMITTED
        self.store.update_messages(self.name, [MessageUpdate(
            message_id=message_id, status=status, at=utcnow(), raw_status=report.raw_status,
            source=f"{instance}:reference", provider=instance,
            provider_message_id=report.provider_message_id, error="",
        )])

    async def _native(self, spec: Mapping[str, Any]) -> None:
        """Hand the whole audience to the provider's campaign API in one campaign."""
        instance = spec.get("provider")
        if not instance:
            raise ConfigError("native mode needs a provider (create(..., provider='name'))")
        prov = self.tenant.provider(instance)
        if not prov.capabilities.native_campaigns:
            raise Unsupported(instance, "native campaigns", "use mode='fanout'")
        row = self.h.row
        if row.provider_campaign_id:
            return  # already handed over by an earlier run
        contacts: list[Contact] = []
        ids: list[int] = []
        after = 0
        list_id = spec.get("provider_list_id")
        while list_id is None:
            rows = self.store.recipients(self.name, self.cid, states=[RecipientState.PENDING, RecipientState.SENDING],
                                         after_id=after, limit=CHUNK)
            if not rows:
                break
            after = rows[-1].id or 0
            opted = self.store.opted_out(self.name, {r.phone for r in rows})
            skipped = [RecipientUpdate(r.id or 0, RecipientState.SKIPPED, reason="opted_out") for r in rows if r.phone in opted]
            if skipped:
                self.store.update_recipients(self.name, self.cid, skipped)
            for r in rows:
                if r.phone not in opted:
                    fields = dict(r.fields)
                    name = fields.pop("name", None)
                    contacts.append(Contact(phone=r.phone, name=name, fields=fields))
                    ids.append(r.id or 0)
        template = _template_from_spec(spec)
        campaign = Campaign(
            id=self.cid, name=row.name, text=spec.get("text") or (template.body if template else None),
            template_id=(template.provider_ids.get(instance) or template.provider_ids.get(prov.name)) if template else None,
            sender=spec.get("sender") or self.core.config.providers[instance].sender or self.core.config.sender,
            contacts=contacts, contact_list_id=list_id, start_at=row.start_at, provider=instance,
            provider_options=dict(spec.get("provider_options") or {}),
        )
        created = await self.tenant.run(instance, prov.create_campaign(campaign))
        self.h._set(provider=instance, provider_campaign_id=created.id or "")
        for i in range(0, len(ids), CHUNK):
            self.store.update_recipients(self.name, self.cid, [
                RecipientUpdate(rid, RecipientState.SENT, reason="native") for rid in ids[i : i + CHUNK]])


def _recipient_update(r: RecipientRow, status: Status, code: str | None, error: str | None) -> RecipientUpdate:
    rid = r.id or 0
    if status in (Status.QUEUED, Status.SUBMITTED, Status.SENT, Status.DELIVERED):
        return RecipientUpdate(rid, RecipientState.SENT)
    if status is Status.UNKNOWN:
        return RecipientUpdate(rid, RecipientState.UNKNOWN, reason="unknown_outcome", detail=error)
    if status is Status.REJECTED and code == "opted_out":
        return RecipientUpdate(rid, RecipientState.SKIPPED, reason="opted_out", detail=error)
    if status is Status.REJECTED and code in ("no_route", "unsupported"):
        return RecipientUpdate(rid, RecipientState.SKIPPED, reason=code, detail=error)
    return RecipientUpdate(rid, RecipientState.FAILED, reason=code, detail=error)


def preview_text(spec: Mapping[str, Any]) -> str:
    """The campaign's body text or template body (for display)."""
    return _body(spec)


__all__ += ["AudienceRow", "preview_text"]
