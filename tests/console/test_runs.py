"""Run history: the runs list, live progress, keyset-paged row results, row detail, CSV, buttons."""

import csv
import datetime as dt
import io

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from console.views import runs as runs_views
from console.views.runs import WITH_ERRORS, keyset_page, search_page
from integrations.models import RowResult, SyncRun
from tests.console.test_syncs import WEBHOOK, fake_engine, make_sync

ROLES = ["admin_client", "operator_client", "viewer_client"]


@pytest.fixture
def engine(monkeypatch):
    return fake_engine(monkeypatch)


@pytest.fixture
def sync(db):
    return make_sync()


@pytest.fixture
def run(sync, admin_user):
    """A finished run of 250 rows: every 10th failed, every 25th skipped, the rest sent."""
    started = timezone.now() - dt.timedelta(minutes=3, seconds=5)
    run = SyncRun.objects.create(
        sync=sync,
        status=SyncRun.Status.PARTLY_FAILED,
        started_by=admin_user,
        started_at=started,
        finished_at=started + dt.timedelta(minutes=3, seconds=5),
        expected_total=250,
        total=250,
    )
    rows = []
    for i in range(1, 251):
        if i % 10 == 0:
            rows.append(
                RowResult(
                    run=run,
                    row_key=str(i),
                    status="failed",
                    http_status=422,
                    error_code="INVALID_PAYLOAD" if i % 20 else "TIMEOUT",
                    error_message=f"Clay refused row {i}: email is not valid",
                    attempts=1,
                    request_excerpt='{"email": "nope"}',
                    response_excerpt='{"error": "invalid email"}',
                )
            )
        elif i % 25 == 0:
            rows.append(
                RowResult(run=run, row_key=str(i), status="skipped", error_message="unchanged")
            )
        else:
            rows.append(
                RowResult(
                    run=run,
                    row_key=str(i),
                    status="sent",
                    http_status=200,
                    attempts=1,
                    duration_ms=40,
                )
            )
    RowResult.objects.bulk_create(rows)
    counts = {s: sum(1 for r in rows if r.status == s) for s in ("sent", "skipped", "failed")}
    SyncRun.objects.filter(pk=run.pk).update(**counts)
    run.refresh_from_db()
    return run


def _ids(response):
    return [row.row_key for row in response.context["rows"]]


# Runs list


@pytest.mark.parametrize("who", ROLES)
def test_it_lists_runs_for_every_role(request, who, run):
    response = request.getfixturevalue(who).get(reverse("console:runs"))
    assert response.status_code == 200
    html = response.content.decode()
    assert f"#{run.pk}" in html
    assert "partly failed" in html
    assert "admin" in html and "button" in html  # who, and how
    assert "3 min 5 s" in html


def test_it_sends_anonymous_users_to_login_from_every_run_page(client, run):
    row = run.results.first()
    for name, args in [
        ("console:runs", []),
        ("console:run-detail", [run.pk]),
        ("console:run-progress", [run.pk]),
        ("console:run-row", [run.pk, row.pk]),
        ("console:run-export", [run.pk]),
    ]:
        response = client.get(reverse(name, args=args))
        assert response.status_code == 302, name
        assert reverse("console:login") in response["Location"]
    for name in ["console:run-cancel", "console:run-retry"]:
        response = client.post(reverse(name, args=[run.pk]))
        assert response.status_code == 302 and reverse("console:login") in response["Location"]


def test_it_filters_runs_by_sync_status_and_date(viewer_client, run):
    other = make_sync("Leads")
    old = SyncRun.objects.create(
        sync=other, status="failed", created_at=timezone.now() - dt.timedelta(days=10)
    )
    scheduled = SyncRun.objects.create(sync=other, status="succeeded", trigger="schedule")

    def listed(**params):
        return {r.pk for r in viewer_client.get(reverse("console:runs"), params).context["runs"]}

    assert listed() == {run.pk, old.pk, scheduled.pk}
    assert listed(sync=other.pk) == {old.pk, scheduled.pk}
    assert listed(status="failed") == {old.pk}
    today = timezone.localdate()
    assert listed(since=today.isoformat()) == {run.pk, scheduled.pk}
    assert listed(until=(today - dt.timedelta(days=5)).isoformat()) == {old.pk}
    assert listed(since="not a date", status="nonsense") == {run.pk, old.pk, scheduled.pk}
    html = viewer_client.get(reverse("console:runs"), {"sync": other.pk}).content.decode()
    assert "schedule" in html


def test_it_pages_runs_by_keyset_newest_first(viewer_client, sync):
    SyncRun.objects.bulk_create([SyncRun(sync=sync) for _ in range(120)])
    ids = list(SyncRun.objects.order_by("-id").values_list("id", flat=True))
    first = viewer_client.get(reverse("console:runs"))
    assert [r.pk for r in first.context["runs"]] == ids[:50]
    second = viewer_client.get(reverse("console:runs"), {"after": first.context["next_cursor"]})
    assert [r.pk for r in second.context["runs"]] == ids[50:100]
    back = viewer_client.get(reverse("console:runs"), {"before": second.context["prev_cursor"]})
    assert [r.pk for r in back.context["runs"]] == ids[:50]
    assert back.context["prev_cursor"] is None


# Run page and progress


@pytest.mark.parametrize("who", ROLES)
def test_it_shows_a_run_page_to_every_role_without_secrets(request, who, run):
    response = request.getfixturevalue(who).get(reverse("console:run-detail", args=[run.pk]))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="progress"' in html
    assert "clay Articles to Clay" in html
    assert WEBHOOK not in html and "xyz-secret-path" not in html
    assert len(response.context["rows"]) == 100


def test_it_shows_cancel_to_operators_while_active_and_retry_when_rows_failed(
    client, operator_user, viewer_user, run
):
    url = reverse("console:run-detail", args=[run.pk])
    client.force_login(operator_user)
    html = client.get(url).content.decode()
    assert "Retry 25 failed rows" in html
    assert "Cancel run" not in html
    assert 'hx-trigger="every 1s"' not in html
    SyncRun.objects.filter(pk=run.pk).update(status="running", finished_at=None)
    html = client.get(url).content.decode()
    assert "Cancel run" in html and "Retry" not in html
    assert 'hx-trigger="every 1s"' in html
    client.force_login(viewer_user)
    html = client.get(url).content.decode()
    assert "Cancel run" not in html and 'hx-trigger="every 1s"' in html


def test_it_polls_with_200_while_running_and_286_when_done(viewer_client, run):
    url = reverse("console:run-progress", args=[run.pk])
    SyncRun.objects.filter(pk=run.pk).update(
        status="running", finished_at=None, sent=40, skipped=0, failed=10
    )
    response = viewer_client.get(url, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    html = response.content.decode()
    assert "<html" not in html
    assert 'id="progress"' in html and 'hx-trigger="every 1s"' in html
    assert 'aria-valuenow="20"' in html  # 50 of 250
    SyncRun.objects.filter(pk=run.pk).update(
        status="succeeded", sent=240, finished_at=timezone.now()
    )
    response = viewer_client.get(url, HTTP_HX_REQUEST="true")
    assert response.status_code == 286
    assert response["HX-Trigger"] == "run-finished"
    html = response.content.decode()
    assert "hx-trigger" not in html
    assert 'aria-valuenow="100"' in html


def test_it_shows_rows_so_far_when_the_total_is_not_known_yet(viewer_client, run):
    SyncRun.objects.filter(pk=run.pk).update(
        status="running", expected_total=None, sent=7, skipped=0, failed=0
    )
    response = viewer_client.get(
        reverse("console:run-progress", args=[run.pk]), HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200
    assert "rows so far" in response.content.decode()


def test_it_sends_a_plain_progress_request_to_the_run_page(viewer_client, run):
    response = viewer_client.get(reverse("console:run-progress", args=[run.pk]))
    assert response.status_code == 302
    assert response["Location"] == reverse("console:run-detail", args=[run.pk])


def test_it_404s_for_an_unknown_run(viewer_client, db):
    assert viewer_client.get(reverse("console:run-detail", args=[999])).status_code == 404


# Row results: keyset pages


def test_it_walks_the_results_forward_and_back_by_keyset(viewer_client, run):
    url = reverse("console:run-detail", args=[run.pk])
    first = viewer_client.get(url)
    assert _ids(first) == [str(i) for i in range(1, 101)]
    assert first.context["prev_cursor"] is None
    second = viewer_client.get(url, {"after": first.context["next_cursor"]})
    assert _ids(second) == [str(i) for i in range(101, 201)]
    third = viewer_client.get(url, {"after": second.context["next_cursor"]})
    assert _ids(third) == [str(i) for i in range(201, 251)]
    assert third.context["next_cursor"] is None
    back = viewer_client.get(url, {"before": third.context["prev_cursor"]})
    assert _ids(back) == [str(i) for i in range(101, 201)]
    start = viewer_client.get(url, {"before": back.context["prev_cursor"]})
    assert _ids(start) == [str(i) for i in range(1, 101)]
    assert start.context["prev_cursor"] is None
    assert f"after={first.context['next_cursor']}" in first.content.decode()


def test_it_filters_results_by_status_and_error_text(viewer_client, run):
    url = reverse("console:run-detail", args=[run.pk])
    failed = viewer_client.get(url, {"status": "failed"})
    assert _ids(failed) == [str(i) for i in range(10, 251, 10)]
    assert failed.context["next_cursor"] is None
    timeouts = viewer_client.get(url, {"q": "timeout"})
    assert _ids(timeouts) == [str(i) for i in range(20, 251, 20)]
    by_message = viewer_client.get(url, {"q": "ROW 130:", "status": "failed"})
    assert _ids(by_message) == ["130"]
    nothing = viewer_client.get(url, {"q": "no such error"})
    assert _ids(nothing) == []
    assert "No rows match this filter" in nothing.content.decode()
    assert "status=failed&amp;after=" not in failed.content.decode()  # one page only


def test_error_text_search_reads_only_rows_that_can_carry_an_error(viewer_client, run):
    # Failed and skipped rows have error text; sent rows have none, so a search of them
    # is answered without reading them (bench/README.md: the 1M-row results page).
    url = reverse("console:run-detail", args=[run.pk])
    assert _ids(viewer_client.get(url, {"q": "unchanged"})) == ["25", "75", "125", "175", "225"]
    assert _ids(viewer_client.get(url, {"q": "unchanged", "status": "skipped"})) == [
        "25",
        "75",
        "125",
        "175",
        "225",
    ]
    assert _ids(viewer_client.get(url, {"q": "unchanged", "status": "sent"})) == []


# Error-text search: a bounded window per request. Rows that carry an error, in id order:
# failed 10, 20, 30, … 250 (TIMEOUT every 20th, INVALID_PAYLOAD otherwise), skipped 25, 75,
# 125, 175, 225 ("unchanged").


@pytest.fixture
def small_window(monkeypatch):
    monkeypatch.setattr(runs_views, "SEARCH_WINDOW", 8)
    return 8


def _id_of(run, key):
    return run.results.get(row_key=key).pk


def test_error_text_search_reads_one_window_and_offers_to_search_further(
    viewer_client, run, small_window
):
    url = reverse("console:run-detail", args=[run.pk])
    response = viewer_client.get(url, {"q": "timeout"})
    # The window: 10, 20, 25, 30, 40, 50, 60, 70; its matches, and where it stopped.
    assert _ids(response) == ["20", "40", "60"]
    assert response.context["next_cursor"] is None
    assert response.context["search"]["stop"].row_key == "70"
    html = response.content.decode()
    assert 'covered rows up to row <span class="mono">70</span>' in html
    assert "8 failed and skipped rows" in html and "later rows are not searched yet" in html
    assert f"q=timeout&amp;after={_id_of(run, '70')}" in html and "Search further" in html


def test_searching_further_finds_the_matches_past_the_window(viewer_client, run, small_window):
    url = reverse("console:run-detail", args=[run.pk])
    found, stops, params = [], [], {"q": "timeout"}
    for _ in range(10):
        response = viewer_client.get(url, params)
        found += _ids(response)
        stop = response.context["search"]["stop"]
        if stop is None:
            break
        stops.append(stop.row_key)
        params = {"q": "timeout", "after": stop.pk}
    assert stops == ["70", "130", "200"]
    assert found == [str(i) for i in range(20, 251, 20)]  # the same as an unbounded search
    assert "Search further" not in response.content.decode()  # the last window hit the end


def test_a_window_without_a_match_says_so_and_a_status_narrows_the_window(
    viewer_client, run, small_window
):
    url = reverse("console:run-detail", args=[run.pk])
    nothing = viewer_client.get(url, {"q": "no such error"})
    html = nothing.content.decode()
    assert _ids(nothing) == [] and "No match in the rows searched so far" in html
    assert "No rows match this filter" not in html and "Search further" in html
    # status=failed: the window holds failed rows only (10 … 80).
    failed = viewer_client.get(url, {"q": "timeout", "status": "failed"})
    assert _ids(failed) == ["20", "40", "60", "80"]
    assert failed.context["search"]["stop"].row_key == "80"
    assert "8 failed rows" in failed.content.decode()
    # sent rows carry no error: answered without a search.
    assert viewer_client.get(url, {"q": "timeout", "status": "sent"}).context["search"] is None


def test_a_search_fills_a_page_before_the_window_ends_and_pages_on_by_keyset(run):
    rows, prev_cursor, next_cursor, stop = search_page(
        run, WITH_ERRORS, "refused", size=3, window=8
    )
    assert [r.row_key for r in rows] == ["10", "20", "30"]
    assert (prev_cursor, next_cursor, stop) == (None, _id_of(run, "30"), None)
    rows, prev_cursor, next_cursor, stop = search_page(
        run, WITH_ERRORS, "refused", after=next_cursor, size=3, window=8
    )
    assert [r.row_key for r in rows] == ["40", "50", "60"]
    assert prev_cursor == _id_of(run, "40") and stop is None


def test_a_search_going_back_reads_one_window_before_the_cursor(viewer_client, run, small_window):
    url = reverse("console:run-detail", args=[run.pk])
    response = viewer_client.get(url, {"q": "timeout", "before": _id_of(run, "250")})
    # Going back from 250: 240, 230, 225, 220, 210, 200, 190, 180.
    assert _ids(response) == ["180", "200", "220", "240"]
    assert response.context["search"]["stop"].row_key == "180"
    assert response.context["next_cursor"] == _id_of(run, "240")
    html = response.content.decode()
    assert 'covered rows back to row <span class="mono">180</span>' in html
    assert f"q=timeout&amp;before={_id_of(run, '180')}" in html
    rows, _, _, stop = search_page(run, WITH_ERRORS, "timeout", before=_id_of(run, "180"), window=8)
    assert [r.row_key for r in rows] == ["120", "140", "160"] and stop.row_key == "120"


def test_error_text_search_treats_like_wildcards_as_text(viewer_client, run):
    url = reverse("console:run-detail", args=[run.pk])
    assert len(_ids(viewer_client.get(url, {"q": "d_p"}))) == 13  # INVALID_PAYLOAD
    assert _ids(viewer_client.get(url, {"q": "D%P"})) == []
    assert _ids(viewer_client.get(url, {"q": "ID_"})) != []
    assert _ids(viewer_client.get(url, {"q": "row 13_:"})) == []


def test_error_text_search_runs_one_query_without_offset_or_count(viewer_client, run, small_window):
    url, after = reverse("console:run-detail", args=[run.pk]), _id_of(run, "70")
    with CaptureQueriesContext(connection) as queries:
        viewer_client.get(url, {"q": "timeout", "after": after})
    searches = [q["sql"] for q in queries.captured_queries if "kiln_row_result" in q["sql"]]
    assert len(searches) == 1
    sql = searches[0].upper()
    assert "OFFSET" not in sql and "COUNT(" not in sql
    assert "LIMIT 8" in sql and "ROW_NUMBER()" in sql


def test_it_keeps_the_filter_in_the_paging_links(viewer_client, run):
    url = reverse("console:run-detail", args=[run.pk])
    response = viewer_client.get(url, {"status": "sent"})
    assert len(response.context["rows"]) == 100
    assert f"status=sent&amp;after={response.context['next_cursor']}" in response.content.decode()


def test_it_pages_without_offset_or_count_in_few_queries(
    viewer_client, run, django_assert_max_num_queries
):
    url = reverse("console:run-detail", args=[run.pk])
    with CaptureQueriesContext(connection) as queries:
        with django_assert_max_num_queries(8):
            viewer_client.get(url, {"after": 120, "status": "sent", "q": ""})
    sql = " ".join(q["sql"].upper() for q in queries.captured_queries)
    assert "OFFSET" not in sql
    assert "COUNT(" not in sql
    assert "KILN_ROW_RESULT" in sql


def test_it_answers_htmx_paging_with_the_results_partial(viewer_client, run):
    response = viewer_client.get(
        reverse("console:run-detail", args=[run.pk]),
        {"after": 100},
        HTTP_HX_REQUEST="true",
        HTTP_HX_TARGET="results",
    )
    html = response.content.decode()
    assert html.lstrip().startswith('<section id="results"')
    assert "<html" not in html


def test_keyset_page_reports_cursors_at_both_ends(run):
    results = RowResult.objects.filter(run=run)
    ids = list(results.order_by("id").values_list("id", flat=True))
    rows, prev_cursor, next_cursor = keyset_page(results, size=100)
    assert (prev_cursor, next_cursor) == (None, ids[99])
    rows, prev_cursor, next_cursor = keyset_page(results, after=ids[199], size=100)
    assert [r.id for r in rows] == ids[200:] and (prev_cursor, next_cursor) == (ids[200], None)
    rows, prev_cursor, next_cursor = keyset_page(results, before=ids[100], size=100)
    assert [r.id for r in rows] == ids[:100] and (prev_cursor, next_cursor) == (None, ids[99])


# Row detail


@pytest.mark.parametrize("who", ROLES)
def test_it_shows_a_row_with_its_request_and_response(request, who, run):
    row = run.results.get(row_key="20")
    response = request.getfixturevalue(who).get(reverse("console:run-row", args=[run.pk, row.pk]))
    assert response.status_code == 200
    html = response.content.decode()
    assert "TIMEOUT" in html and "422" in html
    assert "&quot;email&quot;: &quot;nope&quot;" in html
    assert "invalid email" in html
    assert WEBHOOK not in html


def test_it_answers_htmx_row_detail_with_the_partial(viewer_client, run):
    row = run.results.get(row_key="20")
    response = viewer_client.get(
        reverse("console:run-row", args=[run.pk, row.pk]), HTTP_HX_REQUEST="true"
    )
    html = response.content.decode()
    assert "row-detail" in html and "<html" not in html


def test_it_404s_for_a_row_of_another_run(viewer_client, run, sync):
    other = SyncRun.objects.create(sync=sync)
    row = run.results.first()
    assert viewer_client.get(reverse("console:run-row", args=[other.pk, row.pk])).status_code == 404


# CSV export


@pytest.mark.parametrize("who", ROLES)
def test_it_streams_every_result_as_csv_in_id_order(request, who, run):
    response = request.getfixturevalue(who).get(reverse("console:run-export", args=[run.pk]))
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"].startswith("text/csv")
    assert f"kiln-run-{run.pk}-results.csv" in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert len(rows) == 250
    assert [r["row_key"] for r in rows[:3]] == ["1", "2", "3"]
    assert rows[19]["status"] == "failed"
    assert rows[19]["error_code"] == "TIMEOUT"
    assert rows[19]["http_status"] == "422"
    assert rows[0]["duration_ms"] == "40"


def test_it_exports_only_the_filtered_rows(viewer_client, run):
    response = viewer_client.get(
        reverse("console:run-export", args=[run.pk]), {"status": "failed", "q": "timeout"}
    )
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [r["row_key"] for r in rows] == [str(i) for i in range(20, 251, 20)]


def test_it_neutralises_formulas_in_exported_text(viewer_client, sync):
    run = SyncRun.objects.create(sync=sync, status="failed", failed=1)
    RowResult.objects.create(
        run=run, row_key="=cmd|' /C calc'!A0", status="failed", error_message="@SUM(1+1)"
    )
    response = viewer_client.get(reverse("console:run-export", args=[run.pk]))
    row = next(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert row["row_key"].startswith("'=")
    assert row["error_message"] == "'@SUM(1+1)"


# Cancel and retry


def test_it_cancels_an_active_run_through_the_engine(operator_client, run, engine):
    SyncRun.objects.filter(pk=run.pk).update(status="running", finished_at=None)
    response = operator_client.post(reverse("console:run-cancel", args=[run.pk]))
    assert response.status_code == 302
    assert [r.pk for r in engine.cancel] == [run.pk]


def test_it_answers_an_htmx_cancel_with_the_progress_partial(admin_client, run, engine):
    SyncRun.objects.filter(pk=run.pk).update(status="running", finished_at=None)
    response = admin_client.post(
        reverse("console:run-cancel", args=[run.pk]), HTTP_HX_REQUEST="true"
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert "cancelling" in html and "Cancel run" not in html and "<html" not in html


def test_it_does_not_cancel_a_finished_run(operator_client, run, engine):
    operator_client.post(reverse("console:run-cancel", args=[run.pk]))
    assert engine.cancel == []


def test_it_keeps_cancel_and_retry_from_viewers(viewer_client, run, engine):
    SyncRun.objects.filter(pk=run.pk).update(status="running")
    assert viewer_client.post(reverse("console:run-cancel", args=[run.pk])).status_code == 403
    assert viewer_client.post(reverse("console:run-retry", args=[run.pk])).status_code == 403
    assert engine.cancel == [] and engine.retry == []


@pytest.mark.parametrize("who", ["admin_client", "operator_client"])
def test_it_retries_failed_rows_through_the_engine(request, who, run, engine):
    response = request.getfixturevalue(who).post(reverse("console:run-retry", args=[run.pk]))
    retry = SyncRun.objects.get(retry_of=run)
    assert response.status_code == 302
    assert response["Location"] == reverse("console:run-detail", args=[retry.pk])
    assert engine.retry[0]["run"].pk == run.pk
    assert engine.retry[0]["started_by"].username == who.removesuffix("_client")


def test_it_does_not_retry_a_run_without_failed_rows(operator_client, sync, engine):
    run = SyncRun.objects.create(sync=sync, status="succeeded", sent=3)
    response = operator_client.post(reverse("console:run-retry", args=[run.pk]), follow=True)
    assert engine.retry == []
    assert "Only a finished run with failed rows" in response.content.decode()


def test_it_shows_the_engine_refusal_to_retry(operator_client, run, engine, monkeypatch):
    def refuse(run, **kwargs):
        raise engine.module.SyncError("The destination's submission cap is reached.")

    monkeypatch.setattr(engine.module, "retry_failed_rows", refuse)
    response = operator_client.post(reverse("console:run-retry", args=[run.pk]), follow=True)
    assert "submission cap is reached" in response.content.decode()


# With the real engine (no worker, no network: these paths stop before either)


def test_it_cancels_a_queued_run_no_worker_holds_at_once(operator_client, sync):
    queued = SyncRun.objects.create(sync=sync, status="queued")
    response = operator_client.post(
        reverse("console:run-cancel", args=[queued.pk]), HTTP_HX_REQUEST="true"
    )
    queued.refresh_from_db()
    assert queued.status == "cancelled"
    assert response["HX-Trigger"] == "run-finished"
    assert "hx-trigger" not in response.content.decode()


def test_it_shows_why_the_engine_will_not_start_a_run(operator_client, sync):
    sync.kind = sync.Kind.CLAY_TO_DIRECTUS
    sync.save()
    response = operator_client.post(reverse("console:sync-start", args=[sync.pk]), follow=True)
    assert "are not started here: their runs begin when rows reach" in response.content.decode()
    assert not SyncRun.objects.filter(sync=sync).exists()


def test_a_traced_row_links_to_its_round_trip(viewer_client, run):
    from integrations.runs import roundtrip

    row = run.results.get(row_key="20")
    rid = roundtrip.row_id_for(run.sync_id, "20")
    roundtrip.start_traces(run.sync, "articles", [("20", rid)], run=run)
    html = viewer_client.get(reverse("console:run-row", args=[run.pk, row.pk])).content.decode()
    assert reverse("console:row-timeline", args=[rid]) in html
    # A row this run did not trace has no such link.
    other = run.results.get(row_key="21")
    html = viewer_client.get(reverse("console:run-row", args=[run.pk, other.pk])).content.decode()
    assert "/rows/kr_" not in html


# A read of Directus that stopped


@pytest.fixture
def stopped_read(sync):
    return SyncRun.objects.create(
        sync=sync,
        status=SyncRun.Status.PARTLY_FAILED,
        expected_total=1200,
        total=200,
        sent=200,
        last_error="Reading Directus failed: Directus rejected the query: bad.",
        checkpoint={"after": 200, "inflight": [], "read_failed": True},
    )


@pytest.mark.parametrize("who", ROLES)
def test_a_stopped_read_says_how_many_rows_were_never_read(request, who, stopped_read):
    html = request.getfixturevalue(who).get(reverse("console:run-detail", args=[stopped_read.pk]))
    html = html.content.decode()
    assert '<strong class="count-unread">1,000</strong> rows were never read' in html
    assert ("Resume reading" in html) == (who != "viewer_client")
    assert "failed row" not in html  # no "Retry 0 failed rows": retrying cannot read them


def test_resume_reading_continues_the_run_from_its_checkpoint(
    operator_client, stopped_read, django_capture_on_commit_callbacks, monkeypatch
):
    from integrations import tasks

    queued = []
    monkeypatch.setattr(tasks.run_sync_slice, "delay", lambda run_id: queued.append(run_id))
    with django_capture_on_commit_callbacks(execute=True):
        response = operator_client.post(reverse("console:run-resume", args=[stopped_read.pk]))
    assert response.status_code == 302
    stopped_read.refresh_from_db()
    assert (stopped_read.status, stopped_read.last_error) == ("queued", "")
    assert stopped_read.checkpoint == {"after": 200, "inflight": []}
    assert queued == [stopped_read.pk]


def test_viewers_cannot_resume_a_read(viewer_client, stopped_read):
    response = viewer_client.post(reverse("console:run-resume", args=[stopped_read.pk]))
    assert response.status_code == 403
    stopped_read.refresh_from_db()
    assert stopped_read.status == "partly_failed"


def test_a_run_whose_read_completed_cannot_be_resumed(operator_client, run):
    response = operator_client.post(reverse("console:run-resume", args=[run.pk]), follow=True)
    assert "Only a run whose read of Directus stopped" in response.content.decode()
    run.refresh_from_db()
    assert run.status == "partly_failed"


def test_an_incremental_run_without_a_capped_mark_says_a_change_may_be_missed(viewer_client, sync):
    run = SyncRun.objects.create(
        sync=sync,
        status="succeeded",
        since="2026-01-01T00:00:00",
        high_water_mark="2026-02-01T00:00:00",
        checkpoint={"after": 9, "inflight": [], "cap": ""},
    )
    html = viewer_client.get(reverse("console:run-detail", args=[run.pk])).content.decode()
    assert "mark-uncapped" in html and "items changed at or after" in html
    SyncRun.objects.filter(pk=run.pk).update(checkpoint={"cap": "2026-02-01T00:00:00"})
    html = viewer_client.get(reverse("console:run-detail", args=[run.pk])).content.decode()
    assert "mark-uncapped" not in html


@pytest.mark.django_db(transaction=True)
def test_the_csv_export_streams_under_asgi_too(run, admin_user, monkeypatch):
    """Under ASGI a synchronous iterator would be read whole into memory before the first byte."""
    import asyncio

    monkeypatch.setattr(runs_views, "CSV_BATCH_LINES", 50)
    from asgiref.sync import sync_to_async
    from django.test import AsyncClient, Client

    wsgi = Client()
    wsgi.force_login(admin_user)
    whole = b"".join(wsgi.get(reverse("console:run-export", args=[run.pk])).streaming_content)

    async def download():
        client = AsyncClient()
        await sync_to_async(client.force_login)(admin_user)
        response = await client.get(reverse("console:run-export", args=[run.pk]))
        assert response.is_async
        return [chunk async for chunk in response.streaming_content]

    chunks = asyncio.run(download())
    assert len(chunks) > 1 and b"".join(chunks) == whole
    assert whole.count(b"\n") == 251  # the header and 250 rows
