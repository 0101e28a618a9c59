"""Running an ASGI app under a real uvicorn server on a loopback port."""

from __future__ import annotations

import contextlib
import ssl
import threading
import time
from collections.abc import Iterator
from typing import Any

import uvicorn

from tests.support.services import free_port

__all__ = ["free_port", "serve_asgi"]


@contextlib.contextmanager
def serve_asgi(
    app: Any,
    *,
    port: int | None = None,
    ssl_keyfile: str | None = None,
    ssl_certfile: str | None = None,
    ssl_ca_certs: str | None = None,
    ssl_cert_reqs: int = ssl.CERT_NONE,
    startup_timeout: float = 10.0,
) -> Iterator[str]:
    """Serve ``app`` with uvicorn in a thread; yields its base URL and stops it after.

    ``port`` pins the port (to restart a server where clients expect it); default: a free one.
    """
    port = port or free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="auto",
        ssl_keyfile=ssl_keyfile,
        ssl_certfile=ssl_certfile,
        ssl_ca_certs=ssl_ca_certs,
        ssl_cert_reqs=ssl_cert_reqs,
        timeout_graceful_shutdown=1,  # open long-polls must not hold the test up
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"uvicorn did not start on 127.0.0.1:{port}")
        time.sleep(0.01)
    scheme = "https" if ssl_certfile else "http"
    try:
        yield f"{scheme}://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
