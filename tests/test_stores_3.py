"""The same call gives the same outcome on every store (memory, SQLite file, PostgreSQL).

- A free text the log keeps (``campaign_id``, a contact's name and fields...) holding what no
  store keeps (NUL, a lone surrogate) is a :class:`ValidationError` naming it, decided by the
  tenant's policy before anything is stored: ``send(campaign_id="a\\x00b")`` was accepted on the
  memory store, a ``UnicodeEncodeError`` / psycopg error on SQLite and PostgreSQL.
- ``Store.opted_out`` / ``Store.is_opted_out`` read a number given in another form than the
  stored E.164 one (spaces, dashes, ``00``) as the send path does, and refuse a national number
  (which needs a region the store does not know) with an :class:`InvalidPhoneNumber` naming the
  argument: such a number was silently "not opted out".
- ``Store.tenant_data`` names the opt-ins (start words) a tenant name holds: a name holding only
  opt-ins was "empty", so ``smsgate tenant erase`` refused to erase them and a new tenant given
  the name took them over.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from services import echo_config as config
from services import echo_plugins as plugins
from smsgate import Gateway, InvalidPhoneNumber, ValidationError
from smsgate.models import EVERY_SENDER, OptOut, utcnow
from smsgate.store.base import TENANT_DATA, Store
from smsgate.store.memory import MemoryStore
from smsgate.store.sqlite import SQLiteStore

NUMBER = "+2348031234567"
#: What no store keeps in a text: NUL (PostgreSQL's text), a lone surrogate (UTF-8).
UNSTORABLE = ["a\x00b", "a\ud800b"]


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "memory":
        s: Store = MemoryStore()
    elif request.param == "sqlite":
        s = SQLiteStore(str(tmp_path / "stores3.db"))
    else:
        from test_store_postgres import scratch_store  # a fresh schema, dropped on close

        s = scratch_store()
    s.migrate()
    yield s
    s.close()


# ------------------------------------------------------------------ finding 1: unstorable text
@pytest.mark.parametrize("bad", UNSTORABLE, ids=["nul", "surrogate"])
def test_send_refuses_an_unstorable_campaign_id_before_anything_is_stored(store: Store, emu_url: str,
                                                                         bad: str) -> None:
    with Gateway(config(emu_url), store=store, plugins=plugins()) as gw:
        acme = gw.tenant("acme")
        with pytest.raises(ValidationError) as caught:
            acme.send("08031234567", "hi", campaign_id=bad)
        assert caught.value.field == "campaign_id"
        assert store.list_messages("acme", limit=10) == []
        # the other texts a send keeps: one rule, one outcome everywhere
        for field in ("reference", "idempotency_key", "sender"):
            with pytest.raises(ValidationError) as caught:
                acme.send("08031234567", "hi", **{field: bad})  # type: ignore[arg-type]
            assert caught.value.field == field
        assert store.list_messages("acme", limit=10) == []
        # a good campaign_id is sent and kept
        assert acme.send("08031234567", "hi", campaign_id="c-1").status.value == "submitted"
        assert [m.campaign_id for m in store.list_messages("acme", limit=10)] == ["c-1"]


@pytest.mark.parametrize("bad", UNSTORABLE, ids=["nul", "surrogate"])
@pytest.mark.parametrize("where", ["name", "field key", "field value"])
def test_a_contact_with_an_unstorable_name_or_field_is_an_invalid_row_on_every_store(
        store: Store, emu_url: str, bad: str, where: str) -> None:
    row = {"phone": "08031234567", "name": "Ada", "city": "Lagos"}
    if where == "name":
        row["name"] = bad
    elif where == "field key":
        row[bad] = "x"
    else:
        row["city"] = bad
    with Gateway(config(emu_url), store=store, plugins=plugins()) as gw:
        lists = gw.tenant("acme").contact_lists
        report = lists.create("vip", [row, {"phone": "08031234568", "name": "Bo"}])
        assert report.added == 1 and [(e.seq, e.reason) for e in report.errors] == [(1, "invalid")]
        assert "cannot keep" in report.errors[0].detail
        assert [c.phone for c in lists.contacts(report.contact_list.list_id)] == ["+2348031234568"]


# ------------------------------------------------------------- finding 2: opt-out lookups
def test_opted_out_reads_a_number_in_any_international_form(store: Store) -> None:
    store.add_optouts("acme", [OptOut(phone=NUMBER), OptOut(phone="+2348031234568", scope="ACME")])
    for form in (NUMBER, "+234 803 123 4567", "+234-803-123-4567", "002348031234567", "(+234) 803.123.4567"):
        assert store.is_opted_out("acme", form), form
    assert not store.is_opted_out("acme", "+2348031234569")
    assert not store.is_opted_out("acme", "+234 803 123 4568")  # only sender ACME
    assert store.is_opted_out("acme", "+234 803 123 4568", sender="ACME")
    # the subset of the numbers as given
    given = ["+234 803 123 4567", "+2348031234569", "+234-803-123-4568"]
    assert store.opted_out("acme", given) == {"+234 803 123 4567"}
    assert store.opted_out("acme", given, sender="ACME") == {"+234 803 123 4567", "+234-803-123-4568"}
    assert not store.is_opted_out("other", NUMBER)  # another tenant's opt-outs are its own


@pytest.mark.parametrize("raw", ["08031234567", "0803 123 4567", "not a number", ""])
def test_opted_out_refuses_a_number_it_cannot_read_without_a_region(store: Store, raw: str) -> None:
    store.add_optouts("acme", [OptOut(phone=NUMBER)])
    with pytest.raises(InvalidPhoneNumber) as caught:
        store.is_opted_out("acme", raw)
    assert caught.value.field == "phone"
    with pytest.raises(InvalidPhoneNumber) as caught:
        store.opted_out("acme", [NUMBER, raw])
    assert caught.value.field == "phones"


# ------------------------------------------------------------------ finding 3: opt-ins
def test_tenant_data_names_the_opt_ins_and_erase_deletes_them(store: Store) -> None:
    said = utcnow() - timedelta(minutes=1)
    for tenant in ("a", "b"):
        store.add_optouts(tenant, [OptOut(phone=NUMBER, created_at=said - timedelta(hours=1))])
        store.remove_optout(tenant, NUMBER, EVERY_SENDER, not_after=said)  # START: the opt-in kept
    assert "opt-ins" in TENANT_DATA
    assert store.tenant_data("a") == ["opt-ins"] and store.tenant_data("b") == ["opt-ins"]
    assert store.erase_tenant("a") == 1
    assert store.tenant_data("a") == [] and store.tenant_data("b") == ["opt-ins"]
    # the erased name's opt-in is gone: an older stop word now records an opt-out again
    old = OptOut(phone=NUMBER, created_at=said - timedelta(seconds=30))
    assert store.add_optouts("a", [old], renew=True) == 1
    assert store.add_optouts("b", [old], renew=True) == 0  # b's opt-in (said later) still holds


def test_a_purge_keeps_opt_ins_as_it_keeps_opt_outs_on_every_store(store: Store) -> None:
    """A purge deletes old messages, not a person's last word: opt-outs and opt-ins stay (a
    poll listing a purged START again must not undo a later STOP); only ``erase_tenant`` deletes them."""
    said = utcnow() - timedelta(days=400)
    store.add_optouts("a", [OptOut(phone="+2348031234568", created_at=said)])
    store.remove_optout("a", NUMBER, EVERY_SENDER, not_after=said)
    store.purge("a", before=utcnow() + timedelta(days=1))
    store.purge(None, before=utcnow() + timedelta(days=1))
    assert store.tenant_data("a") == ["opt-outs", "opt-ins"]
    assert store.add_optouts("a", [OptOut(phone=NUMBER, created_at=said - timedelta(days=1))], renew=True) == 0


# ---------------------------------------------------- campaign rows: fields no store keeps
@pytest.mark.parametrize("bad", ["\ud83d", "x\udc00"], ids=["high", "low"])
def test_a_campaign_row_with_a_lone_surrogate_in_a_field_is_prepared_alike_on_every_store(
        store: Store, emu_url: str, bad: str) -> None:
    """A field the text uses: that row skipped ``invalid_text`` (as before, on memory and
    SQLite); one it does not use (a value or a column name): the row stays ``pending``, the
    field kept with U+FFFD in place of what no store keeps. PostgreSQL's jsonb refused the whole
    campaign (``InvalidTextRepresentation``) while the others stored the surrogate."""
    with Gateway(config(emu_url), store=store, plugins=plugins()) as gw:
        camp = gw.tenant("acme").campaigns.create("x", text="Hi {name}", audience=[
            {"phone": "08031234561", "name": bad}, {"phone": "08031234562", "name": "Bo", "city": bad},
            {"phone": "08031234563", "name": "Cy", bad: "v"}, {"phone": "08031234564", "name": "Di"}])
        p = camp.preview()
        assert (p.recipients, p.skipped) == (3, {"invalid_text": 1})
        rows = sorted(store.recipients("acme", camp.campaign_id), key=lambda r: r.seq)
    assert [(r.seq, r.state.value, r.reason) for r in rows] == [
        (1, "skipped", "invalid_text"), (2, "pending", None), (3, "pending", None), (4, "pending", None)]
    fixed = bad.replace(bad.strip("x"), "\ufffd")
    assert [r.fields for r in rows] == [{"name": fixed}, {"name": "Bo", "city": fixed},
                                        {"name": "Cy", fixed: "v"}, {"name": "Di"}]


def test_a_csv_column_name_holding_a_nul_is_refused_on_every_store(store: Store, emu_url: str,
                                                                   tmp_path: Path) -> None:
    """Python 3.11's csv reads a NUL: in a column name (a field of every row), PostgreSQL's jsonb
    refused the campaign as it was stored (``UntranslatableCharacter``), the others kept it."""
    from smsgate.campaigns import CsvAudience

    path = tmp_path / "nul.csv"
    path.write_bytes(b"phone,name,ci\x00ty\n08031234567,Ada,Lagos\n")
    with Gateway(config(emu_url), store=store, plugins=plugins()) as gw:
        acme = gw.tenant("acme")
        with pytest.raises(ValidationError) as caught:
            acme.campaigns.create("c", audience=CsvAudience(path), text="Hi {name}")
        assert caught.value.location == "nul.csv, line 1" and "NUL" in str(caught.value)
        assert acme.campaigns.list() == []


def test_a_campaign_id_taken_is_a_validation_error_naming_it_and_the_first_campaign_is_kept(
        store: Store, emu_url: str) -> None:
    with Gateway(config(emu_url), store=store, plugins=plugins()) as gw:
        campaigns = gw.tenant("acme").campaigns
        first = campaigns.create("a", text="x", audience=["08031234567"], campaign_id="C1")
        with pytest.raises(ValidationError) as caught:  # was a bare ValueError, no field
            campaigns.create("b", text="y", audience=["08031234568", "08031234569"], campaign_id="C1")
        assert caught.value.field == "campaign_id" and "give another campaign_id" in str(caught.value)
        kept = campaigns.get("C1")
        assert kept.preview().recipients == 1 and first.campaign_id == "C1"
        assert [c.campaign_id for c in campaigns.list()] == ["C1"]


def test_erase_tenant_counts_alike_on_every_store_and_memory_keeps_no_limit_key(store: Store) -> None:
    """The count ``smsgate tenant erase`` prints ("N row(s) erased") was 2 lower on the memory store
    (its traffic keys and send leases went uncounted) and its limit keys stayed behind."""
    from datetime import datetime, timezone

    from smsgate.traffic.limits import Charge, KeyState, Limit, Usage, admit

    rule = Limit(rate=100, per=60).rule()
    horizons = {"provider:one": rule.period, "provider:two": rule.period}
    store.traffic("a", horizons, lambda s, n: admit(s, [Charge("provider:one", (rule,), Usage(1, 1), 5)], n, "r",
                                                    3600.0))
    now = datetime.now(timezone.utc)
    store.put_send_lease("a", "owner-1", now, now)
    # two keys, one request, one send lease: as a SQL store counts its rows
    assert store.erase_tenant("a") == 4
    if isinstance(store, MemoryStore):
        assert not [k for k in store._traffic._states if k[0] == "a"]  # nothing left behind
    assert store.erase_tenant("a") == 0

    def requests(states: dict[str, KeyState], now: float) -> int:
        return sum(len(s.entries) for s in states.values())

    assert store.traffic("a", horizons, requests) == 0


def test_a_contact_list_audience_of_one_tenant_is_refused_by_another(store: Store, emu_url: str) -> None:
    """``gw.tenant("b").campaigns.create(audience=gw.tenant("a").contact_lists.audience(id))`` gave
    tenant b a campaign holding tenant a's contacts: tenants never see each other's data."""
    cfg = config(emu_url)
    cfg["tenants"]["b"] = cfg["tenants"]["acme"]
    with Gateway(cfg, store=store, plugins=plugins()) as gw:
        lid = gw.tenant("acme").contact_lists.create("VIP", [{"phone": "08031234567", "name": "Ada"}]).contact_list.list_id
        theirs = gw.tenant("acme").contact_lists.audience(lid)
        with pytest.raises(ValidationError, match="belongs to tenant 'acme', not to 'b'") as refused:
            gw.tenant("b").campaigns.create("c", text="Hi {name}", audience=theirs)
        assert refused.value.field == "audience"
        assert gw.tenant("b").campaigns.list() == []  # nothing made
        own = gw.tenant("acme").campaigns.create("c", text="Hi {name}", audience=theirs)
        assert own.preview().recipients == 1
