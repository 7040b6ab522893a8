"""What a script does with the API, end to end against loopback fakes of Directus and Clay:
start a sync, poll its run to the end, page and export its results, retry, count, test."""

import csv
import io
import time

import pytest
from django.urls import reverse

from console.models import ApiToken
from integrations.models import AuditEvent, RowResult, SyncRun
from tests.api import openapi
from tests.api.conftest import bearer
from tests.integrations.syncfixtures import make_sync, run_to_end

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def operator_api(users):
    return bearer(ApiToken.issue(users["operator"], "deploy pipeline")[1])


@pytest.fixture
def viewer_api(users):
    return bearer(ApiToken.issue(users["viewer"], "dashboard")[1])


def test_a_script_starts_a_sync_and_polls_its_run_to_the_end(
    operator_api, viewer_api, directus, sink, fast_retries, monkeypatch
):
    from integrations import tasks

    monkeypatch.setattr(tasks.run_sync_slice, "delay", lambda run_id: None)
    sync = make_sync(directus, sink)
    started = openapi.check(
        operator_api.post(
            reverse("api:sync-start", args=[sync.pk]), {}, content_type="application/json"
        )
    )
    assert started.status_code == 202
    run_url = started["Location"]
    assert started.json()["url"] == run_url and started.json()["status"] == "queued"
    assert started.json()["counts"]["expected"] == 50

    # A viewer's token may watch, not start.
    refused = viewer_api.post(
        reverse("api:sync-start", args=[sync.pk]), {}, content_type="application/json"
    )
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "permission_denied"

    run = SyncRun.objects.get(pk=started.json()["id"])
    run_to_end(run)
    for _ in range(10):
        body = openapi.check(viewer_api.get(run_url)).json()
        if not body["active"]:
            break
        time.sleep(0.1)
    assert body["status"] == "succeeded" and body["counts"]["sent"] == 50
    assert sink.total_received == 50
    event = AuditEvent.objects.get(details__use="start run")
    assert event.details["token"] == "deploy pipeline" and event.target_name == sync.name

    # Its row results, page by page, as the run page shows them.
    seen, url = [], body["results_url"] + "?limit=20"
    while url:
        page = openapi.check(viewer_api.get(url)).json()
        seen += [row["row_key"] for row in page["results"]]
        url = page["next"]
    assert len(seen) == 50 and len(set(seen)) == 50

    # A second start while one runs is refused with the console's sentence.
    SyncRun.objects.filter(pk=run.pk).update(status=SyncRun.Status.RUNNING)
    again = openapi.check(
        operator_api.post(
            reverse("api:sync-start", args=[sync.pk]),
            {"dry_run": True},
            content_type="application/json",
        )
    )
    assert again.status_code == 409
    assert again.json()["error"] == {
        "code": "sync_refused",
        "message": f'"{sync.name}" is already running (run #{run.pk}); wait for it or cancel it.',
    }


def test_a_dry_run_and_a_mode_that_is_not_the_syncs(operator_api, directus, sink, monkeypatch):
    from integrations import tasks

    monkeypatch.setattr(tasks.run_sync_slice, "delay", lambda run_id: None)
    sync = make_sync(directus, sink)
    url = reverse("api:sync-start", args=[sync.pk])
    wrong = operator_api.post(url, {"mode": "incremental"}, content_type="application/json")
    assert wrong.status_code == 409 and wrong.json()["error"]["code"] == "mode_mismatch"
    dry = operator_api.post(url, {"dry_run": True, "mode": "full"}, content_type="application/json")
    assert dry.status_code == 202 and dry.json()["dry_run"] is True
    bad = openapi.check(
        operator_api.post(url, {"dry_run": "maybe"}, content_type="application/json")
    )
    assert bad.status_code == 400 and "dry_run" in bad.json()["error"]["fields"]


def test_a_saved_query_is_counted_and_a_connection_tested_against_directus(
    operator_api, directus, sink
):
    sync = make_sync(directus, sink)
    counted = openapi.check(
        operator_api.post(reverse("api:query-count", args=[sync.saved_query_id]))
    )
    assert counted.json()["filter_count"] == 50
    tested = openapi.check(
        operator_api.post(reverse("api:connection-test", args=[sync.saved_query.connection_id]))
    )
    body = tested.json()
    assert body["last_test"]["at"] and body["last_test"]["stages"]
    assert AuditEvent.objects.filter(action="tested", details__token="deploy pipeline").exists()
    assert "directus-static-token" not in tested.content.decode()


def test_results_filter_search_and_csv_as_on_the_run_page(users, world):
    api = bearer(ApiToken.issue(users["viewer"], "export")[1])
    url = reverse("api:run-results", args=[world.run.pk])
    failed = openapi.check(api.get(url, {"status": "failed"})).json()
    assert {r["status"] for r in failed["results"]} == {"failed"} and len(failed["results"]) == 4
    found = openapi.check(api.get(url, {"q": "row 14"})).json()
    assert [r["row_key"] for r in found["results"]] == ["14"]
    assert found["search"]["statuses"] == ["failed", "skipped"]
    exported = api.get(url, {"format": "csv", "status": "failed"})
    assert exported["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(exported.streaming_content).decode())))
    assert [r["row_key"] for r in rows] == ["7", "14", "21", "28"]
    by_accept = api.get(url, HTTP_ACCEPT="text/csv")
    assert by_accept["Content-Type"].startswith("text/csv")
    detail = openapi.check(api.get(reverse("api:run", args=[world.run.pk]))).json()
    assert {"status": "failed", "error_code": "HTTP_422", "count": 4} in detail["causes"]
    bad = openapi.check(api.get(url, {"status": "lost", "after": "x"}))
    assert bad.status_code == 400 and set(bad.json()["error"]["fields"]) == {"status", "after"}


def test_runs_filter_by_sync_status_and_day_in_keyset_pages(users, world):
    api = bearer(ApiToken.issue(users["viewer"], "monitor")[1])
    for _ in range(5):
        SyncRun.objects.create(sync=world.sync, status=SyncRun.Status.FAILED)
    page = openapi.check(
        api.get(reverse("api:runs"), {"sync": world.sync.pk, "status": "failed", "limit": 2})
    ).json()
    ids = [r["id"] for r in page["results"]]
    while page["next"]:
        page = openapi.check(api.get(page["next"])).json()
        ids += [r["id"] for r in page["results"]]
    assert len(ids) == 5 and ids == sorted(ids, reverse=True)
    today = world.run.created_at.date().isoformat()
    assert api.get(reverse("api:runs"), {"since": today, "until": today}).json()["results"]
    assert not api.get(reverse("api:runs"), {"until": "2000-01-01"}).json()["results"]


def test_a_rows_round_trip_and_its_link_from_the_row(users, world):
    api = bearer(ApiToken.issue(users["viewer"], "tracer")[1])
    row = RowResult.objects.get(run=world.run, row_key="1")
    detail = openapi.check(api.get(reverse("api:run-result", args=[world.run.pk, row.pk]))).json()
    timeline = openapi.check(api.get(detail["timeline_url"])).json()
    assert [e["step"] for e in timeline["events"]] == ["queued", "sent"]
    missing = openapi.check(api.get(reverse("api:row-timeline", args=["kr_nothing"])))
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def test_cancel_and_retry_say_why_they_cannot(users, world):
    api = bearer(ApiToken.issue(users["operator"], "ops")[1])
    done = openapi.check(api.post(reverse("api:run-cancel", args=[world.run.pk])))
    assert done.status_code == 409 and "already ended" in done.json()["error"]["message"]
    none = openapi.check(api.post(reverse("api:run-retry", args=[world.active.pk])))
    assert none.json()["error"]["message"] == (
        "Only a finished run with failed rows can have them retried."
    )
    cancelled = openapi.check(api.post(reverse("api:run-cancel", args=[world.active.pk])))
    assert cancelled.status_code == 202 and cancelled.json()["cancel_requested"] is True
