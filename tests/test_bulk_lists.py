"""Bulk opt-out import, contact lists in the CLI, campaign quiet hours from the CLI, and
campaign start times in the past: what a user of a serious SMS library expects (the third
new-user round). Each test drives the real code path: a real SQLite store file, the ``memory``
provider, the ``smsgate`` command through typer's runner."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from smsgate import AsyncGateway, Gateway
from smsgate.campaigns import CsvAudience
from smsgate.cli import app
from smsgate.errors import ValidationError
from smsgate.testing import Outbox

runner = CliRunner()

def cli(config: Path, *args: str) -> Any:
    return runner.invoke(app, [*args, "-c", str(config), "-t", "acme"])


# ----------------------------------------------------------------------- bulk opt-out import
STOPS = "phone,reason\n08031234561,stop\n0803123456,short\n+2348031234562,x\n08031234561,again\n,empty\n"


def test_add_many_reports_added_already_and_invalid_rows_with_their_lines(config: Path) -> None:
    path = config.parent / "stops.csv"
    path.write_text(STOPS)
    with Gateway(config) as gw:
        optouts = gw.tenant("acme").optouts
        assert optouts.add("08031234562") is True  # already opted out before the import
        report = optouts.add_many(CsvAudience(path), reason="old CRM")
        # 08031234561 twice in the file: a repeat, not "already" (dx6)
        assert (report.rows, report.added, report.already, report.repeated, report.invalid_count) == (5, 1, 1, 1, 2)
        assert [e.location for e in report.invalid] == ["stops.csv, line 3", "stops.csv, line 6"]
        assert "0803123456" == report.invalid[0].phone
        assert [(o.phone, o.scope, o.reason, o.source) for o in optouts.list()] == [
            ("+2348031234561", "*", "old CRM", "import"), ("+2348031234562", "*", None, "api")]
        # importing again adds nothing
        again = optouts.add_many(CsvAudience(path))
        assert (again.added, again.already, again.repeated) == (0, 2, 1)


def test_add_many_takes_numbers_and_a_scope_and_writes_one_transaction_a_batch(
        config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with Gateway(config) as gw:
        t = gw.tenant("acme")
        store = t._core.store
        writes: list[int] = []
        real = store.add_optouts

        def counted(tenant: str, optouts: Any) -> int:
            writes.append(len(optouts))
            return real(tenant, optouts)

        monkeypatch.setattr(store, "add_optouts", counted)
        numbers = [f"0803123{i:04d}" for i in range(2500)]
        report = t.optouts.add_many(numbers, scope="AcmeShop")
        assert (report.added, report.already, report.invalid_count) == (2500, 0, 0)
        assert writes == [1000, 1000, 500]  # one write a batch, not one a number
        assert t.optouts.check("08031230007", sender="acmeshop") and not t.optouts.check("08031230007")
        assert t.optouts.add_many([{"phone": "08031230001"}, {"name": "no phone"}], scope="acmeshop").already == 1


@pytest.mark.parametrize("kind", ["memory", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_add_many_on_the_other_stores(kind: str) -> None:
    """The same counts from every store's ``add_optouts`` (PostgreSQL's ON CONFLICT DO NOTHING)."""
    if kind == "memory":
        store: Any = "memory://"
    else:
        from test_store_postgres import scratch_store

        store = scratch_store()
        store.migrate()
    cfg = {"tenants": {"acme": {"default_region": "NG", "providers": {"memory": {"plugin": "memory"}}}}}
    try:
        with Gateway(cfg, store=store) as gw:
            optouts = gw.tenant("acme").optouts
            optouts.add("08031234561")
            report = optouts.add_many(["08031234561", "08031234562", "08031234562", "08031234563", "x"],
                                      batch_size=2)
            assert (report.added, report.already, report.repeated, report.invalid_count) == (2, 1, 1, 1)
            assert [e.location for e in report.invalid] == ["contact 5"]
            assert optouts.count() == 3
    finally:
        if kind != "memory":
            store.close()


#: Ten numbers, each in two forms (national, E.164), and a row that is not a number.
POOL = [f"0803123000{i}" for i in range(10)]
FORMS = POOL + [f"+234{n[1:]}" for n in POOL] + ["08031"]


def expected_import(rows: list[str], before: set[str]) -> tuple[int, int, int, int]:
    """What an import of ``rows`` must report when ``before`` (E.164) were opted out already:
    (added, already, repeated, invalid), counted with a set of every number."""
    seen: set[str] = set()
    added = already = repeated = invalid = 0
    for raw in rows:
        if raw == "08031":
            invalid += 1
            continue
        phone = f"+234{raw[1:]}" if raw.startswith("0") else raw
        if phone in seen:
            repeated += 1
        elif phone in before:
            seen.add(phone)
            already += 1
        else:
            seen.add(phone)
            added += 1
    return added, already, repeated, invalid


def test_add_many_counts_repeats_across_batches_exactly() -> None:
    """Numbers repeated within a batch and in later ones (in either form), numbers opted out
    before and repeated after, invalid rows between: the same counts as a set of every number
    of the import gives, whatever the batch size (the numbers of earlier batches are kept on
    disk, not in a set)."""
    import itertools

    from hypothesis import settings

    cfg = {"tenants": {"acme": {"default_region": "NG", "providers": {"memory": {"plugin": "memory"}}}}}
    with Gateway(cfg, store="memory://") as gw:
        optouts = gw.tenant("acme").optouts
        scopes = itertools.count()

        @settings(max_examples=80, deadline=None)
        @given(rows=st.lists(st.sampled_from(FORMS), max_size=40),
               before=st.sets(st.sampled_from(POOL), max_size=4), batch_size=st.integers(1, 5))
        def check(rows: list[str], before: set[str], batch_size: int) -> None:
            scope = f"brand{next(scopes)}"  # a registry of its own for each example
            for phone in before:
                optouts.add(phone, scope=scope)
            report = optouts.add_many(rows, scope=scope, batch_size=batch_size)
            assert (report.added, report.already, report.repeated, report.invalid_count) == expected_import(
                rows, {f"+234{n[1:]}" for n in before}), (rows, before, batch_size)
            assert report.rows == len(rows)

        check()
        # and one case spelled out: batches of 2; 1 and 2 repeated two batches later, 3 in its batch
        rows = [POOL[1], POOL[2], POOL[3], "+2348031230003", POOL[4], "08031", f"+234{POOL[1][1:]}", POOL[2],
                POOL[5], POOL[4]]
        optouts.add(POOL[5], scope="spelled")
        report = optouts.add_many(rows, scope="spelled", batch_size=2)
        assert (report.rows, report.added, report.already, report.repeated, report.invalid_count) == (
            10, 4, 1, 4, 1)


def test_optout_import_counts_repeats_across_its_batches(config: Path) -> None:
    """``smsgate optout import`` writes 1,000 numbers at a time: a number repeated 1,000 rows
    later, in the next batch, is ``repeated in the file`` (not ``already``), and one opted out
    before is ``already`` wherever it is."""
    numbers = [f"080312{i:05d}" for i in range(2400)]
    rows = numbers[:1500] + ["+234" + n[1:] for n in numbers[:300]] + numbers[1500:] + numbers[2000:2100]
    path = config.parent / "stops.csv"
    path.write_text("phone\n" + "\n".join(rows) + "\n")
    with Gateway(config) as gw:
        for n in numbers[1400:1450]:
            gw.tenant("acme").optouts.add(n)
    result = cli(config, "optout", "import", str(path), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert (data["rows"], data["added"], data["already"], data["repeated"], data["invalid"]) == (
        2800, 2350, 50, 400, 0)


def test_an_optout_import_takes_the_same_memory_for_a_file_ten_times_larger(tmp_path: Path) -> None:
    """``optout import`` kept every number of the file in a set to count the repeated ones: its
    memory grew with the file (10 million numbers: ~1 GB). The numbers of the batches written
    are kept on disk (a temporary SQLite database, whose page cache is bounded and outside
    what tracemalloc sees); the Python memory an import of 60,000 numbers takes is that of
    one of 6,000 (the set's table alone was 2 MB more)."""
    import tracemalloc

    cfg = {"store": f"sqlite:///{tmp_path / 'sms.db'}",
           "tenants": {"acme": {"default_region": "NG", "providers": {"memory": {"plugin": "memory"}}}}}
    peaks = []
    with Gateway(cfg) as gw:
        t = gw.tenant("acme")
        for size, first in ((6_000, 0), (60_000, 100_000)):
            numbers = [f"0803{i:07d}" for i in range(first, first + size)]
            path = tmp_path / f"stops{size}.csv"
            path.write_text("phone\n" + "\n".join(numbers) + "\n")
            for n in numbers:  # the number cache (bounded, process-wide) filled before, not measured
                t.normalize(n)
            del numbers
            tracemalloc.start()
            try:
                report = t.optouts.add_many(CsvAudience(path))
                peaks.append(tracemalloc.get_traced_memory()[1])
            finally:
                tracemalloc.stop()
            assert (report.added, report.repeated) == (size, 0)
    assert peaks[1] < peaks[0] + 400_000, peaks


def test_add_many_keeps_the_batches_before_a_line_that_cannot_be_read(config: Path) -> None:
    path = config.parent / "stops.csv"
    path.write_bytes(b"phone\n" + b"".join(b"0803123%04d\n" % i for i in range(3000)) + b"\xe9\n")
    with Gateway(config) as gw:
        optouts = gw.tenant("acme").optouts
        with pytest.raises(ValidationError) as exc:
            optouts.add_many(CsvAudience(path), batch_size=500)
        assert exc.value.location == "stops.csv, line 3002"
        kept = optouts.count()  # the whole batches read before the file is decoded in blocks
        assert kept >= 1000 and kept % 500 == 0, kept
        path.write_bytes(path.read_bytes()[:-2])  # fixed: importing again adds only the rest
        report = optouts.add_many(CsvAudience(path))
        assert (report.added, report.already, optouts.count()) == (3000 - kept, kept, 3000)


@pytest.mark.parametrize(("kw", "field"), [
    ({"phones": "08031234561"}, "phones"), ({"phones": ["08031234561"], "scope": " "}, "scope"),
    ({"phones": ["08031234561"], "reason": 5}, "reason"), ({"phones": ["08031234561"], "batch_size": 0}, "batch_size"),
])
def test_add_many_refuses_bad_arguments_naming_them_and_records_nothing(config: Path, kw: dict[str, Any],
                                                                         field: str) -> None:
    with Gateway(config) as gw:
        optouts = gw.tenant("acme").optouts
        with pytest.raises(ValidationError) as exc:
            optouts.add_many(**kw)
        assert exc.value.field == field
        assert optouts.count() == 0


def test_async_add_many(config: Path) -> None:
    async def go() -> tuple[int, int, int, int]:
        async with AsyncGateway(config) as gw:
            t = gw.tenant("acme")
            report = await t.optouts.add_many(["08031234561", "bad", "08031234561"])
            return report.added, report.already, report.repeated, await t.optouts.count()

    assert asyncio.run(go()) == (1, 0, 1, 1)


def test_cli_optout_import(config: Path) -> None:
    path = config.parent / "stops.csv"
    path.write_text(STOPS.replace("phone,", "Mobile,", 1))
    result = cli(config, "optout", "import", str(path))
    assert result.exit_code == 2
    assert "no 'phone' column" in result.output and "(is it 'Mobile'? --phone-column Mobile)" in result.output
    result = cli(config, "optout", "import", str(path), "--column", "Mobile", "--scope", "AcmeShop",
                 "--reason", "old CRM")
    assert result.exit_code == 0, result.output
    assert ("5 row(s): 2 opted out of sender 'acmeshop', 0 already were, 1 repeated in the file, 2 invalid"
            in result.output), result.output
    assert "stops.csv, line 3" in result.output and "stops.csv, line 6" in result.output
    result = cli(config, "optout", "import", str(path), "--column", "Mobile", "--json")
    data = json.loads(result.output)
    assert (data["added"], data["already"], data["repeated"], data["invalid"]) == (2, 0, 1, 2)
    assert data["invalid_rows"][0]["location"] == "stops.csv, line 3"
    path.write_bytes("phone\n08031234569\n".encode("utf-16"))
    result = cli(config, "optout", "import", str(path))
    assert result.exit_code == 2 and "--encoding utf-16" in result.output
    assert cli(config, "optout", "import", str(path), "--encoding", "utf-16").exit_code == 0
    assert cli(config, "optout", "check", "08031234569").exit_code == 0


# ----------------------------------------------------------------------- contact lists in the CLI
VIP = "phone,name,city\n08031234561,Ada,Lagos\n0803,Bad,Nowhere\n08031234562,Bola,\"Abuja, FCT\"\n"


def test_cli_contacts_create_show_export_remove_delete(config: Path) -> None:
    path = config.parent / "vip.csv"
    path.write_text(VIP)
    result = cli(config, "contacts", "create", "VIP", "--csv", str(path), "--id", "vip")
    assert result.exit_code == 0, result.output
    assert "vip 'VIP': created; 3 row(s): 2 added, 0 updated, 0 duplicate(s), 1 invalid; 2 contact(s)" in result.output
    assert "vip.csv, line 3" in result.output
    assert "vip" in cli(config, "contacts", "list").output
    listed = json.loads(cli(config, "contacts", "list", "--json").output)
    assert [(r["list_id"], r["size"]) for r in listed] == [("vip", 2)]
    shown = cli(config, "contacts", "show", "vip", "--limit", "1")
    assert shown.exit_code == 0 and "+2348031234561" in shown.output and "city=Lagos" in shown.output
    assert "1 of 2" in shown.output
    # export: to stdout and to a file, which reads back as the same list
    out = cli(config, "contacts", "export", "vip")
    assert out.stdout.splitlines() == ["phone,name,city", "+2348031234561,Ada,Lagos",
                                       '+2348031234562,Bola,"Abuja, FCT"']
    copy = config.parent / "copy.csv"
    assert cli(config, "contacts", "export", "vip", "-o", str(copy)).exit_code == 0
    with Gateway(config) as gw:
        lists = gw.tenant("acme").contact_lists
        again = lists.create("copy", CsvAudience(copy))
        assert list(lists.contacts(again.contact_list.list_id)) == list(lists.contacts("vip"))
    # add: a number already there is updated
    path.write_text("phone,name,city\n08031234562,Bola A.,Abuja\n08031234563,Chi,Enugu\n")
    result = cli(config, "contacts", "add", "vip", "--csv", str(path))
    assert "2 row(s): 1 added, 1 updated, 0 duplicate(s), 0 invalid; 3 contact(s)" in result.output
    result = cli(config, "contacts", "remove", "vip", "08031234561", "+2348031234563", "08031234569")
    assert result.exit_code == 0 and "2 of 3 number(s) removed (1 not in it); 1 contact(s) left" in result.output
    result = runner.invoke(app, ["contacts", "delete", "vip", "-c", str(config)], input="n\n")
    assert result.exit_code == 1 and "nothing changed" in result.output
    assert cli(config, "contacts", "delete", "vip", "--yes").exit_code == 0
    missing = cli(config, "contacts", "show", "vip")
    assert missing.exit_code == 2 and "vip" in missing.output


@pytest.mark.parametrize(("csv_text", "said"), [
    ("msisdn,name\n08031234561,Ada\n", "no 'phone' column"),
    (b"phone\n0803123456\xe9\n", "vip.csv, line 2"),
])
def test_cli_contacts_create_from_a_bad_file_leaves_no_list(config: Path, csv_text: Any, said: str) -> None:
    path = config.parent / "vip.csv"
    path.write_bytes(csv_text if isinstance(csv_text, bytes) else csv_text.encode())
    result = cli(config, "contacts", "create", "VIP", "--csv", str(path))
    assert result.exit_code == 2 and said in result.output
    assert json.loads(cli(config, "contacts", "list", "--json").output) == []


def test_export_api_writes_to_an_open_file_and_a_missing_list_is_not_found(config: Path) -> None:
    import io

    from smsgate.errors import NotFound

    with Gateway(config) as gw:
        lists = gw.tenant("acme").contact_lists
        lists.create("VIP", [{"phone": "08031234561", "name": "Ada", "tier": "gold"},
                             {"phone": "08031234562", "city": "Kano"}], list_id="vip")
        buf = io.StringIO()
        assert lists.export("vip", buf) == 2
        assert buf.getvalue().splitlines() == ["phone,name,tier,city", "+2348031234561,Ada,gold,",
                                               "+2348031234562,,,Kano"]
        with pytest.raises(NotFound):
            lists.export("nope", config.parent / "nope.csv")
        assert not (config.parent / "nope.csv").exists()
        with pytest.raises(ValidationError) as exc:
            lists.export("vip", config.parent / "vip.xml", format="xml")  # type: ignore[arg-type]
        assert exc.value.field == "format" and not (config.parent / "vip.xml").exists()
        buf = io.StringIO()
        assert lists.export("vip", buf, format="json") == 2
        data = json.loads(buf.getvalue())
        assert (data["list_id"], data["size"], [c["fields"] for c in data["contacts"]]) == (
            "vip", 2, [{"tier": "gold"}, {"city": "Kano"}])


def test_cli_contacts_export_and_remove_print_json(config: Path) -> None:
    """``contacts export`` and ``contacts remove`` had no ``--json`` where the other ``contacts``
    commands have it."""
    path = config.parent / "vip.csv"
    path.write_text(VIP)
    assert cli(config, "contacts", "create", "VIP", "--csv", str(path), "--id", "vip").exit_code == 0
    shown = json.loads(cli(config, "contacts", "show", "vip", "--json").stdout)
    # export --json: the list and every contact, as show --json prints them, to stdout or a file
    out = cli(config, "contacts", "export", "vip", "--json")
    assert out.exit_code == 0, out.output
    exported = json.loads(out.stdout)
    assert exported == shown and exported["size"] == 2
    assert exported["contacts"][1] == {"phone": "+2348031234562", "name": "Bola", "fields": {"city": "Abuja, FCT"},
                                       "id": None}
    copy = config.parent / "vip.json"
    written = cli(config, "contacts", "export", "vip", "--json", "-o", str(copy))
    assert written.exit_code == 0 and "2 contact(s) written to" in written.stderr and written.stdout == ""
    assert json.loads(copy.read_text()) == shown
    path.with_name("none.csv").write_text("phone\n")
    assert cli(config, "contacts", "create", "Empty", "--csv", str(path.with_name("none.csv")), "--id", "e"
               ).exit_code == 0
    assert json.loads(cli(config, "contacts", "export", "e", "--json").stdout)["contacts"] == []
    # a list that does not exist, a file that cannot be written: one error line, nothing printed
    missing = cli(config, "contacts", "export", "nope", "--json")
    assert missing.exit_code == 2 and missing.stdout == "" and "nope" in missing.stderr
    bad = cli(config, "contacts", "export", "vip", "-o", str(config.parent / "no-such-dir" / "vip.csv"))
    assert bad.exit_code == 2 and "Traceback" not in bad.output
    assert f"error: {config.parent / 'no-such-dir' / 'vip.csv'}: cannot write the export file" in bad.stderr
    # remove --json: the list after, how many went, how many were not in it (a number given twice is one)
    removed = cli(config, "contacts", "remove", "vip", "08031234561", "+2348031234561", "08031234569", "--json")
    assert removed.exit_code == 0, removed.output
    data = json.loads(removed.stdout)
    assert (data["list_id"], data["size"], data["removed"], data["not_in_list"]) == ("vip", 1, 1, 1)
    text = cli(config, "contacts", "remove", "vip", "08031234562", "08031234562")
    assert "vip: 1 of 1 number(s) removed (0 not in it); 0 contact(s) left" in text.output


def test_cli_contacts_add_names_the_rows_that_repeat_a_number(config: Path) -> None:
    path = config.parent / "vip.csv"
    path.write_text("phone,name\n08031234561,Ada\n08031234562,Bola\n+2348031234561,Ada again\n0803,Bad\n")
    result = cli(config, "contacts", "create", "VIP", "--csv", str(path), "--id", "vip")
    assert result.exit_code == 0, result.output
    assert "4 row(s): 2 added, 0 updated, 1 duplicate(s), 1 invalid; 2 contact(s)" in result.output
    assert "numbers given again, not stored (the first row is kept) (1)" in result.output
    assert "vip.csv, line 4" in result.output and "+2348031234561 already at vip.csv, line 2" in result.output
    result = cli(config, "contacts", "add", "vip", "--csv", str(path), "--json")
    data = json.loads(result.stdout)
    assert (data["rows"], data["added"], data["updated"], data["duplicates"], data["invalid"]) == (4, 0, 2, 1, 1)
    assert [(d["location"], d["reason"]) for d in data["duplicate_rows"]] == [("vip.csv, line 4", "duplicate")]
    assert data["invalid_rows"][0]["location"] == "vip.csv, line 5"
    listed = cli(config, "contacts", "add", "vip", "--csv", str(path), "--errors", "0")
    assert "numbers given again, not stored (the first row is kept): 1, not listed (--errors N lists them)" \
        in listed.output and "line 4" not in listed.output


def test_cli_campaign_create_from_a_stored_list(config: Path, sms_outbox: Outbox) -> None:
    path = config.parent / "vip.csv"
    path.write_text(VIP)
    assert cli(config, "contacts", "create", "VIP", "--csv", str(path), "--id", "vip").exit_code == 0
    result = cli(config, "campaign", "create", "--name", "sale", "--list", "vip", "--text", "Hi {name} in {city}")
    assert result.exit_code == 0, result.output
    with Gateway(config) as gw:
        camps = gw.tenant("acme").campaigns.list()
        assert len(camps) == 1
        cid = camps[0].campaign_id
    assert cli(config, "campaign", "run", cid).exit_code == 0
    assert sorted(m.text for m in sms_outbox.messages()) == ["Hi Ada in Lagos", "Hi Bola in Abuja, FCT"]
    for args, said in [((), "--csv FILE or --list ID"), (("--list", "vip", "--csv", str(path)), "not both"),
                       (("--list", "nope"), "nope"), (("--list", "vip", "--encoding", "cp1252"), "--csv file")]:
        result = cli(config, "campaign", "create", "--name", "x", "--text", "hi", *args)
        assert result.exit_code == 2 and said in result.output, result.output


# ----------------------------------------------------------------------- campaign create --quiet-hours
def test_cli_campaign_create_with_quiet_hours(config: Path) -> None:
    path = config.parent / "c.csv"
    path.write_text("phone\n08031234561\n")
    result = cli(config, "campaign", "create", "--name", "night", "--csv", str(path), "--text", "hi",
                 "--quiet-hours", "21:00 - 08:00")
    assert result.exit_code == 0, result.output
    with Gateway(config) as gw:
        [camp] = gw.tenant("acme").campaigns.list()
        assert camp.spec["quiet_hours"] == ["21:00", "08:00"]


@pytest.mark.parametrize(("quiet", "said"), [
    ("21:00", "START-END"), ("21:00-08:00-09:00", "START-END"), ("25:00-08:00", "'25:00': expected HH:MM"),
    ("08:00-8:00", "start and end at the same time"),
])
def test_cli_campaign_create_with_bad_quiet_hours_names_the_flag(config: Path, quiet: str, said: str) -> None:
    path = config.parent / "c.csv"
    path.write_text("phone\n08031234561\n")
    result = cli(config, "campaign", "create", "--name", "night", "--csv", str(path), "--text", "hi",
                 "--quiet-hours", quiet)
    assert result.exit_code == 2 and "field '--quiet-hours'" in result.output and said in result.output, \
        result.output
    with Gateway(config) as gw:
        assert gw.tenant("acme").campaigns.list() == []


def test_parse_quiet_hours_is_check_quiet_hours_on_a_text() -> None:
    from smsgate.zones import parse_quiet_hours

    assert parse_quiet_hours("21:00-08:00") == ("21:00", "08:00")
    with pytest.raises(ValueError, match="expected HH:MM"):
        parse_quiet_hours("9pm-8am")
    assert parse_quiet_hours("off") is False and parse_quiet_hours(" None ") is False


@given(st.one_of(st.text(max_size=20), st.sampled_from(["off", "OFF", " none ", "21:00-08:00", "7:5-8:00"]),
                 st.builds(lambda a, b: f"{a}-{b}", st.times().map(lambda t: t.strftime("%H:%M")),
                           st.times().map(lambda t: t.strftime("%H:%M")))))
def test_a_quiet_hours_text_is_off_a_window_the_campaign_rule_takes_or_a_value_error(text: str) -> None:
    """Whatever is typed after ``--quiet-hours``: ``False`` (off), a pair that
    ``campaign_quiet_hours`` keeps as it is, or a ``ValueError``, never anything else."""
    from smsgate.zones import campaign_quiet_hours, parse_quiet_hours

    try:
        parsed = parse_quiet_hours(text)
    except ValueError:
        return
    if parsed is False:
        assert text.strip().casefold() in ("off", "none")
        assert campaign_quiet_hours(parsed, ("21:00", "08:00")) is None
    else:
        assert campaign_quiet_hours(parsed, ("21:00", "08:00")) == parsed and parsed[0] != parsed[1]


def quiet_now(config: Path) -> tuple[str, str]:
    """Give tenant ``acme`` quiet hours (in UTC) from an hour ago to an hour from now; returns them."""
    from datetime import datetime, timedelta, timezone

    now = datetime.now(timezone.utc)
    window = ((now - timedelta(hours=1)).strftime("%H:%M"), (now + timedelta(hours=1)).strftime("%H:%M"))
    config.write_text(config.read_text().replace(
        'default_region = "NG"', f'default_region = "NG"\ntimezone = "UTC"\nquiet_hours = {list(window)!r}'))
    return window


def test_a_campaign_with_quiet_hours_off_sends_in_its_tenants_quiet_hours(config: Path, sms_outbox: Outbox) -> None:
    """A tenant with quiet hours could not clear them for one campaign: ``quiet_hours=None``
    means "the tenant's". ``False`` means none; leaving it out still keeps the tenant's."""
    from smsgate.models import CampaignStatus

    window = quiet_now(config)
    with Gateway(config) as gw:
        acme = gw.tenant("acme")
        held = acme.campaigns.create("held", text="hi", audience=["08031234561"])
        assert held.settings.quiet_hours == window
        assert (held.waits_until() or ("",))[0] == "quiet hours"
        assert held.run(wait=False).status is CampaignStatus.SCHEDULED
        assert sms_outbox.messages() == []
        free = acme.campaigns.create("free", text="hi", audience=["08031234562"], quiet_hours=False)
        assert free.settings.quiet_hours is None and free.waits_until() is None
        done = free.run(wait=False)
        assert (done.status, done.sent) == (CampaignStatus.COMPLETED, 1)
        assert [m.to for m in sms_outbox.messages()] == ["+2348031234562"]
        assert held.run(wait=False).status is CampaignStatus.SCHEDULED  # still held
        for bad in (True, "off", ()):
            with pytest.raises(ValidationError) as exc:
                acme.campaigns.create("bad", text="hi", audience=["08031234563"], quiet_hours=bad)  # type: ignore[arg-type]
            assert exc.value.field == "quiet_hours"
            assert "None: the tenant's quiet hours; False: none for this campaign" in exc.value.reason
        assert len(acme.campaigns.list()) == 2
    assert [m.to for m in sms_outbox.messages()] == ["+2348031234562"]


def test_async_campaign_with_quiet_hours_off_sends_in_its_tenants_quiet_hours(
        config: Path, sms_outbox: Outbox) -> None:
    window = quiet_now(config)

    async def go() -> tuple[Any, Any, int]:
        async with AsyncGateway(config) as gw:
            acme = gw.tenant("acme")
            held = await acme.campaigns.create("held", text="hi", audience=["08031234561"])
            free = await acme.campaigns.create("free", text="hi", audience=["08031234562"], quiet_hours=False)
            assert (await held.settings()).quiet_hours == window and (await free.settings()).quiet_hours is None
            assert (await held.waits_until() or ("",))[0] == "quiet hours" and await free.waits_until() is None
            return (await held.run(wait=False)).status, (await free.run(wait=False)).status, len(sms_outbox)

    held, free, sent = asyncio.run(go())
    assert (held.value, free.value, sent) == ("scheduled", "completed", 1)
    assert [m.to for m in sms_outbox.messages()] == ["+2348031234562"]


def test_cli_campaign_create_with_quiet_hours_off(config: Path, sms_outbox: Outbox) -> None:
    window = quiet_now(config)
    path = config.parent / "c.csv"
    path.write_text("phone\n08031234561\n")
    for name, flags in [("off", ["--quiet-hours", "off"]), ("OFF", ["--quiet-hours", "OFF"]), ("tenant's", [])]:
        result = cli(config, "campaign", "create", "--name", name, "--csv", str(path), "--text", "hi", *flags)
        assert result.exit_code == 0, result.output
    with Gateway(config) as gw:
        by_name = {c.name: c for c in gw.tenant("acme").campaigns.list()}
    assert by_name["off"].spec["quiet_hours"] is None and by_name["OFF"].spec["quiet_hours"] is None
    assert by_name["tenant's"].spec["quiet_hours"] == list(window)
    held = cli(config, "campaign", "run", by_name["tenant's"].campaign_id, "--no-wait")
    assert held.exit_code == 0 and "in quiet hours until" in held.output, held.output
    assert sms_outbox.messages() == []
    sent = cli(config, "campaign", "run", by_name["off"].campaign_id, "--no-wait")
    assert sent.exit_code == 0, sent.output
    assert [m.to for m in sms_outbox.messages()] == ["+2348031234561"]
    assert "START-END|off" in runner.invoke(app, ["campaign", "create", "--help"], env={"COLUMNS": "250"}).output


# ----------------------------------------------------------------------- start_at in the past; resume of a draft
def test_a_start_at_in_the_past_is_refused_naming_start_at_within_a_few_minutes_it_is_now(config: Path) -> None:
    from datetime import datetime, timedelta, timezone

    with Gateway(config) as gw:
        acme = gw.tenant("acme")
        past = datetime.now(timezone.utc) - timedelta(days=1, hours=2)
        with pytest.raises(ValidationError) as exc:
            acme.campaigns.create("late", text="hi", audience=["08031234561"], start_at=past)
        assert exc.value.field == "start_at" and "1 day 2 hours in the past" in exc.value.reason
        naive = datetime.now(timezone.utc).replace(tzinfo=None) - timedelta(hours=3)  # UTC, as documented
        with pytest.raises(ValidationError, match="3 hours in the past"):
            acme.campaigns.create("late", text="hi", audience=["08031234561"], start_at=naive)
        assert acme.campaigns.list() == []
        just = datetime.now(timezone.utc) - timedelta(seconds=30)  # computed a moment before: now
        camp = acme.campaigns.create("now", text="hi", audience=["08031234561"], start_at=just)
        assert camp.waits_until() is None


def test_cli_start_at_in_the_past_names_the_flag(config: Path) -> None:
    path = config.parent / "c.csv"
    path.write_text("phone\n08031234561\n")
    result = cli(config, "campaign", "create", "--name", "late", "--csv", str(path), "--text", "hi",
                 "--start-at", "2020-01-01T09:00")
    assert result.exit_code == 2 and "field '--start-at'" in result.output and "in the past" in result.output
    with Gateway(config) as gw:
        assert gw.tenant("acme").campaigns.list() == []


def test_resume_of_a_paused_draft_keeps_it_a_draft(config: Path, sms_outbox: Outbox) -> None:
    from datetime import datetime, timedelta, timezone

    from smsgate.models import CampaignStatus

    with Gateway(config) as gw:
        acme = gw.tenant("acme")
        draft = acme.campaigns.create("d", text="hi", audience=["08031234561"])
        draft.pause()
        draft.resume()
        assert acme.campaigns.get(draft.campaign_id).row.status is CampaignStatus.DRAFT
        later = acme.campaigns.create("s", text="hi", audience=["08031234562"],
                                      start_at=datetime.now(timezone.utc) + timedelta(days=1))
        later.pause()
        later.resume()
        assert acme.campaigns.get(later.campaign_id).row.status is CampaignStatus.SCHEDULED
        started = acme.campaigns.create("r", text="hi", audience=[f"0803124{i:04d}" for i in range(6)],
                                        batch_size=1, concurrency=1)
        paused = started.run(progress=lambda p: started.pause())
        assert paused.status is CampaignStatus.PAUSED and 0 < paused.sent < 6
        started.resume()  # sent before: ready to run again
        assert acme.campaigns.get(started.campaign_id).row.status is CampaignStatus.SCHEDULED
    assert cli(config, "campaign", "pause", draft.campaign_id).exit_code == 0
    result = cli(config, "campaign", "resume", draft.campaign_id)
    assert result.exit_code == 0 and f"{draft.campaign_id}: draft" in result.output
    assert f"run it with 'smsgate campaign run {draft.campaign_id}', or dispatch_campaign.delay(" in result.output


def test_contacts_export_to_a_terminal_shows_control_characters_never_obeys_them(config: Path) -> None:
    """A contact's fields are what strangers wrote: ``contacts export`` to standard output wrote
    their escape sequences raw, and a terminal acted on them (set the title, the clipboard...).
    At a terminal (a pseudo-terminal here, in a real ``smsgate`` process) they are shown as
    ``\\xNN``, as everywhere else the CLI prints; to a pipe or a file the CSV stays byte-exact."""
    import os
    import pty
    import subprocess
    import sys

    evil = "Ada\x1b]52;c;cm0gLXJmIH4=\x07\x1b[2J"
    (config.parent / "evil.csv").write_text(f"phone,name\n08031234561,\"{evil}\"\n", encoding="utf-8")
    assert cli(config, "contacts", "create", "E", "--csv", str(config.parent / "evil.csv"), "--id", "evil"
               ).exit_code == 0
    command = [sys.executable, "-m", "smsgate", "contacts", "export", "evil", "-c", str(config), "-t", "acme"]
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE",
                                                            "FORCE_TERMINAL")}
    leader, terminal = pty.openpty()
    try:
        proc = subprocess.run(command, stdout=terminal, stderr=subprocess.PIPE, env=env, timeout=60)
        assert proc.returncode == 0, proc.stderr
        shown = b""
        os.set_blocking(leader, False)
        while True:
            try:
                chunk = os.read(leader, 65536)
            except (BlockingIOError, OSError):
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(leader)
        os.close(terminal)
    text = shown.decode("utf-8")
    assert "\x1b" not in text and "\x07" not in text, repr(text)
    assert "Ada\\x1b]52;c;cm0gLXJmIH4=\\x07\\x1b[2J" in text, repr(text)
    piped = subprocess.run(command, capture_output=True, env=env, timeout=60)
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout == f"phone,name\r\n+2348031234561,{evil}\r\n".encode(), piped.stdout


def test_messages_and_inbound_with_nothing_to_list_say_so(config: Path) -> None:
    """With no rows they printed a table header alone; now a line saying there is nothing and how
    to get some (as ``tenant list`` does); ``--json`` stays ``[]``."""
    out = cli(config, "messages")
    assert out.exit_code == 0 and out.stdout.strip() == (
        "no messages logged for tenant 'acme' yet: 'smsgate send NUMBER TEXT' sends one"), out.stdout
    out = cli(config, "messages", "--status", "failed", "--since", "1h")
    assert out.exit_code == 0 and out.stdout.strip() == (
        "no messages match --status, --since: 'smsgate messages' without them lists the log"), out.stdout
    out = cli(config, "inbound")
    assert out.exit_code == 0 and out.stdout.strip() == (
        "no inbound messages (replies) stored for tenant 'acme': they come in through the webhook app "
        "('smsgate serve', docs/inbound.md) or with --poll INSTANCE"), out.stdout
    out = cli(config, "inbound", "--from", "08031234567")
    assert out.exit_code == 0 and out.stdout.strip() == (
        "no inbound messages match --from: 'smsgate inbound' without it lists them all"), out.stdout
    for command in ("messages", "inbound"):
        assert json.loads(cli(config, command, "--json").stdout) == []
    assert cli(config, "send", "08031234567", "hi").exit_code == 0
    assert "no messages" not in cli(config, "messages").stdout


def test_campaigns_optouts_and_contact_lists_with_nothing_to_list_say_so(config: Path) -> None:
    """``messages`` and ``inbound`` said so, but ``campaign list``, ``optout list`` and ``contacts
    list`` still printed a table header alone: one rule for every listing; ``--json`` stays ``[]``."""
    expected = {
        ("campaign", "list"): "no campaigns for tenant 'acme' yet: 'smsgate campaign create --name NAME --text "
                              "TEXT --csv FILE' makes one (or --list ID instead of --csv)",
        ("optout", "list"): "no opted-out numbers for tenant 'acme': a STOP reply or 'smsgate optout add NUMBER' "
                            "adds one",
        ("contacts", "list"): "no contact lists for tenant 'acme' yet: 'smsgate contacts create NAME --csv FILE' "
                              "makes one from a CSV file",
    }
    for command, line in expected.items():
        out = cli(config, *command)
        assert out.exit_code == 0 and out.stdout.strip() == line, out.stdout
        assert json.loads(cli(config, *command, "--json").stdout) == []
    assert cli(config, "optout", "add", "08031234567").exit_code == 0
    assert "no opted-out" not in cli(config, "optout", "list").stdout


def test_the_commands_an_empty_listing_suggests_work_as_printed(config: Path, tmp_path: Path) -> None:
    """``contacts list`` suggested ``contacts create NAME`` and ``campaign list`` ``campaign create``,
    both refused (``--csv``, ``--name``, ``--text`` are required): each command quoted, its
    placeholders filled in, now runs."""
    (tmp_path / "people.csv").write_text("phone\n08031234567\n")
    filled = {"NAME": "people", "FILE": str(tmp_path / "people.csv"), "TEXT": "hi"}
    for command in (("contacts", "list"), ("campaign", "list")):
        hint = cli(config, *command).stdout.split("'")[3]  # tenant 'acme' yet: 'smsgate ...'
        args = [filled.get(word, word) for word in hint.split()[1:]]
        out = cli(config, *args)
        assert out.exit_code == 0, (hint, out.output)


def test_optout_list_limit_zero_is_refused_rather_than_saying_there_are_none(config: Path) -> None:
    """``optout list --limit 0`` listed nothing and said "no opted-out numbers for tenant 'acme'"
    with numbers opted out: a usage error now, as ``messages`` and ``inbound`` have it."""
    assert cli(config, "optout", "add", "08031234567").exit_code == 0
    out = cli(config, "optout", "list", "--limit", "0")
    assert out.exit_code == 2 and "no opted-out" not in out.stdout, out.stdout
    assert "--limit" in out.output
    listed = cli(config, "optout", "list", "--limit", "1", "--json")
    assert [o["phone"] for o in json.loads(listed.stdout)] == ["+2348031234567"]
