# ruff: noqa: F811 (pytest fixtures imported from syncfixtures are redefined as arguments)
"""The sync engine against loopback fakes of Directus and a Clay webhook."""

import json
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from bench.fakes import make_item
from integrations import tasks
from integrations.models import ClayDestination, RowResult, RunDailyStat, SyncRowState, SyncRun
from integrations.runs import core, roundtrip
from integrations.runs import sync as engine_api
from integrations.runs.engine import Slice

from .syncfixtures import (  # noqa: F401 (fixtures)
    CLAY_TOKEN,
    DIRECTUS_TOKEN,
    HOOK_PATH,
    directus,
    fast_retries,
    make_sync,
    results_by_key,
    run_to_end,
    sink,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_retries")]


def start(sync, **kwargs):
    return engine_api.start_run(sync, **kwargs)


def test_it_sends_every_row_and_records_one_result_each(directus, sink):
    sync = make_sync(directus, sink)
    run = start(sync)
    assert run.status == "queued" and run.expected_total == 50

    run = run_to_end(run)

    assert run.status == "succeeded"
    assert (run.total, run.sent, run.skipped, run.failed, run.resent) == (50, 50, 0, 0, 0)
    assert RowResult.objects.filter(run=run).count() == 50
    assert sink.total_received == 50 and len(sink.accepted) == 50
    result = RowResult.objects.get(run=run, row_key="7")
    assert (result.status, result.http_status, result.attempts) == ("sent", 200, 1)
    assert json.loads(result.request_excerpt) == {
        "id": 7,
        "title": 'Article 7: notes on "enrichment"',
        "email": "author7@example.com",
        "source": "kiln",
        # The round trip's id travels with the row, so the enriched row can find its trace
        # (test_roundtrip.py).
        "kiln_row_id": roundtrip.row_id_for(sync.pk, "7"),
        "kiln_sync": sync.pk,
        "kiln_collection": "articles",
        "kiln_directus_key": "7",
    }
    assert len(result.payload_hash) == 64
    sync.destination.refresh_from_db()
    assert sync.destination.submissions_count == 50
    assert RunDailyStat.objects.get(sync=sync).sent == 50


def test_it_sends_the_clay_auth_header_and_keeps_secrets_out_of_results(directus, sink):
    sink.keep_bodies = True
    sync = make_sync(directus, sink, template=None)
    run = run_to_end(start(sync))

    assert {h["x-clay-webhook-auth"] for h in sink.headers_seen} == {CLAY_TOKEN}
    assert sink.bodies[0]["date_created"]  # "send the item as is"
    text = (
        " ".join(
            f"{r.error_message} {r.request_excerpt} {r.response_excerpt}" for r in run.results.all()
        )
        + json.dumps(run.checkpoint)
        + run.last_error
    )
    for secret in (CLAY_TOKEN, DIRECTUS_TOKEN, HOOK_PATH):
        assert secret not in text


def test_a_4xx_fails_the_row_at_once_with_its_reason(directus, sink):
    sink.script = {"9": [400], "10": [422]}
    run = run_to_end(start(make_sync(directus, sink)))

    results = results_by_key(run)
    assert (results["9"].status, results["9"].http_status, results["9"].attempts) == (
        "failed",
        400,
        1,
    )
    assert results["9"].error_code == "HTTP_400"
    assert "will not be retried" in results["9"].error_message
    assert results["10"].error_code == "HTTP_422"  # a 404 is about the webhook: see test_delivery
    assert sink.received["9"] == 1
    assert (run.status, run.sent, run.failed) == ("partly_failed", 48, 2)
    assert run.last_error.startswith("Row ")


def test_a_429_waits_as_retry_after_says_then_sends(directus, sink):
    sink.script = {"5": [(429, 1)]}
    started = time.monotonic()
    run = run_to_end(start(make_sync(directus, sink)))

    result = results_by_key(run)["5"]
    assert (result.status, result.attempts) == ("sent", 2)
    assert result.duration_ms >= 1000
    assert time.monotonic() - started >= 1.0
    assert run.status == "succeeded"


def test_a_5xx_is_retried_until_it_succeeds(directus, sink):
    sink.script = {"3": [500, 503, "ok"]}
    run = run_to_end(start(make_sync(directus, sink)))

    result = results_by_key(run)["3"]
    assert (result.status, result.attempts) == ("sent", 3)
    assert sink.received["3"] == 3


def test_a_5xx_that_persists_fails_after_a_few_tries(directus, sink):
    sink.script = {"3": [500] * 10}
    run = run_to_end(start(make_sync(directus, sink)))

    result = results_by_key(run)["3"]
    assert (result.status, result.http_status, result.attempts) == ("failed", 500, 4)
    assert "temporary server problem" in result.error_message


def test_a_timeout_is_retried(directus, sink, settings):
    settings.KILN_OUTBOUND_TIMEOUT = 0.3
    sink.script = {"4": [("slow", 1), "ok"]}
    run = run_to_end(start(make_sync(directus, sink)))

    result = results_by_key(run)["4"]
    assert (result.status, result.attempts) == ("sent", 2)


def test_a_timeout_that_persists_is_recorded_as_such(directus, sink, settings):
    settings.KILN_OUTBOUND_TIMEOUT = 0.2
    sink.script = {"4": [("slow", 0.5)] * 4}
    run = run_to_end(start(make_sync(directus, sink)))

    result = results_by_key(run)["4"]
    assert (result.status, result.error_code, result.attempts) == ("failed", "NETWORK_TIMEOUT", 4)
    assert "Timed out" in result.error_message


def test_a_dropped_connection_is_retried(directus, sink):
    sink.script = {"6": ["drop", "ok"]}
    run = run_to_end(start(make_sync(directus, sink)))

    result = results_by_key(run)["6"]
    assert (result.status, result.attempts) == ("sent", 2)
    assert sink.received["6"] == 2


def test_a_row_the_template_cannot_render_fails_without_being_sent(directus, sink):
    directus.items[2].pop("email")  # id 3
    run = run_to_end(start(make_sync(directus, sink)))

    result = results_by_key(run)["3"]
    assert (result.status, result.error_code, result.attempts) == ("failed", "RENDER_ERROR", 0)
    assert "email" in result.error_message
    assert "3" not in sink.received
    assert run.sent == 49


def test_a_dry_run_renders_and_records_but_sends_nothing(directus, sink):
    sync = make_sync(directus, sink)
    run = run_to_end(start(sync, dry_run=True))

    assert sink.total_received == 0
    assert (run.status, run.total, run.skipped) == ("succeeded", 50, 50)
    result = results_by_key(run)["1"]
    assert (result.status, result.error_code) == ("skipped", "DRY_RUN")
    assert json.loads(result.request_excerpt)["id"] == 1 and result.payload_hash
    sync.destination.refresh_from_db()
    assert sync.destination.submissions_count == 0


def test_the_query_filter_selects_the_rows(directus, sink):
    run = run_to_end(start(make_sync(directus, sink, query="filter[status][_eq]=published")))

    assert run.expected_total == run.total == 34
    assert "3" not in sink.received and "4" in sink.received


def test_skip_unchanged_does_not_resend_a_row_with_the_same_payload(directus, sink):
    sync = make_sync(directus, sink, skip_unchanged=True)
    run_to_end(start(sync))
    assert SyncRowState.objects.filter(sync=sync).count() == 50
    directus.items[4]["title"] = "A new title"  # id 5
    sink.reset()

    second = run_to_end(start(sync))

    assert set(sink.received) == {"5"}
    assert (second.sent, second.skipped) == (1, 49)
    assert results_by_key(second)["6"].error_code == "UNCHANGED"


def test_incremental_sends_only_items_changed_since_the_last_successful_run(directus, sink):
    sync = make_sync(directus, sink, mode="incremental")
    first = run_to_end(start(sync))
    assert first.total == 50
    # The newest change is date_updated of id 50 (ids 4, 8... were never updated: date_created).
    assert first.high_water_mark == "2024-01-31T00:50:00.000Z"
    directus.touch({7, 8}, "2024-06-01T00:00:00.000Z")  # 8 had never been updated
    sink.reset()

    second = start(sync)
    # `>=` the mark: id 50 (at the mark) is read again and skipped as unchanged.
    assert second.since == first.high_water_mark and second.expected_total == 3
    second = run_to_end(second)

    assert set(sink.received) == {"7", "8"}
    assert second.high_water_mark == "2024-06-01T00:00:00.000Z"
    assert results_by_key(second)["50"].error_code == "AT_MARK"


def test_an_incremental_run_again_at_once_sends_nothing(directus, sink):
    sync = make_sync(directus, sink, mode="incremental")
    run_to_end(start(sync))
    directus.touch({7, 8, 9}, "2024-06-01T00:00:00.000Z")
    sink.reset()
    second = run_to_end(start(sync))
    assert set(sink.received) == {"7", "8", "9"}
    sink.reset()

    third = run_to_end(start(sync))

    assert sink.total_received == 0
    assert (third.sent, third.skipped, third.status) == (0, 3, "succeeded")
    assert third.high_water_mark == second.high_water_mark


def test_a_row_changed_later_within_the_marks_second_is_not_missed(directus, sink):
    # Directus answers dateTime in whole seconds: a later change in the same second looks
    # the same by its time, and only its content tells.
    sync = make_sync(directus, sink, mode="incremental", timestamp_field="date_updated")
    directus.touch({7, 8}, "2024-06-01T00:00:00")
    run_to_end(start(sync))
    directus.touch({8}, "2024-06-01T00:00:00", title="changed within the same second")
    sink.reset()

    again = run_to_end(start(sync))

    assert set(sink.received) == {"8"}
    assert results_by_key(again)["7"].error_code == "AT_MARK"


def test_a_permanent_row_failure_does_not_make_the_next_run_resend_everything(directus, sink):
    sync = make_sync(directus, sink, mode="incremental")
    sink.script = {"12": [413]}
    first = run_to_end(start(sync))
    assert first.status == "partly_failed" and first.high_water_mark
    directus.touch({20}, "2024-06-01T00:00:00.000Z")
    sink.reset()

    second = run_to_end(start(sync))

    assert set(sink.received) == {"20"}
    assert second.since == first.high_water_mark


def test_a_row_changed_while_the_run_reads_is_read_again_next_time(directus, sink):
    sync = make_sync(directus, sink, mode="incremental", page_size=10)
    run = start(sync)
    # The newest change time is taken as the read begins; a change made during the run is
    # newer, so the mark stays below it.
    slice_ = Slice(SyncRun.objects.get(pk=run.pk), "w", 30)
    core.claim(run.pk, "w")
    original = slice_._prepare

    def prepare_then_edit(page):
        if not directus.items[0].get("edited"):
            directus.touch({3}, "2024-07-01T00:00:00.000Z", edited=True)
        return original(page)

    slice_._prepare = prepare_then_edit
    slice_.work()
    first = SyncRun.objects.get(pk=run.pk)
    assert first.high_water_mark == "2024-01-31T00:50:00.000Z"
    sink.reset()

    run_to_end(start(sync))

    assert "3" in sink.received


def test_a_mark_directus_would_not_cap_is_said_on_the_run(directus, sink):
    sync = make_sync(directus, sink, mode="incremental")
    original = directus.select

    def refuse_aggregates(query):
        if query.get("aggregate[max]"):
            raise ValueError("aggregate not permitted")  # the fake answers 400
        return original(query)

    directus.select = refuse_aggregates
    run = run_to_end(start(sync))

    assert run.status == "succeeded" and run.checkpoint["cap"] == ""


def test_a_read_that_stops_says_how_many_rows_were_never_read(directus, sink):
    sync = make_sync(directus, sink, page_size=10)
    run = start(sync)
    original = directus.select

    def refuse_after_row_20(query):
        if '{"id": {"_gt": 20}}' in json.dumps(query.get("filter")):
            raise ValueError("simulated refusal")  # the fake answers 400 INVALID_QUERY
        return original(query)

    directus.select = refuse_after_row_20
    run = run_to_end(run)

    assert run.status == "partly_failed" and run.total == 20
    assert run.checkpoint["read_failed"] is True and run.checkpoint["after"] == 20
    assert run.unread == 30
    assert "Reading Directus failed" in run.last_error

    directus.select = original
    resumed = run_to_end(engine_api.resume_read(run))

    assert (resumed.status, resumed.total, resumed.sent, resumed.unread) == (
        "succeeded",
        50,
        50,
        None,
    )
    assert sink.total_received == 50 and max(sink.received.values()) == 1


def test_reading_waits_out_a_rate_limiter_that_says_retry_after_zero(directus, sink, monkeypatch):
    monkeypatch.setattr(engine_api.Slice, "_pause", lambda self, seconds: None)
    sync = make_sync(directus, sink, page_size=10)
    run = start(sync)
    directus.fail_next = [429] * 12  # more refusals than READ_ATTEMPTS

    run = run_to_end(run)

    assert (run.status, run.total, run.sent) == ("succeeded", 50, 50)


def uuid_items(n):
    import uuid

    rng = __import__("random").Random(7)
    items = []
    for i in range(n):
        item = make_item(i + 1)
        item["id"] = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        items.append(item)
    return items


@pytest.fixture
def uuid_directus():
    from bench.fakes import FakeDirectus

    with FakeDirectus(token=DIRECTUS_TOKEN, items=uuid_items(95), query_limit_max=20) as server:
        yield server


def test_starting_a_run_waits_out_the_rate_limiter(directus, sink):
    directus.fail_next = [429, 429]
    assert start(make_sync(directus, sink)).expected_total == 50


def test_a_uuid_keyed_collection_is_read_whole_with_one_result_per_row(uuid_directus, sink):
    sync = make_sync(uuid_directus, sink, template=None, page_size=500)

    run = run_to_end(start(sync))

    assert (run.status, run.total, run.sent, run.failed) == ("succeeded", 95, 95, 0)
    assert set(sink.received) == {item["id"] for item in uuid_directus.items}
    assert all(int(q.get("limit", 0)) <= 20 for q in uuid_directus.queries)
    assert not any('"_gt"' in json.dumps(q.get("filter") or {}) for q in uuid_directus.queries)


def test_a_uuid_read_that_starts_over_records_each_row_once(uuid_directus, sink):
    sync = make_sync(uuid_directus, sink, template=None, page_size=10)
    original = uuid_directus.select
    state = {"reads": 0}

    def delete_read_rows_once(query):
        state["reads"] += 1
        if state["reads"] == 4:  # a few pages in: the rows already read are deleted
            uuid_directus.remove(set(uuid_directus.ids[:25]))
        return original(query)

    uuid_directus.select = delete_read_rows_once
    run = run_to_end(start(sync))

    results = list(RowResult.objects.filter(run=run).values_list("row_key", flat=True))
    assert len(results) == len(set(results)) == run.total
    assert sink.total_received == run.sent == run.total
    assert set(uuid_directus.ids) <= set(results)


def test_retry_failed_rows_sends_only_the_failed_rows_of_a_run(directus, sink):
    sync = make_sync(directus, sink)
    sink.script = {"2": [400], "12": [422], "40": [400]}
    first = run_to_end(start(sync))
    assert first.failed == 3
    directus.remove({40})
    sink.reset()

    retry = engine_api.retry_failed_rows(first)
    assert (retry.trigger, retry.retry_of, retry.expected_total) == ("retry", first, 3)
    retry = run_to_end(retry)

    assert set(sink.received) == {"2", "12"}
    results = results_by_key(retry)
    assert set(results) == {"2", "12", "40"}
    assert results["40"].error_code == "NOT_FOUND"
    assert (retry.sent, retry.failed) == (2, 1)


def test_a_run_with_no_failed_rows_cannot_be_retried(directus, sink):
    run = run_to_end(start(make_sync(directus, sink)))
    with pytest.raises(engine_api.SyncError, match="no failed rows"):
        engine_api.retry_failed_rows(run)


def test_it_refuses_a_second_active_run_of_the_same_sync(directus, sink):
    sync = make_sync(directus, sink)
    start(sync)
    with pytest.raises(engine_api.SyncError, match="already running"):
        start(sync)


def test_a_paused_sync_does_not_start_from_its_schedule(directus, sink):
    sync = make_sync(directus, sink, paused=True)
    with pytest.raises(engine_api.SyncError, match="paused"):
        start(sync, trigger="schedule")
    assert start(sync).status == "queued"  # a person may still run it


def test_it_refuses_a_run_that_would_pass_the_clay_cap(directus, sink):
    sync = make_sync(directus, sink)
    ClayDestination.objects.filter(pk=sync.destination_id).update(submissions_count=49_990)
    with pytest.raises(engine_api.SyncError, match="50 rows.*10 submissions left on its 1 webhook"):
        start(sync)
    assert not SyncRun.objects.exists()
    assert start(sync, dry_run=True)  # a dry run sends nothing


def test_a_run_stops_at_the_cap_even_if_the_count_was_low(directus, sink):
    sync = make_sync(directus, sink)
    run = start(sync)
    ClayDestination.objects.filter(pk=sync.destination_id).update(submissions_count=49_975)

    run = run_to_end(run)

    assert sink.total_received == 25
    assert (run.status, run.sent, run.skipped, run.total) == ("partly_failed", 25, 25, 50)
    assert "50,000" in run.last_error
    assert RowResult.objects.filter(run=run, error_code="CAP_REACHED").count() == 25


def test_cancel_stops_the_run_and_records_unsent_rows_as_skipped(directus, sink, monkeypatch):
    sink.delay = 0.05
    sync = make_sync(directus, sink, concurrency=1, page_size=5)
    run = start(sync)
    # A person clicks Cancel 0.3 s in (issued from the coordinating thread: the in-memory
    # SQLite test database has one writer).
    clicked_at = time.monotonic() + 0.3
    control = Slice._control

    def control_with_a_click(self, force=False):
        if time.monotonic() >= clicked_at and not self.cancelled:
            engine_api.request_cancel(run)
        return control(self, force)

    monkeypatch.setattr(Slice, "_control", control_with_a_click)
    run = run_to_end(run)

    assert run.status == "cancelled"
    assert run.total == 50 and run.sent == sink.total_received < 20
    assert run.skipped == 50 - run.sent
    assert RowResult.objects.filter(run=run, error_code="CANCELLED").count() == run.skipped


def test_cancel_of_a_queued_run_ends_it_at_once(directus, sink):
    run = start(make_sync(directus, sink))
    engine_api.request_cancel(run)
    assert run.status == "cancelled"
    assert engine_api.execute_slice(run.pk, worker_id="w", max_seconds=5) is False


def test_a_run_is_claimed_by_one_worker_at_a_time(directus, sink):
    run = start(make_sync(directus, sink))
    assert core.claim(run.pk, "worker-a")
    assert not core.claim(run.pk, "worker-b")
    SyncRun.objects.filter(pk=run.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    assert core.claim(run.pk, "worker-b")


def test_a_slice_out_of_time_before_its_first_read_still_records_one_window(directus, sink):
    # A slow start (the sender process loading, a slow first Directus page) must not leave
    # a run that never moves: every slice gets at least one window through.
    run = start(make_sync(directus, sink, page_size=10))
    assert engine_api.execute_slice(run.pk, worker_id="a", max_seconds=0) is True
    first = SyncRun.objects.get(pk=run.pk)
    # The window is read and its rows had their moment: some recorded, the rest carried
    # (how many of each depends on the machine's speed).
    assert first.total >= 1 and first.checkpoint["after"] == 10
    assert recorded_or_carried(first) == [str(i) for i in range(1, 11)]
    run = run_to_end(run)
    assert run.total == 50 and sink.total_received == 50 and max(sink.received.values()) == 1


def test_a_slice_stops_at_its_time_and_the_next_resumes_from_the_checkpoint(directus, sink):
    sink.delay = 0.02
    run = start(make_sync(directus, sink, concurrency=2))

    assert engine_api.execute_slice(run.pk, worker_id="a", max_seconds=0.1) is True
    middle = SyncRun.objects.get(pk=run.pk)
    assert 0 < middle.total < 50 and middle.lease_owner == ""  # released for the next slice
    # Every row up to the checkpoint's cursor is recorded or carried, once: none skipped.
    after = middle.checkpoint["after"]
    assert recorded_or_carried(middle) == [str(i) for i in range(1, after + 1)]

    run = run_to_end(run)
    assert (run.status, run.total, run.slices) == ("succeeded", 50, run.slices)
    assert run.slices >= 2
    assert sink.total_received == 50 and max(sink.received.values()) == 1


def test_rows_read_but_not_sent_by_the_deadline_are_carried_to_the_next_slice(directus, sink):
    # A slow receiver: far fewer rows are answered in a slice than the window holds.
    sink.delay = 0.25
    run = start(make_sync(directus, sink, concurrency=2, page_size=20))

    assert engine_api.execute_slice(run.pk, worker_id="a", max_seconds=0.1) is True
    middle = SyncRun.objects.get(pk=run.pk)
    carried = [entry[0] for entry in middle.checkpoint["carry"]]
    after = middle.checkpoint["after"]
    assert after in (20, 40) and carried and middle.total == after - len(carried)
    assert middle.total == sink.total_received  # recorded: exactly the rows answered
    assert recorded_or_carried(middle) == [str(i) for i in range(1, after + 1)]

    sink.delay = 0
    run = run_to_end(run)
    assert (run.status, run.total, run.sent, run.resent) == ("succeeded", 50, 50, 0)
    assert sink.total_received == 50 and max(sink.received.values()) == 1


def recorded_or_carried(run):
    """The keys a run has recorded or carries to its next slice, in key order."""
    recorded = list(RowResult.objects.filter(run=run).values_list("row_key", flat=True))
    carried = [entry[0] for entry in (run.checkpoint or {}).get("carry", [])]
    return sorted(recorded + carried, key=int)


def test_a_resumed_run_flags_rows_that_were_in_flight_when_it_crashed(directus, sink, monkeypatch):
    queued = []
    monkeypatch.setattr(tasks.run_sync_slice, "delay", queued.append)
    run = start(make_sync(directus, sink))
    # What a worker killed mid-window leaves: rows 1-10 recorded, 11-20 in flight, lease held.
    assert core.claim(run.pk, "dead-worker")
    run_to_end_of_first_window(run)
    SyncRun.objects.filter(pk=run.pk).update(
        checkpoint={"after": 10, "inflight": [str(i) for i in range(11, 21)], "hwm": ""},
        lease_expires_at=timezone.now() - timedelta(seconds=1),
    )
    assert engine_api.resume_stale_runs() == 1
    assert queued == [run.pk]
    assert engine_api.resume_stale_runs() == 0  # queued once per lease period

    run = run_to_end(run, worker_id="new-worker")

    assert (run.status, run.total, run.resent) == ("succeeded", 50, 10)
    assert set(
        RowResult.objects.filter(run=run, resent=True).values_list("row_key", flat=True)
    ) == {str(i) for i in range(11, 21)}
    assert RowResult.objects.filter(run=run).count() == 50


def run_to_end_of_first_window(run):
    rows = [RowResult(run=run, row_key=str(i), status="sent") for i in range(1, 11)]
    RowResult.objects.bulk_create(rows)
    SyncRun.objects.filter(pk=run.pk).update(total=10, sent=10)


def test_a_worker_that_lost_its_lease_mid_run_stops_recording(directus, sink, monkeypatch):
    sink.delay = 0.02
    run = start(make_sync(directus, sink, concurrency=2))
    flush = Slice._flush

    def flush_then_lose_the_lease(self, window, upcoming):
        flush(self, window, upcoming)
        SyncRun.objects.filter(pk=run.pk).update(lease_owner="someone-else")

    monkeypatch.setattr(Slice, "_flush", flush_then_lose_the_lease)

    assert engine_api.execute_slice(run.pk, worker_id="old", max_seconds=30) is False
    run.refresh_from_db()
    assert (run.status, run.lease_owner, run.total) == ("running", "someone-else", 10)
    assert RowResult.objects.filter(run=run).count() == 10


def test_an_unreachable_directus_fails_the_run_with_a_reason(directus, sink):
    sync = make_sync(directus, sink)
    run = start(sync)
    directus.token = "rotated"
    run = run_to_end(run)
    assert run.status == "failed"
    assert "Directus rejected the token" in run.last_error


def test_a_transient_directus_error_is_retried(directus, sink):
    run = start(make_sync(directus, sink))
    directus.fail_next = [503]
    run = run_to_end(run)
    assert (run.status, run.total) == ("succeeded", 50)


def test_pruning_deletes_old_row_results_and_keeps_runs_and_daily_stats(directus, sink):
    sync = make_sync(directus, sink)
    run = run_to_end(start(sync))
    RowResult.objects.filter(run=run, row_key__in=[str(i) for i in range(1, 31)]).update(
        created_at=timezone.now() - timedelta(days=40)
    )

    assert engine_api.prune_row_results(older_than_days=30, batch_size=7) == 30

    assert RowResult.objects.filter(run=run).count() == 20
    run.refresh_from_db()
    assert run.total == 50 and RunDailyStat.objects.get(sync=sync).sent == 50


def test_describe_schedule_says_it_in_words_and_rejects_nonsense():
    assert engine_api.describe_schedule("0 9 * * 1") == "At 09:00 on Monday (UTC)"
    # cronsim's own words, on the 24-hour clock the form's help and the UTC label use.
    assert engine_api.describe_schedule("0 22 * * 1-5") == "At 22:00 on Monday through Friday (UTC)"
    with pytest.raises(ValueError, match="not a valid cron expression"):
        engine_api.describe_schedule("every day")


def test_dispatch_starts_due_syncs_once_and_skips_paused_ones(directus, sink):
    due = make_sync(directus, sink, name="Due", schedule="*/5 * * * *")
    make_sync(directus, sink, name="Paused", schedule="* * * * *", paused=True)
    make_sync(directus, sink, name="Unscheduled")
    now = due.created_at + timedelta(minutes=6)

    runs = engine_api.dispatch_scheduled_syncs(now=now)
    assert [(r.sync.name, r.trigger) for r in runs] == [("Due", "schedule")]
    assert engine_api.dispatch_scheduled_syncs(now=now) == []  # already started for this slot


def test_the_run_sync_command_runs_a_sync_to_the_end_with_wait(directus, sink):
    from io import StringIO

    from django.core.management import call_command

    make_sync(directus, sink)
    out = StringIO()
    call_command("run_sync", "Articles to Clay", "--wait", stdout=out)

    run = SyncRun.objects.get()
    assert (run.trigger, run.status, run.sent) == ("command", "succeeded", 50)
    assert "succeeded" in out.getvalue()


def test_the_run_sync_command_explains_an_unknown_name():
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match='No sync is named "Nope"'):
        call_command("run_sync", "Nope")
