"""Where a job may make the worker connect: the SSRF guard shared by master and worker.

A job names two network destinations: an http(s) input URL and, for live scenarios, an
RTMP output. Both are chosen by whoever submits the job and both are reached from the
worker's network, so by default:

* an input host that is, or resolves to, anything but a public unicast address (loopback,
  private, link-local such as the 169.254.169.254 metadata service, unique-local, multicast,
  unspecified, reserved) is refused, whatever way the address is spelled (``0x7f000001``,
  ``2130706433``, ``127.1``, ``[::ffff:127.0.0.1]``). Operators allow named hosts
  (``--allow-input-host``) or every private address (``--allow-private-inputs``, for labs);
* a live output goes only to hosts the operator listed (``--rtmp-allow HOST[:PORT]``);
  none are listed by default.

The master checks at submission (a 422 naming the field); the worker checks again right
before ffmpeg starts, and pins plain-http inputs to the address it checked, so neither a
DNS answer that changed in between nor a redirect (ffmpeg is told to follow none) gets
around the check.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit, urlunsplit

from examples.common.spec import SpecError

__all__ = [
    "DestinationPolicy",
    "HostRefusedError",
    "IPAddress",
    "is_public",
    "parse_rtmp_allow",
    "pinned_http_url",
    "resolve",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str], list[IPAddress]]
RTMP_DEFAULT_PORT = 1935


class HostRefusedError(SpecError):
    """A job's input or output host is not allowed by the operator's policy."""


def _literal(host: str) -> IPAddress | None:
    """``host`` as an IP address when it is one in any spelling the C resolver accepts."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:
        # inet_aton reads the legacy forms (hex, octal, one to four parts) that
        # ffmpeg's resolver accepts too, so 0x7f000001 and 127.1 are 127.0.0.1 here.
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def resolve(host: str) -> list[IPAddress]:
    """Every address ``host`` resolves to (raises ``OSError`` if it does not)."""
    infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]


def is_public(address: IPAddress) -> bool:
    """True for a globally routable unicast address (not private, loopback, metadata...)."""
    if isinstance(address, ipaddress.IPv6Address):
        mapped = address.ipv4_mapped or address.sixtofour
        if mapped is not None:
            return is_public(mapped)
    return address.is_global and not address.is_multicast


def parse_rtmp_allow(entries: Iterable[str]) -> frozenset[tuple[str, int | None]]:
    """``HOST[:PORT]`` strings as ``(host, port or None)``; raises ``ValueError`` on a bad one."""
    allowed = set()
    for entry in entries:
        parts = urlsplit(f"rtmp://{entry}")
        try:
            port = parts.port
        except ValueError:
            port = -1
        if not parts.hostname or port == -1 or parts.path or parts.username:
            raise ValueError(f"--rtmp-allow takes HOST or HOST:PORT, got {entry!r}")
        allowed.add((parts.hostname.lower(), port))
    return frozenset(allowed)


@dataclass(frozen=True)
class DestinationPolicy:
    """The operator's rules for job inputs and live outputs (see the module docstring)."""

    allow_input_hosts: frozenset[str] = frozenset()
    allow_private_inputs: bool = False
    rtmp_allow: frozenset[tuple[str, int | None]] = frozenset()

    @classmethod
    def from_options(
        cls,
        allow_input_hosts: Sequence[str] = (),
        allow_private_inputs: bool = False,
        rtmp_allow: Sequence[str] = (),
    ) -> DestinationPolicy:
        """Build from command-line values; raises ``ValueError`` naming a bad entry."""
        hosts = frozenset(h.strip().strip("[]").lower() for h in allow_input_hosts)
        if "" in hosts:
            raise ValueError("--allow-input-host takes a host name or address, got ''")
        return cls(hosts, allow_private_inputs, parse_rtmp_allow(rtmp_allow))

    def check_input(
        self, url: str, field: str = "input.url", *, resolver: Resolver = resolve
    ) -> list[IPAddress]:
        """The checked addresses of an input URL's host, or :class:`HostRefusedError`.

        Returns an empty list when the host is allowed by name or private inputs are
        allowed (nothing to pin then).
        """
        host = (urlsplit(url).hostname or "").lower()
        if not host:
            raise HostRefusedError(field, "must name a host")
        if host in self.allow_input_hosts or self.allow_private_inputs:
            return []
        literal = _literal(host)
        if literal is not None:
            addresses = [literal]
        else:
            try:
                addresses = resolver(host)
            except (OSError, UnicodeError):
                raise HostRefusedError(field, f"host {host[:100]!r} does not resolve") from None
        refused = [a for a in addresses if not is_public(a)]
        if refused or not addresses:
            raise HostRefusedError(
                field,
                f"host {host[:100]!r} is or resolves to a non-public address "
                f"({refused[0] if refused else 'none'}); the operator can allow it with "
                "--allow-input-host",
            )
        return addresses

    def check_output(self, url: str, field: str = "output.url") -> None:
        """Raise :class:`HostRefusedError` unless the RTMP host (and port) is allowed."""
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        try:
            port = parts.port or RTMP_DEFAULT_PORT
        except ValueError:
            raise HostRefusedError(field, "has an invalid port") from None
        if (host, None) in self.rtmp_allow or (host, port) in self.rtmp_allow:
            return
        raise HostRefusedError(
            field,
            f"live output to {host[:100]}:{port} is not allowed; the operator lists "
            "permitted RTMP hosts with --rtmp-allow HOST[:PORT]",
        )

    def check_spec(self, spec: dict[str, object], *, resolver: Resolver = resolve) -> None:
        """Check a validated spec's input URL and live output (raises :class:`HostRefusedError`)."""
        spec_input = spec.get("input")
        if isinstance(spec_input, dict) and spec_input.get("type") == "url":
            self.check_input(str(spec_input.get("url")), resolver=resolver)
        output = spec.get("output")
        if isinstance(output, dict) and "url" in output:
            self.check_output(str(output["url"]))


def pinned_http_url(url: str, address: IPAddress) -> tuple[str, str]:
    """A plain-http URL rewritten to connect to ``address``, and the Host header it needs.

    Connecting to the checked address (not the name, resolved again by ffmpeg) closes the
    window in which a DNS answer could change between the check and the connection.
    """
    parts = urlsplit(url)
    host = f"[{address}]" if address.version == 6 else str(address)
    port = f":{parts.port}" if parts.port else ""
    userinfo, at, original = parts.netloc.rpartition("@")
    netloc = userinfo + at + host + port
    return urlunsplit(SplitResult(parts.scheme, netloc, parts.path, parts.query, "")), original
