"""The job store on SQLite and PostgreSQL: round trips, batches, restart, migrations, claims."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from examples.master.config import ConfigError, MasterConfig
from examples.master.errors import SchemaTooNew
from examples.master.jobqueue import JobQueue, QueuedJob
from examples.master.store import (
    SCHEMA_VERSION,
    AttemptRecord,
    JobRecord,
    NodeRecord,
    Store,
    open_store,
)

from tests.examples.conftest import StoreOpener, mark_schema_newer
from tests.support.postgres import PostgresServer


def _job(store: Store, job_id: str, **changes: object) -> JobRecord:
    job = JobRecord(
        id=job_id,
        seq=store.next_seq(),
        status="queued",
        scenario="720p-h264",
        queue="default",
        priority="medium",
        spec={"scenario": "720p-h264"},
        created_at=100.0,
        queued_at=100.0,
        trace={"traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"},
    )
    for name, value in changes.items():
        setattr(job, name, value)
    store.insert_job(job)
    return job


def test_sqlite_database_is_in_wal_mode(tmp_path: Path) -> None:
    open_store(str(tmp_path / "m.db")).close()
    db = sqlite3.connect(tmp_path / "m.db")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()


def test_job_round_trip_and_update(db: str, open_db: StoreOpener) -> None:
    store = open_db(db)
    job = _job(store, "j1")
    store.update_job("j1", status="running", progress={"percent": 42.0}, node_id="n1")
    got = store.get_job("j1")
    assert got is not None
    assert (got.status, got.progress, got.node_id, got.trace) == (
        "running",
        {"percent": 42.0},
        "n1",
        job.trace,
    )
    assert store.get_job(str(job.seq)) == got
    assert store.get_job("missing") is None


def test_jobs_and_nodes_survive_reopening(db: str, open_db: StoreOpener) -> None:
    store = open_db(db)
    _job(store, "j1")
    _job(store, "j2")
    store.upsert_node(NodeRecord("n1", "online", {"cpu": 4}, {}, ["libx264"], "1", 1.0, 2.0))
    store.insert_attempt(AttemptRecord("j1", 1, "n1", 3.0))
    store.update_attempt("j1", 1, outcome="failed", error="boom", finished_at=4.0)
    store.close()
    again = open_db(db)
    assert [j.id for j in again.jobs_with_status(["queued"])] == ["j1", "j2"]
    assert again.next_seq() == 3
    node = again.get_node("n1")
    assert node is not None
    assert node.encoders == ["libx264"]
    assert again.attempts("j1") == [AttemptRecord("j1", 1, "n1", 3.0, None, 4.0, "failed", "boom")]


def test_batch_commits_once_and_rolls_back_on_error(db: str, open_db: StoreOpener) -> None:
    store = open_db(db)

    def fail_midway() -> None:
        with store.batch():
            _job(store, "j1")
            raise RuntimeError("abort")

    with pytest.raises(RuntimeError):
        fail_midway()
    assert store.get_job("j1") is None
    with store.batch():
        _job(store, "j2")
        _job(store, "j3")
    assert {j.id for j in store.list_jobs()} == {"j2", "j3"}


def test_list_jobs_pages_newest_first_with_filters(db: str, open_db: StoreOpener) -> None:
    store = open_db(db)
    for i in range(5):
        _job(store, f"j{i}", queue="batch" if i % 2 else "default")
    page = store.list_jobs(limit=2)
    assert [j.id for j in page] == ["j4", "j3"]
    rest = store.list_jobs(limit=10, before_seq=page[-1].seq)
    assert [j.id for j in rest] == ["j2", "j1", "j0"]
    assert [j.id for j in store.list_jobs(queue="batch")] == ["j3", "j1"]
    assert store.count_jobs_by_status() == {"queued": 5}


def test_a_new_database_is_migrated_to_the_newest_schema_once(
    db: str, open_db: StoreOpener
) -> None:
    assert open_db(db).schema_version() == SCHEMA_VERSION
    assert open_db(db).migrate() == SCHEMA_VERSION  # a second master finds it done


def test_a_master_refuses_a_schema_newer_than_it_knows(db: str) -> None:
    newer = mark_schema_newer(db)
    with pytest.raises(SchemaTooNew) as refused:
        open_store(db)
    assert refused.value.detail == {"found": newer, "known": SCHEMA_VERSION}
    assert f"schema version {newer}" in str(refused.value)


def test_claim_takes_a_queued_job_once(db: str, open_db: StoreOpener) -> None:
    store = open_db(db)
    _job(store, "j1")
    assert store.claim_job("j1", status="assigned", node_id="n1", attempt=1)
    assert not store.claim_job("j1", status="assigned", node_id="n2", attempt=2)
    got = store.get_job("j1")
    assert got is not None
    assert (got.status, got.node_id, got.attempt) == ("assigned", "n1", 1)


def test_claim_skips_a_job_another_master_holds_locked(
    postgres_server: PostgresServer, postgres_url: str, open_db: StoreOpener
) -> None:
    store = open_db(postgres_url)
    _job(store, "j1")
    with postgres_server.connect() as other, other.transaction():
        other.execute("SELECT id FROM jobs WHERE id='j1' FOR UPDATE")
        # SKIP LOCKED: no waiting for the other master's transaction, no double placement
        assert not store.claim_job("j1", status="assigned", node_id="n1", attempt=1)
    assert store.claim_job("j1", status="assigned", node_id="n1", attempt=1)


def test_postgres_numbers_jobs_uniquely_across_masters(
    postgres_url: str, open_db: StoreOpener
) -> None:
    first, second = open_db(postgres_url), open_db(postgres_url)
    numbers = [first.next_seq(), second.next_seq(), first.next_seq()]
    assert len(set(numbers)) == 3


@pytest.mark.parametrize("url", ["sqlite:///{dir}/m.db", "{dir}/m.db"])
def test_db_takes_a_sqlite_url_or_a_plain_path(
    tmp_path: Path, url: str, open_db: StoreOpener
) -> None:
    store = open_db(url.format(dir=tmp_path))
    _job(store, "j1")
    assert (tmp_path / "m.db").exists()


@pytest.mark.parametrize(
    "db", ["mysql://root:secret@db/jobs", "sqlite://relative.db", "", "redis://x"]
)
def test_an_unknown_db_fails_at_construction_with_the_rule(db: str) -> None:
    with pytest.raises(ConfigError, match=r"db must be|SQLite URL is") as refused:
        MasterConfig(db=db)
    assert "secret" not in str(refused.value)


def test_queue_orders_live_first_then_priority_then_age() -> None:
    queue = JobQueue()
    queue.add(QueuedJob("old-low", 1, "s", "default", "low", 1.0))
    queue.add(QueuedJob("new-high", 2, "s", "default", "high", 5.0))
    queue.add(QueuedJob("batch-high", 3, "s", "batch", "high", 0.5))
    queue.add(QueuedJob("live-low", 4, "s", "live", "low", 9.0))
    queue.add(QueuedJob("old-high", 5, "s", "default", "high", 2.0))
    assert [j.job_id for j in queue] == [
        "live-low",
        "old-high",
        "new-high",
        "old-low",
        "batch-high",
    ]
    assert queue.remove("old-high") is not None
    assert queue.remove("old-high") is None
    assert "old-high" not in queue
    assert len(queue) == 4
    assert queue.counts()[("default", "high")] == 1
