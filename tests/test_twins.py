"""Every public sync/async pair gives the same result, or the same error, on the same input.

Pairs are found by introspection (``aX`` beside ``X`` in each subpackage's public
names and their classes), so a new pair cannot be forgotten: the coverage tests fail
until it has a row in a case table below. Each case runs the sync method on one fresh
object and the async twin on another fresh object built the same way, then compares
the results (or the exceptions' types and messages) and the state left behind.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import math
import re
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ffrtmp_infra.ratelimit import Decision, Limiter, WindowLimiter
from ffrtmp_infra.resources import MemoryBackend, RedisBackend, ResourceManager, Scorer
from tests.ratelimit.conftest import FakeClock
from tests.support.ffmpeg import FFmpeg

SUBPACKAGES = ("ratelimit", "resources", "tracing")


def discovered_pairs() -> set[str]:
    """``subpackage.Owner.name`` for every public ``name``/``aname`` (or ``async_name``) pair."""
    pairs = set()
    for sub in SUBPACKAGES:
        module = importlib.import_module(f"ffrtmp_infra.{sub}")
        for export in module.__all__:
            obj = getattr(module, export)
            if inspect.isclass(obj):
                members = {n for n in dir(obj) if not n.startswith("_")}
                owner, functions = export, {n: getattr(obj, n) for n in members}
            elif inspect.iscoroutinefunction(obj):
                owner, functions = "<module>", {export: obj}
                members = set(module.__all__)
            else:
                continue
            for name, fn in functions.items():
                if not inspect.iscoroutinefunction(fn):
                    continue
                for prefix in ("async_", "a"):  # arun_ffmpeg, async_httpx_request_hook
                    if name.startswith(prefix) and name[len(prefix) :] in members:
                        pairs.add(f"{sub}.{owner}.{name[len(prefix) :]}")
                        break
    return pairs


# ------------------------------------------------------------------ outcomes
def _outcome(call: Callable[[], Any]) -> tuple[Any, ...]:
    try:
        return ("ok", call())
    except Exception as exc:
        return ("raise", type(exc), str(exc))


async def _aoutcome(call: Callable[[], Any]) -> tuple[Any, ...]:
    try:
        return ("ok", await call())
    except Exception as exc:
        return ("raise", type(exc), str(exc))


def _decision(d: Decision) -> tuple[Any, ...]:
    return (d.allowed, d.limit, d.remaining, d.retry_after, d.reset_after, d.policy)


def _decisions_agree(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    """Equal, except the times: they come from a clock that moves between the two runs
    (wall clock, Redis TIME), so they agree within half a second. (Rounding both to a
    tenth of a second was flaky: 59.95 and 59.949 round apart.)"""
    return all(
        abs(x - y) <= 0.5 if isinstance(x, float) and math.isfinite(x) else x == y
        for x, y in zip(a, b, strict=True)
    )


def _same(sync: tuple[Any, ...], asynchronous: tuple[Any, ...]) -> None:
    if sync[0] == "ok" and isinstance(sync[1], Decision) and asynchronous[0] == "ok":
        assert isinstance(asynchronous[1], Decision), asynchronous
        pair = _decision(sync[1]), _decision(asynchronous[1])
        assert _decisions_agree(*pair), pair
    else:
        assert asynchronous == sync


# ------------------------------------------------------------------ ratelimit
Call = tuple[tuple[Any, ...], dict[str, Any]]


def _c(*args: Any, **kwargs: Any) -> Call:
    return args, kwargs


# burst/quota 3; each case starts after one hit on "k"
LIMITER_CASES: dict[str, list[Call]] = {
    "hit": [_c("k"), _c("k", 2), _c("k", 3), _c("k", 0), _c("k", 4), _c("k", -1), _c("new")],
    "test": [_c("k"), _c("k", 2), _c("k", 3), _c("k", 4), _c("new")],
    "refund": [_c("k"), _c("k", 2), _c("new")],
    "reset": [_c("k"), _c("new")],
}
RATELIMIT_OWNERS = {"Limiter": ("hit", "refund", "reset"), "WindowLimiter": tuple(LIMITER_CASES)}


def _limiter(kind: str, storage: str | None) -> Any:
    prefix = f"tw{uuid.uuid4().hex}"  # a fresh key space per object, same policy name
    if kind == "Limiter":
        clock = FakeClock()
        return Limiter(1, 3, storage=storage, clock=clock, name="twin", key_prefix=prefix)
    return WindowLimiter("3/minute", storage=storage, name="twin", key_prefix=prefix)


@pytest.fixture(params=["memory", "redis"])
def rl_storage(request: pytest.FixtureRequest) -> str | None:
    if request.param == "memory":
        return None
    url: str = request.getfixturevalue("redis_url")
    return url


def _ratelimit_cases() -> Iterator[Any]:
    for owner, names in RATELIMIT_OWNERS.items():
        for name in names:
            for i, call in enumerate(LIMITER_CASES[name]):
                yield pytest.param(owner, name, call, id=f"{owner}.{name}-{i}")


@pytest.mark.parametrize(("owner", "name", "call"), list(_ratelimit_cases()))
def test_ratelimit_twins_agree(owner: str, name: str, call: Call, rl_storage: str | None) -> None:
    args, kwargs = call

    def fresh() -> Any:
        limiter = _limiter(owner, rl_storage)
        limiter.hit("k")
        return limiter

    sync_limiter, async_limiter = fresh(), fresh()
    sync = _outcome(lambda: getattr(sync_limiter, name)(*args, **kwargs))

    async def run() -> tuple[Any, ...]:
        return await _aoutcome(lambda: getattr(async_limiter, "a" + name)(*args, **kwargs))

    _same(sync, asyncio.run(run()))
    # ... and they left the same state behind.
    after = [_decision(limiter.hit("k")) for limiter in (sync_limiter, async_limiter)]
    assert _decisions_agree(after[0], after[1]), after


# ------------------------------------------------------------------ resources
class _Smallest(Scorer):
    """A custom scorer (the Redis backend scores it in Python, not in the script)."""

    def score(self, node: Any, request: Any) -> float:
        return -float(node.allocatable.cpu_milli)


RESOURCE_CASES: dict[str, list[Call]] = {
    "register_node": [
        _c("n3", cpu=2, ram_gb=1, labels={"zone": "b"}),
        _c("n1", cpu=0.5),  # shrinks below the held reservation
        _c("", cpu=1),
        _c("n3", cpu=-1),
        _c("n3", cpu=0),
        _c("n3", cpu=1, labels={"": "x"}),
    ],
    "drain": [_c("n1"), _c("nope"), _c(""), _c(None)],
    "undrain": [_c("n1"), _c("nope"), _c("")],
    "unregister_node": [_c("n1"), _c("n2"), _c("nope"), _c("")],
    "get_node": [_c("n1"), _c("nope"), _c(""), _c(7)],
    "reserve": [
        _c("j", "n1", cpu=1, ram_gb=1),
        _c("j", "n1", cpu="500m", gpu=1, extended={}),
        _c("held", "n1", cpu=1),  # the same request again: the existing reservation
        _c("held", "n1", cpu=2),  # a different one: DuplicateJobError
        _c("j", "n2", cpu=3),
        _c("j", "nope", cpu=1),
        _c("j", "", cpu=1),
        _c("j", None, cpu=1),
        _c("", "n1", cpu=1),
        _c("j\n", "n1", cpu=1),
        _c("j", "n1", cpu="lots"),
        _c("j", "n1", cpu=1, extended={"nv": 1}),
        _c("j", "n1", cpu=1, owner="m", ttl=5),
        _c("held", "n1", cpu=1, owner="m", ttl=5),  # the same request: the lease renewed
        _c("j", "n1", cpu=1, owner="m"),  # an owner without a ttl
        _c("j", "n1", cpu=1, ttl=0),
    ],
    "reserve_any": [
        _c("j", cpu=1),
        _c("j", cpu=1, selector={"zone": "a"}),
        _c("j", cpu=1, scorer="spread"),
        _c("j", cpu=1, scorer=_Smallest()),
        _c("j", cpu=100),
        _c("j", cpu=1, exclude="n1"),
        _c("held", cpu=1),
        _c("", cpu=1),
        _c("j", cpu=1, owner="m", ttl=5),
        _c("j", cpu=1, ttl=-1),
    ],
    "renew": [_c("held"), _c("held", ttl=5), _c("none"), _c(""), _c("held", ttl=0)],
    "renew_owner": [_c("m"), _c(""), _c("m", ttl=float("nan"))],
    "expire": [_c()],
    "release": [_c("held"), _c("none"), _c(""), _c(None), _c(["held"]), _c("x" * 300)],
    "get_reservation": [_c("held"), _c("none"), _c(""), _c(None)],
    "get_available_nodes": [
        _c(cpu=1),
        _c(cpu=1, scorer="spread"),
        _c(cpu=1, scorer=_Smallest()),
        _c(selector={"zone": "a"}),
        _c(cpu=-1),
    ],
    "snapshot": [_c()],
    "close": [_c()],
}
# Backend pairs are driven through the manager pair that calls them (the manager's
# sync method calls the backend's sync method, its async twin the backend's twin).
BACKEND_VIA = {
    "register": "register_node",
    "set_draining": "drain",
    "unregister": "unregister_node",
    "get_node": "get_node",
    "reserve": "reserve",
    "reserve_any": "reserve_any",
    "release": "release",
    "get_reservation": "get_reservation",
    "renew": "renew",
    "renew_owner": "renew_owner",
    "expire": "expire",
    "available_nodes": "get_available_nodes",
    "snapshot": "snapshot",
    "close": "close",
}


@pytest.fixture(params=["MemoryBackend", "RedisBackend"])
def make_backend(request: pytest.FixtureRequest) -> Callable[[], Any]:
    if request.param == "MemoryBackend":
        return MemoryBackend
    url: str = request.getfixturevalue("redis_url")
    return lambda: RedisBackend(url, prefix=f"tw-{uuid.uuid4().hex}")


def _resource_cases() -> Iterator[Any]:
    for name, calls in RESOURCE_CASES.items():
        for i, call in enumerate(calls):
            yield pytest.param(name, call, id=f"{name}-{i}")


@pytest.mark.parametrize(("name", "call"), list(_resource_cases()))
def test_resource_twins_agree(name: str, call: Call, make_backend: Callable[[], Any]) -> None:
    args, kwargs = call

    def fresh() -> ResourceManager:
        manager = ResourceManager(make_backend())
        manager.register_node("n1", cpu=4, gpu=1, ram_gb=8, labels={"zone": "a"})
        manager.register_node("n2", cpu=2, ram_gb=4)
        manager.reserve("held", "n1", cpu=1)
        return manager

    sync_manager = fresh()
    sync = _outcome(lambda: getattr(sync_manager, name)(*args, **kwargs))
    sync_after = None if name == "close" else sync_manager.snapshot()
    sync_manager.close()

    async def run() -> tuple[tuple[Any, ...], Any]:
        manager = fresh()
        outcome = await _aoutcome(lambda: getattr(manager, "a" + name)(*args, **kwargs))
        after = None if name == "close" else manager.snapshot()
        await manager.aclose()
        return outcome, after

    asynchronous, async_after = asyncio.run(run())
    _same(sync, asynchronous)
    assert async_after == sync_after


# ------------------------------------------------------------------ tracing
def _ffmpeg_cases(ffmpeg: str) -> list[Call]:
    quiet = [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error"]
    return [
        _c([*quiet, "-f", "lavfi", "-i", "testsrc=d=0.2:s=64x48", "-f", "null", "-"]),
        _c([*quiet, "-i", "/nonexistent/in.mp4", "-f", "null", "-"]),
        _c([*quiet, "-i", "/nonexistent/in.mp4", "-f", "null", "-"], check=True),
        _c([*quiet, "-f", "lavfi", "-i", "sine=d=0.1", "-f", "wav", "-"], job_id="job-1"),
        _c(f"{ffmpeg} -version"),  # a string, not argv: refused the same way
        _c(["/nonexistent/ffmpeg", "-version"]),
    ]


def test_tracing_twins_agree(ffmpeg: FFmpeg) -> None:
    from ffrtmp_infra.tracing import arun_ffmpeg, run_ffmpeg

    for args, kwargs in _ffmpeg_cases(ffmpeg.path):
        sync = _outcome(lambda a=args, k=kwargs: run_ffmpeg(*a, capture_output=True, **k))

        async def run(a: Any = args, k: Any = kwargs) -> tuple[Any, ...]:
            return await _aoutcome(lambda: arun_ffmpeg(*a, capture_output=True, **k))

        asynchronous = asyncio.run(run())
        if sync[0] == "ok":
            # CompletedProcess has no __eq__: compare what it carries.
            # ffmpeg's messages carry object addresses ("[in#0 @ 0x55e6...]").
            def fields(r: subprocess.CompletedProcess[bytes]) -> tuple[Any, ...]:
                return (r.args, r.returncode, r.stdout, re.sub(rb"@ 0x[0-9a-f]+", b"@", r.stderr))

            sync, asynchronous = ("ok", fields(sync[1])), (asynchronous[0], fields(asynchronous[1]))
        assert asynchronous == sync, args


# ------------------------------------------------------------------ WSGI check / acheck
# Each case: a request after three from 1.2.3.4 (burst 3, so its GETs are rejected).
_ENVIRON = {"REQUEST_METHOD": "GET", "PATH_INFO": "/items/1", "REMOTE_ADDR": "1.2.3.4"}
CHECK_CASES: list[dict[str, str]] = [
    _ENVIRON,
    {**_ENVIRON, "REMOTE_ADDR": "5.6.7.8"},
    {**_ENVIRON, "PATH_INFO": "/health"},
    {**_ENVIRON, "REQUEST_METHOD": "OPTIONS"},
    {
        **_ENVIRON,
        "REQUEST_METHOD": "OPTIONS",
        "HTTP_ORIGIN": "https://app.example",
        "HTTP_ACCESS_CONTROL_REQUEST_METHOD": "GET",
    },
]


@pytest.mark.parametrize(
    "environ", CHECK_CASES, ids=lambda e: f"{e['REQUEST_METHOD']}-{e['PATH_INFO']}"
)
def test_wsgi_check_twins_agree(environ: dict[str, str], rl_storage: str | None) -> None:
    from ffrtmp_infra.ratelimit import Rule, WSGIRateLimitMiddleware

    def fresh() -> Any:
        limiter = _limiter("Limiter", rl_storage)
        middleware = WSGIRateLimitMiddleware(
            lambda e, s: [], limiter=limiter, rules=[Rule(path="/health", exempt=True)]
        )
        for _ in range(3):
            middleware.check(dict(_ENVIRON))
        return middleware

    def answer(result: tuple[Any, list[tuple[str, str]]]) -> tuple[Any, ...]:
        rejection, extra = result
        if rejection is None:
            return (None, extra)
        return (rejection.status, rejection.headers, rejection.body)

    sync_middleware, async_middleware = fresh(), fresh()
    sync = answer(sync_middleware.check(dict(environ)))
    asynchronous = answer(asyncio.run(async_middleware.acheck(dict(environ))))
    assert asynchronous == sync
    if environ is _ENVIRON:  # the case table reaches the rejection
        assert sync[0] == 429
    if environ is _ENVIRON:  # the case table reaches the rejection
        assert sync[0] == 429


TRACING_PAIRS = {"tracing.<module>.run_ffmpeg"}
# Pairs whose case table lives beside their subpackage's other tests (with spans).
ELSEWHERE = {"tracing.<module>.httpx_request_hook": "tests.tracing.test_twins"}


# ------------------------------------------------------------------ coverage
def test_every_sync_async_pair_has_a_case_table() -> None:
    covered = {f"ratelimit.{o}.{n}" for o, names in RATELIMIT_OWNERS.items() for n in names}
    covered |= {f"resources.ResourceManager.{n}" for n in RESOURCE_CASES}
    for backend in ("Backend", "MemoryBackend", "RedisBackend"):
        covered |= {f"resources.{backend}.{n}" for n in BACKEND_VIA}
    covered |= TRACING_PAIRS
    covered.add("ratelimit.WSGIRateLimitMiddleware.check")  # test_wsgi_check_twins_agree
    for pair, module_name in ELSEWHERE.items():
        name = pair.rsplit(".", 1)[1]
        module = importlib.import_module(module_name)
        assert hasattr(module, name), pair
        assert hasattr(module, f"async_{name}"), pair
        covered.add(pair)
    assert discovered_pairs() == covered


def test_discovery_finds_pairs_at_all() -> None:
    # The coverage test above cannot pass vacuously.
    found = discovered_pairs()
    assert "resources.ResourceManager.release" in found
    assert "ratelimit.Limiter.hit" in found
    assert "tracing.<module>.run_ffmpeg" in found
    assert len(found) > 40
    assert sys.version_info >= (3, 11)
