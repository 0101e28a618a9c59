"""``init_tracer`` installs a meter provider too: OTLP metrics to the traces' collector,
honouring ``OTEL_METRICS_EXPORTER``, ``OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`` and
``OTEL_METRIC_EXPORT_INTERVAL``, never replacing the application's provider."""

from __future__ import annotations

import logging

import pytest
from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from ffrtmp_infra.tracing import (
    DURATION_BUCKETS,
    ConfigurationError,
    TracingConfig,
    TracingMiddleware,
    init_tracer,
)
from ffrtmp_infra.tracing._compat import MEASUREMENT_CONTEXT
from tests.support.otlp import OTLPReceiver, ReceivedPoint
from tests.support.services import free_port

METRIC_VARIABLES = (
    "OTEL_METRICS_EXPORTER",
    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    "OTEL_METRIC_EXPORT_INTERVAL",
    "OTEL_PYTHON_ASGI_EXCLUDED_URLS",
    "OTEL_PYTHON_EXCLUDED_URLS",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in METRIC_VARIABLES:
        monkeypatch.delenv(name, raising=False)


async def item(request: Request) -> PlainTextResponse:
    return PlainTextResponse(request.path_params["item_id"])


def serve(requests: int) -> None:
    client = TestClient(TracingMiddleware(Starlette(routes=[Route("/items/{item_id}", item)])))
    for i in range(requests):
        assert client.get(f"/items/{i}").status_code == 200


def durations(exports: list[list[ReceivedPoint]]) -> list[ReceivedPoint]:
    return [p for points in exports for p in points if p.metric == "http.server.request.duration"]


# --- the endpoint and the variables, resolved at construction ------------------


def test_metrics_follow_the_traces_collector(monkeypatch: pytest.MonkeyPatch) -> None:
    assert TracingConfig(otlp_endpoint="collector:4318").metrics_endpoint == (
        "http://collector:4318/v1/metrics"
    )
    assert TracingConfig(otlp_endpoint="https://gw/otlp/v1/traces").metrics_endpoint == (
        "https://gw/otlp/v1/metrics"
    )
    assert TracingConfig(otlp_endpoint="collector:4317", protocol="grpc").metrics_endpoint == (
        "http://collector:4317"
    )
    assert TracingConfig().metrics_endpoint is None  # the exporter's own default
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://base:4318/")
    assert TracingConfig().metrics_endpoint == "http://base:4318/v1/metrics"


def test_the_metrics_endpoint_variable_is_used_as_written(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://metrics:9000/custom")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://base:4318")
    config = TracingConfig(otlp_endpoint="collector:4318")
    assert config.metrics_endpoint == "http://metrics:9000/custom"
    assert config.traces_endpoint == "http://collector:4318/v1/traces"


def test_the_traces_only_variables_are_not_followed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://traces:4318/v1/traces")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc")
    config = TracingConfig()
    assert config.metrics_endpoint is None
    assert config.metrics_protocol == "http/protobuf"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "grpc")
    assert TracingConfig().metrics_protocol == "grpc"


def test_the_metrics_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    assert TracingConfig().metrics_exporter == "otlp"  # the specification's default
    assert TracingConfig().metric_export_interval == 60.0
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "250")
    assert TracingConfig().metric_export_interval == 0.25  # milliseconds in the variable
    assert TracingConfig(metric_export_interval=5).metric_export_interval == 5.0
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "none")
    assert TracingConfig().metrics is False
    assert TracingConfig().metrics_exporter == "none"
    assert TracingConfig(metrics=True).metrics_exporter == "otlp"  # code wins
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "console")
    assert TracingConfig().metrics_exporter == "console"
    assert TracingConfig(metrics=False).metrics_exporter == "none"


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("OTEL_METRICS_EXPORTER", "prometheus", "OTEL_METRICS_EXPORTER must be one of"),
        ("OTEL_METRICS_EXPORTER", "otlp,console", "OTEL_METRICS_EXPORTER must be one of"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "soon", "OTEL_METRIC_EXPORT_INTERVAL must be"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "-5", "OTEL_METRIC_EXPORT_INTERVAL must be"),
        ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "http/json", "METRICS_PROTOCOL must be"),
        ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "ftp://x:1", "METRICS_ENDPOINT must be"),
    ],
)
def test_bad_metrics_variables_fail_at_construction(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError, match=message) as caught:
        TracingConfig()
    assert repr(value) in str(caught.value)


@pytest.mark.parametrize("bad", [0, -1.0, float("inf"), "60", True])
def test_a_bad_export_interval_fails_at_construction(bad: object) -> None:
    with pytest.raises(ConfigurationError, match="metric_export_interval must be"):
        TracingConfig(metric_export_interval=bad)  # type: ignore[arg-type]


def test_with_metrics_off_their_variables_are_not_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "soon")
    assert TracingConfig(metrics=False).metrics_exporter == "none"


# --- init_tracer ---------------------------------------------------------------


def test_init_tracer_exports_the_http_metrics_to_a_real_receiver(
    otlp_receiver: OTLPReceiver,
) -> None:
    handle = init_tracer(
        TracingConfig(
            service_name="metered",
            otlp_endpoint=otlp_receiver.endpoint.removeprefix("http://"),
            export_timeout=5,
        )
    )
    assert handle.meter_provider is metrics.get_meter_provider()
    assert handle.meter_provider_owned
    serve(5)
    handle.shutdown()  # flushes spans and metrics

    assert len(otlp_receiver.wait_for_spans(5)) == 5
    [point] = durations(otlp_receiver.wait_for_metric_exports(1))
    assert point.unit == "s"
    assert point.count == 5
    assert point.bounds == DURATION_BUCKETS
    assert point.attributes["http.route"] == "/items/{item_id}"
    assert point.attributes["http.response.status_code"] == 200
    assert point.resource["service.name"] == "metered"
    exemplar_spans = {span_id for _, span_id in point.exemplars}
    if MEASUREMENT_CONTEXT:
        assert exemplar_spans  # sampled (ratio 1): the points link to server spans
        assert exemplar_spans <= {s.span_id for s in otlp_receiver.spans}
    else:
        assert exemplar_spans == set()  # an SDK from before exemplars (documented)
    [active] = [
        p
        for points in otlp_receiver.metric_exports
        for p in points
        if p.metric == "http.server.active_requests"
    ]
    assert (active.kind, active.monotonic, active.value) == ("sum", False, 0)


def test_the_metrics_endpoint_variable_reaches_the_receiver(
    otlp_receiver: OTLPReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The general endpoint is dead; the metrics one, used as written, is the receiver.
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv(
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", f"{otlp_receiver.endpoint}/v1/metrics"
    )
    handle = init_tracer(TracingConfig(export_timeout=1))
    serve(2)
    handle.shutdown(timeout=2)
    assert durations(otlp_receiver.wait_for_metric_exports(1))[0].count == 2


def test_the_export_interval_variable_sets_the_period(
    otlp_receiver: OTLPReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "100")
    handle = init_tracer(TracingConfig(otlp_endpoint=otlp_receiver.endpoint, export_timeout=5))
    serve(1)
    exports = otlp_receiver.wait_for_metric_exports(2)  # without shutdown: periodic exports
    assert durations(exports)
    handle.shutdown()


def test_metrics_exporter_none_installs_no_meter_provider(
    monkeypatch: pytest.MonkeyPatch, otlp_receiver: OTLPReceiver
) -> None:
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "none")
    handle = init_tracer(TracingConfig(otlp_endpoint=otlp_receiver.endpoint, export_timeout=5))
    assert handle.meter_provider is None
    assert type(metrics.get_meter_provider()).__name__ == "_ProxyMeterProvider"
    serve(1)
    handle.shutdown()
    otlp_receiver.wait_for_spans(1)
    assert otlp_receiver.metric_exports == []


def test_an_installed_meter_provider_is_never_replaced(
    otlp_receiver: OTLPReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    reader = InMemoryMetricReader()
    mine = MeterProvider(metric_readers=[reader])
    metrics.set_meter_provider(mine)
    with caplog.at_level(logging.INFO, logger="ffrtmp_infra.tracing"):
        handle = init_tracer(TracingConfig(otlp_endpoint=otlp_receiver.endpoint, export_timeout=5))
    assert "already installed" in caplog.text
    assert handle.meter_provider is mine
    assert not handle.meter_provider_owned
    assert metrics.get_meter_provider() is mine
    serve(3)
    handle.shutdown()  # not ours: the application's provider keeps running
    serve(1)
    data = reader.get_metrics_data()
    assert data is not None
    [duration] = [
        m
        for r in data.resource_metrics
        for s in r.scope_metrics
        for m in s.metrics
        if m.name == "http.server.request.duration"
    ]
    assert sum(p.count for p in duration.data.data_points) == 4  # type: ignore[union-attr]
    assert otlp_receiver.metric_exports == []


def test_a_metric_reader_replaces_the_exporter() -> None:
    reader = InMemoryMetricReader()
    handle = init_tracer(
        TracingConfig(otlp_endpoint=f"127.0.0.1:{free_port()}"), metric_reader=reader
    )
    serve(2)
    data = reader.get_metrics_data()
    assert data is not None
    names = {m.name for r in data.resource_metrics for s in r.scope_metrics for m in s.metrics}
    assert "http.server.request.duration" in names
    handle.shutdown(timeout=1)
