"""smsgate's errors cross process boundaries with their type, message and attributes.

A task's exception reaches the caller of ``AsyncResult.get()`` through Celery's result
backend: pickled (``result_serializer = "pickle"``) or, by default, as JSON holding the
exception's module, class name and ``args``, rebuilt as ``cls(*args)`` (celery/backends/base.py
``prepare_exception`` / ``exception_to_python``). Before, most smsgate errors could be neither
pickled nor rebuilt: ``.get()`` raised a bare ``Exception("<class 'smsgate.errors.OptedOut'>(...)")``
(``except OptedOut`` never matched), and those that came back had lost ``.field`` or ``.provider``.

Every public error class of :mod:`smsgate.errors` is checked (discovered, not listed by hand), then
one ``send_later`` is failed on a real ``celery worker`` (RabbitMQ broker, Redis result backend).
"""

from __future__ import annotations

import inspect
import os
import pickle
import time
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import smsgate.errors as errors
from smsgate.errors import (
    AnswerNotLogged,
    ConfigError,
    DownloadRefused,
    DownloadTooLarge,
    GatewayClosed,
    InvalidPhoneNumber,
    LeaseLost,
    NoCapableProvider,
    NoRoute,
    OptedOut,
    ProviderError,
    RateLimited,
    SmsgateError,
    StoreError,
    TemplateError,
    UnknownOutcome,
    UnknownProvider,
    UnknownTenant,
    Unsupported,
    UnsupportedCallback,
    ValidationError,
    WouldBlock,
    redact,
)
from smsgate.lifecycle import Status
from smsgate.models import SendResult

SECRET = "hunter2-s3cret"

#: Representative instances of each class that does not take just a message (with every optional
#: attribute set). A class missing here is made as ``cls("some text")``: a new error class whose
#: constructor wants more fails the test until it gets a line here.
SAMPLES: dict[type[SmsgateError], Callable[[], SmsgateError]] = {
    ConfigError: lambda: ConfigError("sender must be set", field="tenants.acme.sender"),
    UnknownTenant: lambda: UnknownTenant("acme", "not in the configuration"),
    UnknownProvider: lambda: UnknownProvider("sqaud", ["squad", "colony"], field="tenants.acme.providers.main"),
    ValidationError: lambda: ValidationError("must be at least 1", field="batch_size", value=0, location="row 3"),
    InvalidPhoneNumber: lambda: InvalidPhoneNumber("not a phone number", field="to", value="12ab"),
    TemplateError: lambda: TemplateError("variable 'code' is missing", field="variables", value={"name": "Ada"}),
    DownloadRefused: lambda: DownloadRefused("answered 404", url="https://cdn.example/a.png", status_code=404,
                                             field="attachments[0].url"),
    DownloadTooLarge: lambda: DownloadTooLarge(url="https://cdn.example/b.png", limit=1024, field="attachments[1].url"),
    OptedOut: lambda: OptedOut("+2348031234567", "acme", sender="ACME"),
    Unsupported: lambda: Unsupported("squad", "media attachments", "send a link instead"),
    UnsupportedCallback: lambda: UnsupportedCallback("textly", "inbound messages at its webhook",
                                                     "give them a route of your own"),
    NoCapableProvider: lambda: NoCapableProvider("media", ["one", "two"], ["media", "location"]),
    NoRoute: lambda: NoRoute("acme", "+27821234567", kind="otp"),
    StoreError: lambda: StoreError("database is locked", store="/var/lib/sms/smsgate.db"),
    LeaseLost: lambda: LeaseLost("the send lease ended at 12:00:03"),
    AnswerNotLogged: lambda: AnswerNotLogged(
        StoreError("disk I/O error", store="db.example:5432/sms"),
        SendResult(message_id="msg_1", to="+2348031234567", status=Status.SUBMITTED, provider="one",
                   provider_message_id="v-77", segments=1, cost=Decimal("0.0125"), currency="USD")),
    GatewayClosed: lambda: GatewayClosed("AsyncGateway"),
    WouldBlock: lambda: WouldBlock("AsyncGateway.check()", "await AsyncGateway.check_async()"),
    ProviderError: lambda: ProviderError("refused", provider="squad", status_code=400, vendor_code="E12",
                                         body='{"error": "bad sender"}'),
    RateLimited: lambda: RateLimited("slow down", retry_after=2.5, provider="squad", status_code=429,
                                     vendor_code="throttled", body="try later"),
}


def public_errors() -> list[type[BaseException]]:
    found = [getattr(errors, name) for name in errors.__all__]
    return [c for c in found if inspect.isclass(c) and issubclass(c, BaseException)]


def sample(cls: type[BaseException]) -> BaseException:
    if cls in SAMPLES:
        return SAMPLES[cls]()  # type: ignore[index]
    if issubclass(cls, ProviderError):  # a subclass taking what ProviderError takes
        return cls("refused", provider="squad", status_code=403, vendor_code="E9", body='{"error": "no"}')
    return cls("some text")


#: Attributes that stay in the process that made the error (a message body): ``None`` once it travels.
STAYS_HOME: dict[type[BaseException], frozenset[str]] = {TemplateError: frozenset({"value"})}


def state(exc: BaseException, travelled: bool = False) -> dict[str, Any]:
    """What an error is: its type, text, args and public attributes (``travelled``: as it is
    once made again elsewhere, without what stays home)."""
    attrs = {k: v for k, v in vars(exc).items() if not k.startswith("__")}
    if travelled:
        attrs.update(dict.fromkeys(STAYS_HOME.get(type(exc), ()), None))
    return {"type": type(exc), "str": str(exc), "args": exc.args, "attrs": attrs}


def test_the_discovery_finds_the_errors() -> None:
    found = public_errors()
    assert OptedOut in found and DownloadTooLarge in found and SmsgateError in found and len(found) >= 25


@pytest.mark.parametrize("cls", public_errors(), ids=lambda c: c.__name__)
def test_an_error_survives_pickle(cls: type[BaseException]) -> None:
    exc = sample(cls)
    again = pickle.loads(pickle.dumps(exc))
    assert state(again) == state(exc, travelled=True)


def _backend(serializer: str) -> Any:
    celery = pytest.importorskip("celery")
    app = celery.Celery(f"errors-{uuid.uuid4().hex[:8]}", broker="memory://", backend="cache+memory://",
                        set_as_current=False)
    app.conf.result_serializer = serializer
    app.conf.accept_content = ["json", "pickle"]
    app.conf.result_accept_content = ["json", "pickle"]
    return app.backend


@pytest.mark.parametrize("serializer", ["json", "pickle"])
@pytest.mark.parametrize("cls", public_errors(), ids=lambda c: c.__name__)
def test_an_error_survives_celerys_result_backend(cls: type[BaseException], serializer: str) -> None:
    """As a worker stores a failed task's exception (``get_pickleable_exception``, then the
    backend's ``prepare_exception`` and serializer) and ``AsyncResult.get()`` rebuilds it
    (``exception_to_python``)."""
    from celery.utils.serialization import get_pickleable_exception

    backend = _backend(serializer)
    exc = sample(cls)
    assert get_pickleable_exception(exc) is exc  # else a worker stores a stand-in of another class
    stored = backend.encode(backend.prepare_exception(exc))
    again = backend.exception_to_python(backend.decode(stored))
    assert state(again) == state(exc, travelled=True)


@pytest.mark.parametrize("serializer", ["json", "pickle"])
def test_a_failed_tasks_result_raises_the_error_itself(serializer: str) -> None:
    """``AsyncResult.get()`` on a result backend raises the very class, so ``except OptedOut`` works."""
    backend = _backend(serializer)
    task_id = uuid.uuid4().hex
    backend.mark_as_failure(task_id, OptedOut("+2348031234567", "acme", sender="ACME"))
    with pytest.raises(OptedOut) as caught:
        backend.app.AsyncResult(task_id).get(timeout=5, propagate=True)
    assert (caught.value.phone, caught.value.tenant, caught.value.sender) == ("+2348031234567", "acme", "ACME")


@pytest.mark.parametrize("serializer", ["json", "pickle"])
def test_redacted_text_stays_redacted_on_the_way(serializer: str) -> None:
    """A provider error redacts the vendor's text and body when made; neither the stored result
    nor the rebuilt error carries the secret."""
    backend = _backend(serializer)
    exc = ProviderError(f"login failed with password={SECRET}", provider="squad", status_code=401,
                        body=f'{{"access_token": "{SECRET}", "error": "expired"}}')
    assert SECRET not in str(exc) and SECRET not in repr(exc.args) and SECRET not in (exc.body or "")
    stored = backend.encode(backend.prepare_exception(exc))
    assert SECRET.encode() not in (stored if isinstance(stored, bytes) else stored.encode())
    assert SECRET.encode() not in pickle.dumps(exc)
    again = backend.exception_to_python(backend.decode(stored))
    assert state(again) == state(exc)
    assert "password=***" in str(again) and '"access_token": "***"' in (again.body or "")


def test_an_errors_repr_is_its_class_and_text_only() -> None:
    """Celery's worker logs a failed task's error with its repr: the text, as before, not every
    argument (a template error's ``value`` is the message's whole text)."""
    body = "Dear Ada, your code is 123456"
    exc = TemplateError("variable 'code' is missing", field="text", value=body)
    assert repr(exc) == f"TemplateError({str(exc)!r})" and body not in repr(exc)
    # a phone number is personal data: repr (what logs show) masks the ones the error names
    assert repr(OptedOut("+2348031234567", "acme")) == (
        "OptedOut(\"+234*******567 has opted out of messages from tenant 'acme'; not sent\")")
    bad = InvalidPhoneNumber("'08031234567' is not a valid phone number", field="phone", value="08031234567")
    assert "08031234567" not in repr(bad) and "0803****567" in repr(bad) and "08031234567" in str(bad)


@pytest.mark.parametrize("serializer", ["json", "pickle"])
@pytest.mark.parametrize("field", ["text", "template"])
def test_a_template_errors_message_body_stays_home(serializer: str, field: str) -> None:
    """A template error's ``value`` is the message's whole text: the caller sees it, but it is not
    in ``args`` nor pickled, so Celery's result backend never stores it; the error made again is
    the same class with the same text, field and reason, and ``value`` ``None``."""
    from smsgate.text import render_template

    body = "Dear Ada, your one-time code is {code}; never share it with anyone. Reply STOP to opt out."
    with pytest.raises(TemplateError) as caught:
        render_template(body, {"name": "Ada"})
    exc = caught.value
    if field == "text":
        exc = TemplateError(exc.reason, field="text", value=body)
    assert exc.value == body and body not in repr(exc.args)
    backend = _backend(serializer)
    stored = backend.encode(backend.prepare_exception(exc))
    raw = stored if isinstance(stored, bytes) else stored.encode()
    assert b"one-time code" not in raw and b"Reply STOP" not in raw
    assert b"one-time code" not in pickle.dumps(exc)
    again = backend.exception_to_python(backend.decode(stored))
    assert type(again) is TemplateError and str(again) == str(exc)
    assert (again.field, again.reason, again.location, again.value) == (exc.field, exc.reason, None, None)


def test_a_failover_chain_keeps_its_earlier_attempts_through_pickle() -> None:
    exc = ProviderError("timed out", provider="backup")
    exc.failed_over = (("main", ProviderError("refused", provider="main", status_code=400)),)
    again = pickle.loads(pickle.dumps(exc))
    assert str(again) == str(exc) and "after failing over from" in str(again)
    assert [(i, type(e), str(e)) for i, e in again.failed_over] == [
        (i, type(e), str(e)) for i, e in exc.failed_over]


def told(exc: BaseException) -> Any:
    """What an error says and is, with the earlier attempts it failed over from, recursively."""
    earlier = [(i, told(e)) for i, e in getattr(exc, "failed_over", ())]
    attrs = {k: v for k, v in vars(exc).items() if k != "failed_over"}
    return type(exc), str(exc), repr(exc), attrs, earlier


@pytest.mark.parametrize("serializer", ["json", "pickle"])
def test_a_failover_chain_and_a_reworded_text_cross_celerys_result_backend(serializer: str) -> None:
    """``failed_over`` and a reworded text (``_reword``) used to be lost through Celery's JSON result
    backend (which keeps only ``args``): ``AsyncResult.get()`` raised the last provider's error
    without the earlier attempts, and a stored tenant's configuration error without saying so.
    They end ``args`` now (which the constructor takes back), so both serializers keep them."""
    backend = _backend(serializer)
    first = RateLimited("slow down", provider="one", status_code=429, retry_after=2.5)
    second = NoCapableProvider("media", ["two"])
    second.failed_over = (("one", first),)  # a chain within a chain
    exc = UnknownOutcome("read timeout", provider="three")
    exc.failed_over = (("one", first), ("two", second), ("four", KeyError("a bug")))
    reworded = ConfigError("providers.main.plugin: unknown provider plugin 'echo'", field="tenants.legacy")
    reworded._reword(f"stored tenant 'legacy' (not in the configuration file): {reworded}")
    plain = OptedOut("+2348031234567", "acme")
    for err in (exc, reworded, plain):
        stored = backend.encode(backend.prepare_exception(err))
        again = backend.exception_to_python(backend.decode(stored))
        assert told(again) == told(err)
        assert type(again)(*again.args).args == err.args  # made again from its args: the same
    assert plain.args == ("+2348031234567", "acme", None)  # no context: args as before
    assert "after failing over from [one] slow down" in str(exc) and "four: 'a bug'" in str(exc)


def test_a_provider_errors_body_is_cut_once_however_often_it_is_made_again() -> None:
    body = "x" * 495 + " token=abcd"  # redacting the cut body makes it longer than the cut
    exc = ProviderError("refused", provider="squad", body=body)
    assert exc.body is not None and len(exc.body) <= 500 and "abcd" not in exc.body
    assert ProviderError(*exc.args).body == exc.body


@given(st.text(max_size=200))
def test_redacting_twice_changes_nothing(text: str) -> None:
    """An error made again from its (redacted) arguments redacts them again: the same text."""
    once = redact(text)
    assert redact(once) == once


# ------------------------------------------------------------------------ on a real worker
@pytest.fixture
def redis_backend() -> Iterator[str]:
    redis = pytest.importorskip("redis")
    url = os.environ.get("SMSGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    client = redis.Redis.from_url(url)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.skip(f"Redis unreachable: {exc}")
    finally:
        client.close()
    return url


@pytest.mark.timeout(180)
def test_send_later_to_an_opted_out_number_raises_opted_out_from_get(tmp_path: Path, redis_backend: str) -> None:
    """``send_later`` to a number that opted out, run by a ``celery worker`` process (RabbitMQ
    broker, Redis result backend, JSON results: Celery's defaults): ``.get()`` raises
    :class:`OptedOut` with its phone, tenant and sender. Before, a bare ``Exception``."""
    pytest.importorskip("celery")
    from kombu import Connection

    from celery_app import make_app
    from reference_provider import EchoPlugin
    from smsgate import Gateway
    from smsgate.contrib.celery import send_later
    from smsgate.plugins import PluginManager
    from smsgate.testing.workers import CeleryWorkers, delete_queue
    from test_celery import BROKER, echo_config

    try:
        with Connection(BROKER, connect_timeout=3) as conn:
            conn.ensure_connection(max_retries=1)
    except Exception as exc:
        pytest.skip(f"RabbitMQ unreachable: {exc}")
    queue = f"smsgate-test-{uuid.uuid4().hex[:12]}"
    cfg = tmp_path / "smsgate.toml"
    cfg.write_text(echo_config("http://127.0.0.1:9", f"sqlite:///{tmp_path / 'optout.db'}"))
    pm = PluginManager(load_entry_points=False)
    pm.register(EchoPlugin())
    with Gateway(cfg, plugins=pm) as gw:
        assert gw.tenant("acme").optouts.add("08031234567")
    app = make_app(BROKER, queue, backend=redis_backend)
    workers = CeleryWorkers("celery_app", queue=queue, workdir=tmp_path, env={
        "PYTHONPATH": str(Path(__file__).parent), "SMSGATE_CELERY_BROKER": BROKER, "SMSGATE_CELERY_QUEUE": queue,
        "SMSGATE_CELERY_CONFIG": str(cfg), "SMSGATE_CELERY_BACKEND": redis_backend}, heartbeat=False)
    try:
        with workers:
            workers.start(1)
            workers.wait_ready()
            result = send_later("acme", "08031234567", "hello", app=app)
            with pytest.raises(OptedOut) as caught:
                result.get(timeout=60)
            result.forget()
            assert (caught.value.phone, caught.value.tenant, caught.value.sender) == ("+2348031234567", "acme", None)
            assert str(caught.value) == "+2348031234567 has opted out of messages from tenant 'acme'; not sent"
            deadline = time.monotonic() + 30
            while " raised expected: " not in workers.log(0) and time.monotonic() < deadline:
                time.sleep(0.2)
            # the worker's one INFO line for it names the number masked only (personal data)
            [line] = [ln for ln in workers.log(0).splitlines() if " raised expected: " in ln]
            assert "INFO" in line and "OptedOut(" in line and "+234*******567" in line, line
            for form in ("2348031234567", "08031234567", "8031234567"):
                assert form not in workers.log(0), line
            # and an unknown tenant: UnknownTenant, naming it (a ConfigError, as before)
            result = send_later("nosuch", "08031234567", "hello", app=app)
            with pytest.raises(UnknownTenant, match="unknown tenant 'nosuch'") as unknown:
                result.get(timeout=60)
            result.forget()
            assert unknown.value.name == "nosuch"
    finally:
        delete_queue(BROKER, queue)
        app.close()


@pytest.mark.timeout(180)
def test_send_later_to_a_number_no_provider_carries_is_an_expected_typed_failure(
        tmp_path: Path, redis_backend: str) -> None:
    """``send_later`` to a number no provider of its route carries (``NoCapableProvider``: Squad
    carries +234 only) or that no route matches (``NoRoute``, a ``ConfigError``), run by a
    ``celery worker``: ``.get()`` raises the typed error with the number (``phone``); the worker
    logs one INFO "raised expected" line for each, the number masked, no ERROR traceback and no
    retry. Before, Celery's "raised unexpected" at ERROR with the traceback."""
    pytest.importorskip("celery")
    from kombu import Connection

    from celery_app import make_app
    from smsgate.contrib.celery import send_later
    from smsgate.testing.workers import CeleryWorkers, delete_queue
    from test_celery import BROKER, echo_config

    try:
        with Connection(BROKER, connect_timeout=3) as conn:
            conn.ensure_connection(max_retries=1)
    except Exception as exc:
        pytest.skip(f"RabbitMQ unreachable: {exc}")
    queue = f"smsgate-test-{uuid.uuid4().hex[:12]}"
    cfg = tmp_path / "smsgate.toml"
    cfg.write_text(echo_config("http://127.0.0.1:9", f"sqlite:///{tmp_path / 'routes.db'}") + (
        '[tenants.acme.providers.squad]\nplugin = "squad"\nsender = "ACME"\n'
        '[tenants.acme.providers.squad.credentials]\nsecret_key = "sandbox_sk_x"\n'
        '[[tenants.acme.routes]]\nprefixes = ["+44"]\nproviders = ["squad"]\n'
        '[[tenants.acme.routes]]\nprefixes = ["+234"]\nproviders = ["one"]\n'))
    app = make_app(BROKER, queue, backend=redis_backend)
    workers = CeleryWorkers("celery_app", queue=queue, workdir=tmp_path, env={
        "PYTHONPATH": str(Path(__file__).parent), "SMSGATE_CELERY_BROKER": BROKER, "SMSGATE_CELERY_QUEUE": queue,
        "SMSGATE_CELERY_CONFIG": str(cfg), "SMSGATE_CELERY_BACKEND": redis_backend,
        "SMSGATE_CELERY_ENTRY_POINTS": "1"}, heartbeat=False)
    uk, za = "+447912345678", "+27821234567"
    try:
        with workers:
            workers.start(1)
            workers.wait_ready()
            result = send_later("acme", uk, "hello", app=app)
            with pytest.raises(NoCapableProvider) as nowhere:
                result.get(timeout=60)
            result.forget()
            assert nowhere.value.phone == uk and nowhere.value.providers == ("squad",)
            result = send_later("acme", za, "hello", app=app)
            with pytest.raises(NoRoute) as no_route:
                result.get(timeout=60)
            result.forget()
            assert isinstance(no_route.value, ConfigError)
            assert (no_route.value.phone, no_route.value.tenant) == (za, "acme")
            assert str(no_route.value) == "tenant 'acme' has no route for +278*****567"
            deadline = time.monotonic() + 30
            while workers.log(0).count(" raised expected: ") < 2 and time.monotonic() < deadline:
                time.sleep(0.2)
            log = workers.log(0)
    finally:
        delete_queue(BROKER, queue)
        app.close()
    lines = [ln for ln in log.splitlines() if " raised expected: " in ln]
    assert len(lines) == 2 and all("INFO" in ln for ln in lines), log[-3000:]
    assert "NoCapableProvider(" in lines[0] and "+447******678" in lines[0], lines
    assert "NoRoute(" in lines[1] and "+278*****567" in lines[1], lines
    assert "Traceback" not in log and " retry: " not in log and "ERROR" not in log, log[-3000:]
    for form in (uk, uk[1:], za, za[1:]):
        assert form not in log, log[-3000:]


BODY = "Dear Ada, your one-time code is 482913; never share it. Reply STOP to opt out."

#: Representative constructions of a ValidationError with a value, as smsgate and its plugins make
#: them (keywords and positional): (the error, what its value is: "body", "secret" or "plain").
PRIVATE_VALUES: list[tuple[Callable[[], ValidationError], str]] = [
    (lambda: ValidationError("too long", field="text", value=BODY), "body"),
    (lambda: ValidationError("too long", "text", BODY, "row 4"), "body"),  # positional
    (lambda: ValidationError("empty", field="messages[3].body", value=BODY), "body"),
    (lambda: ValidationError("bad", field="intro_template", value=BODY, location="campaign"), "body"),
    (lambda: TemplateError("unmatched '{'", field="text", value=BODY), "body"),
    (lambda: TemplateError("missing", field="variables", value={"code": BODY}), "body"),
    (lambda: ValidationError("too short", field="tenants.acme.providers.main.credentials.api_key", value=SECRET),
     "secret"),
    (lambda: ValidationError("bad", "password", SECRET), "secret"),
    (lambda: ValidationError("bad", field="webhook_token", value=SECRET), "secret"),
    (lambda: ValidationError("bad", field="secret_key", value={"k": SECRET}), "secret"),
    (lambda: InvalidPhoneNumber("not valid", field="phone", value="+23480312"), "plain"),
    (lambda: ValidationError("must be at least 1", field="batch_size", value=0), "plain"),
]


@pytest.mark.parametrize("serializer", ["json", "pickle"])
@pytest.mark.parametrize(("make", "kind"), PRIVATE_VALUES, ids=lambda v: v if isinstance(v, str) else "")
def test_a_validation_errors_value_never_carries_a_body_or_a_secret_away(
        make: Callable[[], ValidationError], kind: str, serializer: str) -> None:
    """Whoever makes a ValidationError, the error itself keeps a message body in this process and a
    secret nowhere: not in ``args``, ``str()``, ``repr()``, pickle, nor Celery's result backend
    (a field named like a message's text or a credential decides, in one place)."""
    exc = make()
    made_again = [pickle.loads(pickle.dumps(exc))]
    backend = _backend(serializer)
    stored = backend.encode(backend.prepare_exception(exc))
    made_again.append(backend.exception_to_python(backend.decode(stored)))
    raw = stored if isinstance(stored, bytes) else stored.encode()
    for text in (repr(exc.args), str(exc), repr(exc), repr(pickle.dumps(exc)), repr(raw)):
        assert "482913" not in text and SECRET not in text, text
    if kind == "body":
        assert exc.value is not None and exc.args[2] is None  # the caller still sees it
    elif kind == "secret":
        assert exc.value == "***" and exc.args[2] == "***"
    else:
        assert exc.value is not None and exc.args[2] == exc.value
    for again in made_again:
        assert type(again) is type(exc) and str(again) == str(exc) and again.field == exc.field
        assert again.value == (None if kind == "body" else exc.value)


def test_mask_numbers_masks_a_number_in_the_forms_a_text_writes_it() -> None:
    """What the Celery tasks apply to a vendor's error text before Celery logs it at INFO."""
    from smsgate.errors import mask_numbers

    text = "[one] bad recipient +2348031234567 (to=2348031234567, was 08031234567)"
    masked = mask_numbers(text, ["08031234567", "+2348031234567"])
    assert masked == "[one] bad recipient +234*******567 (to=2348******567, was 0803****567)"
