"""What a new user trips over, found by following the docs from a fresh clone (each test
drives the real code path: the Squad emulator over loopback HTTP, a real SQLite store)."""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from services import pg_url  # noqa: F401  (a fixture)
from smsgate import Gateway, OptedOut
from smsgate.campaigns import CsvAudience
from smsgate.cli import app
from smsgate.config import Settings, TenantConfig, sqlite_beside
from smsgate.errors import InvalidPhoneNumber, UnknownProvider, UnknownTenant, ValidationError
from smsgate.tenants import new_key
from smsgate.testing import LiveServer
from smsgate.webhooks import webhook_app
from smsgate_squad.emulator import SANDBOX_SECRET_KEY
from test_docs_examples import ROOT, code_blocks

runner = CliRunner()


def test_a_national_number_without_default_region_says_how_to_fix_it(sms_emulator: Callable[..., Any]) -> None:
    squad = sms_emulator("squad")
    with squad.gateway() as gw:  # a tenant without default_region
        with pytest.raises(InvalidPhoneNumber) as exc:
            gw.tenant("test").send("08031234567", "hello")
    message = str(exc.value)
    assert "08031234567" in message and "default_region" in message and "international form" in message
    assert squad.requests(method="POST") == []  # nothing reached the vendor


def test_stats_keep_costs_in_different_currencies_apart(tmp_path: Path,
                                                         sms_emulator: Callable[..., Any]) -> None:
    """Squad charges NGN and Colony credits: their sum is no cost at all. ``Stats.costs`` keeps
    one total per currency, and ``cost`` / ``currency`` are set only when there is one."""
    squad, colony = sms_emulator("squad"), sms_emulator("colony")
    settings = Settings(store=f"sqlite:///{tmp_path / 'sms.db'}", tenants={"acme": TenantConfig(
        default_region="NG", providers={"squad": squad.provider_settings(), "colony": colony.provider_settings()})})
    with Gateway(settings) as gw:
        acme = gw.tenant("acme")
        by_squad = [acme.send(f"0803123456{i}", "hello", provider="squad") for i in range(2)]
        by_colony = acme.send("+27821234567", "hello", provider="colony")
        ngn = sum((r.cost for r in by_squad if r.cost is not None), Decimal(0))
        assert {r.currency for r in by_squad} == {"NGN"} and ngn > 0
        assert by_colony.currency == "credits" and by_colony.cost
        everything = acme.stats()
        assert everything.costs == {"NGN": ngn, "credits": by_colony.cost}
        assert (everything.cost, everything.currency) == (None, None)  # was NGN + credits added up
        only_squad = acme.stats(provider="squad")
        assert (only_squad.cost, only_squad.currency, only_squad.costs) == (ngn, "NGN", {"NGN": ngn})
    assert len(squad.processed("/sms/send/instant")) == 2 and len(colony.processed(method="POST")) >= 1


def test_the_sandbox_colony_block_lets_a_relay_post_a_stop_reply(sms_emulator: Callable[..., Any]) -> None:
    """docs/inbound.md: Colony replies reach the webhook app through a relay authenticated by the
    ``webhook_token`` credential. The block ``smsgate sandbox`` prints for colony (its sandbox
    account) carries one, so a reply read from the emulator and posted with ``?token=`` is applied
    (it was a 503 "webhook not configured" with the printed block)."""
    colony = sms_emulator("colony")
    token = colony.provider_settings().credentials["webhook_token"].get_secret_value()
    seeded = httpx.post(f"{colony.url}/_colony/inbound", json={"originator": "27821234567", "text": "STOP"})
    assert seeded.status_code in (200, 201), seeded.text
    with colony.gateway(region="ZA") as gw, LiveServer(webhook_app(gw)) as hooks:
        answer = httpx.post(f"{hooks.url}/test/colony?token={token}", json=seeded.json()["message"])
        assert answer.status_code == 200, answer.text
        assert answer.json()["inbound"] == 1
        assert gw.tenant("test").optouts.check("+27821234567")
        refused = httpx.post(f"{hooks.url}/test/colony?token=nope", json=seeded.json()["message"])
        assert refused.status_code == 401


def test_the_tenants_page_example_runs_against_the_emulator(tmp_path: Path, pg_url: str,  # noqa: F811
                                                            sms_emulator: Callable[..., Any],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/tenants.md's first example, as written, with three stand-ins: a PostgreSQL store of
    the test server for the app's, the Squad emulator for the vendor (``base_url``), and its
    sandbox key for both live keys (the emulator accepts only that one). It stopped at
    ``tenants.add`` with a ConfigError: Squad needs a sender, and the example gave none."""
    (block,) = [b for b in code_blocks(ROOT / "docs" / "tenants.md") if b.lang == "python"][:1]
    squad = sms_emulator("squad")
    key = squad.provider_settings().credentials["secret_key"].get_secret_value()
    source = block.source
    for old, new in (('"postgresql://app@db/sms"', repr(pg_url)), ('"sk_live_new..."', repr(key)),
                     ('"sk_live_..."', repr(key)), ('{"plugin": "squad", ', f'{{"plugin": "squad", "base_url": {squad.url!r}, ')):
        assert source.count(old) == 1, old
        source = source.replace(old, new)
    (tmp_path / "smsgate.toml").write_text(f'store = "sqlite:///{tmp_path / "log.db"}"\n')
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SMSGATE_TENANT_KEY", new_key())
    with pytest.raises(UnknownTenant, match="unknown tenant 'acme'"):  # the example's last line
        exec(compile(source, block.where, "exec"), {})
    sent = [m["phone_number"] for r in squad.processed("/sms/send/instant") for m in r.json()["messages"]]
    assert sent == ["08012345678", "08012345678"]  # "hello" and "again", each once


def test_campaign_run_says_why_its_messages_failed(tmp_path: Path, sms_emulator: Callable[..., Any]) -> None:
    """A wrong key fails every message of a campaign alike; ``smsgate campaign run`` said only
    "completed; sent 0, failed 3". It now names the commonest errors and how to list them."""
    squad = sms_emulator("squad")
    cfg = tmp_path / "smsgate.toml"
    cfg.write_text(f'store = "sqlite:///{tmp_path / "log.db"}"\n[tenants.acme]\ndefault_region = "NG"\n'
                   f'[tenants.acme.providers.squad]\nplugin = "squad"\nbase_url = "{squad.url}"\n'
                   'sender = "ACME"\ncredentials = { secret_key = "sk_test_wrong" }\n')
    (tmp_path / "people.csv").write_text("phone,name\n08031234561,Ada\n08031234562,Bayo\n08031234563,Chidi\n")
    created = runner.invoke(app, ["campaign", "create", "--name", "Sale", "--csv", str(tmp_path / "people.csv"),
                                  "--text", "Hi {name}", "-c", str(cfg)])
    assert created.exit_code == 0, created.output
    (cid,) = set(re.findall(r"cmp_[0-9a-z]+", created.output))
    ran = runner.invoke(app, ["campaign", "run", cid, "-c", str(cfg)])
    assert ran.exit_code == 0, ran.output
    out = " ".join(ran.output.split())  # as printed, whatever the terminal's width
    assert "failed 3" in out
    assert "why they failed" in out and "3 x [squad] POST /sms/send/instant: authentication failed" in out
    assert f"smsgate messages --campaign {cid} --status failed" in out
    assert "sk_test_wrong" not in ran.output
    sends = squad.requests("/sms/send/instant")
    assert sends and {r.status for r in sends} == {403}  # the vendor refused them all


def test_a_csv_whose_phone_column_is_capitalised_says_which_column(tmp_path: Path,
                                                                   sms_emulator: Callable[..., Any]) -> None:
    """Spreadsheets export "Phone,Name": the error named the missing 'phone' column only; it now
    points at 'Phone' and the option (or CLI flag) that selects it, and nothing is created."""
    people = tmp_path / "people.csv"
    people.write_text("Phone,Name\n08031234561,Ada\n")
    squad = sms_emulator("squad")
    with squad.gateway(region="NG") as gw:
        acme = gw.tenant("test")
        with pytest.raises(ValidationError) as exc:
            acme.campaigns.create("Sale", text="Hi {Name}", audience=CsvAudience(people))
        assert "did you mean 'Phone'? CsvAudience(..., phone='Phone')" in str(exc.value)
        assert acme.campaigns.list() == []
        camp = acme.campaigns.create("Sale", text="Hi {Name}", audience=CsvAudience(people, phone="Phone"))
        assert camp.preview().recipients == 1
    cfg = tmp_path / "smsgate.toml"
    cfg.write_text(f'store = "sqlite:///{tmp_path / "log.db"}"\n[tenants.acme]\ndefault_region = "NG"\n'
                   f'[tenants.acme.providers.squad]\nplugin = "squad"\nbase_url = "{squad.url}"\n'
                   'sender = "ACME"\ncredentials = { secret_key = "sk" }\n')
    out = runner.invoke(app, ["campaign", "create", "--name", "Sale", "--csv", str(people), "--text", "Hi {Name}",
                              "-c", str(cfg)])
    assert out.exit_code == 2
    assert "did you mean 'Phone'? --phone-column" in " ".join(out.output.split())


def test_a_relative_sqlite_store_is_beside_its_configuration_file(tmp_path: Path, sms_emulator: Callable[..., Any],
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """``store = "sqlite:///smsgate.db"`` (every example's) was opened in the current directory:
    the same configuration used from another one (cron, a worker, ``-c path``) opened a new, empty
    log without the opt-outs and idempotency keys, and texted a number that had replied STOP. A
    relative SQLite path in a configuration file is now read from the file's folder."""
    squad = sms_emulator("squad")
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    project.mkdir()
    elsewhere.mkdir()
    cfg = project / "smsgate.toml"
    cfg.write_text(f'store = "sqlite:///smsgate.db"\n[tenants.acme]\ndefault_region = "NG"\n'
                   f'[tenants.acme.providers.squad]\nplugin = "squad"\nbase_url = "{squad.url}"\n'
                   f'sender = "ACME"\ncredentials = {{ secret_key = "{SANDBOX_SECRET_KEY}" }}\n')
    monkeypatch.chdir(project)
    added = runner.invoke(app, ["optout", "add", "08031234567", "--reason", "STOP"])
    assert added.exit_code == 0, added.output
    monkeypatch.chdir(elsewhere)
    with Gateway(str(cfg)) as gw:
        acme = gw.tenant("acme")
        with pytest.raises(OptedOut):
            acme.send("08031234567", "Sale starts today")
        first = acme.send("08031234568", "Your code is 1", idempotency_key="otp-1")
    monkeypatch.chdir(project)
    with Gateway("smsgate.toml") as gw:  # the same log, read from the project's folder
        again = gw.tenant("acme").send("08031234568", "Your code is 1", idempotency_key="otp-1")
        assert again.message_id == first.message_id
    assert list(elsewhere.iterdir()) == []  # no stray database
    sent = [m["phone_number"] for r in squad.processed("/sms/send/instant") for m in r.json()["messages"]]
    assert sent == ["08031234568"]  # the opted-out number never reached the vendor; the code went once


@given(name=st.text(st.characters(blacklist_categories=["Cs", "Cc"], blacklist_characters="/\\:?#"),
                    min_size=1, max_size=30).filter(lambda n: n.strip(". ") != ""))
def test_sqlite_beside_anchors_relative_paths_and_leaves_the_rest(name: str) -> None:
    folder = Path("/srv/app")
    assert sqlite_beside(f"sqlite:///{name}", folder) == f"sqlite:///{folder / name}"
    assert sqlite_beside(f"sqlite:///data/{name}", folder) == f"sqlite:///{folder / 'data' / name}"
    for kept in (f"sqlite:////var/lib/{name}", "sqlite:///:memory:", "sqlite:///", "memory://",
                 f"postgresql://u@h/{name}", f"sqlite:///file:{name}?mode=ro"):
        assert sqlite_beside(kept, folder) == kept


def test_tenant_rotate_with_a_bare_key_on_stdin_says_how_to_give_it(tmp_path: Path,
                                                                     sms_emulator: Callable[..., Any],
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """``echo sk_live_new | smsgate tenant rotate acme main -`` said only "invalid TOML: Expected
    '=' after a key"; it now shows the form (``secret_key = "..."``), never the key, and the
    stored credentials stay as they were (the next send still goes through)."""
    squad = sms_emulator("squad")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SMSGATE_TENANT_KEY", new_key())
    monkeypatch.setenv("ACME_SQUAD_KEY", SANDBOX_SECRET_KEY)
    (tmp_path / "smsgate.toml").write_text('store = "sqlite:///log.db"\n')
    (tmp_path / "acme.toml").write_text(f'default_region = "NG"\nsender = "ACME"\n[providers.main]\nplugin = "squad"\n'
                                        f'base_url = "{squad.url}"\ncredentials = {{ secret_key = "${{ACME_SQUAD_KEY}}" }}\n')
    assert runner.invoke(app, ["tenant", "add", "acme", "acme.toml"]).exit_code == 0
    out = runner.invoke(app, ["tenant", "rotate", "acme", "main", "-"], input="sk_live_bare_new_key\n")
    assert out.exit_code == 2
    said = " ".join(out.output.split())
    assert "invalid TOML" in said and "secret_key = \"...\"' | smsgate tenant rotate acme main -" in said
    assert "sk_live_bare_new_key" not in out.output
    sent = runner.invoke(app, ["send", "08031234567", "still the old key", "-t", "acme"])
    assert sent.exit_code == 0, sent.output
    assert [r.status for r in squad.requests("/sms/send/instant")] == [200]


def test_a_misspelt_plugin_name_suggests_the_installed_one(tmp_path: Path) -> None:
    """``plugin = "sqaud"`` suggested only ``pip install smsgate-sqaud`` (no such package)."""
    cfg = tmp_path / "smsgate.toml"
    cfg.write_text('[tenants.acme]\ndefault_region = "NG"\nsender = "ACME"\n[tenants.acme.providers.main]\n'
                   'plugin = "sqaud"\ncredentials = { secret_key = "k" }\n')
    with Gateway(str(cfg)) as gw, pytest.raises(UnknownProvider) as exc:
        gw.tenant("acme").send("+2348031234567", "hello")  # providers are made at first use
    message = str(exc.value)
    assert "tenants.acme.providers.main.plugin" in message and "Did you mean 'squad'?" in message
    with Gateway({"store": "memory://", "tenants": {"acme": {"providers": {"main": {"plugin": "nothing_like_it"}}}}}) \
            as gw, pytest.raises(UnknownProvider) as exc:
        gw.tenant("acme").send("+2348031234567", "hello")  # providers are made at first use
    assert "Did you mean" not in str(exc.value) and "pip install smsgate-nothing-like-it" in str(exc.value)
