"""Which URLs a webhook may target: server-side request forgery is refused when the endpoint is made, and again
before every delivery, since a name can be made to resolve elsewhere after it was checked (DNS rebinding).

https only; http for localhost only when ``webhook_allow_http_localhost`` is set. Every address the host
resolves to must be public, unless it lies in one of ``webhook_allowed_networks`` (an operator's allow-list, e.g.
a private receiver, or 127.0.0.0/8 in development and tests). Localhost targets allowed over http may be loopback.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from chronogram.settings import Settings

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_URL_CHARS = 2048
_LOCALHOST_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
_RESOLVE_TIMEOUT_SECONDS = 5.0


class UrlRefused(Exception):
    """The URL may not be a webhook target; ``code`` is machine-readable, the message says why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class UrlPolicy:
    allow_http_localhost: bool
    allowed_networks: tuple[IPNetwork, ...]

    @classmethod
    def from_settings(cls, settings: Settings) -> UrlPolicy:
        return cls(
            allow_http_localhost=settings.webhook_allow_http_localhost,
            allowed_networks=tuple(
                ipaddress.ip_network(net, strict=False) for net in settings.webhook_allowed_networks
            ),
        )

    def check_form(self, url: str) -> SplitResult:
        """The URL's own form: scheme, host, no credentials. Raises UrlRefused."""
        if len(url) > MAX_URL_CHARS:
            raise UrlRefused(
                "webhook_url_invalid", f"a webhook URL may be at most {MAX_URL_CHARS} characters"
            )
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as error:
            raise UrlRefused("webhook_url_invalid", f"not a valid URL: {error}") from None
        host = parts.hostname
        if parts.scheme not in ("https", "http") or not host:
            raise UrlRefused("webhook_url_invalid", "a webhook URL is an absolute https:// URL with a host")
        if parts.username is not None or parts.password is not None:
            raise UrlRefused(
                "webhook_url_invalid", "a webhook URL may not carry credentials (user:password@)"
            )
        if port == 0:
            raise UrlRefused("webhook_url_invalid", "port 0 is not a port to send to")
        if parts.scheme == "http" and not (self.allow_http_localhost and _is_localhost(host)):
            raise UrlRefused(
                "webhook_url_not_https",
                "webhook URLs must use https"
                + (" (http is accepted for localhost only)" if self.allow_http_localhost else ""),
            )
        return parts

    async def check(self, url: str) -> None:
        """The form, then every address the host resolves to now. Raises UrlRefused."""
        parts = self.check_form(url)
        host = parts.hostname
        assert host is not None
        for address in await _resolve(host, parts.port or (443 if parts.scheme == "https" else 80)):
            if address.is_global and not address.is_multicast:
                continue
            if any(address in network for network in self.allowed_networks):
                continue
            if self.allow_http_localhost and _is_localhost(host) and address.is_loopback:
                continue
            raise UrlRefused(
                "webhook_url_forbidden",
                f"{host} resolves to {address}, a private, loopback or link-local address: webhooks are only "
                "sent to public addresses",
            )


def _is_localhost(host: str) -> bool:
    return host.lower() in _LOCALHOST_NAMES or host.lower().endswith(".localhost")


async def _resolve(host: str, port: int) -> list[IPAddress]:
    try:
        infos = await asyncio.wait_for(
            asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM),
            timeout=_RESOLVE_TIMEOUT_SECONDS,
        )
    except (OSError, TimeoutError, UnicodeError):
        raise UrlRefused("webhook_url_unresolvable", f"the host {host} could not be resolved") from None
    addresses: list[IPAddress] = []
    for info in infos:
        raw = str(info[4][0]).split("%", 1)[0]  # an IPv6 zone id is not part of the address
        address = ipaddress.ip_address(raw)
        # ::ffff:10.0.0.1 reaches 10.0.0.1: judged as the IPv4 address it maps.
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        addresses.append(address)
    if not addresses:
        raise UrlRefused("webhook_url_unresolvable", f"the host {host} could not be resolved")
    return addresses
