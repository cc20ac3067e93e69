"""Contract tests: every documented Squad example response fed into the adapter's parsers.

The v1 bodies are verbatim from the seed documents (000: docs.squadco.com, 001: GitBook) and
Squad's v1 bucket/template pages; the v2 bodies from the SMS v2 pages (FACTS.md 1.3). Each
test drives the real operation with :func:`run_with_responses` (no server, no mocks) and
checks both the request the adapter built and what it made of the answer.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any

import httpx
import pytest

from smsgate.errors import (
    AuthFailed,
    ConfigError,
    MalformedResponse,
    RequestRejected,
    ResourceNotFound,
    Unsupported,
    ValidationError,
)
from smsgate.models import (
    Campaign,
    CampaignStatus,
    ContactList,
    OutboundMessage,
    SendResult,
    Status,
    Template,
)
from smsgate.provider import ProviderSettings
from smsgate.transport import run_with_responses
from smsgate_squad import SquadProvider
from smsgate_squad.provider import LIVE_BASE_URL, SANDBOX_BASE_URL, V1_BASE_URL

V2_KEY = "sandbox_sk_94f2b798466408ef4d19e848ee1a4d1a3e93f104046f"
V1_KEY = "k" * 32
V1_SECRET = "precomputed-daily-secret"


def v2(**options: Any) -> SquadProvider:
    return SquadProvider(ProviderSettings(plugin="squad", credentials={"secret_key": V2_KEY},
                                          sender="S-Alert", options=options))


def v1(**options: Any) -> SquadProvider:
    opts = {"api_version": "v1", "client_id": "2", **options}
    return SquadProvider(ProviderSettings(plugin="squad", credentials={"key": V1_KEY, "secret": V1_SECRET},
                                          sender="GTBank", options=opts))


def ok(body: Any, status: int = 200) -> httpx.Response:
    return httpx.Response(status, json=body)


def msg(to: str = "+2348064834084", text: str = "Hello there", **kw: Any) -> OutboundMessage:
    return OutboundMessage(to=to, text=text, message_id=kw.pop("message_id", "msg_1"), sender="S-Alert", **kw)


class Recorder:
    """Answers with canned responses and keeps the requests."""

    def __init__(self, *responses: httpx.Response) -> None:
        self.responses = list(responses)
        self.requests: list[httpx.Request] = []

    def __iter__(self) -> Any:
        for resp in self.responses:
            def answer(req: httpx.Request, resp: httpx.Response = resp) -> httpx.Response:
                self.requests.append(req)
                return resp
            yield answer

    def body(self, i: int = 0) -> Any:
        return json.loads(self.requests[i].content)


# =================================================================== v2 samples (FACTS 1.3)

INSTANT = {
    "status": 200, "success": True, "message": "Success",
    "data": {
        "success": True, "message": "submitted successfully",
        "data": {
            "batch_id": "20250522081746187_541_EAZMC2DZ_SQUADSMS_NGN",
            "sent": [{"phone_number": "08064834084", "status": "SENT", "cost": 5.41,
                      "transaction_id": "20250522081746187_541_EAZMC2DZ_SQUADSMS_NGN_000"}],
            "errors": [], "total_cost": 5.41, "currency": "NGN",
        },
    },
}

CAMPAIGN_CREATED = {
    "status": 200, "success": True, "message": "Success",
    "data": {
        "uuid": "4c054f71-790f-4cab-9530-2b18ba243c27", "name": "Dianne Spencer", "cost": "0.00",
        "scheduled_for": "Wed Dec 31 2025 10:05:10 GMT+0100 (West Africa Standard Time)",
        "status": "pending", "merchant_id": "EAZMC2DZ", "createdAt": "2025-02-18T14:02:27.403Z",
        "updatedAt": "2025-02-18T14:02:27.418Z", "bucket_id": "3d27d03c-e14d-494f-822e-106946898daf",
        "sender_id": "S-Alert", "template_id": "cdbbc03e-1e0b-4c20-aacd-04eb11e702c2",
    },
}

TEMPLATE_CREATED = {
    "status": 200, "success": True, "message": "Success",
    "data": {
        "uuid": "5b9840d0-2382-4289-a4da-d7ecf3270d98", "merchant_id": "AABBCCDDEEFFGGHHJJKK",
        "name": "First template", "description": "Used for new user onboarding", "pages": 1,
        "message": "Welcome to our platform!", "createdAt": "2025-05-22T10:08:03.733Z",
        "updatedAt": "2025-05-22T10:08:03.733Z",
    },
}

TEMPLATES = {
    "status": 200, "success": True, "message": "Success",
    "data": {"count": 1, "rows": [{
        "uuid": "a3795ac3-8252-4ce0-aa6c-def776570455", "merchant_id": "EAZMC2DZ", "name": "Test_002",
        "description": "Test template", "pages": 1, "message": "Hi, Get a life",
        "createdAt": "2025-05-16T14:19:44.380Z", "updatedAt": "2025-05-16T14:19:44.380Z",
    }]},
}

TEMPLATE_UPDATED = {
    "status": 200, "success": True, "message": "Success",
    "data": {
        "uuid": "edb720f0-6162-46f2-aafe-c52962bd56f8", "merchant_id": "development_sk_sample-secret-key-1",
        "name": "Updated Template", "description": "Updated description here", "pages": 1,
        "message": "This is an updated message.", "createdAt": "2025-05-22T09:11:48.562Z",
        "updatedAt": "2025-05-22T09:13:40.273Z",
    },
}

TEMPLATE_DELETED = {
    "status": 200, "success": True, "message": "Success",
    "data": {**TEMPLATE_UPDATED["data"], "merchant_id": "EAZMC2DZ"},  # type: ignore[dict-item]
}

SIGNED_URL = (
    "https://s3.eu-west-2.amazonaws.com/squadinc.co-gateway-mobile-app-service-dev/bulk_sms/"
    "AABBCCDDEEFFGGHHJJKK/campaign/ec571a9a-0c78-4d98-9956-1e5ede72d344/teest.csv/1747906498860-523754.csv"
    "?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAYPHEQVFJHOQDZNU6%2F20250522%2Feu-west-2%2Fs3%2Faws4_request"
    "&X-Amz-Date=20250522T093458Z&X-Amz-Expires=300"
    "&X-Amz-Signature=1f1f0017519941522352b1e8496d41b7641d7a8dd800cc3948afaf8850f86e79"
    "&X-Amz-SignedHeaders=host%3Bx-amz-acl&x-amz-acl=public-read"
)

BUCKET_CREATED = {
    "status": 200, "success": True, "message": "Success",
    "data": {
        "uuid": "ec571a9a-0c78-4d98-9956-1e5ede72d344", "status": "pending", "name": "file1234",
        "description": "baa baa black sheep", "merchant_id": "AABBCCDDEEFFGGHHJJKK",
        "updatedAt": "2025-05-22T09:34:58.800Z", "createdAt": "2025-05-22T09:34:58.800Z", "size": None,
        "file_url": None, "estimated_cost": None, "headers": None, "meta": None, "signed_url": SIGNED_URL,
    },
}


def _bucket_row(uuid: str, name: str, created: str) -> dict[str, Any]:
    return {"uuid": uuid, "merchant_id": "AABBCCDDEEFFGGHHJJKK", "name": name,
            "description": "baa baa black sheep", "size": None, "file_url": None, "estimated_cost": None,
            "headers": None, "status": "pending", "meta": None, "createdAt": created, "updatedAt": created}


BUCKETS = {
    "status": 200, "success": True, "message": "Success",
    "data": {"count": 2, "rows": [
        _bucket_row("ec571a9a-0c78-4d98-9956-1e5ede72d344", "file1234", "2025-05-22T09:34:58.800Z"),
        _bucket_row("0f704e13-7b52-4ceb-a3ee-a1a253d14d97", "file123", "2025-05-21T16:03:17.357Z"),
    ]},
}

BUCKET_DELETED = {
    "status": 200, "success": True, "message": "Success",
    "data": {**_bucket_row("907f7702-6bd3-4667-b8ad-3b041cb3e217", "file123", "2025-05-22T09:04:46.576Z"),
             "merchant_id": "development_sk_sample-secret-key-1"},
}

UNAUTHORISED = {"success": False, "message": "", "data": {}}
FORBIDDEN = {"success": False, "message": "Merchant authentication failed", "data": {}}
SENDER_UNKNOWN = {"status": 400, "success": False, "message": "Sender ID not found or registered", "data": {}}


def test_v2_host_follows_key_and_version() -> None:
    assert v2().base_url == SANDBOX_BASE_URL
    live = SquadProvider(ProviderSettings(plugin="squad", credentials={"secret_key": "sk_live_x"}))
    assert live.base_url == LIVE_BASE_URL
    assert v1().base_url == V1_BASE_URL
    custom = SquadProvider(ProviderSettings(plugin="squad", base_url="http://h:1/", credentials={"secret_key": "x"}))
    assert custom.base_url == "http://h:1"


def test_v2_instant_send_sample() -> None:
    rec = Recorder(ok(INSTANT))
    result = run_with_responses(v2().send(msg()), rec)
    req = rec.requests[0]
    assert (req.method, str(req.url)) == ("POST", f"{SANDBOX_BASE_URL}/sms/send/instant")
    assert req.headers["authorization"] == f"Bearer {V2_KEY}"
    # the documented sample request, byte for byte in meaning
    assert rec.body() == {"sender_id": "S-Alert",
                          "messages": [{"phone_number": "08064834084", "message": "Hello there"}]}
    assert result.status is Status.SENT and result.raw_status == "SENT"
    assert result.provider_message_id == "20250522081746187_541_EAZMC2DZ_SQUADSMS_NGN_000"
    assert result.batch_id == "20250522081746187_541_EAZMC2DZ_SQUADSMS_NGN"
    assert result.cost == Decimal("5.41") and result.currency == "NGN"


def test_v2_instant_bulk_matches_results_by_number_with_errors() -> None:
    body = json.loads(json.dumps(INSTANT))
    inner = body["data"]["data"]
    # the vendor lists results in its own order and may write numbers internationally [INF]
    inner["sent"] = [
        {"phone_number": "2348064834085", "status": "SENT", "cost": "5.41", "transaction_id": "B_001"},
        {"phone_number": "08064834084", "status": "SENT", "cost": 5.41, "transaction_id": "B_000"},
    ]
    inner["errors"] = [{"phone_number": "08064834086", "message": "Invalid phone number"}]
    msgs = [msg("+2348064834084"), msg("+2348064834085"), msg("+2348064834086"), msg("+447700900123"),
            msg("+2348064834087")]
    rec = Recorder(ok(body))
    results = run_with_responses(v2().send_many(msgs), rec)
    assert [m["phone_number"] for m in rec.body()["messages"]] == [
        "08064834084", "08064834085", "08064834086", "08064834087"]
    assert [r.to for r in results] == [m.to for m in msgs]
    assert [r.provider_message_id for r in results[:2]] == ["B_000", "B_001"]
    assert results[2].status is Status.REJECTED and results[2].error == "Invalid phone number"
    assert results[3].status is Status.REJECTED and results[3].error_code == "unsupported"
    assert results[4].status is Status.UNKNOWN and results[4].error_code == "not_reported"


def test_v2_send_many_is_one_request_and_max_batch_is_the_capability() -> None:
    def answer(req: httpx.Request) -> httpx.Response:
        sent = [{"phone_number": m["phone_number"], "status": "SENT", "cost": 5.41, "transaction_id": f"T{i}"}
                for i, m in enumerate(json.loads(req.content)["messages"])]
        return ok({"status": 200, "success": True, "message": "Success",
                   "data": {"success": True, "message": "submitted successfully",
                            "data": {"batch_id": "B", "sent": sent, "errors": [], "currency": "NGN"}}})

    msgs = [msg(f"+23480648340{i:02d}") for i in range(5)]
    reqs: list[httpx.Request] = []
    prov = v2(max_batch=2)
    assert prov.capabilities.max_batch == 2  # the gateway sends at most 2 per call
    assert prov.batch_key(msgs[0]) == msgs[0].sender  # and one sender per call
    results = run_with_responses(prov.send_many(msgs), [lambda r: (reqs.append(r), answer(r))[1]])
    assert [len(json.loads(r.content)["messages"]) for r in reqs] == [5]
    assert all(r.ok for r in results)


def test_v2_send_requires_sender_and_nigerian_number() -> None:
    prov = SquadProvider(ProviderSettings(plugin="squad", credentials={"secret_key": V2_KEY}))
    with pytest.raises(ConfigError, match="sender_id"):
        run_with_responses(prov.send(OutboundMessage(to="+2348064834084", text="x")), [])
    with pytest.raises(Unsupported, match="outside Nigeria"):
        run_with_responses(v2().send(msg("+447700900123")), [])
    rec = Recorder(ok(INSTANT))
    run_with_responses(v2(allow_international=True).send(msg("+447700900123")), rec)
    assert rec.body()["messages"][0]["phone_number"] == "447700900123"


def test_v2_error_bodies_are_typed() -> None:
    with pytest.raises(AuthFailed):
        run_with_responses(v2().send(msg()), [ok(UNAUTHORISED, 401)])
    with pytest.raises(AuthFailed, match="Merchant authentication failed") as info:
        run_with_responses(v2().send(msg()), [ok(FORBIDDEN, 403)])
    assert V2_KEY not in str(info.value)
    with pytest.raises(RequestRejected, match="Sender ID not found or registered"):
        run_with_responses(v2().send(msg()), [ok(SENDER_UNKNOWN, 400)])
    # an error inside a 200 body
    with pytest.raises(RequestRejected, match="Insufficient balance"):
        run_with_responses(v2().send(msg()), [ok({"status": 200, "success": False,
                                                   "message": "Insufficient balance", "data": {}})])
    inner_fail = {"status": 200, "success": True, "message": "Success",
                  "data": {"success": False, "message": "no message was submitted", "data": {}}}
    with pytest.raises(RequestRejected, match="no message was submitted"):
        run_with_responses(v2().send(msg()), [ok(inner_fail)])


@pytest.mark.parametrize("body", [
    {"status": 200, "success": True, "message": "Success"},
    {"status": 200, "success": True, "message": "Success", "data": {"data": {"batch_id": "x"}}},
    {"status": 200, "success": True, "message": "Success", "data": {"data": {"sent": "nope"}}},
    ["not", "an", "object"],
])
def test_v2_malformed_answers(body: Any) -> None:
    with pytest.raises(MalformedResponse) as info:
        run_with_responses(v2().send(msg()), [ok(body)])
    assert "/sms/send/instant" in str(info.value)


def test_v2_html_answer_is_malformed() -> None:
    resp = httpx.Response(200, text="<html>Bad Gateway</html>", headers={"content-type": "text/html"})
    with pytest.raises(MalformedResponse):
        run_with_responses(v2().send(msg()), [resp])


def test_v2_create_campaign_sample() -> None:
    rec = Recorder(ok(CAMPAIGN_CREATED))
    campaign = Campaign(name="Promo Campaign", contact_list_id="3d27d03c-e14d-494f-822e-106946898daf",
                        template_id="cdbbc03e-1e0b-4c20-aacd-04eb11e702c2", sender="S-Alert",
                        start_at=datetime(2025, 6, 1, 10, 0, tzinfo=timezone.utc))
    made = run_with_responses(v2().create_campaign(campaign), rec)
    assert rec.body() == {"name": "Promo Campaign", "bucket_id": "3d27d03c-e14d-494f-822e-106946898daf",
                          "sender_id": "S-Alert", "is_scheduled": True, "scheduled_for": "2025-06-01T10:00:00Z",
                          "template_id": "cdbbc03e-1e0b-4c20-aacd-04eb11e702c2"}
    assert made.id == "4c054f71-790f-4cab-9530-2b18ba243c27"
    assert made.raw_status == "pending" and made.cost == Decimal("0.00")
    # "Wed Dec 31 2025 10:05:10 GMT+0100 (West Africa Standard Time)"
    assert made.start_at == datetime(2025, 12, 31, 9, 5, 10, tzinfo=timezone.utc)
    assert made.created_at == datetime(2025, 2, 18, 14, 2, 27, 403000, tzinfo=timezone.utc)
    assert made.status is CampaignStatus.RUNNING  # pending and its start has passed


def test_v2_campaign_from_text_and_contacts_is_bucket_upload_template_campaign() -> None:
    from smsgate.models import Contact

    upload = httpx.Response(200)
    rec = Recorder(ok(BUCKET_CREATED), upload, ok(TEMPLATE_CREATED), ok(CAMPAIGN_CREATED))
    campaign = Campaign(name="Promo", text="Hi {name}", contacts=[
        Contact(phone="+2348064834084", name="Ada", fields={"city": "Lagos"}),
        Contact(phone="08064834085")])
    made = run_with_responses(v2().create_campaign(campaign), rec)
    methods = [(r.method, r.url.path) for r in rec.requests]
    assert methods == [("POST", "/sms/bucket"), ("PUT", httpx.URL(SIGNED_URL).path),
                       ("POST", "/sms/template"), ("POST", "/sms/campaign")]
    assert rec.requests[1].content.decode() == (
        "phone_number,name,city\n08064834084,Ada,Lagos\n08064834085,,\n")
    assert rec.body(2)["message"] == "Hi #$name$#"
    assert rec.body(3)["bucket_id"] == "ec571a9a-0c78-4d98-9956-1e5ede72d344"
    assert rec.body(3)["template_id"] == "5b9840d0-2382-4289-a4da-d7ecf3270d98"
    assert rec.body(3)["is_scheduled"] is False and "scheduled_for" not in rec.body(3)
    assert made.recipient_count == 2


def test_v2_campaign_listing_and_lookup() -> None:
    listing = {"status": 200, "success": True, "message": "Success",
               "data": {"count": 1, "rows": [CAMPAIGN_CREATED["data"]]}}  # [INF] no sample
    prov = v2()
    paged = prov.campaigns(status="pending", name="Dianne", direction="DSC", date_from="2025-01-01")
    params = paged.first.url.params
    assert (params["status"], params["name"], params["dir"], params["date_from"]) == (
        "pending", "Dianne", "DSC", "2025-01-01")
    found = run_with_responses(prov.get_campaign("4c054f71-790f-4cab-9530-2b18ba243c27"), [ok(listing)])
    assert found.name == "Dianne Spencer"
    with pytest.raises(ResourceNotFound):
        run_with_responses(prov.get_campaign("nope"), [ok(listing)])
    rec = Recorder(ok(CAMPAIGN_CREATED))
    deleted = run_with_responses(prov.delete_campaign("4c054f71-790f-4cab-9530-2b18ba243c27"), rec)
    assert rec.requests[0].method == "DELETE" and deleted is not None


def test_v2_template_samples() -> None:
    prov = v2()
    rec = Recorder(ok(TEMPLATE_CREATED))
    made = run_with_responses(prov.create_template(Template(
        name="First template", body="Welcome to our platform!", description="Used for new user onboarding")), rec)
    assert rec.body() == {"name": "First template", "description": "Used for new user onboarding",
                          "message": "Welcome to our platform!"}
    assert made.provider_ids == {"squad": "5b9840d0-2382-4289-a4da-d7ecf3270d98"}
    listed = run_with_responses(prov.list_templates(), [ok(TEMPLATES)])
    assert [(t.name, t.body, t.provider_ids["squad"]) for t in listed] == [
        ("Test_002", "Hi, Get a life", "a3795ac3-8252-4ce0-aa6c-def776570455")]
    rec = Recorder(ok(TEMPLATE_UPDATED))
    edited = run_with_responses(prov.edit_template("edb720f0", name="Updated Template",
                                                   body="This is an updated message."), rec)
    assert rec.requests[0].method == "PATCH" and rec.requests[0].url.path == "/sms/template/edb720f0"
    assert rec.body() == {"name": "Updated Template", "message": "This is an updated message."}
    assert edited.description == "Updated description here"
    deleted = run_with_responses(prov.delete_template("edb720f0"), [ok(TEMPLATE_DELETED)])
    assert deleted is not None and deleted.name == "Updated Template"


def test_v2_template_paging_and_filters() -> None:
    prov = v2(page_size=2)
    paged = prov.templates(sort_by="createdAt", direction="ASC", date_from=date(2025, 1, 1), date_to="2025-12-31")
    assert dict(paged.first.url.params) == {"perPage": "2", "page": "1", "sort_by": "createdAt", "dir": "ASC",
                                            "date_from": "2025-01-01", "date_to": "2025-12-31"}
    row = TEMPLATES["data"]["rows"][0]  # type: ignore[index]

    def page(n: int) -> httpx.Response:
        rows = [dict(row, uuid=f"u{n}{i}") for i in range(2 if n < 2 else 1)]
        return ok({"status": 200, "success": True, "message": "Success", "data": {"count": 5, "rows": rows}})

    rec = Recorder(page(0), page(1), page(2))
    items = run_with_responses(prov.list_templates(), rec)
    assert len(items) == 5
    assert [r.url.params["page"] for r in rec.requests] == ["1", "2", "3"]
    # a server ignoring perPage returns everything at once: no second request, no duplicates
    everything = ok({"status": 200, "success": True, "message": "Success",
                     "data": {"count": 3, "rows": [dict(row, uuid=f"x{i}") for i in range(3)]}})
    assert len(run_with_responses(prov.list_templates(), [everything])) == 3


def test_v2_bucket_samples_and_upload() -> None:
    prov = v2()
    rec = Recorder(ok(BUCKET_CREATED))
    bucket = run_with_responses(prov.create_bucket("file1234", "baa baa black sheep", file_name="teest.csv"), rec)
    assert rec.body() == {"name": "file1234", "description": "baa baa black sheep", "file_name": "teest.csv"}
    assert bucket.id == "ec571a9a-0c78-4d98-9956-1e5ede72d344" and bucket.status == "pending"
    assert bucket.raw["signed_url"] == SIGNED_URL
    with pytest.raises(ValidationError, match=r"\.csv"):
        run_with_responses(prov.create_bucket("x", file_name="numbers.xlsx"), [])

    rec = Recorder(httpx.Response(200))
    run_with_responses(prov.upload_bucket_csv(SIGNED_URL, "phone_number\n08064834084\n"), rec)
    put = rec.requests[0]
    assert put.method == "PUT" and str(put.url) == SIGNED_URL
    assert put.headers["x-amz-acl"] == "public-read"
    assert "authorization" not in put.headers  # never send the Squad key to S3
    with pytest.raises(AuthFailed):
        run_with_responses(prov.upload_bucket_csv(SIGNED_URL, b""), [httpx.Response(
            403, text="<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>")])

    listed = run_with_responses(prov.buckets().collect(), [ok(BUCKETS)])
    assert [b.name for b in listed] == ["file1234", "file123"]
    got = run_with_responses(prov.get_bucket("0f704e13-7b52-4ceb-a3ee-a1a253d14d97"), [ok(BUCKETS)])
    assert got.name == "file123"
    with pytest.raises(ResourceNotFound):
        run_with_responses(prov.get_bucket("missing"), [ok(BUCKETS)])

    for method in ("DELETE", "POST"):
        rec = Recorder(ok(BUCKET_DELETED))
        gone = run_with_responses(v2(bucket_delete_method=method).delete_bucket("907f7702"), rec)
        assert (rec.requests[0].method, rec.requests[0].url.path) == (method, "/sms/bucket/907f7702")
        assert gone is not None and gone.id == "907f7702-6bd3-4667-b8ad-3b041cb3e217"


def test_v2_create_contact_list_uploads_csv() -> None:
    rec = Recorder(ok(BUCKET_CREATED), httpx.Response(200))
    made = run_with_responses(v2().create_contact_list(ContactList(name="Nov birthdays"),
                                                       ["+2348064834084", "08064834085"]), rec)
    assert rec.body()["file_name"] == "Nov-birthdays.csv"
    assert rec.requests[1].content == b"phone_number\n08064834084\n08064834085\n"
    assert made.size == 2
    with pytest.raises(ValidationError, match="Nigerian"):
        run_with_responses(v2().create_contact_list(ContactList(name="x"), ["+447912345678"]), [])


def test_v2_lacks_v1_only_operations() -> None:
    prov = v2()
    sent = SendResult(to="+2348064834084", status=Status.SENT, provider_message_id="t", batch_id="b")
    for op in (prov.status(sent), prov.statistics(), prov.hourly_statistics("2024-03-12"),
               prov.campaign_statistics(), prov.sender_ids(), prov.rename_bucket("1", "x"),
               prov.send_message(recipients="0806", body="x")):
        with pytest.raises(Unsupported):
            run_with_responses(op, [])
    for factory in (lambda: prov.message_status("b"), lambda: prov.campaign_messages("1"),
                    lambda: prov.messages_by_phone("+2348064834084")):
        with pytest.raises(Unsupported):
            factory()
    assert prov.capabilities.status_lookup is False and prov.capabilities.bulk is True


# =================================================================== v1 samples (seeds 000/001)

V1_SENT = {"status": "SUCCESS", "message": "messages sent successfully", "data": {"sent": 1, "batch_id": "40FACAF358EA"}}

V1_CAMPAIGNS = {
    "status": "SUCCESS", "message": "campaigns retrieved successfully",
    "data": {"items": [{"id": 1, "name": "abc_123", "client_id": 1, "template_id": 1, "bucket_id": 1, "total": 2,
                        "created_at": "2024-02-29T11:27:13.000Z", "created_by": None}], "total": 1},
}
V1_CAMPAIGN_MESSAGES = {"status": "SUCCESS", "message": "campaign messages retrieved successfully",
                        "data": {"items": [], "total": [{"total": "0"}]}}
V1_STATISTICS = {"status": "SUCCESS", "message": "statistics retrieved successfully",
                 "data": {"submitted": 0, "invalid": 0, "sent": 1, "absent": 0, "failed": 0, "delivered": 19,
                          "deliveryFailed": 2}}
V1_CAMPAIGN_STATISTICS = {**V1_STATISTICS, "message": "campaign statistics retrieved successfully"}
V1_BY_PHONE = {"status": "SUCCESS", "message": "phone messages retrieved successfully",
               "data": {"items": [], "total": [{"total": "0"}]}}
V1_ITEM = {
    "status": "submitted", "id": 7900221, "transaction_id": "8_9405c9d2-2411-42af-8ec7-88ffbc70ea61_0",
    "phonenumber": "08132448598", "message": "Testing for retrieveal for Elizabeth and Anthony",
    "sender_id": "HabariPay", "network": None, "charge": "4", "created_at": "2025-05-08T10:25:57.000Z",
    "sent_timestamp": None, "dlr_timestamp": None, "pages": 1, "message_type": "direct",
}
V1_BY_PARAMS = {"status": "SUCCESS", "message": "messages retrieved successfully",
                "data": {"items": [V1_ITEM], "pageInfo": {"hasNextPage": False, "nextCursor": None,
                                                          "prevCursor": None}}}
_ZERO = {"submitted_count": 0, "sent_count": 0, "invalid_count": 0, "successful_count": 0, "failed_count": 0,
         "absent_count": 0}
# the seed lists 24 identical all-zero hours "00:00" .. "23:00"
V1_HOURLY = {"status": "SUCCESS", "message": "hourly statistics retrieved successfully",
             "data": {**_ZERO, "avg_queue_time": 0, "avg_delivery_time": 0, "oldest_on_queue": None,
                      "queue_count": None, "detail": [{"hour": f"{h:02d}:00", **_ZERO} for h in range(24)]}}

V1_BUCKET_CREATED = {
    "status": "CREATED", "message": "bucket created successfully",
    "data": {"id": 2, "name": "nov2022", "description": "november birthdays", "params": ["phone_number", "param1"],
             "client_id": 1, "created_at": "2024-04-08T11:55:08.000Z", "created_by": 1, "updated_at": None,
             "updated_by": None, "bucket_items": 2},
}
_V1_BUCKET = {"id": 1, "name": "nov2022", "description": "november birthdays", "params": ["phone_number", "param1"],
              "client_id": 1, "created_at": "2024-02-29T11:22:51.000Z", "created_by": 8, "updated_at": None,
              "updated_by": None}
V1_BUCKETS = {"message": "success", "data": {"items": [
    _V1_BUCKET, {**_V1_BUCKET, "id": 2, "created_at": "2024-04-08T11:55:08.000Z", "created_by": 1}], "total": 2}}
V1_BUCKET_RENAMED = {"message": "success", "data": {**_V1_BUCKET, "name": "nov2023_bucket",
                                                    "updated_at": "2024-04-08T12:47:21.000Z", "updated_by": 1}}
V1_DELETED = {"message": "success"}

V1_TEMPLATE_BODY = ("Txn: Credit\nAc:#$TXN_ACC$#\nAmt:#$AMOUNT$#\nDes:Cash Dep/_BRC_/#$OFS_ACC$#/#$TRANSACTION_ID$#"
                    "\nDate:#$TXN_DATE$#\nBal#$CCY$##$AVAIL_BAL$#\n#$sms_advert#")
V1_TEMPLATE_CREATED = {
    "status": "CREATED", "message": "template created successfully",
    "data": {"id": 5, "name": "CHDP_C", "description": "CASH DEPOSIT CREDITING", "client_id": 2,
             "created_at": "2024-04-08T13:02:44.000Z", "created_by": 1, "updated_at": None, "updated_by": None},
}
V1_TEMPLATES = {
    "status": "SUCCESS", "message": "templates retrieved successfully",
    "data": {"items": [{
        "id": 2, "name": "FTRQ_D",
        "body": "Txn: Debit\nAc:#$TXN_ACC$#\nAmt:#$AMOUNT$#\nDes:AAC/Debit/Funds Transfer/#$TRANSACTION_ID$#"
                "\nDate:#$TXN_DATE$#\nBal:#$AVAIL_BAL$#\n#$sms_advert$#",
        "description": "FUNDS TRANSFER DEBIT", "client_id": 2,
        "params": ["phone_number", "TXN_ACC", "AMOUNT", "TRANSACTION_ID", "TXN_DATE", "AVAIL_BAL", "sms_advert"],
        "created_at": "2024-03-20T20:28:53.000Z", "created_by": 10, "updated_at": "2024-03-26T06:48:22.000Z",
        "updated_by": 10}], "total": 4},
}
V1_TEMPLATE_UPDATED = {
    "status": "SUCCESS", "message": "template updated successfully",
    "data": {"id": 3, "name": "FTRQ_C", "description": "FUNDS TRANSFER CREDIT", "client_id": 2,
             "created_at": "2024-03-20T20:31:37.000Z", "created_by": 10, "updated_at": "2024-04-08T13:08:32.000Z",
             "updated_by": 1},
}


@pytest.mark.parametrize("prefix", ["/service", "/dashboard"])
def test_v1_send_sample(prefix: str) -> None:
    rec = Recorder(ok(V1_SENT))
    result = run_with_responses(v1(v1_message_prefix=prefix).send(msg("+2348132448598", "hi")), rec)
    req = rec.requests[0]
    assert (req.method, str(req.url)) == ("POST", f"{V1_BASE_URL}{prefix}/message")
    assert req.headers["key"] == V1_KEY and req.headers["secret"] == V1_SECRET
    assert rec.body() == {"is_campaign": False, "reference": "msg_1", "use_bucket": False,
                          "recipients": "08132448598", "use_template": False, "body": "hi", "sender": "S-Alert"}
    assert result.status is Status.SUBMITTED and result.raw_status == "SUCCESS"
    assert result.provider_message_id == result.batch_id == "40FACAF358EA"


def test_v1_send_message_sample_request_and_header_names() -> None:
    rec = Recorder(ok(V1_SENT))
    receipt = run_with_responses(v1(v1_key_header="x-vas-key", v1_secret_header="x-vas-secret").send_message(
        recipients="1", body="1", use_bucket=True, use_template=True, is_campaign=True, reference="abc_123",
        sender="GTBank"), rec)
    # the documented sample request
    assert rec.body() == {"is_campaign": True, "reference": "abc_123", "use_bucket": True, "recipients": "1",
                          "use_template": True, "body": "1", "sender": "GTBank"}
    assert rec.requests[0].headers["x-vas-key"] == V1_KEY
    assert rec.requests[0].headers["x-vas-secret"] == V1_SECRET
    assert (receipt.sent, receipt.batch_id) == (1, "40FACAF358EA")


def test_v1_send_message_always_sends_a_reference() -> None:
    # seed 000 stars all seven fields, reference included: one is generated when none is given
    rec = Recorder(ok(V1_SENT), ok(V1_SENT))
    prov = v1()
    run_with_responses(prov.send_message(recipients="08132448598", body="hi"), rec)
    run_with_responses(prov.send_message(recipients="08132448598", body="hi"), rec)
    first, second = rec.body(0), rec.body(1)
    # "sender" is the one field the seeds' text calls optional: sent only when given
    assert list(first) == ["is_campaign", "reference", "use_bucket", "recipients", "use_template", "body"]
    assert isinstance(first["reference"], str) and first["reference"].startswith("ref_")
    assert first["reference"] != second["reference"]
    # send(): the caller's reference, else the message id, else a generated one
    for message, expected in ((msg(reference="order-7"), "order-7"), (msg(message_id="msg_42"), "msg_42"),
                              (msg(message_id=""), None)):
        rec = Recorder(ok(V1_SENT))
        run_with_responses(prov.send(message), rec)
        reference = rec.body()["reference"]
        assert reference == expected if expected else reference.startswith("ref_")


def test_v1_send_by_template_id() -> None:
    rec = Recorder(ok(V1_SENT))
    run_with_responses(v1().send(msg("+2348132448598", "rendered", template_id="5")), rec)
    assert rec.body()["use_template"] is True and rec.body()["body"] == "5"
    rec = Recorder(ok(V1_SENT))
    run_with_responses(v1().send(msg("+2348132448598", "Hi Ada", template_id="5", variables={"n": "Ada"})), rec)
    assert rec.body()["use_template"] is False and rec.body()["body"] == "Hi Ada"


def test_v1_error_in_200_and_zero_sent() -> None:
    with pytest.raises(RequestRejected, match="invalid recipient"):
        run_with_responses(v1().send(msg()), [ok({"status": "FAILED", "message": "invalid recipient", "data": {}})])
    zero = {"status": "SUCCESS", "message": "messages sent successfully", "data": {"sent": 0, "batch_id": "AB"}}
    assert run_with_responses(v1().send(msg()), [ok(zero)]).status is Status.REJECTED


def test_v1_campaigns_sample() -> None:
    prov = v1()
    paged = prov.campaigns()
    assert str(paged.first.url) == f"{V1_BASE_URL}/service/template/by-client/2?page=1&count=50"
    items = run_with_responses(paged.collect(), [ok(V1_CAMPAIGNS)])
    assert len(items) == 1
    c = items[0]
    assert (c.id, c.name, c.template_id, c.contact_list_id, c.recipient_count) == ("1", "abc_123", "1", "1", 2)


def test_v1_campaign_messages_and_by_phone_samples_with_total_quirk() -> None:
    prov = v1()
    paged = prov.campaign_messages("1", page_size=10)
    assert str(paged.first.url) == f"{V1_BASE_URL}/service/message/campaign/messages/by-campaign/1?page=1&count=10"
    page = run_with_responses(paged.fetch(paged.first), [ok(V1_CAMPAIGN_MESSAGES)])
    assert (page.items, page.total, page.next_request) == ([], 0, None)
    paged = prov.messages_by_phone("+2348012345678")
    assert paged.first.url.path == "/service/message/by-phone/08012345678"
    page = run_with_responses(paged.fetch(paged.first), [ok(V1_BY_PHONE)])
    assert (page.items, page.total) == ([], 0)


def test_v1_message_list_paging_follows_total() -> None:
    prov = v1(page_size=1)
    item2 = dict(V1_ITEM, id=2, transaction_id="t2", status="Delivery Failed")
    first = ok({"status": "SUCCESS", "message": "x", "data": {"items": [V1_ITEM], "total": [{"total": "2"}]}})
    second = ok({"status": "SUCCESS", "message": "x", "data": {"items": [item2], "total": [{"total": "2"}]}})
    rec = Recorder(first, second)
    reports = run_with_responses(prov.messages_by_phone("08132448598").collect(), rec)
    assert [r.status for r in reports] == [Status.SUBMITTED, Status.UNDELIVERED]
    assert [r.url.params["page"] for r in rec.requests] == ["1", "2"]


def test_v1_statistics_samples() -> None:
    prov = v1()
    rec = Recorder(ok(V1_STATISTICS))
    stats = run_with_responses(prov.statistics(), rec)
    assert rec.requests[0].url.path == "/service/message/statistics/by-client/2"
    assert (stats.sent, stats.delivered, stats.undelivered, stats.total) == (1, 19, 2, 22)
    assert stats.delivery_rate == pytest.approx(19 / 21)
    rec = Recorder(ok(V1_CAMPAIGN_STATISTICS))
    stats = run_with_responses(prov.statistics(campaign_id=2), rec)
    assert rec.requests[0].url.path == "/service/message/statistics/by-campaign/2"
    assert stats.delivered == 19
    with pytest.raises(ValidationError):
        run_with_responses(prov.statistics(month=3), [])


def test_v1_status_by_batch_sample() -> None:
    prov = v1()
    sent = SendResult(to="+2348132448598", status=Status.SUBMITTED, provider_message_id="61AF806F8AE8",
                      batch_id="61AF806F8AE8")
    rec = Recorder(ok(V1_BY_PARAMS))
    report = run_with_responses(prov.status(sent), rec)
    assert str(rec.requests[0].url) == f"{V1_BASE_URL}/service/message/by-params?batch_id=61AF806F8AE8"
    assert report.status is Status.SUBMITTED and report.raw_status == "submitted"
    assert report.provider_message_id == "61AF806F8AE8" and report.to == "+2348132448598"
    assert report.cost == Decimal("4") and report.segments == 1
    assert report.occurred_at == datetime(2025, 5, 8, 10, 25, 57, tzinfo=timezone.utc)
    assert report.raw["transaction_id"] == "8_9405c9d2-2411-42af-8ec7-88ffbc70ea61_0"


def test_v1_cursor_paging() -> None:
    prov = v1()
    other = dict(V1_ITEM, phonenumber="08132448590", status="Delivered")
    first = ok({"status": "SUCCESS", "message": "messages retrieved successfully",
                "data": {"items": [other], "pageInfo": {"hasNextPage": True, "nextCursor": "abc", "prevCursor": None}}})
    rec = Recorder(first, ok(V1_BY_PARAMS))
    sent = SendResult(to="+2348132448598", status=Status.SUBMITTED, batch_id="B")
    report = run_with_responses(prov.status(sent), rec)
    assert rec.requests[1].url.params["cursor"] == "abc"
    assert report.to == "+2348132448598"
    assert run_with_responses(v1(v1_cursor_param="after").status(sent), Recorder(first, ok(V1_BY_PARAMS))).to


def test_v1_hourly_sample() -> None:
    rec = Recorder(ok(V1_HOURLY))
    stats = run_with_responses(v1(v1_message_prefix="/dashboard").statistics(date="2024-03-12"), rec)
    assert str(rec.requests[0].url) == (
        f"{V1_BASE_URL}/dashboard/message.summary/hourly-statistics/by-client/2?date=2024-03-12")
    assert len(stats.detail) == 24 and stats.detail[13].label == "13:00"
    assert stats.detail[13].period_start == datetime(2024, 3, 12, 12, 0, tzinfo=timezone.utc)
    assert stats.avg_queue_seconds == 0 and stats.total == 0
    with pytest.raises(ValidationError):
        run_with_responses(v1().hourly_statistics("12/03/2024"), [])


def test_v1_bucket_samples() -> None:
    prov = v1()
    rec = Recorder(ok(V1_BUCKET_CREATED))
    made = run_with_responses(prov.create_contact_list(
        ContactList(name="nov2022", description="November birthdays"), ["+2348012345678", "08012345679"]), rec)
    assert rec.requests[0].url.path == "/dashboard/bucket"
    assert rec.body() == {"name": "nov2022", "description": "November birthdays", "client_id": 2,
                          "items": [{"phone_number": "08012345678"}, {"phone_number": "08012345679"}]}
    assert (made.id, made.size) == ("2", 2)
    listed = run_with_responses(prov.buckets().collect(), [ok(V1_BUCKETS)])  # no "status" key
    assert [b.id for b in listed] == ["1", "2"]
    rec = Recorder(ok(V1_BUCKET_RENAMED))
    renamed = run_with_responses(prov.rename_bucket("1", "nov2023_bucket"), rec)
    assert rec.requests[0].method == "PATCH" and rec.body() == {"name": "nov2023_bucket"}
    assert renamed.name == "nov2023_bucket"
    assert run_with_responses(prov.delete_bucket("1"), [ok(V1_DELETED)]) is None


def test_v1_template_samples() -> None:
    prov = v1()
    rec = Recorder(ok(V1_TEMPLATE_CREATED))
    neutral = Template(name="CHDP_C", body="Amt:{AMOUNT} Bal:{CCY}{AVAIL_BAL}", description="CASH DEPOSIT CREDITING")
    made = run_with_responses(prov.create_template(neutral), rec)
    assert rec.body() == {"name": "CHDP_C", "body": "Amt:#$AMOUNT$# Bal:#$CCY$##$AVAIL_BAL$#", "client_id": 2,
                          "description": "CASH DEPOSIT CREDITING"}
    assert made.provider_ids == {"squad": "5"} and made.body == neutral.body
    listed = run_with_responses(prov.list_templates(), [ok(V1_TEMPLATES)])
    assert listed[0].body.startswith("Txn: Debit\nAc:{TXN_ACC}\nAmt:{AMOUNT}")
    assert listed[0].body.endswith("{sms_advert}")
    rec = Recorder(ok(V1_TEMPLATE_UPDATED))
    edited = run_with_responses(prov.edit_template("3", body="Credit {AMOUNT}"), rec)
    assert rec.body() == {"body": "Credit #$AMOUNT$#"} and edited.provider_ids == {"squad": "3"}
    rec = Recorder(ok(V1_DELETED))
    assert run_with_responses(prov.delete_template("3"), rec) is None
    assert rec.requests[0].url.path == "/dashboard/template/3"


def test_v1_template_body_with_malformed_placeholder_is_kept() -> None:
    item = dict(V1_TEMPLATES["data"]["items"][0], body=V1_TEMPLATE_BODY)  # type: ignore[index]
    listed = run_with_responses(v1().list_templates(),
                                [ok({"status": "SUCCESS", "message": "x", "data": {"items": [item], "total": 1}})])
    assert listed[0].body.endswith("\n#$sms_advert#")  # the seed's unterminated placeholder stays literal


V1_NO_CAMPAIGNS = {"status": "SUCCESS", "message": "campaigns retrieved successfully",
                   "data": {"items": [], "total": 0}}


def test_v1_campaign_flow() -> None:
    prov = v1()
    rec = Recorder(ok(V1_NO_CAMPAIGNS), ok(V1_SENT), ok(V1_CAMPAIGNS))
    made = run_with_responses(prov.create_campaign(Campaign(name="abc_123", contact_list_id="1", template_id="1")), rec)
    assert rec.body(1) == {"is_campaign": True, "reference": "abc_123", "use_bucket": True, "recipients": "1",
                          "use_template": True, "body": "1", "sender": "GTBank"}
    assert made.id == "1" and made.status is CampaignStatus.RUNNING
    assert made.provider_options["batch_id"] == "40FACAF358EA"
    got = run_with_responses(prov.get_campaign("1"), [ok(V1_CAMPAIGNS), ok(V1_CAMPAIGN_STATISTICS)])
    assert got.status is CampaignStatus.RUNNING  # one message still "sent" (with the telco)
    with pytest.raises(Unsupported):
        run_with_responses(prov.create_campaign(Campaign(
            name="x", contact_list_id="1", text="x", start_at=datetime(2030, 1, 1, tzinfo=timezone.utc))), [])


def test_v1_campaign_not_listed_yet_gets_no_invented_id(caplog: pytest.LogCaptureFixture) -> None:
    # seed 001: campaigns have numeric ids; the name is never an id. The listing may lag the send.
    prov = v1()
    rec = Recorder(ok(V1_NO_CAMPAIGNS), ok(V1_SENT), *[ok(V1_NO_CAMPAIGNS)] * 3)
    with caplog.at_level("WARNING"):
        made = run_with_responses(
            prov.create_campaign(Campaign(name="abc_123", contact_list_id="1", template_id="1")), rec)
    assert made.id is None  # not "abc_123": later calls would send it where the id goes
    assert made.name == "abc_123" and made.status is CampaignStatus.RUNNING
    assert made.provider_options["batch_id"] == made.raw["batch_id"] == "40FACAF358EA"
    assert "not listed" in made.raw["note"] and "campaigns()" in made.raw["note"]
    listings = [r for r in rec.requests if r.method == "GET"]
    assert len(listings) == 1 + 3  # one before the send, then a few attempts, bounded
    assert all(r.url.path == "/service/template/by-client/2" for r in listings)
    assert any("abc_123" in r.getMessage() and "no id" in r.getMessage() for r in caplog.records)


def test_v1_campaign_listed_on_a_later_attempt() -> None:
    prov = v1(v1_campaign_lookups=2)
    rec = Recorder(ok(V1_NO_CAMPAIGNS), ok(V1_SENT), ok(V1_NO_CAMPAIGNS), ok(V1_CAMPAIGNS))
    made = run_with_responses(prov.create_campaign(Campaign(name="abc_123", contact_list_id="1", template_id="1")),
                              rec)
    assert made.id == "1" and "note" not in made.raw
    rec = Recorder(ok(V1_NO_CAMPAIGNS), ok(V1_SENT), ok(V1_NO_CAMPAIGNS), ok(V1_NO_CAMPAIGNS))
    made = run_with_responses(prov.create_campaign(Campaign(name="abc_123", contact_list_id="1", template_id="1")),
                              rec)
    assert made.id is None and len(rec.requests) == 4


def test_v1_campaign_reusing_a_name_is_not_taken_for_the_older_one() -> None:
    # "abc_123" (id 1) exists already; the new campaign of that name is not listed yet
    prov = v1()
    rec = Recorder(ok(V1_CAMPAIGNS), ok(V1_SENT), *[ok(V1_CAMPAIGNS)] * 3)
    made = run_with_responses(prov.create_campaign(Campaign(name="abc_123", contact_list_id="1", template_id="1")),
                              rec)
    assert [r.method for r in rec.requests] == ["GET", "POST", "GET", "GET", "GET"]
    assert made.id is None  # not "1": that is the older campaign
    newer = {**V1_CAMPAIGNS, "data": {"items": [*V1_CAMPAIGNS["data"]["items"],  # type: ignore[index]
                                                {**V1_CAMPAIGNS["data"]["items"][0], "id": 7}],  # type: ignore[index]
                                      "total": 2}}
    rec = Recorder(ok(V1_CAMPAIGNS), ok(V1_SENT), ok(V1_CAMPAIGNS), ok(newer))
    made = run_with_responses(prov.create_campaign(Campaign(name="abc_123", contact_list_id="1", template_id="1")),
                              rec)
    assert made.id == "7"


def test_v1_sender_ids_inf_shapes() -> None:
    prov = v1()
    rec = Recorder(ok({"status": "SUCCESS", "message": "x", "data": {"items": [{"sender_id": "GTBank"}], "total": 1}}))
    assert run_with_responses(prov.sender_ids(), rec) == ["GTBank"]
    assert rec.requests[0].url.path == "/dashboard/sender/2"
    assert run_with_responses(prov.sender_ids(), [ok({"status": "SUCCESS", "message": "x",
                                                     "data": ["HabariPay", {"name": "S-Alert"}]})]) == [
        "HabariPay", "S-Alert"]


def test_v1_lacks_v2_only_operations() -> None:
    prov = v1()
    with pytest.raises(Unsupported):
        run_with_responses(prov.send_many([msg()]), [])
    with pytest.raises(Unsupported):
        run_with_responses(prov.delete_campaign("x"), [])
    with pytest.raises(Unsupported):
        run_with_responses(prov.upload_bucket_csv(SIGNED_URL, b""), [])
    with pytest.raises(Unsupported):
        prov.templates(sort_by="name")
    assert prov.capabilities.status_lookup and prov.capabilities.statistics and not prov.capabilities.bulk


def test_v1_config_errors() -> None:
    def make(creds: dict[str, str], **opts: Any) -> SquadProvider:
        return SquadProvider(ProviderSettings(plugin="squad", credentials=creds,
                                              options={"api_version": "v1", **opts}))

    with pytest.raises(ConfigError, match=r"credentials\.key"):
        make({})
    with pytest.raises(ConfigError, match="encryption_iv"):
        make({"key": V1_KEY})
    prov = make({"key": V1_KEY, "secret": "s"})
    with pytest.raises(ConfigError, match="client_id"):
        run_with_responses(prov.statistics(), [])
    with pytest.raises(ConfigError, match="secret_key"):
        SquadProvider(ProviderSettings(plugin="squad"))
    with pytest.raises(ConfigError, match="region"):
        SquadProvider(ProviderSettings(plugin="squad", credentials={"secret_key": "x"}, options={"region": "XX"}))


def test_v1_derived_secret_header() -> None:
    pytest.importorskip("cryptography")
    from smsgate_squad.auth import derive_v1_secret, wat_today

    prov = SquadProvider(ProviderSettings(plugin="squad", credentials={"key": V1_KEY, "encryption_iv": "i" * 16},
                                          options={"api_version": "v1", "client_id": 7, "user_id": 9}))
    rec = Recorder(ok(V1_SENT))
    run_with_responses(prov.send(msg()), rec)
    expected = derive_v1_secret(V1_KEY, "i" * 16, "7", "9", wat_today())
    assert rec.requests[0].headers["secret"] == expected
    assert expected in prov.secrets()  # so errors redact it


def test_v2_campaign_cost_carries_the_configured_currency() -> None:
    """A v2 campaign's ``cost`` ("0.00") comes without a unit: it is the account's, the configured
    ``currency`` (as a send's cost without one); without one configured it stays ``None``."""
    listing = {"status": 200, "success": True, "message": "Success",
               "data": {"count": 1, "rows": [CAMPAIGN_CREATED["data"]]}}
    priced = SquadProvider(ProviderSettings(plugin="squad", credentials={"secret_key": V2_KEY},
                                            sender="S-Alert", currency="NGN"))
    made = run_with_responses(priced.create_campaign(Campaign(name="P", contact_list_id="b", template_id="t")),
                              [ok(CAMPAIGN_CREATED)])
    assert (made.cost, made.currency) == (Decimal("0.00"), "NGN")
    found = run_with_responses(priced.get_campaign("4c054f71-790f-4cab-9530-2b18ba243c27"), [ok(listing)])
    assert found.currency == "NGN"
    deleted = run_with_responses(priced.delete_campaign("4c054f71-790f-4cab-9530-2b18ba243c27"),
                                 [ok(CAMPAIGN_CREATED)])
    assert deleted is not None and deleted.currency == "NGN"
    plain = run_with_responses(v2().create_campaign(Campaign(name="P", contact_list_id="b", template_id="t")),
                               [ok(CAMPAIGN_CREATED)])
    assert plain.currency is None
