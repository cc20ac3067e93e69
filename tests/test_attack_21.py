"""Attacks, round 21: contact lists, campaign audiences and statistics fed what a hostile or
careless caller gives (lone surrogates in contacts' names, fields and numbers; naive and aware
datetimes mixed in a window; an upload of junk rows; an export that fails part way), on SQLite
and PostgreSQL; ``send_later`` over a RabbitMQ connection that loses a publish or its confirm
(a relay of the test's own in front of the real broker); a download host whose IPv6 address
carries an internal IPv4 one (NAT64).

A lone surrogate (``"\\ud800"``, a text cut mid-emoji, a byte read with ``surrogateescape``) is
a valid Python ``str`` no store keeps: round 10 made the stored fields of a send, an opt-out, a
list and a campaign refuse it; a *contact's* name, field or number, and a campaign
*audience's*, still reached the store: a bare ``UnicodeEncodeError`` (sqlite3, psycopg) or
``psycopg.errors.InvalidTextRepresentation`` (PostgreSQL's ``jsonb``), or a stored value that
made every later ``export`` of the list raise ``UnicodeEncodeError`` and leave a partial file.

Every claim about what reached the vendor reads the echo emulator's own record of the requests
it received (``EmulatorControl.requests``), never smsgate's log.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from amqp_relay import DropFirstPublish
from services import pg_url  # noqa: F401  (a fixture)
from smsgate import Contact, Gateway
from smsgate.campaigns import CsvAudience
from smsgate.emulation import EmulatorControl
from smsgate.errors import ValidationError
from test_attack_10 import echo, echo_provider, echo_received, plugins, store_url  # noqa: F401  (fixtures)


# ------------------------------------------------------------------ contacts: lone surrogates
def test_a_contact_with_a_lone_surrogate_is_an_invalid_row_not_a_bare_store_error(
    store_url: str, tmp_path: Path  # noqa: F811  (the fixture)
) -> None:
    """A contact whose name, a field's value or a field's name holds a lone surrogate: on SQLite
    the name was a bare ``UnicodeEncodeError`` (the list created, then deleted), a field was
    stored (JSON escapes it) and every ``export`` of the list then raised ``UnicodeEncodeError``
    with a partial file left; on PostgreSQL each was a bare ``InvalidTextRepresentation``. Now
    each is an ``invalid`` row of the report saying so (as a NUL is), the other contacts stored,
    and the list exports and reads back."""
    cfg = {"store": store_url, "tenants": {"a": {"default_region": "NG", "providers": {"m": {"plugin": "memory"}}}}}
    with Gateway(cfg) as gw:
        lists = gw.tenant("a").contact_lists
        report = lists.create("VIP", [
            {"phone": "08031234561", "name": "Ada\ud83d"},            # an emoji cut in half
            {"phone": "08031234562", "city": "La\udc80gos"},         # a byte read with surrogateescape
            {"phone": "08031234563", "ci\ud800ty": "Lagos"},
            Contact(phone="08031234564", name="\udfff", fields={"city": "Abuja"}),
            {"phone": "08031234565", "name": "Bo \U0001f600", "city": "Kano"},  # a whole emoji is fine
        ])
        assert (report.rows, report.added, report.duplicates) == (5, 1, []), report
        assert [(e.seq, e.reason) for e in report.errors] == [(1, "invalid"), (2, "invalid"), (3, "invalid"),
                                                              (4, "invalid")], report.errors
        assert all("lone surrogate" in e.detail for e in report.errors), report.errors
        list_id = report.contact_list.list_id
        assert [c.phone for c in lists.contacts(list_id)] == ["+2348031234565"]

        again = lists.add(list_id, [{"phone": "08031234561", "note": "x\ud800"}, {"phone": "08031234566"}])
        assert (again.added, len(again.errors)) == (1, 1), again

        out = tmp_path / "vip.csv"
        assert lists.export(list_id, out) == 2
        with out.open(encoding="utf-8", newline="") as fh:
            assert [row["phone"] for row in csv.DictReader(fh)] == ["+2348031234565", "+2348031234566"]
        back = lists.create("copy", CsvAudience(out))
        assert (back.added, back.errors) == (2, []), back


# ------------------------------------------------------- campaign audiences: lone surrogates
def test_a_campaign_audience_row_with_a_lone_surrogate_is_skipped_the_others_sent_once(
    store_url: str, echo: tuple[str, EmulatorControl]  # noqa: F811  (the fixtures)
) -> None:
    """A campaign audience with a lone surrogate in a number, a field's name or a field's value.
    The number was a bare ``UnicodeEncodeError`` on both stores (the skipped row keeps the
    number as given), and no one was texted. Now that row is ``invalid`` with the number kept
    as U+FFFD; a value the text uses is ``invalid_text``; a field's name, or a value no text
    uses, is stored mended (U+FFFD, main's rule) and its recipient texted; every recipient not
    skipped reaches the vendor exactly once."""
    url, ctl = echo
    cfg = {"store": store_url, "tenants": {"a": {"default_region": "NG", "providers": {"one": echo_provider(url)}}}}
    with Gateway(cfg, plugins=plugins()) as gw:
        t = gw.tenant("a")
        camp = t.campaigns.create("surrogates", text="Hi {name}", audience=[
            "0803123\ud8004561",
            {"phone": "08031234562", "name": "Ada\udc80"},
            {"phone": "08031234563", "name": "Bo", "x\ud800": "y"},
            {"phone": "08031234564", "name": "Cy \U0001f600"},
            {"phone": "08031234565", "name": "Di", "note": "n\ud83d"},
        ])
        preview = camp.preview()
        assert (preview.recipients, preview.skipped) == (3, {"invalid": 1, "invalid_text": 1}), preview
        assert [(e.seq, e.reason, e.phone) for e in preview.errors] == [
            (1, "invalid", "0803123\ufffd4561"), (2, "invalid_text", "08031234562")]
        assert "surrogate" in preview.errors[1].detail, preview.errors
        stored = {r.seq: r for r in gw.store.recipients("a", camp.campaign_id)}
        assert stored[1].phone == "0803123\ufffd4561" and stored[2].fields == {"name": "Ada\ufffd"}
        assert stored[3].fields == {"name": "Bo", "x\ufffd": "y"} and stored[5].fields == {"name": "Di", "note": "n\ufffd"}
        assert camp.run().sent == 3
    assert echo_received(ctl) == Counter({"+2348031234563": 1, "+2348031234564": 1, "+2348031234565": 1})


# ------------------------------------------------------------------------ stats: the window
@pytest.mark.parametrize("naive_side", ["since", "until"])
def test_stats_with_one_naive_and_one_aware_bound_is_read_as_utc_not_a_type_error(
    tmp_path: Path, naive_side: str
) -> None:
    """``stats(since="1h", until=datetime(2030, 1, 1))``: a naive datetime is UTC (docs:
    ``smsgate.filters``), but comparing the two bounds raised a bare ``TypeError`` ("can't
    compare offset-naive and offset-aware datetimes"). Now the naive bound is read as UTC,
    and swapped bounds are still the ``ValidationError`` they were."""
    cfg = {"store": f"sqlite:///{tmp_path / 's.db'}",
           "tenants": {"a": {"default_region": "NG", "providers": {"m": {"plugin": "memory"}}}}}
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    with Gateway(cfg) as gw:
        t = gw.tenant("a")
        t.send("08031234561", "hi")
        window = ({"since": now - timedelta(hours=1), "until": "0s"} if naive_side == "since"
                  else {"since": "1h", "until": now + timedelta(hours=1)})
        assert t.stats(**window).total == 1  # type: ignore[arg-type]
        with pytest.raises(ValidationError) as swapped:
            t.stats(since="1h", until=now - timedelta(days=1))
        assert swapped.value.field == "until"
        assert json.loads(t.stats(since=now - timedelta(hours=1)).model_dump_json())["total"] == 1


# ------------------------------------------------------------ contacts: an export that fails
def test_an_export_that_fails_part_way_leaves_no_partial_file_and_is_a_typed_error(tmp_path: Path) -> None:
    """A list holding a value no UTF-8 file can hold (a lone surrogate in a field, as versions
    before this one stored it: JSON escapes it) made ``export(path)`` raise a bare
    ``UnicodeEncodeError`` part-way and leave the rows before it in the file, which reads as a
    whole, shorter export: only an ``OSError`` removed the incomplete file. Now any failure
    removes it, and this one is a ``ValidationError`` naming the contact."""
    import sqlite3

    db = tmp_path / "s.db"
    cfg = {"store": f"sqlite:///{db}", "tenants": {"a": {"default_region": "NG", "providers": {"m": {"plugin": "memory"}}}}}
    with Gateway(cfg) as gw:
        lists = gw.tenant("a").contact_lists
        list_id = lists.create("old", [{"phone": f"0803123{i:04d}", "city": "Lagos"} for i in range(10)]
                               ).contact_list.list_id
    with sqlite3.connect(db) as conn:  # as an earlier version stored a contact's field
        conn.execute("UPDATE contacts SET fields = ? WHERE phone = ?", ('{"city": "La\\ud800gos"}', "+2348031230007"))
    with Gateway(cfg) as gw:
        lists = gw.tenant("a").contact_lists
        for fmt in ("csv", "json"):
            out = tmp_path / f"old.{fmt}"
            if fmt == "json":
                assert lists.export(list_id, out, format="json") == 10  # JSON escapes it: written whole
                assert len(json.loads(out.read_text(encoding="utf-8"))["contacts"]) == 10
                continue
            with pytest.raises(ValidationError) as info:
                lists.export(list_id, out, format="csv")
            assert "+2348031230007" in str(info.value) and "surrogate" in str(info.value), info.value
            assert not out.exists()


# ------------------------------------------------------------ Celery: a publish the broker never took
@pytest.mark.timeout(120)
@pytest.mark.parametrize("lost", ["publish", "confirm", "confirm-silently"])
def test_a_send_later_whose_publish_the_network_lost_is_published_again_and_sent_once(
    tmp_path: Path, echo: tuple[str, EmulatorControl], lost: str  # noqa: F811  (the fixture)
) -> None:
    """``send_later`` over a broker connection that fails right after the client wrote the
    task (RabbitMQ never got it): without publisher confirms the write "succeeded",
    ``send_later`` returned an ``AsyncResult`` and the SMS was lost, no worker ever saw it.
    ``configure`` now asks for publisher confirms (the ``pyamqp`` transport's
    ``confirm_publish``), so the lost publish is an error Celery's publish retry meets by
    publishing again; the task reaches the queue, and run by a worker, the vendor gets the
    text exactly once (its own record). When it is the broker's confirm that is lost (the
    broker has the task), the task is queued twice and its idempotency key sends it once; when
    the confirm never comes and the connection stays open (a network that lost the way back),
    ``send_later`` waits :data:`~smsgate.contrib.celery.CONFIRM_TIMEOUT` for it, not for ever,
    and publishes again."""
    import socket
    import uuid

    from celery import Celery
    from kombu import Connection

    from smsgate.contrib.celery import configure, send_later
    from smsgate.testing.workers import delete_queue

    broker = "amqp://guest:guest@127.0.0.1:5672//"
    try:
        socket.create_connection(("127.0.0.1", 5672), timeout=3).close()
    except OSError as exc:
        pytest.skip(f"RabbitMQ unreachable: {exc}")
    url, ctl = echo
    cfg = {"store": f"sqlite:///{tmp_path / 's.db'}",
           "tenants": {"a": {"default_region": "NG", "providers": {"one": echo_provider(url)}}}}
    gw = Gateway(cfg, plugins=plugins())
    relay = DropFirstPublish(("127.0.0.1", 5672), on_ack=lost != "publish", silent=lost == "confirm-silently")
    queue = f"smsgate-attack21-{uuid.uuid4().hex[:12]}"
    app = Celery(f"a21-{uuid.uuid4().hex[:8]}", broker=f"amqp://guest:guest@127.0.0.1:{relay.port}//",
                 set_as_current=False)
    configure(app, gateway=lambda: gw)
    app.conf.update(task_default_queue=queue, task_ignore_result=True)
    try:
        with Connection(broker) as conn:  # the queue exists before the publish: nothing is lost for want of one
            conn.SimpleQueue(queue).close()
        send_later("a", "08031234561", "Your code is 123456", idempotency_key="otp-1", app=app)
        assert relay.dropped.is_set()  # the first publish was lost on the wire
        with Connection(broker) as conn:
            q = conn.SimpleQueue(queue)
            try:
                message = q.get(timeout=10)
            except q.Empty:
                pytest.fail("the task never reached the queue: send_later returned, the SMS is lost")
            message.ack()
            messages = [message]
            if lost != "publish":  # the broker had it: queued twice
                messages.append(q.get(timeout=10))
                messages[-1].ack()
            with pytest.raises(q.Empty):
                q.get(timeout=1)  # published once more, not more
            q.close()
        for message in messages:  # each delivery run by a worker
            args, kwargs, _ = message.payload
            app.tasks["smsgate.send_message"].apply(args, kwargs)
        assert echo_received(ctl) == Counter({"+2348031234561": 1})
    finally:
        relay.close()
        app.close()
        from smsgate.contrib.celery import _close_gateways

        _close_gateways()
        gw.close()
        delete_queue(broker, queue)


# --------------------------------------------------------- contacts: an import's report is bounded
def test_an_import_of_many_bad_rows_keeps_a_bounded_report_and_counts_them_all(tmp_path: Path) -> None:
    """An upload of junk (a CSV file of a million lines that are no numbers, or one number a
    million times) kept every row in the report's ``errors`` / ``duplicates``: some 1.4 KB a
    row, 1.4 GB for a million, where the opt-out import (:class:`~smsgate.optouts.OptOutImport`)
    keeps the first :data:`~smsgate.optouts.MAX_INVALID` and counts the rest. Now a contact
    import keeps the first :data:`~smsgate.contacts.MAX_ROW_ERRORS` of each and counts them all
    (``invalid_count``, ``duplicate_count``); the CLI's counts are the full ones."""
    from typer.testing import CliRunner

    from smsgate.cli import app as cli_app
    from smsgate.contacts import MAX_ROW_ERRORS

    cfg = {"store": f"sqlite:///{tmp_path / 's.db'}",
           "tenants": {"a": {"default_region": "NG", "providers": {"m": {"plugin": "memory"}}}}}
    bad, again = MAX_ROW_ERRORS + 300, MAX_ROW_ERRORS + 200
    rows = ["08031234561", *(f"not-a-number-{i}" for i in range(bad)), *(["0803 123 4561"] * again), "08031234562"]
    with Gateway(cfg) as gw:
        report = gw.tenant("a").contact_lists.create("junk", rows)
    assert (report.rows, report.added, report.invalid_count, report.duplicate_count) == (len(rows), 2, bad, again)
    assert (len(report.errors), len(report.duplicates)) == (MAX_ROW_ERRORS, MAX_ROW_ERRORS)
    assert report.errors[0].location == "contact 2" and report.duplicates[-1].seq == 1 + bad + MAX_ROW_ERRORS
    assert report.rows == report.added + report.updated + report.duplicate_count + report.invalid_count

    path = tmp_path / "junk.csv"
    path.write_text("phone\n" + "\n".join(rows) + "\n", encoding="utf-8")
    config = tmp_path / "smsgate.toml"
    config.write_text(f'store = "sqlite:///{tmp_path / "s.db"}"\n[tenants.a]\ndefault_region = "NG"\n'
                      '[tenants.a.providers.m]\nplugin = "memory"\n', encoding="utf-8")
    result = CliRunner().invoke(cli_app, ["contacts", "create", "junk", "--csv", str(path), "-c", str(config),
                                          "--json"])
    assert result.exit_code == 0, result.output
    said = json.loads(result.stdout)
    assert (said["invalid"], said["duplicates"], len(said["invalid_rows"])) == (bad, again, MAX_ROW_ERRORS)


# ------------------------------------------------------- downloads: an internal address in disguise
@pytest.mark.parametrize("address", [
    "64:ff9b::a00:1",          # NAT64 (RFC 6052 well-known prefix) of 10.0.0.1
    "64:ff9b::a9fe:a9fe",      # ... of 169.254.169.254, the cloud metadata address
    "64:ff9b::7f00:1",         # ... of 127.0.0.1
    "64:ff9b:1::a9fe:a9fe",    # the local-use NAT64 prefix (RFC 8215, 64:ff9b:1::/48)
    "::7f00:1",                # IPv4-compatible (deprecated) 127.0.0.1
    "::a00:1",
])
def test_an_internal_ipv4_address_inside_a_nat64_or_compatible_ipv6_address_is_refused(address: str) -> None:
    """A media URL whose host resolves to ``64:ff9b::a00:1``: on an IPv6-only network with
    DNS64/NAT64 (IPv6-only cloud subnets) the NAT64 gateway forwards it to 10.0.0.1, an internal
    address; the address is global as IPv6, so the download policy let it through (an SSRF
    past the check that refuses ``10.0.0.1`` and ``::ffff:10.0.0.1``). Now the IPv4 address
    such an IPv6 address carries is checked as the mapped, 6to4 and Teredo ones are."""
    import httpx

    from smsgate.downloads import DownloadPolicy, check_address
    from smsgate.errors import DownloadRefused

    url = httpx.URL("https://media.example.com/a.jpg")
    with pytest.raises(DownloadRefused, match="not public"):
        check_address(url, [address], DownloadPolicy())
    assert check_address(url, ["64:ff9b::808:808"], DownloadPolicy()) == "64:ff9b::808:808"  # 8.8.8.8: public
