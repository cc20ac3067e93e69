"""Public entry points refuse a wrong-typed argument up front with smsgate's typed error naming
it (round 2 of tests/test_typed_arguments.py): ``send_many``'s call-wide arguments, bool flags,
``explain_route``'s arguments; a number written with a leading 0 and a decimal point is read as
written; an opt-out of a sender's number stored under another form of it holds (SQLite and
PostgreSQL where the store is involved)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smsgate import AsyncGateway, Gateway, _phonefast
from smsgate.errors import OptedOut, ValidationError
from smsgate.models import OptOut
from smsgate.phone import _normalize_slow, normalize
from smsgate.store.base import Store
from test_typed_arguments import _refused, gw  # noqa: F401  (a fixture)


def _async(gateway: Gateway, body: Callable[[AsyncGateway], Any]) -> Any:
    async def main() -> Any:
        ag = AsyncGateway.sharing(gateway)
        try:
            return await body(ag)
        finally:
            await ag.aclose()

    return asyncio.run(main())


async def _async_refused(call: Callable[[], Any], field: str) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        await call()
    assert _names(info.value, field), info.value
    return info.value


def _names(error: ValidationError, field: str) -> bool:
    """Whether ``error`` names the argument ``field`` (or one item of it: ``attachments.0``)."""
    return error.field is not None and error.field.split(".")[0] == field


def _refused_arg(call: Callable[[], Any], field: str) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        call()
    assert _names(info.value, field), info.value
    return info.value


# ----------------------------------------------------------------------- send_many's call-wide arguments
#: (argument, a wrong value): each is the same for every recipient of the call
CALL_WIDE: list[tuple[str, Any]] = [
    ("campaign_id", object()), ("campaign_id", 5), ("sender", 12345), ("attachments", [object()]),
    ("attachments", "x.png"), ("location", object()), ("provider_options", 5), ("template", "x"),
]


@pytest.mark.parametrize(("name", "value"), CALL_WIDE, ids=lambda v: v if isinstance(v, str) else type(v).__name__)
def test_send_many_refuses_a_wrong_call_argument_once_up_front(
        gw: Gateway, name: str, value: Any) -> None:  # noqa: F811  (the fixture)
    """``send_many(numbers, text, campaign_id=object())`` answered one ``rejected`` result per
    recipient, each saying the same thing about the call (a million rows, a million errors);
    it is the call's mistake: one ValidationError naming the argument, nothing logged."""
    t = gw.tenant("acme")
    numbers = ["08031234567", "08031234568"]
    text = None if name == "template" else "hi"
    error = _refused_arg(lambda: t.send_many(numbers, text, **{name: value}), name)
    assert "recipient" not in str(error), error
    assert gw.store.list_messages("acme") == []

    async def body(ag: AsyncGateway) -> None:
        at = ag.tenant("acme")
        await _async_refused(lambda: at.send_many(numbers, text, **{name: value}), name)

    _async(gw, body)
    assert gw.store.list_messages("acme") == []


def test_send_many_refuses_a_wrong_typed_text_up_front(gw: Gateway) -> None:  # noqa: F811  (the fixture)
    t = gw.tenant("acme")
    _refused(lambda: t.send_many(["08031234567", "08031234568"], object()), "text")  # type: ignore[arg-type]
    # a recipient's own text is still that recipient's
    results = t.send_many([{"to": "08031234567", "text": object()}, "08031234568"], "hi")
    assert results[0].status.value == "rejected" and results[1].ok
    assert gw.store.list_messages("acme") != []


def test_send_many_with_good_call_arguments_still_sends(gw: Gateway) -> None:  # noqa: F811  (the fixture)
    t = gw.tenant("acme")
    results = t.send_many(["08031234567", "nope"], "hi", campaign_id="c1", sender="ACME")
    assert results[0].ok and results[1].status.value == "rejected"


# ----------------------------------------------------------------------- bool flags
@pytest.mark.parametrize("value", ["x", None, 1], ids=["str", "none", "int"])
def test_campaign_stats_include_provider_must_be_a_bool(gw: Gateway, value: Any) -> None:  # noqa: F811
    t = gw.tenant("acme")
    handle = t.campaigns.create("c", audience=["08031234567"], text="hi")
    _refused(lambda: handle.stats(include_provider=value), "include_provider")
    assert handle.stats(include_provider=False).total == 0

    async def body(ag: AsyncGateway) -> None:
        ah = await ag.tenant("acme").campaigns.get(handle.campaign_id)
        await _async_refused(lambda: ah.stats(include_provider=value), "include_provider")

    _async(gw, body)


@pytest.mark.parametrize("value", ["no", None, 0], ids=["str", "none", "int"])
def test_other_bool_flags_must_be_bools(gw: Gateway, value: Any) -> None:  # noqa: F811  (the fixture)
    """``wait="no"`` waited, ``refresh="no"`` asked the provider, ``every_scope="no"`` removed every
    scope: a flag is True or False."""
    t = gw.tenant("acme")
    sent = t.send("08031234567", "hi")
    _refused(lambda: t.status(sent.message_id, refresh=value), "refresh")
    t.optouts.add("08031234567", scope="ACME")
    _refused(lambda: t.optouts.remove("08031234567", every_scope=value), "every_scope")
    assert t.optouts.scopes("08031234567") == {"acme"}
    handle = t.campaigns.create("c", audience=["08031234568"], text="hi")
    _refused(lambda: handle.run(wait=value), "wait")
    assert handle.progress().sent == 0

    async def body(ag: AsyncGateway) -> None:
        at = ag.tenant("acme")
        await _async_refused(lambda: at.status(sent.message_id, refresh=value), "refresh")
        await _async_refused(lambda: at.optouts.remove("08031234567", every_scope=value), "every_scope")
        ah = await at.campaigns.get(handle.campaign_id)
        await _async_refused(lambda: ah.run(wait=value), "wait")

    _async(gw, body)
    assert handle.progress().sent == 0


def test_a_campaign_run_refuses_a_progress_that_is_not_callable(gw: Gateway) -> None:  # noqa: F811
    """``run(progress=obj)`` sent the whole campaign, then raised a bare TypeError calling it."""
    t = gw.tenant("acme")
    handle = t.campaigns.create("c", audience=["08031234568"], text="hi")
    _refused(lambda: handle.run(progress=object()), "progress")  # type: ignore[arg-type]
    assert handle.progress().sent == 0
    _refused(lambda: t.campaigns.create("d", audience=["08031234568"], text="hi",
                                        progress=5), "progress")  # type: ignore[arg-type]
    assert [c.name for c in t.campaigns.list()] == ["c"]


def test_a_campaign_refuses_an_async_progress_callback(gw: Gateway) -> None:  # noqa: F811
    """``await camp.run(progress=on_progress)`` with an ``async def on_progress``: progress is
    called, never awaited, so the callback never ran (a RuntimeWarning, hidden by default) and
    the run went on; it is refused before anything is done, on both gateways, naming the argument."""
    import functools

    t = gw.tenant("acme")
    handle = t.campaigns.create("c", audience=["08031234568"], text="hi")
    seen: list[object] = []

    async def on_progress(p: object) -> None:
        seen.append(p)

    class Awaiting:
        async def __call__(self, p: object) -> None:
            seen.append(p)

    for callback in (on_progress, functools.partial(on_progress), Awaiting()):
        error = _refused_arg(lambda cb=callback: handle.run(progress=cb), "progress")
        assert "async" in error.reason, error.reason
        _refused_arg(lambda cb=callback: t.campaigns.create("d", audience=["08031234568"], text="hi",
                                                              progress=cb), "progress")

        async def body(ag: AsyncGateway, cb: Any = callback) -> None:
            at = ag.tenant("acme")
            ah = await at.campaigns.get(handle.campaign_id)
            await _async_refused(lambda: ah.run(progress=cb), "progress")
            await _async_refused(lambda: at.campaigns.create("e", audience=["08031234568"], text="hi",
                                                             progress=cb), "progress")

        _async(gw, body)
    assert handle.progress().sent == 0 and seen == []
    assert [c.name for c in t.campaigns.list()] == ["c"]


# ----------------------------------------------------------------------- explain_route's arguments
@pytest.mark.parametrize(("name", "value"), [
    ("key", object()), ("key", 5), ("text", object()), ("attachments", object()), ("attachments", [object()]),
    ("location", object()), ("kind", object()),
], ids=lambda v: v if isinstance(v, str) else type(v).__name__)
def test_explain_route_checks_its_arguments(gw: Gateway, name: str, value: Any) -> None:  # noqa: F811
    t = gw.tenant("acme")
    _refused_arg(lambda: t.explain_route("08031234567", **{name: value}), name)

    async def body(ag: AsyncGateway) -> None:
        at = ag.tenant("acme")
        await _async_refused(lambda: at.explain_route("08031234567", **{name: value}), name)

    _async(gw, body)
    assert t.explain_route("08031234567", key="otp-1").order == ["one"]


# ----------------------------------------------------------------------- a decimal with a leading 0
@pytest.mark.parametrize(("raw", "region", "meant"), [
    ("0301234.00", "DE", "+4930123400"),    # was +49301234: another subscriber
    ("0301234.0", "DE", "+493012340"),
    ("06641234.000", "AT", "+436641234000"),
    ("08031234567.0", "NG", None),          # 080312345670: not a Nigerian number, refused
])
def test_a_decimal_with_a_leading_zero_is_read_as_written(raw: str, region: str, meant: str | None) -> None:
    """A float is never written with a leading 0 (pandas writes ``4366412345678.0``): ``0301234.00``
    is a number written by hand, its point one more separator, not the float 301234.00."""
    assert _phonefast.decimal_integer(raw) is None
    got, _reason = _normalize_slow(raw, region)
    assert got == meant
    assert _phonefast.normalize_fast(raw, region) in (None, got)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["DE", "AT", "NG", "GB", None]), st.text("0123456789", min_size=3, max_size=13),
       st.integers(1, 4), st.booleans(), st.sampled_from(["", " ", "\t"]))
def test_the_decimal_rule(region: str | None, digits: str, zeros: int, plus: bool, pad: str) -> None:
    """Property: ``DIGITS.000`` is the float's integer, ``DIGITS``, when it could be a float (no
    leading 0); with a leading 0 it is the digits as written, point and zeros included; the fast
    path agrees with the slow one whenever it answers."""
    head = ("+" if plus else "") + digits
    raw = pad + head + "." + "0" * zeros + pad
    if digits.startswith("0"):
        assert _phonefast.decimal_integer(raw.strip()) is None
        expected = _normalize_slow(head + "0" * zeros, region)[0]
    else:
        assert _phonefast.decimal_integer(raw.strip()) == head
        expected = _normalize_slow(head, region)[0]
    assert _normalize_slow(raw, region)[0] == expected, raw
    assert _phonefast.normalize_fast(raw, region) in (None, expected), raw


def test_floats_are_still_read_as_their_integer() -> None:
    assert normalize("4366412345678.0") == "+4366412345678"
    assert normalize("8031234567.0", "NG") == "+2348031234567"


def test_a_csv_audience_reads_a_leading_zero_decimal_as_written(tmp_path: Path) -> None:
    from smsgate.campaigns import CsvAudience

    csv = tmp_path / "customers.csv"
    csv.write_text("phone,name\n0301234.00,Ann\n4930123456.0,Bob\n", encoding="utf-8")
    cfg = {"store": f"sqlite:///{tmp_path / 's.db'}",
           "tenants": {"acme": {"default_region": "DE", "providers": {"one": {"plugin": "memory"}}}}}
    with Gateway(cfg) as g:
        handle = g.tenant("acme").campaigns.create("c", audience=CsvAudience(csv), text="hi {name}")
        phones = {r.phone for r in g.store.recipients("acme", handle.campaign_id)}
    assert "+49301234" not in phones
    assert "+4930123456" in phones


# ----------------------------------------------------------------------- opt-outs stored under another form
@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def make_gw(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Callable[..., Gateway]]:
    """A factory of gateways (tenant ``acme``, region NG, the memory provider) on one store:
    SQLite, and PostgreSQL (a scratch schema; skipped without a server)."""
    if request.param == "postgres":
        from test_store_postgres import scratch_store

        store: Store = scratch_store()
    else:
        from smsgate.store import open_store

        store = open_store(f"sqlite:///{tmp_path / 'scopes.db'}")
    store.migrate()
    request.addfinalizer(store.close)
    gateways: list[Gateway] = []

    def make(**tenant: Any) -> Gateway:
        cfg = {"tenants": {"acme": {"default_region": "NG", "providers": {"one": {"plugin": "memory"}},
                                    **tenant}}}
        gateway = Gateway(cfg, store=store)
        gateways.append(gateway)
        return gateway

    yield make
    for gateway in gateways:
        gateway.close()


def _store_earlier(store: Store, scope: str) -> None:
    """An opt-out as an earlier version stored it: the scope keyed as written (its digits)."""
    store.add_optouts("acme", [OptOut(phone="+2348031234567", scope=scope)])


@pytest.mark.parametrize("earlier", ["08020000000", "8020000000", "0802 000 0000"])
def test_an_earlier_optout_of_an_unconfigured_senders_number_in_another_form_holds(
        make_gw: Callable[..., Gateway], earlier: str) -> None:
    """Before scope_of, ``optouts.add(phone, scope="08020000000")`` was stored as ``08020000000``;
    a message from ``+2348020000000`` (a sender the tenant does not configure) is keyed
    ``2348020000000``, so the opt-out was missed: the person got the message."""
    g = make_gw()
    _store_earlier(g.store, earlier)
    acme = g.tenant("acme")
    assert acme.optouts.check("08031234567", sender="+2348020000000")
    with pytest.raises(OptedOut):
        acme.send("08031234567", "hello", sender="+2348020000000")
    results = acme.send_many(["08031234567", "08031234568"], "hello", sender="+2348020000000")
    assert [r.status.value for r in results] == ["rejected", "submitted"] or results[0].error_code == "opted_out"
    assert results[0].error_code == "opted_out" and results[1].ok
    camp = acme.campaigns.create("promo", audience=["08031234567", "08031234568"], text="hi",
                                 sender="+2348020000000")
    assert camp.preview().skipped == {"opted_out": 1}
    # another sender is not stopped by it
    assert acme.send("08031234567", "hello", sender="+2348020000001").ok
    # removed in any form, as it is checked
    assert acme.optouts.remove("08031234567", scope="+2348020000000")
    assert not acme.optouts.check("08031234567", sender="08020000000")
    assert acme.send("08031234567", "hello", sender="+2348020000000").ok


def test_an_optout_keyed_before_the_sender_was_configured_in_national_form_holds(
        make_gw: Callable[..., Gateway]) -> None:
    """Stored as ``2348020000000`` while no sender was configured; the tenant then configures
    ``08020000000``, whose messages are keyed ``08020000000``: the opt-out must still hold."""
    make_gw().tenant("acme").optouts.add("08031234567", scope="+2348020000000")
    acme = make_gw(sender="08020000000").tenant("acme")
    assert acme.optouts.check("08031234567", sender="+2348020000000")
    with pytest.raises(OptedOut):
        acme.send("08031234567", "hello")

    async def body(ag: AsyncGateway) -> None:
        at = ag.tenant("acme")
        assert await at.optouts.check("08031234567", sender="08020000000")
        with pytest.raises(OptedOut):
            await at.send("08031234567", "hello")

    _async(acme._gw, body)


def test_a_start_word_lifts_an_earlier_optout_stored_under_another_form(make_gw: Callable[..., Gateway]) -> None:
    from smsgate.models import InboundMessage

    g = make_gw(inbound={"optout_scope": "sender"})
    _store_earlier(g.store, "08020000000")
    acme = g.tenant("acme")
    acme.ingest_inbound("one", [InboundMessage(from_number="+2348031234567", to="+2348020000000", text="START",
                                               vendor_id="in-1")])
    assert not acme.optouts.check("08031234567", sender="+2348020000000")
    assert acme.send("08031234567", "hello", sender="+2348020000000").ok


# ----------------------------------------------------------------------- provider instances and inbound messages
@pytest.mark.parametrize("instance", [object(), ["one"], 5], ids=["object", "list", "int"])
def test_methods_taking_a_provider_instance_check_it(gw: Gateway, instance: Any) -> None:  # noqa: F811
    """``tenant.run(obj, op)`` was a KeyError from the transport's settings, ``provider(["one"])``
    a TypeError (unhashable): a ValidationError naming ``instance``; an unknown name a ConfigError."""
    from smsgate.errors import ConfigError

    t = gw.tenant("acme")
    op = t.provider("one").list_inbound()
    _refused(lambda: t.provider(instance), "instance")
    _refused(lambda: t.run(instance, op), "instance")
    _refused(lambda: t.iterate(instance, None), "instance")  # type: ignore[arg-type]
    _refused(lambda: t.ingest_inbound(instance, []), "instance")
    _refused(lambda: t.poll_inbound(instance), "instance")
    with pytest.raises(ConfigError, match="no provider 'nope'"):
        t.run("nope", op)

    async def body(ag: AsyncGateway) -> None:
        at = ag.tenant("acme")
        await _async_refused(lambda: at.run(instance, op), "instance")
        await _async_refused(lambda: at.ingest_inbound(instance, []), "instance")
        await _async_refused(lambda: at.poll_inbound(instance), "instance")
        _refused(lambda: at.iterate(instance, None), "instance")  # type: ignore[arg-type]

    _async(gw, body)


@pytest.mark.parametrize("messages", [object(), [object()], "hi", {"from_number": "+2348031234567"}],
                         ids=["object", "list-of-object", "str", "dict"])
def test_ingest_inbound_needs_a_list_of_inbound_messages(gw: Gateway, messages: Any) -> None:  # noqa: F811
    t = gw.tenant("acme")
    _refused(lambda: t.ingest_inbound("one", messages), "messages")
    assert t.inbound() == []

    async def body(ag: AsyncGateway) -> None:
        await _async_refused(lambda: ag.tenant("acme").ingest_inbound("one", messages), "messages")

    _async(gw, body)


def test_add_many_counts_an_optout_kept_under_another_form_as_already_there(make_gw: Callable[..., Gateway]) -> None:
    g = make_gw()
    _store_earlier(g.store, "08020000000")
    report = g.tenant("acme").optouts.add_many(["08031234567", "08031234568"], scope="+2348020000000")
    assert (report.added, report.already) == (1, 1)


def test_a_stop_words_confirmation_passes_an_earlier_optout_of_the_same_sender_in_another_form(
        make_gw: Callable[..., Gateway]) -> None:
    """The confirmation is the one message a stop word's own opt-out lets through: an earlier
    opt-out of that sender kept under another form of its number is that same opt-out."""
    from smsgate.models import InboundMessage

    g = make_gw(sender="+2348020000000", inbound={"optout_scope": "sender", "stop_reply": "Stopped."})
    _store_earlier(g.store, "08020000000")
    acme = g.tenant("acme")
    acme.ingest_inbound("one", [InboundMessage(from_number="+2348031234567", to="+2348020000000", text="STOP",
                                               vendor_id="in-2")])
    sent = [m for m in g.store.list_messages("acme") if m.to == "+2348031234567"]
    assert [m.status.value for m in sent] != [] and sent[0].status.value != "rejected", sent
    with pytest.raises(OptedOut):
        acme.send("08031234567", "hello")


@pytest.mark.parametrize("name", ["batch_size", "concurrency", "lease_seconds"])
def test_campaign_numbers_are_not_bools(gw: Gateway, name: str) -> None:  # noqa: F811  (the fixture)
    """``create(concurrency=True)`` made a campaign of concurrency 1 (pydantic reads True as 1)."""
    t = gw.tenant("acme")
    _refused(lambda: t.campaigns.create("c", audience=["08031234567"], text="hi", **{name: True}), name)
    assert t.campaigns.list() == []


@pytest.mark.parametrize(("name", "value"), [("tenant_refresh", "x"), ("tenant_refresh", True), ("tenant_refresh", -1),
                                             ("store", 5), ("store", object())],
                         ids=["refresh-str", "refresh-bool", "refresh-negative", "store-int", "store-object"])
def test_gateway_arguments_are_checked(tmp_path: Path, name: str, value: Any) -> None:
    """``Gateway(cfg, tenant_refresh="x")`` was accepted (a TypeError at the first check of a
    tenant source), ``store=5`` an AttributeError (at close)."""
    cfg = {"store": f"sqlite:///{tmp_path / 'g.db'}", "tenants": {}}
    _refused(lambda: Gateway(cfg, **{name: value}), name)

    async def main() -> None:
        with pytest.raises(ValidationError) as info:
            AsyncGateway(cfg, **{name: value})
        assert info.value.field == name

    asyncio.run(main())


def test_tenant_refresh_reads_a_duration(tmp_path: Path) -> None:
    with Gateway({"store": f"sqlite:///{tmp_path / 'g.db'}", "tenants": {}}, tenant_refresh="30s") as g:
        assert g._core_.tenant_refresh == 30.0


def test_a_campaign_prepared_by_the_writer_process_skips_an_earlier_form_optout(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The writer process (a CSV audience into an SQLite file) checks opt-outs with the tenant's
    rule too (``ScopeRule``, sent to it as its region and senders)."""
    from smsgate.campaigns import CsvAudience, writer_process
    from test_writer_process import ready_or_gone

    children: list[writer_process.ChildWriter] = []
    real_init = writer_process.ChildWriter.__init__

    def init(self: writer_process.ChildWriter, *args: Any, **kwargs: Any) -> None:
        real_init(self, *args, **kwargs)
        children.append(self)
        ready_or_gone(self, False)  # ready before the first chunk: it writes them all

    monkeypatch.setattr(writer_process.ChildWriter, "__init__", init)
    monkeypatch.setattr(writer_process, "MIN_BYTES", 0)
    monkeypatch.delenv(writer_process.ENVIRONMENT, raising=False)
    csv = tmp_path / "customers.csv"
    csv.write_text("phone\n08031234567\n08031234568\n", encoding="utf-8")
    cfg = {"store": f"sqlite:///{tmp_path / 'w.db'}",
           "tenants": {"acme": {"default_region": "NG", "providers": {"one": {"plugin": "memory"}}}}}
    with Gateway(cfg) as g:
        _store_earlier(g.store, "08020000000")
        camp = g.tenant("acme").campaigns.create("promo", audience=CsvAudience(csv), text="hi",
                                                 sender="+2348020000000")
        assert camp.preview().skipped == {"opted_out": 1}
    assert len(children) == 1 and children[0].ready.is_set()
