"""Small Starlette apps the middleware tests run requests through."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.websockets import WebSocket


async def job(request: Request) -> Response:
    return JSONResponse({"job": request.path_params["job_id"]})


async def boom(request: Request) -> Response:
    raise RuntimeError("kaboom")


async def unavailable(request: Request) -> Response:
    return PlainTextResponse("busy", status_code=503)


async def health(request: Request) -> Response:
    return PlainTextResponse("ok")


async def stream(request: Request) -> Response:
    async def chunks():  # type: ignore[no-untyped-def]
        for i in range(3):
            yield f"chunk {i}\n"

    return StreamingResponse(chunks())


async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    for _ in range(3):
        await websocket.send_text(await websocket.receive_text())
    await websocket.close()


def make_app() -> Starlette:
    nested = Starlette(routes=[Route("/nodes/{node_id}", job)])
    return Starlette(
        routes=[
            Route("/jobs/{job_id}", job),
            Route("/boom", boom),
            Route("/busy", unavailable),
            Route("/healthz", health),
            Route("/metrics", health),
            Route("/stream", stream),
            WebSocketRoute("/agents/{agent_id}/ws", echo),
            Mount("/admin", app=nested),
        ]
    )


def with_test_client_address(app):  # type: ignore[no-untyped-def]
    """``app`` seeing the peer newer TestClients report (``testclient:50000``).

    Starlette's TestClient sets ``scope["client"]`` only from 0.37 on; the tests
    check how the middleware maps it, whichever Starlette is installed.
    """

    async def wrapper(scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] != "lifespan" and scope.get("client") is None:
            scope["client"] = ("testclient", 50000)
        await app(scope, receive, send)

    return wrapper
