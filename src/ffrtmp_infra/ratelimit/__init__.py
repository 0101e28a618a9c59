"""Token-bucket rate limiting with pure ASGI and WSGI middleware.

```python
from ffrtmp_infra.ratelimit import Limiter, RateLimitMiddleware, client_ip

limiter = Limiter(100, 20)  # 100 requests/second, bursts of 20, in memory
app.add_middleware(RateLimitMiddleware, limiter=limiter, key=client_ip())
```
"""

from ffrtmp_infra.ratelimit._decision import Decision
from ffrtmp_infra.ratelimit._errors import ConfigurationError, StorageUnavailableError
from ffrtmp_infra.ratelimit._limiter import Limiter
from ffrtmp_infra.ratelimit._metrics import instrument, uninstrument

__all__ = [
    "ConfigurationError",
    "Decision",
    "Limiter",
    "StorageUnavailableError",
    "instrument",
    "uninstrument",
]
