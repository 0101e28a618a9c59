"""Per-view rate limits for Flask, as a decorator.

```python
from flask import Flask

from ffrtmp_infra.ratelimit import Limiter
from ffrtmp_infra.ratelimit.flask import limit

app = Flask(__name__)


@app.post("/uploads")
@limit(Limiter(1, 5))
def upload():
    return {"status": "accepted"}
```

Needs Flask (``pip install 'ffrtmp-infra[flask]'``).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

try:
    import flask
except ImportError as exc:  # pragma: no cover - exercised without the extra
    from ffrtmp_infra.ratelimit._errors import MissingExtraError

    raise MissingExtraError("ffrtmp_infra.ratelimit.flask", "flask", "Flask") from exc

from ffrtmp_infra.ratelimit._decision import Decision
from ffrtmp_infra.ratelimit._headers import HeaderMode, rate_limit_headers, rejection
from ffrtmp_infra.ratelimit._keys import KeyFunction, RequestInfo
from ffrtmp_infra.ratelimit._rules import LimiterSource
from ffrtmp_infra.ratelimit._views import ViewLimit

__all__ = ["limit"]

View = TypeVar("View", bound=Callable[..., Any])


def limit(
    limiter: LimiterSource,
    key: KeyFunction | None = None,
    cost: int | Callable[[RequestInfo], int] = 1,
    *,
    name: str | None = None,
    headers: HeaderMode = "draft10",
) -> Callable[[View], View]:
    """Decorate a Flask view (sync or async) with a rate limit.

    Put it below ``@app.route``. A rejected request gets exactly the WSGI
    middleware's ``429`` (problem+json, ``Retry-After``, quota headers); an allowed
    response carries the quota headers. A request already charged for ``limiter``
    (by :class:`WSGIRateLimitMiddleware` or another ``limit`` of it) is not charged
    again. ``key`` (synchronous), ``cost``, ``name`` and ``headers`` are those of
    :class:`ffrtmp_infra.ratelimit.fastapi.RateLimit`.

    Raises:
        ConfigurationError: an invalid limiter, key, cost, name or header mode.
    """
    view_limit = ViewLimit(limiter, key, cost, name, headers, allow_async_keys=False)

    def decide() -> tuple[Any, Decision | None]:
        """(the rejection response or None, the decision to report)."""
        environ = flask.request.environ
        if view_limit.charged(environ):
            return None, None
        decision = view_limit.decide(RequestInfo.from_environ(environ))
        if decision is None or decision.allowed:
            return None, decision
        found = rejection(decision, mode=headers)
        return flask.Response(found.body, status=found.status, headers=found.headers), None

    def with_headers(result: Any, decision: Decision | None) -> Any:
        if decision is None:
            return result
        response = flask.current_app.make_response(result)
        response.headers.extend(rate_limit_headers(decision, mode=headers))
        return response

    def decorate(view: View) -> View:
        if inspect.iscoroutinefunction(view):

            @functools.wraps(view)
            async def limited_async(*args: Any, **kwargs: Any) -> Any:
                rejected, decision = decide()
                if rejected is not None:
                    return rejected
                return with_headers(await view(*args, **kwargs), decision)

            return limited_async  # type: ignore[return-value]

        @functools.wraps(view)
        def limited(*args: Any, **kwargs: Any) -> Any:
            rejected, decision = decide()
            if rejected is not None:
                return rejected
            return with_headers(view(*args, **kwargs), decision)

        return limited  # type: ignore[return-value]

    return decorate
