"""``smsgate config check`` and ``smsgate providers``: the configuration and the installed plugins."""

from __future__ import annotations

import json

from rich.table import Table
from rich.text import Text

from smsgate.cli._common import CommandGroup, ConfigOpt, JsonOpt, app, console, load_settings
from smsgate.gateway import Gateway
from smsgate.plugins import default_plugins

__all__ = ["config_app", "providers"]

config_app = CommandGroup(help="Inspect configuration.", no_args_is_help=True)


@app.command()
def providers(as_json: JsonOpt = False) -> None:
    """List installed provider plugins and their capabilities."""
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


@config_app.command("check")
def config_check(config: ConfigOpt = None) -> None:
    """Validate the configuration and instantiate every provider."""
    settings = load_settings(config)
    with Gateway(settings) as gw:
        lines = gw.check()
    console.print(f"store: {_shown_url(settings.store)}", highlight=False)
    for line in lines:
        console.print(f"ok  {line}")
    console.print(Text(f"{len(settings.tenants)} tenant(s), {len(lines)} provider instance(s) OK", style="green"))


def _shown_url(url: str) -> str:
    """A store URL with its password (and anything that looks like a credential) replaced by ``***``."""
    from urllib.parse import urlsplit, urlunsplit

    from smsgate.errors import redact

    try:
        parts = urlsplit(url)
        if parts.password:  # rebuilt only then: urlunsplit would turn sqlite:///x into sqlite:/x
            host = parts.netloc.rsplit("@", 1)[1]
            url = urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))
    except ValueError:
        return url.split("://")[0] + "://..."
    return redact(url)
