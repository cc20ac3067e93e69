"""One exception tree for everything smsgate raises.

::

    SmsgateError
    ├── ConfigError
    │   └── UnknownProvider            a tenant names a plugin that is not installed
    ├── ValidationError (ValueError)   bad input; says which field / row / value
    │   ├── InvalidPhoneNumber
    │   ├── TemplateError              a template variable is missing
    │   ├── TooManySegments            a text longer than the tenant's max_segments
    │   └── DownloadRefused            a URL to download (a media attachment) was refused:
    │       │                          scheme, host address, answer or content type
    │       └── DownloadTooLarge       its body passed the size cap
    ├── OptedOut                       the recipient opted out; nothing was sent
    ├── Unsupported                    a provider lacks a feature (names both)
    │   ├── NoCapableProvider          no provider of a message's route can carry it
    │   └── UnsupportedCallback        an authenticated webhook callback holds what its
    │                                  provider does not take (the webhook app's 501)
    ├── NotFound                       no such message / campaign / tenant in the store
    ├── StoreError                     the store (database) failed: locked, read-only,
    │   │                              unreachable, closed; names the file or server
    │   ├── StoreUnavailable           (also a ConfigError) the PostgreSQL store could not
    │   │                              be opened: its server unreachable or failing
    │   └── AnswerNotLogged            send() has the provider's answer (``result``) but
    │                                  could not log it: the log still says ``queued``
    ├── StoppedWaiting                 (smsgate.traffic) a request stopped while it waited
    │   │                              for its rate limits: not sent
    │   └── LimitWaitExceeded          its limits would hold it longer than the tenant's
    │                                  max_limit_wait: not sent; carries retry_after
    ├── GatewayClosed (RuntimeError)   the gateway was closed; it is used no more
    ├── WouldBlock (RuntimeError)      a blocking call made on a running event loop
                                       (names the awaitable form to use instead)
    └── ProviderError                  the vendor, or the way to it, failed
        ├── AuthFailed                 401/403 or a token that cannot be obtained
        ├── RateLimited                429; carries retry_after seconds
        ├── RequestRejected            4xx: the vendor refused this request
        │   ├── ResourceNotFound       404 at the vendor
        │   └── RecipientSuppressed    the recipient opted out / is on the vendor's
        │                              suppression or do-not-disturb list
        ├── ProviderUnavailable        5xx
        ├── MalformedResponse          a body the adapter cannot read
        ├── TransportError             the request never reached the vendor
        ├── CircuitOpen                the vendor is failing (breaker open): not tried
        └── UnknownOutcome             sent, but no answer (timeout): may or may not
                                       have been delivered; never blindly retried

Errors never carry secrets: provider errors keep a short, redacted excerpt of the
vendor's body, and the request URL without its query string.

Errors cross process boundaries whole: pickled, or through a Celery result backend with
its JSON serializer (``AsyncResult.get()`` raises the task's :class:`OptedOut` itself, with
its ``phone``, ``tenant`` and ``sender``). ``args`` are what the error's class is called with
to make it again (``type(e)(*e.args)``: how Celery rebuilds an exception from JSON), already
redacted (a :class:`ValidationError` keeps a message body or a secret out of them), and end
with the context the error was told with since (its :attr:`~SmsgateError.failed_over`
attempts, a reworded text) when it has some; ``str(e)`` is the text the error was made with.
"""

from __future__ import annotations

import base64
import functools
import json
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar

__all__ = [
    "AnswerNotLogged",
    "AuthFailed",
    "CircuitOpen",
    "ConfigError",
    "DownloadRefused",
    "DownloadTooLarge",
    "GatewayClosed",
    "GatewayForked",
    "InvalidPhoneNumber",
    "LeaseLost",
    "MalformedResponse",
    "NoCapableProvider",
    "NoRoute",
    "NotFound",
    "OptedOut",
    "ProviderError",
    "ProviderUnavailable",
    "RateLimited",
    "RecipientSuppressed",
    "RequestRejected",
    "ResourceNotFound",
    "SmsgateError",
    "StoreError",
    "StoreUnavailable",
    "TemplateError",
    "TooManySegments",
    "TransportError",
    "UnknownOutcome",
    "UnknownProvider",
    "UnknownTenant",
    "Unsupported",
    "UnsupportedCallback",
    "ValidationError",
    "WouldBlock",
    "WrongEventLoop",
    "check_bool",
    "conceal",
    "credential_tokens",
    "hide_credentials",
    "looks_like_credential",
    "mask_numbers",
    "mask_path",
    "mask_phone",
    "names_a_secret",
    "path_numbers",
    "redact",
    "request_where",
    "shown_value",
    "string_leaves",
]

_SECRET_PATTERNS = [
    # key=value / "key": "value" pairs whose key looks secret. The letters around the secret word
    # are bounded: unbounded, a long run of letters (a vendor's error text) took quadratic time
    # (seconds for 4,000 letters, minutes for 30,000), each start trying every split of the run
    re.compile(
        r"""(?ix)
        (?P<key>(?:(?<!\\)\\*["'])?(?<![a-z_\-])(?:[a-z_\-]{0,64}(?:secret|password|passwd|token|api[_-]?key|authorization|access[_-]?token|refresh[_-]?token|x-refresh)[a-z_\-]{0,64})(?:\\*["'])?
        \s*[:=]\s*)
        (?:(?P<q>\\*["'])(?:(?:Bearer|Basic)\s+)?(?:\\*[^\\\n])*?(?P=q)
            # quoted, also as \" (JSON inside a JSON string): to its own closing quote, over
            # spaces, the other quote and quotes escaped once more (a backslash run and the
            # character after it are read as one)
        |(?:(?:Bearer|Basic)\s+)?[^"'\s,&}]+)        # bare: to a space, comma, & or }
        """
    ),
    re.compile(r"(?i)(Bearer\s+)[A-Za-z0-9._\-+/=]+"),
    re.compile(r"\b(sandbox_sk_|sk_live_|sk_)[A-Za-z0-9]+"),
]

#: ``Basic <base64>`` anywhere in a text (a vendor echoing a request's Authorization header)
_BASIC = re.compile(r"(?i)\b(Basic\s+)([A-Za-z0-9+/]{4,}={0,2})")


def _basic_credentials(match: re.Match[str]) -> str:
    """``Basic ***`` where the word after ``Basic`` is the base64 of a ``user:password`` pair
    (that is the password, encoded); anything else (``Basic plan``) as it was."""
    try:
        decoded = base64.b64decode(match.group(2), validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return match.group(0)
    return f"{match.group(1)}***" if ":" in decoded else match.group(0)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Return ``text`` with credentials replaced by ``***``.

    Removes any of the given ``secrets`` verbatim (and the head of one a text cut short ends
    with, from 4 characters), then anything that looks like a
    credential (``password=...``, ``"access_token": "..."``, ``Bearer ...``, ``Basic`` and
    the base64 of a ``user:password`` pair).
    """
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
            # a text cut in the middle of a secret (a vendor's answer cut to a few hundred
            # characters before it is redacted) ends with its head: hidden too, from 4 characters
            head = next((k for k in range(len(secret) - 1, 3, -1) if text.endswith(secret[:k])), None)
            if head is not None:
                text = text[:-head] + "***"
    text = _SECRET_PATTERNS[0].sub(lambda m: f"{m['key']}{m['q'] or ''}***{m['q'] or ''}", text)
    text = _SECRET_PATTERNS[1].sub(r"\1***", text)
    text = _SECRET_PATTERNS[2].sub(r"\1***", text)
    text = _BASIC.sub(_basic_credentials, text)
    return text


#: A credential by its vendor's prefix (Squad's ``sk_live_``/``sandbox_sk_``, Stripe-like ``pk_``/
#: ``rk_``, ``sk-``, Slack's ``xoxb-``, GitHub's ``ghp_``, GitLab's ``glpat-``, AWS's ``AKIA``, a JWT).
_CREDENTIAL_PREFIX = re.compile(
    r"(?:sandbox_sk_|(?:sk|pk|rk)_(?:live|test)_|sk_|sk-|xox[abprs]-|gh[pousr]_|glpat-|AKIA|eyJ)[A-Za-z0-9_\-]{8,}")
#: A word of a value, as :func:`credential_tokens` reads it: a key is letters, digits, ``_ - + ~``
#: (base64's ``=`` padding at its end); ``/ . : @ ? & #`` and spaces separate words (a URL's parts).
_WORD = re.compile(r"[A-Za-z0-9_\-+~]+={0,2}")
#: What a value that looks like a credential is replaced by in an error's text.
HIDDEN = "***"
#: What an error's text says when it hid a value (:func:`hide_credentials`).
HIDDEN_NOTE = "value hidden: it looks like a credential"


def looks_like_credential(word: str) -> bool:
    """Whether ``word`` (one word of a value: see :func:`credential_tokens`) looks like a key,
    token or password rather than a name, an address or a number: a vendor's key prefix
    (``sk_live_...``, ``eyJ...``), or 16 characters or more mixing letters and digits, with both
    cases (``7Hq2xLp9Rv4sKm8TzW3n``) or, in one case, at least 1 digit in 5 (a hex or
    lowercase key, a UUID). ``squad_main2024_backup``, ``Africa/Lagos``, ``+447700900123`` and
    ``api.squadco.com`` are not. The one rule of the errors that would repeat a value given in
    the wrong place (a key pasted as ``base_url``, ``sender``, ``plugin``...)."""
    if _CREDENTIAL_PREFIX.fullmatch(word):
        return True
    if len(word) < 16:
        return False
    digits = sum(ch.isdigit() for ch in word)
    upper = sum(ch.isupper() for ch in word)
    lower = sum(ch.islower() for ch in word)
    if digits < 2 or upper + lower < 2:
        return False
    return bool(upper and lower) or digits * 5 >= len(word)


def credential_tokens(value: object) -> set[str]:
    """The words of ``value`` (a string, or the strings inside a mapping or a list, as a
    configuration's input is) that :func:`looks_like_credential`."""
    return {word for leaf in string_leaves(value) for word in _WORD.findall(leaf) if looks_like_credential(word)}


def string_leaves(value: object, depth: int = 0) -> list[str]:
    """The strings inside ``value`` (not the keys of its mappings; a configuration's tables and
    lists, an input), a few levels deep."""
    if isinstance(value, str):
        return [value]
    if depth > 8:
        return []
    if isinstance(value, Mapping):
        return [leaf for item in value.values() for leaf in string_leaves(item, depth + 1)]
    if isinstance(value, (list, tuple, set, frozenset)):
        return [leaf for item in value for leaf in string_leaves(item, depth + 1)]
    return []


def conceal(value: str) -> str:
    """``value`` with each word that :func:`looks_like_credential` replaced by ``***``: what an
    error may show of a value it names (``'https://***'``, ``'***'``)."""
    for word in sorted(credential_tokens(value), key=len, reverse=True):
        value = value.replace(word, HIDDEN)
    return value


def shown_value(value: object, limit: int | None = None) -> str:
    """``repr(value)`` for an error's text, cut to ``limit`` characters (then ``...``), with the
    words that look like a credential replaced (:func:`conceal`) and, when any was, followed by
    ``(value hidden: it looks like a credential)``: an error says which value was wrong
    and why, without repeating a key pasted into the wrong setting or argument. Anything but a
    string is shown as its ``repr``."""
    if not isinstance(value, str):
        return repr(value)
    hidden = conceal(value)
    cut = hidden if limit is None or len(hidden) <= limit else hidden[:limit]
    shown = repr(cut) + ("..." if cut is not hidden else "")
    return shown if hidden == value else f"{shown} ({HIDDEN_NOTE})"


def hide_credentials(text: str, inputs: object = None, secrets: Iterable[str] = ()) -> str:
    """``text`` (an error about ``inputs``: a value given, or the mapping or list it was in)
    without the credentials it would repeat: each of ``secrets`` (the configured credentials'
    values, whatever they look like) and each word of ``inputs`` that
    :func:`looks_like_credential` replaced by ``***``, and then ``(value hidden: it looks
    like a credential)`` added; ``text`` as it was when it repeats none."""
    found = {secret for secret in secrets if isinstance(secret, str) and len(secret) >= 4 and secret in text}
    found |= {word for word in credential_tokens(inputs) if word in text}
    if not found:
        return text
    for word in sorted(found, key=len, reverse=True):
        text = text.replace(word, HIDDEN)
    return text if text.endswith(f"({HIDDEN_NOTE})") else f"{text} ({HIDDEN_NOTE})"


def check_bool(field: str, value: object, location: str | None = None) -> bool:
    """``value`` if it is ``True`` or ``False``, else a :class:`ValidationError` naming ``field``:
    the one rule of every flag a public method takes (``dry_run``, ``force``, ``wait``,
    ``refresh``, ``include_provider``, ``every_scope``...). ``"false"`` and ``"no"`` are true
    and ``None`` is false: taken as they are, each did the opposite of what was meant."""
    if value is True or value is False:
        return value
    raise ValidationError(f"expected True or False, got {type(value).__name__}", field=field, location=location)


def mask_phone(phone: str) -> str:
    """A phone number with its middle digits hidden, for logs: ``+234*******567``."""
    return phone[:4] + "*" * max(0, len(phone) - 7) + phone[-3:] if len(phone) > 7 else "***"


def mask_numbers(text: str, numbers: Iterable[str]) -> str:
    """``text`` with each of ``numbers`` masked (:func:`mask_phone`), in the forms a text may
    write it: as given, and without its ``+`` (``2348031234567``)."""
    forms: dict[str, str] = {}
    for number in numbers:
        if isinstance(number, str) and len(number.strip()) > 4:
            number = number.strip()
            forms[number] = mask_phone(number)
            if number.startswith("+"):
                forms.setdefault(number[1:], mask_phone(number[1:]))
    for form in sorted(forms, key=len, reverse=True):  # the longest first: "+234..." before "234..."
        text = text.replace(form, forms[form])
    return text


#: A phone number in a URL's path: 8-15 digits, after ``+`` or its encoding ``%2B`` or not, not
#: part of a longer word (a hex id), of a dashed id (a UUID) or of a percent-escape; a whole
#: percent-escape before it is a separator (``tel%3A2348031234567``, ``tel%3A%2B234...``), as
#: any other non-word character is once decoded (``tel:+234...``, ``234...@s.whatsapp.net``).
_PATH_NUMBER = re.compile(r"(?:(?<![\w%-])|(?<=%[0-9A-Fa-f]{2}))(?:\+|%2[Bb])?\d{8,15}(?![\w-])")


def path_numbers(path: str) -> list[str]:
    """The phone numbers a URL path names (see :func:`mask_path`), as written there."""
    return [m.group() for m in _PATH_NUMBER.finditer(path)]


def mask_path(path: str) -> str:
    """A URL path (percent-encoded or decoded) with each phone number in it masked by
    :func:`mask_phone`: ``/by-phone/0803****567``, ``/send/tel:+234*******567``. The one rule
    for numbers in paths: smsgate's errors (:func:`request_where`) and httpx's request log
    (:class:`smsgate.transport.HttpxLogRedactor`) both use it."""
    return _PATH_NUMBER.sub(_mask_path_number, path)


def _mask_path_number(match: re.Match[str]) -> str:
    number = match.group()
    if number[:3] in ("%2B", "%2b"):  # the encoded '+': masked as '+234*******567' is
        return number[:3] + mask_phone("+" + number[3:])[1:]
    return mask_phone(number)


def request_where(message: Any) -> str:
    """``METHOD /path`` of an :class:`httpx.Request` (or of the request of an
    :class:`httpx.Response`) for an error text: the path only (a query string may carry
    credentials), its phone numbers masked (:func:`mask_path`)."""
    request = getattr(message, "request", message)
    return f"{request.method} {mask_path(request.url.path)}"


class SmsgateError(Exception):
    """Base class of every error smsgate raises.

    An error that ends a failover chain (the last provider of a message's route failed
    too) keeps the attempts before it in :attr:`failed_over`, and its text says why each
    failed: ``[backup] ... connection refused (after failing over from squad: provider
    'squad' (squad v2): sender_id is required; ...)``.
    """

    #: The failed attempts through the providers tried before this error's, in order:
    #: ``(instance, error)``. Empty unless the message failed over. Kept by pickle and by
    #: Celery's result backends (JSON too: see :attr:`args`).
    failed_over: tuple[tuple[str, BaseException], ...] = ()
    _reworded = False

    def __init__(self, *args: Any) -> None:
        args, context = _split_context(args)
        super().__init__(*args)
        # the text, whatever a subclass then keeps in ``args`` (the arguments that make it again)
        self._text = super().__str__()
        if context is not None and type(self).__init__ is SmsgateError.__init__:
            self._apply_context(context)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # A class's own constructor takes, after its arguments, the context :attr:`args` may end
        # with (as ``cls(*exc.args)`` passes it: how Celery makes an error again from JSON)
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is None or getattr(init, "_takes_context", False):
            return

        @functools.wraps(init)
        def __init__(self: SmsgateError, *args: Any, **kw: Any) -> None:
            args, context = _split_context(args)
            init(self, *args, **kw)
            if context is not None:
                self._apply_context(context)

        __init__._takes_context = True  # type: ignore[attr-defined]
        cls.__init__ = __init__  # type: ignore[method-assign]

    @property  # type: ignore[override]
    def args(self) -> tuple[Any, ...]:
        """What the error's class is called with to make it again: ``type(e)(*e.args)``.

        An error told with more context than it was made with (its text reworded, or the
        attempts it :attr:`failed_over`) ends its ``args`` with that context (a JSON-able
        ``{"smsgate.error": {...}}``), which its constructor takes back: so both cross a
        Celery result backend with its JSON serializer too."""
        plain: tuple[Any, ...] = BaseException.args.__get__(self)  # type: ignore[attr-defined]
        context = self._context()
        return plain if context is None else (*plain, context)

    @args.setter
    def args(self, value: Iterable[Any]) -> None:
        BaseException.args.__set__(self, _split_context(tuple(value))[0])  # type: ignore[attr-defined]

    def _context(self) -> dict[str, Any] | None:
        """The context :attr:`args` ends with, or ``None`` when there is none."""
        if not self.failed_over and not self._reworded:
            return None
        told: dict[str, Any] = {}
        if self._reworded:
            told["text"] = self.__dict__.get("_text")
        if self.failed_over:
            told["failed_over"] = [[instance, _error_to_json(err)] for instance, err in self.failed_over]
        return {_CONTEXT: told}

    def _apply_context(self, context: Mapping[str, Any]) -> None:
        told = context[_CONTEXT]
        if isinstance(told.get("text"), str):
            self._reword(told["text"])
        earlier = told.get("failed_over")
        if isinstance(earlier, list):
            self.failed_over = tuple((str(instance), _error_from_json(err)) for instance, err in earlier)

    def __reduce__(self) -> tuple[Any, ...]:
        # pickled as it is (its class, args and attributes), without calling its constructor again
        return _unpickle, (type(self), self.args), self.__dict__

    def __repr__(self) -> str:
        # the class and its text, as for an exception made with its text alone (Celery's worker
        # logs a failed task's error so, at INFO for an expected one): not every argument in
        # ``args``, and the phone numbers it names masked (personal data; ``str()`` keeps them)
        text = self.__dict__.get("_text")
        if text is None:
            return super().__repr__()
        return f"{type(self).__name__}({mask_numbers(str(text), self._phone_numbers())!r})"

    def _phone_numbers(self) -> tuple[str, ...]:
        """The phone numbers this error's text may name (masked in its ``repr``)."""
        return ()

    def _reword(self, text: str) -> None:
        """Say ``text`` instead (the same error, told with more context)."""
        self._text = text
        self._reworded = True

    def __str__(self) -> str:
        text = self.__dict__.get("_text")
        if text is None:
            text = super().__str__()
        if not self.failed_over:
            return text
        before = "; ".join(f"{err}" if f"[{instance}]" in str(err) or f"'{instance}'" in str(err)
                           else f"{instance}: {err}" for instance, err in self.failed_over)
        return f"{text} (after failing over from {before})"


#: The key of the context an error's ``args`` may end with (see :attr:`SmsgateError.args`).
_CONTEXT = "smsgate.error"


def _split_context(args: tuple[Any, ...]) -> tuple[tuple[Any, ...], Mapping[str, Any] | None]:
    """``args`` without the context they may end with, and that context (or ``None``)."""
    if args and isinstance(args[-1], Mapping) and set(args[-1]) == {_CONTEXT} and isinstance(
            args[-1][_CONTEXT], Mapping):
        return args[:-1], args[-1]
    return args, None


def _error_to_json(err: BaseException) -> dict[str, Any]:
    """An earlier attempt's error as JSON: its class, text and ``args`` (when they are JSON)."""
    out: dict[str, Any] = {"module": type(err).__module__, "type": type(err).__qualname__, "text": str(err)}
    try:
        json.dumps(err.args)
    except (TypeError, ValueError):
        pass
    else:
        out["args"] = list(err.args)
    return out


def _error_from_json(data: Any) -> BaseException:
    """An earlier attempt's error made again from :func:`_error_to_json`: a smsgate error of its
    class (one of a module already imported), a built-in exception with its text, or else a
    :class:`SmsgateError` with its text."""
    if not isinstance(data, Mapping):
        return SmsgateError(str(data))
    text = str(data.get("text", ""))
    cls: Any = sys.modules.get(str(data.get("module")))
    for name in str(data.get("type", "")).split("."):
        cls = getattr(cls, name, None)
    args = data.get("args")
    known = isinstance(cls, type) and (issubclass(cls, SmsgateError) or (
        issubclass(cls, Exception) and cls.__module__ == "builtins"))
    if known:
        try:
            made: BaseException = cls(*args) if isinstance(args, list) else cls(text)
        except Exception:  # told by its text instead
            return SmsgateError(text)
        return made
    return SmsgateError(text)


def _unpickle(cls: type[SmsgateError], args: tuple[Any, ...]) -> SmsgateError:
    """An error of class ``cls`` with ``args`` (its attributes are set next, by pickle)."""
    if not (isinstance(cls, type) and issubclass(cls, SmsgateError)):
        raise TypeError(f"not a smsgate error: {cls!r}")
    exc = cls.__new__(cls, *args)
    exc.args = args
    return exc


class ConfigError(SmsgateError):
    """The configuration is invalid or incomplete.

    ``field`` is the key at fault when it is known, as a path in smsgate.toml
    (``tenants.acme.providers.main.options``); ``None`` otherwise.
    """

    def __init__(self, message: str = "", field: str | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.args = (message, field) if field is not None else (message,)


class UnknownTenant(ConfigError):
    """No tenant has this name: not in the configuration, nor in the gateway's tenant source
    (it may have been removed at run time; see docs/tenants.md)."""

    def __init__(self, name: str, detail: str) -> None:
        self.name = name
        shown = shown_value(name)  # not a key pasted as --tenant
        super().__init__(f"unknown tenant {shown}: {detail}")
        self.args = (name, detail)


class NoRoute(ConfigError):
    """No routing rule of ``tenant`` matches a message to ``phone`` (E.164) of kind ``kind``
    (``None``: no kind): nothing is sent. The number is masked (:func:`mask_phone`) in the
    error's text and ``repr``, which a worker logs; ``phone`` keeps it whole. A
    :class:`ConfigError` (the routes decide which numbers the tenant sends to), and, like
    :class:`NoCapableProvider`, an expected failure of a queued send (``send_later``).
    """

    def __init__(self, tenant: str, phone: str, kind: str | None = None) -> None:
        self.tenant = tenant
        self.phone = phone
        self.kind = kind
        told = f" (kind {kind!r})" if kind else ""
        super().__init__(f"tenant {tenant!r} has no route for {mask_phone(phone)}{told}")
        self.args = (tenant, phone, kind)

    def _phone_numbers(self) -> tuple[str, ...]:
        return (self.phone,)


class UnknownProvider(ConfigError):
    """A tenant refers to a provider plugin that is not installed."""

    def __init__(self, name: str, installed: Iterable[str], field: str | None = None) -> None:
        self.name = name
        self.installed = sorted(installed)
        listing = ", ".join(self.installed) or "none"
        import difflib

        close = difflib.get_close_matches(name, self.installed, n=1)
        fix = f"Did you mean {close[0]!r}? If not, install" if close else "Install"  # a typo, most often
        shown = shown_value(name)  # a key pasted as the plugin's name is not repeated
        example = f" (e.g. 'pip install smsgate-{name.replace('_', '-')}')" if shown == repr(name) else ""
        super().__init__(
            (f"{field}: " if field else "")
            + f"unknown provider plugin {shown}; installed providers: {listing}. "
            f"{fix} the plugin's distribution{example}.",
            field=field,
        )
        self.args = (name, self.installed, field)


#: A field whose value is a message's text (its last name: ``text``, ``messages[3].body``,
#: ``intro_template``...).
_BODY_NAMES = frozenset({"text", "body", "message", "template", "content", "sms", "msg"})
#: A field whose value is a phone number (masked in the error's ``repr``).
_PHONE_NAMES = frozenset({"to", "phone", "phone_number", "recipient", "number", "msisdn"})
#: A field whose value is a credential, wherever in its path (``providers.main.credentials.api_key``).
_SECRET_FIELD = re.compile(r"(?i)secret|passw|token|api[_-]?key|authori[sz]ation|credential|private[_-]?key")


def names_a_secret(name: str) -> bool:
    """Whether a field, setting or environment variable called ``name`` holds a credential
    (``secret``, ``password``, ``token``, ``api_key``, ``credentials...``, anywhere in it:
    ``providers.main.credentials.api_key``, ``SQUAD_SECRET_KEY``)."""
    return bool(_SECRET_FIELD.search(name))


def _private_value(field: str | None) -> str | None:
    """``"secret"``, ``"body"`` or ``None``: what the value of a field so named is."""
    if not field:
        return None
    if names_a_secret(field):
        return "secret"
    last = re.sub(r"\[[^\]]*\]", "", field).rsplit(".", 1)[-1].lower()
    if last in _BODY_NAMES or last.endswith(tuple(f"_{name}" for name in _BODY_NAMES)):
        return "body"
    return None


class ValidationError(SmsgateError, ValueError):
    """Input was rejected. ``field``, ``value`` and ``location`` say what and where.

    The error itself keeps a message body and a secret out of everything that leaves the
    process (``args``, pickle, a Celery result backend), whoever made it: ``value`` of a field
    named like a credential (``secret``, ``password``, ``token``, ``api_key``, ``credentials...``)
    is ``"***"``; ``value`` of a field named like a message's text (``text``, ``body``,
    ``message``, ``template``, ``content``...) stays in this process (for the caller to look at),
    as a :class:`TemplateError`'s does: it is not in ``args`` nor pickled, and the error made
    again elsewhere has ``value`` ``None``. The value is never part of ``str()`` or ``repr()``.
    """

    #: ``value`` is a message body whatever the field's name (:class:`TemplateError`)
    _value_is_body: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        field: str | None = None,
        value: object = None,
        location: str | None = None,
    ) -> None:
        private = "body" if self._value_is_body else _private_value(field)
        if private == "secret" and value is not None:
            value = "***"
        self.field = field
        self.value = value
        self.location = location
        parts = []
        if location:
            parts.append(location)
        if field:
            parts.append(f"field {field!r}")
        prefix = ", ".join(parts)
        super().__init__(f"{prefix}: {message}" if prefix else message)
        self.reason = message
        self.args = (message, field, None if private == "body" else value, location)

    def _phone_numbers(self) -> tuple[str, ...]:
        field = re.sub(r"\[[^\]]*\]", "", self.field or "").rsplit(".", 1)[-1].lower()
        return (self.value,) if isinstance(self.value, str) and field in _PHONE_NAMES else ()

    def _value_stays_home(self) -> bool:
        return self._value_is_body or _private_value(self.field) == "body"

    def __reduce__(self) -> tuple[Any, ...]:
        # a message body is pickled as ``None``: only what ``args`` would make again
        reduced = super().__reduce__()
        if self._value_stays_home():
            return (*reduced[:2], {**reduced[2], "value": None})
        return reduced


class InvalidPhoneNumber(ValidationError):
    """A phone number could not be parsed or is not a valid number."""


class TemplateError(ValidationError):
    """A template could not be rendered (e.g. a variable is missing).

    ``value`` is the template or message text at fault, for the caller to look at; it is a
    message body, so it stays in this process: it is not in ``args`` nor pickled, and an error
    made again elsewhere (pickled, or through a Celery result backend) has ``value`` ``None``.
    Its text (``str()``) shows at most a short preview of the template.
    """

    _value_is_body = True


class TooManySegments(ValidationError):
    """A message's text is more segments than its tenant's ``max_segments`` allows (field
    ``text``; the text says how many segments and characters, and the cap). Nothing was sent
    or logged; a campaign skips the row (reason ``too_long``)."""


class DownloadRefused(ValidationError):
    """A URL smsgate was to download on the caller's behalf (a media attachment given by
    URL) was refused before or while downloading (see :mod:`smsgate.downloads`).

    ``url`` is the URL as shown: without user name, password, query string or fragment.
    ``status_code`` is the HTTP status of a refused answer (``None`` otherwise). Nothing
    reached the vendor: the message is refused (``rejected``), or tried with the next
    provider of its route.
    """

    def __init__(self, reason: str, url: str, status_code: int | None = None, field: str | None = None) -> None:
        self.url = url
        self.status_code = status_code
        #: why, without the URL
        self.why = reason
        super().__init__(f"download of {url} refused: {reason}", field=field)
        self.args = (reason, url, status_code, field)

    def located(self, field: str) -> DownloadRefused:
        """The same refusal naming the input it came from (``attachments[0].url``)."""
        return DownloadRefused(self.why, url=self.url, status_code=self.status_code, field=field)


class DownloadTooLarge(DownloadRefused):
    """A download's body passed its size cap (``limit`` bytes); it was stopped there."""

    def __init__(self, url: str, limit: int, field: str | None = None) -> None:
        self.limit = limit
        super().__init__(f"it is larger than the cap of {limit} bytes (stopped there)", url=url, field=field)
        self.args = (url, limit, field)

    def located(self, field: str) -> DownloadTooLarge:
        """The same refusal naming the input it came from (``attachments[0].url``)."""
        return DownloadTooLarge(url=self.url, limit=self.limit, field=field)


class OptedOut(SmsgateError):
    """The recipient opted out of messages from this tenant (or from this sender ID of it); nothing was sent."""

    def __init__(self, phone: str, tenant: str, sender: str | None = None) -> None:
        self.phone = phone
        self.tenant = tenant
        #: the sender ID the recipient opted out of (``None``: of every sender of the tenant)
        self.sender = sender
        whose = f"sender {sender!r} of tenant {tenant!r}" if sender else f"tenant {tenant!r}"
        super().__init__(f"{phone} has opted out of messages from {whose}; not sent")
        self.args = (phone, tenant, sender)

    def _phone_numbers(self) -> tuple[str, ...]:
        return (self.phone,)


class Unsupported(SmsgateError):
    """A provider does not offer the requested feature."""

    def __init__(self, provider: str, feature: str, hint: str = "") -> None:
        self.provider = provider
        self.feature = feature
        msg = f"provider {provider!r} does not support {feature}"
        super().__init__(f"{msg}; {hint}" if hint else msg)
        self.args = (provider, feature, hint)


class UnsupportedCallback(Unsupported):
    """A webhook callback its provider has *authenticated* (or that needs no authentication, as
    configured) holds what the provider does not take
    (a generic HTTP item without a status: an inbound message where only delivery reports are
    mapped); nothing of it is applied. The webhook app answers it 501 with its reason. Any other
    :class:`Unsupported` of a callback comes before the caller proved anything (the vendor
    documents no webhooks), and is answered as a failed authentication, so that a caller cannot
    learn which tenants and instances exist (see :mod:`smsgate.webhooks`)."""


class NoCapableProvider(Unsupported):
    """No provider on a message's route has a capability the message needs (media, a location),
    or carries messages to its recipient (``phone``: e.g. Squad, Nigerian numbers only).

    ``capability`` is the first capability missing everywhere (``"messages to +44..."`` for a
    recipient), ``capabilities`` all the message needs, ``providers`` the instances that were
    considered, in route order. ``phone``: the recipient (E.164) when it is the number no
    provider carries (the caller's input, not the configuration), else ``None``; masked
    (:func:`mask_phone`) in the error's text and ``repr``, which a worker logs with its
    traceback: ``phone`` and ``capability`` keep it whole.
    """

    def __init__(self, capability: str, providers: Sequence[str], capabilities: Sequence[str] = (),
                 phone: str | None = None) -> None:
        self.capability = capability
        self.capabilities = tuple(capabilities) or (capability,)
        self.providers = tuple(providers)
        #: the recipient no provider of the route carries messages to (``None``: a capability)
        self.phone = phone
        shown = capability if phone is None else mask_numbers(capability, (phone,))
        SmsgateError.__init__(
            self,
            f"no provider on the route can carry {shown} (considered: "
            f"{', '.join(self.providers) or 'none'}); route the message to a provider that supports it",
        )
        self.provider = ", ".join(self.providers)
        self.feature = capability
        self.args = (capability, self.providers, self.capabilities, phone)

    def _phone_numbers(self) -> tuple[str, ...]:
        return () if self.phone is None else (self.phone,)


class NotFound(SmsgateError):
    """The requested record does not exist for this tenant."""


class StoreError(SmsgateError):
    """The store (its database) failed: locked or busy for longer than its timeout,
    read-only, out of space, unreachable, or closed.

    ``store`` says where (the SQLite file, or ``host:port/database`` of a PostgreSQL
    server; never a password), ``reason`` what the database said. The failed
    transaction was rolled back. The webhook app answers 503 for it, so the vendor
    delivers the callback again later.
    """

    def __init__(self, reason: str, store: str = "") -> None:
        self.store = store
        self.reason = reason
        super().__init__(f"store {store}: {reason}" if store else f"store: {reason}")
        self.args = (reason, store) if store else (reason,)


class StoreUnavailable(ConfigError, StoreError):
    """The store could not be opened: its database server could not be reached, or failed
    while the schema was checked or migrated.

    Both a :class:`ConfigError` (the address or credentials may be wrong) and a
    :class:`StoreError` (the server may be restarting: the same call may work a moment
    later); ``store`` and ``reason`` as a :class:`StoreError`'s.
    """

    def __init__(self, reason: str, store: str = "") -> None:
        self.store = store
        self.reason = reason
        self.field = None
        SmsgateError.__init__(self, f"cannot open the PostgreSQL store at {store}: {reason}")
        self.args = (reason, store)


class LeaseLost(StoreError):
    """This process's send lease lapsed past its row's end (the store could not be written,
    or the process was suspended, for longer than the lease lasts): the messages it had
    logged ahead and not yet sent may have been recovered as ``unknown`` by another process,
    so they are never sent (see :mod:`smsgate.core.recover`). Recovery and the status poller
    settle them (``failed``, ``not_received``: safe to send again)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.args = (reason,)


class AnswerNotLogged(StoreError):
    """``send()`` got the provider's answer, but the store failed writing it to the log.

    The message's request left (``result`` is what the provider said: usually
    ``submitted``, so the SMS is on its way): do not send it again. The log still
    shows it ``queued`` (its write-ahead) until something writes its answer;
    ``result.provider_message_id`` identifies it at the vendor.

    ``cause`` is the store's error (or what it said, with ``store``); ``result`` the
    :class:`~smsgate.models.SendResult` (or its JSON form).
    """

    #: Makes ``result`` of its JSON form: ``SendResult.model_validate``, set by
    #: :mod:`smsgate.models` (this module imports nothing of smsgate's).
    result_from_json: ClassVar[Callable[[Any], Any]] = dict

    def __init__(self, cause: StoreError | str, result: Any, store: str = "") -> None:
        if isinstance(cause, StoreError):
            why, store = cause.reason, cause.store
        else:
            why = cause
        self.result = result = AnswerNotLogged.result_from_json(result) if isinstance(result, Mapping) else result
        where = f" via {result.provider!r}" if result.provider else ""
        vendor_id = f" (provider id {result.provider_message_id})" if result.provider_message_id else ""
        super().__init__(
            f"{why}; the answer to message {result.message_id} ({result.status.value}{where}"
            f"{vendor_id}) could not be logged: the log says it is queued, do not send it again",
            store=store)
        self.args = (why, result.model_dump(mode="json"), store)


class GatewayClosed(SmsgateError, RuntimeError):
    """The gateway was closed (:meth:`~smsgate.Gateway.close`, :meth:`~smsgate.AsyncGateway.aclose`
    or the end of its ``with`` block): neither it nor its tenant handles send or read any more."""

    def __init__(self, what: str = "Gateway") -> None:
        how = "aclose(), or the end of its 'async with' block" if what.startswith("Async") \
            else "close(), or the end of its 'with' block"
        super().__init__(f"the {what} is closed ({how}); open a new one")
        self.args = (what,)


class GatewayForked(GatewayClosed):
    """A gateway made before its process forked (``gunicorn --preload``, ``multiprocessing`` with
    the ``fork`` start method, ``os.fork()``), used in the forked child. Its HTTP connections, store
    connection and threads are the parent's: two processes writing requests on one kept-alive
    connection read each other's answers (a message marked ``sent`` with another's id, an
    ``Invalid JSON body``), and SQLite forbids a connection carried across a fork. Make a gateway
    in each process after the fork (gunicorn's ``post_fork`` or the app's startup, Celery's
    ``worker_process_init``: :mod:`smsgate.contrib.celery` does). Nothing was sent or stored; the
    parent's gateway works on. ``parent``: the id of the process that made it."""

    def __init__(self, what: str = "Gateway", parent: int = 0) -> None:
        SmsgateError.__init__(
            self, f"the {what} was made in process {parent}, before this process was forked from it: its "
            "connections and threads are that process's and cannot be used here; make a gateway in each "
            "process after the fork (gunicorn's post_fork hook or the app's startup, Celery's "
            "worker_process_init); nothing was sent")
        self.args = (what, parent)
        self.parent = parent


class WouldBlock(SmsgateError, RuntimeError):
    """A blocking call was made on a running event loop: ``AsyncGateway.has_provider()`` or
    ``AsyncGateway.check()`` with a tenant source, which would ask the source (a database)
    and stall every task of the loop. Await the form the message names instead
    (``has_provider_async()``, ``check_async()``), or call it from a thread of its own."""

    def __init__(self, call: str, instead: str) -> None:
        super().__init__(f"{call} would ask the tenant source (blocking I/O) on the running event loop; "
                         f"use {instead} instead, or call it from a thread without a running loop")
        self.args = (call, instead)


class WrongEventLoop(SmsgateError, RuntimeError):
    """An :class:`~smsgate.AsyncGateway` (or an :class:`~smsgate.aio.AiohttpClient`) used from an
    event loop while another one that used it, still open, holds its connections: a thread running
    ``asyncio.run()`` of its own with the app's gateway. Nothing was sent (the gateway refuses a
    send or a campaign run before it logs anything). Use one ``AsyncGateway`` per event loop, or
    run the call on the gateway's loop (``asyncio.run_coroutine_threadsafe(coro, loop)``); a loop
    that is closed hands the gateway over to the next, with a client it made itself.

    ``closed``: the client is one you gave (an ``httpx.AsyncClient``, an ``aiohttp.ClientSession``)
    and a loop that is now closed used it: its kept-alive connections are that loop's, and a request
    written on one could not be answered (it reached the vendor and was left ``queued``)."""

    def __init__(self, what: str = "AiohttpClient", closed: bool = False) -> None:
        if closed:
            message = (f"the http_client given to {what} was used by an event loop that is now closed "
                       "(asyncio.run() ended, a test's loop): its kept-alive connections belong to that loop "
                       "and cannot be used from this one: make the client, and the AsyncGateway, in the loop "
                       "that uses them, or pass no http_client (the gateway's own is made again for each "
                       "new loop); nothing was sent")
        else:
            message = (f"{what} is in use by another event loop, which is still open (its connections belong "
                       "to that loop, as does an aiohttp.ClientSession given to it, from the loop it was made in): "
                       "use one client, and one AsyncGateway, per event loop, or run the call on "
                       "the loop that uses it (asyncio.run_coroutine_threadsafe(coro, loop)); nothing was sent")
        super().__init__(message)
        self.args = (what,)
        #: whether the loop that used the client is closed (a client you gave, see above)
        self.closed = closed


class ProviderError(SmsgateError):
    """A provider call failed (whether it is repeated is the transport's retry policy's call).

    ``message`` and ``body`` are redacted (:func:`redact`); ``body`` is cut to 500 characters.
    """

    def __init__(
        self,
        message: str,
        provider: str = "",
        status_code: int | None = None,
        vendor_code: str | None = None,
        body: str | None = None,
    ) -> None:
        self.provider = provider
        self.status_code = status_code
        self.vendor_code = vendor_code
        self.body = redact(body[:500])[:500] if body else None
        text = redact(message)
        head = f"[{provider}] " if provider else ""
        tail = f" (HTTP {status_code})" if status_code else ""
        super().__init__(f"{head}{text}{tail}")
        self.args = (text, provider, status_code, vendor_code, self.body)


class AuthFailed(ProviderError):
    """The provider refused our credentials."""


class RateLimited(ProviderError):
    """The provider asked us to slow down (HTTP 429)."""

    def __init__(self, message: str, provider: str = "", status_code: int | None = None,
                 vendor_code: str | None = None, body: str | None = None, retry_after: float | None = None) -> None:
        self.retry_after = retry_after
        super().__init__(message, provider=provider, status_code=status_code, vendor_code=vendor_code, body=body)
        self.args = (*self.args, retry_after)


class RequestRejected(ProviderError):
    """The provider rejected the request as invalid (HTTP 4xx or an error body)."""


class ResourceNotFound(RequestRejected):
    """The provider has no such resource (HTTP 404)."""


class RecipientSuppressed(RequestRejected):
    """The vendor refused the message because the recipient opted out, or is on its
    suppression / blacklist / do-not-disturb list: nothing was sent.

    An adapter raises it (or answers ``SendResult(suppressed=True)`` for one message of
    a bulk request) only for a refusal the vendor documents as such. The gateway then
    records an opt-out (source ``vendor``, scoped to the sender ID the message went out
    with), does not fail over to another provider, and refuses later sends locally.
    """


class ProviderUnavailable(ProviderError):
    """The provider failed on its side (HTTP 5xx)."""


class MalformedResponse(ProviderError):
    """The provider's response could not be understood."""


class TransportError(ProviderError):
    """The request never reached the provider (connection refused, DNS, ...)."""


class CircuitOpen(ProviderError):
    """The provider instance is failing (its circuit breaker is open): it was not tried."""


class UnknownOutcome(ProviderError):
    """The request was sent but no answer came back (e.g. read timeout).

    The provider may or may not have acted on it; resolve by status lookup before
    sending again.
    """
