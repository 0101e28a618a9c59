"""Apps that tests/ratelimit/test_servers.py serves with real uvicorn and gunicorn workers.

Each is built at import, in every worker process, from the environment:
``FFRTMP_TEST_STORAGE`` (a Redis URL, or ``memory://``) and ``FFRTMP_TEST_BURST``.
Every response names the worker that served it in ``X-Worker-Pid``.
"""

# No ``from __future__ import annotations``: FastAPI resolves the endpoints' annotations,
# and names imported inside the factories are not in the module's globals.
import os
from typing import Any

from ffrtmp_infra.ratelimit import Limiter

STORAGE = os.environ.get("FFRTMP_TEST_STORAGE", "memory://")
BURST = int(os.environ.get("FFRTMP_TEST_BURST", "3"))
PID = str(os.getpid())


def limiter(name: str) -> Limiter:
    # A slow refill: no unit comes back while a test's requests run.
    return Limiter(0.01, BURST, storage=STORAGE, name=name)


# ---------------------------------------------------------------- FastAPI (uvicorn --workers 2)
def _with_worker_pid(app: Any) -> Any:
    """Pure ASGI (nothing buffered): every HTTP response names its worker."""

    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        async def send_with_pid(message: Any) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), (b"x-worker-pid", PID.encode())]
            await send(message)

        await app(scope, receive, send_with_pid)

    return wrapped


def _fastapi() -> Any:
    import asyncio
    from pathlib import Path

    from fastapi import Depends, FastAPI, WebSocket
    from fastapi.responses import StreamingResponse
    from starlette.middleware.cors import CORSMiddleware

    from ffrtmp_infra.ratelimit import RateLimitMiddleware, Rule
    from ffrtmp_infra.ratelimit.fastapi import RateLimit

    app = FastAPI()

    @app.get("/items/{item_id}", dependencies=[Depends(RateLimit(limiter("items")))])
    async def item(item_id: int) -> dict[str, int]:
        return {"item": item_id}

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        gate = Path(os.environ["FFRTMP_TEST_GATE"])

        async def chunks() -> Any:
            yield b"first;"
            # The test opens the gate only after it has read the first chunk: a
            # buffering middleware would hold that chunk until the loop gives up.
            for _ in range(200):
                if await asyncio.to_thread(gate.exists):
                    yield b"released"
                    return
                await asyncio.sleep(0.05)
            yield b"gave up"

        return StreamingResponse(chunks(), media_type="text/plain")

    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text("hello")
        await websocket.close()

    app.add_middleware(CORSMiddleware, allow_origins=["https://app.example"], allow_methods=["*"])
    app.add_middleware(
        RateLimitMiddleware,
        limiter=limiter("site"),
        rules=[Rule(path="/items", exempt=True)],
        websockets=True,
    )
    return _with_worker_pid(app)


# ---------------------------------------------------------------- Flask (gunicorn -w 2)
def _flask() -> Any:
    from flask import Flask

    from ffrtmp_infra.ratelimit.flask import limit

    app = Flask(__name__)

    @app.get("/items/<int:item_id>")
    @limit(Limiter(1, 3, storage=STORAGE, name="flask-items"))
    def item(item_id: int) -> dict[str, int]:
        return {"item": item_id}

    @app.after_request
    def worker_pid(response: Any) -> Any:
        response.headers["X-Worker-Pid"] = PID
        return response

    return app


# ---------------------------------------------------------------- Django (gunicorn and uvicorn)
def _django() -> tuple[Any, Any]:
    from tests.support.django_site import configure

    configure()
    from django.conf import settings
    from django.core.asgi import get_asgi_application
    from django.core.wsgi import get_wsgi_application
    from django.http import HttpResponse, JsonResponse
    from django.urls import path

    from ffrtmp_infra.ratelimit import Rule
    from ffrtmp_infra.ratelimit.django import limit

    @limit(limiter("django-items"))
    def item(request: Any, item_id: int) -> JsonResponse:
        return JsonResponse({"item": item_id})

    async def hello(request: Any) -> HttpResponse:
        return HttpResponse("hello")

    urls = type("urls", (), {"urlpatterns": [path("items/<int:item_id>", item), path("", hello)]})
    settings.ROOT_URLCONF = urls
    settings.MIDDLEWARE = [
        "tests.ratelimit.server_apps.DjangoWorkerPid",
        "ffrtmp_infra.ratelimit.django.RateLimitMiddleware",
    ]
    settings.FFRTMP_RATELIMIT = {
        "limiter": limiter("django-site"),
        "rules": [Rule(path="/items", exempt=True)],  # the view's own limit counts there
    }
    return get_wsgi_application(), get_asgi_application()


class DjangoWorkerPid:
    """Django middleware (sync and async) naming the worker in ``X-Worker-Pid``."""

    sync_capable = async_capable = True

    def __init__(self, get_response: Any) -> None:
        from asgiref.sync import iscoroutinefunction, markcoroutinefunction

        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: Any) -> Any:
        if self.is_async:
            return self._acall(request)
        response = self.get_response(request)
        response["X-Worker-Pid"] = PID
        return response

    async def _acall(self, request: Any) -> Any:
        response = await self.get_response(request)
        response["X-Worker-Pid"] = PID
        return response


APP = os.environ.get("FFRTMP_TEST_APP", "")
fastapi_app = _fastapi() if APP == "fastapi" else None
flask_app = _flask() if APP == "flask" else None
django_wsgi, django_asgi = _django() if APP == "django" else (None, None)
