"""The pure parts of the generic HTTP provider: templates, response paths, the status map.

Nothing here does I/O or knows about providers; :mod:`smsgate_generic_http.provider`
and the emulator both build on it.

**Templates** are strings with ``{name}`` placeholders (``{{`` and ``}}`` are literal
braces), parsed once with :meth:`string.Formatter.parse` and rendered by
concatenation: nothing is evaluated, no attribute or index access, no format specs.
A JSON body template is a parsed structure (dicts, lists, scalars) whose string
leaves are templates; rendering substitutes into the structure and the result is
encoded by ``json``, so a value can never break the JSON or add a field.

**Paths** address a value inside a decoded JSON (or form) body: ``data.messages.0.id``
is key ``data``, key ``messages``, item 0 (a number indexes a list; ``-1`` is the last
item; on an object it is a key), key ``id``. ``\\.`` is a literal dot in a key and
``\\\\`` a backslash; ``$`` alone is the whole body.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from smsgate.lifecycle import Status

__all__ = [
    "MESSAGE_FIELDS",
    "MISSING",
    "OMIT",
    "SECRET_PREFIX",
    "Path",
    "Template",
    "compile_structure",
    "lookup_status",
    "parse_timestamp",
    "render_structure",
    "scalar_text",
    "structure_templates",
]

#: Placeholders a send template may use (see docs/generic-http.md).
MESSAGE_FIELDS = frozenset({"to", "to_digits", "text", "sender", "reference", "message_id"})
#: ``{secret.NAME}`` names credential ``NAME`` of the provider instance.
SECRET_PREFIX = "secret."
_SECRET_NAME = re.compile(r"[A-Za-z0-9_\-]+")
_FORMATTER = string.Formatter()


class _Sentinel:
    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name


#: A path found nothing.
MISSING: Any = _Sentinel("MISSING")
#: A whole-placeholder template whose value is ``None``: the field is left out.
OMIT: Any = _Sentinel("OMIT")


@dataclass(frozen=True)
class Template:
    """A string with ``{name}`` placeholders, compiled.

    ``parts`` alternates literal text (``str``) and placeholder names (in a 1-tuple).
    """

    source: str
    parts: tuple[str | tuple[str], ...]

    @classmethod
    def parse(cls, text: str, allowed: frozenset[str], *, secrets: bool = True) -> Template:
        """Compile ``text``; :class:`ValueError` names a bad or unknown placeholder.

        ``allowed`` are the placeholder names permitted here; ``secret.NAME`` is
        permitted when ``secrets`` is true.
        """
        try:
            pieces = list(_FORMATTER.parse(text))
        except ValueError as exc:  # a lone "{" or "}"
            raise ValueError(f"{exc} (write '{{{{' and '}}}}' for literal braces)") from None
        parts: list[str | tuple[str]] = []
        for literal, name, spec, conversion in pieces:
            if literal:
                parts.append(literal)
            if name is None:
                continue
            if name == "" or name.isdigit():
                raise ValueError("empty or positional placeholder '{}'; name a field, e.g. '{to}'")
            if spec or conversion:
                raise ValueError(f"placeholder {name!r} has a format spec or conversion; only '{{name}}' is allowed")
            if name.startswith(SECRET_PREFIX):
                secret = name[len(SECRET_PREFIX):]
                if not secrets:
                    raise ValueError(f"placeholder {name!r} cannot be used here (no credentials in a URL "
                                     "path: put them in a header or under 'query')")
                if not _SECRET_NAME.fullmatch(secret):
                    raise ValueError(f"placeholder {name!r}: a secret name is letters, digits, '_' or '-'")
            elif name not in allowed:
                known = ", ".join(sorted(allowed)) or "none"
                raise ValueError(f"unknown placeholder {name!r} (allowed here: {known}, secret.NAME)")
            parts.append((name,))
        return cls(text, tuple(parts))

    @property
    def fields(self) -> frozenset[str]:
        """Every placeholder name in the template."""
        return frozenset(p[0] for p in self.parts if isinstance(p, tuple))

    @property
    def secrets(self) -> frozenset[str]:
        """Credential names referenced as ``{secret.NAME}``."""
        return frozenset(f[len(SECRET_PREFIX):] for f in self.fields if f.startswith(SECRET_PREFIX))

    @property
    def whole(self) -> str | None:
        """The placeholder name when the template is exactly one placeholder."""
        if len(self.parts) == 1 and isinstance(self.parts[0], tuple):
            return self.parts[0][0]
        return None

    def render(self, values: Mapping[str, str | None], secret: Callable[[str], str] | None = None) -> Any:
        """The text with every placeholder replaced; :data:`OMIT` for a lone placeholder valued ``None``.

        ``secret(name)`` gives a credential's value (``KeyError`` if there is none).
        A ``None`` value inside longer text renders as the empty string.
        """
        if self.whole is not None and not self.whole.startswith(SECRET_PREFIX) and values.get(self.whole) is None:
            return OMIT
        out: list[str] = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
                continue
            name = part[0]
            if name.startswith(SECRET_PREFIX):
                if secret is None:
                    raise KeyError(name)
                out.append(secret(name[len(SECRET_PREFIX):]))
            else:
                value = values.get(name)
                out.append("" if value is None else value)
        return "".join(out)

    def pattern(self) -> re.Pattern[str]:
        """A regular expression matching rendered text, one group per placeholder (emulator use)."""
        regex = "".join(re.escape(p) if isinstance(p, str) else "(.*?)" for p in self.parts)
        return re.compile(regex, re.DOTALL)

    def match(self, text: str) -> dict[str, str] | None:
        """The placeholder values that render ``text``, or ``None`` (inverse of :meth:`render`)."""
        found = self.pattern().fullmatch(text)
        if found is None:
            return None
        names = [p[0] for p in self.parts if isinstance(p, tuple)]
        values: dict[str, str] = {}
        for name, value in zip(names, found.groups(), strict=True):
            if values.setdefault(name, value) != value:
                return None
        return values


def compile_structure(node: Any, allowed: frozenset[str], where: str = "") -> Any:
    """A JSON-like structure with each string leaf compiled to a :class:`Template`.

    Keys stay literal. :class:`ValueError` says where (``where`` plus the path inside).
    """
    if isinstance(node, str):
        try:
            return Template.parse(node, allowed)
        except ValueError as exc:
            raise ValueError(f"at {where or '$'}: {exc}") from None
    if isinstance(node, Mapping):
        out = {}
        for key, value in node.items():
            if not isinstance(key, str):
                raise ValueError(f"at {where or '$'}: keys must be strings")
            out[key] = compile_structure(value, allowed, f"{where}.{key}" if where else key)
        return out
    if isinstance(node, (list, tuple)):
        return [compile_structure(v, allowed, f"{where}.{i}" if where else str(i)) for i, v in enumerate(node)]
    if node is None or isinstance(node, (bool, int, float)):
        if isinstance(node, float) and node != node:  # NaN has no JSON form
            raise ValueError(f"at {where or '$'}: NaN is not JSON")
        return node
    raise ValueError(f"at {where or '$'}: {type(node).__name__} is not a JSON value")


def render_structure(node: Any, values: Mapping[str, str | None], secret: Callable[[str], str] | None = None) -> Any:
    """The structure with every template rendered; fields rendering to :data:`OMIT` are left out."""
    if isinstance(node, Template):
        return node.render(values, secret)
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            rendered = render_structure(value, values, secret)
            if rendered is not OMIT:
                out[key] = rendered
        return out
    if isinstance(node, list):
        return [r for r in (render_structure(v, values, secret) for v in node) if r is not OMIT]
    return node


def structure_templates(node: Any, where: str = "") -> Iterator[tuple[str, Template]]:
    """``(path inside the structure, template)`` for every template leaf."""
    if isinstance(node, Template):
        yield where, node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from structure_templates(value, f"{where}.{key}" if where else key)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from structure_templates(value, f"{where}.{i}" if where else str(i))


_INDEX = re.compile(r"-?[0-9]+")


@dataclass(frozen=True)
class Path:
    """A compiled response path (see the module docstring for the syntax)."""

    source: str
    steps: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> Path:
        """Compile ``text``; :class:`ValueError` says what is wrong."""
        if not isinstance(text, str) or not text:
            raise ValueError("a path is not empty (use '$' for the whole body)")
        if text == "$":
            return cls(text, ())
        steps: list[str] = []
        current: list[str] = []
        escaped = False
        for char in text:
            if escaped:
                if char not in ".\\":
                    raise ValueError(f"'\\{char}' is not an escape (only '\\.' and '\\\\')")
                current.append(char)
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == ".":
                steps.append("".join(current))
                current = []
            else:
                current.append(char)
        if escaped:
            raise ValueError("a path ends with a lone '\\'")
        steps.append("".join(current))
        if any(step == "" for step in steps):
            raise ValueError("a path has an empty step (two dots, or a dot at an end)")
        return cls(text, tuple(steps))

    def get(self, data: Any) -> Any:
        """The value at this path in ``data``, or :data:`MISSING`. Never raises."""
        node = data
        for step in self.steps:
            if isinstance(node, Mapping):
                if step not in node:
                    return MISSING
                node = node[step]
            elif isinstance(node, list) and _INDEX.fullmatch(step):
                index = int(step)
                if not -len(node) <= index < len(node):
                    return MISSING
                node = node[index]
            else:
                return MISSING
        return node

    def set(self, data: Any, value: Any) -> Any:
        """``data`` with ``value`` put at this path, creating objects and lists on the way (emulator use)."""
        if not self.steps:
            return value
        root = data if isinstance(data, (dict, list)) else ({} if not _INDEX.fullmatch(self.steps[0]) else [])
        node: Any = root
        for i, step in enumerate(self.steps):
            last = i == len(self.steps) - 1
            nxt: Any = None if last else ([] if _INDEX.fullmatch(self.steps[i + 1]) else {})
            if isinstance(node, list):
                index = int(step)
                if index < 0:
                    raise ValueError("a negative index cannot be created")
                while len(node) <= index:
                    node.append(None)
                if last:
                    node[index] = value
                elif not isinstance(node[index], (dict, list)):
                    node[index] = nxt
                node = node[index]
            elif last:
                node[step] = value
            else:
                if not isinstance(node.get(step), (dict, list)):
                    node[step] = nxt
                node = node[step]
        return root

    def __str__(self) -> str:
        return self.source


def scalar_text(value: Any) -> str | None:
    """A scalar as text (``true``/``false`` for booleans); ``None`` for null, objects and lists."""
    if value is None or value is MISSING or isinstance(value, (dict, list)):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def lookup_status(raw: Any, status_map: Mapping[str, Status]) -> Status | None:
    """The neutral status of a vendor status value, or ``None`` if the map does not name it.

    An exact key wins; otherwise the comparison ignores case and surrounding space.
    Numbers and booleans are compared as text (``1`` matches key ``"1"``).
    """
    text = scalar_text(raw)
    if text is None:
        return None
    if text in status_map:
        return status_map[text]
    folded = text.strip().casefold()
    for key, status in status_map.items():
        if key.strip().casefold() == folded:
            return status
    return None


def parse_timestamp(value: Any) -> datetime | None:
    """A timestamp from ISO 8601 text or Unix seconds (milliseconds when that large); ``None`` if unreadable."""
    if isinstance(value, bool) or value is None:
        return None
    number: float | None = None
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        text = value.strip()
        try:
            number = float(text)
        except ValueError:
            if text.endswith(("Z", "z")):
                text = text[:-1] + "+00:00"
            try:
                when = datetime.fromisoformat(text.replace(" ", "T", 1) if "T" not in text else text)
            except ValueError:
                return None
            return when if when.tzinfo else when.replace(tzinfo=timezone.utc)
    if number is None or number != number or number in (float("inf"), float("-inf")):
        return None
    if abs(number) > 1e11:  # milliseconds
        number /= 1000.0
    try:
        return datetime.fromtimestamp(number, timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None
