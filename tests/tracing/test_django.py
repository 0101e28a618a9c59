"""Django's ``TracingMiddleware``: route-named spans and exceptions (issue 12 item 5).

This module is also the URLconf of its tests (``ROOT_URLCONF``).
"""

from __future__ import annotations

import asyncio
import importlib
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from ffrtmp_infra.errors import ConfigurationError, MissingExtraError
from tests.support.django_site import configure

configure()

from django.core.exceptions import PermissionDenied  # noqa: E402
from django.http import Http404, HttpRequest, JsonResponse  # noqa: E402
from django.test import AsyncClient, Client, override_settings  # noqa: E402
from django.urls import include, path, re_path  # noqa: E402

from ffrtmp_infra.tracing.django import TracingMiddleware  # noqa: E402

MIDDLEWARE = "ffrtmp_infra.tracing.django.TracingMiddleware"
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"


def item(request: HttpRequest, item_id: int) -> JsonResponse:
    if item_id == 0:
        raise KeyError("item 0 was never stocked")
    if item_id == 404:
        raise Http404("no such item")
    if item_id == 403:
        raise PermissionDenied
    return JsonResponse({"item_id": item_id})


async def async_item(request: HttpRequest, item_id: int) -> JsonResponse:
    await asyncio.sleep(0)
    if item_id == 0:
        raise KeyError("item 0 was never stocked")
    return JsonResponse({"item_id": item_id})


def archive(request: HttpRequest, year: str) -> JsonResponse:
    return JsonResponse({"year": year})


urlpatterns = [
    path("items/<int:item_id>", item),
    path("async/items/<int:item_id>", async_item),
    path("api/", include([re_path(r"^archive/(?P<year>[0-9]{4})/$", archive)])),
    path("healthz", item, {"item_id": 1}),
]


@pytest.fixture
def traced(provider: TracerProvider) -> Iterator[None]:
    with override_settings(
        ROOT_URLCONF=__name__,
        MIDDLEWARE=[MIDDLEWARE],
        FFRTMP_TRACING={"tracer_provider": provider},
    ):
        yield


def only_span(exporter: InMemorySpanExporter) -> Any:
    [span] = exporter.get_finished_spans()
    return span


@pytest.mark.usefixtures("traced")
def test_a_span_named_after_the_resolved_route_with_converters_rewritten(
    exporter: InMemorySpanExporter,
) -> None:
    response = Client().get("/items/7?token=s3cret", HTTP_USER_AGENT="probe/1.0")
    assert response.status_code == 200
    span = only_span(exporter)
    assert span.name == "GET /items/{item_id}"
    assert span.kind is SpanKind.SERVER
    assert span.status.status_code is StatusCode.UNSET
    attributes = dict(span.attributes or {})
    assert attributes["http.route"] == "/items/{item_id}"
    assert attributes["http.response.status_code"] == 200
    assert attributes["url.path"] == "/items/7"
    assert attributes["url.query"] == "token=REDACTED"
    assert attributes["url.scheme"] == "http"
    assert attributes["user_agent.original"] == "probe/1.0"


@pytest.mark.usefixtures("traced")
def test_a_raising_view_is_recorded_with_its_class(exporter: InMemorySpanExporter) -> None:
    assert Client(raise_request_exception=False).get("/items/0").status_code == 500
    span = only_span(exporter)
    assert span.name == "GET /items/{item_id}"
    assert span.status.status_code is StatusCode.ERROR
    attributes = dict(span.attributes or {})
    assert attributes["error.type"] == "KeyError"
    assert attributes["http.response.status_code"] == 500
    [event] = span.events
    assert event.name == "exception"
    assert (event.attributes or {})["exception.type"] == "KeyError"


@pytest.mark.usefixtures("traced")
@pytest.mark.parametrize(("item_id", "status"), [(404, 404), (403, 403)])
def test_exceptions_django_answers_with_a_4xx_are_not_errors(
    exporter: InMemorySpanExporter, item_id: int, status: int
) -> None:
    assert Client().get(f"/items/{item_id}").status_code == status
    span = only_span(exporter)
    assert span.name == "GET /items/{item_id}"
    assert span.status.status_code is StatusCode.UNSET
    assert span.events == ()


@pytest.mark.usefixtures("traced")
def test_an_unresolved_request_is_named_by_its_method(exporter: InMemorySpanExporter) -> None:
    assert Client().get("/nowhere").status_code == 404
    span = only_span(exporter)
    assert span.name == "GET"
    assert "http.route" not in (span.attributes or {})


@pytest.mark.usefixtures("traced")
def test_included_regex_routes_are_named_by_their_groups(exporter: InMemorySpanExporter) -> None:
    assert Client().get("/api/archive/2024/").status_code == 200
    assert only_span(exporter).name == "GET /api/archive/{year}/"


@pytest.mark.usefixtures("traced")
@pytest.mark.parametrize("view", ["items", "async/items"])
def test_the_async_handler_names_spans_and_records_exceptions(
    exporter: InMemorySpanExporter, view: str
) -> None:
    async def requests() -> tuple[int, int]:
        client = AsyncClient(raise_request_exception=False)
        ok = await client.get(f"/{view}/7")
        failed = await client.get(f"/{view}/0")
        return ok.status_code, failed.status_code

    assert asyncio.run(requests()) == (200, 500)
    ok, failed = exporter.get_finished_spans()
    assert ok.name == failed.name == f"GET /{view}/{{item_id}}"
    assert (failed.attributes or {})["error.type"] == "KeyError"
    assert [e.name for e in failed.events] == ["exception"]


def test_the_middleware_is_sync_and_async_capable() -> None:
    async def get_response(request: HttpRequest) -> JsonResponse:
        return JsonResponse({})

    assert TracingMiddleware.sync_capable
    assert TracingMiddleware.async_capable
    assert asyncio.iscoroutinefunction(TracingMiddleware(get_response))
    assert not asyncio.iscoroutinefunction(TracingMiddleware(lambda request: JsonResponse({})))


@pytest.mark.usefixtures("traced")
def test_an_incoming_traceparent_is_continued(exporter: InMemorySpanExporter) -> None:
    Client().get("/items/7", HTTP_TRACEPARENT=f"00-{TRACE_ID}-b7ad6b7169203331-01")
    span = only_span(exporter)
    assert format(span.context.trace_id, "032x") == TRACE_ID
    assert span.parent is not None
    assert span.parent.is_remote


def test_exclusions_come_from_the_setting(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    tracing = {"tracer_provider": provider, "excluded_urls": [r"^/items/"]}
    with override_settings(ROOT_URLCONF=__name__, MIDDLEWARE=[MIDDLEWARE], FFRTMP_TRACING=tracing):
        Client().get("/items/7")
        Client().get("/healthz")
    assert [s.name for s in exporter.get_finished_spans()] == ["GET /healthz"]


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"exclude": ["^/x"]}, r"unknown keys \['exclude'\]; allowed: excluded_urls"),
        (["^/x"], "must be a dict"),
        ({"excluded_urls": ["(unclosed"]}, "not a valid regex"),
    ],
)
def test_a_bad_setting_fails_when_django_loads_the_middleware(setting: Any, message: str) -> None:
    with (
        override_settings(FFRTMP_TRACING=setting),
        pytest.raises(ConfigurationError, match=message),
    ):
        TracingMiddleware(lambda request: JsonResponse({}))


def test_without_django_the_import_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "django.conf", None)
    monkeypatch.delitem(sys.modules, "ffrtmp_infra.tracing.django")
    with pytest.raises(MissingExtraError, match=r"ffrtmp-infra\[django\]"):
        importlib.import_module("ffrtmp_infra.tracing.django")
