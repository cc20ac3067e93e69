"""The Campaigns REST emulator's state class on its own: every operation as a plain call, no HTTP."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timezone
from typing import Any

import pytest

from smsgate_campaigns_api.emulator.state import SANDBOX_API_KEY, DMState, Problem, SmsRec

START = datetime(2026, 1, 1, tzinfo=timezone.utc).timestamp()
UK, UK_FAILS = "07912345678", "07912345679"


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


def state(**options: Any) -> tuple[DMState, Clock]:
    clock = Clock()
    return DMState(clock=clock, delivery_delay=10, campaign_delay=10, **options), clock


def problem(call: Any, *args: Any) -> Problem:
    with pytest.raises(Problem) as info:
        call(*args)
    return info.value


def campaign_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "startDateTime": "2026-01-01T00:01:00.000Z", "sender": "ACME", "message": "Hi {Name}, {Custom1}",
        "contacts": [{"phoneNumber": UK, "name": "Ann", "custom1": "A1"},
                     {"phoneNumber": UK_FAILS, "name": "Bob"}],
    }
    body.update(changes)
    return body


def test_the_api_key_is_accepted_in_each_documented_place() -> None:
    st, _ = state()
    assert st.authorised(authorization=f"Bearer {SANDBOX_API_KEY}")
    assert st.authorised(authorization=f"bearer  {SANDBOX_API_KEY} ")
    assert st.authorised(api_key_header=SANDBOX_API_KEY)
    assert st.authorised(api_key_query=SANDBOX_API_KEY)
    assert not st.authorised()
    assert not st.authorised(authorization=SANDBOX_API_KEY)  # no scheme
    assert not st.authorised(authorization="Bearer nope", api_key_header="nope", api_key_query="nope")


def test_a_message_is_accepted_then_sent_then_final_as_time_passes() -> None:
    created: list[SmsRec] = []
    st, clock = state(on_message=created.append)
    guid = st.send_message({"message": "hello", "sender": "ACME", "phoneNumber": UK})
    failing = st.send_message({"message": "hello", "phoneNumber": UK_FAILS})
    assert [rec.new_id for rec in created] == [guid, failing]
    first = st.get_message(guid)
    assert (first["status"], first["senderNumber"], first["countryCode"], first["smsCount"]) == (2, "ACME", "UK", 1)
    assert st.get_message(guid.upper()) == first and st.get_message(str(first["id"])) == first
    assert st.get_message(failing)["senderNumber"] == "DynamicM"  # the vendor's default sender
    clock.now += 5
    assert st.get_message(guid)["status"] == 0  # Sent
    assert st.callback_payload(created[0])["data"]["statusCode"] == 0
    clock.now += 5
    assert (st.get_message(guid)["status"], st.get_message(failing)["status"]) == (1, 5)  # Delivered, Undeliverable
    payload = st.callback_payload(created[1])
    assert payload["webHookType"] == 1
    assert payload["data"]["phoneNumberId"] == failing and payload["data"]["statusCode"] == 5
    assert problem(st.get_message, "00000000-0000-0000-0000-000000000000").status == 404


def test_a_message_is_validated_as_documented() -> None:
    st, _ = state()
    err = problem(st.send_message, {"message": "", "sender": "TWELVE_CHARS", "phoneNumber": "12"})
    assert err.status == 400 and set(err.errors) == {"Message", "Sender", "PhoneNumber"}
    assert problem(st.send_message, ["not", "an", "object"]).errors == {"$": ["A JSON object is required."]}
    assert st.messages == {}


def test_a_campaign_waits_for_its_start_then_sends_one_personalised_message_per_contact() -> None:
    delays: list[float] = []
    st, clock = state(on_schedule=delays.append)
    cid = st.create_campaign(campaign_body())
    assert delays == [60.0]  # the app wakes advance() when the campaign is due
    assert (st.get_campaign(cid)["status"], st.get_campaign(cid)["recipientCount"]) == (0, 2)  # Pending
    assert st.messages == {}
    clock.now += 60
    assert st.get_campaign(cid)["status"] == 1  # Sending: advance() ran first
    texts = sorted(m["message"] for m in st.list_messages({})["items"])
    assert texts == ["Hi Ann, A1", "Hi Bob, "]
    assert {m["campaignId"] for m in st.list_messages({})["items"]} == {cid}
    clock.now += 5
    assert st.get_campaign(cid)["status"] == 2  # Submitted
    clock.now += 5
    assert st.get_campaign(cid)["status"] == 5  # Completed
    st.advance()
    assert len(st.messages) == 2  # started once


def test_invalid_contacts_are_errors_unless_ignored() -> None:
    st, _ = state()
    contacts = [{"phoneNumber": UK}, {"phoneNumber": "12345"}, {"phoneNumber": UK, "contactGroupId": "x"}]
    err = problem(st.create_campaign, campaign_body(contacts=contacts))
    assert err.errors == {"Contacts[1].PhoneNumber": ["'12345' is not a valid phone number."],
                          "Contacts[2].ContactGroupId": ["The JSON value could not be converted to System.Guid."]}
    cid = st.create_campaign(campaign_body(contacts=contacts[:2]), True)
    assert [c["phoneNumber"] for c in st.campaigns[cid].contacts] == [UK]
    assert problem(st.create_campaign, campaign_body(contacts=contacts[1:2]), True).errors == {
        "Contacts": ["No valid contacts."]}
    assert set(problem(st.create_campaign, {}).errors) == {"StartDateTime", "Sender", "Message", "Contacts"}


def test_a_campaign_is_updated_or_deleted_by_id_in_any_case() -> None:
    delays: list[float] = []
    st, _ = state(on_schedule=delays.append)
    cid = st.create_campaign(campaign_body())
    st.update_campaign(cid.upper(), {"startDateTime": "2026-01-01T00:02:00Z", "sender": "SHOP", "message": "New"})
    shown = st.get_campaign(cid)
    assert (shown["sender"], shown["message"], shown["startDateTime"]) == ("SHOP", "New", "2026-01-01T00:02:00.000Z")
    assert delays == [60.0, 120.0]
    assert set(problem(st.update_campaign, cid, {"sender": "SHOP"}).errors) == {"StartDateTime", "Message"}
    st.delete_campaign(cid)
    assert cid not in st.pending
    assert problem(st.get_campaign, cid).status == 404
    assert problem(st.delete_campaign, cid).status == 404


def test_listings_page_filter_and_sort_as_sieve() -> None:
    st, _ = state()
    st.seed(25)
    page = st.list_campaigns({"page": "3", "pageSize": "10"})
    assert (page["pageIndex"], page["totalPages"], page["totalRecords"], len(page["items"])) == (3, 3, 25, 5)
    done = st.list_campaigns({"filters": "status==5", "sorts": "-startDateTime", "PAGESIZE": "100"})
    assert all(c["status"] == 5 for c in done["items"]) and done["totalRecords"] == 13
    starts = [c["startDateTime"] for c in done["items"]]
    assert starts == sorted(starts, reverse=True)
    contacts = st.campaign_contacts("seed00000001", {"filters": "name@=*contact 1"})
    assert [c["phoneNumber"] for c in contacts["items"]] == ["07912340003"]
    assert problem(st.list_campaigns, {"filters": "colour==red"}).errors == {
        "filters": ["Property 'colour' is not filterable or sortable."]}
    assert problem(st.list_campaigns, {"filters": "sender>A"}).status == 400  # ordering on text
    assert problem(st.list_campaigns, {"filters": "status==x"}).errors == {
        "filters": ["'x' is not a valid value for status."]}
    assert st.list_campaigns({"filters": "startDateTime>=2024-01-01T09:20:00Z"})["totalRecords"] == 5
    assert set(problem(st.list_campaigns, {"page": "0", "pageSize": "x"}).errors) == {"Page", "PageSize"}
    assert st.list_campaigns({"pageSize": "5000"})["totalPages"] == 1  # capped at max_page_size


def test_sandbox_credentials_need_no_starlette() -> None:
    code = ("import sys, smsgate_campaigns_api as p; a = p.smsgate_sandbox_account('campaigns_api'); "
            "assert a.credentials['api_key'] and 'starlette' not in sys.modules, sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True)
