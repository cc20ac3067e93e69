"""The inbound keyword matcher: is a reply exactly STOP, START or HELP?

Pure functions, no I/O. A message matches a keyword when, after Unicode
normalisation (NFKD), case folding and dropping everything that is not a letter
or a digit (accents too: decomposed, they are marks), it equals the keyword
normalised the same way: ``"Stop."``, ``" S T O P "`` and ``"stop!!"`` all match
``STOP``, ``"Arrêt"`` matches ``ARRET`` and ``"ARRET"`` matches ``ARRÊT`` (phones
that send GSM-7 drop accents it lacks); ``"stop texting me"`` does not (carriers
expect the keyword alone). See :class:`smsgate.config.InboundConfig`.

:func:`keyword_scope` says which opt-out scope a stop or start word acts on.
"""

from __future__ import annotations

import enum
import unicodedata
from collections.abc import Callable, Collection, Iterable, Mapping

from smsgate.errors import SmsgateError
from smsgate.models import EVERY_SENDER, is_numeric_sender, optout_applies, optout_scope, sender_text
from smsgate.phone import PhoneNormalizer

__all__ = ["Keyword", "KeywordMatcher", "ScopeRule", "keyword_scope", "normalize_keyword"]

#: Most letters and digits a text may have and still be a keyword (a keyword is short): a long
#: text is read only until it has more, whatever its length in spaces and punctuation.
_MAX_KEY = 160


class Keyword(str, enum.Enum):
    """What an inbound keyword asks for."""

    STOP = "stop"
    START = "start"
    HELP = "help"


def normalize_keyword(text: str) -> str:
    """``text`` without case, accents, spaces, punctuation or symbols (NFKD, case-folded)."""
    folded = unicodedata.normalize("NFKD", text).casefold()
    return "".join(ch for ch in folded if ch.isalnum())  # a decomposed accent is a mark, not alphanumeric


class KeywordMatcher:
    """Matches inbound texts against a tenant's stop, start and help words."""

    def __init__(self, stop: Iterable[str], start: Iterable[str], help: Iterable[str]) -> None:
        self._words: dict[str, Keyword] = {}
        for kind, words in ((Keyword.STOP, stop), (Keyword.START, start), (Keyword.HELP, help)):
            for word in words:
                key = normalize_keyword(word)
                if key:
                    self._words.setdefault(key, kind)
        self._longest = min(max(map(len, self._words), default=0), _MAX_KEY)

    def match(self, text: str) -> Keyword | None:
        """The keyword ``text`` is, or ``None``.

        Spaces and punctuation count for nothing however many there are: ``"STOP"`` padded to
        a fixed width (a relay's field), or ``"STOP!!!"`` with two hundred ``!``, is ``STOP``. A
        long text is read only until it has more letters and digits than the longest keyword
        (a message of words stops being read after a few of them)."""
        if len(text) <= _MAX_KEY:
            return self._words.get(normalize_keyword(text))
        kept: list[str] = []
        for ch in text:  # NFKD and case folding act per character; marks and the rest are dropped
            kept.extend(c for c in unicodedata.normalize("NFKD", ch).casefold() if c.isalnum())
            if len(kept) > self._longest:
                return None
        return self._words.get("".join(kept))


def keyword_scope(per_sender: bool, reply_scopes: Mapping[str, str], to: str | None,
                  normalize: Callable[[str], str] | None = None, senders: Iterable[str | None] = ()) -> str:
    """The opt-out scope a stop or start word sent to ``to`` acts on.

    Every sender of the tenant (:data:`~smsgate.models.EVERY_SENDER`) unless
    ``per_sender``; then the sender ID the reply concerns: ``reply_scopes[to]``
    when the number or short code ``to`` is mapped there (a brand sending from an
    alphanumeric sender ID takes its replies on a number), else the one of the tenant's
    ``senders`` that is the number ``to``, else ``to`` itself. A reply whose ``to`` is
    unknown (the vendor does not say) or unreadable as a sender ID acts on every
    sender: a STOP is never lost for want of a scope. A number ``reply_scopes`` maps to is read
    the same way (``08020000000`` there is the sender configured as ``+2348020000000``).

    Numbers are compared as ``normalize`` (the tenant's phone normaliser) reads them,
    where it does: ``08020000000``, ``+234 802 000 0000`` and ``2348020000000`` are one
    number in Nigeria, so a vendor writing the number a reply went to in national form
    stops the sender configured as ``+2348020000000``. A short code or an alphanumeric
    sender ID is compared as :func:`~smsgate.models.optout_scope` keys it.
    """
    if not per_sender or not to:
        return EVERY_SENDER

    def key(sender: str) -> str:
        if normalize is not None and is_numeric_sender(sender):
            try:
                return optout_scope(normalize(sender_text(sender)))
            except (SmsgateError, ValueError):
                pass  # a short code: its digits
        return optout_scope(sender)

    senders = list(senders)
    try:
        wanted = key(to)
        for number, scope in reply_scopes.items():
            if key(number) == wanted:  # the sender it names, read as a reply's ``to`` is
                return keyword_scope(True, {}, scope, normalize, senders)
        for sender in senders:
            if sender and key(sender) == wanted:
                return optout_scope(sender)  # the key its messages are checked against
    except ValueError:
        return EVERY_SENDER
    return wanted


class ScopeRule:
    """How one tenant keys the opt-out scope of a sender and matches the scopes stored: a number
    is read with the tenant's ``region`` and, when it is one of its configured ``senders``, keyed
    as that sender is (:func:`keyword_scope`); a stored numeric scope names the number it reads
    as, whatever form it was kept in. Plain data (a region and the senders), so a campaign's
    writer process applies it as the tenant's policy does
    (:attr:`smsgate.core.policy.TenantPolicy.scope_rule`)."""

    def __init__(self, region: str | None, senders: Iterable[str | None]) -> None:
        self.region = region
        self.senders = tuple(senders)
        self._normalize = PhoneNormalizer(region).normalize
        #: a stored numeric scope -> the key it is today (:meth:`same`)
        self._stored: dict[str, str] = {}

    def key(self, sender: str) -> str:
        """The opt-out scope key of messages from ``sender``: :func:`~smsgate.models.optout_scope`'s,
        except that a number is read with the region and, when it is one of the configured
        senders, keyed as that sender is (``08020000000`` and ``+234 802 000 0000`` are the sender
        configured as ``+2348020000000``). :class:`ValueError` for a bad sender ID."""
        key = optout_scope(sender)
        if key == EVERY_SENDER or not is_numeric_sender(sender):
            return key
        return keyword_scope(True, {}, sender, self._normalize, self.senders)

    def same(self, stored: str, key: str) -> bool:
        """Whether the opt-out scope ``stored`` (as the store keeps it) names the sender whose key
        (:meth:`key`) is ``key``: the same key, or for a number the same number, the stored digits
        read as :meth:`key` reads a sender. An opt-out stored under another form of the sender's
        number, before numbers were read with the region (``08020000000`` was kept as written),
        or while the tenant configured the sender in another form (``2348020000000`` kept,
        ``08020000000`` configured since), still names it."""
        if stored == key:
            return True
        if not (key.isdigit() and stored.isdigit()):  # sender IDs and '*' are compared as keys
            return False
        now = self._stored.get(stored)
        if now is None:
            now = self.key(stored)
            if len(self._stored) < 1024:
                self._stored[stored] = now
        return now == key

    def holds(self, scopes: Collection[str], key: str | None) -> bool:
        """Whether a number opted out of ``scopes`` (as stored) must not get a message whose
        sender's scope key is ``key`` (``None``: no sender): opted out of every sender, or of that
        sender in any form (:meth:`same`). :func:`~smsgate.models.optout_applies` with the
        tenant's reading of numbers: the one rule of every opt-out check of a tenant."""
        if optout_applies(scopes, key):
            return True
        return key is not None and key.isdigit() and any(self.same(s, key) for s in scopes)
