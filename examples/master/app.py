"""Assembling the master: store, resource manager, scheduler, routes and middleware.

Request path, outermost first::

    RateLimitMiddleware -> TracingMiddleware -> Starlette (JSON errors) -> auth -> route

The rate limiter is in front so a flood is refused before any other work; the
tracing middleware continues a caller's ``traceparent`` (the worker's job span
on progress and result reports) so one trace spans master and worker.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp

from examples.master.api import build_routes, domain_error
from examples.master.auth import Authenticator, NodeCredentials
from examples.master.config import MasterConfig
from examples.master.errors import APIError, MasterError
from examples.master.metrics import MasterMetrics
from examples.master.scheduler import Scheduler
from examples.master.store import Store, open_store
from ffrtmp_infra.ratelimit import (
    Limiter,
    RateLimitMiddleware,
    Rule,
    client_ip,
    instrument,
)
from ffrtmp_infra.resources import RedisBackend, ResourceManager
from ffrtmp_infra.tracing import DEFAULT_EXCLUDED_URLS, TracingMiddleware

__all__ = ["MasterApp", "create_app"]

log = logging.getLogger("examples.master")

#: Chatter kept out of traces: heartbeats (hundreds a second at scale), 30-s long-poll
#: claims (the handed-over job is traced by job.assign instead) and progress reports
#: (several a second per job). Health and metrics are the library's defaults.
#: the key prefix of the resource ledger in Redis (``--ledger-redis``)
LEDGER_PREFIX = "ffrtmp-master"
UNTRACED_PATHS = (
    *DEFAULT_EXCLUDED_URLS,
    r"^/nodes/[^/]+/heartbeat$",
    r"^/nodes/[^/]+/claim$",
    r"^/jobs/[^/]+/progress$",
)


class MasterApp:
    """The ASGI app plus handles on its parts (for tests, benchmarks and the CLI)."""

    def __init__(self, asgi: ASGIApp, scheduler: Scheduler, store: Store, metrics: MasterMetrics):
        self.asgi = asgi
        self.scheduler = scheduler
        self.store = store
        self.metrics = metrics

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.asgi(scope, receive, send)


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, APIError)
    body = {"error": exc.message, "detail": exc.detail}
    return JSONResponse(body, status_code=exc.status, headers=exc.headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return JSONResponse(
        {"error": exc.detail, "detail": None}, status_code=exc.status_code, headers=exc.headers
    )


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse({"error": "internal error", "detail": None}, status_code=500)


#: Heartbeats, claims, progress and results: limited per node after authentication.
WORKER_REPORTS = (
    "/nodes/{node_id}/heartbeat",
    "/nodes/{node_id}/claim",
    "/jobs/{job_id}/progress",
    "/jobs/{job_id}/result",
)


def _rules(config: MasterConfig) -> list[Rule]:
    """Everything but worker reports is limited per client address, in front of the app.

    Worker reports are left to the API, which limits them per *authenticated* node (see
    ``api.build_routes``): keyed on the ids in the path, as before, anyone could spread a
    flood over made-up node and job ids, and keyed on the address, one NAT'ed rack of
    workers would starve itself. ``/health`` is never limited.
    """
    api = Limiter(config.rate_limit, config.rate_burst, name="api")
    exempt = [Rule(path=path, exempt=True) for path in ("/health", *WORKER_REPORTS)]
    return [*exempt, Rule(api, key=client_ip(trusted_proxies=config.trust_proxies))]


def create_app(
    config: MasterConfig,
    *,
    store: Store | None = None,
    resources: ResourceManager | None = None,
    metrics: MasterMetrics | None = None,
    on_shutdown: Callable[[], object] | None = None,
) -> MasterApp:
    """Build the master. The scheduler starts and stops with the ASGI lifespan.

    ``on_shutdown`` runs at the end of the lifespan, after the scheduler stopped:
    the place to flush telemetry, because uvicorn re-raises SIGTERM once its
    graceful shutdown is over and code after ``uvicorn.run`` never runs then.
    """
    metrics = metrics or MasterMetrics()
    store = store or open_store(config.db)
    resources = resources or ResourceManager(
        RedisBackend(config.ledger_redis, prefix=LEDGER_PREFIX) if config.ledger_redis else None,
        scorer=config.placement,
        meter_provider=metrics.meter_provider,
    )
    scheduler = Scheduler(store, resources, config, metrics=metrics)
    auth = Authenticator(
        api_key=config.api_key,
        worker_key=config.worker_key,
        failure_limit=config.auth_failure_limit,
        failure_window=config.auth_failure_window,
        metrics=metrics,
        credentials=NodeCredentials(store),
        trusted_proxies=config.trust_proxies,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await scheduler.start()
        try:
            yield
        finally:
            try:
                await scheduler.stop()
            finally:
                if on_shutdown is not None:
                    on_shutdown()  # blocks the loop, bounded: nothing is served any more

    starlette = Starlette(
        routes=build_routes(scheduler, config, auth, metrics),
        exception_handlers={
            APIError: _api_error,
            MasterError: domain_error,
            HTTPException: _http_error,
            Exception: _unexpected,
        },
        lifespan=lifespan,
    )
    asgi: ASGIApp = TracingMiddleware(starlette, excluded_urls=UNTRACED_PATHS)
    if config.rate_limit > 0:
        instrument(meter_provider=metrics.meter_provider)
        asgi = RateLimitMiddleware(asgi, rules=_rules(config))
    return MasterApp(asgi, scheduler, store, metrics)
