"""A small in-test stand-in for the master's worker protocol, served by real uvicorn.

It implements just the wire protocol of BRIEF-EXAMPLES (register, heartbeat, claim,
progress, result, DELETE node) with knobs to make it answer 404/409/410, and records every
call so tests can assert on what the worker sent. The real master is exercised by the
end-to-end tests; this one lets the worker's own behaviour be tested precisely.
"""

from __future__ import annotations

import asyncio
import hmac
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


@dataclass
class Call:
    """One request the fake master received."""

    at: float
    path: str
    body: Any
    headers: dict[str, str]


@dataclass
class FakeMaster:
    """Protocol state and knobs; ``app`` is the Starlette app serving it."""

    worker_key: str | None = None
    heartbeat_interval: float = 0.2
    calls: list[Call] = field(default_factory=list)
    pending: deque[dict[str, Any]] = field(default_factory=deque)
    superseded: set[str] = field(default_factory=set)
    canceled: set[str] = field(default_factory=set)
    cancel_on_heartbeat: set[str] = field(default_factory=set)
    throttle_claims: int = 0
    forget_nodes: bool = False
    removed: bool = False
    #: misbehaviour: raw 200 bodies for the next claims, JSON values for the next heartbeats
    bad_claims: deque[bytes] = field(default_factory=deque)
    bad_heartbeats: deque[Any] = field(default_factory=deque)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.app = Starlette(
            routes=[
                Route("/nodes/register", self._register, methods=["POST"]),
                Route("/nodes/{node_id}/heartbeat", self._heartbeat, methods=["POST"]),
                Route("/nodes/{node_id}/claim", self._claim, methods=["POST"]),
                Route("/nodes/{node_id}", self._delete, methods=["DELETE"]),
                Route("/jobs/{job_id}/progress", self._progress, methods=["POST"]),
                Route("/jobs/{job_id}/result", self._result, methods=["POST"]),
            ]
        )

    # -- test side ---------------------------------------------------------------------------

    def submit(self, spec: dict[str, Any], *, attempt: int = 1, job_id: str | None = None) -> str:
        """Queue an assignment for the next claim; returns its job id."""
        job_id = job_id or str(uuid.uuid4())
        with self.lock:
            self.pending.append(
                {
                    "job_id": job_id,
                    "attempt": attempt,
                    "spec": spec,
                    "trace": {},
                    "stale_timeout": 60.0,
                }
            )
        return job_id

    def of(self, kind: str, job_id: str | None = None) -> list[Call]:
        """The recorded calls whose path ends with ``kind`` (optionally for one job)."""
        with self.lock:
            calls = list(self.calls)
        return [
            c
            for c in calls
            if c.path.endswith(kind) and (job_id is None or f"/jobs/{job_id}/" in c.path)
        ]

    def results(self, job_id: str) -> list[dict[str, Any]]:
        """Every result body posted for ``job_id``."""
        return [c.body for c in self.of("/result", job_id)]

    # -- protocol side -----------------------------------------------------------------------

    async def _record(self, request: Request) -> Response | None:
        body = await request.json() if request.method != "DELETE" else None
        with self.lock:
            self.calls.append(Call(time.monotonic(), request.url.path, body, dict(request.headers)))
        if self.worker_key is not None:
            given = request.headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {self.worker_key}".encode()):
                return JSONResponse({"error": "invalid or missing key"}, status_code=401)
        return None

    async def _register(self, request: Request) -> Response:
        denied = await self._record(request)
        if denied:
            return denied
        self.forget_nodes = False
        self.removed = False
        body = self.calls[-1].body
        return JSONResponse(
            {
                "node_id": body["node_id"],
                "heartbeat_interval": self.heartbeat_interval,
                "heartbeat_timeout": self.heartbeat_interval * 5,
            }
        )

    def _node_problem(self) -> Response | None:
        if self.removed:
            return JSONResponse({"error": "node was removed"}, status_code=410)
        if self.forget_nodes:
            return JSONResponse({"error": "node not registered"}, status_code=404)
        return None

    async def _heartbeat(self, request: Request) -> Response:
        denied = await self._record(request)
        if denied:
            return denied
        problem = self._node_problem()
        if problem:
            return problem
        with self.lock:
            if self.bad_heartbeats:
                return JSONResponse(self.bad_heartbeats.popleft())
            cancel = sorted(self.cancel_on_heartbeat)
            self.cancel_on_heartbeat.clear()
        return JSONResponse({"status": "online", "cancel": cancel})

    async def _claim(self, request: Request) -> Response:
        denied = await self._record(request)
        if denied:
            return denied
        if self.throttle_claims > 0:
            self.throttle_claims -= 1
            return JSONResponse(
                {"error": "rate limited"}, status_code=429, headers={"Retry-After": "1"}
            )
        wait = float(self.calls[-1].body.get("wait", 0))
        deadline = time.monotonic() + min(wait, 30.0)
        while True:
            problem = self._node_problem()
            if problem:
                return problem
            with self.lock:
                if self.bad_claims:
                    return Response(self.bad_claims.popleft(), media_type="application/json")
                if self.pending:
                    return JSONResponse(self.pending.popleft())
            if time.monotonic() >= deadline:
                return Response(status_code=204)
            await asyncio.sleep(0.01)

    def _attempt_problem(self, job_id: str) -> Response | None:
        if job_id in self.canceled:
            return JSONResponse({"error": "canceled"}, status_code=409)
        if job_id in self.superseded:
            return JSONResponse({"error": "superseded"}, status_code=409)
        return None

    async def _progress(self, request: Request) -> Response:
        denied = await self._record(request)
        if denied:
            return denied
        problem = self._attempt_problem(request.path_params["job_id"])
        return problem or JSONResponse({"status": "running"})

    async def _result(self, request: Request) -> Response:
        denied = await self._record(request)
        if denied:
            return denied
        problem = self._attempt_problem(request.path_params["job_id"])
        return problem or JSONResponse({"status": "ok"})

    async def _delete(self, request: Request) -> Response:
        denied = await self._record(request)
        if denied:
            return denied
        self.removed = True
        return JSONResponse({"evicted": []})
