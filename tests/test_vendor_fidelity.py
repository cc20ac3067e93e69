"""Vendor fidelity: the adapters and emulators against what the vendors' documents say.

Each test names its source: FACTS.md (``/work/shared/providers/FACTS.md`` in the project's
research notes), a seed document, or the vendor's public docs. Where a document leaves a
choice open the adapter must tolerate every reading; these tests feed it the documented one.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx

from smsgate.models import ContactList
from smsgate.provider import ProviderSettings
from smsgate.transport import run_with_responses
from smsgate_broadcast import BroadcastProvider

# ================================================================== WAABOT (broadcast)
# github.com/Waabot/docs, docs/integration-customization/api-documentation/contact-groups.md:
# ``POST /contact`` {session_id, access_token, name, number, group_id} -> "Status: 204 No Content";
# the contact list of ``GET /contact?type=all`` (200, envelope, Mongo documents).
WAABOT = "https://api.waabot.com/api/v1"
WAABOT_CREDS = {"session_id": "sess-1", "access_token": "bot-1", "email": "ops@example.ng", "password": "pw"}
WAABOT_LOGIN = {"accessToken": "eyJ-access", "refreshToken": "eyJ-refresh"}


def _waabot_contact(_id: str, number: str, group: str, created: str, name: str = "Banky") -> dict[str, Any]:
    return {"_id": _id, "name": name, "number": number, "client_id": "649ff7e0e6046617c8aeabf0",
            "group_id": group, "channel": "whatsapp",
            "transaction": {"survey_id": None, "survey_sort_id": None},
            "createdAt": created, "updatedAt": created, "__v": 0}


def _waabot() -> BroadcastProvider:
    return BroadcastProvider(ProviderSettings(plugin="broadcast", credentials=WAABOT_CREDS))


def _reply(status: int, body: Any = None, log: list[httpx.Request] | None = None
           ) -> Callable[[httpx.Request], httpx.Response]:
    def respond(request: httpx.Request) -> httpx.Response:
        if log is not None:
            log.append(request)
        if body is None:
            return httpx.Response(status, request=request)
        return httpx.Response(status, json=body, request=request)
    return respond


def test_waabot_contact_create_answered_204_as_documented_is_read_back() -> None:
    """POST /contact answers 204 No Content [DOC]: the new contact is found by listing, not an error."""
    group = "64a00ec7c5e487d95dcb0d5c"
    listing = {"status": True, "message": "Contact fetched successfully!", "data": [
        _waabot_contact("64a174ed85381c056eec9d8f", "2348179803743", group, "2023-07-02T13:00:29.725Z"),
        _waabot_contact("64a00ec7c5e487d95dcb0d5e", "2349048988056", group, "2023-07-01T11:32:23.733Z"),
        _waabot_contact("64a87271eccf5b76ca8e15ee", "2348179803743", group, "2023-07-07T20:15:45.962Z"),
        _waabot_contact("6442478dba8ac3a303bd0c95", "2348179803743", "6442478dba8ac3a303bd0c93",
                        "2023-07-08T08:21:33.088Z"),
    ]}
    log: list[httpx.Request] = []
    made = run_with_responses(
        _waabot().create_contact("+2348179803743", "Banky", group_id=group),
        [_reply(200, WAABOT_LOGIN), _reply(204, None, log), _reply(200, listing, log)],
    )
    create, read_back = log
    assert (create.method, create.url.path) == ("POST", "/api/v1/contact")
    assert json.loads(create.content)["number"] == "2348179803743"
    assert (read_back.method, read_back.url.path) == ("GET", "/api/v1/contact")
    # the newest contact with this number in this group: the one just made
    assert made.id == "64a87271eccf5b76ca8e15ee"
    assert made.number == "2348179803743" and made.group_id == group


def test_waabot_contact_list_with_204_contact_creates() -> None:
    """The neutral contact list (a group plus one contact per number) works when POST /contact is 204."""
    group = {"status": True, "message": "ContactGroup group created successfully!", "data": {
        "is_default": False, "_id": "61b19db18f12f271545eec6f", "title": "VIP",
        "client_id": "61a7bd6ea34282366c025764", "createdAt": "2021-12-09T06:09:53.064Z",
        "updatedAt": "2021-12-09T06:09:53.064Z", "__v": 0}}
    gid = "61b19db18f12f271545eec6f"
    made = run_with_responses(  # its contacts are not read back (attack round 18: a listing per number)
        _waabot().create_contact_list(ContactList(name="VIP"), ["+2348179803743", "+2349048988056"]),
        [_reply(200, WAABOT_LOGIN), _reply(200, group), _reply(204), _reply(204)],
    )
    assert made.id == gid and made.size == 2


# ================================================================== Dynamic Messaging (campaigns_api)
# github.com/DynamicMessagingLTD/UserDocumenation, UserDocs/content/SMS_Platform/SMS_Messages.md:
# ``POST /api/SMSMessages`` -> "201 Created / Returns a Guild / example:
# cbd21c29-a5d0-4103-ab25-fa70c220b239" (a bare GUID: ASP.NET writes a string result as
# text/plain), unlike the campaign create, whose example is the JSON string ``"abc123"``.
def test_dm_sms_create_answers_a_bare_guid_as_documented(serve_app: Callable[[Any], str]) -> None:
    from smsgate_campaigns_api import CampaignsApiProvider
    from smsgate_campaigns_api.emulator import SANDBOX_API_KEY, create_app

    url = serve_app(create_app(delivery_delay=60.0))
    answer = httpx.post(f"{url}/api/SMSMessages", headers={"Authorization": f"Bearer {SANDBOX_API_KEY}"},
                        json={"message": "hello world", "sender": "DynamicM", "phoneNumber": "07912345678"})
    assert answer.status_code == 201
    text = answer.text
    assert not text.startswith('"') and len(text) == 36 and text.count("-") == 4, text
    # and the adapter reads that answer over loopback
    provider = CampaignsApiProvider(ProviderSettings(plugin="campaigns_api", base_url=url, sender="DynamicM",
                                                     credentials={"api_key": SANDBOX_API_KEY}))
    from smsgate.models import OutboundMessage
    from smsgate.transport import SyncDriver

    with httpx.Client() as client:
        result = SyncDriver(client).run(provider.send(OutboundMessage(to="+447912345678", text="hello")))
    assert result.provider_message_id is not None and len(result.provider_message_id) == 36


def test_waabot_contact_read_back_when_own_listing_is_204_as_documented() -> None:
    """The same page documents ``GET /contact`` (own bot) as 204 No Content and ``GET
    /contact?type=all`` as 200 with the contacts: the read-back of a 204 create asks the latter
    when the former lists nothing (the group id, a Mongo ObjectId, singles the contact out)."""
    group = "64a00ec7c5e487d95dcb0d5c"
    every = {"status": True, "message": "Contact fetched successfully!", "data": [
        _waabot_contact("647eee965abaa80698ad93cc", "2348179803743", "6442478dba8ac3a303bd0c93",
                        "2023-07-09T08:30:14.197Z"),
        _waabot_contact("64a87271eccf5b76ca8e15ee", "2348179803743", group, "2023-07-07T20:15:45.962Z"),
    ]}
    log: list[httpx.Request] = []
    made = run_with_responses(
        _waabot().create_contact("+2348179803743", "Banky", group_id=group),
        [_reply(200, WAABOT_LOGIN), _reply(204), _reply(204, None, log), _reply(200, every, log)],
    )
    own, every_bot = log
    assert own.url.params.get("type") is None and every_bot.url.params.get("type") == "all"
    assert made.id == "64a87271eccf5b76ca8e15ee"
