"""``smsgate sandbox`` and ``smsgate demo``: the installed provider emulators on loopback ports.

Both need the ``server`` extra; without it they say ``pip install 'smsgate[server]'``
in one line (:func:`smsgate.server.require_server`).
"""

from __future__ import annotations

import json
from importlib.metadata import entry_points
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from smsgate.cli._common import app, console
from smsgate.errors import SmsgateError

__all__ = ["EMULATOR_GROUP", "demo", "sandbox"]

#: The entry-point group provider packages register their emulators in.
EMULATOR_GROUP = "smsgate.emulators"


def _emulators() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=EMULATOR_GROUP)}


@app.command()
def sandbox(
    port: Annotated[int, typer.Option(help="First port; emulators take consecutive ports.")] = 8801,
) -> None:
    """Serve every installed provider emulator on loopback until interrupted."""
    import time

    from smsgate.server import LiveServer, require_server

    require_server("smsgate sandbox")
    eps = _emulators()
    if not eps:
        raise SmsgateError("no emulators installed (install a provider plugin with the [emulator] extra)")
    servers = []
    blocks = []
    try:
        for i, (name, ep) in enumerate(sorted(eps.items())):
            server = LiveServer(ep.load()(), port=port + i).start()
            servers.append(server)
            creds, settings = _sandbox_credentials(ep)
            console.print(f"{name:15} {server.url}  credentials: {', '.join(sorted(creds))}")
            block: dict[str, Any] = {"plugin": name, "base_url": server.url, "sender": "SMSGATE", **settings}
            block["credentials"] = {**creds, **block.get("credentials", {})}  # the same merge as the demo's
            blocks.append("\n".join([f"[tenants.acme.providers.{name}]",
                                      *(f"{key} = {_toml_value(value)}" for key, value in block.items())]))
        console.print("\nFor smsgate.toml (the emulators' fixed sandbox credentials, not real secrets):\n")
        console.print("\n\n".join(blocks), highlight=False, soft_wrap=True)
        console.print("\nCtrl-C to stop.")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    finally:
        for s in servers:
            s.stop()


def _sandbox_credentials(ep: Any) -> tuple[dict[str, str], dict[str, Any]]:
    """The credentials an emulator accepts by default, and the settings it needs."""
    import importlib

    module = importlib.import_module(ep.value.split(":")[0])
    return dict(getattr(module, "SANDBOX_CREDENTIALS", {})), dict(getattr(module, "SANDBOX_SETTINGS", {}))


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
    """Run the demo: a campaign through the provider emulators, logged in SQLite."""
    from smsgate.demo import run_demo

    run_demo(db, console if console.is_terminal else Console(width=120, markup=False))
