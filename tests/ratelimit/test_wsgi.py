"""WSGIRateLimitMiddleware on a real WSGI app (direct calls and a real wsgiref server)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
from wsgiref.util import setup_testing_defaults

import httpx
import pytest

from ffrtmp_infra.ratelimit import (
    ConfigurationError,
    Limiter,
    RequestInfo,
    Rule,
    WSGIRateLimitMiddleware,
    api_key,
    client_ip,
)
from tests.ratelimit.apps import wsgi_app
from tests.ratelimit.conftest import FakeClock


def call(app: Any, path: str = "/", **environ: str) -> tuple[str, dict[str, str], bytes]:
    env: dict[str, Any] = {"PATH_INFO": path, "REMOTE_ADDR": "192.0.2.1", **environ}
    setup_testing_defaults(env)
    captured: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        captured["status"] = status
        captured["headers"] = {name.lower(): value for name, value in headers}
        return lambda data: None

    body = b"".join(app(env, start_response))
    return captured["status"], captured["headers"], body


def test_go_acceptance_through_wsgi_200_200_429_then_200() -> None:
    clock = FakeClock()
    app = WSGIRateLimitMiddleware(wsgi_app, limiter=Limiter(10, 2, clock=clock, name="api"))
    results = [call(app) for _ in range(3)]
    assert [status[:3] for status, _, _ in results] == ["200", "200", "429"]
    clock.advance(0.15)
    assert call(app)[0].startswith("200")
    status, headers, body = results[2]
    assert status == "429 Too Many Requests"
    assert headers["content-type"] == "application/problem+json"
    assert headers["retry-after"] == "1"
    assert json.loads(body)["violated-policies"] == ["api"]
    assert results[0][1]["ratelimit"] == '"api";r=1;t=1'
    assert results[0][2] == b"hello /"


def test_wsgi_keys_by_remote_addr_and_ignores_untrusted_forwarding() -> None:
    app = WSGIRateLimitMiddleware(wsgi_app, limiter=Limiter(1, 1, clock=FakeClock()))
    assert call(app, HTTP_X_FORWARDED_FOR="1.1.1.1")[0].startswith("200")
    assert call(app, HTTP_X_FORWARDED_FOR="2.2.2.2")[0].startswith("429")
    assert call(app, REMOTE_ADDR="192.0.2.2")[0].startswith("200")


def test_wsgi_trusted_proxy_chain_is_walked_from_the_right() -> None:
    limiter = Limiter(1, 1, clock=FakeClock())
    key = client_ip(trusted_proxies=["192.0.2.0/24", "10.0.0.0/8"])
    app = WSGIRateLimitMiddleware(wsgi_app, limiter=limiter, key=key)
    # The client wrote a fake 6.6.6.6; the proxies appended the real 198.51.100.7 and 10.1.1.1.
    call(app, HTTP_X_FORWARDED_FOR="6.6.6.6, 198.51.100.7, 10.1.1.1")
    assert limiter.holds("198.51.100.7")
    assert len(limiter) == 1


def test_wsgi_api_key_and_exempt_rule() -> None:
    limiter = Limiter(1, 1, clock=FakeClock())
    app = WSGIRateLimitMiddleware(
        wsgi_app, limiter=limiter, key=api_key(), rules=[Rule(path="/health", exempt=True)]
    )
    assert call(app, HTTP_X_API_KEY="abc")[0].startswith("200")
    assert call(app, HTTP_X_API_KEY="abc")[0].startswith("429")
    assert call(app, HTTP_AUTHORIZATION="Bearer other")[0].startswith("200")
    assert all(call(app, "/health")[0].startswith("200") for _ in range(3))
    assert len(limiter) == 2  # one hashed key and one bearer token; /health was exempt


def test_wsgi_dry_run_never_rejects() -> None:
    app = WSGIRateLimitMiddleware(wsgi_app, limiter=Limiter(1, 1, clock=FakeClock()), dry_run=True)
    assert all(call(app)[0].startswith("200") for _ in range(3))


def test_wsgi_refuses_async_key_functions() -> None:
    async def key(info: RequestInfo) -> str:
        return "k"

    with pytest.raises(ConfigurationError, match="WSGI needs synchronous key functions"):
        WSGIRateLimitMiddleware(wsgi_app, limiter=Limiter(1, 1), key=key)


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def wsgi_server() -> Iterator[tuple[str, Any]]:
    app = WSGIRateLimitMiddleware(wsgi_app, limiter=Limiter(10, 2, clock=FakeClock()))
    server: WSGIServer = make_server("127.0.0.1", 0, app, handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", app
    server.shutdown()
    server.server_close()


def test_real_wsgi_server_answers_429_over_http(wsgi_server: tuple[str, Any]) -> None:
    base, _ = wsgi_server
    with httpx.Client(base_url=base) as client:
        responses = [client.get("/") for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 429]
    assert responses[2].headers["retry-after"] == "1"
    assert responses[1].headers["ratelimit"].endswith("r=0;t=1")
