"""The resource ledger in Redis (``--ledger-redis``): reservations are leases of the master
that made them, renewed while it lives, and a master killed between reserve and commit (or
after) leaks no capacity."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from typing import Any

import httpx
import pytest
from examples.common.spec import validate_spec
from examples.master.app import LEDGER_PREFIX
from examples.master.config import MasterConfig
from examples.master.scheduler import Scheduler

from ffrtmp_infra.resources import RedisBackend, ResourceManager
from tests.examples.conftest import MasterFactory, StoreOpener
from tests.examples.helpers import wait_until

pytestmark = pytest.mark.redis

NODE = {
    "node_id": "n1",
    "capacity": {"cpu": 4, "ram_gb": 8, "gpu": 0, "extended": {}},
    "labels": {},
    "encoders": ["libx264", "aac"],
    "version": "test",
}
TINY = {"scenario": "480p-h264", "input": {"type": "testsrc", "duration": 1}}  # 1 CPU, 0.5 GiB


def _ledger(url: str, prefix: str = LEDGER_PREFIX) -> ResourceManager:
    return ResourceManager(RedisBackend(url, prefix=prefix))


def test_the_scheduler_leases_its_reservations_and_renews_them_each_tick(
    redis_url: str, tmp_path: Any, open_db: StoreOpener
) -> None:
    config = MasterConfig(db=str(tmp_path / "m.db"), heartbeat_interval=1.0, heartbeat_timeout=3)
    ledger = _ledger(redis_url, prefix=f"sched-{uuid.uuid4().hex}")
    backend: Any = ledger.backend
    s = Scheduler(open_db(config.db), ledger, config)
    assert s.shared_ledger
    s.register_node(dict(NODE))
    job = s.submit(validate_spec(dict(TINY))).id
    assert s.place() == 1
    held = ledger.get_reservation(job)
    assert held is not None
    assert (held.owner, held.ttl) == (s.lease.holder, 3.0)  # three heartbeat intervals
    for _ in range(3):  # renewed every tick, it outlives its ttl several times over
        backend._clock_offset_ms += 2500
        s.check_timeouts()
    assert ledger.get_reservation(job) == held
    backend._clock_offset_ms += 3000  # no tick for a whole ttl: the lease runs out ...
    assert ledger.get_reservation(job) is None
    s.check_timeouts()  # ... and the next tick takes it again for the still active job
    assert ledger.get_reservation(job) == held
    s.store.close()
    ledger.close()


GHOST = textwrap.dedent(
    """
    import sys, time
    from ffrtmp_infra.resources import RedisBackend, ResourceManager
    url, prefix = sys.argv[1:3]
    m = ResourceManager(RedisBackend(url, prefix=prefix))
    m.reserve_any("ghost-job", cpu=3, ram_gb=4, owner="ghost-master", ttl=2)
    print("reserved", flush=True)
    time.sleep(600)  # killed here, before it records the assignment anywhere
    """
)


def test_capacity_held_by_a_killed_master_comes_back(
    start_master: MasterFactory, redis_url: str
) -> None:
    master = start_master("--ledger-redis", redis_url, "--reservation-ttl", "2")
    worker = {"Authorization": f"Bearer {master.worker_key}"}
    registered = httpx.post(f"{master.url}/nodes/register", json=NODE, headers=worker, timeout=10)
    assert registered.status_code == 200, registered.text
    worker["X-Node-Token"] = registered.json()["node_token"]
    ledger = _ledger(redis_url)
    alive = threading.Event()
    alive.set()

    def heartbeat() -> None:  # the node stays online (no real worker runs here)
        while alive.is_set():
            httpx.post(f"{master.url}/nodes/n1/heartbeat", headers=worker, timeout=5)
            time.sleep(0.3)

    beating = threading.Thread(target=heartbeat, daemon=True)
    beating.start()

    def cpu_free() -> float:
        with master.client() as api:
            return float(api.node("n1")["available"]["cpu"])

    # A second master reserves in the shared ledger and is killed before it commits.
    ghost = subprocess.Popen(
        [sys.executable, "-c", GHOST, redis_url, LEDGER_PREFIX], stdout=subprocess.PIPE, text=True
    )
    try:
        assert ghost.stdout is not None
        assert ghost.stdout.readline().strip() == "reserved"
        assert cpu_free() == 1.0
        ghost.send_signal(signal.SIGKILL)
        ghost.wait(10)
    finally:
        ghost.kill()
        ghost.wait(10)
    wait_until(lambda: cpu_free() == 4.0, timeout=30, what="the ghost's capacity back")

    # The live master's own reservation is renewed for as long as it lives ...
    with master.client() as api:
        job = api.submit(TINY)["id"]
    held = wait_until(lambda: ledger.get_reservation(job), timeout=30, what="the placement")
    assert held.ttl == 2.0
    assert held.owner is not None
    time.sleep(3)  # longer than the ttl
    assert ledger.get_reservation(job) == held
    assert cpu_free() == 3.0
    # ... and comes back within its ttl once the master is killed.
    alive.clear()
    beating.join(10)
    master.kill()
    wait_until(lambda: ledger.get_reservation(job) is None, timeout=30, what="the lease to expire")
    node = ledger.get_node("n1")
    assert node.available == node.allocatable
    assert ledger.counters()["expired"] == 2
    ledger.close()
