# ruff: noqa: F811 (pytest fixtures imported from syncfixtures are redefined as arguments)
"""One row id across the round trip: the engine stamps it, traces queued → sent in batches,
and the enriched row that comes back through a write-back route completes the timeline."""

import json

import pytest
import respx
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from bench.fakes import FakeSink
from integrations import tasks
from integrations.models import DirectusConnection, InboundRoute, RowTrace, Secret, Sync, SyncRun
from integrations.runs import roundtrip
from integrations.runs import sync as engine_api
from tests.integrations.directus_fake import BASE, TOKEN, FakeLeads

from .syncfixtures import (  # noqa: F401 (fixtures)
    CLAY_TOKEN,
    directus,
    fast_retries,
    make_sync,
    run_to_end,
    sink,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_retries")]


def test_the_row_id_is_derived_from_the_sync_and_the_directus_key():
    assert roundtrip.row_id_for(3, "505") == roundtrip.row_id_for(3, "505")
    assert roundtrip.row_id_for(3, "505") != roundtrip.row_id_for(4, "505")
    assert (
        roundtrip.row_id_for(3, "505").startswith("kr_")
        and len(roundtrip.row_id_for(3, "505")) == 23
    )
    assert roundtrip.stamp([1, 2], 3, "articles", "505") == [1, 2]  # not an object: left alone
    stamped = roundtrip.stamp({"title": "A"}, 3, "articles", 505)
    assert stamped == {
        "title": "A",
        "kiln_row_id": roundtrip.row_id_for(3, "505"),
        "kiln_sync": 3,
        "kiln_collection": "articles",
        "kiln_directus_key": "505",
    }


def test_every_row_sent_carries_its_ids_and_skip_unchanged_still_skips(directus, sink):
    sink.keep_bodies = True
    sync = make_sync(directus, sink, skip_unchanged=True)
    first = run_to_end(engine_api.start_run(sync))
    assert first.sent == 50
    body = next(b for b in sink.bodies if b["id"] == 7)
    assert body["kiln_row_id"] == roundtrip.row_id_for(sync.pk, "7")
    assert (body["kiln_sync"], body["kiln_collection"], body["kiln_directus_key"]) == (
        sync.pk,
        "articles",
        "7",
    )

    # The id is the same on the next run, so the payload hash is too: nothing is resent.
    second = run_to_end(engine_api.start_run(sync))
    assert (second.sent, second.skipped) == (0, 50)
    assert set(second.results.values_list("error_code", flat=True)) == {"UNCHANGED"}


def test_the_engine_traces_queued_then_sent_with_a_few_queries_per_page(directus):
    with FakeSink(token=CLAY_TOKEN, script={"9": [400]}) as sink:
        sync = make_sync(directus, sink, page_size=10)
        run = engine_api.start_run(sync)
        with CaptureQueriesContext(connection) as queries:
            run = run_to_end(run)
    assert (run.sent, run.failed) == (49, 1)
    assert RowTrace.objects.filter(sync=sync).count() == 50
    trace = RowTrace.objects.get(kiln_row_id=roundtrip.row_id_for(sync.pk, "7"))
    assert (trace.step, trace.ok, trace.collection, trace.directus_key) == (
        "sent",
        True,
        "articles",
        "7",
    )
    assert [(e.step, e.ok, e.run_id) for e in trace.events.all()] == [
        ("queued", True, run.pk),
        ("sent", True, run.pk),
    ]
    failed = RowTrace.objects.get(directus_key="9")
    assert (failed.step, failed.ok) == ("sent", False)
    assert "400" in failed.events.get(step="sent").detail
    # Batched: five pages of ten rows, a handful of trace queries each, never one per row.
    trace_queries = [q for q in queries.captured_queries if "kiln_row_trace" in q["sql"]]
    assert len(trace_queries) <= 5 * 6


def test_a_dry_run_and_a_skipped_row_leave_no_trace(directus, sink):
    sync = make_sync(directus, sink)
    run_to_end(engine_api.start_run(sync, dry_run=True))
    assert not RowTrace.objects.exists()


@pytest.fixture
def write_back_route(db):
    connection = DirectusConnection.objects.create(
        name="cms", base_url=BASE, token=Secret.seal(TOKEN)
    )
    sync = Sync.objects.create(
        name="Leads back",
        kind=Sync.Kind.CLAY_TO_DIRECTUS,
        connection=connection,
        collection="leads",
        write_mode="upsert",
        match_field="email",
        rate_limit=0,
    )
    return InboundRoute.open(sync)


def test_the_enriched_row_coming_back_completes_the_timeline(
    directus, sink, write_back_route, client, viewer_client, monkeypatch
):
    monkeypatch.setattr(tasks.process_route, "apply_async", lambda *a, **k: None)
    sink.keep_bodies = True
    sync = make_sync(directus, sink)
    run = run_to_end(engine_api.start_run(sync))
    sent = next(b for b in sink.bodies if b["id"] == 7)
    rid = sent["kiln_row_id"]

    # Clay enriches the row and its HTTP API column posts it back with every column, ids included.
    route, secret = write_back_route
    enriched = {**sent, "score": 88}
    response = client.post(
        reverse("console:inbound", args=[route.slug]),
        data=json.dumps(enriched),
        content_type="application/json",
        HTTP_X_KILN_SECRET=secret,
    )
    assert response.status_code == 202
    fake = FakeLeads()
    with respx.mock(assert_all_called=False) as router:
        fake.mount(router)
        tasks.process_route(route.pk)
    assert fake.by_email("author7@example.com")["score"] == 88

    trace = RowTrace.objects.get(kiln_row_id=rid)
    assert (trace.step, trace.ok) == ("written", True)
    assert list(trace.events.values_list("step", flat=True)) == [
        "queued",
        "sent",
        "received",
        "written",
    ]
    page = viewer_client.get(reverse("console:row-timeline", args=[rid])).content.decode()
    for step in ("queued", "sent to Clay", "enriched row received", "written to Directus"):
        assert step in page
    assert f"run #{run.pk}" in page

    # The run page links to its rows that never came back; row 7 did, row 8 did not.
    detail = viewer_client.get(reverse("console:run-detail", args=[run.pk])).content.decode()
    assert "Rows sent to Clay that never came back" in detail
    stuck = viewer_client.get(
        reverse("console:writeback-stuck"), {"run": run.pk, "step": "sent", "hours": 0}
    )
    html = stuck.content.decode()
    assert roundtrip.row_id_for(sync.pk, "8") in html and rid not in html
    assert f"run #{run.pk}" in html


def test_the_stuck_page_filters_by_run_and_by_age(directus, sink, viewer_client):
    sync = make_sync(directus, sink)
    older = run_to_end(engine_api.start_run(sync))
    other = make_sync(directus, sink, name="Other")
    run_to_end(engine_api.start_run(other))
    url = reverse("console:writeback-stuck")
    # Within the hour: not stuck yet.
    assert (
        roundtrip.row_id_for(sync.pk, "3")
        not in viewer_client.get(url, {"run": older.pk}).content.decode()
    )
    html = viewer_client.get(url, {"run": older.pk, "hours": 0}).content.decode()
    assert (
        roundtrip.row_id_for(sync.pk, "3") in html
        and roundtrip.row_id_for(other.pk, "3") not in html
    )
    html = viewer_client.get(url, {"sync": other.pk, "hours": 0}).content.decode()
    assert (
        roundtrip.row_id_for(other.pk, "3") in html
        and roundtrip.row_id_for(sync.pk, "3") not in html
    )
    assert SyncRun.objects.count() == 2


def test_a_csv_export_with_the_kiln_row_id_column_links_its_rows(
    write_back_route, tmp_path, monkeypatch
):
    from integrations.models import CsvUpload
    from integrations.runs import inbound_run

    monkeypatch.setattr(tasks.run_inbound_slice, "delay_on_commit", lambda *a: None)
    route, _ = write_back_route
    rid = roundtrip.row_id_for(99, "17")
    roundtrip.start_traces(route.sync, "leads", [("17", rid)])
    path = tmp_path / "clay-export.csv"
    path.write_text(f"Email,Score,kiln_row_id\r\nkay@x.example,7,{rid}\r\nnone@x.example,1,\r\n")
    upload = CsvUpload.objects.create(
        sync=route.sync,
        path=str(path),
        original_name="clay-export.csv",
        columns=["Email", "Score", "kiln_row_id"],
        row_count=2,
        mapping=[{"field": "email", "source": "Email"}, {"field": "score", "source": "Score"}],
    )
    run = inbound_run.start_csv_run(upload)
    fake = FakeLeads()
    with respx.mock(assert_all_called=False) as router:
        fake.mount(router)
        inbound_run.execute(run.pk, "test-worker")
    assert SyncRun.objects.get(pk=run.pk).sent == 2
    trace = RowTrace.objects.get(kiln_row_id=rid)
    assert [(e.step, e.ok) for e in trace.events.all()] == [
        ("queued", True),
        ("received", True),
        ("written", True),
    ]
    assert "Line 2 of clay-export.csv" in trace.events.get(step="received").detail
    assert "kiln_row_id" not in fake.by_email("kay@x.example")
