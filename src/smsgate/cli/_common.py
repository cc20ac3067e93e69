"""What every ``smsgate`` command shares: the root app, options, consoles, the error wrapper, tables.

Every command is registered through a :class:`CommandGroup`, whose ``command()``
wraps it in :func:`handles_errors`: a :class:`~smsgate.errors.SmsgateError`
becomes one ``error: ...`` line on stderr and exit code 2, never a traceback.

Exit codes of every command: 0 ok (or "yes" to a command that asks a question),
1 a negative answer (``optout check``: not opted out; a declined prompt), 2 an error.
Everything they print goes through :data:`console` and :data:`err_console`, which
never read markup: user data and error texts are shown as written.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar, cast

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from smsgate.config import Settings, load_config
from smsgate.errors import ConfigError, SmsgateError
from smsgate.gateway import Gateway, Tenant

__all__ = [
    "ERROR_EXIT",
    "NO_EXIT",
    "CommandGroup",
    "ConfigOpt",
    "JsonOpt",
    "TenantOpt",
    "app",
    "compact_table",
    "console",
    "err_console",
    "fail",
    "handles_errors",
    "load_settings",
    "no_tenants_error",
    "open_tenant",
]

F = TypeVar("F", bound=Callable[..., Any])

#: The exit code of a command that failed with a :class:`~smsgate.errors.SmsgateError`
#: (the same as click's for a usage error).
ERROR_EXIT = 2
#: The exit code of a command whose question has the answer "no" (``optout check``: not opted out).
NO_EXIT = 1

#: Standard output (tables, results) and standard error (errors). Markup is off: what they print
#: (numbers, names, message texts, CSV values, vendors' errors such as ``[squad] ...``, hints such
#: as ``pip install 'smsgate[server]'``) is shown as written; styles come from :class:`rich.text.Text`.
console = Console(markup=False)
err_console = Console(stderr=True, markup=False)

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="Path to smsgate.toml.")]
TenantOpt = Annotated[str | None, typer.Option("--tenant", "-t", help="Tenant name.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def fail(exc: Exception) -> NoReturn:
    """Print ``error: <exc>`` as one line on stderr; exit 2 (:data:`ERROR_EXIT`)."""
    message = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    err_console.print(Text.assemble(("error:", "red"), " ", message), soft_wrap=True)
    raise typer.Exit(ERROR_EXIT)


def handles_errors(fn: F) -> F:
    """Wrap a command so that a :class:`~smsgate.errors.SmsgateError` ends it through :func:`fail`."""

    @functools.wraps(fn)
    def command(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except SmsgateError as exc:
            fail(exc)

    command.handles_smsgate_errors = True  # type: ignore[attr-defined]  # for the test that all commands do
    return cast(F, command)


class CommandGroup(typer.Typer):
    """A :class:`typer.Typer` whose every command runs inside :func:`handles_errors`."""

    def command(self, *args: Any, **kwargs: Any) -> Callable[[F], F]:
        """Like :meth:`typer.Typer.command`; the registered callback is wrapped in :func:`handles_errors`."""
        register = super().command(*args, **kwargs)

        def decorator(fn: F) -> F:
            register(handles_errors(fn))
            return fn

        return decorator


#: The root ``smsgate`` command; the modules of this package add their commands and groups to it.
app = CommandGroup(help="smsgate: one API for SMS across many providers. "
                        "Exit codes: 0 ok, 1 a negative answer (e.g. optout check: not opted out), 2 an error.",
                   no_args_is_help=True, pretty_exceptions_enable=False)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            shown = version("smsgate")
        except PackageNotFoundError:  # pragma: no cover - run from a source tree without installing
            shown = "unknown (not installed)"
        console.print(f"smsgate {shown}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """smsgate: one API for SMS across many providers."""


def _config_path(config: Path | None) -> Path | None:
    if config is None and not os.environ.get("SMSGATE_CONFIG") and Path("smsgate.toml").exists():
        return Path("smsgate.toml")
    return config


def load_settings(config: Path | None, *, defer_secrets: bool = False) -> Settings:
    """The configuration: ``config``, else ``$SMSGATE_CONFIG``, else ``./smsgate.toml``, else defaults.

    ``defer_secrets=True`` (read-only commands) leaves a provider's unset ``${VAR}``
    credential to fail only if that provider is used.
    """
    return load_config(_config_path(config), defer_secrets=defer_secrets)


def no_tenants_error(config: Path | None) -> SmsgateError:
    """The error of a command that needs a tenant when none is configured: where it looked, what to do."""
    path = _config_path(config)
    if path is None and not os.environ.get("SMSGATE_CONFIG"):
        return ConfigError(
            f"no configuration: there is no smsgate.toml in {Path.cwd()} and $SMSGATE_CONFIG is not set; "
            "create smsgate.toml with a [tenants.NAME] table and its providers (see docs/configuration.md; "
            "'smsgate sandbox' prints provider blocks to start from), or pass --config PATH"
        )
    where = path or os.environ.get("SMSGATE_CONFIG")
    return ConfigError(f"{where} configures no tenant; add a [tenants.NAME] table with its providers "
                       "(see docs/configuration.md)")


def _tenant_name(settings: Settings, tenant: str | None, config: Path | None) -> str:
    if not settings.tenants:
        raise no_tenants_error(config)
    if tenant:
        return tenant
    if len(settings.tenants) == 1:
        return next(iter(settings.tenants))
    raise SmsgateError(
        f"--tenant is required (configured tenants: {', '.join(sorted(settings.tenants))})"
    )


def open_tenant(config: Path | None, tenant: str | None, *, read_only: bool = False) -> tuple[Gateway, Tenant]:
    """A gateway (use it as a context manager) and the tenant named by ``--tenant`` (or the only one).

    ``read_only=True`` for commands that only read the store (``messages``, ``campaign list``...):
    they work without the providers' secrets (a provider whose ``${VAR}`` is unset fails only
    if it is used).
    """
    settings = load_settings(config, defer_secrets=read_only)
    name = _tenant_name(settings, tenant, config)
    gw = Gateway(settings)
    return gw, gw.tenant(name)


def compact_table(*names: str, title: str | None = None) -> Table:
    """A compact table (a rule under the header, one space between columns) whose first
    column (an id, a number, a period) is never wrapped or cut."""
    from rich import box

    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True, padding=(0, 1),
                  show_edge=False, title=title)
    for i, name in enumerate(names):
        table.add_column(name, no_wrap=i == 0)
    return table
