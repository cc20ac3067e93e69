"""Inbound messages: stored once per vendor event, then keywords acted on, as plans.

Every inbound message of a webhook is stored (idempotently: the same vendor
event delivered twice is stored once). A new one is passed to the
``smsgate_on_inbound`` hook. If it is exactly a keyword of the tenant
(:class:`~smsgate.config.InboundConfig`, matched by :mod:`smsgate.keywords`):

* a stop word adds the sender to the opt-outs (source ``keyword``, the reason
  naming the inbound message), of every sender of the tenant or, with
  ``inbound.optout_scope = "sender"``, of the sender ID the reply was sent to
  (see :func:`smsgate.keywords.keyword_scope`);
* a start word removes the sender's opt-out of that same scope, unless that opt-out is
  newer than the start word, and is recorded (an opt-in, with when it was said): the
  person's last word stands, whatever order the replies are applied in (a vendor retrying
  a callback, a poll listing replies newest first). An opt-out by stop word is dated when
  the word was said (``received_at``, never later than now), a stop word said again renews
  the date, and one said before an opt-in of its scope records nothing (and is not
  confirmed) when it is applied after it;
* a help word sends the configured ``help_reply`` through the normal send path
  (logged, rate-limited; not held back by the number's opt-outs: carriers' rules, such as
  the CTIA's in the US, ask that HELP is answered even after STOP) with an idempotency key derived from
  the inbound event (``smsgate:inbound:<instance>:<vendor id>:help``: smsgate's own
  namespace, :data:`~smsgate.core.policy.RESERVED_KEY_PREFIX`, which no application key can
  take), so a webhook delivered twice replies once; and at most
  ``help_reply_limit`` times per number per ``help_reply_window`` seconds (counted in
  the store, see :func:`_reply_slot`), so nobody can make the tenant text a number
  over and over by texting HELP from it (or spoofing it). A withheld reply is logged
  at INFO with the number masked. A help word received more than
  :data:`HELP_REPLY_MAX_AGE` (a day) ago gets no reply: a poll listing it again after
  ``purge`` deleted it, or a callback retried for days, would answer it long after. Nor does
  one from a number the tenant sends from (:func:`_own_number`): the reply would come back;
* ``stop_reply`` / ``start_reply``, when set, confirm a stop / start word the same way
  (once per event, under the same cap, same age and own-number rules). The stop
  confirmation is the one message the opt-out just recorded does not hold back (carriers
  ask for it); the start confirmation goes through the opt-out check as any message does
  (a start word older than the opt-out it would have lifted gets none, also from a sender
  the number did not opt out of). Other opt-outs of the number hold both back. A confirmation
  of one sender's scope goes from the sender the person texted when the tenant sends as it
  (:func:`_reply_sender`); every other auto-reply from ``reply_sender``.

A text over :data:`~smsgate.models.MAX_INBOUND_TEXT` characters arrives cut to that
length and flagged ``truncated`` (the model's rule, so one oversized reply never fails
its callback); it is logged at INFO, without its text or the full number.

The action taken is recorded on the stored inbound message (``action``). An
event stored before whose action was never recorded (a crash half-way) is acted
on again: every action is idempotent.
"""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Literal

from smsgate.core import deliver, hooks
from smsgate.core.policy import RESERVED_KEY_PREFIX, TenantPolicy, mask, wrong_type
from smsgate.core.steps import Flush, Plan, Query
from smsgate.errors import SmsgateError, ValidationError, mask_numbers
from smsgate.keywords import Keyword, KeywordMatcher, keyword_scope
from smsgate.models import (
    EVERY_SENDER,
    MAX_INBOUND_TEXT,
    DeliveryReport,
    InboundMessage,
    OptOut,
    is_numeric_sender,
    utcnow,
)
from smsgate.store._rules import to_utc

__all__ = ["ACTIONS", "HELP_REPLY_MAX_AGE", "handle", "matcher", "notify", "sender_key", "store"]

log = logging.getLogger("smsgate")

#: A help word received longer ago than this (seconds) gets no auto-reply: a poll listing an
#: old reply again after ``purge`` deleted it (and its reply's idempotency key), or a callback
#: retried for days, would text the person long after they asked.
HELP_REPLY_MAX_AGE = 86400.0

#: What ``InboundMessage.action`` can be, by keyword (``none``: no keyword or keywords off).
ACTIONS = {Keyword.STOP: "optout", Keyword.START: "optin", Keyword.HELP: "help", None: "none"}


def matcher(policy: TenantPolicy) -> KeywordMatcher:
    """The tenant's keyword matcher."""
    cfg = policy.config.inbound
    return KeywordMatcher(cfg.stop_words, cfg.start_words, cfg.help_words)


def sender_key(policy: TenantPolicy, number: str) -> str:
    """How an inbound message's sender is stored, and looked for: in E.164 where the tenant's
    region reads it (listing by number then finds it in any format), else as given (a short
    code or an alphanumeric sender ID).

    A number the phone module refuses as given is read once more in NFKC form without Unicode
    format characters: a phone may send its number in fullwidth digits (``\uff0b\uff12...``) or
    wrapped in direction marks (right-to-left locales), and that sender's STOP must still stop
    the number it is."""
    try:
        return policy.normalize(number)
    except SmsgateError:
        if number.isascii():
            return number
    plain = "".join(c for c in unicodedata.normalize("NFKC", number) if unicodedata.category(c) != "Cf")
    try:
        return policy.normalize(plain)
    except SmsgateError:
        return number


def handle(policy: TenantPolicy, instance: str, messages: Sequence[InboundMessage]) -> Plan[tuple[list[InboundMessage], int]]:
    """Store ``messages`` (of provider instance ``instance``) and act on their keywords,
    then pass the new ones to ``smsgate_on_inbound`` (:func:`notify`).

    Returns the messages as stored (with ``id`` and ``action``) and how many had
    been stored before. ``messages`` that are not a list of :class:`InboundMessage` are a
    :class:`ValidationError` naming them (a ``TypeError`` or ``AttributeError`` from the store).
    """
    if isinstance(messages, (str, bytes, Mapping, InboundMessage)) or not isinstance(messages, Iterable):
        raise wrong_type("messages", messages, "a list of smsgate.InboundMessage")
    messages = list(messages)
    odd = next((m for m in messages if not isinstance(m, InboundMessage)), None)
    if odd is not None:
        raise ValidationError(f"expected a list of smsgate.InboundMessage, got a {type(odd).__name__} in it",
                              field="messages")
    out, duplicates, new = yield from store(policy, instance, messages)
    notify(policy, [], new)
    return out, duplicates


def notify(policy: TenantPolicy, reports: Sequence[tuple[str, DeliveryReport]],
           inbound: Sequence[InboundMessage]) -> None:
    """Run the application's ``smsgate_on_status`` hooks for ``reports`` ((message id,
    report) pairs) and its ``smsgate_on_inbound`` hooks for ``inbound``, after what they
    tell of is stored and acted on.

    Every call is made even when an earlier one raised, and an exception is logged
    (tenant, hook, message id; with its traceback), never raised
    (:func:`smsgate.core.hooks.notify`): the callback is stored, and a vendor retrying
    it would call no hook again, so a webhook answers 200.
    """
    hooks.notify(policy.hook, policy.name, reports, inbound)


def store(policy: TenantPolicy, instance: str,
          messages: Sequence[InboundMessage]) -> Plan[tuple[list[InboundMessage], int, list[InboundMessage]]]:
    """Store ``messages`` and act on their keywords, without running any hook.

    Returns the messages as stored, how many had been stored before, and the new
    ones (for :func:`notify`). A message refused on its own (``rejected``: a field out of
    its bounds) is logged at INFO (its number masked) and left out, never stored.
    """
    for m in messages:
        if m.rejected:
            log.info("tenant %s: inbound (%s, vendor id %r) from %s refused on its own (%s)", policy.name,
                     instance, m.vendor_id[:40], mask(m.from_number), m.rejected)
    messages = [m for m in messages if not m.rejected]
    for m in messages:
        m.tenant, m.provider = policy.name, instance
        m.from_number = sender_key(policy, m.from_number)
    if not messages:
        return [], 0, []
    stored: list[tuple[InboundMessage, bool]] = yield Query("record_inbound", policy.name, list(messages))
    match = matcher(policy)
    out: list[InboundMessage] = []
    new_ones: list[InboundMessage] = []
    duplicates = 0
    for msg, new in stored:
        if not new:
            duplicates += 1
        elif msg.truncated:
            log.info("tenant %s: inbound %s (%s, vendor id %r) from %s: text over %d characters, stored "
                     "truncated", policy.name, msg.id, instance, msg.vendor_id[:40], mask(msg.from_number),
                     MAX_INBOUND_TEXT)
        if msg.action is None:
            # a text cut to MAX_INBOUND_TEXT is no keyword: what was cut is unknown ("STOP", spaces, "...not")
            keyword = match.match(msg.text) if policy.config.inbound.keywords and not msg.truncated else None
            msg.action = yield from _act(policy, msg, keyword)
            assert msg.id is not None
            yield Query("set_inbound_action", policy.name, msg.id, msg.action)
        if new:
            new_ones.append(msg)
        out.append(msg)
    return out, duplicates, new_ones


def _act(policy: TenantPolicy, msg: InboundMessage, keyword: Keyword | None) -> Plan[str]:
    """Do what ``keyword`` asks for the sender of ``msg``; returns the action recorded."""
    action = ACTIONS[keyword]
    if keyword is None:
        return action
    try:
        phone = policy.normalize(msg.from_number)
    except SmsgateError:
        log.warning("inbound %s from an unreadable number: keyword %s not acted on", msg.id, keyword.value)
        return "none"
    cfg = policy.config.inbound
    scope = keyword_scope(cfg.optout_scope == "sender", cfg.reply_scopes, msg.to, policy.normalize,
                          policy.senders())  # a reply's ``to`` is one of them
    # the person's last word stands, whatever order the vendor delivers the replies in: an
    # opt-out is dated when its stop word was said (renewed by a later one), and a start word
    # removes none newer than itself (a retried callback, a poll listing replies newest first)
    said = min(to_utc(msg.received_at), utcnow())  # a clock ahead of ours would outlast every start word
    if keyword is Keyword.STOP:
        yield Query("add_optouts", policy.name, [OptOut(
            phone=phone, source="keyword", scope=scope, created_at=said,
            reason=f"replied {msg.text.strip()[:20]!r} (inbound {msg.id})")], renew=True)
        held: dict[str, set[str]] = yield Query("optout_scopes", policy.name, [phone])
        if scope not in held.get(phone, ()):  # a start word said after it was applied first
            log.info("tenant %s: stop word of inbound %s from %s (said %s) recorded no opt-out of %s: a start "
                     "word said after it was applied before it", policy.name, msg.id, mask(phone),
                     said.isoformat(timespec="seconds"), _scope_name(scope))
            return action
        log.info("tenant %s: %s opted out of %s by keyword (inbound %s)", policy.name, mask(phone),
                 _scope_name(scope), msg.id)
        yield from _auto_reply(policy, msg, phone, Keyword.STOP, cfg.stop_reply, scope)
    elif keyword is Keyword.START:
        removed = False
        for stored in (yield from policy.scopes_named(phone, scope)):  # the sender's number in any form kept
            removed = (yield Query("remove_optout", policy.name, phone, stored, not_after=said)) or removed
        if removed:
            log.info("tenant %s: %s opted back in to %s by keyword (inbound %s)", policy.name, mask(phone),
                     _scope_name(scope), msg.id)
        else:
            log.info("tenant %s: start word of inbound %s from %s (said %s) removed no opt-out of %s: none, or "
                     "one newer than it", policy.name, msg.id, mask(phone), said.isoformat(timespec="seconds"),
                     _scope_name(scope))
        if cfg.start_reply and not removed and scope != EVERY_SENDER \
                and policy.optout_holds((yield Query("optout_scopes", policy.name, [phone])).get(phone, set()), scope):
            # still opted out of the sender it was about (a START older than that opt-out): a
            # "welcome back" from another sender, whose opt-out the reply's own check sees, would lie
            log.info("tenant %s: start reply to inbound %s not sent: %s is still opted out of %s",
                     policy.name, msg.id, mask(phone), _scope_name(scope))
        else:
            yield from _auto_reply(policy, msg, phone, Keyword.START, cfg.start_reply, scope)
    else:
        yield from _auto_reply(policy, msg, phone, Keyword.HELP, cfg.help_reply)
    return action


def _own_number(policy: TenantPolicy, phone: str) -> bool:
    """Whether ``phone`` is one of the numbers the tenant sends from (compared as opt-out scopes
    compare senders: :meth:`~smsgate.core.policy.TenantPolicy.scope_of`)."""
    key = policy.sender_scope(phone)
    return any(sender and is_numeric_sender(sender) and policy.sender_scope(sender) == key
               for sender in policy.senders())


def _reply_sender(policy: TenantPolicy, msg: InboundMessage, keyword: Keyword, scope: str | None) -> str | None:
    """The sender ID an auto-reply to ``msg`` goes out with: ``inbound.reply_sender``, except for
    the confirmation of a stop or start word of one sender's ``scope``
    (``optout_scope = "sender"``): that goes from the sender the person texted (``msg.to``) when
    it is one the tenant sends as (its ``sender``, an instance's, ``reply_sender``: one the
    configuration names, so one its providers send from), else from the sender of the scope
    (``reply_scopes`` mapped the number texted to it) when the tenant sends as that, else from
    ``reply_sender``. Compared as opt-out scopes compare senders; the configured spelling is used."""
    default = policy.config.inbound.reply_sender
    if keyword is Keyword.HELP or scope is None or scope == EVERY_SENDER:
        return default
    own = [sender for sender in policy.senders() if sender]
    for wanted in (policy.sender_scope(msg.to) if msg.to else None, scope):
        found = next((sender for sender in own if wanted is not None and policy.sender_scope(sender) == wanted), None)
        if found is not None:
            return found
    return default


def _masked(error: object, phone: str) -> str:
    """``error``'s text for a log line about a reply to ``phone``, the number masked (an
    ``OptedOut`` names it whole: ``+2348031234567 has opted out ...``)."""
    return mask_numbers(str(error), [phone])


def _scope_name(scope: str) -> str:
    return "every sender" if scope == EVERY_SENDER else f"sender {scope!r}"


def _reply_slot(policy: TenantPolicy, phone: str, keyword: Keyword, event: str, *,
                now: datetime | None = None) -> Plan[bool]:
    """Whether the inbound event ``event`` may have an auto-reply to ``phone``: the rule
    capping ``keyword``'s replies to one number at ``help_reply_limit`` per
    ``help_reply_window`` seconds.

    Windows are fixed (aligned to their length since the epoch). Each holds
    ``help_reply_limit`` slots, idempotency keys of the store bound to the event taking
    one; claiming is atomic in the store, so processes sharing it share the cap, and the
    same event handled again finds its own slot (the reply's own key then keeps it to one).
    """
    cfg = policy.config.inbound
    moment = (now or utcnow()).timestamp()
    window = int(moment // cfg.help_reply_window)
    for slot in range(cfg.help_reply_limit):
        key = f"{RESERVED_KEY_PREFIX}auto-reply:{keyword.value}:{phone}:{cfg.help_reply_window:g}:{window}:{slot}"
        holder: str | None = yield Query("claim_idempotency_key", policy.name, key, event)
        if holder is None or holder == event:
            return True
    return False


def _auto_reply(policy: TenantPolicy, msg: InboundMessage, phone: str, keyword: Keyword,
                text: str | None, scope: str | None = None) -> Plan[None]:
    """Send ``text``, the tenant's reply to ``keyword`` (``help_reply``, ``stop_reply``,
    ``start_reply``), to ``phone``, once per inbound event (its idempotency key), from
    :func:`_reply_sender`'s sender. A stop confirmation is not held back by the opt-out its stop
    word just recorded (of ``scope``), only by the number's other opt-outs; a help reply by none."""
    cfg = policy.config.inbound
    if not text:
        return
    what = f"{keyword.value} reply"
    age = (utcnow() - to_utc(msg.received_at)).total_seconds()
    if age > HELP_REPLY_MAX_AGE:  # listed again after a purge, or a callback retried for days
        log.info("tenant %s: %s to inbound %s from %s not sent: received %.1f h ago (over %g h)",
                 policy.name, what, msg.id, mask(phone), age / 3600, HELP_REPLY_MAX_AGE / 3600)
        return
    if _own_number(policy, phone):  # the tenant texting itself: the reply would come back as a reply
        log.info("tenant %s: %s to inbound %s not sent: %s is one of the tenant's own sender numbers",
                 policy.name, what, msg.id, mask(phone))
        return
    event = f"inbound:{msg.provider}:{msg.vendor_id}"
    if not (yield from _reply_slot(policy, phone, keyword, event)):
        window = cfg.help_reply_window
        log.info("tenant %s: %s to inbound %s from %s withheld: the number's cap of %d per %s is used "
                 "up (inbound.help_reply_limit / help_reply_window)", policy.name, what, msg.id, mask(phone),
                 cfg.help_reply_limit, f"{window / 60:g} min" if window >= 60 else f"{window:g} s")
        return
    try:
        out = policy.build(phone, text, sender=_reply_sender(policy, msg, keyword, scope), reference=f"inbound:{msg.id}")
    except SmsgateError as bad:  # e.g. text the sender ID's encoding cannot carry: not the vendor's fault
        log.error("tenant %s: %s cannot be built: %s", policy.name, what, _masked(bad, phone))
        return
    # smsgate's own key (no application key can be it: RESERVED_KEY_PREFIX)
    out = out.model_copy(update={"idempotency_key": f"{RESERVED_KEY_PREFIX}{event}:{keyword.value}"})
    provider = cfg.reply_provider or msg.provider
    # a stop confirmation: not held back by the opt-out its stop word just recorded (``scope``),
    # by every other one (an older opt-out of the reply's sender, or of every sender) as any message is;
    # a help reply: by none (carriers, e.g. the CTIA's, ask that HELP is answered even after STOP)
    exempt: str | Literal[True] | None = scope if keyword is Keyword.STOP else None
    if keyword is Keyword.HELP:
        exempt = True
    (prep,) = yield from policy.prepare([out], provider, exempt=exempt)
    names: Sequence[str] | None = prep.candidates if prep.result is None else None
    if prep.error is not None:  # opted out, no route...: logged as refused, not sent
        log.info("tenant %s: %s to inbound %s not sent: %s", policy.name, what, msg.id, _masked(prep.error, phone))
    if names is not None:
        _, failed = yield from deliver.deliver_one(policy, out, names, None)
        if failed is not None:
            log.warning("tenant %s: %s to inbound %s failed: %s", policy.name, what, msg.id, _masked(failed, phone))
    yield Flush()
