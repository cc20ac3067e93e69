"""The demo job: a small campaign through every installed provider emulator.

Starts each installed emulator (entry-point group ``smsgate.emulators``) on a
loopback port, configures one tenant whose routes send Nigerian numbers through
Squad, South African through Colony, UK through the Campaigns API, and media
through the broadcast API (falling back to whatever is installed), then sends a
personalised campaign with an opted-out, an invalid and a duplicate recipient,
polls delivery status and prints the results and the SQLite message log.
"""

from __future__ import annotations

import importlib
import time
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from smsgate.config import Settings
from smsgate.errors import ConfigError
from smsgate.gateway import Gateway, MessageSpec
from smsgate.models import Location, Status
from smsgate.testing.server import LiveServer

__all__ = ["run_demo"]

#: Which emulator carries which numbers in the demo, in preference order.
_ROUTES = [
    ("squad", ["+234"]),
    ("colony", ["+27"]),
    ("campaigns_api", ["+44"]),
]

AUDIENCE = [
    ("08031234567", "Ada"),
    ("+2348051234562", "Bayo"),
    ("0805 123 4563", "Chidi"),
    ("08031234567", "Ada (again)"),      # duplicate of the first
    ("+2348051234569", "Dayo"),          # the emulators fail numbers ending in 9
    ("12345", "Nobody"),                 # invalid
    ("+2348051234564", "Efe"),           # opted out below
    ("+27821234567", "Thabo"),
    ("+447912345678", "Olivia"),
]


def _start_emulators(console: Console) -> tuple[dict[str, LiveServer], dict[str, Any]]:
    servers: dict[str, LiveServer] = {}
    modules: dict[str, Any] = {}
    for ep in sorted(entry_points(group="smsgate.emulators"), key=lambda e: e.name):
        factory = ep.load()
        servers[ep.name] = LiveServer(factory()).start()
        modules[ep.name] = importlib.import_module(ep.value.split(":")[0])
        console.print(f"  emulator [bold]{ep.name}[/bold] listening on {servers[ep.name].url}")
    return servers, modules


def _settings(servers: dict[str, LiveServer], modules: dict[str, Any], db: Path) -> Settings:
    providers: dict[str, Any] = {}
    for name, server in servers.items():
        module = modules[name]
        cfg: dict[str, Any] = {
            "plugin": name,
            "base_url": server.url,
            "credentials": dict(getattr(module, "SANDBOX_CREDENTIALS", {})),
            "sender": "SMSGATE",
            "timeout": 5.0,
        }
        cfg.update(getattr(module, "SANDBOX_SETTINGS", {}))
        providers[name] = cfg
    routes = []
    fallback = [n for n, _ in _ROUTES if n in providers] or sorted(providers)
    for name, prefixes in _ROUTES:
        if name in providers:
            routes.append({"prefixes": prefixes, "providers": [name] + [f for f in fallback if f != name]})
    routes.append({"providers": fallback + [n for n in sorted(providers) if n not in fallback]})
    return Settings(
        store=f"sqlite:///{db}",
        tenants={"demo": {"default_region": "NG", "timezone": "Africa/Lagos", "providers": providers,
                          "routes": routes}},
    )


def run_demo(db: Path, console: Console | None = None, poll_seconds: float = 4.0) -> dict[str, int]:
    """Run the demo; returns the final count of messages per status."""
    console = console or Console()
    console.rule("[bold]smsgate demo[/bold]")
    servers, modules = _start_emulators(console)
    if not servers:
        raise ConfigError("no provider emulators are installed; install smsgate-squad[emulator] or similar")
    try:
        if db.exists():
            db.unlink()
        settings = _settings(servers, modules, db)
        with Gateway(settings) as gw:
            tenant = gw.tenant("demo")
            tenant.optouts.add("+2348051234564", reason="replied STOP")
            console.print(f"  store: SQLite at {db}; tenant 'demo' (region NG); "
                          f"1 opted-out number; {len(AUDIENCE)} recipients")
            seen: set[str] = set()
            specs, skipped = [], []
            for phone, name in AUDIENCE:
                try:
                    e164 = tenant.normalize(phone)
                except ConfigError:
                    raise
                except Exception as exc:
                    skipped.append((phone, f"invalid: {exc}"))
                    continue
                if e164 in seen:
                    skipped.append((phone, "duplicate"))
                    continue
                seen.add(e164)
                specs.append(MessageSpec(to=e164, variables={"name": name}))
            console.rule("campaign: 'Hello {name}, your order has shipped'")
            results = tenant.send_many(specs, "Hello {name}, your order has shipped. Reply STOP to opt out.")
            if "broadcast" in servers:
                results.append(tenant.send(
                    "+2348051234565", "Our new store is here", provider="broadcast",
                    location=Location(name="Lagos store", lat=6.4541, lng=3.3947),
                ))
            table = Table("to", "status", "provider", "provider id", "segments", "error")
            for r in results:
                table.add_row(r.to, r.status.value, r.provider, r.provider_message_id or "",
                              str(r.segments or ""), (r.error or "")[:50])
            for phone, why in skipped:
                table.add_row(phone, "skipped", "", "", "", why[:50])
            console.print(table)
            console.rule(f"polling delivery status for {poll_seconds:g}s")
            deadline = time.monotonic() + poll_seconds
            pending = [r.message_id for r in results if r.ok]
            while pending and time.monotonic() < deadline:
                time.sleep(0.5)
                still = []
                for mid in pending:
                    try:
                        rec = tenant.status(mid)
                    except Exception as exc:  # a provider without status lookup, or a fault
                        console.print(f"  status lookup for {mid} failed: {exc}")
                        continue
                    if not rec.status.is_final:
                        still.append(mid)
                pending = still
            console.rule("message log (SQLite)")
            records = tenant.messages(limit=100)
            log_table = Table("message", "to", "status", "raw", "provider", "history")
            for rec in reversed(records):
                history = " > ".join(e.status.value for e in tenant.get(rec.message_id).history)
                log_table.add_row(rec.message_id, rec.to, rec.status.value, rec.raw_status or "",
                                  rec.provider or "", history)
            console.print(log_table)
            counts = {s.value: n for s, n in gw.store.count_by_status("demo").items() if n}
            console.print("  totals: " + ", ".join(f"{k}={v}" for k, v in sorted(counts.items())))
            delivered = counts.get(Status.DELIVERED.value, 0)
            console.print(f"[green]demo finished:[/green] {delivered} delivered; log kept in {db}")
            return counts
    finally:
        for server in servers.values():
            server.stop()
