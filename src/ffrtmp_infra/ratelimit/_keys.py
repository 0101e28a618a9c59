"""What key functions see (:class:`RequestInfo`) and the built-in key functions."""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from ffrtmp_infra.ratelimit._errors import ConfigurationError

__all__ = ["KeyFunction", "RequestInfo", "api_key", "client_ip"]

#: A key function: request -> storage key, or ``None`` to exempt the request.
KeyFunction = Callable[["RequestInfo"], "str | Awaitable[str | None] | None"]

_IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
_MAX_HOPS = 64  # entries of X-Forwarded-For/Forwarded examined, from the right
_MAX_HEADER = 8192  # characters of a forwarding header examined, from the right
_MAX_SECRET = 4096
_CACHE_SIZE = 65_536
UNKNOWN_CLIENT = "unknown"


class RequestInfo:
    """The parts of a request a key function, cost function or dynamic limit may use.

    ``RequestInfo(method, path, headers, client)``; the middleware builds it from the
    ASGI scope or WSGI environ (headers lazily). Header names are lower-case
    and values are decoded as Latin-1 (so any byte sequence decodes).

    Attributes:
        method: the HTTP method (``"GET"``; ``"WEBSOCKET"`` for a WebSocket handshake).
        path: the request path, without the query string.
        client: the socket peer's host, or ``None`` when the server gave none.
        raw: the ASGI scope or the WSGI environ itself.
    """

    __slots__ = ("_headers", "_raw_headers", "client", "method", "path", "raw")

    def __init__(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str] | None = None,
        client: str | None = None,
        *,
        raw: Any = None,
        raw_headers: Iterable[tuple[bytes, bytes]] | None = None,
    ) -> None:
        self.method = method
        self.path = path
        self.client = client
        self.raw = raw
        self._headers = dict(headers) if headers is not None else None
        self._raw_headers = raw_headers

    @classmethod
    def from_scope(cls, scope: Mapping[str, Any]) -> RequestInfo:
        """From an ASGI ``http`` or ``websocket`` scope."""
        client = scope.get("client")
        return cls(
            scope.get("method", "WEBSOCKET"),
            scope.get("path", ""),
            None,
            client[0] if client else None,
            raw=scope,
            raw_headers=scope.get("headers") or (),
        )

    @classmethod
    def from_environ(cls, environ: Mapping[str, Any]) -> RequestInfo:
        """From a WSGI environ."""
        headers: dict[str, str] = {}
        for name, value in environ.items():
            if name.startswith("HTTP_"):
                headers[name[5:].replace("_", "-").lower()] = value
        if "CONTENT_TYPE" in environ:
            headers["content-type"] = environ["CONTENT_TYPE"]
        return cls(
            environ.get("REQUEST_METHOD", "GET"),
            environ.get("PATH_INFO", ""),
            headers,
            environ.get("REMOTE_ADDR") or None,
            raw=environ,
        )

    @property
    def headers(self) -> Mapping[str, str]:
        """All headers, lower-case names; repeated headers joined with ``", "``."""
        if self._headers is None:
            headers: dict[str, str] = {}
            for name, value in self._raw_headers or ():
                text_name = name.decode("latin-1").lower()
                text = value.decode("latin-1")
                headers[text_name] = (
                    f"{headers[text_name]}, {text}" if text_name in headers else text
                )
            self._headers = headers
        return self._headers

    def header(self, name: str) -> str | None:
        """One header's value (``name`` in lower case), or ``None``."""
        return self.headers.get(name)


def _parse_ip(text: str) -> _IPAddress | None:
    """An address from a header entry (``1.2.3.4``, ``1.2.3.4:80``, ``[::1]:80``, ``::1``)."""
    text = text.strip().strip('"')
    if text.startswith("["):
        text = text[1 : text.find("]")] if "]" in text else ""
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


class ClientIP:
    """Key function returning the client's address; build it with :func:`client_ip`."""

    def __init__(
        self,
        trusted_proxies: Iterable[str | _IPNetwork],
        ipv6_prefix: int,
        header: str,
    ) -> None:
        if isinstance(trusted_proxies, str):
            trusted_proxies = [trusted_proxies]
        networks: list[_IPNetwork] = []
        for entry in trusted_proxies:
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except (ValueError, TypeError) as exc:
                raise ConfigurationError(
                    f"trusted_proxies entries must be IP addresses or CIDR networks, got {entry!r}"
                ) from exc
        if (
            isinstance(ipv6_prefix, bool)
            or not isinstance(ipv6_prefix, int)
            or not (1 <= ipv6_prefix <= 128)
        ):
            raise ConfigurationError(f"ipv6_prefix must be an int in 1..128, got {ipv6_prefix!r}")
        if not isinstance(header, str) or not header.strip():
            raise ConfigurationError(f"header must be a header name, got {header!r}")
        self.trusted_proxies = tuple(networks)
        self.ipv6_prefix = ipv6_prefix
        self.header = header.strip().lower()
        self._header_bytes = self.header.encode("latin-1")
        self._keys: dict[str, str] = {}
        self._trusted: dict[str, bool] = {}

    def __repr__(self) -> str:
        proxies = [str(n) for n in self.trusted_proxies]
        return f"client_ip(trusted_proxies={proxies}, ipv6_prefix={self.ipv6_prefix})"

    def __call__(self, info: RequestInfo) -> str:
        return self._resolve(info.client, info.header)

    def from_scope(self, scope: Mapping[str, Any]) -> str:
        """The key straight from an ASGI scope (the middleware's allocation-free path)."""
        client = scope.get("client")
        if not client:
            return UNKNOWN_CLIENT
        host: str = client[0]
        if not self.trusted_proxies:
            return host if ":" not in host else self._normalize_host(host)
        header_bytes = self._header_bytes

        def lookup(_name: str) -> str | None:
            found = [v for n, v in scope.get("headers") or () if n.lower() == header_bytes]
            return b", ".join(found).decode("latin-1") if found else None

        return self._resolve(host, lookup)

    def from_environ(self, environ: Mapping[str, Any]) -> str:
        """The key straight from a WSGI environ."""
        host = environ.get("REMOTE_ADDR")
        if not host:
            return UNKNOWN_CLIENT
        if not self.trusted_proxies:
            return host if ":" not in host else self._normalize_host(host)
        name = "HTTP_" + self.header.upper().replace("-", "_")
        return self._resolve(host, lambda _n: environ.get(name))

    # --------------------------------------------------------------- internals
    def _resolve(self, peer: str | None, header: Callable[[str], str | None]) -> str:
        if not peer:
            return UNKNOWN_CLIENT
        if not self.trusted_proxies or not self._is_trusted(peer):
            return self._normalize_host(peer)
        value = header(self.header)
        if not value:
            return self._normalize_host(peer)
        current: _IPAddress | None = None
        for entry in reversed(self._entries(value[-_MAX_HEADER:])):
            ip = _parse_ip(entry)
            if ip is None:
                break  # garbage a client wrote: stop at the last hop a proxy vouched for
            if not any(ip in net for net in self.trusted_proxies):
                return self._key(ip)
            current = ip
        return self._key(current) if current is not None else self._normalize_host(peer)

    def _entries(self, value: str) -> list[str]:
        if self.header == "forwarded":
            hops = []
            for element in value.split(",")[-_MAX_HOPS:]:
                for pair in element.split(";"):
                    name, _, found = pair.strip().partition("=")
                    if name.lower() == "for":
                        hops.append(found)
                        break
                else:
                    hops.append("")  # an element without for= breaks the chain
            return hops
        return value.split(",")[-_MAX_HOPS:]

    def _is_trusted(self, peer: str) -> bool:
        found = self._trusted.get(peer)
        if found is None:
            ip = _parse_ip(peer)
            found = ip is not None and any(ip in net for net in self.trusted_proxies)
            if len(self._trusted) >= _CACHE_SIZE:
                self._trusted.clear()
            self._trusted[peer] = found
        return found

    def _normalize_host(self, host: str) -> str:
        found = self._keys.get(host)
        if found is None:
            ip = _parse_ip(host)
            # A peer the server reports that is not an IP (a unix socket path) keys as itself.
            found = self._key(ip) if ip is not None else host[:256]
            if len(self._keys) >= _CACHE_SIZE:
                self._keys.clear()
            self._keys[host] = found
        return found

    def _key(self, ip: _IPAddress) -> str:
        if isinstance(ip, ipaddress.IPv6Address) and self.ipv6_prefix < 128:
            return str(ipaddress.IPv6Network((ip, self.ipv6_prefix), strict=False))
        return str(ip)


def client_ip(
    trusted_proxies: Iterable[str | _IPNetwork] = (),
    ipv6_prefix: int = 64,
    *,
    header: str = "x-forwarded-for",
) -> ClientIP:
    """A key function keyed by the client's IP address.

    By default the socket peer is the client and forwarding headers are ignored
    (anyone can write them). Behind proxies, list them in ``trusted_proxies``
    (addresses or CIDRs): when the peer is trusted, ``header`` is walked from the
    right and the first address that is not a trusted proxy is the client.

    Args:
        trusted_proxies: proxies whose forwarding header is believed.
        ipv6_prefix: IPv6 clients are grouped by this prefix (one /64 is usually one
            subscriber; 128 keys each address).
        header: ``"x-forwarded-for"`` (default), ``"forwarded"`` (RFC 7239 ``for=``),
            or a single-address header such as ``"x-real-ip"`` or ``"cf-connecting-ip"``.

    Returns:
        a key function; a request without a client address keys as ``"unknown"``.
    """
    return ClientIP(trusted_proxies, ipv6_prefix, header)


class APIKey:
    """Key function returning a hash of the caller's API key; build it with :func:`api_key`."""

    def __init__(
        self,
        header: str,
        bearer: bool,
        fallback: KeyFunction | None,
        secret: bytes | None,
    ) -> None:
        if not isinstance(header, str) or not header.strip():
            raise ConfigurationError(f"header must be a header name, got {header!r}")
        if secret is not None and (not isinstance(secret, bytes) or len(secret) > 64):
            raise ConfigurationError("secret must be bytes of at most 64 bytes (a BLAKE2b key)")
        self.header = header.strip().lower()
        self.bearer = bearer
        self.fallback = fallback
        self._secret = secret or b""

    def __repr__(self) -> str:
        return f"api_key(header={self.header!r}, bearer={self.bearer}, fallback={self.fallback!r})"

    def secret_of(self, info: RequestInfo) -> str | None:
        """The presented API key, or ``None``."""
        if self.bearer:
            auth = info.header("authorization")
            if auth and auth[:7].lower() == "bearer ":
                token = auth[7:].strip()
                if token:
                    return token
        value = info.header(self.header)
        return value.strip() or None if value is not None else None

    def __call__(self, info: RequestInfo) -> str | Awaitable[str | None] | None:
        secret = self.secret_of(info)
        if secret is None or len(secret) > _MAX_SECRET:
            if self.fallback is None:
                return None
            found = self.fallback(info)
            if isinstance(found, str):
                return "ip:" + found
            return found
        digest = hashlib.blake2b(
            secret.encode("latin-1"), digest_size=16, key=self._secret
        ).hexdigest()
        return "key:" + digest


def api_key(
    header: str = "x-api-key",
    *,
    bearer: bool = True,
    fallback: KeyFunction | None = None,
    secret: bytes | None = None,
) -> APIKey:
    """A key function keyed by the caller's API key, never storing the key itself.

    Reads ``Authorization: Bearer <key>`` (when ``bearer``) and then ``header``. The
    storage key is ``"key:"`` + a 128-bit BLAKE2b hash of the key (keyed with
    ``secret`` if given, so a leaked store cannot confirm guessed keys).

    Args:
        header: the header carrying the key when there is no bearer token.
        bearer: also accept ``Authorization: Bearer``.
        fallback: key function for requests without a key; default :func:`client_ip`
            (keys ``"ip:<address>"``), so anonymous callers are limited, not exempt.
        secret: optional BLAKE2b key (up to 64 bytes).
    """
    return APIKey(header, bearer, fallback if fallback is not None else client_ip(), secret)
