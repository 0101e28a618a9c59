"""``limits``' own window strategies ("100/minute") as a limiter usable in a Rule."""

from __future__ import annotations

import asyncio
import logging
import math
import time
import urllib.parse
from typing import Any, Literal

from ffrtmp_infra.ratelimit import _compat, _metrics
from ffrtmp_infra.ratelimit._decision import Decision
from ffrtmp_infra.ratelimit._errors import ConfigurationError, StorageUnavailableError
from ffrtmp_infra.ratelimit._limiter import Failure, _check_policy_name

__all__ = ["WindowLimiter"]

logger = logging.getLogger("ffrtmp_infra.ratelimit")
Strategy = Literal["fixed-window", "moving-window", "sliding-window-counter"]


class WindowLimiter:
    """A window limit from ``limits`` (fixed, moving or sliding-counter window).

    For users who think in ``"100/minute"``; the token bucket (:class:`Limiter`)
    is the better default. Any ``limits`` storage URI works (memory, Redis,
    Valkey, memcached, MongoDB). Windows use the application's wall clock.

    Args:
        limit: one ``limits`` rate string, e.g. ``"100/minute"`` or ``"10 per 5 seconds"``.
        strategy: ``"moving-window"`` (default, exact), ``"fixed-window"`` (cheapest;
            rejected hits still count, as in ``limits``) or ``"sliding-window-counter"``.
        storage: a ``limits`` storage URI (default ``"memory://"``).
        name: policy name for headers (default ``"window-<limit>"``).
        key_prefix: storage key prefix.
        failure: ``"open"``, ``"closed"`` or ``"local"`` when the storage fails.
        recovery_interval: seconds to skip the storage after a failure.
        storage_options: options for the storage client.
    """

    def __init__(
        self,
        limit: str,
        *,
        strategy: Strategy = "moving-window",
        storage: str | None = None,
        name: str | None = None,
        key_prefix: str = "ffrtmp-rl",
        failure: Failure = "open",
        recovery_interval: float = 5.0,
        storage_options: dict[str, Any] | None = None,
        log_interval: float = 60.0,
    ) -> None:
        import limits
        from limits.errors import ConfigurationError as LimitsConfigurationError

        if not isinstance(limit, str):
            raise ConfigurationError(f"limit must be a string such as '100/minute', got {limit!r}")
        try:
            items = limits.parse_many(limit)
        except ValueError as exc:
            raise ConfigurationError(
                f"limit must be one limits rate string such as '100/minute', got {limit!r}"
            ) from exc
        if len(items) != 1:
            raise ConfigurationError(f"limit must name exactly one window, got {limit!r}")
        strategies = _compat.window_strategies(asyncio_api=False)
        if strategy not in strategies:
            raise ConfigurationError(
                f"strategy must be one of {sorted(strategies)}, got {strategy!r}"
            )
        if failure not in ("open", "closed", "local"):
            raise ConfigurationError(f"failure must be open, closed or local, got {failure!r}")
        self.item = items[0]
        self.amount: int = self.item.amount
        self.burst = self.amount
        self.window: int = self.item.get_expiry()
        self.name = _check_policy_name(name if name is not None else f"window-{limit.strip()}")
        self.strategy_name = strategy
        self.failure: Failure = failure
        self.recovery_interval = float(recovery_interval)
        self.log_interval = float(log_interval)
        self.storage = storage or "memory://"
        scheme = urllib.parse.urlparse(self.storage).scheme.removeprefix("async+")
        self.storage = self.storage.removeprefix("async+")
        options = dict(storage_options or {})
        if scheme != "memory":
            options.setdefault("wrap_exceptions", True)
        try:
            self._storage, self._options, self._ids = _compat.window_storage(
                self.storage, options, key_prefix
            )
        except (LimitsConfigurationError, ValueError, TypeError) as exc:
            raise ConfigurationError(f"invalid storage for WindowLimiter: {exc}") from exc
        self._strategy: Any = strategies[strategy](self._storage)
        self.shared = scheme != "memory"
        self._local: Any = None
        # (loop, async strategy or None to run the sync one in a thread)
        self._async: tuple[asyncio.AbstractEventLoop, Any] | None = None
        self._down_until = 0.0
        self._last_log = -math.inf
        from limits.errors import StorageError

        self._errors: tuple[type[BaseException], ...] = (StorageError, OSError)

    def __repr__(self) -> str:
        item = str(self.item)
        return f"WindowLimiter({item!r}, strategy={self.strategy_name!r}, name={self.name!r})"

    # ------------------------------------------------------------ decisions
    # Each async twin is the sync method's steps with the storage calls awaited; the
    # steps around them (circuit, decision, failure policy) are shared helpers.
    def hit(self, key: str, cost: int = 1) -> Decision:
        """Count ``cost`` hits for ``key`` in the window; returns the Decision."""
        if self._circuit_open():
            return self._degraded(key, cost)
        ids = (*self._ids, key)
        try:
            allowed = self._strategy.hit(self.item, *ids, cost=cost)
            stats = self._strategy.get_window_stats(self.item, *ids)
        except self._errors as exc:
            return self._failed(key, cost, exc)
        return self._succeeded(allowed, stats)

    async def ahit(self, key: str, cost: int = 1) -> Decision:
        """:meth:`hit` for async code (async storage client for shared storage)."""
        strategy = self._async_strategy()
        if strategy is None:
            return await self._off_loop(self.hit, key, cost)  # type: ignore[no-any-return]
        if self._circuit_open():
            return self._degraded(key, cost)
        ids = (*self._ids, key)
        try:
            allowed = await strategy.hit(self.item, *ids, cost=cost)
            stats = await strategy.get_window_stats(self.item, *ids)
        except self._errors as exc:
            return self._failed(key, cost, exc)
        return self._succeeded(allowed, stats)

    def test(self, key: str, cost: int = 1) -> bool:
        """Whether ``cost`` hits would pass now, consuming nothing."""
        if self._circuit_open():
            return True
        try:
            return bool(self._strategy.test(self.item, *self._ids, key, cost=cost))
        except self._errors:
            return True  # the hit that follows applies the failure policy

    async def atest(self, key: str, cost: int = 1) -> bool:
        """:meth:`test` for async code."""
        strategy = self._async_strategy()
        if strategy is None:
            return await self._off_loop(self.test, key, cost)  # type: ignore[no-any-return]
        if self._circuit_open():
            return True
        try:
            return bool(await strategy.test(self.item, *self._ids, key, cost=cost))
        except self._errors:
            return True

    def refund(self, key: str, cost: int = 1) -> None:
        """Window strategies cannot give hits back; the middleware checks them last."""

    async def arefund(self, key: str, cost: int = 1) -> None:
        """See :meth:`refund`."""

    def reset(self, key: str) -> None:
        """Clear ``key``'s window."""
        try:
            self._strategy.clear(self.item, *self._ids, key)
        except self._errors as exc:
            raise self._reset_failed(key, exc) from exc

    async def areset(self, key: str) -> None:
        """:meth:`reset` for async code."""
        strategy = self._async_strategy()
        if strategy is None:
            await self._off_loop(self.reset, key)
            return
        try:
            await strategy.clear(self.item, *self._ids, key)
        except self._errors as exc:
            raise self._reset_failed(key, exc) from exc

    # ------------------------------------------------------------ internals
    def _circuit_open(self) -> bool:
        return bool(self._down_until) and time.monotonic() < self._down_until

    def _succeeded(self, allowed: bool, stats: Any) -> Decision:
        self._down_until = 0.0
        return self._decision(allowed, stats)

    @staticmethod
    def _reset_failed(key: str, exc: BaseException) -> StorageUnavailableError:
        return StorageUnavailableError(f"could not reset {key!r}: {exc}")

    def _decision(self, allowed: bool, stats: Any) -> Decision:
        reset_after = max(0.0, stats.reset_time - time.time())
        return Decision(
            bool(allowed),
            self.amount,
            max(0, int(stats.remaining)),
            0.0 if allowed else max(reset_after, 0.001),
            reset_after,
            self.name,
            limiter=self,
        )

    async def _off_loop(self, method: Any, *args: Any) -> Any:
        """A sync method from async code: directly in memory (it never blocks), in a
        worker thread for a shared storage that has no usable async client."""
        if not self.shared:
            return method(*args)
        return await asyncio.to_thread(method, *args)

    def _async_strategy(self) -> Any:
        """The async strategy for the running loop; None: use the sync one (memory, or
        a ``limits`` without async Redis on redis-py)."""
        if not self.shared:
            return None
        loop = asyncio.get_running_loop()
        if self._async is None or self._async[0] is not loop:
            storage = _compat.async_window_storage(self.storage, self._options)
            strategy = None
            if storage is not None:
                strategy = _compat.window_strategies(asyncio_api=True)[self.strategy_name](storage)
            self._async = (loop, strategy)
        return self._async[1]

    def _failed(self, key: str, cost: int, exc: BaseException) -> Decision:
        now = time.monotonic()
        self._down_until = now + self.recovery_interval
        _metrics.storage_error(self.name, self.failure)
        if now - self._last_log >= self.log_interval:
            self._last_log = now
            logger.warning(
                "rate limit storage unavailable for policy %r (%s: %s); failing %s",
                self.name,
                type(exc).__name__,
                exc,
                self.failure,
            )
        return self._degraded(key, cost)

    def _degraded(self, key: str, cost: int) -> Decision:
        _metrics.degraded(self.name, self.failure)
        if self.failure == "open":
            return Decision(True, self.amount, self.amount, 0.0, 0.0, self.name, True, self)
        if self.failure == "closed":
            return Decision(
                False, self.amount, 0, self.recovery_interval, 0.0, self.name, True, self
            )
        if self._local is None:
            from limits.storage import MemoryStorage

            strategies = _compat.window_strategies(asyncio_api=False)
            self._local = strategies[self.strategy_name](MemoryStorage())
        allowed = self._local.hit(self.item, key, cost=cost)
        decision = self._decision(allowed, self._local.get_window_stats(self.item, key))
        decision.storage_error = True
        return decision
