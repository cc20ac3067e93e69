"""``smsgate route explain``: how a message would be routed now, and why."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.text import Text

from smsgate.cli._common import (
    CommandGroup,
    ConfigOpt,
    JsonOpt,
    KindOpt,
    TenantOpt,
    checked_kind,
    compact_table,
    console,
    open_tenant,
    typed_number,
)
from smsgate.errors import TemplateError, ValidationError
from smsgate.routing import RouteExplanation

__all__ = ["route_app"]

route_app = CommandGroup(help="Routes: which providers carry a message.", no_args_is_help=True)


@route_app.command("explain")
def route_explain(
    to: Annotated[str, typer.Argument(help="The recipient's number.")],
    kind: KindOpt = None,
    text: Annotated[str | None, typer.Option(
        "--text", help="The text (adds segments and encoding, counted on what would be sent: placeholders "
                       "filled from --var, {{ and }} as one brace).")] = None,
    var: Annotated[list[str] | None, typer.Option(
        "--var", metavar="NAME=VALUE", help="A value for a {NAME} placeholder of --text (repeat it).")] = None,
    key: Annotated[str | None, typer.Option(
        "--key", help="An idempotency key, a message id, or CAMPAIGN_ID:+E164NUMBER for a campaign's "
                      "recipient: applies the route's weights as for that message.")] = None,
    config: ConfigOpt = None,
    tenant: TenantOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Which providers a message to TO would go through, in order, and why each is tried or skipped
    (route rules, capabilities, weights, circuit breakers, full limits). Sends nothing."""
    kind = checked_kind(kind)
    variables = _variables(var or [])
    if variables and text is None:
        raise ValidationError("--var fills the placeholders of --text: give --text too", field="--var")
    gw, t = open_tenant(config, tenant, stores=False)
    with gw, typed_number(to, "to"):
        try:
            found = t.explain_route(to, kind=kind, text=text, key=key, variables=variables)
        except TemplateError as exc:  # named as typed: the option, and the way to fill a placeholder
            raise TemplateError(f"{exc.reason} (--var NAME=VALUE fills a placeholder)", field="--text") from None
    if as_json:
        print(json.dumps(found.as_dict(), default=str))
    else:
        _print(found)
    if found.error is not None:
        raise typer.Exit(1)


def _variables(pairs: list[str]) -> dict[str, str]:
    """``--var NAME=VALUE`` options as a mapping (a malformed one: :class:`ValidationError`)."""
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise ValidationError(f"must be NAME=VALUE, not {pair!r}", field="--var")
        out[name.strip()] = value
    return out


def _print(found: RouteExplanation) -> None:
    head = f"tenant {found.tenant}: {found.to}" + (f", kind {found.kind}" if found.kind else "")
    if found.segments is not None:
        head += f", {found.segments} segment(s) {found.encoding}"
    console.print(head)
    for check in found.checks:
        mark = "matched" if check.matched else "no"
        console.print(f"  routes[{check.index}]: {mark}: {check.reason}")
    if found.rule is None and found.rule_matches:
        console.print(f"  {found.rule_matches}")
    if found.requires:
        console.print(f"  needs: {', '.join(found.requires)}")
    if found.candidates:
        table = compact_table("#", "instance", "plugin", "action", "breaker", "why")
        position = 0
        for cand in found.candidates:
            if cand.action == "try":
                position += 1
            breaker = cand.breaker.state if cand.breaker is not None else "-"
            table.add_row(str(position) if cand.action == "try" else "-", cand.instance, cand.plugin, cand.action,
                          breaker, "; ".join(cand.reasons))
        console.print(table)
    if found.error is not None:
        console.print(Text.assemble(("error:", "red"), " ", found.error), soft_wrap=True)
    else:
        console.print(f"order: {' -> '.join(found.order)}")
