"""``smsgate sandbox`` and ``smsgate demo``: the installed provider emulators on loopback ports.

Both need the ``server`` extra; without it they say ``pip install 'smsgate[server]'``
in one line (:func:`smsgate.server.require_server`).
"""

from __future__ import annotations

import inspect
import json
from importlib.metadata import entry_points
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from smsgate.cli._common import app, console, err_console
from smsgate.cli._interrupt import on_interrupt
from smsgate.errors import SmsgateError, ValidationError
from smsgate.plugins import default_plugins, sandbox_account

__all__ = ["EMULATOR_GROUP", "FAULT_HELP", "SANDBOX_STOPPED", "USAGE_EXIT", "WEBHOOK_HELP", "demo", "parse_faults",
           "sandbox"]

#: The entry-point group provider packages register their emulators in.
EMULATOR_GROUP = "smsgate.emulators"


#: The exit code of a command given a bad option value (click's, for usage errors).
USAGE_EXIT = 2

#: The help of ``smsgate sandbox --fault`` (the spec syntax: :meth:`smsgate.emulation.FaultRule.parse`).
FAULT_HELP = (
    "Inject a fault into every emulator (repeatable; docs/writing-a-provider.md, 'Fault injection'). "
    "SPEC is comma-separated: a kind (status, latency, hang, malformed, reset, drip, drop_callbacks; "
    "status=CODE alone implies status), 'process' (the vendor acts first, then the fault replaces "
    "its answer), and key=value: status, retry_after, delay, chunk, path (prefix), method, "
    "count (default: unlimited), probability (0.2 or 20%), seed, after and duration (seconds from "
    "start). E.g. 'status=503,probability=0.2,seed=7', 'reset,after=5,duration=10,path=/api', "
    "'reset,process,count=1', 'drip,delay=2,chunk=8'."
)


def parse_faults(specs: list[str]) -> list[Any]:
    """The ``--fault`` specs as :class:`~smsgate.emulation.FaultRule` (a probability without a
    seed gets one, so the run can be repeated); a bad spec raises ``ValidationError``."""
    import random

    from smsgate.emulation import FaultRule

    rules = [FaultRule.parse(spec) for spec in specs]
    for rule in rules:
        if rule.probability is not None and rule.seed is None:
            rule.seed = random.SystemRandom().randrange(2**32)
    return rules


def _emulators() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=EMULATOR_GROUP)}


#: What ``smsgate sandbox`` says when Ctrl-C stops it.
SANDBOX_STOPPED = ("the emulators stopped and kept nothing (the messages they took are gone); run the same "
                   "'smsgate sandbox' command again to serve them on the same ports with the same credentials")

#: The help of ``smsgate sandbox --webhook``.
WEBHOOK_HELP = (
    "Where the emulators that can call back post delivery reports, as the vendor would: the base URL of "
    "smsgate's webhook app (each emulator calls URL/TENANT/INSTANCE), or a URL with {tenant} and "
    "{instance} placeholders. The sandbox prints every URL it will call, and says which emulators cannot "
    "call back. See docs/getting-started.md."
)


@app.command()
def sandbox(
    port: Annotated[int, typer.Option(help="First port; emulators take consecutive ports.")] = 8801,
    fault: Annotated[list[str] | None, typer.Option("--fault", metavar="SPEC", help=FAULT_HELP)] = None,
    webhook: Annotated[str | None, typer.Option("--webhook", metavar="URL", help=WEBHOOK_HELP)] = None,
    tenant: Annotated[str, typer.Option("--tenant", "-t", help="Tenant of the printed provider blocks and "
                                                               "of the callback URLs.")] = "acme",
) -> None:
    """Serve every installed provider emulator on loopback until Ctrl-C (exit 130).

    The emulators keep everything in memory: what they received is gone when they stop.
    """
    import dataclasses
    import time

    from smsgate.emulation import callback_url
    from smsgate.provider import check_base_url
    from smsgate.server import LiveServer, require_server

    count = sum(1 for _ in entry_points(group="smsgate.emulators"))
    if not 1 <= port <= 65535 - max(count - 1, 0):
        err_console.print(f"error: --port {port}: the first of {count} consecutive ports, "
                          f"so 1..{65535 - max(count - 1, 0)}", soft_wrap=True)
        raise typer.Exit(USAGE_EXIT)
    try:
        rules = parse_faults(fault or [])
    except ValidationError as exc:  # one line, like click's usage errors' exit code
        err_console.print(f"error: invalid --fault: {exc}", soft_wrap=True)
        raise typer.Exit(USAGE_EXIT) from None
    if webhook is not None:
        try:
            check_base_url(webhook)
        except ValueError as exc:
            err_console.print(f"error: invalid --webhook: {exc}", soft_wrap=True)
            raise typer.Exit(USAGE_EXIT) from None
    require_server("smsgate sandbox")
    eps = _emulators()
    if not eps:
        raise SmsgateError("no emulators installed (install a provider plugin with the [emulator] extra)")
    servers = []
    blocks = []
    reports: list[str] = []
    try:
        for i, (name, ep) in enumerate(sorted(eps.items())):
            factory = ep.load()
            creds, settings = _sandbox_credentials(ep)
            calls_back = "webhook_url" in inspect.signature(factory).parameters
            target = callback_url(webhook, tenant, name, creds.get("webhook_token")) if webhook and calls_back \
                else None
            emulator = factory(webhook_url=target) if target else factory()
            try:
                server = LiveServer(emulator, port=port + i).start()
            except OSError as exc:  # the port is taken
                raise SmsgateError(f"cannot serve the {name} emulator on 127.0.0.1:{port + i}: "
                                   f"{exc.strerror or exc}; choose another --port") from exc
            servers.append(server)
            for rule in rules:  # each emulator its own copy: its own count, draws and window
                emulator.state_obj.add_fault(dataclasses.replace(rule))
            console.print(f"{name:15} {server.url}  credentials: {', '.join(sorted(creds))}")
            if webhook:
                reports.append(f"  {name:15} -> {target}" if target else f"  {name:15} {_no_callbacks(name)}")
            block: dict[str, Any] = {"plugin": name, "base_url": server.url, "sender": "SMSGATE", **settings}
            block["credentials"] = {**creds, **block.get("credentials", {})}  # the same merge as the demo's
            blocks.append("\n".join([f"[tenants.{tenant}.providers.{name}]",
                                      *(f"{key} = {_toml_value(value)}" for key, value in block.items())]))
        if reports:
            console.print("\nDelivery reports (POSTed as each vendor would, a moment after each send):")
            for line in reports:
                console.print(line, highlight=False, soft_wrap=True)
        console.print("\nFor smsgate.toml (the emulators' fixed sandbox credentials, not real secrets):\n")
        console.print("\n\n".join(blocks), highlight=False, soft_wrap=True)
        if rules:
            console.print("\nFaults injected into every emulator (from now; GET /_emulator/faults lists them):")
            for rule in rules:
                console.print(f"  --fault '{rule.spec()}'", highlight=False, soft_wrap=True)
        console.print("\nCtrl-C to stop.")
        with on_interrupt(SANDBOX_STOPPED):
            while True:
                time.sleep(3600)
    finally:
        for s in servers:
            s.stop()


def _no_callbacks(name: str) -> str:
    """Why the ``name`` emulator posts no delivery reports, and how its statuses can be had instead."""
    plugin = default_plugins().providers().get(name)
    caps = plugin.capabilities if plugin is not None else None
    if caps is not None and caps.delivery_reports:
        why = "cannot call back: its emulator takes no callback URL"
    else:
        why = "cannot call back: the vendor documents no delivery-report callbacks"
    if caps is not None and caps.status_lookup:
        return f"{why}; look statuses up instead (smsgate status MESSAGE_ID)"
    return f"{why}, nor a status lookup: its messages stay 'submitted'"


def _sandbox_credentials(ep: Any) -> tuple[dict[str, str], dict[str, Any]]:
    """The credentials an emulator accepts by default, and the settings it needs."""
    account = sandbox_account(ep.name)
    return dict(account.credentials), dict(account.settings)


def _toml_value(value: Any) -> str:
    """``value`` as a TOML value (strings, numbers, booleans, lists and inline tables)."""
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(value)  # a JSON string, number or boolean is the same TOML value


@app.command()
def demo(
    db: Annotated[Path, typer.Option(help="SQLite file for the demo's store.")] = Path("smsgate-demo.db"),
) -> None:
    """Run the demo: a campaign through the provider emulators, logged in SQLite.

    After Ctrl-C its log so far stays in ``--db``; running it again starts over (it replaces that file).
    """
    from smsgate.cli._demo import run_demo

    with on_interrupt(f"the demo's log so far is in {db}; run 'smsgate demo' again to start over "
                      "(it replaces that file)"):
        run_demo(db, console if console.is_terminal else Console(width=120, markup=False))
