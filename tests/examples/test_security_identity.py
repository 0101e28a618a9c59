"""Per-node credentials, the lockout's client identity and forwarded headers (issue 14,
findings 2, 3 and 5)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from examples.master.app import create_app
from examples.master.config import MasterConfig

from tests.examples.conftest import MasterFactory, WorkerFactory
from tests.examples.helpers import wait_until
from tests.support.servers import serve_asgi

API_KEY = "submitter-key-0123456789abcdef"
WORKER_KEY = "worker-key-0123456789abcdef"
SUBMIT = {"Authorization": f"Bearer {API_KEY}"}
WORKER = {"Authorization": f"Bearer {WORKER_KEY}"}


@pytest.fixture
def master(tmp_path: Path) -> Iterator[httpx.Client]:
    app = create_app(
        MasterConfig(
            db=str(tmp_path / "m.db"),
            api_key=API_KEY,
            worker_key=WORKER_KEY,
            auth_failure_limit=100,
        )
    )
    with serve_asgi(app) as url, httpx.Client(base_url=url) as client:
        yield client
    app.store.close()


def _register(client: httpx.Client, node_id: str, token: str | None = None) -> httpx.Response:
    body = {"node_id": node_id, "capacity": {"cpu": 4, "ram_gb": 8}, "encoders": ["libx264", "aac"]}
    headers = {**WORKER, **({"X-Node-Token": token} if token else {})}
    return client.post("/nodes/register", json=body, headers=headers)


def _as(token: str) -> dict[str, str]:
    return {**WORKER, "X-Node-Token": token}


def test_registration_returns_a_node_token_that_only_works_for_its_node(
    master: httpx.Client,
) -> None:
    token_a = _register(master, "node-a").json()["node_token"]
    token_b = _register(master, "node-b").json()["node_token"]
    assert token_a
    assert token_b
    assert token_a != token_b
    assert master.post("/nodes/node-a/heartbeat", headers=_as(token_a)).status_code == 200
    for method, path in (
        ("POST", "/nodes/node-b/heartbeat"),
        ("POST", "/nodes/node-b/claim"),
        ("DELETE", "/nodes/node-b"),
    ):
        response = master.request(method, path, headers=_as(token_a), json={"wait": 0})
        assert response.status_code == 403, (path, response.text)
    # the enrollment key alone is not enough either
    assert master.post("/nodes/node-b/heartbeat", headers=WORKER).status_code == 403
    assert master.post("/nodes/node-b/heartbeat", headers=_as(token_b)).status_code == 200


def test_a_node_id_cannot_be_taken_over_by_registering_again(master: httpx.Client) -> None:
    token = _register(master, "node-a").json()["node_token"]
    assert _register(master, "node-a").status_code == 403
    assert _register(master, "node-a", token="forged").status_code == 403
    again = _register(master, "node-a", token=token)
    assert again.status_code == 200
    assert again.json()["node_token"] == token  # the same identity, no rotation race


def test_an_operator_delete_revokes_the_node_token(master: httpx.Client) -> None:
    old = _register(master, "node-a").json()["node_token"]
    assert master.delete("/nodes/node-a", headers=SUBMIT).status_code == 200
    fresh = _register(master, "node-a")
    assert fresh.status_code == 200
    assert fresh.json()["node_token"] != old
    assert master.post("/nodes/node-a/heartbeat", headers=_as(old)).status_code == 403


def test_a_node_cannot_report_on_another_nodes_job(master: httpx.Client) -> None:
    token_b = _register(master, "node-b").json()["node_token"]
    job = master.post(
        "/jobs",
        json={"scenario": "480p-h264", "input": {"type": "testsrc", "duration": 1}},
        headers=SUBMIT,
    ).json()
    assignment = master.post("/nodes/node-b/claim", json={"wait": 5}, headers=_as(token_b))
    assert assignment.json()["job_id"] == job["id"]
    token_a = _register(master, "node-a").json()["node_token"]
    forged: dict[str, Any] = {"attempt": 1, "status": "completed", "outputs": []}
    as_b = master.post(
        f"/jobs/{job['id']}/result", json={**forged, "node_id": "node-b"}, headers=_as(token_a)
    )
    assert as_b.status_code == 403
    as_a = master.post(
        f"/jobs/{job['id']}/result", json={**forged, "node_id": "node-a"}, headers=_as(token_a)
    )
    assert as_a.status_code == 403
    progress = master.post(
        f"/jobs/{job['id']}/progress",
        json={"node_id": "node-a", "attempt": 1},
        headers=_as(token_a),
    )
    assert progress.status_code == 403
    assert master.get(f"/jobs/{job['id']}", headers=SUBMIT).json()["status"] == "assigned"


def _from(address: str, base_url: str) -> httpx.Client:
    transport = httpx.HTTPTransport(local_address=address)
    return httpx.Client(base_url=base_url, transport=transport, timeout=10)


def test_forwarded_headers_are_ignored_without_trust_proxy(start_master: MasterFactory) -> None:
    master = start_master()
    statuses = []
    with _from("127.0.0.1", master.url) as client:
        for i in range(30):
            headers = {"Authorization": "Bearer wrong-key", "X-Forwarded-For": f"203.0.113.{i}"}
            statuses.append(client.get("/jobs", headers=headers).status_code)
    assert statuses[0] == 401
    assert statuses[-1] == 429  # one client, whatever it claims to forward for


def test_behind_a_trusted_proxy_one_bad_client_locks_out_only_its_failures(
    start_master: MasterFactory,
) -> None:
    master = start_master("--trust-proxy", "127.0.0.2/32")
    wrong = {"Authorization": "Bearer wrong-key-0123456789"}
    right = {"Authorization": f"Bearer {master.api_key}"}
    with _from("127.0.0.2", master.url) as proxy:
        statuses = [
            proxy.get("/jobs", headers={**wrong, "X-Forwarded-For": "198.51.100.7"}).status_code
            for _ in range(30)
        ]
        assert statuses[-1] == 429
        other = proxy.get("/jobs", headers={**right, "X-Forwarded-For": "198.51.100.8"})
        assert other.status_code == 200
        # a correct key is never refused, even from the locked-out client itself
        same = proxy.get("/jobs", headers={**right, "X-Forwarded-For": "198.51.100.7"})
        assert same.status_code == 200


@pytest.mark.ffmpeg
def test_a_worker_exits_2_when_its_key_is_refused_after_registration(
    start_master: MasterFactory, start_worker: WorkerFactory
) -> None:
    master = start_master()
    worker = start_worker(master.url, env=master.env)
    with master.client() as api:
        wait_until(lambda: api.nodes(), timeout=60, what="registration")
    master.stop()
    master.worker_key = "rotated-" + master.worker_key
    master.start()
    assert worker.wait(timeout=60) == 2
    assert "refused this worker's credentials" in worker.log()
