"""Per-tenant configuration from TOML, environment variables and plain dicts.

Example ``smsgate.toml``::

    store = "sqlite:///smsgate.db"

    [tenants.acme]
    default_region = "NG"
    timezone = "Africa/Lagos"
    sender = "ACME"

    [tenants.acme.providers.squad_main]
    plugin = "squad"
    base_url = "https://sandbox-api-d.squadco.com"
    credentials = { secret_key = "${SQUAD_SECRET_KEY}" }

    [[tenants.acme.routes]]
    prefixes = ["+234"]
    providers = ["squad_main", "backup"]

Strings may reference environment variables as ``${NAME}`` (or ``${NAME:-default}``).
Environment variables override the file: ``SMSGATE_STORE=...``,
``SMSGATE_TENANTS__ACME__SENDER=...`` (``__`` separates levels). Credentials are
:class:`~pydantic.SecretStr` and never appear in reprs, logs or errors.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import urllib.parse
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal, cast

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, field_validator, model_validator
from pydantic import ValidationError as PydanticValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, SettingsError

from smsgate.errors import (
    ConfigError,
    TooManySegments,
    UnknownTenant,
    ValidationError,
    hide_credentials,
    names_a_secret,
    string_leaves,
)
from smsgate.keyhints import unknown_key_hint
from smsgate.keywords import KeywordMatcher, normalize_keyword
from smsgate.models import EVERY_SENDER, optout_scope
from smsgate.phone import known_region
from smsgate.provider import ProviderSettings, check_sender_setting
from smsgate.routing import Router, RouteRule
from smsgate.text import check_segments, has_placeholders, smart_encode
from smsgate.traffic.limits import Limit
from smsgate.traffic.redis_backend import redis_url_problem
from smsgate.zones import check_quiet_hours, check_timezone, region_zone, region_zones

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


__all__ = ["DEFAULT_STORE", "InboundConfig", "RouteRule", "Settings", "TenantConfig", "credential_values", "load_config",
           "sqlite_beside", "tenant_name_problem"]

log = logging.getLogger("smsgate")

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


#: Keywords that opt the sender out (CTIA / common carrier practice).
DEFAULT_STOP_WORDS = ("STOP", "STOPALL", "UNSUBSCRIBE", "END", "CANCEL", "QUIT", "REVOKE", "OPTOUT")
#: Keywords that opt the sender back in.
DEFAULT_START_WORDS = ("START", "UNSTOP", "YES")
#: Keywords that ask for help (answered with ``help_reply`` when one is set).
DEFAULT_HELP_WORDS = ("HELP", "INFO")


#: The auto-replies a tenant may set (each static text, checked alike: no placeholders, not a
#: keyword, within ``max_segments``).
AUTO_REPLIES = ("help_reply", "stop_reply", "start_reply")


class InboundConfig(BaseModel):
    """What a tenant does with inbound messages (see docs/inbound.md).

    A message that is exactly one keyword (ignoring case, accents, spaces and punctuation,
    e.g. ``"Stop."``, ``" s t o p"``, ``"Arrêt"`` for ``ARRET``) acts: a stop word adds the sender to the
    opt-outs (source ``keyword``), a start word removes it, a help word sends
    ``help_reply`` through the normal send path (logged, rate-limited, opt-out
    checked; once per inbound event; at most ``help_reply_limit`` per number per
    ``help_reply_window`` seconds). Replace a list to change it, e.g. add local
    languages: ``stop_words = ["STOP", ..., "ARRET", "PARAR"]``. ``keywords = false``
    stores inbound messages without acting on them.
    """

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    keywords: bool = True
    stop_words: list[str] = Field(default_factory=lambda: list(DEFAULT_STOP_WORDS))
    start_words: list[str] = Field(default_factory=lambda: list(DEFAULT_START_WORDS))
    help_words: list[str] = Field(default_factory=lambda: list(DEFAULT_HELP_WORDS))
    #: The auto-reply to a help word (none: help words are recorded, not answered). A help
    #: word received more than a day ago is not answered (see docs/inbound.md).
    help_reply: str | None = None
    #: The confirmation of a stop word (none: none is sent), e.g. "Acme: you will get no more
    #: messages. Reply START to opt back in." The one message the opt-out just recorded does not
    #: hold back (carriers ask for one); sent as help replies are: once per inbound event, under
    #: ``help_reply_limit`` / ``help_reply_window``, not to a stop word more than a day old.
    stop_reply: str | None = None
    #: The confirmation of a start word (none: none is sent), sent as a help reply is (after the
    #: opt-out is lifted, so a start word older than the opt-out gets none).
    start_reply: str | None = None
    #: Sender ID of the help, stop and start replies (default: the ``sender`` of the provider
    #: instance the reply goes through, else the tenant's, as any send without ``sender=``).
    reply_sender: str | None = None
    #: Provider instance of the auto-replies (default: the one the message came through).
    reply_provider: str | None = None
    #: At most this many help replies to one number per ``help_reply_window`` seconds (a
    #: sender, or someone spoofing a victim's number, texting HELP over and over must not
    #: make the tenant text that number at its cost); further help words are recorded, not
    #: answered. Counted in the store: every process sharing it holds the cap together.
    help_reply_limit: int = Field(default=1, ge=1, le=1000)
    #: The window of ``help_reply_limit``, in seconds (default 10 minutes; at least 1).
    help_reply_window: float = Field(default=600.0, ge=1, allow_inf_nan=False)
    #: What a stop (start) word opts the sender out of (back in to): ``"tenant"`` (every
    #: sender of the tenant, the default) or ``"sender"`` (only the sender ID / number the
    #: reply was sent to, mapped through ``reply_scopes``; every sender when the vendor
    #: does not say where the reply went).
    optout_scope: Literal["tenant", "sender"] = "tenant"
    #: Number or short code replies arrive at -> the sender ID / brand their keywords
    #: concern (e.g. ``{"12345" = "AcmeShop"}`` when AcmeShop sends from an alphanumeric
    #: sender ID and takes replies on short code 12345). Used with ``optout_scope = "sender"``.
    reply_scopes: dict[str, str] = Field(default_factory=dict)

    @field_validator("reply_sender")
    @classmethod
    def _check_reply_sender(cls, value: str | None) -> str | None:
        return check_sender_setting(value)

    @model_validator(mode="after")
    def _check(self) -> InboundConfig:
        for number, scope in self.reply_scopes.items():
            for value in (number, scope):
                try:
                    key = optout_scope(value)
                except ValueError as exc:
                    raise ValueError(f"inbound.reply_scopes: {exc}") from None
                if key == EVERY_SENDER:
                    raise ValueError(f"inbound.reply_scopes: {value!r} is not a sender ID or number")
        replies = {name: getattr(self, name) for name in AUTO_REPLIES}
        for name, reply in replies.items():
            if reply is not None and has_placeholders(reply):
                raise ValueError(f"inbound.{name}: placeholders ({{name}}) have no values in an auto-reply")
        seen: dict[str, str] = {}
        for kind in ("stop_words", "start_words", "help_words"):
            for word in getattr(self, kind):
                key = normalize_keyword(word)
                if not key:
                    raise ValueError(f"inbound.{kind}: {word!r} has no letters or digits")
                if key in seen and seen[key] != kind:
                    raise ValueError(f"inbound keyword {word!r} is in both {seen[key]} and {kind}")
                seen[key] = kind
        matcher = KeywordMatcher(self.stop_words, self.start_words, self.help_words)
        for name, reply in replies.items():
            keyword = matcher.match(reply) if reply is not None else None
            if keyword is not None:  # texted to a number answering keywords (ours too), it loops
                raise ValueError(f"inbound.{name} {reply!r} is itself a keyword ({keyword.value}): "
                                 "a number that answers keywords (another gateway's, the tenant's own) would "
                                 "answer it, and be answered, for ever; write a sentence, e.g. 'Acme alerts: "
                                 "reply STOP to opt out'")
        if self.keywords and not self.stop_words:  # allowed (a vendor may act on STOP itself), never silent
            log.warning("inbound.stop_words is empty: a STOP reply opts nobody out (keywords = false stores "
                        "replies without acting on any; leave stop_words out for the defaults)")
        return self


class TenantConfig(BaseModel):
    """One tenant: its providers, routes, region, sender and time zone."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    default_region: str | None = None
    #: IANA zone of quiet hours and statistics; unset: ``default_region``'s zone when it has one
    #: (see :func:`smsgate.zones.region_zone`), else none (statistics in UTC; quiet hours refused)
    timezone: str | None = None
    sender: str | None = None
    providers: dict[str, ProviderSettings] = Field(default_factory=dict)
    routes: list[RouteRule] = Field(default_factory=list)
    smart_encoding: bool = False
    #: the most segments one message may take (a longer text is refused: a
    #: :class:`~smsgate.errors.TooManySegments`, a campaign row skipped ``too_long``);
    #: ``None``: no cap
    max_segments: int | None = Field(default=10, ge=1)
    quiet_hours: tuple[str, str] | None = None
    #: limits on everything the tenant sends, through any provider (see docs/routing.md)
    limits: list[Limit] = Field(default_factory=list)
    #: the longest (seconds) a ``send``/``send_many``/``send_later`` request waits for a full
    #: rate limit; past it the message is not sent (:class:`~smsgate.traffic.LimitWaitExceeded`,
    #: failed ``not_sent``) or goes to the route's next provider. ``None``: wait as long as the
    #: limits say. Campaign runs always wait (the limits pace them; pause or cancel to stop)
    max_limit_wait: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    #: keywords and auto-replies for inbound messages (see docs/inbound.md)
    inbound: InboundConfig = Field(default_factory=InboundConfig)

    @field_validator("routes", mode="before")
    @classmethod
    def _check_routes(cls, value: object) -> object:
        if isinstance(value, Mapping) and "providers" in value:  # [tenants.acme.routes]: one table
            raise ValueError("a list of route tables, not one table: write each route as [[...routes]] "
                             "(two pairs of brackets), or routes = [{ providers = [...] }]")
        names = [value] if isinstance(value, str) else value if isinstance(value, list) else []
        where = next((i for i, rule in enumerate(names) if isinstance(rule, str)), None)
        if where is not None:  # the failover order written as names: say what a route is
            order = ", ".join(f'"{n}"' for n in names if isinstance(n, str))
            raise ValueError(
                f"routes[{where}] is {names[where]!r}: a route is a table naming its providers, not a "
                f"provider's name; for one route over every number in this failover order, write "
                f"routes = [{{ providers = [{order}] }}] (docs/routing.md#routes)")
        return value

    @field_validator("quiet_hours", mode="before")
    @classmethod
    def _check_quiet_hours(cls, value: object) -> object:
        if value is not None:
            check_quiet_hours(value)  # a ValueError: a ConfigError naming tenants.<name>.quiet_hours
        return value

    @field_validator("sender")
    @classmethod
    def _check_sender(cls, value: str | None) -> str | None:
        return check_sender_setting(value)

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, value: str | None) -> str | None:
        return None if value is None else check_timezone(value)  # an error naming tenants.<name>.timezone

    @field_validator("max_limit_wait", mode="before")
    @classmethod
    def _no_bool(cls, value: object) -> object:
        if isinstance(value, bool):  # ``true`` is not "1 second"
            raise ValueError("a number of seconds, not a boolean")
        return value

    @model_validator(mode="after")
    def _check(self) -> TenantConfig:
        if self.default_region is not None:
            try:
                self.default_region = known_region(self.default_region)
            except ValueError as exc:
                raise ValueError(f"default_region {exc}") from None
        if self.timezone is None and self.default_region is not None:
            self.timezone = region_zone(self.default_region)
        if self.quiet_hours is not None and self.timezone is None:
            raise ValueError(f"quiet_hours: {_zone_needed(self.default_region)}")
        for name in AUTO_REPLIES:
            reply_text = getattr(self.inbound, name)
            if reply_text:  # static text: one over the cap would leave every such keyword unanswered
                try:
                    check_segments(smart_encode(reply_text) if self.smart_encoding else reply_text, self.max_segments)
                except TooManySegments as exc:
                    raise ValueError(f"inbound.{name}: {exc.reason}: shorten it or raise max_segments") from None
        reply = self.inbound.reply_provider
        if reply is not None and reply not in self.providers:
            raise ValueError(f"inbound.reply_provider {reply!r} is not a provider of this tenant")
        for i, rule in enumerate(self.routes):
            for name in rule.providers:
                if name not in self.providers:
                    raise ValueError(
                        f"routes[{i}] names provider {name!r}, which this tenant does not define "
                        f"(defined: {', '.join(self.providers) or 'none'})"
                    )
        return self

    def quiet_hours_zone(self) -> str:
        """The zone quiet hours are read in: ``timezone``, given or taken from ``default_region``.

        A :class:`ConfigError` asking for ``timezone`` when neither names one (no region, or a
        region with several clocks such as ``"US"``): quiet hours are never guessed in UTC.
        """
        if self.timezone is None:
            raise ConfigError(f"quiet hours: {_zone_needed(self.default_region)}")
        return self.timezone

    @property
    def stats_zone(self) -> str:
        """The zone statistics are bucketed in: ``timezone`` (given or from the region), else UTC."""
        return self.timezone or "UTC"

    _router: Router | None = PrivateAttr(default=None)

    @property
    def router(self) -> Router:
        """This tenant's route rules, compiled (see :mod:`smsgate.routing`)."""
        if self._router is None:
            self._router = Router(self.routes, list(self.providers))
        return self._router

    def route_for(self, phone: str, region: str | None = None) -> list[str]:
        """Provider instance names for ``phone`` (E.164), in failover order."""
        return list(self.router.route(phone, region))


def _zone_needed(region: str | None) -> str:
    """Why a tenant has no local time zone, and what to set."""
    zones = region_zones(region) if region is not None else ()
    if region is None:
        why = "the tenant has no default_region to take a zone from"
    elif zones:
        shown = ", ".join(zones[:4]) + (", ..." if len(zones) > 4 else "")
        why = f"default_region {region!r} spans {len(zones)} time zones with different clocks ({shown})"
    else:
        why = f"no time zone is known for default_region {region!r}"
    example = zones[0] if zones else "Africa/Lagos"
    return f"they are local times and {why}; set the tenant's timezone (an IANA name, e.g. {example!r})"


#: The store of a configuration that names none: ``smsgate.db`` beside the configuration file
#: (in the current directory for a configuration given as a dict).
DEFAULT_STORE = "sqlite:///smsgate.db"

#: The largest configuration file :func:`load_config` reads, in bytes: a larger one (a path to
#: ``/dev/zero`` or to a data file given by mistake) is a :class:`ConfigError`, after reading
#: no more than this.
MAX_CONFIG_BYTES = 16 * 1024 * 1024


def shown_url(url: str) -> str:
    """``url`` (a store or Redis URL) with its password, and anything that looks like a credential
    (:func:`smsgate.errors.redact`), replaced by ``***``: for reprs and output."""
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


def tenant_name_problem(name: str) -> str | None:
    """What is wrong with a tenant's ``name``, if anything: blank (``[tenants.""]``) or with spaces
    around it (``[tenants." acme"]``) is no name a ``--tenant`` or a webhook URL could give. The
    one rule of the configuration file and of :class:`~smsgate.tenants.StoredTenants`."""
    if not name.strip():
        return f"tenant name {name!r} is blank: name the tenant ([tenants.acme])"
    if name != name.strip():
        return f"tenant name {name!r} has spaces around it: write {name.strip()!r}"
    return None


class Settings(BaseSettings):
    """Top-level settings: the store URL and the tenants."""

    model_config = SettingsConfigDict(
        env_prefix="SMSGATE_", env_nested_delimiter="__", extra="forbid",
        # pydantic's own text repeats each bad input (``input_value=...``): a key given in the
        # wrong place would come back in it (smsgate's ConfigError never shows it either)
        hide_input_in_errors=True,
    )

    store: str = DEFAULT_STORE
    #: Where rate and concurrency limits and circuit breakers are kept: ``"store"`` (shared
    #: by every process and host using the store), a Redis URL ``"redis://host:6379/0"``
    #: (shared by every process and host using that Redis; extra ``smsgate[redis]``) or
    #: ``"local"`` (this process only; no round trips).
    traffic: str = "store"
    tenants: dict[str, TenantConfig] = Field(default_factory=dict)
    #: credentials left unset by ``load_config(..., defer_secrets=True)``: (tenant, instance) -> the error
    _unresolved: dict[tuple[str, str], str] = PrivateAttr(default_factory=dict)
    #: the file these settings were read from (``load_config(path)``); ``None`` for a dict
    _origin: str | None = PrivateAttr(default=None)

    @field_validator("store")
    @classmethod
    def _check_store(cls, value: str) -> str:
        from smsgate.store import sqlite_url_problem

        problem = sqlite_url_problem(value) if isinstance(value, str) else None
        if problem is not None:  # sqlite://rel.db: said here, naming the setting, not at the first open
            raise ValueError(problem)
        return value

    @field_validator("tenants")
    @classmethod
    def _check_tenant_names(cls, value: dict[str, TenantConfig]) -> dict[str, TenantConfig]:
        for name in value:
            problem = tenant_name_problem(name)
            if problem is not None:
                raise ValueError(problem)
        return value

    @field_validator("traffic")
    @classmethod
    def _check_traffic(cls, value: str) -> str:
        if value in ("store", "local"):
            return value
        if re.match(r"rediss?://.", value):
            path = urllib.parse.urlsplit(value).path
            if not re.fullmatch(r"/?(\d+/?)?", path):  # redis-py reads "/0/" as database 0 too
                # redis-py ignores a database it cannot read: the limits would be kept in database 0
                raise ValueError(f"{shown_url(value)!r}: the database after the host must be a number "
                                 f"(redis://host:6379/0), not {path[1:]!r}")
            problem = redis_url_problem(value)
            if problem is not None:
                raise ValueError(f"{shown_url(value)!r}: {problem}")
            return value
        shown = "" if "@" in value else f"{value!r} "  # a URL's password is never echoed
        raise ValueError(f"{shown}is not where limits can be kept: 'store' (the default: the store), "
                         "'local' (this process only) or a Redis URL, 'redis://host:6379/0'")

    def __repr_args__(self) -> Any:
        # a store or Redis URL may carry a password (``${DB_PASSWORD}`` in the file): never in a repr
        for name, value in super().__repr_args__():
            yield name, shown_url(value) if name in ("store", "traffic") and isinstance(value, str) else value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # environment variables win over the file / dict passed in, matched to its names
        return (_EnvMatchingNames(settings_cls, env_settings, init_settings), init_settings)

    def tenant(self, name: str) -> TenantConfig:
        """The tenant called ``name`` or an :class:`~smsgate.errors.UnknownTenant` (a
        :class:`ConfigError`) listing known tenants."""
        try:
            return self.tenants[name]
        except KeyError:
            raise UnknownTenant(name, f"configured tenants: {', '.join(sorted(self.tenants)) or 'none'}") from None

    def require_credentials(self, tenant: str, instance: str) -> None:
        """Raise the :class:`ConfigError` of a credential whose ``${VAR}`` was not set.

        Only settings loaded with ``load_config(..., defer_secrets=True)`` (read-only
        commands, which never call a provider) can hold such a credential; the gateway
        calls this before it builds the provider instance.
        """
        problem = self._unresolved.get((tenant, instance))
        if problem is not None:
            raise ConfigError(problem)

    def locate(self, exc: ConfigError) -> None:
        """Name the configuration file in ``exc`` when it is about one of the file's tenants.

        :func:`load_config` names the file in every problem it finds there
        (``smsgate.toml: invalid configuration: tenants.acme.timezone: ...``); some are found
        only later, when a provider instance is built: its plugin is not installed, or it
        refuses the instance's credentials or options (:func:`smsgate.plugins.build_provider`).
        Their ``field`` is the key in the file (``tenants.acme.providers.main.plugin``);
        ``exc`` is reworded to start with the file's path as the others do
        (``smsgate.toml: tenants.acme.providers.main.plugin: unknown provider plugin ...``). An
        error about a tenant not in the file (one stored with ``smsgate tenant add``), of
        settings not read from a file, or that names the file already, is left as it is.
        """
        origin, field = self._origin, exc.field or ""
        if origin is None or not field.startswith("tenants."):
            return
        tenant = next((name for name in self.tenants
                       if field == f"tenants.{name}" or field.startswith(f"tenants.{name}.")), None)
        if tenant is not None and not str(exc).startswith(f"{origin}: "):
            exc._reword(f"{origin}: {exc}")


def _match_names(env: Any, given: Any) -> Any:
    """``env`` (what the ``SMSGATE_*`` variables set, its keys lowercased) with each key that is
    not in ``given`` (the file or dict) but names exactly one of its keys ignoring case spelled
    as there, at every level: ``SMSGATE_TENANTS__ACMESHOP__SENDER`` is tenant ``AcmeShop``'s."""
    if not isinstance(env, dict) or not isinstance(given, dict):
        return env
    matched: dict[Any, Any] = {}
    for key, value in env.items():
        name = key
        if key not in given and isinstance(key, str):
            alike = [k for k in given if isinstance(k, str) and k.casefold() == key.casefold()]
            if len(alike) == 1:
                name = alike[0]
        matched[name] = _match_names(value, given.get(name))
    return matched


class _EnvMatchingNames(PydanticBaseSettingsSource):
    """The environment source with its names spelled as the file's (:func:`_match_names`):
    pydantic-settings lowercases variable names, so an override of a tenant or provider instance
    named in mixed case made a second one, and left the file's unchanged."""

    def __init__(self, settings_cls: type[BaseSettings], env: PydanticBaseSettingsSource,
                 given: PydanticBaseSettingsSource) -> None:
        super().__init__(settings_cls)
        self._env = env
        self._given = given

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        """Unused: :meth:`__call__` gives the whole mapping."""
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        """The environment's settings, names matched to the file's."""
        return cast("dict[str, Any]", _match_names(self._env(), self._given()))


def _substitute(value: Any, where: str, environ: Mapping[str, str],
                deferred: dict[tuple[str, str], str] | None = None) -> Any:
    """``value`` with ``${VAR}`` references replaced from ``environ``.

    An unset variable is a :class:`ConfigError` naming the key, except in a provider's
    ``credentials`` when ``deferred`` is given: the credential is left empty and the
    error kept in ``deferred`` under (tenant, instance), raised if that provider is used.
    """
    if isinstance(value, str):

        def repl(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            if name in environ:
                return environ[name]
            if default is not None:
                return default
            problem = f"{where}: environment variable {name} is not set"
            parts = where.split(".")
            if tuple(part.lower() for part in parts) in _variable_paths(os.environ):
                return ""  # an SMSGATE_* variable sets this very key: it overrides the file's value
            if deferred is not None and len(parts) >= 5 and parts[0] == "tenants" and parts[2] == "providers" \
                    and parts[4] == "credentials":
                deferred.setdefault((parts[1], parts[3]), problem)
                return ""
            raise ConfigError(problem, field=where or None)

        return _ENV_REF.sub(repl, value)
    if isinstance(value, dict):
        return {k: _substitute(v, f"{where}.{k}" if where else str(k), environ, deferred)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, f"{where}[{i}]", environ, deferred) for i, v in enumerate(value)]
    return value


def _env_error(exc: SettingsError) -> ConfigError:
    """A :class:`ConfigError` naming the ``SMSGATE_*`` variable pydantic-settings could not parse.

    pydantic-settings reads a list or table (``routes``, ``providers``, ``limits``...) from
    the environment as JSON and names only the top-level field when that fails.
    """
    cause = exc.__cause__
    bad = []
    for key, value in os.environ.items():
        if not key.upper().startswith("SMSGATE_") or not value.lstrip().startswith(("[", "{")):
            continue
        try:
            json.loads(value)
        except ValueError as decode_error:
            bad.append((key, decode_error))
    if bad:
        key, err = bad[0]
        dotted = ".".join(key[len("SMSGATE_"):].lower().split("__"))
        return ConfigError(f"environment variable {key} ({dotted}): not valid JSON: {err}; a list or table "
                           "is given as JSON, e.g. SMSGATE_TENANTS__ACME__ROUTES="
                           "'[{\"prefixes\": [\"+234\"], \"providers\": [\"squad\"]}]'")
    names = sorted(k for k in os.environ if k.upper().startswith("SMSGATE_"))
    return ConfigError(f"environment variables {', '.join(names) or 'SMSGATE_*'}: {exc}"
                       + (f" ({type(cause).__name__}: {cause})" if cause else ""))


def _format_error(exc: PydanticValidationError, model: type[BaseModel] | None = None,
                  variables: Mapping[str, str] | None = None, secrets: Iterable[str] = ()) -> str:
    """pydantic's errors, one a line with the dotted key at fault; a key ``model`` does not know
    also names the setting it was likely meant to be (:func:`~smsgate.keyhints.unknown_key_hint`). ``variables``
    (the environment): a key an ``SMSGATE_*`` variable set names that variable.

    A line never repeats a credential (:func:`~smsgate.errors.hide_credentials`): one of
    ``secrets`` (the configured credentials' values: :func:`credential_values`), nor a value of
    the key at fault that looks like one (a key pasted as ``base_url`` or ``sender``); it says
    the value was hidden, and still names the key and what is wrong."""
    by_path = _variable_paths(variables or {})
    secrets = list(secrets)
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        msg = hide_credentials(err["msg"].removeprefix("Value error, "), err.get("input"), secrets)
        if model is not None and err["type"] == "extra_forbidden":
            msg += unknown_key_hint(model, tuple(err["loc"]))
        parts = tuple(str(p).lower() for p in err["loc"])
        setting = next((name for path, name in by_path.items() if parts[:len(path)] == path), None)
        if setting is not None:
            msg += f" (from environment variable {setting})"
        lines.append(f"{loc}: {msg}" if loc else msg)
    # ";" between problems: the CLI prints an error on one line (its lines joined by spaces)
    return "invalid configuration:\n  " + ";\n  ".join(lines)


def credential_values(data: object, variables: Mapping[str, str] | None = None, raw: object = None) -> list[str]:
    """The plain values of the credentials in ``data`` (a configuration as given: a file's
    tables, a dict, or one tenant's table), of the ``SMSGATE_*`` variables of ``variables``
    that set one (``SMSGATE_..._CREDENTIALS__SECRET_KEY``), and of the variables of ``variables``
    that ``raw`` (``data`` before ``${VAR}`` substitution) names in a ``${VAR}`` when the name says
    it is a secret (``sender = "${SQUAD_SECRET_KEY}"``: :func:`~smsgate.errors.names_a_secret`):
    what a configuration error never repeats, wherever it was put by mistake too."""
    found: list[str] = []
    if raw is not None and variables is not None:
        named = {m.group(1) for leaf in string_leaves(raw) for m in _ENV_REF.finditer(leaf)}
        found.extend(variables[name] for name in sorted(named) if names_a_secret(name) and name in variables)

    def walk(value: object, depth: int) -> None:
        if not isinstance(value, Mapping) or depth > 6:
            return
        for key, item in value.items():
            if key == "credentials" and isinstance(item, Mapping):
                found.extend(v.get_secret_value() if isinstance(v, SecretStr) else v
                             for v in item.values() if isinstance(v, (str, SecretStr)))
            else:
                walk(item, depth + 1)

    walk(data, 0)
    found.extend(value for name, value in (variables or {}).items()
                 if name.upper().startswith("SMSGATE_") and "__CREDENTIALS__" in name.upper())
    return [value for value in found if value]


def _variable_paths(variables: Mapping[str, str]) -> dict[tuple[str, ...], str]:
    """The keys the ``SMSGATE_*`` variables set (``SMSGATE_TENANTS__ACME__SENDER``:
    ``("tenants", "acme", "sender")``, lowercased as pydantic-settings reads them), longest first."""
    paths = {tuple(name[len("SMSGATE_"):].lower().split("__")): name for name in variables
             if name.upper().startswith("SMSGATE_") and name.upper() != "SMSGATE_CONFIG"}
    return dict(sorted(paths.items(), key=lambda item: -len(item[0])))


def _with_other_problems(missing: ConfigError, data: dict[str, Any], env: Mapping[str, str],
                         origin: str) -> ConfigError:
    """``missing`` (an unset ``${VAR}``), followed by the file's other problems, if validating
    it with its unset credentials left empty finds any: every problem in one go, not one a run.
    Only on this error's path."""
    try:
        substituted = _substitute(data, "", env, {})
        Settings(**substituted)
    except PydanticValidationError as exc:
        problems = _format_error(exc, Settings, os.environ, credential_values(substituted, {**os.environ, **env}, data))
        return ConfigError(f"{missing}; and {origin}: {problems}", field=missing.field)
    except (ConfigError, SettingsError):  # another unset variable outside credentials, a bad SMSGATE_*
        return missing
    return missing


def sqlite_beside(url: str, folder: Path) -> str:
    """``url`` with a relative SQLite path made absolute under ``folder``; any other URL as is.

    ``sqlite:///smsgate.db`` in ``/srv/app/smsgate.toml`` is ``/srv/app/smsgate.db`` whatever
    the current directory, so a command, a cron job and a worker started elsewhere all open the
    same log (with its opt-outs and idempotency keys), not a new empty one.
    """
    if not url.startswith("sqlite:///"):
        return url  # sqlite://rel.db (two slashes) too: refused as it is (Settings.store)
    path = url[len("sqlite://"):].removeprefix("/")
    if not path or path.startswith((":", "file:")) or Path(path).is_absolute():
        return url  # no file (an error later), :memory:, a URI, or already absolute
    return "sqlite:///" + str(folder / path)


def _refuse_a_store_beside_no_file(origin: str, store: str) -> None:
    """A :class:`ConfigError` (field ``store``) when the configuration ``origin`` is not a regular
    file (``/dev/null``, a pipe such as ``<(...)``'s ``/dev/fd/63``, a device) or is in ``/dev``:
    its relative SQLite store (``store``, the default one included) was put beside it, where no
    database belongs (``smsgate db upgrade -c /dev/null`` run as root made ``/dev/smsgate.db``)."""
    import stat

    try:
        mode = os.stat(origin).st_mode
    except OSError:  # read a moment ago: gone since (a pipe's /dev/fd entry); not a file to be beside
        mode = 0
    kind = next((what for test, what in ((stat.S_ISCHR, "a character device"), (stat.S_ISFIFO, "a pipe"),
                                         (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"),
                                         (stat.S_ISREG, None)) if test(mode)), "not a regular file")
    folder = Path(origin).absolute().parent
    if kind is None and folder.resolve() != Path("/dev"):
        return
    what = f"is {kind}" if kind is not None else f"is in {folder}"
    raise ConfigError(
        f"config file {origin} {what}: its SQLite store would be made beside it, as "
        f"{store.removeprefix('sqlite:///')} (a relative SQLite path, the default {DEFAULT_STORE!r} too, is in "
        "the configuration file's folder); give the path of a configuration file in a folder of its own, or "
        "an absolute store (store = \"sqlite:////var/lib/smsgate/smsgate.db\" in the file, or SMSGATE_STORE=...)",
        field="store")


def read_config_file(path: str | Path) -> str:
    """The text of a configuration file (smsgate.toml, a tenant's file), read as UTF-8 (a
    byte-order mark dropped) and no more than :data:`MAX_CONFIG_BYTES` of it.

    A path that does not exist, is a directory or cannot be read, a file that is not UTF-8
    text or is larger is a :class:`ConfigError` naming it.
    """
    origin = str(path)
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_CONFIG_BYTES + 1)  # bounded: a path to /dev/zero or a huge file
    except FileNotFoundError:
        raise ConfigError(f"config file {origin} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {origin} is a directory; give the path of a TOML file "
                          f"(e.g. {Path(origin) / 'smsgate.toml'})") from None
    except OSError as exc:  # no permission to read it, ...
        raise ConfigError(f"config file {origin} cannot be read: {exc.strerror or exc}") from None
    return config_text(raw, origin)


def config_text(raw: bytes, origin: str) -> str:
    """``raw`` (the first bytes of a configuration file or stream, up to one more than
    :data:`MAX_CONFIG_BYTES`) as text: UTF-8, a byte-order mark dropped. Larger, or not UTF-8,
    is a :class:`ConfigError` naming ``origin``."""
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{origin}: larger than {MAX_CONFIG_BYTES:,} bytes: not a configuration file "
                          "(was the wrong file given?)")
    try:
        return raw.decode("utf-8-sig")  # a BOM (Notepad's "UTF-8 with BOM") is not TOML
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError(f"{origin}: not UTF-8 text (byte {raw[exc.start]:02x} on line {line}): a configuration "
                          "file is UTF-8; save it as UTF-8 (an editor's 'UTF-8' encoding; not UTF-16, "
                          "which PowerShell's '>' writes, nor cp1252)") from None


def load_config(
    source: str | Path | Mapping[str, Any] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    defer_secrets: bool = False,
) -> Settings:
    """Load settings from a TOML file path, a dict, or ``$SMSGATE_CONFIG``.

    ``${VAR}`` references are substituted from ``environ`` (default
    ``os.environ``); ``SMSGATE_*`` environment variables override values.
    Raises :class:`ConfigError` naming each bad field (a bad ``SMSGATE_*`` variable
    is named too). With ``defer_secrets=True`` an unset ``${VAR}`` inside a provider's
    ``credentials`` is raised only when that provider is used (for read-only tools
    such as ``smsgate messages``, which only read the store). A ``source`` of another type is a
    :class:`~smsgate.errors.ValidationError` (``load_config(3)`` read and closed file descriptor 3).
    """
    if source is not None and not isinstance(source, (str, os.PathLike, Mapping)):
        raise ValidationError(f"expected the path of a configuration file (str or pathlib.Path) or a mapping of "
                              f"settings, got {type(source).__name__}", field="source")
    env = os.environ if environ is None else environ
    data: dict[str, Any]
    origin = "config"
    if source is None:
        path = env.get("SMSGATE_CONFIG")
        source = Path(path) if path else None
    if source is None:
        data = {}
    elif isinstance(source, Mapping):
        data = dict(source)
    else:
        origin = str(source)
        text = read_config_file(source)
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{origin}: invalid TOML: {exc}") from None
    deferred: dict[tuple[str, str], str] | None = {} if defer_secrets else None
    try:
        substituted = _substitute(data, "", env, deferred)
    except ConfigError as exc:
        if origin != "config":  # read from a file: name it, as every other problem of it is named
            exc = ConfigError(f"{origin}: {exc}", field=exc.field)
        raise _with_other_problems(exc, data, env, origin) from None
    raw, data = data, substituted
    beside: str | None = None  # the SQLite store put beside the configuration file, if one was
    if origin != "config":  # read from a file: its relative SQLite path is beside it
        store = data.get("store", DEFAULT_STORE)
        if isinstance(store, str):
            data["store"] = sqlite_beside(store, Path(origin).absolute().parent)
            beside = data["store"] if data["store"] != store else None
    try:
        settings = Settings(**data)
    except PydanticValidationError as exc:
        problems = _format_error(exc, Settings, os.environ, credential_values(data, {**os.environ, **env}, raw))
        raise ConfigError(f"{origin}: {problems}") from None
    except SettingsError as exc:
        raise _env_error(exc) from None
    if beside is not None and settings.store == beside:  # (not an SMSGATE_STORE given instead)
        _refuse_a_store_beside_no_file(origin, beside)
    if deferred:
        settings._unresolved = deferred if origin == "config" else {
            key: f"{origin}: {problem}" for key, problem in deferred.items()}
    if origin != "config":
        settings._origin = origin
    return settings
