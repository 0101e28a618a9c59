"""Token-bucket rate limiting with pure ASGI and WSGI middleware.

```python
from ffrtmp_infra.ratelimit import Limiter, RateLimitMiddleware, client_ip

limiter = Limiter(100, 20)  # 100 requests/second, bursts of 20, in memory
app.add_middleware(RateLimitMiddleware, limiter=limiter, key=client_ip())
```
"""

from ffrtmp_infra.ratelimit._asgi import RateLimitMiddleware
from ffrtmp_infra.ratelimit._decision import Decision
from ffrtmp_infra.ratelimit._errors import (
    ConfigurationError,
    MissingExtraError,
    StorageUnavailableError,
)
from ffrtmp_infra.ratelimit._headers import Rejection, rate_limit_headers, rejection
from ffrtmp_infra.ratelimit._keys import KeyFunction, RequestInfo, api_key, client_ip
from ffrtmp_infra.ratelimit._limiter import Limiter
from ffrtmp_infra.ratelimit._metrics import instrument, uninstrument
from ffrtmp_infra.ratelimit._rules import Rule
from ffrtmp_infra.ratelimit._window import WindowLimiter
from ffrtmp_infra.ratelimit._wsgi import WSGIRateLimitMiddleware

__all__ = [
    "ConfigurationError",
    "Decision",
    "KeyFunction",
    "Limiter",
    "MissingExtraError",
    "RateLimitMiddleware",
    "Rejection",
    "RequestInfo",
    "Rule",
    "StorageUnavailableError",
    "WSGIRateLimitMiddleware",
    "WindowLimiter",
    "api_key",
    "client_ip",
    "instrument",
    "rate_limit_headers",
    "rejection",
    "uninstrument",
]
