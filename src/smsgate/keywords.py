"""The inbound keyword matcher: is a reply exactly STOP, START or HELP?

Pure functions, no I/O. A message matches a keyword when, after Unicode
normalisation (NFKC), case folding and dropping everything that is not a letter
or a digit, it equals the keyword normalised the same way: ``"Stop."``,
``" S T O P "`` and ``"stop!!"`` all match ``STOP``; ``"stop texting me"`` does
not (carriers expect the keyword alone). See :class:`smsgate.config.InboundConfig`.
"""

from __future__ import annotations

import enum
import unicodedata
from collections.abc import Iterable

__all__ = ["Keyword", "KeywordMatcher", "normalize_keyword"]

#: Longest text worth normalising: a keyword reply is short.
_MAX_TEXT = 160


class Keyword(str, enum.Enum):
    """What an inbound keyword asks for."""

    STOP = "stop"
    START = "start"
    HELP = "help"


def normalize_keyword(text: str) -> str:
    """``text`` without case, spaces, punctuation or symbols (NFKC, case-folded)."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return "".join(ch for ch in folded if ch.isalnum())


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
