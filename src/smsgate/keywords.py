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
from collections.abc import Callable, Iterable, Mapping

from smsgate.errors import SmsgateError
from smsgate.models import EVERY_SENDER, is_numeric_sender, optout_scope, sender_text

__all__ = ["Keyword", "KeywordMatcher", "keyword_scope", "normalize_keyword"]

#: Longest text worth normalising: a keyword reply is short.
_MAX_TEXT = 160


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

    def match(self, text: str) -> Keyword | None:
        """The keyword ``text`` is, or ``None``."""
        if len(text) > _MAX_TEXT:
            return None
        return self._words.get(normalize_keyword(text))


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
