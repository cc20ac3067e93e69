"""Colony inbound messages (collate replies) arriving at the webhook app.

Colony documents the collate inbound-message model (``/collate/campaigns/message/``:
``originator, campaign, text, network, provider, backend, backend_id, blacklisted,
fraud_suspect, latitude, longitude, session_data, ...`` [DOC]) but no webhook:
inbound replies are polled. This reads that model when it is posted to
``/{tenant}/{instance}`` (by a poller, a relay, or an account-manager forward):
one message object, a JSON array of them, or a DRF page ``{"results": [...]}``.
Colony signs nothing, so the ``webhook_token`` credential is required
(:meth:`~smsgate.provider.Provider.check_webhook_token`).

The vendor event id is ``id`` (DRF's primary key [INF]), else ``backend_id``,
else a digest of originator, campaign, text and date: the same reply posted twice
is stored once. An item with none of ``id``, ``backend_id`` or a date is refused:
a repeat could not be told from a new reply (a second STOP after a START).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from smsgate import phone as phonelib
from smsgate.errors import InvalidPhoneNumber, ValidationError
from smsgate.models import InboundMessage, WebhookEvents, utcnow

__all__ = ["inbound_from_collate", "parse_inbound_webhook"]

_DATE_FIELDS = ("date_created", "date_received", "received", "date")


def parse_inbound_webhook(body: bytes, *, instance: str, region: str) -> WebhookEvents:
    """The inbound messages of a posted body (the token is checked by the caller)."""
    where = f"{instance} webhook"
    try:
        try:
            data = json.loads(body)
        except UnicodeDecodeError:
            # a byte that is no UTF-8 (a relay cutting a text at a byte count, mid-character:
            # "STOP \xf0\x9f"): read as U+FFFD, as a lone surrogate is, so the STOP still acts
            # (a 400 is not resent: the whole callback, its opt-out too, would be lost)
            data = json.loads(body.decode("utf-8", "replace"))
    except ValueError:
        raise ValidationError("body is not JSON", field="body", location=where) from None
    if isinstance(data, Mapping) and isinstance(data.get("results"), list):
        data = data["results"]
    items = data if isinstance(data, list) else [data]
    return WebhookEvents(inbound=[inbound_from_collate(item, instance=instance, region=region,
                                                       where=f"{where} item {i}")
                                  for i, item in enumerate(items)])


def inbound_from_collate(item: Any, *, instance: str, region: str, where: str = "collate message") -> InboundMessage:
    """One collate inbound-message object as a neutral :class:`~smsgate.models.InboundMessage`."""
    if not isinstance(item, Mapping):
        raise ValidationError("not an object", field="body", location=where)
    originator = item.get("originator")
    if isinstance(originator, bool) or not isinstance(originator, (str, int)) or not str(originator).strip():
        raise ValidationError("no originator", field="originator", location=where)
    text = item.get("text")
    if text is None:
        text = ""
    if not isinstance(text, str):
        raise ValidationError("text is not a string", field="text", location=where)
    raw_from = str(originator).strip()
    try:
        sender = phonelib.normalize(raw_from, region)
    except InvalidPhoneNumber:
        sender = raw_from  # kept as received; no keyword acts on an unreadable number
    received = _date(item, where)
    vendor_id = _vendor_id(item, raw_from, text, received)
    if vendor_id is None:
        raise ValidationError("no id, backend_id or date: a repeat cannot be told from a new reply",
                              field="id", location=where)
    return InboundMessage(provider=instance, vendor_id=vendor_id, from_number=sender[:64], to=None, text=text,
                          received_at=received or utcnow(), raw=dict(item))


def _date(item: Mapping[str, Any], where: str) -> datetime | None:
    for name in _DATE_FIELDS:
        value = item.get(name)
        if value is None:
            continue
        if not isinstance(value, str):
            raise ValidationError("not a date", field=name, location=where)
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ValidationError("not an ISO-8601 date", field=name, location=where) from None
        return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=timezone.utc)
    return None


def _vendor_id(item: Mapping[str, Any], originator: str, text: str, received: datetime | None) -> str | None:
    for name in ("id", "backend_id"):
        value = item.get(name)
        if value is not None and not isinstance(value, (bool, dict, list)) and str(value).strip():
            return f"{name}:{str(value).strip()[:180]}"
    if received is None:
        return None
    digest = hashlib.sha256(json.dumps([originator, str(item.get("campaign")), text,
                                        received.isoformat()]).encode()).hexdigest()
    return f"sha256:{digest[:40]}"
