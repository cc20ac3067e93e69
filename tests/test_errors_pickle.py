"""Every smsgate error survives pickling as it was: its class, its text, its attributes.

A Celery worker hands a task's error on pickled (a prefork pool's child to its parent, a
pickle result backend to ``AsyncResult.get()``); so do ``multiprocessing`` and process pools.
Most errors' constructors take other arguments than their message (``OptedOut(phone, tenant)``),
so Python's default ``cls(*args)`` could not rebuild them: the worker logged an
``UnknownTenant`` as a ``ConfigError``, and ``send_later(...).get()`` raised a plain
``SmsgateError`` where the app catches ``OptedOut``.
"""

from __future__ import annotations

import inspect
import pickle
from decimal import Decimal

import pytest

from smsgate import errors as E
from smsgate.lifecycle import Status
from smsgate.models import SendResult
from smsgate.traffic.gate import LimitWaitExceeded

_chained = E.TransportError("could not connect", provider="backup")
_chained.failed_over = (("squad", E.ProviderUnavailable("down", provider="squad", status_code=503)),)

EXAMPLES: list[E.SmsgateError] = [
    E.SmsgateError("plain"),
    E.ConfigError("bad", field="tenants.acme.sender"),
    E.UnknownTenant("acme", "it is not stored"),
    E.UnknownProvider("sqaud", ["squad", "colony"], field="tenants.acme.providers.main.plugin"),
    E.ValidationError("bad number", field="phone"),
    E.InvalidPhoneNumber("'12' is not a valid phone number", field="phone"),
    E.TemplateError("missing {name}", field="text"),
    E.TooManySegments("is 654 segments (100,003 characters): more than max_segments = 10", field="text"),
    E.DownloadRefused("not an image", url="https://example.test/a.txt", status_code=200, field="media"),
    E.DownloadTooLarge(url="https://example.test/big.png", limit=1024, field="media"),
    E.OptedOut("+2348031234567", "acme", sender="ACME"),
    E.Unsupported("squad", "templates", "use text"),
    E.UnsupportedCallback("textly", "inbound messages at its webhook", "give them a route of your own"),
    E.NoCapableProvider("media", ["squad"], ["send"]),
    E.NoRoute("acme", "+27821234567", kind="otp"),
    E.NotFound("no message msg_1"),
    E.StoreError("database is locked", store="/var/lib/sms.db"),
    E.StoreUnavailable("connection refused", store="127.0.0.1:5432/test"),
    E.LeaseLost("the send lease lapsed"),
    E.AnswerNotLogged(E.StoreError("disk full", store="sms.db"),
                      SendResult(message_id="msg_1", to="+2348031234567", status=Status.SUBMITTED, provider="squad",
                                 provider_message_id="v-1", cost=Decimal("5.41"))),
    E.GatewayClosed("AsyncGateway"),
    E.GatewayForked("Gateway", 4242),
    E.WouldBlock("AsyncGateway.check()", "'await gw.check_async()'"),
    E.WrongEventLoop("AsyncGateway"),
    E.ProviderError("refused", provider="squad", status_code=400, vendor_code="E1", body="{}"),
    E.AuthFailed("bad key", provider="squad", status_code=401),
    E.RateLimited("slow down", retry_after=2.5, provider="squad", status_code=429),
    E.RequestRejected("no", provider="squad", status_code=422),
    E.ResourceNotFound("no such list", provider="squad", status_code=404),
    E.RecipientSuppressed("blacklisted", provider="squad"),
    E.ProviderUnavailable("down", provider="squad", status_code=503),
    E.MalformedResponse("not JSON", provider="squad"),
    _chained,
    E.CircuitOpen("breaker open", provider="squad"),
    E.UnknownOutcome("timeout after the request was sent", provider="squad"),
    LimitWaitExceeded("not sent: its rate limits would hold it 30s", retry_after=29.5),
]


def test_every_error_class_has_an_example() -> None:
    classes = {c for _, c in inspect.getmembers(E, inspect.isclass)
               if issubclass(c, E.SmsgateError) and c.__module__ == E.__name__}
    assert classes <= {type(e) for e in EXAMPLES}, classes - {type(e) for e in EXAMPLES}


@pytest.mark.parametrize("exc", EXAMPLES, ids=lambda e: type(e).__name__)
def test_an_error_unpickles_as_it_was(exc: E.SmsgateError) -> None:
    back = pickle.loads(pickle.dumps(exc))
    assert type(back) is type(exc)
    assert str(back) == str(exc) and back.args == exc.args
    assert {k: repr(v) for k, v in vars(back).items()} == {k: repr(v) for k, v in vars(exc).items()}


def test_a_celery_pickle_backend_gives_the_task_s_error_back() -> None:
    from celery import Celery

    app = Celery("errors-pickle", broker="memory://", backend="cache+memory://", set_as_current=False)
    app.conf.update(result_serializer="pickle", accept_content=["json", "pickle"])
    backend = app.backend
    back = backend.exception_to_python(backend.prepare_exception(E.OptedOut("+2348031234567", "acme")))
    assert isinstance(back, E.OptedOut) and back.phone == "+2348031234567"
