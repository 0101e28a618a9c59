"""Per-route rate limits for FastAPI, as a dependency.

```python
from fastapi import Depends, FastAPI

from ffrtmp_infra.ratelimit import Limiter
from ffrtmp_infra.ratelimit.fastapi import RateLimit

app = FastAPI()


@app.post("/uploads", dependencies=[Depends(RateLimit(Limiter(1, 5)))])
async def upload() -> dict[str, str]:
    return {"status": "accepted"}
```

Needs FastAPI (``pip install 'ffrtmp-infra[fastapi]'``).
"""

# No ``from __future__ import annotations``: FastAPI before 0.115.x cannot resolve a
# callable instance's string annotations, and would take ``request`` for a query parameter.
from collections.abc import Callable
from http import HTTPStatus

try:
    from fastapi import HTTPException, Request, Response
except ImportError as exc:  # pragma: no cover - exercised without the extra
    from ffrtmp_infra.ratelimit._errors import MissingExtraError

    raise MissingExtraError("ffrtmp_infra.ratelimit.fastapi", "fastapi", "FastAPI") from exc

from ffrtmp_infra.ratelimit import _compat
from ffrtmp_infra.ratelimit._decision import Decision
from ffrtmp_infra.ratelimit._headers import HeaderMode, Rejection, rate_limit_headers, rejection
from ffrtmp_infra.ratelimit._keys import KeyFunction, RequestInfo
from ffrtmp_infra.ratelimit._rules import LimiterSource
from ffrtmp_infra.ratelimit._views import ViewLimit

__all__ = ["RateLimit", "RateLimitExceeded"]

_BODY_HEADERS = frozenset({"content-type", "content-length"})


class RateLimitExceeded(HTTPException):
    """Raised by :class:`RateLimit` for a rejected request; answered with its ``rejection``.

    The dependency registers a handler sending :attr:`rejection` as it is (the
    middleware's 429). Register your own with
    ``app.add_exception_handler(RateLimitExceeded, handler)`` to answer otherwise.
    """

    def __init__(self, rejection: Rejection) -> None:
        headers = {n: v for n, v in rejection.headers if n.lower() not in _BODY_HEADERS}
        phrase = HTTPStatus(rejection.status).phrase  # Too Many Requests, Service Unavailable
        super().__init__(rejection.status, detail=phrase, headers=headers)
        self.rejection = rejection


async def send_rejection(request: Request, exc: Exception) -> Response:
    """The exception handler answering :class:`RateLimitExceeded` with its rejection."""
    assert isinstance(exc, RateLimitExceeded)
    found = exc.rejection
    return Response(found.body, status_code=found.status, headers=dict(found.headers))


class RateLimit:
    """A FastAPI dependency limiting the requests of a route, a router or an app.

    ``@app.get("/items", dependencies=[Depends(RateLimit(Limiter(10, 5)))])``, or in
    ``APIRouter(dependencies=[...])`` / ``FastAPI(dependencies=[...])``.

    A rejected request gets exactly :class:`~ffrtmp_infra.ratelimit.RateLimitMiddleware`'s
    answer: ``429`` ``application/problem+json`` with ``Retry-After`` and the quota
    headers (``503`` when a limiter failing closed cannot reach its storage). An
    allowed request's response carries the quota headers (through FastAPI's
    ``Response`` parameter, which applies unless the endpoint returns a ``Response``
    object itself). The dependency's value is the :class:`Decision` (``None`` when
    the request was exempt or already charged).

    A request is charged once per limiter: when ``RateLimitMiddleware`` (or another
    ``RateLimit`` of the same limiter and name, say on the router and the route)
    already charged it, this one lets it through without charging again.

    Args:
        limiter: a :class:`Limiter` or :class:`WindowLimiter`, or a callable choosing
            one per request (``None`` exempts), as in :class:`Rule`.
        key: key function (default :func:`client_ip`); may be async.
        cost: units charged, an int or ``(RequestInfo) -> int``.
        name: give this dependency its own buckets of ``limiter`` (keys are
            ``name:<key>``); by default the buckets are the limiter's own, shared with
            the middleware and every other use of the limiter.
        headers: ``"draft10"`` (default), ``"legacy"`` or ``None``, as the middleware's.

    Raises:
        ConfigurationError: an invalid limiter, key, cost, name or header mode.
    """

    def __init__(
        self,
        limiter: LimiterSource,
        key: KeyFunction | None = None,
        cost: int | Callable[[RequestInfo], int] = 1,
        name: str | None = None,
        *,
        headers: HeaderMode = "draft10",
    ) -> None:
        self._limit = ViewLimit(limiter, key, cost, name, headers, allow_async_keys=True)
        self.limiter = limiter
        self.name = name
        self.headers = headers

    def __repr__(self) -> str:
        return f"RateLimit({self.limiter!r}, name={self.name!r})"

    async def __call__(self, request: Request, response: Response) -> Decision | None:
        scope = request.scope
        limit = self._limit
        if limit.charged(scope):
            return None
        decision = await limit.adecide(RequestInfo.from_scope(scope))
        if decision is None:
            return None
        if decision.allowed:
            for name, value in rate_limit_headers(decision, mode=self.headers):
                response.headers.append(name, value)
            return decision
        _compat.add_exception_handler(scope, RateLimitExceeded, send_rejection)
        raise RateLimitExceeded(rejection(decision, mode=self.headers))
