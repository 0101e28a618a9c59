"""The scheduler on a fake clock: placement order, fit, timeouts, retries, dead letters."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from examples.common.spec import validate_spec
from examples.master.config import MasterConfig
from examples.master.errors import Conflict
from examples.master.scheduler import Scheduler

from ffrtmp_infra.resources import ResourceManager
from tests.examples.conftest import StoreOpener


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


_openers: list[StoreOpener] = []


@pytest.fixture(autouse=True)
def _store_opener(open_db: StoreOpener) -> Iterator[None]:
    """``_scheduler`` opens its store through the test's ``open_db`` (closed at teardown)."""
    _openers.append(open_db)
    yield
    _openers.pop()


def _scheduler(db: str, clock: FakeClock, **config: Any) -> Scheduler:
    settings: dict[str, Any] = {
        "db": db,
        "heartbeat_interval": 1.0,
        "heartbeat_timeout": 3.0,
        "stale_timeout_live": 5.0,
        "stale_timeout_batch": 20.0,
        "retry_backoff": 2.0,
        "retry_backoff_max": 8.0,
    }
    settings.update(config)
    cfg = MasterConfig(**settings)
    return Scheduler(
        _openers[-1](cfg.db), ResourceManager(scorer="spread"), cfg, clock=clock, jitter=lambda: 1.0
    )


def _register(
    s: Scheduler, node_id: str, cpu: float = 4, encoders: tuple[str, ...] = ("libx264", "aac")
) -> None:
    s.register_node(
        {
            "node_id": node_id,
            "capacity": {"cpu": cpu, "ram_gb": 16, "gpu": 0, "extended": {}},
            "labels": {},
            "encoders": list(encoders),
            "version": "test",
        }
    )


def _submit(s: Scheduler, scenario: str = "720p-h264", **fields: Any) -> str:
    return s.submit(validate_spec({"scenario": scenario, **fields})).id


def _mailbox(s: Scheduler, node_id: str) -> list[str]:
    return [m["job_id"] for m in s.nodes[node_id].mailbox]


def test_placement_order_is_live_then_priority_then_age(db: str) -> None:
    clock = FakeClock()
    s = _scheduler(db, clock)
    low = _submit(s, priority="low")
    clock.advance(1)
    high = _submit(s, priority="high")
    clock.advance(1)
    batch = _submit(s, queue="batch", priority="high")
    live = _submit(s, "live-rtmp", output={"url": "rtmp://127.0.0.1/live/k"})
    _register(s, "n1", cpu=4)
    assert s.place() == 4
    assert _mailbox(s, "n1") == [live, high, low, batch]


def test_job_that_fits_nowhere_does_not_block_smaller_jobs(db: str) -> None:
    clock = FakeClock()
    s = _scheduler(db, clock)
    _register(s, "n1", cpu=1)
    big = _submit(s, "1080p-h264", priority="high")  # needs 2 CPUs
    small = _submit(s, "480p-h264", priority="low")  # needs 1
    s.place()
    assert _mailbox(s, "n1") == [small]
    assert s.get_job(big).status == "queued"


def test_node_without_the_encoder_is_not_chosen(db: str) -> None:
    clock = FakeClock()
    s = _scheduler(db, clock)
    _register(s, "x264-only", cpu=8, encoders=("libx264", "aac"))
    job = _submit(s, "720p-h265")
    s.place()
    assert s.get_job(job).status == "queued"
    _register(s, "has-x265", cpu=8, encoders=("libx264", "libx265", "aac"))
    s.place()
    assert _mailbox(s, "has-x265") == [job]


def test_claim_returns_a_job_submitted_while_waiting(db: str) -> None:
    clock = FakeClock()
    s = _scheduler(db, clock)
    _register(s, "n1")

    async def scenario() -> dict[str, Any] | None:
        await s.start()
        try:
            claim = asyncio.create_task(s.claim("n1", 5.0))
            await asyncio.sleep(0.01)
            job_id = _submit(s)
            assignment = await asyncio.wait_for(claim, 5.0)
            assert assignment is not None
            assert assignment["job_id"] == job_id
            return assignment
        finally:
            await s.stop()

    assignment = asyncio.run(scenario())
    assert assignment is not None
    assert assignment["attempt"] == 1
    assert assignment["spec"]["scenario"] == "720p-h264"
    assert "traceparent" in assignment["trace"] or assignment["trace"] == {}


def test_claim_times_out_with_nothing(db: str) -> None:
    s = _scheduler(db, FakeClock())
    _register(s, "n1")
    assert asyncio.run(s.claim("n1", 0.05)) is None


def _run(s: Scheduler, job_id: str, node: str) -> int:
    s.place()
    attempt = s.get_job(job_id).attempt
    s.nodes[node].mailbox.clear()
    s.progress(job_id, {"node_id": node, "attempt": attempt, "percent": 1.0})
    return attempt


def test_completion_releases_capacity(db: str) -> None:
    clock = FakeClock()
    s = _scheduler(db, clock)
    _register(s, "n1", cpu=1)
    first, second = _submit(s), _submit(s)
    attempt = _run(s, first, "n1")
    assert s.get_job(first).status == "running"
    assert s.get_job(second).status == "queued"
    s.result(first, {"node_id": "n1", "attempt": attempt, "status": "completed"})
    assert s.get_job(first).status == "completed"
    s.place()
    assert _mailbox(s, "n1") == [second]


def test_superseded_attempt_cannot_report(db: str) -> None:
    clock = FakeClock()
    s = _scheduler(db, clock)
    _register(s, "slow")
    job = _submit(s)
    first = _run(s, job, "slow")
    clock.advance(4)  # slow stops heartbeating: offline, job requeued
    _register(s, "fast")
    s.check_timeouts()
    s.place()
    assert s.get_job(job).node_id == "fast"
    for report in (
        {"node_id": "slow", "attempt": first, "status": "completed"},
        {"node_id": "fast", "attempt": first, "status": "completed"},
    ):
        with pytest.raises(Conflict) as caught:
            s.result(job, report)
        assert caught.value.message == "superseded"
    s.result(job, {"node_id": "fast", "attempt": first + 1, "status": "completed"})
    assert s.get_job(job).status == "completed"


def test_silent_node_goes_offline_and_its_job_is_requeued(db: str) -> None:
    clock = FakeClock()
    s = _scheduler(db, clock)
    _register(s, "n1")
    _register(s, "n2")
    job = _submit(s)
    s.place()
    victim = s.get_job(job).node_id or ""
    _run(s, job, victim)
    survivor = "n2" if victim == "n1" else "n1"
    clock.advance(2)
    s.heartbeat(survivor, [])
    clock.advance(2)
    s.check_timeouts()
    assert victim not in s.nodes
    node = s.store.get_node(victim)
    assert node is not None
    assert node.status == "offline"
    assert s.get_job(job).status == "queued"
    s.place()
    assert s.get_job(job).node_id == survivor
    assert [a.outcome for a in s.store.attempts(job)] == ["node_lost", None]


def test_stale_job_retries_with_backoff_then_dead_letters(db: str) -> None:
    clock = FakeClock()
    s = _scheduler(db, clock, max_retries=2)
    _register(s, "n1")
    job = _submit(s)
    delays = []
    for _ in range(3):
        _run(s, job, "n1")
        clock.advance(21)  # batch stale timeout is 20 s
        s.heartbeat("n1", [{"job_id": job, "attempt": s.get_job(job).attempt}])
        s.check_timeouts()
        record = s.get_job(job)
        if record.status == "failed":
            break
        assert record.retry_at is not None
        delays.append(record.retry_at - clock.now)
        s.place()
        assert s.get_job(job).status == "queued"  # not before its retry time
        clock.advance(record.retry_at - clock.now)
        s.heartbeat("n1", [])
        s.check_timeouts()
    record = s.get_job(job)
    assert record.status == "failed"
    assert record.dead_letter
    assert delays == [2.0, 4.0]  # exponential; jitter pinned to its maximum
    assert [a.outcome for a in s.store.attempts(job)] == ["stale", "stale", "stale"]


def test_backoff_is_capped_and_jittered(db: str) -> None:
    s = _scheduler(db, FakeClock())
    s._jitter = lambda: 0.0
    assert [s.backoff(n) for n in (1, 2, 3, 4, 10)] == [1.0, 2.0, 4.0, 4.0, 4.0]


def test_handed_back_job_requeues_without_counting_a_failure(db: str) -> None:
    s = _scheduler(db, FakeClock())
    _register(s, "n1")
    job = _submit(s)
    attempt = _run(s, job, "n1")
    s.result(job, {"node_id": "n1", "attempt": attempt, "status": "handed_back"})
    record = s.get_job(job)
    assert (record.status, record.failures, record.retry_at) == ("queued", 0, None)


def test_failed_result_retries_then_manual_retry_after_dead_letter(db: str) -> None:
    clock = FakeClock()
    s = _scheduler(db, clock, max_retries=0)
    _register(s, "n1")
    job = _submit(s)
    attempt = _run(s, job, "n1")
    s.result(job, {"node_id": "n1", "attempt": attempt, "status": "failed", "error": "boom"})
    record = s.get_job(job)
    assert (record.status, record.dead_letter, record.error) == ("failed", True, "boom")
    s.retry(job)
    assert s.get_job(job).status == "queued"
    s.place()
    assert s.get_job(job).attempt == attempt + 1


def test_cancel_running_job_tells_the_worker(db: str) -> None:
    s = _scheduler(db, FakeClock())
    _register(s, "n1")
    job = _submit(s)
    attempt = _run(s, job, "n1")
    s.cancel(job)
    with pytest.raises(Conflict) as caught:
        s.progress(job, {"node_id": "n1", "attempt": attempt})
    assert caught.value.message == "canceled"
    assert s.heartbeat("n1", [{"job_id": job, "attempt": attempt}])["cancel"] == [job]


def test_restart_keeps_attempts_and_requeues_an_undelivered_one(db: str) -> None:
    clock = FakeClock()
    s = _scheduler(db, clock)
    _register(s, "n1", cpu=8)
    running = _submit(s)
    attempt = _run(s, running, "n1")
    delivered = _submit(s)
    undelivered = _submit(s)
    queued = _submit(s, "1080p-h264-nvenc")  # no GPU anywhere: stays queued
    s.place()
    s.nodes["n1"].mailbox.clear()  # both handed out; one response is lost in the crash
    s.store.close()

    again = _scheduler(db, clock)
    again.recover()
    assert again.get_job(running).status == "running"
    assert again.get_job(delivered).status == "assigned"
    assert again.get_job(queued).status == "queued"
    again.progress(running, {"node_id": "n1", "attempt": attempt, "percent": 50.0})
    clock.advance(2.5)  # past two heartbeat intervals: the worker's list is authoritative
    reported = [{"job_id": running, "attempt": attempt}, {"job_id": delivered, "attempt": 1}]
    again.heartbeat("n1", reported)
    assert again.get_job(delivered).status == "assigned"
    assert again.get_job(undelivered).status == "queued"
    assert [a.outcome for a in again.store.attempts(undelivered)] == ["lost"]
    again.result(running, {"node_id": "n1", "attempt": attempt, "status": "completed"})
    assert again.get_job(running).status == "completed"


def test_restart_requeues_attempts_of_nodes_it_no_longer_knows(db: str) -> None:
    clock = FakeClock()
    s = _scheduler(db, clock)
    _register(s, "n1")
    job = _submit(s)
    _run(s, job, "n1")
    s.store.set_node_status("n1", "offline")
    s.store.close()
    again = _scheduler(db, clock)
    again.recover()
    record = again.get_job(job)
    assert (record.status, record.node_id) == ("queued", None)
    assert [a.outcome for a in again.store.attempts(job)] == ["superseded"]


def test_worker_that_forgot_a_job_gets_it_requeued(db: str) -> None:
    clock = FakeClock()
    s = _scheduler(db, clock)
    _register(s, "n1")
    job = _submit(s)
    _run(s, job, "n1")
    clock.advance(0.5)
    s.heartbeat("n1", [])  # within the grace period: kept
    assert s.get_job(job).status == "running"
    clock.advance(2)
    s.heartbeat("n1", [])
    record = s.get_job(job)
    assert (record.status, record.failures) == ("queued", 0)


def test_heartbeat_tells_a_returning_worker_to_drop_a_reassigned_attempt(db: str) -> None:
    clock = FakeClock()
    s = _scheduler(db, clock)
    _register(s, "frozen")
    job = _submit(s)
    first = _run(s, job, "frozen")
    _register(s, "other")
    clock.advance(4)
    s.heartbeat("other", [])
    s.check_timeouts()  # "frozen" went silent: offline, job requeued and placed on "other"
    s.place()
    assert s.get_job(job).node_id == "other"
    _register(s, "frozen")  # it wakes up, re-registers and reports its old attempt
    answer = s.heartbeat("frozen", [{"job_id": job, "attempt": first}])
    assert answer["cancel"] == [job]
    current = s.get_job(job).attempt
    assert s.heartbeat("other", [{"job_id": job, "attempt": current}])["cancel"] == []


def test_a_retry_prefers_another_node_but_falls_back_to_the_same(db: str) -> None:
    clock = FakeClock()
    s = _scheduler(db, clock)
    _register(s, "a")
    job = _submit(s)
    attempt = _run(s, job, "a")
    _register(s, "b")
    s.result(job, {"node_id": "a", "attempt": attempt, "status": "handed_back"})
    s.place()
    assert s.get_job(job).node_id == "b"  # "spread" alone could have picked either
    attempt = _run(s, job, "b")
    s.remove_node("a")
    s.result(job, {"node_id": "b", "attempt": attempt, "status": "handed_back"})
    s.place()
    assert s.get_job(job).node_id == "b"  # the only node left


def test_lost_job_grace_starts_when_the_worker_claims_it(db: str) -> None:
    clock = FakeClock()
    s = _scheduler(db, clock)
    _register(s, "n1")
    job = _submit(s)
    s.place()
    clock.advance(2.5)  # waited in the mailbox longer than the grace period
    s.heartbeat("n1", [])
    assert asyncio.run(s.claim("n1", 0)) is not None
    s.heartbeat("n1", [])  # sent before the worker listed its new job
    assert s.get_job(job).status == "assigned"
