"""The ``smsgate`` command line.

Configuration comes from ``--config``, else ``$SMSGATE_CONFIG``, else
``./smsgate.toml``. Every command that acts for a tenant takes ``--tenant``
(default: the only tenant, if there is one).

One module per command group; every command is registered through
:class:`smsgate.cli._common.CommandGroup`, so an
:class:`~smsgate.errors.SmsgateError` always ends as one ``error: ...`` line on
stderr with exit code 2. Exit codes: 0 ok (or "yes"), 1 a negative answer
(``optout check``: not opted out; a declined prompt), 2 an error, 130 Ctrl-C.
"""

from __future__ import annotations

import sys

# isort: off
# Registers the root commands, in the order `smsgate --help` lists them.
from smsgate.cli import messages, config, stats, sandbox, serve, new_provider  # noqa: F401
# isort: on
from smsgate.cli._common import app
from smsgate.cli.campaign import campaign_app
from smsgate.cli.config import config_app, providers_app
from smsgate.cli.db import db_app
from smsgate.cli.optout import optout_app
from smsgate.cli.route import route_app
from smsgate.cli.tenant import tenant_app

__all__ = ["app", "main"]

app.add_typer(campaign_app, name="campaign")
app.add_typer(optout_app, name="optout")
app.add_typer(providers_app, name="providers")
app.add_typer(route_app, name="route")
app.add_typer(config_app, name="config")
app.add_typer(db_app, name="db")
app.add_typer(tenant_app, name="tenant")


def main() -> None:
    """Entry point of the ``smsgate`` console script."""
    try:
        app()
    except KeyboardInterrupt:  # pragma: no cover
        sys.exit(130)
