# ruff: noqa: F811 (pytest fixtures imported from test_worker are redefined as arguments)
"""Directus → Clay runs on the shapes customers run: uuid and string keys, a capitalised
collection, QUERY_LIMIT_MAX=500, a rate limiter, second-resolution timestamps, a killed worker.

Every test creates its own collection with the admin token and drops it at the end.
"""

import os
import signal
import threading
import time
import urllib.error
import urllib.request
import uuid

import pytest
from kombu import Connection

from bench.fakes import FakeSink
from integrations import tasks
from integrations.clay import sender
from integrations.directus.client import DirectusClient, DirectusError
from integrations.models import (
    ClayDestination,
    DirectusConnection,
    RowResult,
    SavedQuery,
    Secret,
    Sync,
    SyncRun,
)
from integrations.runs import engine
from integrations.runs import sync as engine_api
from tests.integrations.test_worker import (  # noqa: F401 (fixtures)
    broker,
    session_members,
    shared_database_url,
    start_worker,
    stop,
    wait_for,
)
from tests.live import shapes

CLAY_TOKEN = "clay-live-token-0000"


@pytest.fixture
def quick(monkeypatch, settings):
    monkeypatch.setattr(sender, "RETRY_BASE_SECONDS", 0.01)
    monkeypatch.setattr(engine, "CONTROL_INTERVAL", 0.05)
    settings.KILN_RATE_LIMIT_REDIS_URL = ""


@pytest.fixture
def sink():
    with FakeSink(token=CLAY_TOKEN) as server:
        yield server


def live_sync(live, collection, sink, *, row_key="id", **options):
    """A Directus → Clay sync over the whole collection, sending each item as it is."""
    tag = uuid.uuid4().hex[:6]
    connection = DirectusConnection.objects.create(
        name=f"live {tag}", base_url=live.url, token=Secret.seal(live.admin_token)
    )
    destination = ClayDestination.objects.create(
        name=f"sink {tag}",
        webhook_url=Secret.seal(sink.url + "/hook"),
        auth_token=Secret.seal(CLAY_TOKEN),
    )
    query = SavedQuery.objects.create(
        connection=connection, name=f"all {tag}", collection=collection, query_string=""
    )
    sink.key_field = row_key
    settings = {"rate_limit": 0, "concurrency": 8, "page_size": 200, **options}
    return Sync.objects.create(
        name=f"{collection} {tag}",
        saved_query=query,
        destination=destination,
        row_key=row_key,
        **settings,
    )


def run_to_end(run):
    for _ in range(1000):
        if not engine_api.execute_slice(run.pk, worker_id="live-test", max_seconds=60):
            break
    return SyncRun.objects.get(pk=run.pk)


def recorded_once(run):
    keys = list(RowResult.objects.filter(run=run).values_list("row_key", flat=True))
    assert len(keys) == len(set(keys)) == run.total
    return set(keys)


@pytest.fixture
def uuid_collection(live_directus_limited):
    live = live_directus_limited
    name = shapes.create_collection(live, "Products", shapes.uuid_pk())
    rows = [{"id": str(uuid.uuid4()), "name": f"Product {i}"} for i in range(1200)]
    shapes.insert(live, name, rows)
    yield live, name, {r["id"] for r in rows}
    shapes.drop_collection(live, name)


@pytest.mark.django_db
def test_a_full_sync_of_a_uuid_keyed_collection_records_every_item_once(
    uuid_collection, sink, quick
):
    live, name, keys = uuid_collection
    # 1,000 per page asked; the server allows 500 (QUERY_LIMIT_MAX): read at 500, no error.
    sync = live_sync(live, name, sink, page_size=1000)

    run = run_to_end(engine_api.start_run(sync))

    assert (run.status, run.total, run.sent, run.failed) == ("succeeded", 1200, 1200, 0)
    assert recorded_once(run) == keys == set(sink.accepted)
    assert max(sink.received.values()) == 1
    sync.saved_query.connection.refresh_from_db()
    assert sync.saved_query.connection.server_info["queryLimit"]["max"] == 500


@pytest.fixture
def code_collection(live_directus):
    live = live_directus
    name = shapes.create_collection(live, "Codes", shapes.string_pk("code"))
    codes = shapes.AWKWARD_CODES + [f"code-{i:03}" for i in range(40)]
    shapes.insert(live, name, [{"code": c, "name": f"Item {c}"} for c in codes])
    yield live, name, set(codes)
    shapes.drop_collection(live, name)


@pytest.mark.django_db
def test_string_keys_with_awkward_characters_sync_retry_and_dry_run(code_collection, sink, quick):
    live, name, codes = code_collection
    # Small pages: the read crosses many offset pages, each checked against the last key.
    sync = live_sync(live, name, sink, row_key="code", page_size=7)
    sink.script = {"o'brien": [400], "日本": [400], "a+b": [400]}

    run = run_to_end(engine_api.start_run(sync))

    assert (run.total, run.sent, run.failed) == (len(codes), len(codes) - 3, 3)
    assert recorded_once(run) == codes
    sink.reset()
    retry = run_to_end(engine_api.retry_failed_rows(run))
    assert (retry.status, retry.sent) == ("succeeded", 3)
    assert set(sink.accepted) == {"o'brien", "日本", "a+b"}
    dry = run_to_end(engine_api.start_run(sync, dry_run=True))
    assert dry.total == dry.skipped == len(codes)


@pytest.mark.django_db
def test_incremental_sends_exactly_the_changed_rows_and_nothing_on_a_rerun(
    uuid_collection, sink, quick
):
    live, name, keys = uuid_collection
    ordered = sorted(keys)
    shapes.update(live, name, ordered, {"updated_at": "2026-03-01T09:00:00.100"})
    sync = live_sync(live, name, sink, mode="incremental", timestamp_field="updated_at")
    first = run_to_end(engine_api.start_run(sync))
    assert first.sent == 1200 and first.high_water_mark == "2026-03-01T09:00:00"
    sink.reset()

    changed = ordered[10:17]
    shapes.update(live, name, changed, {"updated_at": "2026-03-02T10:00:00.200", "name": "new"})
    second = run_to_end(engine_api.start_run(sync))
    assert set(sink.accepted) == set(changed) and second.sent == 7
    sink.reset()

    third = run_to_end(engine_api.start_run(sync))
    assert third.sent == 0 and sink.total_received == 0
    # Later in the same second: the time Directus answers is the same, the content is not.
    shapes.update(
        live, name, ordered[20:21], {"updated_at": "2026-03-02T10:00:00.900", "name": "x"}
    )
    fourth = run_to_end(engine_api.start_run(sync))
    assert set(sink.accepted) == {ordered[20]} and fourth.sent == 1


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_read_of_a_uuid_collection_resumes_losing_nothing(
    uuid_collection,
    broker,
    shared_database_url,
    tmp_path,
    monkeypatch,
):
    live, name, keys = uuid_collection
    monkeypatch.setattr(tasks.run_sync_slice, "delay_on_commit", lambda run_id: None)
    sink = FakeSink(token=CLAY_TOKEN, delay=0.01).start()
    workers = []
    try:
        sync = live_sync(live, name, sink, concurrency=4, page_size=50)
        run = engine_api.start_run(sync)
        with Connection(broker) as conn:
            tasks.run_sync_slice.apply_async((run.pk,), producer=conn.Producer())
        workers.append(start_worker("first", shared_database_url, broker, tmp_path))
        wait_for(lambda: SyncRun.objects.get(pk=run.pk).total >= 300, 90, "the first rows")
        os.kill(workers[0].pid, signal.SIGKILL)
        workers[0].wait(10)
        wait_for(lambda: not session_members(workers[0].pid), 5, "the sender process to exit")
        at_kill = SyncRun.objects.get(pk=run.pk)
        assert at_kill.status == "running" and at_kill.total < 1200
        assert isinstance(at_kill.checkpoint["after"], dict)  # an offset read, not a keyset one

        workers.append(start_worker("second", shared_database_url, broker, tmp_path, beat=True))
        run = wait_for(
            lambda: SyncRun.objects.filter(pk=run.pk, status="succeeded").first(),
            180,
            "the run to end",
        )
        assert recorded_once(run) == keys == set(sink.accepted)
        sent_twice = {key for key, n in sink.received.items() if n > 1}
        flagged = set(
            RowResult.objects.filter(run=run, resent=True).values_list("row_key", flat=True)
        )
        assert sent_twice <= flagged and run.resent == len(flagged) <= 2 * 50
    finally:
        for worker in workers:
            stop(worker)
        sink.stop()


@pytest.mark.django_db
def test_a_full_run_completes_under_a_20_requests_per_second_rate_limiter(
    live_directus_rate_limited, sink, quick, monkeypatch
):
    live = live_directus_rate_limited
    refused = []
    original = DirectusClient._request_once

    def counting(self, *args, **kwargs):
        try:
            return original(self, *args, **kwargs)
        except DirectusError as exc:
            refused.append(exc.status)
            raise

    monkeypatch.setattr(DirectusClient, "_request_once", counting)
    name = shapes.create_collection(live, "limited", shapes.uuid_pk())
    try:
        rows = [{"id": str(uuid.uuid4()), "name": f"Row {i}"} for i in range(400)]
        shapes.insert(live, name, rows)
        # 10 rows a page: 40+ reads. On a slow machine they may not reach 20 a second by
        # themselves, so a neighbour on the same address (the limiter counts per address)
        # spends the budget until the run has been refused once.
        sync = live_sync(live, name, sink, page_size=10)
        neighbour = Neighbour(live.url, until=lambda: refused)
        neighbour.start()
        try:
            wait_for(lambda: neighbour.refused, 10, "the limiter to refuse the neighbour")
            run = run_to_end(engine_api.start_run(sync))
        finally:
            neighbour.done.set()
            neighbour.join()

        assert (run.status, run.total, run.sent) == ("succeeded", 400, 400)
        assert recorded_once(run) == {r["id"] for r in rows}
        assert refused and set(refused) == {429}  # the limiter did refuse, and was waited out
    finally:
        shapes.drop_collection(live, name)


class Neighbour(threading.Thread):
    """Another client on Kiln's address, asking Directus as fast as it answers."""

    def __init__(self, url, until):
        super().__init__(daemon=True)
        self.url, self.until = url + "/server/ping", until
        self.done, self.refused = threading.Event(), 0

    def run(self):
        deadline = time.monotonic() + 60  # never starve the run for longer than this
        while not self.done.is_set() and not self.until() and time.monotonic() < deadline:
            try:
                urllib.request.urlopen(self.url, timeout=5).close()
            except urllib.error.HTTPError as exc:
                self.refused += exc.code == 429
            except OSError:
                pass
