"""Vendor fidelity, third round: compressed answers, inbound handling and sent-message look-ups,
against the vendors' documents (``/work/shared/providers/FACTS.md``, the seed documents), over
loopback HTTP with the real decoders and emulators.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from starlette.responses import Response

from services import pg_url  # noqa: F401  (a fixture)
from smsgate.lifecycle import Status as LifecycleStatus
from test_attack_13 import Vendor, vendor  # noqa: F401  (a fixture)
from test_attack_14 import _send

# ======================================================== 1. brotli / zstd answers decoded in big steps
# A brotli or zstd answer was handed to httpx's decoder 16 (brotli) or 64 (zstd) raw bytes at a
# time, so that no step could decode far past the answer cap: a MiB on the wire was 65,536 calls
# into the decoder (24 MiB of brotli took 1.6 s of CPU where one call takes 0.04 s). brotli (1.2
# and later) bounds its own output per call (``output_buffer_limit``): the raw bytes go in as they
# arrive, the cap still exact. zstd stays with httpx's decoder in 64-byte steps (zstandard's bounded
# decoder cannot tell a stream cut short): about 0.6 s for 24 MiB on the wire, ~0.05 s at best.

class _Calls:
    """Counts the calls that hand compressed bytes to a decoder object, forwarding the rest."""

    FEEDS = ("process", "decompress", "write")
    MAKERS = ("decompressobj", "stream_writer")

    def __init__(self, inner: Any, counter: list[int]) -> None:
        self._inner, self._counter = inner, counter

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if name in self.FEEDS:
            def feed(data: Any = b"", *args: Any, **kwargs: Any) -> Any:
                if len(data):
                    self._counter[0] += 1
                return attr(data, *args, **kwargs)
            return feed
        if name in self.MAKERS:
            return lambda *args, **kwargs: _Calls(attr(*args, **kwargs), self._counter)
        return attr


def _counting(monkeypatch: pytest.MonkeyPatch, encoding: str) -> list[int]:
    """Count, from now on, the calls feeding compressed bytes to the ``encoding``'s library."""
    counter = [0]
    if encoding == "br":
        brotli = pytest.importorskip("brotli")
        real = brotli.Decompressor

        class Decompressor(_Calls):  # as the real one's type: what the library offers, checked on it
            def __init__(self) -> None:
                super().__init__(real(), counter)

            def can_accept_more_data(self) -> bool:
                return bool(self._inner.can_accept_more_data())

        monkeypatch.setattr(brotli, "Decompressor", Decompressor)
    else:
        zstandard = pytest.importorskip("zstandard")
        real_z = zstandard.ZstdDecompressor
        monkeypatch.setattr(zstandard, "ZstdDecompressor", lambda *a, **k: _Calls(real_z(*a, **k), counter))
    return counter


def _compress(encoding: str, body: bytes) -> bytes:
    if encoding == "br":
        return bytes(pytest.importorskip("brotli").compress(body, quality=5))
    return bytes(pytest.importorskip("zstandard").ZstdCompressor(level=3).compress(body))


@pytest.mark.parametrize("encoding", ["br"])
@pytest.mark.parametrize("mode", ["sync", "aiohttp", "httpx-async"])
def test_a_large_brotli_answer_is_decoded_in_few_steps(
        vendor: tuple[Vendor, str], monkeypatch: pytest.MonkeyPatch, mode: str,  # noqa: F811  (the fixture)
        encoding: str) -> None:
    """A 2 MiB answer (1 MiB on the wire) is read, and its raw bytes go to the decoder in a few
    dozen calls as they arrive, not in 16-byte steps (65,536 calls and more)."""
    fake, url = vendor
    body = (b'{"status": "SUCCESS", "message": "success", "data": {"sent": 1, "batch_id": "B1", "pad": "'
            + os.urandom(1 << 20).hex().encode() + b'"}}')
    wire = _compress(encoding, body)
    assert len(wire) > 1 << 20
    fake.on("POST", "/service/message", lambda request, _: Response(
        wire, headers={"Content-Type": "application/json", "Content-Encoding": encoding}))
    counter = _counting(monkeypatch, encoding)
    error, record = _send(url, mode)
    assert error is None, repr(error)
    assert record.status is LifecycleStatus.SUBMITTED
    assert 0 < counter[0] < 1000, f"{counter[0]} calls into the {encoding} decoder for {len(wire)} bytes"


@pytest.mark.parametrize("encoding", ["br", "zstd"])
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_brotli_or_zstd_download_is_held_to_its_cap_to_the_byte(
        vendor: tuple[Vendor, str], mode: str, encoding: str) -> None:  # noqa: F811  (the fixture)
    """The streaming decoders keep the cap exact: ``max_bytes`` decoded is read whole, one byte
    more is ``DownloadTooLarge``; a body cut short is httpx's ``DecodingError`` (zstd: httpx's own)."""
    import asyncio

    import httpx

    from smsgate.downloads import DownloadPolicy, download_request
    from smsgate.errors import DownloadTooLarge
    from smsgate.transport import AsyncDriver, SyncDriver

    fake, url = vendor
    cap = 3 << 20
    plain = os.urandom(cap // 2).hex().encode()
    for path, body in (("/exact.bin", plain), ("/over.bin", plain + b"!"), ("/bad.bin", None)):
        wire = _compress(encoding, body) if body is not None else _compress(encoding, plain)[:4000]
        fake.on("GET", path, lambda request, _, wire=wire: Response(
            wire, headers={"Content-Type": "application/octet-stream", "Content-Encoding": encoding}))

    def get(path: str) -> bytes:
        request = download_request(url + path, DownloadPolicy(max_bytes=cap, allow_private=True))
        if mode == "sync":
            with httpx.Client(timeout=10) as client:
                return SyncDriver(client).send(request).content

        async def go() -> bytes:
            async with httpx.AsyncClient(timeout=10) as client:
                return (await AsyncDriver(client).send(request)).content
        return asyncio.run(go())

    assert get("/exact.bin") == plain
    with pytest.raises(DownloadTooLarge):
        get("/over.bin")
    with pytest.raises(httpx.DecodingError):
        get("/bad.bin")


# ============================================= 3. generic_http: an inbound message at its webhook
# ``[options.webhook]`` maps delivery reports only (docs/inbound.md: a vendor posting replies needs
# your own route). A vendor posting its inbound messages to the same URL (Twilio-shaped, as the
# docs' formsms example: ``MessageSid, From, To, Body, SmsStatus=received``, no ``MessageStatus``)
# had each read as a delivery report of status ``unknown`` for a message nobody sent: kept as an
# orphan, answered 200, the reply (a STOP) lost without a word. An item without a status at
# ``webhook.status_path`` is no delivery report: ``Unsupported`` (501), nothing applied.

_FORMSMS_HOOK = {"format": "form", "id_path": "MessageSid", "status_path": "MessageStatus", "to_path": "To",
                 "token": "{secret.hook_token}", "token_header": "X-Callback-Token"}


def _formsms_gateway() -> Any:
    from smsgate.gateway import Gateway
    from smsgate.plugins import PluginManager
    from smsgate.store.memory import MemoryStore
    from smsgate_generic_http import GenericHttpProvider

    pm = PluginManager(load_entry_points=False)
    pm.add_provider(GenericHttpProvider)
    provider = {"plugin": "generic_http", "base_url": "http://127.0.0.1:9", "sender": "+15005550006",
                "credentials": {"hook_token": "hook-55"},
                "options": {"request": {"url": "/Messages.json", "form": {"To": "{to}", "Body": "{text}"}},
                            "response": {"success_status": [201], "id_path": "sid", "status_path": "status"},
                            "status_map": {"delivered": "delivered", "failed": "failed"},
                            "webhook": _FORMSMS_HOOK}}
    config = {"store": "memory://", "tenants": {"acme": {"default_region": "US", "providers": {"formsms": provider}}}}
    return Gateway(config, store=MemoryStore(), plugins=pm)


def test_generic_http_webhook_refuses_an_inbound_message_instead_of_keeping_an_orphan_report() -> None:
    import httpx

    from smsgate.testing.server import LiveServer
    from smsgate.webhooks import webhook_app

    with _formsms_gateway() as gw:
        server = LiveServer(webhook_app(gw)).start()
        try:
            headers = {"X-Callback-Token": "hook-55"}
            inbound = {"MessageSid": "SM0001", "SmsSid": "SM0001", "From": "+14155550100",
                       "To": "+15005550006", "Body": "STOP", "SmsStatus": "received", "NumMedia": "0"}
            answer = httpx.post(f"{server.url}/acme/formsms", data=inbound, headers=headers)
            assert answer.status_code == 501, answer.text
            assert "inbound" in answer.json()["error"] and "MessageStatus" in answer.json()["error"]
            # a delivery report still reads (an orphan here: nothing was sent), as documented
            report = {"MessageSid": "SM0002", "MessageStatus": "delivered", "To": "+14155550100"}
            answer = httpx.post(f"{server.url}/acme/formsms", data=report, headers=headers)
            assert answer.status_code == 200 and answer.json()["reports"] == 1, answer.text
        finally:
            server.stop()


# ================================================ 4. Squad v1: the sent message looked up by number
# A message logged without an answer (its request may have left when its runner died) is settled
# by asking each provider whether it received it (``Provider.find_sent``); a provider without
# ``client_reference`` / ``sent_lookup`` is never asked, and the message stays ``unknown``. Squad
# v1 documents ``GET /service/message/by-phone/{phone}`` [DOC, seed 000/001: "messages by phone"],
# each item with ``phonenumber, message, created_at`` and the status: the message found by its
# number, text and time, as Campaigns REST is (its ``reference`` is sent but listed nowhere).

def test_squad_v1_finds_a_sent_message_by_number_text_and_time_at_the_emulator(
        serve_app: Any) -> None:
    from datetime import datetime, timedelta, timezone

    import httpx

    from smsgate.models import OutboundMessage, Status
    from smsgate.provider import ProviderSettings
    from smsgate.transport import SyncDriver
    from smsgate_squad import SquadProvider
    from smsgate_squad.emulator import SANDBOX_V1_CREDENTIALS, SANDBOX_V1_OPTIONS, create_app

    url = serve_app(create_app())
    provider = SquadProvider(ProviderSettings(plugin="squad", base_url=url, credentials=dict(SANDBOX_V1_CREDENTIALS),
                                              sender="GTBank", options=dict(SANDBOX_V1_OPTIONS), max_retries=0))
    assert provider.capabilities.sent_lookup
    before = datetime.now(timezone.utc)
    sent = OutboundMessage(to="+2348031234567", text="Your code is 4411", message_id="m1", sender="GTBank")
    with httpx.Client() as client:
        driver = SyncDriver(client)
        driver.run(provider.send(OutboundMessage(to="+2348031234568", text=sent.text, message_id="m0",
                                                 sender="GTBank")))  # the same text to another number
        result = driver.run(provider.send(sent))
        found = driver.run(provider.find_sent(sent, before))
        assert found is not None and found.to == sent.to and found.status is not Status.UNKNOWN
        assert found.provider_message_id  # the vendor's id of that message
        # another text to the number, or a message logged after every one it lists: never received
        assert driver.run(provider.find_sent(sent.model_copy(update={"text": "Your code is 9999"}), before)) is None
        later = datetime.now(timezone.utc) + timedelta(hours=1)
        assert driver.run(provider.find_sent(sent, later)) is None
        never = OutboundMessage(to="+2348031234569", text=sent.text, message_id="m2", sender="GTBank")
        assert driver.run(provider.find_sent(never, before)) is None
    assert result.status is Status.SUBMITTED


# ====================================== 2. a reply's link to the inbound message, in every store
# smsgate has no ``in_reply_to`` field, and no vendor documents one (FACTS.md: no reply threading
# for Squad, Campaigns REST, WAABOT; Colony's inbound model carries no id of a message it
# answers). The one link is smsgate's own: a keyword confirmation (help, stop, start reply) is
# sent with ``reference = "inbound:<id>"``, the stored inbound message's id. It must hold in
# every store (ids are the store's), sync and async alike.

@pytest.mark.parametrize("store", ["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_a_keyword_reply_names_its_inbound_message_in_every_store(store: str, tmp_path: Any,
                                                                  request: pytest.FixtureRequest) -> None:
    from smsgate.gateway import Gateway
    from smsgate.models import InboundMessage

    url = {"memory": "memory://", "sqlite": f"sqlite:///{tmp_path / 'replies.db'}"}.get(store)
    if url is None:
        url = request.getfixturevalue("pg_url")
    config = {"store": url, "tenants": {"clinic": {
        "default_region": "US", "sender": "+14155550000",
        "inbound": {"help_reply": "Clinic: call 0800", "stop_reply": "Clinic: stopped"},
        "providers": {"memory": {"plugin": "memory"}}}}}
    with Gateway(config) as gw:
        t = gw.tenant("clinic")
        t.ingest_inbound("memory", [InboundMessage(vendor_id="r1", from_number="+14155550100", text="HELP"),
                                    InboundMessage(vendor_id="r2", from_number="+14155550101", text="STOP")])
        inbound = {m.vendor_id: m for m in t.inbound()}
        replies = {m.to: m for m in t.messages() if (m.reference or "").startswith("inbound:")}
        assert replies["+14155550100"].reference == f"inbound:{inbound['r1'].id}"
        assert replies["+14155550101"].reference == f"inbound:{inbound['r2'].id}"
        assert inbound["r1"].id != inbound["r2"].id


@pytest.mark.slow
def test_squad_v1_campaign_recovery_finds_the_message_a_killed_runner_left_without_its_answer(
        tmp_path: Any) -> None:
    """A runner killed while its Squad v1 request was at the vendor (logged, no answer): the next
    runner asks Squad (``by-phone``) and finds it, ``sent``; before, no Squad instance could be
    asked and the recipient ended ``unknown``. Every number is texted once."""
    import json
    from collections import Counter

    from smsgate.gateway import Gateway
    from smsgate.testing import EmulatorControl, LiveServer
    from smsgate_squad.emulator import SANDBOX_V1_CREDENTIALS, SANDBOX_V1_OPTIONS, create_app
    from test_attack_delivery import kill_a_runner_then_resume

    with LiveServer(create_app(delivery_delay=3600)) as server:
        ctl = EmulatorControl(server.url)
        squad = {"plugin": "squad", "base_url": server.url, "credentials": dict(SANDBOX_V1_CREDENTIALS),
                 "options": dict(SANDBOX_V1_OPTIONS), "sender": "GTBank", "timeout": 0.3}
        cfg = {"store": f"sqlite:///{tmp_path / 'squad.db'}",
               "tenants": {"acme": {"default_region": "NG", "providers": {"legacy": squad}}}}
        cfg_path = tmp_path / "cfg.json"
        cfg_path.write_text(json.dumps(cfg))
        numbers = [f"080312300{i:02d}" for i in range(4)]
        with Gateway(cfg) as gw:
            cid = gw.tenant("acme").campaigns.create("recover", text="Clinic reminder", audience=numbers,
                                                     batch_size=1, concurrency=1, lease_seconds=1.0,
                                                     mode="fanout").campaign_id
        ctl.fault(kind="hang", delay=0.2, path="/service/message", method="POST", count=1)

        def posts() -> list[Any]:
            return ctl.requests("/service/message", "POST")

        kill_a_runner_then_resume(cfg_path, cid, posts)
        got = Counter(r.json()["recipients"] for r in ctl.processed("/service/message", "POST"))
        with Gateway(cfg) as gw:
            progress = gw.tenant("acme").campaigns.get(cid).progress()
    assert set(got) == set(numbers), "a recipient was lost"
    assert max(got.values()) == 1, f"sent twice: {[k for k, v in got.items() if v > 1]}"
    assert (progress.sent, progress.unknown) == (4, 0), progress


def _squad_v1() -> Any:
    from smsgate.provider import ProviderSettings
    from smsgate_squad import SquadProvider
    from smsgate_squad.emulator import SANDBOX_V1_CREDENTIALS, SANDBOX_V1_OPTIONS

    return SquadProvider(ProviderSettings(plugin="squad", base_url="http://squad.invalid", sender="GTBank",
                                          credentials=dict(SANDBOX_V1_CREDENTIALS),
                                          options=dict(SANDBOX_V1_OPTIONS), max_retries=0))


def _by_phone_page(texts: list[str | None], number: str = "08031234567") -> Any:
    import httpx

    items = [{"status": "submitted", "id": i, "transaction_id": f"t{i}", "phonenumber": number,
              "created_at": "2030-01-01T10:00:00.000Z", "sender_id": "GTBank",
              **({"message": t} if t is not None else {})} for i, t in enumerate(texts)]
    # v1's message lists answer total [{"total": "0"}] whatever they hold [DOC quirk]
    return httpx.Response(200, json={"status": "SUCCESS", "message": "phone messages retrieved successfully",
                                     "data": {"items": items, "total": [{"total": "0"}]}})


def test_squad_v1_find_sent_reads_past_a_full_first_page_whose_total_says_zero() -> None:
    """A full page with ``total: "0"`` was taken for the last one: a message listed on page 2 was
    "not received", and recovery would have sent it again."""
    from datetime import datetime, timezone

    from smsgate.models import OutboundMessage
    from smsgate.transport import run_with_responses

    provider = _squad_v1()
    msg = OutboundMessage(to="+2348031234567", text="Your code is 4411", message_id="m1", sender="GTBank")
    since = datetime(2030, 1, 1, 9, 59, tzinfo=timezone.utc)
    asked: list[str] = []

    def page(texts: list[str | None]) -> Any:
        def answer(request: Any) -> Any:
            asked.append(request.url.params["page"])
            return _by_phone_page(texts)
        return answer

    found = run_with_responses(provider.find_sent(msg, since),
                               [page(["other"] * 100), page(["other", msg.text])])
    assert found is not None and found.to == msg.to and asked == ["1", "2"]


def test_squad_v1_find_sent_cannot_tell_from_a_listing_without_texts() -> None:
    """Items without ``message`` (the by-phone answer is documented only by an empty example) are
    "cannot tell" (a ProviderError, the message stays unknown), never "not received" (sent again)."""
    from datetime import datetime, timezone

    from smsgate.errors import ProviderError
    from smsgate.models import OutboundMessage
    from smsgate.transport import run_with_responses

    provider = _squad_v1()
    msg = OutboundMessage(to="+2348031234567", text="Your code is 4411", message_id="m1", sender="GTBank")
    since = datetime(2030, 1, 1, 9, 59, tzinfo=timezone.utc)
    with pytest.raises(ProviderError, match="cannot tell"):
        run_with_responses(provider.find_sent(msg, since), [_by_phone_page([None, None])])
    # an empty listing, or one of other texts only, is an answer: not received
    assert run_with_responses(provider.find_sent(msg, since), [_by_phone_page([])]) is None
    assert run_with_responses(provider.find_sent(msg, since), [_by_phone_page(["other"])]) is None
