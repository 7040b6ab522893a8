# ruff: noqa: F811 (pytest fixtures imported from test_worker are redefined as arguments)
"""Two real Celery workers: a wrong webhook token stops both at once, and a pool's
full webhook rolls over to the next without losing or duplicating a row. Redis on
127.0.0.1:6379, db 9 (flushed before and after)."""

import time

import pytest
import redis
from kombu import Connection

from bench.fakes import FakeDirectus, FakeSink, make_item
from integrations import tasks
from integrations.models import (
    ClayDestination,
    ClayWebhook,
    RowResult,
    Secret,
    Sync,
    SyncRun,
    WebhookState,
)
from integrations.runs import sync as engine_api
from tests.conftest import require_redis

from .syncfixtures import CLAY_TOKEN, DIRECTUS_TOKEN, HOOK_PATH, make_sync
from .test_worker import shared_database_url, start_worker, stop, wait_for  # noqa: F401

BROKER_URL = "redis://127.0.0.1:6379/9"
ROWS = 1200

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def broker():
    require_redis(BROKER_URL)
    client = redis.Redis.from_url(BROKER_URL)
    client.flushdb()
    yield BROKER_URL
    client.flushdb()


def second_sync(first: Sync, directus) -> Sync:
    """Another sync to the same destination, from another Directus (keys 100001...)."""
    connection = first.saved_query.connection
    connection.pk, connection.name = None, "Second Directus"
    connection.base_url, connection.token = directus.url, Secret.seal(DIRECTUS_TOKEN)
    connection.save()
    saved = first.saved_query
    saved.pk, saved.connection, saved.name = None, connection, "second articles"
    saved.save()
    return Sync.objects.create(
        name="Second sync",
        saved_query=saved,
        destination=first.destination,
        template=first.template,
        rate_limit=first.rate_limit,
        concurrency=first.concurrency,
        page_size=first.page_size,
    )


def start_both(syncs, broker):
    runs = [engine_api.start_run(sync) for sync in syncs]
    with Connection(broker) as conn:
        for run in runs:
            tasks.run_sync_slice.apply_async((run.pk,), producer=conn.Producer())
    return runs


def finished(runs):
    fresh = list(SyncRun.objects.filter(pk__in=[r.pk for r in runs], finished_at__isnull=False))
    return fresh if len(fresh) == len(runs) else None


def test_a_wrong_token_stops_every_worker_within_two_requests_each(
    broker, shared_database_url, tmp_path, monkeypatch
):
    monkeypatch.setattr(tasks.run_sync_slice, "delay_on_commit", lambda run_id: None)
    one = FakeDirectus(ROWS, token=DIRECTUS_TOKEN).start()
    two = FakeDirectus(
        items=[make_item(i) for i in range(100_001, 100_001 + ROWS)], token=DIRECTUS_TOKEN
    ).start()
    sink = FakeSink(token="the-token-clay-expects-0000").start()
    workers = []
    try:
        first = make_sync(one, sink, concurrency=8, page_size=200)
        syncs = [first, second_sync(first, two)]
        # Both workers up before the runs exist, so they start sending together.
        workers = [
            start_worker(name, shared_database_url, broker, tmp_path) for name in ("w1", "w2")
        ]
        time.sleep(4)
        runs = start_both(syncs, broker)
        runs = wait_for(lambda: finished(runs), 60, "both runs to end")

        per_run = [
            sum(n for key, n in sink.asked.items() if (int(key) > 100_000) == (i == 1))
            for i in range(2)
        ]
        owners = {r.pk: r for r in runs}
        for run in runs:
            took = (run.finished_at - run.started_at).total_seconds()
            print(f"run {run.pk}: {took:.2f} s, status {run.status}, causes {run.causes}")
            assert took < 2.0
            assert run.status == "failed"
            assert run.last_error.startswith("Webhook token rejected")
            assert run.causes == {"token_rejected": ROWS}
            assert RowResult.objects.filter(run=run).count() == ROWS
        print(f"requests per run (one worker each): {per_run}; total {sink.requests}")
        assert all(n <= 2 for n in per_run) and sink.requests == sum(per_run) <= 4
        assert len(owners) == 2
        destination = ClayDestination.objects.get(pk=first.destination_id)
        assert destination.state == WebhookState.AUTH_REJECTED
    finally:
        for worker in workers:
            stop(worker)
        for server in (one, two, sink):
            server.stop()


def test_a_pool_takes_over_when_the_first_webhook_is_full_exactly_once_per_row(
    broker, shared_database_url, tmp_path, monkeypatch
):
    monkeypatch.setattr(tasks.run_sync_slice, "delay_on_commit", lambda run_id: None)
    one = FakeDirectus(ROWS, token=DIRECTUS_TOKEN).start()
    two = FakeDirectus(
        items=[make_item(i) for i in range(100_001, 100_001 + ROWS)], token=DIRECTUS_TOKEN
    ).start()
    full_at_1000 = FakeSink(token=CLAY_TOKEN, cap=1000).start()
    spare = FakeSink(token="spare-webhook-token-42").start()
    workers = []
    try:
        first = make_sync(one, full_at_1000, concurrency=4, page_size=100)
        ClayWebhook.objects.create(
            destination=first.destination,
            position=1,
            webhook_url=Secret.seal(spare.url + HOOK_PATH),
            auth_token=Secret.seal("spare-webhook-token-42"),
        )
        syncs = [first, second_sync(first, two)]
        workers = [
            start_worker(name, shared_database_url, broker, tmp_path) for name in ("w1", "w2")
        ]
        time.sleep(4)
        runs = start_both(syncs, broker)
        runs = wait_for(lambda: finished(runs), 120, "both runs to end")

        both = full_at_1000.accepted + spare.accepted
        print(
            f"first webhook stored {full_at_1000.stored}, refused {full_at_1000.refused[403]}; "
            f"spare stored {spare.stored}"
        )
        assert full_at_1000.stored == 1000 and spare.stored == 2 * ROWS - 1000
        assert len(both) == 2 * ROWS and set(both.values()) == {1}  # every row exactly once
        for run in runs:
            assert run.status == "succeeded" and run.sent == ROWS
            assert run.possibly_duplicated == 0
        destination = ClayDestination.objects.get(pk=first.destination_id)
        assert destination.state == WebhookState.FULL
        assert destination.submissions_count == ClayDestination.SUBMISSION_CAP
        assert destination.pool.get().submissions_count == 2 * ROWS - 1000
    finally:
        for worker in workers:
            stop(worker)
        for server in (one, two, full_at_1000, spare):
            server.stop()
