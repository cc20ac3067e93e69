"""A new user from a small marketing team, from README.md and docs/ only: a contact list
imported from a CRM's messy CSV export, a templated campaign sent to it (command line and
Python API), opt-outs, statistics and the export of a campaign's results, and the commands run
again after a mistake.

The command line runs as a user runs it (a subprocess, ``python -m smsgate``), on a real SQLite
store, against the Squad emulator served on loopback (ports 47650-47699).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest

from smsgate import Gateway
from smsgate.errors import ConfigError, TemplateError
from smsgate.plugins import sandbox_account
from smsgate.server import LiveServer

#: a CRM's export: a BOM, ';'-separated, Windows line ends, a header with spaces around its
#: names, a number given twice in other forms, a bad number, non-ASCII names, a blank last line
CRM = ("\ufeff Phone Number ;first_name; City \r\n"
       "08031234561;Adé;Lagos\r\n"
       "+234 803 123 4562;Bọ́lá;Ibadan\r\n"
       "2348031234561;Ada again;Lagos\r\n"
       "12345;Bad;Kano\r\n"
       "0803-123-4563;Zoë;Abuja\r\n"
       "\r\n")
CSV_FLAGS = ["--delimiter", ";", "--phone-column", "Phone Number"]


@pytest.fixture
def squad() -> Iterator[str]:
    """The Squad emulator on a port of 47650-47699; its base URL."""
    app = {ep.name: ep for ep in entry_points(group="smsgate.emulators")}["squad"].load()
    for port in range(47650, 47700):
        try:
            server = LiveServer(app(), port=port).start()
        except ConfigError:  # in use (another worker's test)
            continue
        break
    else:
        pytest.skip("no free port in 47650-47699")
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def project(tmp_path: Path, squad: str) -> Path:
    """A user's directory: smsgate.toml (SQLite store, tenant acme through the emulator) and crm.csv."""
    account = sandbox_account("squad")
    block: dict[str, Any] = {"plugin": "squad", "base_url": squad, "sender": "SMSGATE", **account.settings,
                             "credentials": dict(account.credentials)}
    options = ", ".join(f"{k} = {json.dumps(v)}" for k, v in block.get("options", {}).items())
    creds = ", ".join(f"{k} = {json.dumps(v)}" for k, v in block["credentials"].items())
    (tmp_path / "smsgate.toml").write_text(
        f'store = "sqlite:///{tmp_path / "smsgate.db"}"\n\n[tenants.acme]\ndefault_region = "NG"\n\n'
        f'[tenants.acme.providers.squad]\nplugin = "squad"\nbase_url = "{squad}"\nsender = "SMSGATE"\n'
        + (f"options = {{ {options} }}\n" if options else "") + f"credentials = {{ {creds} }}\n")
    (tmp_path / "crm.csv").write_bytes(CRM.encode("utf-8"))
    return tmp_path


def smsgate(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``smsgate ARGS`` in the user's directory."""
    env = {**os.environ, "COLUMNS": "300"}
    return subprocess.run([sys.executable, "-m", "smsgate", *args], cwd=project, env=env, capture_output=True,
                          text=True, timeout=60)


def error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The one ``error: ...`` line of a command that failed (exit code 2), no traceback."""
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, (result.stdout, result.stderr)
    return result.stdout


# ---------------------------------------------------------------- the import: invalid rows named by their column
def test_an_imported_row_with_a_bad_number_names_the_phone_column_the_file_has(project: Path) -> None:
    """It said ``column phone: '12345' ...`` of a file without a ``phone`` column (the numbers'
    column was --phone-column 'Phone Number'), where a campaign from the same file names it."""
    out = json.loads(ok(smsgate(project, "contacts", "create", "CRM", "--csv", "crm.csv", "--id", "crm",
                                *CSV_FLAGS, "--json")))
    assert (out["rows"], out["added"], out["duplicates"], out["invalid"]) == (5, 3, 1, 1)
    [bad] = out["invalid_rows"]
    assert bad["location"] == "crm.csv, line 5"
    assert bad["detail"].startswith("column Phone Number: '12345' is not a valid phone number"), bad
    [dup] = out["duplicate_rows"]
    assert dup["detail"] == "+2348031234561 already at crm.csv, line 2"
    shown = json.loads(ok(smsgate(project, "contacts", "show", "crm", "--json")))
    assert [(c["phone"], c["fields"]) for c in shown["contacts"]] == [
        ("+2348031234561", {"first_name": "Adé", "City": "Lagos"}),
        ("+2348031234562", {"first_name": "Bọ́lá", "City": "Ibadan"}),
        ("+2348031234563", {"first_name": "Zoë", "City": "Abuja"})]


# ---------------------------------------------------------------- contacts create: its errors name its own arguments
@pytest.mark.parametrize(("args", "expected"), [
    (["", "--id", "new"], "error: argument 'name': '' is blank: a list needs a name"),
    (["Again", "--id", "crm"], "error: field '--id': a contact list 'crm' already exists for tenant 'acme'; "
                               "give another --id, or none for a new one"),
    (["Again", "--id", "a b\tc"], "error: field '--id': 'a b\\tc' contains '\\t': no line breaks or "
                                  "control characters"),
])
def test_contacts_create_names_what_was_typed_wrong_as_the_command_takes_it(project: Path, args: list[str],
                                                                            expected: str) -> None:
    """It said ``error: contact_lists.create, field 'list_id': ...; give another list_id``: the
    Python API's names, which the command does not take (its flag is --id)."""
    ok(smsgate(project, "contacts", "create", "CRM", "--csv", "crm.csv", "--id", "crm", *CSV_FLAGS))
    assert error_line(smsgate(project, "contacts", "create", *args, "--csv", "crm.csv", *CSV_FLAGS)) == expected
    lists = json.loads(ok(smsgate(project, "contacts", "list", "--json")))
    assert [row["list_id"] for row in lists] == ["crm"]  # nothing half-made


# ---------------------------------------------------------------- a template the stored list cannot fill
def test_a_campaign_to_a_stored_list_refuses_a_placeholder_none_of_its_contacts_has(project: Path) -> None:
    """A typo in a placeholder ({city} for the list's City field) made a campaign with every
    recipient skipped ``missing_variable`` and nothing to send, exit code 0; a CSV file's missing
    column was refused before anything was stored. Now both are refused alike."""
    ok(smsgate(project, "contacts", "create", "CRM", "--csv", "crm.csv", "--id", "crm", *CSV_FLAGS))
    line = error_line(smsgate(project, "campaign", "create", "--name", "Promo", "--list", "crm",
                              "--text", "Hi {first_name}, sale in {city}"))
    assert line == ("error: field '--text': placeholder {city} (did you mean 'City'?) not in the fields of "
                    "contact list 'CRM' (crm) (fields: City, first_name); nothing was created")
    assert json.loads(ok(smsgate(project, "campaign", "list", "--json"))) == []  # nothing half-made
    created = json.loads(ok(smsgate(project, "campaign", "create", "--name", "Promo", "--list", "crm",
                                    "--text", "Hi {first_name}, sale in {City}", "--json")))
    assert created["recipients"] == 3
    run = smsgate(project, "campaign", "run", created["campaign_id"])
    assert "completed; sent 3, failed 0" in ok(run)


def test_the_api_refuses_it_too_and_a_field_some_contacts_have_is_still_taken(project: Path) -> None:
    with Gateway(project / "smsgate.toml") as gw:
        acme = gw.tenant("acme")
        lists = acme.contact_lists
        lists.create("VIP", [{"phone": "08031234561", "name": "Ada"}, {"phone": "08031234562", "tier": "gold"}],
                     list_id="vip")
        with pytest.raises(TemplateError, match=r"placeholder \{nmae\} \(did you mean 'name'\?\) not in the fields "
                                                r"of contact list 'VIP' \(vip\) \(fields: name, tier\)") as info:
            acme.campaigns.create("VIP sale", text="Hi {nmae}", audience=lists.audience("vip"))
        assert info.value.field == "text"
        assert acme.campaigns.list() == []
        # a field only some contacts have: the others are skipped, as documented
        camp = acme.campaigns.create("VIP sale", text="Hi {name}, {tier}", audience=lists.audience("vip"))
        preview = camp.preview()
        assert (preview.recipients, preview.skipped) == (0, {"missing_variable": 2})
        # an empty list cannot tell: nothing to refuse
        lists.create("Empty", [], list_id="empty")
        assert acme.campaigns.create("Empty", text="Hi {name}", audience=lists.audience("empty")).preview().total_rows == 0


# ---------------------------------------------------------------- exporting a campaign's results
def test_an_export_of_a_campaign_id_that_does_not_exist_is_an_error_not_an_empty_list(project: Path) -> None:
    """``smsgate messages --campaign ID --json`` (the documented export) printed ``[]`` and exit
    code 0 for a mistyped id, as for a campaign that sent nothing."""
    ok(smsgate(project, "contacts", "create", "CRM", "--csv", "crm.csv", "--id", "crm", *CSV_FLAGS))
    ok(smsgate(project, "optout", "add", "0803 123 4563", "--reason", "STOP"))
    created = json.loads(ok(smsgate(project, "campaign", "create", "--name", "Promo", "--list", "crm",
                                    "--text", "Hi {first_name}, sale in {City}", "--json")))
    cid = created["campaign_id"]
    assert (created["recipients"], created["skipped"]) == (2, {"opted_out": 1})
    ok(smsgate(project, "campaign", "run", cid))
    exported = json.loads(ok(smsgate(project, "messages", "--campaign", cid, "--json", "--limit", "10000000")))
    assert sorted((m["to"], m["status"]) for m in exported) == [("+2348031234561", "sent"),
                                                                ("+2348031234562", "sent")]
    for typo in (cid[:-1], "cmp_nope"):
        for extra in ([], ["--json"]):
            line = error_line(smsgate(project, "messages", "--campaign", typo, *extra))
            assert line == (f"error: field '--campaign': tenant 'acme' has no campaign '{typo}' and no message "
                            "logged for one of that id ('smsgate campaign list' lists the campaigns)")
    # a campaign that exists and sent nothing matching: still an empty listing, exit code 0
    assert ok(smsgate(project, "messages", "--campaign", cid, "--status", "failed", "--json")) == "[]\n"
    # a deleted campaign's messages stay in the log and are still listed
    ok(smsgate(project, "campaign", "delete", cid, "--yes"))
    assert len(json.loads(ok(smsgate(project, "messages", "--campaign", cid, "--json")))) == 2
    assert error_line(smsgate(project, "messages", "--campaign", " ")).startswith("error: field '--campaign': is blank")


# ---------------------------------------------------------------- the same campaign created twice
def test_campaign_create_with_an_id_is_refused_the_second_time(project: Path) -> None:
    """Run twice (a script re-run after a mistake), ``campaign create`` made two campaigns of the
    same name, each to be sent: the recipients texted twice once both ran. ``--id`` makes the
    second one refused, nothing made; without it, the second says so."""
    ok(smsgate(project, "contacts", "create", "CRM", "--csv", "crm.csv", "--id", "crm", *CSV_FLAGS))
    create = ["campaign", "create", "--name", "Spring sale", "--list", "crm", "--text", "Hi {first_name}"]
    first = smsgate(project, *create, "--id", "spring-sale")
    assert "campaign spring-sale 'Spring sale' (draft, mode fanout)" in ok(first)
    assert first.stderr == ""
    line = error_line(smsgate(project, *create, "--id", "spring-sale"))
    assert line == ("error: field '--id': a campaign 'spring-sale' already exists for tenant 'acme' ('Spring sale', "
                    "draft); nothing was created: 'smsgate campaign status spring-sale' shows it, or give another --id")
    assert error_line(smsgate(project, *create, "--id", "a\tb")) == (
        "error: field '--id': 'a\\tb' contains '\\t': no line breaks or control characters")
    listed = json.loads(ok(smsgate(project, "campaign", "list", "--json")))
    assert [c["campaign_id"] for c in listed] == ["spring-sale"]
    again = smsgate(project, *create, "--json")
    cid = json.loads(ok(again))["campaign_id"]
    assert again.stderr.splitlines() == [
        "note: 1 other campaign(s) of this tenant are named 'Spring sale' too: spring-sale (draft). Each is sent on "
        f"its own: if {cid} repeats one of them by mistake, delete it ('smsgate campaign delete {cid}') rather than "
        "run both; give --id to have a second create refused"]
    named = smsgate(project, *create, "--id", "spring-sale-2")  # an id given: no advice to give one
    assert named.stderr.splitlines() == [
        f"note: 2 other campaign(s) of this tenant are named 'Spring sale' too: {cid} (draft), spring-sale (draft). "
        "Each is sent on its own: if spring-sale-2 repeats one of them by mistake, delete it ('smsgate campaign "
        "delete spring-sale-2') rather than run both"], named.stderr
    ok(smsgate(project, "campaign", "run", "spring-sale"))
    assert "sent 3" in ok(smsgate(project, "campaign", "status", "spring-sale"))


# ---------------------------------------------------------------- a placeholder written as the CRM's column name
def test_a_placeholder_written_as_a_column_name_with_a_space_says_how_to_make_it_one(project: Path) -> None:
    """A CRM exports "First Name"; ``{First Name}`` was refused as "placeholders are plain names
    such as {first_name}", without saying that such a column can fill none (the command takes no
    mapping of columns) and must be renamed in the header."""
    crm = project / "crm.csv"
    crm.write_bytes(CRM.replace("first_name", "First Name").encode("utf-8"))
    line = error_line(smsgate(project, "campaign", "create", "--name", "Promo", "--csv", "crm.csv", *CSV_FLAGS,
                              "--text", "Hi {First Name}, sale in {City}"))
    assert line.endswith("(no indexes, attributes, conversions or format specs); a column or field named "
                         "'First Name' cannot fill a placeholder: rename it in the file's header (e.g. First_Name) "
                         "and write {First_Name}"), line
    with Gateway(project / "smsgate.toml") as gw:
        with pytest.raises(TemplateError, match=r"format specs\); write \{City\}$"):
            gw.tenant("acme").send("08031234561", "Hi { City }", variables={"City": "Lagos"})
        with pytest.raises(TemplateError, match=r"format specs\)$"):  # an attribute is no column name
            gw.tenant("acme").send("08031234561", "Hi {a.b}", variables={"a": "x"})
    crm.write_bytes(CRM.replace("first_name", "First_Name").encode("utf-8"))  # renamed as told
    out = ok(smsgate(project, "campaign", "create", "--name", "Promo", "--csv", "crm.csv", *CSV_FLAGS,
                     "--text", "Hi {First_Name}, sale in {City}"))
    assert "sample to +2348031234561: Hi Adé, sale in Lagos" in out


# ---------------------------------------------------------------- campaign_id= as the docs now advise
@pytest.mark.parametrize(("campaign_id", "said"), [
    ("spring\nsale", r"field 'campaign_id': 'spring\\nsale' contains '\\n': no line breaks or control characters"),
    ("x" * 65, "field 'campaign_id': is 65 characters long; at most 64"),
])
def test_campaigns_create_refuses_a_campaign_id_no_listing_or_command_can_show(project: Path, campaign_id: str,
                                                                               said: str) -> None:
    """``campaigns.create(campaign_id="spring\\nsale")`` was stored, as any text the store keeps:
    every listing then broke its line, and ``smsgate campaign run ID`` could not be typed."""
    from smsgate.errors import ValidationError

    with Gateway(project / "smsgate.toml") as gw:
        acme = gw.tenant("acme")
        with pytest.raises(ValidationError, match=said):
            acme.campaigns.create("Spring sale", text="hi", audience=["08031234561"], campaign_id=campaign_id)
        assert acme.campaigns.list() == []
        ok_id = "x" * 64
        assert acme.campaigns.create("Spring sale", text="hi", audience=["08031234561"],
                                     campaign_id=ok_id).campaign_id == ok_id


# ---------------------------------------------------------------- the audience flags named as the command takes them
def test_campaign_create_names_its_audience_flags_not_the_library_argument(project: Path) -> None:
    """It said ``field 'audience'`` (``campaigns.create()``'s argument) for flags the command
    takes as ``--csv`` and ``--list`` (found by nu26, fixed by the lead)."""
    ok(smsgate(project, "contacts", "create", "CRM", "--csv", "crm.csv", "--id", "crm", *CSV_FLAGS))
    both = error_line(smsgate(project, "campaign", "create", "--name", "Both", "--text", "hi", "--csv", "crm.csv",
                              "--list", "crm"))
    assert both == "error: field '--csv / --list': give --csv FILE or --list ID, not both"
    column = error_line(smsgate(project, "campaign", "create", "--name", "Col", "--text", "hi", "--list", "crm",
                                "--phone-column", "Mobile"))
    assert column.startswith("error: field '--list': --phone-column, --name-column, --delimiter and --encoding read "
                             "a --csv file")  # (dx27: --name-column added)
