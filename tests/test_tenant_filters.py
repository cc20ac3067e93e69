"""tenant.messages() / tenant.stats() filters, one rule for every store (memory, SQLite,
PostgreSQL), sync and async: a status or its value, ``since`` as a datetime, timedelta or
duration ("1h"), and a ValidationError naming anything else (was AttributeError, or [])."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services import echo_config as config
from services import echo_plugins as plugins
from smsgate import AsyncGateway, Gateway, Status, ValidationError
from smsgate.filters import parse_duration, point_in_time, status_filter
from smsgate.models import MessageRecord, utcnow
from smsgate.store.base import Store
from smsgate.store.memory import MemoryStore
from smsgate.store.sqlite import SQLiteStore

OLD = datetime.now(timezone.utc) - timedelta(days=2)


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "memory":
        s: Store = MemoryStore()
    elif request.param == "sqlite":
        s = SQLiteStore(str(tmp_path / "filters.db"))
    else:
        from test_store_postgres import scratch_store

        s = scratch_store()
    s.migrate()
    # one message logged two days ago, failed
    s.insert_messages(
        [
            MessageRecord(
                tenant="acme",
                message_id="old",
                to="+2348031234560",
                status=Status.FAILED,
                created_at=OLD,
                updated_at=OLD,
            )
        ]
    )
    yield s
    s.close()


def ids(records: list[MessageRecord]) -> list[str]:
    return sorted(r.message_id for r in records)


def test_status_and_since_filters_read_one_way_on_every_store(store: Store, emu_url: str) -> None:
    with Gateway(config(emu_url), store=store, plugins=plugins()) as gw:
        acme = gw.tenant("acme")
        new = acme.send("08031234567", "x").message_id  # submitted (the echo emulator reports later)
        for status in (Status.SUBMITTED, "submitted", "SUBMITTED", " Submitted "):
            assert ids(acme.messages(status=status)) == [new], status
        assert ids(acme.messages(status="failed")) == ["old"]
        assert acme.messages(status="delivered") == []
        for since in (
            "1h",
            "90m",
            timedelta(hours=1),
            utcnow() - timedelta(hours=1),
            (utcnow() - timedelta(hours=1)).replace(tzinfo=None),
        ):  # naive: UTC
            assert ids(acme.messages(since=since)) == [new], since
        assert ids(acme.messages(since="3d")) == sorted([new, "old"])
        assert ids(acme.messages(status="failed", since="90d")) == ["old"]
        assert acme.stats(since="1h").total == 1 and acme.stats(since=timedelta(days=3)).total == 2
        assert acme.stats(until="1d").total == 1  # only the old one


@pytest.mark.parametrize(
    ("filters", "field", "said"),
    [
        ({"status": "sending"}, "status", "delivered, undelivered"),
        ({"status": 3}, "status", "one of: queued"),
        ({"since": "yesterday"}, "since", "not a duration"),
        ({"since": 3600}, "since", "a datetime, a timedelta or a duration"),
        ({"since": timedelta(hours=-1)}, "since", "negative"),
        ({"since": "1e400d"}, "since", "duration"),
        ({"statuses": "sent"}, "statuses", "the filters are: status, to"),
        ({"limit": "5"}, "limit", "whole number"),
        ({"limit": -1}, "limit", "whole number"),
        ({"campaign_id": 7}, "campaign_id", "expected a string"),
    ],
)
def test_a_bad_filter_is_a_validation_error_naming_it(
    filters: dict[str, Any], field: str, said: str, emu_url: str
) -> None:
    with Gateway(config(emu_url), plugins=plugins()) as gw:
        with pytest.raises(ValidationError) as info:
            gw.tenant("acme").messages(**filters)
        assert info.value.field == field and said in str(info.value)

    async def run() -> None:
        async with AsyncGateway(config(emu_url), plugins=plugins()) as agw:
            with pytest.raises(ValidationError) as ainfo:
                await agw.tenant("acme").messages(**filters)
            assert ainfo.value.field == field

    asyncio.run(run())


@pytest.mark.parametrize(
    ("since", "until", "field"), [("1 hour", None, "since"), (None, 5, "until"), (b"1h", None, "since")]
)
def test_bad_stats_bounds_are_validation_errors(since: Any, until: Any, field: str, emu_url: str) -> None:
    with Gateway(config(emu_url), plugins=plugins()) as gw:
        with pytest.raises(ValidationError) as info:
            gw.tenant("acme").stats(since=since, until=until)
        assert (info.value.field, info.value.location) == (field, "stats")

    async def run() -> None:
        async with AsyncGateway(config(emu_url), plugins=plugins()) as agw:
            with pytest.raises(ValidationError, match=field):
                await agw.tenant("acme").stats(since=since, until=until)

    asyncio.run(run())


def test_async_tenant_reads_the_filters_the_same_way(store: Store, emu_url: str) -> None:
    async def run() -> None:
        agw = AsyncGateway(config(emu_url), store=store, plugins=plugins())
        try:
            acme = agw.tenant("acme")
            new = (await acme.send("08031234567", "x")).message_id
            assert ids(await acme.messages(status="submitted")) == [new]
            assert ids(await acme.messages(since="1h")) == [new]
            assert ids(await acme.messages(since=timedelta(days=3), status=Status.FAILED)) == ["old"]
            assert (await acme.stats(since="1h")).total == 1
        finally:
            await agw.aclose()

    asyncio.run(run())


def test_the_rules_themselves() -> None:
    assert status_filter(None) is None and status_filter("Sent") is Status.SENT
    now = datetime(2026, 1, 2, tzinfo=timezone.utc)
    assert point_in_time("1d", "since", now=lambda: now) == datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert point_in_time(timedelta(0), "since", now=lambda: now) == now
    assert point_in_time(now, "since") is now and point_in_time(None, "since") is None
    assert parse_duration("90d") == 90 * 86400 and parse_duration(" 2h ") == 7200


@given(
    st.integers(min_value=0, max_value=10**6), st.sampled_from(["", "s", "m", "h", "d", "S", "M", "H", "D"])
)
def test_parse_duration_reads_every_unit(n: int, unit: str) -> None:
    factor = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[unit.lower()]
    assert parse_duration(f"{n}{unit}") == n * factor
    ago = point_in_time(f" {n} {unit} ", "since", now=lambda: datetime(9999, 1, 1, tzinfo=timezone.utc))
    assert ago == datetime(9999, 1, 1, tzinfo=timezone.utc) - timedelta(seconds=n * factor)


@given(
    st.text(max_size=12)
    | st.none()
    | st.binary(max_size=4)
    | st.booleans()
    | st.floats()
    | st.integers()
    | st.timedeltas()
    | st.datetimes()
    | st.lists(st.integers(), max_size=2)
)
def test_any_since_is_a_moment_or_a_validation_error_naming_it(value: Any) -> None:
    try:
        point_in_time(value, "since", "messages")
    except ValidationError as exc:
        assert exc.field == "since"
    try:
        status_filter(value)
    except ValidationError as exc:
        assert exc.field == "status" and "delivered" in str(exc)
