"""CLI leftovers of earlier reviews: ``route explain --text`` counts what a send would send,
``campaign preview`` / ``campaign list --json`` show the campaign's kind, and ``smsgate serve``
prints each tenant's and instance's real callback URL (a token's place, never the token)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.parse
from pathlib import Path

import httpx
from typer.testing import CliRunner

from services import free_ports
from smsgate import Gateway
from smsgate.cli import app
from smsgate.testing import Outbox

runner = CliRunner()


# ------------------------------------------------------------------ route explain --text
def test_route_explain_counts_the_segments_of_the_text_that_would_be_sent(config: Path, sms_outbox: Outbox) -> None:
    """``{{`` is sent as one ``{`` (two septets in GSM-7): 100 of them are 200 septets, two
    segments; the raw text's 200 braces would be 400 septets, three."""
    text = "{{" * 100
    explained = runner.invoke(app, ["route", "explain", "08031234567", "--text", text, "-c", str(config), "--json"])
    assert explained.exit_code == 0, explained.output
    found = json.loads(explained.stdout)
    with Gateway(config) as gw:
        sent = gw.tenant("acme").send("08031234567", text)
    assert sms_outbox.messages()[0].text == "{" * 100  # what left
    assert found["segments"] == sent.segments == 2, (found, sent)


def test_route_explain_fills_placeholders_from_var(config: Path, sms_outbox: Outbox) -> None:
    text = "Hi {name}, " + "x" * 150  # 154 characters with the placeholder, 160 filled in: one segment
    explained = runner.invoke(app, ["route", "explain", "08031234567", "--text", text, "--var", "name=Adaeze",
                                    "-c", str(config), "--json"])
    assert explained.exit_code == 0, explained.output
    with Gateway(config) as gw:
        sent = gw.tenant("acme").send("08031234567", text, variables={"name": "Adaeze"})
    assert json.loads(explained.stdout)["segments"] == sent.segments == 2
    unfilled = runner.invoke(app, ["route", "explain", "08031234567", "--text", text, "-c", str(config)])
    assert unfilled.exit_code != 0 and "'name'" in unfilled.output and "--var" in unfilled.output, unfilled.output


# ------------------------------------------------------------------ campaign kind
def test_campaign_preview_and_list_show_the_kind(config: Path, tmp_path: Path) -> None:
    audience = tmp_path / "audience.csv"
    audience.write_text("phone\n08031234567\n")
    base = ["-c", str(config)]
    created = runner.invoke(app, ["campaign", "create", "--name", "Sale", "--csv", str(audience), "--text", "Sale",
                                  "--kind", "marketing", *base], env={"COLUMNS": "200"})
    assert created.exit_code == 0, created.output
    match = re.search(r"cmp_\w+", created.stdout)
    assert match is not None
    cid = match.group(0)
    preview = runner.invoke(app, ["campaign", "preview", cid, *base], env={"COLUMNS": "200"})
    assert preview.exit_code == 0 and "kind marketing" in preview.stdout, preview.output
    as_json = json.loads(runner.invoke(app, ["campaign", "preview", cid, *base, "--json"]).stdout)
    assert as_json["kind"] == "marketing"
    listed = json.loads(runner.invoke(app, ["campaign", "list", *base, "--json"]).stdout)
    assert [(c["campaign_id"], c["kind"]) for c in listed] == [(cid, "marketing")]


# ------------------------------------------------------------------ serve's callback URLs
def test_serve_prints_each_instance_s_callback_url_with_no_token(tmp_path: Path) -> None:
    from smsgate_campaigns_api.emulator import SANDBOX_API_KEY

    token = "tok-3f9a+c/Zq"
    cfg = tmp_path / "smsgate.toml"
    cfg.write_text(f"""
store = "sqlite:///{tmp_path / 'hooks.db'}"
[tenants."org/team"]
default_region = "NG"
[tenants."org/team".providers.squad]
plugin = "squad"
sender = "ACME"
credentials = {{ secret_key = "sk_test_0123456789" }}
[tenants."org/team".providers.dm]
plugin = "campaigns_api"
sender = "ACME"
credentials = {{ api_key = "{SANDBOX_API_KEY}", webhook_token = "{token}" }}
""")
    port = free_ports()
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("SMSGATE_")}
    proc = subprocess.Popen([sys.executable, "-m", "smsgate", "serve", "-c", str(cfg), "--port", str(port),
                             "--public-url", "https://hooks.example.com/sms/"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**env, "COLUMNS": "300"})
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            if "dm (campaigns_api)" in line:
                break
        out = "\n".join(lines)
        assert f"serving webhooks on http://127.0.0.1:{port}/hooks" in out, out
        assert "org/team/squad (squad): https://hooks.example.com/sms/hooks/org%2Fteam/squad\n" in out + "\n", out
        dm = next(line for line in lines if "dm (campaigns_api)" in line)
        assert "https://hooks.example.com/sms/hooks/org%2Fteam/dm?token=TOKEN" in dm, dm
        assert "tenants.org/team.providers.dm.credentials.webhook_token" in dm, dm
        assert token not in out and "sk_test" not in out, out
        # the URL printed (on this server's own address, the token put in) is the one that works
        local = dm.split(": ", 1)[1].split(" ", 1)[0].replace("https://hooks.example.com/sms", f"http://127.0.0.1:{port}")
        body = json.dumps({"webHookType": 1, "data": {"Id": 7, "phoneNumberId": "0b7c2f0e-guid", "parts": 1,
                                                     "price": 0.035, "statusCode": 2}}).encode()
        ok = httpx.post(local.replace("TOKEN", urllib.parse.quote(token, safe="")), content=body, timeout=10)
        assert ok.status_code == 200, ok.text
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)


def test_serve_says_so_for_a_tenant_without_providers(tmp_path: Path) -> None:
    """A tenant configured without providers (e.g. the configuration ``smsgate demo`` writes
    to read its log) has no callback URL: its line says so instead of the list being empty."""
    cfg = tmp_path / "smsgate.toml"
    cfg.write_text(f"""
store = "sqlite:///{tmp_path / 'hooks.db'}"
[tenants.readonly]
default_region = "NG"
[tenants.acme]
default_region = "NG"
[tenants.acme.providers.squad]
plugin = "squad"
sender = "ACME"
credentials = {{ secret_key = "sk_test_0123456789" }}
""")
    port = free_ports()
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("SMSGATE_")}
    proc = subprocess.Popen([sys.executable, "-m", "smsgate", "serve", "-c", str(cfg), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**env, "COLUMNS": "300"})
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # the tenants in the configuration's order: acme's line comes last
            lines.append(line.rstrip("\n"))
            if "acme/squad (squad)" in line:
                break
        out = "\n".join(lines)
        assert "  readonly: no providers configured" in out, out
        assert "tenants.readonly.providers" in out, out  # where one would be added
        assert f"acme/squad (squad): http://127.0.0.1:{port}/hooks/acme/squad" in out, out
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
