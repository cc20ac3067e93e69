"""``smsgate sandbox`` and ``smsgate demo``: the installed provider emulators on loopback ports.

Both need the ``server`` extra; without it they say ``pip install 'smsgate[server]'``
in one line (:func:`smsgate.server.require_server`).
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import json
import re
from importlib.metadata import entry_points
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from smsgate.cli._common import app, console, err_console
from smsgate.cli._interrupt import on_interrupt
from smsgate.errors import ConfigError, SmsgateError, ValidationError
from smsgate.plugins import default_plugins, sandbox_account

__all__ = ["BASE_PORT", "EMULATOR_GROUP", "FAULT_HELP", "PLUGIN_PORT_HELP", "PORT_HELP", "SANDBOX_STOPPED", "USAGE_EXIT",
           "WEBHOOK_HELP", "WEBHOOK_PLACEHOLDERS", "PortPlan", "check_placeholders", "check_tenant_flag", "demo",
           "parse_faults", "plan_ports", "provider_block", "sandbox"]

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


#: Where ``smsgate sandbox``'s ports start by default: the port of the squad emulator
#: (each emulator's own port: :attr:`~smsgate.hookspecs.SandboxAccount.port`).
BASE_PORT = 8801

#: The help of ``smsgate sandbox --port``.
PORT_HELP = (
    f"Where the emulators' ports start. Each has a port of its own, whatever else is installed (squad "
    f"{BASE_PORT}, colony 8802, campaigns_api 8803, broadcast 8804, generic_http 8805); --port moves them all by "
    "the same step: --port 9001 serves squad on 9001, colony on 9002 and so on. Emulators without a port of "
    "their own get free ports after the others."
)

#: The help of ``smsgate sandbox --plugin-port``.
PLUGIN_PORT_HELP = "Serve one emulator on this port (repeatable), e.g. --plugin-port squad=9001."


@dataclasses.dataclass(frozen=True)
class PortPlan:
    """Where ``smsgate sandbox`` serves each emulator: :attr:`fixed` ports by plugin name, and
    the plugins (:attr:`free`) that take free ports from :attr:`after` on."""

    fixed: dict[str, int]
    free: list[str]
    after: int


def plan_ports(declared: dict[str, int | None], base: int = BASE_PORT,
               chosen: dict[str, int] | None = None) -> PortPlan:
    """The ports of the emulators of plugins ``declared`` (plugin -> its
    :attr:`~smsgate.hookspecs.SandboxAccount.port`, or ``None``): a declared port moved by
    ``base - BASE_PORT`` (``--port``), unless ``chosen`` (``--plugin-port``) names one.
    Raises :class:`~smsgate.errors.ValidationError` for a port outside 1..65535, two plugins
    on one port, or a ``chosen`` plugin that has no emulator, naming the option to change."""
    chosen = chosen or {}
    for name, port in chosen.items():
        if name not in declared:
            raise ValidationError(f"--plugin-port {name}={port}: no emulator {name!r} is installed (installed: "
                                  f"{', '.join(sorted(declared))})", value=f"{name}={port}")
        if not 1 <= port <= 65535:
            raise ValidationError(f"--plugin-port {name}={port}: a port is 1..65535", value=f"{name}={port}")
    moved = {name: port for name, port in declared.items() if port is not None and name not in chosen}
    if moved:
        low, high = BASE_PORT - min(moved.values()) + 1, BASE_PORT + 65535 - max(moved.values())
        if not low <= base <= high:
            far = min(moved, key=moved.__getitem__) if base < low else max(moved, key=moved.__getitem__)
            raise ValidationError(f"--port {base}: the {far} emulator would be on port "
                                  f"{moved[far] + base - BASE_PORT}, outside 1..65535; choose a --port from {low} "
                                  f"to {high}", value=base)
    fixed = {name: port + base - BASE_PORT for name, port in moved.items()}
    fixed.update(chosen)
    owner: dict[int, str] = {}
    for name in sorted(fixed):
        port = fixed[name]
        if port in owner:
            other = owner[port]
            if other in chosen:
                other, name = name, other
            if name in chosen:
                raise ValidationError(f"--plugin-port {name}={port}: that is the {other} emulator's port; choose "
                                      f"another, or move {other} too (--plugin-port {other}=PORT)", value=port)
            raise ValidationError(f"the {other} and {name} emulators both have port {port}: serve one elsewhere "
                                  f"with --plugin-port {name}=PORT", value=port)
        owner[port] = name
    free = sorted(name for name in declared if name not in fixed)
    return PortPlan(fixed, free, max(fixed.values(), default=base - 1) + 1)


def _plugin_ports(values: list[str]) -> dict[str, int]:
    """``--plugin-port NAME=PORT`` values as a dict (a bad one raises ValidationError)."""
    chosen: dict[str, int] = {}
    for value in values:
        name, eq, number = value.partition("=")
        if not eq or not name.strip() or not number.strip().isdigit():
            raise ValidationError(f"--plugin-port {value}: expected NAME=PORT, e.g. squad=9001", value=value)
        chosen[name.strip()] = int(number)
    return chosen


def _serve(name: str, emulator: Any, port: int | None, after: int, taken: set[int]) -> Any:
    """``emulator`` served on ``port``, or (``None``) on the first free port from ``after`` on
    that is not in ``taken``; a busy fixed port raises SmsgateError naming the flag to change it."""
    from smsgate.server import LiveServer

    if port is not None:
        try:
            return LiveServer(emulator, port=port).start()
        except ConfigError as exc:
            raise SmsgateError(f"the {name} emulator: {exc} (--plugin-port {name}=PORT serves it on another, "
                               "--port moves every emulator)") from None
    for candidate in range(after, 65536):
        if candidate in taken:
            continue
        try:
            return LiveServer(emulator, port=candidate).start()
        except ConfigError:
            continue  # in use: the next one
    raise SmsgateError(f"no free port from {after} on for the {name} emulator: give it one with "
                       f"--plugin-port {name}=PORT")


@app.command()
def sandbox(
    port: Annotated[int, typer.Option(help=PORT_HELP)] = BASE_PORT,
    plugin_port: Annotated[list[str] | None, typer.Option("--plugin-port", metavar="NAME=PORT",
                                                          help=PLUGIN_PORT_HELP)] = None,
    fault: Annotated[list[str] | None, typer.Option("--fault", metavar="SPEC", help=FAULT_HELP)] = None,
    webhook: Annotated[str | None, typer.Option("--webhook", metavar="URL", help=WEBHOOK_HELP)] = None,
    tenant: Annotated[str, typer.Option("--tenant", "-t", help="Tenant of the printed provider blocks and "
                                                               "of the callback URLs.")] = "acme",
) -> None:
    """Serve every installed provider emulator on loopback until Ctrl-C (exit 130).

    Each emulator has its own port, whatever else is installed (squad 8801, colony 8802,
    campaigns_api 8803, broadcast 8804, generic_http 8805); --port moves them all, --plugin-port
    one. The emulators keep everything in memory: what they received is gone when they stop.
    """
    import time

    from smsgate.emulation import callback_url
    from smsgate.provider import check_base_url
    from smsgate.server import require_server

    eps = _emulators()
    try:
        accounts = {name: sandbox_account(name) for name in eps}
        plan = plan_ports({name: account.port for name, account in accounts.items()}, port,
                          _plugin_ports(plugin_port or []))
    except ValidationError as exc:  # one line, like click's usage errors' exit code
        err_console.print(f"error: {exc}", soft_wrap=True)
        raise typer.Exit(USAGE_EXIT) from None
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
        check_placeholders(webhook)
    check_tenant_flag(tenant)
    require_server("smsgate sandbox")
    if not eps:
        raise SmsgateError("no emulators installed (install a provider plugin with the [emulator] extra)")
    servers = []
    blocks = []
    reports: list[str] = []
    try:
        taken = set(plan.fixed.values())
        for name in [*sorted(plan.fixed, key=plan.fixed.__getitem__), *plan.free]:  # in port order
            ep = eps[name]
            factory = ep.load()
            creds, settings = dict(accounts[name].credentials), dict(accounts[name].settings)
            calls_back = "webhook_url" in inspect.signature(factory).parameters
            target = callback_url(webhook, tenant, name, creds.get("webhook_token")) if webhook and calls_back \
                else None
            emulator = factory(webhook_url=target) if target else factory()
            server = _serve(name, emulator, plan.fixed.get(name), plan.after, taken)
            taken.add(server.port)
            servers.append(server)
            for rule in rules:  # each emulator its own copy: its own count, draws and window
                emulator.state_obj.add_fault(dataclasses.replace(rule))
            console.print(f"{name:15} {server.url}  credentials: {', '.join(sorted(creds))}")
            if webhook:
                reports.append(f"  {name:15} -> {target}" if target else f"  {name:15} {_no_callbacks(name)}")
            block: dict[str, Any] = {"plugin": name, "base_url": server.url, "sender": "SMSGATE", **settings}
            block["credentials"] = {**creds, **block.get("credentials", {})}  # the same merge as the demo's
            blocks.append(provider_block(tenant, name, block))
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


#: The placeholders a ``--webhook`` URL may hold.
WEBHOOK_PLACEHOLDERS = ("tenant", "instance")


def check_placeholders(webhook: str) -> None:
    """Refuse a ``--webhook`` URL with a ``{placeholder}`` other than ``{tenant}`` and
    ``{instance}`` (a typo such as ``{tenat}`` would be called as written: every report a 404)."""
    for found in re.findall(r"\{([^{}]*)\}", webhook):
        if found not in WEBHOOK_PLACEHOLDERS:
            close = difflib.get_close_matches(found, WEBHOOK_PLACEHOLDERS, n=1)
            hint = f" (did you mean {{{close[0]}}}?)" if close else ""
            raise ValidationError(f"unknown placeholder {{{found}}}{hint}: a URL may hold {{tenant}} and {{instance}}",
                                  field="--webhook")


def check_tenant_flag(tenant: str) -> None:
    """Refuse a ``--tenant`` that no configuration could name as printed: blank, or with spaces
    around it (the rule of stored tenants' names)."""
    if not tenant.strip():
        raise ValidationError(f"{tenant!r} is blank: name the tenant of the printed blocks", field="--tenant")
    if tenant != tenant.strip():
        raise ValidationError(f"{tenant!r} has spaces around it", field="--tenant")


def _toml_key(key: str) -> str:
    """``key`` as a TOML key: bare where TOML allows it, else a quoted (JSON-escaped) string."""
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)


def provider_block(tenant: str, name: str, block: dict[str, Any]) -> str:
    """The ``[tenants.TENANT.providers.NAME]`` table ``smsgate sandbox`` prints for ``block``,
    its keys quoted where TOML needs it (a tenant ``a b`` or ``acme.eu``)."""
    return "\n".join([f"[tenants.{_toml_key(tenant)}.providers.{_toml_key(name)}]",
                      *(f"{_toml_key(key)} = {_toml_value(value)}" for key, value in block.items())])


def _toml_value(value: Any) -> str:
    """``value`` as a TOML value (strings, numbers, booleans, lists and inline tables)."""
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(value)  # a JSON string, number or boolean is the same TOML value


@app.command()
def demo(
    db: Annotated[Path, typer.Option(help="SQLite file for the demo's store.")] = Path("smsgate-demo.db"),
) -> None:
    """Run the demo: a campaign through the provider emulators, logged in SQLite.

    After Ctrl-C its log so far stays in --db; running it again starts over (it replaces that file).
    """
    from smsgate.cli._demo import run_demo

    with on_interrupt(f"the demo's log so far is in {db}; run 'smsgate demo' again to start over "
                      "(it replaces that file)"):
        run_demo(db, console if console.is_terminal else Console(width=120, markup=False))
