"""Campaign preparation: classification, deduplication by the store, the writer thread, CSV errors."""

from __future__ import annotations

import csv
import random
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bounded import drop_schema
from reference_provider import API_KEY, EchoPlugin
from smsgate import Gateway
from smsgate.campaigns import CsvAudience
from smsgate.campaigns import preparation as prep_mod
from smsgate.config import TenantConfig
from smsgate.errors import ValidationError
from smsgate.models import OptOut
from smsgate.plugins import PluginManager
from smsgate.store.base import RecipientRow, RecipientState
from smsgate.store.memory import MemoryStore
from smsgate.store.sqlite import SQLiteStore

#: Python 3.11+'s csv reads a NUL byte into its cell; 3.10's refuses the line ("line contains NUL").
CSV_READS_NUL = sys.version_info >= (3, 11)

TEXT = "Hi {name}, {city} store: 20% off today. Reply STOP to opt out."


def plugins() -> PluginManager:
    pm = PluginManager(load_entry_points=False)
    pm.register(EchoPlugin())
    return pm


def config(store: str) -> dict[str, Any]:
    prov = {"plugin": "echo", "base_url": "http://127.0.0.1:9", "credentials": {"api_key": API_KEY},
            "price_per_segment": 2.5, "currency": "NGN"}
    tenant = {
        "default_region": "NG",
        "providers": {"ng": prov, "intl": prov},
        "routes": [{"prefixes": ["+234"], "providers": ["ng"]}, {"countries": ["ZA", "GB"], "providers": ["intl"]}],
    }
    return {"store": store, "tenants": {"acme": tenant}}


def ng(i: int) -> str:
    return f"+234803{i:07d}"


def typed(i: int, style: int) -> str:
    """Number ``i`` (NG, ZA or GB by i % 3) as people type it."""
    if i % 3 == 0:
        nsn = ng(i)[4:]
        return (f"0{nsn[:3]} {nsn[3:6]} {nsn[6:]}", f"0{nsn}", f"234{nsn}", f"(0{nsn[:3]}) {nsn[3:6]}-{nsn[6:]}",
                f"+234 {nsn}")[style % 5]
    if i % 3 == 1:
        nsn = f"82{i:07d}"
        return (f"+27 {nsn[:2]} {nsn[2:5]} {nsn[5:]}", f"0027{nsn}", f"27{nsn}")[style % 3]
    nsn = f"7911{i % 1_000_000:06d}"
    return (f"+44 {nsn[:4]} {nsn[4:]}", f"0044{nsn}")[style % 2]


def write_messy_csv(path: Path, n: int, seed: int = 7) -> list[str]:
    """A CSV with every kind of row preparation handles; returns numbers to opt out."""
    rng = random.Random(seed)
    used: list[int] = []
    optouts: list[str] = []
    lines: list[list[str]] = []
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["phone", "name", "city"])
        for k in range(n):
            kind = rng.randrange(20)
            name = rng.choice(["Ada", "Bayo", "Zoë", "Ọlá", "Sipho", "Amelia"]) + f" {k}"
            city = rng.choice(["Lagos", "Cape Town", "London", "Abuja"])
            if kind == 0:
                row = [rng.choice(["0803123", "08031234567890", "0803 12A 4567", "+99912345678", "+2340000123456",
                                   "12345", "hello", "+"]) + str(k % 7), name, city]
            elif kind == 1:
                row = ["", name, city]  # empty phone
            elif kind == 2:
                row = [typed(k, k), name]  # a column short
            elif kind == 3 and used:
                i = rng.choice(used)  # a duplicate, typed differently
                row = [typed(i, rng.randrange(5)), name, city]
            elif kind == 4:
                row = [typed(k, k), "", city]  # missing variable
            elif kind == 5:
                row = ["+1 650 253 0000" if k % 2 else "+61 412 345 678", name, city]  # valid, no route
            elif kind == 6:
                row = [typed(k, k), name, "Lagos\nIsland"]  # a quoted field over two lines
            elif kind == 7:
                row = [typed(k, k), name, "x" * 170]  # several segments
            elif kind == 8:
                row = [typed(k, k), name, city, "extra"]  # a column too many
            elif kind == 11 and k % 5 == 0 and CSV_READS_NUL:
                row = [f"0803\x00{k:07d}", name, city]  # NUL in a number (csv reads it)
            else:
                row = [typed(k, k), name, city]
                used.append(k)
                if kind == 9:
                    optouts.append(typed(k, 0).replace(" ", "") if k % 3 else ng(k))
            lines.append(row)
            w.writerow(row)
            if kind == 10:
                fh.write("\n")  # a blank line: not a row
    return optouts


def prepare(tmp_path: Path, name: str, csv_path: Path, optouts: list[str], store: str | None = None,
            ) -> tuple[Any, list[RecipientRow]]:
    store = store or f"sqlite:///{tmp_path / name}.db"
    with Gateway(config(store), plugins=plugins()) as gw:
        t = gw.tenant("acme")
        for phone in optouts:
            t.optouts.add(phone)
        camp = t.campaigns.create("messy", text=TEXT, audience=CsvAudience(csv_path))
        preview = camp.preview()
        rows = gw.store.recipients("acme", camp.campaign_id, limit=1_000_000)
    return preview, rows


def comparable(preview: Any, rows: list[RecipientRow]) -> tuple[Any, ...]:
    data = preview.model_dump()
    data.pop("campaign_id")
    # (SQLite stores a chunk's duplicates after its other rows: compare in row order)
    return data, sorted((r.seq, r.phone, r.state, r.fields, r.reason, r.detail, r.segments, r.provider)
                        for r in rows)


def reference(csv_path: Path, optouts: list[str]) -> dict[int, tuple[str, str | None]]:
    """What each row must become, worked out independently: seq -> (state, reason)."""
    from smsgate.phone import PhoneNormalizer

    norm = PhoneNormalizer("NG")
    opted = {norm.normalize(p) for p in optouts}
    seen: set[str] = set()
    out: dict[int, tuple[str, str | None]] = {}
    with open(csv_path, newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.reader(fh)][1:]
    seq = 0
    for row in rows:
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        seq += 1
        if len(row) != 3 or not row[0].strip() or any("\0" in v for v in row):
            out[seq] = ("skipped", "invalid")
            continue
        try:
            e164 = norm.normalize(row[0].strip())
        except Exception:
            out[seq] = ("skipped", "invalid")
            continue
        if e164 in seen:
            out[seq] = ("skipped", "duplicate")
            continue
        seen.add(e164)
        if not row[1].strip() or not row[2].strip():
            out[seq] = ("skipped", "missing_variable")
        elif not (e164.startswith("+234") or e164.startswith(("+27", "+44"))):
            out[seq] = ("skipped", "no_route")
        elif e164 in opted:
            out[seq] = ("skipped", "opted_out")
        else:
            out[seq] = ("pending", None)
    return out


@pytest.mark.parametrize("store", ["sqlite", "memory", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_chunked_preparation_is_the_one_chunk_result_and_the_reference(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, store: str, request: pytest.FixtureRequest
) -> None:
    """Deduplication is the store's: it holds across chunks (16 rows) exactly as in one chunk."""
    csv_path = tmp_path / "messy.csv"
    optouts = write_messy_csv(csv_path, 1500)
    url = None
    if store == "memory":
        url = "memory://"
    elif store == "postgres":
        url = request.getfixturevalue("pg_url")
    whole = prepare(tmp_path, "whole", csv_path, optouts, url)
    monkeypatch.setattr(prep_mod, "PREP_CHUNK", 16)
    chunked = prepare(tmp_path, "chunked", csv_path, optouts, url)
    assert comparable(*chunked) == comparable(*whole)
    preview, rows = chunked
    got = {r.seq: (r.state.value, r.reason) for r in rows}
    assert got == reference(csv_path, optouts)
    counts: dict[str, int] = {}
    for state, reason in got.values():
        if reason:
            counts[reason] = counts.get(reason, 0) + 1
    assert preview.skipped == counts and preview.recipients == sum(1 for s, _ in got.values() if s == "pending")
    assert {"invalid", "duplicate", "missing_variable", "no_route", "opted_out"} <= set(counts)
    dups = [r for r in rows if r.reason == "duplicate"]
    assert dups and all(" already at messy.csv, line " in (r.detail or "") for r in dups)


@pytest.fixture
def pg_url() -> Iterator[str]:
    import uuid

    dsn = "postgresql://postgres@127.0.0.1:5432/test"
    schema = f"prep_{uuid.uuid4().hex[:10]}"
    try:
        yield f"{dsn}?schema={schema}"
    finally:
        drop_schema(dsn, schema)


def test_errors_are_the_first_skipped_rows_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    csv_path = tmp_path / "messy.csv"
    optouts = write_messy_csv(csv_path, 600, seed=3)
    monkeypatch.setattr(prep_mod, "MAX_ERRORS", 40)
    monkeypatch.setattr(prep_mod, "PREP_CHUNK", 16)
    preview, rows = prepare(tmp_path, "errors", csv_path, optouts)
    skipped = sorted((r for r in rows if r.state is RecipientState.SKIPPED), key=lambda r: r.seq)
    assert len(skipped) > 40
    assert [(e.seq, e.reason) for e in preview.errors] == [(r.seq, r.reason) for r in skipped[:40]]
    assert {"opted_out", "duplicate"} <= {e.reason for e in preview.errors}
    for e, r in zip(preview.errors, skipped, strict=False):
        assert r.detail == f"{e.location}: {e.detail}"


def test_a_failed_store_write_fails_the_preparation_and_leaves_nothing(tmp_path: Path) -> None:
    class Failing(MemoryStore):
        calls = 0

        def add_recipients(self, tenant: str, campaign_id: str, rows: Any, on_duplicate: Any = None) -> Any:
            Failing.calls += 1
            if Failing.calls == 2:
                raise RuntimeError("disk full")
            return super().add_recipients(tenant, campaign_id, rows, on_duplicate)

    csv_path = tmp_path / "big.csv"
    with open(csv_path, "w") as fh:
        fh.write("phone,name\n")
        fh.writelines(f"{ng(i)},n{i}\n" for i in range(3 * prep_mod.PREP_CHUNK))
    with Gateway(config("memory://"), store=Failing(), plugins=plugins()) as gw:
        with pytest.raises(RuntimeError, match="disk full"):
            gw.tenant("acme").campaigns.create("x", text="Hi {name}", audience=CsvAudience(csv_path))
        assert gw.tenant("acme").campaigns.list() == []


def test_csv_subclass_with_its_own_rows_is_honoured(tmp_path: Path) -> None:
    from smsgate.campaigns import AudienceRow

    class Upper(CsvAudience):
        def rows(self) -> Iterator[AudienceRow]:
            for r in super().rows():
                r.fields = {k: v.upper() for k, v in r.fields.items()}
                yield r

    csv_path = tmp_path / "a.csv"
    csv_path.write_text("phone,name\n08031234567,ada\n")
    with Gateway(config("memory://"), plugins=plugins()) as gw:
        p = gw.tenant("acme").campaigns.create("x", text="Hi {name}", audience=Upper(csv_path)).preview()
    assert p.samples == [{"to": "+2348031234567", "text": "Hi ADA"}]


def test_sqlite_recipient_batches_keep_order_and_values(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import smsgate.store.sqlite as sqlite_mod

    monkeypatch.setattr(sqlite_mod, "_RECIPIENTS_PER_INSERT", 4)
    store = SQLiteStore(str(tmp_path / "r.db"))
    store.migrate()
    rows = [RecipientRow(i, ng(i), RecipientState.PENDING if i % 3 else RecipientState.SKIPPED,
                         {"name": f"Zoë {i}", "q": 'a "quoted", {value}'}, "duplicate" if i % 3 == 0 else None,
                         f"line {i}" if i % 3 == 0 else None, None, i % 4 or None, "p" if i % 3 else None,
                         line=i + 1, key=ng(i) if i % 3 else None)
            for i in range(1, 11)]
    assert store.add_recipients("acme", "c1", rows) == []
    # again: the keyed rows are duplicates now (with the line of the row holding the key)
    again = store.add_recipients("acme", "c1", rows[:3])
    assert [(d.index, d.first_line) for d in again] == [(0, 2), (1, 3)]
    got = store.recipients("acme", "c1", limit=100)
    expected = rows + rows[2:3]
    assert [(r.seq, r.phone, r.state, r.fields, r.reason, r.detail, r.segments, r.provider, r.line, r.key)
            for r in got] == [(r.seq, r.phone, r.state, r.fields, r.reason, r.detail, r.segments, r.provider,
                               r.line, r.key) for r in expected]
    assert [r.id for r in got] == sorted(r.id or 0 for r in got)
    store.close()


def test_optouts_in_the_store_are_checked(tmp_path: Path) -> None:
    csv_path = tmp_path / "a.csv"
    with open(csv_path, "w") as fh:
        fh.write("phone,name\n")
        fh.writelines(f"{ng(i)},n{i}\n" for i in range(50))
    with Gateway(config("memory://"), plugins=plugins()) as gw:
        gw.store.add_optouts("acme", [OptOut(phone=ng(i)) for i in range(0, 50, 5)])
        p = gw.tenant("acme").campaigns.create("x", text="Hi {name}", audience=CsvAudience(csv_path)).preview()
    assert (p.recipients, p.skipped) == (40, {"opted_out": 10})


@pytest.mark.parametrize("store", ["memory", "sqlite"])
def test_opted_out_comes_before_a_text_that_cannot_be_encoded(tmp_path: Path, store: str) -> None:
    """Step 5 before 6: an opted-out contact whose text cannot be encoded is ``opted_out``; a
    duplicate of an opted-out number is a ``duplicate``; counts and errors say so, in row order."""
    url = "memory://" if store == "memory" else f"sqlite:///{tmp_path / 'o.db'}"
    with Gateway(config(url), plugins=plugins()) as gw:
        gw.store.add_optouts("acme", [OptOut(phone=ng(1)), OptOut(phone=ng(2))])
        camp = gw.tenant("acme").campaigns.create("x", text="Hi {name}", audience=[
            {"phone": ng(1), "name": "\ud83d"}, {"phone": ng(2), "name": "Bo"}, {"phone": ng(3), "name": "\ud83d"},
            {"phone": ng(4), "name": "Di"}, {"phone": "0803" + ng(2)[7:], "name": "Ed"}])
        p = camp.preview()
        rows = gw.store.recipients("acme", camp.campaign_id)
    assert (p.recipients, p.skipped) == (1, {"opted_out": 2, "invalid_text": 1, "duplicate": 1})
    assert [(e.seq, e.reason, e.location) for e in p.errors] == [
        (1, "opted_out", "contact 1"), (2, "opted_out", "contact 2"), (3, "invalid_text", "contact 3"),
        (5, "duplicate", "contact 5")]
    assert p.errors[0].detail == f"{ng(1)} opted out"
    assert sorted((r.seq, r.state.value, r.reason) for r in rows) == [
        (1, "skipped", "opted_out"), (2, "skipped", "opted_out"), (3, "skipped", "invalid_text"),
        (4, "pending", None), (5, "skipped", "duplicate")]


@pytest.mark.skipif(not CSV_READS_NUL, reason="Python 3.10's csv refuses a NUL byte (the test below)")
def test_a_nul_character_skips_that_row_only(tmp_path: Path) -> None:
    path = tmp_path / "nul.csv"
    path.write_bytes(b"phone,name\n08031234567,Ada\n0803\x001234568,Bo\n08031234569,C\x00d\n08031234560,Di\n")
    with Gateway(config("memory://"), plugins=plugins()) as gw:
        p = gw.tenant("acme").campaigns.create("x", text="Hi {name}", audience=CsvAudience(path)).preview()
    assert (p.recipients, p.skipped) == (2, {"invalid": 2})
    assert [(e.location, e.detail) for e in p.errors] == [
        ("nul.csv, line 3", "column phone: contains a NUL character"),
        ("nul.csv, line 4", "column name: contains a NUL character")]


@pytest.mark.skipif(CSV_READS_NUL, reason="Python 3.11+ reads a NUL byte: the row is skipped (the test above)")
def test_on_python_3_10_a_nul_byte_stops_the_read_naming_its_line(tmp_path: Path) -> None:
    path = tmp_path / "nul.csv"
    path.write_bytes(b"phone,name\n08031234567,Ada\n0803\x001234568,Bo\n08031234560,Di\n")
    with Gateway(config("memory://"), plugins=plugins()) as gw:
        with pytest.raises(ValidationError) as err:
            gw.tenant("acme").campaigns.create("x", text="Hi {name}", audience=CsvAudience(path))
        assert gw.tenant("acme").campaigns.list() == []  # nothing stored
    assert err.value.location == "nul.csv, line 3" and "NUL" in str(err.value)


def test_a_lone_surrogate_skips_that_contact_only(tmp_path: Path) -> None:
    with Gateway(config("memory://"), plugins=plugins()) as gw:
        camp = gw.tenant("acme").campaigns.create("x", text="Hi {name}", audience=[
            {"phone": ng(1), "name": "Ada"}, {"phone": ng(2), "name": "\ud83d"}, {"phone": ng(3), "name": "Bo"}])
        p = camp.preview()
    assert (p.recipients, p.skipped) == (2, {"invalid_text": 1})
    assert p.errors[0].seq == 2 and "surrogate" in p.errors[0].detail


_RAW = st.text(alphabet="0123456789+ -().x", min_size=0, max_size=18) | st.sampled_from(
    ["08031234567", "+2348031234567", "0027821234567", "+447911123456", "07911123456", "0803 12A 4567", "+999123"])


@settings(max_examples=200, deadline=None)
@given(st.lists(_RAW, max_size=8), st.sampled_from(["NG", "GB", None]))
def test_preparation_reads_numbers_as_the_public_normalizer(raws: list[str], region: str | None) -> None:
    from smsgate.core.policy import TenantPolicy
    from smsgate.errors import InvalidPhoneNumber
    from smsgate.phone import PhoneNormalizer

    cfg = TenantConfig.model_validate({"default_region": region, "providers": {"a": {"plugin": "echo"}}})
    echo = plugins().get_provider_class("echo")  # routing asks the provider which numbers it carries
    policy = TenantPolicy("t", cfg, lambda name: echo(cfg.providers[name], name), None)  # type: ignore[arg-type]
    from smsgate.campaigns.audiences import ContactsAudience

    prep = prep_mod.Preparation(MemoryStore(), policy, "c", ContactsAudience([]), "x", None)
    chunk = prep._classify([(i + 1, i + 1, raw, {}, None if raw else "empty", None) for i, raw in enumerate(raws)])
    rows, given_ = (chunk[0], chunk[3]) if chunk is not None else ([], [])  # None: no records
    normalizer = PhoneNormalizer(region)
    for raw, row in zip(given_, rows, strict=True):
        if not raw:
            assert row.reason == "invalid"
            continue
        try:
            e164 = normalizer.normalize(raw)
        except InvalidPhoneNumber as exc:
            assert (row.reason, row.detail) == ("invalid", f"contact {row.line}: column phone: {exc.reason}")
        else:
            assert (row.phone, row.key, row.state) == (e164, e164, RecipientState.PENDING)


# ------------------------------------------------------------------------------ CSV errors
def _create(tmp_path: Path, data: bytes, **kw: Any) -> tuple[Gateway, Any]:
    path = tmp_path / "list.csv"
    path.write_bytes(data)
    gw = Gateway(config(f"sqlite:///{tmp_path / 'c.db'}"), plugins=plugins())
    return gw, lambda: gw.tenant("acme").campaigns.create("x", text="Hi {name}", audience=CsvAudience(path, **kw))


@pytest.mark.parametrize(("data", "kw", "where", "what"), [
    # a bad byte on the last line of a file larger than the reader's buffers
    (b"phone,name\n" + b"".join(b"0803%07d,n%d\n" % (i, i) for i in range(20_000)) + b"08039999999,Zo\xe9\n",
     {}, "list.csv, line 20002", "not valid utf-8-sig text (byte e9)"),
    (b"phone,name\n08031234567,Ada\n08031234568," + b"x" * 200_000 + b"\n", {}, "list.csv, line 3",
     "field larger than field limit"),
    (b"phone;name\n08031234567;Ada\n", {}, "list.csv, line 1", "delimiter=';'"),
    (b"phone,name\n08031234567,Ada\n", {"fields": {"city": "town"}}, "list.csv, line 1", "'town' not in header"),
    (b"", {}, "list.csv, line 1", "the file is empty"),
    (b"phone,name\n08031234567,\xff\xfe\n", {"encoding": "utf-8"}, "list.csv, line 2", "not valid utf-8"),
])
def test_unreadable_csv_is_a_typed_error_naming_the_line_and_stores_nothing(
    tmp_path: Path, data: bytes, kw: dict[str, Any], where: str, what: str
) -> None:
    gw, create = _create(tmp_path, data, **kw)
    with gw:
        with pytest.raises(ValidationError) as info:
            create()
        assert info.value.location == where and what in str(info.value), str(info.value)
        assert gw.tenant("acme").campaigns.list() == []
        assert gw.store.recipient_counts("acme", "x") == {}


@pytest.mark.parametrize(("kw", "field"), [({"delimiter": ";;"}, "delimiter"), ({"delimiter": 3}, "delimiter"),
                                           ({"encoding": "klingon"}, "encoding")])
def test_bad_csv_options_are_refused_at_once(tmp_path: Path, kw: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        CsvAudience(tmp_path / "x.csv", **kw)
    assert info.value.field == field


def test_sqlite_without_upsert_deduplicates_the_same(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLite before 3.24 (no upsert) looks the chunk's keys up first: the same result."""
    import smsgate.store.sqlite as sqlite_mod

    csv_path = tmp_path / "messy.csv"
    optouts = write_messy_csv(csv_path, 800, seed=5)
    monkeypatch.setattr(prep_mod, "PREP_CHUNK", 16)
    with_upsert = prepare(tmp_path, "new", csv_path, optouts)
    monkeypatch.setattr(sqlite_mod, "_UPSERT", False)
    without = prepare(tmp_path, "old", csv_path, optouts)
    assert comparable(*without) == comparable(*with_upsert)
    assert [r.seq for r in without[1]] == sorted(r.seq for r in without[1])  # there, in row order
