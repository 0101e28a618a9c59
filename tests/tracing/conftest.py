"""Fixtures for the tracing tests: a fresh SDK provider per test, clean globals."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.metrics import _internal as metrics_api
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.util._once import Once

from ffrtmp_infra.tracing import _setup


def reset_globals() -> None:
    """Undo set_tracer_provider / set_meter_provider (each allowed once per process)
    and init_tracer's memory."""
    trace._TRACER_PROVIDER_SET_ONCE = Once()
    trace._TRACER_PROVIDER = None
    metrics_api._METER_PROVIDER_SET_ONCE = Once()
    metrics_api._METER_PROVIDER = None
    _setup._reset_for_tests()


@pytest.fixture(autouse=True)
def clean_globals() -> Iterator[None]:
    reset_globals()
    yield
    reset_globals()


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> TracerProvider:
    """A private SDK provider exporting synchronously into ``exporter`` (always sampling)."""
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    return tp


def ratio_provider(ratio: float, exporter: InMemorySpanExporter) -> TracerProvider:
    tp = TracerProvider(sampler=ParentBased(TraceIdRatioBased(ratio)))
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    return tp
