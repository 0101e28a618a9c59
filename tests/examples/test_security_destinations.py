"""The SSRF guard, secret redaction and first-attempt failures (issue 14, findings 4 and 8).

Submission-time checks run against the master in-process under uvicorn; the worker's own
check, the redirect ban and the redaction of ffmpeg's log run end to end with real
processes and real ffmpeg.
"""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from examples.common.netpolicy import DestinationPolicy, HostRefusedError
from examples.master.app import create_app
from examples.master.config import MasterConfig

from tests.examples.conftest import MasterFactory, WorkerFactory
from tests.examples.helpers import wait_until
from tests.support.servers import serve_asgi
from tests.support.services import free_port

API_KEY = "submitter-key-0123456789abcdef"
SUBMIT = {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture
def master(tmp_path: Path) -> Iterator[httpx.Client]:
    policy = DestinationPolicy.from_options(rtmp_allow=["127.0.0.1:1935", "ingest.example"])
    app = create_app(MasterConfig(db=str(tmp_path / "m.db"), api_key=API_KEY, destinations=policy))
    with serve_asgi(app) as url, httpx.Client(base_url=url, headers=SUBMIT) as client:
        yield client
    app.store.close()


def _url_job(url: str) -> dict[str, Any]:
    return {"scenario": "480p-h264", "input": {"type": "url", "url": url}}


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/a.mp4",
        "http://localhost:8080/a.mp4",
        "http://[::1]/a.mp4",
        "http://0x7f000001/a.mp4",
        "https://2130706433/a.mp4",
        "http://127.1/a.mp4",
        "http://10.0.0.1/a.mp4",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:127.0.0.1]/a.mp4",
        "http://0.0.0.0/a.mp4",
    ],
)
def test_inputs_on_internal_addresses_are_refused_at_submission(
    master: httpx.Client, url: str
) -> None:
    response = master.post("/jobs", json=_url_job(url))
    assert response.status_code == 422, response.text
    assert response.json()["detail"]["field"] == "input.url"
    assert master.get("/jobs").json()["jobs"] == []


def test_a_host_resolving_to_a_private_address_is_refused() -> None:
    policy = DestinationPolicy()
    with pytest.raises(HostRefusedError, match="non-public"):
        policy.check_input("http://media.example/a.mp4", resolver=lambda host: [_ip("10.1.2.3")])
    public = policy.check_input("http://media.example/a.mp4", resolver=lambda h: [_ip("8.8.8.8")])
    assert [str(a) for a in public] == ["8.8.8.8"]


def test_allowed_input_hosts_and_private_inputs_flags() -> None:
    assert DestinationPolicy.from_options(["127.0.0.1"]).check_input("http://127.0.0.1/x") == []
    private = DestinationPolicy.from_options(allow_private_inputs=True)
    assert private.check_input("http://10.0.0.1/") == []
    with pytest.raises(HostRefusedError):
        DestinationPolicy.from_options(["127.0.0.1"]).check_input("http://127.0.0.2/x")


def _ip(text: str) -> Any:
    import ipaddress

    return ipaddress.ip_address(text)


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("rtmp://127.0.0.1/live/k", True),  # default port 1935
        ("rtmp://127.0.0.1:1936/live/k", False),
        ("rtmps://ingest.example:443/live/k", True),  # any port for a bare host
        ("rtmp://10.0.0.9/live/k", False),
        ("rtmp://evil.example/live/k", False),
    ],
)
def test_live_outputs_go_only_to_rtmp_allow_hosts(
    master: httpx.Client, url: str, allowed: bool
) -> None:
    response = master.post("/jobs", json={"scenario": "live-rtmp", "output": {"url": url}})
    if allowed:
        assert response.status_code == 201, response.text
    else:
        assert response.status_code == 422, response.text
        assert response.json()["detail"]["field"] == "output.url"


def test_no_live_output_is_allowed_by_default(tmp_path: Path) -> None:
    app = create_app(MasterConfig(db=str(tmp_path / "m.db"), api_key=API_KEY))
    with serve_asgi(app) as url:
        response = httpx.post(
            f"{url}/jobs",
            json={"scenario": "live-rtmp", "output": {"url": "rtmp://127.0.0.1/live/k"}},
            headers=SUBMIT,
        )
    app.store.close()
    assert response.status_code == 422
    assert response.json()["detail"]["field"] == "output.url"


def test_bad_rtmp_allow_entries_fail_at_start() -> None:
    for bad in ("", "host:notaport", "host/path", "user@host"):
        with pytest.raises(ValueError, match="--rtmp-allow"):
            DestinationPolicy.from_options(rtmp_allow=[bad])


def test_stream_keys_never_show_in_a_failed_live_job(
    start_master: MasterFactory, start_worker: WorkerFactory
) -> None:
    master = start_master("--rtmp-allow", "127.0.0.1", "--max-retries", "0")
    start_worker(master.url, env=master.env)
    closed = free_port()
    with master.client() as api:
        job = api.submit(
            {
                "scenario": "live-rtmp",
                "input": {"type": "testsrc", "duration": 2, "size": "320x240"},
                "output": {"url": f"rtmp://u:pw@127.0.0.1:{closed}/live/SECRETKEY123"},
            }
        )
        done = wait_until(
            lambda: (j := api.job(job["id"]))["status"] == "failed" and j,
            timeout=90,
            what="the live job to fail",
        )
    text = json.dumps(done)
    assert done["result"]["log_tail"], done  # ffmpeg's log is there, redacted
    assert "SECRETKEY123" not in text
    assert "pw@" not in text


class _Redirector:
    """An http server on ``host`` answering with a 302 to ``target`` (or a 200); counts hits."""

    def __init__(self, host: str, target: str = "") -> None:
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.hits += 1
                self.send_response(302 if target else 200)
                if target:
                    self.send_header("Location", target)
                self.send_header("Content-Length", "15")
                self.end_headers()
                self.wfile.write(b"internal secret")

            def log_message(self, *args: Any) -> None:
                pass

        self.hits = 0
        self.server = http.server.ThreadingHTTPServer((host, 0), Handler)
        self.url = f"http://{host}:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.ffmpeg
def test_the_worker_follows_no_redirect_to_an_internal_host(
    start_master: MasterFactory, start_worker: WorkerFactory
) -> None:
    internal = _Redirector("127.0.0.2")
    outside = _Redirector("127.0.0.1", f"{internal.url}/admin/internal.mp4")
    try:
        master = start_master("--allow-input-host", "127.0.0.1")
        start_worker(master.url, env=master.env)
        with master.client() as api:
            job = api.submit(_url_job(f"{outside.url}/video.mp4"))
            done = wait_until(
                lambda: (j := api.job(job["id"]))["status"] == "failed" and j,
                timeout=90,
                what="the job to fail",
            )
    finally:
        outside.close()
        internal.close()
    assert outside.hits >= 1
    assert internal.hits == 0
    # ffmpeg only says "Input/output error" for a redirect it may not follow
    assert done["error"].endswith(": input could not be read"), done["error"]
    assert done["result"]["log_tail"] is None  # network details stay in the worker's log


@pytest.mark.ffmpeg
def test_the_worker_checks_the_input_host_again_and_fails_at_once(
    start_master: MasterFactory, start_worker: WorkerFactory
) -> None:
    master = start_master("--allow-input-host", "127.0.0.1")
    start_worker(master.url, env=master.env, local_inputs=False)
    with master.client() as api:
        job = api.submit(_url_job("http://127.0.0.1:9/a.mp4"))
        done = wait_until(
            lambda: (j := api.job(job["id"]))["status"] == "failed" and j,
            timeout=60,
            what="the job to fail",
        )
    assert "input.url" in done["error"]
    assert len(done["attempts"]) == 1
    assert done["dead_letter"]


@pytest.mark.ffmpeg
def test_a_missing_file_input_fails_after_exactly_one_attempt(
    start_master: MasterFactory, start_worker: WorkerFactory, tmp_path: Path
) -> None:
    media = tmp_path / "media"
    media.mkdir()
    master = start_master()
    start_worker(master.url, "--media-root", str(media), env=master.env)
    with master.client() as api:
        job = api.submit({"scenario": "480p-h264", "input": {"type": "file", "path": "nope.mp4"}})
        done = wait_until(
            lambda: (j := api.job(job["id"]))["status"] == "failed" and j,
            timeout=60,
            what="the job to fail",
        )
    assert len(done["attempts"]) == 1
    assert str(media) not in json.dumps(done)  # no worker paths shown to submitters
