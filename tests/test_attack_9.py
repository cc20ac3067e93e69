"""Attacks on the file arguments (a configuration file, a CSV audience): a path to an endless
or enormous file is refused with one error after a bounded read, never read whole into memory.

Each reading runs in a child process whose address space is capped, so that the old code
(which read the whole line or file) fails with a ``MemoryError`` instead of taking the
machine's memory.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from smsgate.campaigns import CsvAudience
from smsgate.config import load_config
from smsgate.errors import ConfigError, ValidationError

#: the child's address-space cap: far above what reading a bounded part of a file needs
CAP = 1536 * 1024 * 1024

needs_dev_zero = pytest.mark.skipif(not Path("/dev/zero").exists() or sys.platform != "linux",
                                    reason="needs /dev/zero and RLIMIT_AS (Linux)")


def _capped(code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a child Python whose address space is capped at :data:`CAP`."""
    prelude = f"import resource\nresource.setrlimit(resource.RLIMIT_AS, ({CAP}, {CAP}))\n"
    return subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)],
                          capture_output=True, text=True, timeout=300, check=False)


@needs_dev_zero
def test_a_config_path_to_an_endless_file_is_refused_after_a_bounded_read() -> None:
    """``smsgate ... -c /dev/zero`` (or ``SMSGATE_CONFIG`` pointing there) read the whole
    'file' into memory: gigabytes in seconds."""
    done = _capped("""
        from smsgate.config import load_config
        from smsgate.errors import ConfigError
        try:
            load_config("/dev/zero")
        except ConfigError as exc:
            print("ConfigError:", exc)
    """)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "ConfigError: /dev/zero: larger than 16,777,216 bytes" in done.stdout


def test_a_config_file_over_the_limit_is_refused_naming_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import smsgate.config as config

    monkeypatch.setattr(config, "MAX_CONFIG_BYTES", 64)
    big = tmp_path / "smsgate.toml"
    big.write_text("# " + "x" * 100 + "\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"smsgate.toml: larger than 64 bytes"):
        load_config(big)
    small = tmp_path / "small.toml"
    small.write_text('store = "memory://"\n', encoding="utf-8")
    assert load_config(small).store == "memory://"


@needs_dev_zero
@pytest.mark.parametrize("reader", ["rows", "variables"])
def test_a_csv_audience_on_an_endless_line_is_refused_after_a_bounded_read(reader: str) -> None:
    """``smsgate campaign create --csv /dev/zero`` (or ``optout import``, ``contacts import``)
    read one endless 'line' into memory before the csv module saw a field."""
    done = _capped(f"""
        from smsgate.campaigns import CsvAudience
        from smsgate.errors import ValidationError
        audience = CsvAudience("/dev/zero")
        try:
            list(audience.rows()) if {reader!r} == "rows" else audience.variables()
        except ValidationError as exc:
            print("ValidationError:", exc)
    """)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "ValidationError: zero, line 1: a line longer than" in done.stdout


def test_a_csv_line_over_the_limit_is_refused_at_its_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import smsgate.campaigns.audiences as audiences

    monkeypatch.setattr(audiences, "MAX_LINE_CHARS", 40)
    path = tmp_path / "list.csv"
    path.write_text("phone,name\n08031234561,Ada\n08031234562," + "B" * 100 + "\n", encoding="utf-8")
    with pytest.raises(ValidationError, match=r"list.csv, line 3: a line longer than 40 characters"):
        list(CsvAudience(path).rows())
    # lines up to the limit (its line break included or not) are read as before
    path.write_text("phone,name\r\n08031234561,Ada\r\n08031234562," + "B" * 25 + "\r\n", encoding="utf-8")
    assert [r.fields["name"] for r in CsvAudience(path).rows()] == ["Ada", "B" * 25]
    path.write_text("phone,name\n08031234562," + "B" * 28, encoding="utf-8")  # 40 characters, no line break
    assert [r.fields["name"] for r in CsvAudience(path).rows()] == ["B" * 28]
    for brk in ("\r\n", "\n", "\r"):  # lines of exactly the limit: rows and line numbers as before
        path.write_bytes(("phone,name" + brk + ("08031234562," + "C" * 28 + brk) * 2 + "08031234563,D" + brk).encode())
        assert [(r.line, r.fields["name"]) for r in CsvAudience(path).rows()] == [(2, "C" * 28), (3, "C" * 28),
                                                                                  (4, "D")]


@pytest.mark.parametrize(("content", "said"), [
    ('store = "memory://"\n# caf\u00e9\n'.encode("cp1252"), "not UTF-8 text (byte e9 on line 2)"),
    ('store = "memory://"\n'.encode("utf-16"), "not UTF-8 text (byte ff on line 1)"),  # PowerShell's '>'
])
def test_a_config_file_not_in_utf8_is_one_config_error(tmp_path: Path, content: bytes, said: str) -> None:
    """It was a UnicodeDecodeError out of tomllib: a traceback from every smsgate command."""
    path = tmp_path / "smsgate.toml"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=r"smsgate.toml: " + said.replace("(", r"\(").replace(")", r"\)")):
        load_config(path)


def test_a_config_file_with_a_utf8_bom_is_read(tmp_path: Path) -> None:
    """Notepad's "UTF-8 with BOM": the BOM was an 'Invalid statement' at line 1, column 1."""
    path = tmp_path / "smsgate.toml"
    path.write_bytes(b'\xef\xbb\xbfstore = "memory://"\n')
    assert load_config(path).store == "memory://"


def test_cli_says_one_line_for_a_config_file_not_in_utf8(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from smsgate.cli import app

    path = tmp_path / "smsgate.toml"
    path.write_bytes('store = "memory://"\n# caf\u00e9\n'.encode("cp1252"))
    result = CliRunner().invoke(app, ["messages", "-c", str(path)])
    assert result.exit_code == 2
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "not UTF-8 text (byte e9 on line 2)" in result.output


def test_an_environment_override_reaches_a_tenant_named_in_mixed_case() -> None:
    """Environment variable names are read lowercased: ``SMSGATE_TENANTS__ACMESHOP__SENDER``
    made a second, provider-less tenant ``acmeshop`` and left the file's ``AcmeShop`` (and its
    credentials) unchanged, silently."""
    data = {"tenants": {"AcmeShop": {"default_region": "NG", "sender": "OLD", "providers": {
        "Squad_Main": {"plugin": "squad", "credentials": {"secret_key": "from-the-file"}}}}}}
    env = {"SMSGATE_TENANTS__ACMESHOP__SENDER": "NEW",
           "SMSGATE_TENANTS__ACMESHOP__PROVIDERS__SQUAD_MAIN__CREDENTIALS__SECRET_KEY": "from-the-env"}
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        settings = load_config(data)
    assert list(settings.tenants) == ["AcmeShop"]
    shop = settings.tenants["AcmeShop"]
    assert shop.sender == "NEW"
    assert list(shop.providers) == ["Squad_Main"]
    assert shop.providers["Squad_Main"].credentials["secret_key"].get_secret_value() == "from-the-env"


def test_an_environment_override_of_a_new_tenant_still_adds_it() -> None:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SMSGATE_TENANTS__OTHER__DEFAULT_REGION", "ZA")
        settings = load_config({"tenants": {"Acme": {"default_region": "NG"}}})
    assert sorted(settings.tenants) == ["Acme", "other"]
    assert settings.tenants["other"].default_region == "ZA"


@pytest.mark.parametrize("where", ["file", "stdin"])
def test_a_tenant_file_not_in_utf8_is_one_error_line(tmp_path: Path, where: str) -> None:
    """``smsgate tenant add acme acme.toml`` of a cp1252 file: a UnicodeDecodeError traceback."""
    from typer.testing import CliRunner

    from smsgate.cli import app

    content = 'default_region = "NG"\n# caf\u00e9\n'.encode("cp1252")
    path = tmp_path / "acme.toml"
    path.write_bytes(content)
    args = ["tenant", "add", "acme", str(path) if where == "file" else "-", "--store", f"sqlite:///{tmp_path}/s.db"]
    result = CliRunner().invoke(app, args, input=content if where == "stdin" else None,
                                env={"SMSGATE_TENANT_KEY": "9s8MxaHgx5UQTP2FHm0v_4xrh6c8ZzhoO_ywYktzpOY="})
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "not UTF-8 text (byte e9 on line 2)" in result.output


@needs_dev_zero
def test_a_tenant_file_that_never_ends_is_refused_after_a_bounded_read() -> None:
    done = _capped("""
        from smsgate.errors import ConfigError
        from smsgate.tenants import load_tenant_file
        try:
            load_tenant_file("/dev/zero")
        except ConfigError as exc:
            print("ConfigError:", exc)
    """)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "ConfigError: /dev/zero: larger than 16,777,216 bytes" in done.stdout


@pytest.mark.parametrize("base_url", ["http://127.0.0.1:9301/?api_key=SUPERSECRET", "http://127.0.0.1:9301?key=SUPERSECRET",
                                      "https://api.example.com/v1#SUPERSECRET", "https://api.example.com/v1?"])
def test_a_base_url_with_a_query_or_fragment_is_refused_at_load_without_showing_it(base_url: str) -> None:
    """Paths are appended to base_url: with a query (a key pasted from the vendor's example) or a
    fragment every request went to the vendor's root ('POST /: not found'), and `config check`
    printed the key."""
    data = {"tenants": {"acme": {"default_region": "NG", "providers": {"squad": {
        "plugin": "squad", "base_url": base_url, "credentials": {"secret_key": "k"}}}}}}
    with pytest.raises(ConfigError, match=r"tenants\.acme\.providers\.squad\.base_url: .*query string or fragment") \
            as caught:
        load_config(data)
    assert "SUPERSECRET" not in str(caught.value)
    assert "'credentials'" in str(caught.value)


def test_a_base_url_with_a_path_is_still_accepted() -> None:
    data = {"tenants": {"acme": {"providers": {"squad": {
        "plugin": "squad", "base_url": "https://api.example.com:8443/v1/", "credentials": {"secret_key": "k"}}}}}}
    assert load_config(data).tenants["acme"].providers["squad"].base_url == "https://api.example.com:8443/v1/"


_EXPORT = """
    import resource, signal
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)       # a write past the cap fails with EFBIG
    from smsgate import Gateway
    from smsgate.errors import ValidationError
    cfg = {"store": "memory://", "tenants": {"t": {"default_region": "NG", "providers": {"m": {"plugin": "memory"}}}}}
    with Gateway(cfg) as gw:
        lists = gw.tenant("t").contact_lists
        made = lists.create("big", [{"phone": f"0803{i:07d}", "name": "N" * 40} for i in range(2000)])
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.RLIM_INFINITY))  # a disk that fills up
        try:
            lists.export(made.contact_list.list_id, PATH)
        except ValidationError as exc:
            print("ValidationError:", exc)
"""


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_FSIZE and SIGXFSZ (Linux)")
def test_an_export_on_a_full_disk_is_one_error_and_leaves_no_truncated_file(tmp_path: Path) -> None:
    """A disk filling up during ``contact_lists.export(list_id, path)`` raised a bare OSError
    (a traceback from ``smsgate contacts export -o``) and left a truncated CSV that reads back
    as a shorter list."""
    path = tmp_path / "out.csv"
    done = subprocess.run([sys.executable, "-c", f"PATH = {str(path)!r}\n" + textwrap.dedent(_EXPORT)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"ValidationError: {path}: cannot write the export file: File too large" in done.stdout
    assert "the incomplete file was removed" in done.stdout
    assert not path.exists()


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_an_export_to_a_device_that_fails_is_one_error_and_the_device_stays() -> None:
    from smsgate import Gateway

    cfg = {"store": "memory://", "tenants": {"t": {"default_region": "NG", "providers": {"m": {"plugin": "memory"}}}}}
    with Gateway(cfg) as gw:
        lists = gw.tenant("t").contact_lists
        made = lists.create("vip", ["08031234561"])
        with pytest.raises(ValidationError, match=r"/dev/full: cannot write the export file: No space left on device"):
            lists.export(made.contact_list.list_id, "/dev/full")
    assert Path("/dev/full").exists()


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_cli_output_to_a_full_disk_is_one_error_line(tmp_path: Path) -> None:
    """``smsgate messages > out.txt`` on a full disk: a rich/OSError traceback."""
    config = tmp_path / "smsgate.toml"
    config.write_text(f'store = "sqlite:///{tmp_path}/s.db"\n[tenants.t]\ndefault_region = "NG"\n'
                      '[tenants.t.providers.m]\nplugin = "memory"\n', encoding="utf-8")
    smsgate = Path(sys.executable).parent / "smsgate"
    subprocess.run([str(smsgate), "send", "08031234561", "hello", "-c", str(config)], check=True,
                   capture_output=True, timeout=120)
    with open("/dev/full", "w") as full:
        done = subprocess.run([str(smsgate), "messages", "-c", str(config)], stdout=full, stderr=subprocess.PIPE,
                              text=True, timeout=120, check=False)
    assert done.returncode == 2
    assert done.stderr.strip() == "error: cannot write the output: No space left on device", done.stderr


def test_a_new_sqlite_store_is_not_readable_by_other_users(tmp_path: Path) -> None:
    """The log holds every message's text (one-time codes) and number: under the usual umask
    (022) smsgate.db, its -wal and -shm were created world-readable (0644)."""
    from smsgate import Gateway

    db = tmp_path / "smsgate.db"
    cfg = {"store": f"sqlite:///{db}", "tenants": {"t": {"default_region": "NG", "providers": {
        "m": {"plugin": "memory"}}}}}
    old = os.umask(0o022)
    try:
        with Gateway(cfg) as gw:
            gw.tenant("t").send("08031234561", "Your code is 123456")
            files = [p for p in (db, tmp_path / "smsgate.db-wal", tmp_path / "smsgate.db-shm") if p.exists()]
            modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in files}
    finally:
        os.umask(old)
    assert "smsgate.db" in modes and "smsgate.db-wal" in modes
    assert all(mode & 0o007 == 0 for mode in modes.values()), {k: oct(v) for k, v in modes.items()}
    assert modes["smsgate.db"] == 0o640  # owner and group, under the umask


def test_an_existing_sqlite_store_keeps_its_mode(tmp_path: Path) -> None:
    from smsgate.store import open_store

    db = tmp_path / "shared.db"
    db.touch()
    db.chmod(0o664)
    open_store(f"sqlite:///{db}").close()
    assert stat.S_IMODE(db.stat().st_mode) == 0o664


@pytest.mark.parametrize("store", ["sqlite", "memory"])
def test_a_limit_too_large_for_a_store_is_a_validation_error(tmp_path: Path, store: str) -> None:
    """``smsgate messages --limit 99999999999999999999``: an OverflowError traceback from SQLite."""
    from smsgate import Gateway

    url = f"sqlite:///{tmp_path}/s.db" if store == "sqlite" else "memory://"
    cfg = {"store": url, "tenants": {"t": {"default_region": "NG", "providers": {"m": {"plugin": "memory"}}}}}
    with Gateway(cfg) as gw:
        t = gw.tenant("t")
        t.send("08031234561", "hello")
        with pytest.raises(ValidationError, match=r"field 'limit'.*at most 9223372036854775807"):
            t.messages(limit=10**20)
        with pytest.raises(ValidationError, match=r"field 'limit'.*at most 9223372036854775807"):
            t.campaigns.list(limit=2**63)
        assert len(t.messages(limit=2**63 - 1)) == 1


@pytest.mark.parametrize(("call", "field"), [
    ({"limit": 10**20}, "limit"), ({"limit": -1}, "limit"), ({"before": 10**20}, "before"), ({"before": -5}, "before"),
])
def test_inbound_paging_out_of_range_is_a_validation_error(tmp_path: Path, call: dict[str, int], field: str) -> None:
    """``tenant.inbound(limit=-1)`` listed every reply (SQLite's LIMIT -1), and ``smsgate inbound
    --limit/--before 99999999999999999999`` was an OverflowError traceback; sync and async."""
    import asyncio

    from smsgate import AsyncGateway, Gateway

    cfg = {"store": f"sqlite:///{tmp_path}/s.db", "tenants": {"t": {"default_region": "NG", "providers": {
        "m": {"plugin": "memory"}}}}}
    with Gateway(cfg) as gw, pytest.raises(ValidationError, match=f"field '{field}'"):
        gw.tenant("t").inbound(**call)
    if "limit" in call:
        with Gateway(cfg) as gw, pytest.raises(ValidationError, match="field 'limit'"):
            gw.tenant("t").orphan_reports(limit=call["limit"])

    async def main() -> None:
        async with AsyncGateway(cfg) as agw:
            with pytest.raises(ValidationError, match=f"field '{field}'"):
                await agw.tenant("t").inbound(**call)

    asyncio.run(main())


@pytest.mark.parametrize("max_body", [-1, 0, True, 1.5, "1000"])
def test_webhook_app_refuses_a_max_body_that_would_refuse_every_callback(max_body: object) -> None:
    """``smsgate serve --max-body -1`` (or ``webhook_app(gw, max_body=0)``) served an app that
    answered every callback 413: the vendors' reports were lost, with no error at start."""
    from smsgate import Gateway
    from smsgate.webhooks import webhook_app

    cfg = {"store": "memory://", "tenants": {"t": {"default_region": "NG", "providers": {"m": {"plugin": "memory"}}}}}
    with Gateway(cfg) as gw, pytest.raises(ValidationError, match=r"field 'max_body'.*whole number of bytes >= 1"):
        webhook_app(gw, max_body=max_body)  # type: ignore[arg-type]


def test_cli_serve_refuses_a_negative_max_body() -> None:
    from typer.testing import CliRunner

    from smsgate.cli import app

    result = CliRunner().invoke(app, ["serve", "--max-body", "-1", "-c", "/nonexistent.toml"])
    assert result.exit_code == 2
    assert "--max-body" in result.output and "whole number of bytes >= 1" in result.output


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"older_than": 86400 * 99999999999}, "older_than"),
    ({"older_than": 86400, "batch_size": 10**20}, "batch_size"),
])
def test_purge_arguments_out_of_range_are_validation_errors(tmp_path: Path, kwargs: dict[str, int],
                                                            field: str) -> None:
    """``smsgate store purge --older-than 99999999999d`` and ``--batch-size 99999999999999999999``:
    OverflowError tracebacks (timedelta, SQLite)."""
    from smsgate import Gateway

    cfg = {"store": f"sqlite:///{tmp_path}/s.db", "tenants": {"t": {"default_region": "NG", "providers": {
        "m": {"plugin": "memory"}}}}}
    with Gateway(cfg) as gw:
        gw.tenant("t").send("08031234561", "hello")
        with pytest.raises(ValidationError, match=f"field '{field}'"):
            gw.tenant("t").purge(dry_run=True, **kwargs)


@pytest.mark.parametrize("arg", ["older_than", "max_age", "backoff", "recover_after"])
def test_sync_statuses_durations_out_of_range_are_validation_errors(tmp_path: Path, arg: str) -> None:
    """``smsgate status sync --max-age 99999999999d``: an OverflowError traceback."""
    from smsgate import Gateway

    cfg = {"store": f"sqlite:///{tmp_path}/s.db", "tenants": {"t": {"default_region": "NG", "providers": {
        "m": {"plugin": "memory"}}}}}
    with Gateway(cfg) as gw, pytest.raises(ValidationError, match=f"field '{arg}'.*from 0 to 1,000 years"):
        gw.tenant("t").sync_statuses(**{arg: 86400 * 99999999999})


@pytest.mark.parametrize("encoding", ["utf-8-sig", "cp1252"])
def test_a_workbook_given_as_csv_says_so(tmp_path: Path, encoding: str) -> None:
    """``campaign create --csv customers.xlsx``: 'not valid utf-8-sig text ... --encoding cp1252',
    then, with --encoding cp1252, the same advice again: no encoding reads a workbook."""
    import zipfile

    path = tmp_path / "customers.xlsx"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as book:  # the same bytes every run
        book.writestr(zipfile.ZipInfo("[Content_Types].xml", (2024, 1, 1, 0, 0, 0)), "<?xml version='1.0'?><Types/>")
        book.writestr(zipfile.ZipInfo("xl/worksheets/sheet1.xml", (2024, 1, 1, 0, 0, 0)),
                      "".join(chr(c) for c in range(32, 0x2500)))
    with pytest.raises(ValidationError, match=r"customers.xlsx, line 1: not a CSV file: it is a spreadsheet workbook.*"
                                              r"Save As") as caught:
        list(CsvAudience(path, encoding=encoding).rows())
    assert "--encoding" not in str(caught.value) and "encoding=" not in str(caught.value)


def test_a_header_error_does_not_repeat_a_whole_first_line(tmp_path: Path) -> None:
    """The first line of a file given by mistake (``--csv /proc/self/environ``: every variable,
    secrets included; a 100,000-character line) was repeated whole into the error."""
    path = tmp_path / "environ"
    path.write_text("SHELL=/bin/bash\x00" + "\x00".join(f"SECRET_{i}=sk_live_{i:04d}" for i in range(3000)) + "\n",
                    encoding="utf-8")
    # (Python 3.10's csv refuses the NUL byte itself: "not readable as CSV: line contains NUL")
    shown = r"no 'phone' column in header \['SHELL=/bin/bash" if sys.version_info >= (3, 11) else "line contains NUL"
    with pytest.raises(ValidationError, match=shown) as caught:
        list(CsvAudience(path).rows())
    assert "sk_live_0100" not in str(caught.value) and len(str(caught.value)) < 400
    wide = tmp_path / "wide.csv"
    wide.write_text(",".join(f"c{i}" for i in range(50)) + "\n1,2\n", encoding="utf-8")
    with pytest.raises(ValidationError, match=r"'c19'\] and 30 more"):
        list(CsvAudience(wide).rows())


def test_the_demo_config_replaces_a_symlink_planted_at_its_path(tmp_path: Path) -> None:
    """``smsgate demo`` in a shared folder (/tmp): a link planted at ./smsgate-demo.toml made the
    demo overwrite the file it pointed to (as whoever ran the demo)."""
    from smsgate.cli._demo import write_log_config

    victim = tmp_path / "victim.txt"
    victim.write_text("keep me\n", encoding="utf-8")
    folder = tmp_path / "shared"
    folder.mkdir()
    (folder / "smsgate-demo.toml").symlink_to(victim)
    written = write_log_config(folder / "smsgate-demo.db")
    assert victim.read_text(encoding="utf-8") == "keep me\n"
    assert not written.is_symlink() and "[tenants.demo]" in written.read_text(encoding="utf-8")
    assert load_config(written).tenants["demo"].default_region == "NG"
    assert sorted(p.name for p in folder.iterdir()) == ["smsgate-demo.toml"]  # no temporary file left


def test_the_cli_shows_a_strangers_bidirectional_controls_visibly(tmp_path: Path) -> None:
    """An SMS 'Pay \\u202e0001$ \\u2066...' (anyone can text the number): ``smsgate inbound``
    wrote the bidi override raw, and a terminal that lays out bidirectional text showed the rest
    of the row reversed. Emoji joined with U+200D stay as they are."""
    from typer.testing import CliRunner

    from smsgate import Gateway
    from smsgate.cli import app
    from smsgate.models import InboundMessage

    cfg = tmp_path / "smsgate.toml"
    cfg.write_text(f'store = "sqlite:///{tmp_path / "s.db"}"\n[tenants.acme]\ndefault_region = "NG"\n'
                   '[tenants.acme.providers.main]\nplugin = "memory"\n', encoding="utf-8")
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"
    with Gateway(str(cfg)) as gw:
        gw.tenant("acme").ingest_inbound("main", [InboundMessage(
            vendor_id="v1", from_number="+2348031234567",
            text=f"Pay \u202e0001$\u202c now \u2067x\u2069 {family} \u0645\u200f")])
    out = CliRunner().invoke(app, ["inbound", "-c", str(cfg)])
    assert out.exit_code == 0, out.output
    bidi = {*map(chr, range(0x202A, 0x202F)), *map(chr, range(0x2066, 0x206A))}
    assert not bidi & set(out.output), repr(out.output)
    assert "\\u202e0001$\\u202c" in out.output and "\\u2067x\\u2069" in out.output
    assert family in out.output
    assert "\u0645\u200f" in out.output  # a right-to-left mark (common in Arabic texts) reverses nothing: kept


@pytest.mark.parametrize("blank", [" ", "\t", "  \n"])
def test_a_blank_credential_is_refused_at_load_naming_it(blank: str) -> None:
    """A webhook_token of spaces was accepted: `?token=%20` then authenticated every callback
    (a token anyone guesses). A credential of only spaces is a mistake: refused at load."""
    data = {"tenants": {"acme": {"providers": {"squad": {
        "plugin": "squad", "credentials": {"secret_key": "k", "webhook_token": blank}}}}}}
    with pytest.raises(ConfigError, match=r"tenants\.acme\.providers\.squad\.credentials: .*'webhook_token': blank"):
        load_config(data)


def test_an_empty_credential_still_means_not_configured() -> None:
    data = {"tenants": {"acme": {"providers": {"squad": {
        "plugin": "squad", "credentials": {"secret_key": "k", "webhook_token": ""}}}}}}
    assert load_config(data).tenants["acme"].providers["squad"].secret("webhook_token") == ""


@pytest.mark.parametrize("command", ["messages", "inbound"])
def test_cli_listing_zero_rows_is_refused(command: str) -> None:
    """`smsgate messages --limit 0` said 'no messages logged for tenant ... yet' where there were."""
    from typer.testing import CliRunner

    from smsgate.cli import app

    result = CliRunner().invoke(app, [command, "--limit", "0", "-c", "/nonexistent.toml"])
    assert result.exit_code == 2
    assert "--limit" in result.output and "greater than or equal to 1" in result.output


def test_the_cli_separates_the_problems_of_a_configuration(tmp_path: Path) -> None:
    """`smsgate config check` printed two problems run together on one line ("... leave it out
    tenants.acme.help_reply: ..."): they are separated by "; "."""
    from typer.testing import CliRunner

    from smsgate.cli import app

    cfg = tmp_path / "bad.toml"
    cfg.write_text('[tenants.acme]\ndefault_region = "NG"\nhelp_reply = "hi"\nsender = "A B C D E F G H I J K L"\n',
                   encoding="utf-8")
    out = CliRunner().invoke(app, ["config", "check", "-c", str(cfg)])
    assert out.exit_code == 2
    line = " ".join(out.output.split())
    assert "; tenants.acme.sender:" in line or "; tenants.acme.help_reply:" in line, line
