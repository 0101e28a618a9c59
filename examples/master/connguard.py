"""Keeping slow and idle connections from exhausting the master.

uvicorn puts no time limit on reading a request head: a client that sends
``POST /jobs HTTP/1.1\\r\\nHost: x\\r\\n`` and then nothing holds a socket (and a file
descriptor) for ever, and ~1,000 of them take the master down before the rate limiter,
which only sees complete requests, can act. ``limit_concurrency`` and
``timeout_keep_alive`` do not help (the first answers 503 only once a head is parsed, the
second only runs between requests).

:func:`guarded_protocol` wraps uvicorn's HTTP protocol class (h11 or httptools, whichever
uvicorn picks) with a :class:`ConnectionGuard` that, at the TCP level:

* closes a new connection at once when the server already holds ``max_connections`` or
  that peer address already holds ``max_per_client`` (peers that are trusted proxies are
  only held to the global cap: every client behind them shares their address);
* closes a connection whose request head is not complete ``header_timeout`` seconds after
  the connection opened or the previous response ended.

Once a head is complete the request belongs to the app (a 30-s long-poll claim is fine).
:func:`raise_fd_limit` lifts the soft descriptor limit to the hard one at start so the
caps, not the kernel, decide.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections import Counter
from collections.abc import Sequence
from typing import Any

__all__ = ["ConnectionGuard", "guarded_protocol", "raise_fd_limit"]

log = logging.getLogger("examples.master.connguard")

_HEAD_END = b"\r\n\r\n"
#: descriptors kept free for the database, logs, TLS and outgoing connections
FD_RESERVE = 256


def raise_fd_limit() -> int:
    """Raise the soft ``RLIMIT_NOFILE`` to the hard limit where allowed; return the soft one."""
    try:
        import resource
    except ImportError:  # not on Windows
        return 1 << 16
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 16)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            log.warning("could not raise the descriptor limit from %d: %s", soft, exc)
    return int(soft)


class ConnectionGuard:
    """Connection counts and limits shared by all connections of one server."""

    def __init__(
        self,
        *,
        max_connections: int = 4096,
        max_per_client: int = 64,
        header_timeout: float = 10.0,
        trusted_proxies: Sequence[str] = (),
    ) -> None:
        for name, value in (
            ("max_connections", max_connections),
            ("max_per_client", max_per_client),
        ):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if not header_timeout > 0:
            raise ValueError(f"header_timeout must be > 0 seconds, got {header_timeout!r}")
        self.max_connections = max_connections
        self.max_per_client = max_per_client
        self.header_timeout = header_timeout
        self._proxies = tuple(ipaddress.ip_network(p, strict=False) for p in trusted_proxies)
        self.open = 0
        self.per_client: Counter[str] = Counter()
        self.refused = 0
        self.timed_out = 0

    def _is_proxy(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self._proxies)

    def admit(self, host: str) -> bool:
        """Count a new connection from ``host``; False (and nothing counted) if over a cap."""
        over_client = self.per_client[host] >= self.max_per_client and not self._is_proxy(host)
        if self.open >= self.max_connections or over_client:
            self.refused += 1
            if self.refused in (1, 100) or self.refused % 10_000 == 0:
                log.warning(
                    "refusing connections over the cap (%d open, %d from %s; %d refused so far)",
                    self.open,
                    self.per_client[host],
                    host,
                    self.refused,
                )
            return False
        self.open += 1
        self.per_client[host] += 1
        return True

    def release(self, host: str) -> None:
        """Forget a connection :meth:`admit` counted."""
        self.open -= 1
        self.per_client[host] -= 1
        if self.per_client[host] <= 0:
            del self.per_client[host]


def guarded_protocol(base: type[Any], guard: ConnectionGuard) -> type[asyncio.Protocol]:
    """A subclass of uvicorn's HTTP protocol class ``base`` enforcing ``guard``."""

    class GuardedProtocol(base):  # type: ignore[misc]
        _guard_host: str | None = None
        _guard_timer: asyncio.TimerHandle | None = None
        _guard_tail = b""

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            peer = transport.get_extra_info("peername")
            host = str(peer[0]) if peer else "unknown"
            if not guard.admit(host):
                transport.abort()  # type: ignore[attr-defined]
                return
            self._guard_host = host
            self._guard_arm()
            super().connection_made(transport)

        def _guard_arm(self) -> None:
            self._guard_tail = b""
            loop = asyncio.get_running_loop()
            self._guard_timer = loop.call_later(guard.header_timeout, self._guard_expire)

        def _guard_disarm(self) -> None:
            if self._guard_timer is not None:
                self._guard_timer.cancel()
                self._guard_timer = None

        def _guard_expire(self) -> None:
            self._guard_timer = None
            guard.timed_out += 1
            self.transport.abort()

        def data_received(self, data: bytes) -> None:
            if self._guard_timer is not None:
                # keep only what a head end split across two reads needs
                seen = self._guard_tail + data
                if _HEAD_END in seen:
                    self._guard_disarm()
                self._guard_tail = seen[-3:]
            super().data_received(data)

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if self._guard_host is not None and not self.transport.is_closing():
                self._guard_disarm()
                self._guard_arm()  # the next request's head has the same deadline

        def connection_lost(self, exc: Exception | None) -> None:
            if self._guard_host is None:
                return  # refused in connection_made: uvicorn never saw it
            self._guard_disarm()
            guard.release(self._guard_host)
            self._guard_host = None
            super().connection_lost(exc)

    GuardedProtocol.__name__ = f"Guarded{base.__name__}"
    return GuardedProtocol
