"""``smsgate new-provider NAME``: a provider plugin laid out by the convention, ready to edit.

The plugin is written from the templates shipped in ``smsgate/templates/provider/``
(``*.tmpl`` files; ``NAME`` in a path and ``{{name}}``, ``{{Name}}``, ``{{dash}}`` in a
text become the plugin's name, class prefix and distribution suffix). It adapts an
invented vendor whose emulator it includes, and passes the conformance kit as
generated: replace the vendor one file at a time, keeping the tests green (see
docs/writing-a-provider.md).
"""

from __future__ import annotations

import keyword
import os
import re
import shutil
import sys
import tempfile
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from smsgate.cli._common import app, console
from smsgate.errors import ValidationError

if TYPE_CHECKING:
    if sys.version_info >= (3, 11):
        from importlib.resources.abc import Traversable
    else:
        from importlib.abc import Traversable

__all__ = ["check_name", "class_prefix", "new_provider", "write_provider"]

_NAME = re.compile(r"[a-z][a-z0-9_]*")
#: Plugin names longer than this make unwieldy package and class names.
MAX_NAME = 40
_SUFFIX = ".tmpl"


def check_name(name: str) -> str:
    """``name`` if it can name a plugin (a lowercase Python identifier), else :class:`ValidationError`."""
    if not _NAME.fullmatch(name):
        raise ValidationError(
            f"provider name {name!r} is not valid: use lowercase letters, digits and '_', starting "
            "with a letter (e.g. 'acme' or 'acme_sms'); it names the package smsgate_<name>",
            field="name")
    if len(name) > MAX_NAME:
        raise ValidationError(f"provider name {name!r} is longer than {MAX_NAME} characters", field="name")
    if keyword.iskeyword(name) or name.endswith("_") or "__" in name:
        raise ValidationError(f"provider name {name!r} is not valid: a Python keyword, or '_' doubled or "
                              "at the end", field="name")
    return name


def _check_free(name: str) -> None:
    """:class:`ValidationError` if an installed plugin (or package ``smsgate_<name>``) has ``name``:
    installing the new one would silently replace it."""
    import importlib.util
    from importlib.metadata import entry_points

    for ep in entry_points(group="smsgate.providers"):
        if ep.name == name:
            dist = ep.dist.name if ep.dist is not None else ep.value
            raise ValidationError(f"provider name {name!r} is taken by the installed plugin of {dist}; "
                                  "choose another name", field="name")
    if importlib.util.find_spec(f"smsgate_{name}") is not None:
        raise ValidationError(f"provider name {name!r} is taken: package smsgate_{name} is installed; "
                              "choose another name", field="name")


def class_prefix(name: str) -> str:
    """The class-name prefix of plugin ``name``: ``acme_sms`` -> ``AcmeSms``."""
    return "".join(part[:1].upper() + part[1:] for part in name.split("_"))


def _render(text: str, name: str) -> str:
    return (text.replace("{{name}}", name).replace("{{Name}}", class_prefix(name))
            .replace("{{dash}}", name.replace("_", "-")))


def _copy(source: Traversable, target: Path, name: str, written: list[Path]) -> None:
    for entry in sorted(source.iterdir(), key=lambda e: e.name):
        if entry.name == "__pycache__":
            continue
        dest = target / entry.name.replace("NAME", name)
        if entry.is_dir():
            dest.mkdir()
            _copy(entry, dest, name, written)
        elif entry.name.endswith(_SUFFIX):
            dest = dest.with_name(dest.name.removesuffix(_SUFFIX))
            dest.write_text(_render(entry.read_text(encoding="utf-8"), name), encoding="utf-8")
            written.append(dest)


def write_provider(name: str, parent: Path) -> tuple[Path, list[Path]]:
    """Write plugin ``name`` into ``parent/name``: the directory and the files written.

    The directory must not exist; it appears whole or not at all (the files are
    written into a temporary directory next to it, which is then renamed).
    """
    check_name(name)
    _check_free(name)
    if not parent.exists():
        raise ValidationError(f"{parent} does not exist: create it first (mkdir -p {parent}), or give "
                              "another --dir", field="--dir")
    if not parent.is_dir():
        raise ValidationError(f"{parent} is not a directory; give a directory as --dir", field="--dir")
    target = parent / name
    if target.exists() or target.is_symlink():
        raise ValidationError(f"{target} exists already; not overwriting it (remove it or choose another "
                              "name or --dir)", field="--dir")
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=parent))
    try:
        written: list[Path] = []
        _copy(files("smsgate") / "templates" / "provider", staging, name, written)
        os.rename(staging, target)  # fails, rather than merging, if target appeared meanwhile
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target, [target / path.relative_to(staging) for path in written]


@app.command("new-provider")
def new_provider(
    name: Annotated[str, typer.Argument(help="Plugin name: lowercase letters, digits and '_' (e.g. acme_sms).")],
    directory: Annotated[Path, typer.Option("--dir", "-d", help="Where to create the plugin directory NAME.")]
    = Path("."),
) -> None:
    """Create a provider plugin NAME (package smsgate_NAME) that passes the conformance kit as generated."""
    try:
        target, written = write_provider(name, directory)
    except ValidationError as exc:  # named as --help lists the argument, not the library's field
        if exc.field != "name" or exc.location:
            raise
        raise ValidationError(exc.reason, location="argument 'name'") from None
    console.print(f"created {target} ({len(written)} files):")
    for path in written:
        console.print(f"  {path.relative_to(target)}")
    console.print(f"\nnext: cd {target} && pip install -e '.[emulator,dev]' && pytest\n"
                  "then replace the invented vendor (wire.py, api.py, provider.py, emulator/) with yours; "
                  "see docs/writing-a-provider.md")
