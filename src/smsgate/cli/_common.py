"""What every ``smsgate`` command shares: the root app, options, consoles, the error wrapper, tables.

Every command is registered through a :class:`CommandGroup`, whose ``command()``
wraps it in :func:`handles_errors`: a :class:`~smsgate.errors.SmsgateError`
becomes one ``error: ...`` line on stderr and exit code 2, never a traceback. Its
groups (:class:`Group`) do the same for the errors of the command-line parser
(:func:`parser_errors_in_one_line`): a bad option value, a missing argument, an
unknown option or command is one ``error: ...`` line, exit code 2, not click's box.

Exit codes of every command: 0 ok (or "yes" to a command that asks a question),
1 a negative answer (``optout check``: not opted out; a declined prompt) or nothing to do
(``optout remove`` of a number that was not opted out, ``tenant remove`` of a tenant that was
not stored), 2 an error.
Everything they print goes through :data:`console` and :data:`err_console`, which
never read markup: user data and error texts are shown as written.
"""

from __future__ import annotations

import functools
import inspect
import io
import os
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn, TextIO, TypeVar, cast

import typer
from rich.console import Console, ConsoleDimensions
from rich.table import Table
from rich.text import Text
from typer.core import TyperCommand, TyperGroup

from smsgate.config import Settings, load_config
from smsgate.errors import ConfigError, InvalidPhoneNumber, SmsgateError, UnknownTenant, ValidationError
from smsgate.gateway import AsyncGateway, Gateway, Tenant
from smsgate.store import open_store

__all__ = [
    "ERROR_EXIT",
    "NO_EXIT",
    "Command",
    "CommandGroup",
    "ConfigOpt",
    "Group",
    "JsonOpt",
    "TenantOpt",
    "app",
    "compact_table",
    "confirm",
    "console",
    "err_console",
    "fail",
    "flags_named",
    "handles_errors",
    "load_settings",
    "no_tenants_error",
    "open_async_gateway",
    "open_gateway",
    "open_tenant",
    "parser_error_line",
    "parser_errors_in_one_line",
    "require_tenants",
    "stdout_for_data",
    "stored_tenant_names",
    "tenant_name",
]

try:  # the base of the errors of typer's command-line parser, since typer carries click inside it (0.26)
    from typer import TyperException as ParserError
except ImportError:  # pragma: no cover - an older typer, on click: its usage errors are click's
    from click import ClickException as ParserError  # type: ignore[assignment,no-redef]

G = TypeVar("G", Gateway, AsyncGateway)

F = TypeVar("F", bound=Callable[..., Any])

#: The exit code of a command that failed with a :class:`~smsgate.errors.SmsgateError`
#: (the same as click's for a usage error).
ERROR_EXIT = 2
#: The exit code of a command whose question has the answer "no" (``optout check``: not opted out).
NO_EXIT = 1

#: Standard output (tables, results) and standard error (errors). Markup is off: what they print
#: (numbers, names, message texts, CSV values, vendors' errors such as ``[squad] ...``, hints such
#: as ``pip install 'smsgate[server]'``) is shown as written; styles come from :class:`rich.text.Text`.
#: The width of output that goes to a pipe or a file (``smsgate campaign status ... | cat``,
#: ``> out.txt``, CI logs) without ``$COLUMNS``: wide enough that no table, id, error or
#: reason is wrapped or cut at 80 columns; lines are as long as their content.
PIPED_WIDTH = 4096


#: Control characters a terminal acts on (C0 but line feed and tab, DEL, C1): an escape
#: sequence clears the screen, hides a link under innocent text, sets the clipboard. And the
#: Unicode bidirectional embeddings, overrides and isolates: a terminal that lays out
#: right-to-left text shows the rest of the line reversed, so a row reads as something it is
#: not ("Trojan Source"). The marks (U+200E, U+200F, U+061C), common in Arabic and Persian
#: texts, reverse nothing and are left alone, as is the emoji joiner (U+200D).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def visible(text: str) -> str:
    """``text`` with every control character a terminal would act on written out as
    ``\\xNN`` (a bidirectional control as ``\\uNNNN``; line feeds and tabs kept): what
    strangers wrote (an SMS, a contact's name, a vendor's error) is shown, never obeyed."""
    return _CONTROL.sub(_shown, text)


def _shown(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


class _VisibleWriter(io.TextIOBase):
    """A text stream that writes through :func:`visible` (CSV's ``\\r\\n`` as a line feed)."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self._stream = stream

    def writable(self) -> bool:
        """Always: it is an output stream."""
        return True

    def write(self, text: str) -> int:  # type: ignore[override]
        """Write ``text`` with every control character shown as ``\\xNN``; returns ``len(text)``."""
        self._stream.write(visible(text.replace("\r\n", "\n")))
        return len(text)

    def flush(self) -> None:
        """Flush the stream underneath."""
        self._stream.flush()


def stdout_for_data() -> TextIO:
    """Standard output to write data to (an export: CSV, JSON): as it is to a pipe or a file
    (byte-exact), through :func:`visible` at a terminal (:data:`console`'s detection), which
    would act on the escape sequences strangers wrote into it (a contact's name)."""
    if not console.is_terminal:
        return sys.stdout
    return cast(TextIO, _VisibleWriter(sys.stdout))


class _Console(Console):
    """A :class:`rich.console.Console` as wide as the terminal on a terminal (or ``$COLUMNS``
    when set), and :data:`PIPED_WIDTH` wide otherwise: rich's own fallback is 80 columns, or
    the width of whatever terminal stdin or stderr is, which cut piped output. Every string it
    prints (a table's cells too) goes through :func:`visible`."""

    def render_str(self, text: str, **kwargs: Any) -> Text:
        """As rich's, on :func:`visible` ``text``."""
        return super().render_str(visible(text), **kwargs)

    @property
    def size(self) -> ConsoleDimensions:
        """The console's size; see the class docstring."""
        size = super().size
        if self.is_terminal or os.environ.get("COLUMNS", "").isdigit():
            return size
        return ConsoleDimensions(PIPED_WIDTH, size.height)

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        Console.size.fset(self, new_size)  # type: ignore[attr-defined]


console = _Console(markup=False)
err_console = _Console(stderr=True, markup=False)

def _config_option(value: str | Path) -> Path:
    """``--config``'s path; an empty one is refused naming the flag (``Path("")`` is ``.``: it
    said ``config file . is a directory``)."""
    if isinstance(value, Path):
        return value
    if not value:
        raise typer.BadParameter("is empty; give the path of a TOML file (e.g. smsgate.toml)")
    return Path(value)


ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", parser=_config_option, metavar="<path>",
                                                help="Path to smsgate.toml.")]
TenantOpt = Annotated[str | None, typer.Option("--tenant", "-t", help="Tenant name.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
KindOpt = Annotated[str | None, typer.Option(
    "--kind", "-k", help="The message's kind (otp, marketing...), for routes by kind (docs/routing.md).")]


def checked_kind(kind: str | None) -> str | None:
    """``--kind`` by the library's rule (:func:`smsgate.routing.check_kind`), its error naming the flag."""
    from smsgate.routing import check_kind

    try:
        return check_kind(kind)
    except ValidationError as exc:
        raise ValidationError(exc.reason, field="--kind") from None


def confirm(question: str, *, yes: bool, verb: str) -> None:
    """Ask ``question`` (the default answer no) unless ``yes``; not confirmed (also with no answer:
    no terminal, end of input), say nothing changed and exit 1. ``verb``: what ``--yes`` does."""
    if yes:
        return
    try:
        confirmed = typer.confirm(question, default=False)
    except typer.Abort:
        confirmed = False
    if not confirmed:
        err_console.print(f"nothing changed (pass --yes to {verb} without a prompt)")
        raise typer.Exit(NO_EXIT)


def fail(exc: Exception | str) -> NoReturn:
    """Print ``error: <exc>`` as one line on stderr; exit 2 (:data:`ERROR_EXIT`)."""
    message = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    err_console.print(Text.assemble(("error:", "red"), " ", visible(message)), soft_wrap=True)
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


def one_line_paragraphs(text: str) -> str:
    """``text`` (a docstring) with each paragraph on one line: typer prints a command's help with
    the docstring's own line breaks, so source lines cut at 100 columns broke every line in two
    on an 80-column terminal (a word alone on a line); rich wraps one-line paragraphs itself."""
    paragraphs = re.split(r"\n\s*\n", inspect.cleandoc(text))
    return "\n\n".join(" ".join(line.strip() for line in para.splitlines()) for para in paragraphs)


class _FlagsTakeNoValue:
    """typer (0.2x) shows a flag's type in ``--help`` as for an option taking a value,
    ``--json <bool>``: a user then types ``--json true`` ("unexpected extra argument"). A flag
    is shown with no type; options that take a value keep theirs."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        for param in self.get_params(ctx):  # type: ignore[attr-defined]
            if getattr(param, "is_flag", False) and getattr(param, "metavar", None) is None:
                param.metavar = ""
        super().format_help(ctx, formatter)  # type: ignore[misc]


def parser_error_line(exc: ParserError) -> str:
    """What :func:`parser_errors_in_one_line` prints for an error of the command-line parser
    (typer's and click's usage errors), ``error: `` aside, on one line and in lower case as
    smsgate's own errors are. A bad value names the flag or argument as they do (``field
    '--limit': input should be greater than or equal to 1``, ``argument 'phone': ...``, the name
    ``--help`` lists); an error that is not about a value given (a missing one, an unknown
    option or command) also says where the command's help is (``no such option: --bogus (see
    'smsgate optout list --help')``)."""
    param = exc.param if isinstance(exc, typer.BadParameter) else None
    # click's missing option or argument is a bad parameter with no message
    text = (exc.message or "required and not given") if param is not None else exc.format_message()
    text = " ".join(line.strip() for line in text.splitlines() if line.strip()).rstrip(".")
    if text[:2].istitle():  # "Input should be", "No such option"; an acronym ("URL") stays
        text = text[0].lower() + text[1:]
    ctx = getattr(exc, "ctx", None)  # a usage error's: the command it is about
    if (param is None or not exc.message) and ctx is not None and ctx.help_option_names:
        text += f" (see '{ctx.command_path} {ctx.help_option_names[0]}')"
    return f"{_named(param)}: {text}" if param is not None else text


def _named(param: Any) -> str:
    """A parameter as smsgate's errors name it: ``field '--limit'`` (an option's long name),
    ``argument 'phone'`` (its metavar, else its name: what ``--help`` lists)."""
    if param.param_type_name == "argument":
        return f"argument {(param.metavar or param.name)!r}"
    opts = [opt for opt in param.opts if opt.startswith("--")] or param.opts
    return f"field {opts[0]!r}"


@contextmanager
def parser_errors_in_one_line() -> Iterator[None]:
    """Where the command line is parsed and run (:class:`Group`): an error of the parser (a
    value out of range or not one of a choice, a missing option, an unknown command) ends as
    smsgate's own errors do, in :func:`fail`'s one ``error:`` line and exit code 2 (click's
    code for a usage error too), not in click's ``Usage: ... Try ... --help`` box. A group
    given no command (``NoArgsIsHelpError``, named as typer names it) still shows its help."""
    try:
        yield
    except ParserError as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":
            raise
        fail(parser_error_line(exc))


class Command(_FlagsTakeNoValue, TyperCommand):
    """Every ``smsgate`` command's class (see :class:`_FlagsTakeNoValue`)."""


class Group(_FlagsTakeNoValue, TyperGroup):
    """Every ``smsgate`` command group's class (see :class:`_FlagsTakeNoValue`). The root group
    parses its own options in :meth:`make_context`; every command below it, its options and
    its run go through a group's :meth:`invoke`: both report the parser's errors in one line
    (:func:`parser_errors_in_one_line`)."""

    def make_context(self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any) -> Any:
        """As typer's, with :func:`parser_errors_in_one_line`."""
        with parser_errors_in_one_line():
            return super().make_context(info_name, args, parent, **extra)

    def invoke(self, ctx: Any) -> Any:
        """As typer's, with :func:`parser_errors_in_one_line`."""
        with parser_errors_in_one_line():
            return super().invoke(ctx)


class CommandGroup(typer.Typer):
    """A :class:`typer.Typer` whose every command runs inside :func:`handles_errors`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("cls", Group)
        super().__init__(*args, **kwargs)

    def command(self, *args: Any, **kwargs: Any) -> Callable[[F], F]:
        """Like :meth:`typer.Typer.command`; the registered callback is wrapped in :func:`handles_errors`,
        and its docstring is the help with each paragraph on one line (:func:`one_line_paragraphs`)."""

        def decorator(fn: F) -> F:
            help_text = kwargs.pop("help", None) or fn.__doc__
            register = super(CommandGroup, self).command(
                *args, help=one_line_paragraphs(help_text) if help_text else None, **{"cls": Command, **kwargs})
            register(handles_errors(fn))
            return fn

        return decorator


#: The root ``smsgate`` command; the modules of this package add their commands and groups to it.
app = CommandGroup(help="smsgate: one API for SMS across many providers. "
                        "Exit codes: 0 ok, 1 a negative answer (e.g. optout check: not opted out), 2 an error, "
                        "130 stopped by Ctrl-C.",
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
    """The error of a command that needs a tenant when there is none (neither in the configuration
    file nor stored with ``smsgate tenant add``): where it looked, what to do."""
    path = _config_path(config)
    if path is None and not os.environ.get("SMSGATE_CONFIG"):
        return ConfigError(
            f"no configuration: there is no smsgate.toml in {Path.cwd()} and $SMSGATE_CONFIG is not set; "
            "create smsgate.toml with a [tenants.NAME] table and its providers (see docs/configuration.md; "
            "'smsgate sandbox' prints provider blocks to start from), or pass --config PATH"
        )
    where = path or os.environ.get("SMSGATE_CONFIG")
    return ConfigError(f"{where} configures no tenant and its store holds none; add a [tenants.NAME] table "
                       "with its providers (see docs/configuration.md) or store one with 'smsgate tenant add' "
                       "(see docs/tenants.md)")


def store_file_missing(url: str) -> bool:
    """Whether ``url`` is an SQLite store whose file does not exist (yet): opening it would
    create it, which a command that only reads or removes must not do."""
    if not url.startswith("sqlite://"):
        return False
    path = url[len("sqlite://"):].removeprefix("/")
    return path not in ("", ":memory:") and not path.startswith("file:") and not Path(path).exists()


def missing_store_note(url: str, config: Path | None, *, given: bool = False,
                       store_flag: str | None = "--store URL") -> str:
    """Why a store that does not exist holds nothing, and where the command looked (``given``:
    the URL is the command's ``store_flag``, not the configuration's)."""
    note = f"the store {url} does not exist"
    if not given and _config_path(config) is None and not os.environ.get("SMSGATE_CONFIG"):
        flags = "--config PATH" + (f" or {store_flag}" if store_flag else "")
        note += (f" (no smsgate.toml in {Path.cwd()} and $SMSGATE_CONFIG is not set, so the default store "
                 f"is used: pass {flags})")
    return note


def _holds_no_tenant(settings: Settings) -> bool:
    """Whether the store certainly holds no stored tenant without opening it: an SQLite file
    that does not exist (a command that fails for want of a tenant must not create it)."""
    url = settings.store
    if url.startswith("memory://"):
        return True
    if not url.startswith("sqlite://"):
        return False
    path = url[len("sqlite://"):].removeprefix("/")
    return path in ("", ":memory:") or store_file_missing(url)


def require_tenants(settings: Settings, config: Path | None) -> None:
    """Raise :func:`no_tenants_error` when the configuration has no tenant and the store
    certainly holds none (checked without opening, so without creating, the store)."""
    if not settings.tenants and _holds_no_tenant(settings):
        raise no_tenants_error(config)


def stored_tenant_names(gw: Gateway | AsyncGateway) -> list[str]:
    """The gateway's stored tenants (its tenant source's) that no configuration tenant shadows, sorted."""
    from smsgate.tenants import source_tenant_names

    return source_tenant_names(gw.settings.tenants, gw.tenants)


#: What a command opening a ``memory://`` store says on stderr (see :func:`_with_stored_tenants`).
MEMORY_STORE_NOTE = ("note: the store is memory://: it is this command's own and lost when it ends (the next "
                     "smsgate command starts with nothing: no messages, opt-outs, campaigns or contact lists); "
                     "for a store that lasts, set store = \"sqlite:///smsgate.db\"")


def _with_stored_tenants(factory: Callable[..., G], settings: Settings, *, stores: bool = True) -> G:
    from smsgate.tenants import StoredTenants

    # fine in a test's Gateway; from the command line, a trap for a command that keeps or reads
    # what it stores (``stores``; not 'config check' or 'route explain', which store nothing)
    if stores and settings.store.startswith("memory://"):
        print(MEMORY_STORE_NOTE, file=sys.stderr)
    store = open_store(settings.store)
    try:
        gw = factory(settings, store=store, tenants=StoredTenants(store))
    except BaseException:
        store.close()
        raise
    gw._core_._own_store = True  # closed with the gateway, as a store it opened itself
    return gw


def open_gateway(settings: Settings, *, stores: bool = True) -> Gateway:
    """A :class:`Gateway` of ``settings`` that also serves the tenants stored in its store.

    Tenants are found as the gateway finds them: the configuration file's first, then those
    kept by ``smsgate tenant add`` (:class:`~smsgate.tenants.StoredTenants`, credentials
    decrypted with ``$SMSGATE_TENANT_KEY`` only when such a tenant is used). A ``memory://``
    store is noted on stderr (:data:`MEMORY_STORE_NOTE`) unless the command stores and reads
    nothing (``stores=False``).
    """
    return _with_stored_tenants(Gateway, settings, stores=stores)


def open_async_gateway(settings: Settings) -> AsyncGateway:
    """An :class:`AsyncGateway` of ``settings`` that also serves stored tenants (see :func:`open_gateway`)."""
    return _with_stored_tenants(AsyncGateway, settings)


def _listing(names: list[str]) -> str:
    return ", ".join(names) or "none"


#: What a missing ``--tenant`` error adds, given the gateway and every tenant's name (see :func:`holder`).
Several = str | Callable[[Gateway | AsyncGateway, list[str]], str | None]


def holder(kind: str, item_id: str) -> Several:
    """For a command given a campaign's or a message's id (``kind``: ``"campaign"`` or
    ``"message"``): the tenant holding it, named in the missing ``--tenant`` error (``campaign
    cmp_... is tenant globex's: add --tenant globex``). An id is one tenant's; the command still
    acts on none but the one ``--tenant`` names."""
    from smsgate.errors import NotFound

    def whose(gw: Gateway | AsyncGateway, names: list[str]) -> str | None:
        find = gw.store.get_campaign if kind == "campaign" else gw.store.get_message
        owners = []
        for name in names:
            try:
                find(name, item_id)
            except (NotFound, ValidationError):  # not this tenant's (or no id at all)
                continue
            owners.append(name)
        return f"{kind} {item_id} is tenant {owners[0]}'s: add --tenant {owners[0]}" if len(owners) == 1 else None

    return whose


def tenant_name(gw: Gateway | AsyncGateway, tenant: str | None, config: Path | None, *,
                several: Several | None = None) -> str:
    """The tenant a command acts on: ``--tenant``, else the only tenant there is.

    A name is looked up as the gateway looks it up: the configuration file's tenants win,
    then the store's (``smsgate tenant add``). An unknown name, or a missing ``--tenant``
    when there are several tenants, is an error listing both kinds (``several``: what the
    command offers instead, added to that error; or a function of the gateway and the
    tenants' names giving it, e.g. :func:`holder`).
    """
    configured = sorted(gw.settings.tenants)
    if tenant is not None and not tenant.strip():
        # an unset variable ('-t "$TENANT"'): acting on the only tenant there is would send as it
        raise ValidationError(f"{tenant!r} is blank: give a tenant's name, or leave --tenant out when there is "
                              "only one tenant", field="--tenant")
    if tenant and tenant in gw.settings.tenants:
        return tenant
    stored = stored_tenant_names(gw)
    if tenant and tenant in stored:
        return tenant
    if tenant:
        known = (f"configured tenants: {_listing(configured)}; stored tenants: {_listing(stored)} "
                 "(see 'smsgate tenant list')" if configured or stored else str(no_tenants_error(config)))
        raise UnknownTenant(tenant, known + _left_data(gw, tenant))
    if not configured and not stored:
        raise no_tenants_error(config)
    if len(configured) + len(stored) == 1:
        return (configured or stored)[0]
    listing = f"configured tenants: {_listing(configured)}"
    if stored:
        listing += f"; stored tenants: {_listing(stored)}"
    if callable(several):
        several = several(gw, configured + stored)
    raise SmsgateError(f"--tenant is required ({listing})" + (f"; {several}" if several else ""))


def _left_data(gw: Gateway | AsyncGateway, name: str) -> str:
    """What an unknown tenant's error adds when the store still holds data under the name (a
    tenant removed, or moved out of the configuration file): what is there and the ways out."""
    held = gw.store.tenant_data(name)
    if not held:
        return ""
    return (f"; the store still holds data under the name ({', '.join(held)}), left by a removed tenant: "
            f"'smsgate tenant erase {name}' deletes it, 'smsgate tenant add {name} FILE --adopt-data' "
            "takes it over")


def open_tenant(config: Path | None, tenant: str | None, *, read_only: bool = False,
                several: Several | None = None, stores: bool = True) -> tuple[Gateway, Tenant]:
    """A gateway (use it as a context manager) and the tenant named by ``--tenant`` (or the only one).

    The tenant may be the configuration file's or one stored with ``smsgate tenant add``
    (see :func:`tenant_name`). ``read_only=True`` for commands that call no provider, only the
    store (``messages``, ``campaign list``, ``optout add``...): they work without the configuration's provider
    secrets (a provider whose ``${VAR}`` is unset fails only if it is used); a stored
    tenant still needs ``$SMSGATE_TENANT_KEY``. ``several``: see :func:`tenant_name`; ``stores``:
    see :func:`open_gateway`.
    """
    settings = load_settings(config, defer_secrets=read_only)
    require_tenants(settings, config)
    gw = open_gateway(settings, stores=stores)
    try:
        return gw, gw.tenant(tenant_name(gw, tenant, config, several=several))
    except BaseException:
        gw.close()
        raise


@contextmanager
def typed_number(value: str | list[str] | None, shown: str) -> Iterator[None]:
    """An invalid number ``value`` (or one of the numbers ``value``) raised in the block is named
    as the user typed it: ``shown`` is the flag (``--to``) or the positional argument
    (``phone``), not the library's field."""
    typed = [] if value is None else [value] if isinstance(value, str) else value
    try:
        yield
    except InvalidPhoneNumber as exc:
        if exc.value not in typed:
            raise
        value = exc.value
        if shown.startswith("-"):
            raise InvalidPhoneNumber(exc.reason, field=shown, value=value) from None
        raise InvalidPhoneNumber(exc.reason, value=value, location=f"argument {shown!r}") from None


@contextmanager
def flags_named(flags: dict[str, str]) -> Iterator[None]:
    """A :class:`ValidationError` raised in the block about one of the library's arguments
    (``sender``; not a row of an audience: those have a location) is named as the flag the
    user typed (``flags_named({"sender": "--sender"})``: ``field '--sender': ...``), as --help
    shows it and the command's own checks name it; same class. So is the tenant's refusal of a
    forced ``provider`` it does not have (a :class:`ConfigError` naming ``provider``, see
    :meth:`~smsgate.core.policy.TenantPolicy.check_provider`), as a :class:`ValidationError`. A
    phone number's error is :func:`typed_number`'s."""
    try:
        yield
    except ConfigError as exc:
        flag = flags.get(exc.field or "")
        if flag is None:
            raise
        raise ValidationError(str(exc), field=flag) from None
    except ValidationError as exc:
        flag = flags.get(exc.field or "")
        if flag is None or exc.location or isinstance(exc, InvalidPhoneNumber):
            raise
        try:
            renamed = type(exc)(exc.reason, field=flag, value=exc.value)
        except TypeError:  # a subclass made otherwise
            renamed = ValidationError(exc.reason, field=flag, value=exc.value)
        raise renamed from None


def nothing_to_list(line: str) -> None:
    """Say a listing has nothing to show (rather than a table's header alone), and how to get some."""
    console.print(line, soft_wrap=True)


def compact_table(*names: str, title: str | None = None) -> Table:
    """A compact table (a rule under the header, one space between columns) whose first
    column (an id, a number, a period) is never wrapped or cut."""
    from rich import box

    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True, padding=(0, 1),
                  show_edge=False, title=title)
    for i, name in enumerate(names):
        table.add_column(name, no_wrap=i == 0)
    return table
