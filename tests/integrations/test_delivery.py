# ruff: noqa: F811 (pytest fixtures imported from syncfixtures are redefined as arguments)
"""Clay delivery that tells the truth: a broken webhook stops the run, a full one
rolls over to the pool's next webhook, possibly duplicated rows are counted, every attempt
is kept. In-process engine against the loopback Clay-like sink (bench/fakes.FakeSink)."""

import json
import time

import pytest

from bench.fakes import FakeDirectus, FakeSink
from integrations.clay import webhook as clay
from integrations.models import (
    ClayDestination,
    ClayWebhook,
    RowResult,
    Secret,
    SyncRun,
    WebhookState,
)
from integrations.runs import causes
from integrations.runs import sync as engine_api

from .syncfixtures import (  # noqa: F401 (fixtures)
    CLAY_TOKEN,
    DIRECTUS_TOKEN,
    HOOK_PATH,
    fast_retries,
    make_sync,
    results_by_key,
    run_to_end,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_retries")]


@pytest.fixture
def directus():
    with FakeDirectus(300, token=DIRECTUS_TOKEN) as server:
        yield server


def start(sync, **kwargs):
    return engine_api.start_run(sync, **kwargs)


def test_a_wrong_token_costs_one_request_and_stops_the_run(directus):
    with FakeSink(token="the-right-token-0000") as sink:
        sync = make_sync(directus, sink, concurrency=8, page_size=50)
        run = run_to_end(start(sync))

    assert sink.requests == 1 and sink.refused[401] == 1  # not one per thread
    assert run.status == "failed"
    assert run.last_error.startswith("Webhook token rejected")
    results = list(RowResult.objects.filter(run=run))
    assert len(results) == 300
    failed = [r for r in results if r.status == "failed"]
    assert len(failed) == 1 and failed[0].http_status == 401
    assert {r.error_code for r in results} == {"WEBHOOK_TOKEN_REJECTED"}
    assert run.causes == {"token_rejected": 300}
    destination = ClayDestination.objects.get(pk=sync.destination_id)
    assert destination.state == WebhookState.AUTH_REJECTED
    assert destination.submissions_count == 0


def test_the_next_run_sends_nothing_until_a_test_passes(directus):
    with FakeSink(token="the-right-token-0000") as sink:
        sync = make_sync(directus, sink, page_size=100)
        run_to_end(start(sync))
        assert sink.requests == 1

        second = run_to_end(start(sync))
        assert sink.requests == 1  # the destination is known broken: not asked again
        assert second.status == "failed" and second.causes == {"token_rejected": 300}

        destination = ClayDestination.objects.get(pk=sync.destination_id)
        destination.auth_token.set_value("the-right-token-0000")
        destination.auth_token.save()
        result = destination.run_test()
        assert result["ok"]
        destination.refresh_from_db()
        assert destination.state == ""

        third = run_to_end(start(sync))
        assert third.status == "succeeded" and third.sent == 300


def test_a_webhook_that_no_longer_exists_stops_the_run_too(directus):
    with FakeSink(gone=True) as sink:
        sync = make_sync(directus, sink, concurrency=6, page_size=40)
        run = run_to_end(start(sync))
    assert sink.requests == 1
    assert run.status == "failed" and run.last_error.startswith("Webhook not found")
    assert run.causes == {"webhook_gone": 300}
    assert ClayDestination.objects.get(pk=sync.destination_id).state == WebhookState.NOT_FOUND


def test_a_full_webhook_rolls_over_to_the_next_in_the_pool_without_loss_or_duplicate(directus):
    with (
        FakeSink(token=CLAY_TOKEN, cap=120) as first,
        FakeSink(token="second-token-1234") as second,
    ):
        sync = make_sync(directus, first, concurrency=4, page_size=50)
        destination = sync.destination
        ClayWebhook.objects.create(
            destination=destination,
            position=1,
            webhook_url=Secret.seal(second.url + HOOK_PATH),
            auth_token=Secret.seal("second-token-1234"),
        )
        run = run_to_end(start(sync))

        assert first.stored == 120 and second.stored == 180
        both = first.accepted + second.accepted
        assert len(both) == 300 and set(both.values()) == {1}  # every row exactly once
    assert run.status == "succeeded" and run.sent == 300 and run.possibly_duplicated == 0
    destination.refresh_from_db()
    assert destination.state == WebhookState.FULL
    assert destination.submissions_count == ClayDestination.SUBMISSION_CAP
    assert destination.pool.get().submissions_count == 180
    # Refused rows went to the second webhook: their first try is in their log.
    moved = [r for r in RowResult.objects.filter(run=run) if r.attempts == 2]
    assert moved and all(r.attempt_log[0]["status"] == 403 for r in moved)


def test_a_full_pool_stops_with_webhook_full(directus):
    with FakeSink(token=CLAY_TOKEN, cap=50) as sink:
        sync = make_sync(directus, sink, page_size=100)
        run = run_to_end(start(sync))
    assert sink.stored == 50
    assert run.status == "partly_failed" and run.sent == 50
    assert run.causes == {"sent": 50, "webhook_full": 250}
    assert run.last_error.startswith("Every webhook of this destination is full")


def test_a_plain_403_at_kilns_count_of_the_cap_is_the_cap(directus):
    with FakeSink(token=CLAY_TOKEN) as sink:
        sink.script = {str(i): [403] for i in range(1, 301)}
        sync = make_sync(directus, sink, page_size=100)
        ClayDestination.objects.filter(pk=sync.destination_id).update(
            submissions_count=ClayDestination.SUBMISSION_CAP - 400
        )
        run = run_to_end(start(sync))
    assert sink.requests == 1
    destination = ClayDestination.objects.get(pk=sync.destination_id)
    assert destination.state == WebhookState.FULL
    assert run.causes == {"webhook_full": 300}


def test_a_plain_403_far_from_the_cap_is_the_token(directus):
    with FakeSink(token=CLAY_TOKEN) as sink:
        sink.script = {str(i): [403] for i in range(1, 301)}
        run = run_to_end(start(make_sync(directus, sink, page_size=100)))
    assert run.causes == {"token_rejected": 300}


def test_rows_retried_after_a_dropped_answer_are_flagged_possibly_duplicated(directus):
    stored = {str(i) for i in range(1, 301) if i % 20 == 7}  # 5 %: stored, then dropped
    with FakeSink(token=CLAY_TOKEN) as sink:
        sink.script = {key: ["store_drop", "ok"] for key in stored}
        # Dropped after the body was read but not stored: Kiln cannot tell it from the above.
        sink.script["9"] = ["drop", "ok"]
        sink.script["10"] = [500, "ok"]  # answered: a plain retry, not a possible duplicate
        sync = make_sync(directus, sink, page_size=60)
        run = run_to_end(start(sync))
        duplicates = {k for k, n in sink.accepted.items() if n > 1}
        assert duplicates == stored == set(sink.dropped_after_store)
    had_a_dropped_attempt = stored | {"9"}

    assert run.status == "succeeded" and run.sent == 300
    assert run.possibly_duplicated == len(had_a_dropped_attempt) == 16
    flagged = RowResult.objects.filter(run=run, possibly_duplicated=True)
    assert set(flagged.values_list("row_key", flat=True)) == had_a_dropped_attempt
    assert run.causes == {"sent": 284, "possibly_duplicated": 16}
    listed = RowResult.objects.filter(run=run).filter(causes.condition("possibly_duplicated"))
    assert listed.count() == 16
    row = flagged.get(row_key="7")
    assert [a["maybe"] for a in row.attempt_log] == [True, False]
    assert [a["status"] for a in row.attempt_log] == [None, 200]
    assert row.attempt_log[0]["error"].startswith("NETWORK_")
    retried = RowResult.objects.get(run=run, row_key="10")
    assert not retried.possibly_duplicated
    assert [a["status"] for a in retried.attempt_log] == [500, 200]


def test_every_request_carries_an_idempotency_key_from_row_and_content(directus):
    with FakeSink(token=CLAY_TOKEN) as sink:
        sink.script = {"5": [500, "ok"], "6": ["store_drop", "ok"]}
        sink.keep_bodies = True
        sync = make_sync(directus, sink, page_size=100)
        run_to_end(start(sync))
        keys = sink.idempotency
        assert len(keys) == 300 and all(len(v) == 1 for v in keys.values())  # same on retries
        assert len({next(iter(v)) for v in keys.values()}) == 300
        body = next(b for b in sink.bodies if b["id"] == 5)
        assert "kiln_row_id" in body
        assert keys["5"] == {clay.idempotency_key(body["kiln_row_id"], _hash_of(sync, "5"))}


def _hash_of(sync, key):
    return RowResult.objects.get(run__sync=sync, row_key=key).payload_hash


def test_the_label_field_is_kept_beside_the_key(directus):
    with FakeSink(token=CLAY_TOKEN) as sink:
        run = run_to_end(start(make_sync(directus, sink, label_field="email", page_size=100)))
    assert results_by_key(run)["7"].label == "author7@example.com"


def test_progress_moves_every_second_within_one_large_page(directus, monkeypatch):
    """A 300-row page at 60 rows/s: the run page's count moves before the page is recorded."""
    from integrations.runs import engine

    written = []
    write = engine.Slice._write_checkpoint

    def noted(self):
        write(self)
        fresh = SyncRun.objects.get(pk=self.run.pk)
        written.append((time.monotonic(), fresh.done + fresh.checkpoint.get("answered", 0)))

    monkeypatch.setattr(engine.Slice, "_write_checkpoint", noted)
    with FakeSink(token=CLAY_TOKEN) as sink:
        sync = make_sync(directus, sink, page_size=300, rate_limit=60, concurrency=2)
        run = run_to_end(start(sync))
    assert run.sent == 300
    moving = [(t, n) for t, n in written if 0 < n < 300]
    assert len({n for _, n in moving}) >= 3  # the count moved while the one page was sent
    assert [n for _, n in moving] == sorted(n for _, n in moving)
    assert max(b[0] - a[0] for a, b in zip(moving, moving[1:])) < 1.6


def test_a_run_with_a_webhook_that_answers_the_cap_body_is_recognised():
    assert clay.halt_for(403, '{"error":"webhook_limit_reached"}') == clay.HALT_FULL
    assert clay.halt_for(403, "Forbidden") == clay.HALT_AUTH
    assert clay.halt_for(401, "") == clay.HALT_AUTH
    assert clay.halt_for(404, "") == clay.HALT_NOT_FOUND
    assert clay.halt_for(429, "rate limit exceeded") == ""
    assert clay.halt_for(400, "bad json") == ""
    assert json.loads('{"a": 1}')  # keeps json imported for the body checks above
