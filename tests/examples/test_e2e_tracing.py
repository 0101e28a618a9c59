"""End to end: one trace from the submit on the master to the ffmpeg run on a worker."""

from __future__ import annotations

import signal
from typing import Any

import pytest

from tests.examples.conftest import MasterFactory, WorkerFactory
from tests.examples.helpers import wait_until
from tests.support.otlp import OTLPReceiver, ReceivedSpan

pytestmark = [pytest.mark.ffmpeg, pytest.mark.slow]

FAST_EXPORT = {"OTEL_BSP_SCHEDULE_DELAY": "100"}
STEPS = ("job.create", "job.assign", "job.execute", "ffmpeg.run", "job.complete")


def spans_of(receiver: OTLPReceiver, job_id: str) -> dict[str, ReceivedSpan] | None:
    found = {s.name: s for s in receiver.spans if s.attributes.get("job.id") == job_id}
    return found if all(step in found for step in STEPS) else None


def test_job_steps_form_one_trace_across_master_worker_and_ffmpeg(
    start_master: MasterFactory, start_worker: WorkerFactory, otlp_receiver: OTLPReceiver
) -> None:
    endpoint = ["--otlp-endpoint", otlp_receiver.endpoint]
    master = start_master(*endpoint, env=FAST_EXPORT)
    start_worker(master.url, *endpoint, env={**master.env, **FAST_EXPORT})
    spec: dict[str, Any] = {
        "scenario": "480p-h264",
        "input": {"type": "testsrc", "duration": 1, "size": "320x240"},
        "overrides": {"resolution": "320x240"},
    }
    with master.client() as api:
        job = api.submit(spec)
        assert api.wait(job["id"], timeout=90, interval=0.1)["status"] == "completed"
    spans = wait_until(lambda: spans_of(otlp_receiver, job["id"]), timeout=60, what="the spans")
    assert len({spans[step].trace_id for step in STEPS}) == 1, "one trace"
    execute, run = spans["job.execute"], spans["ffmpeg.run"]
    master_span_ids = {spans["job.create"].span_id, spans["job.assign"].span_id}
    assert execute.parent_span_id in master_span_ids
    assert run.parent_span_id == execute.span_id
    assert execute.resource["service.name"] == "ffrtmp-worker"
    assert execute.attributes["job.attempt"] == 1
    assert run.attributes["process.exit.code"] == 0
    assert spans["job.complete"].attributes["job.status"] == "completed"


# --- no span lost when a process manager stops the master or a worker (issue 18) -----------

#: Nothing leaves the batch processor before the stop: only the exit flush can deliver.
HOLD_SPANS = {"OTEL_BSP_SCHEDULE_DELAY": "600000", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "512"}
SIGNALS = [pytest.param(signal.SIGTERM, id="SIGTERM"), pytest.param(signal.SIGINT, id="SIGINT")]


@pytest.mark.parametrize("signum", SIGNALS)
def test_the_master_exports_every_span_when_stopped_by_a_signal(
    start_master: MasterFactory, otlp_receiver: OTLPReceiver, signum: int
) -> None:
    master = start_master("--otlp-endpoint", otlp_receiver.endpoint, env=HOLD_SPANS)
    spec: dict[str, Any] = {"scenario": "480p-h264", "input": {"type": "testsrc", "duration": 1}}
    with master.client() as api:
        jobs = [api.submit(spec) for _ in range(3)]  # 3 server spans + 3 job.create
        for job in jobs:
            api.job(job["id"])  # 3 server spans
        api.jobs()  # 1 server span
    assert otlp_receiver.spans == [], "held in the batch processor until the stop"
    assert master.process is not None
    master.process.signal(signum)
    master.process.wait(timeout=30)
    received = otlp_receiver.wait_for_spans(10, timeout=10)
    names = sorted(s.name for s in received)
    assert len(received) == 10, names
    assert names.count("job.create") == 3
    assert sum(1 for s in received if s.kind == 2) == 7, names  # SPAN_KIND_SERVER


@pytest.mark.parametrize("signum", SIGNALS)
def test_a_worker_exports_every_span_when_stopped_by_a_signal(
    start_master: MasterFactory,
    start_worker: WorkerFactory,
    otlp_receiver: OTLPReceiver,
    signum: int,
) -> None:
    master = start_master()  # untraced: every span received here is the worker's
    worker = start_worker(
        master.url, "--otlp-endpoint", otlp_receiver.endpoint, env={**master.env, **HOLD_SPANS}
    )
    spec: dict[str, Any] = {
        "scenario": "480p-h264",
        "input": {"type": "testsrc", "duration": 1, "size": "320x240"},
        "overrides": {"resolution": "320x240"},
    }
    with master.client() as api:
        jobs = [api.submit(spec) for _ in range(2)]
        for job in jobs:
            assert api.wait(job["id"], timeout=90, interval=0.1)["status"] == "completed"
    assert otlp_receiver.spans == [], "held in the batch processor until the stop"
    worker.signal(signum)
    assert worker.wait(timeout=60) == 0, worker.log()[-3000:]
    received = otlp_receiver.wait_for_spans(4, timeout=10)
    assert sorted((s.attributes.get("job.id"), s.name) for s in received) == sorted(
        (job["id"], name) for job in jobs for name in ("job.execute", "ffmpeg.run")
    )
