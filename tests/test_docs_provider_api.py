"""docs/writing-a-provider.md lists every public method of ``Provider`` and ``Paged`` with its
exact signature; this test compares that list with the source, so the doc cannot go stale.

To regenerate the list after changing a signature: ``python tests/test_docs_provider_api.py``
prints it; paste it between the ``provider-api`` markers of the doc.
"""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path
from typing import Any

from smsgate.provider import Paged, Provider

DOC = Path(__file__).resolve().parents[1] / "docs" / "writing-a-provider.md"
START, END = "<!-- provider-api:start -->", "<!-- provider-api:end -->"
CLASSES: tuple[type[Any], ...] = (Provider, Paged)


def _default(value: object) -> str:
    if isinstance(value, type):
        return value.__name__
    if isinstance(value, str):
        return json.dumps(value)
    return repr(value)


def signature(fn: Any) -> str:
    """``(self, a: T, *, b: U = 1) -> R`` as written in the source (annotations unevaluated)."""
    parts: list[str] = []
    star = False
    for p in inspect.signature(fn).parameters.values():
        if p.kind is p.KEYWORD_ONLY and not star:
            parts.append("*")
            star = True
        text = {p.VAR_POSITIONAL: "*", p.VAR_KEYWORD: "**"}.get(p.kind, "") + p.name
        star = star or p.kind is p.VAR_POSITIONAL
        if p.annotation is not p.empty:
            text += f": {p.annotation}"
        if p.default is not p.empty:
            text += f" = {_default(p.default)}" if p.annotation is not p.empty else f"={_default(p.default)}"
        parts.append(text)
    returns = inspect.signature(fn).return_annotation
    return f"({', '.join(parts)})" + ("" if returns is inspect.Signature.empty else f" -> {returns}")


def source_api() -> list[str]:
    """One line per public method: ``Class.method(signature)``, in the order of the source."""
    lines = []
    for cls in CLASSES:
        for name, member in vars(cls).items():
            if name.startswith("_") or not inspect.isfunction(member):
                continue
            lines.append(f"{cls.__name__}.{name}{signature(member)}")
    return lines


def doc_api() -> list[str]:
    """The lines between the markers of the doc (inside its code fence)."""
    text = DOC.read_text(encoding="utf-8")
    assert START in text and END in text, f"{DOC.name} has no {START} ... {END} section"
    block = text.split(START, 1)[1].split(END, 1)[0]
    return [line for line in block.splitlines() if re.match(r"^(Provider|Paged)\.\w+\(", line)]


def test_doc_lists_every_method_with_its_exact_signature() -> None:
    documented, actual = doc_api(), source_api()
    missing = [line for line in actual if line not in documented]
    stale = [line for line in documented if line not in actual]
    assert not missing and not stale, (
        f"{DOC.name} is out of date (run python {Path(__file__).name} to print the list)\n"
        "missing or changed in the doc:\n  " + "\n  ".join(missing) + "\nnot in the source:\n  " + "\n  ".join(stale))
    assert len(documented) == len(set(documented))


def test_every_listed_method_is_explained() -> None:
    # each method has a bullet of its own below the list: `name` in backquotes, after the list
    text = DOC.read_text(encoding="utf-8").split(END, 1)[1]
    unexplained = [line.split("(")[0] for line in source_api()
                   if f"`{line.split('(')[0].split('.')[1]}" not in text]
    assert unexplained == []


def test_signature_renders_the_source() -> None:
    assert signature(Provider.check_webhook_token) == (
        '(self, headers: Mapping[str, str], *, param: str = "token", required: bool = True, '
        'error: type[AuthFailed] = AuthFailed, hint: str = "") -> None')
    assert signature(Provider.statistics) == "(self, **filters: Any) -> Operation[Stats]"


if __name__ == "__main__":
    print("\n".join(source_api()))
