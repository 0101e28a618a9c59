"""Rules: which limits apply to which requests, with which key and cost."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Union

from ffrtmp_infra.ratelimit._errors import ConfigurationError
from ffrtmp_infra.ratelimit._keys import KeyFunction, RequestInfo
from ffrtmp_infra.ratelimit._limiter import Limiter

if TYPE_CHECKING:
    from ffrtmp_infra.ratelimit._window import WindowLimiter

__all__ = ["AnyLimiter", "LimiterSource", "Rule", "compile_template", "is_async_callable"]

AnyLimiter = Union[Limiter, "WindowLimiter"]
#: A limiter, or a callable choosing one per request (``None`` exempts the request).
LimiterSource = Union[AnyLimiter, Callable[[RequestInfo], "AnyLimiter | None"]]  # noqa: UP007
_HTTP_METHODS = {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}

# Route templates as Starlette writes them (``starlette.routing.compile_path``), kept
# here so WSGI users (Flask, Django) need no Starlette: ``{name}`` or
# ``{name:converter}`` with Starlette's built-in converters.
_PARAM = re.compile(r"{([a-zA-Z_][a-zA-Z0-9_]*)(:[a-zA-Z_][a-zA-Z0-9_]*)?}")
_CONVERTERS = {
    "str": "[^/]+",
    "path": ".*",
    "int": "[0-9]+",
    "float": r"[0-9]+(\.[0-9]+)?",
    "uuid": "[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}",
}


def compile_template(path: str) -> re.Pattern[str]:
    """The regex matching ``path`` (``"/jobs/{job_id:int}"``) whole, as Starlette's router.

    Raises:
        ConfigurationError: an unknown converter or a parameter named twice.
    """
    regex = "^"
    names: set[str] = set()
    end = 0
    for match in _PARAM.finditer(path):
        name, converter = match.group(1), (match.group(2) or ":str")[1:]
        if converter not in _CONVERTERS:
            raise ConfigurationError(
                f"unknown path converter {converter!r} in {path!r}; "
                f"expected one of {', '.join(_CONVERTERS)}"
            )
        if name in names:
            raise ConfigurationError(f"path parameter {name!r} appears twice in {path!r}")
        names.add(name)
        regex += re.escape(path[end : match.start()]) + f"(?P<{name}>{_CONVERTERS[converter]})"
        end = match.end()
    return re.compile(regex + re.escape(path[end:]) + "$")


def is_async_callable(fn: object) -> bool:
    """True for ``async def`` functions and objects whose ``__call__`` is one."""
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - looking at __call__ itself
    )


def _is_limiter(value: object) -> bool:
    from ffrtmp_infra.ratelimit._window import WindowLimiter

    return isinstance(value, Limiter | WindowLimiter)


class Rule:
    """One limit applied to matching requests (or an exemption).

    Every matching rule applies, and all of a request's limits are checked
    all-or-nothing: if one rejects, none of them is charged.

    Args:
        limiter: a :class:`Limiter` or :class:`WindowLimiter`, or a callable
            ``(RequestInfo) -> limiter | None`` choosing one per request (tiers;
            ``None`` exempts). ``None`` here (and ``exempt=False``) re-keys or re-costs
            the middleware's default limiter for matching requests.
        path: a route template in Starlette's syntax (``"/jobs/{job_id}"``,
            ``"/files/{name:path}"``; converters str, int, float, path, uuid; matched
            whole; Starlette itself is not needed) or a
            path prefix (``"/api"`` matches ``/api`` and ``/api/...``); ``None`` = all.
        methods: HTTP methods to match (default all); ``"WEBSOCKET"`` matches handshakes.
        key: key function for this rule (default the middleware's).
        cost: units charged per request, an int or ``(RequestInfo) -> int``.
        exempt: matching requests are not limited at all.
    """

    def __init__(
        self,
        limiter: LimiterSource | None = None,
        *,
        path: str | None = None,
        methods: Iterable[str] | None = None,
        key: KeyFunction | None = None,
        cost: int | Callable[[RequestInfo], int] = 1,
        exempt: bool = False,
    ) -> None:
        if limiter is not None and not _is_limiter(limiter) and not callable(limiter):
            raise ConfigurationError(
                f"limiter must be a Limiter, a WindowLimiter or a callable, got {limiter!r}"
            )
        if exempt and limiter is not None:
            raise ConfigurationError("an exempt rule takes no limiter")
        if path is not None and (not isinstance(path, str) or not path.startswith("/")):
            raise ConfigurationError(f"path must be a string starting with '/', got {path!r}")
        if isinstance(methods, str):
            methods = [methods]
        method_set = None
        if methods is not None:
            method_set = frozenset(str(m).upper() for m in methods)
            unknown = method_set - _HTTP_METHODS - {"WEBSOCKET"}
            if unknown or not method_set:
                raise ConfigurationError(
                    f"methods must be HTTP methods or WEBSOCKET, got {sorted(unknown) or methods!r}"
                )
        if key is not None and not callable(key):
            raise ConfigurationError(f"key must be a key function, got {key!r}")
        if not callable(cost):
            if isinstance(cost, bool) or not isinstance(cost, int) or cost < 0:
                raise ConfigurationError(f"cost must be an int >= 0 or a callable, got {cost!r}")
            limit = getattr(limiter, "burst", None) or getattr(limiter, "amount", None)
            if limit is not None and cost > limit:
                raise ConfigurationError(
                    f"cost {cost} exceeds the limiter's burst {limit}: no request could pass"
                )
        self.limiter = limiter
        self.path = path
        self.methods = method_set
        self.key = key
        self.key_is_async = key is not None and is_async_callable(key)
        self.cost = cost
        self.exempt = exempt
        self.dynamic = limiter is not None and not _is_limiter(limiter)
        self._template: re.Pattern[str] | None = None
        self._prefix = ""
        if path is not None:
            if "{" in path:
                self._template = compile_template(path)
            else:
                self._prefix = path.rstrip("/")

    def __repr__(self) -> str:
        return (
            f"Rule(limiter={self.limiter!r}, path={self.path!r}, "
            f"methods={sorted(self.methods) if self.methods else None}, exempt={self.exempt})"
        )

    def matches(self, method: str, path: str) -> bool:
        """True when this rule applies to ``method`` ``path``."""
        if self.methods is not None and method not in self.methods:
            return False
        if self.path is None:
            return True
        if self._template is not None:
            return self._template.match(path) is not None
        prefix = self._prefix
        return not prefix or path == prefix or path.startswith(prefix + "/")

    def resolve_limiter(self, info: RequestInfo) -> Any:
        """The limiter for this request (``None`` exempts it)."""
        if self.dynamic:
            assert callable(self.limiter)
            chosen = self.limiter(info)
            if chosen is not None and not _is_limiter(chosen):
                raise TypeError(f"a dynamic limiter must return a limiter or None, got {chosen!r}")
            return chosen
        return self.limiter

    def cost_of(self, info: RequestInfo) -> int:
        """Units charged for this request."""
        cost = self.cost
        if callable(cost):
            value = cost(info)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise TypeError(f"a cost function must return an int >= 0, got {value!r}")
            return value
        return cost
