"""Fault injection in the shipped emulators (smsgate.emulation), over loopback HTTP against Squad's
emulator: every fault kind as httpx sees it and as the emulator's own record and state show it;
probability with a seed, time windows, the spec syntax of ``smsgate sandbox --fault``; and a Gateway
send whose answer is lost to a reset after the vendor accepted the message."""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from smsgate import AsyncGateway, Gateway, Status, UnknownOutcome
from smsgate.config import Settings, TenantConfig
from smsgate.emulation import _KIND_FIELDS, FAULT_KINDS
from smsgate.errors import ValidationError
from smsgate.plugins import PluginManager
from smsgate.provider import ProviderSettings
from smsgate.store.memory import MemoryStore
from smsgate.testing import EmulatorControl, EmulatorState, FaultRule, LiveServer

squad_emulator = pytest.importorskip("smsgate_squad.emulator")
SEND = "/sms/send/instant"
AUTH = {"Authorization": f"Bearer {squad_emulator.SANDBOX_SECRET_KEY}"}


class Squad:
    """A Squad emulator on a loopback port, its control and its vendor state."""

    def __init__(self) -> None:
        self.app = squad_emulator.create_app(delivery_delay=60)
        self.server = LiveServer(self.app).start()
        self.url = self.server.url
        self.ctl = EmulatorControl(self.url)

    def accepted(self) -> list[str]:
        """The numbers the vendor accepted messages for (its own state, not the record)."""
        return [m.phonenumber for m in self.app.vendor.messages]

    def send(self, client: httpx.Client, number: str = "08031234567") -> httpx.Response:
        return client.post(self.url + SEND, headers=AUTH, json={
            "sender_id": "SMSGATE", "messages": [{"phone_number": number, "message": "hello"}]})


@pytest.fixture
def squad() -> Iterator[Squad]:
    s = Squad()
    yield s
    s.server.stop()


def pattern(ctl: EmulatorControl, path: str = "/x") -> list[bool]:
    return [r.fault is not None for r in ctl.requests(path)]


# ----------------------------------------------------------------------------- each kind
def test_status_before_and_after_processing(squad: Squad) -> None:
    squad.ctl.add(FaultRule.error(503, retry_after=2, path=SEND), FaultRule.error(500, process=True, path=SEND))
    with httpx.Client() as c:
        first, second, third = squad.send(c, "08031234561"), squad.send(c, "08031234562"), squad.send(c, "08031234563")
    assert (first.status_code, first.headers["retry-after"], first.json()["success"]) == (503, "2", False)
    assert (second.status_code, third.status_code) == (500, 200)
    assert squad.accepted() == ["08031234562", "08031234563"]  # the 500 came after the vendor acted
    assert [(r.fault, r.processed, r.status) for r in squad.ctl.requests(SEND)] == [
        ("status", False, 503), ("status", True, 500), (None, True, 200)]
    assert [r.json()["messages"][0]["phone_number"] for r in squad.ctl.processed(SEND)] == ["08031234562",
                                                                                           "08031234563"]


def test_reset_before_processing_is_a_transport_error_and_nothing_happened(squad: Squad) -> None:
    squad.ctl.add(FaultRule.reset(path=SEND))
    with httpx.Client() as c:
        with pytest.raises(httpx.ReadError, match="Connection reset by peer"):  # no status line at all
            squad.send(c)
        assert squad.send(c).status_code == 200  # the same client goes on: the next request is served
    (reset, ok) = squad.ctl.requests(SEND)
    assert (reset.fault, reset.processed, reset.status) == ("reset", False, None)
    assert (ok.fault, ok.processed, ok.status) == (None, True, 200)
    assert len(squad.accepted()) == 1


def test_reset_after_processing_the_vendor_acted_but_the_client_cannot_know(squad: Squad) -> None:
    squad.ctl.add(FaultRule.reset(process=True, path=SEND))
    with httpx.Client() as c:
        with pytest.raises(httpx.ReadError):
            squad.send(c, "08031234561")
    (rec,) = squad.ctl.requests(SEND)
    assert (rec.fault, rec.processed, rec.status) == ("reset", True, None)
    assert squad.accepted() == ["08031234561"]


def test_reset_as_seen_by_the_async_clients(squad: Squad) -> None:
    """httpx.AsyncClient and smsgate's AiohttpClient: both a ReadError (a "maybe sent" class)."""
    from smsgate.aio import AiohttpClient

    squad.ctl.add(FaultRule.reset(process=True, path=SEND, count=2))
    request = httpx.Request("POST", squad.url + SEND, headers=AUTH, json={
        "sender_id": "SMSGATE", "messages": [{"phone_number": "08031234567", "message": "hi"}]})

    async def go() -> list[type[Exception]]:
        seen: list[type[Exception]] = []
        async with httpx.AsyncClient() as hc, AiohttpClient() as ac:
            for client in (hc, ac):
                try:
                    await client.send(request)
                except httpx.TransportError as exc:
                    seen.append(type(exc))
        return seen

    assert asyncio.run(go()) == [httpx.ReadError, httpx.ReadError]
    assert [r.processed for r in squad.ctl.requests(SEND)] == [True, True] and len(squad.accepted()) == 2


def test_drip_makes_a_short_read_timeout_fire_mid_body(squad: Squad) -> None:
    squad.ctl.add(FaultRule.drip(0.5, chunk=8, path=SEND))
    with httpx.Client(timeout=httpx.Timeout(5.0, read=0.2)) as c:
        with c.stream("POST", squad.url + SEND, headers=AUTH, json={
                "sender_id": "SMSGATE", "messages": [{"phone_number": "08031234567", "message": "hi"}]}) as resp:
            assert resp.status_code == 200  # the head came at once
            got = b""
            with pytest.raises(httpx.ReadTimeout):
                for piece in resp.iter_raw():
                    got += piece
            assert 0 < len(got) < int(resp.headers["content-length"])  # mid-body
    (rec,) = squad.ctl.requests(SEND)
    assert (rec.fault, rec.processed, rec.status) == ("drip", True, 200)
    assert len(squad.accepted()) == 1


def test_drip_delivers_the_whole_answer_to_a_patient_client(squad: Squad) -> None:
    squad.ctl.add(FaultRule.drip(0.02, chunk=64, path=SEND))
    with httpx.Client() as c:
        dripped = squad.send(c, "08031234561")
        plain = squad.send(c, "08031234562")
    assert dripped.status_code == 200 and dripped.json()["success"] is True
    assert dripped.json().keys() == plain.json().keys() and "08031234561" in dripped.text


def test_hang_latency_and_malformed(squad: Squad) -> None:
    squad.ctl.add(FaultRule.hang(1.0, path=SEND), FaultRule.latency(0.1, path=SEND),
                  FaultRule.malformed(path=SEND), FaultRule.malformed(process=True, path=SEND))
    with httpx.Client(timeout=httpx.Timeout(5.0, read=0.3)) as c:
        with pytest.raises(httpx.ReadTimeout):
            squad.send(c, "08031234561")
        started = time.monotonic()
        assert squad.send(c, "08031234562").status_code == 200
        assert time.monotonic() - started >= 0.1
        bad = squad.send(c, "08031234563")
        assert (bad.status_code, bad.headers["content-type"]) == (200, "text/html")
        assert squad.send(c, "08031234564").text.startswith("<html>")
    hang = squad.ctl.requests(SEND)[0]
    assert (hang.fault, hang.processed) == ("hang", False)  # not yet: the vendor gets it after the delay
    deadline = time.monotonic() + 5
    while not squad.ctl.requests(SEND)[0].processed and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [(r.fault, r.processed, r.status) for r in squad.ctl.requests(SEND)] == [
        ("hang", True, 200), ("latency", True, 200), ("malformed", False, 200), ("malformed", True, 200)]
    assert sorted(squad.accepted()) == ["08031234561", "08031234562", "08031234564"]


def test_drop_callbacks_counts_and_windows() -> None:
    state = EmulatorState()
    state.add_fault(FaultRule.drop_callbacks(count=2))
    assert [state.callbacks_dropped() for _ in range(3)] == [True, True, False]
    state.add_fault(FaultRule.drop_callbacks(count=None, after=3600))
    assert not state.callbacks_dropped()  # not active yet
    state.add_fault(FaultRule.drop_callbacks(count=None, probability=0.5, seed=3))
    draws = random.Random(3)
    expected = [draws.random() < 0.5 for _ in range(50)]
    assert [state.callbacks_dropped() for _ in range(50)] == expected


# ----------------------------------------------------------------------------- chance and time
def test_probability_with_a_seed_is_the_seeds_draws_and_reproducible(squad: Squad) -> None:
    rule = FaultRule.error(503, probability=0.3, seed=42, count=None, path="/x")
    draws = random.Random(42)
    expected = [draws.random() < 0.3 for _ in range(200)]
    runs = []
    with httpx.Client() as c:
        for _ in range(2):
            squad.ctl.reset()
            squad.ctl.add(rule)
            answers = [c.get(squad.url + "/x").status_code for _ in range(200)]
            assert [a == 503 for a in answers] == expected
            assert pattern(squad.ctl) == expected
            runs.append(pattern(squad.ctl))
        assert runs[0] == runs[1]
        assert 40 <= sum(runs[0]) <= 80  # about 30% of 200
        squad.ctl.reset()
        squad.ctl.add(FaultRule.error(503, probability=0.3, seed=43, count=None, path="/x"))
        for _ in range(200):
            c.get(squad.url + "/x")
    assert pattern(squad.ctl) != runs[0]
    assert all(r.processed == (r.fault is None) for r in squad.ctl.requests("/x"))


def test_rules_draw_independently_and_the_first_that_fires_applies(squad: Squad) -> None:
    added = squad.ctl.add(FaultRule.error(503, probability=0.5, seed=1, count=None, path="/x"),
                          FaultRule.error(502, probability=0.5, count=None, path="/x"))
    assert added[1].seed is not None  # picked by the emulator, so the run can be repeated
    a, b = random.Random(1), random.Random(added[1].seed)
    expected = []
    for _ in range(100):
        fa, fb = a.random() < 0.5, b.random() < 0.5
        expected.append(503 if fa else 502 if fb else 404)
    with httpx.Client() as c:
        assert [c.get(squad.url + "/x").status_code for _ in range(100)] == expected
    assert [rule.seed for rule in squad.ctl.faults()] == [1, added[1].seed]


def test_a_window_holds_exactly_the_requests_inside_it(squad: Squad) -> None:
    """'Down for 0.4 s starting 0.3 s from now', judged from the emulator's own timestamps."""
    (rule,) = squad.ctl.add(FaultRule.error(503, after=0.3, duration=0.4, count=None, path="/x"))
    start, end = rule.window()
    assert rule.added_at is not None and (start, end) == (rule.added_at + 0.3, rule.added_at + 0.7)
    with httpx.Client() as c:
        while time.time() < end + 0.2:
            c.get(squad.url + "/x")
            time.sleep(0.01)
    recs = squad.ctl.requests("/x")
    assert [r.fault == "status" for r in recs] == [start <= r.at < end for r in recs]
    assert {r.at < start for r in recs} == {r.at >= end for r in recs} == {True, False}  # before, in, after
    assert squad.ctl.faults() == []  # the window closed: the rule is gone


def test_a_window_with_a_count_and_a_probability(squad: Squad) -> None:
    x_rule, y_rule = squad.ctl.add(
        FaultRule.reset(after=0.2, count=2, path="/x"),
        FaultRule.error(503, after=0.2, duration=60, probability=0.5, seed=9, count=None, path="/y"))
    with httpx.Client() as c:
        while time.time() < y_rule.window()[0] + 0.3:
            for path in ("/x", "/y"):
                try:
                    c.get(squad.url + path)
                except httpx.ReadError:
                    pass
            time.sleep(0.01)
    x_start, y_start = x_rule.window()[0], y_rule.window()[0]
    xs = squad.ctl.requests("/x")
    assert [r.fault for r in xs if r.at >= x_start][:3] == ["reset", "reset", None]
    assert {r.fault for r in xs if r.at < x_start} == {None}
    draws = random.Random(9)
    ys = squad.ctl.requests("/y")
    assert {r.fault for r in ys if r.at < y_start} == {None}
    assert [r.fault == "status" for r in ys if r.at >= y_start] == [draws.random() < 0.5 for r in ys
                                                                     if r.at >= y_start]


# ----------------------------------------------------------------------------- control API
def test_control_lists_clears_and_refuses_bad_rules(squad: Squad) -> None:
    squad.ctl.fault(kind="status", status=503, count=3, path="/x")
    with httpx.Client() as c:
        c.get(squad.url + "/x")
    (left,) = squad.ctl.faults()
    assert (left.kind, left.count, left.status) == ("status", 2, 503)
    squad.ctl.clear_faults()
    assert squad.ctl.faults() == [] and len(squad.ctl.requests()) == 1  # the record stays
    with pytest.raises(ValidationError, match="probability"):
        squad.ctl.fault(kind="status", probability=2)
    with pytest.raises(ValidationError, match="unknown fault kind 'boom'"):
        FaultRule(kind="boom")
    raw = httpx.post(squad.url + "/_emulator/faults", json=[{"kind": "reset"}, {"kind": "status", "sttaus": 1}])
    assert raw.status_code == 400 and "unknown field(s) 'sttaus'" in raw.json()["message"]
    assert squad.ctl.faults() == []  # all or nothing


# ----------------------------------------------------------------------------- the spec syntax
@pytest.mark.parametrize(("spec", "rule"), [
    ("status=503,probability=0.2", FaultRule(status=503, probability=0.2, count=None)),
    ("reset,after=5,duration=10,path=/api", FaultRule(kind="reset", after=5, duration=10, path="/api", count=None)),
    ("reset,process,count=1", FaultRule(kind="reset", process=True)),
    (" Drip , delay=2 , chunk=8 ", FaultRule(kind="drip", delay=2, chunk=8, count=None)),
    ("status=429,retry_after=1.5,method=post,probability=20%,seed=7",
     FaultRule(status=429, retry_after=1.5, method="POST", probability=0.2, seed=7, count=None)),
    ("malformed,process=no", FaultRule(kind="malformed", count=None)),
    ("hang", FaultRule(kind="hang", count=None)),
])
def test_spec_examples(spec: str, rule: FaultRule) -> None:
    assert FaultRule.parse(spec) == rule


@pytest.mark.parametrize(("spec", "says"), [
    ("", "empty"),
    ("reset,,count=1", "empty item"),
    ("boom", "'boom' is neither a fault kind"),
    ("reset,duratoin=10", "unknown key 'duratoin'"),
    ("status=abc", "field 'status': 'abc' is not a whole number"),
    ("status=503,status=500", "field 'status': given twice"),
    ("reset,status=503", "field 'status': applies to kind status only, not reset"),
    ("latency,delay=-1", "field 'delay': must be a number of seconds 0 or more"),
    ("status=503,probability=1.5", "field 'probability': must be a number from 0 to 1"),
    ("count=2", "no fault kind"),
    ("reset,path=api", "field 'path': must be a path prefix starting with '/'"),
    ("drip,delay=nan", "field 'delay': 'nan' is not a finite number"),
])
def test_spec_errors_name_the_bad_part(spec: str, says: str) -> None:
    with pytest.raises(ValidationError) as err:
        FaultRule.parse(spec)
    assert says in str(err.value) and str(err.value).startswith(f"fault {spec!r}")


SECONDS = st.floats(min_value=0, max_value=1e6, allow_nan=False)


@st.composite
def rules(draw: st.DrawFn) -> FaultRule:
    kind = draw(st.sampled_from(FAULT_KINDS))
    uses = _KIND_FIELDS[kind]
    kw: dict[str, Any] = {"kind": kind}
    if "status" in uses:
        kw["status"] = draw(st.integers(100, 599))
        kw["retry_after"] = draw(st.none() | SECONDS)
    if "delay" in uses:
        kw["delay"] = draw(SECONDS)
    if "chunk" in uses:
        kw["chunk"] = draw(st.integers(1, 10**6))
    if "process" in uses:
        kw["process"] = draw(st.booleans())
    kw["path"] = draw(st.none() | st.from_regex(r"/[A-Za-z0-9_\-./~%=:;]*", fullmatch=True))
    kw["method"] = draw(st.none() | st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"]))
    kw["count"] = draw(st.none() | st.integers(1, 10**9))
    kw["probability"] = draw(st.none() | st.floats(min_value=0, max_value=1))
    kw["seed"] = draw(st.none() | st.integers(-(2**63), 2**63))
    kw["after"] = draw(SECONDS)
    kw["duration"] = draw(st.none() | st.floats(min_value=0, max_value=1e6, exclude_min=True))
    return FaultRule(**kw)


@given(rules())
def test_spec_round_trips(rule: FaultRule) -> None:
    assert FaultRule.parse(rule.spec()) == rule


KEYS = st.sampled_from(["status", "retry_after", "delay", "chunk", "process", "path", "method", "count",
                        "probability", "seed", "after", "duration", "kind", "bogus"])
VALUES = st.sampled_from(["", "0", "1", "-1", "0.5", "20%", "1e999", "nan", "yes", "/x", "abc", "POST", "reset"])
ITEMS = st.one_of(st.sampled_from([*FAULT_KINDS, "process", "", " ", "=", "x"]),
                  st.builds(lambda k, v: f"{k}={v}", KEYS, VALUES), st.text(max_size=8))


@given(st.one_of(st.text(), st.lists(ITEMS, max_size=6).map(",".join)))
def test_any_spec_is_a_rule_or_a_validation_error(spec: str) -> None:
    try:
        rule = FaultRule.parse(spec)
    except ValidationError as exc:
        assert str(exc).startswith(f"fault {spec!r}")
    else:
        assert FaultRule.parse(rule.spec()) == rule


# ----------------------------------------------------------------------------- smsgate sandbox --fault
runner = CliRunner()


def test_sandbox_bad_fault_is_one_line_and_exit_2() -> None:
    from smsgate.cli import app

    out = runner.invoke(app, ["sandbox", "--fault", "status=503", "--fault", "reset,duratoin=10"])
    assert out.exit_code == 2, out.output
    assert out.output.strip().splitlines() == [
        "error: invalid --fault: fault 'reset,duratoin=10': unknown key 'duratoin' (keys: kind, status, "
        "retry_after, delay, chunk, process, path, method, count, probability, seed, after, duration)"]
    assert "--fault" in runner.invoke(app, ["sandbox", "--help"], env={"COLUMNS": "200"}).output


def test_sandbox_serves_emulators_with_the_faults(monkeypatch: pytest.MonkeyPatch) -> None:
    """The rules reach the served emulators: a request to the sandbox's Squad gets the fault."""
    import socket

    from smsgate.cli import app

    seen: list[Any] = []
    real_sleep = time.sleep
    squad_url = ""

    def interrupted(seconds: float) -> None:
        if seconds < 60:
            real_sleep(seconds)
            return
        with httpx.Client() as c:  # the sandbox is up: try it, then Ctrl-C
            for _ in range(2):
                seen.append(c.post(squad_url + SEND, headers=AUTH, json={}).status_code)
            try:
                c.get(squad_url + "/nowhere/1")
            except httpx.ReadError as exc:
                seen.append(type(exc))
        raise KeyboardInterrupt

    monkeypatch.setattr(time, "sleep", interrupted)
    for _ in range(3):  # consecutive ports from a free one: another process may take one meanwhile
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        squad_url = f"http://127.0.0.1:{port}"  # squad's own port is the first: --port moves it
        out = runner.invoke(app, ["sandbox", "--port", str(port), "--fault", "status=503,path=/sms/send,count=1",
                                  "--fault", "reset,path=/nowhere", "--fault", "latency,probability=50%"])
        if "the port is in use" not in out.output:
            break
    assert out.exit_code == 130, out.output  # stopped by Ctrl-C
    assert seen == [503, 400, httpx.ReadError]  # then the vendor's own answer to an empty send
    assert "--fault 'status=503,path=/sms/send,count=1'" in out.output
    assert "--fault 'reset,path=/nowhere'" in out.output
    assert re.search(r"--fault 'latency,probability=0.5,seed=\d+'", out.output)  # the seed, to repeat the run


# ----------------------------------------------------------------------------- through the gateway
def two_squads_settings(one: Squad, two: Squad, **one_extra: Any) -> Settings:
    prov = {"credentials": dict(squad_emulator.SANDBOX_CREDENTIALS), "sender": "SMSGATE"}
    return Settings(store="memory://", tenants={"t": TenantConfig(default_region="NG", providers={
        "one": ProviderSettings(plugin="squad", base_url=one.url, **prov, **one_extra),
        "two": ProviderSettings(plugin="squad", base_url=two.url, **prov)})})


def squad_plugins() -> PluginManager:
    from smsgate_squad import SquadProvider

    pm = PluginManager(load_entry_points=False)
    pm.add_provider(SquadProvider)
    return pm


@pytest.fixture
def two_squads() -> Iterator[tuple[Squad, Squad]]:
    one, two = Squad(), Squad()
    yield one, two
    one.server.stop()
    two.server.stop()


def test_a_send_whose_answer_is_lost_after_the_vendor_acted_is_unknown_and_not_resent(
        two_squads: tuple[Squad, Squad]) -> None:
    """A reset after the vendor accepted the message: UnknownOutcome, logged ``unknown``; no retry
    on the same provider, no failover to the other one (from both emulators' records)."""
    one, two = two_squads
    one.ctl.add(FaultRule.reset(process=True, path=SEND))
    with Gateway(two_squads_settings(one, two), store=MemoryStore(), plugins=squad_plugins()) as gw:
        t = gw.tenant("t")
        with pytest.raises(UnknownOutcome, match="ReadError after the request was sent"):
            t.send("08031234567", "maybe")
        (rec,) = t.messages()
        assert (rec.status, rec.provider) == (Status.UNKNOWN, "one")
        assert [(r.fault, r.processed) for r in one.ctl.requests(SEND)] == [("reset", True)]
        assert one.accepted() == ["08031234567"] and two.ctl.requests() == []
        # a reset before the vendor saw it looks the same to the client: also unknown, never resent
        one.ctl.add(FaultRule.reset(path=SEND))
        with pytest.raises(UnknownOutcome):
            t.send("08031234568", "maybe not")
        assert [m.status for m in t.messages()] == [Status.UNKNOWN, Status.UNKNOWN]
        assert [(r.fault, r.processed) for r in one.ctl.requests(SEND)][1:] == [("reset", False)]
        assert one.accepted() == ["08031234567"] and two.ctl.requests() == []
        # a 503 is no proof either (Squad does not document it as "not processed"): unknown, never resent
        one.ctl.add(FaultRule.error(503, process=True, path=SEND))
        with pytest.raises(UnknownOutcome):
            t.send("08031234569", "maybe again")
        assert [(r.fault, r.processed) for r in one.ctl.requests(SEND)][2:] == [("status", True)]
        assert one.accepted() == ["08031234567", "08031234569"] and two.ctl.requests() == []
    # whereas a 503 the contract documents as "not processed" is a certain refusal: the other provider carries it
    one.ctl.add(FaultRule.error(503, path=SEND, count=None))
    declared = two_squads_settings(one, two, not_processed_statuses=[503])
    with Gateway(declared, store=MemoryStore(), plugins=squad_plugins()) as gw:
        assert gw.tenant("t").send("08031234570", "certainly not sent by one").provider == "two"
    assert two.accepted() == ["08031234570"] and one.accepted() == ["08031234567", "08031234569"]


def test_the_async_gateway_treats_a_reset_after_processing_the_same(two_squads: tuple[Squad, Squad]) -> None:
    one, two = two_squads
    one.ctl.add(FaultRule.reset(process=True, path=SEND))

    async def go() -> Status:
        async with AsyncGateway(two_squads_settings(one, two), store=MemoryStore(), plugins=squad_plugins()) as gw:
            t = gw.tenant("t")
            with pytest.raises(UnknownOutcome):
                await t.send("08031234567", "maybe")
            (rec,) = await t.messages()
            return rec.status

    assert asyncio.run(go()) == Status.UNKNOWN
    assert [(r.fault, r.processed) for r in one.ctl.requests(SEND)] == [("reset", True)]
    assert one.accepted() == ["08031234567"] and two.ctl.requests() == []


def test_a_control_call_waits_for_a_slow_emulator() -> None:
    """A loaded machine: the emulator (a thread of the test's process, serving the sender too)
    took more than 5 s to return a 20,000-message record, and ``ctl.requests()`` failed with
    ``httpx.ReadTimeout``, failing a test whose sends were right. A control call waits
    ``EmulatorControl.timeout`` (60 s by default); a shorter one is the caller's to give."""

    async def slow(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await asyncio.sleep(5.5)
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": b"[]"})

    with LiveServer(slow) as server:
        assert EmulatorControl(server.url).requests() == []
        with pytest.raises(httpx.ReadTimeout):
            EmulatorControl(server.url, timeout=0.5).requests()
