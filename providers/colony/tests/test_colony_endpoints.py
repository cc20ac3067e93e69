"""The Colony operations added for "every documented endpoint" (issue #14): deployment update and
delete, the bulk contact-list delete, collate campaigns (what ``campaign_pk`` names) and received
(inbound) messages. End to end over loopback HTTP against the emulator (sync and async), contract
tests from the published model dumps, and property tests of the pure inbound-message parser.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent))

from colony_harness import NUMBER, NUMBER2, Harness, colony_settings, harness, plugins, served, settings_for

from smsgate.errors import MalformedResponse, RequestRejected, ResourceNotFound, ValidationError
from smsgate.provider import ProviderSettings
from smsgate.testing.emulator import EmulatorControl
from smsgate.transport import run_with_responses
from smsgate_colony import (
    ColonyCollateCampaign,
    ColonyDeployment,
    ColonyInboundMessage,
    ColonyProvider,
    deployment_csv,
    parse_inbound_message,
    parse_inbound_messages,
)
from smsgate_colony.emulator import SANDBOX_CREDENTIALS, ColonyEmulator, create_app

#: The collate product's published message model (api.colonyhq.com/rest-api/?product=collate), verbatim.
DOC_INBOUND_MESSAGE = {
    "originator": "string", "campaign": "int", "date_updated": "datetime", "text": "string",
    "company": "int", "fav": "boolean", "blacklisted": "boolean", "fraud_incident": "boolean",
    "reason": "int", "id": "int", "fraud_suspect": "boolean", "slot": "int", "extra_digits": "string",
    "network": "int", "session_data": "unknown", "reply_path_message": "boolean", "backend_id": "string",
    "longitude": "float", "provider": "int", "latitude": "float", "date_created": "datetime",
    "backend": "string", "additional_data": "unknown",
}
#: Seed 002's deployment model (what the update answers).
SEED_DEPLOYMENT_FIELDS = {
    "status", "updated_by", "title", "date_updated", "marketing", "company", "optout", "dispatch",
    "total_credits", "total_contacts", "send_date", "created_by", "error", "date_created",
    "linked_campaign", "id", "approved_by",
}
quick = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def documented_sample(**overrides: Any) -> dict[str, Any]:
    """A message shaped like the published model dump, with a plausible value per type."""
    values: dict[str, Any] = {"int": 3, "string": "text", "datetime": "2024-05-01T10:00:00Z",
                              "boolean": True, "float": -26.2041, "unknown": {"step": 1}}
    out = {k: values[t] for k, t in DOC_INBOUND_MESSAGE.items()}
    out.update(originator="27815854565", text="YES please")
    out.update(overrides)
    return out


class Env:
    def __init__(self, h: Harness, app: Any, url: str) -> None:
        self.h, self.url = h, url
        self.emu: ColonyEmulator = app.vendor
        self.ctl = EmulatorControl(url)

    @property
    def p(self) -> ColonyProvider:
        return self.h.provider()

    def control(self, path: str, body: Any) -> Any:
        resp = httpx.post(self.url + path, json=body, timeout=5)
        resp.raise_for_status()
        return resp.json()


@contextmanager
def make_env(mode: str, **app_options: Any) -> Iterator[Env]:
    app = create_app(**{"delivery_delay": 0.0, **app_options})
    with served(app) as url:
        with harness(mode, settings_for({"colony": colony_settings(url)}), plugins()) as h:
            yield Env(h, app, url)


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# ------------------------------------------------------------------ deployments: update and delete
def _scheduled_deployment(env: Env) -> ColonyDeployment:
    later = datetime.now(timezone.utc) + timedelta(hours=2)
    csv = deployment_csv([(NUMBER, "Hi Colony"), (NUMBER2, "Morning Colony")])
    return env.h.run(env.p.import_deployment_csv(csv, title="Spring", send_date=later))


def test_update_deployment_changes_only_the_given_fields(mode: str) -> None:
    with make_env(mode) as env:
        dep = _scheduled_deployment(env)
        assert dep.status == 2
        when = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(days=1)
        updated = env.h.run(env.p.update_deployment(dep.id, title="Spring sale", send_date=when, marketing=True))
        assert (updated.id, updated.title, updated.send_date, updated.marketing) == (dep.id, "Spring sale", when, True)
        assert updated.total_contacts == 2 and updated.optout == dep.optout
        patch = env.ctl.requests(f"/contact/deployments/{dep.id}/", "PATCH")
        assert [r.json() for r in patch] == [{"title": "Spring sale", "send_date": when.isoformat(), "marketing": True}]
        again = env.h.run(env.p.get_deployment(dep.id))
        assert again.title == "Spring sale" and again.send_date == when
        # the emulator's messages of that deployment moved with it
        assert {s.at for s in env.emu.sends if s.deployment == dep.id} == {when}
        with pytest.raises(ValidationError, match="nothing to update"):
            env.h.run(env.p.update_deployment(dep.id))
        with pytest.raises(ResourceNotFound):
            env.h.run(env.p.update_deployment(dep.id + 100, title="x"))


def test_a_deployment_already_sent_cannot_be_changed_or_deleted(mode: str) -> None:
    with make_env(mode) as env:
        dep = env.h.run(env.p.import_deployment_csv(deployment_csv([(NUMBER, "now")]), title="Now"))
        assert env.h.run(env.p.get_deployment(dep.id)).status == 4
        with pytest.raises(RequestRejected, match="already been sent"):
            env.h.run(env.p.update_deployment(dep.id, title="late"))
        with pytest.raises(RequestRejected, match="already been sent"):
            env.h.run(env.p.delete_deployment(dep.id))
        assert env.h.run(env.p.get_deployment(dep.id)).title == "Now"


def test_delete_deployment_withdraws_its_messages(mode: str) -> None:
    with make_env(mode) as env:
        dep = _scheduled_deployment(env)
        other = _scheduled_deployment(env)
        assert env.h.run(env.p.delete_deployment(dep.id)) is None
        assert [r.method for r in env.ctl.requests(f"/contact/deployments/{dep.id}/")] == ["DELETE"]
        with pytest.raises(ResourceNotFound):
            env.h.run(env.p.get_deployment(dep.id))
        listed = env.h.iterate(env.p.deployments())
        assert [d.id for d in listed] == [other.id]
        assert {s.deployment for s in env.emu.sends} == {other.id}  # nothing of dep will go out
        with pytest.raises(ResourceNotFound):
            env.h.run(env.p.delete_deployment(dep.id))


def test_update_deployment_answer_is_parsed_strictly() -> None:
    p = provider()
    token = httpx.Response(200, json={"access_token": "t", "expires_in": 60})
    with pytest.raises(MalformedResponse, match="ColonyDeployment"):
        run_with_responses(p.update_deployment(5, title="x"), [token, httpx.Response(200, json=[])])
    with pytest.raises(MalformedResponse, match="'id'"):
        run_with_responses(p.update_deployment(5, title="x"), [httpx.Response(200, json={"title": "x"})])
    with pytest.raises(MalformedResponse, match="expected HTTP 204"):
        run_with_responses(p.delete_deployment(5), [httpx.Response(200, json=["gone"])])
    run_with_responses(p.delete_deployment(5), [httpx.Response(204)])


def provider(**options: Any) -> ColonyProvider:
    return ColonyProvider(ProviderSettings(
        plugin="colony", base_url="https://api.colonyhq.com", credentials=dict(SANDBOX_CREDENTIALS),
        options=options,
    ))


# ------------------------------------------------------------------ bulk contact-list delete
def test_delete_contact_lists_in_one_request(mode: str) -> None:
    with make_env(mode) as env:
        ids = []
        for title in ("a", "b", "c"):
            record = env.h.run(env.p.add_contact_list(title))
            env.h.run(env.p.add_contacts(record.id, [NUMBER, NUMBER2]))
            ids.append(record.id)
        assert env.h.run(env.p.delete_contact_lists(ids[:2])) is None
        reqs = env.ctl.requests("/contact/contactlists/delete/")
        assert [(r.method, r.json()) for r in reqs] == [("DELETE", {"ids": ids[:2]})]
        assert [r.id for r in env.h.iterate(env.p.contact_lists())] == [ids[2]]
        assert {c["contact_list"] for c in env.emu.contacts.values()} == {ids[2]}
        # an unknown id: 404 and nothing deleted
        with pytest.raises(ResourceNotFound, match=str(ids[0])):
            env.h.run(env.p.delete_contact_lists([ids[2], ids[0]]))
        assert [r.id for r in env.h.iterate(env.p.contact_lists())] == [ids[2]]
        with pytest.raises(ValidationError, match="no contact list ids"):
            env.h.run(env.p.delete_contact_lists([]))
        with pytest.raises(ValidationError, match="integer"):
            env.h.run(env.p.delete_contact_lists(["7"]))  # type: ignore[list-item]


# ------------------------------------------------------------------ collate campaigns and campaign_pk
def test_collate_campaigns_are_what_campaign_pk_names(mode: str) -> None:
    with make_env(mode, collate_campaigns=["Spring", {"id": 42, "title": "Promo"}]) as env:
        campaigns = env.h.iterate(env.p.collate_campaigns())
        assert [(c.id, c.title) for c in campaigns] == [(1, "Spring"), (42, "Promo")]
        assert all(isinstance(c, ColonyCollateCampaign) for c in campaigns)
        assert env.h.run(env.p.get_collate_campaign(42)).title == "Promo"
        with pytest.raises(ResourceNotFound):
            env.h.run(env.p.get_collate_campaign(7))
        assert env.h.run(env.p.send_message(NUMBER, "tracked", campaign_pk=42)) == {}
        with pytest.raises(RequestRejected, match='campaign_pk: Invalid pk "7"'):
            env.h.run(env.p.send_message(NUMBER, "untracked", campaign_pk=7))
        assert [(s.message, s.campaign_pk) for s in env.emu.sends] == [("tracked", 42)]


# ------------------------------------------------------------------ inbound messages
def test_inbound_messages_listed_filtered_and_read(mode: str) -> None:
    with make_env(mode, collate_campaigns=["Survey"], page_size=2) as env:
        for originator, text, campaign in [("27815854565", "YES", 1), ("27825550123", "no thanks", 1),
                                           ("27815854565", "STOP", None)]:
            env.control("/_colony/inbound", {"originator": originator, "text": text, "campaign": campaign})
        every = env.h.iterate(env.p.inbound_messages())  # two pages of two
        assert [(m.originator, m.text, m.campaign) for m in every] == [
            ("27815854565", "YES", 1), ("27825550123", "no thanks", 1), ("27815854565", "STOP", None)]
        assert len(env.ctl.requests("/collate/campaigns/message/")) == 2
        assert all(isinstance(m, ColonyInboundMessage) and m.date_created is not None for m in every)
        assert [m.text for m in env.h.iterate(env.p.inbound_messages(campaign=1))] == ["YES", "no thanks"]
        from_one = env.h.iterate(env.p.inbound_messages(originator=NUMBER))
        assert [m.text for m in from_one] == ["YES", "STOP"]
        assert "originator=27815854565" in env.ctl.requests("/collate/campaigns/message/")[-1].query
        one = env.h.run(env.p.get_inbound_message(every[1].id))
        assert one == every[1]
        with pytest.raises(ResourceNotFound):
            env.h.run(env.p.get_inbound_message(999))


def test_emulator_inbound_message_has_exactly_the_documented_fields() -> None:
    app = create_app(delivery_delay=0, collate_campaigns=["c"])
    with served(app) as url, httpx.Client(base_url=url) as c:
        tok = c.post("/oauth2/access_token/", data={**SANDBOX_CREDENTIALS, "grant_type": "password"}).json()
        c.headers["Authorization"] = f"Bearer {tok['access_token']}"
        c.post("/_colony/inbound", json={"originator": "27815854565", "text": "hi", "campaign": 1})
        record = c.get("/collate/campaigns/message/").json()["results"][0]
        assert set(record) == set(DOC_INBOUND_MESSAGE)
        assert c.post("/collate/campaigns/message/", json={}).status_code == 405  # read-only here


# ------------------------------------------------------------------ contract: the published model
def test_documented_message_model_parses_field_by_field() -> None:
    m = parse_inbound_message(documented_sample())
    assert (m.id, m.originator, m.text, m.campaign, m.company, m.network, m.provider) == (
        3, "27815854565", "YES please", 3, 3, 3, 3)
    assert m.date_created == datetime(2024, 5, 1, 10, tzinfo=timezone.utc)
    assert (m.latitude, m.longitude, m.fav, m.fraud_suspect, m.reply_path_message) == (-26.2041, -26.2041, True, True, True)
    assert m.session_data == {"step": 1} and m.additional_data == {"step": 1}
    assert m.backend == "text" and m.backend_id == "text" and m.extra_digits == "text"


@pytest.mark.parametrize("field", ["id", "originator", "text", "campaign", "date_created"])
def test_a_message_missing_a_required_field_is_malformed(field: str) -> None:
    data = documented_sample()
    del data[field]
    with pytest.raises(MalformedResponse, match=repr(field)):
        parse_inbound_message(data, "GET /collate/campaigns/message/: item 0")


@pytest.mark.parametrize("bad", [
    {"id": "seven"}, {"latitude": "north"}, {"latitude": "nan"}, {"fav": "maybe"}, {"date_created": "yesterday"},
    {"originator": None}, {"campaign": [1]},
])
def test_a_message_with_a_bad_value_is_malformed(bad: dict[str, Any]) -> None:
    with pytest.raises(MalformedResponse, match=repr(next(iter(bad)))):
        parse_inbound_message(documented_sample(**bad))


def test_adapter_names_itself_in_a_malformed_listing() -> None:
    p = provider()
    paged = p.inbound_messages()
    bad = httpx.Response(200, json={"results": [{"id": 1}]}, request=paged.first)
    with pytest.raises(MalformedResponse, match=r"\[colony\].*item 0.*'originator'"):
        paged.parse(paged.first, bad)
    with pytest.raises(MalformedResponse, match="JSON array or a page"):
        paged.parse(paged.first, httpx.Response(200, json={"detail": "x"}, request=paged.first))


# ------------------------------------------------------------------ properties of the pure parser
_values = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=5),
                    st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))


@quick
@given(st.dictionaries(st.sampled_from([*sorted(DOC_INBOUND_MESSAGE), "extra"]), _values))
def test_parser_returns_a_message_or_raises_malformed(data: dict[str, Any]) -> None:
    try:
        m = parse_inbound_message(data)
    except MalformedResponse:
        return
    assert isinstance(m.id, int) and isinstance(m.originator, str) and m.originator
    assert {"id", "originator", "text", "campaign", "date_created"} <= set(data)


@quick
@given(st.lists(st.builds(
    lambda i, who, text, camp: documented_sample(id=i, originator=who, text=text, campaign=camp),
    st.integers(1, 10**9), st.from_regex(r"[1-9][0-9]{7,14}", fullmatch=True), st.text(max_size=200),
    st.none() | st.integers(1, 10**6),
), max_size=5), st.booleans())
def test_valid_listings_parse_in_order_either_shape(items: list[dict[str, Any]], paged: bool) -> None:
    body: Any = {"count": len(items), "next": None, "previous": None, "results": items} if paged else items
    parsed = parse_inbound_messages(body)
    assert [(m.id, m.originator, m.campaign) for m in parsed] == [
        (d["id"], d["originator"], d["campaign"]) for d in items]
    assert [m.text for m in parsed] == [d["text"] if d["text"].strip() else None for d in items]


@quick
@given(st.one_of(st.none(), st.integers(), st.text(max_size=5), st.dictionaries(st.text(max_size=3), st.integers())))
def test_a_listing_that_is_not_a_listing_is_malformed(body: Any) -> None:
    if body is None:
        assert parse_inbound_messages(body) == []
        return
    with pytest.raises(MalformedResponse):
        parse_inbound_messages(body)
