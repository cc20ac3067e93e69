"""The Sieve query syntax used by Dynamic Messaging's paged listings.

The vendor's listings (``GET /api/Campaigns``, ``/api/Campaigns/{id}/Contacts``,
``/api/SMSMessages``) take the query parameters of the .NET `Sieve
<https://github.com/Biarity/Sieve>`_ library::

    ?filters=status==1,sender@=ACME&sorts=-startDateTime&page=1&pageSize=10

Building (what the adapter uses)
--------------------------------
:class:`Filter` and :class:`Sort` are a small typed API; :func:`build_filters` and
:func:`build_sorts` render them::

    build_filters([Filter("status", "==", 1), Filter("sender", "@=*", "acme, inc")])
    # 'status==1,sender@=*acme\\, inc'

Values are escaped the way Sieve un-escapes them: ``\\`` ``|`` and ``,`` get a
backslash, so does every operator sequence inside a value (``a==b`` -> ``a\\==b``),
and the literal string ``null`` becomes ``\\null`` (a bare ``null`` means a null
value, which is what ``None`` renders to); a value that would extend the operator
(``*x`` after ``==``) is set off by a space, which Sieve trims. Sieve's parser
cannot express every string: it trims the value, it cannot tell ``\\null`` from
``null`` after un-escaping, and a few overlapping operator sequences (``!@=``) do
not survive its un-escaping. So every rendered filter is parsed back with :func:`parse_filters` (a
port of Sieve's own parsing) and a value that would not come back unchanged raises
:class:`SieveSyntaxError` (a :class:`~smsgate.errors.ValidationError`) instead of
silently filtering on something else.

Parsing (what the emulator uses)
--------------------------------
:func:`parse_filters` and :func:`parse_sorts` port ``SieveModel.GetFiltersParsed``,
``GetSortsParsed`` and ``FilterTerm`` (Sieve 2.5): filters split on commas not
escaped by an odd run of backslashes (eating following whitespace), ``\\,`` turned
into ``,``, ``(A|B)`` name groups, the value split on the first operator not
preceded by a backslash, escaped operators restored, values split on unescaped
pipes and un-escaped (``\\|`` then ``\\\\``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timezone
from decimal import Decimal
from enum import Enum
from typing import Final
from uuid import UUID

from smsgate.errors import ValidationError

__all__ = [
    "OPERATORS",
    "Filter",
    "FilterArg",
    "FilterValue",
    "ParsedFilter",
    "SieveSyntaxError",
    "Sort",
    "SortArg",
    "build_filters",
    "build_sorts",
    "effective_value",
    "escape_value",
    "format_value",
    "parse_filters",
    "parse_sorts",
]

#: Every Sieve operator, in the order Sieve's regular expression tries them.
OPERATORS: Final[tuple[str, ...]] = (
    "!@=*", "!_=*", "!_-=*", "!=*", "!@=", "!_=", "!_-=", "==*", "@=*", "_=*", "_-=*",
    "==", "!=", ">=", "<=", ">", "<", "@=", "_=", "_-=",
)

_OPS: Final = "(" + "|".join(re.escape(op) for op in OPERATORS) + ")"
_OP_UNESCAPED: Final = re.compile(r"(?<!\\)" + _OPS)
_OP_ESCAPED: Final = re.compile(r"(?<=\\)" + _OPS)
_OP_AT: Final = re.compile(_OPS)
_NAME_RE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")

# .NET char.IsWhiteSpace / regex \s: what Trim() removes and `,\s*` eats
_NET_WS: Final = (
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
    "\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)

#: A value a filter compares against.
FilterValue = str | int | float | Decimal | bool | datetime | date | UUID | Enum | None


class SieveSyntaxError(ValidationError):
    """A filter or sort cannot be expressed in (or parsed from) Sieve syntax."""


def _net_trim(text: str) -> str:
    return text.strip(_NET_WS)


def _split_unescaped(text: str, sep: str, *, start_is_boundary: bool, eat_ws: bool) -> list[str]:
    """Split on ``sep`` unless an odd run of backslashes precedes it.

    Mirrors Sieve's look-behinds: for commas the run must follow another character
    (a run reaching the start of the string does not escape), for pipes the start
    of the string counts as a boundary.
    """
    parts: list[str] = []
    start = 0
    i = 0
    n = len(text)
    while i < n:
        if text[i] == sep:
            j = i
            while j > 0 and text[j - 1] == "\\":
                j -= 1
            run = i - j
            escaped = run % 2 == 1 and (j > 0 or start_is_boundary)
            if not escaped:
                parts.append(text[start:i])
                k = i + 1
                if eat_ws:
                    while k < n and text[k] in _NET_WS:
                        k += 1
                start = i = k
                continue
        i += 1
    parts.append(text[start:])
    return parts


def _unescape(text: str) -> str:
    return text.replace("\\|", "|").replace("\\\\", "\\")


@dataclass(frozen=True)
class ParsedFilter:
    """One filter term as Sieve reads it: names (OR), operator, raw values (OR)."""

    names: tuple[str, ...]
    operator: str
    values: tuple[str, ...] | None

    @property
    def case_insensitive(self) -> bool:
        """True for the ``*`` operators."""
        return self.operator.endswith("*")

    @property
    def base_operator(self) -> str:
        """The operator without ``*`` and without a leading ``!`` negation (``!=`` stays)."""
        op = self.operator.rstrip("*")
        if op.startswith("!") and op != "!=":
            op = op[1:]
        return op

    @property
    def negated(self) -> bool:
        """True for ``!@=``, ``!_=``, ``!_-=`` (and their ``*`` forms)."""
        op = self.operator.rstrip("*")
        return op.startswith("!") and op != "!="


def _parse_term(text: str) -> ParsedFilter:
    splits = [_net_trim(t) for t in _OP_UNESCAPED.split(text)]
    names = tuple(_net_trim(t) for t in _split_unescaped(splits[0], "|", start_is_boundary=True, eat_ws=False))
    values: tuple[str, ...] | None = None
    if len(splits) > 2:
        raw = splits[2]
        for match in list(_OP_ESCAPED.finditer(raw)):
            op = match.group(0)
            raw = raw.replace("\\" + op, op)
        values = tuple(
            _unescape(t) for t in _split_unescaped(raw, "|", start_is_boundary=True, eat_ws=False)
        )
    found = _OP_UNESCAPED.search(text)
    return ParsedFilter(names=names, operator=found.group(0) if found else "", values=values)


def parse_filters(filters: str) -> list[ParsedFilter]:
    """Parse a ``filters`` query value exactly as Sieve does.

    Raises :class:`SieveSyntaxError` where Sieve itself would throw (a ``(...)``
    group with nothing after its closing parenthesis).
    """
    terms: list[ParsedFilter] = []
    for piece in _split_unescaped(filters, ",", start_is_boundary=False, eat_ws=True):
        if not _net_trim(piece):
            continue
        text = piece.replace("\\,", ",")
        if text.startswith("("):
            op_and_value = text[text.rfind(")") + 1 :]
            if not op_and_value:
                raise SieveSyntaxError(
                    f"filter {piece!r} has no operator after its name group", field="filters", value=piece
                )
            names = text.replace(op_and_value, "").replace("(", "").replace(")", "")
            text = names + op_and_value
        terms.append(_parse_term(text))
    return terms


def parse_sorts(sorts: str) -> list[tuple[str, bool]]:
    """Parse a ``sorts`` query value: ``[(name, descending), ...]``, first of each name kept."""
    out: list[tuple[str, bool]] = []
    seen: set[str] = set()
    for piece in _split_unescaped(sorts, ",", start_is_boundary=False, eat_ws=True):
        term = _net_trim(piece)
        if not term:
            continue
        descending = term.startswith("-")
        name = term[1:] if descending else term
        if name not in seen:
            seen.add(name)
            out.append((name, descending))
    return out


def effective_value(raw: str) -> str | None:
    """What a parsed value compares against: ``null`` is None, ``\\null`` the string ``null``."""
    lowered = raw.lower()
    if lowered == "null":
        return None
    if lowered == "\\null":
        return raw.lstrip("\\")
    return raw


# ---------------------------------------------------------------- building


def escape_value(text: str, *, overlapping: bool = False) -> str:
    """Escape one string value for a Sieve filter (no round-trip check; see :class:`Filter`).

    Operator sequences get a backslash: by default the longest operator at each
    position, skipping over it; with ``overlapping=True`` every position where
    any operator starts (``<==`` -> ``\\<\\==``), which Sieve needs when operators
    overlap.
    """
    out: list[str] = []
    i = 0
    n = len(text)
    while i < n:
        match = _OP_AT.match(text, i)
        if match and not overlapping:
            out.append("\\" + match.group(0))
            i = match.end()
            continue
        if match:
            out.append("\\")
        char = text[i]
        if char in "\\|,":
            out.append("\\" + char)
        else:
            out.append(char)
        i += 1
    escaped = "".join(out)
    if escaped.lower() == "null":
        escaped = "\\" + escaped
    return escaped


def format_value(value: FilterValue) -> str | None:
    """The text Sieve should convert to ``value`` (None for a null value)."""
    if isinstance(value, Enum):
        value = value.value
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise SieveSyntaxError(f"cannot filter on {value!r}", field="filters", value=value)
        return format(Decimal(repr(value)), "f")
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise SieveSyntaxError(f"cannot filter on {value!r}", field="filters", value=value)
        return format(value, "f")
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(timezone.utc)
            return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, str):
        return value
    raise SieveSyntaxError(
        f"unsupported filter value type {type(value).__name__}", field="filters", value=value
    )


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise SieveSyntaxError(
            f"{name!r} is not a property name (letters, digits, '_' and '.')", field="filters", value=name
        )
    return name


class Filter:
    """One Sieve filter term: ``Filter("status", "==", 1)`` renders ``status==1``.

    ``name`` may be a sequence of names (OR: ``(sender|message)@=x``) and ``value``
    a list/tuple/set of values (OR: ``status==0|1``). Values are ``str``, ``int``,
    ``float``/``Decimal``, ``bool``, ``datetime``/``date``, ``UUID``, an enum
    (its value) or ``None`` (null). Rendering escapes values and checks that
    Sieve parses the result back to the same names, operator and values; a value
    it cannot express raises :class:`SieveSyntaxError`.
    """

    __slots__ = ("names", "operator", "values")

    names: tuple[str, ...]
    operator: str
    values: tuple[FilterValue, ...]

    def __init__(
        self,
        name: str | Sequence[str],
        operator: str,
        value: FilterValue | list[FilterValue] | tuple[FilterValue, ...] | set[FilterValue] | frozenset[FilterValue],
    ) -> None:
        names = (name,) if isinstance(name, str) else tuple(name)
        if not names:
            raise SieveSyntaxError("a filter needs at least one property name", field="filters")
        self.names = tuple(_check_name(n) for n in names)
        if operator not in OPERATORS:
            raise SieveSyntaxError(
                f"unknown operator {operator!r}; expected one of {', '.join(OPERATORS)}",
                field="filters",
                value=operator,
            )
        self.operator = operator
        if isinstance(value, (list, tuple, set, frozenset)):
            values = tuple(value)
            if not values:
                raise SieveSyntaxError("a filter needs at least one value", field="filters")
        else:
            values = (value,)
        self.values = values

    def __repr__(self) -> str:
        name: object = self.names[0] if len(self.names) == 1 else self.names
        value: object = self.values[0] if len(self.values) == 1 else list(self.values)
        return f"Filter({name!r}, {self.operator!r}, {value!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Filter):
            return NotImplemented
        return (self.names, self.operator, self.values) == (other.names, other.operator, other.values)

    def __hash__(self) -> int:
        return hash((self.names, self.operator, tuple(map(repr, self.values))))

    def __str__(self) -> str:
        return self.to_sieve()

    def to_sieve(self) -> str:
        """Render the term, verified by parsing it back."""
        texts = [format_value(v) for v in self.values]
        for text in texts:
            if text is not None and text != _net_trim(text):
                raise SieveSyntaxError(
                    f"{text!r}: Sieve trims filter values, so leading/trailing whitespace cannot be matched",
                    field="filters",
                    value=text,
                )
        names = self.names[0] if len(self.names) == 1 else "(" + "|".join(self.names) + ")"
        # a space after the operator (Sieve trims it) stops a value such as "*x" or "=x"
        # from extending the operator ("==" + "*x" would read as "==*" + "x")
        for separator, overlapping in (("", False), ("", True), (" ", False), (" ", True)):
            rendered_values = "|".join(
                "null" if t is None else escape_value(t, overlapping=overlapping) for t in texts
            )
            rendered = f"{names}{self.operator}{separator}{rendered_values}"
            if self._reads_back(rendered, texts):
                return rendered
        bad = [t for t in texts if t is not None]
        raise SieveSyntaxError(
            f"value(s) {bad!r} cannot be expressed in Sieve filter syntax "
            "(Sieve would read them back differently)",
            field="filters",
            value=bad[0] if len(bad) == 1 else bad,
        )

    def _reads_back(self, rendered: str, texts: list[str | None]) -> bool:
        try:
            parsed = parse_filters(rendered)
        except SieveSyntaxError:
            return False
        return (
            len(parsed) == 1
            and parsed[0].names == self.names
            and parsed[0].operator == self.operator
            and parsed[0].values is not None
            and [effective_value(v) for v in parsed[0].values] == texts
        )


@dataclass(frozen=True)
class Sort:
    """One sort key: ``Sort("startDateTime", descending=True)`` renders ``-startDateTime``."""

    name: str
    descending: bool = False

    def __post_init__(self) -> None:
        _check_name(self.name)

    def __str__(self) -> str:
        return ("-" if self.descending else "") + self.name

    @classmethod
    def parse(cls, text: str) -> Sort:
        """``"-name"`` -> ``Sort("name", descending=True)``."""
        text = text.strip()
        if text.startswith("-"):
            return cls(text[1:], True)
        return cls(text)


#: What a listing takes as ``filters``: terms (ANDed), one term, raw Sieve strings, or nothing.
FilterArg = Iterable[Filter | str] | Filter | str | None
#: What a listing takes as ``sorts``: sort keys, one key, ``"-name"`` strings, or nothing.
SortArg = Iterable[Sort | str] | Sort | str | None


def build_filters(filters: FilterArg) -> str | None:
    """Render filters joined by commas (AND); strings are passed through unchanged."""
    if filters is None:
        return None
    if isinstance(filters, (Filter, str)):
        filters = [filters]
    parts = [f if isinstance(f, str) else f.to_sieve() for f in filters]
    return ",".join(parts) if parts else None


def build_sorts(sorts: SortArg) -> str | None:
    """Render sort keys joined by commas; ``"-name"`` strings are accepted."""
    if sorts is None:
        return None
    if isinstance(sorts, (Sort, str)):
        sorts = [sorts]
    parts = [str(s if isinstance(s, Sort) else Sort.parse(s)) for s in sorts]
    return ",".join(parts) if parts else None
