"""A third-party provider plugin ("loopsms", tests/plug_vendor.py) written from the docs, run
through the conformance kit, Gateway, AsyncGateway and campaigns; then misbehaving as real
vendors and sloppy plugins do. Delivery claims are read from the vendor's own record."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import plug_vendor as pv
import smsgate
from plug_vendor import LoopProvider, LoopVendor
from smsgate import AsyncGateway, Gateway
from smsgate.errors import ConfigError, MalformedResponse
from smsgate.plugins import PluginManager
from smsgate.provider import Capabilities, ProviderSettings
from smsgate.testing.conformance import ProviderConformance

_ports = itertools.count(47400)


class TestLoopConformance(ProviderConformance):
    provider_class = LoopProvider
    recipient = "+2348012345678"
    region = "NG"
    send_path = "/send"
    bulk_send_path = "/bulk"
    secret_values = (pv.API_KEY,)

    def make_emulator(self) -> Any:
        return pv.create_emulator()

    def make_settings(self, base_url: str, *, valid: bool = True) -> ProviderSettings:
        return ProviderSettings(plugin="loopsms", base_url=base_url,
                                credentials={"api_key": pv.API_KEY if valid else "wrong"})


@pytest.fixture
def vendor() -> Iterator[LoopVendor]:
    for _ in range(50):
        try:
            v = LoopVendor(next(_ports)).start()
            break
        except OSError:
            continue
    try:
        yield v
    finally:
        v.stop()


def plugins(*providers: type[Any]) -> PluginManager:
    pm = PluginManager(load_entry_points=False)
    for cls in providers or (LoopProvider,):
        pm.add_provider(cls)
    return pm


def install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, module: str) -> None:
    """Install a distribution whose ``smsgate.providers`` entry point ``name`` is ``module``:
    a ``.dist-info`` on ``sys.path``, as ``pip install`` leaves it."""
    dist = tmp_path / f"smsgate_{name}-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: smsgate-{name}\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[smsgate.providers]\n{name} = {module}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib

    importlib.invalidate_caches()


def test_installed_plugin_sends_through_gateway_async_and_campaigns(
        vendor: LoopVendor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    install(tmp_path, monkeypatch, "loopsms", "plug_vendor")
    monkeypatch.delenv("SMSGATE_PLUGINS", raising=False)
    pm = PluginManager()
    assert pm.get_provider_class("loopsms") is LoopProvider
    cfg = pv.config(vendor.url)
    nums = pv.numbers(7)
    with Gateway(cfg, plugins=pm) as gw:
        acme = gw.tenant("acme")
        one = acme.send(nums[0], "hello")
        assert one.status == "submitted" and one.provider == "loop"
        many = acme.send_many(nums[1:], "bulk")
        assert [r.status for r in many] == ["submitted"] * 6
        assert acme.status(one.message_id).status == "submitted"
        camp = acme.campaigns.create("c1", text="camp {name}", audience=[{"phone": n, "name": n[-3:]} for n in nums])
        done = camp.run()
        assert done.sent == 7, done

    async def go() -> None:
        async with AsyncGateway(cfg, plugins=pm) as agw:
            acme = agw.tenant("acme")
            r = await acme.send(nums[0], "async hello")
            assert r.status == "submitted"
            rs = await acme.send_many(nums[1:], "async bulk")
            assert [x.status for x in rs] == ["submitted"] * 6
            camp = await acme.campaigns.create("c2", text="acamp", audience=[{"phone": n} for n in nums])
            done = await camp.run()
            assert done.sent == 7, done

    asyncio.run(go())
    # the vendor's own record: each message exactly once per send
    texts = [(m["to"], m["text"]) for m in vendor.taken()]
    assert len(texts) == len(set(texts)) == 1 + 6 + 7 + 1 + 6 + 7
    assert all(len(r.body["messages"]) <= 3 for r in vendor.sends() if r.path == "/bulk")


# -- sloppy plugins: what send / send_many return ------------------------------------------------

def _variant(name: str, **attrs: Any) -> type[LoopProvider]:
    return type(name, (LoopProvider,), {"name": name, **attrs})


def _dicts(self: LoopProvider, msgs: Any) -> Any:
    out = yield from LoopProvider.send_many(self, msgs)
    return [r.model_dump() for r in out]  # dicts, not SendResults


def _none(self: LoopProvider, msg: Any) -> Any:
    yield from LoopProvider.send(self, msg)
    return None  # forgot the return


@pytest.mark.parametrize("drive", ["sync", "async"])
def test_send_many_returning_non_sendresults_is_unknown_not_a_crash(vendor: LoopVendor, drive: str) -> None:
    """A send_many answering dicts instead of SendResults crashed the delivery plan with an
    AttributeError ('dict' object has no attribute 'resend') after the vendor took the batch: the
    call raised, the accepted messages stayed ``queued`` and the rest of the call was marked
    failed. Now: every message of that request is ``unknown``, with an error naming the instance,
    and the next batch is sent as usual; nothing is sent twice."""
    cls = _variant("loop_dicts", send_many=_dicts)
    cfg = pv.config(vendor.url, plugin=cls.name)
    nums = list(pv.numbers(5))

    if drive == "sync":
        with Gateway(cfg, plugins=plugins(cls)) as gw:
            results = gw.tenant("acme").send_many(nums, "hi")
            logged = gw.tenant("acme").messages()
    else:
        async def go() -> Any:
            async with AsyncGateway(cfg, plugins=plugins(cls)) as agw:
                return await agw.tenant("acme").send_many(nums, "hi"), await agw.tenant("acme").messages()
        results, logged = asyncio.run(go())
    assert [r.status for r in results] == ["unknown"] * 5
    assert all("[loop]" in (r.error or "") and "SendResult" in (r.error or "") for r in results)
    assert sorted(m.status for m in logged) == ["unknown"] * 5  # none left queued
    # the vendor's record: two requests (3 + 2; in either order: an async send_many sends them at once),
    # each number taken once
    assert sorted(len(r.body["messages"]) for r in vendor.sends()) == [2, 3]
    assert sorted(m["to"] for m in vendor.taken()) == nums


def test_send_returning_none_is_unknown_not_a_crash(vendor: LoopVendor) -> None:
    cls = _variant("loop_none", send=_none)
    with Gateway(pv.config(vendor.url, plugin=cls.name), plugins=plugins(cls)) as gw:
        acme = gw.tenant("acme")
        with pytest.raises(MalformedResponse, match=r"\[loop\].*NoneType.*SendResult"):
            acme.send("+2348012300001", "hi")
        [logged] = acme.messages()
        assert logged.status == "unknown"
    assert vendor.taken_to("+2348012300001") == 1


def _reordered(self: LoopProvider, msgs: Any) -> Any:
    out = yield from LoopProvider.send_many(self, msgs)
    return sorted(out, key=lambda r: r.to, reverse=True)  # e.g. rows kept in a dict, or sorted by number


def _settled(tenant: Any, message_id: str) -> str:
    """The message's status once a look-up may settle it (an ``unknown`` one is looked up by
    client reference only once its provider had time to act: twice its timeout)."""
    deadline = time.monotonic() + 60
    rec = tenant.look_up(message_id, recover_after=0)
    while rec.status == "unknown" and time.monotonic() < deadline:
        time.sleep(0.25)
        rec = tenant.look_up(message_id, recover_after=0)
    return str(rec.status.value)


def test_send_many_results_out_of_order_are_not_pinned_on_the_wrong_messages(vendor: LoopVendor) -> None:
    """A send_many answering its results in another order than its messages (rows re-sorted by
    number) had each message logged with another message's vendor id: a look-up of message A
    then read the vendor's status of message B (here: A, which failed at the vendor, shown
    ``delivered``). Now such an answer is a MalformedResponse for that request: its messages are
    ``unknown`` (never re-sent), and a status look-up settles them by client reference."""
    cls = _variant("loop_sorted", send_many=_reordered)
    nums = list(pv.numbers(3))
    with Gateway(pv.config(vendor.url, plugin=cls.name), plugins=plugins(cls)) as gw:
        acme = gw.tenant("acme")
        results = acme.send_many(nums, "hi")
        # the vendor: the first number's message failed, the others were delivered
        by_to = {m["to"]: m for m in vendor.taken()}
        for to, m in by_to.items():
            m["status"] = "failed" if to == nums[0] else "delivered"
        first = results[0]
        assert _settled(acme, first.message_id) == "failed"  # was "delivered": another message's status
        assert acme.get(first.message_id).provider_message_id == by_to[nums[0]]["id"]
        assert first.status == "unknown" and "order" in (first.error or "")
        for r, to in zip(results[1:], nums[1:], strict=True):
            assert _settled(acme, r.message_id) == "delivered", to
    assert sorted(by_to) == nums and len(vendor.sends()) == 1  # one request, each number once


def _national(self: LoopProvider, msgs: Any) -> Any:
    out = yield from LoopProvider.send_many(self, msgs)
    # the vendor writes each number back in its own form: national, with a leading zero
    return [r.model_copy(update={"to": "0" + r.to[len("+234"):]}) for r in out]


def test_send_many_results_writing_the_number_in_another_form_are_taken(vendor: LoopVendor) -> None:
    """The order check reads the number, not its form: a plugin that writes back the vendor's
    national form (``0801230000``) of each ``+234...`` number is in order (every result taken)."""
    cls = _variant("loop_national", send_many=_national)
    nums = list(pv.numbers(3))
    with Gateway(pv.config(vendor.url, plugin=cls.name), plugins=plugins(cls)) as gw:
        results = gw.tenant("acme").send_many(nums, "hi")
    assert [r.status for r in results] == ["submitted"] * 3, [r.error for r in results]
    assert sorted(m["to"] for m in vendor.taken()) == nums and len(vendor.sends()) == 1


# -- discovery: one broken plugin must not take the others down ------------------------------------

_BROKEN = {
    "plug_broken_import": 'raise ImportError("No module named \'vendor_sdk\'")\n',
    "plug_raising_hook": ("from smsgate import hookimpl\n\n@hookimpl\ndef register_providers(register):\n"
                          "    raise KeyError('settings')\n"),
    "plug_wrong_register": ("from smsgate import hookimpl\n\n@hookimpl\ndef register_providers(register):\n"
                            "    register('LoopProvider')\n"),
}


def test_a_broken_plugin_at_discovery_leaves_the_other_plugins_working(
        vendor: LoopVendor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One installed plugin failing to import, one whose register_providers raises and one
    registering a string made every tenant fail (the first a ConfigError, the second the raw
    KeyError, the third a ConfigError naming no plugin), however unrelated its providers. Now
    each is left out (and logged), only a tenant naming it gets its error, naming the plugin."""
    for i, (name, source) in enumerate(_BROKEN.items()):
        (tmp_path / f"{name}.py").write_text(source)
        install(tmp_path / f"d{i}", monkeypatch, name, name)
    install(tmp_path / "loop", monkeypatch, "loopsms", "plug_vendor")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("SMSGATE_PLUGINS", ",".join([*_BROKEN, "loopsms", "memory"]))
    pm = PluginManager()
    cfg = pv.config(vendor.url)
    cfg["tenants"]["other"] = {"providers": {"m": {"plugin": "memory"}}}
    for name in _BROKEN:
        cfg["tenants"][name] = {"providers": {"x": {"plugin": name}}}
    with Gateway(cfg, plugins=pm) as gw:
        assert gw.tenant("acme").send("+2348012300007", "still works").status == "submitted"
        assert gw.tenant("other").send("+2348012300008", "memory too").status == "sent"
        for name, why in [("plug_broken_import", "failed to import: ImportError: No module named 'vendor_sdk'"),
                          ("plug_raising_hook", "register_providers failed: KeyError: 'settings'"),
                          ("plug_wrong_register", "register_providers failed: .*not a smsgate Provider")]:
            with pytest.raises(ConfigError, match=f"tenants.{name}.providers.x.plugin: .*{name}.*{why}") as info:
                gw.tenant(name).send("+2348012300009", "x")
            assert info.value.field == f"tenants.{name}.providers.x.plugin"
    assert set(pm.broken()) == set(_BROKEN)
    assert [m["to"] for m in vendor.taken()] == ["+2348012300007"]


def test_two_plugins_registering_one_name_is_refused_not_a_silent_takeover(
        vendor: LoopVendor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A second installed plugin registering provider name "loopsms" (another vendor's adapter,
    or a hostile one) silently replaced one of the two: a tenant configured for loopsms sent its
    messages, with its credentials, through whichever class pluggy called last. Now that name is
    a ConfigError naming both plugins, and nothing is sent; the other names still load."""
    (tmp_path / "plug_impostor.py").write_text(
        "from smsgate import hookimpl\nfrom plug_vendor import LoopProvider\n\n"
        "class Impostor(LoopProvider):\n    name = 'loopsms'\n\n"
        "@hookimpl\ndef register_providers(register):\n    register(Impostor)\n")
    install(tmp_path / "a", monkeypatch, "loopsms", "plug_vendor")
    install(tmp_path / "b", monkeypatch, "impostor", "plug_impostor")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("SMSGATE_PLUGINS", "loopsms,impostor,memory")
    cfg = pv.config(vendor.url)
    cfg["tenants"]["other"] = {"providers": {"m": {"plugin": "memory"}}}
    with Gateway(cfg, plugins=PluginManager()) as gw:
        with pytest.raises(ConfigError, match=r"'loopsms' is registered by two plugins: .*Impostor.*LoopProvider"
                                              r"|'loopsms' is registered by two plugins: .*LoopProvider.*Impostor"):
            gw.tenant("acme").send("+2348012300001", "hi")
        assert gw.tenant("other").send("+2348012300002", "hi").status == "sent"
    assert vendor.record == []


@pytest.mark.parametrize("max_batch", ["3", None, 2.5, 0])
def test_a_bulk_plugin_with_a_bad_max_batch_is_refused_when_built(vendor: LoopVendor, max_batch: Any) -> None:
    """``Capabilities(bulk=True, max_batch="3")`` (or None, 2.5) failed every send_many with a
    bare TypeError naming no plugin ('>' not supported between 'str' and 'int'), and 0 silently
    became 1 message a request. Now the instance is refused when built, as a declared capability
    without its operation is: a ConfigError naming the key, the plugin, its class and max_batch."""
    caps = Capabilities(bulk=True, max_batch=max_batch, status_lookup=True, client_reference=True)
    cls = _variant("loop_batch", capabilities=caps)
    with Gateway(pv.config(vendor.url, plugin=cls.name), plugins=plugins(cls)) as gw:
        with pytest.raises(ConfigError, match=r"tenants.acme.providers.loop: plugin 'loop_batch' "
                                              r"\(.*loop_batch\): its max_batch is .*whole number >= 1") as info:
            gw.tenant("acme").send_many(list(pv.numbers(4)), "hi")
        assert info.value.field == "tenants.acme.providers.loop.plugin"
    assert vendor.record == []


def test_smsgate_providers_lists_the_others_and_warns_of_a_broken_plugin(tmp_path: Path) -> None:
    """`smsgate providers` with one installed plugin failing to import was `error: ...`, exit 2,
    nothing listed. Now it lists the others and names the broken one on stderr."""
    dist = tmp_path / "smsgate_bad-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: smsgate-bad\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[smsgate.providers]\nbad = plug_bad_mod\n")
    (tmp_path / "plug_bad_mod.py").write_text("import acme_sdk_not_installed\n")
    src = Path(smsgate.__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(src), str(tmp_path)])}
    env.pop("SMSGATE_PLUGINS", None)
    done = subprocess.run([sys.executable, "-m", "smsgate", "providers", "--json"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "memory" in json.loads(done.stdout)
    assert "warning: provider plugin 'bad' (plug_bad_mod) failed to import: ModuleNotFoundError" in done.stderr


def _raise_after(self: LoopProvider, msgs: Any) -> Any:
    yield from LoopProvider.send_many(self, msgs)  # the vendor took the batch...
    raise KeyError("results")  # ...and the adapter's parser broke on its answer


def _send_raise_after(self: LoopProvider, msg: Any) -> Any:
    yield from LoopProvider.send(self, msg)
    raise TypeError("'NoneType' object is not subscriptable")


def test_an_adapter_raising_a_plain_exception_after_its_request_is_unknown_naming_the_instance(
        vendor: LoopVendor) -> None:
    """A parser raising KeyError (TypeError...) after the vendor took the request: its messages
    are unknown and never re-sent (held before), and the MalformedResponse now names the
    instance, as every other provider error does (it read "the adapter could not read the
    answer: KeyError('results')", naming no provider)."""
    cls = _variant("loop_raise", send_many=_raise_after, send=_send_raise_after)
    nums = list(pv.numbers(4))
    with Gateway(pv.config(vendor.url, plugin=cls.name), plugins=plugins(cls)) as gw:
        acme = gw.tenant("acme")
        results = acme.send_many(nums[:3], "hi")
        assert [r.status for r in results] == ["unknown"] * 3
        assert all((r.error or "").startswith("[loop] the adapter could not read the answer: KeyError")
                   for r in results)
        with pytest.raises(MalformedResponse, match=r"^\[loop\] the adapter could not read the answer: TypeError"):
            acme.send(nums[3], "one")
        assert sorted(m.status for m in acme.messages()) == ["unknown"] * 4
    assert sorted(m["to"] for m in vendor.taken()) == nums  # each once, none re-sent


@pytest.mark.parametrize("drive", ["sync", "async"])
def test_campaign_through_a_plugin_answering_dicts_finishes_and_sends_each_once(
        vendor: LoopVendor, drive: str, tmp_path: Path) -> None:
    """The same sloppy send_many in a campaign run: the run raised AttributeError mid-way. Now
    the batch's recipients are unknown, the run's own recovery finds each at the vendor by
    client reference, and the campaign ends with every recipient sent once (vendor's record)."""
    cls = _variant("loop_dicts", send_many=_dicts)
    cfg = pv.config(vendor.url, plugin=cls.name)
    cfg["store"] = f"sqlite:///{tmp_path / 'c.db'}"
    nums = list(pv.numbers(7))
    if drive == "sync":
        with Gateway(cfg, plugins=plugins(cls)) as gw:
            done = gw.tenant("acme").campaigns.create("c", text="x", audience=nums).run()
    else:
        async def go() -> Any:
            async with AsyncGateway(cfg, plugins=plugins(cls)) as agw:
                camp = await agw.tenant("acme").campaigns.create("c", text="x", audience=nums)
                return await camp.run()
        done = asyncio.run(go())
    assert (done.sent, done.unknown, done.failed, done.pending) == (7, 0, 0, 0)
    assert sorted(m["to"] for m in vendor.taken()) == nums


# -- look-ups: one odd vendor answer must not stop the status poller ----------------------------------

def test_a_status_lookup_the_adapter_cannot_parse_is_a_failed_lookup_not_a_stuck_poller(vendor: LoopVendor) -> None:
    """The vendor answers one message's status without its ``status`` field; the plugin's
    ``status()`` (as written in tests/plug_vendor.py, ``_STATUS[data["status"]]``) raises KeyError.
    That raw KeyError escaped ``tenant.status()`` naming no provider, and ``sync_statuses()``
    raised it too, every tick: the message is asked first again each time, so no other message of
    the tenant was ever updated. Now it is a MalformedResponse naming the instance, the poller
    counts it as a failed lookup and updates the others."""
    nums = list(pv.numbers(3))
    with Gateway(pv.config(vendor.url), plugins=plugins()) as gw:
        acme = gw.tenant("acme")
        sent = [acme.send(n, "hi") for n in nums]
        for m in vendor.taken():
            m["status"] = "delivered"
        odd = f"/msg/{sent[0].provider_message_id}"
        vendor.then(odd, *[pv.answer_with(lambda out: {"id": out["id"]})] * 2)  # no "status"
        with pytest.raises(MalformedResponse, match=r"^\[loop\] .*status\(\).*KeyError"):
            acme.status(sent[0].message_id)
        summary = acme.sync_statuses(older_than=0)
        assert (summary.errors, summary.changed) == (1, 2), summary
        assert [acme.get(r.message_id).status for r in sent] == ["submitted", "delivered", "delivered"]
    assert [r.path for r in vendor.record if r.method == "GET"].count(odd) == 2
    assert len(vendor.sends()) == 3
