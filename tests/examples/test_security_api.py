"""The published API document, registration caps, node pagination and pruning, and a
schemathesis run against a live master (issue 14, finding 6 and items 6 and 11)."""

from __future__ import annotations

import concurrent.futures
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from examples.master.app import create_app
from examples.master.config import MasterConfig
from examples.master.openapi import OPERATIONS
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.examples.conftest import MasterFactory
from tests.examples.helpers import wait_until
from tests.support.servers import serve_asgi

API_KEY = "submitter-key-0123456789abcdef"
WORKER_KEY = "worker-key-0123456789abcdef"
SUBMIT = {"Authorization": f"Bearer {API_KEY}"}
WORKER = {"Authorization": f"Bearer {WORKER_KEY}"}


@contextlib.contextmanager
def _master(tmp_path: Path, **config: Any) -> Iterator[httpx.Client]:
    app = create_app(
        MasterConfig(db=str(tmp_path / "m.db"), api_key=API_KEY, worker_key=WORKER_KEY, **config)
    )
    with serve_asgi(app) as url, httpx.Client(base_url=url) as client:
        yield client
    app.store.close()


@pytest.fixture
def master(tmp_path: Path) -> Iterator[httpx.Client]:
    with _master(tmp_path, max_nodes=3) as client:
        yield client


def _node(node_id: str, **extra: Any) -> dict[str, Any]:
    return {"node_id": node_id, "capacity": {"cpu": 2, "ram_gb": 4}, **extra}


def test_openapi_json_describes_the_api(master: httpx.Client) -> None:
    document = master.get("/openapi.json").json()
    assert document["openapi"].startswith("3.")
    paths = document["paths"]
    for path in ("/jobs", "/jobs/{job_id}", "/nodes/register", "/health"):
        assert path in paths
    spec = paths["/jobs"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert "720p-h264" in spec["properties"]["scenario"]["enum"]  # from the scenario table
    register = paths["/nodes/register"]["post"]["responses"]["200"]
    assert "node_token" in register["content"]["application/json"]["schema"]["required"]


def test_registration_caps(master: httpx.Client) -> None:
    labels = {f"k{i}": "v" for i in range(33)}
    too_many = master.post("/nodes/register", json=_node("a", labels=labels), headers=WORKER)
    assert too_many.status_code == 422
    assert too_many.json()["detail"]["field"] == "labels"
    encoders = [f"enc{i}" for i in range(300)]
    many = master.post("/nodes/register", json=_node("a", encoders=encoders), headers=WORKER)
    assert many.status_code == 422
    huge = master.post(
        "/nodes/register", json=_node("a", version="x", pad="y" * 20_000), headers=WORKER
    )
    assert huge.status_code == 413
    for name in ("a", "b", "c"):
        assert master.post("/nodes/register", json=_node(name), headers=WORKER).status_code == 200
    full = master.post("/nodes/register", json=_node("d"), headers=WORKER)
    assert full.status_code == 422
    assert "maximum of 3 nodes" in full.json()["error"]


def test_nodes_are_paginated(master: httpx.Client) -> None:
    for name in ("a", "b", "c"):
        master.post("/nodes/register", json=_node(name), headers=WORKER).raise_for_status()
    first = master.get("/nodes", params={"limit": 2}, headers=SUBMIT).json()
    assert [n["id"] for n in first["nodes"]] == ["a", "b"]
    rest = master.get(
        "/nodes", params={"limit": 2, "cursor": first["next_cursor"]}, headers=SUBMIT
    ).json()
    assert [n["id"] for n in rest["nodes"]] == ["c"]
    assert rest["next_cursor"] is None
    assert master.get("/nodes", params={"limit": 0}, headers=SUBMIT).status_code == 422


def test_offline_nodes_are_pruned(tmp_path: Path) -> None:
    with _master(
        tmp_path,
        heartbeat_interval=0.2,
        heartbeat_timeout=0.5,
        monitor_interval=0.1,
        prune_offline_after=0.5,
    ) as client:
        client.post("/nodes/register", json=_node("gone"), headers=WORKER).raise_for_status()
        wait_until(
            lambda: client.get("/nodes/gone", headers=SUBMIT).status_code == 404,
            timeout=20,
            what="the silent node to be pruned",
        )
        # its identity went with it: the id can be registered afresh
        again = client.post("/nodes/register", json=_node("gone"), headers=WORKER)
        assert again.status_code == 200


def _fuzz(operation: Any, base_url: str, headers: dict[str, str], checks: list[Any]) -> Any:
    """A Hypothesis test of one operation: a few generated requests, every check run."""

    @settings(
        max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(case=operation.as_strategy())
    def check(case: Any) -> None:
        if case.path.endswith("/claim") and isinstance(case.body, dict):
            case.body["wait"] = 0  # never hold a 30-s long poll
        case.call_and_validate(base_url=base_url, headers=headers, checks=checks)

    return check


@pytest.mark.slow
def test_schemathesis_finds_no_server_error_or_schema_violation(
    start_master: MasterFactory,
) -> None:
    # private inputs allowed: generated host names are then never looked up in DNS
    master = start_master(
        "--allow-private-inputs", "--rtmp-allow", "127.0.0.1", "--rate-limit", "0"
    )
    submitter = {"Authorization": f"Bearer {master.api_key}"}
    worker = {"Authorization": f"Bearer {master.worker_key}"}
    schema = schemathesis.openapi.from_url(f"{master.url}/openapi.json")
    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
    ]
    seen: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        security = operation.definition.raw.get("security") or [{}]
        headers = worker if "workerKey" in security[0] else submitter
        seen.append(f"{operation.method.upper()} {operation.path}")

        _fuzz(operation, master.url, headers, checks)()
    # every documented operation was fuzzed (schemathesis skips the document's own URL)
    expected = {f"{m} {p}" for m, p in OPERATIONS} - {"GET /openapi.json"}
    assert sorted(seen) == sorted(expected)


@pytest.fixture
def strict_master(tmp_path: Path) -> Iterator[httpx.Client]:
    with _master(tmp_path, worker_rate_limit=0.5, worker_rate_burst=10) as client:
        yield client


def test_reports_to_made_up_node_ids_share_the_callers_limit(
    strict_master: httpx.Client,
) -> None:
    statuses = [
        strict_master.post(f"/nodes/ghost-{i}/heartbeat", headers=WORKER).status_code
        for i in range(30)
    ]
    assert statuses[0] == 404
    assert statuses[-1] == 429


def test_reports_on_made_up_job_ids_share_the_nodes_limit(strict_master: httpx.Client) -> None:
    token = strict_master.post("/nodes/register", json=_node("n1"), headers=WORKER)
    headers = {**WORKER, "X-Node-Token": token.json()["node_token"]}
    statuses = [
        strict_master.post(
            f"/jobs/job-{i}/progress", json={"node_id": "n1", "attempt": 1}, headers=headers
        ).status_code
        for i in range(30)
    ]
    assert statuses[0] == 404
    assert statuses[-1] == 429


def test_a_node_holds_at_most_two_open_claims(master: httpx.Client) -> None:
    token = master.post("/nodes/register", json=_node("n1"), headers=WORKER).json()["node_token"]
    headers = {**WORKER, "X-Node-Token": token}
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        waiting = [
            pool.submit(
                master.post, "/nodes/n1/claim", json={"wait": 6}, headers=headers, timeout=20
            )
            for _ in range(2)
        ]
        time.sleep(1)  # both long polls reach the master (they wait 6 s there)
        third = master.post("/nodes/n1/claim", json={"wait": 6}, headers=headers)
        assert third.status_code == 429
        assert [f.result().status_code for f in waiting] == [204, 204]
