"""A griffe extension for the docs site: the reST roles in smsgate's docstrings as inline code.

The docstrings are plain prose with Sphinx-style roles (``:class:`Gateway```,
``:meth:`~smsgate.store.base.Store.list_messages```, ``double backticks``); mkdocstrings renders
Markdown, where those would show as written. Each becomes inline code: the name as written, or
its last part when written with ``~``.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?(?:class|meth|func|mod|data|attr|exc|obj|const|ref):`(~?)([^`]+)`")
DOUBLE = re.compile(r"``([^`]+)``")


def markdown(text: str) -> str:
    """``text`` with reST roles and double-backtick literals as Markdown inline code."""
    text = ROLE.sub(lambda m: f"`{m.group(2).rsplit('.', 1)[-1] if m.group(1) else m.group(2)}`", text)
    return DOUBLE.sub(r"`\1`", text)


class RstRoles(griffe.Extension):
    """Rewrites each docstring once, when its object is loaded."""

    def on_instance(self, *, node: Any, obj: griffe.Object, agent: Any, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = markdown(obj.docstring.value)
