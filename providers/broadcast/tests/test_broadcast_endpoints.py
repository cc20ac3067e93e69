"""WAABOT operations added for "every documented endpoint" (issue #14): contacts, contact groups
(and group broadcasts), the message log and logout. Over loopback HTTP against the emulator with
the sync and the async driver, contract tests from the documented records, and property tests of
the pure parsers in ``smsgate_broadcast.wire``.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smsgate.errors import (
    AuthFailed,
    InvalidPhoneNumber,
    MalformedResponse,
    ProviderError,
    RequestRejected,
    ResourceNotFound,
    ValidationError,
)
from smsgate.models import ContactList
from smsgate.provider import Operation, Paged, ProviderSettings
from smsgate.testing.emulator import EmulatorControl
from smsgate.testing.server import LiveServer
from smsgate.transport import AsyncDriver, SyncDriver, run_with_responses
from smsgate_broadcast import (
    BroadcastProvider,
    WaabotContact,
    WaabotContactGroup,
    WaabotMessageLog,
    parse_contact,
    parse_contact_group,
    parse_message_log,
)
from smsgate_broadcast.emulator import SANDBOX_CREDENTIALS, WaabotState, create_app, vendor_state

T = TypeVar("T")
Runner = Callable[[Operation[Any]], Any]
P = "/api/v1"

#: Documented records (FACTS.md 4.3, from doc.waabot.com's api-documentation pages), with sample values.
DOC_CONTACT = {"_id": "64a00ec7c5e487d95dcb0d5e", "name": "Ada", "number": "2348179803743",
               "client_id": "649ff7e0e6046617c8aeabf0", "group_id": "64ac311eee05a1a2c27fbdb5",
               "channel": "whatsapp", "transaction": {"survey_id": None, "survey_sort_id": None}}
DOC_GROUP = {"_id": "64ac311eee05a1a2c27fbdb5", "title": "VIP", "is_default": False,
             "survey_id": None, "survey_sort_id": None}
quick = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class Env:
    def __init__(self, url: str, app: Any, run: Runner) -> None:
        self.url, self.run = url, run
        self.state: WaabotState = vendor_state(app)
        self.ctl = EmulatorControl(url)
        self.p = provider(url)

    def reqs(self, path: str, method: str | None = None) -> list[Any]:
        """Recorded requests to exactly ``path``."""
        return [r for r in self.ctl.requests(path, method) if r.path == path]

    @staticmethod
    def collect(paged: Paged[T]) -> Operation[list[T]]:
        """An operation walking every page of ``paged``."""
        out: list[T] = []
        request: httpx.Request | None = paged.first
        while request is not None:
            page = yield from paged.fetch(request)
            out.extend(page.items)
            request = page.next_request
        return out

    def walk(self, paged: Paged[T]) -> list[T]:
        return self.run(self.collect(paged))  # type: ignore[no-any-return]


def provider(url: str, creds: dict[str, str] | None = None) -> BroadcastProvider:
    return BroadcastProvider(ProviderSettings(plugin="broadcast", base_url=url,
                                              credentials=creds or SANDBOX_CREDENTIALS))


@pytest.fixture(params=["sync", "async"])
def run(request: pytest.FixtureRequest) -> Iterator[Runner]:
    if request.param == "sync":
        client = httpx.Client(timeout=10)
        yield SyncDriver(client).run
        client.close()
        return
    loop = asyncio.new_event_loop()

    async def make_client() -> httpx.AsyncClient:
        return httpx.AsyncClient(timeout=10)

    aclient = loop.run_until_complete(make_client())
    driver = AsyncDriver(aclient)
    yield lambda op: loop.run_until_complete(driver.run(op))
    loop.run_until_complete(aclient.aclose())
    loop.close()


@pytest.fixture
def env(run: Runner) -> Iterator[Env]:
    app = create_app(delivery_delay=0.0)
    server = LiveServer(app).start()
    yield Env(server.url, app, run)
    server.stop()


# ---------------------------------------------------------------- contact groups and contacts
def test_contact_groups_create_list_get_update_delete(env: Env) -> None:
    group = env.run(env.p.create_contact_group("VIP"))
    assert isinstance(group, WaabotContactGroup) and len(group.id) == 24
    assert (group.title, group.is_default, group.survey_id) == ("VIP", False, None)
    assert [g.id for g in env.run(env.p.list_contact_groups())] == [group.id]
    assert env.run(env.p.get_contact_group(group.id)) == group
    renamed = env.run(env.p.update_contact_group(group.id, title="VIP customers"))
    assert (renamed.id, renamed.title) == (group.id, "VIP customers")
    # the PUT answers 200 with the group, as documented: no read-back
    assert [r.method for r in env.reqs(f"{P}/contact_groups/{group.id}")][-2:] == ["GET", "PUT"]
    env.run(env.p.delete_contact_group(group.id))
    assert env.run(env.p.list_contact_groups()) == []
    with pytest.raises(ResourceNotFound, match="Contact group not found"):
        env.run(env.p.get_contact_group(group.id))
    with pytest.raises(ResourceNotFound):
        env.run(env.p.delete_contact_group(group.id))
    with pytest.raises(ValidationError, match="title"):
        env.run(env.p.create_contact_group("  "))


def test_contacts_create_list_get_update_delete(env: Env) -> None:
    group = env.run(env.p.create_contact_group("VIP"))
    ada = env.run(env.p.create_contact("+2348179803743", "Ada", group_id=group.id))
    assert isinstance(ada, WaabotContact)
    assert (ada.number, ada.name, ada.group_id, ada.channel) == ("2348179803743", "Ada", group.id, "whatsapp")
    body = env.reqs(f"{P}/contact", "POST")[0].json()
    assert {k: body[k] for k in ("number", "name", "group_id")} == {
        "number": "2348179803743", "name": "Ada", "group_id": group.id}
    bayo = env.run(env.p.create_contact("+2349048988056"))
    assert bayo.group_id is None and bayo.name is None
    assert [c.id for c in env.run(env.p.list_contacts())] == [ada.id, bayo.id]
    env.run(env.p.list_contacts(all_bots=True))
    assert "type=all" in env.reqs(f"{P}/contact", "GET")[-1].query
    moved = env.run(env.p.update_contact(bayo.id, name="Bayo", group_id=group.id))
    assert (moved.name, moved.group_id, moved.number) == ("Bayo", group.id, "2349048988056")
    assert env.run(env.p.get_contact(bayo.id)) == moved
    # deleting the group keeps its contacts, outside any group [INF]
    env.run(env.p.delete_contact_group(group.id))
    assert {c.group_id for c in env.run(env.p.list_contacts())} == {None}
    env.run(env.p.delete_contact(ada.id))
    with pytest.raises(ResourceNotFound, match="Contact not found"):
        env.run(env.p.get_contact(ada.id))
    with pytest.raises(RequestRejected, match="Contact group not found"):
        env.run(env.p.create_contact("+2348031112222", group_id=group.id))
    with pytest.raises(ValidationError, match="nothing to update"):
        env.run(env.p.update_contact(bayo.id))


def test_group_broadcast_goes_to_the_groups_contacts(env: Env) -> None:
    group = env.run(env.p.create_contact_group("Customers"))
    for number in ("+2348179803743", "+2349048988059"):
        env.run(env.p.create_contact(number, group_id=group.id))
    env.run(env.p.create_contact("+2348031112222"))  # not in the group
    made = env.run(env.p.create_broadcast([group.id], "Group hello", send_type="group"))
    assert made.send_type == "group" and made.to == (group.id,)
    assert env.reqs(f"{P}/broadcast", "POST")[0].json()["to"] == group.id
    got = env.run(env.p.get_broadcast(made.id))
    assert (got.sent, got.failed, got.status) == (("2348179803743",), ("2349048988059",), "completed")
    with pytest.raises(RequestRejected, match="Contact group not found"):
        env.run(env.p.create_broadcast(["64ac311eee05a1a2c27fbdb5"], "x", send_type="group"))
    empty = env.run(env.p.create_contact_group("Empty"))
    with pytest.raises(RequestRejected, match="no contacts"):
        env.run(env.p.create_broadcast([empty.id], "x", send_type="group"))


def test_neutral_contact_list_is_a_group_with_its_contacts(env: Env) -> None:
    assert env.p.capabilities.contact_lists
    made = env.run(env.p.create_contact_list(ContactList(name="VIP", description="best"),
                                             ["+2348179803743", "+2349048988056"]))
    assert (made.name, made.size, made.description, made.provider) == ("VIP", 2, "best", "broadcast")
    members = [c for c in env.run(env.p.list_contacts()) if c.group_id == made.id]
    assert sorted(c.number for c in members) == ["2348179803743", "2349048988056"]
    # a bad number is refused before anything is created
    with pytest.raises(InvalidPhoneNumber):
        env.run(env.p.create_contact_list(ContactList(name="Bad"), ["+2348179803743", "12"]))
    assert [g.title for g in env.run(env.p.list_contact_groups())] == ["VIP"]


def test_failed_contact_list_leaves_nothing_behind() -> None:
    """The vendor creates the second contact but its answer is lost: the group, the contact made
    before and the one whose answer was lost are all deleted again (real HTTP to the emulator;
    only that one answer is replaced)."""
    app = create_app(delivery_delay=0.0)
    server = LiveServer(app).start()
    state = vendor_state(app)
    p = provider(server.url)
    posts: list[str] = []
    try:
        with httpx.Client(timeout=10) as client:
            def answer(request: httpx.Request) -> httpx.Response:
                response = client.send(request)
                response.read()
                if request.method == "POST" and request.url.path == f"{P}/contact":
                    posts.append(request.url.path)  # answered 204 No Content, as documented
                    if len(posts) == 2:
                        return httpx.Response(500, json={"status": False, "message": "gateway timeout"},
                                              request=request)
                return response

            with pytest.raises(ProviderError, match="gateway timeout"):
                run_with_responses(p.create_contact_list(
                    ContactList(name="Half"), ["+2348179803743", "+2349048988056", "+2348031112222"]),
                    itertools.repeat(answer))
        assert len(posts) == 2  # the third contact was never attempted
        assert state.contacts == {} and state.groups == {}
    finally:
        server.stop()


# ---------------------------------------------------------------- message log
def test_message_log_pages_and_entries(env: Env) -> None:
    env.run(env.p.create_broadcast(["+2348179803743", "+2349048988059", "+2348031112222"], "Logged"))
    entries = env.walk(env.p.message_log(limit=2))
    assert len(entries) == 3 and all(isinstance(e, WaabotMessageLog) for e in entries)
    queries = [r.query for r in env.reqs(f"{P}/message-log", "GET")]
    assert ["page=1" in q and "limit=2" in q for q in queries] == [True, False]
    assert "page=2" in queries[1]
    by_number = {e.get("to"): e.get("status") for e in entries}
    assert by_number == {"2348179803743": "sent", "2349048988059": "failed", "2348031112222": "sent"}
    one = env.run(env.p.get_message_log(entries[0].id))
    assert one.id == entries[0].id and one.get("message") == "Logged"
    with pytest.raises(ResourceNotFound):
        env.run(env.p.get_message_log("64ac311eee05a1a2c27fbdb5"))
    assert env.walk(env.p.message_log(limit=3, all_bots=True))  # one full page, then an empty one
    assert "type=all" in env.reqs(f"{P}/message-log", "GET")[-1].query
    with pytest.raises(ValidationError, match="limit"):
        env.p.message_log(limit=0)


def test_message_log_answers_are_read_strictly() -> None:
    p = provider("https://api.waabot.com")
    paged = p.message_log(limit=10)
    req = paged.first
    enveloped = httpx.Response(200, json={"status": True, "message": "ok", "data": [{"_id": "a1"}]}, request=req)
    assert [e.id for e in paged.parse(req, enveloped).items] == ["a1"]
    bare = httpx.Response(200, json=[{"_id": "a1", "to": "234"}], request=req)
    page = paged.parse(req, bare)
    assert page.next_request is None and page.items[0].get("to") == "234"
    for body in ({"status": True, "data": {"_id": "a1"}}, "text", [{"to": "234"}], [["a1"]]):
        with pytest.raises(MalformedResponse, match=r"\[broadcast\]"):
            paged.parse(req, httpx.Response(200, json=body, request=req))
    with pytest.raises(RequestRejected, match="nope"):
        paged.parse(req, httpx.Response(200, json={"status": False, "message": "nope"}, request=req))


def test_a_server_ignoring_page_does_not_loop_forever() -> None:
    p = provider("https://api.waabot.com", {**SANDBOX_CREDENTIALS, "account_token": "tok"})
    same = [{"_id": "a1"}, {"_id": "a2"}]
    with pytest.raises(MalformedResponse, match="page 2 repeats"):
        run_with_responses(Env.collect(p.message_log(limit=2)), itertools.repeat(httpx.Response(200, json=same)))


# ---------------------------------------------------------------- logout
def test_logout_ends_the_session_and_the_next_call_logs_in_again(env: Env) -> None:
    assert env.run(env.p.logout()) is False  # no session yet: no request
    assert env.ctl.requests(f"{P}/sessions", "DELETE") == []
    env.run(env.p.list_contact_groups())  # logs in
    assert len(env.state.tokens) == 1
    assert env.run(env.p.logout()) is True
    [req] = env.ctl.requests(f"{P}/sessions", "DELETE")
    assert req.headers["authorization"].startswith("Bearer ") and req.headers.get("x-refresh")
    assert env.state.tokens == {} and env.state.refresh_tokens == {}
    env.run(env.p.list_contact_groups())  # a new login
    assert len(env.ctl.requests(f"{P}/sessions", "POST")) == 2


def test_logout_with_a_configured_token_cannot_log_in_again(env: Env) -> None:
    token = env.state.issue_token(SANDBOX_CREDENTIALS["email"])
    p = provider(env.url, {"session_id": SANDBOX_CREDENTIALS["session_id"],
                           "access_token": SANDBOX_CREDENTIALS["access_token"], "account_token": token})
    assert env.run(p.logout()) is True
    with pytest.raises(AuthFailed):
        env.run(p.list_contacts())
    # an already-ended session: 401 from the vendor, reported as no session
    q = provider(env.url, {"session_id": SANDBOX_CREDENTIALS["session_id"],
                           "access_token": SANDBOX_CREDENTIALS["access_token"], "account_token": token})
    assert env.run(q.logout()) is False


def test_logout_answer_is_read_strictly() -> None:
    p = provider("https://api.waabot.com", {**SANDBOX_CREDENTIALS, "account_token": "tok"})
    with pytest.raises(RequestRejected, match="cannot"):
        run_with_responses(p.logout(), [httpx.Response(200, json={"status": False, "message": "cannot"})])
    with pytest.raises(MalformedResponse):
        run_with_responses(p.logout(), [httpx.Response(200, text="<html>")])
    assert run_with_responses(p.logout(), [httpx.Response(204)]) is True
    assert run_with_responses(p.logout(), []) is False  # tokens forgotten: nothing to end


# ---------------------------------------------------------------- contract: documented records
def test_documented_records_parse_and_the_emulator_answers_them(env: Env) -> None:
    contact = parse_contact(DOC_CONTACT)
    assert (contact.id, contact.number, contact.group_id, contact.transaction) == (
        DOC_CONTACT["_id"], "2348179803743", DOC_GROUP["_id"], {"survey_id": None, "survey_sort_id": None})
    assert contact.raw() == {**DOC_CONTACT, "createdAt": None, "updatedAt": None}
    group = parse_contact_group(DOC_GROUP)
    assert (group.id, group.title, group.is_default) == (DOC_GROUP["_id"], "VIP", False)
    made = env.run(env.p.create_contact_group("VIP"))
    assert set(DOC_GROUP) <= set(made.raw())
    person = env.run(env.p.create_contact("+2348179803743", "Ada", group_id=made.id))
    assert set(DOC_CONTACT) <= set(person.raw())
    created = env.ctl.requests(f"{P}/contact_groups", "POST")
    assert created and env.state.groups[made.id]["title"] == "VIP"


@pytest.mark.parametrize(("parser", "data", "field"), [
    (parse_contact, {**DOC_CONTACT, "_id": ""}, "_id"),
    (parse_contact, {k: v for k, v in DOC_CONTACT.items() if k != "number"}, "number"),
    (parse_contact, {**DOC_CONTACT, "number": 2348179803743}, "number"),
    (parse_contact, {**DOC_CONTACT, "transaction": "none"}, "transaction"),
    (parse_contact_group, {k: v for k, v in DOC_GROUP.items() if k != "title"}, "title"),
    (parse_contact_group, {**DOC_GROUP, "is_default": "perhaps"}, "is_default"),
    (parse_message_log, {"to": "234"}, "_id"),
    (parse_message_log, {"_id": "a", "createdAt": "yesterday"}, "createdAt"),
])
def test_a_bad_record_is_malformed_naming_the_field(parser: Callable[[object, str], Any],
                                                    data: dict[str, Any], field: str) -> None:
    with pytest.raises(MalformedResponse, match=repr(field)):
        parser(data, "GET /contact: item 0")


def test_adapter_names_itself_and_refuses_a_missing_record() -> None:
    p = provider("https://api.waabot.com", {**SANDBOX_CREDENTIALS, "account_token": "tok"})
    for body in ({"status": True, "message": "ok"}, {"status": True, "data": [DOC_GROUP]}):
        with pytest.raises(MalformedResponse, match=r"\[broadcast\].*ContactGroup"):
            run_with_responses(p.create_contact_group("VIP"), [httpx.Response(200, json=body)])
    with pytest.raises(MalformedResponse, match="expected a list"):
        run_with_responses(p.list_contacts(), [httpx.Response(200, json={"status": True, "data": DOC_CONTACT})])


# ---------------------------------------------------------------- properties of the pure parsers
_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
                     max_leaves=6)
_keys = st.sampled_from(["_id", "name", "number", "client_id", "group_id", "channel", "transaction",
                         "title", "is_default", "survey_id", "createdAt", "updatedAt", "to", "x"])


@quick
@given(st.dictionaries(_keys, _json) | _json, st.sampled_from([parse_contact, parse_contact_group, parse_message_log]))
def test_parsers_return_a_record_or_raise_malformed(data: Any, parser: Callable[[object, str], Any]) -> None:
    try:
        record = parser(data, "here")
    except MalformedResponse as exc:
        assert "here" in str(exc)
        return
    assert isinstance(data, dict) and isinstance(record.id, str) and record.id == data["_id"]


_object_id = st.from_regex(r"[0-9a-f]{24}", fullmatch=True)


@quick
@given(_object_id, st.from_regex(r"[1-9][0-9]{6,14}", fullmatch=True), st.none() | st.text(max_size=20),
       st.none() | _object_id)
def test_valid_contacts_round_trip(cid: str, number: str, name: str | None, group_id: str | None) -> None:
    data = {**DOC_CONTACT, "_id": cid, "number": number, "name": name, "group_id": group_id,
            "createdAt": "2023-07-10T18:40:29.784Z", "__v": 0}
    contact = parse_contact(data)
    assert (contact.id, contact.number, contact.name, contact.group_id) == (cid, number, name, group_id)
    assert contact.created_at is not None and contact.created_at.tzinfo is not None
    assert parse_contact(contact.raw()) == contact
