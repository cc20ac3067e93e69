"""End-to-end: every Squad operation over loopback HTTP against the emulator, sync and async.

Each scenario runs twice (``drive`` fixture): through :class:`SyncDriver` with an
``httpx.Client`` and through :class:`AsyncDriver` with an ``httpx.AsyncClient``.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from smsgate.config import Settings, TenantConfig
from smsgate.errors import AuthFailed, RequestRejected, ResourceNotFound, Unsupported
from smsgate.gateway import AsyncGateway, Gateway
from smsgate.models import Campaign, CampaignStatus, Contact, ContactList, OutboundMessage, Status, Template
from smsgate.plugins import PluginManager
from smsgate.provider import Operation, Paged, ProviderSettings
from smsgate.store.memory import MemoryStore
from smsgate.testing.emulator import EmulatorControl
from smsgate.testing.server import LiveServer
from smsgate.transport import AsyncDriver, SyncDriver
from smsgate_squad import SquadProvider
from smsgate_squad.auth import have_cryptography, wat_today
from smsgate_squad.emulator import (
    SANDBOX_CREDENTIALS,
    SANDBOX_SECRET_KEY,
    SANDBOX_V1_CREDENTIALS,
    SANDBOX_V1_IV,
    SANDBOX_V1_KEY,
    SANDBOX_V1_OPTIONS,
    create_app,
)

T = TypeVar("T")
DELAY = 0.2


class Drive:
    """Runs operations and walks listings, sync or async."""

    def __init__(self, mode: str) -> None:
        self.mode = mode

    def run(self, op: Operation[T]) -> T:
        if self.mode == "sync":
            with httpx.Client() as client:
                return SyncDriver(client).run(op)

        async def go() -> T:
            async with httpx.AsyncClient() as client:
                return await AsyncDriver(client).run(op)

        return asyncio.run(go())

    def all(self, paged: Paged[T]) -> list[T]:
        if self.mode == "sync":
            with httpx.Client() as client:
                return list(SyncDriver(client).iterate(paged))

        async def go() -> list[T]:
            async with httpx.AsyncClient() as client:
                return [item async for item in AsyncDriver(client).iterate(paged)]

        return asyncio.run(go())


def wait_until(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    """Poll ``check`` until it returns something truthy (the lifecycle advances with time)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


class Receiver:
    """A webhook endpoint recording what it is sent."""

    def __init__(self) -> None:
        self.calls: list[tuple[dict[str, str], bytes]] = []
        self.lock = threading.Lock()

        async def hook(request: Request) -> JSONResponse:
            body = await request.body()
            with self.lock:
                self.calls.append((dict(request.headers), body))
            return JSONResponse({"ok": True})

        self.app = Starlette(routes=[Route("/hook", hook, methods=["POST"])])


@pytest.fixture(scope="module")
def receiver() -> Iterator[tuple[Receiver, str]]:
    rec = Receiver()
    with LiveServer(rec.app) as server:
        yield rec, f"{server.url}/hook"


@pytest.fixture(scope="module")
def squad_url(receiver: tuple[Receiver, str]) -> Iterator[str]:
    app = create_app(delivery_delay=DELAY, webhook_url=receiver[1])
    with LiveServer(app) as server:
        yield server.url


@pytest.fixture(params=["sync", "async"])
def drive(request: pytest.FixtureRequest) -> Drive:
    return Drive(request.param)


def v2(url: str, **options: Any) -> SquadProvider:
    return SquadProvider(ProviderSettings(plugin="squad", base_url=url, credentials=dict(SANDBOX_CREDENTIALS),
                                          sender="SMSGATE", options=options))


def v1(url: str, **options: Any) -> SquadProvider:
    creds = dict(SANDBOX_V1_CREDENTIALS)
    if have_cryptography():  # derive the daily secret instead of using the static one
        creds = {"key": SANDBOX_V1_KEY, "encryption_iv": SANDBOX_V1_IV, "secret_key": SANDBOX_SECRET_KEY}
    return SquadProvider(ProviderSettings(plugin="squad", base_url=url, credentials=creds, sender="GTBank",
                                          options={**SANDBOX_V1_OPTIONS, **options}))


def out(to: str, text: str = "hello", **kw: Any) -> OutboundMessage:
    return OutboundMessage(to=to, text=text, message_id=kw.pop("message_id", f"m-{to}"), sender="SMSGATE", **kw)


def unique(prefix: str) -> str:
    return f"{prefix}-{time.monotonic_ns()}"


# =================================================================== v2

def test_v2_send_and_send_many(squad_url: str, drive: Drive) -> None:
    prov = v2(squad_url)
    one = drive.run(prov.send(out("+2348031234567")))
    assert one.status is Status.SENT and one.cost is not None and one.currency == "NGN"
    assert one.provider_message_id == f"{one.batch_id}_000"
    many = drive.run(prov.send_many([out("+2348031234561"), out("+447912345678"), out("+2348031234569")]))
    assert [r.status for r in many] == [Status.SENT, Status.REJECTED, Status.SENT]
    assert many[0].batch_id == many[2].batch_id and many[0].provider_message_id != many[2].provider_message_id


def test_v2_status_and_statistics_unsupported(squad_url: str, drive: Drive) -> None:
    prov = v2(squad_url)
    sent = drive.run(prov.send(out("+2348031234567")))
    with pytest.raises(Unsupported, match="status"):
        drive.run(prov.status(sent))
    with pytest.raises(Unsupported):
        drive.run(prov.statistics())


def test_v2_templates(squad_url: str, drive: Drive) -> None:
    prov = v2(squad_url, page_size=1)
    name = unique("tpl")
    made = drive.run(prov.create_template(Template(name=name, body="Hi {name}, {{braces}}", description="d")))
    tid = made.provider_ids["squad"]
    assert made.raw["message"] == "Hi #$name$#, {braces}"
    everything = drive.run(prov.list_templates())  # one request per template (page_size=1)
    assert any(t.provider_ids["squad"] == tid and t.body == "Hi {name}, {{braces}}" for t in everything)
    today = datetime.now(timezone.utc).date()
    filtered = drive.all(prov.templates(page_size=50, sort_by="name", direction="ASC", date_from=today,
                                        date_to=today + timedelta(days=1)))
    assert tid in [t.provider_ids["squad"] for t in filtered]
    assert [t.name for t in filtered] == sorted(t.name for t in filtered)
    assert drive.all(prov.templates(date_to=today - timedelta(days=1))) == []
    edited = drive.run(prov.edit_template(tid, body="Bye {name}"))
    assert edited.body == "Bye {name}" and edited.raw["pages"] == 1
    assert drive.run(prov.delete_template(tid)) is not None
    with pytest.raises(ResourceNotFound):
        drive.run(prov.delete_template(tid))


def test_v2_buckets(squad_url: str, drive: Drive) -> None:
    prov = v2(squad_url)
    bucket = drive.run(prov.create_bucket(unique("b"), "desc"))
    assert bucket.status == "pending" and bucket.raw["signed_url"].startswith(squad_url + "/_s3/")
    drive.run(prov.upload_bucket_csv(bucket.raw["signed_url"], "phone_number,name\n08031234567,Ada\n"))
    got = drive.run(prov.get_bucket(str(bucket.id)))
    assert (got.status, got.size, got.raw["headers"]) == ("completed", 1, ["phone_number", "name"])
    listed = drive.all(prov.buckets())
    assert str(bucket.id) in [b.id for b in listed]
    assert drive.run(prov.delete_bucket(str(bucket.id))) is not None
    with pytest.raises(ResourceNotFound):
        drive.run(prov.get_bucket(str(bucket.id)))
    # docs.squadco.com's POST variant of the delete
    other = drive.run(v2(squad_url, bucket_delete_method="POST").create_contact_list(
        ContactList(name=unique("list")), ["+2348031234567", "08031234568"]))
    assert other.size == 2
    assert drive.run(v2(squad_url, bucket_delete_method="POST").delete_bucket(str(other.id))) is not None


def test_v2_signed_url_is_checked(squad_url: str, drive: Drive) -> None:
    prov = v2(squad_url)
    bucket = drive.run(prov.create_bucket(unique("b")))
    url = httpx.URL(bucket.raw["signed_url"])
    tampered = str(url.copy_set_param("X-Amz-Signature", "0" * 64))
    with pytest.raises(AuthFailed):
        drive.run(prov.upload_bucket_csv(tampered, "phone_number\n08031234567\n"))
    with LiveServer(create_app(signed_url_ttl=-5)) as server:
        short = v2(server.url)
        b = drive.run(short.create_bucket("expiring"))
        with pytest.raises(AuthFailed):
            drive.run(short.upload_bucket_csv(b.raw["signed_url"], "phone_number\n08031234567\n"))


def test_v2_campaign_lifecycle(squad_url: str, drive: Drive) -> None:
    prov = v2(squad_url)
    name = unique("camp")
    campaign = drive.run(prov.create_campaign(Campaign(name=name, text="Hello {name}", contacts=[
        Contact(phone="+2348031234561", name="Ada"), Contact(phone="+2348031234569", name="Dayo")])))
    assert campaign.id and campaign.status in (CampaignStatus.RUNNING, CampaignStatus.COMPLETED)
    assert campaign.recipient_count == 2
    done = wait_until(lambda: (c := drive.run(prov.get_campaign(str(campaign.id)))).status
                      is CampaignStatus.COMPLETED and c)
    assert done and done.raw_status == "success" and done.cost is not None and done.cost > 0
    listed = drive.all(prov.campaigns(status="success", name=name))
    assert [c.id for c in listed] == [campaign.id]
    assert drive.all(prov.campaigns(status="failed", name=name)) == []
    # scheduled for later: stays pending
    later = datetime.now(timezone.utc) + timedelta(days=2)
    sched = drive.run(prov.create_campaign(Campaign(
        name=unique("later"), template_id=campaign.template_id, contact_list_id=campaign.contact_list_id,
        start_at=later)))
    assert sched.status is CampaignStatus.SCHEDULED
    assert sched.start_at is not None and abs((sched.start_at - later).total_seconds()) < 1
    assert drive.run(prov.delete_campaign(str(sched.id))) is not None
    with pytest.raises(ResourceNotFound):
        drive.run(prov.get_campaign(str(sched.id)))


def test_v2_campaign_with_empty_bucket_fails(squad_url: str, drive: Drive) -> None:
    prov = v2(squad_url)
    bucket = drive.run(prov.create_bucket(unique("never-uploaded")))
    tpl = drive.run(prov.create_template(Template(name="t", body="x")))
    made = drive.run(prov.create_campaign(Campaign(name=unique("c"), contact_list_id=bucket.id,
                                                   template_id=tpl.provider_ids["squad"])))
    assert drive.run(prov.get_campaign(str(made.id))).status is CampaignStatus.FAILED


def test_v2_auth_errors_and_bodies(squad_url: str) -> None:
    r = httpx.post(f"{squad_url}/sms/send/instant", json={})
    assert (r.status_code, r.json()) == (401, {"success": False, "message": "", "data": {}})
    r = httpx.post(f"{squad_url}/sms/send/instant", json={}, headers={"Authorization": "Bearer sandbox_sk_nope"})
    assert (r.status_code, r.json()) == (403, {"success": False, "message": "Merchant authentication failed",
                                               "data": {}})
    bad = SquadProvider(ProviderSettings(plugin="squad", base_url=squad_url, credentials={"secret_key": "sk_x"},
                                         sender="S"))
    with pytest.raises(AuthFailed, match="Merchant authentication failed"):
        Drive("sync").run(bad.list_templates())


def test_v2_unregistered_sender(drive: Drive) -> None:
    with LiveServer(create_app(registered_senders=["S-Alert"])) as server:
        with pytest.raises(RequestRejected, match="Sender ID not found or registered"):
            drive.run(v2(server.url).send(out("+2348031234567")))
        ok = SquadProvider(ProviderSettings(plugin="squad", base_url=server.url,
                                            credentials=dict(SANDBOX_CREDENTIALS), sender="S-Alert"))
        assert drive.run(ok.send(OutboundMessage(to="+2348031234567", text="x", sender="S-Alert"))).ok


# =================================================================== webhooks

def test_webhooks_signed_and_ingested(receiver: tuple[Receiver, str], drive: Drive) -> None:
    rec, hook = receiver
    with LiveServer(create_app(delivery_delay=DELAY, webhook_url=hook)) as server:
        prov = v2(server.url)
        sent = drive.run(prov.send_many([out("+2348051230001"), out("+2348051230009")]))
        ids = {r.provider_message_id for r in sent}

        def mine() -> list[Any]:
            with rec.lock:
                calls = list(rec.calls)
            reports = [r for h, b in calls for r in prov.parse_webhook(h, b)]
            return [r for r in reports if r.provider_message_id in ids]

        reports = wait_until(lambda: (found := mine()) and len(found) >= 4 and found)
        assert reports, "no callbacks arrived"
        final = {r.to: r.status for r in reports if r.status.is_final}
        assert final == {"+2348051230001": Status.DELIVERED, "+2348051230009": Status.UNDELIVERED}
        assert {r.status for r in reports if not r.status.is_final} == {Status.SENT}
        headers = rec.calls[-1][0]
        assert headers["x-squad-encrypted-body"] == headers["x-squad-encrypted-body"].upper()


def test_dropped_callbacks(receiver: tuple[Receiver, str]) -> None:
    rec, hook = receiver
    with LiveServer(create_app(delivery_delay=0.1, webhook_url=hook)) as server:
        EmulatorControl(server.url).fault(kind="drop_callbacks", count=None)
        prov = v2(server.url)
        sent = Drive("sync").run(prov.send(out("+2348051230002")))
        time.sleep(0.4)
        with rec.lock:
            bodies = [json.loads(b) for _, b in rec.calls]
        assert not [b for b in bodies if b.get("TransactionRef") == sent.provider_message_id]


def test_gateway_ingests_squad_webhooks(receiver: tuple[Receiver, str]) -> None:
    rec, hook = receiver
    with LiveServer(create_app(delivery_delay=DELAY, webhook_url=hook)) as server:
        settings = Settings(store="memory://", tenants={"t": TenantConfig(default_region="NG", providers={
            "sq": ProviderSettings(plugin="squad", base_url=server.url, credentials=dict(SANDBOX_CREDENTIALS),
                                   sender="SMSGATE")})})
        pm = PluginManager(load_entry_points=False)
        pm.add_provider(SquadProvider)
        with Gateway(settings, store=MemoryStore(), plugins=pm) as gw:
            tenant = gw.tenant("t")
            results = tenant.send_many(["08051230003", "08051230004"], "Hi")
            ids = {r.provider_message_id for r in results}

            def ingest_all() -> bool:
                with rec.lock:
                    calls = list(rec.calls)
                for h, b in calls:
                    if json.loads(b).get("TransactionRef") in ids:
                        gw.ingest("t", "sq", h, b)
                return all(tenant.get(r.message_id).status is Status.DELIVERED for r in results)

            assert wait_until(ingest_all)
            history = [e.status for e in tenant.get(results[0].message_id).history]
            assert history[0] is Status.QUEUED and history[-1] is Status.DELIVERED


# =================================================================== v1

@pytest.mark.parametrize("prefix", ["/service", "/dashboard"])
def test_v1_send_and_status_lifecycle(squad_url: str, drive: Drive, prefix: str) -> None:
    prov = v1(squad_url, v1_message_prefix=prefix)
    good = drive.run(prov.send(out("+2348061230001")))
    bad = drive.run(prov.send(out("+2348061230009")))
    assert good.status is Status.SUBMITTED and len(str(good.batch_id)) == 12
    first = drive.run(prov.status(good))
    assert first.status in (Status.SUBMITTED, Status.SENT, Status.DELIVERED)
    final = wait_until(lambda: (r := drive.run(prov.status(good))).status.is_final and r)
    assert final and final.status is Status.DELIVERED and final.provider_message_id == good.batch_id
    failed = wait_until(lambda: (r := drive.run(prov.status(bad))).status.is_final and r)
    assert failed and failed.status is Status.UNDELIVERED and failed.raw_status == "delivery failed"
    assert failed.cost is not None and failed.segments == 1


def test_v1_gateway_status_polling(squad_url: str) -> None:
    settings = Settings(store="memory://", tenants={"t": TenantConfig(default_region="NG", providers={
        "legacy": ProviderSettings(plugin="squad", base_url=squad_url, credentials=dict(SANDBOX_V1_CREDENTIALS),
                                   sender="GTBank", options=dict(SANDBOX_V1_OPTIONS))})})
    pm = PluginManager(load_entry_points=False)
    pm.add_provider(SquadProvider)

    async def go() -> Status:
        async with AsyncGateway(settings, store=MemoryStore(), plugins=pm) as gw:
            tenant = gw.tenant("t")
            result = await tenant.send("08061230002", "hi")
            for _ in range(200):
                record = await tenant.status(result.message_id)
                if record.status.is_final:
                    return record.status
                await asyncio.sleep(0.05)
            return record.status

    assert asyncio.run(go()) is Status.DELIVERED


def test_v1_templates_buckets_and_campaign(squad_url: str, drive: Drive) -> None:
    prov = v1(squad_url, page_size=2)
    # templates
    tpl = drive.run(prov.create_template(Template(name=unique("t"), body="Dear {name}, code {code}")))
    tid = tpl.provider_ids["squad"]
    listed = drive.run(prov.list_templates())
    mine = next(t for t in listed if t.provider_ids["squad"] == tid)
    assert mine.body == "Dear {name}, code {code}" and mine.raw["params"] == ["phone_number", "name", "code"]
    edited = drive.run(prov.edit_template(tid, body="Dear {name}, your code is {code}"))
    assert edited.provider_ids["squad"] == tid
    # buckets
    bucket = drive.run(prov.create_bucket(unique("b"), "November Birthdays", items=[
        {"phone_number": "08061230011", "name": "Ada", "code": "11"},
        {"phone_number": "08061230012", "name": "Bayo", "code": "12"}]))
    assert bucket.size == 2 and bucket.description == "november birthdays"  # lowercased, as in the samples
    assert drive.run(prov.get_bucket(str(bucket.id))).raw["params"] == ["phone_number", "name", "code"]
    renamed = drive.run(prov.rename_bucket(str(bucket.id), "renamed"))
    assert renamed.name == "renamed"
    # a campaign: template by id to the bucket, grouped by reference
    reference = unique("ref")
    receipt = drive.run(prov.send_message(recipients=str(bucket.id), body=tid, use_bucket=True, use_template=True,
                                          is_campaign=True, reference=reference, sender="GTBank"))
    assert receipt.sent == 2
    campaigns = drive.all(prov.campaigns())
    camp = next(c for c in campaigns if c.name == reference)
    assert camp.recipient_count == 2 and camp.template_id == tid
    reports = drive.all(prov.campaign_messages(str(camp.id), page_size=1))
    assert sorted(r.raw["message"] for r in reports) == ["Dear Ada, your code is 11", "Dear Bayo, your code is 12"]
    done = wait_until(lambda: (c := drive.run(prov.get_campaign(str(camp.id)))).status
                      is CampaignStatus.COMPLETED and c)
    assert done and done.raw["statistics"]["delivered"] == 2
    stats = drive.run(prov.campaign_statistics(str(camp.id)))
    assert (stats.delivered, stats.total) == (2, 2)
    everything = drive.run(prov.statistics())
    assert everything.total >= 2
    # by batch id, cursor paged one by one
    by_batch = drive.all(prov.message_status(receipt.batch_id, page_size=1))
    assert len(by_batch) == 2 and {r.batch_id for r in by_batch} == {receipt.batch_id}
    # by phone, paged
    assert any(r.raw["message"].startswith("Dear Ada") for r in drive.all(prov.messages_by_phone("08061230011")))
    # clean up
    assert drive.run(prov.delete_template(tid)) is None
    assert drive.run(prov.delete_bucket(str(bucket.id))) is None
    with pytest.raises(ResourceNotFound):
        drive.run(prov.get_bucket(str(bucket.id)))


def test_v1_neutral_campaign_and_contact_list(squad_url: str, drive: Drive) -> None:
    prov = v1(squad_url)
    cl = drive.run(prov.create_contact_list(ContactList(name=unique("cl")), ["+2348061230021", "08061230022"]))
    assert cl.size == 2
    name = unique("neutral")
    made = drive.run(prov.create_campaign(Campaign(name=name, text="Hi {name}", contacts=[
        Contact(phone="+2348061230023", name="Chidi")])))
    assert made.name == name and made.id and made.id.isdigit() and made.status is CampaignStatus.RUNNING
    msgs = drive.all(prov.campaign_messages(made.id))
    assert [m.raw["message"] for m in msgs] == ["Hi Chidi"]
    plain = drive.run(prov.create_campaign(Campaign(name=unique("plain"), text="No placeholders",
                                                    contact_list_id=cl.id)))
    assert plain.template_id is None and plain.recipient_count == 2


def test_v1_hourly_statistics_and_senders(squad_url: str, drive: Drive) -> None:
    prov = v1(squad_url)
    sent = drive.run(prov.send(out("+2348061230031")))
    wait_until(lambda: drive.run(prov.status(sent)).status.is_final)
    stats = drive.run(prov.hourly_statistics(wat_today()))
    assert len(stats.detail) == 24 and stats.total >= 1 and stats.delivered >= 1
    assert sum(b.total for b in stats.detail) == stats.total
    assert stats.avg_queue_seconds is not None and stats.avg_queue_seconds > 0
    assert drive.run(prov.statistics(date=wat_today().isoformat())).total == stats.total
    assert drive.run(prov.sender_ids()) == ["SQUAD"]


def test_v1_auth(squad_url: str) -> None:
    r = httpx.post(f"{squad_url}/service/message", json={})
    assert (r.status_code, r.json()) == (401, {"success": False, "message": "", "data": {}})
    r = httpx.post(f"{squad_url}/service/message", json={}, headers={"key": SANDBOX_V1_KEY, "secret": "nope"})
    assert (r.status_code, r.json()["message"]) == (403, "Merchant authentication failed")
    bad = SquadProvider(ProviderSettings(plugin="squad", base_url=squad_url, credentials={
        "key": SANDBOX_V1_KEY, "secret": "stale-secret"}, options=dict(SANDBOX_V1_OPTIONS)))
    with pytest.raises(AuthFailed):
        Drive("sync").run(bad.send(out("+2348061230041")))


def test_v1_custom_header_names(drive: Drive) -> None:
    with LiveServer(create_app(v1_key_header="X-VAS-Key", v1_secret_header="X-VAS-Secret")) as server:
        prov = SquadProvider(ProviderSettings(
            plugin="squad", base_url=server.url, credentials=dict(SANDBOX_V1_CREDENTIALS),
            options={**SANDBOX_V1_OPTIONS, "v1_key_header": "X-VAS-Key", "v1_secret_header": "X-VAS-Secret"}))
        assert drive.run(prov.send(out("+2348061230051"))).ok
        with pytest.raises(AuthFailed):
            drive.run(v1(server.url).send(out("+2348061230052")))


def test_v1_errors_from_emulator(squad_url: str, drive: Drive) -> None:
    prov = v1(squad_url)
    with pytest.raises(ResourceNotFound, match="bucket not found"):
        drive.run(prov.send_message(recipients="99999", body="x", use_bucket=True))
    with pytest.raises(ResourceNotFound, match="template not found"):
        drive.run(prov.send_message(recipients="08061230061", body="99999", use_template=True))
    with pytest.raises(RequestRejected, match="phone number"):
        drive.run(prov.send_message(recipients="12345", body="x"))
    with pytest.raises(ResourceNotFound):
        drive.run(prov.campaign_statistics("99999"))


def test_faults_shape_errors_like_squad(squad_url: str) -> None:
    control = EmulatorControl(squad_url)
    control.fault(kind="status", status=400, path="/sms/template", count=1)
    with pytest.raises(RequestRejected) as info:
        Drive("sync").run(v2(squad_url).list_templates())
    assert info.value.body and json.loads(info.value.body)["success"] is False


@pytest.mark.parametrize("version", ["v2", "v1"])
def test_campaign_engine_native_mode(version: str) -> None:
    """``tenant.campaigns`` in native mode: bucket + template + campaign at Squad, personalised there."""
    app = create_app(delivery_delay=0.05)
    with LiveServer(app) as server:
        if version == "v2":
            prov_settings = ProviderSettings(plugin="squad", base_url=server.url,
                                             credentials=dict(SANDBOX_CREDENTIALS), sender="SMSGATE")
        else:
            prov_settings = ProviderSettings(plugin="squad", base_url=server.url,
                                             credentials=dict(SANDBOX_V1_CREDENTIALS), sender="GTBank",
                                             options=dict(SANDBOX_V1_OPTIONS))
        settings = Settings(store="memory://", tenants={"t": TenantConfig(default_region="NG",
                                                                          providers={"sq": prov_settings})})
        pm = PluginManager(load_entry_points=False)
        pm.add_provider(SquadProvider)
        with Gateway(settings, store=MemoryStore(), plugins=pm) as gw:
            tenant = gw.tenant("t")
            handle = tenant.campaigns.create(
                "promo", audience=[Contact(phone="08071230001", name="Ada"), Contact(phone="08071230002", name="Bayo"),
                                   "08071230001"],
                text="Hi {name}, 10% off", provider="sq", mode="native")
            handle.run()
            provider_id = handle.row.provider_campaign_id
            assert provider_id
            prov = tenant.provider("sq")
            done = wait_until(lambda: tenant.run("sq", prov.get_campaign(provider_id)).status
                              is CampaignStatus.COMPLETED)
            assert done
            stats = handle.stats(include_provider=True)
            if version == "v1":  # Squad's own per-campaign statistics, merged in
                assert stats.raw["provider"]["total"] >= 2 or stats.raw["provider"]["submitted"] >= 2
            else:  # v2 documents no statistics: nothing merged, no error
                assert "provider" not in stats.raw
        texts = sorted(m.message for m in app.vendor.messages)
        assert texts == ["Hi Ada, 10% off", "Hi Bayo, 10% off"]


def test_campaign_to_an_existing_bucket() -> None:
    """A campaign whose audience is a bucket already at Squad runs natively against it."""
    from smsgate.campaigns import ProviderListAudience
    from smsgate.models import ContactList

    app = create_app(delivery_delay=0.05)
    with LiveServer(app) as server:
        prov_settings = ProviderSettings(plugin="squad", base_url=server.url,
                                         credentials=dict(SANDBOX_CREDENTIALS), sender="SMSGATE")
        settings = Settings(store="memory://", tenants={"t": TenantConfig(default_region="NG",
                                                                          providers={"sq": prov_settings})})
        pm = PluginManager(load_entry_points=False)
        pm.add_provider(SquadProvider)
        with Gateway(settings, store=MemoryStore(), plugins=pm) as gw:
            tenant = gw.tenant("t")
            prov = tenant.provider("sq")
            bucket = tenant.run("sq", prov.create_contact_list(
                ContactList(name="vip", description="vip"), ["+2348071230001", "+2348071230002"]))
            assert bucket.id
            handle = tenant.campaigns.create("to bucket", text="Sale today",
                                             audience=ProviderListAudience("sq", bucket.id))
            assert handle.preview().mode == "native"
            handle.run()
            row = handle.row
            assert row.provider_campaign_id and row.status is CampaignStatus.COMPLETED
            sent = tenant.run("sq", prov.get_campaign(row.provider_campaign_id))
            assert sent.raw.get("bucket_id") == bucket.id or sent.contact_list_id == bucket.id
