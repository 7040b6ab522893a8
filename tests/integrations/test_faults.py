"""The fault suite: a real Celery worker, real Redis and a real database, and a local sink, while
things break under a running sync. Each test asserts every row recorded exactly once, no row
failed that was never sent, and "sent twice" counting the rows Clay may really have twice.

The Redis here is the suite's own (port 6391, tests/integrations/private_redis.py): it is
stopped and started again, which the machine's Redis on 6379 must never be.
"""

import os
import signal
import time

import pytest
from django.db import connection
from kombu import Connection

from bench.fakes import FakeDirectus, FakeSink
from integrations import tasks
from integrations.models import RowResult, SyncRun
from integrations.runs import sync as engine_api

from .private_redis import private_redis
from .syncfixtures import CLAY_TOKEN, DIRECTUS_TOKEN, make_sync
from .test_worker import session_members, shared_database_url, start_worker, stop, wait_for

__all__ = ["shared_database_url"]  # a fixture these tests use

SETTINGS = "tests.integrations.fault_worker_settings"
REDIS_PORT = 6391

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def redis_server(tmp_path):
    yield from private_redis(REDIS_PORT, tmp_path)


@pytest.fixture
def no_publish_on_commit(monkeypatch):
    # This process's Celery app points at the embedded broker: tests publish the first slice.
    monkeypatch.setattr(tasks.run_sync_slice, "delay_on_commit", lambda run_id: None)


def publish(broker_url, run):
    with Connection(broker_url) as conn:
        tasks.run_sync_slice.apply_async((run.pk,), producer=conn.Producer())


def finished(run_id, timeout):
    return wait_for(
        lambda: SyncRun.objects.filter(pk=run_id).exclude(status__in=SyncRun.ACTIVE).first(),
        timeout,
        "the run to end",
    )


def assert_recorded_once(run, items, sink, permanently_refused=()):
    """Every row has one result; only rows Clay refused failed; duplicates are flagged."""
    results = list(RowResult.objects.filter(run=run).values_list("row_key", "status", "attempts"))
    keys = [key for key, _, _ in results]
    assert len(keys) == len(set(keys)) == items == run.total
    failed = {key for key, status, _ in results if status == "failed"}
    assert failed == set(permanently_refused) and run.failed == len(failed)
    # A failed row was tried: no row failed without a send that really happened.
    assert all(attempts > 0 for key, status, attempts in results if status == "failed")
    assert run.sent == items - len(failed)
    assert set(sink.accepted) == {str(i) for i in range(1, items + 1)} - set(failed)
    twice = {key for key, n in sink.accepted.items() if n > 1}
    flagged = set(RowResult.objects.filter(run=run, resent=True).values_list("row_key", flat=True))
    assert twice <= flagged
    assert run.resent == len(flagged)
    return flagged


def test_a_redis_restart_mid_run_is_waited_out_and_the_worker_survives(
    redis_server, shared_database_url, tmp_path, no_publish_on_commit
):
    # Redis is the broker and the rate limiter's store, as in production; 15 s down mid-run.
    items = 400
    broker = redis_server.url(0)
    directus = FakeDirectus(items, token=DIRECTUS_TOKEN).start()
    sink = FakeSink(token=CLAY_TOKEN).start()
    worker = None
    try:
        run = engine_api.start_run(
            make_sync(directus, sink, concurrency=4, page_size=50, rate_limit=40)
        )
        publish(broker, run)
        env = {"KILN_RATE_LIMIT_REDIS_URL": redis_server.url(1)}
        worker = start_worker(
            "broker", shared_database_url, broker, tmp_path, pool="prefork", beat=True,
            settings=SETTINGS, env=env,
        )  # fmt: skip
        wait_for(lambda: SyncRun.objects.get(pk=run.pk).total >= 80, 60, "the first rows")
        redis_server.stop()
        down_at = time.monotonic()
        waiting = wait_for(
            lambda: SyncRun.objects.get(pk=run.pk).waiting_for, 10, "the run to say it waits"
        )
        assert waiting == "Redis"
        during = SyncRun.objects.get(pk=run.pk)
        time.sleep(max(0.0, 15 - (time.monotonic() - down_at)))
        assert SyncRun.objects.get(pk=run.pk).failed == 0
        redis_server.start()

        run = finished(run.pk, 90)
        assert worker.poll() is None, (tmp_path / "broker.log").read_text()[-3000:]
        assert run.status == "succeeded", run.last_error
        assert during.failed == 0 and "Redis" in run.checkpoint.get("waited", "")
        assert_recorded_once(run, items, sink)
        # The worker still takes work after the restart: a ping through the broker is answered.
        with Connection(broker) as conn:
            result = tasks.ping.apply_async(producer=conn.Producer())
        del result  # results are ignored; the log shows the task ran
        wait_for(
            lambda: "integrations.tasks.ping" in (tmp_path / "broker.log").read_text(), 20, "ping"
        )
    finally:
        if worker is not None:
            stop(worker)
        directus.stop()
        sink.stop()


def test_a_killed_worker_and_a_flaky_sink_still_record_every_row_once(
    redis_server, shared_database_url, tmp_path, no_publish_on_commit
):
    items = 500
    script = {}
    for i in range(1, items + 1, 7):
        script[str(i)] = [500, "ok"]
    for i in range(3, items + 1, 11):
        script[str(i)] = ["drop", "ok"]
    for i in range(5, items + 1, 13):
        script[str(i)] = [(429, 0), "ok"]
    refused = {str(i) for i in range(9, items + 1, 97)}
    for key in refused:
        # Refused for good: every try, including one a resumed run makes after the kill (a
        # row answered 400 but not yet recorded when its worker died is sent again).
        script[key] = [400] * 5
    broker = redis_server.url(0)
    directus = FakeDirectus(items, token=DIRECTUS_TOKEN).start()
    sink = FakeSink(token=CLAY_TOKEN, script=script, delay=0.04).start()
    workers = []
    try:
        run = engine_api.start_run(
            make_sync(directus, sink, concurrency=4, page_size=100, rate_limit=0)
        )
        publish(broker, run)
        workers.append(
            start_worker("first", shared_database_url, broker, tmp_path, settings=SETTINGS)
        )
        wait_for(lambda: SyncRun.objects.get(pk=run.pk).total >= 150, 60, "the first rows")
        os.kill(workers[0].pid, signal.SIGKILL)
        workers[0].wait(10)
        wait_for(lambda: not session_members(workers[0].pid), 5, "the sender process to exit")
        workers.append(
            start_worker(
                "second", shared_database_url, broker, tmp_path, beat=True, settings=SETTINGS
            )
        )
        run = finished(run.pk, 90)
        assert run.status == "partly_failed"
        flagged = assert_recorded_once(run, items, sink, permanently_refused=refused)
        # Flagged are the rows Clay got twice, plus at most about half a second of sending
        # (~100 rows/s here) handed over but not yet sent: not the two pages of 100 in flight.
        twice = {key for key, n in sink.accepted.items() if n > 1}
        assert len(flagged - twice) <= 60, (len(flagged), len(twice))
    finally:
        for worker in workers:
            stop(worker)
        directus.stop()
        sink.stop()


def _terminate_other_backends():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


def test_database_connections_dropped_mid_run_are_waited_out(
    redis_server, shared_database_url, tmp_path, no_publish_on_commit
):
    # PostgreSQL: the worker's connections are terminated again and again for 8 s. SQLite:
    # every query of the worker fails for 8 s (fault_worker_settings), the same errors.
    items = 400
    fault_file = tmp_path / "database-down"
    broker = redis_server.url(0)
    directus = FakeDirectus(items, token=DIRECTUS_TOKEN).start()
    sink = FakeSink(token=CLAY_TOKEN).start()
    worker = None
    try:
        run = engine_api.start_run(
            make_sync(directus, sink, concurrency=4, page_size=50, rate_limit=40)
        )
        publish(broker, run)
        worker = start_worker(
            "database", shared_database_url, broker, tmp_path, beat=True, settings=SETTINGS,
            env={"KILN_TEST_DB_FAULT_FILE": str(fault_file)},
        )  # fmt: skip
        wait_for(lambda: SyncRun.objects.get(pk=run.pk).total >= 80, 60, "the first rows")
        end = time.monotonic() + 8
        if connection.vendor == "postgresql":
            while time.monotonic() < end:
                _terminate_other_backends()
                time.sleep(0.2)
        else:
            fault_file.touch()
            time.sleep(8)
            fault_file.unlink()
        run = finished(run.pk, 90)
        assert run.status == "succeeded", run.last_error
        assert "the database" in run.checkpoint.get("waited", "")
        assert_recorded_once(run, items, sink)
        assert worker.poll() is None
    finally:
        if worker is not None:
            stop(worker)
        directus.stop()
        sink.stop()


def test_sign_in_works_while_redis_is_down(redis_server, client, admin_user, settings):
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": redis_server.url(2),
        }
    }
    redis_server.stop()
    response = client.post("/login/", {"username": admin_user.username, "password": "wrong"})
    assert response.status_code == 200
    response = client.post(
        "/login/", {"username": admin_user.username, "password": "pw-for-tests-123"}
    )
    assert response.status_code == 302


def test_a_closed_broker_channel_raises_a_connection_error_the_worker_recovers_from(
    redis_server,
):
    # kombu 5.7.0: a stale poller asking a closed connection's channel for a client read
    # None.hostname and the AttributeError ended the worker (console/brokerfix.py).
    conn = Connection(redis_server.url(0))
    channel = conn.channel()
    transport = conn.transport
    conn._do_close_transport()  # what a reconnect leaves behind: transport.client is None
    with pytest.raises(transport.connection_errors):
        channel._connparams()
    transport.cycle.on_poll_start()
    assert channel not in transport.cycle._channels
