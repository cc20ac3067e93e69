"""What was sent, readable from tests: :class:`Outbox` and provider-neutral assertions.

The ``memory`` provider (:mod:`smsgate.testing.memory`) files every message it
accepts in the process-wide :data:`outbox` (like Django's ``mail.outbox``), per
tenant and provider instance. A :class:`SendRecorder` registered on a gateway's
plugin manager fills an outbox of its own from the ``smsgate_after_send`` hook,
whatever the provider (an emulator, a real vendor's sandbox), so the same
:meth:`Outbox.assert_sent` works against both::

    from smsgate.testing import outbox

    outbox.assert_sent(to="+2348012345678", text="Order 42 confirmed", count=1)
    outbox.assert_not_sent(to="+2348012345679")

Everything here is thread-safe: an app may send from worker threads while the
test reads.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from smsgate.errors import ResourceNotFound
from smsgate.hookspecs import hookimpl
from smsgate.models import Status

if TYPE_CHECKING:
    from smsgate.models import OutboundMessage, SendResult

__all__ = ["MAX_SHOWN", "Outbox", "SendRecorder", "SentMessage", "outbox"]

#: what an E.164 number looks like: "+", then up to 15 digits, the first not 0
_E164 = re.compile(r"\+[1-9][0-9]{1,14}")

#: How many messages a failed assertion lists (the rest are counted).
MAX_SHOWN = 10

TextMatch = str | re.Pattern[str]


@dataclass(frozen=True)
class SentMessage:
    """One message a provider accepted, as the app asked for it (neutral, no wire format)."""

    to: str
    text: str
    tenant: str | None = None
    #: the provider instance that took it (e.g. ``"memory"``, ``"p"``)
    instance: str | None = None
    sender: str | None = None
    #: the gateway's message id (``SendResult.message_id``)
    message_id: str = ""
    provider_message_id: str | None = None
    reference: str | None = None
    campaign_id: str | None = None
    #: ``sent`` on acceptance; ``delivered`` / ``failed`` after :meth:`Outbox.mark_delivered`
    #: or :meth:`Outbox.mark_failed` (or the ``deliver`` option of the memory provider)
    status: Status = Status.SENT
    error_code: str | None = None
    sent_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))

    def describe(self) -> str:
        """One line for failure messages."""
        where = ", ".join(x for x in (f"tenant {self.tenant}" if self.tenant else "",
                                      f"via {self.instance}" if self.instance else "", self.status.value) if x)
        return f"to {self.to}: {self.text!r} ({where})"


def _matches_text(expected: TextMatch | None, text: str) -> bool:
    if expected is None:
        return True
    if isinstance(expected, re.Pattern):
        return expected.search(text) is not None
    return text == expected


class Outbox:
    """A thread-safe list of :class:`SentMessage`, with assertions for tests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._messages: list[SentMessage] = []
        #: position of each message by (tenant, instance, gateway message id)
        self._index: dict[tuple[str | None, str | None, str], int] = {}
        self._fail: re.Pattern[str] | None = None

    # ------------------------------------------------------------ reading
    def messages(self, *, tenant: str | None = None, to: str | None = None,
                 instance: str | None = None) -> list[SentMessage]:
        """The messages, oldest first, optionally only one tenant's, number's (E.164) or instance's.

        A ``to`` that is not E.164 (``"08012345678"``) raises :class:`ValueError`: it
        could match nothing, and ``assert_not_sent`` would pass whatever was sent.
        """
        if to is not None and not _E164.fullmatch(to):
            raise ValueError(f"to={to!r} is not an E.164 number (e.g. '+2348012345678'): the outbox keeps "
                             "numbers in E.164, so it would match nothing")
        with self._lock:
            found = list(self._messages)
        return [m for m in found if (tenant is None or m.tenant == tenant) and (to is None or m.to == to)
                and (instance is None or m.instance == instance)]

    def __len__(self) -> int:
        with self._lock:
            return len(self._messages)

    def __iter__(self) -> Iterator[SentMessage]:
        return iter(self.messages())

    def __getitem__(self, index: int) -> SentMessage:
        with self._lock:
            return self._messages[index]

    def get(self, *, provider_message_id: str | None = None, message_id: str | None = None,
            instance: str | None = None, tenant: str | None = None) -> SentMessage | None:
        """The message with this provider or gateway message id (within ``instance``/``tenant``)."""
        for m in self.messages(tenant=tenant, instance=instance):
            if provider_message_id is not None and m.provider_message_id == provider_message_id:
                return m
            if message_id is not None and m.message_id == message_id:
                return m
        return None

    # ------------------------------------------------------------ writing
    def add(self, message: SentMessage) -> SentMessage:
        """File ``message`` (providers and :class:`SendRecorder` call this)."""
        with self._lock:
            self._append(message)
        return message

    def _append(self, message: SentMessage) -> None:
        self._index.setdefault((message.tenant, message.instance, message.message_id), len(self._messages))
        self._messages.append(message)

    def add_once(self, message: SentMessage) -> SentMessage:
        """File ``message`` unless one with its tenant, instance and gateway message id is
        filed already (then return that one): a resend of the same message is one message."""
        with self._lock:
            known = self._index.get((message.tenant, message.instance, message.message_id))
            if known is not None:
                return self._messages[known]
            self._append(message)
        return message

    def clear(self) -> None:
        """Forget every message and the :meth:`fail_numbers` pattern."""
        with self._lock:
            self._messages.clear()
            self._index.clear()
            self._fail = None

    def fail_numbers(self, pattern: str | None) -> None:
        """Make memory providers refuse numbers matching ``pattern`` (a regex matched against
        the whole E.164 number) until :meth:`clear`; ``None`` stops it."""
        with self._lock:
            self._fail = re.compile(pattern) if pattern is not None else None

    def refuses(self, to: str) -> bool:
        """Whether :meth:`fail_numbers` makes a send to ``to`` fail."""
        with self._lock:
            pattern = self._fail
        return pattern is not None and pattern.fullmatch(to) is not None

    def mark_delivered(self, message: SentMessage | str) -> SentMessage:
        """Mark a message (or the one with this gateway message id) delivered: the gateway sees it
        at its next status lookup (``tenant.status(message_id)``)."""
        return self._mark(message, Status.DELIVERED, None)

    def mark_failed(self, message: SentMessage | str, error_code: str | None = "undeliverable") -> SentMessage:
        """Mark a message failed at the handset (see :meth:`mark_delivered`)."""
        return self._mark(message, Status.FAILED, error_code)

    def _mark(self, message: SentMessage | str, status: Status, error_code: str | None) -> SentMessage:
        key = message.message_id if isinstance(message, SentMessage) else message
        with self._lock:
            for i, m in enumerate(self._messages):
                if m.message_id == key:
                    self._messages[i] = updated = replace(m, status=status, error_code=error_code)
                    return updated
        raise ResourceNotFound(f"no message {key!r} in the outbox", provider="memory")

    # ------------------------------------------------------------ assertions
    def assert_sent(self, to: str | None = None, text: TextMatch | None = None, count: int | None = None, *,
                    tenant: str | None = None) -> list[SentMessage]:
        """Assert that messages matching ``to`` (E.164) and ``text`` (the exact text, or a compiled
        regex searched in it) were sent: ``count`` of them, or at least one when ``None``.

        Returns the matching messages. The failure message lists what was sent (at most
        :data:`MAX_SHOWN`).
        """
        found = self._matching(to, text, tenant)
        if (count is None and found) or len(found) == count:
            return found
        wanted = "at least 1" if count is None else str(count)
        raise AssertionError(f"expected {wanted} SMS {self._what(to, text, tenant)}, found "
                             f"{len(found)}\n{self._listing(tenant)}")

    def assert_not_sent(self, to: str | None = None, text: TextMatch | None = None, *,
                        tenant: str | None = None) -> None:
        """Assert that no message matching ``to`` and ``text`` was sent (with neither: none at all)."""
        found = self._matching(to, text, tenant)
        if found:
            raise AssertionError(f"expected no SMS {self._what(to, text, tenant)}, found {len(found)}\n"
                                 f"{self._listing(tenant)}")

    def _matching(self, to: str | None, text: TextMatch | None, tenant: str | None) -> list[SentMessage]:
        return [m for m in self.messages(tenant=tenant, to=to) if _matches_text(text, m.text)]

    @staticmethod
    def _what(to: str | None, text: TextMatch | None, tenant: str | None) -> str:
        parts = []
        if to is not None:
            parts.append(f"to {to}")
        if isinstance(text, re.Pattern):
            parts.append(f"with text matching {text.pattern!r}")
        elif text is not None:
            parts.append(f"with text {text!r}")
        if tenant is not None:
            parts.append(f"for tenant {tenant}")
        return " ".join(parts) or "at all"

    def _listing(self, tenant: str | None) -> str:
        sent = self.messages(tenant=tenant)
        if not sent:
            return "Nothing was sent."
        lines = [f"{len(sent)} sent{f' for tenant {tenant}' if tenant else ''}:"]
        lines += [f"  {i}. {m.describe()}" for i, m in enumerate(sent[:MAX_SHOWN], 1)]
        if len(sent) > MAX_SHOWN:
            lines.append(f"  ... and {len(sent) - MAX_SHOWN} more")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<Outbox: {len(self)} message(s)>"


class SendRecorder:
    """A plugin filing every message a provider accepted in :attr:`outbox`, whatever the provider.

    Register it on a gateway's plugin manager (``gateway.plugins.register(recorder)``);
    the ``sms_emulator`` fixture does this for the gateways it makes.
    """

    def __init__(self, outbox: Outbox | None = None) -> None:
        self.outbox = outbox if outbox is not None else Outbox()

    @hookimpl
    def smsgate_after_send(self, tenant: str, message: OutboundMessage, result: SendResult) -> None:
        """File ``message`` if the provider accepted it."""
        if result.ok:
            self.outbox.add(_from_send(tenant, message, result))


def _from_send(tenant: str | None, message: OutboundMessage, result: SendResult | None,
               **fields: Any) -> SentMessage:
    return SentMessage(
        to=message.to, text=message.text, tenant=tenant, sender=message.sender,
        message_id=message.message_id, reference=message.reference, campaign_id=message.campaign_id,
        instance=result.provider if result is not None else None,
        provider_message_id=result.provider_message_id if result is not None else None,
        status=result.status if result is not None else Status.SENT, **fields)


#: The process-wide outbox the ``memory`` provider fills (cleared by the ``sms_outbox`` fixture).
outbox = Outbox()
