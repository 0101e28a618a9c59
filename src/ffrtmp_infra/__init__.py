"""ffrtmp-infra: production infrastructure for Python HTTP services.

Three independent subpackages:

* :mod:`ffrtmp_infra.ratelimit`: token-bucket rate limiting as ASGI and WSGI middleware.
* :mod:`ffrtmp_infra.tracing`: one-call OpenTelemetry setup, middleware and propagation.
* :mod:`ffrtmp_infra.resources`: a thread-safe CPU/GPU/RAM manager across nodes.
"""

__version__ = "0.1.0.dev0"

__all__ = ["__version__"]
