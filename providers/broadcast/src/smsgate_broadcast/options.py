"""``options`` of a WAABOT broadcast provider instance (``[tenants.<t>.providers.<i>.options]``).

Unknown keys are errors; the names and their validation messages are part of the
configuration users write, so they do not change.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from smsgate.downloads import DEFAULT_MAX_BYTES, DEFAULT_MEDIA_TYPES, DownloadPolicy

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
    #: Largest attachment downloaded from a URL, in bytes (16 MiB: WhatsApp's cap for audio
    #: and video); a larger one is refused (``DownloadTooLarge``), its download stopped there.
    attachment_max_bytes: int = Field(default=DEFAULT_MAX_BYTES, ge=1)
    #: Media types an attachment downloaded from a URL may have (``image/*`` matches every image).
    attachment_types: list[str] = Field(default_factory=lambda: list(DEFAULT_MEDIA_TYPES), min_length=1)
    #: Download attachments from hosts with non-public addresses (loopback, private, link-local):
    #: for emulators and tests only. Off, such a URL is refused (``DownloadRefused``): anyone who
    #: can put a URL in a message could otherwise make your process fetch an internal address.
    attachment_private_hosts: bool = False

    def download_policy(self) -> DownloadPolicy:
        """The policy of attachment downloads (:mod:`smsgate.downloads`)."""
        return DownloadPolicy(max_bytes=self.attachment_max_bytes, allow_private=self.attachment_private_hosts,
                              media_types=tuple(self.attachment_types))
