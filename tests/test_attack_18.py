"""Attack round 18: today's changes (plugin scope, OpenTelemetry links, decimal and formula
phone input, opt-out scope keys, limits, broadcast read-back, squad payment events)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import smsgate.plugins
from reference_provider import API_KEY, EchoPlugin
from smsgate import Gateway, Status, _phonefast, hookimpl
from smsgate.errors import OptedOut, ValidationError
from smsgate.keywords import keyword_scope
from smsgate.models import DeliveryReport, MessageRecord, utcnow
from smsgate.phone import PhoneNormalizer, _normalize_slow, normalize
from smsgate.plugins import PluginManager
from smsgate.testing import LiveServer
from test_attack_17 import echo_gateway  # noqa: F401  (a fixture)


# ----------------------------------------------------------------------- a decimal point in a written number
@pytest.mark.parametrize(("raw", "region", "meant"), [
    ("030 1234.00", "DE", "+4930123400"),          # was +49301234: another subscriber
    ("+49 30 1234.00", None, "+4930123400"),       # was +49301234
    ("+43 664 1234.000", None, "+436641234000"),   # was +436641234
    ("0664-1234.000", "AT", "+436641234000"),
])
def test_a_number_grouped_by_hand_is_not_read_as_a_decimal(raw: str, region: str | None, meant: str) -> None:
    """A float never has a space or a dash in it (pandas writes ``4366412345678.0``): a number
    grouped by hand whose last group, after a dot, is zeros is that number, not its digits
    before the dot, which in a country whose numbers vary in length is somebody else's."""
    try:
        got = normalize(raw, region)
    except ValidationError:
        return  # refused is fine: never somebody else
    assert got == meant


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["DE", "AT"]), st.text("0123456789", min_size=4, max_size=9),
       st.lists(st.integers(1, 8), min_size=1, max_size=3), st.sampled_from([" ", "-"]),
       st.integers(1, 4))
def test_hand_grouped_numbers_ending_in_dot_zeros_are_read_as_written(region: str, body: str, cuts: list[int],
                                                                      sep: str, zeros: int) -> None:
    """Property: with a separator before the point, the text is a grouped number; read (if at
    all) as its digits run together, fast path and slow alike."""
    digits = "0" + body
    parts, rest = [], digits
    for cut in cuts:
        if len(rest) > cut:
            parts.append(rest[:cut])
            rest = rest[cut:]
    parts.append(rest)
    if len(parts) < 2:
        return
    raw = sep.join(parts) + "." + "0" * zeros
    whole = digits + "0" * zeros
    expected = _normalize_slow(whole, region)[0]
    assert _normalize_slow(raw, region)[0] in (expected, None), raw
    fast = _phonefast.normalize_fast(raw, region)
    assert fast in (None, _normalize_slow(raw, region)[0]), raw


def test_floats_are_still_read_as_their_integer() -> None:
    assert normalize("4366412345678.0") == "+4366412345678"
    assert normalize(" +436641234567.00 ") == "+436641234567"
    assert normalize("8031234567.0", "NG") == "+2348031234567"


# ----------------------------------------------------------------------- opt-out scope of a number in brackets
# (test_attack_17's gateway factory)
@pytest.mark.parametrize("scope", ["(0802) 000 0000", "(+234) 802 000 0000", "(0802)-000-0000"])
def test_an_optout_of_the_senders_number_written_with_its_area_code_in_brackets_stops_it(
    echo_gateway: Callable[..., Gateway], scope: str  # noqa: F811  (the fixture)
) -> None:
    """``(0802) 000 0000`` is the number ``+2348020000000`` (the phone rule reads it so), but a
    scope starting with a bracket was keyed as an alphanumeric sender ID, ``(0802) 000 0000``,
    which no message from that number is checked against: the person kept getting them."""
    acme = echo_gateway(sender="+2348020000000").tenant("acme")
    acme.optouts.add("08031234567", scope=scope)
    assert acme.optouts.check("08031234567", sender="+2348020000000")
    with pytest.raises(OptedOut):
        acme.send("08031234567", "hello")
    assert acme.optouts.remove("08031234567", scope="+2348020000000")


def test_a_stop_to_the_senders_number_in_brackets_stops_that_sender() -> None:
    senders = ["+2348020000000"]
    normalize = PhoneNormalizer("NG").normalize
    assert keyword_scope(True, {}, "(0802) 000 0000", normalize, senders) == "2348020000000"
    assert keyword_scope(True, {"(12345)": "+2348020000000"}, "12345", normalize, senders) == "2348020000000"


def test_an_optout_of_the_senders_number_in_fullwidth_digits_stops_it(
        echo_gateway: Callable[..., Gateway]) -> None:  # noqa: F811  (the fixture)
    """optout_scope reads fullwidth digits as digits (NFKC), but the number rule of scopes asked
    whether the text *before* NFKC was a number: 08020000000 in fullwidth digits was keyed ``08020000000``,
    not as the sender ``+2348020000000`` is."""
    fullwidth = "08020000000".translate({ord("0") + i: 0xFF10 + i for i in range(10)})
    acme = echo_gateway(sender="+2348020000000").tenant("acme")
    acme.optouts.add("08031234567", scope=fullwidth)
    assert acme.optouts.check("08031234567", sender="+2348020000000")
    with pytest.raises(OptedOut):
        acme.send("08031234567", "hello")
    normalize = PhoneNormalizer("NG").normalize
    assert keyword_scope(True, {}, fullwidth, normalize, ["+2348020000000"]) == "2348020000000"


# ----------------------------------------------------------------------- a gateway's plugins before its first provider
class StatusCounter:
    def __init__(self) -> None:
        self.changed: list[tuple[str, Status]] = []

    @hookimpl
    def smsgate_on_status(self, tenant: str, message_id: str, report: DeliveryReport) -> None:
        self.changed.append((message_id, report.status))


def test_a_process_wide_hook_is_told_of_what_a_fresh_gateway_recovers(monkeypatch: pytest.MonkeyPatch,
                                                                      tmp_path: Path) -> None:
    """A gateway's own manager read the process-wide one's plugins when it first built a
    provider (or had a hook registered on it): a fresh gateway whose first work was
    ``recover_queued`` (a restarted process's first step) ran its status hooks without them,
    so a hook registered on :func:`~smsgate.plugins.default_plugins` (for every gateway built
    after it, as documented) was never told of the messages it marked ``unknown``."""
    pm = PluginManager(load_entry_points=False)
    pm.register(EchoPlugin())
    everywhere = StatusCounter()
    pm.register(everywhere)
    monkeypatch.setattr(smsgate.plugins, "_default", pm)
    cfg = {"store": f"sqlite:///{tmp_path / 's.db'}", "tenants": {"acme": {"default_region": "NG", "providers": {
        "one": {"plugin": "echo", "base_url": "http://127.0.0.1:9", "credentials": {"api_key": API_KEY}}}}}}
    with Gateway(cfg) as crashed:  # what a process killed mid-send leaves: a message logged queued
        old = utcnow() - timedelta(hours=1)
        crashed.store.insert_messages([MessageRecord(tenant="acme", message_id="msg_left_queued", to="+2348031234567",
                                                     status=Status.QUEUED, provider="one", created_at=old,
                                                     updated_at=old)])
    with Gateway(cfg) as restarted:
        assert restarted.tenant("acme").recover_queued(older_than=0) == ["msg_left_queued"]
    assert everywhere.changed == [("msg_left_queued", Status.UNKNOWN)]


# ----------------------------------------------------------------------- one number, any form: one scope key
_FORMS: list[Callable[[str], str]] = [
    lambda n: "+234" + n, lambda n: "0" + n, lambda n: "234" + n, lambda n: "00234" + n,
    lambda n: f"+234 {n[:3]} {n[3:6]} {n[6:]}", lambda n: f"0{n[:3]}-{n[3:6]}-{n[6:]}",
    lambda n: f"(0{n[:3]}) {n[3:6]} {n[6:]}", lambda n: f"(+234) {n[:3]} {n[3:]}",
    lambda n: f"+234 (0) {n[:3]} {n[3:]}", lambda n: f"+234.{n[:3]}.{n[3:6]}.{n[6:]}",
    lambda n: ("0" + n).translate({ord("0") + i: 0xFF10 + i for i in range(10)}),
]


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(["802", "803", "805", "703", "906"]), st.text("0123456789", min_size=7, max_size=7),
       st.sampled_from(range(len(_FORMS))), st.sampled_from(range(len(_FORMS))))
def test_every_form_of_the_senders_number_is_one_scope(prefix: str, rest: str, configured: int, written: int) -> None:
    """Property: with the sender configured in one form, the number written in any other form
    (as ``optouts.add(scope=...)``, ``check(sender=...)``, a message's sender or a reply's ``to``
    gives it) keys the opt-outs of that sender, as a stop word to it does."""
    from smsgate.config import load_config
    from smsgate.core.policy import TenantPolicy

    number = prefix + rest
    sender = "+234" + number if configured == 0 else _FORMS[configured](number)
    if not (sender.removeprefix("+").isdigit() and sender.isascii()):
        sender = "+234" + number  # a configured sender is digits (sender_problem)
    cfg = load_config({"store": "memory://", "tenants": {"acme": {"default_region": "NG", "sender": sender,
                                                                  "providers": {}}}}, environ={})
    policy = TenantPolicy("acme", cfg.tenants["acme"], lambda name: None, None)  # type: ignore[arg-type,return-value]
    other = _FORMS[written](number)
    assert policy.scope_of(other) == policy.scope_of(sender)
    assert keyword_scope(True, {}, other, policy.normalize, policy.senders()) == policy.scope_of(sender)


# ----------------------------------------------------------------------- broadcast: a contact list of N numbers
def test_a_broadcast_contact_list_does_not_list_every_contact_once_per_number() -> None:
    """``POST /contact`` answers 204 as WAABOT documents, and ``create_contact`` reads the new
    contact back from ``GET /contact`` (every contact of the bot). ``create_contact_list`` never
    uses the contact it gets back, yet paid one full listing per number: N numbers, N listings of
    a growing list (a 5,000-number list, 12.5 million contact records downloaded)."""
    import httpx

    from smsgate.models import ContactList
    from smsgate.provider import ProviderSettings
    from smsgate.testing import EmulatorControl
    from smsgate.transport import SyncDriver
    from smsgate_broadcast import BroadcastProvider
    from smsgate_broadcast.emulator import SANDBOX_CREDENTIALS
    from smsgate_broadcast.emulator import create_app as broadcast_emulator

    numbers = [f"+23480312345{i:02d}" for i in range(12)]
    with LiveServer(broadcast_emulator(delivery_delay=0.0)) as server, httpx.Client(timeout=10) as client:
        p = BroadcastProvider(ProviderSettings(plugin="broadcast", base_url=server.url,
                                               credentials=SANDBOX_CREDENTIALS))
        made = SyncDriver(client).run(p.create_contact_list(ContactList(name="VIP"), numbers))
        assert made.size == len(numbers)
        members = [c for c in SyncDriver(client).run(p.list_contacts()) if c.group_id == made.id]
        assert sorted("+" + c.number for c in members) == sorted(numbers)
        created = EmulatorControl(server.url).requests("/api/v1/contact", "POST")
        listed = EmulatorControl(server.url).requests("/api/v1/contact", "GET")
    assert len([r for r in created if r.path == "/api/v1/contact"]) == len(numbers)
    assert len([r for r in listed if r.path == "/api/v1/contact"]) <= 1  # ours above, none per number
