"""init_tracer: real OTLP/HTTP export, sampling, idempotence, existing providers, disabled."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from ffrtmp_infra.tracing import SamplingIdGenerator, TracingConfig, init_tracer
from tests.support.otlp import OTLPReceiver, grpc_trace_collector


@pytest.fixture(autouse=True)
def no_otel_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("OTEL_SDK_DISABLED", "OTEL_TRACES_SAMPLER", "OTEL_SERVICE_NAME"):
        monkeypatch.delenv(var, raising=False)


def test_spans_reach_a_real_otlp_receiver_with_the_resource(otlp_receiver: OTLPReceiver) -> None:
    endpoint = otlp_receiver.endpoint.removeprefix("http://")  # host:port, as in the seed
    handle = init_tracer(
        TracingConfig(
            service_name="ffrtmp-master",
            service_version="1.0.0",
            environment="production",
            otlp_endpoint=endpoint,
            export_timeout=2,
        )
    )
    assert handle.enabled
    assert handle.owned
    assert trace.get_tracer_provider() is handle.provider
    assert isinstance(handle.provider, TracerProvider)
    assert isinstance(handle.provider.id_generator, SamplingIdGenerator)
    with trace.get_tracer("test").start_as_current_span("job.create") as span:
        span.set_attribute("job.id", "j-1")
    handle.shutdown()  # flushes the batch processor
    [received] = otlp_receiver.wait_for_spans(1)
    assert received.name == "job.create"
    assert received.attributes == {"job.id": "j-1"}
    assert received.resource["service.name"] == "ffrtmp-master"
    assert received.resource["service.version"] == "1.0.0"
    assert received.resource["deployment.environment.name"] == "production"
    headers = {k.lower(): v for k, v in otlp_receiver.requests[0].items()}
    assert headers["content-type"] == "application/x-protobuf"


def test_shutdown_is_safe_twice(otlp_receiver: OTLPReceiver) -> None:
    handle = init_tracer(TracingConfig(otlp_endpoint=otlp_receiver.endpoint, export_timeout=1))
    handle.shutdown()
    handle.shutdown()
    assert handle.force_flush() is True


def test_sampling_is_parent_based_ratio() -> None:
    exporter = InMemorySpanExporter()
    handle = init_tracer(TracingConfig(sample_ratio=0.0), exporter=exporter)
    tracer = trace.get_tracer("test")
    with tracer.start_as_current_span("root") as root:
        assert not root.is_recording()
    # A sampled remote parent is followed even at ratio 0.
    parent = trace.SpanContext(
        0x1234, 0x5678, is_remote=True, trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED)
    )
    ctx = trace.set_span_in_context(trace.NonRecordingSpan(parent))
    with tracer.start_as_current_span("child", context=ctx) as child:
        assert child.is_recording()
    handle.force_flush()
    [span] = exporter.get_finished_spans()
    assert span.name == "child"
    assert span.parent is not None
    assert span.parent.span_id == 0x5678
    handle.shutdown()


def test_second_call_returns_the_first_handle(caplog: pytest.LogCaptureFixture) -> None:
    first = init_tracer(TracingConfig(service_name="a"), exporter=InMemorySpanExporter())
    assert init_tracer(TracingConfig(service_name="a")) is first
    with caplog.at_level(logging.WARNING, logger="ffrtmp_infra.tracing"):
        assert init_tracer(TracingConfig(service_name="b")) is first
    assert "already called" in caplog.text
    first.shutdown()


def test_an_installed_provider_is_never_replaced(caplog: pytest.LogCaptureFixture) -> None:
    mine = TracerProvider()
    trace.set_tracer_provider(mine)
    with caplog.at_level(logging.WARNING, logger="ffrtmp_infra.tracing"):
        handle = init_tracer(TracingConfig(service_name="x"), exporter=InMemorySpanExporter())
    assert handle.provider is mine
    assert not handle.owned
    assert trace.get_tracer_provider() is mine
    assert "already installed" in caplog.text
    handle.shutdown()  # not ours: must leave the application's provider running
    exporter = InMemorySpanExporter()
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    mine.add_span_processor(SimpleSpanProcessor(exporter))
    mine.get_tracer("t").start_span("still-works").end()
    assert [s.name for s in exporter.get_finished_spans()] == ["still-works"]


@pytest.mark.parametrize("how", ["config", "env"])
def test_disabled_installs_nothing(monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    if how == "env":
        monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
        config = TracingConfig()
    else:
        config = TracingConfig(enabled=False)
    handle = init_tracer(config)
    assert handle.enabled is False
    assert not handle.owned
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
    with trace.get_tracer("t").start_as_current_span("noop") as span:
        assert not span.is_recording()
    handle.shutdown()


def test_grpc_protocol_builds_the_grpc_exporter() -> None:
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    from ffrtmp_infra.tracing._setup import _exporter

    exporter = _exporter(TracingConfig(protocol="grpc", otlp_endpoint="localhost:4317"))
    try:
        assert isinstance(exporter, OTLPSpanExporter)
    finally:
        exporter.shutdown()


def test_endpoint_from_the_environment_alone(
    monkeypatch: pytest.MonkeyPatch, otlp_receiver: OTLPReceiver
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", otlp_receiver.endpoint)
    monkeypatch.setenv("OTEL_SERVICE_NAME", "from-env")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.version=2.0,team=video")
    handle = init_tracer()  # no config at all: everything from OTEL_*
    trace.get_tracer("test").start_span("env.only").end()
    handle.shutdown()
    [received] = otlp_receiver.wait_for_spans(1)
    assert received.name == "env.only"
    assert received.resource["service.name"] == "from-env"
    assert received.resource["service.version"] == "2.0"
    assert received.resource["team"] == "video"


def test_grpc_export_reaches_a_real_grpc_receiver() -> None:
    received: list[str] = []

    def collect(request: Any) -> None:
        for resource_spans in request.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                received.extend(span.name for span in scope_spans.spans)

    with grpc_trace_collector(collect) as port:
        handle = init_tracer(
            TracingConfig(protocol="grpc", otlp_endpoint=f"127.0.0.1:{port}", export_timeout=5)
        )
        trace.get_tracer("test").start_span("over.grpc").end()
        handle.shutdown()
    assert received == ["over.grpc"]


def test_explicit_enabled_with_sdk_disabled_env_warns(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    with caplog.at_level(logging.WARNING, logger="ffrtmp_infra.tracing"):
        handle = init_tracer(TracingConfig(enabled=True), exporter=InMemorySpanExporter())
    assert "OTEL_SDK_DISABLED=true" in caplog.text
    with trace.get_tracer("t").start_as_current_span("x") as span:
        assert not span.is_recording()
    handle.shutdown()
