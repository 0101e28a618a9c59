"""The contract users meet on day one, on whatever OpenTelemetry release is installed
(the CI's ``lowest`` session runs it at the declared floor)."""

from __future__ import annotations

from importlib.metadata import version

from opentelemetry.trace import SpanKind
from starlette.testclient import TestClient

from ffrtmp_infra.tracing import TracingConfig, TracingMiddleware, init_tracer
from tests.support.otlp import OTLPReceiver
from tests.tracing.apps import make_app


def test_init_tracer_and_middleware_export_a_server_span_named_by_its_route(
    otlp_receiver: OTLPReceiver,
) -> None:
    handle = init_tracer(
        TracingConfig(
            service_name="contract",
            otlp_endpoint=otlp_receiver.endpoint.removeprefix("http://"),
            export_timeout=5,
        )
    )
    app = make_app()
    app.add_middleware(TracingMiddleware)
    assert TestClient(app).get("/jobs/7").status_code == 200
    handle.shutdown()

    [span] = otlp_receiver.wait_for_spans(1)
    assert span.name == "GET /jobs/{job_id}", version("opentelemetry-sdk")
    assert span.kind == SpanKind.SERVER.value + 1  # OTLP numbers kinds from 1 (INTERNAL)
    assert span.attributes["http.route"] == "/jobs/{job_id}"
    assert span.attributes["http.response.status_code"] == 200
    assert span.resource["service.name"] == "contract"
