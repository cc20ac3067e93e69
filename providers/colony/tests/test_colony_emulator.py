"""The Colony emulator's own behaviour: DRF shapes, CSV row errors, lifecycle over time, controls."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from colony_harness import NUMBER, colony_settings, harness, plugins, served, settings_for

from smsgate.models import Campaign, CampaignStatus
from smsgate.testing.emulator import EmulatorControl
from smsgate_colony import DEFAULT_PATHS
from smsgate_colony.emulator import SANDBOX_CREDENTIALS, create_app


class Clock:
    """A hand-moved emulator clock."""

    def __init__(self) -> None:
        self.now = 1_717_200_000.0  # 2024-06-01T00:00:00Z

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def api(clock: Clock) -> Iterator[tuple[httpx.Client, Any]]:
    app = create_app(delivery_delay=5.0, clock=clock, page_size=2)
    with served(app) as url, httpx.Client(base_url=url, timeout=5) as client:
        tok = client.post("/oauth2/access_token/", data={**SANDBOX_CREDENTIALS, "grant_type": "password"})
        client.headers["Authorization"] = f"Bearer {tok.json()['access_token']}"
        yield client, app


def test_auth_errors_are_drf_shaped(api: tuple[httpx.Client, Any]) -> None:
    client, _ = api
    anon = httpx.get(str(client.base_url) + "/contact/contactlists/")
    assert anon.status_code == 401 and anon.json() == {"detail": "Authentication credentials were not provided."}
    assert anon.headers["www-authenticate"] == 'Bearer realm="api"'
    bad = httpx.get(str(client.base_url) + "/contact/contactlists/", headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401 and bad.json() == {"detail": "Invalid token"}
    for form, error in [
        ({**SANDBOX_CREDENTIALS, "grant_type": "password", "password": "x"}, "invalid_grant"),
        ({**SANDBOX_CREDENTIALS, "grant_type": "password", "client_secret": "x"}, "invalid_client"),
        ({**SANDBOX_CREDENTIALS, "grant_type": "client_credentials"}, "unsupported_grant_type"),
        ({**SANDBOX_CREDENTIALS, "grant_type": "refresh_token", "refresh_token": "x"}, "invalid_grant"),
    ]:
        resp = httpx.post(str(client.base_url) + "/oauth2/access_token/", data=form)
        assert (resp.status_code, resp.json()) == (400, {"error": error})


def test_tokens_expire_and_refresh(api: tuple[httpx.Client, Any], clock: Clock) -> None:
    client, _ = api
    base = str(client.base_url)
    tok = httpx.post(base + "/oauth2/access_token/", data={**SANDBOX_CREDENTIALS, "grant_type": "password"}).json()
    assert tok["expires_in"] == 86399 and tok["scope"] == "read"
    clock.now += 86400
    headers = {"Authorization": f"Bearer {tok['access_token']}"}
    assert httpx.get(base + "/commence/accounts/company/", headers=headers).status_code == 401
    fresh = httpx.post(base + "/oauth2/access_token/", data={
        "client_id": SANDBOX_CREDENTIALS["client_id"], "client_secret": SANDBOX_CREDENTIALS["client_secret"],
        "grant_type": "refresh_token", "refresh_token": tok["refresh_token"]}).json()
    headers = {"Authorization": f"Bearer {fresh['access_token']}"}
    assert httpx.get(base + "/commence/accounts/company/", headers=headers).status_code == 200
    reused = httpx.post(base + "/oauth2/access_token/", data={
        "client_id": SANDBOX_CREDENTIALS["client_id"], "client_secret": SANDBOX_CREDENTIALS["client_secret"],
        "grant_type": "refresh_token", "refresh_token": tok["refresh_token"]})
    assert reused.status_code == 400  # refresh tokens are single use


def test_validation_and_method_errors(api: tuple[httpx.Client, Any]) -> None:
    client, _ = api
    assert client.post("/contact/message/send/", json={}).json() == {
        "message": ["This field is required."], "destination": ["This field is required."]}
    bad = client.post("/contact/message/send/", json={"message": "hi", "destination": "+27815854565",
                                                      "campaign_pk": "x"})
    assert bad.status_code == 400 and set(bad.json()) == {"destination", "campaign_pk"}
    bulk = client.post("/contact/message/bulk/", json=[{"destination": "27815854565", "message": "ok"},
                                                       {"destination": "0815854565", "message": "x"}])
    assert bulk.status_code == 400 and bulk.json()[0] == {} and "destination" in bulk.json()[1]
    assert client.post("/contact/message/bulk/", json={"destination": "1"}).status_code == 400
    assert client.post("/contact/message/send/", content=b"{nope", headers={"content-type": "application/json"}
                       ).json()["detail"].startswith("JSON parse error")
    assert client.get("/contact/message/send/").json() == {"detail": 'Method "GET" not allowed.'}
    assert client.get("/contact/contactlists/99/").json() == {"detail": "Not found."}
    assert client.get("/contact/deployments/stats/weekly/").status_code == 404
    assert client.get("/contact/contactlists/?page=7").json() == {"detail": "Invalid page."}


def test_csv_uploads(api: tuple[httpx.Client, Any]) -> None:
    client, _ = api
    url = "/contact/contactlists/import/"
    no_file = client.post(url, data={"title": "x"}, files={"other": ("a.csv", b"x")})
    assert no_file.json() == {"file": ["No file was submitted."]}
    not_multipart = client.post(url, json={"title": "x"})
    assert not_multipart.status_code == 415
    empty = client.post(url, data={"title": "x"}, files={"file": ("a.csv", b"")})
    assert empty.json() == {"file": ["The submitted file is empty."]}
    header = client.post(url, data={"title": "x"}, files={"file": ("a.csv", b"number\n27815854565\n")})
    assert header.json() == {"file": ["The CSV header must include the column(s): msisdn."]}
    rows = client.post(url, data={"title": "x"}, files={"file": ("a.csv", b"msisdn\n27815854565\nabc\n\n+2782\n")})
    assert rows.status_code == 400
    assert rows.json()["file"] == [
        "Row 3: 'abc' is not a valid mobile number in international format (e.g. 27815854565).",
        "Row 5: '+2782' is not a valid mobile number in international format (e.g. 27815854565).",
    ]
    ok = client.post(url, data={"title": "Imported"}, files={"file": ("a.csv", b"\xef\xbb\xbfmsisdn,city\n27815854565,Durban\n")})
    assert ok.status_code == 201 and ok.json() == {}  # seed 002: the imports answer {}
    imported = [x for x in client.get("/contact/contactlists/").json()["results"] if x["title"] == "Imported"]
    contacts = client.get("/contact/contactlists/contact/", params={"contact_list": imported[0]["id"]}).json()
    assert contacts["results"][0]["city"] == "Durban"
    into = client.post(f"/contact/contactlists/{imported[0]['id']}/import/",
                       files={"file": ("b.csv", b"msisdn\n27825550123\n")})
    assert into.status_code == 201 and into.json() == {}


def test_saved_query_refresh_answers_the_seeds_empty_object(api: tuple[httpx.Client, Any]) -> None:
    client, app = api
    app.vendor.saved_queries[3] = ["27815854565", "27825550123"]
    lst = client.post("/contact/contactlists/", json={"title": "q", "saved_query": 3}).json()
    refreshed = client.get(f"/contact/contactlists/{lst['id']}/refresh/")
    assert refreshed.status_code == 200 and refreshed.json() == {}
    assert client.get("/contact/contactlists/contact/", params={"contact_list": lst["id"]}).json()["count"] == 2


def test_paging_links(api: tuple[httpx.Client, Any]) -> None:
    client, _ = api
    for i in range(5):
        client.post("/contact/contactlists/", json={"title": f"l{i}"})
    page1 = client.get("/contact/contactlists/").json()
    assert page1["count"] == 5 and page1["previous"] is None and page1["next"].endswith("?page=2")
    page3 = httpx.get(page1["next"].replace("page=2", "page=3"), headers=client.headers).json()
    assert page3["next"] is None and page3["previous"].endswith("page=2")
    assert len(page3["results"]) == 1
    page2 = client.get("/contact/contactlists/?page=2").json()
    assert page2["previous"].endswith("/contact/contactlists/")
    big = client.get("/contact/contactlists/", params={"page_size": 10}).json()
    assert len(big["results"]) == 5


def test_deployment_lifecycle_and_stats_follow_the_clock(api: tuple[httpx.Client, Any], clock: Clock) -> None:
    client, _ = api
    later = "2024-06-01T01:00:00Z"
    dep = client.post("/contact/deployments/import/", data={"title": "d", "send_date": later}, files={
        "file": ("d.csv", b"destination,message\n27815854565,m\n27825550123,m\n27815854569,m\n")}).json()
    assert dep["status"] == 2 and dep["send_date"] == later and dep["total_credits"] == 3
    clock.now += 3600
    assert client.get(f"/contact/deployments/{dep['id']}/").json()["status"] == 3
    row = client.get("/contact/deployments/stats/hourly/", params={"deployment": dep["id"]}).json()["results"][0]
    assert (row["total"], row["sms_sent_count"], row["sms_unsent_count"]) == (3, 0, 0)
    assert row["period_start"] == "2024-06-01T01:00:00Z" and row["period_end"] == "2024-06-01T02:00:00Z"
    clock.now += 5
    assert client.get(f"/contact/deployments/{dep['id']}/").json()["status"] == 4
    row = client.get("/contact/deployments/stats/hourly/", params={"deployment": dep["id"]}).json()["results"][0]
    assert (row["total"], row["sms_sent_count"], row["sms_unsent_count"]) == (3, 2, 1)
    for period, start in [("daily", "2024-06-01T00:00:00Z"), ("monthly", "2024-06-01T00:00:00Z"),
                          ("yearly", "2024-01-01T00:00:00Z")]:
        r = client.get(f"/contact/deployments/stats/{period}/").json()["results"][0]
        assert r["period_start"] == start and r["period_type"] == {"daily": 2, "monthly": 3, "yearly": 4}[period]
    # the deployment model (seed 002) has no audience or message: unknown fields are ignored, as DRF
    # does, and a deployment without recipients fails with an error
    empty = client.post("/contact/contactlists/", json={"title": "empty"}).json()
    failed = client.post("/contact/deployments/", json={"title": "d", "contact_list": empty["id"], "message": "m"})
    assert failed.status_code == 201 and set(failed.json()) == {
        "status", "updated_by", "title", "date_updated", "marketing", "company", "optout", "dispatch",
        "total_credits", "total_contacts", "send_date", "created_by", "error", "date_created",
        "linked_campaign", "id", "approved_by"}
    assert failed.json()["status"] == 7 and failed.json()["error"] and failed.json()["total_contacts"] == 0


def test_deployment_validation(api: tuple[httpx.Client, Any]) -> None:
    client, _ = api
    resp = client.post("/contact/deployments/", json={"marketing": "maybe", "send_date": "soon"})
    assert resp.status_code == 400
    assert set(resp.json()) == {"title", "marketing", "send_date"}


def test_stop_replies_and_seeded_optouts(clock: Clock) -> None:
    app = create_app(optouts=["27825550123", {"originator": "27835550124", "reason": "complaint"}], clock=clock)
    with served(app) as url:
        for text, opted in [("hello", False), ("stop", True), ("STOP", True), ("Unsubscribe me", True)]:
            body = httpx.post(url + "/_colony/inbound", json={"originator": "27815854565", "text": text}).json()
            assert (body["optout"] is not None) is opted
        assert [o["originator"] for o in app.vendor.optouts.values()] == ["27825550123", "27835550124", "27815854565"]


def test_injected_faults_are_drf_shaped() -> None:
    with served(create_app()) as url:
        ctl = EmulatorControl(url)
        ctl.fault(kind="status", status=503, path="/contact/", count=1)
        ctl.fault(kind="status", status=429, retry_after=1, path="/contact/", count=1)
        assert httpx.get(url + "/contact/contactlists/").json() == {"detail": "injected fault"}
        throttled = httpx.get(url + "/contact/contactlists/")
        assert throttled.json() == {"detail": "Request was throttled."} and throttled.headers["retry-after"] == "1"
        ctl.fault(kind="status", status=201, process=True, path="/contact/message/", count=1)
        created = httpx.post(url + "/contact/message/send/", json={"destination": "27815854565", "message": "x"},
                             headers={"Authorization": "Bearer none"})
        assert (created.status_code, created.json()) == (201, {"error": "injected fault"})
        assert EmulatorControl(url).requests("/contact/message/")[0].processed


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_adapter_survives_server_side_token_expiry(mode: str, clock: Clock) -> None:
    app = create_app(delivery_delay=0, clock=clock)
    with served(app) as url, harness(mode, settings_for({"colony": colony_settings(url)}), plugins()) as h:
        assert h.send(NUMBER, "before").ok
        clock.now += 100_000  # the server expires the token; the adapter's own clock does not know
        assert h.send(NUMBER, "after").ok
        grants = [r.body for r in EmulatorControl(url).requests("/oauth2/access_token/")]
        assert len(grants) == 2 and "grant_type=password" in grants[1]


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_every_path_can_be_moved(mode: str) -> None:
    paths = {k: "/api/v2" + v for k, v in DEFAULT_PATHS.items()}
    app = create_app(delivery_delay=0, paths=paths)
    with served(app) as url, harness(mode, settings_for({"colony": colony_settings(url, paths=paths)}),
                                     plugins()) as h:
        p = h.provider()
        assert h.send(NUMBER, "moved").ok
        lst = h.run(p.add_contact_list("moved list"))
        h.run(p.add_contacts(lst.id, [NUMBER]))
        dep = h.run(p.create_campaign(Campaign(
            name="c", text="t", contact_list_id=str(lst.id))))
        assert dep.status == CampaignStatus.COMPLETED and dep.recipient_count == 1
        assert h.iterate(p.deployment_stats("yearly"))
        assert all(r.path.startswith(("/api/v2/", "/_")) for r in EmulatorControl(url).requests())
