"""The reference master and worker against a real OpenTelemetry collector (rotel).

Both processes are configured with ``OTEL_*`` variables only, export over gRPC or
OTLP/HTTP with gzip, hold every span in their batch processor until they are stopped
with a signal (so only the exit flush can deliver them), and the test counts what the
collector received (rotel forwards it to a protobuf-decoding receiver), HTTP metrics too.
"""

from __future__ import annotations

import signal
from collections import Counter
from typing import Any

import httpx
import pytest

from tests.examples.conftest import MasterFactory, MasterProcess, WorkerFactory
from tests.support.otlp import ReceivedSpan
from tests.support.rotel import RotelCollector

pytestmark = [pytest.mark.slow]

PROTOCOLS = ["grpc", "http/protobuf"]
SIGNALS = [pytest.param(signal.SIGTERM, id="SIGTERM"), pytest.param(signal.SIGINT, id="SIGINT")]
SERVER, STATUS_UNSET = 2, 0
STEPS = ("job.create", "job.assign", "job.execute", "ffmpeg.run", "job.complete")
SPEC: dict[str, Any] = {
    "scenario": "480p-h264",
    "input": {"type": "testsrc", "duration": 1, "size": "320x240"},
    "overrides": {"resolution": "320x240"},
}


def otel_env(rotel: RotelCollector, protocol: str) -> dict[str, str]:
    """Only OTEL_* settings, as a user would deploy; spans held until the process stops."""
    return {
        "OTEL_SDK_DISABLED": "false",
        "OTEL_EXPORTER_OTLP_ENDPOINT": rotel.endpoint(protocol),
        "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
        "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip",
        "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment.name=interop",
        "OTEL_BSP_SCHEDULE_DELAY": "600000",
        "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "512",
    }


def stop(master: MasterProcess, signum: int) -> None:
    assert master.process is not None
    master.process.signal(signum)
    master.process.wait(timeout=30)


@pytest.mark.parametrize("signum", SIGNALS)
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_every_master_span_reaches_the_collector(
    start_master: MasterFactory, rotel: RotelCollector, protocol: str, signum: int
) -> None:
    master = start_master("--rate-limit", "0", env=otel_env(rotel, protocol))
    sent: Counter[tuple[str, int]] = Counter()  # (span name, status) of each request
    with master.client() as api:
        for _ in range(20):
            job = api.submit(SPEC)
            sent["POST /jobs", 201] += 1
            api.job(job["id"])
            sent["GET /jobs/{job_id}", 200] += 1
        api.jobs()
        sent["GET /jobs", 200] += 1
    auth = {"Authorization": f"Bearer {master.api_key}"}
    with httpx.Client(base_url=master.url, headers=auth, timeout=10) as http:
        for i in range(10):  # refused requests are traced too, with their status
            response = http.get(f"/jobs/missing-{i}")
            sent["GET /jobs/{job_id}", response.status_code] += 1
            response = http.post("/jobs", json={"scenario": "no-such-scenario"})
            sent["POST /jobs", response.status_code] += 1
    assert {status for _, status in sent} == {200, 201, 404, 422}, sent
    total = sum(sent.values()) + 20  # and a job.create span per job
    assert rotel.downstream.spans == [], "held in the batch processor until the stop"
    stop(master, signum)
    received = rotel.downstream.wait_for_spans(total, timeout=20)
    assert len(received) == total, f"sent {total}, received {len(received)}"
    servers = [s for s in received if s.kind == SERVER]
    assert Counter((s.name, s.attributes["http.response.status_code"]) for s in servers) == sent
    assert {s.status_code for s in servers} == {STATUS_UNSET}  # 4xx is not a server error
    assert sum(1 for s in received if s.name == "job.create") == 20
    resource = received[0].resource
    assert resource["service.name"] == "ffrtmp-master"
    assert resource["deployment.environment.name"] == "interop"
    assert resource["telemetry.sdk.language"] == "python"
    assert resource["telemetry.distro.name"] == "ffrtmp-infra"
    assert all(s.resource == resource for s in received)
    # The HTTP server metrics were flushed at the stop too, through the same collector:
    # every request counted once under its route and status, sampled or not.
    exports = rotel.downstream.wait_for_metric_exports(1, timeout=20)
    [last] = [e for e in exports if any(p.resource == resource for p in e)][-1:]
    measured: Counter[tuple[str, int]] = Counter()
    for point in last:
        if point.metric == "http.server.request.duration":
            name = f"{point.attributes['http.request.method']} {point.attributes['http.route']}"
            measured[name, point.attributes["http.response.status_code"]] += point.count
    assert measured == sent


def by_job(spans: list[ReceivedSpan], job_id: str) -> dict[str, ReceivedSpan]:
    return {s.name: s for s in spans if s.attributes.get("job.id") == job_id}


@pytest.mark.ffmpeg
@pytest.mark.parametrize("signum", SIGNALS)
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_one_trace_per_job_across_master_and_worker_through_the_collector(
    start_master: MasterFactory,
    start_worker: WorkerFactory,
    rotel: RotelCollector,
    protocol: str,
    signum: int,
) -> None:
    env = otel_env(rotel, protocol)
    master = start_master(env=env)
    worker = start_worker(master.url, env={**master.env, **env})
    with master.client() as api:
        jobs = [api.submit(SPEC)["id"] for _ in range(2)]
        for job_id in jobs:
            assert api.wait(job_id, timeout=90, interval=0.1)["status"] == "completed"
    assert rotel.downstream.spans == [], "held in the batch processors until the stop"
    worker.signal(signum)
    assert worker.wait(timeout=60) == 0, worker.log()[-3000:]
    stop(master, signum)
    # The worker's spans are exactly two per job; the master's include every step.
    rotel.downstream.wait_for_spans(len(jobs) * len(STEPS), timeout=20)
    spans = list(rotel.downstream.spans)  # everything that arrived by now
    worker_spans = [s for s in spans if s.resource["service.name"] == "ffrtmp-worker"]
    assert len(worker_spans) == 2 * len(jobs), [s.name for s in worker_spans]
    for job_id in jobs:
        steps = by_job(spans, job_id)
        assert set(STEPS) <= set(steps), f"{job_id}: {sorted(steps)}"
        assert len({steps[step].trace_id for step in STEPS}) == 1, "one trace per job"
        execute, run = steps["job.execute"], steps["ffmpeg.run"]
        assert execute.parent_span_id in {steps["job.create"].span_id, steps["job.assign"].span_id}
        assert run.parent_span_id == execute.span_id
        assert execute.resource["service.name"] == "ffrtmp-worker"
        assert steps["job.complete"].resource["service.name"] == "ffrtmp-master"
        assert run.attributes["process.exit.code"] == 0
        assert steps["job.complete"].attributes["job.status"] == "completed"
        # the master's span for the worker's result report is a child of job.execute
        [report] = [
            s
            for s in spans
            if s.kind == SERVER
            and s.name == "POST /jobs/{job_id}/result"
            and s.trace_id == execute.trace_id
        ]
        assert report.parent_span_id == execute.span_id
        assert steps["job.complete"].parent_span_id == report.span_id
    # nothing orphaned: every parent inside a job's trace arrived too
    ids = {s.span_id for s in spans}
    job_traces = {by_job(spans, job_id)["job.create"].trace_id for job_id in jobs}
    orphans = [
        s.name
        for s in spans
        if s.trace_id in job_traces and s.parent_span_id and s.parent_span_id not in ids
    ]
    assert orphans == []
