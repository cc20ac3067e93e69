"""Downloads a provider makes on a user's behalf (media attachments given by URL): the policy.

The same policy guards every request to a URL that is not the vendor's configured one (a
pre-signed upload URL a vendor's answer names, :func:`vendor_named`): a URL from a message or
from a vendor's answer must not make the process reach an internal address (SSRF).

A provider operation never does I/O; it yields a request marked with a
:class:`DownloadPolicy` (:func:`download_request`) and the drivers of
:mod:`smsgate.transport` apply the policy while they fetch it:

* the scheme is ``http`` or ``https``;
* the host name is resolved once and **every** address it has is checked: an address that
  is not globally routable (private, loopback, link-local, shared, reserved, multicast,
  unspecified; or an IPv6 address carrying such an IPv4 one: mapped, 6to4, Teredo, NAT64's
  ``64:ff9b::/96``; a local-use NAT64 or IPv4-compatible one) is refused unless the policy
  allows private hosts (emulators, tests). The
  connection then goes to the checked address (the name stays in ``Host`` and in TLS), so
  a second lookup cannot lead it elsewhere;
* redirects are not followed (a ``3xx`` is refused like an error answer);
* the ``Content-Type`` must match one of the policy's media types;
* the body is streamed and the download stops as soon as it passes ``max_bytes``
  (a ``Content-Length`` over the cap stops it before the body is read).

A refusal is a :class:`~smsgate.errors.DownloadRefused` (``DownloadTooLarge`` for the size)
naming the URL without user name, password or query string (which may carry a token).
The checks here are pure; the drivers do the resolving and streaming with httpx.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from smsgate.errors import DownloadRefused, DownloadTooLarge

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MEDIA_TYPES",
    "DOWNLOAD",
    "SIGNED_UPLOAD",
    "DownloadPolicy",
    "addresses_of",
    "check_address",
    "check_response",
    "check_url",
    "completed",
    "download_request",
    "literal_address",
    "pinned",
    "resolve",
    "same_origin",
    "shown_url",
    "unresolvable",
    "vendor_named",
]

#: Request extension key holding the :class:`DownloadPolicy` of a download.
DOWNLOAD = "smsgate.download"

#: 16 MiB: the largest media WhatsApp takes for audio and video.
DEFAULT_MAX_BYTES = 16 * 1024 * 1024

#: Media types a download may have by default (``type/*`` matches every subtype).
DEFAULT_MEDIA_TYPES: tuple[str, ...] = (
    "image/*", "audio/*", "video/*", "application/pdf", "application/octet-stream", "application/zip",
    "application/msword", "application/vnd.*", "text/plain", "text/csv", "text/vcard", "text/x-vcard",
)

_SCHEMES = ("http", "https")


@dataclass(frozen=True)
class DownloadPolicy:
    """What a download may be (see the module doc).

    ``allow_private``: also download from hosts with non-public addresses (loopback,
    private, link-local...): for emulators and tests only, since anyone who can put a URL
    in a message could otherwise make the process fetch an internal address.
    ``media_types``: ``type/*`` matches every subtype, ``*`` any type.
    """

    max_bytes: int = DEFAULT_MAX_BYTES
    allow_private: bool = False
    media_types: tuple[str, ...] = DEFAULT_MEDIA_TYPES

    def __post_init__(self) -> None:
        if self.max_bytes < 1:
            raise ValueError(f"max_bytes must be at least 1, not {self.max_bytes}")


#: The policy of a request to a pre-signed upload URL a vendor's answer names (:func:`vendor_named`):
#: public hosts only, any (small) answer of a success.
SIGNED_UPLOAD = DownloadPolicy(max_bytes=1024 * 1024, media_types=("*",))


def shown_url(url: str | httpx.URL) -> str:
    """``url`` as an error may show it: scheme, host, port and path (no user name, password,
    query string or fragment, any of which may carry a credential)."""
    try:
        parsed = httpx.URL(str(url))
    except (httpx.InvalidURL, TypeError):
        return "<an invalid URL>"
    port = f":{parsed.port}" if parsed.port is not None else ""
    host = f"[{parsed.host}]" if ":" in parsed.host else parsed.host
    path = parsed.raw_path.split(b"?", 1)[0].decode("ascii")  # as given (percent-encoded), no query
    return f"{parsed.scheme}://{host}{port}{path}"


def check_url(url: str) -> httpx.URL:
    """``url`` parsed; :class:`DownloadRefused` unless it is an ``http(s)`` URL with a host."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        raise DownloadRefused("not a valid URL", url="<an invalid URL>") from None
    if parsed.scheme not in _SCHEMES or not parsed.host:
        raise DownloadRefused(f"only http and https URLs with a host are downloaded, not {parsed.scheme or 'this'!r}",
                              url=shown_url(parsed))
    return parsed


def download_request(url: str, policy: DownloadPolicy, *, timeout: float | None = None) -> httpx.Request:
    """A ``GET`` of ``url`` marked with ``policy`` (checked by :func:`check_url` first): the
    request a provider operation yields to download something. No credentials are added."""
    parsed = check_url(url)
    extensions: dict[str, object] = {DOWNLOAD: policy}
    if timeout is not None:
        extensions["timeout"] = httpx.Timeout(timeout).as_dict()
    return httpx.Request("GET", parsed, extensions=extensions)


def same_origin(url: str | httpx.URL, base_url: str | httpx.URL | None) -> bool:
    """Whether ``url`` has ``base_url``'s scheme, host and port (the vendor's configured origin)."""
    if base_url is None:
        return False
    a, b = httpx.URL(str(url)), httpx.URL(str(base_url))
    defaults = {"http": 80, "https": 443}
    return (a.scheme == b.scheme and a.host == b.host
            and (a.port or defaults.get(a.scheme)) == (b.port or defaults.get(b.scheme)))


def vendor_named(request: httpx.Request, base_url: str | None,
                 policy: DownloadPolicy = SIGNED_UPLOAD) -> httpx.Request:
    """``request`` to a URL a vendor's answer named (a pre-signed upload URL), marked with
    ``policy`` unless it is on the vendor's configured origin ``base_url`` (a host the process
    already talks to): the drivers then check its host's addresses, send it to the checked
    address and refuse a redirect or an error answer as they do a download's
    (:class:`DownloadRefused`), and it is not charged to the vendor's limits. The caller adds no
    credentials to it. :class:`DownloadRefused` at once unless it is an ``http(s)`` URL."""
    check_url(str(request.url))
    if not same_origin(request.url, base_url):
        request.extensions[DOWNLOAD] = policy
    return request


#: NAT64's well-known prefix (RFC 6052): a gateway forwards ``64:ff9b::a.b.c.d`` to the IPv4 ``a.b.c.d``.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
#: Never a public host's: NAT64 prefixes for local use (RFC 8215; the IPv4 address may sit at any of
#: several places in them) and the deprecated IPv4-compatible addresses (``::a.b.c.d``).
_NOT_PUBLIC_V6 = (ipaddress.IPv6Network("64:ff9b:1::/48"), ipaddress.IPv6Network("::/96"))


def _is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address):
        if any(address in net for net in _NOT_PUBLIC_V6):
            return False
        embedded = address.ipv4_mapped or address.sixtofour or (address.teredo or (None, None))[1]
        if embedded is None and address in _NAT64:  # on an IPv6-only network: the IPv4 host it reaches
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None and not _is_public(embedded):
            return False
    return address.is_global and not address.is_multicast


def check_address(url: httpx.URL, addresses: Iterable[str], policy: DownloadPolicy) -> str:
    """The address to connect to for ``url``: the first of ``addresses`` (all its host's,
    from one lookup). :class:`DownloadRefused` if there is none, or if any is not public
    and the policy does not allow private hosts."""
    found = [ipaddress.ip_address(a.split("%", 1)[0]) for a in addresses]
    if not found:
        raise DownloadRefused(f"the host {url.host!r} has no address", url=shown_url(url))
    if not policy.allow_private:
        blocked = sorted({str(a) for a in found if not _is_public(a)})
        if blocked:
            raise DownloadRefused(
                f"the host {url.host!r} has the address {', '.join(blocked)}, which is not public (private, "
                "loopback, link-local or reserved); downloads from such hosts are refused unless explicitly "
                "allowed (for emulators and tests)", url=shown_url(url))
    return str(found[0])


def literal_address(url: httpx.URL) -> list[str] | None:
    """``[address]`` if ``url``'s host is an IP address, else ``None`` (a name to look up)."""
    try:
        return [str(ipaddress.ip_address(url.host))]
    except ValueError:
        return None


def resolve(url: httpx.URL) -> list[str]:
    """Every address of ``url``'s host, from one lookup (blocking: the sync driver's; the
    async driver asks its event loop)."""
    literal = literal_address(url)
    if literal is not None:
        return literal
    try:
        infos = socket.getaddrinfo(url.host, url.port or (443 if url.scheme == "https" else 80),
                                   type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise unresolvable(url, exc) from None
    return addresses_of(infos)


def unresolvable(url: httpx.URL, exc: BaseException) -> DownloadRefused:
    """The refusal of a host name that cannot be looked up."""
    return DownloadRefused(f"the host {url.host!r} cannot be resolved ({exc})", url=shown_url(url))


def addresses_of(infos: Iterable[tuple[Any, Any, Any, Any, tuple[Any, ...]]]) -> list[str]:
    """The addresses in :func:`socket.getaddrinfo`'s answer, in its order, each once."""
    return _unique(str(info[4][0]) for info in infos)


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def pinned(request: httpx.Request, address: str) -> httpx.Request:
    """``request`` sent to ``address`` rather than to its host name (looked up again by the
    client): the ``Host`` header and the TLS server name (httpx's ``sni_hostname`` extension,
    also the name the certificate is verified against) stay the host's."""
    url = request.url
    extensions = dict(request.extensions)
    if url.scheme == "https":
        extensions["sni_hostname"] = url.host
    headers = httpx.Headers(request.headers)
    headers.setdefault("Host", url.netloc.decode("ascii"))
    return httpx.Request(request.method, url.copy_with(host=address), headers=headers, stream=request.stream,
                         extensions=extensions)


def _media_type(value: str) -> str:
    return value.split(";", 1)[0].strip().lower()


def _type_allowed(media_type: str, allowed: Sequence[str]) -> bool:
    for pattern in allowed:
        pattern = pattern.strip().lower()
        if (pattern.endswith("*") and media_type.startswith(pattern[:-1])) or media_type == pattern:
            return True
    return False


def check_response(response: httpx.Response, policy: DownloadPolicy, *, received: int | None = None) -> None:
    """:class:`DownloadRefused` unless ``response`` is a ``2xx`` whose ``Content-Type`` (if
    any) the policy allows and whose ``Content-Length`` (or ``received`` bytes, when given)
    is within ``max_bytes`` (:class:`DownloadTooLarge`). Run on the headers before the body
    is read, and on the size while it is."""
    url = shown_url(response.request.url) if _has_request(response) else "<the URL>"
    if not 200 <= response.status_code < 300:
        kind = "a redirect, not followed" if 300 <= response.status_code < 400 else "not a success"
        raise DownloadRefused(f"answered HTTP {response.status_code} ({kind})", url=url,
                              status_code=response.status_code)
    ctype = _media_type(response.headers.get("content-type", ""))
    if ctype and not _type_allowed(ctype, policy.media_types):
        raise DownloadRefused(f"its content type {ctype!r} is not a media type allowed "
                              f"({', '.join(policy.media_types)})", url=url)
    size = received
    if size is None:
        length = response.headers.get("content-length", "")
        size = int(length) if length.isdigit() else None
    if size is not None and size > policy.max_bytes:
        raise DownloadTooLarge(url=url, limit=policy.max_bytes)


def _has_request(response: httpx.Response) -> bool:
    try:
        response.request  # noqa: B018 - raises RuntimeError when unset
    except RuntimeError:
        return False
    return True


def completed(response: httpx.Response, body: bytes) -> httpx.Response:
    """A response with ``body`` (the streamed, decoded content) in place of ``response``'s stream."""
    headers = [(k, v) for k, v in response.headers.multi_items()
               if k.lower() not in ("content-encoding", "content-length", "transfer-encoding")]
    return httpx.Response(response.status_code, headers=headers, content=body, request=response.request,
                          extensions={k: v for k, v in response.extensions.items() if k == "http_version"})
