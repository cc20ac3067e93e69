"""The ``smsgate`` command with every command group registered (needs the ``cli`` extra).

:func:`smsgate.cli.main` imports this module only once it knows typer and rich are
installed; nothing in the library imports it.
"""

from __future__ import annotations

# isort: off
# Registers the root commands, in the order `smsgate --help` lists them.
from smsgate.cli import messages, config, stats, sandbox, serve, new_provider  # noqa: F401
# isort: on
from smsgate.cli._common import app
from smsgate.cli.campaign import campaign_app
from smsgate.cli.config import config_app, providers_app
from smsgate.cli.contacts import contacts_app
from smsgate.cli.db import db_app
from smsgate.cli.optout import optout_app
from smsgate.cli.route import route_app
from smsgate.cli.store import store_app
from smsgate.cli.tenant import tenant_app

__all__ = ["app"]

app.add_typer(campaign_app, name="campaign")
app.add_typer(optout_app, name="optout")
app.add_typer(contacts_app, name="contacts")
app.add_typer(providers_app, name="providers")
app.add_typer(route_app, name="route")
app.add_typer(config_app, name="config")
app.add_typer(db_app, name="db")
app.add_typer(store_app, name="store")
app.add_typer(tenant_app, name="tenant")
