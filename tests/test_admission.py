"""A request takes its place in its limits (an ``Admit`` step) before its write-ahead: what that
must not cost. A repeated idempotency key is answered without waiting for (or taking) a place;
a place no request took is given back before the plan asks for the next one; a call's duration
still counts its wait. What the vendor received is read from the emulator's own record."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest

from reference_provider import API_KEY, EchoPlugin, create_emulator
from smsgate import Gateway, MessageSpec, Status
from smsgate.core.drive import AsyncPlanDriver, SyncPlanDriver
from smsgate.core.steps import Admit, Plan
from smsgate.hookspecs import hookimpl
from smsgate.plugins import PluginManager
from smsgate.testing import EmulatorControl, LiveServer


def _plugins(*more: object) -> PluginManager:
    pm = PluginManager(load_entry_points=False)
    pm.register(EchoPlugin())
    for p in more:
        pm.register(p)
    return pm


def _cfg(url: str, tmp: Any, **provider: Any) -> dict[str, Any]:
    prov = {"plugin": "echo", "base_url": url, "credentials": {"api_key": API_KEY}, "sender": "ACME",
            "timeout": 1.0, **provider}
    return {"store": f"sqlite:///{tmp / 'a.db'}", "traffic": "local",
            "tenants": {"acme": {"default_region": "NG", "providers": {"one": prov}}}}


def _received(ctl: EmulatorControl) -> Counter[str]:
    out: Counter[str] = Counter()
    for r in ctl.requests("/messages", "POST"):
        body = r.json()
        for m in body["messages"] if r.path.endswith("/bulk") else [body]:
            out[m["to"]] += 1
    return out


@pytest.mark.timeout(30)
def test_a_repeated_key_under_a_full_rate_limit_is_answered_at_once(tmp_path: Any) -> None:
    """One message a day: a send repeated with its key right after the first (``send`` and a
    bulk ``send_many``) is the first one's answer at once. Were a repeat to take a place in
    the limit before its write-ahead found the key, it would wait a day for it (this test
    then fails on its timeout) and hold back real sends."""
    with LiveServer(create_emulator()) as srv:
        ctl = EmulatorControl(srv.url)
        with Gateway(_cfg(srv.url, tmp_path, limits=[{"rate": 1, "per": "day"}]), plugins=_plugins()) as gw:
            t = gw.tenant("acme")
            first = t.send("08060000001", "hi", idempotency_key="k1")
            again = t.send("08060000001", "hi", idempotency_key="k1")
            assert (again.message_id, again.status) == (first.message_id, Status.SUBMITTED)
            many = t.send_many([MessageSpec(to="08060000001", text="hi", idempotency_key="k1")] * 2)
            assert [r.message_id for r in many] == [first.message_id] * 2
        assert _received(ctl) == Counter({"+2348060000001": 1})


def test_a_call_s_duration_counts_its_wait_for_its_limits(tmp_path: Any) -> None:
    """``smsgate_on_call`` says ``seconds`` (the call's duration) "of which ``waited``": a call
    that waited for its place before its write-ahead still counts that wait in its duration."""
    calls: list[tuple[float, float]] = []

    class Hook:
        @hookimpl
        def smsgate_on_call(self, tenant: str, instance: str, error: BaseException | None, seconds: float,
                            waited: float) -> None:
            calls.append((seconds, waited))

    with LiveServer(create_emulator()) as srv:
        with Gateway(_cfg(srv.url, tmp_path, rate_limit=4), plugins=_plugins(Hook())) as gw:
            for i in range(3):
                gw.tenant("acme").send(f"0806000000{i}", "hi")
    assert len(calls) == 3 and any(waited > 0 for _, waited in calls)
    assert all(seconds >= waited for seconds, waited in calls), calls


class _Admission:
    def __init__(self, name: str, log: list[str]) -> None:
        self.name, self.log = name, log

    def drop(self) -> None:
        self.log.append(f"drop {self.name}")


class _AsyncAdmission(_Admission):
    async def drop(self) -> None:  # type: ignore[override]
        self.log.append(f"drop {self.name}")


def _two_admissions() -> Plan[None]:
    yield Admit("one", ())  # its messages' keys were all bound: no call takes it
    yield Admit("one", ())


def test_a_place_no_call_took_is_given_back_before_the_next_admit() -> None:
    """A batch split in two requests: the first's messages all turned out to be replays, so no
    call takes its place. It is given back before the second asks for one (else the second
    waits for the first's place to expire with its lease, a minute), and the last at the end."""
    log: list[str] = []

    def call(step: Any, stop: Any) -> Any:
        name = f"a{sum(1 for e in log if e.startswith('admit'))}"
        log.append(f"admit {name}")
        return _Admission(name, log)

    SyncPlanDriver(None, None, call).drive(_two_admissions())  # type: ignore[arg-type]
    assert log == ["admit a0", "drop a0", "admit a1", "drop a1"]

    log.clear()

    async def acall(step: Any, stop: Any) -> Any:
        name = f"a{sum(1 for e in log if e.startswith('admit'))}"
        log.append(f"admit {name}")
        return _AsyncAdmission(name, log)

    asyncio.run(AsyncPlanDriver(None, None, acall).drive(_two_admissions()))  # type: ignore[arg-type]
    assert log == ["admit a0", "drop a0", "admit a1", "drop a1"]


def test_a_send_its_limits_refused_leaves_its_key_free_to_try_again(tmp_path: Any) -> None:
    """``max_limit_wait`` refuses a send (``LimitWaitExceeded``: nothing of it left) through a
    route of one provider: it is logged ``failed`` / ``not_sent`` but its idempotency key stays
    free, so the same call made again once the limits let it go is sent (not answered with the
    refusal), once (the emulator's record)."""
    import time

    from smsgate import LimitWaitExceeded

    with LiveServer(create_emulator()) as srv:
        ctl = EmulatorControl(srv.url)
        cfg = _cfg(srv.url, tmp_path, rate_limit=2)
        cfg["tenants"]["acme"]["max_limit_wait"] = 0.1
        with Gateway(cfg, plugins=_plugins()) as gw:
            t = gw.tenant("acme")
            t.send("08060000001", "hi", idempotency_key="k0")
            with pytest.raises(LimitWaitExceeded) as refused:
                t.send("08060000002", "hi", idempotency_key="k1")
            assert "2 messages per 1s" in str(refused.value)
            (tmp_path / "one").mkdir()
            cfg1 = _cfg(srv.url, tmp_path / "one", rate_limit=1)
            cfg1["tenants"]["acme"]["max_limit_wait"] = 0.1
            with Gateway(cfg1, plugins=_plugins()) as gw1:
                gw1.tenant("acme").send("08060000003", "hi")
                with pytest.raises(LimitWaitExceeded, match="1 message per 1s"):  # not "1 messages"
                    gw1.tenant("acme").send("08060000004", "hi")
            assert [m.raw_status for m in t.messages() if m.to == "+2348060000002"] == ["not_sent"]
            time.sleep(0.6)  # the limit lets the next one go (not an assertion on time)
            again = t.send("08060000002", "hi", idempotency_key="k1")
            assert again.status is Status.SUBMITTED
            assert t.send("08060000002", "hi", idempotency_key="k1").message_id == again.message_id  # bound now
        assert _received(ctl) == Counter({"+2348060000001": 1, "+2348060000002": 1, "+2348060000003": 1})
