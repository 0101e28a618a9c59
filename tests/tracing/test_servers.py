"""Tracing under real servers (issue 12 item 9): FastAPI under uvicorn, Flask under
gunicorn (also with ``--preload``: tracing set up before the fork), Django under gunicorn
(WSGI) and uvicorn (ASGI), each with two workers, exporting over OTLP/HTTP to a real
receiver on loopback.

Each request is one trace with exactly one SERVER span named by the route template,
and the view's KeyError is recorded with its class.
"""

from __future__ import annotations

import time

import httpx
import pytest

from tests.ratelimit.test_servers import gunicorn, serve, uvicorn
from tests.support.otlp import OTLPReceiver, ReceivedSpan
from tests.support.services import free_port

pytestmark = pytest.mark.slow

SERVER = 2  # OTLP SpanKind.SERVER


def gunicorn_preload(target: str, port: int) -> list[str]:
    """gunicorn importing the app (and so running ``init_tracer``) before it forks."""
    return ["gunicorn", "--preload", *gunicorn(target, port)[1:]]


STACKS = {
    "fastapi-uvicorn": (uvicorn, "fastapi", "fastapi_app"),
    "flask-gunicorn": (gunicorn, "flask", "flask_app"),
    "flask-gunicorn-preload": (gunicorn_preload, "flask", "flask_app"),
    "django-gunicorn-wsgi": (gunicorn, "django", "django_wsgi"),
    "django-uvicorn-asgi": (uvicorn, "django", "django_asgi"),
}
PATHS = ["/items/1", "/items/2", "/items/0"]


def server_spans_of(receiver: OTLPReceiver, count: int) -> list[ReceivedSpan]:
    """Wait (bounded) until ``count`` SERVER spans arrived; return every span received."""
    deadline = time.monotonic() + 15
    while sum(s.kind == SERVER for s in receiver.spans) < count:
        assert time.monotonic() < deadline, [(s.name, s.kind) for s in receiver.spans]
        time.sleep(0.05)
    return list(receiver.spans)


@pytest.mark.parametrize("stack", sorted(STACKS))
def test_each_request_is_one_trace_named_by_route_with_the_exception_recorded(
    stack: str, otlp_receiver: OTLPReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", otlp_receiver.endpoint)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")  # ms: spans arrive while we wait
    build, app, target = STACKS[stack]
    port = free_port()
    command = build(f"tests.tracing.server_apps:{target}", port)
    with serve(command, app, "memory://", port) as base, httpx.Client(base_url=base) as client:
        assert [client.get(path).status_code for path in PATHS] == [200, 200, 500]
        spans = server_spans_of(otlp_receiver, len(PATHS))

    # Two worker processes export independently: order the spans by request path.
    servers = sorted((s for s in spans if s.kind == SERVER), key=lambda s: s.attributes["url.path"])
    assert [s.attributes["url.path"] for s in servers] == sorted(PATHS)
    assert {s.name for s in servers} == {"GET /items/{item_id}"}
    traces = {s.trace_id for s in servers}
    assert len(traces) == len(PATHS)  # one trace per request ...
    assert {s.trace_id for s in spans} == traces  # ... holding every span of that request
    assert {s.resource["service.name"] for s in spans} == {f"{app}-under-a-real-server"}

    failed_request = servers[0]  # /items/0
    assert failed_request.status_code == 2  # ERROR
    failed = [s for s in spans if s.trace_id == failed_request.trace_id and s.events]
    assert failed, "the KeyError was recorded on no span"
    for span in failed:
        assert span.attributes["error.type"] == "KeyError"
        [(event, attributes)] = span.events
        assert (event, attributes["exception.type"]) == ("exception", "KeyError")
