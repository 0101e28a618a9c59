"""Every use of an unstable or private name of ``limits`` or redis-py, in one place.

ratelimit relies on ``limits`` for URI parsing and its window strategies, and on
redis-py for the token bucket's script. A few things it wants are not public
``limits`` API, or only exist in some releases:

* the redis-py client behind a sync ``RedisStorage`` (``get_connection()``, 4.1+);
* the redis-py client behind an async storage (``storage.bridge``, an internal
  attribute since 4.2);
* async Redis storage on redis-py (``implementation="redispy"``, 4.2+);
* the ``key_prefix`` option of the Redis storages (5.1+);
* the registry of storage schemes (``limits.storage.SCHEMES``, undocumented);
* FastAPI's lazily included routers (``_IncludedRouter``, 0.16x: ``original_router``
  and ``include_context.prefix``), whose routes the middleware reads to warn about
  rules matching no route and to name a rejected request's route;
* Starlette's per-request exception handlers (``scope["starlette.exception_handlers"]``,
  undocumented, 0.31+), where the FastAPI dependency installs the handler that
  answers its rejections exactly as the middleware does.

Each shim below probes for its feature once, where the object is built (never per
request), and otherwise takes a fallback made of public API only, with one warning
per process naming what is missing. Tests force each fallback by replacing the
probe (the ``_limits_*`` functions).
"""

from __future__ import annotations

import inspect
import urllib.parse
from types import ModuleType
from typing import Any

from ffrtmp_infra._fallback import warn_once

__all__ = [
    "add_exception_handler",
    "async_redis_client",
    "async_window_storage",
    "fastapi_included_router",
    "known_limits_schemes",
    "sync_redis_client",
    "window_storage",
    "window_strategies",
]

_warned: set[str] = set()


def warn_fallback(feature: str, missing: str) -> None:
    """Warn once per process that ``feature`` runs on its public-API fallback."""
    warn_once(_warned, "ffrtmp_infra.ratelimit", "limits/redis-py", feature, missing)


def _is_client(value: object) -> bool:
    return callable(getattr(value, "register_script", None)) and callable(
        getattr(value, "execute_command", None)
    )


# -- the scheme registry (only for error messages) -------------------------------------


def _limits_schemes() -> frozenset[str] | None:
    try:
        import limits.storage

        return frozenset(getattr(limits.storage, "SCHEMES"))  # noqa: B009 - may be gone
    except (ImportError, AttributeError, TypeError):
        return None


def known_limits_schemes() -> frozenset[str]:
    """Storage schemes ``limits`` knows (empty when its registry moved)."""
    schemes = _limits_schemes()
    if schemes is None:
        warn_fallback("naming window-only storages", "limits.storage.SCHEMES is missing")
        return frozenset()
    return schemes


# -- redis-py clients for the token bucket's script ---------------------------------------


def _limits_sync_client(storage: Any) -> Any:
    get = getattr(storage, "get_connection", None)
    if not callable(get):
        return None
    try:
        client = get()
    except Exception:  # any failure of a private call means: build our own
        return None
    return client if _is_client(client) else None


def sync_redis_client(storage: Any, uri: str, options: dict[str, Any]) -> Any:
    """The sync redis-py client for ``uri``: the one ``limits``' ``storage`` made, or ours."""
    client = _limits_sync_client(storage)
    if client is None:
        warn_fallback("the Redis token bucket", "RedisStorage.get_connection() is missing")
        client = redis_client(uri, options, asyncio_client=False)
    return client


def _limits_async_client(uri: str, options: dict[str, Any]) -> Any:
    try:
        from limits.storage import storage_from_string

        storage: Any = storage_from_string("async+" + uri, implementation="redispy", **options)
        client = storage.bridge.get_connection()
    except Exception:  # no redispy bridge in this limits: build our own
        return None
    return client if _is_client(client) else None


def async_redis_client(uri: str, options: dict[str, Any]) -> Any:
    """A ``redis.asyncio`` client for ``uri`` (for the running loop)."""
    client = _limits_async_client(uri, options)
    if client is None:
        warn_fallback(
            "the async Redis token bucket", "the async storage's redis-py client is missing"
        )
        client = redis_client(uri, options, asyncio_client=True)
    return client


def _hosts(netloc: str, default_port: int) -> list[tuple[str, int]]:
    """``host:port,host:port`` (IPv6 in brackets) from a URI's location part."""
    hosts = []
    for location in netloc.rsplit("@", 1)[-1].split(","):
        parts = urllib.parse.urlsplit("//" + location)
        hosts.append((parts.hostname or "localhost", parts.port or default_port))
    return hosts


def redis_client(uri: str, options: dict[str, Any], *, asyncio_client: bool) -> Any:
    """A redis-py client for a ``limits`` Redis/Valkey URI, from public redis-py API only.

    Standalone, TLS and unix-socket URIs go to ``from_url``; ``+cluster`` lists start-up
    nodes; ``+sentinel`` names the service in its path, as ``limits`` reads them.
    """
    import redis
    import redis.asyncio

    module: Any = redis.asyncio if asyncio_client else redis
    scheme, _, rest = uri.partition("://")
    base = scheme.replace("valkey", "redis")  # redis-py speaks to Valkey servers too
    parts = urllib.parse.urlsplit(uri)
    auth = {
        key: urllib.parse.unquote(value)
        for key, value in (("username", parts.username), ("password", parts.password))
        if value
    }
    if base.endswith("+cluster"):
        cluster = module.cluster
        nodes = [cluster.ClusterNode(h, p) for h, p in _hosts(parts.netloc, 7000)]
        return cluster.RedisCluster(startup_nodes=nodes, **{**auth, **options})
    if base.endswith("+sentinel"):
        service = parts.path.strip("/") or options.pop("service_name", None)
        sentinel_kwargs = {**auth, **(options.pop("sentinel_kwargs", None) or {})}
        options.pop("use_replicas", None)
        sentinel = module.sentinel.Sentinel(
            _hosts(parts.netloc, 26379), sentinel_kwargs=sentinel_kwargs, **{**auth, **options}
        )
        return sentinel.master_for(service)
    if base == "redis+unix":
        base = "unix"
    return module.from_url(f"{base}://{rest}", **options)


# -- window strategies -------------------------------------------------------------------


def window_strategies(asyncio_api: bool) -> dict[str, Any]:
    """Strategy name -> ``limits`` strategy class, from public class names.

    ``sliding-window-counter`` exists from limits 4.1; older releases offer the rest.
    """
    import limits.aio.strategies
    import limits.strategies

    module: ModuleType = limits.aio.strategies if asyncio_api else limits.strategies
    names = {
        "fixed-window": "FixedWindowRateLimiter",
        "moving-window": "MovingWindowRateLimiter",
        "sliding-window-counter": "SlidingWindowCounterRateLimiter",
    }
    return {name: getattr(module, cls) for name, cls in names.items() if hasattr(module, cls)}


def _is_redis_uri(uri: str) -> bool:
    return uri.startswith(("redis", "valkey"))


def _limits_accepts(option: str, asyncio_api: bool) -> bool:
    """True when ``limits``' Redis storage ``__init__`` takes ``option``."""
    try:
        if asyncio_api:
            from limits.aio.storage import RedisStorage
        else:
            from limits.storage import RedisStorage  # type: ignore[assignment]
        return option in inspect.signature(RedisStorage.__init__).parameters
    except (ImportError, AttributeError, TypeError, ValueError):
        return False


def window_storage(
    uri: str, options: dict[str, Any], key_prefix: str
) -> tuple[Any, dict[str, Any], tuple[str, ...]]:
    """A sync ``limits`` storage for ``uri``, the options it was built with, and the
    identifiers to put before each key.

    Where the Redis storage cannot take ``key_prefix`` (limits < 5.1) the prefix becomes
    the first identifier of every key instead: keys stay apart per prefix, though they are
    spelled differently from those of a newer limits.
    """
    from limits.storage import storage_from_string

    ids: tuple[str, ...] = ()
    if uri.startswith("memory"):
        pass  # state is per process: nothing to keep apart
    elif not _is_redis_uri(uri) or _limits_accepts("key_prefix", asyncio_api=False):
        options = {"key_prefix": key_prefix, **options}
    else:
        warn_fallback("WindowLimiter's key_prefix", "RedisStorage(key_prefix=...) is missing")
        ids = (key_prefix,)
    return storage_from_string(uri, **options), options, ids


def _limits_async_storage(uri: str, options: dict[str, Any]) -> Any:
    from limits.storage import storage_from_string

    if _is_redis_uri(uri):
        if not _limits_accepts("implementation", asyncio_api=True):
            return None  # limits < 4.2: async Redis only through coredis
        options = {"implementation": "redispy", **options}
    try:
        return storage_from_string("async+" + uri, **options)
    except Exception:  # the async storage cannot be built here: use the sync one
        return None


def async_window_storage(uri: str, options: dict[str, Any]) -> Any:
    """An async ``limits`` storage for ``uri`` (on redis-py for Redis), or None.

    ``options`` are those :func:`window_storage` returned. None means this ``limits``
    has no async storage usable without another client library (coredis): the caller
    runs the sync strategy in a worker thread.
    """
    storage = _limits_async_storage(uri, options)
    if storage is None:
        warn_fallback(
            "WindowLimiter's async methods (sync storage in a worker thread)",
            "async Redis storage on redis-py (limits >= 4.2) is missing",
        )
    return storage


# -- Starlette's exception handlers of the running app ------------------------------------


def add_exception_handler(scope: Any, exc_class: type[BaseException], handler: Any) -> bool:
    """Register ``handler`` for ``exc_class`` with the app serving ``scope`` (once).

    Starlette's ``ExceptionMiddleware`` puts its handler dict in the scope, and
    looks handlers up there when an exception escapes a route. An app-wide handler
    set with ``add_exception_handler`` (kept by ``setdefault``) wins. Returns False
    when the scope carries no such dict: the exception's own class (an
    ``HTTPException``) then decides the answer.
    """
    found = scope.get("starlette.exception_handlers")
    if isinstance(found, tuple) and found and isinstance(found[0], dict):
        found[0].setdefault(exc_class, handler)
        return True
    warn_once(
        _warned,
        "ffrtmp_infra.ratelimit",
        "Starlette",
        "the FastAPI dependency's 429 (FastAPI's HTTPException body, same headers)",
        'no scope["starlette.exception_handlers"]',
    )
    return False


# -- FastAPI's included routers ------------------------------------------------------------


def fastapi_included_router(route: Any) -> tuple[str, list[Any]] | None:
    """(prefix, routes) of a router FastAPI included lazily; None for any other route.

    FastAPI releases that copy an included router's routes into the app (all before
    0.16x) need nothing here; newer ones keep one ``_IncludedRouter`` entry instead.
    Without the attributes the routes are simply not seen (no warning, no route name).
    """
    router = getattr(route, "original_router", None)
    prefix = getattr(getattr(route, "include_context", None), "prefix", None)
    routes = getattr(router, "routes", None)
    if isinstance(prefix, str) and isinstance(routes, list):
        return prefix, routes
    return None
