"""What a new user trips over in contacts, opt-outs, templates and campaigns, found by
following the docs from a fresh clone (second round). Each test drives the real code path: a
real SQLite store file, the ``memory`` provider (its outbox is the vendor's record), the
``smsgate`` command through typer's runner."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from smsgate import Gateway
from smsgate.campaigns import CsvAudience
from smsgate.cli import app
from smsgate.errors import NotFound, TemplateError, Unsupported, ValidationError
from smsgate.testing import Outbox

runner = CliRunner()

def cli(config: Path, *args: str) -> Any:
    return runner.invoke(app, [*args, "-c", str(config), "-t", "acme"])


def test_campaign_start_at_given_as_text_is_a_validation_error_naming_start_at(config: Path) -> None:
    """``start_at="2030-01-01"`` was an ``AttributeError: 'str' object has no attribute
    'tzinfo'`` from deep in the SQLite store."""
    with Gateway(config) as gw:
        acme = gw.tenant("acme")
        with pytest.raises(ValidationError) as exc:
            acme.campaigns.create("Launch", text="hi", audience=["08031234561"],
                                  start_at="2030-01-01")  # type: ignore[arg-type]
        assert exc.value.field == "start_at" and "datetime" in exc.value.reason
        assert acme.campaigns.list() == []
        # a naive datetime is UTC, as documented
        camp = acme.campaigns.create("Launch", text="hi", audience=["08031234561"], start_at=datetime(2030, 1, 1))
        assert camp.waits_until() == ("scheduled", datetime(2030, 1, 1, tzinfo=timezone.utc))


@pytest.mark.parametrize("audience", ["08031234561", {"phone": "08031234561"}])
def test_a_campaign_to_one_number_or_one_mapping_is_refused_not_read_a_character_a_row(
        config: Path, audience: Any) -> None:
    """``audience="0803..."`` made a campaign of 11 invalid rows, one per character (and a dict
    one row per key); ``contact_lists.create`` already refused both."""
    with Gateway(config) as gw:
        acme = gw.tenant("acme")
        with pytest.raises(ValidationError) as exc:
            acme.campaigns.create("One", text="hi", audience=audience)
        assert exc.value.field == "audience" and "wrap it in a list" in exc.value.reason
        assert acme.campaigns.list() == []


@pytest.mark.parametrize(("quiet", "said"), [
    ("21:00-08:00", "a pair of times"),              # was pydantic's "Tuple should have at most 2 items"
    (["25:00", "08:00"], "'25:00'"),                 # was a ConfigError, naming no field
    (["21:00"], "a pair of times"),
    (["08:00", "08:00"], "start and end at the same time"),  # was accepted: never quiet
    (["8:00", "08:00"], "start and end at the same time"),
])
def test_bad_quiet_hours_are_a_validation_error_naming_quiet_hours(config: Path, quiet: Any, said: str) -> None:
    with Gateway(config) as gw:
        acme = gw.tenant("acme")
        with pytest.raises(ValidationError) as exc:
            acme.campaigns.create("Night", text="hi", audience=["08031234561"], quiet_hours=quiet)
        assert exc.value.field == "quiet_hours" and said in exc.value.reason
        assert acme.campaigns.list() == []


@pytest.mark.parametrize("name", ["", "   "])
def test_a_blank_campaign_name_is_refused(config: Path, name: str) -> None:
    """``smsgate campaign create --name "$NAME"`` with NAME unset stored a campaign named ''."""
    with Gateway(config) as gw:
        with pytest.raises(ValidationError) as exc:
            gw.tenant("acme").campaigns.create(name, text="hi", audience=["08031234561"])
        assert exc.value.field == "name"
    (config.parent / "c.csv").write_text("phone\n08031234561\n")
    result = cli(config, "campaign", "create", "--name", name, "--csv", str(config.parent / "c.csv"),
                 "--text", "hi")
    assert result.exit_code == 2, result.output
    assert "field '--name'" in result.output  # the option, as --help names it (dx6)
    with Gateway(config) as gw:
        assert gw.tenant("acme").campaigns.list() == []


@pytest.mark.parametrize("csv", [
    "msisdn,name\n08031234561,Ada\n",                        # no phone column
    "phone,name\n08031234561,Ada\n08031234562,Ad\xe9\n",     # not UTF-8 on line 3 (after a good row)
])
def test_a_contact_list_whose_csv_cannot_be_read_is_not_created(config: Path, csv: str) -> None:
    """``contact_lists.create("VIP", CsvAudience(bad))`` raised, and left an empty (or half
    filled) list "VIP" behind, unlike a campaign, whose creation is atomic."""
    path = config.parent / "vip.csv"
    path.write_bytes(csv.encode("latin-1"))
    with Gateway(config) as gw:
        lists = gw.tenant("acme").contact_lists
        with pytest.raises(ValidationError) as exc:
            lists.create("VIP", CsvAudience(path))
        assert "vip.csv, line" in str(exc.value)
        assert lists.list() == []
        # the id is free again: the same command works once the file is fixed
        path.write_text("phone,name\n08031234561,Ada\n")
        report = lists.create("VIP", CsvAudience(path), list_id="vip")
        assert (report.added, report.contact_list.size) == (1, 1)
        # a list that exists is kept when adding to it fails
        path.write_text("msisdn\n08031234562\n")
        with pytest.raises(ValidationError):
            lists.add("vip", CsvAudience(path))
        assert lists.get("vip").size == 1


def test_contact_lists_remove_one_number_as_a_string_says_so(config: Path) -> None:
    """``lists.remove(list_id, "08031234561")`` said "'0' is not a valid phone number"."""
    with Gateway(config) as gw:
        lists = gw.tenant("acme").contact_lists
        report = lists.create("VIP", ["08031234561"])
        with pytest.raises(ValidationError) as exc:
            lists.remove(report.contact_list.list_id, "08031234561")
        assert exc.value.field == "phones" and "wrap it in a list" in exc.value.reason
        assert lists.remove(report.contact_list.list_id, ["08031234561"]) == 1


def test_pushing_an_opt_out_to_a_provider_that_keeps_none_is_unsupported(config: Path) -> None:
    """``optouts.push(phone, provider="memory")`` recorded the opt-out locally and returned, as
    if the vendor had it too: ``sync(provider="memory")`` already raised ``Unsupported``."""
    with Gateway(config) as gw:
        acme = gw.tenant("acme")
        with pytest.raises(Unsupported) as exc:
            acme.optouts.push("08031234561", provider="memory")
        assert "memory" in str(exc.value) and "opt-out" in str(exc.value)
        assert not acme.optouts.check("08031234561")  # nothing recorded half-way
        acme.optouts.push("08031234561")  # every provider that keeps opt-outs: none here, local only
        assert acme.optouts.check("08031234561")


def test_pushing_an_opt_out_to_colony_reaches_it_or_says_why_not(sms_emulator: Any) -> None:
    """Colony keeps opt-outs, but creating one is undocumented (an option): named, a push it
    refuses is ``Unsupported`` (the opt-out is kept here); allowed, it reaches the emulator."""
    colony = sms_emulator("colony")
    with colony.gateway() as gw:
        tenant = gw.tenant("test")
        with pytest.raises(Unsupported, match="allow_optout_create"):
            tenant.optouts.push("+27821234567", reason="STOP", provider="colony")
        assert tenant.optouts.check("+27821234567")
        tenant.optouts.push("+27821234568")  # every provider: colony's refusal is skipped
        assert tenant.optouts.check("+27821234568")
    assert [r for r in colony.requests(method="POST") if "opt" in r.path.lower()] == []
    with colony.gateway(options={"allow_optout_create": True}) as gw:
        gw.tenant("test").optouts.push("+27821234569", reason="STOP", provider="colony")
    pushed = [r for r in colony.requests(method="POST") if "opt" in r.path.lower()]
    assert len(pushed) == 1 and "27821234569" in pushed[0].body



def test_status_of_a_message_no_provider_took_does_not_say_via_none(config: Path) -> None:
    """``smsgate status ID`` of an opted-out (rejected) message printed ``via None``."""
    with Gateway(config) as gw:
        acme = gw.tenant("acme")
        acme.optouts.add("08031234561")
        rejected = acme.send_many(["08031234561"], "hi")[0]
        assert rejected.status == "rejected"
    result = cli(config, "status", rejected.message_id)
    assert result.exit_code == 0, result.output
    assert "None" not in result.output
    assert "not sent to any provider" in result.output



def test_a_column_that_appears_twice_in_the_header_is_refused(config: Path) -> None:
    """``phone,name,name``: the second ``name`` was dropped without a word (a contact list kept
    'Ada', {name} said 'Ada'), though a phone column twice was already refused."""
    path = config.parent / "two.csv"
    path.write_text("phone,name,city,name\n08031234561,Ada,Lagos,Bee\n")
    with Gateway(config) as gw:
        acme = gw.tenant("acme")
        for create in (lambda: acme.contact_lists.create("VIP", CsvAudience(path)),
                       lambda: acme.campaigns.create("Sale", text="Hi {name}", audience=CsvAudience(path))):
            with pytest.raises(ValidationError) as exc:
                create()
            assert str(exc.value).startswith("two.csv, line 1")
            assert "'name' appears more than once in the header (columns 2 and 4)" in exc.value.reason
        assert acme.contact_lists.list() == [] and acme.campaigns.list() == []
        # a repeated column the audience does not read is no error
        report = acme.contact_lists.create("VIP", CsvAudience(path, fields={"city": "city"}, name=None))
        assert [c.fields for c in acme.contact_lists.contacts(report.contact_list.list_id)] == [{"city": "Lagos"}]



def test_a_utf16_csv_says_it_is_utf16(config: Path) -> None:
    """Excel's "Unicode Text" is UTF-16 with a byte-order mark (tab-separated): the error said
    "not valid utf-8-sig text (byte ff)" and suggested cp1252, which reads it as garbage."""
    path = config.parent / "excel.txt"
    path.write_bytes("phone\tname\n08031234561\tAda\n".encode("utf-16"))
    with Gateway(config) as gw:
        acme = gw.tenant("acme")
        with pytest.raises(ValidationError) as exc:
            acme.campaigns.create("Sale", text="Hi {name}", audience=CsvAudience(path))
        assert "UTF-16" in exc.value.reason and "CsvAudience(..., encoding='utf-16')" in exc.value.reason
        camp = acme.campaigns.create("Sale", text="Hi {name}",
                                     audience=CsvAudience(path, encoding="utf-16", delimiter="\t"))
        assert [s["text"] for s in camp.preview().samples] == ["Hi Ada"]
    result = runner.invoke(app, ["campaign", "create", "--name", "Sale", "--csv", str(path), "--text", "Hi {name}",
                                 "-c", str(config), "-t", "acme"])
    assert result.exit_code == 2 and "--encoding utf-16" in result.output, result.output



def test_a_number_a_spreadsheet_turned_into_scientific_notation_says_so(config: Path) -> None:
    """``2.34803E+12`` (a number column Excel saved as shown) was "it contains 'E'"."""
    path = config.parent / "excel.csv"
    path.write_text("phone,name\n2.34803E+12,Ada\n08031234562,Bayo\n")
    with Gateway(config) as gw:
        report = gw.tenant("acme").contact_lists.create("VIP", CsvAudience(path))
    assert report.added == 1
    (error,) = report.errors
    assert error.location == "excel.csv, line 2" and "scientific notation" in error.detail
    assert "format the column as text" in error.detail



def test_optout_remove_and_check_name_the_scopes_the_number_has(config: Path) -> None:
    """After ``smsgate optout add N --scope ACME``, ``optout remove N`` said "was not opted out
    (every sender)" and ``optout check N`` "not opted out": the user saw no trace of the opt-out
    they had just added, nor the flag that reaches it."""
    assert cli(config, "optout", "add", "08031234568", "--scope", "ACME").exit_code == 0
    removed = cli(config, "optout", "remove", "08031234568")
    assert removed.exit_code == 1  # nothing removed (dx27: was 0)
    assert "was not opted out (every sender)" in removed.output
    assert "opted out of sender 'acme' only: --scope acme" in removed.output
    checked = cli(config, "optout", "check", "08031234568")
    assert checked.exit_code == 1  # the answer is unchanged: not opted out of every sender
    assert "opted out of sender 'acme' only" in checked.output and "--sender acme" in checked.output
    assert cli(config, "optout", "check", "08031234568", "--sender", "ACME").exit_code == 0
    assert cli(config, "optout", "remove", "08031234568", "--scope", "acme").exit_code == 0
    # nothing left: no hint
    for args in (("remove", "08031234568"), ("check", "08031234568")):
        result = cli(config, "optout", *args)
        assert "only" not in result.output, result.output
    with Gateway(config) as gw:
        optouts = gw.tenant("acme").optouts
        optouts.add("08031234568", scope="AcmeShop")
        optouts.add("08031234568", scope="AcmeBank")
        assert optouts.scopes("08031234568") == {"acmeshop", "acmebank"}
        assert optouts.scopes("08031234569") == set()
    assert cli(config, "optout", "add", "08031234568").exit_code == 0
    result = cli(config, "optout", "remove", "08031234568", "--scope", "Other")
    assert "was not opted out (sender 'other'); it is opted out of every sender: without --scope" in result.output



def test_optout_sync_when_no_provider_keeps_opt_outs_says_so(config: Path) -> None:
    """``smsgate optout sync`` on a tenant whose providers keep no opt-outs said "0 new opt-outs
    imported" (exit 0), as if it had read the vendors' lists and found nothing new."""
    result = cli(config, "optout", "sync")
    assert result.exit_code == 0, result.output
    assert "no provider of tenant 'acme' keeps opt-outs (memory); nothing was read" in result.output
    assert "0 new" not in result.output



def test_a_preview_says_how_many_messages_go_as_ucs2(config: Path) -> None:
    """A curly quote makes a message UCS-2 (70 characters a segment, not 160) and can triple its
    cost, as docs/concepts.md warns; the preview counted segments but never said why there were
    so many (``preview.encoding`` had it; the printed preview and ``campaign create`` did not)."""
    audience = [{"phone": "08031234561", "name": "Ada"}, {"phone": "08031234562", "name": "Bayo"}]
    with Gateway(config) as gw:
        camps = gw.tenant("acme").campaigns
        plain = camps.create("Plain", text='Hi {name}, "sale" today', audience=audience).preview()
        curly = camps.create("Curly", text="Hi {name}, “sale” today", audience=audience).preview()
    assert "UCS-2" not in str(plain)
    assert curly.encoding == {"ucs2": 2}
    assert "  encoding: 2 of 2 messages are UCS-2 (70 characters a segment, not 160)" in str(curly)
    (config.parent / "c.csv").write_text("phone,name\n08031234561,Ada\n")
    result = cli(config, "campaign", "create", "--name", "Curly", "--csv", str(config.parent / "c.csv"),
                 "--text", "Hi {name}, “sale” today")
    assert result.exit_code == 0 and "1 of 1 message is UCS-2" in result.output, result.output



def test_a_misspelt_variable_is_suggested(config: Path) -> None:
    """``send(..., "Hi {name}", variables={"nmae": "Ada"})`` said only "missing variable(s)
    'name'"; the CSV path already asked "did you mean"."""
    with Gateway(config) as gw:
        acme = gw.tenant("acme")
        with pytest.raises(TemplateError) as exc:
            acme.send("08031234561", "Hi {name}, {city}", variables={"nmae": "Ada", "city": "Lagos"})
        assert exc.value.reason == "missing variable(s) 'name' (the variables have 'nmae': a typo for 'name'?)"
        (result,) = acme.send_many([{"to": "08031234562", "variables": {"nmae": "Bo"}}], "Hi {name}")
        assert result.status == "rejected" and "a typo for 'name'?" in (result.error or "")
        with pytest.raises(TemplateError) as exc:  # an empty value: nothing to suggest
            acme.send("08031234561", "Hi {name}", variables={"name": ""})
        assert exc.value.reason == "missing variable(s) 'name'"



def test_campaign_preview_says_how_many_skipped_rows_it_does_not_list(config: Path) -> None:
    """``smsgate campaign preview`` titled its table "skipped rows (first 10)" whether there were
    4 or 400, and never said how to see the rest."""
    path = config.parent / "bad.csv"
    path.write_text("phone\n" + "".join(f"12{i:03d}\n" for i in range(12)) + "08031234561\n")
    created = cli(config, "campaign", "create", "--name", "Bad", "--csv", str(path), "--text", "hi")
    assert created.exit_code == 0, created.output
    with Gateway(config) as gw:
        (camp,) = gw.tenant("acme").campaigns.list()
    hint = f"smsgate campaign preview {camp.campaign_id} --errors 12 lists them all"
    assert f"skipped rows (10 of 12; {hint})" in created.output
    shown = cli(config, "campaign", "preview", camp.campaign_id, "--errors", "12")
    assert "skipped rows (12)" in shown.output and "bad.csv, line 13" in shown.output



def test_cancelling_a_completed_campaign_is_refused_and_it_stays_completed(config: Path, sms_outbox: Outbox) -> None:
    """``camp.cancel()`` (``smsgate campaign cancel ID``) of a campaign that had sent everything
    returned 0 and turned it ``cancelled``: its list and statistics then said cancelled, though
    every message went out."""
    with Gateway(config) as gw:
        camp = gw.tenant("acme").campaigns.create("Done", text="hi", audience=["08031234561"])
        assert camp.run().status == "completed"
        with pytest.raises(ValidationError) as exc:
            camp.cancel()
        assert exc.value.field == "status" and "completed: nothing is left to cancel" in exc.value.reason
        assert camp.row.status == "completed"
    result = cli(config, "campaign", "cancel", camp.campaign_id)
    assert result.exit_code == 2 and "nothing is left to cancel" in result.output, result.output
    with Gateway(config) as gw:
        camp = gw.tenant("acme").campaigns.get(camp.campaign_id)
        assert camp.row.status == "completed"
        sms_outbox.assert_sent(to="+2348031234561", text="hi", count=1)
        # cancelling twice stays a no-op; a draft is cancelled as before; and so is a completed
        # campaign with failed recipients (cancelling it stops a retry_failed)
        draft = gw.tenant("acme").campaigns.create("Draft", text="hi", audience=["08031234562"])
        assert (draft.cancel(), draft.cancel(), draft.row.status) == (1, 0, "cancelled")
        sms_outbox.fail_numbers(r"\+2348031234563")
        failing = gw.tenant("acme").campaigns.create("Failing", text="hi", audience=["08031234563"])
        assert failing.run().failed == 1
        assert (failing.cancel(), failing.row.status) == (0, "cancelled")



def test_removing_contacts_from_a_list_that_does_not_exist_is_not_found(config: Path) -> None:
    """``lists.remove("vpi", [...])`` (a typo) returned 0, as if the numbers were not in the list;
    ``get``, ``add`` and ``contacts`` raise ``NotFound``."""
    with Gateway(config) as gw:
        lists = gw.tenant("acme").contact_lists
        lists.create("VIP", ["08031234561"], list_id="vip")
        with pytest.raises(NotFound, match="no contact list 'vpi'"):
            lists.remove("vpi", ["08031234561"])
        assert lists.remove("vip", ["08031234562"]) == 0 and lists.get("vip").size == 1



def test_stats_for_a_provider_the_tenant_never_had_says_so(config: Path) -> None:
    """``smsgate stats --provider sqaud`` (a typo) printed "total 0" and exit 0: all zeros, as if
    the provider had carried nothing."""
    with Gateway(config) as gw:
        gw.tenant("acme").send("08031234561", "hi")
    result = cli(config, "stats", "--provider", "sqaud")
    assert result.exit_code == 2, result.output
    assert "field '--provider': tenant 'acme' has no provider 'sqaud' (its providers: memory)" in result.output
    assert cli(config, "stats", "--provider", "memory").output.startswith("total 1:")
    # a provider no longer configured whose messages are still in the log: its figures, as before
    config.write_text(config.read_text().replace("[tenants.acme.providers.memory]", "[tenants.acme.providers.mem2]"))
    assert cli(config, "stats", "--provider", "memory").output.startswith("total 1:")



@pytest.mark.parametrize(("command", "wanted", "unwanted"), [
    # durations were shown as float seconds: "[default: 300.0]" for an option read as "5m"
    (("status", "sync"), ["[default: (5m)]", "[default: (1m)]", "[default: (1h)]", "[default: (7d)]", "[default: (10m)]"],
     ["300.0", "604800.0"]),
    (("status", "recover"), ["[default: (10m)]"], ["600.0"]),
    # options without a word of help
    (("optout", "add"), ["Why (e.g. 'replied STOP')"], []),
    (("optout", "list"), ["How many at most"], []),
    (("optout", "sync"), ["Only this provider instance"], []),
])
def test_help_texts_say_what_each_option_is(command: tuple[str, ...], wanted: list[str],
                                            unwanted: list[str]) -> None:
    result = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "250"})
    assert result.exit_code == 0
    for text in wanted:
        assert text in result.output, result.output
    for text in unwanted:
        assert text not in result.output, result.output



@pytest.mark.parametrize("limit", [-1, "5", True])
def test_campaigns_list_with_a_bad_limit_is_refused(config: Path, limit: Any) -> None:
    """``campaigns.list(limit=-1)`` returned ``[]`` (as if there were none) where ``messages()``
    and ``optouts.list()`` refuse the same limit."""
    with Gateway(config) as gw:
        camps = gw.tenant("acme").campaigns
        camps.create("One", text="hi", audience=["08031234561"])
        with pytest.raises(ValidationError) as exc:
            camps.list(limit=limit)
        assert exc.value.field == "limit" and "a whole number >= 0" in exc.value.reason
        assert len(camps.list(limit=1)) == 1 and camps.list(limit=0) == []



def test_a_text_with_a_placeholder_and_no_variables_names_text_and_the_way_out(config: Path) -> None:
    """``smsgate send N "hi {name}"`` said "field 'template': missing variable(s) 'name'": the
    user gave a text, not a template, and the command has no way to give variables."""
    result = cli(config, "send", "08031234561", "hi {name}")
    assert result.exit_code == 2
    assert ("argument 'text': missing variable(s) 'name'; no variables were given: pass variables, or write "
            "{{ and }} for literal braces") in result.output, result.output
    with Gateway(config) as gw:
        acme = gw.tenant("acme")
        with pytest.raises(TemplateError) as exc:
            acme.send("08031234561", "hi {name}", variables={"city": "Lagos"})
        assert (exc.value.field, exc.value.reason) == ("text", "missing variable(s) 'name'")
        assert acme.send("08031234561", "hi {{name}}").status == "sent"  # as documented: literal braces



@pytest.mark.parametrize(("quiet", "said"), [
    ('["25:00", "08:00"]', "'25:00': expected HH:MM"),
    ('["08:00", "08:00"]', "start and end at the same time"),
    ('["21:00"]', "a pair of times"),
])
def test_bad_quiet_hours_in_the_configuration_file_are_a_config_error_naming_the_key(
        config: Path, quiet: str, said: str) -> None:
    """``quiet_hours = ["25:00", "08:00"]`` in smsgate.toml loaded, then failed every campaign with
    an error naming the campaign's field; ``["08:00", "08:00"]`` was never quiet."""
    config.write_text(config.read_text().replace('default_region = "NG"', f'default_region = "NG"\nquiet_hours = {quiet}'))
    result = runner.invoke(app, ["config", "check", "-c", str(config)])
    assert result.exit_code == 2, result.output
    assert "quiet_hours" in result.output and said in result.output and "acme" in result.output



@pytest.mark.parametrize(("name", "said"), [
    ("n" * 201, "is 201 characters long; at most 200"),
    ("Spring\nsale", "no line breaks or control characters"),
    ("Sale \x1b[31mNOW", "no line breaks or control characters"),
])
def test_a_campaign_name_follows_the_contact_list_name_rule(config: Path, name: str, said: str) -> None:
    """A campaign's name is for people, as a contact list's is (shown by 'smsgate campaign list'):
    a list's is 1-200 printable characters, while a campaign took 100,000 characters or a line
    break (a listing row split in two); one rule for both now, and nothing is created."""
    with Gateway(config) as gw:
        acme = gw.tenant("acme")
        with pytest.raises(ValidationError) as exc:
            acme.campaigns.create(name, text="hi", audience=["08031234561"])
        assert exc.value.field == "name" and said in exc.value.reason, exc.value
        assert acme.campaigns.list() == []
        acme.campaigns.create("n" * 200 + "", text="hi", audience=["08031234561"])  # the longest
        with pytest.raises(ValidationError) as exc:
            acme.contact_lists.create(name, ["08031234561"])
        assert exc.value.field == "name" and said in exc.value.reason, exc.value
