"""Small real apps the middleware tests wrap."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket


async def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("hi")


async def job(request: Request) -> PlainTextResponse:
    return PlainTextResponse(f"job {request.path_params['job_id']}")


async def stream(request: Request) -> StreamingResponse:
    async def chunks() -> AsyncIterator[bytes]:
        for i in range(3):
            yield f"chunk{i};".encode()

    return StreamingResponse(chunks(), media_type="text/plain")


async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text("hello")
    await websocket.close()


def starlette_app() -> Starlette:
    return Starlette(
        routes=[
            Route("/", hello),
            Route("/health", hello),
            Route("/api/jobs/{job_id}", job, methods=["GET", "POST"]),
            Route("/api/items", hello, methods=["GET", "POST"]),
            Route("/stream", stream),
            WebSocketRoute("/ws", echo),
        ]
    )


def wsgi_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    """A plain WSGI app: the body names the path."""
    body = f"hello {environ['PATH_INFO']}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
