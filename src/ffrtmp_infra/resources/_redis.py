"""The Redis backend: nodes and reservations in Redis, every change one Lua script.

Each reserve, reserve_any, release, register, drain and unregister is a single
``EVALSHA`` (one round trip); Redis runs a script atomically, so several master
processes sharing one Redis never over-commit a node. All keys share the hash tag
``{prefix}``, so they live in one slot (Redis Cluster works; the ledger sits on one
shard).

``reserve_any`` with a built-in scorer searches a placement index kept in Redis beside
the ledger (the memory backend's: nodes grouped by shape, bucketed by used CPU and GPU,
each bucket a zset by used RAM; see ``_lua/lib.lua``), so its server time grows with the
number of shapes and load levels, not with the number of nodes; every change to a node
moves it between buckets in the same script. With a custom scorer the backend reads a
snapshot, scores in Python and reserves on the winner, retrying if another master
took the capacity first.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from importlib import resources as importlib_resources
from types import MappingProxyType
from typing import Any

from ._compat import async_close
from ._errors import (
    BackendUnavailableError,
    DuplicateJobError,
    InsufficientResourcesError,
    InvalidAmountError,
    MissingExtraError,
    NodeDrainingError,
    NoNodeAvailableError,
    ResourceError,
    UnknownNodeError,
)
from ._memory import insufficient
from ._quantity import Lease, check_id
from ._scoring import BuiltinScorer, Scorer, Selector
from ._types import EMPTY, Node, RegisterResult, Reservation, Resources, Snapshot

_SCRIPTS = ("register", "reserve", "release", "unregister", "drain", "read", "available", "lease")
_CUSTOM_RETRIES = 8
# With a custom scorer, what reserving on the picked node raises when another master
# changed that node between the snapshot and the reservation: look again.
_RACED = (InsufficientResourcesError, NodeDrainingError, UnknownNodeError)


def _load_scripts() -> dict[str, str]:
    folder = importlib_resources.files(__package__).joinpath("_lua")
    lib = folder.joinpath("lib.lua").read_text(encoding="utf-8")
    return {
        name: lib + "\n" + folder.joinpath(f"{name}.lua").read_text(encoding="utf-8")
        for name in _SCRIPTS
    }


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _reservation(raw: Sequence[Any]) -> Reservation:
    job, node = _s(raw[0]), _s(raw[1])
    devices, owner, ttl_ms = _s(raw[5]), _s(raw[6]), int(raw[7])
    ext = {_s(raw[i]): int(raw[i + 1]) for i in range(8, len(raw), 2)}
    resources = Resources(
        int(raw[2]),
        int(raw[3]),
        int(raw[4]),
        MappingProxyType(dict(sorted(ext.items()))) if ext else EMPTY,
    )
    return Reservation(
        job,
        node,
        resources,
        tuple(int(d) for d in devices.split(",")) if devices else (),
        owner or None,
        ttl_ms / 1000 if ttl_ms else None,
    )


def _node(raw: Sequence[Any]) -> Node:
    node_id, flat, count = _s(raw[0]), raw[1], int(raw[2])
    h = {_s(flat[i]): _s(flat[i + 1]) for i in range(0, len(flat), 2)}
    h.update(
        zip(
            ("ac", "ar", "ag", "uc", "ur", "ug", "drain", "seq", "shape"),
            _s(raw[3]).split(),
            strict=True,
        )
    )
    cap_x, alloc_x, used_x, labels = {}, {}, {}, {}
    for field, value in h.items():
        prefix, _, name = field.partition(":")
        if not name:
            continue
        if prefix == "cx":
            cap_x[name] = int(value)
        elif prefix == "ax":
            alloc_x[name] = int(value)
        elif prefix == "ux" and int(value):
            used_x[name] = int(value)
        elif prefix == "l":
            labels[name] = value

    def vec(c: str, r: str, g: str, ext: dict[str, int]) -> Resources:
        ext = {k: v for k, v in sorted(ext.items()) if v}
        return Resources(int(h[c]), int(h[r]), int(h[g]), MappingProxyType(ext) if ext else EMPTY)

    dev = h.get("dev", "")
    return Node(
        node_id,
        vec("cc", "cr", "cg", cap_x),
        vec("ac", "ar", "ag", alloc_x),
        vec("uc", "ur", "ug", used_x),
        MappingProxyType(dict(sorted(labels.items()))),
        h.get("drain") == "1",
        count,
        tuple(i for i, ch in enumerate(dev) if ch == "1"),
    )


def _request_args(rc: int, rr: int, rg: int, kind: str, ext: Mapping[str, int]) -> list[Any]:
    args: list[Any] = [rc, rr, rg, kind, len(ext)]
    for name, amount in ext.items():
        args += [name, amount]
    return args


def _selector_args(selector: Selector) -> list[Any]:
    args: list[Any] = [len(selector)]
    for key, values in selector:
        args += [key, len(values), *sorted(values)]
    return args


class RedisBackend:
    """Nodes and reservations in Redis, shared by every manager that uses the same prefix.

    ``target`` is a ``redis://`` URL or a redis-py client (``redis.Redis`` for the sync
    methods, ``redis.asyncio.Redis`` for the async twins; from a URL both are made).
    """

    def __init__(self, target: Any, prefix: str = "ffrtmp-res") -> None:
        try:
            import redis
            import redis.asyncio as aioredis
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise MissingExtraError("RedisBackend", "redis", "redis-py") from exc
        if not isinstance(prefix, str) or not prefix or any(c in prefix for c in "{}"):
            raise InvalidAmountError(
                f"prefix must be a non-empty string without braces, got {prefix!r}"
            )
        self._base = "{" + prefix + "}"
        self._down: tuple[type[BaseException], ...] = (
            redis.exceptions.ConnectionError,
            redis.exceptions.TimeoutError,
        )
        self._sync: Any = None
        self._async: Any = None
        self._owned = False
        if isinstance(target, str):
            if not target.startswith(("redis://", "rediss://", "unix://")):
                # Name only the scheme: the rest of a URL may carry a password.
                scheme = target.split("://", 1)[0] if "://" in target else "no scheme"
                raise InvalidAmountError(
                    f"Redis URL must start with redis://, rediss:// or unix://, got {scheme!r}"
                )
            self._sync = redis.Redis.from_url(target)
            self._async = None  # made per event loop on first async use (see _arun)
            self._owned = True
        elif isinstance(target, aioredis.Redis):
            self._async = target
        elif isinstance(target, redis.Redis):
            self._sync = target
        else:
            raise InvalidAmountError(
                f"target must be a redis:// URL or a redis-py client, got {target!r}"
            )
        self._url = target if isinstance(target, str) else None
        # Added to Redis server TIME by the scripts (the last argument of each): tests
        # move the ledger's clock forward with it instead of sleeping through leases.
        self._clock_offset_ms = 0
        self._aloop: asyncio.AbstractEventLoop | None = None
        texts = self._texts = _load_scripts()
        self._scripts = (
            {n: self._sync.register_script(t) for n, t in texts.items()}
            if (self._sync is not None)
            else {}
        )
        self._ascripts = (
            {n: self._async.register_script(t) for n, t in texts.items()}
            if (self._async is not None)
            else {}
        )

    # -- plumbing ------------------------------------------------------------------

    def _run(self, name: str, args: Sequence[Any]) -> Any:
        script = self._scripts.get(name)
        if script is None:
            raise ResourceError("this RedisBackend was built on an asyncio client; use a* methods")
        try:
            return script(keys=[self._base], args=[*args, self._clock_offset_ms])
        except self._down as exc:
            raise BackendUnavailableError(f"Redis is unavailable ({name}): {exc}") from exc

    async def _arun(self, name: str, args: Sequence[Any]) -> Any:
        if self._url is not None and self._aloop is not asyncio.get_running_loop():
            # An asyncio client is tied to the loop that made its connections; a backend
            # built from a URL makes one per loop (asyncio.run() twice, test suites).
            import redis.asyncio as aioredis

            self._async = aioredis.Redis.from_url(self._url)
            self._ascripts = {n: self._async.register_script(t) for n, t in self._texts.items()}
            self._aloop = asyncio.get_running_loop()
        script = self._ascripts.get(name)
        if script is None:
            raise ResourceError("this RedisBackend was built on a sync client; use sync methods")
        try:
            return await script(keys=[self._base], args=[*args, self._clock_offset_ms])
        except self._down as exc:
            raise BackendUnavailableError(f"Redis is unavailable ({name}): {exc}") from exc

    # -- argument building and result decoding (shared by sync and async) -----------
    # Every sync method and its ``a`` twin build the same script arguments and decode
    # the same reply with these; they differ only in running or awaiting the script.

    @staticmethod
    def _register_args(
        node_id: str, capacity: Resources, allocatable: Resources, labels: Mapping[str, str]
    ) -> list[Any]:
        args: list[Any] = [node_id, capacity.cpu_milli, capacity.ram_mib, capacity.gpu]
        args += [allocatable.cpu_milli, allocatable.ram_mib, allocatable.gpu]
        names = sorted(capacity.extended)
        args.append(len(names))
        for name in names:
            args += [name, capacity.extended[name], allocatable.extended.get(name, 0)]
        args.append(len(labels))
        for key, value in labels.items():
            args += [key, value]
        return args

    @staticmethod
    def _drain_args(node_id: str, draining: bool) -> list[Any]:
        return [node_id, "1" if draining else "0"]

    @staticmethod
    def _found_node(raw: Sequence[Any], node_id: str) -> Node:
        if not raw:
            raise UnknownNodeError(node_id)
        return _node(raw)

    @staticmethod
    def _evicted(raw: Sequence[Any], node_id: str) -> list[Reservation]:
        if _s(raw[0]) == "unknown":
            raise UnknownNodeError(node_id)
        return [_reservation(r) for r in raw[1:]]

    @staticmethod
    def _held(raw: Sequence[Any] | None) -> Reservation | None:
        return _reservation(raw) if raw else None

    @staticmethod
    def _registered(raw: Sequence[Any]) -> RegisterResult:
        return RegisterResult(_node(raw[0]), tuple(_reservation(r) for r in raw[1:]))

    @staticmethod
    def _reserve_args(
        job_id: str,
        node_id: str,
        rc: int,
        rr: int,
        rg: int,
        ext: Mapping[str, int],
        kind: str,
        selector: Selector,
        exclude: frozenset[str],
        lease: Lease | None,
    ) -> list[Any]:
        owner, ttl_ms = ("", 0) if lease is None else (lease.owner or "", lease.ttl_ms)
        args: list[Any] = [job_id, node_id, owner, ttl_ms, *_request_args(rc, rr, rg, kind, ext)]
        args += _selector_args(selector)
        args.append(len(exclude))
        args += sorted(exclude)
        return args

    @staticmethod
    def _reserved(
        raw: Sequence[Any], node_id: str, request: Resources, selector: Selector
    ) -> Reservation:
        status = _s(raw[0])
        if status in ("ok", "same"):
            return _reservation(raw[1])
        if status == "dup":
            have = _reservation(raw[1])
            raise DuplicateJobError(
                have.job_id,
                f"on node {have.node_id!r} for {have.resources.describe()} (a different request)",
            )
        if status == "unknown":
            raise UnknownNodeError(node_id)
        if status == "draining":
            raise NodeDrainingError(node_id)
        if status == "short":
            short = {_s(raw[i]): (int(raw[i + 1]), int(raw[i + 2])) for i in range(1, len(raw), 3)}
            raise insufficient(node_id, short)
        raise NoNodeAvailableError(
            f"no node can hold {request.describe()}"
            + (f" with selector {dict(selector)}" if selector else "")
            + f" ({int(raw[1])} nodes registered)"
        )

    @staticmethod
    def _none_fits(request: Resources) -> NoNodeAvailableError:
        return NoNodeAvailableError(f"no node can hold {request.describe()}")

    @staticmethod
    def _available(raw: Sequence[Any]) -> list[str]:
        ranked = [(-float(raw[i + 1]), int(raw[i + 2]), _s(raw[i])) for i in range(0, len(raw), 3)]
        ranked.sort()
        return [node for _, _, node in ranked]

    @staticmethod
    def _snapshot(raw: Sequence[Any]) -> Snapshot:
        nodes = {n.node_id: n for n in (_node(r) for r in raw[0])}
        reservations = {r.job_id: r for r in (_reservation(x) for x in raw[1])}
        return Snapshot(MappingProxyType(nodes), MappingProxyType(reservations))

    @staticmethod
    def _custom_pick(
        snapshot: Snapshot,
        scorer: Scorer,
        request: Resources,
        selector: Selector,
        exclude: frozenset[str],
    ) -> str | None:
        from ._scoring import matches

        best: str | None = None
        best_score = 0.0
        for node in snapshot.nodes.values():
            avail = node.available
            if (
                node.draining
                or node.node_id in exclude
                or request.cpu_milli > avail.cpu_milli
                or request.ram_mib > avail.ram_mib
                or request.gpu > avail.gpu
                or any(v > avail.extended.get(k, 0) for k, v in request.extended.items())
                or (selector and not matches(node.labels, selector))
            ):
                continue
            score = scorer.score(node, request)
            if best is None or score > best_score:
                best, best_score = node.node_id, score
        return best

    # -- sync API ------------------------------------------------------------------

    def register(
        self, node_id: str, capacity: Resources, allocatable: Resources, labels: Mapping[str, str]
    ) -> RegisterResult:
        return self._registered(
            self._run("register", self._register_args(node_id, capacity, allocatable, labels))
        )

    def set_draining(self, node_id: str, draining: bool) -> Node:
        return self._found_node(self._run("drain", self._drain_args(node_id, draining)), node_id)

    def unregister(self, node_id: str) -> list[Reservation]:
        return self._evicted(self._run("unregister", [node_id]), node_id)

    def get_node(self, node_id: str) -> Node:
        return self._found_node(self._run("read", ["node", node_id]), node_id)

    def reserve(
        self,
        job_id: str,
        node_id: str,
        rc: int,
        rr: int,
        rg: int,
        ext: dict[str, int],
        lease: Lease | None = None,
    ) -> Reservation:
        check_id(node_id, "node_id")
        args = self._reserve_args(
            job_id, node_id, rc, rr, rg, ext, "binpack", (), frozenset(), lease
        )
        return self._reserved(self._run("reserve", args), node_id, Resources(rc, rr, rg, ext), ())

    def reserve_any(
        self,
        job_id: str,
        rc: int,
        rr: int,
        rg: int,
        ext: dict[str, int],
        selector: Selector,
        exclude: frozenset[str],
        scorer: Scorer,
        lease: Lease | None = None,
    ) -> Reservation:
        request = Resources(rc, rr, rg, ext)
        if type(scorer) is BuiltinScorer:
            args = self._reserve_args(
                job_id, "", rc, rr, rg, ext, scorer.name, selector, exclude, lease
            )
            return self._reserved(self._run("reserve", args), "", request, selector)
        existing = self.get_reservation(job_id)
        if existing is not None:
            return self.reserve(job_id, existing.node_id, rc, rr, rg, ext, lease)
        for _ in range(_CUSTOM_RETRIES):
            picked = self._custom_pick(self.snapshot(), scorer, request, selector, exclude)
            if picked is None:
                break
            try:
                return self.reserve(job_id, picked, rc, rr, rg, ext, lease)
            except _RACED:
                continue  # another master got there first: look again
        raise self._none_fits(request)

    def release(self, job_id: str) -> Reservation | None:
        return self._held(self._run("release", [check_id(job_id, "job_id")]))

    def get_reservation(self, job_id: str) -> Reservation | None:
        return self._held(self._run("read", ["reservation", job_id]))

    def renew(self, job_id: str, ttl_ms: int | None) -> Reservation | None:
        return self._held(self._run("lease", ["job", job_id, ttl_ms or 0]))

    def renew_owner(self, owner: str, ttl_ms: int | None) -> list[str]:
        return sorted(_s(j) for j in self._run("lease", ["owner", owner, ttl_ms or 0]))

    def expire(self) -> list[Reservation]:
        return [_reservation(r) for r in self._run("lease", ["expire", "", 0])]

    def available_nodes(
        self, rc: int, rr: int, rg: int, ext: dict[str, int], selector: Selector, scorer: Scorer
    ) -> list[str]:
        if type(scorer) is BuiltinScorer:
            args = _request_args(rc, rr, rg, scorer.name, ext) + _selector_args(selector)
            return self._available(self._run("available", args))
        return self._custom_order(self.snapshot(), scorer, Resources(rc, rr, rg, ext), selector)

    @staticmethod
    def _custom_order(
        snapshot: Snapshot, scorer: Scorer, request: Resources, selector: Selector
    ) -> list[str]:
        from ._scoring import matches

        scored = []
        for pos, node in enumerate(snapshot.nodes.values()):
            avail = node.available
            if (
                node.draining
                or request.cpu_milli > avail.cpu_milli
                or request.ram_mib > avail.ram_mib
                or request.gpu > avail.gpu
                or any(v > avail.extended.get(k, 0) for k, v in request.extended.items())
                or (selector and not matches(node.labels, selector))
            ):
                continue
            scored.append((-scorer.score(node, request), pos, node.node_id))
        scored.sort()
        return [node_id for _, _, node_id in scored]

    def snapshot(self) -> Snapshot:
        return self._snapshot(self._run("read", ["snapshot"]))

    def counters(self) -> dict[str, int]:
        raw = self._run("read", ["counters"])
        found = {_s(raw[i]): int(raw[i + 1]) for i in range(0, len(raw), 2)}
        keys = ("reserved", "released", "rejected", "evicted", "expired")
        return {k: found.get(k, 0) for k in keys}

    def close(self) -> None:
        if self._owned and self._sync is not None:
            self._sync.close()

    # -- async API -----------------------------------------------------------------

    async def aregister(
        self, node_id: str, capacity: Resources, allocatable: Resources, labels: Mapping[str, str]
    ) -> RegisterResult:
        args = self._register_args(node_id, capacity, allocatable, labels)
        return self._registered(await self._arun("register", args))

    async def aset_draining(self, node_id: str, draining: bool) -> Node:
        raw = await self._arun("drain", self._drain_args(node_id, draining))
        return self._found_node(raw, node_id)

    async def aunregister(self, node_id: str) -> list[Reservation]:
        return self._evicted(await self._arun("unregister", [node_id]), node_id)

    async def aget_node(self, node_id: str) -> Node:
        return self._found_node(await self._arun("read", ["node", node_id]), node_id)

    async def areserve(
        self,
        job_id: str,
        node_id: str,
        rc: int,
        rr: int,
        rg: int,
        ext: dict[str, int],
        lease: Lease | None = None,
    ) -> Reservation:
        check_id(node_id, "node_id")
        args = self._reserve_args(
            job_id, node_id, rc, rr, rg, ext, "binpack", (), frozenset(), lease
        )
        raw = await self._arun("reserve", args)
        return self._reserved(raw, node_id, Resources(rc, rr, rg, ext), ())

    async def areserve_any(
        self,
        job_id: str,
        rc: int,
        rr: int,
        rg: int,
        ext: dict[str, int],
        selector: Selector,
        exclude: frozenset[str],
        scorer: Scorer,
        lease: Lease | None = None,
    ) -> Reservation:
        request = Resources(rc, rr, rg, ext)
        if type(scorer) is BuiltinScorer:
            args = self._reserve_args(
                job_id, "", rc, rr, rg, ext, scorer.name, selector, exclude, lease
            )
            return self._reserved(await self._arun("reserve", args), "", request, selector)
        existing = await self.aget_reservation(job_id)
        if existing is not None:
            return await self.areserve(job_id, existing.node_id, rc, rr, rg, ext, lease)
        for _ in range(_CUSTOM_RETRIES):
            snapshot = await self.asnapshot()
            node_id = self._custom_pick(snapshot, scorer, request, selector, exclude)
            if node_id is None:
                break
            try:
                return await self.areserve(job_id, node_id, rc, rr, rg, ext, lease)
            except _RACED:
                continue
        raise self._none_fits(request)

    async def arelease(self, job_id: str) -> Reservation | None:
        return self._held(await self._arun("release", [check_id(job_id, "job_id")]))

    async def aget_reservation(self, job_id: str) -> Reservation | None:
        return self._held(await self._arun("read", ["reservation", job_id]))

    async def arenew(self, job_id: str, ttl_ms: int | None) -> Reservation | None:
        return self._held(await self._arun("lease", ["job", job_id, ttl_ms or 0]))

    async def arenew_owner(self, owner: str, ttl_ms: int | None) -> list[str]:
        raw = await self._arun("lease", ["owner", owner, ttl_ms or 0])
        return sorted(_s(j) for j in raw)

    async def aexpire(self) -> list[Reservation]:
        return [_reservation(r) for r in await self._arun("lease", ["expire", "", 0])]

    async def aavailable_nodes(
        self, rc: int, rr: int, rg: int, ext: dict[str, int], selector: Selector, scorer: Scorer
    ) -> list[str]:
        if type(scorer) is BuiltinScorer:
            args = _request_args(rc, rr, rg, scorer.name, ext) + _selector_args(selector)
            return self._available(await self._arun("available", args))
        snapshot = await self.asnapshot()
        return self._custom_order(snapshot, scorer, Resources(rc, rr, rg, ext), selector)

    async def asnapshot(self) -> Snapshot:
        return self._snapshot(await self._arun("read", ["snapshot"]))

    async def aclose(self) -> None:
        if self._url is not None:
            if self._async is not None and self._aloop is asyncio.get_running_loop():
                await async_close(self._async)
            self._async, self._ascripts, self._aloop = None, {}, None
        self.close()
