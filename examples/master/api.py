"""HTTP routes: thin handlers that validate, authorise and call the scheduler."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import math
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

import ffrtmp_infra
from examples.common.scenarios import SCENARIOS
from examples.common.spec import QUEUES, SpecError, validate_spec
from examples.master import wire
from examples.master.auth import NODE_TOKEN_HEADER, Authenticator
from examples.master.config import MasterConfig
from examples.master.errors import (
    APIError,
    Conflict,
    Gone,
    Invalid,
    MasterError,
    NotFound,
    StoreUnavailable,
)
from examples.master.metrics import CONTENT_TYPE, MasterMetrics
from examples.master.openapi import openapi_document
from examples.master.scheduler import NodeState, Scheduler
from examples.master.store import AttemptRecord, JobRecord
from ffrtmp_infra.ratelimit import Limiter
from ffrtmp_infra.tracing import job_complete, redact_url

__all__ = ["HTTP_STATUS", "MAX_BODY", "build_routes", "domain_error", "job_json", "node_json"]

MAX_BODY = 256 * 1024
#: Long-poll claims one node may hold open at once (a worker needs one; two allow a retry
#: to overlap a claim the master has not yet seen end).
MAX_OPEN_CLAIMS = 2
#: A non-negative integer SQLite can hold (str.isdigit also takes "²" and any length).
_COUNT = re.compile(r"[0-9]{1,18}")
JOB_STATUSES = ("queued", "assigned", "running", "completed", "failed", "canceled")
Handler = Callable[[Request], Awaitable[Response]]

#: The HTTP status of each domain error the scheduler and store raise.
HTTP_STATUS: dict[type[MasterError], int] = {
    NotFound: 404,
    Gone: 410,
    Conflict: 409,
    Invalid: 422,
    StoreUnavailable: 503,
}


async def domain_error(request: Request, exc: Exception) -> Response:
    """Render a :class:`MasterError` as ``{"error", "detail"}`` with its mapped status."""
    assert isinstance(exc, MasterError)
    status = next((code for kind, code in HTTP_STATUS.items() if isinstance(exc, kind)), 500)
    headers = {"Retry-After": "5"} if status == 503 else None
    return JSONResponse(
        {"error": exc.message, "detail": exc.detail}, status_code=status, headers=headers
    )


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def shown_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """A spec as submitters see it: stream keys and URL credentials redacted.

    Every submitter can read every job, so a live job's stream key (the worker gets it in
    its assignment) is never shown back.
    """
    shown = dict(spec)
    for part in ("input", "output"):
        value = spec.get(part)
        if isinstance(value, dict) and isinstance(value.get("url"), str):
            shown[part] = {**value, "url": redact_url(value["url"])}
    return shown


def job_json(job: JobRecord, attempts: list[AttemptRecord] | None = None) -> dict[str, Any]:
    """A job as the API shows it (timestamps as ISO 8601 UTC, secrets redacted)."""
    data: dict[str, Any] = {
        "id": job.id,
        "seq": job.seq,
        "status": job.status,
        "scenario": job.scenario,
        "queue": job.queue,
        "priority": job.priority,
        "spec": shown_spec(job.spec),
        "node_id": job.node_id,
        "attempt": job.attempt,
        "failures": job.failures,
        "progress": job.progress,
        "result": job.result,
        "error": job.error,
        "dead_letter": job.dead_letter,
        "retry_at": _iso(job.retry_at),
        "created_at": _iso(job.created_at),
        "assigned_at": _iso(job.assigned_at),
        "started_at": _iso(job.started_at),
        "finished_at": _iso(job.finished_at),
    }
    if attempts is not None:
        data["attempts"] = [
            {
                "attempt": a.attempt,
                "node_id": a.node_id,
                "assigned_at": _iso(a.assigned_at),
                "started_at": _iso(a.started_at),
                "finished_at": _iso(a.finished_at),
                "outcome": a.outcome,
                "error": a.error,
            }
            for a in attempts
        ]
    return data


def node_json(scheduler: Scheduler, state: NodeState) -> dict[str, Any]:
    """A node as the API shows it, with the attempts running on it."""
    record = state.record
    return {
        "id": record.id,
        "status": record.status,
        "capacity": record.capacity,
        "labels": record.labels,
        "encoders": record.encoders,
        "version": record.version,
        "registered_at": _iso(record.registered_at),
        "last_heartbeat": _iso(state.last_heartbeat),
        "jobs": [
            {"job_id": a.job_id, "attempt": a.attempt} for a in scheduler.running_on(record.id)
        ],
        "available": scheduler.available(record.id),
    }


async def read_json(request: Request, *, optional: bool = False, limit: int = MAX_BODY) -> Any:
    """The request body as JSON (``None`` if empty and ``optional``), or a 400/413."""
    declared = request.headers.get("content-length")
    if declared is not None and _COUNT.fullmatch(declared) and int(declared) > limit:
        raise APIError(413, f"request body larger than {limit} bytes")
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > limit:
            raise APIError(413, f"request body larger than {limit} bytes")
    if not raw.strip():
        if optional:
            return None
        raise APIError(400, "request body must be a JSON object")
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise APIError(400, f"request body is not valid JSON: {exc}"[:300]) from None


async def _disconnected(request: Request) -> None:
    """Return when the client closes the connection (the body was already read)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def _validated(validate: Callable[[Any], Any], body: Any) -> Any:
    try:
        return validate(body)
    except SpecError as exc:
        raise APIError(422, str(exc), {"field": exc.field, "rule": exc.rule}) from None


def build_routes(
    scheduler: Scheduler, config: MasterConfig, auth: Authenticator, metrics: MasterMetrics
) -> list[Route]:
    """The master's routes, each wrapped with the auth check for its role."""

    def guarded(role: str | tuple[str, ...], handler: Handler) -> Handler:
        roles = (role,) if isinstance(role, str) else role

        async def endpoint(request: Request) -> Response:
            await auth.check(request, *roles)
            return await handler(request)

        return endpoint

    reports = Limiter(config.worker_rate_limit, config.worker_rate_burst, name="worker")
    open_claims: collections.Counter[str] = collections.Counter()

    async def limit_reports(request: Request, node_id: str) -> None:
        """Worker reports per authenticated node (per client while the id holds no token)."""
        if auth.credentials.has(node_id):
            key = f"node:{node_id}"
        else:
            key = f"client:{auth.client(request)}"
        decision = await reports.ahit(key)
        if not decision.allowed:
            seconds = max(1, math.ceil(decision.retry_after))
            raise APIError(
                429,
                "too many reports from this node; slow down",
                {"retry_after": seconds},
                headers={"Retry-After": str(seconds)},
            )

    def node_guarded(handler: Handler, *, operator: bool = False, limited: bool = True) -> Handler:
        """The worker key plus the token of the node named in the path (see auth)."""

        async def endpoint(request: Request) -> Response:
            node_id = request.path_params["node_id"]
            await auth.check_node(request, node_id, operator=operator)
            if limited:
                await limit_reports(request, node_id)
            return await handler(request)

        return endpoint

    async def own_attempt(request: Request, job_id: str, report: dict[str, Any]) -> None:
        """403 unless the reporting node is authenticated and the attempt was given to it."""
        await auth.check_node(request, report["node_id"])
        await limit_reports(request, report["node_id"])
        holder = scheduler.attempt_node(job_id, report["attempt"])
        if holder is not None and holder != report["node_id"]:
            await auth.count_failure(request, "node")
            raise APIError(403, "this attempt was assigned to another node", {"field": "node_id"})

    # -- public ---------------------------------------------------------------------------

    async def health(request: Request) -> Response:
        report = scheduler.health()
        return JSONResponse(report, status_code=503 if report["status"] == "unhealthy" else 200)

    async def metrics_endpoint(request: Request) -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    # -- submitter ------------------------------------------------------------------------

    async def create_job(request: Request) -> Response:
        spec = _validated(validate_spec, await read_json(request))
        # resolving the input host may block on DNS: keep it off the event loop
        check = config.destinations.check_spec
        await asyncio.to_thread(_validated, check, spec)
        job = scheduler.submit(spec)
        return JSONResponse(job_json(job), status_code=201)

    async def list_jobs(request: Request) -> Response:
        params = request.query_params
        status = params.get("status")
        if status is not None and status not in JOB_STATUSES:
            raise APIError(
                422, f"status must be one of {', '.join(JOB_STATUSES)}", {"field": "status"}
            )
        queue = params.get("queue")
        if queue is not None and queue not in QUEUES:
            raise APIError(422, f"queue must be one of {', '.join(QUEUES)}", {"field": "queue"})
        limit_raw, cursor_raw = params.get("limit", "50"), params.get("cursor")
        if not _COUNT.fullmatch(limit_raw) or not 1 <= int(limit_raw) <= 500:
            raise APIError(422, "limit must be an integer in 1..500", {"field": "limit"})
        if cursor_raw is not None and not _COUNT.fullmatch(cursor_raw):
            raise APIError(
                422, "cursor must be the next_cursor of a previous page", {"field": "cursor"}
            )
        limit = int(limit_raw)
        jobs = scheduler.list_jobs(
            status=status,
            queue=queue,
            before_seq=int(cursor_raw) if cursor_raw else None,
            limit=limit,
        )
        next_cursor = str(jobs[-1].seq) if len(jobs) == limit else None
        return JSONResponse({"jobs": [job_json(j) for j in jobs], "next_cursor": next_cursor})

    async def get_job(request: Request) -> Response:
        job, attempts = scheduler.job_with_attempts(request.path_params["job_id"])
        return JSONResponse(job_json(job, attempts))

    async def cancel_job(request: Request) -> Response:
        return JSONResponse(job_json(scheduler.cancel(request.path_params["job_id"])))

    async def retry_job(request: Request) -> Response:
        return JSONResponse(job_json(scheduler.retry(request.path_params["job_id"])))

    async def list_scenarios(request: Request) -> Response:
        scenarios = [SCENARIOS[name].to_dict() for name in sorted(SCENARIOS)]
        return JSONResponse({"scenarios": scenarios})

    async def list_nodes(request: Request) -> Response:
        params = request.query_params
        limit_raw, cursor = params.get("limit", "100"), params.get("cursor", "")
        if not _COUNT.fullmatch(limit_raw) or not 1 <= int(limit_raw) <= 500:
            raise APIError(422, "limit must be an integer in 1..500", {"field": "limit"})
        limit = int(limit_raw)
        states = scheduler.list_nodes(after=cursor, limit=limit)
        nodes = [node_json(scheduler, state) for state in states]
        next_cursor = states[-1].record.id if len(states) == limit else None
        return JSONResponse({"nodes": nodes, "count": len(nodes), "next_cursor": next_cursor})

    async def get_node(request: Request) -> Response:
        state = scheduler.node(request.path_params["node_id"])
        return JSONResponse(node_json(scheduler, state))

    async def remove_node(request: Request) -> Response:
        node_id = request.path_params["node_id"]
        evicted = scheduler.remove_node(node_id)
        auth.credentials.revoke(node_id)
        return JSONResponse(
            {"node_id": request.path_params["node_id"], "status": "removed", "evicted": evicted}
        )

    # -- worker ---------------------------------------------------------------------------

    async def register(request: Request) -> Response:
        raw = await read_json(request, limit=wire.MAX_REGISTER_BODY)
        body = _validated(wire.validate_register, raw)
        node_id = body["node_id"]
        presented = request.headers.get(NODE_TOKEN_HEADER, "")
        known = auth.credentials.has(node_id)
        if known and not (presented and auth.credentials.verify(node_id, presented)):
            # Re-registering a node needs its token: else any holder of the enrollment key
            # could take over another node's identity, jobs and stream keys.
            await auth.count_failure(request, "node")
            raise APIError(
                403,
                f"node {node_id!r} is registered to another worker: present its "
                f"{NODE_TOKEN_HEADER}, or have an operator DELETE /nodes/{node_id} first",
                {"field": "node_id"},
            )
        state = scheduler.register_node(body)
        token = presented if known else auth.credentials.issue(node_id)
        return JSONResponse(
            {
                "node_id": state.record.id,
                "node_token": token,
                "heartbeat_interval": config.heartbeat_interval,
                "heartbeat_timeout": config.heartbeat_timeout,
            }
        )

    async def heartbeat(request: Request) -> Response:
        running = _validated(wire.validate_heartbeat, await read_json(request, optional=True))
        return JSONResponse(scheduler.heartbeat(request.path_params["node_id"], running))

    async def claim(request: Request) -> Response:
        body = await read_json(request, optional=True)
        wait = _validated(lambda b: wire.validate_claim(b, config.claim_wait_max), body)
        node_id = request.path_params["node_id"]
        if open_claims[node_id] >= MAX_OPEN_CLAIMS:
            raise APIError(
                429,
                f"at most {MAX_OPEN_CLAIMS} open claims per node",
                {"retry_after": 1},
                headers={"Retry-After": "1"},
            )
        open_claims[node_id] += 1
        try:
            return await _claim(request, node_id, wait)
        finally:
            open_claims[node_id] -= 1
            if open_claims[node_id] <= 0:
                del open_claims[node_id]

    async def _claim(request: Request, node_id: str, wait: float) -> Response:
        waiting = asyncio.ensure_future(scheduler.claim(node_id, wait))
        gone = asyncio.ensure_future(_disconnected(request))
        await asyncio.wait({waiting, gone}, return_when=asyncio.FIRST_COMPLETED)
        gone.cancel()
        if not waiting.done():
            # The worker hung up (crashed, restarted): stop waiting so the next job is not
            # handed to a connection nobody reads.
            waiting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await waiting
            return Response(status_code=204)
        assignment = waiting.result()
        if assignment is None:
            return Response(status_code=204)
        return JSONResponse(assignment)

    async def progress(request: Request) -> Response:
        report = _validated(wire.validate_progress, await read_json(request))
        await own_attempt(request, request.path_params["job_id"], report)
        scheduler.progress(request.path_params["job_id"], report)
        return JSONResponse({"status": "running"})

    async def result(request: Request) -> Response:
        report = _validated(wire.validate_result, await read_json(request))
        job_id = request.path_params["job_id"]
        await own_attempt(request, job_id, report)
        with job_complete(job_id, status=report["status"], attempt=report["attempt"]):
            job = scheduler.result(job_id, report)
        return JSONResponse({"status": job.status, "job_id": job.id, "attempt": job.attempt})

    document: dict[str, Any] = {}

    async def openapi(request: Request) -> Response:
        if not document:  # built on first use, from the routes as served
            document.update(openapi_document(routes, version=ffrtmp_infra.__version__))
        return JSONResponse(document)

    submitter, worker = "submitter", "worker"
    routes = [
        Route("/health", health, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
        Route("/jobs", guarded(submitter, create_job), methods=["POST"]),
        Route("/jobs", guarded(submitter, list_jobs), methods=["GET"]),
        Route("/jobs/{job_id}", guarded(submitter, get_job), methods=["GET"]),
        Route("/jobs/{job_id}/cancel", guarded(submitter, cancel_job), methods=["POST"]),
        Route("/jobs/{job_id}/retry", guarded(submitter, retry_job), methods=["POST"]),
        Route("/jobs/{job_id}/progress", guarded(worker, progress), methods=["POST"]),
        Route("/jobs/{job_id}/result", guarded(worker, result), methods=["POST"]),
        Route("/scenarios", guarded(submitter, list_scenarios), methods=["GET"]),
        Route("/nodes", guarded(submitter, list_nodes), methods=["GET"]),
        Route("/nodes/register", guarded(worker, register), methods=["POST"]),
        Route("/nodes/{node_id}", guarded(submitter, get_node), methods=["GET"]),
        # an operator removes (and revokes) any node; a worker deregisters itself on SIGTERM
        Route(
            "/nodes/{node_id}",
            node_guarded(remove_node, operator=True, limited=False),
            methods=["DELETE"],
        ),
        Route("/nodes/{node_id}/heartbeat", node_guarded(heartbeat), methods=["POST"]),
        Route("/nodes/{node_id}/claim", node_guarded(claim), methods=["POST"]),
    ]
    return routes
