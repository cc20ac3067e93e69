"""What every ``smsgate`` command shares: the root app, options, consoles, the error wrapper, tables.

Every command is registered through a :class:`CommandGroup`, whose ``command()``
wraps it in :func:`handles_errors`: a :class:`~smsgate.errors.SmsgateError`
becomes one ``error: ...`` line on stderr and exit code 1, never a traceback.
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
from smsgate.errors import SmsgateError
from smsgate.gateway import Gateway, Tenant

__all__ = [
    "ERROR_EXIT",
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
    "open_tenant",
]

F = TypeVar("F", bound=Callable[..., Any])

#: The exit code of a command that failed with a :class:`~smsgate.errors.SmsgateError`.
ERROR_EXIT = 1

#: Standard output (tables, results) and standard error (errors). Markup is off: what they print
#: (numbers, names, message texts, CSV values, vendors' errors such as ``[squad] ...``, hints such
#: as ``pip install 'smsgate[server]'``) is shown as written; styles come from :class:`rich.text.Text`.
console = Console(markup=False)
err_console = Console(stderr=True, markup=False)

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="Path to smsgate.toml.")]
TenantOpt = Annotated[str | None, typer.Option("--tenant", "-t", help="Tenant name.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def fail(exc: Exception) -> NoReturn:
    """Print ``error: <exc>`` as one line on stderr; exit 1."""
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
app = CommandGroup(help="smsgate: one API for SMS across many providers.", no_args_is_help=True,
                   pretty_exceptions_enable=False)


def load_settings(config: Path | None) -> Settings:
    """The configuration: ``config``, else ``$SMSGATE_CONFIG``, else ``./smsgate.toml``, else defaults."""
    if config is None and not os.environ.get("SMSGATE_CONFIG") and Path("smsgate.toml").exists():
        config = Path("smsgate.toml")
    return load_config(config)


def _tenant_name(settings: Settings, tenant: str | None) -> str:
    if tenant:
        return tenant
    if len(settings.tenants) == 1:
        return next(iter(settings.tenants))
    raise SmsgateError(
        f"--tenant is required (configured tenants: {', '.join(sorted(settings.tenants)) or 'none'})"
    )


def open_tenant(config: Path | None, tenant: str | None) -> tuple[Gateway, Tenant]:
    """A gateway (use it as a context manager) and the tenant named by ``--tenant`` (or the only one)."""
    settings = load_settings(config)
    gw = Gateway(settings)
    return gw, gw.tenant(_tenant_name(settings, tenant))


def compact_table(*names: str, title: str | None = None) -> Table:
    """A compact table (a rule under the header, one space between columns) whose first
    column (an id, a number, a period) is never wrapped or cut."""
    from rich import box

    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True, padding=(0, 1),
                  show_edge=False, title=title)
    for i, name in enumerate(names):
        table.add_column(name, no_wrap=i == 0)
    return table
