"""``smsgate tenant``: tenants kept in the store (added, listed, removed, their data erased, their credentials
rotated).

The store is the configuration's (``store = ...``) unless ``--store`` names one. Credentials
are encrypted with ``$SMSGATE_TENANT_KEY`` (``smsgate tenant keygen`` makes a key). A tenant's
configuration (the table that would follow ``[tenants.NAME]`` in smsgate.toml, TOML or JSON)
and new credentials are read from a file or standard input, never from the command line
(where shell history and process lists would keep them). See docs/tenants.md.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from smsgate.cli._common import (
    ERROR_EXIT,
    NO_EXIT,
    CommandGroup,
    ConfigOpt,
    JsonOpt,
    compact_table,
    confirm,
    console,
    err_console,
    load_settings,
    missing_store_note,
    store_file_missing,
)
from smsgate.config import MAX_CONFIG_BYTES, _substitute, config_text
from smsgate.errors import ConfigError, SmsgateError
from smsgate.tenants import StoredTenants, load_tenant_file, new_key, validate_tenant

__all__ = ["tenant_app"]

tenant_app = CommandGroup(help="Manage tenants kept in the store (provisioned at run time).", no_args_is_help=True)

StoreOpt = Annotated[str | None, typer.Option("--store", help="Store URL (default: the configuration's).")]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do it without asking.")]
NameArg = Annotated[str, typer.Argument(help="The tenant's name (as in gw.tenant(NAME) and --tenant).",
                                        show_default=False)]
SourceArg = Annotated[str | None, typer.Argument(
    help="A TOML or JSON file, or - for standard input (default: standard input, piped).", show_default=False)]


def _open(config: Path | None, store: str | None) -> tuple[StoredTenants, set[str]]:
    settings = load_settings(config, defer_secrets=True)
    return StoredTenants(store or settings.store), set(settings.tenants)


def _missing(config: Path | None, store: str | None) -> tuple[str | None, set[str]]:
    """For a command that only reads or removes: what to say when the store is an SQLite file
    that does not exist (``None`` when it does), so that the command does not create it."""
    settings = load_settings(config, defer_secrets=True)
    url = store or settings.store
    note = missing_store_note(url, config, given=store is not None) if store_file_missing(url) else None
    return note, set(settings.tenants)


def _not_shadowed(name: str, configured: set[str], doing: str, instead: str) -> None:
    """:class:`ConfigError` when the configuration file defines tenant ``name``: every gateway
    uses the file's, so ``doing`` to the stored one would change nothing it uses."""
    if name in configured:
        raise ConfigError(f"tenant {name!r} is defined in the configuration file, which wins over stored "
                          f"tenants: {doing} would change nothing a gateway uses; {instead}")


def _source(source: str | None, command: str, thing: str) -> str:
    """The file to read ``thing`` from: ``source``, or ``-`` (standard input) when none is given
    and standard input is piped; at a terminal, a :class:`ConfigError` saying what to give."""
    if source is not None:
        return source
    if sys.stdin.isatty():
        raise ConfigError(f"no file given and standard input is a terminal: give a file ({command} FILE) "
                          f"or pipe the {thing} as TOML (cat FILE | {command}); '{command} -' reads "
                          "what you type (Ctrl-D ends it)")
    return "-"


def _named_file(exc: SmsgateError, origin: str, tenant: str, table: str, nothing: str = "nothing stored",
                ) -> SmsgateError:
    """An error of ``tenant add NAME FILE`` (or ``tenant rotate NAME INSTANCE FILE``) naming FILE
    (``origin``) first. The file holds the table ``table`` of smsgate.toml (``tenants.acme``;
    ``tenants.acme.providers.main.credentials``) of tenant ``tenant``. One about what the file says names the key at
    fault as a path in the file (``acme.toml: providers.main.plugin: unknown provider plugin
    ...``), where the library names it as in smsgate.toml (``tenants.acme.providers.main.plugin``,
    its ``field``, kept); any other says what kept the file from being used (``acme.toml:
    nothing stored: the store holds data under the tenant name ...``). An error that names the
    file already (it cannot be read, invalid TOML) is returned as it is."""
    text = str(exc)
    if text.startswith((f"{origin}: ", f"config file {origin} ")):
        return exc
    field = exc.field if isinstance(exc, ConfigError) else None
    if field is not None and (field == "tenants" or field.startswith(f"{table}.")):
        if field != "tenants":  # (that one shows smsgate.toml's headers the file holds, as they are)
            text = text.replace(f"[{table}.", "[").replace(f"[{table}]", "at the file's top level")
            text = text.removeprefix(f"{table}.").removeprefix(f"{table}: ")
        text = text.removeprefix(f"tenant {tenant!r}: ").replace(f"; and tenant {tenant!r}: ", "; and ")
        return ConfigError(f"{origin}: {text}", field=field)
    told = f"{origin}: {nothing}: {text}"
    return ConfigError(told, field=field) if isinstance(exc, ConfigError) else SmsgateError(told)


def _read(source: str | None, what: str, command: str, thing: str, tenant: str | None = None,
          *, expected: str) -> dict[str, object]:
    """``source`` read (``None``: standard input, unless it is a terminal: there, reading would
    just wait for a paste nobody knew was expected, so the user is told what to give). With
    ``tenant`` (a tenant's whole configuration), an unset ``${VAR}`` is said together with the
    file's other problems, as for smsgate.toml. ``expected``: the file a directory given
    instead should have been (the configuration file's hint, ``DIR/smsgate.toml``, is not it)."""
    source = _source(source, command, thing)
    if source != "-" and Path(source).is_dir():
        raise ConfigError(f"{source}: is a directory; give the path of {expected}")
    stdin = config_text(sys.stdin.buffer.read(MAX_CONFIG_BYTES + 1), "standard input") if source == "-" else None
    data = load_tenant_file(source, stdin)
    # ${VAR} references are filled from the environment, so files need not hold secrets
    try:
        substituted: dict[str, object] = _substitute(data, what, os.environ)
    except ConfigError as missing:
        if tenant is None:
            raise
        try:  # the rest of the file, its unset credentials left empty
            validate_tenant(tenant, _substitute(data, what, os.environ, {}))
        except ConfigError as other:
            raise ConfigError(f"{missing}; and {other}", field=missing.field) from None
        raise
    return substituted


@tenant_app.command("add")
def tenant_add(name: NameArg, source: SourceArg = None, config: ConfigOpt = None, store: StoreOpt = None,
               replace: Annotated[bool, typer.Option("--replace", help="Replace a stored tenant.")] = False,
               adopt_data: Annotated[bool, typer.Option(
                   "--adopt-data", help="The store holds data under this name that is this tenant's own (a "
                                        "tenant moved from the configuration file): take it over.")] = False) -> None:
    """Store a tenant: its providers (with credentials), routes, region... from a file or stdin.

    Refused while the store holds data under the name (left by a removed tenant): erase it
    first ('smsgate tenant erase NAME'), or pass --adopt-data when it is this tenant's own."""
    tenants, configured = _open(config, store)
    try:
        _not_shadowed(name, configured, "storing it", "choose another name or remove it from the file")
        source = _source(source, f"smsgate tenant add {name}", "tenant's configuration")
        origin = "standard input" if source == "-" else source
        try:  # every error from here on names the file (and the key at fault in it)
            data = _read(source, f"tenants.{name}", f"smsgate tenant add {name}", "tenant's configuration", name,
                         expected=f"a tenant file: TOML or JSON of one tenant's table (what follows "
                                  f"[tenants.{name}] in smsgate.toml), or - for standard input")
            version = tenants.update(name, data) if replace else tenants.add(name, data, adopt_data=adopt_data)
        except SmsgateError as exc:
            raise _named_file(exc, origin, name, f"tenants.{name}") from None
    finally:
        tenants.close()
    console.print(f"tenant {name} {'replaced' if replace else 'added'} (version {version})")


@tenant_app.command("list")
def tenant_list(config: ConfigOpt = None, store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """List stored tenants and their provider instances (never a credential; needs no key).

    A tenant whose stored configuration cannot be read is listed all the same ('unreadable';
    in JSON its 'error'), its error printed on stderr: exit 2 after the list."""
    absent, _ = _missing(config, store)
    if absent is not None:  # nothing stored; opening the store would create its file
        if as_json:
            print("[]")
        else:
            console.print(f"no tenants stored: {absent}; store one with 'smsgate tenant add NAME FILE'",
                          soft_wrap=True, markup=False)
        return
    tenants, configured = _open(config, store)
    try:
        infos = tenants.info()
    finally:
        tenants.close()
    if as_json:
        print(json.dumps([{"name": i.name, "version": i.version, "updated_at": i.updated_at.isoformat(),
                           "providers": i.providers, "shadowed": i.name in configured, "error": i.error}
                          for i in infos]))
    elif not infos:
        console.print("no tenants stored (the configuration's tenants are not listed here); "
                      "store one with 'smsgate tenant add NAME FILE'", soft_wrap=True, markup=False)
    else:
        table = compact_table("tenant", "version", "updated", "providers")
        for i in infos:
            shown = ", ".join(f"{inst} ({plugin})" for inst, plugin in i.providers.items()) or "none"
            if i.error is not None:
                shown = "unreadable (see the error below)"
            note = " [the configuration file's tenant of this name is used]" if i.name in configured else ""
            table.add_row(i.name, str(i.version), i.updated_at.isoformat(timespec="seconds"), shown + note)
        console.print(table)
    for i in infos:
        if i.error is not None:
            err_console.print(Text.assemble(("error:", "red"), " ", i.error), soft_wrap=True)
    if any(i.error is not None for i in infos):
        raise typer.Exit(ERROR_EXIT)


@tenant_app.command("remove")
def tenant_remove(name: NameArg, config: ConfigOpt = None, store: StoreOpt = None,
                  erase: Annotated[bool, typer.Option(
                      "--erase", help="Delete its data too (messages, campaigns, contact lists, opt-outs...): "
                                      "see 'smsgate tenant erase'.")] = False,
                  yes: YesOpt = False) -> None:
    """Remove a stored tenant (gateways refuse it from their next check). Exit 1 if it was not stored.

    Its unfinished campaigns are cancelled; its data stays in the store (for 'smsgate store
    purge') unless --erase, and a new tenant is refused the name while it is there. --erase of
    a tenant removed before erases the data it left (as 'smsgate tenant erase'; exit 1 still)."""
    absent, configured = _missing(config, store)
    if absent is not None:
        if erase:
            _not_shadowed(name, configured, "erasing its data", "the file's tenant of this name uses it")
        console.print(f"tenant {name} was not stored ({absent})", soft_wrap=True, markup=False)
        raise typer.Exit(NO_EXIT)
    tenants, configured = _open(config, store)
    try:
        deleted = None
        if erase:
            _not_shadowed(name, configured, "erasing its data", "the file's tenant of this name uses it")
            # a tenant removed before: the data it left is what --erase is for (nothing there: no question)
            if tenants.store.get_tenant_row(name) is not None or tenants.store.tenant_data(name):
                _confirm(tenants, name, yes)
                deleted = 0
        found = tenants.remove(name)
        if deleted is not None:
            deleted = tenants.erase(name)
    finally:
        tenants.close()
    console.print(f"tenant {name} {'removed' if found else 'was not stored'}"
                  + (f"; {deleted} row(s) of its data erased" if deleted is not None else ""))
    if not found:
        raise typer.Exit(NO_EXIT)


@tenant_app.command("erase")
def tenant_erase(name: NameArg, config: ConfigOpt = None, store: StoreOpt = None, yes: YesOpt = False) -> None:
    """Delete the data a removed tenant left under its name (messages, campaigns, lists, opt-outs...).

    Everything the store holds under the name goes: messages and their history, campaigns,
    contact lists, opt-outs and opt-ins, idempotency keys, inbound messages. Refused while the name is a
    stored tenant (remove it first) or a tenant of the configuration file. Exit 1 if there was
    nothing to erase."""
    absent, configured = _missing(config, store)
    if absent is not None:
        _not_shadowed(name, configured, "erasing its data", "the file's tenant of this name uses it")
        console.print(f"the store holds no data under the tenant name {name} ({absent})",
                      soft_wrap=True, markup=False)
        raise typer.Exit(NO_EXIT)
    tenants, configured = _open(config, store)
    try:
        _not_shadowed(name, configured, "erasing its data", "the file's tenant of this name uses it")
        if tenants.store.get_tenant_row(name) is not None:
            raise ConfigError(f"tenant {name!r} is stored: remove it first ('smsgate tenant remove {name} --erase' "
                              "does both)", field=f"tenants.{name}")
        if not tenants.store.tenant_data(name):
            console.print(f"the store holds no data under the tenant name {name}")
            raise typer.Exit(NO_EXIT)
        _confirm(tenants, name, yes)
        deleted = tenants.erase(name)
    finally:
        tenants.close()
    console.print(f"tenant name {name}: {deleted} row(s) erased")


def _confirm(tenants: StoredTenants, name: str, yes: bool) -> None:
    """Say what erasing ``name``'s data deletes and ask (unless ``yes``); exit 1 if not confirmed."""
    held = tenants.store.tenant_data(name)
    console.print(f"erasing tenant name {name} deletes its {', '.join(held) or 'data (none now)'} for good")
    confirm("Erase it?", yes=yes, verb="erase")


@tenant_app.command("rotate")
def tenant_rotate(name: NameArg, instance: Annotated[str, typer.Argument(
                  help="The provider instance (its name under [tenants.NAME.providers]).", show_default=False)], source: SourceArg = None, config: ConfigOpt = None,
                  store: StoreOpt = None,
                  replace_all: Annotated[bool, typer.Option(
                      "--replace-all", help="Make these the instance's only credentials (drop the others).")] = False,
                  ) -> None:
    """New values for credentials of one provider instance (api_key = "..." from a file or stdin).

    The instance's other credentials are kept (--replace-all drops them). Gateways use the new
    values from their next request.
    """
    absent, configured = _missing(config, store)
    if absent is not None:
        _not_shadowed(name, configured, "rotating the stored one's credentials",
                      "change the credentials in the file")
        raise ConfigError(f"tenant {name!r} is not stored: {absent}")
    tenants, configured = _open(config, store)
    try:
        _not_shadowed(name, configured, "rotating the stored one's credentials",
                      "change the credentials in the file, or remove the tenant from the file to use the stored one")
        command = f"smsgate tenant rotate {name} {instance}"
        source = _source(source, command, "new credentials")
        table = f"tenants.{name}.providers.{instance}.credentials"
        try:  # every error from here on names the file (and the credential at fault in it)
            data = _read_credentials(source, table, command, name, instance)
            before = tenants.credential_names(name).get(instance, [])
            version = tenants.rotate(name, instance, {k: str(v) for k, v in data.items()}, replace=replace_all)
        except SmsgateError as exc:
            raise _named_file(exc, "standard input" if source == "-" else source, name, table,
                              "nothing rotated") from None
    finally:
        tenants.close()
    kept = [] if replace_all else sorted(set(before) - set(data))
    dropped = sorted(set(before) - set(data)) if replace_all else []
    said = f"tenant {name}: credentials of {instance} replaced: {', '.join(sorted(data))}"
    said += f"; kept: {', '.join(kept)}" if kept else ""
    said += f"; removed: {', '.join(dropped)}" if dropped else ""
    console.print(f"{said} (version {version})")


def _read_credentials(source: str, table: str, command: str, name: str, instance: str) -> dict[str, object]:
    """The new credentials ``tenant rotate`` reads from ``source``: a table of strings."""
    try:
        data = _read(source, table, command, "new credentials",
                     expected="a file of the new credentials (TOML lines such as secret_key = \"...\"), or - "
                              "for standard input")
    except ConfigError as exc:
        if "invalid TOML" not in str(exc):
            raise
        # the usual slip: the bare key piped in (echo sk_live_... | smsgate tenant rotate ...)
        raise ConfigError(f"{exc}; give the credentials as TOML lines naming each one, e.g. echo "
                          f"'secret_key = \"...\"' | {command} -") from None
    bad = [k for k, v in data.items() if not isinstance(v, (str, int))]
    if bad or not data:
        origin = "standard input" if source == "-" else source
        raise ConfigError(f"{origin}: credentials of {name}/{instance}: expected a table of strings such as "
                          f"api_key = \"...\"{'; not strings: ' + ', '.join(bad) if bad else ''}",
                          field=f"{table}.{bad[0]}" if bad else table)
    return data


@tenant_app.command("keygen")
def tenant_keygen() -> None:
    """Print a new encryption key for SMSGATE_TENANT_KEY (put it first to rotate keys, then run rekey)."""
    print(new_key())


@tenant_app.command("rekey")
def tenant_rekey(config: ConfigOpt = None, store: StoreOpt = None) -> None:
    """Re-encrypt every stored tenant with the first key of SMSGATE_TENANT_KEY (then drop the old keys)."""
    absent, _ = _missing(config, store)
    if absent is not None:
        console.print(f"0 tenant(s) re-encrypted: {absent}", soft_wrap=True, markup=False)
        return
    tenants, _ = _open(config, store)
    try:
        count = tenants.rekey()
    finally:
        tenants.close()
    console.print(f"{count} tenant(s) re-encrypted with the first key")
