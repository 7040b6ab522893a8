"""The ops dashboard on the home page: what is failing, each item linked."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from integrations.models import (
    ClayDestination,
    DirectusConnection,
    MappingTemplate,
    SavedQuery,
    Secret,
    Sync,
    SyncRun,
    WebhookState,
)
from tests.integrations.query_schema import SCHEMA

pytestmark = pytest.mark.django_db


def make_world():
    connection = DirectusConnection.objects.create(
        name="CMS",
        base_url="https://cms.example.com",
        token=Secret.seal("directus-token-1234"),
        schema=SCHEMA,
        schema_fetched_at=timezone.now(),
    )
    destination = ClayDestination.objects.create(
        name="Leads table", webhook_url=Secret.seal("https://api.clay.com/v3/sources/webhook/a")
    )
    saved = SavedQuery.objects.create(
        connection=connection, name="Drafts", collection="articles", query_string=""
    )
    fine = Sync.objects.create(name="Fine sync", saved_query=saved, destination=destination)
    template = MappingTemplate.objects.create(
        name="old row", kind="clay_row", body='{"t": "{{headline}}"}'
    )
    drifted = Sync.objects.create(
        name="Drifted sync", saved_query=saved, destination=destination, template=template
    )
    return connection, destination, fine, drifted


def test_the_home_page_shows_a_failed_run_a_rejected_destination_and_a_drifted_sync(
    viewer_client,
):
    connection, destination, fine, drifted = make_world()
    failed = SyncRun.objects.create(
        sync=fine, status=SyncRun.Status.FAILED, last_error="Directus refused the page."
    )
    SyncRun.objects.create(
        sync=fine,
        status=SyncRun.Status.FAILED,
        created_at=timezone.now() - timedelta(days=2),
    )
    destination.mark(WebhookState.AUTH_REJECTED, "Clay answered 401 Unauthorized.")
    DirectusConnection.objects.filter(pk=connection.pk).update(
        last_test_ok=False,
        last_test_result=[{"name": "Token valid", "ok": False, "summary": "Token rejected."}],
    )

    page = viewer_client.get(reverse("console:home")).content.decode()
    failing = page.split('id="failing-now"')[1].split("</section>")[0]

    assert f'href="{reverse("console:run-detail", args=[failed.pk])}"' in failing
    assert f"Run #{failed.pk} of &quot;Fine sync&quot; failed" in failing
    assert failing.count('data-kind="run"') == 1  # the 2-day-old failure is not "now"
    assert f'href="{reverse("console:destination-detail", args=[destination.pk])}"' in failing
    assert "Clay rejected the token of &quot;Leads table&quot;" in failing
    assert f'href="{reverse("console:sync-detail", args=[drifted.pk])}"' in failing
    assert "&quot;Drifted sync&quot; no longer fits the Directus schema: &quot;headline&quot;" in (
        failing
    )
    assert "Fine sync&quot; no longer fits" not in failing
    assert f'href="{reverse("console:connection-detail", args=[connection.pk])}"' in failing
    assert "Token valid: Token rejected." in failing


def test_a_quiet_system_says_nothing_is_failing(viewer_client):
    make_world()
    Sync.objects.filter(name="Drifted sync").delete()
    page = viewer_client.get(reverse("console:home")).content.decode()
    assert "Nothing is failing" in page


def test_runs_in_progress_show_their_progress_and_poll(viewer_client):
    _, _, fine, _ = make_world()
    run = SyncRun.objects.create(
        sync=fine, status=SyncRun.Status.RUNNING, total=40, expected_total=100, sent=39, failed=1
    )
    page = viewer_client.get(reverse("console:home")).content.decode()
    assert '<progress max="100" value="40">' in page
    assert 'hx-trigger="every 3s"' in page
    partial = viewer_client.get(
        reverse("console:home"), headers={"HX-Request": "true", "HX-Target": "in-progress"}
    ).content.decode()
    assert partial.strip().startswith('<section class="card" id="in-progress"')
    assert f"#{run.pk} Fine sync" in partial


def test_each_sync_shows_its_last_runs_as_a_strip(viewer_client):
    _, _, fine, _ = make_world()
    runs = [SyncRun.objects.create(sync=fine, status=SyncRun.Status.SUCCEEDED) for _ in range(12)]
    page = viewer_client.get(reverse("console:home")).content.decode()
    strip = page.split('id="run-strips"')[1].split("</section>")[0]
    assert strip.count("status-succeeded") == 10
    assert reverse("console:run-detail", args=[runs[-1].pk]) in strip
    assert reverse("console:run-detail", args=[runs[0].pk]) + '"' not in strip


def test_a_scheduled_sync_that_did_not_run_when_due_is_late(viewer_client):
    _, _, fine, _ = make_world()
    Sync.objects.filter(pk=fine.pk).update(
        schedule="0 * * * *", created_at=timezone.now() - timedelta(hours=3)
    )
    page = viewer_client.get(reverse("console:home")).content.decode()
    assert "&quot;Fine sync&quot; did not run when due" in page


def test_signed_out_visitors_are_sent_to_sign_in(client):
    response = client.get(reverse("console:home"))
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_the_syncs_list_and_the_sync_page_flag_drift_with_the_field(viewer_client):
    _, _, fine, drifted = make_world()
    listing = viewer_client.get(reverse("console:syncs")).content.decode()
    assert listing.count("schema drift: headline") == 1
    page = viewer_client.get(reverse("console:sync-detail", args=[drifted.pk])).content.decode()
    assert 'id="schema-drift"' in page and "headline" in page
    page = viewer_client.get(reverse("console:sync-detail", args=[fine.pk])).content.decode()
    assert 'id="schema-drift"' not in page
