"""The run page explains itself: outcomes grouped by cause with links to their
rows, the sync's label beside each key, every attempt of a row, progress before a page is
recorded, possibly duplicated rows flagged and filterable."""

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from integrations.models import RowResult, SyncRun
from tests.console.test_syncs import make_sync


@pytest.fixture
def run(db):
    sync = make_sync()
    sync.label_field = "sku"
    sync.save()
    started = timezone.now() - dt.timedelta(minutes=2)
    run = SyncRun.objects.create(
        sync=sync,
        status=SyncRun.Status.FAILED,
        started_at=started,
        finished_at=started + dt.timedelta(seconds=40),
        expected_total=10,
        total=10,
        sent=3,
        skipped=6,
        failed=1,
        possibly_duplicated=1,
        causes={"sent": 2, "possibly_duplicated": 1, "token_rejected": 7},
        last_error="Read error that came later",
    )
    rows = [
        RowResult(run=run, row_key="a1", status="sent", label="SKU-A1", attempt_log=[]),
        RowResult(run=run, row_key="a2", status="sent", label="SKU-A2"),
        RowResult(
            run=run,
            row_key="a3",
            status="sent",
            label="SKU-A3",
            possibly_duplicated=True,
            attempts=2,
            attempt_log=[
                {
                    "at": 1767225600.5,
                    "status": None,
                    "ms": 812,
                    "error": "NETWORK_CONNECTION",
                    "maybe": True,
                },
                {"at": 1767225601.75, "status": 200, "ms": 35, "error": "", "maybe": False},
            ],
        ),
        RowResult(
            run=run,
            row_key="b1",
            status="failed",
            http_status=401,
            error_code="WEBHOOK_TOKEN_REJECTED",
            error_message="Webhook token rejected: …",
            label="SKU-B1",
        ),
    ]
    rows += [
        RowResult(
            run=run,
            row_key=f"c{i}",
            status="skipped",
            error_code="WEBHOOK_TOKEN_REJECTED",
            error_message="Webhook token rejected: …",
            label=f"SKU-C{i}",
        )
        for i in range(6)
    ]
    RowResult.objects.bulk_create(rows)
    return run


def test_the_headline_groups_rows_by_cause_with_links(viewer_client, run):
    page = viewer_client.get(reverse("console:run-detail", args=[run.pk])).content.decode()
    assert 'data-cause="token_rejected"' in page
    assert (
        '<strong class="cause-count">7</strong> <span class="cause-label">webhook token rejected'
        in page
    )
    assert (
        '<strong class="cause-count">1</strong> <span class="cause-label">possibly duplicated'
        in page
    )
    assert "?cause=token_rejected#results" in page
    # The fix is one click away.
    assert reverse("console:destination-detail", args=[run.sync.destination_id]) in page


def test_a_cause_link_lists_its_rows_only(viewer_client, run):
    url = reverse("console:run-detail", args=[run.pk])
    page = viewer_client.get(url, {"cause": "possibly_duplicated"}).content.decode()
    assert ">a3</a>" in page and ">a1</a>" not in page and ">b1</a>" not in page
    page = viewer_client.get(url, {"cause": "token_rejected"}).content.decode()
    assert page.count('class="row-label"') == 7 and ">a3</a>" not in page
    csv = viewer_client.get(reverse("console:run-export", args=[run.pk]), {"cause": "sent"})
    lines = b"".join(csv.streaming_content).decode().splitlines()
    assert len(lines) == 1 + 2


def test_the_label_is_shown_beside_the_key(viewer_client, run):
    page = viewer_client.get(reverse("console:run-detail", args=[run.pk])).content.decode()
    assert "<th>sku</th>" in page
    assert '<td class="row-label">SKU-A3</td>' in page


def test_a_rows_page_lists_every_attempt(viewer_client, run):
    row = RowResult.objects.get(run=run, row_key="a3")
    page = viewer_client.get(reverse("console:run-row", args=[run.pk, row.pk])).content.decode()
    assert page.count('<tr class="attempt">') == 2
    assert "2026-01-01 00:00:00" in page and "NETWORK_CONNECTION" in page
    assert "may have reached Clay" in page
    assert "Possibly duplicated" in page


def test_progress_counts_rows_answered_before_their_page_is_recorded(viewer_client, run):
    run.status, run.finished_at = SyncRun.Status.RUNNING, None
    run.expected_total, run.sent, run.skipped, run.failed = 100, 10, 0, 0
    run.checkpoint = {"answered": 30}
    run.save()
    page = viewer_client.get(
        reverse("console:run-progress", args=[run.pk]), HTTP_HX_REQUEST="true"
    ).content.decode()
    assert '<strong class="done">40</strong>' in page
    assert '<span class="count-answered">30</span> answered' in page
