"""The CSV files the commands read (``campaign create --csv``, ``contacts create --csv``,
``optout import``): one :class:`~smsgate.campaigns.CsvAudience` each, whose errors name the
command's own flags. ``-`` reads standard input, named :data:`STDIN_NAME` in errors and reports
(``<stdin>, line 3: ...``)."""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from smsgate.cli._common import flags_named

if TYPE_CHECKING:
    from smsgate.campaigns import CsvAudience

__all__ = ["CSV_FLAGS", "STDIN_NAME", "DelimiterOpt", "EncodingOpt", "NameColumnOpt", "csv_audience", "csv_shown"]

#: The flags that set each :class:`~smsgate.campaigns.CsvAudience` option (``campaign create``'s).
CSV_FLAGS = {"phone": "--phone-column", "name": "--name-column", "delimiter": "--delimiter",
             "encoding": "--encoding"}
_CSV_PLACEHOLDERS = {"phone": "COLUMN", "name": "COLUMN", "delimiter": "CHARACTER", "encoding": "ENCODING"}

#: How errors and reports name the CSV read from standard input (``--csv -``), as Python names
#: its own standard input in tracebacks: not the name of the temporary copy it is read from.
STDIN_NAME = "<stdin>"

#: ``--delimiter`` and ``--encoding``, as every command reading a CSV file takes them.
DelimiterOpt = Annotated[str, typer.Option(help="The CSV's separator: one character, or 'tab'.")]
EncodingOpt = Annotated[str, typer.Option(help="The CSV's text encoding, e.g. cp1252 (utf-8-sig: UTF-8, "
                                               "with or without a BOM).")]
#: ``--name-column``, as ``campaign create``, ``contacts create`` and ``contacts add`` take it.
NameColumnOpt = Annotated[str | None, typer.Option(
    "--name-column", metavar="COLUMN",
    help="CSV column with the contacts' names: each contact's name, and {name} in a text (default: the "
         "'name' column, if there is one). Given, the file must have it.", show_default=False)]


def csv_shown(path: Path) -> str:
    """The CSV ``path`` (a ``--csv`` or ``FILE.csv``) as the command's output names it: its file
    name, or :data:`STDIN_NAME` for ``-``."""
    return STDIN_NAME if str(path) == "-" else path.name


def _stdin_copy() -> Path:
    """Standard input copied to a file in a folder removed when the command ends: an
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
                 name_given: bool = False, fields: list[str] | None = None,
                 flags: Mapping[str, str] = CSV_FLAGS) -> CsvAudience:
    """The CSV file at ``path`` as an audience; its errors name ``flags`` (``--phone-column
    Phone``), not ``CsvAudience``'s keyword arguments, and the file as :func:`csv_shown` does
    (``<stdin>, line 3`` for ``-``). ``name`` and ``fields`` are passed on (``fields=[]``,
    ``name=None``: only the phone column is read); ``name_given``: ``name`` is the user's
    ``--name-column``, which the header must have (the default ``name`` column is optional)."""
    from smsgate.campaigns import CsvAudience
    from smsgate.campaigns.audiences import csv_location
    from smsgate.errors import ValidationError

    stdin = str(path) == "-"  # standard input, as other commands read it
    if stdin:
        path = _stdin_copy()

    class CliCsvAudience(CsvAudience):
        def hint(self, option: str, value: str | None = None) -> str:
            shown = _CSV_PLACEHOLDERS[option] if value is None else "tab" if value == "\t" else shlex.quote(value)
            return f"{flags[option]} {shown}"

        def locate(self, line: int) -> str:
            return csv_location(STDIN_NAME, line) if stdin else super().locate(line)

        def _mapping(self, header: list[str]) -> dict[str, str]:
            if name_given and self.name_column not in header:
                # a typo in --name-column must not leave every contact without a name, silently
                from smsgate.campaigns.audiences import _shown_header

                wanted = "".join(str(self.name_column).split()).casefold()
                alike = [cell for cell in header if "".join(cell.split()).casefold() == wanted]  # "Full name"
                hint = (f"did you mean {alike[0]!r}? {self.hint('name', alike[0])}" if alike
                        else f"the column of the contacts' names: {self.hint('name')}")
                raise ValidationError(f"no {self.name_column!r} column in header {_shown_header(header)} ({hint})",
                                      location=self.locate(1), field=self.name_column)
            mapping = super()._mapping(header)
            if name_given and self.name_column:  # the names, as {name}: not also a field of the column's name,
                # and never replaced by a column that happens to be called 'name'
                mapping = {key: col for key, col in mapping.items() if col != self.name_column}
                mapping["name"] = self.name_column
            return mapping

    with flags_named(dict(flags)):  # field '--delimiter': ..., as every other bad flag is said
        audience = CliCsvAudience(path, phone=phone, name=name, fields=fields,
                                  delimiter="\t" if delimiter in ("tab", "\\t") else delimiter, encoding=encoding)
    if stdin:
        audience.description = f"CSV {STDIN_NAME}"
    return audience
