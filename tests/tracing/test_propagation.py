"""Propagation helpers, and one trace across two real uvicorn servers and a child process."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from subprocess import PIPE

import httpx
import pytest
from opentelemetry import baggage, context, trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ffrtmp_infra.tracing import (
    TracingMiddleware,
    async_httpx_request_hook,
    context_from_env,
    extract_headers,
    httpx_request_hook,
    inject_headers,
    subprocess_env,
)
from ffrtmp_infra.tracing._compat import RANDOM_TRACE_ID
from tests.support.otlp import OTLPReceiver
from tests.support.servers import serve_asgi

CHILD = Path(__file__).with_name("child_process.py")
ROOT = Path(__file__).resolve().parents[2]


def hexid(value: int, width: int) -> str:
    return format(value, f"0{width}x")


def test_inject_and_extract_round_trip(provider: TracerProvider) -> None:
    with provider.get_tracer("t").start_as_current_span("caller") as span:
        token = context.attach(baggage.set_baggage("job.id", "j-1"))
        try:
            headers = inject_headers()
        finally:
            context.detach(token)
    sc = span.get_span_context()
    flags = f"{0x01 | RANDOM_TRACE_ID:02x}"  # sampled, plus "random" where the SDK sets it
    assert headers["traceparent"] == f"00-{hexid(sc.trace_id, 32)}-{hexid(sc.span_id, 16)}-{flags}"
    assert headers["baggage"] == "job.id=j-1"
    # Header names match case-insensitively, as they arrive from many clients.
    extracted = extract_headers({"TraceParent": headers["traceparent"], "Baggage": "job.id=j-1"})
    remote = trace.get_current_span(extracted).get_span_context()
    assert (remote.trace_id, remote.span_id, remote.is_remote) == (sc.trace_id, sc.span_id, True)
    assert baggage.get_baggage("job.id", extracted) == "j-1"


def test_inject_adds_to_a_given_mapping_and_nothing_without_a_span() -> None:
    headers = {"accept": "application/json"}
    assert inject_headers(headers) is headers
    assert headers == {"accept": "application/json"}


def test_httpx_hooks_add_traceparent(provider: TracerProvider) -> None:
    seen: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("traceparent"))
        return httpx.Response(204)

    with provider.get_tracer("t").start_as_current_span("caller") as span:
        with httpx.Client(
            transport=httpx.MockTransport(handler), event_hooks={"request": [httpx_request_hook]}
        ) as client:
            client.get("http://worker/")

        async def call() -> None:
            async with httpx.AsyncClient(
                transport=httpx.MockTransport(handler),
                event_hooks={"request": [async_httpx_request_hook]},
            ) as client:
                await client.get("http://worker/")

        asyncio.run(call())
    trace_hex = hexid(span.get_span_context().trace_id, 32)
    assert len(seen) == 2
    assert all(value is not None and trace_hex in value for value in seen)


def test_subprocess_env_replaces_stale_carriers(provider: TracerProvider) -> None:
    stale = {"PATH": "/bin", "TRACEPARENT": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"}
    assert subprocess_env(stale) == {"PATH": "/bin"}  # no span: nothing stale passes on
    with provider.get_tracer("t").start_as_current_span("parent") as span:
        env = subprocess_env(stale)
    sc = span.get_span_context()
    assert env["TRACEPARENT"].split("-")[1:3] == [hexid(sc.trace_id, 32), hexid(sc.span_id, 16)]
    remote = trace.get_current_span(context_from_env(env)).get_span_context()
    assert remote.span_id == sc.span_id


def test_context_from_env_without_carrier_is_empty() -> None:
    assert not trace.get_current_span(context_from_env({})).get_span_context().is_valid


@pytest.mark.slow
def test_one_trace_across_two_servers_and_a_child_process(
    provider: TracerProvider, exporter: InMemorySpanExporter, otlp_receiver: OTLPReceiver
) -> None:
    """master (uvicorn) --httpx--> worker (uvicorn) --TRACEPARENT--> child python process."""

    async def run_job(request: Request) -> Response:
        env = subprocess_env({"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}"})
        child = await asyncio.create_subprocess_exec(
            sys.executable, str(CHILD), otlp_receiver.endpoint, env=env, stdout=PIPE, stderr=PIPE
        )
        stdout, stderr = await asyncio.wait_for(child.communicate(), timeout=30)
        assert child.returncode == 0, stderr.decode()
        return JSONResponse(json.loads(stdout))

    worker = Starlette(routes=[Route("/jobs/{job_id}/run", run_job, methods=["POST"])])
    worker.add_middleware(TracingMiddleware, tracer_provider=provider)

    with serve_asgi(worker) as worker_url:

        async def assign(request: Request) -> Response:
            token = context.attach(baggage.set_baggage("job.id", request.path_params["job_id"]))
            try:
                async with httpx.AsyncClient(
                    event_hooks={"request": [async_httpx_request_hook]}, timeout=30
                ) as client:
                    reply = await client.post(f"{worker_url}/jobs/j-9/run")
            finally:
                context.detach(token)
            return JSONResponse(reply.json())

        master = Starlette(routes=[Route("/jobs/{job_id}/assign", assign, methods=["POST"])])
        master.add_middleware(TracingMiddleware, tracer_provider=provider)
        with serve_asgi(master) as master_url:
            child_ids = httpx.post(f"{master_url}/jobs/j-9/assign", timeout=30).json()

    spans = {s.name: s for s in exporter.get_finished_spans()}
    master_span = spans["POST /jobs/{job_id}/assign"]
    worker_span = spans["POST /jobs/{job_id}/run"]
    assert master_span.kind is worker_span.kind is SpanKind.SERVER
    assert master_span.parent is None
    trace_id = master_span.context.trace_id
    assert worker_span.context.trace_id == trace_id
    assert worker_span.parent is not None
    assert worker_span.parent.span_id == master_span.context.span_id
    assert worker_span.parent.is_remote

    assert child_ids["parent_trace_id"] == hexid(trace_id, 32)
    assert child_ids["parent_span_id"] == hexid(worker_span.context.span_id, 16)
    assert child_ids["baggage"] == "j-9"  # baggage travelled master -> worker -> child
    [child_span] = otlp_receiver.wait_for_spans(1)
    assert child_span.name == "child.work"
    assert child_span.trace_id == hexid(trace_id, 32)
    assert child_span.parent_span_id == hexid(worker_span.context.span_id, 16)
    assert child_span.resource["service.name"] == "child"
