"""Headless Chromium: an operator writes an enriched Clay CSV export back into the real Directus.

Upload (UTF-8 BOM, a quoted field holding a comma) → preview with the detected columns → map
the columns the guess missed → confirm → watch the run page poll to the end: one lead created,
one updated (matched by email), one rejected by Directus (a company that does not exist) with
its reason on the run. The updated lead came from Clay carrying a kiln_row_id, so its
round trip shows on its timeline page.

No Celery worker: the confirm queues `run_inbound_slice`, whose `.delay` is pointed at a
background thread that waits until the page has shown the queued run, so the page really
watches the run move. Every lead created here has an email ending in WB_DOMAIN and is deleted
at the end; the updated lead's score is put back.
"""

import threading
import uuid

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from console.models import User
from integrations import tasks
from integrations.directus.client import DirectusClient
from integrations.models import (
    CsvUpload,
    DirectusConnection,
    RowResult,
    RowTrace,
    Secret,
    Sync,
    SyncRun,
)
from integrations.outbound import http
from integrations.runs import roundtrip
from tests.browser.conftest import sign_in

pytestmark = pytest.mark.django_db(transaction=True)

WB_DOMAIN = "kiln-wb-browser.example"
BAD_COMPANY = 999999  # no such company: Directus answers INVALID_FOREIGN_KEY
PASSWORD = "pw-for-browser-123"


@pytest.fixture
def admin(live_directus):
    policy = http.OutboundPolicy(allow_private=True)
    with DirectusClient(
        live_directus.url, live_directus.admin_token, client=http.make_client(policy=policy)
    ) as client:
        yield client


@pytest.fixture
def known_lead(admin):
    """A seeded lead (looked up by its email) to update; its score is put back afterwards and
    every lead created here is deleted."""
    # Not the first two seeds: the live write-back tests update those.
    seed = admin.list_items(
        "leads",
        {
            "sort": ["id"],
            "limit": 1,
            "offset": 5,
            "filter": {"email": {"_nends_with": WB_DOMAIN}},
            "fields": ["email"],
        },
    ).data[0]
    found = admin.list_items(
        "leads",
        {"filter": {"email": {"_eq": seed["email"]}}, "fields": ["id", "email", "score"]},
    ).data
    assert len(found) == 1, found
    lead = found[0]
    yield lead
    created = admin.list_items(
        "leads", {"filter": {"email": {"_ends_with": WB_DOMAIN}}, "fields": ["id"], "limit": -1}
    ).data
    if created:
        admin.delete_items("leads", [item["id"] for item in created])
    admin.update_item("leads", lead["id"], {"score": lead["score"]})


@pytest.fixture
def thread_worker(monkeypatch, settings):
    """Run queued slices in threads, as a Celery worker would, once `go` is set."""
    settings.KILN_RATE_LIMIT_REDIS_URL = ""
    go = threading.Event()
    threads = []

    def work(run_id):
        try:
            go.wait(timeout=30)
            tasks.run_inbound_slice(run_id)
        finally:
            connection.close()

    def delay(run_id):
        thread = threading.Thread(target=work, args=(run_id,), daemon=True)
        threads.append(thread)
        thread.start()

    # delay_on_commit (what the confirm calls) calls .delay once the run is committed.
    monkeypatch.setattr(tasks.run_inbound_slice, "delay", delay)
    yield go
    go.set()
    for thread in threads:
        thread.join(timeout=30)


def test_an_operator_uploads_a_clay_csv_and_watches_it_written_to_directus(
    page, live_server, live_directus, admin, known_lead, thread_worker, tmp_path
):
    User.objects.create_user("otto", password=PASSWORD, role=User.Role.OPERATOR)
    directus = DirectusConnection.objects.create(
        name="Live Directus",
        base_url=live_directus.url,
        token=Secret.seal(live_directus.admin_token),
    )
    directus.refresh_schema()  # the mapper's field list and the guessed mapping come from it
    sync = Sync.objects.create(
        name="Leads back from Clay",
        kind=Sync.Kind.CLAY_TO_DIRECTUS,
        connection=directus,
        collection="leads",
        write_mode=Sync.WriteMode.UPSERT,
        match_field="email",
        rate_limit=0,
    )
    # The known lead went to Clay earlier through a Directus → Clay sync: its trace waits at
    # "sent to Clay", and the Clay export carries its kiln_row_id back.
    to_clay = Sync.objects.create(
        name="Leads to Clay", connection=directus, collection="leads", rate_limit=0
    )
    row_id = roundtrip.row_id_for(to_clay.pk, known_lead["id"])
    roundtrip.start_traces(to_clay, "leads", [(str(known_lead["id"]), row_id)])
    roundtrip.record_steps(
        [(row_id, RowTrace.Step.SENT, True, "Clay accepted the row.", timezone.now(), None)]
    )

    tag = uuid.uuid4().hex[:8]
    new_email, bad_email = f"new-{tag}@{WB_DOMAIN}", f"bad-{tag}@{WB_DOMAIN}"
    csv_path = tmp_path / "leads-enriched.csv"
    csv_path.write_bytes(  # UTF-8, with a BOM as Excel-style exports have
        (
            "\ufeffEmail,First Name,Lead Score,Company ID,kiln_row_id\r\n"
            f'{new_email},"Doe, Jane",7,,\r\n'
            f"  {known_lead['email'].upper()} ,,902,,{row_id}\r\n"
            f"{bad_email},Broken,1,{BAD_COMPANY},\r\n"
        ).encode()
    )

    sign_in(page, live_server, "otto", PASSWORD)
    page.click("header nav >> text=Write-back")
    page.wait_for_url(live_server.url + reverse("console:writeback"))

    # Upload.
    page.select_option("select[name=sync]", str(sync.pk))
    page.set_input_files("input[name=file]", str(csv_path))
    page.click("button:has-text('Upload and preview')")
    upload = CsvUpload.objects.get()
    page.wait_for_url(
        live_server.url + reverse("console:writeback-upload-detail", args=[upload.pk])
    )

    # Preview: the BOM is not part of the first column's name; the quoted comma stays one cell.
    assert "3" in page.inner_text("table.facts tr:has(th:text-is('Rows')) td")
    assert "5 detected" in page.inner_text("table.facts tr:has(th:text-is('Columns')) td")
    headers = page.locator("table.preview thead th").all_inner_texts()
    assert headers == ["Email", "First Name", "Lead Score", "Company ID", "kiln_row_id"]
    first_row = page.locator("table.preview tbody tr").first.locator("td").all_inner_texts()
    assert first_row[:3] == [new_email, "Doe, Jane", "7"]
    assert page.locator("table.preview tbody tr").count() == 3

    # Map: columns named like fields are guessed (with the cast the field type needs).
    assert page.input_value("input[aria-label='Field for Email']") == "email"
    assert page.input_value("input[aria-label='Field for First Name']") == "first_name"
    assert page.input_value("input[aria-label='Field for Lead Score']") == ""
    assert page.input_value("input[aria-label='Field for kiln_row_id']") == ""
    page.fill("input[aria-label='Casts for Email']", "trim | lower")
    page.fill("input[aria-label='Field for Lead Score']", "score")
    page.fill("input[aria-label='Casts for Lead Score']", "integer")
    page.fill("input[aria-label='Field for Company ID']", "company")
    page.fill("input[aria-label='Casts for Company ID']", "integer")
    page.click("button:has-text('Save mapping and preview')")
    page.wait_for_selector("text=Mapping saved")
    sample = page.inner_text("pre.sample")
    assert new_email in sample and "Doe, Jane" in sample and '"score": 7' in sample  # JSON
    assert not SyncRun.objects.exists()  # nothing written before the confirm

    # Confirm, then watch the run.
    page.click("button:has-text('Confirm: write 3 rows to Directus')")
    page.wait_for_selector("#progress[data-status=queued]")
    run = SyncRun.objects.get(sync=sync)
    assert page.url == live_server.url + reverse("console:run-detail", args=[run.pk])
    thread_worker.set()  # the worker picks the run up while the page polls
    page.wait_for_selector("#progress[data-status=partly_failed]", timeout=30_000)
    assert page.inner_text("#progress .count-total") == "3"
    assert page.inner_text("#progress .count-sent") == "2"
    assert page.inner_text("#progress .count-failed") == "1"
    assert page.inner_text("#progress .percent") == "100"
    assert "INVALID_FOREIGN_KEY" in page.inner_text("#progress .last-error")

    # The results table reloads itself when the run finishes: created, updated, failed.
    page.wait_for_function(
        "() => document.querySelectorAll('#results tr[data-id]').length === 3", timeout=10_000
    )
    statuses = {}
    for row in page.locator("#results tr[data-id]").all():
        cells = row.locator("td").all_inner_texts()
        statuses[cells[0].split(" ")[1]] = (cells[1].strip(), cells[3])
    assert statuses["2"][0] == "created"
    assert statuses["3"][0] == "updated"
    assert statuses["4"][0] == "failed"
    # Directus names neither the field nor the row; the split pinned it on line 4.
    assert "INVALID_FOREIGN_KEY" in statuses["4"][1]
    assert "Invalid foreign key" in statuses["4"][1]
    # The failed row's full reason, opened in place.
    page.click("#results tr[data-id] a:has-text('line 4')")
    detail = page.locator("#row-detail .row-detail")
    detail.wait_for()
    assert "INVALID_FOREIGN_KEY" in detail.inner_text()

    # Directus holds what the run says.
    assert admin.get_item("leads", known_lead["id"], {"fields": ["score"]})["score"] == 902
    stored = admin.list_items(
        "leads",
        {
            "filter": {"email": {"_ends_with": WB_DOMAIN}},
            "fields": ["email", "first_name", "score"],
            "limit": -1,
        },
    ).data
    assert stored == [{"email": new_email, "first_name": "Doe, Jane", "score": 7}]
    assert RowResult.objects.filter(run=run).count() == 3

    # The run page links no row timeline for a CSV run; the write-back page's round-trip
    # list does: rows whose last step is "written to Directus".
    page.click("header nav >> text=Write-back")
    page.click("text=Rows sent to Clay that never came back")
    page.select_option("select[name=step]", RowTrace.Step.WRITTEN.value)
    page.fill("input[name=hours]", "0")
    page.click("button:has-text('Show')")
    page.click(f"a:text-is('{row_id}')")
    page.wait_for_url(live_server.url + reverse("console:row-timeline", args=[row_id]))
    steps = page.locator("ol.timeline li strong").all_inner_texts()
    assert steps == [
        "queued",
        "sent to Clay",
        "enriched row received",
        "written to Directus",
    ]
    timeline = page.inner_text("ol.timeline")
    assert "Line 3 of leads-enriched.csv" in timeline
    assert f'updated item {known_lead["id"]} in "leads"' in timeline
    assert f"run #{run.pk}" in timeline
    assert page.locator("ol.timeline li.bad").count() == 0
