"""The demo job: a campaign through every installed provider emulator, logged in SQLite.

It starts a webhook receiver (:func:`smsgate.webhooks.webhook_app`) and each
installed emulator (entry-point group ``smsgate.emulators``) on loopback ports;
emulators that document delivery callbacks are pointed at the receiver. One
tenant routes Nigerian numbers through Squad, South African through Colony, UK
through the Campaigns API (each failing over to the others). The campaign has a
duplicate, an invalid and an opted-out recipient; the demo previews it, runs it,
sends a location through the broadcast API, waits for delivery reports
(webhooks and status polling), then prints the message log and statistics.
"""

from __future__ import annotations

import inspect
import json
import os
import tempfile
import time
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from smsgate.campaigns import ContactsAudience
from smsgate.config import Settings
from smsgate.emulation import callback_url
from smsgate.errors import ConfigError, SmsgateError
from smsgate.gateway import Gateway
from smsgate.models import Contact, Location, Status
from smsgate.plugins import sandbox_account
from smsgate.server import LiveServer, require_server

__all__ = ["run_demo"]

TENANT = "demo"

#: Which emulator carries which numbers in the demo.
_ROUTES = [("squad", ["+234"]), ("colony", ["+27"]), ("campaigns_api", ["+44"])]

AUDIENCE = [
    Contact(phone="08031234567", name="Ada"),
    Contact(phone="+2348051234562", name="Bayo"),
    Contact(phone="0805 123 4563", name="Chidi"),
    Contact(phone="08031234567", name="Ada (again)"),   # duplicate
    Contact(phone="+2348051234569", name="Dayo"),       # the emulators fail numbers ending in 9
    Contact(phone="12345", name="Nobody"),              # invalid
    Contact(phone="+2348051234564", name="Efe"),        # opted out below
    Contact(phone="+27821234567", name="Thabo"),
    Contact(phone="+447912345678", name="Olivia"),
]


class _Receiver:
    """ASGI app forwarding to the webhook app once the gateway exists."""

    def __init__(self) -> None:
        self.app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or self.app is None:
            if scope["type"] == "lifespan":
                message = await receive()
                while message["type"] != "lifespan.shutdown":
                    await send({"type": message["type"] + ".complete"})
                    message = await receive()
                await send({"type": "lifespan.shutdown.complete"})
                return
            await send({"type": "http.response.start", "status": 503, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        await self.app(scope, receive, send)


def _start(console: Console, hooks_url: str) -> dict[str, LiveServer]:
    servers: dict[str, LiveServer] = {}
    for ep in sorted(entry_points(group="smsgate.emulators"), key=lambda e: e.name):
        factory = ep.load()
        kwargs: dict[str, Any] = {}
        params = inspect.signature(factory).parameters
        if "webhook_url" in params:
            token = sandbox_account(ep.name).credentials.get("webhook_token")
            kwargs["webhook_url"] = callback_url(hooks_url, TENANT, ep.name, token)
        if "delivery_delay" in params:
            kwargs["delivery_delay"] = 0.5
        servers[ep.name] = LiveServer(factory(**kwargs)).start()
        note = " (delivery reports by webhook)" if "webhook_url" in kwargs else ""
        _print(console, Text.assemble("  emulator ", (ep.name, "bold"), f" on {servers[ep.name].url}{note}"))
    return servers


def _settings(servers: dict[str, LiveServer], db: Path) -> Settings:
    providers: dict[str, Any] = {}
    for name, server in servers.items():
        account = sandbox_account(name)
        cfg: dict[str, Any] = {
            "plugin": name,
            "base_url": server.url,
            "credentials": dict(account.credentials),
            "sender": "SMSGATE",
            "timeout": 5.0,
        }
        cfg.update(account.settings)
        providers[name] = cfg
    if "squad" in providers:
        providers["squad"].update(price_per_segment=5.41, currency="NGN")
    order = [n for n, _ in _ROUTES if n in providers] or sorted(providers)
    routes = [{"prefixes": prefixes, "providers": [name] + [f for f in order if f != name]}
              for name, prefixes in _ROUTES if name in providers]
    routes.append({"providers": order})
    return Settings(
        store=f"sqlite:///{db}",
        tenants={TENANT: {"default_region": "NG", "timezone": "Africa/Lagos", "providers": providers,
                          "routes": routes}},
    )


def run_demo(db: Path, console: Console | None = None, wait_seconds: float = 4.0) -> dict[str, int]:
    """Run the demo; returns the final number of messages per status.

    Raises :class:`~smsgate.errors.ConfigError` when the ``server`` extra is not installed.
    """
    require_server("smsgate demo")
    console = console or Console(width=120, markup=False)
    console.rule(Text("smsgate demo", style="bold"))
    receiver = _Receiver()
    hooks = LiveServer(receiver).start()
    _print(console, f"  webhook receiver on {hooks.url}")
    servers = _start(console, hooks.url)
    try:
        if not servers:
            raise ConfigError("no provider emulators are installed; install smsgate-squad[emulator] or similar")
        if db.is_symlink() or db.exists():  # a link planted there (dangling too) is removed, never followed
            db.unlink()
        gw = Gateway(_settings(servers, db))
        try:
            from smsgate.webhooks import webhook_app

            receiver.app = webhook_app(gw)
            tenant = gw.tenant(TENANT)
            tenant.optouts.add("+2348051234564", reason="replied STOP")
            _print(console, f"  store: SQLite at {db}; tenant {TENANT!r} (region NG); +2348051234564 opted out")

            console.rule(Text("campaign preview (nothing sent yet)"))
            camp = tenant.campaigns.create(
                "Order shipped", text="Hello {name}, your order has shipped. Reply STOP to opt out.",
                audience=ContactsAudience(AUDIENCE, "demo contacts"),
            )
            preview = camp.preview()
            _print(console, str(preview))
            for err in preview.errors:
                _print(console, f"  skipped {err.location}: {err.reason} ({err.detail})")

            console.rule(Text("running the campaign"))
            progress = camp.run(progress=lambda p: _print(console,
                f"  progress: sent {p.sent}, sending {p.sending}, failed {p.failed}, unknown {p.unknown}, "
                f"pending {p.pending}"))
            _print(console, f"  campaign {progress.status.value}: {progress.sent} sent, "
                            f"{progress.failed} failed, {progress.skipped} skipped")
            if "broadcast" in servers:
                r = tenant.send("+2348051234565", "Our new Lagos store is open", provider="broadcast",
                                location=Location(name="Lagos store", lat=6.4541, lng=3.3947))
                _print(console, f"  location message via broadcast: {r.status.value}")

            console.rule(Text(f"waiting up to {wait_seconds:g}s for delivery reports (webhooks + polling)"))
            deadline = time.monotonic() + wait_seconds
            while time.monotonic() < deadline:
                open_ = [m for m in tenant.messages(limit=100) if not m.status.is_final]
                for m in open_:
                    try:
                        tenant.status(m.message_id)
                    except SmsgateError:
                        pass  # providers without status lookup report by webhook, or not at all
                if all(m.status.is_final or not _can_progress(tenant, m) for m in tenant.messages(limit=100)):
                    break
                time.sleep(0.5)

            console.rule(Text("message log (SQLite)"))
            table = Table("to", "status", "raw", "provider", "segments", "cost", "history")
            for rec in reversed(tenant.messages(limit=100)):
                history = _history(tenant.get(rec.message_id).history)
                table.add_row(rec.to, rec.status.value, rec.raw_status or "", rec.provider or "",
                              str(rec.segments or ""), f"{rec.cost} {rec.currency or ''}" if rec.cost else "",
                              history)
            _print(console, table)
            stats = camp.stats("hour")
            rate = stats.delivery_rate
            _print(console, f"  campaign stats: {stats.total} messages, {stats.delivered} delivered, "
                            # not the run's "failed" (recipients the provider never took): these
                            # are messages it took and could not deliver, or that failed after
                            f"{stats.failed + stats.undelivered} not delivered, delivery rate "
                            f"{'-' if rate is None else f'{rate:.0%}'}, avg queue {stats.avg_queue_seconds or 0:.3f}s")
            counts = {s.value: n for s, n in gw.store.count_by_status(TENANT).items() if n}
            _print(console, "  all messages: " + ", ".join(f"{k}={v}" for k, v in sorted(counts.items())))
            cfg = write_log_config(db)
            # one line however long (the terminal wraps it): rich would break a command in two
            console.print(Text.assemble(("demo finished", "green"), f"; log kept in {db}. Read it with ",
                                        (f"smsgate messages -c {cfg}", "bold"), " or ",
                                        (f"smsgate stats -c {cfg}", "bold")), markup=False, soft_wrap=True)
            return counts
        finally:  # the emulators' callbacks stop (those under way answered) before the store closes
            _stop(servers, hooks)
            gw.close()
    finally:
        _stop(servers, hooks)


def _stop(servers: dict[str, LiveServer], hooks: LiveServer) -> None:
    """Stop the emulators, then the webhook receiver (stopping one twice does nothing)."""
    for server in servers.values():
        server.stop()
    hooks.stop()


def _print(console: Console, *objects: Any) -> None:
    """Print with markup off: names, numbers and vendors' texts may hold square brackets."""
    console.print(*objects, markup=False)


def _history(events: list[Any]) -> str:
    """``queued > sent > sent (DELIVRD...) > delivered``: the vendor's status shown where ours repeats."""
    parts: list[str] = []
    previous = None
    for event in events:
        text = event.status.value
        if event.status == previous and event.raw_status:
            text += f" ({event.raw_status})"
        parts.append(text)
        previous = event.status
    return " > ".join(parts)


def write_log_config(db: Path) -> Path:
    """Write ``<db>.toml`` next to ``db``: a configuration for reading the demo's log.

    The emulators are gone when the demo ends, so it names the store and the tenant
    (region and time zone, for ``smsgate stats``) but no providers: ``messages``,
    ``status`` and ``stats`` read the log.
    """
    path = db.with_suffix(".toml")
    text = ("# Written by `smsgate demo`: reads the demo's message log (its provider emulators are gone).\n"
            f"store = {json.dumps(f'sqlite:///{db.resolve()}')}\n\n"
            f"[tenants.{TENANT}]\n"
            'default_region = "NG"\n'
            'timezone = "Africa/Lagos"\n')
    # a new file put in place: a symbolic link planted at the path (the demo run in a shared
    # folder such as /tmp) is replaced, never followed to overwrite the file it points to
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=path.parent, prefix=".smsgate-demo-",
                                     suffix=".toml", delete=False) as fh:
        fh.write(text)
    os.chmod(fh.name, 0o644)  # a configuration, no secret: readable as a file written plainly would be
    os.replace(fh.name, path)
    return path


def _can_progress(tenant: Any, record: Any) -> bool:
    """Whether waiting longer may change a message's status (a lookup or a webhook may come)."""
    if record.status in (Status.REJECTED, Status.UNKNOWN) or not record.provider:
        return False
    caps = tenant.provider(record.provider).capabilities
    return bool(caps.status_lookup or caps.delivery_reports)
