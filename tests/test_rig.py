"""The real services in the test rig work: each fixture is exercised end to end."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.support.ffmpeg import FFmpeg
from tests.support.otlp import OTLPReceiver
from tests.support.redis_server import RedisServer
from tests.support.servers import serve_asgi


@pytest.mark.redis
def test_redis_url_points_at_a_private_server_that_answers_ping(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    assert client.ping() is True
    assert not redis_url.endswith(":6379/0"), "tests must not touch the system Redis"
    client.close()


@pytest.mark.redis
def test_redis_url_starts_with_an_empty_database(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    assert client.dbsize() == 0
    client.set("left-behind", "1")
    client.close()


@pytest.mark.redis
def test_private_redis_can_be_killed_and_restarted_on_the_same_port(
    private_redis: RedisServer,
) -> None:
    # redis-py 6+ retries a refused connection 3 times with backoff (~7 s): not here.
    client = private_redis.client(socket_timeout=1, retry=Retry(NoBackoff(), 0))
    client.set("k", "v")
    private_redis.kill()
    with pytest.raises(redis.ConnectionError):
        client.get("k")
    private_redis.start()
    assert client.ping() is True
    assert client.get("k") is None  # no persistence: a restart starts empty
    client.close()


@pytest.mark.ffmpeg
def test_ffmpeg_makes_a_clip_and_reads_its_duration_back(ffmpeg: FFmpeg, tmp_path: Path) -> None:
    clip = ffmpeg.make_clip(tmp_path / "src.mp4", seconds=1.0)
    out = tmp_path / "out.mp4"
    ffmpeg.run("-y", "-i", str(clip), "-vf", "scale=160:120", "-c:v", "libx264",
               "-preset", "ultrafast", "-c:a", "aac", str(out))  # fmt: skip
    assert out.stat().st_size > 0
    assert ffmpeg.duration(out) == pytest.approx(1.0, abs=0.05)


def test_otlp_receiver_decodes_spans_from_the_sdk_exporter(otlp_receiver: OTLPReceiver) -> None:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": "rig-test"}))
    provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp_receiver.traces_url, timeout=5))
    )
    tracer = provider.get_tracer("rig")
    with tracer.start_as_current_span("parent"), tracer.start_as_current_span("child") as child:
        child.set_attribute("answer", 42)
    provider.shutdown()

    spans = {s.name: s for s in otlp_receiver.wait_for_spans(2)}
    assert spans["child"].parent_span_id == spans["parent"].span_id
    assert spans["child"].trace_id == spans["parent"].trace_id
    assert spans["child"].attributes == {"answer": 42}
    assert spans["parent"].resource["service.name"] == "rig-test"


def test_serve_asgi_runs_an_app_under_real_uvicorn() -> None:
    async def hello(request: Request) -> JSONResponse:
        return JSONResponse({"client": request.client.host if request.client else None})

    app = Starlette(routes=[Route("/", hello)])
    with serve_asgi(app) as base_url:
        response = httpx.get(base_url + "/")
    assert response.json() == {"client": "127.0.0.1"}


def test_missing_service_fails_instead_of_skipping_when_services_are_required(
    tmp_path: Path,
) -> None:
    test_file = tmp_path / "test_needs_redis.py"
    test_file.write_text("def test_uses_redis(redis_url):\n    pass\n")
    conftest = Path(__file__).with_name("conftest.py")
    (tmp_path / "conftest.py").write_text(conftest.read_text())
    env = {**os.environ, "PATH": "/nonexistent", "FFRTMP_REQUIRE_SERVICES": "1"}
    root = Path(__file__).resolve().parent.parent
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test_file),
         "--rootdir", str(tmp_path)],
        cwd=root, env={**env, "PYTHONPATH": str(root)}, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert run.returncode == 1, run.stdout
    assert "redis-server is not on PATH" in run.stdout
    env.pop("FFRTMP_REQUIRE_SERVICES")
    skipped = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", str(test_file),
         "--rootdir", str(tmp_path)],
        cwd=root, env={**env, "PYTHONPATH": str(root)}, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert skipped.returncode == 0, skipped.stdout
    assert "1 skipped" in skipped.stdout
