"""A real Celery worker on Redis, killed with SIGKILL mid-run: the run still ends with every
row recorded exactly once. Needs Redis on 127.0.0.1:6379 (db 14 is flushed)."""

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from django.db import connection
from kombu import Connection

from bench.fakes import FakeDirectus, FakeSink
from integrations import tasks
from integrations.models import RowResult, SyncRun
from integrations.runs import sync as engine_api
from tests.conftest import require_redis

from .syncfixtures import CLAY_TOKEN, DIRECTUS_TOKEN, make_sync

BROKER_URL = "redis://127.0.0.1:6379/14"
ROOT = Path(__file__).resolve().parents[2]
ITEMS = 1500

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def broker():
    require_redis(BROKER_URL)
    client = redis.Redis.from_url(BROKER_URL)
    client.flushdb()
    yield BROKER_URL
    client.flushdb()


@pytest.fixture
def shared_database_url(tmp_path):
    """A DATABASE_URL for the worker that reaches this test's database.

    PostgreSQL: the test database pytest-django created. SQLite: the test database lives in
    memory, which no other process can open, so the test moves to a file copy of it (schema
    included) for its duration, keeping the in-memory one open to return to.
    """
    settings_dict = connection.settings_dict
    if connection.vendor == "postgresql":
        s = settings_dict
        auth = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "")
        yield f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"
        return
    assert connection.vendor == "sqlite"
    path = tmp_path / "worker.sqlite3"
    connection.ensure_connection()
    in_memory, original_name = connection.connection, settings_dict["NAME"]
    target = sqlite3.connect(path)
    in_memory.backup(target)
    target.close()
    connection.connection = None  # not close(): that would drop the in-memory database
    settings_dict["NAME"] = str(path)
    try:
        yield f"sqlite:///{path}"
    finally:
        connection.close()
        settings_dict["NAME"] = original_name
        connection.connection = in_memory


def start_worker(
    name,
    database_url,
    broker_url,
    tmp_path,
    beat=False,
    settings="tests.integrations.worker_settings",
    pool="solo",
    env=None,
):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": settings,
        "DATABASE_URL": database_url,
        "CELERY_BROKER_URL": broker_url,
        "REDIS_URL": "",
        "KILN_RATE_LIMIT_REDIS_URL": "",
        **(env or {}),
    }
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "console",
        "worker",
        f"--pool={pool}",
        "--concurrency=1",
        "--loglevel=INFO",
        "-n",
        f"{name}@%h",
        "--without-gossip",
        "--without-mingle",
    ]
    if beat:
        command += ["--beat", "--schedule", str(tmp_path / "beat-schedule")]
    log = open(tmp_path / f"{name}.log", "w")  # noqa: SIM115 (closed with the process)
    return subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )


def stop(process):
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


def session_members(sid) -> list[int]:
    """Live processes of a worker's session (its sender processes among them)."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != "Z":
            members.append(int(entry))
    return members


def wait_for(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_run_survives_its_worker_being_killed_mid_run(
    broker, shared_database_url, tmp_path, monkeypatch
):
    # This process's Celery app points at the test broker of the embedded mode; publish the
    # first slice to the workers' Redis ourselves.
    monkeypatch.setattr(tasks.run_sync_slice, "delay_on_commit", lambda run_id: None)
    directus = FakeDirectus(ITEMS, token=DIRECTUS_TOKEN).start()
    sink = FakeSink(token=CLAY_TOKEN, delay=0.01).start()
    workers = []
    try:
        sync = make_sync(directus, sink, concurrency=4, page_size=50)
        run = engine_api.start_run(sync)
        with Connection(broker) as conn:
            tasks.run_sync_slice.apply_async((run.pk,), producer=conn.Producer())

        workers.append(start_worker("first", shared_database_url, broker, tmp_path))
        wait_for(lambda: SyncRun.objects.get(pk=run.pk).total >= 300, 60, "the first rows")
        # The worker alone, as the OOM killer would: its sender process must go with it.
        os.kill(workers[0].pid, signal.SIGKILL)
        killed_at = time.monotonic()
        workers[0].wait(10)
        wait_for(lambda: not session_members(workers[0].pid), 5, "the sender process to exit")
        at_kill = SyncRun.objects.get(pk=run.pk)
        assert at_kill.status == "running" and at_kill.total < ITEMS

        workers.append(start_worker("second", shared_database_url, broker, tmp_path, beat=True))
        wait_for(lambda: SyncRun.objects.get(pk=run.pk).slices > at_kill.slices, 30, "the resume")
        resumed_after = time.monotonic() - killed_at
        run = wait_for(
            lambda: SyncRun.objects.filter(pk=run.pk, status="succeeded").first(),
            90,
            "the run to end",
        )

        assert resumed_after < 30
        keys = list(RowResult.objects.filter(run=run).values_list("row_key", flat=True))
        assert len(keys) == len(set(keys)) == ITEMS == run.total == run.sent
        assert set(sink.accepted) == {str(i) for i in range(1, ITEMS + 1)}
        # At least once, honestly: every row Clay got twice is flagged, and no more than
        # the rows in flight (two pages) were.
        sent_twice = {key for key, n in sink.received.items() if n > 1}
        flagged = set(
            RowResult.objects.filter(run=run, resent=True).values_list("row_key", flat=True)
        )
        assert sent_twice <= flagged
        assert run.resent == len(flagged) <= 2 * 50
    finally:
        for worker in workers:
            stop(worker)
        directus.stop()
        sink.stop()


def test_a_prefork_worker_sends_through_a_sender_process_it_starts(
    broker, shared_database_url, tmp_path, monkeypatch
):
    # Production runs the prefork pool: the engine starts its sender process from a pool
    # process, and the process goes when the slice ends.
    monkeypatch.setattr(tasks.run_sync_slice, "delay_on_commit", lambda run_id: None)
    directus = FakeDirectus(400, token=DIRECTUS_TOKEN).start()
    sink = FakeSink(token=CLAY_TOKEN).start()
    worker = None
    try:
        sync = make_sync(directus, sink, concurrency=4, page_size=50)
        run = engine_api.start_run(sync)
        with Connection(broker) as conn:
            tasks.run_sync_slice.apply_async((run.pk,), producer=conn.Producer())
        worker = start_worker("prefork", shared_database_url, broker, tmp_path, pool="prefork")
        run = wait_for(
            lambda: SyncRun.objects.filter(pk=run.pk, status="succeeded").first(),
            60,
            "the run to end",
        )
        assert run.sent == 400 and set(sink.accepted) == {str(i) for i in range(1, 401)}
        # The worker and its one pool process; no sender process left behind.
        wait_for(lambda: len(session_members(worker.pid)) == 2, 5, "only the pool to remain")
    finally:
        if worker is not None:
            stop(worker)
        directus.stop()
        sink.stop()
