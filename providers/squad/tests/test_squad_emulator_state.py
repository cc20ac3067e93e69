"""Unit tests of the Squad emulator's state class, without HTTP: a fake clock moves messages on."""

from __future__ import annotations

import base64
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from smsgate_squad.emulator import (
    SANDBOX_SECRET_KEY,
    SANDBOX_V1_KEY,
    SANDBOX_V1_SECRET,
    Message,
    Rejected,
    SquadEmulator,
)
from smsgate_squad.emulator.state import S3Error, local_number

START = datetime(2025, 6, 1, 9, 0, tzinfo=timezone.utc).timestamp()


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def emu(clock: Clock) -> SquadEmulator:
    created: list[list[Message]] = []
    state = SquadEmulator(clock=clock, delivery_delay=10.0)
    state.on_messages = created.append
    state.created = created  # type: ignore[attr-defined]
    return state


def statuses(emu: SquadEmulator, msgs: list[Message]) -> list[str]:
    return [item["status"] for item in emu.items(msgs)]


# ------------------------------------------------------------------ accounts

def test_auth_checks(emu: SquadEmulator) -> None:
    assert emu.check_v2(f"Bearer {SANDBOX_SECRET_KEY}") is None
    missing = emu.check_v2(" ")
    wrong = emu.check_v2("Bearer sandbox_sk_wrong")
    assert missing is not None and (missing.status, missing.message) == (401, "")
    assert wrong is not None and (wrong.status, wrong.message) == (403, "Merchant authentication failed")
    assert emu.check_v1(SANDBOX_V1_KEY, SANDBOX_V1_SECRET) is None
    refused = emu.check_v1(SANDBOX_V1_KEY, "nope")
    assert refused is not None and refused.status == 403
    with pytest.raises(Rejected) as info:
        emu.check_client("2")
    assert info.value.status == 403


def test_registered_senders_only() -> None:
    emu = SquadEmulator(registered_senders=frozenset({"ACME"}))
    with pytest.raises(Rejected, match="Sender ID not found or registered"):
        emu.send_instant({"sender_id": "OTHER", "messages": [{"phone_number": "08031234567", "message": "x"}]})
    assert emu.messages == []


# ------------------------------------------------------------------ v2 send and lifecycle

def test_instant_send_records_messages_and_moves_them_on(emu: SquadEmulator, clock: Clock) -> None:
    data = emu.send_instant({"sender_id": "ACME", "messages": [
        {"phone_number": "+2348031234567", "message": "hi"},
        {"phone_number": "08031234569", "message": "hi"},
        {"phone_number": "12345", "message": "hi"},
    ]})
    inner = data["data"]
    assert data["success"] is True
    assert [s["phone_number"] for s in inner["sent"]] == ["+2348031234567", "08031234569"]
    assert inner["errors"] == [{"phone_number": "12345", "message": "Invalid phone number"}]
    assert inner["batch_id"].endswith("_1082_SMSGATE01_SQUADSMS_NGN")  # 2 x 5.41 NGN in kobo
    msgs = emu.messages
    assert [m.phonenumber for m in msgs] == ["08031234567", "08031234569"]
    assert emu.created == [msgs]  # type: ignore[attr-defined]
    assert statuses(emu, msgs) == ["submitted", "submitted"]
    clock.now += 5
    assert statuses(emu, msgs) == ["pending", "pending"]
    clock.now += 5
    assert statuses(emu, msgs) == ["delivered", "delivery failed"]  # numbers ending in 9 fail


def test_instant_send_refusals(emu: SquadEmulator) -> None:
    with pytest.raises(Rejected, match="messages is required"):
        emu.send_instant({"sender_id": "ACME", "messages": []})
    small = SquadEmulator(max_instant_batch=1)
    with pytest.raises(Rejected, match="at most 1"):
        small.send_instant({"sender_id": "A", "messages": [{"phone_number": "08031234567", "message": "x"}] * 2})
    nothing = emu.send_instant({"sender_id": "ACME", "messages": [{"phone_number": "x", "message": "y"}]})
    assert nothing["success"] is False and nothing["data"]["batch_id"] is None and emu.messages == []


def test_batch_ids_are_unique_within_a_millisecond(emu: SquadEmulator) -> None:
    ids = {emu.batch_id_v2(Decimal("5.41")) for _ in range(5)}
    assert len(ids) == 5


# ------------------------------------------------------------------ v2 buckets, templates, campaigns

def upload(emu: SquadEmulator, bucket: dict[str, Any], content: bytes, acl: str | None = "public-read") -> str:
    url = httpx.URL(bucket["signed_url"])
    return emu.upload_csv(url.path, dict(url.params), acl, content, "http://emu")


def test_bucket_upload_checks_the_signature_and_keeps_nigerian_numbers(emu: SquadEmulator, clock: Clock) -> None:
    bucket = emu.create_bucket_v2({"name": "b", "description": "d", "file_name": "b.csv"}, "http://emu")
    assert bucket["signed_url"].startswith("http://emu/_s3/") and bucket["status"] == "pending"
    with pytest.raises(S3Error, match="x-amz-acl"):
        upload(emu, bucket, b"phone_number\n08031234567\n", acl=None)
    tampered = bucket | {"signed_url": bucket["signed_url"].replace("X-Amz-Signature=", "X-Amz-Signature=0")}
    with pytest.raises(S3Error, match="signature"):
        upload(emu, tampered, b"phone_number\n08031234567\n")
    upload(emu, bucket, b"phone_number,name\n+2348031234567,Ada\nnot a number,Bob\n")
    row = emu.buckets_v2[bucket["uuid"]]
    assert (row["status"], row["size"], row["estimated_cost"]) == ("completed", 1, "5.41")
    assert emu.bucket_rows_v2[bucket["uuid"]] == [{"phone_number": "08031234567", "name": "Ada"}]
    clock.now += emu.signed_url_ttl + 2
    with pytest.raises(S3Error, match="expired"):
        upload(emu, bucket, b"phone_number\n08031234567\n")
    with pytest.raises(Rejected, match=r"\.csv"):
        emu.create_bucket_v2({"name": "b", "description": "d", "file_name": "b.txt"}, "http://emu")


def test_scheduled_campaign_runs_when_due_then_succeeds(emu: SquadEmulator, clock: Clock) -> None:
    bucket = emu.create_bucket_v2({"name": "b", "description": "d", "file_name": "b.csv"}, "http://emu")
    upload(emu, bucket, b"phone_number,name\n08031234567,Ada\n08031234568,Bob\n")
    template = emu.create_template_v2({"name": "t", "description": "d", "message": "Hi #$name$#"})
    due = datetime.fromtimestamp(clock.now + 60, timezone.utc)
    made = emu.create_campaign_v2({"name": "c", "bucket_id": bucket["uuid"], "sender_id": "ACME",
                                   "template_id": template["uuid"], "is_scheduled": True,
                                   "scheduled_for": due.isoformat()})
    assert made["status"] == "pending" and "_meta" not in made and made["scheduled_for"].endswith(
        "(West Africa Standard Time)")
    emu.tick()
    assert emu.messages == []
    clock.now += 60
    emu.tick()
    assert sorted(m.message for m in emu.messages) == ["Hi Ada", "Hi Bob"]
    assert emu.campaigns_v2[made["uuid"]]["cost"] == "10.82"
    listed = emu.list_campaigns_v2({"status": "pending"})
    assert listed["count"] == 1
    clock.now += 10
    emu.tick()
    assert emu.list_campaigns_v2({"status": "success"})["rows"][0]["uuid"] == made["uuid"]
    with pytest.raises(Rejected, match="status must be"):
        emu.list_campaigns_v2({"status": "done"})


def test_campaign_needs_known_bucket_and_template(emu: SquadEmulator) -> None:
    with pytest.raises(Rejected, match="Bucket not found") as info:
        emu.create_campaign_v2({"name": "c", "bucket_id": "x", "sender_id": "A", "template_id": "y"})
    assert info.value.status == 404
    assert emu.campaigns_v2 == {}


def test_template_listing_pages_and_sorts(emu: SquadEmulator, clock: Clock) -> None:
    for name in ("b", "a", "c"):
        emu.create_template_v2({"name": name, "description": "d", "message": "m"})
        clock.now += 1
    page = emu.list_templates_v2({"sort_by": "name", "dir": "ASC", "perPage": "2", "page": "2"})
    assert page["count"] == 3 and [r["name"] for r in page["rows"]] == ["c"]
    with pytest.raises(Rejected, match="perPage"):
        emu.list_templates_v2({"perPage": "0"})
    uuid = page["rows"][0]["uuid"]
    assert emu.edit_template_v2(uuid, {"message": "x" * 200})["pages"] == 2
    assert emu.delete_template_v2(uuid)["uuid"] == uuid
    with pytest.raises(Rejected, match="Template not found"):
        emu.delete_template_v2(uuid)


# ------------------------------------------------------------------ v1

def test_v1_campaign_send_statistics_and_listing(emu: SquadEmulator, clock: Clock) -> None:
    bucket = emu.create_bucket_v1({"name": "b", "description": "D", "client_id": 1, "items": [
        {"phone_number": "+2348031234567", "name": "Ada"}, {"phone_number": "08031234569", "name": "Bob"}]})
    template = emu.create_template_v1({"name": "t", "body": "Hi #$name$#", "description": "d", "client_id": "1"})
    out = emu.send_v1({"recipients": str(bucket["id"]), "body": str(template["id"]), "use_bucket": True,
                       "use_template": True, "is_campaign": True, "reference": "spring"})
    assert out["sent"] == 2
    [campaign] = emu.campaigns_v1_listing("1", {})["items"]
    assert (campaign["name"], campaign["total"], campaign["bucket_id"]) == ("spring", 2, bucket["id"])
    assert sorted(m.message for m in emu.messages) == ["Hi Ada", "Hi Bob"]
    assert emu.campaign_statistics_v1(str(campaign["id"]))["submitted"] == 2
    clock.now += 10
    counts = emu.client_statistics_v1("1")
    assert (counts["delivered"], counts["deliveryFailed"], counts["submitted"]) == (1, 1, 0)
    listed = emu.campaign_messages_v1(str(campaign["id"]), {})
    assert listed["total"] == [{"total": "2"}]  # the documented quirk
    with pytest.raises(Rejected, match="campaign not found"):
        emu.campaign_statistics_v1("99")


def test_v1_direct_send_and_cursor_paging(emu: SquadEmulator) -> None:
    with pytest.raises(Rejected, match="recipients must be a phone number"):
        emu.send_v1({"recipients": "abc", "body": "x"})
    with pytest.raises(Rejected, match="use_bucket must be a boolean"):
        emu.send_v1({"recipients": "08031234567", "body": "x", "use_bucket": "maybe"})
    bucket = emu.create_bucket_v1({"name": "b", "description": "d", "client_id": 1, "items": [
        {"phone_number": f"0803123456{i}"} for i in range(5)]})
    batch = emu.send_v1({"recipients": str(bucket["id"]), "body": "hello", "use_bucket": True})["batch_id"]
    seen: list[str] = []
    query: dict[str, str] = {"batch_id": batch, "count": "2"}
    while True:
        page = emu.messages_by_batch_v1(query)
        seen += [i["phonenumber"] for i in page["items"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        query["cursor"] = page["pageInfo"]["nextCursor"]
    assert seen == [f"0803123456{i}" for i in range(5)]
    bad = base64.urlsafe_b64encode(b"offset:x").decode()
    with pytest.raises(Rejected, match="invalid cursor"):
        emu.messages_by_batch_v1({"batch_id": batch, "cursor": bad})
    assert len(emu.messages_by_phone_v1("+2348031234560", {})["items"]) == 1


def test_v1_hourly_statistics_in_lagos_hours(emu: SquadEmulator, clock: Clock) -> None:
    emu.send_v1({"recipients": "08031234567", "body": "x"})
    clock.now += 10
    data = emu.hourly_statistics_v1("1", "2025-06-01")
    hour = datetime.fromtimestamp(START, timezone.utc).astimezone(timezone(timedelta(hours=1))).hour
    assert data["detail"][hour]["submitted_count"] == 1 and data["detail"][hour]["successful_count"] == 1
    assert data["submitted_count"] == 1 and data["avg_delivery_time"] == 5.0
    with pytest.raises(Rejected, match="YYYY-MM-DD"):
        emu.hourly_statistics_v1("1", "June")


def test_v1_buckets_and_templates_edit_and_delete(emu: SquadEmulator) -> None:
    with pytest.raises(Rejected, match="client_id"):
        emu.create_bucket_v1({"name": "b", "description": "d", "client_id": 2, "items": []})
    bucket = emu.create_bucket_v1({"name": "b", "description": "D", "client_id": 1, "items": []})
    assert bucket["description"] == "d"  # the vendor lower-cases it
    assert emu.rename_bucket_v1(str(bucket["id"]), {"name": "new"})["name"] == "new"
    assert "bucket_items" not in emu.buckets_v1_listing("1", {})["items"][0]
    emu.delete_bucket_v1(str(bucket["id"]))
    with pytest.raises(Rejected, match="bucket not found"):
        emu.delete_bucket_v1(str(bucket["id"]))
    template = emu.create_template_v1({"name": "t", "body": "Hi #$name$#", "description": "d", "client_id": 1})
    assert "body" not in template
    [listed] = emu.templates_v1_listing("1", {})["items"]
    assert listed["params"] == ["phone_number", "name"]
    with pytest.raises(Rejected, match="body is required"):
        emu.edit_template_v1(str(template["id"]), {})
    emu.delete_template_v1(str(template["id"]))
    assert emu.templates_v1 == {}


def test_callback_body_is_the_webhook_envelope(emu: SquadEmulator, clock: Clock) -> None:
    emu.send_v1({"recipients": "08031234567", "body": "x"})
    [msg] = emu.messages
    body = emu.callback_body(msg, clock.now + 10)
    assert b'"Event":"sms_status_update"' in body and b'"status":"delivered"' in body
    assert msg.batch_id.encode() in body


@given(st.from_regex(r"0[789][01][0-9]{8}", fullmatch=True), st.sampled_from(["{}", "+234{}", "234{}", " {} "]))
def test_local_number_reads_every_documented_spelling(local: str, spelling: str) -> None:
    text = spelling.format(local[1:] if "234" in spelling else local)
    assert local_number(text) == local


def test_csv_upload_reads_what_the_adapter_writes(emu: SquadEmulator) -> None:
    from smsgate_squad.wire import csv_bytes

    bucket = emu.create_bucket_v2({"name": "b", "description": "d", "file_name": "b.csv"}, "http://emu")
    upload(emu, bucket, csv_bytes([{"phone_number": "08031234567", "city": "Lagos, NG"}], "phone_number"))
    assert emu.bucket_rows_v2[bucket["uuid"]] == [{"phone_number": "08031234567", "city": "Lagos, NG"}]
