"""The provider conformance kit: one mixin every provider plugin adopts.

Subclass :class:`ProviderConformance` in your plugin's tests, set a few
attributes and implement two methods; pytest then runs every check below
against your adapter and emulator over real loopback HTTP, through both the
sync :class:`~smsgate.Gateway` and the :class:`~smsgate.AsyncGateway`::

    from smsgate.testing import ProviderConformance

    class TestSquadConformance(ProviderConformance):
        provider_class = SquadProvider
        recipient = "+2348012345678"
        region = "NG"
        send_path = "/sms/send/instant"

        def make_emulator(self):
            return create_app()

        def make_settings(self, base_url, *, valid=True):
            key = "sandbox_sk_test" if valid else "sandbox_sk_wrong"
            return ProviderSettings(plugin="squad", base_url=base_url,
                                    credentials={"secret_key": key}, sender="ACME")

Checks skip themselves where the provider does not claim a capability (like
SQLAlchemy's dialect requirements), and check for ``Unsupported`` instead.

A provider that makes no HTTP request (the built-in ``memory`` and ``console``)
sets ``uses_http = False`` and implements :meth:`ProviderConformance.vendor_record`
and :meth:`ProviderConformance.reset_vendor` instead of :meth:`make_emulator`: the
checks of HTTP behaviour (faults, timeouts, credentials) skip themselves, and the
others count what the provider recorded instead of the emulator's requests.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest

from smsgate.config import Settings, TenantConfig
from smsgate.emulation import EmulatorControl
from smsgate.errors import (
    AuthFailed,
    OptedOut,
    RateLimited,
    TransportError,
    UnknownOutcome,
    Unsupported,
)
from smsgate.gateway import AsyncGateway, Gateway
from smsgate.models import Attachment, OutboundMessage, ProviderCheck, SendResult, Status
from smsgate.plugins import PluginManager
from smsgate.provider import Provider, ProviderSettings
from smsgate.store.memory import MemoryStore
from smsgate.testing.server import LiveServer

__all__ = ["ProviderConformance"]

TENANT = "conformance"


class ProviderConformance:
    """Mixin test class: the contract every provider adapter must meet."""

    provider_class: ClassVar[type[Provider]]
    #: A deliverable number (E.164) for this provider's market.
    recipient: ClassVar[str] = "+2348012345678"
    #: A second and third deliverable number.
    more_recipients: ClassVar[tuple[str, ...]] = ("+2348012345679", "+2348012345670")
    region: ClassVar[str | None] = None
    #: Path prefix of the single-send endpoint (fault injection targets it).
    send_path: ClassVar[str] = "/"
    #: Path prefix of the bulk-send endpoint, if it is not ``send_path``.
    bulk_send_path: ClassVar[str | None] = None
    #: Secret values that must never appear in errors or reprs.
    secret_values: ClassVar[tuple[str, ...]] = ()
    #: False for a provider that makes no HTTP request (see the module docstring).
    uses_http: ClassVar[bool] = True

    # ---------------------------------------------------- to implement
    def make_emulator(self) -> Any:
        """A fresh emulator ASGI app (wrapped with ``emulator_app``)."""
        raise NotImplementedError

    def make_settings(self, base_url: str, *, valid: bool = True) -> ProviderSettings:
        """Provider settings pointing at ``base_url``; ``valid=False`` gives bad credentials."""
        raise NotImplementedError

    def vendor_record(self) -> list[Any]:
        """For ``uses_http = False``: what the provider handed on (one entry per send call)."""
        raise NotImplementedError

    def reset_vendor(self) -> None:
        """For ``uses_http = False``: forget :meth:`vendor_record`."""
        raise NotImplementedError

    # ---------------------------------------------------- fixtures
    @pytest.fixture(scope="class")
    @classmethod
    def emulator_url(cls) -> Iterator[str]:
        if not cls.uses_http:
            yield ""  # make_settings gets no base URL to use
            return
        server = LiveServer(cls().make_emulator()).start()
        try:
            yield server.url
        finally:
            server.stop()

    @pytest.fixture
    def control(self, emulator_url: str) -> EmulatorControl | None:
        """The emulator's control (``None`` for a provider that makes no request)."""
        if not self.uses_http:
            self.reset_vendor()
            return None
        ctl = EmulatorControl(emulator_url)
        ctl.reset()
        return ctl

    def _sends(self, control: EmulatorControl | None, path: str | None = None,
               method: str | None = None) -> list[Any]:
        """The emulator's requests (under ``path``), or :meth:`vendor_record`."""
        if control is None:
            return self.vendor_record()
        return control.requests(path, method)

    @staticmethod
    def _http(control: EmulatorControl | None) -> EmulatorControl:
        """``control``; the check skips for a provider that makes no request."""
        if control is None:
            pytest.skip("the provider makes no HTTP request")
        return control

    def _settings(self, base_url: str, valid: bool = True, **overrides: Any) -> Settings:
        prov = self.make_settings(base_url, valid=valid)
        if overrides:
            prov = prov.model_copy(update=overrides)
        return Settings(
            store="memory://",
            tenants={TENANT: TenantConfig(default_region=self.region, providers={"p": prov})},
        )

    def _plugins(self) -> PluginManager:
        pm = PluginManager(load_entry_points=False)
        pm.add_provider(self.provider_class)
        return pm

    def gateway(self, base_url: str, valid: bool = True, **overrides: Any) -> Gateway:
        """A sync gateway with one tenant using this provider as instance ``p``."""
        return Gateway(self._settings(base_url, valid, **overrides), store=MemoryStore(),
                       plugins=self._plugins())

    def async_gateway(self, base_url: str, valid: bool = True, **overrides: Any) -> AsyncGateway:
        """An async gateway with one tenant using this provider as instance ``p``."""
        return AsyncGateway(self._settings(base_url, valid, **overrides), store=MemoryStore(),
                            plugins=self._plugins())

    # ---------------------------------------------------- checks
    def test_declares_name_and_capabilities(self) -> None:
        cls = self.provider_class
        assert cls.name, "provider class must set name"
        assert cls.capabilities.send, "a provider must at least send"
        assert cls.capabilities.max_batch >= 1

    def test_send_sync(self, emulator_url: str, control: EmulatorControl | None) -> None:
        with self.gateway(emulator_url) as gw:
            t = gw.tenant(TENANT)
            result = t.send(self.recipient, "conformance hello")
            self._check_accepted(result)
            record = t.get(result.message_id)
            assert record.status == result.status
            assert record.provider == "p"
            assert record.history[0].status == Status.QUEUED
        assert self._sends(control, self.send_path), "the emulator saw no send request"

    def test_sync_and_async_drive_same_operation(self, emulator_url: str, control: EmulatorControl | None) -> None:
        with self.gateway(emulator_url) as gw:
            self._check_accepted(gw.tenant(TENANT).send(self.recipient, "same code"))
        sync_reqs = [(r.method, r.path) if control is not None else type(r) for r in self._sends(control)]
        if control is None:
            self.reset_vendor()
        else:
            control.reset()

        async def go() -> SendResult:
            async with self.async_gateway(emulator_url) as agw:
                return await agw.tenant(TENANT).send(self.recipient, "same code")

        self._check_accepted(asyncio.run(go()))
        async_reqs = [(r.method, r.path) if control is not None else type(r) for r in self._sends(control)]
        assert sync_reqs == async_reqs

    def test_send_many(self, emulator_url: str, control: EmulatorControl | None) -> None:
        numbers = [self.recipient, *self.more_recipients]
        with self.gateway(emulator_url) as gw:
            results = gw.tenant(TENANT).send_many(numbers, "many")
        assert [r.to for r in results] == numbers
        for r in results:
            self._check_accepted(r)
        if control is None:
            assert len(self._sends(control)) == len(numbers)
        elif self.provider_class.capabilities.bulk and self.provider_class.capabilities.max_batch >= len(numbers):
            sends = [r for r in control.requests() if r.method != "GET"]
            assert len(control.requests(self.send_path)) <= len(sends)
            assert len({r.message_id for r in results}) == len(numbers)

    def test_send_many_is_one_request(self, emulator_url: str, control: EmulatorControl | None) -> None:
        """The contract: ``send_many`` translates exactly one request (the gateway batches)."""
        with self.gateway(emulator_url) as gw:
            t = gw.tenant(TENANT)
            prov = t.provider("p")
            numbers = [self.recipient, *self.more_recipients][: prov.capabilities.max_batch]
            if not prov.capabilities.bulk or len(numbers) < 2:
                pytest.skip("the provider (instance) has no bulk sending")
            sender = gw.settings.tenant(TENANT).providers["p"].sender
            msgs = [OutboundMessage(to=t.normalize(n), text="one request", sender=sender, message_id=f"m{i}")
                    for i, n in enumerate(numbers)]
            assert len({prov.batch_key(m) for m in msgs}) == 1
            results = t.run("p", prov.send_many(msgs))
        assert len(results) == len(msgs)
        assert len(self._sends(control, self.bulk_send_path or self.send_path, "POST")) == 1

    def test_send_many_async(self, emulator_url: str, control: EmulatorControl | None) -> None:
        numbers = [self.recipient, *self.more_recipients]

        async def go() -> list[SendResult]:
            async with self.async_gateway(emulator_url) as agw:
                return await agw.tenant(TENANT).send_many(numbers, "many async")

        results = asyncio.run(go())
        assert [r.to for r in results] == numbers
        for r in results:
            self._check_accepted(r)

    def test_status_lookup(self, emulator_url: str, control: EmulatorControl | None) -> None:
        with self.gateway(emulator_url) as gw:
            t = gw.tenant(TENANT)
            result = t.send(self.recipient, "status please")
            prov = t.provider("p")
            if not prov.capabilities.status_lookup:
                with pytest.raises(Unsupported):
                    t.run("p", prov.status(result))
                return
            report = t.run("p", prov.status(result))
            assert isinstance(report.status, Status)
            record = t.status(result.message_id)
            assert record.status.rank >= Status.SUBMITTED.rank or record.status.is_final

    def test_auth_failure(self, emulator_url: str, control: EmulatorControl | None) -> None:
        self._http(control)
        with self.gateway(emulator_url, valid=False) as gw:
            t = gw.tenant(TENANT)
            with pytest.raises(AuthFailed) as info:
                t.send(self.recipient, "nope")
            record = t.messages()[0]
            assert record.status == Status.FAILED
        text = f"{info.value} {info.value!r} {info.value.body} {record.error}"
        for secret in self.secret_values:
            assert secret not in text

    def test_secrets_not_in_repr(self, emulator_url: str) -> None:
        settings = self.make_settings(emulator_url)
        prov = self.provider_class(settings)
        text = f"{prov!r} {settings!r} {settings.credentials!r} {self._settings(emulator_url)!r}"
        for value in settings.credentials.values():
            assert value.get_secret_value() not in text

    def test_rate_limit_retry_after_honoured(self, emulator_url: str, control: EmulatorControl | None) -> None:
        control = self._http(control)
        control.fault(kind="status", status=429, retry_after=0, path=self.send_path, count=1)
        with self.gateway(emulator_url) as gw:
            self._check_accepted(gw.tenant(TENANT).send(self.recipient, "after 429"))
        assert len(control.requests(self.send_path)) == 2

    def test_rate_limited_when_retries_exhausted(self, emulator_url: str, control: EmulatorControl | None) -> None:
        control = self._http(control)
        control.fault(kind="status", status=429, retry_after=0, path=self.send_path, count=None)
        with self.gateway(emulator_url, max_retries=1) as gw, pytest.raises(RateLimited):
            gw.tenant(TENANT).send(self.recipient, "429 forever")

    def _declared_not_processed(self, base_url: str) -> frozenset[int]:
        """The 5xx statuses the provider and the kit's instance declare "not processed"."""
        return self.provider_class.not_processed_statuses | self.make_settings(base_url).not_processed_statuses

    def test_503_not_processed_is_retried(self, emulator_url: str, control: EmulatorControl | None) -> None:
        """A 503 is repeated only where the vendor documents it as "not processed" (the provider's
        declaration or the instance's ``not_processed_statuses``); otherwise a 503 after the vendor
        acted is not sent again: the message is ``unknown``, or resolved by a client reference."""
        control = self._http(control)
        if 503 in self._declared_not_processed(emulator_url):
            control.fault(kind="status", status=503, retry_after=0, path=self.send_path, count=1)
            with self.gateway(emulator_url) as gw:
                self._check_accepted(gw.tenant(TENANT).send(self.recipient, "after 503"))
            assert len(control.requests(self.send_path)) == 2
            return
        self._check_not_resent(emulator_url, control, 503)

    def test_503_declared_by_the_instance_is_retried(
            self, emulator_url: str, control: EmulatorControl | None) -> None:
        """``not_processed_statuses = [503]`` on the instance (a vendor contract that documents it):
        a send answered 503 is repeated and accepted."""
        control = self._http(control)
        control.fault(kind="status", status=503, retry_after=0, path=self.send_path, count=1)
        with self.gateway(emulator_url, not_processed_statuses=frozenset({503})) as gw:
            self._check_accepted(gw.tenant(TENANT).send(self.recipient, "after a declared 503"))
        sends = control.requests(self.send_path)
        assert [r.fault for r in sends][:1] == ["status"] and len(sends) == 2, "the declared 503 was not repeated"

    def test_500_after_processing_is_not_resent(self, emulator_url: str, control: EmulatorControl | None) -> None:
        self._check_not_resent(emulator_url, self._http(control), 500)

    def _check_not_resent(self, emulator_url: str, control: EmulatorControl, status: int) -> None:
        """A send answered ``status`` after the vendor processed it is not sent again."""
        control.fault(kind="status", status=status, path=self.send_path, count=1, process=True)
        with self.gateway(emulator_url) as gw:
            t = gw.tenant(TENANT)
            try:
                result = t.send(self.recipient, "maybe sent")
            except UnknownOutcome:
                assert len(control.requests(self.send_path)) == 1, "an ambiguous send was repeated"
                assert t.messages()[0].status == Status.UNKNOWN
            else:
                # only allowed when the adapter made the request idempotent (client reference)
                assert self.provider_class.capabilities.client_reference
                self._check_accepted(result)

    @pytest.mark.parametrize("fault", [
        {"kind": "reset", "process": True},  # the vendor acted, then the connection dropped: no answer
        {"kind": "drip", "delay": 1.0, "chunk": 1},  # the vendor acted, its answer stalls mid-body
    ], ids=["reset-after-processing", "read-timeout-mid-body"])
    def test_answer_lost_after_processing_is_not_resent(
            self, emulator_url: str, control: EmulatorControl | None, fault: dict[str, Any]) -> None:
        control = self._http(control)
        control.fault(path=self.send_path, count=1, **fault)
        with self.gateway(emulator_url, timeout=0.3) as gw:
            t = gw.tenant(TENANT)
            try:
                result = t.send(self.recipient, "answer lost")
            except UnknownOutcome:
                assert [r.fault for r in control.processed(self.send_path)] == [fault["kind"]], \
                    "an ambiguous send was repeated"
                assert t.messages()[0].status == Status.UNKNOWN
            else:
                assert self.provider_class.capabilities.client_reference
                self._check_accepted(result)

    def test_malformed_response(self, emulator_url: str, control: EmulatorControl | None) -> None:
        control = self._http(control)
        control.fault(kind="malformed", path=self.send_path, count=1)
        with self.gateway(emulator_url) as gw:
            t = gw.tenant(TENANT)
            with pytest.raises(UnknownOutcome.__mro__[1]):  # any ProviderError
                t.send(self.recipient, "garbled")
            assert t.messages()[0].status == Status.UNKNOWN

    def test_timeout_is_unknown_outcome(self, emulator_url: str, control: EmulatorControl | None) -> None:
        control = self._http(control)
        control.fault(kind="hang", delay=1.0, path=self.send_path, count=1)
        with self.gateway(emulator_url, timeout=0.3) as gw:
            t = gw.tenant(TENANT)
            try:
                t.send(self.recipient, "slow")
            except UnknownOutcome:
                assert t.messages()[0].status == Status.UNKNOWN
            else:
                assert self.provider_class.capabilities.client_reference

    def test_connection_refused(self) -> None:
        if not self.uses_http:
            pytest.skip("the provider makes no HTTP request")
        import socket

        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        sock.close()
        with self.gateway(f"http://127.0.0.1:{port}", max_retries=1) as gw:
            t = gw.tenant(TENANT)
            with pytest.raises(TransportError):
                t.send(self.recipient, "nobody home")
            assert t.messages()[0].status == Status.FAILED

    def test_online_check(self, emulator_url: str, control: EmulatorControl | None) -> None:
        """:meth:`Provider.check` (``config check --online``): accepted credentials, nothing sent;
        refused credentials are :class:`AuthFailed` (no secret in it); or ``Unsupported`` throughout."""
        with self.gateway(emulator_url) as gw:
            t = gw.tenant(TENANT)
            try:
                found = t.run("p", t.provider("p").check())
            except Unsupported:
                with self.gateway(emulator_url, valid=False) as bad, pytest.raises(Unsupported):
                    bad.tenant(TENANT).run("p", bad.tenant(TENANT).provider("p").check())
                return
        assert isinstance(found, ProviderCheck) and found.endpoint
        assert found.sender_valid is None or found.sender
        if self.send_path != "/" and control is not None:
            assert not control.processed(self.send_path, "POST"), "the online check sent a message"
        with self.gateway(emulator_url, valid=False) as gw:
            t = gw.tenant(TENANT)
            with pytest.raises(AuthFailed) as info:
                t.run("p", t.provider("p").check())
        text = f"{info.value} {info.value!r} {info.value.body}"
        for secret in self.secret_values:
            assert secret not in text

    def test_online_check_unreachable(self) -> None:
        import socket

        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        sock.close()
        with self.gateway(f"http://127.0.0.1:{port}", max_retries=0) as gw:
            t = gw.tenant(TENANT)
            try:
                t.run("p", t.provider("p").check())
            except Unsupported:
                return
            except TransportError as exc:
                assert f"127.0.0.1:{port}" in str(exc)
            else:  # pragma: no cover - nothing listens there
                pytest.fail("the check reached a closed port")

    def test_opted_out_never_sent(self, emulator_url: str, control: EmulatorControl | None) -> None:
        with self.gateway(emulator_url) as gw:
            t = gw.tenant(TENANT)
            t.optouts.add(self.recipient)
            with pytest.raises(OptedOut):
                t.send(self.recipient, "stop")
            results = t.send_many([self.recipient], "stop")
            assert results[0].status == Status.REJECTED
        assert self._sends(control, self.send_path) == []

    def test_idempotency_key_sends_once(self, emulator_url: str, control: EmulatorControl | None) -> None:
        with self.gateway(emulator_url) as gw:
            t = gw.tenant(TENANT)
            first = t.send(self.recipient, "once", idempotency_key="k-1")
            second = t.send(self.recipient, "once", idempotency_key="k-1")
        assert second.message_id == first.message_id
        assert len(self._sends(control, self.send_path)) == 1

    def test_media_capability(self, emulator_url: str, control: EmulatorControl | None) -> None:
        if self.provider_class.capabilities.media:
            pytest.skip("provider takes media; covered by its own tests")
        with self.gateway(emulator_url) as gw, pytest.raises(Unsupported):
            gw.tenant(TENANT).send(self.recipient, "pic", attachments=[Attachment(url="https://x/y.jpg")])
        assert self._sends(control, self.send_path) == []

    # ---------------------------------------------------- helpers
    @staticmethod
    def _check_accepted(result: SendResult) -> None:
        assert result.ok, f"not accepted: {result.status} {result.error}"
        assert result.provider == "p"
        assert result.message_id
