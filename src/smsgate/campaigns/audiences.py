"""Where a campaign's recipients come from: CSV files, any iterable, provider-side lists.

Audiences stream their rows (:class:`AudienceRow`): a file of any size is never
held in memory. A row that cannot be read is still a row, with its ``error``
(the campaign skips it and says where and why); a file that cannot be read at
all raises a :class:`~smsgate.errors.ValidationError` naming the file and line,
and ``campaigns.create()`` then stores nothing.
"""

from __future__ import annotations

import codecs
import csv
import itertools
import operator
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from smsgate.core.policy import wrong_type
from smsgate.errors import ValidationError
from smsgate.models import Contact, builtin_field, builtin_field_error

__all__ = [
    "Audience",
    "AudienceRow",
    "ContactsAudience",
    "CsvAudience",
    "ProviderListAudience",
]

T = TypeVar("T")

#: A last "line" fed to the CSV reader after the file's own: alone on its line (the file ended
#: cleanly) it is dropped; at the end of a field, a quote opened in that field was never closed.
_EOF = "\ue000smsgate-end-of-file\ue000"

#: The longest line of a CSV audience, in characters (its line break not counted): a longer one
#: (a path to ``/dev/zero``, a binary or data file given by mistake) is a
#: :class:`~smsgate.errors.ValidationError` naming the line, after reading no more than this;
#: a row of recipients is a few hundred characters (a text is at most ``max_segments`` long).
MAX_LINE_CHARS = 1024 * 1024


def _bounded_lines(fh: Any, locate: Callable[[int], str]) -> Iterator[str]:
    """The lines of the text file ``fh`` (line breaks kept), then :data:`_EOF`; a line over
    :data:`MAX_LINE_CHARS` raises :class:`ValidationError` at ``locate(its number)``."""
    limit = MAX_LINE_CHARS
    readline = fh.readline
    number = 0
    while line := readline(limit + 2):  # room for the limit and a "\r\n"
        number += 1
        if len(line) > limit and len(line.rstrip("\r\n")) > limit:
            raise ValidationError(f"a line longer than {limit:,} characters: not a CSV file of recipients "
                                  "(is it the right file?)", location=locate(number))
        yield line
    yield _EOF


def shown_names(names: Sequence[str], columns: int = 20, width: int = 60) -> tuple[list[str], str]:
    """Column names as an error shows them: the first ``columns``, each cut to ``width``
    characters, and `` and N more`` (or ``""``). The first line of a file that is no CSV of
    recipients (given by mistake: a log, a data file of 20,000 columns, ``/proc/self/environ``)
    is not repeated whole, with whatever it holds, into an error."""
    shown = [name if len(name) <= width else name[:width - 3] + "..." for name in names[:columns]]
    return shown, f" and {len(names) - columns} more" if len(names) > columns else ""


def _shown_header(header: list[str]) -> str:
    """``header`` as an error shows it (:func:`shown_names`)."""
    shown, more = shown_names(header)
    return f"{shown!r}{more}"


#: How spreadsheet workbooks start: a zip archive (.xlsx, .ods) or an OLE compound file (.xls).
_WORKBOOKS = (b"PK\x03\x04", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1")

#: What a phone number cell is made of (and it has 6 to 20 digits: :func:`_phone_like`).
_PHONE_CHARS = re.compile(r"\+?[\d\s().\-/]{6,40}")


def _phone_like(text: str) -> bool:
    """Whether ``text`` could be a phone number as people type them (``+234 803 123 4567``...)."""
    return _PHONE_CHARS.fullmatch(text) is not None and 6 <= sum(c.isdigit() for c in text) <= 20


#: What makes a spreadsheet read a cell as a formula (OWASP's CSV-injection list).
FORMULA_STARTS = frozenset("=+-@\t\r")


def spreadsheet_quote(value: str) -> str:
    """``value`` as an exported CSV cell: a leading ``'`` where a spreadsheet would read it as
    a formula (it starts with one of :data:`FORMULA_STARTS`, after any ``'``), so opening the
    file runs nothing. :func:`spreadsheet_unquote` gives ``value`` back."""
    return "'" + value if value.lstrip("'")[:1] in FORMULA_STARTS else value


def spreadsheet_unquote(value: str) -> str:
    """A CSV cell as :class:`CsvAudience` reads it: the ``'`` :func:`spreadsheet_quote` put
    before a formula-like value taken off (other values as they are)."""
    return value[1:] if value[:1] == "'" and value.lstrip("'")[:1] in FORMULA_STARTS else value


#: A line break as the CSV reader sees one (not str.splitlines()'s form feeds and others).
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def _breaks(text: str) -> int:
    """How many line breaks ``text`` holds (``\\r\\n`` is one, as the reader counts lines)."""
    return text.count("\n") + text.count("\r") - text.count("\r\n")


@dataclass
class AudienceRow:
    """One input row: its number (as given), fields, a read error if any, and where it is."""

    seq: int
    phone: str
    fields: dict[str, str]
    error: str | None = None
    location: str = ""
    line: int = 0


#: One audience row as preparation reads it: (seq, line, phone, fields, error, location);
#: ``location`` None means ``audience.locate(line)`` (only computed for skipped rows).
Record = tuple[int, int, str, dict[str, str], str | None, str | None]


class Audience:
    """Where a campaign's recipients come from. Subclasses stream :class:`AudienceRow`."""

    description: str = ""
    #: The column the numbers are read from, as a skipped row's detail names it
    #: (``column Mobile: '12345' is not a valid phone number...``).
    phone_column: str = "phone"
    #: The tenant whose stored data the audience reads (a stored contact list's), or ``None``
    #: (a file, a list of numbers): only that tenant's campaigns take it.
    tenant: str | None = None

    def rows(self) -> Iterator[AudienceRow]:
        """Stream the rows (any size; never all in memory)."""
        raise NotImplementedError

    def locate(self, line: int) -> str:
        """Human-readable place of a row, from its ``line``."""
        return f"row {line}"

    def records(self) -> Iterator[Record]:
        """:meth:`rows` as the tuples preparation reads."""
        for r in self.rows():
            yield (r.seq, r.line, r.phone, r.fields, r.error, r.location)

    def variables(self) -> set[str] | None:
        """The template variables every row provides (a CSV file's columns), or ``None``
        when rows may differ (then a row lacking one is skipped as ``missing_variable``).

        ``campaigns.create()`` refuses a placeholder that no row can fill before it
        stores anything.
        """
        return None

    #: What :meth:`variables_for` gives, as an error about a placeholder names them.
    variables_are: str = "columns"

    def variables_for(self, names: set[str]) -> set[str] | None:
        """The variables rows can fill, enough to tell which of the placeholders ``names``
        none can (``campaigns.create()`` refuses those before it stores anything), or ``None``
        when it cannot be told. By default :meth:`variables`."""
        return self.variables()


def shown_name(name: str) -> str:
    """A file's ``name`` (or path) as messages and the store hold it: a name that is not valid
    text (on POSIX, bytes the file system's encoding does not decode: surrogate escapes, which
    no UTF-8 text, SQLite's or PostgreSQL's, can hold) with those bytes as ``\\xff``."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        try:
            return os.fsencode(name).decode("utf-8", "backslashreplace")
        except UnicodeError:  # a lone surrogate that is no escaped byte
            return name.encode("utf-8", "backslashreplace").decode("utf-8")
    return name


def csv_location(name: str, line: int) -> str:
    """Where ``line`` of the CSV file ``name`` is, as messages about its rows say it
    (``name.csv, line N``)."""
    return f"{name}, line {line}"


#: Words in a CSV column name that say it holds phone numbers (a header without the ``phone``
#: column asked for: "Phone Number", "Mobile", "Cell"), suggested as the ``--phone-column``.
_PHONE_WORDS = ("mobile", "cell", "gsm")


def check_csv_path(path: object) -> None:
    """A :class:`ValidationError` naming ``path`` unless it is the path of a file: not an open
    file, bytes (an upload's content) nor the CSV text itself (a ``str`` with a line break that
    names no file). A web app saves an upload to a file first: the campaign stores every row when
    it is created, so the file may be deleted once ``create()`` returns."""
    if not isinstance(path, (str, os.PathLike)):
        wrong = wrong_type("path", path, "the path of a CSV file (str or pathlib.Path)")
        raise ValidationError(f"{wrong.reason}: save an upload or other data in memory to a file first "
                              "(tempfile) and give its path", field="path")
    if isinstance(path, str) and ("\n" in path or "\r" in path) and not os.path.exists(path):
        # never repeated into the error: it holds the recipients' numbers
        raise ValidationError("holds a line break and names no file: it looks like the CSV text itself, not "
                              "the path of a file; write it to a file (tempfile) and give that file's path",
                              field="path")


class CsvAudience(Audience):
    """A CSV file, streamed row by row.

    ``phone`` names the column holding numbers; ``name`` the optional name column;
    ``fields`` maps template variable -> column (default: every other column under
    its own name). Row numbers in errors are file line numbers (the header is line 1).
    Raises :class:`~smsgate.errors.ValidationError` for a bad ``delimiter`` or
    ``encoding`` at once, and, while reading, for a file that is not in its
    encoding, is not CSV (a NUL byte, a field over :func:`csv.field_size_limit`
    characters), lacks a column, or has a quote that is never closed, naming the
    file and line.

    A quoted field may hold line breaks (an address over two lines). One whose
    quote is never closed would take in the rows after it, so that they vanish;
    it is an error naming the line where the quote opened: a quoted field that
    runs to the end of the file, or one that holds a line that reads as a row of
    its own (as many cells as the header, a phone number in the phone column).
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
        check_csv_path(path)
        self.path = Path(path)
        self.phone_column = phone
        self.name_column = name
        self.fields = fields
        if not isinstance(delimiter, str) or len(delimiter) != 1 or delimiter in "\r\n\"":
            raise ValidationError(f"must be one character (not a quote or line break), not {delimiter!r}",
                                  field="delimiter",
                                  value=delimiter)
        self.delimiter = delimiter
        try:
            codecs.lookup(encoding)
        except (LookupError, TypeError):
            raise ValidationError(f"unknown encoding {encoding!r}", field="encoding", value=encoding) from None
        self.encoding = encoding
        self.description = f"CSV {shown_name(self.path.name)}"

    def locate(self, line: int) -> str:
        """``name.csv, line N``."""
        return csv_location(shown_name(self.path.name), line)

    def hint(self, option: str, value: str | None = None) -> str:
        """How an error tells the user to set ``option`` (``"delimiter"``, ``"encoding"`` or
        ``"phone"``) to ``value`` (``None``: a value of their choosing): ``CsvAudience(...,
        delimiter=';')``. A front end overrides it to name its own options (``smsgate campaign
        create`` names its ``--delimiter``, ``--encoding`` and ``--phone-column`` flags)."""
        return f"CsvAudience(..., {option}={'...' if value is None else repr(value)})"

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
            raise ValidationError(f"column(s) {', '.join(map(repr, missing))} not in header {_shown_header(header)}",
                                  location=self.locate(1))
        for col in dict.fromkeys(mapping.values()):  # which of them holds the value?
            if header.count(col) > 1:
                where = " and ".join(str(i + 1) for i, h in enumerate(header) if h == col)
                raise ValidationError(f"column {col!r} appears more than once in the header (columns {where}): "
                                      "rename the others", location=self.locate(1), field=col)
        return mapping

    def rows(self) -> Iterator[AudienceRow]:
        """Stream rows; a malformed file raises :class:`ValidationError` naming the line."""
        locate = self.locate
        for seq, line, number, values, err, _where in self.records():
            yield AudienceRow(seq, number, values, err, locate(line), line)

    def _header_error(self, header: list[str]) -> ValidationError:
        sep = re.fullmatch(r"sep=(.)", self.delimiter.join(header))
        if sep:  # Excel's separator directive, written above the header by some locales
            other = sep.group(1)
            then = "" if other == self.delimiter else f", and read the file with {self.hint('delimiter', other)}"
            return ValidationError(f"this is Excel's separator line {sep.group()!r}, not a header: delete that "
                                   f"line so that the column names are on line 1{then}", location=self.locate(1))
        hint = f" (name the column that holds the numbers: {self.hint('phone')})"
        wanted = self.phone_column.strip().casefold()
        alike = [cell for cell in header if cell.strip().casefold() == wanted]  # "Phone", " phone"
        # "Phone Number", "Mobile", "cell": a column whose name says it holds the numbers
        words = ((wanted,) if wanted else ()) + (_PHONE_WORDS if wanted == "phone" else ())
        likely = [cell for cell in header if any(w in cell.casefold() for w in words)]
        if alike:
            hint = f" (did you mean {alike[0]!r}? {self.hint('phone', alike[0])})"
        elif len(likely) == 1 and len(header) > 1:
            hint = f" (is it {likely[0]!r}? {self.hint('phone', likely[0])})"
        elif len(header) == 1:
            for other in (";", "\t", "|", ","):
                if other != self.delimiter and other in header[0]:
                    hint = f" (the file looks {'tab' if other == chr(9) else repr(other)}-separated: " \
                           f"{self.hint('delimiter', other)})"
                    break
        return ValidationError(f"no {self.phone_column!r} column in header {_shown_header(header)}{hint}",
                               location=self.locate(1), field=self.phone_column)

    def records(self) -> Iterator[Record]:
        """:meth:`rows` as plain tuples, the location left to :meth:`locate` (preparation's fast path)."""
        return self._reading(self._read)  # (a generator: nothing is opened before the first row is asked for)

    def variables(self) -> set[str] | None:
        """The template variables each row provides: the mapped columns (read from the header);
        ``None`` for a subclass with rows of its own."""
        if type(self).rows is not CsvAudience.rows or type(self).records is not CsvAudience.records:
            return None
        return set(next(self._reading(lambda reader: iter([self._mapping(self._header(reader))]))))

    def _reading(self, read: Callable[[Any], Iterator[T]]) -> Iterator[T]:
        """``read(csv reader)`` over the open file; a file that cannot be read raises
        :class:`ValidationError` naming it and the line."""
        try:
            fh = open(self.path, newline="", encoding=self.encoding)  # noqa: SIM115 - closed below
        except OSError as exc:
            raise ValidationError(f"cannot open audience file: {exc.strerror}",
                                  location=shown_name(str(self.path))) from None
        with fh:
            reader = csv.reader(_bounded_lines(fh, self.locate), delimiter=self.delimiter)
            try:
                yield from read(reader)
            except UnicodeDecodeError as exc:
                raise self._decode_error(exc) from None
            except csv.Error as exc:
                # (Python 3.10's csv refuses a NUL byte, "line contains NUL", on the line it reads)
                raise ValidationError(f"not readable as CSV: {exc}", location=self.locate(reader.line_num)) from None

    def _header(self, reader: Any) -> list[str]:
        try:
            raw = next(reader)
        except csv.Error as exc:
            raise self._too_large(exc, 1) from None
        if raw == [_EOF]:
            raise ValidationError("the file is empty", location=self.locate(1))
        if reader.line_num > 1:  # a column name with a line break: a quote left open
            unclosed = self._unclosed(raw, 1, [], len(raw), -1)
            raise unclosed or ValidationError(
                "a column name in the header holds a line break (is a quote left open?)", location=self.locate(1))
        header = [spreadsheet_unquote(h.strip()) for h in raw]
        if self.phone_column not in header:  # (a file that is no CSV of recipients: said first)
            raise self._header_error(header)
        bad = next((i for i, h in enumerate(header) if "\x00" in h), None)
        if bad is not None:  # a field name of every row, which no store keeps (PostgreSQL's jsonb)
            shown = _shown_header([header[bad].replace("\x00", "?")])[1:-1]  # cut as a header error cuts it
            raise ValidationError(f"the name of column {bad + 1} ({shown}) holds a NUL character (\\x00), which "
                                  "the store cannot keep", location=self.locate(1))
        if header.count(self.phone_column) > 1:  # which of them holds the numbers?
            where = " and ".join(str(i + 1) for i, h in enumerate(header) if h == self.phone_column)
            raise ValidationError(f"column {self.phone_column!r} appears more than once in the header (columns "
                                  f"{where}): rename the others", location=self.locate(1), field=self.phone_column)
        return header

    def _read(self, reader: Any) -> Iterator[Record]:
        header = self._header(reader)
        mapping = self._mapping(header)
        phone_idx = header.index(self.phone_column)
        names = list(mapping)
        columns = [header.index(col) for col in mapping.values()]
        width = len(header)
        # the mapped cells of a row, picked and stripped in C (itemgetter of one index would give the cell itself)
        pick: Callable[[list[str]], Iterable[str]] = (
            operator.itemgetter(*columns) if len(columns) > 1 else (lambda row: [row[i] for i in columns]))
        strip = str.strip
        empty = f"column {self.phone_column!r} is empty"
        seq = 0
        last = reader.line_num
        try:
            for row in reader:
                line = last + 1  # the line the record starts on (a quoted field may hold line breaks)
                if reader.line_num > line:  # a field holds a line break: a legitimate one, or a quote left open?
                    unclosed = self._unclosed(row, line, header, width, phone_idx)
                    if unclosed is not None:
                        raise unclosed
                last = reader.line_num
                n = len(row)
                if n < 2 and (not n or not row[0].strip() or row[0] == _EOF):
                    continue
                seq += 1
                if n != width:
                    yield (seq, line, row[phone_idx].strip() if n > phone_idx else "", {},
                           f"expected {width} columns, found {n}", None)
                    continue
                number = row[phone_idx].strip()
                values = list(map(strip, pick(row)))
                if "'" in "".join(values):  # a cell may start with the quote spreadsheet_quote() put
                    values = [spreadsheet_unquote(v) for v in values]
                yield seq, line, number, dict(zip(names, values, strict=True)), None if number else empty, None
        except csv.Error as exc:
            raise self._too_large(exc, last + 1) from None

    def _unclosed(self, row: list[str], line: int, header: list[str], width: int,
                  phone_idx: int) -> ValidationError | None:
        """The error for a quote left open in ``row`` (which starts on line ``line``), or ``None``
        when its line breaks are legitimate: no field runs to the end of the file or holds a line
        that reads as a row (``width`` cells, a phone number at ``phone_idx``)."""
        delimiter, separators, last = self.delimiter, width - 1, len(row) - 1
        for i, value in enumerate(row):
            if i == last and value.endswith(_EOF):  # only the last field can run to the end of the file
                body = value[:-len(_EOF)]
                end = line + _breaks(body) - (1 if body.endswith(("\n", "\r")) else 0)
                taken = "the file ends inside it" if end == line else \
                    f"the rest of the file (line {line + 1}{f' to {end}' if end > line + 1 else ''}) went into it"
                return self._unclosed_error(header, i, line, f"is never closed: {taken}")
            cr = "\r" in value
            if not cr and "\n" not in value:
                continue
            # a row's line has a delimiter between every two cells: only such a line is parsed
            if phone_idx >= 0 and value.count(delimiter) >= separators:
                for k, text in enumerate(_LINE_BREAK.split(value) if cr else value.split("\n")):
                    if k == 0 or text.count(delimiter) < separators:
                        continue
                    cells = next(csv.reader([text], delimiter=delimiter), [])
                    if len(cells) == width and _phone_like(cells[phone_idx].strip()):
                        shown = text if len(text) <= 60 else text[:57] + "..."
                        return self._unclosed_error(header, i, line, f"is not closed before line {line + k}, "
                                                    f"which reads as a row of its own ({shown!r}), so that rows "
                                                    "would be lost")
            line += _breaks(value) if cr else value.count("\n")
        return None

    def _too_large(self, exc: csv.Error, line: int) -> Exception:
        """``exc``, raised reading the row that starts on ``line``; a field over the size limit
        there is most often a quote never closed, which took in the rest of the file."""
        if "field larger than field limit" not in str(exc):
            return exc  # (said by _reading, at the reader's line)
        if not self._quote_left_open(line):  # every quote of its line closed: the field is just that long
            return ValidationError(f"not readable as CSV: {exc}, in the row that starts here: no field may be "
                                   f"longer than {csv.field_size_limit():,} characters (is it the right file, "
                                   "the right column?)", location=self.locate(line))
        return ValidationError(f"not readable as CSV: {exc}, in the row that starts here: is a quote opened in it "
                               "never closed? (close it, and double every quote inside a quoted field: \"\")",
                               location=self.locate(line))

    def _quote_left_open(self, line: int) -> bool:
        """Whether line ``line`` of the file holds an odd number of quotes, one of them opening a
        field its line does not close (error path only: the file is read again up to that line;
        ``True`` when it cannot be)."""
        try:
            with open(self.path, newline="", encoding=self.encoding) as fh:
                for text in itertools.islice(_bounded_lines(fh, self.locate), line - 1, line):
                    return text.count('"') % 2 == 1
        except (OSError, UnicodeDecodeError, ValidationError):
            pass
        return True

    def _unclosed_error(self, header: list[str], index: int, line: int, what: str) -> ValidationError:
        column = f"column {header[index]!r}" if index < len(header) else f"column {index + 1}"
        return ValidationError(f"a quote opens a field ({column}) here and {what}; close the quote, and double "
                               "every quote inside a quoted field (\"\")", location=self.locate(line))

    def _decode_error(self, exc: UnicodeDecodeError) -> ValidationError:
        """The undecodable line, found by reading the file again line by line (error path only)."""
        decoder = codecs.getincrementaldecoder(self.encoding)()
        line = 0
        try:
            with open(self.path, "rb") as raw:
                start = raw.read(8)
                if start[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):  # Excel's "Unicode Text"
                    return ValidationError(f"not valid {self.encoding} text: the file is UTF-16 (it starts with a "
                                           f"UTF-16 byte-order mark); name its encoding: "
                                           f"{self.hint('encoding', 'utf-16')}", location=self.locate(1))
                if start.startswith(_WORKBOOKS):  # no encoding reads it: --encoding would not help
                    return ValidationError("not a CSV file: it is a spreadsheet workbook (Excel .xlsx/.xls, or "
                                           "another zip or OLE file); save the sheet as CSV (Excel: File > Save As > "
                                           "'CSV UTF-8 (Comma delimited)') and give that file", location=self.locate(1))
                raw.seek(0)
                for line, data in enumerate(raw, start=1):  # noqa: B007 - line is used after the loop
                    decoder.decode(data)
        except UnicodeDecodeError as again:
            bad = again.object[again.start:again.end]
            return ValidationError(f"not valid {self.encoding} text (byte {bad.hex(' ')}); save the file as "
                                   f"UTF-8, or name its encoding: {self.hint('encoding')} (e.g. "
                                   f"{self.hint('encoding', 'cp1252')} for Excel on Windows)",
                                   location=self.locate(line))
        except OSError:
            pass
        return ValidationError(f"not valid {self.encoding} text: {exc.reason}",
                               location=shown_name(str(self.path)))


def check_contacts(contacts: object, field: str) -> None:
    """Refuse, with a :class:`~smsgate.errors.ValidationError` naming ``field``, one contact
    where a collection of them is expected (a string would be read a character a row, a
    mapping a key a row), or something that is no collection at all."""
    if isinstance(contacts, (str, bytes, bytearray, Mapping, Contact)):
        raise ValidationError(f"a list (or other iterable) of contacts or a CSV audience, not one "
                              f"{type(contacts).__name__}: wrap it in a list", field=field)
    if not isinstance(contacts, (Audience, Iterable)):
        raise ValidationError(f"a list (or other iterable) of contacts or a CSV audience, not "
                              f"{type(contacts).__name__}", field=field)


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
                shadow = builtin_field(fields, named=item.name is not None)
                if shadow is not None:  # its own name or number: never shadowed by a field
                    yield AudienceRow(seq, item.phone, {}, builtin_field_error(shadow), where, seq)
                    continue
                if item.name is not None:
                    fields["name"] = item.name
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
