"""The ``console`` provider, for development: each message is printed, none is sent.

Like Django's console e-mail backend::

    [tenants.dev.providers.console]
    plugin = "console"
    options = { output = "stderr", show_text = true }

Options: ``output``, ``"stderr"`` (the default) or ``"log"`` (the ``smsgate.console``
logger, at INFO); ``show_text``, print the message text too. By default only the
recipient, the sender and the text's length are shown: message bodies (one-time
codes...) are not logged at INFO unless asked for.

It makes no request: no ``base_url`` or credentials are needed. It is registered
as the built-in plugin ``console`` (entry point ``smsgate.providers``).
"""

from __future__ import annotations

import itertools
import logging
import sys
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from smsgate.hookspecs import hookimpl
from smsgate.models import OutboundMessage, SendResult, Status
from smsgate.provider import Capabilities, Operation, Provider, ProviderSettings

__all__ = ["ConsoleOptions", "ConsoleProvider", "register_providers"]

log = logging.getLogger("smsgate.console")


class ConsoleOptions(BaseModel):
    """Options of the ``console`` provider."""

    model_config = ConfigDict(extra="forbid")

    #: where each message goes: standard error, or the ``smsgate.console`` logger (INFO)
    output: Literal["stderr", "log"] = "stderr"
    #: show the message text (off by default: bodies may hold one-time codes)
    show_text: bool = False


_ids = itertools.count(1)


class ConsoleProvider(Provider):
    """Prints each message (recipient and length; the text with ``show_text``) and accepts it."""

    name = "console"
    capabilities = Capabilities(send=True)
    default_base_url = "console://"
    options_model = ConsoleOptions

    def __init__(self, settings: ProviderSettings, instance_name: str | None = None) -> None:
        super().__init__(settings, instance_name)
        assert isinstance(self.options, ConsoleOptions)
        self._options: ConsoleOptions = self.options

    def format(self, msg: OutboundMessage) -> str:
        """The line printed for ``msg``."""
        line = (f"SMS {msg.message_id or '-'} to {msg.to} from {msg.sender or '-'} "
                f"({len(msg.text)} characters)")
        if self._options.show_text:
            line += f": {msg.text}"
        return line

    def send(self, msg: OutboundMessage) -> Operation[SendResult]:
        """Print ``msg`` and report it sent."""
        line = self.format(msg)
        if self._options.output == "log":
            log.info("%s [%s]", line, self.instance_name)
        else:
            print(f"[smsgate console {self.instance_name}] {line}", file=sys.stderr, flush=True)
        return SendResult(message_id=msg.message_id, to=msg.to, status=Status.SENT, raw_status="printed",
                          provider=self.instance_name, provider_message_id=f"console-{next(_ids)}")
        yield  # pragma: no cover - an operation that needs no request


@hookimpl
def register_providers(register: Any) -> None:
    """Register :class:`ConsoleProvider` as ``console``."""
    register(ConsoleProvider)
