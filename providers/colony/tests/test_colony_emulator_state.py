"""The Colony emulator's state class on its own: every operation as a plain call, no HTTP."""

from __future__ import annotations

from typing import Any

import pytest

from smsgate_colony.emulator import SANDBOX_CREDENTIALS, ColonyEmulator, Rejected

A, B, FAILS = "27815854565", "27825550123", "27815854569"


class Clock:
    def __init__(self) -> None:
        self.now = 1_767_225_600.0  # 2026-01-01T00:00:00Z

    def __call__(self) -> float:
        return self.now


def emulator(**options: Any) -> tuple[ColonyEmulator, Clock]:
    clock = Clock()
    return ColonyEmulator(clock=clock, delivery_delay=5, **options), clock


def rejected(call: Any, *args: Any, **kwargs: Any) -> Rejected:
    with pytest.raises(Rejected) as info:
        call(*args, **kwargs)
    return info.value


def test_password_and_refresh_grants_and_bearer_check() -> None:
    emu, clock = emulator(token_ttl=100)
    form = {**SANDBOX_CREDENTIALS, "grant_type": "password"}
    tok = emu.grant_token(form)
    emu.check_auth(f"Bearer {tok['access_token']}")
    assert rejected(emu.grant_token, {**form, "password": "x"}).detail == {"error": "invalid_grant"}
    assert rejected(emu.grant_token, {**form, "client_secret": "x"}).detail == {"error": "invalid_client"}
    assert rejected(emu.check_auth, "").status == 401
    again = emu.grant_token({**SANDBOX_CREDENTIALS, "grant_type": "refresh_token",
                             "refresh_token": tok["refresh_token"]})
    # a refresh token is single-use
    assert rejected(emu.grant_token, {**SANDBOX_CREDENTIALS, "grant_type": "refresh_token",
                                      "refresh_token": tok["refresh_token"]}).detail == {"error": "invalid_grant"}
    clock.now += 101
    assert rejected(emu.check_auth, f"Bearer {again['access_token']}").detail == {"detail": "Invalid token"}
    assert emu.revoke_tokens() == 1  # the expired first token is still counted until used


def test_sends_settle_and_are_counted_in_statistics() -> None:
    emu, clock = emulator(optouts=[B])
    assert emu.send_message({"destination": A, "message": "x" * 161}) == {}
    assert emu.send_bulk([{"destination": FAILS, "message": "hi"}, {"destination": B, "message": "hi"}]) == {}
    assert [m["state"] for m in emu.messages()] == ["pending", "pending", "optout"]
    assert emu.messages()[0]["credits"] == 2
    clock.now += 5
    assert [m["state"] for m in emu.messages()] == ["sent", "unsent", "optout"]
    (row,) = emu.deployment_stats("daily")
    assert (row["total"], row["sms_sent_count"], row["sms_unsent_count"], row["sms_optout_count"]) == (3, 1, 1, 1)
    assert emu.deployment_stat("daily", row["id"]) == row
    assert rejected(emu.deployment_stats, "weekly").status == 404


def test_a_bulk_send_is_validated_as_a_whole() -> None:
    emu, _ = emulator()
    err = rejected(emu.send_bulk, [{"destination": A, "message": "ok"}, {"destination": "12", "message": ""}])
    assert err.status == 400 and err.detail[0] == {} and set(err.detail[1]) == {"destination", "message"}
    assert emu.messages() == []  # nothing was sent
    assert rejected(emu.send_bulk, []).detail == {"non_field_errors": ["This list may not be empty."]}


def test_campaign_pk_is_checked_against_given_collate_campaigns() -> None:
    emu, _ = emulator(collate_campaigns=[{"id": 4, "title": "Replies"}])
    assert "campaign_pk" in rejected(emu.send_message, {"destination": A, "message": "m", "campaign_pk": 5}).detail
    emu.send_message({"destination": A, "message": "m", "campaign_pk": 4})
    assert emu.list_collate_campaigns() == [emu.get_collate_campaign(4)]
    assert rejected(emu.get_collate_campaign, 5).status == 404


def test_contact_lists_imports_answer_empty_objects_and_bulk_delete_is_all_or_nothing() -> None:
    emu, _ = emulator(saved_queries={7: [A, B]})
    assert emu.import_contact_list("Imported", b"msisdn,name\r\n27815854565,Ann\r\n") == {}
    (imported,) = emu.list_contact_lists()
    assert emu.list_contacts(str(imported["id"]))[0]["name"] == "Ann"
    backed = emu.create_contact_list({"title": "Query", "saved_query": 7})
    assert emu.refresh_contact_list(backed["id"]) == {}
    assert {c["msisdn"] for c in emu.list_contacts(str(backed["id"]))} == {A, B}
    bad_csv = rejected(emu.import_contacts, imported["id"], b"msisdn\r\n12\r\n")
    assert bad_csv.detail["file"][0].startswith("Row 2:")
    assert rejected(emu.delete_contact_lists, {"ids": [imported["id"], 999]}).status == 404
    assert len(emu.list_contact_lists()) == 2  # none deleted
    emu.delete_contact_lists({"ids": [imported["id"], backed["id"]]})
    assert emu.list_contact_lists() == [] and emu.contacts == {}


def test_deployments_change_only_before_sending_and_delete_their_messages() -> None:
    emu, clock = emulator()
    later = "2026-01-01T01:00:00Z"
    dep = emu.import_deployment({"title": "Later", "send_date": later}, b"destination,message\r\n27815854565,hi\r\n")
    assert dep["status"] == 2 and dep["total_contacts"] == 1 and dep["total_credits"] == 1
    changed = emu.update_deployment(dep["id"], {"title": "Renamed"}, partial=True)
    assert changed["title"] == "Renamed" and changed["send_date"] == later
    grown = emu.import_deployment_rows(dep["id"], b"destination,message\r\n27825550123,hi too\r\n")
    assert grown["total_contacts"] == 2
    emu.delete_deployment(dep["id"])
    assert emu.list_deployments() == [] and emu.messages() == []
    now = emu.import_deployment_numbers({"title": "Now", "message": "go"}, b"destination\r\n27815854565\r\n")
    clock.now += 1
    assert emu.get_deployment(now["id"])["status"] == 3
    err = rejected(emu.update_deployment, now["id"], {"title": "x"}, partial=True)
    assert err.detail == {"non_field_errors": ["This deployment has already been sent."]}
    clock.now += 5
    assert emu.get_deployment(now["id"])["status"] == 4
    empty = emu.create_deployment({"title": "No audience", "contact_list": 1, "message": "ignored"})
    assert empty["status"] == 7 and empty["total_contacts"] == 0  # unknown fields are ignored


def test_replies_are_listed_and_stop_opts_out_until_overwritten() -> None:
    emu, _ = emulator()
    out = emu.reply({"originator": "+" + A, "text": " stop please"})
    assert out["optout"]["originator"] == A and out["message"]["text"] == " stop please"
    assert emu.list_inbound(originator=A) == [emu.get_inbound(out["message"]["id"])]
    (optout,) = emu.list_optouts(A)
    emu.send_message({"destination": A, "message": "suppressed"})
    assert emu.messages()[0]["state"] == "optout"
    assert emu.overwrite_optout(optout["id"])["overwritten_by"] is not None
    assert rejected(emu.overwrite_optout, optout["id"]).status == 400
    assert emu.active_optout(A) is None


def test_reset_forgets_everything() -> None:
    emu, _ = emulator(optouts=[A])
    emu.create_contact_list({"title": "t"})
    emu.send_message({"destination": B, "message": "m"})
    emu.reset()
    assert emu.list_contact_lists() == [] and emu.messages() == []
    assert emu.active_optout(A) is not None  # seeded opt-outs come back
