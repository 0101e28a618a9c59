"""The token bucket on Redis/Valkey: one atomic Lua script per decision.

URIs are validated by ``limits``' storage classes (standalone, ``rediss``, unix
sockets, cluster, sentinel, Valkey), so URI parsing, TLS and client options behave
as in ``limits``. The scripts run on the redis-py client ``limits`` built where it
exposes one, else on one built from the URI with public redis-py API (see
``_compat``).
"""

from __future__ import annotations

import asyncio
import urllib.parse
from importlib import resources
from typing import Any

from ffrtmp_infra.ratelimit import _compat
from ffrtmp_infra.ratelimit._errors import ConfigurationError, MissingExtraError

__all__ = ["RedisGCRA", "redis_schemes", "shared_backend"]

_SCRIPT = resources.files(__package__).joinpath("gcra.lua").read_text()
_REFUND = resources.files(__package__).joinpath("refund.lua").read_text()

#: Schemes whose servers run our GCRA script.
_REDIS_SCHEMES = {
    "redis",
    "rediss",
    "redis+unix",
    "redis+cluster",
    "redis+sentinel",
    "valkey",
    "valkeys",
    "valkey+unix",
    "valkey+cluster",
    "valkey+sentinel",
}
_DEFAULT_OPTIONS: dict[str, Any] = {"socket_timeout": 0.5, "socket_connect_timeout": 0.5}


def redis_schemes() -> frozenset[str]:
    """The URI schemes the token bucket supports for shared storage."""
    return frozenset(_REDIS_SCHEMES)


class RedisGCRA:
    """GCRA state in Redis, reached through ``limits``' storage for ``uri``."""

    def __init__(self, uri: str, options: dict[str, Any] | None) -> None:
        scheme = urllib.parse.urlparse(uri).scheme
        if scheme.startswith("async+"):
            scheme = scheme.removeprefix("async+")
            uri = uri.removeprefix("async+")
        if scheme not in _REDIS_SCHEMES:
            if scheme in _compat.known_limits_schemes():
                raise ConfigurationError(
                    f"storage {scheme + '://'!r} cannot hold a token bucket (it needs "
                    f"server-side scripts): use redis:// or valkey://, or a WindowLimiter "
                    f"for {scheme}"
                )
            raise ConfigurationError(
                f"unknown storage scheme {scheme!r} in {_safe_uri(uri)!r}; "
                f"expected memory:// or one of {', '.join(sorted(_REDIS_SCHEMES))}"
            )
        try:
            import redis
        except ImportError as exc:  # pragma: no cover - the redis extra is installed in tests
            raise MissingExtraError("Redis storage", "redis", "redis-py") from exc
        self.uri = uri
        self.cluster = "+cluster" in scheme
        self.options = {**_DEFAULT_OPTIONS, **(options or {})}
        self.errors: tuple[type[BaseException], ...] = (redis.exceptions.RedisError, OSError)
        from limits.errors import ConfigurationError as LimitsConfigurationError
        from limits.storage import storage_from_string

        storage: Any
        try:
            storage = storage_from_string(uri, **self.options)
        except (LimitsConfigurationError, ValueError, TypeError) as exc:
            raise ConfigurationError(f"invalid storage {_safe_uri(uri)!r}: {exc}") from exc
        self._connection = connection = _compat.sync_redis_client(storage, uri, self.options)
        self._no_script: type[BaseException] = redis.exceptions.NoScriptError
        # Script objects only for their SHA: redis-py's Script.__call__ costs ~40 us
        # a call on top of EVALSHA itself, so the hot path sends EVALSHA directly.
        self._sha = connection.register_script(_SCRIPT).sha
        self._refund = connection.register_script(_REFUND)
        self._async: tuple[asyncio.AbstractEventLoop, Any, Any, Any] | None = None

    # sync ---------------------------------------------------------------
    def run(self, keys: list[str], args: list[bytes]) -> list[int]:
        """Run the GCRA script (EVALSHA, loading it on NOSCRIPT); returns its reply's
        integers: allowed, then remaining, retry and reset (µs) for each key."""
        try:
            reply = self._connection.execute_command("EVALSHA", self._sha, len(keys), *keys, *args)
        except self._no_script:
            reply = self._connection.execute_command("EVAL", _SCRIPT, len(keys), *keys, *args)
        return list(map(int, reply.split()))

    def refund(self, key: str, amount_us: float) -> None:
        self._refund(keys=[key], args=[amount_us])

    def delete(self, key: str) -> None:
        self._connection.delete(key)

    # async --------------------------------------------------------------
    def _async_parts(self) -> tuple[Any, Any, Any]:
        loop = asyncio.get_running_loop()
        parts = self._async
        if parts is None or parts[0] is not loop:
            # redis.asyncio connections belong to the loop that made them: one
            # client per running loop (in practice, one for the server's lifetime).
            connection = _compat.async_redis_client(self.uri, self.options)
            parts = (
                loop,
                connection,
                connection.register_script(_SCRIPT),
                connection.register_script(_REFUND),
            )
            self._async = parts
        return parts[1], parts[2], parts[3]

    async def arun(self, keys: list[str], args: list[bytes]) -> list[int]:
        connection, _, _ = self._async_parts()
        try:
            reply = await connection.execute_command("EVALSHA", self._sha, len(keys), *keys, *args)
        except self._no_script:
            reply = await connection.execute_command("EVAL", _SCRIPT, len(keys), *keys, *args)
        return list(map(int, reply.split()))

    async def arefund(self, key: str, amount_us: float) -> None:
        _, _, refund = self._async_parts()
        await refund(keys=[key], args=[amount_us])

    async def adelete(self, key: str) -> None:
        connection, _, _ = self._async_parts()
        await connection.delete(key)


_backends: dict[tuple[str, str], RedisGCRA] = {}


def shared_backend(uri: str, options: dict[str, Any] | None) -> RedisGCRA:
    """One backend (and connection pool) per URI and options, shared by limiters.

    Limiters on the same backend can be decided together in one script call.
    """
    ident = (uri.removeprefix("async+"), repr(sorted((options or {}).items())))
    backend = _backends.get(ident)
    if backend is None:
        backend = _backends[ident] = RedisGCRA(uri, options)
    return backend


def _safe_uri(uri: str) -> str:
    """``uri`` without its password, for messages and logs."""
    parts = urllib.parse.urlsplit(uri)
    if parts.password is None:
        return uri
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))
