"""Attacks, round 10: odd input reaching the store (lone surrogates); campaign runners SIGKILLed
or stopped while a request of theirs leaves long after its write-ahead (a failover to a backup
with limits, a 429's retry after its Retry-After).

A lone surrogate (``"\\ud800"``) is a valid Python ``str`` and a valid JSON escape (a vendor
cutting a text mid-emoji in JavaScript sends one), but no store can encode it in UTF-8: where
the library did not refuse it up front, the store raised a bare ``UnicodeEncodeError``, after a
``send_many`` had sent its first chunks, or on every retry of a vendor's callback (a 500, "retry
later", for ever).

A resume's look-up called a message "certainly never received" once it was *logged* more than
twice the longest timeout ago (``received.ask``); a request that leaves long after its
write-ahead was still at the vendor then, and was sent twice. Fixed: the settle time counts from
the latest time a try may have left (``received.last_try``: a taken-over ``queued`` message
from the takeover, an ``unknown`` one from when it was marked so). A runner *paused* (SIGSTOP)
past its lease whose retry left after the takeover: fixed by the runner's fence
(``RunnerBeat.fence``). An inbound text cut mid-emoji (a lone surrogate) lost its STOP with
its callback (a 400): now kept with U+FFFD.

Every claim about what reached the vendor reads the echo emulator's own record of the requests
it received (``EmulatorControl.requests``), never smsgate's log."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from reference_provider import API_KEY, EchoPlugin, create_emulator, sign
from services import pg_url  # noqa: F401  (a fixture)
from smsgate import Gateway, MessageSpec, Status
from smsgate.errors import ValidationError
from smsgate.plugins import PluginManager
from smsgate.testing import EmulatorControl, LiveServer
from smsgate.webhooks import webhook_app

HERE = Path(__file__).parent


def plugins() -> PluginManager:
    pm = PluginManager(load_entry_points=False)
    pm.register(EchoPlugin())
    return pm


def echo_provider(url: str, plugin: str = "echo", **extra: Any) -> dict[str, Any]:
    return {"plugin": plugin, "base_url": url, "credentials": {"api_key": API_KEY}, "sender": "ACME",
            "max_retries": 0, **extra}


@pytest.fixture
def echo() -> Iterator[tuple[str, EmulatorControl]]:
    with LiveServer(create_emulator()) as server:
        yield server.url, EmulatorControl(server.url)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'attack10.db'}"
    return str(request.getfixturevalue("pg_url"))


def echo_received(ctl: EmulatorControl) -> Counter[str]:
    """Every number the echo emulator processed a message for, with how many times."""
    out: Counter[str] = Counter()
    for r in ctl.requests(method="POST"):
        if not r.processed:
            continue
        body = r.json()
        for m in body["messages"] if r.path.endswith("/bulk") else [body]:
            out[m["to"]] += 1
    return out


# ---------------------------------------------------------------- lone surrogates reaching the store
def test_a_lone_surrogate_in_a_stored_field_is_refused_before_anything_is_sent(
    store_url: str, echo: tuple[str, EmulatorControl]
) -> None:
    """``send(reference="r\\ud800")``, an idempotency key, an opt-out reason, a list's
    description, a campaign's name or id: each was a bare ``UnicodeEncodeError`` out of the
    store (sqlite3's or psycopg's), not the ``ValidationError`` naming the field that a NUL
    gets. Nothing reached the vendor then either: the test pins the typed error."""
    url, ctl = echo
    cfg = {"store": store_url, "tenants": {"a": {"default_region": "NG", "providers": {"one": echo_provider(url)}}}}
    with Gateway(cfg, plugins=plugins()) as gw:
        t = gw.tenant("a")
        calls = {
            "reference": lambda: t.send("08030000001", "hi", reference="r\ud800"),
            "idempotency_key": lambda: t.send("08030000001", "hi", idempotency_key="order-\udc00"),
            "reason": lambda: t.optouts.add("08030000001", reason="asked \ud83d"),
            "description": lambda: t.contact_lists.create("l1", ["08030000001"], description="d\ud800"),
            "name": lambda: t.campaigns.create("c\ud800", audience=["08030000001"], text="hi"),
            "campaign_id": lambda: t.campaigns.create("c", audience=["08030000001"], text="hi",
                                                      campaign_id="id\ud800"),
        }
        for field, call in calls.items():
            with pytest.raises(ValidationError) as info:
                call()
            assert info.value.field == field, (field, info.value)
            assert "surrogate" in str(info.value)
        assert not t.optouts.check("08030000001")
        assert t.contact_lists.list() == []
        assert t.campaigns.list() == []
    assert echo_received(ctl) == Counter()


def test_send_many_with_one_lone_surrogate_rejects_that_message_alone(
    store_url: str, echo: tuple[str, EmulatorControl]
) -> None:
    """``send_many`` of 2,500 messages, the 2,401st with ``reference="bad\\udc00"`` (an id read
    with ``surrogateescape``): the first 2,000 (the chunks before it) reached the vendor, then
    the call raised ``UnicodeEncodeError`` from the chunk's write-ahead: no answer for the
    2,000 sent (a caller retrying the call texts them all twice) and the 499 valid messages
    of that chunk never sent. Now that message alone is ``rejected`` (as a NUL makes it) and
    every other one reaches the vendor once."""
    url, ctl = echo
    cfg = {"store": store_url, "tenants": {"a": {"default_region": "NG", "providers": {"one": echo_provider(url)}}}}
    bad = 2400
    specs = [MessageSpec(to=f"0806{i:07d}", text="hi", reference="bad\udc00" if i == bad else f"r{i}")
             for i in range(2500)]
    with Gateway(cfg, plugins=plugins()) as gw:
        results = gw.tenant("a").send_many(specs)
    assert len(results) == 2500
    assert results[bad].status is Status.REJECTED and results[bad].error_code == "ValidationError"
    assert all(r.status is Status.SUBMITTED for i, r in enumerate(results) if i != bad)
    got = echo_received(ctl)
    assert got == Counter({f"+234806{i:07d}": 1 for i in range(2500) if i != bad})


def test_a_report_with_a_lone_surrogate_is_a_400_not_a_500_retried_for_ever(
    store_url: str, echo: tuple[str, EmulatorControl]
) -> None:
    """A signed callback whose report id holds a lone surrogate (the JSON escape ``\\ud800``)
    was a 500 "retry later" on SQLite and PostgreSQL (the store's ``UnicodeEncodeError``
    applying it): the vendor retries it for ever and every other report of that callback is
    held with it. Now it is the 400 a NUL gets (docs/webhooks.md: "a body the provider cannot
    read"), and the message it names is untouched; a well-formed callback after it applies."""
    url, _ = echo
    cfg = {"store": store_url, "tenants": {"acme": {"default_region": "NG", "providers": {"one": echo_provider(url)}}}}
    with Gateway(cfg, plugins=plugins()) as gw, LiveServer(webhook_app(gw)) as hooks:
        sent = gw.tenant("acme").send("08031234567", "x")
        pid = sent.provider_message_id
        assert pid

        def post(body: bytes) -> httpx.Response:
            return httpx.post(f"{hooks.url}/acme/one", content=body, headers={"X-Echo-Signature": sign(body)},
                              timeout=30)

        for raw in (b'[{"id": "%s\\ud800", "status": "delivered"}]' % pid.encode(),
                    b'[{"id": "%s", "status": "delivered"}, {"id": "x\\uDC00y", "status": "failed"}]' % pid.encode()):
            r = post(raw)
            assert r.status_code == 400, (raw, r.status_code, r.text)
            assert "surrogate" in r.json()["error"]
            assert gw.tenant("acme").get(sent.message_id).status is Status.SUBMITTED
        # a valid surrogate pair (an emoji) is no lone surrogate: walked, found whole, applied
        r = post(b'[{"id": "\\ud83d\\ude00", "status": "failed"}, {"id": "%s", "status": "delivered"}]'
                 % pid.encode())
        assert r.status_code == 200, r.text
        assert json.loads(r.text)["matched"] == 1
        assert gw.tenant("acme").get(sent.message_id).status is Status.DELIVERED



def test_an_inbound_stop_cut_mid_emoji_by_the_vendor_is_still_acted_on(
        echo: tuple[str, EmulatorControl], tmp_path: Path) -> None:
    """A vendor cutting an inbound text in UTF-16 units (JavaScript's ``substring``) sends
    ``"STOP \ud83d"``: the signed callback was a 400 and the STOP was lost with it (and any
    report in the same callback). The opt-out is recorded; the text (and raw) keep U+FFFD for
    the lone surrogate, and for a NUL."""
    url, _ = echo
    cfg = {"store": f"sqlite:///{tmp_path / 'inbound.db'}",
           "tenants": {"acme": {"default_region": "NG", "providers": {"one": echo_provider(url)}}}}
    with Gateway(cfg, plugins=plugins()) as gw, LiveServer(webhook_app(gw)) as hooks:
        body = (b'[{"type": "inbound", "id": "v1", "from": "+2348031111111", "to": "+2348030000000", '
                b'"text": "STOP \\ud83d"}, {"type": "inbound", "id": "v2", "from": "+2348032222222", '
                b'"text": "h\\u0000i \\ud83d\\ude00"}]')
        r = httpx.post(f"{hooks.url}/acme/one", content=body, headers={"X-Echo-Signature": sign(body)}, timeout=30)
        assert r.status_code == 200, r.text
        assert gw.tenant("acme").optouts.check("+2348031111111")
        (msg,) = gw.tenant("acme").inbound(from_number="+2348031111111")
        assert (msg.text, msg.action, msg.raw["text"]) == ("STOP \ufffd", "optout", "STOP \ufffd")
        (other,) = gw.tenant("acme").inbound(from_number="+2348032222222")
        assert other.text == "h\ufffdi \U0001f600"  # a NUL too; an emoji kept whole


#: any character, and often what no store keeps: NUL, lone surrogates, halves of a pair
ODD_TEXT = st.text(alphabet=st.characters() | st.sampled_from(["\x00", "\ud83d", "\ude00", "\udbff", "\udc00"]),
                   max_size=40)


@given(ODD_TEXT,
       st.dictionaries(ODD_TEXT, ODD_TEXT | st.lists(ODD_TEXT, max_size=3), max_size=3))
def test_an_inbound_message_keeps_what_a_store_can_keep(text: str, raw: dict[str, Any]) -> None:
    """Whatever text (lone surrogates, NUL, emoji) and raw a parser gives an InboundMessage, what
    it keeps encodes in UTF-8 without NUL; a text that had neither is kept as it was, and each
    lone surrogate or NUL is one U+FFFD."""
    from smsgate.models import InboundMessage

    msg = InboundMessage(vendor_id="v", from_number="+2348031111111", text=text, raw={"text": text, **raw})
    for value in (msg.text, *map(str, msg.raw.items())):
        value.encode("utf-8")
        assert "\x00" not in value
    assert msg.text == expected(text) and msg.raw["text"] == expected(text)


def expected(text: str) -> str:
    """An independent reading: a NUL or a lone surrogate is U+FFFD, a high surrogate followed by
    a low one is their character, anything else stays."""
    out, i = [], 0
    while i < len(text):
        c = text[i]
        if "\ud800" <= c <= "\udbff" and i + 1 < len(text) and "\udc00" <= text[i + 1] <= "\udfff":
            out.append(chr(0x10000 + ((ord(c) - 0xD800) << 10) + ord(text[i + 1]) - 0xDC00))
            i += 2
            continue
        out.append("\ufffd" if c == "\x00" or "\ud800" <= c <= "\udfff" else c)
        i += 1
    return "".join(out)

# ---------------------------------------------------------------- a failover chain, its runner SIGKILLed
@pytest.fixture
def echo2() -> Iterator[tuple[str, EmulatorControl]]:
    with LiveServer(create_emulator()) as server:
        yield server.url, EmulatorControl(server.url)


def child_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))}


def start_runner(cfg: dict[str, Any], tmp_path: Path, audience: list[str], *options: str,
                 lease: float = 1.0, concurrency: int = 1, worker: str = "campaign_worker.py",
                 pm: Callable[[], PluginManager] = plugins) -> tuple[Any, subprocess.Popen[bytes]]:
    """A campaign to ``audience`` (one recipient a request, a runner lease of ``lease`` s) and a
    runner process (tests/``worker``, given ``options``) sending it with configuration ``cfg``
    (the campaign made with the plugins ``pm()`` gives)."""
    config = tmp_path / "config.json"
    config.write_text(json.dumps(cfg))
    with Gateway(cfg, plugins=pm()) as gw:
        camp = gw.tenant("acme").campaigns.create("c", audience=audience, text="hi", batch_size=1,
                                                  concurrency=concurrency, lease_seconds=lease)
    proc = subprocess.Popen([sys.executable, str(HERE / worker), str(config), camp.campaign_id,
                             *options], env=child_env(), stderr=subprocess.PIPE)
    return camp, proc


def wait_for(check: Callable[[], Any], what: str, proc: subprocess.Popen[bytes], timeout: float = 40) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if proc.poll() is not None:
            said = proc.stderr.read().decode() if proc.stderr else ""
            pytest.fail(f"the runner ended with {proc.returncode} before {what}: {said[-2000:]}", pytrace=False)
        if time.monotonic() > deadline:
            pytest.fail(f"never got to {what}", pytrace=False)
        time.sleep(0.01)


def test_a_runner_killed_with_its_failed_over_request_at_the_vendor_is_not_texted_again(
        echo: tuple[str, EmulatorControl], echo2: tuple[str, EmulatorControl], tmp_path: Path) -> None:
    """Route ``one, two``: ``one`` answers 503 "not processed" (every message fails over); ``two``
    takes one request each 14 s and acts on a request 5.8 s after it came (its answer within
    the 6 s timeout). A campaign runner process (``lease_seconds = 1``) sends two recipients: the
    second is logged ahead for ``one``, fails over, and waits ~14 s for ``two``'s limit (the
    "waits after the log" of docs/routing.md). The runner is SIGKILLed while that request is at
    ``two``, arrived and not yet acted on. The resume, once the runner's lease ended, asks both
    providers: neither has it *yet*, and it was logged more than twice the longest timeout
    (12 s) ago, so the run takes it for "certainly never received" and sends it again: ``two``
    acts on both requests, one recipient texted twice (``two``'s own record). docs/campaigns.md:
    "not found moments after it left proves nothing"; here it left 14 s after it was logged.

    Limits are per process (``traffic = "local"``) only to keep the test short: with limits in
    the store the resend waits out the dead request's in-flight lease (2 x timeout + 60 s) and
    is then sent all the same (the recipient is ``pending`` again): seen twice in 110 s."""
    (url1, ctl1), (url2, ctl2) = echo, echo2
    ctl1.fault(kind="status", status=503, count=None, method="POST")
    ctl2.fault(kind="latency", delay=5.8, count=None, method="POST")
    cfg = {"store": f"sqlite:///{tmp_path / 'failover.db'}", "traffic": "local", "tenants": {"acme": {
        "default_region": "NG",
        "providers": {"one": echo_provider(url1, timeout=6.0, not_processed_statuses=[503]),
                      "two": echo_provider(url2, timeout=6.0, limits=[{"rate": 1, "per": 14.0}])},
        "routes": [{"providers": ["one", "two"]}]}}}
    camp, proc = start_runner(cfg, tmp_path, ["08030000001", "08030000002"])
    try:
        wait_for(lambda: len(ctl2.requests(method="POST")) >= 2, "the second request at two", proc)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
    if ctl2.requests(method="POST")[1].processed:
        pytest.fail("the kill came after the vendor acted: the test's own set-up", pytrace=False)
    time.sleep(1.2)  # the dead runner's lease (1 s) ends
    with Gateway(cfg, plugins=plugins()) as gw:
        gw.tenant("acme").campaigns.get(camp.campaign_id).run()
    time.sleep(6.5)  # every request still at a vendor is acted on
    assert echo_received(ctl1) == Counter()
    assert echo_received(ctl2) == Counter({"+2348030000001": 1, "+2348030000002": 1})


def test_a_runner_killed_with_its_retry_after_a_429_at_the_vendor_is_not_texted_again(
        echo: tuple[str, EmulatorControl], tmp_path: Path) -> None:
    """One provider, no limits, ``max_retries = 1``. The vendor answers the campaign's one
    request 429 ``Retry-After: 13`` (not processed); the transport retries 13 s later, within the
    same call, after the same write-ahead. The runner is SIGKILLed while the retry is at the
    vendor (which acts on it 5.8 s after it came, within the 6 s timeout). The resume asks the
    vendor: not there yet, and logged more than 12 s ago: "never received", sent again. Two SMS
    to one recipient in the vendor's record."""
    url, ctl = echo
    ctl.fault(kind="status", status=429, retry_after=13, count=1, method="POST")
    ctl.fault(kind="latency", delay=5.8, count=None, method="POST")
    cfg = {"store": f"sqlite:///{tmp_path / 'retry.db'}", "tenants": {"acme": {
        "default_region": "NG", "providers": {"one": echo_provider(url, timeout=6.0, max_retries=1)}}}}
    camp, proc = start_runner(cfg, tmp_path, ["08030000001"])
    try:
        wait_for(lambda: len(ctl.requests(method="POST")) >= 2, "the retry at the vendor", proc)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
    first, retry = ctl.requests(method="POST")[:2]
    if first.status != 429 or retry.processed or retry.at - first.at < 12.5:
        pytest.fail(f"the test's own set-up: {first.status}, {retry.processed}, {retry.at - first.at:.1f} s",
                    pytrace=False)
    time.sleep(1.2)  # the dead runner's lease (1 s) ends
    with Gateway(cfg, plugins=plugins()) as gw:
        gw.tenant("acme").campaigns.get(camp.campaign_id).run()
    time.sleep(6.5)  # every request still at the vendor is acted on
    assert echo_received(ctl) == Counter({"+2348030000001": 1})


@pytest.mark.parametrize("driver", ["sync", "async"])
def test_a_runner_paused_past_its_lease_in_a_retry_wait_sends_nothing_after_the_takeover(
        echo: tuple[str, EmulatorControl], tmp_path: Path, driver: str) -> None:
    """docs/campaigns.md: "a runner that lost its claim, e.g. after a very long pause, sends
    nothing". The runner's request is answered 429 ``Retry-After: 5`` (not processed); while the
    transport waits to retry, the runner's process is stopped (SIGSTOP: a VM paused, a laptop
    lid) past its lease. Another run takes its claim over, finds the message nowhere, waits out
    the settle time, and sends it. Then the stopped runner goes on (SIGCONT): its retry must not
    leave (the runner's fence: its lease row went with the takeover), and the runner stops,
    saying why. One SMS in the vendor's record; with the sync and the async driver."""
    url, ctl = echo
    ctl.fault(kind="status", status=429, retry_after=5, count=1, method="POST")
    cfg = {"store": f"sqlite:///{tmp_path / 'pause.db'}", "tenants": {"acme": {
        "default_region": "NG", "providers": {"one": echo_provider(url, timeout=1.0, max_retries=1)}}}}
    camp, proc = start_runner(cfg, tmp_path, ["08030000001"], *(["--async"] if driver == "async" else []))
    try:
        wait_for(lambda: len(ctl.requests(method="POST")) >= 1, "the first request", proc)
        os.kill(proc.pid, signal.SIGSTOP)
        time.sleep(1.5)  # its lease (1 s) ends
        with Gateway(cfg, plugins=plugins()) as gw:
            gw.tenant("acme").campaigns.get(camp.campaign_id).run()
        if echo_received(ctl) != Counter({"+2348030000001": 1}):
            pytest.fail(f"the takeover did not send it: {echo_received(ctl)}", pytrace=False)
        os.kill(proc.pid, signal.SIGCONT)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            pass
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGCONT)
            proc.kill()
        proc.wait(10)
    assert echo_received(ctl) == Counter({"+2348030000001": 1})
    said = proc.stderr.read().decode() if proc.stderr else ""
    assert proc.returncode == 0 and "lost its lease" in said, (proc.returncode, said[-2000:])


def test_a_runner_killed_while_its_failed_over_request_waits_for_the_backups_limit_sends_it_once(
        echo: tuple[str, EmulatorControl], echo2: tuple[str, EmulatorControl], tmp_path: Path) -> None:
    """docs/routing.md's first case of a request that "waits after the log": route ``one, two``,
    ``one`` answering 503 (not processed), ``two`` one request each 8 s, limits in the store. The
    runner is SIGKILLed while the second recipient's request waits for ``two``'s limit (logged
    ahead for ``one``, never at ``two``). The resume leaves it ``unknown`` at first (not found,
    logged too recently to say), asks again once the settle time passed, and sends it: each
    recipient once at ``two``, nothing processed at ``one`` (the vendors' records). What held."""
    (url1, ctl1), (url2, ctl2) = echo, echo2
    ctl1.fault(kind="status", status=503, count=None, method="POST")
    cfg = {"store": f"sqlite:///{tmp_path / 'wait.db'}", "tenants": {"acme": {
        "default_region": "NG",
        "providers": {"one": echo_provider(url1, timeout=3.0, not_processed_statuses=[503]),
                      "two": echo_provider(url2, timeout=3.0, limits=[{"rate": 1, "per": 8.0}])},
        "routes": [{"providers": ["one", "two"]}]}}}
    camp, proc = start_runner(cfg, tmp_path, ["08030000001", "08030000002"])
    try:
        wait_for(lambda: len(ctl1.requests(method="POST")) >= 2, "the second recipient failing over", proc)
        time.sleep(2.0)  # in the wait for two's limit (about 8 s)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
    if len(ctl2.requests(method="POST")) != 1:
        pytest.fail("the second request left before the kill: the test's own set-up", pytrace=False)
    time.sleep(1.2)  # the dead runner's lease (1 s) ends
    with Gateway(cfg, plugins=plugins()) as gw:
        progress = gw.tenant("acme").campaigns.get(camp.campaign_id).run()
    assert echo_received(ctl1) == Counter()
    assert echo_received(ctl2) == Counter({"+2348030000001": 1, "+2348030000002": 1})
    assert (progress.sent, progress.unknown, progress.pending) == (2, 0, 0), progress
