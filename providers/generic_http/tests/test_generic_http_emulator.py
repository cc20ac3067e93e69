"""The emulator follows the options it is built from: routes, credentials, fields read back, errors."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from smsgate.testing.server import LiveServer
from smsgate_generic_http.emulator import create_app

OPTIONS: dict[str, Any] = {
    "basic_auth": {"username": "{secret.user}", "password": "{secret.pass}"},
    "request": {"method": "GET", "url": "/api/{sender}/send",
                "query": {"dest": "{to_digits}", "msg": "[{text}]", "key": "{secret.key}"}},
    "response": {"success_status": [200], "id_path": "$", "error_path": "err"},
    "status_map": {"0": "submitted", "1": "delivered", "2": "failed"},
    "status_lookup": {"method": "POST", "url": "/api/status/{id}", "status_path": "result.0"},
}
CREDS = {"user": "u1", "pass": "p1", "key": "k1"}
AUTH = {"Authorization": "Basic " + base64.b64encode(b"u1:p1").decode()}


@pytest.fixture(scope="module")
def emulator() -> Iterator[tuple[str, Any]]:
    app = create_app(OPTIONS, CREDS, delivery_delay=0.0)
    server = LiveServer(app).start()
    yield server.url, app
    server.stop()


def test_reads_back_every_field(emulator: tuple[str, Any]) -> None:
    url, app = emulator
    r = httpx.get(f"{url}/api/ACME/send", params={"dest": "2348031234567", "msg": "[hi there]", "key": "k1"},
                  headers=AUTH)
    assert r.status_code == 200
    msg = app.vendor.messages[r.json()]  # id_path "$": the bare id is the body
    assert (msg.to, msg.text, msg.sender) == ("2348031234567", "hi there", "ACME")
    status = httpx.post(f"{url}/api/status/{r.json()}", headers=AUTH)
    assert status.json() == {"result": ["1"]}


@pytest.mark.parametrize(("params", "headers", "code", "error"), [
    ({"dest": "2348031234567", "msg": "[x]", "key": "k2"}, AUTH, 401, "invalid credentials"),
    ({"dest": "2348031234567", "msg": "[x]", "key": "k1"}, {}, 401, "credentials"),
    ({"dest": "12", "msg": "[x]", "key": "k1"}, AUTH, 400, "not a valid international number"),
    ({"dest": "2348031234567", "msg": "x", "key": "k1"}, AUTH, 400, "does not have the expected form"),
    ({"msg": "[x]", "key": "k1"}, AUTH, 400, "the recipient is not a valid"),
])
def test_refuses_what_does_not_fit(emulator: tuple[str, Any], params: dict[str, str], headers: dict[str, str],
                                   code: int, error: str) -> None:
    url, _ = emulator
    r = httpx.get(f"{url}/api/ACME/send", params=params, headers=headers)
    assert r.status_code == code and error in r.json()["err"]


def test_unknown_message_and_route(emulator: tuple[str, Any]) -> None:
    url, _ = emulator
    assert httpx.post(f"{url}/api/status/nope", headers=AUTH).status_code == 404
    assert httpx.get(f"{url}/elsewhere").json() == {"err": "Cannot GET /elsewhere"}
