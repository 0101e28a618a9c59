"""Traced apps that tests/tracing/test_servers.py serves with real uvicorn and gunicorn.

Each is built at import, in every worker process, after ``init_tracer`` (configured by
the ``OTEL_*`` variables the test sets): FastAPI with its own telemetry at the default
and ``TracingMiddleware``, Flask with ``instrument_app``, Django with the tracing
middleware (WSGI and ASGI). ``/items/{item_id}`` answers, ``/items/0`` raises KeyError.
"""

from __future__ import annotations

import os
from typing import Any

from ffrtmp_infra.tracing import TracingConfig, init_tracer

APP = os.environ.get("FFRTMP_TEST_APP", "")


def _stock(item_id: int) -> dict[str, int]:
    if item_id == 0:
        raise KeyError("item 0 was never stocked")
    return {"item": item_id}


def _fastapi() -> Any:
    from fastapi import FastAPI

    from ffrtmp_infra.tracing import TracingMiddleware

    app = FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return _stock(item_id)

    app.add_middleware(TracingMiddleware)
    return app


def _flask() -> Any:
    from flask import Flask

    from ffrtmp_infra.tracing.flask import instrument_app

    app = Flask(__name__)

    @app.get("/items/<int:item_id>")
    def item(item_id: int) -> dict[str, int]:
        return _stock(item_id)

    return instrument_app(app)


def _django() -> tuple[Any, Any]:
    from tests.support.django_site import configure

    configure()
    from django.conf import settings
    from django.core.asgi import get_asgi_application
    from django.core.wsgi import get_wsgi_application
    from django.http import JsonResponse
    from django.urls import path

    def item(request: Any, item_id: int) -> JsonResponse:
        return JsonResponse(_stock(item_id))

    settings.ROOT_URLCONF = type("urls", (), {"urlpatterns": [path("items/<int:item_id>", item)]})
    settings.MIDDLEWARE = ["ffrtmp_infra.tracing.django.TracingMiddleware"]
    return get_wsgi_application(), get_asgi_application()


if APP:
    init_tracer(TracingConfig(service_name=f"{APP}-under-a-real-server"))
fastapi_app = _fastapi() if APP == "fastapi" else None
flask_app = _flask() if APP == "flask" else None
django_wsgi, django_asgi = _django() if APP == "django" else (None, None)
