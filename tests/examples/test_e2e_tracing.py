"""End to end: one trace from the submit on the master to the ffmpeg run on a worker."""

from __future__ import annotations

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
