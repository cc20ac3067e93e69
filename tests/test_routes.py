"""Routes by kind, capability and weight, and the route explanation; proven from the emulators' records."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reference_provider import API_KEY, EchoPlugin, EchoProvider, create_emulator
from smsgate import (
    AsyncGateway,
    Attachment,
    ConfigError,
    Gateway,
    MessageSpec,
    NoCapableProvider,
    OutboundMessage,
    Status,
    Unsupported,
    ValidationError,
)
from smsgate.config import load_config
from smsgate.hookspecs import hookimpl
from smsgate.plugins import PluginManager
from smsgate.routing import Router, RouteRule, weighted_pick
from smsgate.testing import EmulatorControl, LiveServer


class MediaEcho(EchoProvider):
    """The echo vendor's media product: the same API, with media URLs."""

    name = "echo_media"
    capabilities = dataclasses.replace(EchoProvider.capabilities, media=True)

    def _body(self, msg: OutboundMessage) -> dict[str, Any]:
        return {**super()._body(msg), "media": [a.url for a in msg.attachments]}


class MediaPlugin:
    @hookimpl
    def register_providers(self, register: Any) -> None:
        register(MediaEcho)


def plugins() -> PluginManager:
    pm = PluginManager(load_entry_points=False)
    pm.register(EchoPlugin())
    pm.register(MediaPlugin())
    return pm


@pytest.fixture
def vendors() -> Iterator[list[tuple[str, EmulatorControl]]]:
    """Three echo vendors on loopback."""
    with LiveServer(create_emulator()) as a, LiveServer(create_emulator()) as b, \
            LiveServer(create_emulator()) as c:
        yield [(s.url, EmulatorControl(s.url)) for s in (a, b, c)]


def provider(url: str, plugin: str = "echo", **extra: Any) -> dict[str, Any]:
    return {"plugin": plugin, "base_url": url, "credentials": {"api_key": API_KEY}, "sender": "ACME",
            "max_retries": 0, **extra}


def config(store: str, providers: dict[str, Any], routes: list[dict[str, Any]]) -> dict[str, Any]:
    return {"store": store, "tenants": {"acme": {"default_region": "NG", "providers": providers,
                                                 "routes": routes}}}


def received(ctl: EmulatorControl) -> dict[str, str]:
    """What a vendor received: client reference (our message id) -> number, single and bulk."""
    out: dict[str, str] = {}
    for r in ctl.requests(method="POST"):
        body = r.json()
        for item in body["messages"] if r.path.startswith("/messages/bulk") else [body]:
            out[item["client_ref"]] = item["to"]
    return out


# ------------------------------------------------------------------------------ kinds
def test_kinds_pick_their_routes_end_to_end(vendors: list[tuple[str, EmulatorControl]], tmp_path: Path) -> None:
    (u1, premium), (u2, cheap), _ = vendors
    cfg = config(f"sqlite:///{tmp_path / 'k.db'}", {"premium": provider(u1), "cheap": provider(u2)}, [
        {"kinds": ["otp", "transactional"], "providers": ["premium", "cheap"]},
        {"providers": ["cheap"]},  # every other kind, and messages without one
    ])
    with Gateway(cfg, plugins=plugins()) as gw:
        t = gw.tenant("acme")
        otp = t.send("08031000001", "code 123456", kind="otp")
        tx = t.send("08031000002", "receipt", kind="transactional")
        promo = t.send("08031000003", "sale", kind="marketing")  # a kind no rule names
        plain = t.send("08031000004", "hello")
        many = t.send_many(["08031000005", "08031000006",
                            MessageSpec("08031000007", kind="marketing")], "your code", kind="otp")
    assert [r.provider for r in (otp, tx, promo, plain)] == ["premium", "premium", "cheap", "cheap"]
    assert [r.provider for r in many] == ["premium", "premium", "cheap"]
    # the vendors' side: each message reached exactly the vendor its kind routes to
    assert received(premium) == {otp.message_id: "+2348031000001", tx.message_id: "+2348031000002",
                                 many[0].message_id: "+2348031000005", many[1].message_id: "+2348031000006"}
    assert received(cheap) == {promo.message_id: "+2348031000003", plain.message_id: "+2348031000004",
                               many[2].message_id: "+2348031000007"}


def test_kinds_in_async_sends_and_campaigns(vendors: list[tuple[str, EmulatorControl]], tmp_path: Path) -> None:
    (u1, premium), (u2, cheap), _ = vendors
    cfg = config(f"sqlite:///{tmp_path / 'a.db'}", {"premium": provider(u1), "cheap": provider(u2)}, [
        {"kinds": ["otp"], "providers": ["premium"]},
        {"kinds": ["marketing"], "providers": ["cheap"]},
    ])

    async def main() -> list[str]:
        async with AsyncGateway(cfg, plugins=plugins()) as gw:
            t = gw.tenant("acme")
            one = await t.send("08032000001", "code", kind="otp")
            many = await t.send_many(["08032000002", "08032000003"], "sale", kind="marketing")
            with pytest.raises(ConfigError, match="no route"):  # neither rule takes a message without a kind
                await t.send("08032000004", "hello")
            return [one.message_id, *(r.message_id for r in many)]

    ids = asyncio.run(main())
    with Gateway(cfg, plugins=plugins()) as gw:
        camp = gw.tenant("acme").campaigns.create("promo", text="Sale {name}", kind="marketing", audience=[
            {"phone": "08033000001", "name": "Ada"}, {"phone": "08033000002", "name": "Bo"}])
        assert camp.run().sent == 2
        sent = {m.message_id for m in gw.tenant("acme").messages(campaign_id=camp.campaign_id)}
    assert set(received(premium)) == {ids[0]}
    assert set(received(cheap)) == {ids[1], ids[2], *sent}


def test_a_bad_kind_is_a_validation_error_and_nothing_is_sent(vendors: list[tuple[str, EmulatorControl]]) -> None:
    (u1, ctl), _, _ = vendors
    with Gateway(config("memory://", {"one": provider(u1)}, []), plugins=plugins()) as gw:
        t = gw.tenant("acme")
        for bad in ("OTP", "one-time", "", "x" * 33, "9lives"):
            with pytest.raises(ValidationError, match="kind") as err:
                t.send("08031000001", "x", kind=bad)
            assert err.value.field == "kind"
        with pytest.raises(ValidationError, match="kind"):
            t.send_many(["08031000001"], "x", kind="Bad Kind")
        with pytest.raises(ValidationError, match="kind"):
            t.campaigns.create("c", text="x", audience=["08031000001"], kind="Promo!")
        assert t.campaigns.list() == []
        # one recipient's bad kind rejects that recipient only
        results = t.send_many([MessageSpec("08031000001", kind="BAD"), "08031000002"], "x")
        assert results[0].status is Status.REJECTED and "kind" in (results[0].error or "")
        assert results[1].ok
    assert list(received(ctl).values()) == ["+2348031000002"]


# ------------------------------------------------------------------------------ weights
def test_weights_split_a_thousand_messages_by_weight_and_are_stable() -> None:
    router = Router([RouteRule(providers=["a", "b", "c", "spare"], weights={"a": 6, "b": 3, "c": 1})],
                    ["a", "b", "c", "spare"])
    firsts = Counter(router.route("+2348031234567", key=f"msg_{i:06d}")[0] for i in range(1000))
    assert set(firsts) == {"a", "b", "c"}
    assert abs(firsts["a"] - 600) <= 60 and abs(firsts["b"] - 300) <= 50 and abs(firsts["c"] - 100) <= 35
    for i in range(50):  # the same message always picks the same provider; the others follow in order
        order = router.route("+2348031234567", key=f"msg_{i:06d}")
        assert router.route("+2348031234567", key=f"msg_{i:06d}") == order
        assert list(order[1:]) == [n for n in ("a", "b", "c", "spare") if n != order[0]]


def test_a_zero_weight_is_never_first_but_still_a_fallback() -> None:
    router = Router([RouteRule(providers=["a", "b"], weights={"a": 1, "b": 0})], ["a", "b"])
    assert {router.route("+2348031234567", key=str(i)) for i in range(300)} == {("a", "b")}


@given(key=st.text(max_size=40), weights=st.lists(st.floats(0, 1000), min_size=1, max_size=6)
       .filter(lambda ws: sum(ws) > 0))
def test_weighted_pick_is_deterministic_and_never_picks_a_zero_weight(key: str, weights: list[float]) -> None:
    names = [f"p{i}" for i in range(len(weights))]
    i = weighted_pick(key, names, weights)
    assert 0 <= i < len(weights) and weights[i] > 0
    assert weighted_pick(key, list(names), list(weights)) == i  # same key, same answer (no process salt)


@given(st.lists(st.text(min_size=1, max_size=20), min_size=1, max_size=30, unique=True))
def test_a_weighted_route_is_always_a_permutation_of_its_providers(keys: list[str]) -> None:
    rule = RouteRule(providers=["a", "b", "c"], weights={"a": 2, "b": 1})
    router = Router([rule], ["a", "b", "c"])
    for key in keys:
        order = router.route("+2348031234567", key=key)
        assert sorted(order) == ["a", "b", "c"] and order[0] in ("a", "b")


def test_weights_end_to_end_each_message_reaches_the_provider_its_key_picks(
        vendors: list[tuple[str, EmulatorControl]], tmp_path: Path) -> None:
    (u1, c1), (u2, c2), (u3, c3) = vendors
    cfg = config(f"sqlite:///{tmp_path / 'w.db'}", {"one": provider(u1), "two": provider(u2), "three": provider(u3)},
                 [{"providers": ["one", "two", "three"], "weights": {"one": 3, "two": 1}}])
    with Gateway(cfg, plugins=plugins()) as gw:
        t = gw.tenant("acme")
        results = {f"order-{i}": t.send(f"0803400{i:04d}", "x", idempotency_key=f"order-{i}") for i in range(120)}
        again = t.send("08034000007", "x", idempotency_key="order-7")  # a retry: the first answer, not sent again
        expected = {k: t.explain_route(r.to, key=k).order[0] for k, r in results.items()}
    assert again.message_id == results["order-7"].message_id
    assert {k: r.provider for k, r in results.items()} == expected
    got = {**{m: "one" for m in received(c1)}, **{m: "two" for m in received(c2)}}
    assert got == {r.message_id: r.provider for r in results.values()}  # each message sent once, where picked
    assert received(c3) == {} and 70 <= list(expected.values()).count("one") <= 110
    with Gateway(cfg, plugins=plugins()) as other:  # another gateway (process) picks the same
        assert all(other.tenant("acme").explain_route(r.to, key=k).order[0] == r.provider
                   for k, r in results.items())


def test_failover_from_the_weighted_choice_follows_the_configured_order(
        vendors: list[tuple[str, EmulatorControl]], tmp_path: Path) -> None:
    (u1, c1), (u2, c2), (u3, c3) = vendors
    rule = RouteRule(providers=["one", "two", "three"], weights={"one": 1, "two": 1})
    router = Router([rule], [])
    key = next(f"k{i}" for i in range(100) if router.route("+2348031234567", key=f"k{i}")[0] == "two")
    c2.fault(kind="status", status=503, count=None)  # the weighted choice is down ("not processed", declared)
    cfg = config(f"sqlite:///{tmp_path / 'f.db'}",
                 {"one": provider(u1), "two": provider(u2, not_processed_statuses=[503]), "three": provider(u3)},
                 [rule.model_dump()])
    with Gateway(cfg, plugins=plugins()) as gw:
        r = gw.tenant("acme").send("08031234567", "x", idempotency_key=key)
    assert r.ok and r.provider == "one"
    tried = [req.json()["client_ref"] for req in c2.requests("/messages", method="POST")]
    assert tried == [r.message_id] and received(c1) == {r.message_id: "+2348031234567"} and received(c3) == {}


def test_a_weighted_campaign_splits_as_previewed_and_keeps_the_split(
        vendors: list[tuple[str, EmulatorControl]], tmp_path: Path) -> None:
    (u1, c1), (u2, c2), _ = vendors
    cfg = config(f"sqlite:///{tmp_path / 'c.db'}", {"one": provider(u1), "two": provider(u2)},
                 [{"providers": ["one", "two"], "weights": {"one": 1, "two": 1}}])
    audience = [f"0803500{i:04d}" for i in range(60)]
    with Gateway(cfg, plugins=plugins()) as gw:
        t = gw.tenant("acme")
        camp = t.campaigns.create("split", text="hi", audience=audience, batch_size=7)
        preview = camp.preview()
        assert camp.run().sent == 60
        # each recipient went where the route picks for "<campaign>:<number>"
        picked = {t.normalize(n): t.explain_route(n, key=f"{camp.campaign_id}:{t.normalize(n)}").order[0]
                  for n in audience}
    got = {**{to: "one" for to in received(c1).values()}, **{to: "two" for to in received(c2).values()}}
    assert got == picked and len(received(c1)) + len(received(c2)) == 60
    assert preview.by_provider == dict(Counter(picked.values()))
    assert 15 <= preview.by_provider["one"] <= 45


# --------------------------------------------------------------------------- capability
def test_a_message_with_media_skips_providers_without_it(vendors: list[tuple[str, EmulatorControl]]) -> None:
    (u1, text_only), (u2, media), _ = vendors
    cfg = config("memory://", {"sms": provider(u1), "mms": provider(u2, "echo_media")},
                 [{"providers": ["sms", "mms"]}])
    with Gateway(cfg, plugins=plugins()) as gw:
        t = gw.tenant("acme")
        pic = t.send("08031000001", "pic", attachments=[Attachment(url="https://x.test/a.png")])
        words = t.send("08031000002", "words")
    assert (pic.provider, words.provider) == ("mms", "sms")
    assert received(media) == {pic.message_id: "+2348031000001"}
    assert received(text_only) == {words.message_id: "+2348031000002"}
    assert media.requests("/messages", method="POST")[0].json()["media"] == ["https://x.test/a.png"]


def test_no_provider_with_the_capability_is_a_typed_error(vendors: list[tuple[str, EmulatorControl]]) -> None:
    (u1, c1), (u2, c2), _ = vendors
    cfg = config("memory://", {"one": provider(u1), "two": provider(u2)}, [{"providers": ["one", "two"]}])
    with Gateway(cfg, plugins=plugins()) as gw:
        t = gw.tenant("acme")
        with pytest.raises(NoCapableProvider) as err:
            t.send("08031000001", "pic", attachments=[Attachment(url="https://x.test/a.png")])
        assert isinstance(err.value, Unsupported)
        assert err.value.capability == "media" and err.value.providers == ("one", "two")
        assert "media" in str(err.value) and "one, two" in str(err.value)
        (res,) = t.send_many(["08031000002"], "pic", attachments=[Attachment(url="https://x.test/b.png")])
        assert res.status is Status.REJECTED and res.error_code == "unsupported"
        assert t.get(res.message_id).status is Status.REJECTED
    assert c1.requests(method="POST") == [] and c2.requests(method="POST") == []


# ------------------------------------------------------------------------------ explain
def explain_config(store: str, urls: list[str]) -> dict[str, Any]:
    return config(store, {
        # its vendor documents 503 as "not processed": a send refused with it fails over
        "one": provider(urls[0], breaker={"failures": 2, "window": 60, "cooldown": 600}, not_processed_statuses=[503]),
        "two": provider(urls[1], limits=[{"rate": 2, "per": "minute", "burst": 2}]),
        "three": provider(urls[2], "echo_media"),
    }, [{"kinds": ["otp"], "providers": ["three"]},
        {"prefixes": ["+234"], "providers": ["one", "two", "three"]}])


def test_explain_shows_an_open_breaker_a_full_limit_and_capabilities(
        vendors: list[tuple[str, EmulatorControl]], tmp_path: Path) -> None:
    (u1, c1), (u2, c2), (u3, _) = vendors
    c1.fault(kind="status", status=503, count=None)
    cfg = explain_config(f"sqlite:///{tmp_path / 'e.db'}", [u1, u2, u3])
    with Gateway(cfg, plugins=plugins()) as gw:
        t = gw.tenant("acme")
        before = t.explain_route("08031000009", text="hello")
        assert before.order == ["one", "two", "three"] and before.rule == 1 and before.error is None
        assert [c.action for c in before.candidates] == ["try"] * 3
        assert (before.segments, before.encoding) == (1, "gsm7")
        # two sends: each fails at one (503) and goes to two; one's breaker opens, two's limit fills
        assert [t.send(f"0803100000{i}", "x").provider for i in (1, 2)] == ["two", "two"]
        assert len(c1.requests(method="POST")) == 2 and len(c2.requests(method="POST")) == 2
        now = t.explain_route("08031000009")
        one, two, three = now.candidates
        assert (one.action, two.action, three.action) == ("skip", "try", "try")
        assert one.breaker is not None and one.breaker.state == "open"
        assert any("circuit breaker open" in r for r in one.reasons)
        assert any(r.startswith("limit full (2/2 messages per 60s)") for r in two.reasons)
        assert two.limits[0].used == 2 and two.limits[0].wait > 0
        assert now.order == ["two", "three"]
        assert [(c.index, c.matched) for c in now.checks] == [(0, False), (1, True)]
        # what the message needs: only three takes media
        pic = t.explain_route("08031000009", attachments=[Attachment(url="https://x.test/a.png")])
        assert pic.requires == ["media"] and pic.order == ["three"]
        assert [c.action for c in pic.candidates] == ["excluded", "excluded", "try"]
        assert pic.candidates[0].lacks == ["media"]
        otp = t.explain_route("08031000009", kind="otp")
        assert otp.rule == 0 and otp.order == ["three"]
        lost = t.explain_route("+27821234567")
        assert lost.error is not None and "no route" in lost.error and lost.order == []

    async def from_async() -> Any:
        async with AsyncGateway(cfg, plugins=plugins()) as agw:
            return await agw.tenant("acme").explain_route("08031000009")

    seen = asyncio.run(from_async())  # the breaker and the limit are shared through the store
    assert [c.action for c in seen.candidates] == ["skip", "try", "try"] and seen.order == ["two", "three"]


def test_explain_without_a_capable_provider_says_so(vendors: list[tuple[str, EmulatorControl]]) -> None:
    (u1, _), (u2, _), _ = vendors
    cfg = config("memory://", {"one": provider(u1), "two": provider(u2)}, [{"providers": ["one", "two"]}])
    with Gateway(cfg, plugins=plugins()) as gw:
        found = gw.tenant("acme").explain_route("08031000001", attachments=[Attachment(url="https://x/a.png")])
    assert found.order == [] and found.error is not None and "media" in found.error and "one, two" in found.error
    assert json.loads(json.dumps(found.as_dict(), default=str))["candidates"][0]["lacks"] == ["media"]


def test_route_explain_command(vendors: list[tuple[str, EmulatorControl]], tmp_path: Path) -> None:
    (u1, c1), (u2, _), (u3, _) = vendors
    db = tmp_path / "cli.db"
    cfg_file = tmp_path / "smsgate.toml"
    cfg_file.write_text(f"""
store = "sqlite:///{db}"
[tenants.acme]
default_region = "NG"
[tenants.acme.providers.one]
plugin = "squad"
base_url = "{u1}"
breaker = {{ failures = 1, cooldown = 600 }}
[tenants.acme.providers.two]
plugin = "squad"
base_url = "{u2}"
[tenants.acme.providers.three]
plugin = "colony"
base_url = "{u3}"
[[tenants.acme.routes]]
kinds = ["otp"]
providers = ["three"]
[[tenants.acme.routes]]
prefixes = ["+234"]
providers = ["one", "two"]
weights = {{ one = 1, two = 1 }}
""")
    # another process saw one fail: its breaker is open in the shared store
    from smsgate.store import open_store
    from smsgate.traffic import BreakerBoard
    from smsgate.traffic.breaker import Breaker

    with open_store(f"sqlite:///{db}") as store:
        BreakerBoard(store).record("acme", "one", Breaker(failures=1, cooldown=600), False)

    def smsgate(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "smsgate", "route", "explain", *args, "-c", str(cfg_file)],
                              capture_output=True, text=True, env={**os.environ, "COLUMNS": "160"}, timeout=60)

    out = smsgate("08012345678")
    assert out.returncode == 0, out.stderr
    assert "routes[0]: no: it is for kinds otp" in out.stdout and "routes[1]: matched: prefix +234" in out.stdout
    one = next(line for line in out.stdout.splitlines() if " one " in line)
    assert "skip" in one and "open" in one and "weight 1 (50% of the first tier)" in one
    assert out.stdout.strip().endswith("order: two")
    otp = smsgate("+2348012345678", "--kind", "otp", "--tenant", "acme", "--json")
    data = json.loads(otp.stdout)
    assert data["rule"] == 0 and data["order"] == ["three"] and data["kind"] == "otp"
    assert data["candidates"][0]["plugin"] == "colony"
    keyed = json.loads(smsgate("08012345678", "--key", "order-1", "--json").stdout)
    assert keyed["key"] == "order-1" and set(keyed["order"]) <= {"two", "one"}
    lost = smsgate("+27821234567")
    assert lost.returncode == 1 and "error: tenant 'acme' has no route for +278*****567" in lost.stdout
    bad = smsgate("08012345678", "--kind", "OTP")
    assert bad.returncode == 2 and bad.stderr.startswith("error: field '--kind'") and "Traceback" not in bad.stderr
    assert c1.requests() == []  # explaining sends nothing


def test_a_tenant_without_providers_says_so(tmp_path: Path) -> None:
    """A tenant with no providers (a configuration being written, the demo's local tenant):
    ``explain_route`` and ``smsgate route explain`` say so (exit 1, as for no route; it printed
    an empty order and exited 0), and a send is a ConfigError saying the same (an IndexError
    before; send_many rejects each message saying it)."""
    cfg_file = tmp_path / "smsgate.toml"
    db = tmp_path / "cli.db"
    cfg_file.write_text(f'store = "sqlite:///{db}"\n[tenants.acme]\ndefault_region = "NG"\n')
    with Gateway(cfg_file) as gw:
        acme = gw.tenant("acme")
        found = acme.explain_route("08031234567")
        assert found.order == [] and found.error is not None
        assert found.error.startswith("tenant 'acme' has no providers")
        with pytest.raises(ConfigError, match="tenant 'acme' has no providers"):
            acme.send("08031234567", "hello")
        (many,) = acme.send_many(["08031234567"], "hello")  # per message, as a message with no route
        assert many.status is Status.REJECTED and many.error_code == "no_route"
        assert many.error is not None and many.error.startswith("tenant 'acme' has no providers")
    out = subprocess.run([sys.executable, "-m", "smsgate", "route", "explain", "08031234567", "-c", str(cfg_file)],
                         capture_output=True, text=True, env={**os.environ, "COLUMNS": "160"}, timeout=60)
    assert out.returncode == 1 and "error: tenant 'acme' has no providers" in out.stdout, out.stdout + out.stderr
    assert "order:" not in out.stdout
    as_json = subprocess.run([sys.executable, "-m", "smsgate", "route", "explain", "08031234567", "--json", "-c",
                              str(cfg_file)], capture_output=True, text=True, timeout=60)
    assert as_json.returncode == 1 and json.loads(as_json.stdout)["error"].startswith("tenant 'acme' has no providers")


# ------------------------------------------------------------------------ configuration
@pytest.mark.parametrize(("route", "key", "words"), [
    ({"providers": ["a", "b"], "weights": {"a": -1, "b": 2}}, "routes.0.weights", "0 or more"),
    ({"providers": ["a", "b"], "weights": {"a": 0, "b": 0}}, "routes.0.weights", "every weight is 0"),
    ({"providers": ["a", "b"], "weights": {"b": 1}}, "routes.0.weights", "first 1 provider"),
    ({"providers": ["a", "b"], "weights": {"a": 1, "c": 1}}, "routes.0.weights", "first 2 provider"),
    ({"providers": ["a"], "weights": {"a": float("inf")}}, "routes.0.weights", "0 or more"),
    ({"providers": ["a"], "kinds": ["OTP"]}, "routes.0.kinds", "lowercase identifier"),
    ({"providers": ["a"], "kinds": ["otp code"]}, "routes.0.kinds", "lowercase identifier"),
])
def test_bad_route_configuration_names_the_key(route: dict[str, Any], key: str, words: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config({"tenants": {"acme": {"providers": {"a": {"plugin": "echo"}, "b": {"plugin": "echo"}},
                                          "routes": [route]}}})
    assert f"tenants.acme.{key}" in str(err.value) and words in str(err.value)


def test_route_configuration_from_toml(tmp_path: Path) -> None:
    path = tmp_path / "smsgate.toml"
    path.write_text("""
[tenants.acme.providers.premium]
plugin = "echo"
[tenants.acme.providers.cheap]
plugin = "echo"
[[tenants.acme.routes]]
kinds = ["otp", "transactional"]
providers = ["premium", "cheap"]
[[tenants.acme.routes]]
providers = ["cheap", "premium"]
weights = { cheap = 9, premium = 1 }
""")
    tenant = load_config(path).tenant("acme")
    assert tenant.router.route("+2348031234567", kind="otp") == ("premium", "cheap")
    assert tenant.router.route("+2348031234567", kind="marketing") == ("cheap", "premium")
    assert tenant.routes[1].weights == {"cheap": 9.0, "premium": 1.0}
