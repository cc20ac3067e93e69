"""``smsgate config check`` and ``smsgate providers [health]``: the configuration, the installed plugins,
the health of configured provider instances."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from smsgate.cli._common import (
    ERROR_EXIT,
    CommandGroup,
    ConfigOpt,
    JsonOpt,
    TenantOpt,
    compact_table,
    console,
    err_console,
    handles_errors,
    load_settings,
    no_tenants_error,
    open_gateway,
    open_tenant,
    require_tenants,
    stored_tenant_names,
    visible,
)
from smsgate.cli._interrupt import on_interrupt
from smsgate.config import shown_url
from smsgate.errors import SmsgateError
from smsgate.gateway import Gateway
from smsgate.plugins import default_plugins

__all__ = ["config_app", "providers", "providers_app"]

config_app = CommandGroup(help="Inspect configuration.", no_args_is_help=True)


providers_app = CommandGroup(help="Installed provider plugins, and the health of configured instances.")


@contextmanager
def plugins_said_once() -> Iterator[None]:
    """Each installed plugin left out (an entry point whose import fails, a failing
    ``register_providers`` hook) said once on stderr, as ``warning: ...`` when the block ends,
    whatever the output format; not when the block's error already says it (an instance of the
    configuration uses that plugin: the command's one ``error:`` line). The library's own log
    line as the plugins load is not printed meanwhile: with the command's line, the same
    problem was shown twice."""
    plugins_log = logging.getLogger("smsgate.plugins")
    was = plugins_log.disabled
    plugins_log.disabled = True
    try:
        try:
            yield
        except SmsgateError as exc:
            _warn_left_out(str(exc))
            raise
        _warn_left_out("")
    finally:
        plugins_log.disabled = was


def _warn_left_out(said: str) -> None:
    """``warning: WHY`` on stderr for each plugin left out that ``said`` (an error) does not name."""
    for why in default_plugins().broken().values():
        if why not in said:
            err_console.print(Text.assemble(("warning:", "yellow"), " ", visible(why)), soft_wrap=True)


def providers(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List installed provider plugins and their capabilities (``providers health``: each instance's state)."""
    if ctx.invoked_subcommand is not None:
        return
    with plugins_said_once():  # left out (the others load): said on stderr, whatever the format
        found = default_plugins().providers()
    if as_json:
        print(json.dumps({n: c.capabilities.as_dict() for n, c in sorted(found.items())}))
        return
    if not found:
        console.print("no provider plugins installed (pip install smsgate-squad, ...)")
        return
    # one row per capability, one column per provider: stays readable in an 80-column terminal
    names = sorted(found)
    caps = {name: found[name].capabilities.as_dict() for name in names}
    table = Table("capability", *names)
    for flag in caps[names[0]]:
        table.add_row(flag, *["yes" if v is True else "-" if v is False else str(v)
                              for v in (caps[name][flag] for name in names)])
    console.print(table)


providers_app.callback(invoke_without_command=True)(handles_errors(providers))


@providers_app.command("health")
def providers_health(config: ConfigOpt = None, tenant: TenantOpt = None, as_json: JsonOpt = False) -> None:
    """Each provider instance's circuit breaker and how full its limits are (shared by every process)."""
    gw, t = open_tenant(config, tenant, read_only=True)
    with gw:
        health = t.health()
    if as_json:
        print(json.dumps({name: asdict(h) for name, h in health.items()}, default=str))
        return
    if not health:
        console.print(f"tenant {t.name} has no provider instances configured: nothing to report")
        return
    table = compact_table("instance", "plugin", "breaker", "limits", title=f"tenant {t.name}")
    for name, h in health.items():
        breaker = h.breaker.state
        if h.breaker.state == "open":
            breaker += f" (probe in {h.breaker.retry_in:.0f}s)"
        elif h.breaker.failures:
            breaker += f" ({h.breaker.failures} failures)"
        limits = "; ".join(
            f"{lim.label + ' ' if lim.label else ''}{lim.used}/{lim.count} "
            + ("requests in flight" if lim.unit == "requests" else f"{lim.unit} per {_period(lim.period)}")
            + ("" if lim.wait <= 0 else f", full for {lim.wait:.1f}s" if lim.spacing is None
               else f", next in {lim.wait:.1f}s (spaced {lim.spacing:g}s apart)")
            + (" (its state was lost: Redis emptied)" if lim.lost else "")
            for lim in h.limits
        ) or "none"
        table.add_row(name, h.plugin, breaker, limits)
    console.print(table)


OnlineOpt = Annotated[bool, typer.Option(
    "--online", help="Also call each provider instance (a harmless authenticated call: nothing sent): "
                     "reachable, credentials accepted, sender registered where the vendor can tell.")]


@config_app.command("check")
def config_check(config: ConfigOpt = None, online: OnlineOpt = False, as_json: JsonOpt = False) -> None:
    """Validate the configuration and instantiate every provider (exit 2 at the first problem).

    --online then calls every instance and prints one row each; exit 2 if any failed
    (130 after Ctrl-C, which changes nothing).
    """
    with plugins_said_once():  # a plugin left out: its warning, or the error of an instance using it
        settings = load_settings(config)
        require_tenants(settings, config)
        gw = open_gateway(settings, stores=False)  # and the tenants stored with 'smsgate tenant add'
        try:
            tenants = len(settings.tenants) + len(stored_tenant_names(gw))
            if not tenants:
                raise no_tenants_error(config)
            lines = gw.check()
        except BaseException:
            gw.close()
            raise
    with gw:
        shared = settings.traffic not in ("store", "local")
        if shared:
            _read_traffic(gw, settings)
        if online:
            with on_interrupt("nothing was changed (the online check only reads); run 'smsgate config check "
                              "--online' again"):
                _check_online(gw, as_json)
            return
    if as_json:
        print(json.dumps({"store": shown_url(settings.store), "instances": lines}
                         | ({"traffic": shown_url(settings.traffic)} if shared else {})))
        return
    console.print(f"store: {shown_url(settings.store)}", highlight=False)
    if shared:
        console.print(f"traffic: {shown_url(settings.traffic)} (limits and breakers read)", highlight=False)
    for line in lines:
        console.print(f"ok  {line}")
    console.print(Text(f"{tenants} tenant(s), {len(lines)} provider instance(s) OK", style="green"))


def _read_traffic(gw: Gateway, settings: Any) -> None:
    """Read one tenant's limits and breakers where ``traffic`` keeps them (a Redis), as every
    send does first: a Redis that cannot be reached is a :class:`~smsgate.errors.StoreError`
    now, not at each send."""
    for name, tenant in settings.tenants.items():
        if tenant.providers:
            gw.tenant(name).health()
            return


def _yes_no(value: bool | None, no: str = "NO") -> str:
    return "-" if value is None else "yes" if value else no


def _check_online(gw: Gateway, as_json: bool) -> None:
    """``config check --online``: a row per instance; exit 2 if any failed."""
    from smsgate.checks import check_online

    results = check_online(gw)
    failed = [r for r in results if r.failed]
    if as_json:
        print(json.dumps([r.as_dict() for r in results]))
    else:
        table = compact_table("instance", "plugin", "reachable", "credentials", "sender", "result")
        for r in results:
            sender = ("-" if r.sender is None else f"{r.sender}: cannot tell" if r.sender_valid is None
                      else f"{r.sender}: {_yes_no(r.sender_valid, 'NOT REGISTERED')}")
            result = Text(visible(f"{r.outcome}: {r.detail}"), style="red" if r.failed else "")
            table.add_row(r.name, r.plugin, _yes_no(r.reachable), _yes_no(r.credentials_accepted, "REJECTED"),
                          sender, result)
        console.print(table)
        unchecked = sum(r.outcome == "not checked" for r in results)
        console.print(f"{len(results) - len(failed) - unchecked} ok, {len(failed)} failed, {unchecked} not checked",
                      highlight=False)
    if failed:
        err_console.print(Text.assemble(("error:", "red"), f" {len(failed)} of {len(results)} provider instance(s) "
                                        f"failed the online check: {', '.join(r.name for r in failed)}"),
                          soft_wrap=True)
        raise typer.Exit(ERROR_EXIT)


def _period(seconds: float) -> str:
    names = {1.0: "second", 60.0: "minute", 3600.0: "hour", 86400.0: "day"}
    return names.get(seconds, f"{seconds:g}s")


