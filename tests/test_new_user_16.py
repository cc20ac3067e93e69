"""A new user building an app on smsgate from the README and docs/ (helper newuser16): OTPs from
a FastAPI app on ``AsyncGateway``, a nightly campaign from a CSV with the CLI, delivery reports
through the webhook app, opt-outs from inbound STOP, two tenants.

Each test is a finding: it failed on main's code before its fix. Real code paths: the ``memory``
provider (its outbox is the vendor's record), real SQLite stores, the ``smsgate`` command
through typer's runner.
"""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from smsgate import Gateway
from smsgate.cli import app
from smsgate.testing import Outbox

runner = CliRunner()

ROUTED_BY_KIND = """
store = "sqlite:///{db}"

[tenants.acme]
default_region = "NG"

[tenants.acme.providers.bulk]
plugin = "memory"

[tenants.acme.providers.premium]
plugin = "memory"

[[tenants.acme.routes]]                  # marketing goes through the bulk provider only
kinds = ["marketing"]
providers = ["bulk"]

[[tenants.acme.routes]]                  # everything else (OTPs...) through the premium one
providers = ["premium"]
"""


def test_campaign_create_takes_the_campaigns_kind_for_routes_by_kind(tmp_path: Path, sms_outbox: Outbox) -> None:
    """docs/routing.md: a campaign's kind picks the routes restricted to it
    (``campaigns.create(..., kind="marketing")``), and ``smsgate send`` and ``route explain``
    take ``--kind``. ``smsgate campaign create`` (docs/campaigns.md's nightly CSV campaign) had
    no ``--kind``: a marketing campaign made with it went through the route for everything
    else (here the premium provider meant for OTPs), and with only kind-restricted routes every
    recipient was rejected ``no_route``."""
    config = tmp_path / "smsgate.toml"
    config.write_text(ROUTED_BY_KIND.format(db=tmp_path / "sms.db"))
    csv = tmp_path / "customers.csv"
    csv.write_text("phone,name\n08031234561,Ada\n08031234562,Bola\n")
    out = runner.invoke(app, ["campaign", "create", "--name", "Nightly", "--csv", str(csv), "--text", "Hi {name}",
                              "--kind", "marketing", "--json", "-c", str(config), "-t", "acme"])
    assert out.exit_code == 0, out.output
    cid = json.loads(out.stdout)["campaign_id"]
    out = runner.invoke(app, ["campaign", "run", cid, "-c", str(config), "-t", "acme"])
    assert out.exit_code == 0, out.output
    assert [m.instance for m in sms_outbox] == ["bulk", "bulk"], [m.describe() for m in sms_outbox]
    with Gateway(config) as gw:
        assert gw.tenant("acme").campaigns.get(cid).settings.kind == "marketing"


def test_campaign_create_names_the_kind_flag_of_a_bad_kind(tmp_path: Path, sms_outbox: Outbox) -> None:
    config = tmp_path / "smsgate.toml"
    config.write_text(ROUTED_BY_KIND.format(db=tmp_path / "sms.db"))
    csv = tmp_path / "customers.csv"
    csv.write_text("phone\n08031234561\n")
    out = runner.invoke(app, ["campaign", "create", "--name", "Nightly", "--csv", str(csv), "--text", "Hi",
                              "--kind", "Marketing", "-c", str(config), "-t", "acme"])
    assert out.exit_code == 2, out.output
    assert "field '--kind'" in out.output and "lowercase" in out.output, out.output
    with Gateway(config) as gw:
        assert gw.tenant("acme").campaigns.list() == []


def test_send_and_route_explain_name_the_kind_flag_of_a_bad_kind(tmp_path: Path, sms_outbox: Outbox) -> None:
    """``smsgate send N TEXT --kind OTP`` and ``route explain N --kind OTP`` said ``field 'kind'``
    (the library's argument), where the other flags' errors name the flag as typed."""
    config = tmp_path / "smsgate.toml"
    config.write_text(ROUTED_BY_KIND.format(db=tmp_path / "sms.db"))
    for args in (["send", "08031234561", "Your code is 123456"], ["route", "explain", "08031234561"]):
        out = runner.invoke(app, [*args, "--kind", "OTP", "-c", str(config), "-t", "acme"])
        assert out.exit_code == 2 and "field '--kind'" in out.output and "lowercase" in out.output, out.output
    sms_outbox.assert_not_sent()


def test_a_campaign_without_a_kind_under_routes_by_kind_says_why_it_has_no_route(
        tmp_path: Path, sms_outbox: Outbox) -> None:
    """With only kind-restricted routes, a campaign made without a kind skipped every row as
    ``no_route: no route for +2348031234561``: nothing said that the rows had a route for a kind
    the campaign did not give, nor how to give one. ``send`` names the kind of a message it has
    no route for (``NoRoute``); the preview now says the campaign has none, and which kinds the
    routes carry, or the kind it has."""
    config = tmp_path / "smsgate.toml"
    only_marketing = ROUTED_BY_KIND[: ROUTED_BY_KIND.rindex("[[tenants.acme.routes]]")]  # no route for the rest
    config.write_text(only_marketing.format(db=tmp_path / "sms.db"))
    with Gateway(config) as gw:
        acme = gw.tenant("acme")
        preview = acme.campaigns.create("Nightly", text="Hi", audience=["08031234561"]).preview()
        assert preview.skipped == {"no_route": 1}, preview.skipped
        detail = preview.errors[0].detail
        assert "no route for +2348031234561" in detail and "no kind" in detail and "marketing" in detail, detail
        assert "kind=/--kind" in detail, detail
        preview = acme.campaigns.create("Alerts", text="Hi", audience=["08031234561"], kind="alert").preview()
        assert preview.errors[0].detail == "no route for +2348031234561 (kind 'alert')", preview.errors[0].detail
        preview = acme.campaigns.create("Sale", text="Hi", audience=["08031234561"], kind="marketing").preview()
        assert preview.skipped == {} and preview.by_provider == {"bulk": 1}, preview
    sms_outbox.assert_not_sent()


MEMORY = {"store": "memory://", "tenants": {"shop": {"default_region": "NG", "providers": {"m": {"plugin": "memory"}}}}}


def test_literal_braces_written_as_the_error_says_reach_the_phone_as_one_brace(sms_outbox: Outbox) -> None:
    """``send(N, "Reply {YES} to confirm")`` (no variables) is refused: ``missing variable(s)
    'YES'; no variables were given: pass variables, or write {{ and }} for literal braces``.
    Doing as told, ``"Reply {{YES}} to confirm"`` was sent as written, double braces and all,
    onto the recipient's phone: a text without a placeholder skipped rendering, so ``{{`` was
    only an escape in a text that also had a placeholder (or any variables). A stray brace in a
    text without placeholders (``:-{``, JSON) is still sent as written."""
    from smsgate.errors import TemplateError

    with Gateway(MEMORY) as gw:
        shop = gw.tenant("shop")
        try:
            shop.send("08031234561", "Reply {YES} to confirm")
            raise AssertionError("sent with a placeholder and no variables")
        except TemplateError as exc:
            assert "write {{ and }} for literal braces" in exc.reason, exc.reason
        shop.send("08031234561", "Reply {{YES}} to confirm")
        shop.send_many(["08031234562"], "Reply {{YES}} to confirm")
        shop.send("08031234563", "Smile :-} {")
    assert [m.text for m in sms_outbox] == ["Reply {YES} to confirm", "Reply {YES} to confirm", "Smile :-} {"]


def test_a_campaign_sends_the_text_its_preview_shows(sms_outbox: Outbox) -> None:
    """A campaign's text is a template (a stray brace is refused when it is created) and its
    preview rendered ``{{`` as ``{``: ``"Camp {{this}}"`` to a list of numbers showed the sample
    ``Camp {this}``, then every recipient got ``Camp {{this}}`` (a row without variables was
    sent as written). From a CSV with a column the same text was sent ``Camp {this}``."""
    with Gateway(MEMORY) as gw:
        camp = gw.tenant("shop").campaigns.create("c", text="Camp {{this}}", audience=["08031234564"])
        assert [s["text"] for s in camp.preview().samples] == ["Camp {this}"]
        camp.run()
    assert [m.text for m in sms_outbox] == ["Camp {this}"]


TWO_TENANTS = """
store = "sqlite:///{db}"

[tenants.acme]
default_region = "NG"
[tenants.acme.providers.memory]
plugin = "memory"

[tenants.globex]
default_region = "ZA"
[tenants.globex.providers.memory]
plugin = "memory"
"""


def test_a_command_given_an_id_of_one_tenant_of_several_says_whose_it_is(tmp_path: Path, sms_outbox: Outbox) -> None:
    """With two tenants, ``smsgate campaign run cmp_...`` (the id ``campaign create`` just printed)
    and ``smsgate status msg_...`` said only ``--tenant is required (configured tenants: acme,
    globex)``: the user had to guess, or try each, which tenant holds an id that can only be one
    tenant's. The error now says whose it is."""
    config = tmp_path / "smsgate.toml"
    config.write_text(TWO_TENANTS.format(db=tmp_path / "sms.db"))
    with Gateway(config) as gw:
        globex = gw.tenant("globex")
        cid = globex.campaigns.create("Nightly", text="Hi", audience=["0821234567"]).campaign_id
        mid = globex.send("0821234568", "Your code is 123456").message_id
    for args, which in ((["campaign", "run", cid], f"campaign {cid}"), (["campaign", "status", cid], f"campaign {cid}"),
                        (["status", mid], f"message {mid}")):
        out = runner.invoke(app, [*args, "-c", str(config)])
        assert out.exit_code == 2, out.output
        assert "--tenant is required" in out.output and f"{which} is tenant globex's: add --tenant globex" \
            in out.output, out.output
    out = runner.invoke(app, ["campaign", "status", "cmp_nope", "-c", str(config)])  # no one's: no hint
    assert out.exit_code == 2 and "is tenant" not in out.output, out.output
    assert len(sms_outbox) == 1  # the one send above: the commands refused sent nothing
