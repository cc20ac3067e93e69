"""``options`` of a WAABOT broadcast provider instance (``[tenants.<t>.providers.<i>.options]``).

Unknown keys are errors; the names and their validation messages are part of the
configuration users write, so they do not change.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["API_PREFIX", "MAX_BATCH", "BroadcastOptions"]

#: Path prefix of every documented route (``https://api.waabot.com/api/v1``).
API_PREFIX = "/api/v1"

#: Numbers per broadcast call. Not documented by WAABOT: [INF] a conservative 1,000.
MAX_BATCH = 1000


class BroadcastOptions(BaseModel):
    """Plugin options (``[tenants.<t>.providers.<i>.options]``)."""

    model_config = ConfigDict(extra="forbid")

    #: Route prefix added to ``base_url`` unless ``base_url`` already ends with it.
    api_prefix: str = API_PREFIX
    #: Where the bot credentials go: the JSON/form body (the docs' way, the default), the query
    #: string, or both (the SDK's way). A query string shows in proxies' and servers' logs.
    credentials_in: Literal["both", "body", "query"] = "body"
    #: Numbers per broadcast call (at most :data:`MAX_BATCH`).
    max_batch: int = Field(default=MAX_BATCH, ge=1, le=MAX_BATCH)
