"""Attacker atk27: inbound keywords end to end, and the providers' partial-failure contract.

Every delivery claim is read from the emulator's own record: the requests it recorded
(:class:`~smsgate.testing.EmulatorControl`) and the vendor state it keeps (``app.vendor``).

1. Inbound: replayed relay callbacks (the same vendor id, concurrently at two webhook
   processes on one SQLite file and on PostgreSQL), a STOP and a START of one number applied
   in either order, a STOP posted at another tenant's URL or with its token, and keyword texts
   written oddly (fullwidth, zero-width characters, lowercase, punctuation, padded, not UTF-8).
2. Providers: a batch the vendor answers partly (one number refused, a 5xx after it acted, a
   malformed body, a 200 naming fewer recipients than it was sent): nothing sent twice, and
   every message's status tells what the vendor did.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

pytest.importorskip("smsgate_colony")
pytest.importorskip("smsgate_broadcast")

from services import pg_url  # noqa: F401  (fixture)
from smsgate import Gateway
from smsgate.testing import EmulatorControl, LiveServer
from smsgate_broadcast import BroadcastProvider
from smsgate_broadcast.emulator import create_app as broadcast_app
from smsgate_colony.emulator import SANDBOX_CREDENTIALS, create_app

HERE = Path(__file__).parent
TOKEN_A, TOKEN_B = "relay-token-acme", "relay-token-beta"
STOP_REPLY = "Acme: you will get no more messages. Reply START to opt back in."
START_REPLY = "Acme: welcome back. Reply STOP to opt out."
HELP_REPLY = "Acme alerts: reply STOP to opt out."


# ============================================================================ inbound
def colony_config(store: str, url: str, cap: int = 50) -> dict[str, Any]:
    """Tenants ``acme`` and ``beta`` (ZA), each with a Colony instance of its own relay token,
    confirming STOP, START and HELP (a cap high enough never to hide a duplicate)."""
    def tenant(token: str) -> dict[str, Any]:
        return {"default_region": "ZA", "sender": "ACME",
                "inbound": {"stop_reply": STOP_REPLY, "start_reply": START_REPLY, "help_reply": HELP_REPLY,
                            "help_reply_limit": cap},
                "providers": {"colony": {"plugin": "colony", "base_url": url, "max_retries": 0,
                                         "credentials": {**SANDBOX_CREDENTIALS, "webhook_token": token}}}}
    return {"store": store, "tenants": {"acme": tenant(TOKEN_A), "beta": tenant(TOKEN_B)}}


def collate(vid: int, text: str, number: str, said: datetime | None = None) -> dict[str, Any]:
    """A collate reply as a relay posts it."""
    when = said or datetime.now(timezone.utc)
    return {"id": vid, "originator": number, "campaign": 7, "text": text, "network": "MTN",
            "backend_id": f"b-{vid}", "date_created": when.isoformat()}


class Colony:
    """A Colony emulator on a loopback port: its app (vendor state) and its request record."""

    def __init__(self) -> None:
        self.app = create_app(delivery_delay=0)
        self.server = LiveServer(self.app).start()
        self.url = self.server.url
        self.ctl = EmulatorControl(self.url)

    def texts_to(self, number: str) -> list[str]:
        """What the vendor recorded sending to ``number`` (its digits), from the request record."""
        out: list[str] = []
        for r in self.ctl.processed(method="POST"):
            if r.status is None or r.status >= 300 or "/_" in r.path:
                continue
            try:
                body = r.json()
            except ValueError:  # the OAuth token request (a form)
                continue
            for entry in body if isinstance(body, list) else [body]:
                if isinstance(entry, dict) and entry.get("destination") == number:
                    out.append(entry.get("message"))
        assert sorted(out) == sorted(s.message for s in self.app.vendor.sends if s.destination == number)
        return out


@pytest.fixture
def colony() -> Iterator[Colony]:
    c = Colony()
    yield c
    c.server.stop()


class Workers:
    """Two webhook processes (tests/atk27_worker.py) on one store."""

    def __init__(self, cfg: dict[str, Any], tmp: Path, n: int = 2) -> None:
        path = tmp / "atk27.json"
        path.write_text(json.dumps(cfg))
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parent / "src"), str(HERE),
                                                             os.environ.get("PYTHONPATH", "")])}
        self.procs = [subprocess.Popen([sys.executable, str(HERE / "atk27_worker.py"), str(path)], env=env,
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                      for _ in range(n)]
        self.urls: list[str] = []
        for p in self.procs:
            assert p.stdout is not None
            line = p.stdout.readline().strip()
            assert line.startswith("http"), f"worker did not start (exit {p.poll()})"
            self.urls.append(line)

    def close(self) -> None:
        for p in self.procs:
            assert p.stdin is not None
            p.stdin.close()
        for p in self.procs:
            p.wait(timeout=60)

    def post_at_once(self, path: str, bodies: list[tuple[int, bytes]]) -> list[httpx.Response]:
        """POST each (worker index, body) to ``path`` on that worker, all released together."""
        gate = threading.Barrier(len(bodies))
        out: list[httpx.Response | None] = [None] * len(bodies)

        def one(i: int, worker: int, body: bytes) -> None:
            with httpx.Client(timeout=60) as client:
                gate.wait()
                out[i] = client.post(self.urls[worker] + path, content=body)

        threads = [threading.Thread(target=one, args=(i, w, b)) for i, (w, b) in enumerate(bodies)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert all(r is not None for r in out)
        return [r for r in out if r is not None]


def _replays(colony: Colony, store: str, tmp: Path) -> None:
    workers = Workers(colony_config(store, colony.url), tmp)
    try:
        numbers = [f"2781555{i:04d}" for i in range(6)]
        for k, number in enumerate(numbers):  # each STOP delivered 4 times: twice at each process
            body = json.dumps(collate(1000 + k, "STOP", number)).encode()
            answers = workers.post_at_once(f"/acme/colony?token={TOKEN_A}", [(0, body), (1, body), (0, body), (1, body)])
            assert [a.status_code for a in answers] == [200] * 4, [a.text for a in answers]
            assert sum(a.json()["duplicates"] for a in answers) == 3  # stored once
        # a START and a HELP replayed the same way, for the first number
        for vid, text in ((2000, "START"), (2001, "HELP")):
            body = json.dumps(collate(vid, text, numbers[0])).encode()
            answers = workers.post_at_once(f"/acme/colony?token={TOKEN_A}", [(0, body), (1, body)])
            assert [a.status_code for a in answers] == [200, 200], [a.text for a in answers]
    finally:
        workers.close()
    for k, number in enumerate(numbers):
        expected = [STOP_REPLY] + ([START_REPLY, HELP_REPLY] if k == 0 else [])
        assert Counter(colony.texts_to(number)) == Counter(expected), number
    with Gateway(colony_config(store, colony.url)) as gw:
        acme = gw.tenant("acme")
        assert len(acme.inbound(limit=100)) == len(numbers) + 2
        assert sorted(o.phone for o in acme.optouts.list()) == sorted(f"+{n}" for n in numbers[1:])
        assert not acme.optouts.check("+" + numbers[0])
        # every confirmation logged once, as sent
        replies = [m for m in acme.messages(limit=100) if (m.reference or "").startswith("inbound:")]
        assert len(replies) == len(numbers) + 2
        assert all(m.status.value in ("submitted", "sent", "delivered") for m in replies), replies


def test_a_stop_replayed_at_two_webhook_processes_on_one_sqlite_file_is_confirmed_once(
        colony: Colony, tmp_path: Path) -> None:
    _replays(colony, f"sqlite:///{tmp_path / 'log.db'}", tmp_path)


def test_a_stop_replayed_at_two_webhook_processes_on_postgresql_is_confirmed_once(
        colony: Colony, tmp_path: Path, pg_url: str) -> None:  # noqa: F811
    _replays(colony, pg_url, tmp_path)


def _stop_start_at_once(colony: Colony, store: str, tmp: Path) -> None:
    """A STOP said a minute ago and a START said after it, delivered at once at two processes,
    in either order: the person's last word (START) stands; each word confirmed at most once, the
    STOP only when it was applied first (then the START's confirmation too)."""
    workers = Workers(colony_config(store, colony.url), tmp)
    now = datetime.now(timezone.utc)
    numbers = [f"2782555{i:04d}" for i in range(6)]
    try:
        for k, number in enumerate(numbers):
            stop = json.dumps(collate(3000 + 2 * k, "STOP", number, now - timedelta(seconds=60))).encode()
            start = json.dumps(collate(3001 + 2 * k, "START", number, now - timedelta(seconds=30))).encode()
            pair = [(0, stop), (1, start)] if k % 2 else [(0, start), (1, stop)]
            answers = workers.post_at_once(f"/acme/colony?token={TOKEN_A}", pair)
            assert [a.status_code for a in answers] == [200, 200], [a.text for a in answers]
    finally:
        workers.close()
    with Gateway(colony_config(store, colony.url)) as gw:
        acme = gw.tenant("acme")
        for number in numbers:
            assert not acme.optouts.check("+" + number), number  # the START stands
            # a START applied while the STOP's confirmation was on its way: both confirmed, and the
            # two requests may reach the vendor in either order (one in flight cannot be recalled)
            texts = Counter(colony.texts_to(number))
            assert texts in (Counter([START_REPLY]), Counter([STOP_REPLY, START_REPLY])), (number, texts)


def _help_cap(colony: Colony, store: str, tmp: Path) -> None:
    """Four HELPs of one number (four vendor events), at once at two processes, under a cap of one
    reply per number per window: the vendor got one help reply (the cap's slots are claimed in
    the shared store); each HELP is stored with action ``help``."""
    workers = Workers(colony_config(store, colony.url, cap=1), tmp)
    number = "27833330000"
    try:
        bodies = [(k % 2, json.dumps(collate(4000 + k, "help", number)).encode()) for k in range(4)]
        answers = workers.post_at_once(f"/acme/colony?token={TOKEN_A}", bodies)
        assert [a.status_code for a in answers] == [200] * 4, [a.text for a in answers]
    finally:
        workers.close()
    assert colony.texts_to(number) == [HELP_REPLY]
    with Gateway(colony_config(store, colony.url)) as gw:
        assert [m.action for m in gw.tenant("acme").inbound()] == ["help"] * 4


def test_the_help_cap_holds_across_two_processes_on_sqlite(colony: Colony, tmp_path: Path) -> None:
    _help_cap(colony, f"sqlite:///{tmp_path / 'log.db'}", tmp_path)


def test_the_help_cap_holds_across_two_processes_on_postgresql(colony: Colony, tmp_path: Path,
                                                               pg_url: str) -> None:  # noqa: F811
    _help_cap(colony, pg_url, tmp_path)


def test_stop_and_start_at_once_at_two_processes_on_sqlite_leave_the_last_word(colony: Colony, tmp_path: Path) -> None:
    _stop_start_at_once(colony, f"sqlite:///{tmp_path / 'log.db'}", tmp_path)


def test_stop_and_start_at_once_at_two_processes_on_postgresql_leave_the_last_word(
        colony: Colony, tmp_path: Path, pg_url: str) -> None:  # noqa: F811
    _stop_start_at_once(colony, pg_url, tmp_path)


@pytest.fixture
def hooks(colony: Colony, tmp_path: Path) -> Iterator[tuple[Gateway, str]]:
    """One gateway (SQLite) serving the webhook app for the Colony emulator."""
    from smsgate.webhooks import webhook_app

    with Gateway(colony_config(f"sqlite:///{tmp_path / 'log.db'}", colony.url)) as gw, \
            LiveServer(webhook_app(gw)) as server:
        yield gw, server.url


PADDED = {
    "fixed-width relay field": "STOP" + " " * 156 + "\n",
    "two hundred exclamation marks": "STOP" + "!" * 200,
    "zero-width padding": "S\u200bT\u200bO\u200bP" + "\u200b" * 300,
    "fullwidth with ideographic spaces": "\uff33\uff34\uff2f\uff30" + "\u3000" * 170,
}


@pytest.mark.parametrize("text", PADDED.values(), ids=PADDED.keys())
def test_a_stop_padded_past_160_characters_is_still_a_stop(colony: Colony, hooks: tuple[Gateway, str],
                                                           text: str) -> None:
    """docs/inbound.md: a reply that is exactly one keyword, ignoring case, accents, spaces and
    punctuation, acts. A STOP padded past 160 characters (a relay's fixed-width field, an angry
    "STOP!!!...") was stored with action ``none``: the number stayed opted in and was texted again."""
    gw, url = hooks
    number = "27815554321"
    r = httpx.post(f"{url}/acme/colony?token={TOKEN_A}", content=json.dumps(collate(7001, text, number)).encode())
    assert r.status_code == 200, r.text
    acme = gw.tenant("acme")
    assert acme.inbound()[0].action == "optout"
    assert acme.optouts.check("+" + number)
    assert colony.texts_to(number) == [STOP_REPLY]


def test_a_truncated_text_is_no_keyword_whatever_its_first_10000_characters(
        colony: Colony, hooks: tuple[Gateway, str]) -> None:
    """What was cut is unknown: "STOP", ten thousand spaces, "... just kidding" opts nobody out."""
    gw, url = hooks
    number = "27815554322"
    text = "STOP" + " " * 10_000 + "just kidding, keep them coming"
    r = httpx.post(f"{url}/acme/colony?token={TOKEN_A}", content=json.dumps(collate(7002, text, number)).encode())
    assert r.status_code == 200, r.text
    (stored,) = gw.tenant("acme").inbound()
    assert stored.truncated and stored.action == "none"
    assert not gw.tenant("acme").optouts.check("+" + number)
    assert colony.texts_to(number) == []


ODD = {"fullwidth": "\uff33\uff34\uff2f\uff30", "zero-width joiners": "S\u200dT\u200cO\u200bP",
       "lowercase": "stop", "trailing punctuation": "Stop!!! ", "byte-order mark": "\ufeffSTOP",
       "mathematical bold": "\U0001d412\U0001d413\U0001d40e\U0001d40f", "lone surrogate": "STOP \ud83d",
       "right-to-left override": "\u202eSTOP"}


def test_odd_unicode_stops_each_opt_out_and_are_confirmed_once(colony: Colony, hooks: tuple[Gateway, str]) -> None:
    gw, url = hooks
    for k, text in enumerate(ODD.values()):
        number = f"2781666{k:04d}"
        body = json.dumps(collate(7100 + k, text, number)).encode()  # a lone surrogate: "\\ud83d" in JSON
        for _ in range(2):  # each delivered twice
            r = httpx.post(f"{url}/acme/colony?token={TOKEN_A}", content=body)
            assert r.status_code == 200, (text, r.text)
        assert gw.tenant("acme").optouts.check("+" + number), text
        assert colony.texts_to(number) == [STOP_REPLY], text


def test_a_stop_never_crosses_tenants(colony: Colony, hooks: tuple[Gateway, str]) -> None:
    """A STOP for acme posted at beta's URL with acme's token, or at acme's with beta's: refused
    (401), nothing stored or opted out at either, nothing sent. With beta's own token at beta's
    URL it is beta's: acme's number stays opted in."""
    gw, url = hooks
    number = "27815557777"
    body = json.dumps(collate(7200, "STOP", number)).encode()
    for path in (f"/beta/colony?token={TOKEN_A}", f"/acme/colony?token={TOKEN_B}", "/acme/colony",
                 f"/beta/colony?token={TOKEN_A}&token={TOKEN_B}"):
        assert httpx.post(url + path, content=body).status_code == 401, path
    for name in ("acme", "beta"):
        assert gw.tenant(name).inbound() == [] and not gw.tenant(name).optouts.check("+" + number)
    assert colony.texts_to(number) == []
    assert httpx.post(f"{url}/beta/colony?token={TOKEN_B}", content=body).status_code == 200
    assert gw.tenant("beta").optouts.check("+" + number) and not gw.tenant("acme").optouts.check("+" + number)
    assert gw.tenant("acme").inbound() == [] and len(gw.tenant("beta").inbound()) == 1
    assert colony.texts_to(number) == [STOP_REPLY]


# ========================================================================= providers
class Vendor:
    """ASGI middleware before a shipped emulator: ``drop_last`` takes the last recipient out of a
    send request before the vendor reads it (a vendor silently dropping one), ``answer`` rewrites
    the vendor's answer to it (the vendor acted on the whole request)."""

    def __init__(self, app: Any, path: str) -> None:
        self.app, self.path = app, path
        self.vendor = app.vendor
        self.drop_last = False
        self.answer: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != self.path:
            await self.app(scope, receive, send)
            return
        if self.drop_last:
            chunks = []
            while True:
                message = await receive()
                chunks.append(message.get("body", b""))
                if not message.get("more_body"):
                    break
            body = json.loads(b"".join(chunks))
            body["to"] = body["to"].rsplit(",", 1)[0]
            raw = json.dumps(body).encode()
            scope = {**scope, "headers": [(k, v) for k, v in scope["headers"] if k != b"content-length"]
                     + [(b"content-length", str(len(raw)).encode())]}
            sent = False

            async def replay() -> Any:
                nonlocal sent
                if sent:
                    return await receive()
                sent = True
                return {"type": "http.request", "body": raw, "more_body": False}

            await self.app(scope, replay, send)
            return
        if self.answer is None:
            await self.app(scope, receive, send)
            return
        start: dict[str, Any] = {}
        parts: list[bytes] = []

        async def rewrite(message: Any) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
                return
            parts.append(message.get("body", b""))
            if not message.get("more_body"):
                new = json.dumps(self.answer(json.loads(b"".join(parts)))).encode()
                headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
                await send({**start, "headers": [*headers, (b"content-length", str(len(new)).encode())]})
                await send({"type": "http.response.body", "body": new})

        await self.app(scope, receive, rewrite)


def _broadcast_gateway(vendor_url: str, echo_url: str) -> Gateway:
    from smsgate.config import Settings, TenantConfig
    from smsgate.plugins import PluginManager
    from smsgate.provider import ProviderSettings
    from smsgate.store.memory import MemoryStore
    from smsgate.testing.reference import API_KEY, EchoPlugin
    from smsgate_broadcast.emulator import SANDBOX_CREDENTIALS as WAABOT_CREDENTIALS

    pm = PluginManager(load_entry_points=False)
    pm.add_provider(BroadcastProvider)
    pm.register(EchoPlugin())
    cfg = Settings(store="memory://", tenants={"t": TenantConfig(default_region="NG", providers={
        "waabot": ProviderSettings(plugin="broadcast", base_url=vendor_url, max_retries=0, credentials=dict(WAABOT_CREDENTIALS)),
        "backup": ProviderSettings(plugin="echo", base_url=echo_url, credentials={"api_key": API_KEY})},
        routes=[{"providers": ["waabot", "backup"]}])})
    return Gateway(cfg, store=MemoryStore(), plugins=pm)


NUMBERS = ["+2348031234561", "+2348031234562", "+2348031234563"]


def test_a_number_the_broadcast_vendor_dropped_is_never_called_submitted_nor_sent() -> None:
    """WAABOT answers ``POST /broadcast`` with the broadcast created, its ``to`` listing the
    numbers it goes to. A number the vendor left out (dropped as it read the request) was
    answered ``submitted`` with a vendor id, and its status look-up then said ``sent`` (the
    broadcast's own status): a message the vendor never had, logged as sent. The answer does not
    name it: ``unknown`` (not_reported), as Squad's adapter answers a recipient its answer does
    not mention, and a look-up of a broadcast that does not name it cannot say ``sent``."""
    from smsgate.testing.reference import create_emulator

    app = Vendor(broadcast_app(delivery_delay=0), "/api/v1/broadcast")
    app.drop_last = True
    echo: dict[str, dict[str, Any]] = {}
    with LiveServer(app) as vendor, LiveServer(create_emulator(echo)) as backup, \
            _broadcast_gateway(vendor.url, backup.url) as gw:
        t = gw.tenant("t")
        results = t.send_many(NUMBERS, "hello there")
        (request,) = EmulatorControl(vendor.url).processed("/api/v1/broadcast", "POST")
        assert request.json()["to"] == "2348031234561,2348031234562"  # what the vendor read
        assert [r.status.value for r in results[:2]] == ["submitted", "submitted"]
        dropped = results[2]
        assert dropped.status.value == "unknown" and dropped.error_code == "not_reported", dropped
        assert echo == {}  # not failed over: the request left (nobody can tell it was not sent)
        later = t.status(dropped.message_id)  # looked up at the vendor, every number now done
        assert later.status.value == "unknown", later
        assert [t.status(r.message_id).status.value for r in results[:2]] == ["sent", "sent"]


def _vendor_numbers(name: str, app: Any) -> Counter[str]:
    """What the vendor accepted (its own state), by E.164 number."""
    def e164(raw: str) -> str:
        digits = "".join(c for c in raw if c.isdigit())
        return "+234" + digits[1:] if digits.startswith("0") else "+" + digits

    vendor = app.vendor
    if name == "squad":
        return Counter(e164(m.phonenumber) for m in vendor.messages)
    if name == "colony":
        return Counter(e164(s.destination) for s in vendor.sends)
    if name == "campaigns_api":
        return Counter(e164(m.phone) for m in vendor.messages.values())
    return Counter(e164(n) for b in vendor.broadcasts.values() for n in b.doc["to"].split(","))


def _in_requests(name: str, requests: list[Any]) -> Counter[str]:
    """The numbers the vendor read in the send requests it processed (its request record)."""
    out: Counter[str] = Counter()
    for r in requests:
        body = r.json()
        if name == "squad":
            numbers = [m["phone_number"] for m in body["messages"]]
        elif name == "colony":
            numbers = [e["destination"] for e in body]
        elif name == "campaigns_api":
            numbers = [body["phoneNumber"]]
        else:
            numbers = body["to"].split(",")
        out.update("+234" + n[1:] if n.startswith("0") else "+" + n.lstrip("+") for n in numbers)
    return out


SEND_PATHS = {"squad": "/sms/send/instant", "colony": "/contact/message/bulk/", "campaigns_api": "/api/SMSMessages",
              "broadcast": "/api/v1/broadcast"}
FOREIGN = "+447911123456"  # a valid UK mobile


def _squad_drops_one_from_its_answer(answer: Any) -> Any:
    answer["data"]["sent"].pop()
    return answer


def _broadcast_answer_names_one_fewer(answer: Any) -> Any:
    answer["data"]["to"] = answer["data"]["to"].rsplit(",", 1)[0]
    return answer


@pytest.mark.parametrize("fault", ["one refused", "5xx after acting", "malformed after acting",
                                   "fewer results"])
@pytest.mark.parametrize("name", ["squad", "colony", "campaigns_api", "broadcast"])
def test_a_batch_answered_partly_sends_nothing_twice_and_every_status_tells_the_truth(name: str, fault: str) -> None:
    """Issue #13 item 3, for each shipped provider: a batch (``send_many`` of three numbers, a
    backup provider on the route) that the vendor answers partly. From the emulators' own state
    and request record: no number reached the vendors twice (the backup included); a message
    answered ``submitted`` was accepted by the provider it names; one answered ``rejected`` or
    ``failed`` reached no vendor; one left ``unknown`` was in a request the vendor read."""
    from importlib.metadata import entry_points

    from smsgate.config import Settings, TenantConfig
    from smsgate.plugins import PluginManager
    from smsgate.provider import ProviderSettings
    from smsgate.store.memory import MemoryStore
    from smsgate.testing import FaultRule
    from smsgate.testing.reference import API_KEY, EchoPlugin, create_emulator

    path = SEND_PATHS[name]
    numbers = [f"+27815554{i}" for i in (561, 562, 563)] if name == "colony" else list(NUMBERS)
    plugin = next(p for p in entry_points(group="smsgate.providers") if p.name == name).load()
    pm = PluginManager(load_entry_points=False)
    pm.register(plugin, name=name)
    account = pm.sandbox_account(name)
    inner = next(e for e in entry_points(group="smsgate.emulators") if e.name == name).load()()
    app = Vendor(inner, path)
    options: dict[str, Any] = {}
    rules: list[FaultRule] = []
    if fault == "one refused":
        if name == "squad":  # the vendor refuses a foreign number in its answer's errors
            options["allow_international"] = True
            numbers[2] = FOREIGN
        elif name == "colony":  # DRF refuses the whole array, naming the bad item
            inner.vendor.invalid_numbers = frozenset({numbers[1].lstrip("+")})
        elif name == "campaigns_api":  # one request per message: the first refused
            rules.append(FaultRule.error(400, path=path, count=1))
        else:  # one bad number refuses the whole broadcast
            numbers[2] = "+2348031234564"
            rules.append(FaultRule.error(400, path=path, count=1))
    elif fault == "5xx after acting":
        rules.append(FaultRule.error(500, process=True, path=path, count=1))
    elif fault == "malformed after acting":
        rules.append(FaultRule.malformed(process=True, path=path, count=1))
    elif name == "squad":
        app.answer = _squad_drops_one_from_its_answer
    elif name == "broadcast":  # (a vendor dropping one as it reads: the test above)
        app.answer = _broadcast_answer_names_one_fewer
    else:
        pytest.skip(f"{name} answers no per-message results")
    echo: dict[str, dict[str, Any]] = {}
    with LiveServer(app) as vendor, LiveServer(create_emulator(echo)) as backup:
        ctl = EmulatorControl(vendor.url)
        if rules:
            ctl.add(*rules)
        block: dict[str, Any] = {"plugin": name, "base_url": vendor.url, "sender": "SMSGATE", **account.settings,
                                 "max_retries": 0, "credentials": dict(account.credentials)}
        block["options"] = {**block.get("options", {}), **options}
        pm.register(EchoPlugin())
        cfg = Settings(store="memory://", tenants={"t": TenantConfig(default_region="NG", providers={
            "vendor": ProviderSettings.model_validate(block),
            "backup": ProviderSettings(plugin="echo", base_url=backup.url, credentials={"api_key": API_KEY})},
            routes=[{"providers": ["vendor", "backup"]}])})
        with Gateway(cfg, store=MemoryStore(), plugins=pm) as gw:
            results = gw.tenant("t").send_many(numbers, "hello there")
            logged = {m.message_id: m for m in gw.tenant("t").messages(limit=50)}
        took = _vendor_numbers(name, inner)
        read = _in_requests(name, ctl.processed(path, "POST"))
    backed = Counter(m["to"] for m in echo.values())
    assert len(results) == len(numbers)
    for number, result in zip(numbers, results, strict=True):
        where = (name, fault, number, result.status.value, result.provider, result.error)
        assert took[number] + backed[number] <= 1, where  # never twice
        status = result.status.value
        assert logged[result.message_id].status.value == status, where
        if status in ("submitted", "sent", "delivered"):
            assert (took if result.provider == "vendor" else backed)[number] == 1, where
        elif status in ("rejected", "failed"):
            assert took[number] + backed[number] == 0, where
        else:
            assert status == "unknown" and read[number] >= 1, where


def test_a_stop_cut_mid_character_in_bytes_still_opts_out(colony: Colony, hooks: tuple[Gateway, str]) -> None:
    """docs/inbound.md: a STOP cut mid-emoji in UTF-16 units (a lone surrogate) is kept as U+FFFD
    and acted on, since a vendor does not resend a 400. The same STOP cut in UTF-8 bytes (a relay
    cutting at a byte count: ``"STOP \\xf0\\x9f"``, no UTF-8) had the whole callback refused
    (400), the opt-out lost with it."""
    gw, url = hooks
    number = "27815558888"
    body = json.dumps([collate(7300, "STOP \U0001f600", number), collate(7301, "thanks", number)], ensure_ascii=False).encode()
    cut = body.replace("\U0001f600".encode(), "\U0001f600".encode()[:2])
    r = httpx.post(f"{url}/acme/colony?token={TOKEN_A}", content=cut)
    assert r.status_code == 200, r.text
    assert r.json()["inbound"] == 2
    acme = gw.tenant("acme")
    assert [(m.text, m.action) for m in acme.inbound()] == [("thanks", "none"), ("STOP \ufffd", "optout")]
    assert acme.optouts.check("+" + number)
    assert colony.texts_to(number) == [STOP_REPLY]


@given(head=st.text(max_size=30), pad=st.text(alphabet=" \t\n.!?-\u200b\u200d\u3000\u0301\ufeff", min_size=161,
                                             max_size=400), tail=st.text(max_size=30))
def test_a_long_text_is_matched_as_its_letters_and_digits_are(head: str, pad: str, tail: str) -> None:
    """The matcher's reading of a text over 160 characters (character by character, stopping
    early) answers what normalising the whole text answers."""
    from smsgate.config import DEFAULT_HELP_WORDS, DEFAULT_START_WORDS, DEFAULT_STOP_WORDS
    from smsgate.keywords import KeywordMatcher, normalize_keyword

    matcher = KeywordMatcher(DEFAULT_STOP_WORDS, DEFAULT_START_WORDS, DEFAULT_HELP_WORDS)
    for text in (head + pad + tail, "STOP" + pad, pad + "s t o p" + pad + "!"):
        assert matcher.match(text) is matcher._words.get(normalize_keyword(text)), repr(text)
