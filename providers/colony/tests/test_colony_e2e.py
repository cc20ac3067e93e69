"""Every Colony operation end to end over loopback HTTP against the emulator, sync and async."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from colony_harness import (
    FAILING,
    NUMBER,
    NUMBER2,
    NUMBER3,
    AsyncHarness,
    Harness,
    colony_settings,
    harness,
    plugins,
    served,
    settings_for,
)

from smsgate.errors import (
    AuthFailed,
    MalformedResponse,
    RequestRejected,
    ResourceNotFound,
    UnknownOutcome,
    Unsupported,
    ValidationError,
)
from smsgate.gateway import MessageSpec
from smsgate.models import Campaign, CampaignStatus, Contact, ContactList, Status
from smsgate.provider import ProviderSettings
from smsgate.testing.emulator import EmulatorControl
from smsgate_colony import (
    ColonyContactList,
    ColonyDeployment,
    ColonyOptOut,
    ColonyStat,
    contacts_csv,
    deployment_csv,
)
from smsgate_colony.emulator import SANDBOX_CREDENTIALS, ColonyEmulator, create_app


@dataclass
class Env:
    h: Harness
    emu: ColonyEmulator
    ctl: EmulatorControl
    url: str

    def control(self, method: str, path: str, body: Any = None) -> Any:
        resp = httpx.request(method, self.url + path, json=body, timeout=5)
        resp.raise_for_status()
        return resp.json()

    def requests(self, path: str | None = None, method: str | None = None) -> list[Any]:
        return self.ctl.requests(path, method)


@contextmanager
def make_env(mode: str, app_options: dict[str, Any] | None = None,
             provider_options: dict[str, Any] | None = None) -> Iterator[Env]:
    app = create_app(**{"delivery_delay": 0.0, **(app_options or {})})
    with served(app) as url:
        settings = settings_for({"colony": colony_settings(url, **(provider_options or {}))})
        with harness(mode, settings, plugins()) as h:
            yield Env(h, app.vendor, EmulatorControl(url), url)


@pytest.fixture(scope="module")
def shared_app() -> Iterator[tuple[Any, str]]:
    """One emulator for the tests using default options; its state is reset per test."""
    app = create_app(delivery_delay=0.0)
    with served(app) as url:
        yield app, url


@pytest.fixture(params=["sync", "async"])
def env(request: pytest.FixtureRequest, shared_app: tuple[Any, str]) -> Iterator[Env]:
    app, url = shared_app
    app.vendor.reset()
    ctl = EmulatorControl(url)
    ctl.reset()
    settings = settings_for({"colony": colony_settings(url)})
    with harness(request.param, settings, plugins()) as h:
        yield Env(h, app.vendor, ctl, url)


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# ------------------------------------------------------------------ messages
def test_send_single_message(env: Env) -> None:
    text = "x" * 161  # two 160-character chunks
    result = env.h.send(NUMBER, text, provider_options={"campaign_pk": 42})
    assert result.status == Status.SUBMITTED and result.ok
    assert result.segments == 2 and result.cost == Decimal(2) and result.currency == "credits"
    body = env.requests("/contact/message/send/")[0].json()
    assert body == {"destination": "27815854565", "message": text, "campaign_pk": 42}
    assert env.requests("/contact/message/send/")[0].headers["authorization"].startswith("Bearer ")
    sent = env.control("GET", "/_colony/messages")
    assert [(m["destination"], m["credits"], m["campaign_pk"]) for m in sent] == [("27815854565", 2, 42)]


def test_send_message_vendor_call(env: Env) -> None:
    body = env.h.run(env.h.provider().send_message(NUMBER2, "hello", campaign_pk=7))
    assert body == {}  # seed 002
    assert (env.emu.sends[-1].destination, env.emu.sends[-1].campaign_pk) == ("27825550123", 7)


def test_send_bulk(env: Env) -> None:
    results = env.h.send_many([NUMBER, NUMBER2, NUMBER3], "bulk hello")
    assert [r.status for r in results] == [Status.SUBMITTED] * 3
    reqs = env.requests("/contact/message/bulk/")
    assert len(reqs) == 1
    assert reqs[0].json() == [
        {"destination": "27815854565", "message": "bulk hello"},
        {"destination": "27825550123", "message": "bulk hello"},
        {"destination": "27835550124", "message": "bulk hello"},
    ]
    raw = env.h.run(env.h.provider().send_bulk([{"destination": NUMBER, "message": "direct"}]))
    assert raw == {}  # seed 002
    assert (env.emu.sends[-1].destination, env.emu.sends[-1].message) == ("27815854565", "direct")


def test_send_bulk_rejects_bad_items_and_sends_the_rest(env: Env) -> None:
    results = env.h.send_many([
        MessageSpec(to=NUMBER, text="fine"),
        MessageSpec(to=NUMBER2, text="   "),  # blank: refused before any request
        MessageSpec(to=NUMBER3, text="also fine"),
    ])
    assert [r.status for r in results] == [Status.SUBMITTED, Status.REJECTED, Status.SUBMITTED]
    assert "is empty" in (results[1].error or "")
    reqs = env.requests("/contact/message/bulk/")
    assert [len(r.json()) for r in reqs] == [2]
    assert sorted(s.destination for s in env.emu.sends) == ["27815854565", "27835550124"]


def test_an_undocumented_answer_is_unknown_and_never_resent(env: Env) -> None:
    """Colony processed the send but answered 200 with an error in the body (not the documented
    ``{}``): ``unknown``, one request."""
    env.ctl.fault(kind="status", status=200, process=True, path="/contact/message/", count=2)
    with pytest.raises(MalformedResponse, match="did not confirm the send"):
        env.h.send(NUMBER, "odd answer")
    results = env.h.send_many([NUMBER2, NUMBER3], "odd bulk answer")
    assert [r.status for r in results] == [Status.UNKNOWN] * 2
    assert len(env.requests("/contact/message/send/")) == 1 and len(env.requests("/contact/message/bulk/")) == 1
    assert len(env.emu.sends) == 3  # the vendor did act: re-sending would duplicate
    logged = env.h.tenant.messages() if env.h.mode == "sync" else env.h._wait(env.h.tenant.messages())
    assert {m.status for m in logged} == {Status.UNKNOWN}


@pytest.mark.parametrize("processed", [True, False])
def test_an_error_inside_a_201_is_unknown_and_never_failed_over(mode: str, processed: bool) -> None:
    """Colony answers 201 ("created") with ``{"error": ...}``: undocumented, and it may have sent
    the message, so the message is ``unknown`` and the tenant's next provider is not tried
    (failing over would send it twice when Colony did act, ``processed``). The client cannot
    tell the two cases apart; the emulator's record can."""
    app = create_app(delivery_delay=0.0)
    with served(app) as url:
        ctl = EmulatorControl(url)
        settings = settings_for({"colony": colony_settings(url), "backup": colony_settings(url)})
        with harness(mode, settings, plugins()) as h:
            ctl.fault(kind="status", status=201, process=processed, path="/contact/message/", count=2)
            with pytest.raises(MalformedResponse, match=r"HTTP 201 with an error in the body \(injected fault\)"):
                h.send(NUMBER, "maybe sent")
            results = h.send_many([NUMBER2, NUMBER3], "maybe sent too")
            assert [(r.status, r.provider) for r in results] == [(Status.UNKNOWN, "colony")] * 2
            assert "may have sent it" in (results[0].error or "")
            logged = h.tenant.messages() if h.mode == "sync" else h._wait(h.tenant.messages())
            assert sorted((m.status, m.provider) for m in logged) == [(Status.UNKNOWN, "colony")] * 3
        sends = ctl.requests("/contact/message/", "POST")
        assert [(r.fault, r.processed, r.status) for r in sends] == [("status", processed, 201)] * 2
        assert len(app.vendor.sends) == (3 if processed else 0)  # one request each: never sent twice


def test_validation_error_is_typed(env: Env) -> None:
    with pytest.raises(RequestRejected) as info:
        env.h.run(env.h.provider().send_message(NUMBER, ""))
    assert "message: This field may not be blank." in str(info.value)


# ------------------------------------------------------------- contact lists
def test_contact_list_crud(env: Env) -> None:
    p = env.h.provider()
    created = env.h.run(p.add_contact_list("Customers"))
    assert isinstance(created, ColonyContactList) and created.title == "Customers" and created.company == 1
    got = env.h.run(p.get_contact_list(created.id))
    assert got.id == created.id and got.saved_query is None
    env.control("POST", "/_colony/saved_queries", {"id": 7, "msisdns": ["27815854565"]})
    updated = env.h.run(p.update_contact_list(created.id, title="VIP", saved_query=7))
    assert (updated.title, updated.saved_query) == ("VIP", 7)
    cleared = env.h.run(p.update_contact_list(created.id, clear_saved_query=True))
    assert cleared.saved_query is None
    assert [c.id for c in env.h.iterate(p.contact_lists())] == [created.id]
    env.h.run(p.delete_contact_list(created.id))
    assert env.h.iterate(p.contact_lists()) == []
    with pytest.raises(ResourceNotFound):
        env.h.run(p.get_contact_list(created.id))
    with pytest.raises(RequestRejected) as info:
        env.h.run(p.add_contact_list("x", saved_query=99))
    assert 'saved_query: Invalid pk "99"' in str(info.value)


def test_contact_lists_walk_every_page(mode: str) -> None:
    with make_env(mode, {"page_size": 2}) as env:
        p = env.h.provider()
        for i in range(5):
            env.h.run(p.add_contact_list(f"list {i}"))
        titles = [c.title for c in env.h.iterate(p.contact_lists())]
        assert titles == [f"list {i}" for i in range(5)]
        assert len(env.requests("/contact/contactlists/", "GET")) == 3


def test_plain_array_listings_are_accepted(mode: str) -> None:
    with make_env(mode, {"paginate": False}) as env:
        p = env.h.provider()
        env.h.run(p.add_contact_list("a"))
        env.h.run(p.add_contact_list("b"))
        assert [c.title for c in env.h.iterate(p.contact_lists())] == ["a", "b"]


def test_neutral_contact_list_and_contacts(env: Env) -> None:
    p = env.h.provider()
    cl = env.h.run(p.create_contact_list(ContactList(name="Leads", description="d"), [NUMBER, NUMBER2]))
    assert cl.name == "Leads" and cl.size == 2 and cl.provider == "colony" and cl.id
    list_id = int(cl.id or 0)
    contacts = env.h.iterate(p.contacts(list_id))
    assert sorted(c.get("msisdn") for c in contacts) == ["27815854565", "27825550123"]
    batch = env.requests("/contact/contactlists/contact/", "POST")[0].json()
    assert batch == [{"contact_list": list_id, "msisdn": "27815854565"},
                     {"contact_list": list_id, "msisdn": "27825550123"}]
    added = env.h.run(p.add_contacts(list_id, [Contact(phone=NUMBER3, name="Thabo", fields={"city": "Durban"})]))
    assert added[0].get("name") == "Thabo"
    neutral = p.to_contact(added[0])
    assert neutral.phone == NUMBER3 and neutral.name == "Thabo" and neutral.fields == {"city": "Durban"}
    one = env.h.run(p.get_contact(added[0].id or 0))
    assert one.get("msisdn") == "27835550124"
    changed = env.h.run(p.update_contact(added[0].id or 0, phone="+27845550126", city="Cape Town"))
    assert changed.get("msisdn") == "27845550126" and changed.get("city") == "Cape Town"
    env.h.run(p.delete_contact(added[0].id or 0))
    with pytest.raises(ResourceNotFound):
        env.h.run(p.get_contact(added[0].id or 0))
    assert len(env.h.iterate(p.contacts(list_id))) == 2


def test_contact_batches_are_split(mode: str) -> None:
    with make_env(mode, provider_options={"contact_batch_size": 2}) as env:
        p = env.h.provider()
        lst = env.h.run(p.add_contact_list("big"))
        numbers = [NUMBER, NUMBER2, NUMBER3, "+27845550126", "+27725550127"]
        created = env.h.run(p.add_contacts(lst.id, numbers))
        assert len(created) == 5
        assert [len(r.json()) for r in env.requests("/contact/contactlists/contact/", "POST")] == [2, 2, 1]


def test_csv_imports_of_contact_lists(env: Env) -> None:
    p = env.h.provider()
    lst = env.h.run(p.import_contact_list_csv("From CSV", contacts_csv([NUMBER, NUMBER2])))
    assert lst.title == "From CSV"
    assert len(env.h.iterate(p.contacts(lst.id))) == 2
    req = env.requests("/contact/contactlists/import/")[0]
    assert req.headers["content-type"].startswith("multipart/form-data")
    assert 'name="file"; filename="contacts.csv"' in req.body
    again = env.h.run(p.import_contacts_csv(lst.id, "msisdn\r\n27835550124\r\n"))
    assert again.id == lst.id
    assert len(env.h.iterate(p.contacts(lst.id))) == 3
    with pytest.raises(RequestRejected) as info:
        env.h.run(p.import_contacts_csv(lst.id, "msisdn\n27815854565\nabc\n0821234567\n"))
    text = str(info.value)
    assert "Row 3: 'abc' is not a valid mobile number" in text and "Row 4:" in text
    assert len(env.h.iterate(p.contacts(lst.id))) == 3  # nothing imported from the bad file


@pytest.mark.parametrize("processed", [True, False])
def test_an_error_inside_a_2xx_import_answer_is_an_unknown_outcome(env: Env, processed: bool) -> None:
    """Colony answers an import or a refresh with a 2xx carrying ``{"error": ...}``: undocumented,
    and it may have applied it (``processed``: the emulator's record says it did), so it is
    :class:`UnknownOutcome` saying how to check, never ``RequestRejected`` ("not applied",
    which invites importing the file again: its contacts twice). One request each."""
    p = env.h.provider()
    env.control("POST", "/_colony/saved_queries", {"id": 3, "msisdns": [NUMBER[1:]]})
    backed = env.h.run(p.add_contact_list("Query backed", saved_query=3))
    env.ctl.fault(kind="status", status=201, process=processed, path="/contact/contactlists/import/", count=1)
    with pytest.raises(UnknownOutcome) as info:
        env.h.run(p.import_contact_list_csv("Maybe", contacts_csv([NUMBER, NUMBER2])))
    assert not isinstance(info.value, RequestRejected)
    assert ("HTTP 201 with an error in the body (injected fault): Colony may have applied the contact list "
            "import") in str(info.value) and "look for a list titled 'Maybe' with find_contact_list()" in str(info.value)
    found = env.h.run(p.find_contact_list("Maybe"))
    assert (found is not None) is processed  # what the check finds: the emulator did (not) create it
    target = found.id if found is not None else env.h.run(p.add_contact_list("Target")).id
    before = len(env.h.iterate(p.contacts(target)))
    env.ctl.fault(kind="status", status=200, process=processed, path=f"/contact/contactlists/{target}/import/",
                  count=1)
    with pytest.raises(UnknownOutcome, match=rf"may have applied the contact import.*contacts\({target}\)"):
        env.h.run(p.import_contacts_csv(target, "msisdn\r\n27835550124\r\n"))
    assert len(env.h.iterate(p.contacts(target))) == before + (1 if processed else 0)
    env.ctl.fault(kind="status", status=200, process=processed, path=f"/contact/contactlists/{backed.id}/refresh/",
                  count=1)
    with pytest.raises(UnknownOutcome, match="may have applied the refresh"):
        env.h.run(p.refresh_contact_list(backed.id))
    for path in ("/contact/contactlists/import/", f"/contact/contactlists/{target}/import/",
                 f"/contact/contactlists/{backed.id}/refresh/"):
        assert [(r.fault, r.processed) for r in env.requests(path)] == [("status", processed)]  # never repeated


@pytest.mark.parametrize("processed", [True, False])
def test_an_error_inside_a_2xx_delete_answer_is_an_unknown_outcome(env: Env, processed: bool) -> None:
    """A delete answered with a 2xx carrying ``{"error": ...}`` is treated as an import so answered:
    :class:`UnknownOutcome` (Colony may have deleted it), saying how to check, never
    ``RequestRejected`` ("not deleted"). One request each; the check finds what the emulator did."""
    p = env.h.provider()
    one = env.h.run(p.add_contact_list("One"))
    env.ctl.fault(kind="status", status=200, process=processed, path=f"/contact/contactlists/{one.id}/", count=1)
    with pytest.raises(UnknownOutcome) as info:
        env.h.run(p.delete_contact_list(one.id))
    assert not isinstance(info.value, RequestRejected)
    assert (f"HTTP 200 with an error in the body (injected fault): Colony may have applied the deletion of "
            f"contact list {one.id}") in str(info.value)
    assert f"get_contact_list({one.id}) raises ResourceNotFound" in str(info.value)
    gone = [c.id for c in env.h.iterate(p.contact_lists())] == []
    assert gone is processed
    two = env.h.run(p.add_contact_list("Two"))
    three = env.h.run(p.add_contact_list("Three"))
    env.ctl.fault(kind="status", status=200, process=processed, path="/contact/contactlists/delete/", count=1)
    with pytest.raises(UnknownOutcome, match=f"deletion of contact lists {two.id}, {three.id}"):
        env.h.run(p.delete_contact_lists([two.id, three.id]))
    assert ({c.id for c in env.h.iterate(p.contact_lists())} >= {two.id, three.id}) is not processed
    cl = env.h.run(p.create_contact_list(ContactList(name="Leads"), [NUMBER]))
    contact = env.h.iterate(p.contacts(int(cl.id or 0)))[0]
    env.ctl.fault(kind="status", status=200, process=processed, path=f"/contact/contactlists/contact/{contact.id}/",
                  count=1)
    with pytest.raises(UnknownOutcome, match=rf"deletion of contact {contact.id}.*get_contact\({contact.id}\)"):
        env.h.run(p.delete_contact(contact.id or 0))
    for path in (f"/contact/contactlists/{one.id}/", "/contact/contactlists/delete/",
                 f"/contact/contactlists/contact/{contact.id}/"):
        assert [(r.fault, r.processed) for r in env.requests(path, "DELETE")] == [("status", processed)]


def test_saved_query_refresh_and_generate(env: Env) -> None:
    p = env.h.provider()
    env.control("POST", "/_colony/saved_queries", {"id": 3, "msisdns": ["27815854565", "27825550123"]})
    lst = env.h.run(p.add_contact_list("Query backed", saved_query=3))
    refreshed = env.h.run(p.refresh_contact_list(lst.id))
    assert refreshed.saved_query == 3
    assert len(env.h.iterate(p.contacts(lst.id))) == 2
    env.control("POST", "/_colony/saved_queries", {"id": 4, "msisdns": ["27835550124"]})
    other = env.h.run(p.add_contact_list("Plain"))
    task = env.h.run(p.generate_contact_list(other.id, saved_query=4))
    assert task["contact_list"] == other.id
    assert [c.get("msisdn") for c in env.h.iterate(p.contacts(other.id))] == ["27835550124"]
    with pytest.raises(RequestRejected, match="not backed by a saved query"):
        env.h.run(p.refresh_contact_list(other.id))


def test_delete_contact_list_on_overridden_path(mode: str) -> None:
    path = "/contact/contactlists/{id}/delete/"
    with make_env(mode, {"paths": {"contactlist_delete": path}},
                        {"paths": {"contactlist_delete": path}}) as env:
        p = env.h.provider()
        lst = env.h.run(p.add_contact_list("gone soon"))
        env.h.run(p.delete_contact_list(lst.id))
        assert env.requests(f"/contact/contactlists/{lst.id}/delete/", "DELETE")
        assert env.h.iterate(p.contact_lists()) == []


# ------------------------------------------------------------------- company
def test_company_details(env: Env) -> None:
    p = env.h.provider()
    assert env.h.run(p.get_company())["id"] == 1
    updated = env.h.run(p.update_company(name="Acme SA"))
    assert updated["name"] == "Acme SA"
    assert env.requests("/commence/accounts/company/", "PATCH")
    replaced = env.h.run(p.update_company(replace=True, phone="0215551234"))
    assert "name" not in replaced and replaced["phone"] == "0215551234"


# --------------------------------------------------------------- deployments
def test_deployment_from_contact_list(env: Env) -> None:
    p = env.h.provider()
    lst = env.h.run(p.add_contact_list("Audience"))
    env.h.run(p.add_contacts(lst.id, [NUMBER, NUMBER2, FAILING]))
    dep = env.h.run(p.create_deployment(title="Promo", contact_list=lst.id, message="y" * 200,
                                        marketing=True, linked_campaign=5))
    assert isinstance(dep, ColonyDeployment)
    assert (dep.total_contacts, dep.total_credits, dep.marketing, dep.linked_campaign) == (3, 6, True, 5)
    again = env.h.run(p.get_deployment(dep.id))
    assert again.status == 4  # delivery_delay 0: already sent
    assert [d.id for d in env.h.iterate(p.deployments())] == [dep.id]
    campaign = p.to_campaign(again)
    assert campaign.status == CampaignStatus.COMPLETED and campaign.cost == Decimal(6)


def test_deployment_csv_imports_and_report(env: Env) -> None:
    p = env.h.provider()
    dep = env.h.run(p.import_deployment_csv(
        deployment_csv([(NUMBER, "Hi Colony"), (NUMBER2, "Morning Colony")]), title="CSV rows"))
    assert dep.total_contacts == 2 and dep.total_credits == 2
    nums = env.h.run(p.import_deployment_numbers_csv(
        deployment_csv([NUMBER, NUMBER3]), title="CSV numbers", message="Afternoon Colony"))
    assert nums.total_contacts == 2
    sent = [(s.destination, s.message) for s in env.emu.sends if s.deployment == nums.id]
    assert sent == [("27815854565", "Afternoon Colony"), ("27835550124", "Afternoon Colony")]
    later = datetime.now(timezone.utc) + timedelta(days=1)
    scheduled = env.h.run(p.import_deployment_csv(deployment_csv([(NUMBER, "later")]), title="Later",
                                                  send_date=later))
    assert scheduled.status == 2 and p.to_campaign(scheduled).status == CampaignStatus.SCHEDULED
    grown = env.h.run(p.import_deployment_rows_csv(scheduled.id, deployment_csv([(NUMBER2, "later too")])))
    assert grown.total_contacts == 2
    with pytest.raises(RequestRejected, match="already been sent"):
        env.h.run(p.import_deployment_rows_csv(dep.id, deployment_csv([(NUMBER3, "too late")])))
    with pytest.raises(RequestRejected, match="Row 2"):
        env.h.run(p.import_deployment_csv("destination,message\n27815854565,\n", title="bad"))
    report = env.h.run(p.generate_deployment_report(dep.id))
    assert "filebox" in report["detail"]
    assert env.control("GET", "/_colony/filebox")[0]["deployment"] == dep.id


def test_native_campaign(env: Env) -> None:
    p = env.h.provider()
    lst = env.h.run(p.add_contact_list("Campaign list"))
    env.h.run(p.add_contacts(lst.id, [NUMBER, NUMBER2]))
    other = env.h.run(p.add_contact_list("Someone else's list"))
    env.h.run(p.add_contacts(other.id, [NUMBER3]))
    created = env.h.run(p.create_campaign(Campaign(name="Spring", text="Spring sale", contact_list_id=str(lst.id),
                                                   provider_options={"marketing": True})))
    assert created.id and created.provider == "colony" and created.recipient_count == 2
    assert created.text == "Spring sale" and created.status == CampaignStatus.COMPLETED
    # the deployment model has no audience or message field: the list's members go up as a CSV
    assert [r.path for r in env.requests("/contact/deployments/", "POST")] == ["/contact/deployments/import/"]
    upload = env.requests("/contact/deployments/import/", "POST")[0].body
    assert "destination,message\r\n27815854565,Spring sale\r\n27825550123,Spring sale\r\n" in upload
    sent = sorted((s.destination, s.message) for s in env.emu.sends if s.deployment == int(created.id or 0))
    assert sent == [("27815854565", "Spring sale"), ("27825550123", "Spring sale")]
    assert env.emu.deployments[int(created.id or 0)].record["marketing"] is True
    fetched = env.h.run(p.get_campaign(created.id or ""))
    assert fetched.name == "Spring" and fetched.raw_status == "4"

    personal = env.h.run(p.create_campaign(Campaign(
        name="Hello", text="Hi {name}",
        contacts=[Contact(phone=NUMBER, name="Lerato"), Contact(phone=NUMBER3, name="Sipho")])))
    assert personal.recipient_count == 2
    msgs = sorted(s.message for s in env.emu.sends if s.deployment == int(personal.id or 0))
    assert msgs == ["Hi Lerato", "Hi Sipho"]
    with pytest.raises(ValidationError):
        env.h.run(p.create_campaign(Campaign(name="nobody", text="x")))
    with pytest.raises(Unsupported):
        env.h.run(p.create_campaign(Campaign(name="tpl", template_id="t1", contact_list_id="1")))


# ---------------------------------------------------------------- statistics
def test_statistics_reflect_sends(env: Env) -> None:
    p = env.h.provider()
    dep = env.h.run(p.import_deployment_csv(
        deployment_csv([(NUMBER, "a"), (NUMBER2, "b"), (FAILING, "c")]), title="stats"))
    env.h.send(NUMBER3, "single")
    for period in ("hourly", "daily", "monthly", "yearly"):
        rows = env.h.iterate(p.deployment_stats(period, deployment=dep.id))
        assert len(rows) == 1 and isinstance(rows[0], ColonyStat)
        row = rows[0]
        assert (row.total, row.sms_sent_count, row.sms_unsent_count) == (3, 2, 1)
        assert row.period_start is not None and row.period_end is not None
        assert row.period_start < row.period_end
        one = env.h.run(p.get_deployment_stat(period, row.id or 0))
        assert one.id == row.id and one.deployment == dep.id
    stats = env.h.run(p.statistics(period="day"))
    assert (stats.submitted, stats.sent, stats.failed) == (4, 3, 1)
    assert stats.detail and stats.provider == "colony"
    only = env.h.run(p.statistics(period="monthly", deployment=dep.id))
    assert (only.submitted, only.sent) == (3, 2)
    with pytest.raises(ValidationError):
        env.h.run(p.statistics(period="weekly"))


def test_native_campaign_stats_include_the_providers_figures(mode: str) -> None:
    """A native Colony campaign run through a Gateway: ``stats(include_provider=True)`` has Colony's figures."""
    with make_env(mode) as env:
        h = env.h
        h.send(NUMBER3, "not part of the campaign")  # counted by Colony, but not for the deployment
        audience = [Contact(phone=NUMBER, name="Lerato"), Contact(phone=NUMBER2, name="Sipho"),
                    Contact(phone=FAILING, name="Thabo")]
        if isinstance(h, AsyncHarness):
            async def run() -> tuple[Any, Any]:
                camp = await h.tenant.campaigns.create("Winter", audience=audience, text="Hi {name}",
                                                       provider="colony", mode="native")
                await camp.run()
                return await camp.row(), await camp.stats(include_provider=True)

            row, stats = h._wait(run())
        else:
            camp = h.tenant.campaigns.create("Winter", audience=audience, text="Hi {name}",
                                             provider="colony", mode="native")
            camp.run()
            row, stats = camp.row, camp.stats(include_provider=True)
        deployment = int(row.provider_campaign_id or 0)
        assert deployment in env.emu.deployments
        theirs = stats.raw["provider"]
        assert theirs["provider"] == "colony" and theirs["raw"]["deployment"] == deployment
        assert (theirs["submitted"], theirs["sent"], theirs["failed"]) == (3, 2, 1)
        stat_reqs = env.requests("/contact/deployments/stats/daily/")
        assert [r.query for r in stat_reqs] == [f"deployment={deployment}"]


def test_campaign_engine_to_a_colony_contact_list(mode: str) -> None:
    """``tenant.campaigns`` with a Colony list as audience: the list's members get the message."""
    from smsgate.campaigns import ProviderListAudience

    with make_env(mode) as env:
        h = env.h
        p = h.provider()
        lst = h.run(p.add_contact_list("Members"))
        h.run(p.add_contacts(lst.id, [NUMBER, NUMBER2, FAILING]))
        audience = ProviderListAudience("colony", str(lst.id))
        if isinstance(h, AsyncHarness):
            async def run() -> tuple[Any, Any]:
                camp = await h.tenant.campaigns.create("Members only", audience=audience, text="Winter sale")
                await camp.run()
                return await camp.row(), await camp.stats(include_provider=True)

            row, stats = h._wait(run())
        else:
            camp = h.tenant.campaigns.create("Members only", audience=audience, text="Winter sale")
            camp.run()
            row, stats = camp.row, camp.stats(include_provider=True)
        deployment = int(row.provider_campaign_id or 0)
        sent = sorted(s.destination for s in env.emu.sends if s.deployment == deployment)
        assert sent == ["27815854565", "27815854569", "27825550123"]
        assert (stats.raw["provider"]["submitted"], stats.raw["provider"]["sent"]) == (3, 2)


# ------------------------------------------------------------------ opt-outs
def test_optouts_list_filter_overwrite(env: Env) -> None:
    p = env.h.provider()
    env.control("POST", "/_colony/inbound", {"originator": "27815854565", "text": "STOP"})
    env.control("POST", "/_colony/optouts", {"originator": "27825550123", "reason": "complaint"})
    records = env.h.iterate(p.optouts())
    assert [(r.originator, r.reason) for r in records] == [("27815854565", "STOP reply"),
                                                           ("27825550123", "complaint")]
    assert all(isinstance(r, ColonyOptOut) and r.active for r in records)
    mine = env.h.iterate(p.optouts_for(NUMBER2))
    assert [r.originator for r in mine] == ["27825550123"]
    assert env.requests("/contact/optouts/", "GET")[-1].query == "originator=27825550123"
    neutral = env.h.run(p.list_optouts())
    assert sorted(o.phone for o in neutral) == [NUMBER, NUMBER2]
    lifted = env.h.run(p.overwrite_optout(records[1].id))
    assert lifted is not None and lifted.date_overwritten is not None and lifted.overwritten_by == 1
    env.h.run(p.remove_optout(NUMBER))
    assert env.h.run(p.list_optouts()) == []
    env.h.run(p.remove_optout(NUMBER3))  # nothing to overwrite: no-op
    with pytest.raises(Unsupported, match="allow_optout_create"):
        env.h.run(p.add_optout(NUMBER3, "asked"))


def test_optouts_sync_into_registry(env: Env) -> None:
    env.control("POST", "/_colony/inbound", {"originator": "27815854565", "text": "stop please"})
    assert env.h.sync_optouts() == 1
    assert env.h.opted_out(NUMBER)
    assert env.h.sync_optouts() == 0


def test_add_optout_when_enabled(mode: str) -> None:
    with make_env(mode, provider_options={"allow_optout_create": True}) as env:
        p = env.h.provider()
        env.h.run(p.add_optout(NUMBER3, "asked by phone"))
        assert [(o.phone, o.reason) for o in env.h.run(p.list_optouts())] == [(NUMBER3, "asked by phone")]


def test_optouts_suppress_vendor_sends(env: Env) -> None:
    env.control("POST", "/_colony/optouts", {"originator": "27815854565"})
    env.h.run(env.h.provider().send_message(NUMBER, "direct, bypassing the registry"))
    assert env.emu.sends[-1].suppressed
    rows = env.h.iterate(env.h.provider().deployment_stats("daily"))
    assert rows[0].sms_optout_count == 1


# --------------------------------------------------------------------- auth
def test_token_cached_then_reobtained_after_401(env: Env) -> None:
    env.h.send(NUMBER, "one")
    env.h.send(NUMBER, "two")
    assert len(env.requests("/oauth2/access_token/")) == 1
    env.control("POST", "/_colony/revoke_tokens")
    env.h.send(NUMBER, "three")
    tokens = env.requests("/oauth2/access_token/")
    assert len(tokens) == 2 and "grant_type=password" in tokens[1].body
    assert [r.headers.get("authorization") is not None for r in env.requests("/contact/message/send/")] == [True] * 4


def test_token_refreshed_when_expired(env: Env) -> None:
    p = env.h.provider()
    now = [1000.0]
    p.clock = lambda: now[0]
    env.h.run(p.get_company())
    now[0] += 86400  # past expires_in (86399)
    env.h.run(p.get_company())
    grants = [r.body for r in env.requests("/oauth2/access_token/")]
    assert len(grants) == 2 and "grant_type=refresh_token" in grants[1]
    assert "client_id=colony-sandbox-client" in grants[1]


def test_bad_credentials(mode: str) -> None:
    app = create_app()
    with served(app) as url:
        settings = ProviderSettings(plugin="colony", base_url=url, credentials={
            **SANDBOX_CREDENTIALS, "password": "nope-nope"})
        with harness(mode, settings_for({"colony": settings}), plugins()) as h, pytest.raises(AuthFailed) as info:
            h.run(h.provider().get_company())
        assert "invalid_grant" in str(info.value) and "nope-nope" not in str(info.value)
