"""Domain span helpers: names, attributes, parenting, errors; as context managers and decorators."""

from __future__ import annotations

import asyncio

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from ffrtmp_infra.tracing import (
    db_operation,
    inject_headers,
    job_assign,
    job_complete,
    job_create,
    job_execute,
    record_error,
    worker_heartbeat,
    worker_register,
)


@pytest.fixture(autouse=True)
def installed(provider: TracerProvider) -> None:
    trace.set_tracer_provider(provider)  # the helpers use the global provider


def test_job_lifecycle_spans_nest_with_ids_as_attributes(exporter: InMemorySpanExporter) -> None:
    extra = {"ffrtmp.queue": "gpu", "skipped": None}
    with job_create("j-1", codec="h264", **extra) as created, job_assign("j-1", "node-a"):
        pass
    assign, create = exporter.get_finished_spans()
    assert (create.name, assign.name) == ("job.create", "job.assign")
    assert dict(create.attributes or {}) == {
        "job.id": "j-1",
        "job.codec": "h264",
        "ffrtmp.queue": "gpu",
    }
    assert dict(assign.attributes or {}) == {"job.id": "j-1", "node.id": "node-a"}
    assert assign.parent is not None
    assert assign.parent.span_id == created.get_span_context().span_id


def test_job_execute_continues_the_trace_stored_with_the_job(
    exporter: InMemorySpanExporter,
) -> None:
    with job_create("j-2") as created:
        carried = inject_headers()  # what the master stores with the job
    with job_execute("j-2", context=carried, node="n1"):
        pass
    create, execute = exporter.get_finished_spans()
    assert execute.context.trace_id == created.get_span_context().trace_id
    assert execute.parent is not None
    assert execute.parent.span_id == create.context.span_id
    assert execute.attributes is not None
    assert execute.attributes["job.node"] == "n1"


@pytest.mark.parametrize(("status", "error"), [("completed", False), ("failed", True)])
def test_job_complete_marks_failures(
    exporter: InMemorySpanExporter, status: str, error: bool
) -> None:
    with job_complete("j-3", status=status, frames=250):
        pass
    [span] = exporter.get_finished_spans()
    assert span.attributes is not None
    assert span.attributes["job.status"] == status
    assert span.attributes["job.frames"] == 250
    expected = StatusCode.ERROR if error else StatusCode.UNSET
    assert span.status.status_code is expected


def test_worker_spans(exporter: InMemorySpanExporter) -> None:
    with worker_register("node-1", cpu=8, gpu=1):
        pass
    with worker_heartbeat("node-1"):
        pass
    register, heartbeat = exporter.get_finished_spans()
    assert register.name == "worker.register"
    assert dict(register.attributes or {}) == {
        "node.id": "node-1",
        "worker.cpu": 8,
        "worker.gpu": 1,
    }
    assert heartbeat.name == "worker.heartbeat"


def test_db_operation_is_a_client_span_with_db_semconv(exporter: InMemorySpanExporter) -> None:
    with db_operation("claim_job", table="jobs"):
        pass
    [span] = exporter.get_finished_spans()
    assert span.name == "db.claim_job"
    assert span.kind is SpanKind.CLIENT
    assert dict(span.attributes or {}) == {
        "db.system.name": "sqlite",
        "db.operation.name": "claim_job",
        "db.collection.name": "jobs",
    }


def test_db_operation_rejects_sql_as_a_name() -> None:
    with pytest.raises(ValueError, match="operation must be a short identifier"):
        db_operation("SELECT * FROM jobs WHERE id = 42")


def test_decorator_on_sync_and_async_functions(exporter: InMemorySpanExporter) -> None:
    @db_operation("select", table="jobs")
    def load(job_id: str) -> str:
        return job_id.upper()

    @worker_heartbeat("node-9")
    async def beat() -> int:
        await asyncio.sleep(0)
        return trace.get_current_span().get_span_context().span_id

    assert load("a") == "A"
    assert load("b") == "B"
    span_id = asyncio.run(beat())
    names = [s.name for s in exporter.get_finished_spans()]
    assert names == ["db.select", "db.select", "worker.heartbeat"]
    assert exporter.get_finished_spans()[2].context.span_id == span_id
    assert load.__name__ == "load"


def test_async_context_manager(exporter: InMemorySpanExporter) -> None:
    async def work() -> None:
        async with job_execute("j-4") as span:
            assert trace.get_current_span() is span

    asyncio.run(work())
    assert [s.name for s in exporter.get_finished_spans()] == ["job.execute"]


def test_exceptions_are_recorded_with_urls_redacted(exporter: InMemorySpanExporter) -> None:
    with pytest.raises(ConnectionError), job_execute("j-5"):
        raise ConnectionError("cannot publish to rtmp://live.example/app/sk-SECRET")
    [span] = exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes is not None
    assert span.attributes["error.type"] == "ConnectionError"
    [event] = span.events
    assert event.attributes is not None
    assert event.attributes["exception.message"] == (
        "cannot publish to rtmp://live.example/app/REDACTED"
    )
    assert "sk-SECRET" not in str(event.attributes["exception.stacktrace"])
    assert "sk-SECRET" not in (span.status.description or "")


def test_record_error_on_a_non_recording_span_does_nothing() -> None:
    record_error(trace.INVALID_SPAN, RuntimeError("x"))  # must not raise


def test_helpers_cost_nothing_without_a_provider(exporter: InMemorySpanExporter) -> None:
    from tests.tracing.conftest import reset_globals

    reset_globals()
    with job_create("j-6") as span:
        assert not span.is_recording()
    assert exporter.get_finished_spans() == ()


def test_without_a_provider_a_given_context_still_propagates() -> None:
    from tests.tracing.conftest import reset_globals

    reset_globals()
    carried = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
    with job_execute("j-7", context=carried):
        assert inject_headers()["traceparent"] == carried["traceparent"]
    assert inject_headers() == {}


def test_job_execute_accepts_a_bare_traceparent(exporter: InMemorySpanExporter) -> None:
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    with job_execute("j-8", context=traceparent):
        pass
    [span] = exporter.get_finished_spans()
    assert format(span.context.trace_id, "032x") == "0af7651916cd43dd8448eb211c80319c"
    with pytest.raises(TypeError, match="context must be a Context"):
        job_execute("j-9", context=42)  # type: ignore[arg-type]
