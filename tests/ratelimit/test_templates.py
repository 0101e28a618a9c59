"""Route templates are matched as Starlette's router matches them, without Starlette."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from ffrtmp_infra.ratelimit import ConfigurationError
from ffrtmp_infra.ratelimit._rules import compile_template

UUID = "3f2b8c1e-9d4a-4f6b-8e2c-1a2b3c4d5e6f"
PATHS = [
    "/",
    "/jobs",
    "/jobs/",
    "/jobs/42",
    "/jobs/42/",
    "/jobs/abc",
    "/jobs/4.5",
    "/jobs/42/logs",
    "/jobs/a/b/c",
    f"/jobs/{UUID}",
    "/jobs/42/logs/7",
    "/files/a.b/c.d",
    "/files/",
    "/v1.0/jobs/1",
    "/v1x0/jobs/1",
    "/jobs/%2F",
    "/jobs/42\n",
]
TEMPLATES = [
    "/jobs/{job_id}",
    "/jobs/{job_id:str}",
    "/jobs/{job_id:int}",
    "/jobs/{job_id:float}",
    "/jobs/{job_id:path}",
    "/jobs/{job_id:uuid}",
    "/jobs/{job_id:int}/logs/{line:int}",
    "/jobs/{job_id}/logs",
    "/files/{name:path}",
    "/v1.0/jobs/{id}",
    "/{a}/{b:path}",
    "/jobs/{job_id}/",
    "/jobs/{_x1}",
]


@pytest.mark.parametrize("template", TEMPLATES)
def test_a_template_matches_exactly_the_paths_starlette_matches(template: str) -> None:
    from starlette.routing import compile_path

    ours = compile_template(template)
    theirs = compile_path(template)[0]
    for path in PATHS:
        assert bool(ours.match(path)) == bool(theirs.match(path)), (template, path)
        if ours.match(path):
            assert ours.match(path).groupdict() == theirs.match(path).groupdict()  # type: ignore[union-attr]


def test_uuid_accepts_upper_case_and_no_hyphens_as_current_starlette() -> None:
    # Starlette widened its uuid converter after 0.36 (FastAPI 0.110); rules follow the
    # newer one, so they match at least every path a router of any supported version does.
    pattern = compile_template("/jobs/{job_id:uuid}")
    assert pattern.match(f"/jobs/{UUID.upper()}")
    assert pattern.match(f"/jobs/{UUID.replace('-', '')}")
    assert not pattern.match(f"/jobs/{UUID[:-1]}g")


def test_templates_match_some_paths_and_refuse_others() -> None:
    # The table above is not vacuous: each kind of template accepts and refuses something.
    assert compile_template("/jobs/{id:int}").match("/jobs/42")
    assert not compile_template("/jobs/{id:int}").match("/jobs/abc")
    assert compile_template("/files/{p:path}").match("/files/a/b")
    assert not compile_template("/jobs/{id}").match("/jobs/a/b")


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("/jobs/{id:number}", "unknown path converter 'number'"),
        ("/jobs/{id}/{id:int}", "path parameter 'id' appears twice"),
    ],
)
def test_a_bad_template_fails_at_construction(template: str, message: str) -> None:
    from ffrtmp_infra.ratelimit import Limiter, Rule

    with pytest.raises(ConfigurationError, match=message):
        Rule(Limiter(1, 1), path=template)


def test_ratelimit_wsgi_and_resources_work_without_starlette() -> None:
    # A Flask/Django user has no Starlette (nor anyio): block both and use the WSGI side.
    code = textwrap.dedent(
        """
        import sys
        for name in ("starlette", "anyio", "fastapi"):
            sys.modules[name] = None  # any import of them now raises ImportError
        from ffrtmp_infra.ratelimit import Limiter, Rule, WSGIRateLimitMiddleware
        from ffrtmp_infra.resources import ResourceManager

        def app(environ, start_response):
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"ok"]

        limited = WSGIRateLimitMiddleware(
            app, limiter=Limiter(1, 1), rules=[Rule(Limiter(1, 1), path="/jobs/{id:int}")]
        )
        statuses = []
        for _ in range(2):
            environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/jobs/7", "REMOTE_ADDR": "1.2.3.4",
                       "wsgi.url_scheme": "http", "SERVER_NAME": "t", "SERVER_PORT": "80"}
            b"".join(limited(environ, lambda status, headers, exc=None: statuses.append(status)))
        manager = ResourceManager()
        manager.register_node("n", cpu=1)
        assert manager.reserve("j", "n", cpu=1).node_id == "n"
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("starlette", "anyio")
                        and sys.modules[m] is not None)
        print(statuses, loaded)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["['200", "OK',", "'429", "Too", "Many", "Requests']", "[]"]
