"""The outbound address guard: hashsvc calls out only to public addresses, unless a setting allows a network.

Webhooks and partner feeds make requests to URLs that an admin typed in. Without a guard, such a URL can point
the service at itself (127.0.0.1, [::1]), at the private network it runs in (10.0.0.0/8...), or at the cloud's
instance metadata service (169.254.169.254, which hands out credentials): server-side request forgery. So:

- a URL's host is resolved and *every* address it resolves to must be public (`ipaddress.is_global`) or inside
  one of the allowed networks (a setting, e.g. 10.0.0.0/8 for a partner reached through a private link);
- cloud metadata addresses are refused even when an allowed network holds them;
- the check is made when the URL is configured (a clear error for the admin) AND at every new connection, and
  the connection goes to the very address that was checked: a DNS name that answered a public address at
  configuration time and a private one later (DNS rebinding) is refused at connect time, with no second lookup
  that could answer differently. `Guard.transport()` does this for httpx; webhooks pin their http.client
  connections to `check_url`'s address;
- redirects are never followed by either caller (a redirect could lead anywhere).

Written here rather than taken from a library: the PyPI packages for this (advocate) wrap `requests`, not
httpx, and the check itself is a dozen lines of the standard library's `ipaddress`.

This module sits beside `errors`: both `service` (webhooks) and `exchanges` (feed clients) use it.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
import ssl
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx

from hashsvc.errors import HashsvcError, ValidationError

MAX_URL = 2048
# Addresses cloud providers serve instance credentials from; refused even when a wider allowed network holds them.
METADATA_ADDRESSES = {
    ipaddress.ip_address(a) for a in ("169.254.169.254", "169.254.170.2", "100.100.100.200", "fd00:ec2::254")
}
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class TargetRefused(HashsvcError):
    """An outbound URL's host is (or resolves to) an address the guard refuses, or does not resolve."""

    code = "target_refused"
    http_status = 400


def networks(text: str, setting: str = "webhook_allowed_networks") -> list[IpNetwork]:
    """Parse a setting's comma-separated CIDRs. Raises ValidationError naming the setting."""
    try:
        return [ipaddress.ip_network(part.strip(), strict=False) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise ValidationError(f"setting {setting}: {exc}") from None


def _plain(address: IpAddress) -> IpAddress:
    """::ffff:127.0.0.1 is 127.0.0.1 to the kernel, so it is judged as that."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


@dataclass(frozen=True)
class Guard:
    """The allowed networks and the setting that holds them (named in every refusal, so the fix is obvious)."""

    allowed: tuple[IpNetwork, ...] = ()
    setting: str = "HASHSVC_WEBHOOK_ALLOWED_NETWORKS"

    @classmethod
    def from_setting(cls, text: str, setting: str) -> Guard:
        """`setting` is the environment variable's name, e.g. HASHSVC_EXCHANGE_ALLOWED_NETWORKS."""
        return cls(tuple(networks(text, setting.removeprefix("HASHSVC_").lower())), setting)

    def refusal(self, address: IpAddress, host: str) -> str | None:
        """Why connecting to `address` (which `host` named) is refused, or None if it may be used."""
        plain = _plain(address)
        if plain in METADATA_ADDRESSES:
            return f"{host} is or resolves to a cloud metadata address ({plain}); never allowed"
        if not plain.is_global and not any(plain in net for net in self.allowed):
            where = "is" if host == str(address) else f"resolves to {plain}, which is"
            return f"{host} {where} a non-public address; allow its network in {self.setting} if it is meant"
        return None

    def resolve(self, host: str, port: int) -> list[IpAddress]:
        """Every address `host` resolves to, all checked. Raises TargetRefused if any is refused (a name that
        answers one public and one private address is refused: which one a connection gets is not ours to
        choose) or if it does not resolve."""
        host = host.strip("[]")
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (UnicodeError, ValueError, OSError) as exc:
            raise TargetRefused(f"cannot resolve {host!r}: {exc}") from None
        addresses = list(dict.fromkeys(ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos))
        for address in addresses:
            reason = self.refusal(address, host)
            if reason is not None:
                raise TargetRefused(reason)
        if not addresses:
            raise TargetRefused(f"{host!r} resolves to no address")
        return addresses

    def check_url(self, url: Any, what: str = "url") -> tuple[urllib.parse.SplitResult, IpAddress]:
        """Parse and resolve an http(s) URL; return it and the checked address to connect to.

        Raises ValidationError (not an http(s) URL with a host, or with user:password in it) or TargetRefused."""
        if not isinstance(url, str) or not 1 <= len(url) <= MAX_URL:
            raise ValidationError(f"{what} must be a string of at most {MAX_URL} characters")
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValidationError(f"{what} must be an http:// or https:// URL with a host")
        if parts.username or parts.password:
            raise ValidationError(f"{what} must not carry credentials")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError as exc:
            raise ValidationError(f"{what}: {exc}") from None
        return parts, self.resolve(parts.hostname, port)[0]

    def transport(self, **kwargs: Any) -> httpx.HTTPTransport:
        """An httpx transport whose every new connection is checked and pinned (see GuardedBackend).

        Environment proxies (HTTPS_PROXY...) are not used: through a proxy the guard would check the proxy's
        address, not the partner's."""
        context = _ssl_context()
        transport = httpx.HTTPTransport(verify=context, trust_env=False, **kwargs)
        # httpx has no public way to give its connection pool a network backend; the pool it built is replaced
        # by the same pool with ours (tests/test_netguard.py fails if a new httpx stops reading `_pool`).
        transport._pool = httpcore.ConnectionPool(
            ssl_context=context,
            max_connections=100,
            max_keepalive_connections=20,
            keepalive_expiry=5.0,
            network_backend=GuardedBackend(self),
        )
        return transport


@functools.lru_cache(maxsize=1)
def _ssl_context() -> ssl.SSLContext:
    """One verifying TLS context for every guarded client: loading the CA bundle costs tens of milliseconds,
    which a sync with nothing new (one request) would otherwise pay twice. Contexts are safe to share."""
    return httpx.create_ssl_context(trust_env=False)


class GuardedBackend(httpcore.SyncBackend):
    """httpcore's network backend, resolving the host itself, checking every address, then connecting to a
    checked address. TLS is started afterwards by httpcore with the URL's host name, so certificates are still
    verified against the name, not the address."""

    def __init__(self, guard: Guard) -> None:
        self.guard = guard

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        addresses = self.guard.resolve(host, port)
        error: Exception | None = None
        for address in addresses:  # as socket.create_connection does: the first that answers
            try:
                return super().connect_tcp(str(address), port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        assert error is not None
        raise error
