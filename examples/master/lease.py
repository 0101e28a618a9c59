"""The duties lease: which of several masters on one database is the active one.

The active master places jobs, serves workers and runs the background duties (heartbeat
timeouts, stale jobs, retries, pruning); the others stand by, serving reads and
submissions, and take over when the lease expires. The holder renews it every
``ttl / 3``; a master that dies stops renewing, and another takes the lease within ``ttl``
plus one renewal period. A master that cannot renew (database unreachable, process frozen)
stops acting the moment its own deadline passes, measured on its monotonic clock from
*before* the last successful renewal, so it never acts on a lease another master may hold.
"""

from __future__ import annotations

import math
import os
import socket
import time
import uuid
from collections.abc import Callable

from examples.master.store import Store

__all__ = ["DUTIES", "Lease"]

#: the lease's name in the ``leases`` table
DUTIES = "duties"


class Lease:
    """One master's view of the duties lease: take or renew it, know whether it still holds."""

    def __init__(
        self,
        store: Store,
        ttl: float,
        *,
        holder: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.ttl = ttl
        #: who this master is in the ``leases`` table (host, pid and a random suffix)
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._clock = clock
        self._deadline = -math.inf

    def renew(self) -> bool:
        """Take the lease if it is free or expired, or extend it; True if this master holds it.

        Raises :class:`~examples.master.errors.StoreUnavailable` if the database cannot be
        asked; the lease then still holds until :attr:`held` turns False.
        """
        asked_at = time.monotonic()
        if self.store.acquire_lease(DUTIES, self.holder, self.ttl, self._clock()):
            self._deadline = asked_at + self.ttl
            return True
        self._deadline = -math.inf
        return False

    @property
    def held(self) -> bool:
        """True until the lease's deadline, as measured on this master's monotonic clock."""
        return time.monotonic() < self._deadline

    def current_holder(self) -> str | None:
        """Who holds the lease now according to the database (``None``: nobody)."""
        return self.store.lease_holder(DUTIES, self._clock())

    def release(self) -> None:
        """Give the lease up at once (clean shutdown), so a standby need not wait for expiry."""
        if self.held:
            self._deadline = -math.inf
            self.store.release_lease(DUTIES, self.holder)
