"""Contract tests: the seed's examples (WAABOT "Broadcasts/Messages" page) fed to the adapter.

No server: operations are driven with canned :class:`httpx.Response` objects via
:func:`smsgate.transport.run_with_responses`, and the requests they yield are checked
against what the documents say (paths, body credentials, Bearer + x-refresh).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from smsgate.errors import (
    AuthFailed,
    ConfigError,
    DownloadRefused,
    DownloadTooLarge,
    MalformedResponse,
    RequestRejected,
    ResourceNotFound,
    Unsupported,
    ValidationError,
)
from smsgate.models import Attachment, Location, OutboundMessage, SendResult, Status
from smsgate.provider import ProviderSettings
from smsgate.transport import run_with_responses
from smsgate_broadcast import BroadcastProvider, parse_attachment, parse_broadcast
from smsgate_broadcast.options import MAX_BATCH

BASE = "https://api.waabot.com/api/v1"
CREDS = {"session_id": "sess-123", "access_token": "bot-token-456",
         "email": "ops@example.ng", "password": "pw-secret-789"}

# ---- seed 004, verbatim ------------------------------------------------------------------
SEED_CREATE_REQUEST = {
    "session_id": "",
    "access_token": "",
    "send_type": "individual",
    "to": "2348179803743,2349048988056",
    "message": {
        "text": "New Test Broadcasts text",
        "attachments": ["64ac311eee05a1a2c27fbdb5", "64ac265749240c35b96cb78c"],
        "location": {"name": "optional", "lat": "6.556452", "lng": "3.2774487"},
        "contactId": "64a00ec7c5e487d95dcb0d5e",
    },
}
SEED_CREATE_RESPONSE = {
    "status": True,
    "message": "Broadcast group created successfully!",
    "data": {
        "client_id": "649ff7e0e6046617c8aeabf0",
        "send_type": "individual",
        "to": "2348179803743,2349048988056",
        "message": {
            "text": "New Test Broadcasts text",
            "attachments": ["64ac311eee05a1a2c27fbdb5", "64ac265749240c35b96cb78c"],
            "location": {"name": "optional", "lat": "6.556452", "lng": "3.2774487"},
            "contactId": "64a00ec7c5e487d95dcb0d5e",
        },
        "status": "sending",
        "sent": [],
        "pending": [],
        "failed": [],
        "_id": "64ac509d05a7cc2b8c2bd9ab",
        "createdAt": "2023-07-10T18:40:29.784Z",
        "updatedAt": "2023-07-10T18:40:29.784Z",
        "__v": 0,
    },
}


def _att(_id: str, name: str, created: str, client: str | None = None) -> dict[str, Any]:
    rec: dict[str, Any] = {"_id": _id, "type": "jpeg", "mimetype": "image/jpeg", "name": name,
                           "path": f"./public/attachments/{name}.jpeg"}
    if client:
        rec["client_id"] = client
    rec.update({"createdAt": created, "updatedAt": created, "__v": 0})
    return rec


SEED_ATTACHMENTS = {
    "status": True,
    "message": "Attachment fetched successfully!",
    "data": [
        _att("61b1b13ebc13b707882c7657", "JCEVJKGEFKSMR8W", "2021-12-09T07:33:18.698Z"),
        _att("61b1b1e0e914222a588e63fa", "PNUQZIGUER5RASG", "2021-12-09T07:36:00.760Z"),
        _att("61b1b29b4b8b922d88c56dfe", "JRVKY261K0GUKAD", "2021-12-09T07:39:07.503Z"),
        _att("61b1b2eb50ff9d6c4cedbbd0", "7K51D3GOCZ3LZP8", "2021-12-09T07:40:27.760Z"),
        _att("61b1b55ca29cc051b494dd4f", "IIETQZEPT3EPLWC", "2021-12-09T07:50:52.071Z",
             "61a7bd6ea34282366c025764"),
    ],
}
SEED_ATTACHMENT_ONE = {
    "status": True,
    "message": "Attachment fetched successfully!",
    "data": _att("61b1b55ca29cc051b494dd4f", "IIETQZEPT3EPLWC", "2021-12-09T07:50:52.071Z",
                 "61a7bd6ea34282366c025764"),
}
LOGIN = {"accessToken": "eyJ-access-1", "refreshToken": "eyJ-refresh-1"}


# ---- helpers -----------------------------------------------------------------------------
def make(creds: dict[str, str] | None = None, base_url: str | None = None, **options: Any) -> BroadcastProvider:
    return BroadcastProvider(ProviderSettings(plugin="broadcast", base_url=base_url,
                                              credentials=creds if creds is not None else CREDS,
                                              options=options))


def reply(status: int = 200, body: Any = None, log: list[httpx.Request] | None = None,
          **kw: Any) -> Callable[[httpx.Request], httpx.Response]:
    def respond(request: httpx.Request) -> httpx.Response:
        if log is not None:
            log.append(request)
        if body is None:
            return httpx.Response(status, request=request, **kw)
        if isinstance(body, (bytes, str)):
            return httpx.Response(status, content=body, request=request, **kw)
        return httpx.Response(status, json=body, request=request, **kw)
    return respond


def body_of(request: httpx.Request) -> dict[str, Any]:
    return json.loads(request.content)  # type: ignore[no-any-return]


def query_of(request: httpx.Request) -> dict[str, list[str]]:
    return parse_qs(request.url.query.decode())


def msg(to: str, text: str = "New Test Broadcasts text", **kw: Any) -> OutboundMessage:
    return OutboundMessage(to=to, text=text, message_id=f"m-{to[-4:]}-{text[:3]}", **kw)


# ---- create / send -----------------------------------------------------------------------
def test_create_broadcast_request_matches_seed() -> None:
    log: list[httpx.Request] = []
    record = run_with_responses(
        make().create_broadcast(
            ["+2348179803743", "+2349048988056"], "New Test Broadcasts text",
            attachments=["64ac311eee05a1a2c27fbdb5", "64ac265749240c35b96cb78c"],
            location=Location(name="optional", lat=6.556452, lng=3.2774487),
            contact_id="64a00ec7c5e487d95dcb0d5e",
        ),
        [reply(200, LOGIN, log), reply(200, SEED_CREATE_RESPONSE, log)],
    )
    login, create = log
    assert (login.method, str(login.url)) == ("POST", f"{BASE}/sessions")
    assert body_of(login) == {"email": "ops@example.ng", "password": "pw-secret-789"}
    assert "authorization" not in login.headers
    assert (create.method, create.url.path) == ("POST", "/api/v1/broadcast")
    expected = dict(SEED_CREATE_REQUEST, session_id="sess-123", access_token="bot-token-456")
    assert body_of(create) == expected
    assert create.url.query == b""  # as in the seed: the bot credentials in the body only (by default)
    assert create.headers["authorization"] == "Bearer eyJ-access-1"
    assert create.headers["x-refresh"] == "eyJ-refresh-1"
    assert record.id == "64ac509d05a7cc2b8c2bd9ab"
    assert record.status == "sending"
    assert record.to == ("2348179803743", "2349048988056")
    assert record.attachments == ("64ac311eee05a1a2c27fbdb5", "64ac265749240c35b96cb78c")
    assert record.location == Location(name="optional", lat=6.556452, lng=3.2774487)
    assert record.contact_id == "64a00ec7c5e487d95dcb0d5e"
    assert record.client_id == "649ff7e0e6046617c8aeabf0"
    assert record.created_at is not None and record.created_at.year == 2023
    assert (record.sent, record.pending, record.failed) == ((), (), ())


def test_send_many_maps_each_number_to_its_message() -> None:
    loc = Location(name="optional", lat=6.556452, lng=3.2774487)
    msgs = [msg("+2348179803743", location=loc, provider_options={"contactId": "64a00ec7c5e487d95dcb0d5e"},
                attachments=[Attachment(provider_id="64ac311eee05a1a2c27fbdb5"),
                             Attachment(provider_id="64ac265749240c35b96cb78c")]),
            msg("+2349048988056", location=loc, provider_options={"contactId": "64a00ec7c5e487d95dcb0d5e"},
                attachments=[Attachment(provider_id="64ac311eee05a1a2c27fbdb5"),
                             Attachment(provider_id="64ac265749240c35b96cb78c")])]
    log: list[httpx.Request] = []
    results = run_with_responses(make().send_many(msgs), [reply(200, LOGIN), reply(200, SEED_CREATE_RESPONSE, log)])
    assert body_of(log[0])["message"] == SEED_CREATE_REQUEST["message"]
    assert body_of(log[0])["to"] == SEED_CREATE_REQUEST["to"]
    assert [r.to for r in results] == ["+2348179803743", "+2349048988056"]
    assert [r.message_id for r in results] == [m.message_id for m in msgs]
    assert all(r.status == Status.SUBMITTED and r.raw_status == "sending" for r in results)
    assert [r.provider_message_id for r in results] == [
        "64ac509d05a7cc2b8c2bd9ab:2348179803743", "64ac509d05a7cc2b8c2bd9ab:2349048988056"]
    assert {r.batch_id for r in results} == {"64ac509d05a7cc2b8c2bd9ab"}


def test_send_many_is_one_broadcast_of_one_content_to_distinct_numbers() -> None:
    p = make()
    assert p.distinct_recipients and p.batch_key(msg("+2348000000001", "A")) != p.batch_key(msg("+2348000000001", "B"))
    log: list[httpx.Request] = []
    msgs = [msg("+2348000000001", "A"), msg("+2348000000003", "A")]
    results = run_with_responses(p.send_many(msgs), [reply(200, LOGIN), reply(200, SEED_CREATE_RESPONSE, log)])
    assert [(body_of(r)["message"]["text"], body_of(r)["to"]) for r in log] == [("A", "2348000000001,2348000000003")]
    assert len(results) == 2 and len({r.provider_message_id for r in results}) == 2
    # the gateway never mixes contents nor repeats a number in one call: an adapter asked to refuses
    for wrong in ([msg("+2348000000001", "A"), msg("+2348000000002", "B")],
                  [msg("+2348000000001", "A"), msg("+2348000000001", "A")]):
        with pytest.raises(ValueError, match="one content to distinct numbers"):
            run_with_responses(make().send_many(wrong), [])


def test_max_batch_option_is_the_instance_capability() -> None:
    assert make(max_batch=3).capabilities.max_batch == 3
    assert make().capabilities.max_batch == MAX_BATCH


def test_first_broadcast_failure_raises() -> None:
    with pytest.raises(RequestRejected, match="Invalid number"):
        run_with_responses(make().send(msg("+2348000000001")), [
            reply(200, LOGIN), reply(400, {"status": False, "message": "Invalid number '+234'"})])


def test_error_inside_http_200_body() -> None:
    with pytest.raises(RequestRejected, match="create broadcast refused: Broadcast limit reached"):
        run_with_responses(make().send(msg("+2348000000001")), [
            reply(200, LOGIN), reply(200, {"status": False, "message": "Broadcast limit reached"})])
    with pytest.raises(AuthFailed):
        run_with_responses(make().list_broadcasts(), [
            reply(200, LOGIN), reply(200, {"status": False, "message": "Invalid session, please reconnect"})])


def test_status_false_error_body_message_is_used_and_secrets_redacted() -> None:
    echo = {"status": False, "message": "bad access_token bot-token-456 for sess-123"}
    with pytest.raises(RequestRejected) as info:
        run_with_responses(make().get_broadcast("x"), [reply(200, LOGIN), reply(422, echo)])
    text = f"{info.value} {info.value.body}"
    assert "bot-token-456" not in text and "sess-123" not in text
    with pytest.raises(ResourceNotFound, match="Broadcast not found"):
        run_with_responses(make().get_broadcast("nope"), [
            reply(200, LOGIN), reply(404, {"status": False, "message": "Broadcast not found"})])
    with pytest.raises(RequestRejected, match="no such thing"):  # the SDK also reads `error`
        run_with_responses(make().get_broadcast("x"), [reply(200, LOGIN), reply(400, {"error": "no such thing"})])


def test_malformed_answers() -> None:
    with pytest.raises(MalformedResponse, match="no _id"):
        run_with_responses(make().send(msg("+2348000000001")), [
            reply(200, LOGIN), reply(200, {"status": True, "data": {"status": "sending"}})])
    with pytest.raises(MalformedResponse, match="expected JSON"):
        run_with_responses(make().send(msg("+2348000000001")), [
            reply(200, LOGIN), reply(200, b"<html>oops</html>", headers={"content-type": "text/html"})])
    with pytest.raises(MalformedResponse, match="expected a list"):
        run_with_responses(make().list_attachments(), [reply(200, LOGIN), reply(200, {"status": True, "data": {}})])
    with pytest.raises(MalformedResponse, match="accessToken"):
        run_with_responses(make().login(), [reply(200, {"token": "x"})])


# ---- auth --------------------------------------------------------------------------------
def test_token_is_cached_and_renewed_once_after_401() -> None:
    prov = make()
    log: list[httpx.Request] = []
    run_with_responses(prov.list_broadcasts(), [reply(200, LOGIN, log), reply(200, {"status": True, "data": []}, log)])
    run_with_responses(prov.list_broadcasts(), [reply(200, {"status": True, "data": []}, log)])
    assert [r.url.path for r in log] == ["/api/v1/sessions", "/api/v1/broadcast", "/api/v1/broadcast"]
    fresh = {"accessToken": "eyJ-access-2", "refreshToken": "eyJ-refresh-2"}
    log.clear()
    out = run_with_responses(prov.list_broadcasts(), [
        reply(401, {"status": False, "message": "jwt expired"}, log), reply(200, fresh, log),
        reply(200, {"status": True, "data": []}, log)])
    assert out == []
    assert [r.url.path for r in log] == ["/api/v1/broadcast", "/api/v1/sessions", "/api/v1/broadcast"]
    assert log[2].headers["authorization"] == "Bearer eyJ-access-2"
    assert log[2].headers["x-refresh"] == "eyJ-refresh-2"


@pytest.mark.parametrize("status", [401, 403])
@pytest.mark.parametrize("message", ["Invalid session_id or access_token", "access_token is invalid",
                                     "Unknown session_id"])
def test_refused_bot_credentials_are_not_retried(status: int, message: str) -> None:
    """A 401/403 naming the bot pair: logging in again cannot cure it, so one request, no retry."""
    prov = make()
    log: list[httpx.Request] = []
    with pytest.raises(AuthFailed, match="session_id") as info:
        run_with_responses(prov.list_broadcasts(), [
            reply(200, LOGIN, log), reply(status, {"status": False, "message": message}, log)])
    assert [r.url.path for r in log] == ["/api/v1/sessions", "/api/v1/broadcast"]
    assert info.value.status_code == status and message in str(info.value)
    assert "bot-token-456" not in f"{info.value} {info.value.body}"
    # the account session was fine: it is kept for the next call
    run_with_responses(prov.list_broadcasts(), [reply(200, {"status": True, "data": []}, log)])
    assert log[-1].headers["authorization"] == "Bearer eyJ-access-1"


@pytest.mark.parametrize("message", ["jwt expired", "Unauthorized: a valid Bearer access token is required",
                                     "Invalid accessToken"])
def test_refused_account_session_is_renewed_once(message: str) -> None:
    log: list[httpx.Request] = []
    out = run_with_responses(make().list_broadcasts(), [
        reply(200, LOGIN, log), reply(401, {"status": False, "message": message}, log), reply(200, LOGIN, log),
        reply(200, {"status": True, "data": []}, log)])
    assert out == [] and len(log) == 4


def test_bad_login_is_auth_failed_without_secrets() -> None:
    with pytest.raises(AuthFailed) as info:
        run_with_responses(make().send(msg("+2348000000001")), [
            reply(401, {"status": False, "message": "Invalid email or password"})])
    assert "pw-secret-789" not in f"{info.value} {info.value.body}"


def test_configured_account_token_is_used_without_login() -> None:
    creds = {"session_id": "s", "access_token": "b", "account_token": "eyJ-static", "refresh_token": "eyJ-r"}
    log: list[httpx.Request] = []
    run_with_responses(make(creds).list_attachments(), [reply(200, SEED_ATTACHMENTS, log)])
    assert log[0].headers["authorization"] == "Bearer eyJ-static"
    assert log[0].headers["x-refresh"] == "eyJ-r"
    # no email/password: a 401 cannot be cured by logging in, so it is not retried
    with pytest.raises(AuthFailed):
        run_with_responses(make(creds).list_attachments(), [reply(401, {"status": False, "message": "jwt expired"})])


def test_provider_attributes_hold_no_plain_secret_before_or_after_login() -> None:
    creds = {**CREDS, "account_token": "eyJ-static-account", "refresh_token": "eyJ-static-refresh"}
    prov = make(creds)

    def shown() -> str:
        return f"{prov!r} {vars(prov)!r}"

    assert not [v for v in creds.values() if v in shown()]
    bearer: list[str | None] = []

    def seen(response: Callable[[httpx.Request], httpx.Response]) -> Callable[[httpx.Request], httpx.Response]:
        return lambda request: (bearer.append(request.headers.get("authorization")), response(request))[1]

    run_with_responses(prov.list_broadcasts(), [
        seen(reply(401, {"status": False, "message": "jwt expired"})), reply(200, LOGIN),
        seen(reply(200, {"status": True, "data": []}))])
    assert bearer == ["Bearer eyJ-static-account", "Bearer eyJ-access-1"]  # the tokens are used ...
    assert not [v for v in [*creds.values(), *LOGIN.values()] if v in shown()]  # ... but never shown
    assert {"eyJ-access-1", "eyJ-refresh-1", "bot-token-456"} <= set(prov.secrets())  # and redacted from errors


def test_bot_credentials_only_sends_no_authorization() -> None:
    log: list[httpx.Request] = []
    run_with_responses(make({"session_id": "s", "access_token": "b"}).list_attachments(),
                       [reply(200, SEED_ATTACHMENTS, log)])
    assert "authorization" not in log[0].headers and "x-refresh" not in log[0].headers


@pytest.mark.parametrize("where", ["both", "body", "query"])
def test_credentials_location_option(where: str) -> None:
    log: list[httpx.Request] = []
    prov = make({"session_id": "s", "access_token": "b"}, credentials_in=where)
    run_with_responses(prov.get_attachment("61b1b55ca29cc051b494dd4f"), [reply(200, SEED_ATTACHMENT_ONE, log)])
    run_with_responses(prov.send(msg("+2348000000001")), [reply(200, SEED_CREATE_RESPONSE, log)])
    get, post = log
    creds = {"session_id": ["s"], "access_token": ["b"]}
    assert (query_of(get) == creds) == (where in ("both", "query"))
    assert (query_of(post) == creds) == (where in ("both", "query"))
    assert (get.content != b"" and body_of(get) == {"session_id": "s", "access_token": "b"}) == (where != "query")
    assert ("session_id" in body_of(post)) == (where != "query")


def test_config_errors() -> None:
    with pytest.raises(ConfigError, match="session_id"):
        make({"access_token": "b"})
    with pytest.raises(ConfigError, match="go together"):
        make({"session_id": "s", "access_token": "b", "email": "a@b.c"})


@pytest.mark.parametrize("base,expected", [
    (None, "https://api.waabot.com/api/v1/broadcast"),
    ("http://127.0.0.1:9", "http://127.0.0.1:9/api/v1/broadcast"),
    ("http://127.0.0.1:9/api/v1/", "http://127.0.0.1:9/api/v1/broadcast"),
    ("https://proxy.example/waabot", "https://proxy.example/waabot/api/v1/broadcast"),
])
def test_base_url_and_prefix(base: str | None, expected: str) -> None:
    log: list[httpx.Request] = []
    run_with_responses(make({"session_id": "s", "access_token": "b"}, base_url=base, credentials_in="body")
                       .list_broadcasts(), [reply(200, {"status": True, "data": []}, log)])
    assert str(log[0].url) == expected


# ---- list / get / update / delete --------------------------------------------------------
def test_list_and_get_attachments_from_seed() -> None:
    items = run_with_responses(make().list_attachments(), [reply(200, LOGIN), reply(200, SEED_ATTACHMENTS)])
    assert [a.id for a in items] == [d["_id"] for d in SEED_ATTACHMENTS["data"]]  # type: ignore[index]
    assert items[0].client_id is None and items[-1].client_id == "61a7bd6ea34282366c025764"
    assert items[0].mimetype == "image/jpeg" and items[0].path == "./public/attachments/JCEVJKGEFKSMR8W.jpeg"
    one = run_with_responses(make().get_attachment("61b1b55ca29cc051b494dd4f"),
                             [reply(200, LOGIN), reply(200, SEED_ATTACHMENT_ONE)])
    assert one == items[-1]


def test_broadcast_list_tolerates_the_docs_copied_sample() -> None:
    # the docs show the attachment list under "GET /broadcast": it must still parse
    items = run_with_responses(make().list_broadcasts(), [reply(200, LOGIN), reply(200, SEED_ATTACHMENTS)])
    assert items[0].id == "61b1b13ebc13b707882c7657"
    assert items[0].to == () and items[0].status is None


def test_delete_answers_204_or_envelope() -> None:
    log: list[httpx.Request] = []
    assert run_with_responses(make().delete_broadcast("64ac509d05a7cc2b8c2bd9ab"),
                              [reply(200, LOGIN), reply(204, None, log)]) is None
    assert (log[0].method, log[0].url.path) == ("DELETE", "/api/v1/broadcast/64ac509d05a7cc2b8c2bd9ab")
    assert body_of(log[0]) == {"session_id": "sess-123", "access_token": "bot-token-456"}
    assert run_with_responses(make().delete_attachment("61b1b55ca29cc051b494dd4f"),
                              [reply(200, LOGIN), reply(200, {"status": True, "message": "deleted"})]) is None
    with pytest.raises(ValidationError):
        run_with_responses(make().delete_attachment(""), [reply(200, LOGIN)])


def test_update_with_record_answer_or_204() -> None:
    log: list[httpx.Request] = []
    rec = run_with_responses(make().update_broadcast("64ac509d05a7cc2b8c2bd9ab", text="New text", to=["+2348179803743"]),
                             [reply(200, LOGIN), reply(200, SEED_CREATE_RESPONSE, log)])
    assert rec.id == "64ac509d05a7cc2b8c2bd9ab"
    put = log[0]
    assert put.method == "PUT"
    assert body_of(put) == {"session_id": "sess-123", "access_token": "bot-token-456",
                            "to": "2348179803743", "message": {"text": "New text"}}
    log.clear()
    rec = run_with_responses(make().update_broadcast("64ac509d05a7cc2b8c2bd9ab",
                                                     location=Location(lat=1.5, lng=2.25)),
                             [reply(200, LOGIN), reply(204, None, log), reply(200, SEED_CREATE_RESPONSE, log)])
    assert [r.method for r in log] == ["PUT", "GET"]
    assert body_of(log[0])["message"] == {"location": {"name": "", "lat": "1.5", "lng": "2.25"}}
    assert rec.status == "sending"
    with pytest.raises(ValidationError, match="nothing to update"):
        run_with_responses(make().update_broadcast("x"), [])


# ---- status ------------------------------------------------------------------------------
def _progress(status: str, **lists: list[Any]) -> dict[str, Any]:
    data = dict(SEED_CREATE_RESPONSE["data"], status=status)  # type: ignore[arg-type]
    data.update({"sent": [], "pending": [], "failed": []})
    data.update(lists)
    return {"status": True, "message": "Broadcast fetched successfully!", "data": data}


@pytest.mark.parametrize("body,expected,raw", [
    (_progress("sending"), Status.SUBMITTED, "sending"),
    (_progress("sending", pending=["2348179803743"]), Status.SUBMITTED, "pending"),
    (_progress("sending", sent=["2348179803743"], pending=["2349048988056"]), Status.SENT, "sent"),
    (_progress("completed", failed=["+2348179803743"]), Status.FAILED, "failed"),
    (_progress("sending", sent=["2348179803743@s.whatsapp.net"]), Status.SENT, "sent"),
    (_progress("sending", sent=[{"number": "2348179803743"}]), Status.SENT, "sent"),
    (_progress("completed", sent=["64a00ec7c5e487d95dcb0d5e"]), Status.SENT, "completed"),
    (_progress("weird-new-state"), Status.UNKNOWN, "weird-new-state"),
])
def test_status_lookup_reads_the_lists(body: dict[str, Any], expected: Status, raw: str) -> None:
    sent = SendResult(to="+2348179803743", status=Status.SUBMITTED,
                      provider_message_id="64ac509d05a7cc2b8c2bd9ab:2348179803743",
                      batch_id="64ac509d05a7cc2b8c2bd9ab")
    log: list[httpx.Request] = []
    report = run_with_responses(make().status(sent), [reply(200, LOGIN), reply(200, body, log)])
    assert (log[0].method, log[0].url.path) == ("GET", "/api/v1/broadcast/64ac509d05a7cc2b8c2bd9ab")
    assert report.status == expected and report.raw_status == raw
    assert report.provider_message_id == sent.provider_message_id
    assert report.batch_id == "64ac509d05a7cc2b8c2bd9ab" and report.to == "+2348179803743"


def test_status_falls_back_to_batch_id_and_needs_an_id() -> None:
    result = SendResult(to="+2348179803743", status=Status.SUBMITTED, batch_id="64ac509d05a7cc2b8c2bd9ab")
    report = run_with_responses(make().status(result), [
        reply(200, LOGIN), reply(200, _progress("sending", sent=["2348179803743"]))])
    assert report.status == Status.SENT
    with pytest.raises(ValidationError):
        run_with_responses(make().status(SendResult(to="+2348179803743", status=Status.SUBMITTED)), [])


def test_broadcast_reports_cover_every_number() -> None:
    reports = run_with_responses(make().broadcast_reports("64ac509d05a7cc2b8c2bd9ab"), [
        reply(200, LOGIN), reply(200, _progress("sending", sent=["2348179803743"], failed=["2349048988056"]))])
    assert {(r.to, r.status) for r in reports} == {("+2348179803743", Status.SENT),
                                                   ("+2349048988056", Status.FAILED)}


def test_no_webhooks() -> None:
    with pytest.raises(Unsupported, match="delivery-report webhooks"):
        make().parse_webhook({}, b"{}")


# ---- attachments upload ------------------------------------------------------------------
def test_upload_is_multipart_file_and_resolves_the_new_id() -> None:
    new = _att("64ac311eee05a1a2c27fbdb5", "NEWNEWNEWNEWNEW", "2023-07-10T18:00:00.000Z", "649ff7e0e6046617c8aeabf0")
    after = dict(SEED_ATTACHMENTS, data=[*SEED_ATTACHMENTS["data"], new])  # type: ignore[misc]
    log: list[httpx.Request] = []
    uploaded = run_with_responses(make().upload_attachment(b"\xff\xd8\xff-jpeg", "shop.jpg"), [
        reply(200, LOGIN), reply(200, SEED_ATTACHMENTS, log),
        reply(200, {"status": True, "data": "data:image/jpeg;base64,/9j/LWpwZWc="}, log),
        reply(200, after, log)])
    assert uploaded.id == "64ac311eee05a1a2c27fbdb5"
    assert uploaded.data_uri.startswith("data:image/jpeg;base64,")
    post = log[1]
    assert post.method == "POST" and post.url.path == "/api/v1/attachment"
    assert post.headers["content-type"].startswith("multipart/form-data")
    content = post.read()
    assert b'name="file"; filename="shop.jpg"' in content and b"\xff\xd8\xff-jpeg" in content
    assert b'name="session_id"' in content and b"sess-123" in content


def test_upload_without_resolving_and_without_a_new_record() -> None:
    uri = {"status": True, "data": "data:image/png;base64,iVBORw0KGgo="}
    out = run_with_responses(make().upload_attachment(b"png", "a.png", resolve_id=False),
                             [reply(200, LOGIN), reply(200, uri)])
    assert out.id is None and out.data_uri == uri["data"]
    with pytest.raises(MalformedResponse, match="_id is unknown"):
        run_with_responses(make().upload_attachment(b"png", "a.png"), [
            reply(200, LOGIN), reply(200, SEED_ATTACHMENTS), reply(200, uri), reply(200, SEED_ATTACHMENTS)])


def test_url_attachment_is_downloaded_then_uploaded_once() -> None:
    new = _att("64ac265749240c35b96cb78c", "ZZZZZZZZZZZZZZZ", "2023-07-10T18:00:00.000Z")
    after = {"status": True, "data": [new]}
    log: list[httpx.Request] = []
    att = [Attachment(url="https://cdn.example.ng/img/shop.jpg")]
    results = run_with_responses(make().send_many([msg("+2348000000001", attachments=att),
                                                   msg("+2348000000002", attachments=att)]), [
        reply(200, b"\xff\xd8\xff", log, headers={"content-type": "image/jpeg"}),
        reply(200, LOGIN),
        reply(200, {"status": True, "data": []}, log),
        reply(200, {"status": True, "data": "data:image/jpeg;base64,/9j/"}, log),
        reply(200, after, log),
        reply(200, SEED_CREATE_RESPONSE, log)])
    assert [(r.method, r.url.host, r.url.path) for r in log] == [
        ("GET", "cdn.example.ng", "/img/shop.jpg"), ("GET", "api.waabot.com", "/api/v1/attachment"),
        ("POST", "api.waabot.com", "/api/v1/attachment"), ("GET", "api.waabot.com", "/api/v1/attachment"),
        ("POST", "api.waabot.com", "/api/v1/broadcast")]
    assert "authorization" not in log[0].headers  # no vendor credentials to a third party
    assert body_of(log[-1])["message"]["attachments"] == ["64ac265749240c35b96cb78c"]
    assert len(results) == 2


def test_attachment_download_failure_and_unsendable_attachments() -> None:
    secret_url = "https://user:pw-91@x.ng/a.jpg?sig=tok-5521"
    for status in (404, 302):
        with pytest.raises(DownloadRefused, match=rf"HTTP {status}") as refused:
            run_with_responses(make().send(msg("+2348000000001", attachments=[Attachment(url=secret_url)])),
                               [reply(status, b"nope")])
        assert refused.value.field == "attachments[0].url" and refused.value.status_code == status
        assert refused.value.url == "https://x.ng/a.jpg"
        assert "pw-91" not in str(refused.value) and "tok-5521" not in str(refused.value)
    page = [Attachment(url="https://x.ng/a.jpg")]
    with pytest.raises(DownloadRefused, match=r"content type 'text/html' is not a media type allowed"):
        run_with_responses(make().send(msg("+2348000000001", attachments=page)),
                           [reply(200, b"<html>", headers={"content-type": "text/html; charset=utf-8"})])
    # the cap holds whoever runs the operation (the drivers stop the download itself there)
    with pytest.raises(DownloadTooLarge, match=r"https://x\.ng/a\.jpg refused: .*cap of 3 bytes") as big:
        run_with_responses(make(attachment_max_bytes=3).send(msg("+2348000000001", attachments=page)),
                           [reply(200, b"\xff\xd8\xff\xe0", headers={"content-type": "image/jpeg"})])
    assert big.value.limit == 3 and isinstance(big.value, ValidationError)
    with pytest.raises(Unsupported, match="only by filename"):
        run_with_responses(make().send(msg("+2348000000001", attachments=[Attachment(filename="a.jpg")])), [])
    with pytest.raises(Unsupported, match="attachment url"):
        run_with_responses(make().send(msg("+2348000000001", attachments=[Attachment(url="ftp://x/a.jpg")])), [])


def test_parsers_reject_non_objects() -> None:
    with pytest.raises(MalformedResponse, match="expected a broadcast object"):
        parse_broadcast(["x"], "here")
    with pytest.raises(MalformedResponse, match="attachment has no _id"):
        parse_attachment({"name": "x"})
    with pytest.raises(MalformedResponse, match=r"location\.lat"):
        parse_broadcast({"_id": "a", "message": {"location": {"lat": "north", "lng": "1"}}})


# ---- packaging ---------------------------------------------------------------------------
def test_plugin_module_registers_the_provider_and_entry_points_exist() -> None:
    from importlib.metadata import entry_points

    import smsgate_broadcast
    from smsgate.plugins import PluginManager

    pm = PluginManager(load_entry_points=False)
    pm.register(smsgate_broadcast, name="broadcast")
    assert pm.get_provider_class("broadcast") is BroadcastProvider
    assert {ep.value for ep in entry_points(group="smsgate.providers") if ep.name == "broadcast"} == {
        "smsgate_broadcast"}
    assert {ep.value for ep in entry_points(group="smsgate.emulators") if ep.name == "broadcast"} == {
        "smsgate_broadcast.emulator:create_app"}


def test_capabilities() -> None:
    caps = BroadcastProvider.capabilities
    assert (caps.bulk, caps.max_batch, caps.media, caps.location, caps.status_lookup) == (True, 1000, True, True, True)
    assert not caps.delivery_reports and not caps.templates and not caps.client_reference
    assert BroadcastProvider.uses_tokens
