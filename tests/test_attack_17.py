"""Attack round 17: inbound keywords, the webhook server over HTTP, templates and text, limits."""

from __future__ import annotations

import pytest

from smsgate import text as textmod
from smsgate.errors import TemplateError


@pytest.mark.parametrize("body", ["Привет {имя} :-}", "Bonjour {prénom}, -50% {", "{名前}さん }"])
def test_a_malformed_template_with_a_non_ascii_placeholder_is_not_sent_as_written(body: str) -> None:
    # the name is a placeholder to the template parser (str.isidentifier): the stray brace must be
    # reported, never the text sent to everyone with "{имя}" in it
    assert textmod.has_placeholders(body) is True
    with pytest.raises(TemplateError, match="unmatched"):
        textmod.render_template(body, {})
