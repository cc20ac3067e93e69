"""The inbound keyword matcher (pure): property tests."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smsgate.config import DEFAULT_HELP_WORDS, DEFAULT_START_WORDS, DEFAULT_STOP_WORDS, InboundConfig
from smsgate.keywords import Keyword, KeywordMatcher, normalize_keyword

MATCHER = KeywordMatcher(DEFAULT_STOP_WORDS, DEFAULT_START_WORDS, DEFAULT_HELP_WORDS)
ALL = [(w, Keyword.STOP) for w in DEFAULT_STOP_WORDS] + [(w, Keyword.START) for w in DEFAULT_START_WORDS] + [
    (w, Keyword.HELP) for w in DEFAULT_HELP_WORDS]
noise = st.text(alphabet=" \t\n.,!?-_'\"*()[]", max_size=5)


@given(pair=st.sampled_from(ALL), data=st.data(), before=noise, after=noise)
def test_keyword_matches_whatever_its_case_spacing_and_punctuation(pair: tuple[str, Keyword], data: st.DataObject,
                                                                   before: str, after: str) -> None:
    word, kind = pair
    cased = "".join(c.upper() if data.draw(st.booleans()) else c.lower() for c in word)
    seps = [data.draw(st.sampled_from(["", "", " ", ".", "-"])) for _ in cased]
    spaced = "".join(c + s for c, s in zip(cased, seps, strict=True))
    assert MATCHER.match(before + spaced + after) is kind


@given(pair=st.sampled_from(ALL), extra=st.text(alphabet=string.ascii_letters + string.digits, min_size=1, max_size=8))
def test_a_keyword_inside_a_longer_message_is_not_a_keyword(pair: tuple[str, Keyword], extra: str) -> None:
    word, _ = pair
    text = f"{word} {extra}"
    if normalize_keyword(text) not in {normalize_keyword(w) for w, _ in ALL}:
        assert MATCHER.match(text) is None


@given(text=st.text(max_size=300))
def test_matcher_never_raises_and_answers_only_known_keywords(text: str) -> None:
    got = MATCHER.match(text)
    assert got is None or normalize_keyword(text) in {normalize_keyword(w) for w, k in ALL if k is got}


def test_examples_and_local_words() -> None:
    assert MATCHER.match("Stop") is Keyword.STOP
    assert MATCHER.match("  s t o p !!") is Keyword.STOP
    assert MATCHER.match("\uff33\uff34\uff2f\uff30") is Keyword.STOP  # full-width STOP (NFKC)
    assert MATCHER.match("opt-out") is Keyword.STOP
    assert MATCHER.match("stop sending me these") is None
    assert MATCHER.match("Yes!") is Keyword.START
    assert MATCHER.match("info?") is Keyword.HELP
    assert MATCHER.match("") is None and MATCHER.match("...") is None
    local = KeywordMatcher([*DEFAULT_STOP_WORDS, "ARRÊT", "PARAR"], DEFAULT_START_WORDS, DEFAULT_HELP_WORDS)
    assert local.match("arrêt") is Keyword.STOP and local.match("Parar.") is Keyword.STOP
    assert MATCHER.match("arrêt") is None


def test_config_refuses_a_word_in_two_lists_and_empty_words() -> None:
    with pytest.raises(ValueError, match="both stop_words and help_words"):
        InboundConfig(help_words=["HELP", "stop!"])
    with pytest.raises(ValueError, match="no letters or digits"):
        InboundConfig(stop_words=["STOP", "!!"])
    with pytest.raises(ValueError, match="placeholders"):
        InboundConfig(help_reply="Hi {name}, reply STOP")


@pytest.mark.parametrize(("configured", "replied"), [
    ("ARRET", "Arrêt"),        # the spelling of the docs' example, replied with its accent
    ("ARRÊT", "ARRET"),        # configured with it, replied from a phone that drops accents (GSM-7 has no Ê)
    ("DESABONNER", "désabonner !"),
    ("PARAR", "PÁRAR"),
    ("ARRÊT", "arre\u0302t"),  # a decomposed accent: the same word
])
def test_accents_never_hide_a_stop_word(configured: str, replied: str) -> None:
    """French and Portuguese speakers reply with accents or without, as their phone sends them:
    a STOP missed that way is a message sent to someone who asked for none."""
    local = KeywordMatcher([*DEFAULT_STOP_WORDS, configured], DEFAULT_START_WORDS, DEFAULT_HELP_WORDS)
    assert local.match(replied) is Keyword.STOP


def test_accents_match_only_their_word() -> None:
    local = KeywordMatcher([*DEFAULT_STOP_WORDS, "ARRÊT"], DEFAULT_START_WORDS, DEFAULT_HELP_WORDS)
    assert local.match("arrêter de m'écrire") is None and local.match("Arrêté") is None
