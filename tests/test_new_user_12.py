"""Found by a new user building a product on smsgate from the README and docs/ (helper
newuser12): each test fails without its fix."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from smsgate import Gateway
from smsgate.campaigns import CsvAudience
from smsgate.config import load_config
from smsgate.errors import ConfigError, ValidationError
from smsgate.phone import normalize
from test_docs_examples import code_blocks, page_files

ROOT = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------- routes = ["a", "b"]
def test_routes_given_as_provider_names_says_what_a_route_is() -> None:
    """``routes = ["squad", "backup"]`` (the failover order, as a list of names) was refused
    as ``tenants.acme.routes.0: Input should be a valid dictionary or instance of RouteRule``:
    pydantic's words, naming a class the user never sees, and no way on."""
    config = {"tenants": {"acme": {"providers": {"squad": {"plugin": "memory"}, "backup": {"plugin": "memory"}},
                                   "routes": ["squad", "backup"]}}}
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    text = str(caught.value)
    assert "RouteRule" not in text, text
    assert "tenants.acme.routes" in text, text
    assert 'routes = [{ providers = ["squad", "backup"] }]' in text, text


def test_a_route_among_tables_given_as_a_name_is_named() -> None:
    config = {"tenants": {"acme": {"providers": {"squad": {"plugin": "memory"}},
                                   "routes": [{"prefixes": ["+234"], "providers": ["squad"]}, "squad"]}}}
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    text = str(caught.value)
    assert "RouteRule" not in text and "tenants.acme.routes: " in text, text
    assert "routes[1] is 'squad'" in text, text


# ----------------------------------------------------------------------- ="0803..." in a CSV
@pytest.mark.parametrize("raw", ['="08031234561"', '="+234 803 123 4561"', '="2348031234561"'])
def test_an_excel_text_formula_number_is_read_as_the_number(raw: str) -> None:
    """A CSV exported "for Excel" writes numbers as ``="08031234561"`` so that Excel keeps
    the leading 0; smsgate refused every such row ``it contains '='``."""
    assert normalize(raw, "NG") == "+2348031234561"


def test_a_campaign_from_an_excel_export_sends_to_its_formula_numbers(tmp_path: Path) -> None:
    csv = tmp_path / "customers.csv"
    csv.write_bytes(b'\xef\xbb\xbfphone;name\r\n="08031234561";Ada\r\n="0803 123 4562";Bayo\r\n="12345";Bad\r\n')
    config = {"store": "memory://", "tenants": {"acme": {"default_region": "NG",
                                                         "providers": {"main": {"plugin": "memory"}}}}}
    with Gateway(config) as gw:
        camp = gw.tenant("acme").campaigns.create("Sale", text="Hi {name}",
                                                  audience=CsvAudience(csv, delimiter=";"))
        preview = camp.preview()
    assert preview.recipients == 2, preview
    assert [e.location for e in preview.errors] == ["customers.csv, line 4"], preview.errors
    detail = preview.errors[0].detail  # the number inside is what is wrong, not its '='
    assert "too short" in detail and "contains '='" not in detail, detail


# ----------------------------------------------------------------------- testing the FastAPI recipe
def test_the_fastapi_page_s_app_tests_run_as_written(tmp_path: Path) -> None:
    """docs/fastapi.md's app builds its gateway at import and closes it in the lifespan, so
    the obvious test (a ``with TestClient(main.app)`` per test) answered every send after the
    first test ``GatewayClosed``; the page said nothing of testing. Its "Testing the app"
    files run with pytest as written (the kit's pytest plugin loads itself)."""
    pytest.importorskip("fastapi")
    page = ROOT / "docs" / "fastapi.md"
    files = page_files(page)
    assert {"main.py", "conftest.py", "test_main.py"} <= set(files), sorted(files)
    for name in ("main.py", "conftest.py", "test_main.py"):
        (tmp_path / name).write_text(files[name], encoding="utf-8")
    toml = [b.source for b in code_blocks(page) if b.lang == "toml" and b.source.startswith("# smsgate-test.toml")]
    assert len(toml) == 1
    (tmp_path / "smsgate-test.toml").write_text(toml[0], encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("SMSGATE_")}
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
                          "test_main.py"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "2 passed" in out.stdout, out.stdout


# ----------------------------------------------------------------------- the phone column's own name
def test_an_invalid_number_names_the_phone_column_as_the_file_does(tmp_path: Path) -> None:
    """With ``CsvAudience(..., phone="Mobile")`` (``--phone-column Mobile``) a bad number was reported as
    ``column phone: ...``, a column the file does not have; an empty cell of the same column
    was ``column 'Mobile' is empty``."""
    csv = tmp_path / "customers.csv"
    csv.write_text("Mobile,name\n12345,Ada\n,Bo\n", encoding="utf-8")
    config = {"store": "memory://", "tenants": {"acme": {"default_region": "NG",
                                                         "providers": {"main": {"plugin": "memory"}}}}}
    with Gateway(config) as gw:
        preview = gw.tenant("acme").campaigns.create(
            "Sale", text="Hi {name}", audience=CsvAudience(csv, phone="Mobile")).preview()
    details = [e.detail for e in preview.errors]
    assert details[0].startswith("column Mobile: '12345' is not a valid phone number"), details
    assert details[1] == "column 'Mobile' is empty", details


# ----------------------------------------------------------------------- a typo in a provider's options
def test_a_misspelt_option_names_the_option_it_was_meant_to_be() -> None:
    """``options = { api_verison = "v2" }`` was ``options.api_verison: Extra inputs are not
    permitted`` with no hint, where a misspelt key of smsgate.toml itself (``rate_limt``) says
    ``did you mean ...rate_limit?``."""
    from smsgate.provider import ProviderSettings
    from smsgate_squad import SquadProvider

    settings = ProviderSettings(plugin="squad", base_url="http://127.0.0.1:9", options={"api_verison": "v2"},
                                credentials={"secret_key": "sk"})
    with pytest.raises(ConfigError) as caught:
        SquadProvider(settings, "main")
    assert "options.api_verison: Extra inputs are not permitted; did you mean options.api_version?" \
        in str(caught.value), str(caught.value)


def test_a_route_written_as_one_table_says_to_use_two_brackets(tmp_path: Path) -> None:
    """``[tenants.acme.routes]`` (one pair of brackets: a table) was ``tenants.acme.routes:
    Input should be a valid list``."""
    path = tmp_path / "smsgate.toml"
    path.write_text('store = "memory://"\n[tenants.acme.providers.squad]\nplugin = "memory"\n'
                    '[tenants.acme.routes]\nproviders = ["squad"]\n', encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    text = str(caught.value)
    assert "tenants.acme.routes: " in text and "valid list" not in text, text
    assert "[[...routes]]" in text, text


# ----------------------------------------------------------------------- a misspelt credential
def test_a_misspelt_credential_is_named_when_the_provider_cannot_be_built(tmp_path: Path) -> None:
    """``credentials = { secret_kye = "..." }`` failed ``smsgate config check`` with
    ``credentials.secret_key is required``: true, but the key that was given, misspelt, went
    unnamed (and the user, who did set a key, looks for a missing environment variable)."""
    from typer.testing import CliRunner

    from smsgate.cli import app

    path = tmp_path / "smsgate.toml"
    path.write_text(f'store = "sqlite:///{tmp_path / "s.db"}"\n[tenants.acme]\ndefault_region = "NG"\n'
                    '[tenants.acme.providers.squad]\nplugin = "squad"\nsender = "ACME"\n'
                    'credentials = { secret_kye = "sk_live_hidden" }\n', encoding="utf-8")
    out = CliRunner().invoke(app, ["config", "check", "-c", str(path)], env={"COLUMNS": "300"})
    assert out.exit_code == 2, out.output
    assert "credentials.secret_key is required" in out.output, out.output
    assert "credentials.secret_kye is not a credential of plugin 'squad': did you mean credentials.secret_key?" \
        in " ".join(out.output.split()), out.output
    assert "sk_live_hidden" not in out.output


# ----------------------------------------------------------------------- Excel's "sep=;" line
@pytest.mark.parametrize("delimiter", [",", ";"])
def test_excel_s_separator_line_is_named_as_such(tmp_path: Path, delimiter: str) -> None:
    """A CSV saved by Excel in a ';' locale may start with ``sep=;``. smsgate said ``the file
    looks ';'-separated: --delimiter ';'``, and with that flag ``no 'phone' column in header
    ['sep=', ''] (name the column that holds the numbers: ...)``: each hint led nowhere."""
    csv = tmp_path / "customers.csv"
    csv.write_text("sep=;\nphone;name\n08031234561;Ada\n", encoding="utf-8")
    with pytest.raises(ValidationError) as caught:
        list(CsvAudience(csv, delimiter=delimiter).rows())
    text = str(caught.value)
    assert "customers.csv, line 1" in text, text
    assert "Excel's separator line 'sep=;'" in text and "delete that line" in text, text
    if delimiter == ",":  # and how to read what follows
        assert "read the file with CsvAudience(..., delimiter=';')" in text, text
    else:
        assert "delimiter" not in text, text


# ----------------------------------------------------------------------- "4366412345678.0" (a float)
@pytest.mark.parametrize(("raw", "region", "e164"), [
    ("4366412345678.0", None, "+4366412345678"),   # was +43664123456780: another subscriber
    ("436641234567.0", None, "+436641234567"),     # was +4366412345670
    ("+436641234567.00", None, "+436641234567"),
    ("8031234567.0", "NG", "+2348031234567"),      # was refused: not a valid number for region NG
    ("2348031234567.0", "NG", "+2348031234567"),
])
def test_a_number_written_as_a_decimal_is_read_as_its_integer(raw: str, region: str | None, e164: str) -> None:
    """A phone column that pandas wrote as floats (any empty cell makes it one), or a
    spreadsheet formatted with a decimal, gives ``4366412345678.0``. The dot was read as a
    separator, so the number got an extra 0: refused in Nigeria, but in a country whose numbers
    vary in length (Austria, Germany...) a valid number of somebody else."""
    assert normalize(raw, region) == e164


def test_dotted_numbers_are_still_read_as_before() -> None:
    assert normalize("0803.123.4560", "NG") == "+2348031234560"
    assert normalize("(0803) 123.4560", "NG") == "+2348031234560"


# ----------------------------------------------------------------------- one problem at a time
def test_a_missing_secret_variable_does_not_hide_the_file_s_other_problems(tmp_path: Path) -> None:
    """An unset ``${VAR}`` stopped the load before the file was validated: a typo elsewhere
    was said only once the variable was set (one ``config check`` round trip per problem)."""
    path = tmp_path / "smsgate.toml"
    path.write_text('store = "memory://"\n[tenants.acme]\nsendr = "ACME"\n[tenants.acme.providers.squad]\n'
                    'plugin = "squad"\ncredentials = { secret_key = "${NU12_UNSET_KEY}" }\n', encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    text = str(caught.value)
    assert "tenants.acme.providers.squad.credentials.secret_key: environment variable NU12_UNSET_KEY is not set" \
        in text, text
    assert "tenants.acme.sendr: Extra inputs are not permitted; did you mean tenants.acme.sender?" in text, text


def test_tenant_add_says_the_file_s_other_problems_with_a_missing_variable(tmp_path: Path) -> None:
    """The same for a tenant's own file (``smsgate tenant add NAME FILE``)."""
    from cryptography.fernet import Fernet
    from typer.testing import CliRunner

    from smsgate.cli import app

    (tmp_path / "smsgate.toml").write_text(f'store = "sqlite:///{tmp_path / "s.db"}"\n', encoding="utf-8")
    (tmp_path / "beta.toml").write_text('sendr = "BETA"\n[providers.main]\nplugin = "squad"\n'
                                        'credentials = { secret_key = "${NU12_UNSET_KEY}" }\n', encoding="utf-8")
    out = CliRunner().invoke(app, ["tenant", "add", "beta", str(tmp_path / "beta.toml"), "-c",
                                   str(tmp_path / "smsgate.toml")],
                             env={"COLUMNS": "300", "SMSGATE_TENANT_KEY": Fernet.generate_key().decode()})
    text = " ".join(out.output.split())
    assert out.exit_code == 2, out.output
    assert "environment variable NU12_UNSET_KEY is not set" in text, text
    assert "sendr: Extra inputs are not permitted; did you mean sender?" in text, text
