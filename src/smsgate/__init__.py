"""smsgate: one API for SMS across many providers.

Start with :class:`Gateway` (or :class:`AsyncGateway`) and a tenant handle::

    from smsgate import Gateway

    with Gateway("smsgate.toml") as gw:
        gw.tenant("acme").send("08012345678", "Hello from smsgate")
"""

from __future__ import annotations

from smsgate.errors import (
    AnswerNotLogged,
    AuthFailed,
    ConfigError,
    GatewayClosed,
    GatewayForked,
    InvalidPhoneNumber,
    NoCapableProvider,
    NoRoute,
    NotFound,
    OptedOut,
    ProviderError,
    RateLimited,
    SmsgateError,
    StoreError,
    UnknownOutcome,
    UnknownProvider,
    UnknownTenant,
    Unsupported,
    ValidationError,
    WouldBlock,
    WrongEventLoop,
)
from smsgate.gateway import AsyncGateway, AsyncTenant, Gateway, MessageSpec, Tenant
from smsgate.hookspecs import hookimpl
from smsgate.models import (
    Attachment,
    Campaign,
    CampaignStatus,
    Contact,
    ContactList,
    DeliveryReport,
    InboundMessage,
    Location,
    MessageRecord,
    OptOut,
    OutboundMessage,
    ProviderCheck,
    SendResult,
    Stats,
    Status,
    SyncSummary,
    Template,
    WebhookEvents,
)
from smsgate.provider import Capabilities, Operation, Provider, ProviderSettings
from smsgate.routing import CandidateExplanation, RouteExplanation
from smsgate.traffic.gate import LimitWaitExceeded

__version__ = "0.1.0"

__all__ = [
    "AnswerNotLogged",
    "AsyncGateway",
    "AsyncTenant",
    "Attachment",
    "AuthFailed",
    "Campaign",
    "CampaignStatus",
    "CandidateExplanation",
    "Capabilities",
    "ConfigError",
    "Contact",
    "ContactList",
    "DeliveryReport",
    "Gateway",
    "GatewayClosed",
    "GatewayForked",
    "InboundMessage",
    "InvalidPhoneNumber",
    "LimitWaitExceeded",
    "Location",
    "MessageRecord",
    "MessageSpec",
    "NoCapableProvider",
    "NoRoute",
    "NotFound",
    "Operation",
    "OptOut",
    "OptedOut",
    "OutboundMessage",
    "Provider",
    "ProviderCheck",
    "ProviderError",
    "ProviderSettings",
    "RateLimited",
    "RouteExplanation",
    "SendResult",
    "SmsgateError",
    "Stats",
    "Status",
    "StoreError",
    "SyncSummary",
    "Template",
    "Tenant",
    "UnknownOutcome",
    "UnknownProvider",
    "UnknownTenant",
    "Unsupported",
    "ValidationError",
    "WebhookEvents",
    "WouldBlock",
    "WrongEventLoop",
    "__version__",
    "hookimpl",
]
