"""The CSV files the commands read (``campaign create --csv``, ``contacts create --csv``,
``optout import``): one :class:`~smsgate.campaigns.CsvAudience` each, whose errors name the
command's own flags."""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from smsgate.cli._common import flags_named

if TYPE_CHECKING:
    from smsgate.campaigns import CsvAudience

__all__ = ["CSV_FLAGS", "DelimiterOpt", "EncodingOpt", "csv_audience"]

#: The flags that set each :class:`~smsgate.campaigns.CsvAudience` option (``campaign create``'s).
CSV_FLAGS = {"phone": "--phone-column", "delimiter": "--delimiter", "encoding": "--encoding"}
_CSV_PLACEHOLDERS = {"phone": "COLUMN", "delimiter": "CHARACTER", "encoding": "ENCODING"}

#: ``--delimiter`` and ``--encoding``, as every command reading a CSV file takes them.
DelimiterOpt = Annotated[str, typer.Option(help="The CSV's separator: one character, or 'tab'.")]
EncodingOpt = Annotated[str, typer.Option(help="The CSV's text encoding, e.g. cp1252 (utf-8-sig: UTF-8, "
                                               "with or without a BOM).")]


def _stdin_copy() -> Path:
    """Standard input copied to ``stdin.csv`` in a folder removed when the command ends: an
    audience is read more than once (its header and encoding first), which a pipe cannot be."""
    import atexit
    import shutil
    import sys
    import tempfile

    folder = tempfile.mkdtemp(prefix="smsgate-stdin-")
    atexit.register(shutil.rmtree, folder, True)
    path = Path(folder) / "stdin.csv"
    with path.open("wb") as copy:
        shutil.copyfileobj(sys.stdin.buffer, copy, 1 << 20)
    return path


def csv_audience(path: Path, phone: str, delimiter: str, encoding: str, *, name: str | None = "name",
                 fields: list[str] | None = None, flags: Mapping[str, str] = CSV_FLAGS) -> CsvAudience:
    """The CSV file at ``path`` as an audience; its errors name ``flags`` (``--phone-column
    Phone``), not ``CsvAudience``'s keyword arguments. ``name`` and ``fields`` are passed on
    (``fields=[]``, ``name=None``: only the phone column is read)."""
    from smsgate.campaigns import CsvAudience

    if str(path) == "-":  # standard input, as other commands read it
        path = _stdin_copy()

    class CliCsvAudience(CsvAudience):
        def hint(self, option: str, value: str | None = None) -> str:
            shown = _CSV_PLACEHOLDERS[option] if value is None else "tab" if value == "\t" else shlex.quote(value)
            return f"{flags[option]} {shown}"

    with flags_named(dict(flags)):  # field '--delimiter': ..., as every other bad flag is said
        return CliCsvAudience(path, phone=phone, name=name, fields=fields,
                              delimiter="\t" if delimiter in ("tab", "\\t") else delimiter, encoding=encoding)
