"""The master's HTTP API under real uvicorn on loopback, on SQLite and on PostgreSQL."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from examples.master.app import MasterApp, create_app
from examples.master.config import MasterConfig

from tests.support.postgres import PostgresServer
from tests.support.servers import serve_asgi

API_KEY = "submitter-key-0123456789abcdef"
WORKER_KEY = "worker-key-0123456789abcdef"
SUBMIT = {"Authorization": f"Bearer {API_KEY}"}
WORKER = {"Authorization": f"Bearer {WORKER_KEY}"}


@dataclass
class Master:
    url: str
    app: MasterApp
    client: httpx.Client
    tokens: dict[str, str] = dataclasses.field(default_factory=dict)

    def node(self, node_id: str) -> dict[str, str]:
        """Headers of node ``node_id``: the worker key and its node token."""
        return {**WORKER, "X-Node-Token": self.tokens.get(node_id, "")}

    def submit(self, **spec: Any) -> dict[str, Any]:
        body = {"scenario": "720p-h264", "input": {"type": "testsrc", "duration": 2}, **spec}
        response = self.client.post("/jobs", json=body, headers=SUBMIT)
        assert response.status_code == 201, response.text
        return dict(response.json())

    def register(self, node_id: str, cpu: float = 4) -> None:
        body = {
            "node_id": node_id,
            "capacity": {"cpu": cpu, "ram_gb": 8, "gpu": 0, "extended": {}},
            "labels": {"zone": "test"},
            "encoders": ["libx264", "aac"],
            "version": "test",
        }
        response = self.client.post("/nodes/register", json=body, headers=self.node(node_id))
        assert response.status_code == 200, response.text
        self.tokens[node_id] = response.json()["node_token"]

    def claim(self, node_id: str, wait: float = 5.0) -> httpx.Response:
        return self.client.post(
            f"/nodes/{node_id}/claim", json={"wait": wait}, headers=self.node(node_id)
        )

    def report(self, job_id: str, kind: str, **body: Any) -> httpx.Response:
        headers = self.node(str(body.get("node_id")))
        return self.client.post(f"/jobs/{job_id}/{kind}", json=body, headers=headers)


def _serve(db: str, **config: Any) -> Iterator[Master]:
    settings: dict[str, Any] = {
        "db": db,
        "api_key": API_KEY,
        "worker_key": WORKER_KEY,
        "heartbeat_interval": 0.5,
        "heartbeat_timeout": 2.0,
        "monitor_interval": 0.1,
        "rate_limit": 1000.0,
        "rate_burst": 1000,
    }
    settings.update(config)
    app = create_app(MasterConfig(**settings))
    with serve_asgi(app) as url, httpx.Client(base_url=url, timeout=10) as client:
        yield Master(url, app, client)
    app.store.close()


@pytest.fixture
def master(db: str) -> Iterator[Master]:
    yield from _serve(db)


def test_health_needs_no_key_and_is_degraded_until_a_node_is_online(master: Master) -> None:
    response = master.client.get("/health")
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["reasons"]) == (
        "degraded",
        ["no node online"],
    )
    master.register("n1")
    assert master.client.get("/health").json()["status"] == "healthy"


def test_health_is_503_with_the_reason_while_the_database_is_unreachable(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    for master in _serve(postgres_url):
        master.register("n1")
        job = master.submit()
        with postgres_server.refusing_connections():
            response = master.client.get("/health")
            assert response.status_code == 503
            assert response.json()["status"] == "unhealthy"
            # The connection was cut ("PostgreSQL at ...: terminating connection"), or the
            # master's own background duties met the cut first and this is already the
            # refused reconnection: either way the reason names the database.
            reason = response.json()["reasons"][0]
            assert reason.startswith("database: "), reason
            assert "PostgreSQL at " in reason, reason
            again = master.client.get("/health")  # a reconnection is tried, and refused
            assert "cannot connect to PostgreSQL" in again.json()["reasons"][0]
            # every route that needs the store answers 503 too, not a 500
            refused = master.client.get(f"/jobs/{job['id']}", headers=SUBMIT)
            assert (refused.status_code, refused.headers["retry-after"]) == (503, "5")
        assert master.client.get("/health").json()["status"] == "healthy"
        assert master.client.get(f"/jobs/{job['id']}", headers=SUBMIT).status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "headers"),
    [
        ("GET", "/jobs", {}),
        ("POST", "/jobs", {"Authorization": "Bearer wrong-key-wrong-key-wrong"}),
        ("POST", "/jobs", WORKER),  # a worker key cannot submit
        ("POST", "/nodes/register", SUBMIT),  # a submitter key cannot register a node
        ("GET", "/nodes", {"Authorization": API_KEY}),  # no Bearer prefix
    ],
)
def test_missing_or_wrong_key_gets_401_json(
    master: Master, method: str, path: str, headers: dict[str, str]
) -> None:
    response = master.client.request(method, path, json={}, headers=headers)
    assert response.status_code == 401
    assert "error" in response.json()


def test_bad_specs_get_422_naming_the_field_and_queue_nothing(master: Master) -> None:
    bad = [
        (
            {"scenario": "720p-h264", "input": {"type": "file", "path": "../../etc/passwd"}},
            "input.path",
        ),
        ({"scenario": "nope"}, "scenario"),
        ({"scenario": "720p-h264", "args": ["-f", "null"]}, "args"),
        (
            {"scenario": "720p-h264", "input": {"type": "testsrc", "duration": 1e12}},
            "input.duration",
        ),
        ({"scenario": "720p-h264", "priority": ["high"]}, "priority"),
    ]
    for body, field in bad:
        response = master.client.post("/jobs", json=body, headers=SUBMIT)
        assert response.status_code == 422, body
        assert response.json()["detail"]["field"] == field
    response = master.client.post("/jobs", content=b"{not json", headers=SUBMIT)
    assert response.status_code == 400
    assert master.client.get("/jobs", headers=SUBMIT).json()["jobs"] == []


def test_job_lifecycle_submit_claim_progress_result(master: Master) -> None:
    master.register("w1")
    job = master.submit()
    assert job["status"] == "queued"
    claim = master.claim("w1")
    assert claim.status_code == 200
    assignment = claim.json()
    assert (assignment["job_id"], assignment["attempt"]) == (job["id"], 1)
    assert assignment["spec"]["scenario"] == "720p-h264"
    assert assignment["stale_timeout"] > 0
    progress = master.report(job["id"], "progress", node_id="w1", attempt=1, percent=40.0, fps=90.0)
    assert progress.json() == {"status": "running"}
    assert master.client.get(f"/jobs/{job['id']}", headers=SUBMIT).json()["status"] == "running"
    result = master.report(
        job["id"],
        "result",
        node_id="w1",
        attempt=1,
        status="completed",
        exit_code=0,
        outputs=[{"path": f"{job['id']}/output.mp4", "size": 1234}],
        media_duration_s=2.0,
        wall_time_s=1.0,
        speed=2.0,
    )
    assert result.status_code == 200, result.text
    done = master.client.get(f"/jobs/{job['id']}", headers=SUBMIT).json()
    assert done["status"] == "completed"
    assert done["result"]["outputs"][0]["size"] == 1234
    assert [a["outcome"] for a in done["attempts"]] == ["completed"]
    again = master.report(job["id"], "result", node_id="w1", attempt=1, status="completed")
    assert again.status_code == 409


def test_long_poll_claim_gets_a_job_submitted_while_waiting(master: Master) -> None:
    master.register("w1")
    with httpx.Client(base_url=master.url, timeout=30) as other:
        import threading

        box: dict[str, httpx.Response] = {}

        def wait_for_job() -> None:
            box["r"] = other.post("/nodes/w1/claim", json={"wait": 20}, headers=master.node("w1"))

        waiter = threading.Thread(target=wait_for_job)
        waiter.start()
        time.sleep(0.2)
        job = master.submit()
        waiter.join(timeout=20)
    # 200, not the 204 that comes after the 20 s wait: the job was handed over on submit.
    assert box["r"].status_code == 200
    assert box["r"].json()["job_id"] == job["id"]


def test_claim_with_nothing_queued_returns_204(master: Master) -> None:
    master.register("w1")
    assert master.claim("w1", wait=0.1).status_code == 204


def test_unknown_node_gets_404_and_removed_node_410(master: Master) -> None:
    assert master.client.post("/nodes/ghost/heartbeat", json={}, headers=WORKER).status_code == 404
    assert master.claim("ghost", wait=0).status_code == 404
    master.register("w1")
    removed = master.client.delete("/nodes/w1", headers=SUBMIT)
    assert removed.json() == {"node_id": "w1", "status": "removed", "evicted": []}
    beat = master.client.post(
        "/nodes/w1/heartbeat", json={"running": []}, headers=master.node("w1")
    )
    assert beat.status_code == 410


def test_a_worker_deregisters_its_node_with_its_node_token(master: Master) -> None:
    master.register("w1")
    denied = master.client.delete("/nodes/w1", headers={"Authorization": "Bearer wrong"})
    assert denied.status_code == 401
    removed = master.client.delete("/nodes/w1", headers=master.node("w1"))
    assert removed.status_code == 200, removed.text
    assert removed.json()["status"] == "removed"
    assert master.client.get("/nodes/w1", headers=SUBMIT).status_code == 410  # gone


def test_removing_a_node_requeues_its_jobs(master: Master) -> None:
    master.register("w1")
    job = master.submit()
    assert master.claim("w1").status_code == 200
    removed = master.client.delete("/nodes/w1", headers=SUBMIT).json()
    assert removed["evicted"] == [job["id"]]
    assert master.client.get(f"/jobs/{job['id']}", headers=SUBMIT).json()["status"] == "queued"
    late = master.report(job["id"], "result", node_id="w1", attempt=1, status="completed")
    assert (late.status_code, late.json()["error"]) == (409, "superseded")


def test_cancel_then_progress_says_canceled(master: Master) -> None:
    master.register("w1")
    job = master.submit()
    master.claim("w1")
    canceled = master.client.post(f"/jobs/{job['id']}/cancel", headers=SUBMIT)
    assert canceled.json()["status"] == "canceled"
    response = master.report(job["id"], "progress", node_id="w1", attempt=1, percent=10.0)
    assert (response.status_code, response.json()["error"]) == (409, "canceled")
    retried = master.client.post(f"/jobs/{job['id']}/retry", headers=SUBMIT)
    assert retried.json()["status"] in ("queued", "assigned")


def test_bad_worker_reports_get_422(master: Master) -> None:
    master.register("w1")
    job = master.submit()
    master.claim("w1")
    for body, field in [
        ({"node_id": "w1", "attempt": "1"}, "attempt"),
        ({"node_id": "w1", "attempt": 1, "percent": 400}, "percent"),
        ({"node_id": "../x", "attempt": 1}, "node_id"),
    ]:
        response = master.report(job["id"], "progress", **body)
        assert response.status_code == 422
        assert response.json()["detail"]["field"] == field
    bad_result = master.report(
        job["id"],
        "result",
        node_id="w1",
        attempt=1,
        status="completed",
        outputs=[{"path": "/etc/x", "size": 1}],
    )
    assert bad_result.json()["detail"]["field"] == "outputs[0].path"


def test_list_jobs_filters_and_pages(master: Master) -> None:
    ids = [master.submit()["id"] for _ in range(5)]
    page = master.client.get("/jobs", params={"limit": 2}, headers=SUBMIT).json()
    assert [j["id"] for j in page["jobs"]] == ids[::-1][:2]
    rest = master.client.get(
        "/jobs", params={"limit": 10, "cursor": page["next_cursor"]}, headers=SUBMIT
    ).json()
    assert [j["id"] for j in rest["jobs"]] == ids[::-1][2:]
    assert rest["next_cursor"] is None
    queued = master.client.get("/jobs", params={"status": "queued"}, headers=SUBMIT).json()
    assert len(queued["jobs"]) == 5
    bad = master.client.get("/jobs", params={"status": "lost"}, headers=SUBMIT)
    assert bad.status_code == 422


def test_nodes_list_and_detail(master: Master) -> None:
    master.register("w1", cpu=2)
    job = master.submit()
    master.claim("w1")
    nodes = master.client.get("/nodes", headers=SUBMIT).json()
    assert nodes["count"] == 1
    detail = master.client.get("/nodes/w1", headers=SUBMIT).json()
    assert detail["status"] == "online"
    assert detail["jobs"] == [{"job_id": job["id"], "attempt": 1}]
    assert detail["available"]["cpu"] == 1.0  # 2 CPUs registered, a 720p-h264 job holds 1
    assert master.client.get("/nodes/nope", headers=SUBMIT).status_code == 404


def test_metrics_exposes_jobs_queues_nodes_and_library_metrics(master: Master) -> None:
    master.register("w1", cpu=1)
    master.submit()
    master.submit()
    text = master.client.get("/metrics").text
    assert 'ffrtmp_jobs{status="queued"}' in text or 'ffrtmp_jobs{status="assigned"}' in text
    assert 'ffrtmp_queue_length{priority="medium",queue="default"}' in text
    assert 'ffrtmp_nodes{status="online"} 1.0' in text
    assert "ffrtmp_job_wait_seconds_bucket" in text


def test_heartbeat_timeout_marks_node_offline_and_requeues(master: Master) -> None:
    master.register("w1")
    master.register("w2")
    job = master.submit()
    holder = None
    for node in ("w1", "w2"):
        if master.claim(node, wait=0.2).status_code == 200:
            holder = node
    assert holder is not None
    survivor = "w2" if holder == "w1" else "w1"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        master.client.post(
            f"/nodes/{survivor}/heartbeat", json={"running": []}, headers=master.node(survivor)
        )
        status = master.client.get(f"/nodes/{holder}", headers=SUBMIT).json()["status"]
        if status == "offline":
            break
        time.sleep(0.2)
    assert status == "offline"
    claim = master.claim(survivor, wait=5)
    assert claim.json()["job_id"] == job["id"]
    assert claim.json()["attempt"] == 2


def test_restart_recovers_jobs_and_accepts_the_running_attempt(db: str) -> None:
    first = _serve(db)
    m = next(first)
    m.register("w1")
    running = m.submit()
    m.claim("w1")
    m.report(running["id"], "progress", node_id="w1", attempt=1, percent=10.0)
    queued = m.submit(scenario="1080p-h264-nvenc")
    first.close()

    second = _serve(db)
    m2 = next(second)
    m2.tokens = m.tokens  # the worker keeps its node token across the master's restart
    try:
        assert m2.client.get(f"/jobs/{queued['id']}", headers=SUBMIT).json()["status"] == "queued"
        done = m2.report(running["id"], "result", node_id="w1", attempt=1, status="completed")
        assert done.status_code == 200, done.text
        assert (
            m2.client.get(f"/jobs/{running['id']}", headers=SUBMIT).json()["status"] == "completed"
        )
        # the counters are counted in the store: the restart did not reset them
        text = m2.client.get("/metrics").text
        assert 'ffrtmp_jobs_submitted_total{queue="default"} 2.0' in text
        assert 'ffrtmp_jobs_placed_total{queue="default"} 1.0' in text
        assert 'ffrtmp_jobs_finished_total{outcome="completed"} 1.0' in text
    finally:
        second.close()


def test_scenarios_lists_the_registry_with_resources(master: Master) -> None:
    scenarios = master.client.get("/scenarios", headers=SUBMIT).json()["scenarios"]
    by_name = {s["name"]: s for s in scenarios}
    assert {"480p-h264", "720p-h264", "1080p-h264", "720p-h265", "720p-av1"} <= set(by_name)
    assert by_name["1080p-h264-nvenc"]["resources"]["gpu"] == 1
    assert master.client.get("/scenarios").status_code == 401


def test_unknown_route_wrong_method_and_huge_body_get_json_errors(master: Master) -> None:
    missing = master.client.get("/nope", headers=SUBMIT)
    assert (missing.status_code, missing.json()["error"]) == (404, "Not Found")
    wrong = master.client.put("/jobs", headers=SUBMIT)
    assert wrong.status_code == 405
    assert "error" in wrong.json()
    huge = master.client.post(
        "/jobs", content=b'{"scenario": "' + b"x" * 300_000 + b'"}', headers=SUBMIT
    )
    assert huge.status_code == 413
    assert "larger than" in huge.json()["error"]


def test_a_claim_whose_worker_hung_up_does_not_swallow_the_next_job(master: Master) -> None:
    master.register("w1")
    with (
        httpx.Client(base_url=master.url, timeout=0.3) as impatient,
        pytest.raises(httpx.ReadTimeout),
    ):
        impatient.post("/nodes/w1/claim", json={"wait": 20}, headers=master.node("w1"))
    time.sleep(0.2)  # the server notices the closed connection
    job = master.submit()
    time.sleep(0.3)  # a claim still waiting for the gone worker would take the job now
    claim = master.claim("w1", wait=1)
    assert claim.status_code == 200
    assert claim.json()["job_id"] == job["id"]


def test_registration_the_resource_manager_refuses_is_a_422_not_a_500(master: Master) -> None:
    body = {
        "node_id": "w1",
        "capacity": {"cpu": 2, "ram_gb": 4, "extended": {"bad name": 1}},
        "labels": {"k" * 100: "v"},
    }
    response = master.client.post("/nodes/register", json=body, headers=WORKER)
    assert response.status_code == 422
    body["capacity"] = {"cpu": 2, "ram_gb": 4}
    response = master.client.post("/nodes/register", json=body, headers=WORKER)
    assert (response.status_code, response.json()["detail"]["field"]) == (422, "labels")
    assert master.client.get("/nodes/w1", headers=SUBMIT).status_code == 404  # not stored
