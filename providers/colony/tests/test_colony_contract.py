"""Contract tests: the seed's field lists and examples, fed through the adapter with canned responses.

No server here (except where the emulator's objects are checked against the seed): the
adapter's operations are driven by :func:`smsgate.transport.run_with_responses`.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from colony_harness import served

from smsgate.errors import (
    AuthFailed,
    ConfigError,
    MalformedResponse,
    ProviderUnavailable,
    RequestRejected,
    UnknownOutcome,
    ValidationError,
)
from smsgate.models import CampaignStatus, OutboundMessage, Status
from smsgate.provider import ProviderSettings
from smsgate.transport import run_with_responses
from smsgate_colony import (
    DEFAULT_PATHS,
    ColonyDeployment,
    ColonyOptOut,
    ColonyProvider,
    ColonyStat,
    drf_error_text,
)
from smsgate_colony.emulator import SANDBOX_CREDENTIALS, create_app

# ------------------------------------------------------------- from the seed (verbatim field lists)
SEED_CONTACT_LIST = {"saved_query": "int", "title": "string", "date_updated": "datetime",
                     "date_created": "datetime", "company": "int", "id": "int"}
SEED_DEPLOYMENT = {"status": "int", "updated_by": "int", "title": "string", "date_updated": "datetime",
                   "marketing": "boolean", "company": "int", "optout": "boolean", "dispatch": "int",
                   "total_credits": "int", "total_contacts": "int", "send_date": "datetime",
                   "created_by": "int", "error": "string", "date_created": "datetime",
                   "linked_campaign": "int", "id": "int", "approved_by": "int"}
SEED_STAT = {"email_sent_count": "int", "deployment": "int", "sms_optout_count": "int",
             "email_unsent_count": "int", "email_optout_count": "int", "period_type": "int",
             "period_end": "datetime", "period_start": "datetime", "total": "int", "id": "int",
             "sms_sent_count": "int", "sms_unsent_count": "int"}
SEED_OPTOUT = {"originator": "string", "date_opted_out": "datetime", "reason": "string",
               "date_overwritten": "datetime", "overwritten_by": "int", "company": "int", "id": "int"}
SEED_BULK_EXAMPLE = ('[{"destination":"27815854565", "message":"Hi Colony"}, '
                     '{"destination":"27815854565", "message":"Morning Colony"}, '
                     '{"destination":"27815854565", "message":"Afternoon Colony"}]')
SEED_TOKEN = {"access_token": "a1b2c3", "scope": "read", "expires_in": 86399, "refresh_token": "r1r2r3"}


def sample(fields: dict[str, str], **overrides: Any) -> dict[str, Any]:
    """A record shaped like a seed model dump, with plausible values per type."""
    values = {"int": 3, "string": "text", "datetime": "2024-05-01T10:00:00Z", "boolean": True}
    out = {k: values[t] for k, t in fields.items()}
    out.update(overrides)
    return out


# ------------------------------------------------------------------------------------ helpers
def provider(**options: Any) -> ColonyProvider:
    return ColonyProvider(ProviderSettings(
        plugin="colony", base_url="https://api.colonyhq.com", credentials=dict(SANDBOX_CREDENTIALS),
        options=options,
    ))


def token_ok(body: dict[str, Any] | None = None) -> httpx.Response:
    return httpx.Response(200, json=body or SEED_TOKEN)


Responder = Callable[[httpx.Request], httpx.Response]
seen: list[httpx.Request] = []


def record(response: httpx.Response) -> Responder:
    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return response

    return answer


@pytest.fixture(autouse=True)
def _clear_seen() -> None:
    seen.clear()


def form(request: httpx.Request) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(request.read().decode()).items()}


def msg(to: str = "+27815854565", text: str = "Hi Colony", **kw: Any) -> OutboundMessage:
    return OutboundMessage(to=to, text=text, message_id="m1", **kw)


# --------------------------------------------------------------------------------- the seed
def test_emulator_objects_have_exactly_the_seed_fields() -> None:
    app = create_app(delivery_delay=0)
    with served(app) as url, httpx.Client(base_url=url) as c:
        tok = c.post("/oauth2/access_token/", data={**SANDBOX_CREDENTIALS, "grant_type": "password"}).json()
        assert set(tok) == set(SEED_TOKEN)
        c.headers["Authorization"] = f"Bearer {tok['access_token']}"
        lst = c.post("/contact/contactlists/", json={"title": "t"}).json()
        assert set(lst) == set(SEED_CONTACT_LIST)
        c.post("/contact/contactlists/contact/", json=[{"contact_list": lst["id"], "msisdn": "27815854565"}])
        dep = c.post("/contact/deployments/", json={"title": "d"}).json()
        assert set(dep) == set(SEED_DEPLOYMENT)
        imported = c.post("/contact/deployments/import/", data={"title": "i"},
                          files={"file": ("d.csv", b"destination,message\n27815854565,m\n")}).json()
        assert set(imported) == set(SEED_DEPLOYMENT)
        stat = c.get("/contact/deployments/stats/daily/").json()["results"][0]
        assert set(stat) == set(SEED_STAT)
        app.vendor.add_optout("27815854565", "STOP")
        page = c.get("/contact/optouts/").json()
        assert set(page) == {"count", "next", "previous", "results"}
        assert set(page["results"][0]) == set(SEED_OPTOUT)
        bulk = c.post("/contact/message/bulk/", json=json.loads(SEED_BULK_EXAMPLE))
        assert bulk.status_code == 201 and bulk.json() == {}  # the seed's model for both sends is {}
        single = c.post("/contact/message/send/", json={"destination": "27815854565", "message": "Hi"})
        assert single.status_code == 201 and single.json() == {}


def test_seed_records_parse() -> None:
    p = provider()
    dep = ColonyDeployment.model_validate(sample(SEED_DEPLOYMENT, status=4, total_credits=12, error=""))
    campaign = p.to_campaign(dep)
    assert campaign.status == CampaignStatus.COMPLETED and campaign.cost == Decimal(12)
    assert campaign.recipient_count == 3 and campaign.raw_status == "4" and campaign.id == "3"
    stat = ColonyStat.model_validate(sample(SEED_STAT))
    assert stat.period_type == 3 and stat.sms_sent_count == 3
    opt = ColonyOptOut.model_validate(sample(SEED_OPTOUT, originator="27815854565", date_overwritten=None))
    neutral = p.to_optout(opt)
    assert neutral.phone == "+27815854565" and neutral.reason == "text" and opt.active


def test_tolerates_vendor_quirks() -> None:
    dep = ColonyDeployment.model_validate(sample(
        SEED_DEPLOYMENT, id="17", status="3", total_credits="8", send_date="", linked_campaign=None,
        marketing="false", brand_new_field={"x": 1}))
    assert (dep.id, dep.status, dep.total_credits, dep.send_date, dep.marketing) == (17, 3, 8, None, False)
    assert dep.raw()["brand_new_field"] == {"x": 1}
    stat = ColonyStat.model_validate(sample(SEED_STAT, total=None, sms_sent_count="", email_sent_count="4"))
    assert (stat.total, stat.sms_sent_count, stat.email_sent_count) == (0, 0, 4)
    opt = ColonyOptOut.model_validate(sample(SEED_OPTOUT, originator=27815854565, date_overwritten=""))
    assert opt.originator == "27815854565" and opt.active


# ---------------------------------------------------------------------------------- auth
def test_password_grant_then_bearer() -> None:
    p = provider()
    result = run_with_responses(p.send(msg()), [record(token_ok()), record(httpx.Response(201, json={}))])
    token_req, send_req = seen
    assert token_req.url.path == "/oauth2/access_token/" and token_req.method == "POST"
    assert token_req.headers["content-type"] == "application/x-www-form-urlencoded"
    assert form(token_req) == {
        "client_id": SANDBOX_CREDENTIALS["client_id"], "client_secret": SANDBOX_CREDENTIALS["client_secret"],
        "grant_type": "password", "username": SANDBOX_CREDENTIALS["username"],
        "password": SANDBOX_CREDENTIALS["password"],
    }
    assert send_req.headers["authorization"] == "Bearer a1b2c3"
    assert json.loads(send_req.read()) == {"destination": "27815854565", "message": "Hi Colony"}
    assert result.status == Status.SUBMITTED and result.segments == 1


def test_token_is_cached_per_instance() -> None:
    a, b = provider(), provider()
    run_with_responses(a.get_company(), [token_ok(), httpx.Response(200, json={"id": 1})])
    run_with_responses(a.get_company(), [httpx.Response(200, json={"id": 1})])  # no second token fetch
    run_with_responses(b.get_company(), [token_ok({**SEED_TOKEN, "access_token": "b-token"}),
                                         record(httpx.Response(200, json={"id": 1}))])
    assert seen[0].headers["authorization"] == "Bearer b-token"


def test_401_obtains_a_new_token_and_retries_once() -> None:
    p = provider()
    run_with_responses(p.get_company(), [token_ok(), httpx.Response(200, json={"id": 1})])
    out = run_with_responses(p.get_company(), [
        httpx.Response(401, json={"detail": "Invalid token"}),
        record(token_ok({**SEED_TOKEN, "access_token": "fresh"})),
        record(httpx.Response(200, json={"id": 1})),
    ])
    assert out == {"id": 1}
    assert form(seen[0])["grant_type"] == "password"  # a 401 discards the refresh token too
    assert seen[1].headers["authorization"] == "Bearer fresh"
    with pytest.raises(AuthFailed, match="Invalid token"):
        run_with_responses(p.get_company(), [
            httpx.Response(401, json={"detail": "Invalid token"}), token_ok(),
            httpx.Response(401, json={"detail": "Invalid token"}),
        ])


def test_expired_token_is_refreshed_and_refused_refresh_falls_back() -> None:
    p = provider()
    now = [0.0]
    p.clock = lambda: now[0]
    run_with_responses(p.get_company(), [token_ok(), httpx.Response(200, json={})])
    now[0] = 86399 - 30  # inside the refresh margin
    run_with_responses(p.get_company(), [record(token_ok({**SEED_TOKEN, "access_token": "t2"})),
                                         record(httpx.Response(200, json={}))])
    assert form(seen[0]) == {"client_id": SANDBOX_CREDENTIALS["client_id"],
                             "client_secret": SANDBOX_CREDENTIALS["client_secret"],
                             "grant_type": "refresh_token", "refresh_token": "r1r2r3"}
    assert seen[1].headers["authorization"] == "Bearer t2"
    seen.clear()
    now[0] += 86400
    run_with_responses(p.get_company(), [
        record(httpx.Response(400, json={"error": "invalid_grant"})),
        record(token_ok({**SEED_TOKEN, "access_token": "t3"})),
        record(httpx.Response(200, json={})),
    ])
    assert [form(r)["grant_type"] for r in seen[:2]] == ["refresh_token", "password"]
    assert seen[2].headers["authorization"] == "Bearer t3"


@pytest.mark.parametrize("response, error, text", [
    (httpx.Response(400, json={"error": "invalid_client"}), AuthFailed, "invalid_client"),
    (httpx.Response(401, json={"error": "invalid_grant", "error_description": "bad password"}),
     AuthFailed, "invalid_grant: bad password"),
    (httpx.Response(200, json={"error": "invalid_grant"}), AuthFailed, "invalid_grant"),
    # an unreadable token answer: the call it was for never left, so no "maybe sent" (MalformedResponse)
    (httpx.Response(200, json={"scope": "read"}), ProviderUnavailable, "was not sent.*no access_token"),
    (httpx.Response(200, text="<html>"), ProviderUnavailable, "was not sent.*expected JSON"),
    (httpx.Response(200, json={**SEED_TOKEN, "token_type": "mac"}), ProviderUnavailable, "was not sent.*token_type"),
    (httpx.Response(503, json={"detail": "down"}), ProviderUnavailable, "down"),
])
def test_token_endpoint_failures(response: httpx.Response, error: type[Exception], text: str) -> None:
    with pytest.raises(error, match=text) as info:
        run_with_responses(provider().get_company(), [response])
    if "was not sent" in text:
        assert isinstance(info.value.__cause__, MalformedResponse)
    for secret in (SANDBOX_CREDENTIALS["password"], SANDBOX_CREDENTIALS["client_secret"]):
        assert secret not in str(info.value)


def test_string_expires_in_and_missing_expiry() -> None:
    p = provider()
    p.clock = lambda: 0.0
    run_with_responses(p.get_company(), [token_ok({**SEED_TOKEN, "expires_in": "3600"}), httpx.Response(200, json={})])
    assert p._expires_at == pytest.approx(3600 - 60)
    q = provider()
    run_with_responses(q.get_company(), [token_ok({"access_token": "x"}), httpx.Response(200, json={})])
    assert q._expires_at is None and q._refresh_token is None


# -------------------------------------------------------------------------------- messages
def test_send_fields_and_credits() -> None:
    p = provider(campaign_pk=9)
    text = "é" * 321  # three 160-character chunks, whatever the encoding
    result = run_with_responses(p.send(msg(text=text)), [token_ok(), record(httpx.Response(201, json={}))])
    assert json.loads(seen[0].read()) == {"destination": "27815854565", "message": text, "campaign_pk": 9}
    assert (result.segments, result.cost, result.currency) == (3, Decimal(3), "credits")
    priced = ColonyProvider(ProviderSettings(plugin="colony", credentials=dict(SANDBOX_CREDENTIALS),
                                             price_per_segment=0.25, currency="ZAR"))
    result = run_with_responses(priced.send(msg(text=text, provider_options={"campaign_pk": "4"})),
                                [token_ok(), record(httpx.Response(201, json={}))])
    assert (result.cost, result.currency) == (Decimal("0.75"), "ZAR")
    assert json.loads(seen[1].read())["campaign_pk"] == 4


def test_a_deployments_cost_carries_its_currency_as_a_sends_does() -> None:
    """``total_credits`` becomes ``Campaign.cost`` with the unit a send's cost has: ``credits``,
    or money in the configured ``currency`` when ``price_per_segment`` is set (the cost was
    given without its unit, so 12 credits and 3.00 ZAR read alike)."""
    dep = ColonyDeployment.model_validate(sample(SEED_DEPLOYMENT, status=4, total_credits=12, error=""))
    campaign = provider().to_campaign(dep)
    assert (campaign.cost, campaign.currency) == (Decimal(12), "credits")
    priced = ColonyProvider(ProviderSettings(plugin="colony", credentials=dict(SANDBOX_CREDENTIALS),
                                             price_per_segment=0.25, currency="ZAR"))
    campaign = priced.to_campaign(dep)
    assert (campaign.cost, campaign.currency) == (Decimal("3.00"), "ZAR")
    none = provider().to_campaign(dep.model_copy(update={"total_credits": None}))
    assert (none.cost, none.currency) == (None, None)


def test_error_inside_a_2xx_send_answer_is_unknown_not_rejected() -> None:
    """Undocumented, and a 201 says "created": Colony may have sent it, so not RequestRejected
    (which the gateway fails over: a second send elsewhere) but MalformedResponse (``unknown``)."""
    for status, body in ((201, {"error": "Insufficient credits"}), (200, {"errors": ["Insufficient credits"]})):
        for op in (provider().send(msg()), provider().send_many([msg(), msg(to="+27825550123")])):
            with pytest.raises(MalformedResponse, match=r"Insufficient credits.*may have sent it") as info:
                run_with_responses(op, [token_ok(), httpx.Response(status, json=body)])
            assert not isinstance(info.value, RequestRejected) and info.value.status_code == status


def test_bulk_body_matches_the_seed_example() -> None:
    msgs = [msg(text=t) for t in ("Hi Colony", "Morning Colony", "Afternoon Colony")]
    results = run_with_responses(provider().send_many(msgs), [token_ok(), record(httpx.Response(201, json={}))])
    assert json.loads(seen[0].read()) == json.loads(SEED_BULK_EXAMPLE)
    assert [r.status for r in results] == [Status.SUBMITTED] * 3


def test_bulk_per_item_errors() -> None:
    msgs = [msg(to=n) for n in ("+27815854565", "+27825550123", "+27835550124")]
    results = run_with_responses(provider().send_many(msgs), [
        token_ok(),
        httpx.Response(400, json=[{}, {"destination": ["Enter a valid mobile number."]}, {}]),
    ])
    # one request: the item with an error is rejected, the others were refused with it (the
    # gateway sends them again: see test_colony_e2e)
    assert [(r.status, r.resend) for r in results] == [
        (Status.FAILED, True), (Status.REJECTED, False), (Status.FAILED, True)]
    assert results[1].error == "destination: Enter a valid mobile number."
    with pytest.raises(RequestRejected, match="Expected a list"):
        run_with_responses(provider().send_many(msgs), [
            token_ok(), httpx.Response(400, json={"non_field_errors": ["Expected a list of items."]})])


# ---------------------------------------------------------------------------------- paging
def test_drf_pages_and_plain_arrays() -> None:
    p = provider()
    first = {"count": 3, "next": "https://api.colonyhq.com/contact/optouts/?page=2", "previous": None,
             "results": [sample(SEED_OPTOUT, id=1, originator="27815854565", date_overwritten=None),
                         sample(SEED_OPTOUT, id=2, originator="27825550123")]}
    second = {"count": 3, "next": None, "previous": "https://api.colonyhq.com/contact/optouts/",
              "results": [sample(SEED_OPTOUT, id=3, originator="27835550124", date_overwritten=None)]}
    out = run_with_responses(p.list_optouts(), [token_ok(), record(httpx.Response(200, json=first)),
                                                record(httpx.Response(200, json=second))])
    assert [o.phone for o in out] == ["+27815854565", "+27835550124"]  # id 2 was overwritten
    assert str(seen[1].url) == "https://api.colonyhq.com/contact/optouts/?page=2"
    seen.clear()
    plain = [sample(SEED_OPTOUT, id=4, originator="27845550126", date_overwritten=None)]
    assert len(run_with_responses(p.list_optouts(), [record(httpx.Response(200, json=plain))])) == 1
    relative = {"count": 2, "next": "?page=2", "results": [plain[0]]}
    run_with_responses(p.list_optouts(), [httpx.Response(200, json=relative), record(httpx.Response(200, json=[]))])
    assert seen[-1].url.params["page"] == "2" and seen[-1].url.path == "/contact/optouts/"


@pytest.mark.parametrize("body, text", [
    ({"results": "nope"}, "expected a JSON array or a page"),
    ({"count": 1, "next": "https://api.colonyhq.com/contact/optouts/", "results": []}, "same page"),
    ([{"id": 1}], "item 0: unexpected ColonyOptOut: field 'originator'"),
    ([{"id": "x", "originator": "27815854565"}], "field 'id'"),
])
def test_bad_pages_are_malformed(body: Any, text: str) -> None:
    p = provider()
    p._token = "t"
    with pytest.raises(MalformedResponse, match=text):
        run_with_responses(p.list_optouts(), [httpx.Response(200, json=body)])


def test_page_size_option_is_sent() -> None:
    p = provider(page_size=500)
    assert p.contact_lists().first.url.params["page_size"] == "500"


# ----------------------------------------------------------------------- errors & mapping
@pytest.mark.parametrize("body, text", [
    ({"detail": "Not found."}, "Not found."),
    ({"destination": ["This field is required."], "message": ["This field may not be blank."]},
     "destination: This field is required.; message: This field may not be blank."),
    ({"non_field_errors": ["Already overwritten."]}, "Already overwritten."),
    ([{}, {"destination": ["Invalid."]}], "[1] destination: Invalid."),
    ({"file": ["Row 3: 'abc' is not a valid mobile number"]}, "file: Row 3: 'abc' is not a valid mobile number"),
    ({"error": "invalid_client"}, "invalid_client"),
])
def test_drf_error_text(body: Any, text: str) -> None:
    assert drf_error_text(body) == text


def test_deployment_status_table_is_overridable() -> None:
    p = provider(deployment_statuses={9: "paused"})
    dep = ColonyDeployment.model_validate(sample(SEED_DEPLOYMENT, status=9, error=""))
    assert p.to_campaign(dep).status == CampaignStatus.PAUSED
    failed = ColonyDeployment.model_validate(sample(SEED_DEPLOYMENT, status=3, error="No credits"))
    assert p.to_campaign(failed).status == CampaignStatus.FAILED


# ------------------------------------------------------------------------------ configuration
def test_every_path_is_overridable() -> None:
    paths = {k: "/tenant" + v for k, v in DEFAULT_PATHS.items()}
    p = provider(paths=paths)
    assert p.path("optout_overwrite", id=5) == "/tenant/contact/optouts/5/overwrite/"
    assert p.deployment_stats("hour").first.url.path == "/tenant/contact/deployments/stats/hourly/"


@pytest.mark.parametrize("options, text", [
    ({"paths": {"nope": "/x/"}}, "unknown path key 'nope'"),
    ({"paths": {"contact": "/contacts/"}}, r"must contain \{id\}"),
    ({"paths": {"message": "contact/message/"}}, "must start with '/'"),
    ({"region": "XX"}, "not an ISO region"),
    ({"surprise": 1}, "surprise"),
])
def test_bad_options_are_config_errors(options: dict[str, Any], text: str) -> None:
    with pytest.raises(ConfigError, match=text):
        provider(**options)


def test_missing_credentials_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="missing credentials client_secret, password"):
        ColonyProvider(ProviderSettings(plugin="colony", credentials={"client_id": "c", "username": "u"}))


def test_provider_registers_through_the_plugin_hook() -> None:
    import smsgate_colony
    from smsgate.plugins import PluginManager

    pm = PluginManager(load_entry_points=False)
    pm.register(smsgate_colony, name="colony")
    assert pm.get_provider_class("colony") is ColonyProvider


def test_next_links_keep_our_origin() -> None:
    p = provider()
    p._token = "t"
    first = {"count": 2, "next": "http://10.0.0.7:8000/contact/optouts/?page=2",
             "results": [sample(SEED_OPTOUT, id=1, originator="27815854565", date_overwritten=None)]}
    run_with_responses(p.list_optouts(), [httpx.Response(200, json=first), record(httpx.Response(200, json=[]))])
    assert str(seen[0].url) == "https://api.colonyhq.com/contact/optouts/?page=2"


def test_remove_optout_matches_any_number_format() -> None:
    p = provider()
    p._token = "t"
    rows = [sample(SEED_OPTOUT, id=1, originator="0815854565", date_overwritten=None),
            sample(SEED_OPTOUT, id=2, originator="27815854565"),  # already overwritten
            sample(SEED_OPTOUT, id=3, originator="27825550123", date_overwritten=None)]  # someone else
    run_with_responses(p.remove_optout("+27815854565"), [
        record(httpx.Response(200, json=rows)), record(httpx.Response(200, json={}))])
    assert seen[0].url.params["originator"] == "27815854565"
    assert [r.url.path for r in seen[1:]] == ["/contact/optouts/1/overwrite/"]


def test_statistics_mapping_and_filters() -> None:
    from datetime import datetime, timezone

    p = provider()
    p._token = "t"
    rows = [
        sample(SEED_STAT, id=1, deployment=1, period_start="2024-05-01T00:00:00", total=5, sms_sent_count=3,
               sms_unsent_count=1, sms_optout_count=1, email_sent_count=2),
        sample(SEED_STAT, id=2, deployment=2, period_start="2024-05-01T00:00:00+00:00", total=2,
               sms_sent_count=2, sms_unsent_count=0, sms_optout_count=0, email_sent_count=0),
        sample(SEED_STAT, id=3, deployment=2, period_start="2024-05-02T00:00:00Z", total=1,
               sms_sent_count=0, sms_unsent_count=1, sms_optout_count=0, email_sent_count=0),
    ]
    stats = run_with_responses(p.statistics(period="day"), [record(httpx.Response(200, json=rows))])
    assert seen[0].url.path == "/contact/deployments/stats/daily/"
    assert (stats.submitted, stats.sent, stats.failed, stats.opted_out) == (8, 5, 2, 1)
    assert [(b.label, b.submitted) for b in stats.detail] == [("2024-05-01T00:00:00+00:00", 7),
                                                             ("2024-05-02T00:00:00+00:00", 1)]
    assert stats.raw["email_sent_count"] == 2
    since = run_with_responses(p.statistics(period="daily", since=datetime(2024, 5, 2, tzinfo=timezone.utc)),
                               [httpx.Response(200, json=rows)])
    assert since.submitted == 1
    until = run_with_responses(p.statistics(until=datetime(2024, 5, 2)), [httpx.Response(200, json=rows)])
    assert until.submitted == 7
    with pytest.raises(ValidationError, match="since"):
        run_with_responses(p.statistics(since="yesterday"), [])
    with pytest.raises(ValidationError, match="unknown statistics filter"):
        run_with_responses(p.statistics(country="ZA"), [])


def test_bulk_bad_campaign_pk_rejects_only_that_message() -> None:
    msgs = [msg(), msg(to="+27825550123", provider_options={"campaign_pk": "not-a-number"})]
    results = run_with_responses(provider().send_many(msgs), [token_ok(), record(httpx.Response(201, json={}))])
    assert [r.status for r in results] == [Status.SUBMITTED, Status.REJECTED]
    assert "campaign_pk" in (results[1].error or "")
    assert len(json.loads(seen[0].read())) == 1


def test_statistics_campaign_id_is_the_deployment_filter() -> None:
    """``campaign_id`` (what ``camp.stats(include_provider=True)`` passes) filters by deployment."""
    p = provider()
    p._token = "t"
    rows = [sample(SEED_STAT, id=1, deployment=7, period_start="2024-05-01T00:00:00Z", total=3,
                   sms_sent_count=2, sms_unsent_count=1, sms_optout_count=0)]
    stats = run_with_responses(p.statistics(campaign_id="7"), [record(httpx.Response(200, json=rows))])
    assert seen[0].url.path == "/contact/deployments/stats/daily/"
    assert seen[0].url.params["deployment"] == "7"
    assert (stats.submitted, stats.sent, stats.failed) == (3, 2, 1)
    assert stats.raw["deployment"] == 7
    with pytest.raises(ValidationError, match="campaign_id"):
        run_with_responses(p.statistics(campaign_id="7", deployment=8), [])


# ------------------------------------------------------------------- imports answering {} (seed 002)
def test_contact_list_csv_import_answered_with_the_seeds_empty_object() -> None:
    """Seed 002 documents ``{}`` for both CSV imports and the saved-query refresh: that is success.

    The new list is found afterwards by its title (the newest of that title); the import is
    posted once, never again.
    """
    p = provider()
    p._token = "t"
    lists = [sample(SEED_CONTACT_LIST, id=4, title="From CSV"), sample(SEED_CONTACT_LIST, id=5, title="Other"),
             sample(SEED_CONTACT_LIST, id=9, title="From CSV")]
    got = run_with_responses(p.import_contact_list_csv("From CSV", "msisdn\r\n27815854565\r\n"), [
        record(httpx.Response(201, json={})), record(httpx.Response(200, json=lists))])
    assert got.id == 9 and got.title == "From CSV"
    assert [(r.method, r.url.path) for r in seen] == [("POST", "/contact/contactlists/import/"),
                                                      ("GET", "/contact/contactlists/")]
    seen.clear()
    into = run_with_responses(p.import_contacts_csv(9, "msisdn\r\n27825550123\r\n"), [
        record(httpx.Response(201, json={})), record(httpx.Response(200, json=lists[2]))])
    assert into.id == 9
    assert [(r.method, r.url.path) for r in seen] == [("POST", "/contact/contactlists/9/import/"),
                                                      ("GET", "/contact/contactlists/9/")]
    seen.clear()
    refreshed = run_with_responses(p.refresh_contact_list(9), [
        record(httpx.Response(200, json={})), record(httpx.Response(200, json=lists[2]))])
    assert refreshed.id == 9
    assert [(r.method, r.url.path) for r in seen] == [("GET", "/contact/contactlists/9/refresh/"),
                                                      ("GET", "/contact/contactlists/9/")]


def test_contact_list_csv_import_that_cannot_be_found_says_not_to_import_again() -> None:
    p = provider()
    p._token = "t"
    with pytest.raises(MalformedResponse, match="do not import it again"):
        run_with_responses(p.import_contact_list_csv("Missing", "msisdn\r\n27815854565\r\n"), [
            httpx.Response(201, json={}), httpx.Response(200, json=[sample(SEED_CONTACT_LIST, id=1, title="x")])])
    for odd in (httpx.Response(201, text="<html>Created</html>"), httpx.Response(204), httpx.Response(201, json=[])):
        with pytest.raises(MalformedResponse, match="may have been applied"):
            run_with_responses(p.import_contacts_csv(3, "msisdn\r\n27815854565\r\n"), [odd])
    # an error inside a 2xx: the import may have been applied, so never "rejected" (not applied)
    for answer in (httpx.Response(201, json={"error": "quota exceeded"}), httpx.Response(200, json={"errors": ["quota exceeded"]})):
        with pytest.raises(UnknownOutcome, match=r"\(quota exceeded\): Colony may have applied the contact list "
                                                  r"import .*look for a list titled 'Quota'") as info:
            run_with_responses(p.import_contact_list_csv("Quota", "msisdn\r\n27815854565\r\n"), [answer])
        assert not isinstance(info.value, RequestRejected) and info.value.status_code == answer.status_code


# ------------------------------------------------------------------- campaigns to a contact list
def colony_ignoring_unknown_fields(members: list[dict[str, Any]]) -> Responder:
    """A Colony that, like any DRF server, ignores fields its deployment model does not have.

    ``POST /contact/deployments/`` creates an empty deployment whatever else is posted; the
    CSV import creates one with a recipient per row; contacts are listed per list.
    """

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        path = request.url.path
        if request.method == "GET" and path == "/contact/contactlists/contact/":
            return httpx.Response(200, json={"count": len(members), "next": None, "previous": None,
                                             "results": members})
        if request.method == "POST" and path == "/contact/deployments/":
            body = json.loads(request.read())
            known = {k: v for k, v in body.items() if k in SEED_DEPLOYMENT}
            return httpx.Response(201, json=sample(SEED_DEPLOYMENT, **known, id=11, status=0, total_contacts=0,
                                                   total_credits=0, error=""))
        if request.method == "POST" and path == "/contact/deployments/import/":
            csv_text = request.read().decode().split("destination,message\r\n", 1)[1].split("\r\n--", 1)[0]
            rows = csv_text.strip().splitlines()
            return httpx.Response(201, json=sample(SEED_DEPLOYMENT, id=12, status=2, total_contacts=len(rows),
                                                   total_credits=len(rows), error=""))
        raise AssertionError(f"unexpected request {request.method} {path}")

    return answer


def test_campaign_to_a_contact_list_uses_only_documented_deployment_fields() -> None:
    """The seed's deployment model has no audience or message field: a campaign to a Colony list
    is uploaded as a ``destination,message`` CSV of the list's members (a documented import)."""
    from smsgate.models import Campaign

    p = provider()
    p._token = "t"
    members = [{"id": 1, "contact_list": 4, "msisdn": "27815854565", "name": "Lerato"},
               {"id": 2, "contact_list": 4, "msisdn": "27825550123"},
               {"id": 3, "contact_list": 5, "msisdn": "27835550124"}]  # another list's: a filter ignored
    created = run_with_responses(
        p.create_campaign(Campaign(name="Spring", text="Spring sale", contact_list_id="4",
                                   provider_options={"marketing": True})),
        [colony_ignoring_unknown_fields(members)] * 5)
    assert created.recipient_count == 2 and created.id == "12"
    assert seen[0].method == "GET" and seen[0].url.params["contact_list"] == "4"
    posts = [r for r in seen if r.method == "POST"]
    assert [r.url.path for r in posts] == ["/contact/deployments/import/"]
    upload = posts[0].read().decode()
    assert 'name="file"; filename="deployment.csv"' in upload
    assert "destination,message\r\n27815854565,Spring sale\r\n27825550123,Spring sale\r\n" in upload
    assert "27835550124" not in upload
    fields = re.findall(r'name="(\w+)"\r\n\r\n', upload)
    assert set(fields) <= set(SEED_DEPLOYMENT) and {"title", "marketing"} <= set(fields)


def test_campaign_to_an_empty_or_unverifiable_contact_list_fails_before_creating_anything() -> None:
    from smsgate.models import Campaign

    p = provider()
    p._token = "t"
    with pytest.raises(ValidationError, match="contact list 4 has no contacts"):
        run_with_responses(p.create_campaign(Campaign(text="x", contact_list_id="4")),
                           [colony_ignoring_unknown_fields([])] * 3)
    with pytest.raises(MalformedResponse, match="'contact_list'"):
        run_with_responses(p.create_campaign(Campaign(text="x", contact_list_id="4")),
                           [colony_ignoring_unknown_fields([{"id": 1, "msisdn": "27815854565"}])] * 3)
    assert not [r for r in seen if r.method == "POST"]


# -------------------------------------------------------------- only documented success answers
ODD_SEND_ANSWERS = [
    pytest.param(httpx.Response(302, headers={"location": "/accounts/login/"}), id="302-empty"),
    pytest.param(httpx.Response(204), id="204"),
    pytest.param(httpx.Response(200, json=""), id="200-empty-string"),
    pytest.param(httpx.Response(200, json=[]), id="200-empty-array"),
    pytest.param(httpx.Response(202, json={}), id="202-empty-object"),
    pytest.param(httpx.Response(201), id="201-empty-body"),
    pytest.param(httpx.Response(201, json=[]), id="201-array"),
    pytest.param(httpx.Response(201, text="<html>ok</html>"), id="201-html"),
    pytest.param(httpx.Response(301, json={"detail": "moved"}), id="301-object"),
]


@pytest.mark.parametrize("response", ODD_SEND_ANSWERS)
def test_send_accepts_only_the_documented_success_answer(response: httpx.Response) -> None:
    """Seed 002: a send answers the (empty) model ``{}``, with no status given; as a DRF view
    [INF], 201 (a create view) or 200 (a plain view).

    Anything else below 400 is not a confirmation that Colony took the message: ``MalformedResponse``
    (the gateway records ``unknown`` and never re-sends it blindly).
    """
    p = provider()
    p._token = "t"
    with pytest.raises(MalformedResponse, match="HTTP 200 or 201 with a JSON object"):
        run_with_responses(p.send(msg()), [response])
    with pytest.raises(MalformedResponse, match="HTTP 200 or 201 with a JSON object"):
        run_with_responses(p.send_many([msg(), msg(to="+27825550123")]), [response])
    for status in (200, 201):
        ok = run_with_responses(p.send(msg()), [httpx.Response(status, json={})])
        assert ok.status == Status.SUBMITTED and ok.raw_status == f"HTTP {status}"
        many = run_with_responses(p.send_many([msg(), msg(to="+27825550123")]), [httpx.Response(status, json={})])
        assert [(r.status, r.raw_status) for r in many] == [(Status.SUBMITTED, f"HTTP {status}")] * 2


@pytest.mark.parametrize("next_url", [
    "https://api.colonyhq.com/contact/optouts/?page=2\x00",
    "https://api.colonyhq.com/contact/optouts/\n?page=2",
    "/contact/optouts/?page=\x7f2",
    "https://[::1/contact/optouts/?page=2",
])
def test_next_link_that_is_not_a_valid_url_is_malformed(next_url: str) -> None:
    p = provider()
    p._token = "t"
    page = {"count": 2, "next": next_url, "previous": None,
            "results": [sample(SEED_OPTOUT, id=1, originator="27815854565", date_overwritten=None)]}
    with pytest.raises(MalformedResponse, match="'next'") as info:
        run_with_responses(p.list_optouts(), [httpx.Response(200, json=page)])
    assert "GET /contact/optouts/" in str(info.value)
