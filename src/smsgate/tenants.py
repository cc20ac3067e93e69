"""Tenants at run time: a :class:`TenantSource` gives the gateway tenants its configuration lacks.

::

    from smsgate import Gateway
    from smsgate.store import open_store
    from smsgate.tenants import StoredTenants

    store = open_store("postgresql://app@db/sms")          # the gateway's store: one for both
    tenants = StoredTenants(store)                          # key from $SMSGATE_TENANT_KEY
    tenants.add("acme", {"providers": {"main": {"plugin": "squad",
                                                "credentials": {"secret_key": "sk_live_..."}}}})
    with store, Gateway("smsgate.toml", store=store, tenants=tenants) as gw:
        gw.tenant("acme").send("+2348012345678", "hello")   # no restart needed

A source answers three questions: its :meth:`~TenantSource.version` (a cheap value
that changes whenever any of its tenants changes), one tenant's configuration with
an etag (:meth:`~TenantSource.get`), and its tenants' names. The gateway asks for
the version on every ``gw.tenant(name)`` (an :class:`~smsgate.AsyncGateway`: on the
handle's first awaited call, in a worker thread, never on the event loop) and at most
once per ``tenant_refresh`` seconds otherwise; when it changed, a tenant whose etag changed gets new provider
objects (new credentials) on its next request and a removed tenant is refused with
:class:`~smsgate.errors.UnknownTenant`. Apps whose tenants live in their own database
or a secrets manager implement the protocol; :class:`StoredTenants` keeps them in the
smsgate store, credentials encrypted with Fernet (extra ``smsgate[tenants]``).

Tenants of the configuration file win: a source's tenant with the same name is
ignored (with a warning), and ``smsgate tenant add`` refuses such a name.
"""

from __future__ import annotations

import difflib
import json
import logging
import os
import sys
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from pydantic import ValidationError as PydanticValidationError

from smsgate.config import (
    TenantConfig,
    _format_error,
    credential_values,
    read_config_file,
    tenant_name_problem,
)
from smsgate.core.campaign import abandon
from smsgate.core.drive import store_driver
from smsgate.core.policy import check_id, wrong_type
from smsgate.errors import ConfigError, NotFound, UnknownTenant, check_bool, shown_value
from smsgate.plugins import PluginManager, check_tenant, default_plugins
from smsgate.store import Store, open_store
from smsgate.store.base import TenantChanged, TenantRow

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

if TYPE_CHECKING:
    from cryptography.fernet import MultiFernet

__all__ = ["KEY_VARIABLE", "StoredTenants", "TenantInfo", "TenantSource", "load_tenant_file", "new_key",
           "read_tenant_config", "source_tenant_names", "validate_tenant"]

log = logging.getLogger(__name__)

#: The environment variable holding the Fernet key(s) of :class:`StoredTenants`:
#: comma-separated, the first encrypts, every one decrypts (key rotation).
KEY_VARIABLE = "SMSGATE_TENANT_KEY"

#: How often a read-modify-write of a stored tenant (a rotation) is tried when other
#: writers keep changing the tenant between its read and its write.
_ATTEMPTS = 5


@runtime_checkable
class TenantSource(Protocol):
    """Where a gateway finds tenants its configuration does not define (see the module doc)."""

    def version(self) -> Hashable:
        """A value that changes whenever any tenant is added, changed or removed (asked
        often: keep it cheap, e.g. one indexed row or a cached number)."""

    def get(self, name: str) -> tuple[TenantConfig, Hashable] | None:
        """Tenant ``name``'s configuration (with its credentials) and an etag that changes
        whenever it changes; ``None`` if there is no such tenant."""

    def names(self) -> list[str]:
        """The names of every tenant of this source."""


def source_tenant_names(configured: Iterable[str], source: TenantSource | None) -> list[str]:
    """The tenants of ``source`` that no configuration tenant (``configured``) shadows, sorted:
    with the configuration's, every tenant a gateway serves (``[*configured, *these]``)."""
    if source is None:
        return []
    shadowed = set(configured)
    return sorted(n for n in source.names() if n not in shadowed)


@dataclass(frozen=True)
class TenantInfo:
    """What ``smsgate tenant list`` shows of a stored tenant: never a credential."""

    name: str
    version: int
    updated_at: datetime
    #: provider instance -> plugin name
    providers: dict[str, str]
    #: why its stored configuration cannot be read (``providers`` is then empty); ``None``
    #: when it can. Such a tenant cannot be used: store it again (``smsgate tenant add --replace``).
    error: str | None = None


def new_key() -> str:
    """A new random Fernet key (for ``SMSGATE_TENANT_KEY``)."""
    fernet = _fernet_module()
    return str(fernet.Fernet.generate_key().decode("ascii"))


def _fernet_module() -> Any:
    try:
        import cryptography.fernet as fernet
    except ImportError:  # pragma: no cover - depends on the environment
        raise ConfigError("stored tenants need the cryptography package: pip install 'smsgate[tenants]'") from None
    return fernet


def _cipher(keys: str | Sequence[str] | None, environ: Mapping[str, str]) -> MultiFernet:
    fernet = _fernet_module()
    if keys is None:
        keys = environ.get(KEY_VARIABLE, "")
    if isinstance(keys, str):
        keys = [k for k in (part.strip() for part in keys.split(",")) if k]
    elif not isinstance(keys, Sequence) or not all(isinstance(k, str) for k in keys):  # 5: a TypeError
        raise wrong_type("keys", keys, "a Fernet key, comma-separated keys, or a list of keys (str)")
    if not keys:
        raise ConfigError(f"stored tenants need an encryption key: set {KEY_VARIABLE} to a Fernet key "
                          "(make one with 'smsgate tenant keygen'); to rotate keys, give several, comma-separated: "
                          "the first encrypts, every one decrypts")
    made = []
    for i, key in enumerate(keys):
        try:
            made.append(fernet.Fernet(key))
        except (ValueError, TypeError):
            # the key itself is a secret: never shown
            raise ConfigError(f"{KEY_VARIABLE}: key {i + 1} of {len(keys)} is not a Fernet key (32 url-safe "
                              "base64-encoded bytes; make one with 'smsgate tenant keygen')") from None
    return fernet.MultiFernet(made)  # type: ignore[no-any-return]


def read_tenant_config(text: str, where: str = "tenant config") -> dict[str, Any]:
    """A tenant's configuration from TOML or JSON text (JSON if it starts with ``{``, or
    ``where``, the file's name, ends with ``.json``).

    The text is one tenant's table, as under ``[tenants.NAME]`` in smsgate.toml:
    ``default_region``, ``sender``, ``[providers.NAME]`` with ``credentials``...
    """
    # a .json file that is not an object ([...], "...") was read as TOML: "invalid TOML"
    is_json = text.lstrip().startswith("{") or where.lower().endswith(".json")
    try:
        data = json.loads(text) if is_json else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{where}: invalid {'JSON' if is_json else 'TOML'}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a table of tenant settings (a JSON object), not a "
                          f"{type(data).__name__}")
    return data


def validate_tenant(name: str, data: Mapping[str, Any] | TenantConfig) -> TenantConfig:
    """``data`` as tenant ``name``'s configuration; a :class:`ConfigError` naming the keys at fault
    (in its text; its ``field`` is the first, as a path in smsgate.toml: ``tenants.acme.default_region``)."""
    if isinstance(data, TenantConfig):
        return data
    if not isinstance(data, Mapping):  # 5 was an AttributeError
        raise wrong_type("config", data, "a mapping (the table under [tenants.NAME] in smsgate.toml) or a "
                                         "smsgate.config.TenantConfig")
    nested = data.get("tenants")
    if isinstance(nested, Mapping):
        # smsgate.toml's form pasted whole (the blocks `smsgate sandbox` prints, say)
        inner = next(iter(nested), "NAME")
        table = nested.get(inner)
        providers = table.get("providers") if isinstance(table, Mapping) else None
        instance = next(iter(providers), "main") if isinstance(providers, Mapping) else "main"
        raise ConfigError(f"tenant {name!r}: this is smsgate.toml's form ([tenants.{inner}...]); a tenant's "
                          f"configuration is the table that follows [tenants.{inner}] there: write "
                          f"[providers.{instance}], not [tenants.{inner}.providers.{instance}]", field="tenants")
    try:
        return TenantConfig.model_validate(dict(data))
    except PydanticValidationError as exc:
        # pydantic's messages name fields, never the SecretStr values; ``field`` is the first key at fault
        first = ".".join(str(part) for part in exc.errors()[0]["loc"]) if exc.errors() else ""
        raise ConfigError(f"tenant {name!r}: {_format_error(exc, TenantConfig, secrets=credential_values(data))}",
                          field=f"tenants.{name}.{first}" if first else f"tenants.{name}") from None


def _split(config: TenantConfig) -> tuple[str, dict[str, dict[str, str]]]:
    """The configuration as JSON without credentials, and the credentials in plain text.

    Keys keep their order: the order of ``providers`` is the tenant's failover order when it
    has no ``routes`` (the first is primary), so it must come back as it was given."""
    secrets = {inst: {k: v.get_secret_value() for k, v in ps.credentials.items()}
               for inst, ps in config.providers.items()}
    data = config.model_dump(mode="json", exclude_unset=True, exclude={"providers": {"__all__": {"credentials"}}})
    return json.dumps(data), secrets


def _stored_table(name: str, text: str, what: str) -> dict[str, Any]:
    """A stored tenant's ``what`` as read from its row: its ``configuration`` (a table whose
    ``providers`` are tables) or its decrypted ``credentials`` (a table per provider instance of
    text values). A :class:`ConfigError` naming the tenant if it cannot be read (never its text)."""
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    tables = data.get("providers", {}) if what == "configuration" and isinstance(data, dict) else data
    readable = isinstance(data, dict) and isinstance(tables, dict) and all(isinstance(t, dict) for t in tables.values())
    if readable and what == "credentials":
        readable = all(isinstance(v, str) for t in tables.values() for v in t.values())
    if not readable:
        raise ConfigError(f"tenant {name!r}: its stored {what} cannot be read (the row is corrupt, or was not "
                          f"written by smsgate); store the tenant again ('smsgate tenant add {name} FILE "
                          f"--replace') or remove it ('smsgate tenant remove {name}')")
    assert isinstance(data, dict)
    return data


class StoredTenants:
    """Tenants kept in the smsgate store (schema version 6), credentials encrypted at rest.

    ``store`` is a :class:`~smsgate.store.Store` or a store URL (opened and migrated; closed
    by :meth:`close`). A tenant is checked before it is stored as ``smsgate config check``
    checks every tenant (:func:`~smsgate.plugins.check_tenant`: its plugins installed, their
    options and credentials accepted, a sender where the vendor needs one), against
    ``plugins`` (default: the installed provider plugins). ``keys``: Fernet keys (default: ``$SMSGATE_TENANT_KEY``, comma-separated);
    the first encrypts, every one decrypts, so a new key goes first and the old one stays
    until :meth:`rekey` has re-encrypted every tenant. Only ciphertext reaches the database;
    the tenant's other settings are stored as JSON in the clear (``smsgate tenant list``
    reads them without a key).

    Implements :class:`TenantSource`: pass it to ``Gateway(config, tenants=...)``.
    """

    def __init__(self, store: Store | str, *, keys: str | Sequence[str] | None = None,
                 environ: Mapping[str, str] | None = None, plugins: PluginManager | None = None) -> None:
        if not isinstance(store, (str, Store)):  # 5 was taken, and an AttributeError at the first call
            raise wrong_type("store", store, "a store URL or a smsgate.store.Store")
        self._own_store = isinstance(store, str)
        self.store = open_store(store) if isinstance(store, str) else store
        self._keys = keys
        self._environ = os.environ if environ is None else environ
        self._cipher_: MultiFernet | None = None
        #: the provider plugins a tenant is checked against before it is stored (default: the installed ones)
        self.plugins = plugins

    def __repr__(self) -> str:
        return f"StoredTenants(store={type(self.store).__name__})"

    @property
    def _cipher(self) -> MultiFernet:
        # made on first use: listing and removing need no key
        if self._cipher_ is None:
            self._cipher_ = _cipher(self._keys, self._environ)
        return self._cipher_

    # ------------------------------------------------------------------ TenantSource
    def version(self) -> int:
        """The store's tenant change counter (one single-row read)."""
        return self.store.tenants_version()

    def get(self, name: str) -> tuple[TenantConfig, int] | None:
        """Tenant ``name`` with its credentials decrypted, and its version; ``None`` if not stored."""
        row = self.store.get_tenant_row(check_id("tenant", name))
        if row is None:
            return None
        data = _stored_table(name, row.config, "configuration")
        secrets = self._decrypt(name, row.secrets)
        for inst, settings in data.get("providers", {}).items():
            settings["credentials"] = secrets.get(inst, {})
        log.debug("stored tenant %s loaded (version %d)", name, row.version)
        return validate_tenant(name, data), row.version

    def names(self) -> list[str]:
        """The stored tenants' names, sorted."""
        return [row.name for row in self.store.list_tenant_rows()]

    # ------------------------------------------------------------------ management
    def add(self, name: str, config: Mapping[str, Any] | TenantConfig, *, adopt_data: bool = False) -> int:
        """Store a new tenant; its version. :class:`ConfigError` if the name is taken, or if
        the tenant fails the check of every tenant (see the class doc), naming the key at
        fault (``exc.field``, e.g. ``tenants.acme.providers.main.plugin``): nothing is stored.

        The name's data (messages, contact lists, campaigns, opt-outs...) is the tenant's:
        when the store still holds data under ``name`` (left by a removed tenant, or by a
        tenant of the configuration file) the tenant is refused with a :class:`ConfigError`
        saying what is there, unless ``adopt_data=True`` (it is this tenant's own: one moved
        from the configuration file into the store) or :meth:`erase` deleted it first.
        """
        check_id("tenant", name)
        check_bool("adopt_data", adopt_data)  # "no" was true
        if not adopt_data and self.store.get_tenant_row(name) is None:
            held = self.store.tenant_data(name)
            if held:
                raise ConfigError(
                    f"the store holds data under the tenant name {name!r} ({', '.join(held)}), which the new "
                    f"tenant would read as its own: if it is this tenant's (a tenant moved from the "
                    f"configuration file) take it over with adopt_data=True ('smsgate tenant add --adopt-data'); "
                    f"else erase it first (StoredTenants.erase, 'smsgate tenant erase {name}') or choose another "
                    "name", field=f"tenants.{name}")
        return self._put(name, config, create=True)

    def update(self, name: str, config: Mapping[str, Any] | TenantConfig) -> int:
        """Replace a stored tenant's whole configuration (:class:`UnknownTenant` if absent)."""
        return self._put(name, config, create=False)

    def remove(self, name: str) -> bool:
        """Delete a stored tenant; whether it existed. Gateways refuse it from their next check.

        Its data stays in the store (the log, for ``smsgate store purge``), but nothing can run
        its campaigns any more: those not finished are ``cancelled`` (their ``pending``
        recipients ``skipped``, reason ``tenant_removed``; see
        :func:`smsgate.core.campaign.abandon`), so a purge can let them go once settled.
        """
        found = self.store.delete_tenant_row(check_id("tenant", name))
        if found:
            cancelled = _abandon_campaigns(self.store, name)
            log.info("stored tenant %s removed%s", name, f"; {cancelled} campaign(s) cancelled" if cancelled else "")
        return found

    def erase(self, name: str) -> int:
        """Delete everything the store holds under the tenant name ``name`` (messages and their
        history, campaigns, contact lists, opt-outs, idempotency keys, inbound messages, kept
        reports, rate-limit state), in one transaction; the rows deleted. For a tenant that is
        gone for good (after :meth:`remove`): a new tenant given the name then starts empty.

        :class:`ConfigError` while ``name`` is a stored tenant (remove it first). A tenant of a
        gateway's configuration file is not known here: never erase one of those (the CLI
        refuses). Opt-outs go too: a number that opted out of the old tenant is not opted out
        of a new one of the same name.
        """
        deleted = self.store.erase_tenant(check_id("tenant", name))  # refuses a stored tenant's name, in its transaction
        log.info("tenant name %s erased: %d rows deleted", name, deleted)
        return deleted

    def rotate(self, name: str, instance: str, credentials: Mapping[str, str], *, replace: bool = False) -> int:
        """Give ``name``'s provider ``instance`` new values of the credentials named in
        ``credentials``, keeping its other credentials (rotating ``api_key`` keeps the
        ``webhook_token``); ``replace=True`` makes ``credentials`` the instance's whole set
        instead. Returns the tenant's new version; gateways use them from their next request.
        Without ``replace``, a name the instance lacks and its plugin does not declare
        (``secret_kye``, a typo that would leave the old ``secret_key`` in use) is a
        :class:`ConfigError` naming it; nothing is written."""
        check_bool("replace", replace)
        if not isinstance(credentials, Mapping):  # a list or the bare key was an AttributeError
            raise wrong_type("credentials", credentials, "a mapping of credential names to values, e.g. "
                                                         "{'api_key': '...'}")
        given = {str(k): str(v) for k, v in credentials.items()}
        for attempt in range(_ATTEMPTS):
            found = self.get(name)
            if found is None:
                raise UnknownTenant(name, "it is not stored")
            config, read_version = found
            if instance not in config.providers:
                raise ConfigError(f"tenant {name!r} has no provider {shown_value(instance)} "
                                  f"(stored: {', '.join(config.providers) or 'none'})")
            plain, secrets = _split(config)
            if not replace:
                self._refuse_unknown_credentials(name, instance, config.providers[instance].plugin,
                                                 secrets[instance], given)
            data = json.loads(plain)
            secrets[instance] = given if replace else {**secrets[instance], **given}
            for inst, settings in data["providers"].items():
                settings["credentials"] = secrets[inst]
            try:  # written only over what was read: a change made meanwhile is never undone
                version = self._put(name, data, create=False, expected_version=read_version)
                break
            except TenantChanged:
                if attempt == _ATTEMPTS - 1:
                    raise ConfigError(f"tenant {name!r} kept changing while its credentials were rotated "
                                      f"({_ATTEMPTS} attempts); nothing was written: run it again") from None
        kept = sorted(set(secrets[instance]) - set(given))
        log.info("stored tenant %s: credentials of %s rotated: %s%s (version %d)", name, instance,
                 ", ".join(sorted(given)) or "none", f"; kept: {', '.join(kept)}" if kept else "", version)
        return version

    def _refuse_unknown_credentials(self, name: str, instance: str, plugin: str, have: Mapping[str, str],
                                    given: Mapping[str, str]) -> None:
        """Refuse (:class:`ConfigError`) a credential name to rotate that ``instance`` lacks and
        its plugin does not declare (:attr:`~smsgate.provider.Provider.secret_names`): a typo
        (``secret_kye``) would be stored beside the old key, which would stay in use."""
        known = set(have) | set((self.plugins or default_plugins()).get_provider_class(plugin).secret_names)
        unknown = sorted(set(given) - known)
        if not unknown:
            return
        first = unknown[0]
        close = difflib.get_close_matches(first, sorted(have) or sorted(known), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(
            f"tenant {name!r}: provider {instance!r} ({plugin}) has no credential {', '.join(map(repr, unknown))}"
            f"{hint} to rotate; its credentials: {', '.join(sorted(have)) or 'none'}. Nothing was rotated (the "
            "old values stay in use). To set a credential its plugin does not declare, give the instance's "
            "whole set: rotate(..., replace=True) ('smsgate tenant rotate ... --replace-all')",
            field=f"tenants.{name}.providers.{instance}.credentials.{first}")

    def rekey(self) -> int:
        """Re-encrypt every stored tenant's credentials with the first key (after a new key
        was put first in ``SMSGATE_TENANT_KEY``); how many were rewritten. Then the old key
        can be dropped."""
        count = 0
        cipher, invalid = self._cipher, _fernet_module().InvalidToken
        for listed in self.store.list_tenant_rows():
            row: TenantRow | None = listed
            while row is not None:
                try:
                    token = cipher.rotate(row.secrets.encode("ascii"))
                except invalid as exc:
                    raise self._undecryptable(row.name, exc) from None
                try:  # over the row as read only: a tenant changed meanwhile is read again
                    self.store.put_tenant_row(row.name, row.config, token.decode("ascii"), create=False,
                                              expected_version=row.version)
                except TenantChanged:
                    row = self.store.get_tenant_row(row.name)  # None: removed meanwhile, nothing to do
                    continue
                count += 1
                break
        return count

    def info(self) -> list[TenantInfo]:
        """Every stored tenant without its credentials (needs no key)."""
        out = []
        for row in self.store.list_tenant_rows():
            try:
                data = _stored_table(row.name, row.config, "configuration")
                providers = data.get("providers", {})
                # checked as get() checks it (credentials aside: they need the key), so a row that
                # a later release refuses (a stricter rule) is listed as unusable, not as fine
                validate_tenant(row.name, data)
            except ConfigError as exc:  # listed all the same, saying why it cannot be used
                out.append(TenantInfo(row.name, row.version, row.updated_at, {}, error=str(exc)))
                continue
            out.append(TenantInfo(row.name, row.version, row.updated_at,
                                  {inst: str(p.get("plugin")) for inst, p in providers.items()}))
        return out

    def credential_names(self, name: str) -> dict[str, list[str]]:
        """The names (never the values) of each provider instance's credentials (needs the key)."""
        found = self.get(name)
        if found is None:
            raise UnknownTenant(name, "it is not stored")
        return {inst: sorted(ps.credentials) for inst, ps in found[0].providers.items()}

    def close(self) -> None:
        """Close the store if this object opened it from a URL."""
        if self._own_store:
            self.store.close()

    # ------------------------------------------------------------------ internals
    def _put(self, name: str, config: Mapping[str, Any] | TenantConfig, *, create: bool,
             expected_version: int | None = None) -> int:
        check_id("tenant", name)
        problem = tenant_name_problem(name)
        if problem is not None:
            raise ConfigError(problem)
        validated = validate_tenant(name, config)
        check_tenant(self.plugins or default_plugins(), name, validated)
        plain, secrets = _split(validated)
        token = self._cipher.encrypt(json.dumps(secrets, sort_keys=True).encode("utf-8")).decode("ascii")
        try:
            version = self.store.put_tenant_row(name, plain, token, create=create, expected_version=expected_version)
        except ValueError:
            raise ConfigError(f"tenant {name!r} is already stored; replace it (StoredTenants.update, or "
                              "'smsgate tenant add --replace'; 'smsgate tenant rotate' for credentials), "
                              "or remove it first") from None
        except NotFound:
            raise UnknownTenant(name, "it is not stored") from None
        log.info("stored tenant %s %s (version %d)", name, "added" if create else "updated", version)
        return version

    def _decrypt(self, name: str, token: str) -> dict[str, dict[str, str]]:
        cipher, invalid = self._cipher, _fernet_module().InvalidToken
        try:
            plain = cipher.decrypt(token.encode("ascii"))
        except invalid as exc:
            raise self._undecryptable(name, exc) from None
        return _stored_table(name, plain.decode("utf-8", "replace"), "credentials")

    @staticmethod
    def _undecryptable(name: str, exc: Exception) -> ConfigError:
        return ConfigError(f"tenant {name!r}: its stored credentials cannot be decrypted with the key(s) in "
                           f"{KEY_VARIABLE} ({type(exc).__name__}); was the key that encrypted them removed "
                           "before 'smsgate tenant rekey' ran?")


def load_tenant_file(path: str | Path | None, stdin_text: str | None = None) -> dict[str, Any]:
    """A tenant's configuration from a TOML/JSON file, or from ``stdin_text`` when ``path`` is ``-``/None."""
    if path is None or str(path) == "-":
        return read_tenant_config(stdin_text or "", "standard input")
    return read_tenant_config(read_config_file(path), str(path))


def _abandon_campaigns(store: Store, tenant: str) -> int:
    """Cancel the removed ``tenant``'s campaigns that are not finished; how many."""
    driver = store_driver(store, tenant)
    return sum(1 for row in store.list_campaigns(tenant, limit=1_000_000)
               if driver.drive(abandon(tenant, row.campaign_id)))
