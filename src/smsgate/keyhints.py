"""Hints for a key a settings model does not know: the setting it was likely meant to be.

One rule for smsgate.toml (:mod:`smsgate.config`) and a provider plugin's ``options``
(:mod:`smsgate.provider`): ``rate_limt`` -> ``did you mean ...rate_limit?``; a setting of a
table one level down (``help_reply`` -> ``inbound.help_reply``).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any, get_args, get_origin

from pydantic import BaseModel

__all__ = ["model_at", "models_of", "unknown_key_hint"]


def models_of(annotation: Any) -> list[tuple[str, type[BaseModel]]]:
    """The models an annotation holds, each with how it is reached: ``""`` directly (or in a
    union), ``"key"`` as the values of a table, ``"index"`` as the items of a list."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [("", annotation)]
    origin, args = get_origin(annotation), get_args(annotation)
    if origin in (dict, Mapping) and len(args) == 2:
        return [("key", m) for how, m in models_of(args[1]) if not how]
    if origin in (list, tuple) and args:
        return [("index", m) for how, m in models_of(args[0]) if not how]
    return [(how, m) for arg in args for how, m in models_of(arg) if not how]


def model_at(model: type[BaseModel], loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The model whose fields ``loc`` (a pydantic error's location, without its last key) reaches."""
    at, rest = model, list(loc)
    while rest:
        field = at.model_fields.get(str(rest.pop(0)))
        found = models_of(field.annotation) if field is not None else []
        if len(found) != 1:
            return None
        how, at = found[0]
        if how:
            if not rest:
                return None
            rest.pop(0)
    return at


#: A setting misplaced a level too high, and the setting of that level it may have meant:
#: ``[tenants.acme] rate_limit = 5`` is an instance's; the tenant's own limits are ``limits``.
_ALSO = {"rate_limit": "limits = [{ rate = N }] for everything the tenant sends"}


def unknown_key_hint(model: type[BaseModel], loc: tuple[int | str, ...], root: str = "") -> str:
    """For a key ``model`` does not know at ``loc``: the close field name it was meant to be, or
    the nested table whose setting it is (``help_reply`` is ``inbound.help_reply``); else ``""``.
    ``root`` goes before the key names (``"options."``: a plugin's options model)."""
    at = model_at(model, loc[:-1]) if loc else None
    if at is None:
        return ""
    key, prefix = str(loc[-1]), root + "".join(f"{p}." for p in loc[:-1])
    for name, field in at.model_fields.items():  # a setting of a table under this one
        for how, sub in models_of(field.annotation):
            if not how and key in sub.model_fields:
                return f"; did you mean {prefix}{name}.{key}?"
    for name, field in at.model_fields.items():  # a setting of each table of a table under this one
        for how, sub in models_of(field.annotation):
            if how == "key" and key in sub.model_fields:
                also = _ALSO.get(key, "") if _ALSO.get(key, "").split(" ")[0] in at.model_fields else ""
                return (f"; it is a setting of each {prefix}{name}.<name> table: did you mean "
                        f"{prefix}{name}.<name>.{key}?" + (f" (or {prefix}{also})" if also else ""))
    above = _table_above(model, loc[:-1])  # a setting of the table above (a tenant's, under a provider)
    if above is not None and key in above[1].model_fields:
        where = root + ".".join(str(p) for p in above[0])
        return f"; it is a setting of {where or 'the top level'}: did you mean {where + '.' if where else ''}{key}?"
    close = closest(key, at.model_fields)
    return f"; did you mean {prefix}{close}?" if close else ""


def _table_above(model: type[BaseModel], loc: tuple[int | str, ...]) -> tuple[tuple[int | str, ...], type[BaseModel]] | None:
    """The settings table ``loc``'s table sits in (``tenants.acme`` for ``tenants.acme.providers.squad``
    or ``tenants.acme.inbound``), with its location; ``None`` at the top."""
    for n in range(len(loc) - 1, -1, -1):
        found = model_at(model, loc[:n])
        if found is not None:
            return loc[:n], found
    return None


def closest(key: str, names: Iterable[str]) -> str | None:
    """The one of ``names`` that ``key`` looks like a misspelling of (``api_verison``,
    ``secret_kye``), or ``None``: the one rule of every "did you mean" hint."""
    close = difflib.get_close_matches(key, list(names), n=1, cutoff=0.75)
    return close[0] if close else None
