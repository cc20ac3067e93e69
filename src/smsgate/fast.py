"""``fast_async_client()``: the aiohttp-backed client for bulk async sending.

A shortcut for :class:`smsgate.aio.AiohttpClient` that says how to install the
``fast`` extra when aiohttp is missing. :class:`~smsgate.AsyncGateway` already
makes one by default when aiohttp is installed; make your own to choose the
connection limit or to share one client between gateways::

    from smsgate import AsyncGateway
    from smsgate.fast import fast_async_client

    async with fast_async_client(limit=512) as client:
        gw = AsyncGateway("smsgate.toml", http_client=client)  # not closed by the gateway
        results = await gw.tenant("acme").send_many(numbers, "Sale ends tonight", concurrency=512)
        await gw.aclose()
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from smsgate.errors import ConfigError

if TYPE_CHECKING:
    from smsgate.aio import AiohttpClient

__all__ = ["fast_async_client"]


def fast_async_client(*, limit: int = 256, timeout: float | None = 30.0, **kwargs: Any) -> AiohttpClient:
    """A new :class:`smsgate.aio.AiohttpClient` (see there for ``limit``, ``timeout`` and the rest).

    Raises :class:`~smsgate.errors.ConfigError` naming ``pip install 'smsgate[fast]'``
    when aiohttp is not installed.
    """
    try:
        from smsgate.aio import AiohttpClient
    except ImportError as exc:  # smsgate.aio says what is missing and how to install it
        raise ConfigError(f"fast_async_client(): {exc}") from exc
    return AiohttpClient(limit=limit, timeout=timeout, **kwargs)
