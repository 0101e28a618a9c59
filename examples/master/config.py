"""The master's configuration: one typed, validated object built from the CLI or in code."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from examples.common.netpolicy import DestinationPolicy
from examples.master.store import check_db

__all__ = ["ConfigError", "MasterConfig"]


class ConfigError(ValueError):
    """A configuration value broke a rule; the message names the value and the rule."""


def _positive(name: str, value: float) -> None:
    if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{name} must be a finite number > 0, got {value!r}")


@dataclass(frozen=True)
class MasterConfig:
    """Everything the master needs; validated once at construction.

    Times are in seconds. ``api_key`` guards the submitter/admin routes and
    ``worker_key`` the worker routes; ``None`` leaves that role open (the CLI
    warns loudly). ``rate_limit``/``rate_burst`` set the per-client limit in
    front of the API (``rate_limit=0`` turns it off); ``auth_failure_limit``
    failed logins per ``auth_failure_window`` lock a client out for the rest of
    the window. ``db`` names the job store: a SQLite file path or ``sqlite:///path``
    (one master), or ``postgresql://user@host:port/database`` (one or several masters).
    ``destinations`` says which input hosts and live outputs jobs may
    name (by default: public input hosts only, no live output). At most ``max_nodes``
    nodes are registered at once; offline nodes are forgotten (record and token) after
    ``prune_offline_after`` seconds of silence. Of several masters on one database, the one
    holding the duties lease is active; a standby takes over within ``lease_ttl`` seconds
    (plus a third of it) of the active master's death. ``ledger_redis`` (a ``redis://`` URL)
    keeps the resource ledger in Redis instead of the active master's memory; its
    reservations are then leases owned by the master, renewed every monitor tick and
    expiring ``reservation_ttl`` seconds (default three heartbeat intervals) after the last
    renewal, so capacity reserved by a master that died comes back on its own.
    """

    db: str = "master.db"
    api_key: str | None = None
    worker_key: str | None = None
    heartbeat_interval: float = 5.0
    heartbeat_timeout: float = 30.0
    stale_timeout_live: float = 300.0
    stale_timeout_batch: float = 1800.0
    max_retries: int = 3
    retry_backoff: float = 2.0
    retry_backoff_max: float = 300.0
    placement: str = "spread"
    claim_wait_max: float = 30.0
    monitor_interval: float = 1.0
    rate_limit: float = 50.0
    rate_burst: int = 100
    worker_rate_limit: float = 50.0
    worker_rate_burst: int = 150
    auth_failure_limit: int = 10
    auth_failure_window: float = 60.0
    trust_proxies: tuple[str, ...] = ()
    max_nodes: int = 10_000
    prune_offline_after: float = 86_400.0
    lease_ttl: float = 10.0
    ledger_redis: str | None = None
    reservation_ttl: float | None = None
    destinations: DestinationPolicy = field(default_factory=DestinationPolicy)

    def __post_init__(self) -> None:
        try:
            check_db(self.db)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        for name in (
            "heartbeat_interval",
            "heartbeat_timeout",
            "stale_timeout_live",
            "stale_timeout_batch",
            "retry_backoff",
            "retry_backoff_max",
            "claim_wait_max",
            "monitor_interval",
            "auth_failure_window",
            "prune_offline_after",
            "lease_ttl",
        ):
            _positive(name, getattr(self, name))
        if self.reservation_ttl is not None:
            _positive("reservation_ttl", self.reservation_ttl)
        if self.ledger_redis is not None and not self.ledger_redis.startswith(
            ("redis://", "rediss://", "unix://")
        ):
            raise ConfigError("ledger_redis must be a redis://, rediss:// or unix:// URL")
        if self.heartbeat_timeout <= self.heartbeat_interval:
            raise ConfigError(
                f"heartbeat_timeout ({self.heartbeat_timeout}) must be greater than "
                f"heartbeat_interval ({self.heartbeat_interval})"
            )
        if not isinstance(self.max_retries, int) or not 0 <= self.max_retries <= 100:
            raise ConfigError(f"max_retries must be an integer in 0..100, got {self.max_retries!r}")
        if self.retry_backoff_max < self.retry_backoff:
            raise ConfigError(
                f"retry_backoff_max ({self.retry_backoff_max}) must be >= "
                f"retry_backoff ({self.retry_backoff})"
            )
        if self.placement not in ("spread", "binpack", "balanced"):
            raise ConfigError(
                f"placement must be one of spread, binpack, balanced, got {self.placement!r}"
            )
        if not self.rate_limit >= 0:
            raise ConfigError(f"rate_limit must be >= 0 (0 turns it off), got {self.rate_limit!r}")
        _positive("worker_rate_limit", self.worker_rate_limit)
        for name in ("rate_burst", "worker_rate_burst", "auth_failure_limit", "max_nodes"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")
        for name in ("api_key", "worker_key"):
            key = getattr(self, name)
            if key is not None and len(key) < 16:
                raise ConfigError(f"{name} must be at least 16 characters long, got {len(key)}")

    @property
    def reservation_lease(self) -> float:
        """Seconds a shared-ledger reservation lives without renewal."""
        return self.reservation_ttl or 3 * self.heartbeat_interval
