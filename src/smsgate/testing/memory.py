"""The ``memory`` provider: sends succeed at once and land in :data:`smsgate.testing.outbox`.

Like Django's locmem e-mail backend: configure it for tests (or a demo) and read
what the app sent from the outbox, per tenant::

    [tenants.acme.providers.memory]
    plugin = "memory"
    options = { fail_numbers = '\\+23480000000\\d\\d', deliver = true }

Options (all optional): ``fail_numbers``, a regex matched against the whole E.164
number: a send to a matching number is refused (:class:`~smsgate.errors.RequestRejected`,
logged ``failed``), as is one to a number given to :meth:`Outbox.fail_numbers`;
``deliver``, mark every accepted message delivered at once (otherwise it stays
``sent`` until :meth:`Outbox.mark_delivered` / :meth:`Outbox.mark_failed`, which
the gateway sees at its next status lookup).

It makes no request: no ``base_url`` or credentials are needed. It is registered
as the built-in plugin ``memory`` (entry point ``smsgate.providers``).
"""

from __future__ import annotations

import itertools
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

from smsgate.errors import RequestRejected, ResourceNotFound
from smsgate.hookspecs import hookimpl
from smsgate.models import DeliveryReport, OutboundMessage, SendResult, Status
from smsgate.provider import Capabilities, Operation, Provider, ProviderSettings
from smsgate.testing.sent import Outbox, SentMessage, outbox

__all__ = ["MemoryOptions", "MemoryProvider", "register_providers"]


class MemoryOptions(BaseModel):
    """Options of the ``memory`` provider."""

    model_config = ConfigDict(extra="forbid")

    #: refuse sends to numbers matching this regex (whole E.164 number)
    fail_numbers: str | None = None
    #: mark every accepted message delivered at once
    deliver: bool = False

    @field_validator("fail_numbers")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a regular expression: {exc}") from None
        return value


_ids = itertools.count(1)


class MemoryProvider(Provider):
    """Accepts every message at once and files it in :data:`smsgate.testing.outbox`."""

    name = "memory"
    capabilities = Capabilities(send=True, status_lookup=True, client_reference=True)
    default_base_url = "memory://"
    options_model = MemoryOptions

    def __init__(self, settings: ProviderSettings, instance_name: str | None = None,
                 outbox: Outbox = outbox) -> None:
        super().__init__(settings, instance_name)
        assert isinstance(self.options, MemoryOptions)
        self._options: MemoryOptions = self.options
        self._fail = re.compile(self._options.fail_numbers) if self._options.fail_numbers else None
        #: where accepted messages go (the process-wide outbox by default)
        self.outbox = outbox

    def send(self, msg: OutboundMessage) -> Operation[SendResult]:
        """File ``msg`` in the outbox (or refuse it: see the module docstring)."""
        if (self._fail is not None and self._fail.fullmatch(msg.to)) or self.outbox.refuses(msg.to):
            raise RequestRejected(f"memory: {msg.to} is configured to fail", provider=self.instance_name)
        status = Status.DELIVERED if self._options.deliver else Status.SENT
        filed = self.outbox.add_once(SentMessage(
            to=msg.to, text=msg.text, tenant=self.tenant, instance=self.instance_name, sender=msg.sender,
            message_id=msg.message_id, provider_message_id=f"mem-{next(_ids)}", reference=msg.reference,
            campaign_id=msg.campaign_id, status=status))
        return SendResult(message_id=msg.message_id, to=msg.to, status=filed.status, raw_status=filed.status.value,
                          provider=self.instance_name, provider_message_id=filed.provider_message_id)
        yield  # pragma: no cover - an operation that needs no request

    def status(self, result: SendResult) -> Operation[DeliveryReport]:
        """The message's status in the outbox."""
        filed = self.outbox.get(provider_message_id=result.provider_message_id, instance=self.instance_name,
                                tenant=self.tenant)
        if filed is None:
            raise ResourceNotFound(f"memory: no message {result.provider_message_id!r} in the outbox "
                                   "(cleared?)", provider=self.instance_name)
        return self._report(filed)
        yield  # pragma: no cover

    def find_by_reference(self, message_id: str, to: str) -> Operation[DeliveryReport | None]:
        """The message sent with gateway id ``message_id``, if the outbox has it."""
        filed = self.outbox.get(message_id=message_id, instance=self.instance_name, tenant=self.tenant)
        return None if filed is None else self._report(filed)
        yield  # pragma: no cover

    def _report(self, filed: SentMessage) -> DeliveryReport:
        return DeliveryReport(provider=self.instance_name, provider_message_id=filed.provider_message_id,
                              to=filed.to, status=filed.status, raw_status=filed.status.value,
                              error_code=filed.error_code)


@hookimpl
def register_providers(register: Any) -> None:
    """Register :class:`MemoryProvider` as ``memory``."""
    register(MemoryProvider)
