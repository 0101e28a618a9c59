"""Rate limiting: middleware cost over bare Starlette vs peers, memory per key, Redis vs PING.

Every middleware wraps the same Starlette app (one route returning "hi") and is
called in process (``await app(scope, receive, send)``), interleaved with the
others so machine noise spreads evenly. Limits are set so every request is
admitted (checked), keyed by the client IP.
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from typing import Any

from benchmarks._harness import Table, ainterleaved_samples
from benchmarks._icount import Icount

HUGE = 1_000_000_000
# Redis clients in these benchmarks: generous timeouts, so a stall on a loaded machine
# does not end the run (the limiter gets the same options as the bare client).
_REDIS_OPTIONS = {"socket_timeout": 10.0, "socket_connect_timeout": 10.0}
_SCOPE: dict[str, Any] = {
    "type": "http",
    "asgi": {"version": "3.0"},
    "http_version": "1.1",
    "method": "GET",
    "scheme": "http",
    "path": "/",
    "raw_path": b"/",
    "query_string": b"",
    "root_path": "",
    "headers": [(b"host", b"bench"), (b"user-agent", b"bench")],
    "client": ("203.0.113.7", 50000),
    "server": ("127.0.0.1", 8000),
}


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


class _Recorder:
    """An ASGI ``send`` that keeps the last status (to check every request was admitted)."""

    def __init__(self) -> None:
        self.statuses: dict[int, int] = {}

    async def __call__(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status = message["status"]
            self.statuses[status] = self.statuses.get(status, 0) + 1


def _starlette() -> Any:
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def hello(request: Any) -> PlainTextResponse:
        return PlainTextResponse("hi")

    return Starlette(routes=[Route("/", hello)])


class LimitsMiddleware:
    """What a careful user writes on top of ``limits``: pure ASGI, fixed window, sync memory."""

    def __init__(self, app: Any, limit: str, *, headers: bool) -> None:
        import limits
        from limits.storage import MemoryStorage
        from limits.strategies import FixedWindowRateLimiter

        self.app = app
        self.item = limits.parse(limit)
        self.strategy = FixedWindowRateLimiter(MemoryStorage())
        self.headers = headers

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        key = scope["client"][0]
        if not self.strategy.hit(self.item, key):
            await send({"type": "http.response.start", "status": 429, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        if not self.headers:
            await self.app(scope, receive, send)
            return
        stats = self.strategy.get_window_stats(self.item, key)
        extra = [
            (b"x-ratelimit-limit", str(self.item.amount).encode()),
            (b"x-ratelimit-remaining", str(stats.remaining).encode()),
            (b"x-ratelimit-reset", str(int(stats.reset_time)).encode()),
        ]

        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def _plain_app(scope: Any, receive: Any, send: Any) -> None:
    """The smallest app that answers like a framework does: start (with a header list), body."""
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]}
    )
    await send({"type": "http.response.body", "body": b"hi"})


def _candidates(inner: Callable[[], Any] = _starlette, *, peers: bool = True) -> dict[str, Any]:
    from ffrtmp_infra.ratelimit import Limiter, RateLimitMiddleware

    apps: dict[str, Any] = {}
    bare = "Starlette bare" if inner is _starlette else "plain ASGI app"
    apps[bare] = inner()
    apps[f"{bare} (second copy: noise)"] = inner()

    def ours(limiter: Any, headers: Any = "draft10") -> Any:
        return RateLimitMiddleware(inner(), limiter=limiter, headers=headers)

    # A bucket refilling far faster than requests arrive: always admitted, state steady.
    apps["ffrtmp ratelimit, draft-10 headers"] = ours(Limiter(HUGE, 100))
    apps["ffrtmp ratelimit, headers off"] = ours(Limiter(HUGE, 100), None)
    # Remaining changes on every request: header values cannot come from the cache.
    apps["ffrtmp ratelimit, headers, no cache hit"] = ours(Limiter(0.001, 10**9))
    apps["limits fixed-window mw, no headers"] = LimitsMiddleware(
        inner(), f"{HUGE}/second", headers=False
    )
    apps["limits fixed-window mw + X-RateLimit"] = LimitsMiddleware(
        inner(), f"{HUGE}/second", headers=True
    )
    try:
        from ratelimit.backends.simple import MemoryBackend

        from ratelimit import RateLimitMiddleware as ARLMiddleware
        from ratelimit import Rule as ARLRule

        async def by_ip(scope: Any) -> tuple[str, str]:
            return scope["client"][0], "default"

        apps["asgi-ratelimit MemoryBackend"] = ARLMiddleware(
            inner(), by_ip, MemoryBackend(), {r"^/": [ARLRule(second=HUGE)]}
        )
    except ImportError:  # pragma: no cover - the bench extra installs it
        pass
    if not peers:  # slowapi needs a Starlette app (it reads app.state)
        return apps
    try:
        from slowapi import Limiter as SlowLimiter
        from slowapi.middleware import SlowAPIASGIMiddleware
        from slowapi.util import get_remote_address

        slow_app = _starlette()
        slow_app.state.limiter = SlowLimiter(
            key_func=get_remote_address, default_limits=[f"{HUGE}/second"]
        )
        slow_app.add_middleware(SlowAPIASGIMiddleware)
        apps["slowapi SlowAPIASGIMiddleware"] = slow_app
    except ImportError:  # pragma: no cover
        pass
    return apps


def middleware_table(quick: bool, *, plain: bool = False) -> Table:
    apps = _candidates(lambda: _plain_app, peers=False) if plain else _candidates()
    bare_name = next(iter(apps))
    recorders = {name: _Recorder() for name in apps}

    def call(app: Any, recorder: _Recorder) -> Callable[[], Any]:
        return lambda: app(dict(_SCOPE), _receive, recorder)

    number, repeat = (2000, 3) if quick else (5000, 25)
    samples = ainterleaved_samples(
        {name: call(app, recorders[name]) for name, app in apps.items()},
        number=number,
        repeat=repeat,
        warmup=200,
    )
    medians = {name: statistics.median(runs) for name, runs in samples.items()}
    minimums = {name: min(runs) for name, runs in samples.items()}
    for name, recorder in recorders.items():
        if set(recorder.statuses) != {200}:
            raise RuntimeError(f"{name} did not admit every request: {recorder.statuses}")
    bare = medians[bare_name]
    bare_min = minimums[bare_name]
    ours = medians["ffrtmp ratelimit, draft-10 headers"] - bare
    title = (
        "Middleware cost over a plain ASGI app (the middleware's own cost, less noise)"
        if plain
        else "Middleware cost over a bare Starlette app (in process, memory storage)"
    )
    table = Table(
        title,
        [
            "configuration",
            "µs/request (median)",
            "added µs (median)",
            "added µs (min of runs)",
            "added vs ffrtmp (draft-10)",
        ],
    )
    for name, seconds in medians.items():
        if name == bare_name:
            table.add(name, seconds * 1e6, "—", "—", "—")
            continue
        added = seconds - bare
        added_min = minimums[name] - bare_min
        table.add(name, seconds * 1e6, added * 1e6, added_min * 1e6, f"{added / ours:.1f}x")
    table.notes += [
        f"{repeat} interleaved runs of {number} requests each; 'median' compares median "
        "runs, 'min' the least disturbed run of each; every response was checked to be a "
        "200; the second bare copy shows the noise floor",
        "target: ffrtmp adds at most 3 µs with headers on, and at most half of "
        "asgi-ratelimit and the limits-based middleware",
        "'no cache hit': the bucket's remaining count changes on every request, so the "
        "header values are formatted each time (the worst case for the header cache)",
    ]
    return table


def _tracemalloc_bytes(fill: Callable[[], Any]) -> tuple[int, Any]:
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    keep = fill()
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return after - before, keep


def memory_table(quick: bool) -> Table:
    from ffrtmp_infra.ratelimit import Limiter

    n = 20_000 if quick else 200_000
    keys = [f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}" for i in range(n)]
    clock_now = [0.0]
    table = Table(
        "Memory per active key (tracemalloc, in-memory token bucket)",
        ["measure", "value"],
    )

    def fill_ours(make_key: Callable[[int], str], count: int) -> Any:
        limiter = Limiter(1, 10, clock=lambda: clock_now[0])
        for i in range(count):
            limiter.hit(make_key(i))  # the key string is the request's, freed after it
        return limiter

    ipv4: Callable[[int], str] = lambda i: f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"  # noqa: E731
    sizes = (20_000,) if quick else (200_000, 1_000_000)
    for count in sizes:
        for label, make_key in (
            ("IPv4 keys", ipv4),
            ("hashed API keys (36 chars)", lambda i: f"key:{i:032x}"),
        ):
            used, _ = _tracemalloc_bytes(
                lambda make_key=make_key, count=count: fill_ours(make_key, count)
            )
            table.add(f"ffrtmp token bucket, {count:,} {label}", f"{used / count:.0f} B/key")

    def fill_limits() -> Any:
        import limits
        from limits.storage import MemoryStorage
        from limits.strategies import FixedWindowRateLimiter

        storage = MemoryStorage()
        strategy = FixedWindowRateLimiter(storage)
        item = limits.parse("10/hour")  # long enough that its expiry thread removes nothing
        for key in keys:
            strategy.hit(item, key)
        return storage

    limits_bytes, storage = _tracemalloc_bytes(fill_limits)
    storage.timer.cancel()
    table.add(
        f"limits MemoryStorage fixed window, {n:,} IPv4 keys", f"{limits_bytes / n:.0f} B/key"
    )

    # A million distinct clients: memory stays bounded by the sweep and by max_keys.
    total = 200_000 if quick else 1_000_000
    limiter = Limiter(100, 10, clock=lambda: clock_now[0], max_keys=100_000)
    peak = 0
    for i in range(total):
        clock_now[0] = i * 1e-4  # 10k new clients per second, each refilled within 0.1 s
        limiter.hit(f"c{i}")
        peak = max(peak, len(limiter))
    table.add(f"{total:,} distinct keys at 10k new/s, rate 100 burst 10: peak keys held", peak)
    live = Limiter(0.001, 10, clock=lambda: 0.0, max_keys=100_000)  # never refill
    for i in range(total):
        live.hit(f"c{i}")
    table.add(f"{total:,} distinct keys that never refill, max_keys=100,000: keys held", len(live))
    table.notes += [
        "target: at most 100 bytes per active key; 1,000,000 distinct keys must not grow "
        "memory without bound",
        "ffrtmp holds a key as its 64-bit hash and its theoretical arrival time in two flat "
        "arrays (16 bytes a slot, at most half full), so the cost does not depend on the "
        "key's length; limits keeps the key strings, a counter, an expiry and a lock per key",
        "bytes per key vary with where the count falls between the table's doubling resizes",
        "refilled keys are dropped losslessly when the table grows (an absent key is a full "
        "bucket); when every key is live, max_keys keeps the 3/4 with the most debt",
    ]
    return table


def redis_table(quick: bool) -> Table | None:
    import shutil

    binary = shutil.which("redis-server")
    try:
        import redis  # noqa: F401
    except ImportError:  # pragma: no cover
        return None
    if binary is None:
        return None
    from tests.support.redis_server import RedisServer

    server = RedisServer(binary)
    server.start()
    try:
        return _redis_rows(server, quick)
    finally:
        server.stop()


def _redis_rows(server: Any, quick: bool) -> Table:
    import redis
    import redis.asyncio

    from ffrtmp_infra.ratelimit import Limiter

    number, repeat = (500, 3) if quick else (3000, 7)
    # PING and GET go through a client of our own, built from the same URL with the same
    # library and socket options as the limiter: public API only, never its internals.
    options = _REDIS_OPTIONS
    limiter = Limiter(HUGE, 100, storage=server.url, storage_options=options)
    client = redis.Redis.from_url(server.url, **options)
    limiter.hit("k")
    client.ping()
    calls: tuple[tuple[str, Callable[[], object]], ...] = (
        ("PING", client.ping),
        ("GET", lambda: client.get("ffrtmp-rl:probe")),
        ("hit", lambda: limiter.hit("203.0.113.7")),
    )
    samples: dict[str, list[float]] = {name: [] for name, _ in calls}
    client.config_resetstat()
    for _ in range(repeat):
        for name, fn in calls:
            start = time.perf_counter()
            for _ in range(number):
                fn()
            samples[name].append((time.perf_counter() - start) / number)
    server_us = _server_us(client)
    ping, get, hit = (statistics.median(samples[n]) for n in ("PING", "GET", "hit"))

    async def async_trio() -> tuple[float, float, float]:
        connection = redis.asyncio.Redis.from_url(server.url, **options)
        try:
            await limiter.ahit("k")
            await connection.ping()
            acalls: tuple[tuple[str, Callable[[], Awaitable[object]]], ...] = (
                ("PING", connection.ping),
                ("GET", lambda: connection.get("ffrtmp-rl:probe")),
                ("hit", lambda: limiter.ahit("203.0.113.7")),
            )
            out: dict[str, list[float]] = {name: [] for name, _ in acalls}
            for _ in range(repeat):
                for name, fn in acalls:
                    start = time.perf_counter()
                    for _ in range(number):
                        await fn()
                    out[name].append((time.perf_counter() - start) / number)
        finally:
            await connection.aclose()
        return (
            statistics.median(out["PING"]),
            statistics.median(out["GET"]),
            statistics.median(out["hit"]),
        )

    aping, aget, ahit = asyncio.run(async_trio())
    client.close()

    table = Table(
        f"Redis decision vs a bare PING from the same client (redis-py {redis.__version__}, "
        "loopback)",
        ["client", "PING µs", "GET µs", "decision µs", "GET / PING", "decision / PING",
         "server µs: PING / decision", "client-side µs: decision - PING - server extra"],
    )  # fmt: skip
    extra = server_us["evalsha"] - server_us["ping"]
    rows = (("sync redis-py", ping, get, hit), ("async redis-py", aping, aget, ahit))
    for label, p, g, h in rows:
        table.add(
            label, p * 1e6, g * 1e6, h * 1e6, f"{g / p:.2f}x", f"{h / p:.2f}x",
            f"{server_us['ping']:.2f} / {server_us['evalsha']:.2f}", (h - p) * 1e6 - extra,
        )  # fmt: skip
    table.notes += [
        "one decision = one EVALSHA of the GCRA script (TIME, GET, SET PX; one argument, "
        "one bulk-string reply) returning everything the headers need: one round trip",
        "target: a decision costs at most 1.3x a bare PING from the same client library",
        "PING and GET are sent by a redis-py client built from the limiter's URL with the "
        "limiter's socket options (sync: redis.Redis, async: redis.asyncio.Redis)",
        "server µs: INFO commandstats of the sync runs (usec per call of PING and of the "
        "EVALSHA); the last column is what the decision costs the client beyond a PING "
        "once the extra server time is taken off (building the arguments, the longer "
        "command, decoding the reply, the limiter's own Python)",
        f"medians of {repeat} interleaved runs of {number} sequential calls",
    ]
    return table


def _server_us(client: Any) -> dict[str, float]:
    """Server µs per call of PING and EVALSHA since the last CONFIG RESETSTAT."""
    stats = client.info("commandstats")
    return {
        name: float(stats.get(f"cmdstat_{name}", {}).get("usec_per_call", 0.0))
        for name in ("ping", "evalsha")
    }


def _requests(app: Any) -> Callable[[int], object]:
    """loop(n): n requests through ``app`` on one event loop, each checked to be a 200."""
    loop = asyncio.new_event_loop()
    recorder = _Recorder()

    async def many(n: int) -> None:
        for _ in range(n):
            await app(dict(_SCOPE), _receive, recorder)

    def run(n: int) -> object:
        loop.run_until_complete(many(n))
        if set(recorder.statuses) != {200}:
            raise RuntimeError(f"not every request was admitted: {recorder.statuses}")
        return None

    return run


def _redis_calls(what: str) -> Callable[[int], object]:
    """loop(n): n sequential calls to a private redis-server (stopped at exit): a PING or
    a limiter decision, through redis-py's sync or asyncio client."""
    import atexit
    import shutil

    import redis
    import redis.asyncio
    from tests.support.redis_server import RedisServer

    from ffrtmp_infra.ratelimit import Limiter

    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("the Redis scenarios need redis-server on PATH")
    server = RedisServer(binary)
    server.start()
    atexit.register(server.stop)
    limiter = Limiter(HUGE, 100, storage=server.url, storage_options=_REDIS_OPTIONS)
    if not what.startswith("async"):
        client = redis.Redis.from_url(server.url, **_REDIS_OPTIONS)
        call = client.ping if what == "PING" else lambda: limiter.hit("203.0.113.7")

        def run(n: int) -> object:
            for _ in range(n):
                call()
            return None

        return run
    loop = asyncio.new_event_loop()
    aclient = redis.asyncio.Redis.from_url(server.url, **_REDIS_OPTIONS)
    acall = aclient.ping if what == "async PING" else lambda: limiter.ahit("203.0.113.7")

    async def many(n: int) -> None:
        for _ in range(n):
            await acall()

    return lambda n: loop.run_until_complete(many(n))


def redis_icount(quick: bool) -> Icount:
    """Client-side instructions per Redis decision and per PING (the server is another
    process: not counted)."""
    return Icount(
        "Client-side instructions per Redis call (redis-py, loopback redis-server)",
        "call",
        {
            name: lambda name=name: _redis_calls(name)
            for name in ("PING", "decision", "async PING", "async decision")
        },
        reference="PING",
        references={"async PING": "async PING", "async decision": "async PING"},
        versus="PING",
        n=(50, 300) if quick else (500, 3000),
        notes=[
            "instructions of the client process only (redis-server runs outside callgrind); "
            "a decision = Limiter.hit / ahit (one EVALSHA of the GCRA script), a PING = "
            "redis-py's ping() on a client built with the same URL and options; ratios: sync "
            "rows against the sync PING, async rows against the async PING",
            "target: a decision costs at most 1.3x a PING from the same client; the "
            "wall-clock and server-time table is in the ratelimit section",
        ],
    )


def icount(quick: bool) -> list[Icount]:
    """Instructions per request (bare Starlette, ffrtmp's middleware and its peers), and
    client-side instructions per Redis decision vs a PING."""
    return [_middleware_icount(quick), redis_icount(quick)]


def _middleware_icount(quick: bool) -> Icount:
    """Instructions per request: bare Starlette, ffrtmp's middleware and its peers."""
    names = ["Starlette bare", "ffrtmp ratelimit, draft-10 headers"]
    if not quick:
        names += [
            "ffrtmp ratelimit, headers off",
            "ffrtmp ratelimit, headers, no cache hit",
            "limits fixed-window mw, no headers",
            "limits fixed-window mw + X-RateLimit",
            "asgi-ratelimit MemoryBackend",
            "slowapi SlowAPIASGIMiddleware",
        ]
    return Icount(
        "Instructions per request over a bare Starlette app (in process, memory storage)",
        "request",
        {name: lambda name=name: _requests(_candidates()[name]) for name in names},
        reference="ffrtmp ratelimit, draft-10 headers",
        baseline="Starlette bare",
        n=(100, 600) if quick else (1000, 5000),
    )


def run(quick: bool) -> list[Table]:
    tables = [middleware_table(quick), middleware_table(quick, plain=True), memory_table(quick)]
    redis_rows = redis_table(quick)
    if redis_rows is not None:
        tables.append(redis_rows)
    return tables
