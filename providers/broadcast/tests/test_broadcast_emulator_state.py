"""The WAABOT emulator's state class on its own: every operation as a plain call, no HTTP."""

from __future__ import annotations

from typing import Any

import pytest

from smsgate_broadcast.emulator import SANDBOX_CREDENTIALS, VendorError, WaabotState

A, B, FAILS = "2348179803743", "2349048988056", "2348000000009"


class Clock:
    """A monotonic clock moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def emulator(**options: Any) -> tuple[WaabotState, Clock, str, str]:
    """A state with two bots; returns it, its clock and the two bots' client ids."""
    clock = Clock()
    state = WaabotState(clock=clock, delivery_delay=5, bots={"s1": "t1", "s2": "t2"}, **options)
    return state, clock, state.bot("s1", "t1"), state.bot("s2", "t2")


def refused(call: Any, *args: Any, **kwargs: Any) -> VendorError:
    with pytest.raises(VendorError) as info:
        call(*args, **kwargs)
    return info.value


def test_login_bearer_expiry_logout_and_revocation() -> None:
    state, clock, _, _ = emulator(token_ttl=60)
    email, password = SANDBOX_CREDENTIALS["email"], SANDBOX_CREDENTIALS["password"]
    err = refused(state.login, email, "wrong")
    assert (err.status, err.message) == (401, "Invalid email or password")
    assert refused(state.login, "", "").status == 401
    tokens = state.login(email, password)
    assert set(tokens) == {"accessToken", "refreshToken"}
    bearer = f"Bearer {tokens['accessToken']}"
    state.check_bearer(bearer)
    assert not state.bearer_ok(None) and not state.bearer_ok("Basic x") and not state.bearer_ok("Bearer nope")
    clock.now += 61
    assert refused(state.check_bearer, bearer).status == 401  # expired, and forgotten
    assert tokens["accessToken"] not in state.tokens
    # logout ends the session and its refresh token; a second logout is a 401
    again = state.login(email, password)
    state.logout(f"Bearer {again['accessToken']}", again["refreshToken"])
    assert again["accessToken"] not in state.tokens and again["refreshToken"] not in state.refresh_tokens
    assert refused(state.logout, f"Bearer {again['accessToken']}", None).status == 401
    assert refused(state.logout, None, None).status == 401
    minted = state.issue_token("someone@example.ng")
    state.check_bearer(f"Bearer {minted}")
    state.revoke_tokens()
    assert not state.bearer_ok(f"Bearer {minted}")
    assert WaabotState(require_bearer=False).bearer_ok(None)


def test_bot_credentials_name_the_bot() -> None:
    state, _, one, two = emulator()
    assert one != two and len(one) == 24
    for sid, token in [("s1", "t2"), ("s3", "t1"), ("s1", None), (None, "t1")]:
        err = refused(state.bot, sid, token)
        assert (err.status, err.message) == (403, "Invalid session_id or access_token")
    # the default bot is the sandbox one
    default = WaabotState()
    assert default.bot(SANDBOX_CREDENTIALS["session_id"], SANDBOX_CREDENTIALS["access_token"])


def test_broadcast_numbers_move_from_pending_to_sent_or_failed() -> None:
    state, clock, bot, _ = emulator()
    created = state.create_broadcast(bot, {"send_type": "individual", "to": f"{A},{FAILS}",
                                           "message": {"text": "hi"}})
    assert created["status"] == "sending" and created["sent"] == created["pending"] == created["failed"] == []
    bid = created["_id"]
    now = state.get_broadcast(bot, bid)
    assert now["pending"] == [A, FAILS] and now["status"] == "sending"
    clock.now += 5
    done = state.get_broadcast(bot, bid)
    assert (done["sent"], done["failed"], done["pending"], done["status"]) == ([A], [FAILS], [], "completed")
    assert [b["_id"] for b in state.list_broadcasts(bot)] == [bid]
    # one message-log entry per number, with the number's outcome, newest first
    entries = state.message_log(bot, page=1, limit=10)
    assert [(e["to"], e["status"], e["broadcast_id"]) for e in entries] == [(FAILS, "failed", bid), (A, "sent", bid)]
    assert [e["_id"] for e in state.message_log(bot, page=2, limit=1)] == [entries[1]["_id"]]
    assert state.message_log(bot, page=3, limit=1) == []
    assert state.message_log_entry(bot, entries[0]["_id"])["to"] == FAILS
    assert refused(state.message_log, bot, 0, 10).status == 400


@pytest.mark.parametrize("body,message", [
    ({"to": f"+{A}"}, "Invalid number"),
    ({"to": ""}, "to is required"),
    ({"to": f"{A},{B},2348000000001"}, "Too many recipients: 3 (at most 2)"),
    ({"send_type": "broadcast"}, "send_type must be"),
    ({"send_type": "group", "to": "64a00ec7c5e487d95dcb0d5e"}, "Contact group not found"),
    ({"message": {"text": ""}}, "message needs"),
    ({"message": "hi"}, "message is required"),
    ({"message": {"text": 1}}, "message.text must be a string"),
    ({"message": {"text": "x", "attachments": "a"}}, "message.attachments must be an array"),
    ({"message": {"text": "x", "attachments": ["64ac311eee05a1a2c27fbdb5"]}}, "Attachment not found"),
    ({"message": {"text": "x", "location": {"lat": "north", "lng": "1"}}}, "message.location.lat"),
])
def test_create_broadcast_refuses_bad_requests(body: dict[str, Any], message: str) -> None:
    state, _, bot, _ = emulator(max_recipients=2)
    err = refused(state.create_broadcast, bot, {"send_type": "individual", "to": A, "message": {"text": "hi"},
                                                **body})
    assert err.status == 400 and message in err.message
    assert state.broadcasts == {}


def test_update_merges_and_restarts_new_numbers_and_delete_removes() -> None:
    state, clock, bot, other = emulator()
    bid = state.create_broadcast(bot, {"send_type": "individual", "to": A, "message": {"text": "hi"}})["_id"]
    clock.now += 5
    assert state.get_broadcast(bot, bid)["status"] == "completed"
    state.update_broadcast(bot, bid, {"to": f"{A},{B}", "message": {"location": {"name": "x", "lat": "6.5",
                                                                                 "lng": "3.3"}}})
    changed = state.get_broadcast(bot, bid)
    assert changed["message"]["text"] == "hi" and changed["message"]["location"]["lat"] == "6.5"
    assert changed["__v"] == 1 and changed["status"] == "sending"
    assert (changed["sent"], changed["pending"]) == ([A], [B])  # B's clock starts at the change
    assert refused(state.update_broadcast, bot, bid, {"message": "x"}).message == "message must be an object"
    assert refused(state.update_broadcast, bot, bid, {"to": "+1"}).status == 400
    # another bot sees none of it
    assert refused(state.get_broadcast, other, bid).status == 404
    assert refused(state.delete_broadcast, other, bid).message == "Broadcast not found"
    state.delete_broadcast(bot, bid)
    assert refused(state.get_broadcast, bot, bid).status == 404


def test_group_broadcast_goes_to_the_groups_contacts() -> None:
    state, clock, bot, other = emulator()
    vip = state.create_group(bot, {"title": "VIP"})
    assert (vip["title"], vip["is_default"], vip["client_id"]) == ("VIP", False, bot)
    empty = state.create_group(bot, {"title": "Empty"})
    for number in (A, B, A):
        state.create_contact(bot, {"number": number, "group_id": vip["_id"]})
    err = refused(state.create_broadcast, bot, {"send_type": "group", "to": empty["_id"], "message": {"text": "x"}})
    assert err.message == "The contact group has no contacts"
    assert refused(state.create_broadcast, other, {"send_type": "group", "to": vip["_id"],
                                                   "message": {"text": "x"}}).message.startswith("Contact group")
    bid = state.create_broadcast(bot, {"send_type": "group", "to": vip["_id"], "message": {"text": "x"}})["_id"]
    clock.now += 5
    assert state.get_broadcast(bot, bid)["sent"] == [A, B]  # distinct numbers
    # deleting a group keeps its contacts, outside any group
    state.delete_group(bot, vip["_id"])
    assert {c["group_id"] for c in state.list_contacts(bot)} == {None}
    assert refused(state.get_group, bot, vip["_id"]).message == "Contact group not found"


def test_contacts_and_groups_are_checked_and_kept_per_bot() -> None:
    state, _, bot, other = emulator()
    group = state.create_group(bot, {"title": "VIP"})
    assert refused(state.create_group, bot, {"title": " "}).message == "title is required"
    assert refused(state.create_contact, bot, {"number": f"+{A}"}).message.startswith("number must be")
    assert refused(state.create_contact, bot, {"number": A, "name": 7}).message == "name must be a string"
    assert refused(state.create_contact, other, {"number": A, "group_id": group["_id"]}).message.startswith(
        "Contact group not found")
    contact = state.create_contact(bot, {"number": A, "name": "Ada", "group_id": group["_id"]})
    assert (contact["channel"], contact["transaction"]) == ("whatsapp", {"survey_id": None, "survey_sort_id": None})
    state.create_contact(other, {"number": B})
    state.update_contact(bot, contact["_id"], {"name": "Ada L."})
    assert state.get_contact(bot, contact["_id"])["name"] == "Ada L."
    assert state.get_contact(bot, contact["_id"])["number"] == A  # a partial update keeps the rest
    assert [c["number"] for c in state.list_contacts(bot)] == [A]
    assert sorted(c["number"] for c in state.list_contacts(bot, every_bot=True)) == [A, B]
    state.update_group(bot, group["_id"], {"title": "Gold"})
    assert [g["title"] for g in state.list_groups(bot)] == ["Gold"] and state.list_groups(other) == []
    assert refused(state.update_group, bot, group["_id"], {"title": ""}).status == 400
    assert refused(state.get_contact, other, contact["_id"]).message == "Contact not found"
    state.delete_contact(bot, contact["_id"])
    assert refused(state.delete_contact, bot, contact["_id"]).status == 404


def test_attachments_are_stored_per_bot_and_answered_as_data_uris() -> None:
    state, _, bot, other = emulator()
    assert refused(state.upload_attachment, bot, None).message.endswith("multipart field 'file'")
    assert refused(state.upload_attachment, bot, ("a.png", "image/png", b"")).message == "The uploaded file is empty"
    uri = state.upload_attachment(bot, ("a.png", "image/png", b"\x89PNG"))
    assert uri == "data:image/png;base64,iVBORw=="
    (record,) = state.list_attachments(bot)
    assert (record["type"], record["mimetype"], len(record["name"])) == ("png", "image/png", 15)
    assert record["path"] == f"./public/attachments/{record['name']}.png"
    assert state.list_attachments(other) == []
    assert refused(state.get_attachment, other, record["_id"]).message == "Attachment not found"
    # an attachment of the bot may go in its broadcasts
    state.create_broadcast(bot, {"send_type": "individual", "to": A,
                                 "message": {"attachments": [record["_id"]]}})
    state.delete_attachment(bot, record["_id"])
    assert refused(state.delete_attachment, bot, record["_id"]).status == 404


def test_answers_are_copies_of_the_state() -> None:
    state, _, bot, _ = emulator()
    created = state.create_broadcast(bot, {"send_type": "individual", "to": A, "message": {"text": "hi"}})
    created["message"]["text"] = "changed by the caller"
    state.get_broadcast(bot, created["_id"])["sent"].append("x")
    contact = state.create_contact(bot, {"number": A})
    contact["number"] = "0"
    assert state.get_broadcast(bot, created["_id"])["message"]["text"] == "hi"
    assert state.get_broadcast(bot, created["_id"])["sent"] == []
    assert state.get_contact(bot, contact["_id"])["number"] == A


def test_sandbox_account_and_state_load_without_the_web_framework() -> None:
    """The hook reads the state module only: no Starlette import (the routes load on first use)."""
    import subprocess
    import sys

    code = ("import sys, smsgate_broadcast as b\n"
            "account = b.smsgate_sandbox_account('broadcast')\n"
            "assert account.credentials['session_id'] == 'sandbox-session-0001', account\n"
            "from smsgate_broadcast.emulator import WaabotState\n"
            "WaabotState().bot('sandbox-session-0001', 'sandbox-bot-access-token')\n"
            "assert 'starlette' not in sys.modules, 'starlette imported'\n"
            "from smsgate_broadcast.emulator import create_app\n"
            "assert create_app().vendor is not None and 'starlette' in sys.modules\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    import smsgate_broadcast.emulator as emulator

    with pytest.raises(AttributeError, match="no_such_name"):
        emulator.no_such_name
