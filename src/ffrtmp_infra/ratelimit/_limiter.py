"""The token-bucket limiter (GCRA): in memory by default, Redis/Valkey when shared."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any, Literal

from ffrtmp_infra.ratelimit import _metrics
from ffrtmp_infra.ratelimit._decision import Decision
from ffrtmp_infra.ratelimit._errors import ConfigurationError, StorageUnavailableError
from ffrtmp_infra.ratelimit._table import BucketTable, key_hash

__all__ = ["Failure", "Limiter"]

logger = logging.getLogger("ffrtmp_infra.ratelimit")

Failure = Literal["open", "closed", "local"]
_FAILURES = ("open", "closed", "local")
# Float clocks: 0.1 + 0.2 != 0.3. A nanosecond of slack absorbs the rounding of
# emission intervals so "allow exactly at the boundary" behaves as it reads.
_EPS = 1e-9
_POLICY_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:/+*@ ")


def _check_policy_name(name: str) -> str:
    if not isinstance(name, str) or not name or len(name) > 64 or not set(name) <= _POLICY_CHARS:
        raise ConfigurationError(
            f"name must be 1-64 characters of letters, digits, space and -_.:/+*@ "
            f"(it becomes a structured-field string in the RateLimit headers), got {name!r}"
        )
    return name


class Limiter:
    """A token bucket: ``rate`` units per second refill a bucket of ``burst`` units.

    Implemented as GCRA: one number per key (its theoretical arrival time), so a
    decision is O(1), a rejected hit changes nothing, and ``remaining``,
    ``retry_after`` and ``reset_after`` come out of the same computation.

    Args:
        rate: units added per second (> 0; fractions allowed, e.g. ``0.5``).
        burst: bucket size, the most units admitted at once (an int >= 1).
        storage: ``None`` or ``"memory://"`` for this process only, or a
            ``limits`` storage URI for Redis/Valkey (``redis://``, ``rediss://``,
            ``redis+cluster://``, ``redis+sentinel://``, ``valkey://``, ...).
        clock: a callable returning seconds (default ``time.monotonic``); in memory
            only. Redis decisions use the server's clock so hosts never disagree.
        name: the policy name shown in ``RateLimit`` headers and used in storage keys
            (default ``"rate-<rate>-burst-<burst>"``).
        key_prefix: prefix of the storage keys in Redis.
        max_keys: the most keys held in memory (also the local fallback's bound).
        failure: what to do when the shared storage is unreachable: ``"open"``
            (admit), ``"closed"`` (reject; the middleware answers 503) or
            ``"local"`` (limit in this process's memory until the storage is back).
        recovery_interval: seconds to skip the storage after a failure before
            trying it again (a circuit breaker, so a dead Redis costs no timeouts).
        storage_options: extra options for the storage client (``limits`` passes
            them to redis-py), e.g. ``{"socket_timeout": 0.2}``.
        log_interval: at most one warning per this many seconds while failing.
    """

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        storage: str | None = None,
        clock: Callable[[], float] | None = None,
        name: str | None = None,
        key_prefix: str = "ffrtmp-rl",
        max_keys: int = 1_000_000,
        failure: Failure = "open",
        recovery_interval: float = 5.0,
        storage_options: dict[str, Any] | None = None,
        log_interval: float = 60.0,
    ) -> None:
        if (
            isinstance(rate, bool)
            or not isinstance(rate, int | float)
            or not (math.isfinite(rate) and rate > 0)
        ):
            raise ConfigurationError(f"rate must be a finite number > 0 (per second), got {rate!r}")
        if isinstance(burst, bool) or not isinstance(burst, int) or burst < 1:
            raise ConfigurationError(f"burst must be an int >= 1, got {burst!r}")
        if isinstance(max_keys, bool) or not isinstance(max_keys, int) or max_keys < 1:
            raise ConfigurationError(f"max_keys must be an int >= 1, got {max_keys!r}")
        if failure not in _FAILURES:
            raise ConfigurationError(f"failure must be one of {_FAILURES}, got {failure!r}")
        for label, value in (
            ("recovery_interval", recovery_interval),
            ("log_interval", log_interval),
        ):
            if not isinstance(value, int | float) or not (math.isfinite(value) and value >= 0):
                raise ConfigurationError(f"{label} must be a finite number >= 0, got {value!r}")
        if not isinstance(key_prefix, str) or not key_prefix:
            raise ConfigurationError(f"key_prefix must be a non-empty string, got {key_prefix!r}")
        self.rate = float(rate)
        self.burst = burst
        self.name = _check_policy_name(name if name is not None else f"rate-{rate:g}-burst-{burst}")
        self.interval = 1.0 / self.rate
        self.tolerance = burst * self.interval
        #: seconds a full bucket takes to refill (the ``w`` of RateLimit-Policy)
        self.window = max(1, math.ceil(self.tolerance - _EPS))
        self.failure: Failure = failure
        self.recovery_interval = float(recovery_interval)
        self.log_interval = float(log_interval)
        self.max_keys = max_keys
        self.clock: Callable[[], float] = clock or time.monotonic
        # Keys are held as their 64-bit str hash (SipHash, randomised per process) in
        # flat arrays: memory per key does not depend on the key's length.
        self._table = BucketTable(max_keys)
        self._lock = threading.Lock()
        self._hot = (self.interval, self.tolerance, self._lock, self._table)  # for _admit
        self._key_prefix = f"{key_prefix}:{self.name}:"
        self._interval_us = self.interval * 1e6
        # The script's argument ("cost interval tolerance", µs) pre-encoded once for a
        # cost of 1: redis-py sends bytes as they are.
        self._arg_spec = f" {self._interval_us!r} {self.tolerance * 1e6!r}".encode()
        self._args: list[bytes] = [b"1" + self._arg_spec]
        self._down_until = 0.0
        self._failed_decisions = 0
        self._last_log = -math.inf
        self.storage: str = "memory://"
        self._remote: Any = None
        if storage is not None and storage not in ("memory://", "async+memory://"):
            from ffrtmp_infra.ratelimit._redis import shared_backend

            self._remote = shared_backend(storage, storage_options)
            self.storage = storage

    def __repr__(self) -> str:
        return (
            f"Limiter(rate={self.rate:g}, burst={self.burst}, name={self.name!r}, "
            f"storage={self.storage.split('@')[-1]!r}, failure={self.failure!r})"
        )

    @property
    def shared(self) -> bool:
        """True when decisions live in shared storage (Redis/Valkey)."""
        return self._remote is not None

    # ------------------------------------------------------------ decisions
    # Each async twin is the sync method with the storage call awaited; what surrounds
    # the call (memory path, circuit, reply decoding, failure policy) is shared below.
    def _without_storage(self, key: str, cost: int) -> Decision | None:
        """The decision when the storage is not asked (memory, impossible cost, open
        circuit), else None."""
        if self._remote is None or cost > self.burst:
            return self._local_hit(key, cost)
        if self._down_until and time.monotonic() < self._down_until:
            return self._degraded(key, cost)
        return None

    def hit(self, key: str, cost: int = 1) -> Decision:
        """Admit ``cost`` units for ``key`` if the bucket holds them; returns the Decision.

        Never raises for storage failures: the failure policy decides instead.
        """
        decision = self._without_storage(key, cost)
        if decision is not None:
            return decision
        try:
            reply = self._remote.run([self._key_prefix + key], self._remote_args(cost))
        except self._remote.errors as exc:
            return self._failed(key, cost, exc)
        return self._from_reply(reply)

    async def ahit(self, key: str, cost: int = 1) -> Decision:
        """:meth:`hit` for async code: a Redis call awaits, never blocking the loop."""
        decision = self._without_storage(key, cost)
        if decision is not None:
            return decision
        try:
            reply = await self._remote.arun([self._key_prefix + key], self._remote_args(cost))
        except self._remote.errors as exc:
            return self._failed(key, cost, exc)
        return self._from_reply(reply)

    def refund(self, key: str, cost: int = 1) -> None:
        """Give back ``cost`` units admitted for ``key`` (used for all-or-nothing checks)."""
        if self._remote is None or self._down_until:
            self._local_refund(key, cost)
            return
        try:
            self._remote.refund(self._key_prefix + key, cost * self._interval_us)
        except self._remote.errors as exc:
            self._note_failure(exc)

    async def arefund(self, key: str, cost: int = 1) -> None:
        """:meth:`refund` for async code."""
        if self._remote is None or self._down_until:
            self._local_refund(key, cost)
            return
        try:
            await self._remote.arefund(self._key_prefix + key, cost * self._interval_us)
        except self._remote.errors as exc:
            self._note_failure(exc)

    def reset(self, key: str) -> None:
        """Forget ``key``: its bucket is full again.

        Raises:
            StorageUnavailableError: the shared storage could not be reached.
        """
        with self._lock:
            self._forget(key)
        if self._remote is not None:
            try:
                self._remote.delete(self._key_prefix + key)
            except self._remote.errors as exc:
                raise StorageUnavailableError(f"could not reset {key!r}: {exc}") from exc

    async def areset(self, key: str) -> None:
        """:meth:`reset` for async code."""
        with self._lock:
            self._forget(key)
        if self._remote is not None:
            try:
                await self._remote.adelete(self._key_prefix + key)
            except self._remote.errors as exc:
                raise StorageUnavailableError(f"could not reset {key!r}: {exc}") from exc

    def __len__(self) -> int:
        """Keys currently held in this process's memory (refilled ones until swept)."""
        return self._table.used

    def holds(self, key: str) -> bool:
        """True when this process's memory holds a bucket for ``key`` that is not full."""
        with self._lock:
            tat = self._table.get(key_hash(key))
        return tat is not None and tat > self.clock()

    def _forget(self, key: str) -> None:
        table = self._table
        i = table.find(key_hash(key))
        if table.keys[i]:
            table.tats[i] = -math.inf  # an old time is a full bucket

    # ------------------------------------------------------------ memory
    def _local_hit(self, key: str, cost: int) -> Decision:
        if cost > self.burst or cost < 0:
            return self._impossible(cost)
        now = self.clock()
        interval = self.interval
        tolerance = self.tolerance
        slot_key = key_hash(key)
        with self._lock:
            table = self._table
            i = table.find(slot_key)
            known = table.keys[i]
            tat = table.tats[i] if known else now
            if tat < now:
                tat = now
            new_tat = tat + cost * interval
            if new_tat - tolerance - now > _EPS:
                return Decision(
                    False,
                    self.burst,
                    int((tolerance - tat + now) / interval + _EPS),
                    new_tat - tolerance - now,
                    tat - now,
                    self.name,
                    limiter=self,
                )
            if known:
                table.tats[i] = new_tat
            else:
                table.add(slot_key, new_tat, now)
        return Decision(
            True,
            self.burst,
            int((tolerance - new_tat + now) / interval + _EPS),
            0.0,
            new_tat - now,
            self.name,
            limiter=self,
        )

    def _admit(self, key: str, legacy: bool) -> int:
        """The middleware's hot path: one unit, in memory, no Decision object.

        Returns -1 when rejected (nothing changed; call :meth:`hit` for the details),
        else ``remaining << 24 | reset`` where reset is the header's whole seconds:
        until the next unit (draft-10 ``t``) or until full (``legacy``).
        """
        now = self.clock()
        interval, tolerance, lock, table = self._hot
        slot_key = hash(key) or 1
        with lock:
            keys = table.keys
            tats = table.tats
            mask = table.mask
            i = slot_key & mask
            found = keys[i]
            while found != slot_key and found != 0:  # BucketTable.find, inlined
                i = (i + 1) & mask
                found = keys[i]
            if found:
                tat = tats[i]
                if tat < now:
                    tat = now
            else:
                tat = now
            new_tat = tat + interval
            if new_tat - tolerance - now > _EPS:
                return -1
            if found:
                tats[i] = new_tat
            else:
                table.add(slot_key, new_tat, now)
        ahead = new_tat - now
        remaining = int((tolerance - ahead) / interval + _EPS)
        if legacy:
            reset = math.ceil(ahead - _EPS)
        elif interval <= 1.0:
            # After a hit the bucket is not full, and the next unit is at most one
            # interval (<= 1 s) away: t is 1 without any arithmetic.
            return remaining << 24 | 1
        else:
            reset = math.ceil(ahead - tolerance + (remaining + 1) * interval - _EPS)
        return remaining << 24 | min(max(reset, 0), 0xFFFFFF)

    def _local_refund(self, key: str, cost: int) -> None:
        with self._lock:
            table = self._table
            i = table.find(key_hash(key))
            if table.keys[i]:
                table.tats[i] -= cost * self.interval

    def _impossible(self, cost: int) -> Decision:
        if cost < 0:
            raise ValueError(f"cost must be >= 0, got {cost}")
        return Decision(False, self.burst, 0, math.inf, 0.0, self.name, limiter=self)

    # ------------------------------------------------------------ redis
    def _remote_args(self, cost: int) -> list[bytes]:
        if cost == 1:
            return self._args
        if cost < 0:
            raise ValueError(f"cost must be >= 0, got {cost}")
        return [b"%d" % cost + self._arg_spec]

    def _from_reply(self, reply: list[int]) -> Decision:
        if self._down_until:
            self._recovered()
        return Decision(
            bool(reply[0]),
            self.burst,
            int(reply[1]),
            reply[2] / 1e6,
            reply[3] / 1e6,
            self.name,
            limiter=self,
        )

    # ------------------------------------------------------------ failure policy
    def _failed(self, key: str, cost: int, exc: BaseException) -> Decision:
        self._note_failure(exc)
        return self._degraded(key, cost)

    def _note_failure(self, exc: BaseException) -> None:
        self._down_until = time.monotonic() + self.recovery_interval
        _metrics.storage_error(self.name, self.failure)
        now = time.monotonic()
        if now - self._last_log >= self.log_interval:
            self._last_log = now
            logger.warning(
                "rate limit storage unavailable for policy %r (%s: %s); failing %s, "
                "%d decisions under failure since the last warning",
                self.name,
                type(exc).__name__,
                exc,
                self.failure,
                self._failed_decisions,
            )
            self._failed_decisions = 0

    def _recovered(self) -> None:
        self._down_until = 0.0
        logger.warning(
            "rate limit storage reachable again for policy %r after %d decisions under failure",
            self.name,
            self._failed_decisions,
        )
        self._failed_decisions = 0
        with self._lock:
            self._table.clear()

    def _degraded(self, key: str, cost: int) -> Decision:
        self._failed_decisions += 1
        _metrics.degraded(self.name, self.failure)
        if self.failure == "open":
            return Decision(True, self.burst, self.burst, 0.0, 0.0, self.name, True, self)
        if self.failure == "closed":
            return Decision(
                False, self.burst, 0, self.recovery_interval, 0.0, self.name, True, self
            )
        decision = self._local_hit(key, cost)
        decision.storage_error = True
        return decision
