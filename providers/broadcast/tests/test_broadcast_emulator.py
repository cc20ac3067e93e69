"""The WAABOT emulator's own claims, checked with a plain HTTP client (no adapter)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from smsgate.testing.server import LiveServer
from smsgate_broadcast.emulator import SANDBOX_CREDENTIALS, create_app, vendor_state

BOT = {"session_id": SANDBOX_CREDENTIALS["session_id"], "access_token": SANDBOX_CREDENTIALS["access_token"]}


@pytest.fixture(scope="module")
def api() -> Iterator[tuple[httpx.Client, Any]]:
    app = create_app(delivery_delay=3600.0, max_recipients=3)
    with LiveServer(app) as server, httpx.Client(base_url=server.url + "/api/v1", timeout=5) as client:
        login = client.post("/sessions", json={"email": SANDBOX_CREDENTIALS["email"],
                                                "password": SANDBOX_CREDENTIALS["password"]})
        assert login.status_code == 200
        tokens = login.json()
        assert set(tokens) == {"accessToken", "refreshToken"}  # a bare object, no envelope
        client.headers["Authorization"] = f"Bearer {tokens['accessToken']}"
        client.headers["x-refresh"] = tokens["refreshToken"]
        yield client, app


def create(client: httpx.Client, to: str = "2348179803743,2349048988056", **extra: Any) -> httpx.Response:
    body = {**BOT, "send_type": "individual", "to": to, "message": {"text": "hi"}, **extra}
    return client.post("/broadcast", json=body)


def test_create_answer_has_the_documented_shape(api: tuple[httpx.Client, Any]) -> None:
    client, _ = api
    resp = create(client)
    assert resp.status_code == 200
    body = resp.json()
    assert body["status"] is True and body["message"] == "Broadcast group created successfully!"
    data = body["data"]
    assert list(data) == ["client_id", "send_type", "to", "message", "status", "sent", "pending", "failed",
                          "_id", "createdAt", "updatedAt", "__v"]
    assert data["status"] == "sending" and data["sent"] == data["pending"] == data["failed"] == []
    assert len(data["_id"]) == 24 and int(data["_id"], 16) >= 0
    assert data["createdAt"].endswith("Z") and len(data["createdAt"]) == 24
    # afterwards the numbers wait in `pending` (delivery_delay is an hour here)
    again = client.get(f"/broadcast/{data['_id']}", params=BOT).json()["data"]
    assert again["pending"] == ["2348179803743", "2349048988056"] and again["status"] == "sending"


@pytest.mark.parametrize("how", ["query", "body"])
def test_bot_credentials_in_query_or_body_on_get(api: tuple[httpx.Client, Any], how: str) -> None:
    client, _ = api
    if how == "query":
        resp = client.get("/attachment", params=BOT)
    else:
        resp = client.request("GET", "/attachment", json=BOT)  # as the docs' curl examples do
    assert resp.status_code == 200 and resp.json()["message"] == "Attachment fetched successfully!"


def test_auth_errors(api: tuple[httpx.Client, Any]) -> None:
    client, _ = api
    no_bearer = httpx.get(str(client.base_url).rstrip("/") + "/broadcast", params=BOT)
    assert no_bearer.status_code == 401 and no_bearer.json()["status"] is False
    bad_bot = client.get("/broadcast", params={**BOT, "access_token": "wrong"})
    assert bad_bot.status_code == 403
    assert bad_bot.json() == {"status": False, "message": "Invalid session_id or access_token"}
    bad_login = client.post("/sessions", json={"email": SANDBOX_CREDENTIALS["email"], "password": "x"})
    assert bad_login.status_code == 401 and bad_login.json()["message"] == "Invalid email or password"


@pytest.mark.parametrize("change,message", [
    ({"to": "+2348179803743"}, "Invalid number"),
    ({"to": ""}, "to is required"),
    ({"to": "2348000000001,2348000000002,2348000000003,2348000000004"}, "Too many recipients"),
    ({"send_type": "broadcast"}, "send_type"),
    ({"send_type": "group", "to": "64a00ec7c5e487d95dcb0d5e"}, "Contact group not found"),
    ({"message": {"text": ""}}, "message needs"),
    ({"message": {"text": "x", "attachments": ["64ac311eee05a1a2c27fbdb5"]}}, "Attachment not found"),
    ({"message": {"text": "x", "location": {"name": "a", "lat": "north", "lng": "1"}}}, "location.lat"),
])
def test_create_validation(api: tuple[httpx.Client, Any], change: dict[str, Any], message: str) -> None:
    client, _ = api
    resp = create(client, **change)
    assert resp.status_code == 400
    assert resp.json()["status"] is False and message in resp.json()["message"]


def test_put_and_delete_answer_204(api: tuple[httpx.Client, Any]) -> None:
    client, _ = api
    bid = create(client).json()["data"]["_id"]
    put = client.put(f"/broadcast/{bid}", json={**BOT, "message": {"text": "changed"}})
    assert put.status_code == 204 and put.content == b""
    data = client.get(f"/broadcast/{bid}", params=BOT).json()["data"]
    assert data["message"]["text"] == "changed" and data["__v"] == 1
    bad = client.put(f"/broadcast/{bid}", json={**BOT, "to": "+1"})
    assert bad.status_code == 400
    gone = client.request("DELETE", f"/broadcast/{bid}", json=BOT)
    assert gone.status_code == 204 and gone.content == b""
    assert client.get(f"/broadcast/{bid}", params=BOT).status_code == 404


def test_upload_form_credentials_and_errors(api: tuple[httpx.Client, Any]) -> None:
    client, app = api
    resp = client.post("/attachment", data=BOT, files={"file": ("a.png", b"\x89PNG", "image/png")})
    assert resp.status_code == 200
    assert resp.json()["data"] == "data:image/png;base64,iVBORw=="
    records = client.get("/attachment", params=BOT).json()["data"]
    rec = records[-1]
    assert rec["type"] == "png" and rec["mimetype"] == "image/png" and len(rec["name"]) == 15
    assert set(rec) == {"_id", "type", "mimetype", "name", "path", "client_id", "createdAt", "updatedAt", "__v"}
    assert vendor_state(app).attachments[rec["_id"]][1] == b"\x89PNG"
    missing = client.post("/attachment", params=BOT, files={"upload": ("a.png", b"x", "image/png")})
    assert missing.status_code == 400 and "'file'" in missing.json()["message"]
    assert client.delete(f"/attachment/{rec['_id']}", params=BOT).status_code == 204
    assert client.delete(f"/attachment/{rec['_id']}", params=BOT).status_code == 404


def test_unknown_routes_use_the_error_envelope(api: tuple[httpx.Client, Any]) -> None:
    client, _ = api
    resp = client.get("/survey", params=BOT)  # not emulated (contacts are, since #14)
    assert resp.status_code == 404 and resp.json()["status"] is False
    resp = client.patch("/broadcast", json=BOT)
    assert resp.status_code == 405 and resp.json()["status"] is False


def test_state_is_per_app() -> None:
    a, b = create_app(), create_app()
    assert vendor_state(a) is not vendor_state(b)
    with pytest.raises(TypeError):
        vendor_state(object())


def test_injected_faults_use_the_vendor_error_body() -> None:
    app = create_app()
    with LiveServer(app) as server:
        httpx.post(server.url + "/_emulator/faults", json={"kind": "status", "status": 429, "retry_after": 1,
                                                           "path": "/api/v1/sessions"})
        resp = httpx.post(server.url + "/api/v1/sessions", json={})
    assert resp.status_code == 429 and resp.headers["retry-after"] == "1"
    assert resp.json() == {"status": False, "message": "Too Many Requests"}
