"""What the ASGI middleware learns from a Starlette/FastAPI app's routes.

Starlette is never imported here: the app arrives in ``scope["app"]`` (Starlette
puts itself there), and its routes are read through their public ``routes`` and
``path`` attributes (FastAPI's lazily included routers through ``_compat``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator, MutableMapping
from typing import Any

from ffrtmp_infra.ratelimit import _compat
from ffrtmp_infra.ratelimit._rules import Rule, compile_template

__all__ = ["RejectedRoute", "RouteTable", "is_preflight"]

logger = logging.getLogger("ffrtmp_infra.ratelimit")
_CONVERTER = re.compile(r"{([a-zA-Z_][a-zA-Z0-9_]*):[a-zA-Z_][a-zA-Z0-9_]*}")
_PARAM = re.compile(r"{[^}]*}")
_MAX_DEPTH = 16


def is_preflight(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    """True when an ``OPTIONS`` request's headers make it a CORS preflight."""
    origin = method = False
    for name, _ in headers:
        if name == b"origin":
            origin = True
        elif name == b"access-control-request-method":
            method = True
    return origin and method


class RejectedRoute:
    """What ``scope["route"]`` holds for a request the limiter rejected.

    Starlette's router puts the matched route there for requests it serves; a
    rejected request never reaches it, so the middleware puts this instead:
    ``path`` and ``path_format`` are the full route template (``/api/items/{item_id}``),
    which tracing middleware outside the limiter names the span by.
    """

    __slots__ = ("path", "path_format")

    def __init__(self, template: str) -> None:
        self.path = self.path_format = template

    def __repr__(self) -> str:
        return f"RejectedRoute({self.path_format!r})"


def _templates(routes: Any, prefix: str = "", depth: int = 0) -> Iterator[str]:
    """Every full route template under ``routes`` (Starlette syntax), through mounts."""
    if depth > _MAX_DEPTH:
        return
    for route in routes or ():
        included = _compat.fastapi_included_router(route)
        if included is not None:
            yield from _templates(included[1], prefix + included[0], depth + 1)
            continue
        path = getattr(route, "path", None)
        if not isinstance(path, str):
            continue
        inner: Any = getattr(route, "routes", None)
        if getattr(route, "path_format", None) == path + "/{path}" or inner:
            if inner:  # a Mount of a router
                yield from _templates(inner, prefix + path.rstrip("/"), depth + 1)
            else:  # a Mount of another app
                yield prefix + path.rstrip("/") + "/{path:path}"
        else:
            yield prefix + path


class RouteTable:
    """The full route templates of one app, found once, to match paths against."""

    def __init__(self, app: Any) -> None:
        self.templates: list[str] = []
        self._compiled: list[tuple[re.Pattern[str], str]] = []
        try:
            for template in _templates(getattr(app, "routes", None)):
                self._compiled.append(
                    (compile_template(template), _CONVERTER.sub(r"{\1}", template))
                )
                self.templates.append(template)
        except Exception:  # an app we cannot read is judged by nothing
            self._compiled.clear()
            self.templates.clear()

    def warn_unmatched(self, rules: Iterable[Rule]) -> None:
        """Log one warning per rule whose path matches no route of the app."""
        if not self.templates:
            return  # not a Starlette/FastAPI app, or no routes to judge by
        shapes = {_PARAM.sub("{}", t) for t in self.templates}
        for rule in rules:
            path = rule.path
            if path is None:
                continue
            if "{" in path:
                found = _PARAM.sub("{}", path) in shapes
            else:
                prefix = path.rstrip("/")
                found = (
                    not prefix
                    or any(s == prefix or s.startswith(prefix + "/") for s in shapes)
                    or any(regex.match(prefix) for regex, _ in self._compiled)  # in a mount
                )
            if not found:
                logger.warning(
                    "rate-limit %r matches no route of the app (routes: %s); check its "
                    "path (a router's prefix is part of it)",
                    rule,
                    ", ".join(sorted(shapes)[:20]),
                )

    def record(self, scope: MutableMapping[str, Any]) -> None:
        """Put the rejected request's route in ``scope["route"]`` (first match, as routers do)."""
        if "route" in scope:
            return
        path = scope.get("path", "")
        for regex, template in self._compiled:
            if regex.match(path):
                scope["route"] = RejectedRoute(template)
                return
