"""Contract tests: the seed document's examples fed through the adapter, no server.

Every request the adapter builds is checked against the documented method, path
and body; every documented response body is parsed (including the docs' typos:
the ``[...]``-wrapped page, the unquoted GUID, the ``2023-01-91`` dates).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
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
    TemplateError,
    ValidationError,
)
from smsgate.models import Campaign, CampaignStatus, Contact, OutboundMessage, SendResult, Status
from smsgate.provider import ProviderSettings
from smsgate.transport import run_with_responses
from smsgate_campaigns_api import (
    CampaignRejected,
    CampaignsApiProvider,
    Filter,
    Sort,
    WebhookRejected,
    WebhookTokenRejected,
)

BASE = "https://api.sms.dynamicmessaging.co.uk"
KEY = "contract-key-123456"

# ------------------------------------------------------------------ seed samples (003)
SEED_CAMPAIGN = {
    "id": "string",
    "startDateTime": "2023-06-27T03:04:01.374Z",
    "sender": "string",
    "recipientCount": 0,
    "message": "string",
    "status": 0,
    "optOutLinkId": 0,
    "trackLinkUrl": "string",
}
SEED_CAMPAIGN_PAGE = {"pageIndex": 1, "totalPages": 428, "totalRecords": 4274, "items": [SEED_CAMPAIGN]}
SEED_CONTACT_PAGE = {
    "pageIndex": 1,
    "totalPages": 1,
    "totalRecords": 4,
    "items": [{"phoneNumber": "string", "name": "string", "custom1": "string", "custom2": "string", "id": "string"}],
}
SEED_CREATE_BODY = {
    "startDateTime": "2023-06-27T03:10:04.492Z",
    "sender": "string",
    "message": "string",
    "optOutLinkId": 0,
    "trackLinkUrl": "string",
    "contacts": [
        {"phoneNumber": "string", "name": "string", "custom1": "string", "custom2": "string",
         "contactGroupId": "3fa85f64-5717-4562-b3fc-2c963f66afa6"},
    ],
}
SEED_UPDATE_KEYS = {"startDateTime", "sender", "message", "optOutLinkId", "trackLinkUrl"}
# FACTS 3.1 / SMS_Messages page
SEED_SMS = {
    "newId": "00000000-0000-0000-0000-000000000000",
    "id": 123456,
    "client_Id": 8,
    "dateCreated": "2023-01-91T00:00:00.000",
    "dateModified": "2023-01-91T00:00:00.000",
    "phoneNumber": "0123456789",
    "status": 0,
    "price": 0.000,
    "smsCount": 1,
    "dateReceived": "2023-01-91T00:00:00.000",
    "countryCode": "UK",
    "senderNumber": "DynamicM",
    "message": "hello world, this is a message",
    "campaignId": None,
}
SEED_GUID = "cbd21c29-a5d0-4103-ab25-fa70c220b239"
# FACTS 3.4 / Web_Hooks page
SEED_WEBHOOK_SMS = (
    '{"webHookType": 1, "data":{"clientId":0, "Id":0, "phoneNumberId":"", "phoneNumber":"", "parts":0,'
    ' "dateCreated":"2023-06-27T03:04:01.374Z", "lastUpdated":"2023-06-27T03:04:01.374Z", "price": 0.0,'
    ' "statusCode":0}}'
)
SEED_WEBHOOK_VOICE = (
    '{"webHookType": 0, "data":{"clientId":0, "outCome":0, "stage":0, "startTime":"2023-06-27T03:04:01.374Z",'
    ' "endTime":"2023-06-27T03:04:01.374Z", "userInput":"string", "campaignId":"", "phoneNumber":""}}'
)


def provider(**options: Any) -> CampaignsApiProvider:
    creds = {"api_key": KEY}
    if "webhook_token" in options:
        creds["webhook_token"] = options.pop("webhook_token")
    return CampaignsApiProvider(ProviderSettings(plugin="campaigns_api", credentials=creds, sender="ACME",
                                                 options=options))


def ok(status: int = 200, body: Any = None, text: str | None = None) -> httpx.Response:
    if text is not None:
        return httpx.Response(status, text=text)
    if body is None:
        return httpx.Response(status)
    return httpx.Response(status, json=body)


class Recorder:
    """Answers with canned responses and remembers each request."""

    def __init__(self, *responses: httpx.Response) -> None:
        self.responses = list(responses)
        self.requests: list[httpx.Request] = []

    def __iter__(self) -> Any:
        for response in self.responses:
            def answer(request: httpx.Request, response: httpx.Response = response) -> httpx.Response:
                self.requests.append(request)
                return response

            yield answer


def body_of(request: httpx.Request) -> Any:
    return json.loads(request.content) if request.content else None


# ------------------------------------------------------------------------ campaigns


def test_list_campaigns_seed_page() -> None:
    prov = provider()
    paged = prov.list_campaigns(page_size=10)
    assert paged.first.method == "GET" and paged.first.url.path == "/api/Campaigns"
    assert dict(paged.first.url.params) == {"page": "1", "pageSize": "10"}
    page = run_with_responses(paged.fetch(paged.first), [ok(body=SEED_CAMPAIGN_PAGE)])
    assert page.total == 4274
    [campaign] = page.items
    assert campaign.id == "string" and campaign.sender == "string" and campaign.text == "string"
    assert campaign.start_at == datetime(2023, 6, 27, 3, 4, 1, 374000, tzinfo=timezone.utc)
    assert campaign.status == CampaignStatus.SCHEDULED and campaign.raw_status == "0"
    assert campaign.recipient_count == 0
    assert campaign.provider_options == {"trackLinkUrl": "string"}  # optOutLinkId 0 = none
    assert campaign.raw == SEED_CAMPAIGN
    assert page.next_request is not None
    assert dict(page.next_request.url.params) == {"page": "2", "pageSize": "10"}


def test_list_campaigns_tolerates_the_docs_array_wrapper_and_stops_on_last_page() -> None:
    prov = provider()
    paged = prov.list_campaigns(page_size=10)
    last = dict(SEED_CAMPAIGN_PAGE, pageIndex=428)
    request = prov.request("GET", "/api/Campaigns", params={"page": 428, "pageSize": 10})
    page = run_with_responses(paged.fetch(request), [ok(body=[last])])
    assert [c.id for c in page.items] == ["string"]
    assert page.next_request is None


def test_list_campaigns_sends_sieve_filters_and_sorts() -> None:
    prov = provider()
    paged = prov.list_campaigns(filters=[Filter("status", "==", 1), Filter("sender", "@=*", "acme, inc")],
                                sorts=[Sort("startDateTime", descending=True), "sender"])
    params = paged.first.url.params
    assert params["filters"] == "status==1,sender@=*acme\\, inc"
    assert params["sorts"] == "-startDateTime,sender"


def test_list_campaigns_pascal_case_and_string_numbers_tolerated() -> None:
    prov = provider()
    paged = prov.list_campaigns()
    body = {"PageIndex": "1", "TotalPages": "1", "TotalRecords": "1",
            "Items": [{"Id": 7, "Status": "5", "RecipientCount": "3", "OptOutLinkId": "12"}]}
    page = run_with_responses(paged.fetch(paged.first), [ok(body=body)])
    [campaign] = page.items
    assert campaign.id == "7" and campaign.status == CampaignStatus.COMPLETED
    assert campaign.recipient_count == 3 and campaign.provider_options == {"optOutLinkId": 12}
    assert page.next_request is None


@pytest.mark.parametrize("body", [{"items": "nope"}, "text", {"items": ["not an object"]}])
def test_list_campaigns_malformed(body: Any) -> None:
    prov = provider()
    paged = prov.list_campaigns()
    with pytest.raises(MalformedResponse):
        run_with_responses(paged.fetch(paged.first), [ok(body=body)])


def test_get_campaign_seed() -> None:
    rec = Recorder(ok(body=SEED_CAMPAIGN))
    campaign = run_with_responses(provider().get_campaign("abc 123"), rec)
    assert rec.requests[0].method == "GET"
    assert rec.requests[0].url.raw_path == b"/api/Campaigns/abc%20123"
    assert campaign.id == "string" and campaign.provider == "campaigns_api"


def test_get_campaign_404() -> None:
    with pytest.raises(ResourceNotFound):
        run_with_responses(provider().get_campaign("x"), [ok(404)])


def test_list_campaign_contacts_seed() -> None:
    prov = provider()
    paged = prov.list_campaign_contacts("abc123")
    assert paged.first.url.path == "/api/Campaigns/abc123/Contacts"
    page = run_with_responses(paged.fetch(paged.first), [ok(body=SEED_CONTACT_PAGE)])
    [contact] = page.items
    assert contact == Contact(phone="string", name="string", fields={"custom1": "string", "custom2": "string"},
                              id="string")
    assert page.total == 4 and page.next_request is None


def test_contact_numbers_read_back_as_e164() -> None:
    prov = provider()
    contact = prov.contact_from_vendor({"phoneNumber": "07912345678", "id": "1"})
    assert contact.phone == "+447912345678"
    assert prov.contact_from_vendor({"phoneNumber": "447912345678"}).phone == "+447912345678"


def seed_like_campaign() -> Campaign:
    return Campaign(
        text="{name} {custom1} {custom2}",
        sender="string",
        start_at=datetime(2023, 6, 27, 3, 10, 4, 492000, tzinfo=timezone.utc),
        contact_list_id="3fa85f64-5717-4562-b3fc-2c963f66afa6",
        contacts=[Contact(phone="string", name="string", fields={"custom1": "string", "custom2": "string"})],
        provider_options={"optOutLinkId": 0, "trackLinkUrl": "string"},
    )


def test_create_campaign_request_matches_seed_and_reads_201_id() -> None:
    rec = Recorder(ok(201, "abc123"), ok(body=dict(SEED_CAMPAIGN, id="abc123")))
    created = run_with_responses(provider().create_campaign(seed_like_campaign()), rec)
    post, get = rec.requests
    assert post.method == "POST" and post.url.path == "/api/Campaigns"
    body = body_of(post)
    assert set(body) == set(SEED_CREATE_BODY)
    assert body["startDateTime"] == SEED_CREATE_BODY["startDateTime"]
    assert body["message"] == "{Name} {Custom1} {Custom2}"
    assert body["contacts"] == SEED_CREATE_BODY["contacts"]
    assert get.method == "GET" and get.url.path == "/api/Campaigns/abc123"
    assert created.id == "abc123" and created.status == CampaignStatus.SCHEDULED
    assert created.contacts == seed_like_campaign().contacts  # the vendor object has no contacts


@pytest.mark.parametrize(("flag", "path"), [(True, "/api/campaigns/true"), (False, "/api/campaigns/false")])
def test_create_campaign_ignore_invalid_numbers_path(flag: bool, path: str) -> None:
    rec = Recorder(ok(201, text="abc123"))
    prov = provider(fetch_after_create=False)
    created = run_with_responses(prov.create_campaign(seed_like_campaign(), ignore_invalid_phone_numbers=flag), rec)
    assert rec.requests[0].url.path == path
    assert created.id == "abc123"  # a bare (unquoted) id is accepted too


def test_create_campaign_flag_from_provider_options_and_instance_option() -> None:
    campaign = seed_like_campaign()
    campaign.provider_options["ignoreInvalidPhoneNumbers"] = True
    rec = Recorder(ok(201, "x1"))
    run_with_responses(provider(fetch_after_create=False).create_campaign(campaign), rec)
    assert rec.requests[0].url.path == "/api/campaigns/true"
    rec = Recorder(ok(201, "x1"))
    prov = provider(fetch_after_create=False, ignore_invalid_phone_numbers=False)
    run_with_responses(prov.create_campaign(seed_like_campaign()), rec)
    assert rec.requests[0].url.path == "/api/campaigns/false"


def test_create_campaign_read_back_failure_keeps_the_id() -> None:
    created = run_with_responses(provider().create_campaign(seed_like_campaign()), [ok(201, "abc"), ok(503)])
    assert created.id == "abc" and created.status == CampaignStatus.SCHEDULED


PROBLEM = {
    "type": "https://tools.ietf.org/html/rfc7231#section-6.5.1",
    "title": "One or more validation errors occurred.",
    "status": 400,
    "traceId": "00-abc-def-00",
    "errors": {
        "Contacts[1].PhoneNumber": ["'12345' is not a valid phone number."],
        "$.contacts[2].contactGroupId": ["The JSON value could not be converted to System.Guid."],
        "Sender": ["The Sender field is required."],
    },
}


def test_create_campaign_validation_errors_become_contact_errors() -> None:
    campaign = Campaign(text="hi", contacts=[Contact(phone="+447912345678"), Contact(phone="12345"),
                                             Contact(phone="+447911123456")])
    with pytest.raises(CampaignRejected) as info:
        run_with_responses(provider().create_campaign(campaign), [ok(400, PROBLEM)])
    err = info.value
    assert isinstance(err, RequestRejected) and err.status_code == 400
    assert [(c.index, c.phone, c.field) for c in err.contacts] == [
        (1, "12345", "phoneNumber"), (2, "+447911123456", "contactGroupId")]
    assert err.contacts[0].reason == "'12345' is not a valid phone number."
    assert err.contacts[0].sent_as == "12345"
    assert err.contacts[1].sent_as == "07911123456"
    assert err.field_errors == {"Sender": ["The Sender field is required."]}
    assert "contact 1 (12345)" in str(err)


def test_create_campaign_400_without_errors_is_plain_rejection() -> None:
    with pytest.raises(RequestRejected) as info:
        run_with_responses(provider().create_campaign(seed_like_campaign()), [ok(400, {"title": "Bad"})])
    assert not isinstance(info.value, CampaignRejected)
    assert "Bad" in str(info.value)


def test_create_campaign_local_validation() -> None:
    prov = provider()
    with pytest.raises(ValidationError, match="contacts"):
        run_with_responses(prov.create_campaign(Campaign(text="x")), [])
    with pytest.raises(ValidationError, match="text"):
        run_with_responses(prov.create_campaign(Campaign(contacts=[Contact(phone="+447912345678")])), [])
    with pytest.raises(TemplateError, match="first_name"):
        run_with_responses(prov.create_campaign(Campaign(text="Hi {first_name}",
                                                         contacts=[Contact(phone="+447912345678")])), [])
    with pytest.raises(ValidationError, match="contact 0"):
        run_with_responses(prov.create_campaign(Campaign(text="Hi {name}",
                                                         contacts=[Contact(phone="+447912345678")])), [])
    with pytest.raises(ValidationError, match="UUID"):
        run_with_responses(prov.create_campaign(Campaign(text="Hi", contact_list_id="group-1",
                                                         contacts=[Contact(phone="+447912345678")])), [])


def test_custom_fields_mapping() -> None:
    campaign = Campaign(
        text="Hi {name}, your code is {code} in {city} {{literal}}",
        contacts=[Contact(phone="+447912345678", name="Ann", fields={"code": "X1", "city": "Leeds"})],
        provider_options={"custom_fields": ["code", "city"]},
    )
    rec = Recorder(ok(201, "c1"))
    run_with_responses(provider(fetch_after_create=False).create_campaign(campaign), rec)
    body = body_of(rec.requests[0])
    assert body["message"] == "Hi {Name}, your code is {Custom1} in {Custom2} {literal}"
    assert body["contacts"] == [{"phoneNumber": "07912345678", "name": "Ann", "custom1": "X1", "custom2": "Leeds"}]
    assert body["sender"] == "ACME"  # the instance's sender


def test_update_campaign_put_and_documented_post() -> None:
    campaign = seed_like_campaign().model_copy(update={"id": "abc123", "contacts": []})
    rec = Recorder(ok(204))
    assert run_with_responses(provider().update_campaign(campaign), rec) is None
    [request] = rec.requests
    assert request.method == "PUT" and request.url.path == "/api/Campaigns/abc123"
    assert set(body_of(request)) == SEED_UPDATE_KEYS
    rec = Recorder(ok(204))
    run_with_responses(provider(write_verbs="documented").update_campaign(campaign), rec)
    assert rec.requests[0].method == "POST" and set(body_of(rec.requests[0])) == SEED_UPDATE_KEYS
    with pytest.raises(ResourceNotFound):
        run_with_responses(provider().update_campaign(campaign), [ok(404)])
    with pytest.raises(ValidationError):
        run_with_responses(provider().update_campaign(campaign.model_copy(update={"id": None})), [])


def test_delete_campaign_verbs() -> None:
    rec = Recorder(ok(204))
    run_with_responses(provider().delete_campaign("abc123"), rec)
    assert rec.requests[0].method == "DELETE" and rec.requests[0].url.path == "/api/Campaigns/abc123"
    rec = Recorder(ok(204))
    run_with_responses(provider(write_verbs="documented").delete_campaign("abc123"), rec)
    assert rec.requests[0].method == "POST" and rec.requests[0].content == b""
    with pytest.raises(ResourceNotFound):
        run_with_responses(provider().delete_campaign("nope"), [ok(404)])


# --------------------------------------------------------------------------- SMS


def test_send_request_and_guid_answer() -> None:
    rec = Recorder(ok(201, SEED_GUID))
    msg = OutboundMessage(to="+447912345678", text="hello", sender="ACME", message_id="m1")
    result = run_with_responses(provider().send(msg), rec)
    [request] = rec.requests
    assert request.method == "POST" and request.url.path == "/api/SMSMessages"
    assert body_of(request) == {"message": "hello", "sender": "ACME", "phoneNumber": "07912345678"}
    assert result.provider_message_id == SEED_GUID and result.status == Status.SUBMITTED


def test_send_accepts_the_docs_unquoted_guid_and_international_numbers() -> None:
    rec = Recorder(ok(201, text=SEED_GUID + "\n"))
    msg = OutboundMessage(to="+2348012345678", text="hi", message_id="m1")
    result = run_with_responses(provider().send(msg), rec)
    assert result.provider_message_id == SEED_GUID
    assert body_of(rec.requests[0]) == {"message": "hi", "sender": "ACME", "phoneNumber": "2348012345678"}


def test_no_sender_is_refused_before_any_request() -> None:
    # the documented bodies (SMS_Messages, Campaigns) have "sender"; without one nothing is sent
    prov = CampaignsApiProvider(ProviderSettings(plugin="campaigns_api", credentials={"api_key": KEY}), "dm_uk")
    campaign = seed_like_campaign().model_copy(update={"sender": None, "id": "abc123"})
    for operation in (prov.send(OutboundMessage(to="+447912345678", text="hi", message_id="m1")),
                      prov.create_campaign(campaign), prov.update_campaign(campaign)):
        with pytest.raises(ConfigError) as info:
            run_with_responses(operation, [])  # [] : any request would be an error of its own
        text = str(info.value)
        assert "'dm_uk'" in text and "sender" in text and "providers.dm_uk" in text
    # the message's or campaign's own sender, else the instance's, is sent
    rec = Recorder(ok(201, SEED_GUID))
    run_with_responses(prov.send(OutboundMessage(to="+447912345678", text="hi", sender="SHOP")), rec)
    assert body_of(rec.requests[0])["sender"] == "SHOP"
    rec = Recorder(ok(201, SEED_GUID))
    run_with_responses(provider().send(OutboundMessage(to="+447912345678", text="hi")), rec)
    assert body_of(rec.requests[0])["sender"] == "ACME"


@pytest.mark.parametrize("fmt,expected", [("national", "07912345678"), ("international", "447912345678")])
def test_number_format_option(fmt: str, expected: str) -> None:
    rec = Recorder(ok(201, SEED_GUID))
    run_with_responses(provider(number_format=fmt).send(OutboundMessage(to="+447912345678", text="x")), rec)
    assert body_of(rec.requests[0])["phoneNumber"] == expected


@pytest.mark.parametrize("response", [
    ok(200, text="<html><body>Bad Gateway</body></html>"),
    ok(201, text=""),
    ok(201, {"something": "else"}),
])
def test_send_unreadable_answers_are_malformed(response: httpx.Response) -> None:
    with pytest.raises(MalformedResponse):
        run_with_responses(provider().send(OutboundMessage(to="+447912345678", text="x")), [response])


def test_send_error_inside_2xx_body() -> None:
    with pytest.raises(RequestRejected):
        run_with_responses(provider().send(OutboundMessage(to="+447912345678", text="x")),
                           [ok(200, {"errors": {"PhoneNumber": ["bad"]}})])


def test_status_lookup_seed_message() -> None:
    rec = Recorder(ok(body=dict(SEED_SMS, status=1, newId=SEED_GUID, price=0.035, smsCount=2)))
    result = SendResult(to="+447912345678", status=Status.SUBMITTED, provider_message_id=SEED_GUID)
    report = run_with_responses(provider().status(result), rec)
    assert rec.requests[0].url.path == f"/api/SMSMessages/{SEED_GUID}"
    assert report.status == Status.DELIVERED and report.raw_status == "1"
    assert report.provider_message_id == SEED_GUID
    assert report.cost == Decimal("0.035") and report.segments == 2
    assert report.raw["countryCode"] == "UK"


def test_status_lookup_falls_back_to_newid_filter() -> None:
    rec = Recorder(ok(404), ok(body={"pageIndex": 1, "totalPages": 1, "totalRecords": 1,
                                     "items": [dict(SEED_SMS, newId=SEED_GUID, status=5)]}))
    result = SendResult(to="+447912345678", status=Status.SUBMITTED, provider_message_id=SEED_GUID)
    report = run_with_responses(provider().status(result), rec)
    assert rec.requests[1].url.params["filters"] == f"newId=={SEED_GUID}"
    assert report.status == Status.UNDELIVERED
    with pytest.raises(ResourceNotFound):
        run_with_responses(provider().status(result), [ok(404), ok(body={"items": [], "totalPages": 0})])
    with pytest.raises(ResourceNotFound):  # not a GUID: no fallback
        run_with_responses(provider().status(result.model_copy(update={"provider_message_id": "42"})), [ok(404)])


def test_list_messages_seed_page_with_the_docs_invalid_dates() -> None:
    prov = provider()
    paged = prov.list_messages(filters=Filter("campaignId", "==", None))
    assert paged.first.url.path == "/api/SMSMessages"
    assert paged.first.url.params["filters"] == "campaignId==null"
    page = run_with_responses(paged.fetch(paged.first),
                              [ok(body={"pageIndex": 1, "totalPages": 1, "totalRecords": 109, "items": [SEED_SMS]})])
    [message] = page.items
    assert message.id == 123456 and message.new_id == "00000000-0000-0000-0000-000000000000"
    assert message.status == Status.SENT and message.raw_status == "0"
    assert message.date_created is None  # "2023-01-91" is not a date
    assert message.phone_number == "0123456789" and message.sender == "DynamicM"
    assert message.campaign_id is None and message.client_id == 8
    assert page.next_request is None


def test_statistics_walks_pages_and_counts_once() -> None:
    pages = [
        {"pageIndex": 1, "totalPages": 2, "totalRecords": 4,
         "items": [dict(SEED_SMS, status=1, price=0.03), dict(SEED_SMS, status=5, price=0.03)]},
        {"pageIndex": 2, "totalPages": 2, "totalRecords": 4,
         "items": [dict(SEED_SMS, status=34, price=0), dict(SEED_SMS, status=2, price=0.03)]},
    ]
    rec = Recorder(ok(body=pages[0]), ok(body=pages[1]))
    stats = run_with_responses(provider().statistics(campaign_id="abc", page_size=2), rec)
    assert rec.requests[0].url.params["filters"] == "campaignId==abc"
    assert rec.requests[1].url.params["page"] == "2"
    assert (stats.total, stats.delivered, stats.undelivered, stats.invalid, stats.submitted) == (4, 1, 1, 1, 1)
    assert stats.cost == Decimal("0.09")
    with pytest.raises(ValidationError):
        run_with_responses(provider().statistics(country="GB"), [])


# ----------------------------------------------------------------------- webhooks


def unsigned(**options: Any) -> CampaignsApiProvider:
    """A provider accepting callbacks without a token (to test body parsing alone)."""
    return provider(webhook_token_required=False, **options)


def test_webhook_seed_sms_payload() -> None:
    [report] = unsigned().parse_webhook({"content-type": "application/json"}, SEED_WEBHOOK_SMS.encode())
    assert report.status == Status.SENT and report.raw_status == "0"
    assert report.provider_message_id == "0"  # phoneNumberId is empty: falls back to Id
    assert report.occurred_at == datetime(2023, 6, 27, 3, 4, 1, 374000, tzinfo=timezone.utc)
    assert report.cost == Decimal("0.0") and report.segments == 0


def test_webhook_voice_payload_ignored_and_keys_case_insensitive() -> None:
    prov = unsigned()
    assert prov.parse_webhook({}, SEED_WEBHOOK_VOICE.encode()) == []
    body = {"WEBHOOKTYPE": "1", "Data": {"ID": 5, "PhoneNumberID": SEED_GUID, "STATUSCODE": "1",
                                         "phonenumber": "07912345678"}}
    [report] = prov.parse_webhook({}, json.dumps(body).encode())
    assert report.provider_message_id == SEED_GUID and report.status == Status.DELIVERED
    assert report.to == "+447912345678"
    [by_int] = unsigned(webhook_message_id="Id").parse_webhook({}, json.dumps(body).encode())
    assert by_int.provider_message_id == "5"


@pytest.mark.parametrize("body", [b"not json", b"[1]", b'{"data": {}}', b'{"webHookType": 1}',
                                  b'{"webHookType": 1, "data": {"Id": 1}}',
                                  b'{"webHookType": 1, "data": {"statusCode": 1}}'])
def test_webhook_bad_bodies(body: bytes) -> None:
    with pytest.raises(WebhookRejected):
        unsigned().parse_webhook({}, body)


def test_webhook_token() -> None:
    prov = provider(webhook_token="s3cret-token")
    body = SEED_WEBHOOK_SMS.encode()
    with pytest.raises(WebhookTokenRejected) as missing:
        prov.parse_webhook({}, body)
    assert isinstance(missing.value, AuthFailed) and "s3cret" not in str(missing.value)
    with pytest.raises(WebhookTokenRejected):
        prov.parse_webhook({"X-Smsgate-Query": "token=wrong"}, body)
    assert len(prov.parse_webhook({"X-Smsgate-Query": "a=1&token=s3cret-token"}, body)) == 1
    assert len(prov.parse_webhook({"X-Webhook-Token": "s3cret-token"}, body)) == 1
    assert len(prov.parse_webhook_request("https://app.example/hooks/dm?token=s3cret-token", {}, body)) == 1
    with pytest.raises(WebhookTokenRejected):
        prov.parse_webhook_request("https://app.example/hooks/dm?token=nope", {}, body)


def test_webhook_without_a_configured_token_is_refused_by_default() -> None:
    """The vendor signs nothing: without webhook_token no callback is applied (a config error)."""
    with pytest.raises(ConfigError, match="webhook_token"):
        provider().parse_webhook({}, SEED_WEBHOOK_SMS.encode())
    assert len(unsigned().parse_webhook({}, SEED_WEBHOOK_SMS.encode())) == 1


# ---------------------------------------------------------------------- auth / errors


@pytest.mark.parametrize("mode", ["bearer", "header", "query"])
def test_auth_modes(mode: str) -> None:
    rec = Recorder(ok(body=SEED_CAMPAIGN))
    run_with_responses(provider(auth=mode).get_campaign("x"), rec)
    request = rec.requests[0]
    if mode == "bearer":
        assert request.headers["authorization"] == f"Bearer {KEY}"
    elif mode == "header":
        assert request.headers["api-key"] == KEY and "authorization" not in request.headers
    else:
        assert request.url.params["api-key"] == KEY and "authorization" not in request.headers


def test_401_is_auth_failed_without_the_key() -> None:
    response = httpx.Response(401, headers={"WWW-Authenticate": "Bearer"})
    with pytest.raises(AuthFailed) as info:
        run_with_responses(provider(auth="query").get_campaign("x"), [response])
    assert KEY not in f"{info.value} {info.value!r} {info.value.body}"


def test_problem_details_error_message() -> None:
    prov = provider()
    response = httpx.Response(400, json=PROBLEM, request=httpx.Request("GET", BASE + "/api/Campaigns"))
    text = prov.error_message(response)
    assert "One or more validation errors occurred." in text and "Contacts[1].PhoneNumber" in text


def test_api_key_required() -> None:
    with pytest.raises(ConfigError, match="api_key"):
        CampaignsApiProvider(ProviderSettings(plugin="campaigns_api"))


def test_a_tenant_without_a_sender_fails_the_check_of_every_tenant() -> None:
    """Both documented bodies carry ``sender``: ``smsgate config check`` and ``StoredTenants.add``
    refuse a tenant that sets none (they passed it, and its first send was a ConfigError)."""
    from smsgate.config import TenantConfig
    from smsgate.errors import ConfigError
    from smsgate.plugins import check_tenant, default_plugins

    instance = {"plugin": "campaigns_api", "credentials": {"api_key": "k", "webhook_token": "t"}}
    with pytest.raises(ConfigError, match="campaigns_api needs a sender") as caught:
        check_tenant(default_plugins(), "acme", TenantConfig.model_validate({"providers": {"camp": instance}}))
    assert caught.value.field == "tenants.acme.providers.camp.sender"
    for sender in ({"sender": "ACME"}, {"providers": {"camp": {**instance, "sender": "ACME"}}}):
        check_tenant(default_plugins(), "acme", TenantConfig.model_validate({"providers": {"camp": instance},
                                                                             **sender}))
