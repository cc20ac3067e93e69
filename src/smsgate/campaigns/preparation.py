"""Preparing a campaign: its audience streamed into the store, classified row by row.

Rows are read in chunks of :data:`PREP_CHUNK`. Each row is classified in order:

1. a row the audience could not read: skipped ``invalid`` (with the reader's reason);
2. a number that is not valid for the tenant's region: skipped ``invalid``;
3. a template variable without a value in the row: skipped ``missing_variable``
   (never sent with a blank where a name belongs);
4. no route to the number: skipped ``no_route``; a route none of whose providers carries
   messages to it (:meth:`~smsgate.provider.Provider.reaches`): ``unsupported``;
5. opted out of every sender, or of the campaign's sender (one store query per chunk):
   skipped ``opted_out``;
6. a text that cannot be encoded (e.g. a lone surrogate in a name): skipped ``invalid_text``;
   a text of more segments than the tenant's ``max_segments``: skipped ``too_long``;
7. otherwise: ``pending``, with its segments counted and its cost estimated.

Every row with a valid number carries its E.164 number as its *key*, unique within
the campaign: the store refuses a second row with the same key, and that row is
stored as skipped ``duplicate`` ("already at line N"). Deduplication is thus the
store's (a unique index), and memory stays flat for any audience size.

The store's work runs on a background thread while the next chunk is read and
classified: the opt-out query of a chunk (step 5 turns a pending or ``invalid_text``
row into ``opted_out`` there, before its rows are written) and the write itself. The
preparing thread never waits for the store's lock (it did when it queried opt-outs
itself: the query waited for the previous chunk's write, so reading and writing
took turns instead of overlapping). Both threads run Python, though, and take turns
under the GIL: a large CSV file into a SQLite file is therefore written by a child
process instead (:mod:`~smsgate.campaigns.writer_process`), which the writer thread
hands each chunk to; the writing itself is :class:`~smsgate.campaigns.storing.ChunkStore`'s
in either case.
"""

from __future__ import annotations

import functools
import itertools
import logging
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from smsgate import phone as phonelib
from smsgate import text as textlib
from smsgate.campaigns import writer_process
from smsgate.campaigns.audiences import Audience, CsvAudience, Record
from smsgate.campaigns.storing import ChunkStore, Tally
from smsgate.core.policy import TenantPolicy, check_encodable, storable_fields
from smsgate.errors import ConfigError, TooManySegments, ValidationError
from smsgate.models import UNSTORABLE, storable
from smsgate.provider import Provider
from smsgate.routing import weight_key
from smsgate.store.base import RecipientRow, RecipientState, Store

__all__ = ["MAX_ERRORS", "PREP_CHUNK", "Preparation"]

log = logging.getLogger(__name__)

#: Audience rows per chunk: one opt-out query and one store write each.
PREP_CHUNK = 5000
#: Errors kept in a campaign's summary (the store keeps every skipped row with its reason).
MAX_ERRORS = 1000
#: Distinct rendered texts whose segment counts are remembered during one preparation.
SEGMENT_CACHE = 10_000

_PENDING = RecipientState.PENDING
_SKIPPED = RecipientState.SKIPPED
#: An encoding's value by a dict lookup (``Encoding.GSM7.value`` is a Python-level property: ~0.5 us a row)
_ENCODING_VALUE = {encoding: encoding.value for encoding in textlib.Encoding}

_Tally = Tally
#: A classified chunk: its rows, each pending row's tally (None for skipped ones) and text (for a
#: sample), the numbers as given, each row's location (None: the audience's ``locate(line)``), and
#: the indexes of the rows whose number step 5 checks (pending and ``invalid_text`` rows), in order.
#: Per row it holds no container the garbage collector tracks but the row itself (strings are not
#: tracked, each tally is one shared tuple): every such object that outlives its chunk's classifying
#: brings the next collection nearer, and each collection walks all of them again.
_Chunk = tuple[list[RecipientRow], list[_Tally | None], list[str | None], list[str], list[str | None], list[int]]


class _Writer:
    """Stores chunks of rows, in order, on a background thread.

    The store's own work (SQLite's C code, a PostgreSQL round trip) then overlaps
    the reading of the next rows. With ``child`` (:func:`writer_process.usable
    <smsgate.campaigns.writer_process.usable>`), a writer process is started and takes over
    at the first chunk after it is ready; until then, or if it never is, the thread writes.
    A failed write stops the preparation at its next :meth:`put` (or at :meth:`close`) with
    the store's error.
    """

    def __init__(self, chunks: ChunkStore, child: Callable[[], writer_process.ChildWriter] | None = None,
                 depth: int = 2) -> None:
        self._chunks = chunks
        self._start_child = child
        self._child: writer_process.ChildWriter | None = None
        self._handed = False  # the child writes from the next chunk on
        self._queue: queue.Queue[_Chunk | None] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._abort = False  # the preparation failed: nothing more is written
        self._thread = threading.Thread(target=self._run, name="smsgate-campaign-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        if self._start_child is not None:
            try:
                self._child = self._start_child()
            except Exception as exc:  # the thread writes everything (it must live on: put() waits for it)
                log.debug("campaign writer process not started: %s", exc)
        while True:
            item = self._queue.get()
            if item is None:
                return
            if self._error is None and not self._abort:  # after a failure, drain without writing
                try:
                    self._write(item)
                except BaseException as exc:  # re-raised in the preparing thread
                    self._error = exc

    def _write(self, chunk: _Chunk) -> None:
        child = self._child
        if child is not None and not self._handed:
            if child.gone.is_set():  # it never answered: the thread writes everything
                log.debug("campaign writer process did not start; writing in this process")
                child.stop()
                self._child = child = None
            elif child.ready.is_set():
                stored = self._chunks
                child.begin(stored.max_errors - len(stored.errors), stored.max_samples - len(stored.samples))
                self._handed = True
        if child is not None and self._handed:
            child.write(*chunk)
        else:
            self._chunks.write(*chunk)

    def put(self, chunk: _Chunk) -> None:
        """Queue a chunk (waits while ``depth`` chunks are queued)."""
        if self._error is not None:
            raise self._error
        self._queue.put(chunk)

    def close(self, *, check: bool = True) -> None:
        """Wait until every queued chunk is written; raise a write error if ``check``.

        Without ``check`` (the preparation failed) nothing more is written: a writer process is
        killed first (what it was writing is rolled back), before anything that a second Ctrl-C
        could cut short, and is reaped before this returns."""
        if not check:
            self._abort = True
            child = self._child
            if child is not None:
                child.kill()
        self._queue.put(None)
        self._thread.join()
        child, self._child = self._child, None
        if child is not None:
            if check and self._error is None and self._handed:
                try:
                    self._chunks.absorb(*child.finish())
                except BaseException as exc:
                    self._error = exc
            child.stop()
        if check and self._error is not None:
            raise self._error


class Preparation:
    """One campaign's preparation into the store (see the module docstring)."""

    def __init__(self, store: Store, policy: TenantPolicy, campaign_id: str, audience: Audience, body: str,
                 provider: str | None, kind: str | None = None, sender: str | None = None) -> None:
        self.store = store
        self.policy = policy
        self.campaign_id = campaign_id
        self.audience = audience
        self.body = body
        self.names = tuple(sorted(textlib.template_variables(body)))
        self.provider = provider
        self.kind = kind
        #: the campaign's sender ID (else each route's provider's, else the tenant's)
        self.sender = sender
        self.rows = 0
        self.skipped: dict[str, int] = {}
        #: pending recipients per (provider, encoding, segments), as classified
        self.counts: dict[tuple[str, str, int], int] = {}
        self._segments: dict[str, textlib.SegmentInfo] = {}
        self._tallies: dict[_Tally, _Tally] = {}  # each tally once (a row refers to it)
        self._stored = self._chunk_store()

    def run(self, records: Iterator[Record], progress: Callable[[int], None] | None = None) -> None:
        """Prepare every record into the store (raises what the audience or store raised).

        ``progress`` is called with the number of rows read so far after each chunk.
        """
        audience, store = self.audience, self.store
        child = None
        if isinstance(audience, CsvAudience) and writer_process.usable(store, audience):
            cid, scopes, rule = self.campaign_id, self._stored.scopes, self._stored.rule

            def child() -> writer_process.ChildWriter:
                return writer_process.ChildWriter(store, self.policy.name, cid, audience, scopes, rule)

        writer = _Writer(self._stored, child)
        records = iter(records)  # an audience may hand over a list: read it once
        ok = False
        try:
            # a chunk's records are classified as they are read: none is kept (see _Chunk)
            while (chunk := self._classify(itertools.islice(records, PREP_CHUNK))) is not None:
                writer.put(chunk)
                if progress is not None and len(chunk[0]) == PREP_CHUNK:
                    progress(self.rows)
            ok = True
            if progress is not None:
                progress(self.rows)
        finally:
            writer.close(check=ok)

    def _chunk_store(self) -> ChunkStore:
        """The writing's part of this preparation (step 5, the write, duplicates): the opt-out
        scope of each provider instance's sender worked out here, from the tenant's policy."""
        policy, sender = self.policy, self.sender
        scopes: dict[str | None, str | None] = {None: policy.sender_scope(sender)}
        for instance in policy.config.providers:
            scopes[instance] = policy.sender_scope(policy.sender_of(sender, instance))
        return ChunkStore(self.store, policy.name, self.campaign_id, self.audience.locate, scopes,
                          policy.scope_rule, max_errors=MAX_ERRORS)

    # ----------------------------------------------------------------- classifying
    @functools.cached_property
    def _kind_told(self) -> str:
        """What a ``no_route`` detail adds about the kind, as :class:`~smsgate.errors.NoRoute` says it:
        the campaign's kind, or that it has none while some routes carry only their kinds."""
        if self.kind:
            return f" (kind {self.kind!r})"
        kinds = sorted({k for rule in self.policy.router.rules for k in rule.kinds})
        if not kinds:
            return ""
        return f" (the campaign has no kind; some routes carry only kinds {', '.join(kinds)}: give one, kind=/--kind)"

    def _route(self) -> Callable[[str], str | None]:
        router, kind, cid, policy = self.policy.router, self.kind, self.campaign_id, self.policy
        limited: dict[str, bool] = {}  # instance -> whether it limits the numbers it carries

        def limits(name: str) -> bool:  # asked once per instance: most carry any number (no call per row)
            try:
                limited[name] = type(policy.provider(name)).reaches is not Provider.reaches
            except ConfigError:  # cannot be built: the run tries it and reports why, as policy.reaches
                limited[name] = False
            return limited[name]

        if self.provider:
            forced = self.provider
            if not limits(forced):
                return lambda _phone: forced
            return lambda phone: forced if policy.reaches(forced, phone) else ""

        plain: dict[int, str] = {}  # id(rule) -> its first provider, for an unweighted rule whose first carries any

        def route(phone: str) -> str | None:  # router.first(phone, kind, weight_key(...)), the key made only if used
            rule = router.match(phone, kind)
            if rule is None:
                return None
            first = plain.get(id(rule))
            if first is not None:
                return first
            if not rule.tier and rule.providers:
                name = rule.providers[0]
                limit = limited.get(name)
                if not (limits(name) if limit is None else limit):
                    plain[id(rule)] = name  # (the router keeps its rules alive: an id stays its rule's)
                    return name
            # the first that carries messages to the number (policy.reaches), as the run picks it;
            # "" when the route has providers but none carries them
            for name in rule.order(weight_key("", None, cid, phone)) if rule.tier else rule.providers:
                limit = limited.get(name)
                if not (limits(name) if limit is None else limit) or policy.reaches(name, phone):
                    return name
            return ""

        return route

    def _classify(self, chunk: Iterable[Record]) -> _Chunk | None:
        """One chunk's rows, in row order, and what each pending row adds to the summary
        (``None`` when ``chunk`` has no records)."""
        region = self.policy.normalizer.region
        fast, slow, invalid = phonelib._normalize_fast, phonelib._normalize_slow, phonelib._invalid
        route = self._route()
        names = self.names
        phone_column = self.audience.phone_column  # named as the file names it (once a chunk)
        rows: list[RecipientRow] = []
        candidates: list[int] = []
        given: list[str] = []
        where: list[str | None] = []
        for seq, line, raw, fields, error, location in chunk:
            given.append(raw)
            where.append(location)
            if error:
                rows.append(self._skip(seq, line, location, raw, raw, fields, "invalid", error, None))
                continue
            if "\0" in raw or (fields and "\0" in "".join(fields.values())):  # no SMS (nor PostgreSQL) takes it
                column = phone_column if "\0" in raw else next(k for k, v in fields.items() if "\0" in v)
                rows.append(self._skip(seq, line, location, raw, raw, fields, "invalid",
                                       f"column {column}: contains a NUL character", None))
                continue
            e164 = fast(raw, region)
            if not e164:
                number, reason = slow(raw, region)
                if number is None:
                    detail = f"column {phone_column}: {invalid(raw, reason).reason}"
                    rows.append(self._skip(seq, line, location, raw, raw, fields, "invalid", detail, None))
                    continue
                e164 = number
            if names and not all(map(fields.get, names)):
                missing = ", ".join(repr(n) for n in names if not fields.get(n))
                rows.append(self._skip(seq, line, location, raw, e164, fields, "missing_variable",
                                       f"missing variable(s) {missing}", e164))
                continue
            provider = route(e164)
            if not provider:
                reason, why = ("no_route", f"no route for {e164}{self._kind_told}") if provider is None else (
                    "unsupported", f"provider {self.provider!r} does not carry messages to {e164}" if self.provider
                    else f"no provider on the route carries messages to {e164}")
                rows.append(self._skip(seq, line, location, raw, e164, fields, reason, why, e164))
                continue
            candidates.append(len(rows))
            rows.append(RecipientRow(seq, e164, _PENDING, fields, None, None, None, None, provider, None, line, e164))
        if not rows:
            return None
        self.rows += len(rows)
        tallies: list[_Tally | None] = [None] * len(rows)
        texts: list[str | None] = [None] * len(rows)
        checked: list[int] = []
        if candidates:
            self._finish(rows, given, where, candidates, tallies, texts, checked)
        return rows, tallies, texts, given, where, checked

    def _skip(self, seq: int, line: int, location: str | None, raw: str, phone: str, fields: dict[str, str],
              reason: str, detail: str, key: str | None) -> RecipientRow:
        """A skipped row, counted in the summary as classified (the writer corrects for duplicates)."""
        skipped = self.skipped
        skipped[reason] = skipped.get(reason, 0) + 1
        if location is None:
            location = self.audience.locate(line)
        if UNSTORABLE.search(phone):  # a number as given, NUL or a lone surrogate in it: kept as U+FFFD
            phone = storable(phone)
        fields = storable_fields(fields)  # what no store keeps (NUL, a lone surrogate) as U+FFFD
        return RecipientRow(seq, phone, _SKIPPED, fields, reason, f"{location}: {detail}", None, None, None, None,
                            line, key)

    def _finish(self, rows: list[RecipientRow], given: list[str], where: list[str | None], candidates: list[int],
                tallies: list[_Tally | None], texts: list[str | None], checked: list[int]) -> None:
        """Rendering and segment counting of a chunk's pending rows (opt-outs: :meth:`_opt_out`);
        ``checked`` gets the rows whose number step 5 checks."""
        body = self.body
        fixed = body if not self.names and "{" not in body else None
        # a CSV file's cells are texts, and step 3 saw every variable with a value: what
        # render_template() checks besides is settled, and the rendering is its format_map alone
        csv_cells = (type(self.audience).records is CsvAudience.records
                     and type(self.audience).rows is CsvAudience.rows)
        fill = textlib.template_filler(body) if fixed is None and csv_cells else None
        smart = self.policy.config.smart_encoding
        segments_cache, check_segments = self._segments, self.policy.check_segments
        counts = self.counts  # as classified; the writer corrects for opt-outs and duplicates
        encoding_value, known = _ENCODING_VALUE, self._tallies
        for i in candidates:
            r = rows[i]
            try:
                text = fixed if fixed is not None else fill(r.fields) if fill is not None else \
                    textlib.render_template(body, r.fields)
                if smart:
                    text = textlib.smart_encode(text)
                info = segments_cache.get(text)
                if info is None:  # a text's checks once: only texts that pass them are remembered
                    check_encodable(text)
                    info = textlib.segment_info(text)
                    check_segments(text, info.segments)
                    if len(segments_cache) < SEGMENT_CACHE:
                        segments_cache[text] = info
            except TooManySegments as exc:
                rows[i] = self._skip(r.seq, r.line or 0, where[i], given[i], r.phone, r.fields, "too_long", exc.reason,
                                     r.phone)
                continue
            except ValidationError as exc:
                rows[i] = self._skip(r.seq, r.line or 0, where[i], given[i], r.phone, r.fields, "invalid_text",
                                     exc.reason, r.phone)
                checked.append(i)
                continue
            if not csv_cells:  # (a CSV file's cells are UTF-8: no surrogate; NUL was refused as read)
                r.fields = storable_fields(r.fields)  # one the text does not use, as every store keeps it
            key = (r.provider or "", encoding_value[info.encoding], info.segments)
            key = known.setdefault(key, key)
            r.segments = info.segments
            tallies[i] = key
            texts[i] = text
            counts[key] = counts.get(key, 0) + 1
            checked.append(i)

    def summary(self) -> dict[str, Any]:
        """The campaign's summary (what :meth:`CampaignHandle.preview` shows)."""
        by_provider: dict[str, int] = {}
        segments_by_provider: dict[str, int] = {}
        encoding: dict[str, int] = {}
        undo_counts, undo_skipped = self._stored.undo_counts, self._stored.undo_skipped
        counts = {k: n - undo_counts.get(k, 0) for k, n in self.counts.items()}
        skipped = {k: n - undo_skipped.get(k, 0)
                   for k, n in {"duplicate": 0, "opted_out": 0, **self.skipped}.items()}
        for (prov, enc, segs), n in counts.items():
            by_provider[prov] = by_provider.get(prov, 0) + n
            segments_by_provider[prov] = segments_by_provider.get(prov, 0) + n * segs
            encoding[enc] = encoding.get(enc, 0) + n
        return {"rows": self.rows, "recipients": sum(by_provider.values()),
                "segments": sum(segments_by_provider.values()), "skipped": {k: n for k, n in skipped.items() if n},
                "by_provider": by_provider, "segments_by_provider": segments_by_provider,
                "encoding": encoding, "samples": self._stored.samples, "errors": self._stored.errors}
