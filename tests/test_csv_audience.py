"""CSV audiences: a quote that is never closed, the parser against the csv module (hypothesis),
and errors that name the options of the API or of the CLI the user typed."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reference_provider import API_KEY, EchoPlugin
from smsgate import Gateway
from smsgate.campaigns import CsvAudience
from smsgate.campaigns.audiences import spreadsheet_unquote
from smsgate.errors import TemplateError, ValidationError
from smsgate.plugins import PluginManager


def gateway(tmp_path: Path) -> Gateway:
    pm = PluginManager(load_entry_points=False)
    pm.register(EchoPlugin())
    prov = {"plugin": "echo", "base_url": "http://127.0.0.1:9", "credentials": {"api_key": API_KEY}}
    return Gateway({"store": f"sqlite:///{tmp_path / 'c.db'}",
                    "tenants": {"acme": {"default_region": "NG", "providers": {"ng": prov}}}}, plugins=pm)


def create(tmp_path: Path, data: bytes, text: str = "Hi {name}", **kw: Any) -> Any:
    """``campaigns.create`` from a CSV holding ``data``: its preview, or the ValidationError it raised
    (after checking that nothing was stored)."""
    path = tmp_path / "list.csv"
    path.write_bytes(data)
    with gateway(tmp_path) as gw:
        t = gw.tenant("acme")
        try:
            camp = t.campaigns.create("x", text=text, audience=CsvAudience(path, **kw))
        except ValidationError as exc:
            assert t.campaigns.list() == [] and gw.store.recipient_counts("acme", "x") == {}
            return exc
        return camp.preview()


# ----------------------------------------------------------------------------- a quote never closed
@pytest.mark.parametrize(("data", "where", "what"), [
    # the quote runs to the end of the file: the csv module would read 1 row instead of 3
    (b'phone,name,city\n08031234561,"Ada,Lagos\n08031234562,Bayo,Abuja\n08031234563,Chidi,Kano\n',
     "list.csv, line 2", "(column 'name') here and is never closed: the rest of the file (line 3 to 4) went into it"),
    (b'phone,name\n08031234561,Ada\n08031234562,"Bayo', "list.csv, line 3", "the file ends inside it"),
    (b'phone,name\r\n08031234561,"Ada\r\n08031234562,Bayo\r\n', "list.csv, line 2", "(line 3) went into it"),
    (b'phone,name\n"08031234561,Ada\n08031234562,Bayo\n', "list.csv, line 2", "(column 'phone')"),
    # a later quote closes it: the rows between would vanish into one field
    (b'phone,name,city\n08031234561,"Ada,Lagos\n08031234562,Bayo,Abuja\n08031234563,"Chidi",Kano\n'
     b'08031234564,Dayo,Kano\n', "list.csv, line 2",
     "not closed before line 3, which reads as a row of its own ('08031234562,Bayo,Abuja'), so that rows would be lost"),
    # an earlier field of the same row legitimately spans two lines: the quote opened on the second
    (b'phone,city,name\n08031234561,"12 Main St\nIkeja","Ada\n+234 803 123 4562,Lagos,Bayo\n08031234563,x,"Chidi"\n',
     "list.csv, line 3", "not closed before line 4"),
    (b'phone;name\n08031234561;"Ada\n08031234562;Bayo\n08031234563;"Chidi"\n', "list.csv, line 2",
     "('08031234562;Bayo')"),
    (b'phone,"name\n08031234561,Ada\n', "list.csv, line 1", "(column 2) here and is never closed"),
    (b'"phone\nname",x\n08031234561,Ada\n', "list.csv, line 1", "holds a line break"),
])
def test_a_quote_never_closed_is_an_error_at_the_line_it_opens_and_nothing_is_stored(
    tmp_path: Path, data: bytes, where: str, what: str
) -> None:
    kw = {"delimiter": ";"} if b";" in data.split(b"\n")[0] else {}
    exc = create(tmp_path, data, "Hi", **kw)
    assert isinstance(exc, ValidationError), exc
    assert exc.location == where and what in str(exc), str(exc)
    assert 'close the quote, and double every quote inside a quoted field ("")' in str(exc) or "line break" in str(exc)


def test_a_quote_never_closed_in_a_large_file_names_the_row_it_opens(tmp_path: Path) -> None:
    """The field takes in the rest of the file until it passes csv.field_size_limit(): the error was
    at the line where the reader gave up (line 6011), saying nothing of a quote."""
    rows = b"".join(b"0803%07d,name %d\n" % (i, i) for i in range(10_000))
    exc = create(tmp_path, b'phone,name\n08031234561,"Ada\n' + rows)
    assert isinstance(exc, ValidationError) and exc.location == "list.csv, line 2", exc
    assert "field larger than field limit" in str(exc) and "is a quote opened in it never closed?" in str(exc)
    exc = create(tmp_path, b'phone,"name\n08031234561,Ada\n' + rows)
    assert isinstance(exc, ValidationError) and exc.location == "list.csv, line 1", exc


@pytest.mark.parametrize("data", [
    b"phone,name,notes\n08031234561,Ada,x\n08031234562,Bayo," + b"n" * 200_000 + b"\n",
    b'phone,name,notes\n08031234561,Ada,x\r\n08031234562,"Bayo",' + b"n" * 200_000 + b"\r\n",  # a quote closed
])
def test_a_field_too_long_without_a_quote_left_open_says_so(tmp_path: Path, data: bytes) -> None:
    """A field of 200,000 characters (a notes column of a CRM export) in a row whose quotes are all
    closed: the error asked "is a quote opened in it never closed?", sending the user looking for
    a quote that is not there; it says how long a field may be instead."""
    exc = create(tmp_path, data)
    assert isinstance(exc, ValidationError) and exc.location == "list.csv, line 3", exc
    assert "field larger than field limit (131072)" in str(exc), str(exc)
    assert "never closed" not in str(exc) and "no field may be longer than 131,072 characters" in str(exc), str(exc)


@pytest.mark.parametrize("data", [
    b'phone,name,address\n08031234561,Ada,"12 Main St,\nIkeja, Lagos"\n08031234562,Bayo,Abuja\n',
    b'phone,name,note\n08031234561,Ada,"call her on\n+234 803 123 4569\nafter 5"\n08031234562,Bayo,x',
    b'phone,name,note\n08031234561,Ada,"two, cells\n08031234569"\n',  # a number alone: not a row of 3 cells
    b'phone,name,note\n08031234561,Ada,"ends with a break\n"\n',
    b'phone,name,note\r\n08031234561,"Ada ""the great""\r\nObi",x\r\n',
    b'phone,name\n08031234561,Ada\n08031234562,"Bayo\nline two"',  # the last row, no final line break
])
def test_a_field_with_line_breaks_of_its_own_is_read(tmp_path: Path, data: bytes) -> None:
    preview = create(tmp_path, data)
    assert not isinstance(preview, ValidationError), preview
    expected = [r for r in csv.reader(io.StringIO(data.decode(), newline=""))][1:]
    assert preview.total_rows == len(expected) and preview.skipped == {}


# ----------------------------------------------------------------------------- the parser against csv
TEXT = st.text(st.sampled_from("abc XYZ,;|\t\"'\n\r\u00e9\u1f600"), max_size=12)  # no digits: never a phone
PHONE = st.builds(lambda d, plus, sp: ("+" if plus else "") + (" " if sp else "").join([d[:3], d[3:]]),
                  st.text(st.sampled_from("0123456789"), min_size=6, max_size=13), st.booleans(), st.booleans())


@st.composite
def csv_files(draw: Any) -> tuple[str, str, list[list[str]]]:
    """A CSV text as csv.writer writes it (random delimiter, quoting, line ends, blank lines)."""
    delimiter = draw(st.sampled_from([",", ";", "\t", "|"]))
    quoting = draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL, csv.QUOTE_NONNUMERIC]))
    terminator = draw(st.sampled_from(["\n", "\r\n"]))
    width = draw(st.integers(1, 4))
    phone_idx = draw(st.integers(0, width - 1))
    header = [f"c{i}" if i != phone_idx else "phone" for i in range(width)]
    rows = draw(st.lists(st.lists(TEXT, min_size=width, max_size=width), max_size=8))
    for row in rows:
        row[phone_idx] = draw(PHONE)
    out = io.StringIO(newline="")
    w = csv.writer(out, delimiter=delimiter, quoting=quoting, lineterminator=terminator)
    w.writerow(header)
    for row in rows:
        w.writerow(row)
        if draw(st.integers(0, 5)) == 0:
            out.write(terminator)  # a blank line: not a row
    return out.getvalue(), delimiter, rows


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(csv_files(), st.booleans())
def test_csv_audience_reads_what_the_csv_module_reads(tmp_path: Path, file: tuple[str, str, list[list[str]]],
                                                      final_break: bool) -> None:
    text, delimiter, _ = file
    if not final_break:
        text = text.rstrip("\r\n") if text.count("\n") > 1 else text
    path = tmp_path / "h.csv"
    path.write_text(text, encoding="utf-8", newline="")
    audience = CsvAudience(path, delimiter=delimiter)
    got = [(r.line, r.phone, r.fields, r.error) for r in audience.rows()]
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = [spreadsheet_unquote(h) for h in next(reader)]  # an export's quoted formula
    expected = []
    end = reader.line_num  # the last line of the record before: a record starts on the line after
    for row in reader:
        start, end = end + 1, reader.line_num
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        if len(row) != len(header):  # a row made of one empty phone cell, read back as a blank line
            expected.append((start, None, None, f"expected {len(header)} columns, found {len(row)}"))
            continue
        cells = dict(zip(header, (c.strip() for c in row), strict=True))
        phone = cells.pop("phone")
        cells = {k: spreadsheet_unquote(v) for k, v in cells.items()}  # an export's quoted formula
        expected.append((start, phone, cells, None if phone else "column 'phone' is empty"))
    assert [(line, err) for line, _, _, err in got] == [(line, err) for line, _, _, err in expected]
    assert [(p, f) for _, p, f, e in got if not e] == [(p, f) for _, p, f, e in expected if not e]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_a_quote_opened_anywhere_and_never_closed_is_found_at_its_line(tmp_path: Path, data: st.DataObject) -> None:
    """No quotes in the file but one opened at the start of some field: the csv module would read
    that field to the end of the file; CsvAudience names the line."""
    delimiter = data.draw(st.sampled_from([",", ";", "\t"]))
    terminator = data.draw(st.sampled_from(["\n", "\r\n"]))
    width = data.draw(st.integers(1, 4))
    plain = st.text(st.sampled_from("abc XYZ\u00e9"), max_size=8)
    rows = data.draw(st.lists(st.lists(plain, min_size=width, max_size=width), min_size=1, max_size=8))
    for row in rows:
        row[0] = data.draw(PHONE)
    r = data.draw(st.integers(0, len(rows) - 1))
    col = data.draw(st.integers(0, width - 1))
    rows[r][col] = '"' + rows[r][col]
    lines = [delimiter.join(["phone", *(f"c{i}" for i in range(1, width))])]
    lines += [delimiter.join(row) for row in rows]
    text = terminator.join(lines) + data.draw(st.sampled_from(["", terminator]))
    path = tmp_path / "q.csv"
    path.write_text(text, encoding="utf-8", newline="")
    assert len(list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))) == r + 2  # rows swallowed
    with pytest.raises(ValidationError) as info:
        list(CsvAudience(path, delimiter=delimiter).rows())
    assert info.value.location == f"q.csv, line {r + 2}", str(info.value)
    assert "is never closed" in str(info.value)


# ----------------------------------------------------------------------------- hints: the API's names
@pytest.mark.parametrize(("data", "kw", "hint"), [
    (b"phone;name\n08031234561;Ada\n", {}, "the file looks ';'-separated: CsvAudience(..., delimiter=';'))"),
    (b"phone\tname\n08031234561\tAda\n", {}, "the file looks tab-separated: CsvAudience(..., delimiter='\\t'))"),
    (b"phone,name\n08031234561,Zo\xe9\n", {},
     "name its encoding: CsvAudience(..., encoding=...) (e.g. CsvAudience(..., encoding='cp1252')"),
    (b"msisdn,name\n08031234561,Ada\n", {}, "(name the column that holds the numbers: CsvAudience(..., phone=...))"),
    (b"phone,name,phone\n08031234561,Ada,08031234562\n", {},
     "column 'phone' appears more than once in the header (columns 1 and 3): rename the others"),
])
def test_api_errors_name_the_csv_audience_arguments(tmp_path: Path, data: bytes, kw: dict[str, Any],
                                                    hint: str) -> None:
    exc = create(tmp_path, data, **kw)
    assert isinstance(exc, ValidationError) and hint in str(exc), exc
    assert "--" not in str(exc)


# ----------------------------------------------------------------------------- the CLI: its flags
def smsgate(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("SMSGATE_")}
    return subprocess.run([sys.executable, "-m", "smsgate", *args], capture_output=True, text=True, cwd=cwd,
                          env={**env, "COLUMNS": "200"}, timeout=120)


@pytest.fixture
def cli_dir(tmp_path: Path) -> Path:
    (tmp_path / "smsgate.toml").write_text(
        'store = "sqlite:///c.db"\n[tenants.acme]\ndefault_region = "NG"\n[tenants.acme.providers.squad]\n'
        'plugin = "squad"\nbase_url = "http://127.0.0.1:9"\ncredentials = { secret_key = "sk" }\nsender = "ACME"\n')
    return tmp_path


@pytest.mark.parametrize(("data", "flags", "error"), [
    (b"phone;name\n08031234561;Ada\n", [], "(the file looks ';'-separated: --delimiter ';')"),
    (b"phone\tname\n08031234561\tAda\n", [], "(the file looks tab-separated: --delimiter tab)"),
    (b"phone,name\n08031234561,Zo\xe9\n", [],
     "name its encoding: --encoding ENCODING (e.g. --encoding cp1252 for Excel on Windows)"),
    (b"msisdn,name\n08031234561,Ada\n", [], "(name the column that holds the numbers: --phone-column COLUMN)"),
    (b"phone,name\n08031234561,Ada\n", ["--delimiter", ";;"],
     "error: field '--delimiter': must be one character (not a quote or line break), not ';;'"),
    (b"phone,name\n08031234561,Ada\n", ["--delimiter", ""],
     "error: field '--delimiter': must be one character (not a quote or line break), not ''"),
    (b"phone,name\n08031234561,Ada\n", ["--encoding", "klingon"],
     "error: field '--encoding': unknown encoding"),
    (b'phone,name\n08031234561,"Ada\n08031234562,Bayo\n08031234563,Chidi\n', [],
     "error: list.csv, line 2: a quote opens a field (column 'name') here and is never closed"),
])
def test_cli_errors_name_the_command_flags_and_store_nothing(cli_dir: Path, data: bytes, flags: list[str],
                                                             error: str) -> None:
    (cli_dir / "list.csv").write_bytes(data)
    out = smsgate("campaign", "create", "--name", "x", "--csv", "list.csv", "--text", "Hi {name}", *flags,
                  cwd=cli_dir)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and error in lines[0], out.stderr
    assert "CsvAudience" not in out.stderr
    listed = smsgate("campaign", "list", cwd=cli_dir)
    assert listed.returncode == 0 and "'x'" not in listed.stdout and " x " not in listed.stdout, listed.stdout


@pytest.mark.parametrize(("data", "flags"), [
    (b"phone\tname\n08031234561\tAda\n", ["--delimiter", "tab"]),
    (b"phone;name\n08031234561;Ada\n", ["--delimiter", ";"]),
    (b"phone,name\n08031234561,Zo\xe9\n", ["--encoding", "cp1252"]),
    (b"msisdn,name\n08031234561,Zo\xc3\xa9\n", ["--phone-column", "msisdn"]),
])
def test_cli_flags_read_the_file(cli_dir: Path, data: bytes, flags: list[str]) -> None:
    (cli_dir / "list.csv").write_bytes(data)
    out = smsgate("campaign", "create", "--name", "x", "--csv", "list.csv", "--text", "Hi {name}", *flags,
                  cwd=cli_dir)
    assert out.returncode == 0, out.stderr
    assert "rows: 1, to send: 1" in out.stdout and ("Hi Ada" in out.stdout or "Hi Zoé" in out.stdout), out.stdout


def test_a_record_with_a_line_break_is_named_by_the_line_it_starts_on(tmp_path: Path) -> None:
    """A duplicate of a record holding a quoted line break said 'already at line 3' for a record
    that starts on line 2 (the csv module's line_num is the record's last line)."""
    path = tmp_path / "messy.csv"
    path.write_text('phone,name,note\n08031234561,Ada,"multi\nline"\n08031234561,Ada dup,x\nabc,Bo,y\n',
                    encoding="utf-8")
    rows = list(CsvAudience(path).rows())
    assert [r.line for r in rows] == [2, 4, 5]


def test_a_placeholder_missing_from_a_wide_csv_lists_some_columns_not_all(tmp_path: Path) -> None:
    """A data file of 20,000 columns (or one column name of 100,000 characters) given by mistake:
    the placeholder error listed every column name whole, a line of 180,000 characters; it shows
    the first 20, each cut to 60 characters, as a header error does, and how many more there are."""
    wide = ",".join(["phone", *(f"c{i}" for i in range(20_000))]) + "\n08031234561" + ",v" * 20_000 + "\n"
    exc = create(tmp_path, wide.encode(), "Hi {name}")
    assert isinstance(exc, TemplateError), exc
    assert "and 19980 more" in str(exc) and len(str(exc)) < 1_000, str(exc)[:300]
    long = "phone," + "x" * 100_000 + "\n08031234561,v\n"
    exc = create(tmp_path, long.encode(), "Hi {name}")
    assert isinstance(exc, TemplateError) and len(str(exc)) < 1_000, str(exc)[:300]
    exc = create(tmp_path, b"phone,city,name\n08031234561,Lagos,Ada\n", "Hi {nmae}")  # a few: all, as before
    assert isinstance(exc, TemplateError) and "(columns: city, name)" in str(exc), exc
