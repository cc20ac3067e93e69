"""``smsgate db upgrade``: create or upgrade the store schema."""

from __future__ import annotations

from typing import Annotated

import typer

from smsgate.cli._common import CommandGroup, ConfigOpt, console, load_settings

__all__ = ["db_app"]

db_app = CommandGroup(help="Store maintenance.", no_args_is_help=True)


@db_app.command("upgrade")
def db_upgrade(config: ConfigOpt = None,
               url: Annotated[str | None, typer.Option(help="Store URL (overrides config).")] = None) -> None:
    """Create or upgrade the store schema."""
    from smsgate.store import open_store

    store = open_store(url or load_settings(config).store)
    try:
        console.print(f"schema version {store.schema_version()}")
    finally:
        store.close()
