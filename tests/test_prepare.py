"""Campaign preparation internals: the parallel path, the writer thread, dedupe, routing, batching."""

from __future__ import annotations

import csv
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reference_provider import API_KEY, EchoPlugin
from smsgate import Gateway
from smsgate import campaigns as camp_mod
from smsgate.campaigns import CsvAudience
from smsgate.config import TenantConfig
from smsgate.models import OptOut
from smsgate.plugins import PluginManager
from smsgate.store.base import RecipientRow, RecipientState
from smsgate.store.memory import MemoryStore
from smsgate.store.sqlite import SQLiteStore

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
            elif kind == 11 and k % 5 == 0:
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


def prepare(tmp_path: Path, name: str, csv_path: Path, optouts: list[str]) -> tuple[Any, list[RecipientRow]]:
    store = f"sqlite:///{tmp_path / name}.db"
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
    return data, [(r.seq, r.phone, r.state, r.fields, r.reason, r.detail, r.segments, r.provider) for r in rows]


def test_parallel_path_gives_exactly_the_serial_result(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    csv_path = tmp_path / "messy.csv"
    optouts = write_messy_csv(csv_path, 3000)
    pools: list[object] = []
    real_pool = camp_mod._Preparation._pool

    def spy(self: Any) -> Any:
        pool = real_pool(self)
        pools.append(pool)
        return pool

    monkeypatch.setattr(camp_mod._Preparation, "_pool", spy)
    monkeypatch.setattr(camp_mod, "PARALLEL_WORKERS", 0)
    serial = comparable(*prepare(tmp_path, "serial", csv_path, optouts))
    monkeypatch.setattr(camp_mod, "PREP_CHUNK", 37)  # chunk boundaries must not matter either
    small_chunks = comparable(*prepare(tmp_path, "chunks", csv_path, optouts))
    monkeypatch.setattr(camp_mod, "PARALLEL_WORKERS", 2)
    monkeypatch.setattr(camp_mod, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(camp_mod, "PARALLEL_WINDOW", 3)
    parallel = comparable(*prepare(tmp_path, "parallel", csv_path, optouts))
    assert pools[0] is None and pools[1] is None and pools[2] is not None  # the last one used workers

    preview, rows = serial
    assert preview["total_rows"] == len(rows) and len(rows) > 2900
    assert set(preview["skipped"]) == {"invalid", "duplicate", "missing_variable", "no_route", "opted_out"}
    assert set(preview["by_provider"]) == {"ng", "intl"} and preview["encoding"].keys() == {"gsm7", "ucs2"}
    assert [r[0] for r in rows] == list(range(1, len(rows) + 1))  # stored in row order
    assert any("line" in (r[5] or "") and "already at" in (r[5] or "") for r in rows)
    assert any("\\x00" in (r[5] or "") for r in rows)  # a chunk the workers could not take
    assert small_chunks == serial
    assert parallel == serial


def test_errors_are_the_first_skipped_rows_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    csv_path = tmp_path / "messy.csv"
    optouts = write_messy_csv(csv_path, 600, seed=3)
    monkeypatch.setattr(camp_mod, "MAX_ERRORS", 40)
    monkeypatch.setattr(camp_mod, "PREP_CHUNK", 16)
    preview, rows = prepare(tmp_path, "errors", csv_path, optouts)
    skipped = [r for r in rows if r.state is RecipientState.SKIPPED]
    assert len(skipped) > 40
    assert [(e.seq, e.reason) for e in preview.errors] == [(r.seq, r.reason) for r in skipped[:40]]
    assert "opted_out" in {e.reason for e in preview.errors}
    for e, r in zip(preview.errors, skipped, strict=False):
        assert r.detail == f"{e.location}: {e.detail}"


def test_a_failed_store_write_fails_the_preparation(tmp_path: Path) -> None:
    class Failing(MemoryStore):
        calls = 0

        def add_recipients(self, tenant: str, campaign_id: str, rows: Any) -> None:
            Failing.calls += 1
            if Failing.calls == 2:
                raise RuntimeError("disk full")
            super().add_recipients(tenant, campaign_id, rows)

    csv_path = tmp_path / "big.csv"
    with open(csv_path, "w") as fh:
        fh.write("phone,name\n")
        fh.writelines(f"{ng(i)},n{i}\n" for i in range(3 * camp_mod.PREP_CHUNK))
    with Gateway(config("memory://"), store=Failing(), plugins=plugins()) as gw, \
            pytest.raises(RuntimeError, match="disk full"):
        gw.tenant("acme").campaigns.create("x", text="Hi {name}", audience=CsvAudience(csv_path))


def test_csv_subclass_with_its_own_rows_is_honoured(tmp_path: Path) -> None:
    class Upper(CsvAudience):
        def rows(self) -> Iterator[camp_mod.AudienceRow]:
            for r in super().rows():
                r.fields = {k: v.upper() for k, v in r.fields.items()}
                yield r

    csv_path = tmp_path / "a.csv"
    csv_path.write_text("phone,name\n08031234567,ada\n")
    with Gateway(config("memory://"), plugins=plugins()) as gw:
        p = gw.tenant("acme").campaigns.create("x", text="Hi {name}", audience=Upper(csv_path)).preview()
    assert p.samples == [{"to": "+2348031234567", "text": "Hi ADA"}]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["+234803", "+27", "+4479", "+1650"]), st.integers(0, 60)), max_size=400),
       st.integers(2, 6))
def test_seen_numbers_matches_a_dict(numbers: list[tuple[str, int]], bits: int) -> None:
    seen = camp_mod._SeenNumbers(bits)
    reference: dict[str, int] = {}
    for line, (prefix, n) in enumerate(numbers, start=2):
        e164 = f"{prefix}{n:07d}"
        assert seen.first(e164, line) == reference.get(e164)
        reference.setdefault(e164, line)
    assert len(seen) == len(reference)


_PHONES = st.sampled_from(["+2348031234567", "+27821234567", "+447911123456", "+447781123456", "+16502530000",
                           "+33612345678", "+61412345678", "+2348051234567"])
_RULES = st.lists(st.fixed_dictionaries({
    "providers": st.lists(st.sampled_from(["a", "b", "c"]), max_size=2),
    "prefixes": st.lists(st.sampled_from(["+234", "+2348", "+27", "+44", "+1", "+3"]), max_size=2),
    "countries": st.lists(st.sampled_from(["NG", "ZA", "GB", "GG", "US", "FR"]), max_size=2),
}), max_size=4)


@settings(max_examples=150, deadline=None)
@given(_RULES, _PHONES, st.sampled_from([None, "c"]))
def test_router_is_route_for(rules: list[dict[str, Any]], phone: str, forced: str | None) -> None:
    from smsgate import phone as phonelib

    prov = {"plugin": "echo", "base_url": "http://x"}
    cfg = TenantConfig.model_validate({"providers": {"a": prov, "b": prov, "c": prov}, "routes": rules})
    route = camp_mod._router(camp_mod._route_spec(cfg, forced))
    expected = [forced] if forced else cfg.route_for(phone, phonelib.region_of(phone))
    assert route(phone) == (expected[0] if expected else None)


def test_sqlite_recipient_batches_keep_order_and_values(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import smsgate.store.sqlite as sqlite_mod

    monkeypatch.setattr(sqlite_mod, "_RECIPIENTS_PER_INSERT", 4)
    store = SQLiteStore(str(tmp_path / "r.db"))
    store.migrate()
    rows = [RecipientRow(i, ng(i), RecipientState.PENDING if i % 3 else RecipientState.SKIPPED,
                         {"name": f"Zoë {i}", "q": 'a "quoted", {value}'}, "duplicate" if i % 3 == 0 else None,
                         f"line {i}" if i % 3 == 0 else None, None, i % 4 or None, "p" if i % 3 else None)
            for i in range(1, 11)]
    store.add_recipients("acme", "c1", rows)
    store.add_recipients("acme", "c1", rows[:3])
    got = store.recipients("acme", "c1", limit=100)
    assert [(r.seq, r.phone, r.state, r.fields, r.reason, r.detail, r.segments, r.provider) for r in got] == [
        (r.seq, r.phone, r.state, r.fields, r.reason, r.detail, r.segments, r.provider) for r in rows + rows[:3]]
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


_RAW = st.text(alphabet="0123456789+ -().x", min_size=0, max_size=18) | st.sampled_from(
    ["08031234567", "+2348031234567", "0027821234567", "+447911123456", "07911123456", "0803 12A 4567", "+999123"])


@settings(max_examples=300, deadline=None)
@given(st.lists(_RAW, max_size=8), st.sampled_from(["NG", "GB", None]))
def test_normalize_chunk_is_the_public_normalizer(raws: list[str], region: str | None) -> None:
    from smsgate.errors import InvalidPhoneNumber
    from smsgate.phone import PhoneNormalizer

    routes = camp_mod._route_spec(TenantConfig.model_validate({"providers": {"a": {"plugin": "echo"}}}), None)
    normalizer = PhoneNormalizer(region)
    expected: list[tuple[str | None, str | None]] = []
    for raw in raws:
        try:
            expected.append((normalizer.normalize(raw), "a"))
        except InvalidPhoneNumber as exc:
            expected.append((None, exc.reason))
    assert camp_mod._normalize_chunk([*raws, None], region, routes) == [*expected, (None, None)]
    # workers get "" for a row with an error (a row without one has a number)
    given_ = [(raw, want) for raw, want in zip(raws, expected, strict=True) if raw]
    joined = camp_mod._normalize_joined("\0".join([raw for raw, _ in given_] + [""]), region, routes)
    assert joined == ("\0".join([e or "" for _, (e, _x) in given_] + [""]),
                      "\0".join([x or "" for _, (_e, x) in given_] + [""]))


@pytest.mark.parametrize(("cores", "load", "workers"), [(1, 0.0, 0), (2, 0.2, 1), (2, 1.2, 0), (8, 1.0, 2), (8, 7.0, 0)])
def test_workers_only_for_idle_cores(monkeypatch: pytest.MonkeyPatch, cores: int, load: float, workers: int) -> None:
    monkeypatch.setattr(camp_mod.sys, "platform", "linux")
    monkeypatch.setattr(camp_mod.os, "sched_getaffinity", lambda _pid: set(range(cores)), raising=False)
    monkeypatch.setattr(camp_mod.os, "getloadavg", lambda: (load, load, load))
    assert camp_mod._parallel_workers() == workers
    monkeypatch.setattr(camp_mod, "PARALLEL_WORKERS", 3)
    assert camp_mod._parallel_workers() == 3
