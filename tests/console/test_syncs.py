"""Sync pages: list, create/edit with the schedule in plain words, detail buttons, the chart."""

import datetime as dt
import types

import pytest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape

from console.views.syncs import chart, daily_rows
from integrations.models import (
    ClayDestination,
    DirectusConnection,
    MappingTemplate,
    RunDailyStat,
    SavedQuery,
    Secret,
    Sync,
    SyncRun,
)
from integrations.runs import sync as engine_module

WEBHOOK = "https://api.clay.com/v3/sources/webhook/xyz-secret-path"


def make_sync(name="Articles to Clay", **fields):
    connection = DirectusConnection.objects.create(
        name=f"cms {name}",
        base_url="https://cms.example.com",
        token=Secret.seal("tok-directus-1234"),
    )
    query = SavedQuery.objects.create(
        connection=connection,
        name=f"published {name}",
        collection="articles",
        query_string="filter[status][_eq]=published",
    )
    destination = ClayDestination.objects.create(
        name=f"clay {name}", webhook_url=Secret.seal(WEBHOOK)
    )
    return Sync.objects.create(name=name, saved_query=query, destination=destination, **fields)


def fake_engine(monkeypatch):
    """Replace the engine's entry points with recorders that create runs as the engine would.

    The engine's own describe_schedule and SyncError stay in place.
    """
    calls = types.SimpleNamespace(start=[], retry=[], cancel=[], module=engine_module)

    def start_run(sync, *, started_by=None, trigger="manual", dry_run=False, retry_of=None):
        calls.start.append(
            {
                "sync": sync,
                "started_by": started_by,
                "trigger": trigger,
                "dry_run": dry_run,
                "retry_of": retry_of,
            }
        )
        return SyncRun.objects.create(
            sync=sync, started_by=started_by, trigger=trigger, dry_run=dry_run, retry_of=retry_of
        )

    def retry_failed_rows(run, *, started_by=None):
        calls.retry.append({"run": run, "started_by": started_by})
        return SyncRun.objects.create(
            sync=run.sync, started_by=started_by, trigger="retry", retry_of=run
        )

    def request_cancel(run):
        calls.cancel.append(run)
        SyncRun.objects.filter(pk=run.pk).update(cancel_requested=True)

    monkeypatch.setattr(engine_module, "start_run", start_run)
    monkeypatch.setattr(engine_module, "retry_failed_rows", retry_failed_rows)
    monkeypatch.setattr(engine_module, "request_cancel", request_cancel)
    return calls


@pytest.fixture
def engine(monkeypatch):
    return fake_engine(monkeypatch)


@pytest.fixture
def sync(db):
    return make_sync(schedule="0 6 * * 1")


def _form_data(sync, **overrides):
    data = {
        "name": "Leads to Clay",
        "saved_query": sync.saved_query_id,
        "destination": sync.destination_id,
        "template": "",
        "row_key": "id",
        "rate_limit": "10",
        "concurrency": "4",
        "page_size": "200",
        "mode": "full",
        "timestamp_field": "date_updated",
        "schedule": "",
    }
    data.update(overrides)
    return data


# List


@pytest.mark.parametrize("who", ["admin_client", "operator_client", "viewer_client"])
def test_it_lists_syncs_with_the_schedule_in_words_for_every_role(request, who, sync, engine):
    client = request.getfixturevalue(who)
    SyncRun.objects.create(sync=sync, status=SyncRun.Status.PARTLY_FAILED)
    response = client.get(reverse("console:syncs"))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Articles to Clay" in html
    assert "Monday" in html
    assert "partly failed" in html
    assert "item as is" in html
    assert WEBHOOK not in html


def test_it_sends_anonymous_users_to_login(client, sync):
    for name, args in [
        ("console:syncs", []),
        ("console:sync-detail", [sync.pk]),
        ("console:sync-add", []),
        ("console:sync-edit", [sync.pk]),
    ]:
        response = client.get(reverse(name, args=args))
        assert response.status_code == 302
        assert reverse("console:login") in response["Location"]


def test_it_shows_the_new_button_to_operators_only(
    client, operator_user, viewer_user, sync, engine
):
    client.force_login(operator_user)
    assert reverse("console:sync-add") in client.get(reverse("console:syncs")).content.decode()
    client.force_login(viewer_user)
    assert reverse("console:sync-add") not in client.get(reverse("console:syncs")).content.decode()


# Create and edit


@pytest.mark.parametrize("who", ["admin_client", "operator_client"])
def test_it_creates_a_sync_for_admins_and_operators(request, who, sync, engine):
    client = request.getfixturevalue(who)
    response = client.post(reverse("console:sync-add"), _form_data(sync, schedule="*/15  * * * *"))
    created = Sync.objects.get(name="Leads to Clay")
    assert response.status_code == 302
    assert response["Location"] == reverse("console:sync-detail", args=[created.pk])
    assert created.schedule == "*/15 * * * *"
    assert created.template is None
    assert created.created_by.username == who.removesuffix("_client")
    assert created.kind == Sync.Kind.DIRECTUS_TO_CLAY


def test_it_rejects_viewers_on_create_and_edit(viewer_client, sync, engine):
    assert viewer_client.get(reverse("console:sync-add")).status_code == 403
    assert viewer_client.post(reverse("console:sync-add"), _form_data(sync)).status_code == 403
    assert (
        viewer_client.post(
            reverse("console:sync-edit", args=[sync.pk]), _form_data(sync)
        ).status_code
        == 403
    )
    assert not Sync.objects.filter(name="Leads to Clay").exists()


def test_it_rejects_an_invalid_cron_with_a_form_error(operator_client, sync, engine):
    response = operator_client.post(
        reverse("console:sync-add"), _form_data(sync, schedule="61 * * * *")
    )
    assert response.status_code == 200
    assert response.context["form"].errors["schedule"]
    assert not Sync.objects.filter(name="Leads to Clay").exists()


def test_it_offers_only_clay_row_templates_or_the_item_as_is(operator_client, sync, engine):
    MappingTemplate.objects.create(
        name="Row for Clay", kind=MappingTemplate.Kind.CLAY_ROW, body="{}"
    )
    MappingTemplate.objects.create(name="A Flow payload", kind=MappingTemplate.Kind.FLOW, body="{}")
    html = operator_client.get(reverse("console:sync-add")).content.decode()
    assert "Row for Clay" in html
    assert "A Flow payload" not in html
    assert "Send the item as is" in html
    flow = MappingTemplate.objects.get(name="A Flow payload")
    response = operator_client.post(reverse("console:sync-add"), _form_data(sync, template=flow.pk))
    assert response.context["form"].errors["template"]


def test_it_checks_rate_concurrency_and_page_size(operator_client, sync, engine):
    response = operator_client.post(
        reverse("console:sync-add"),
        _form_data(sync, rate_limit="-1", concurrency="0", page_size="0"),
    )
    errors = response.context["form"].errors
    assert {"rate_limit", "concurrency", "page_size"} <= set(errors)


def test_it_refuses_a_page_size_above_the_servers_query_limit(operator_client, sync, engine):
    DirectusConnection.objects.filter(pk=sync.saved_query.connection_id).update(
        server_info={"version": "12.4.0", "queryLimit": {"default": 100, "max": 500}}
    )
    response = operator_client.post(reverse("console:sync-add"), _form_data(sync, page_size="501"))
    assert "at most 500 items per page" in response.context["form"].errors["page_size"][0]
    response = operator_client.post(reverse("console:sync-add"), _form_data(sync, page_size="500"))
    assert response.status_code == 302


def test_it_defaults_to_ten_rows_per_second(operator_client, engine, db):
    response = operator_client.get(reverse("console:sync-add"))
    assert response.context["form"]["rate_limit"].value() == 10.0


def test_it_edits_a_sync_and_shows_the_schedule_on_the_page(operator_client, sync, engine):
    data = _form_data(
        sync,
        name=sync.name,
        schedule="30 7 * * *",
        paused="on",
        mode="incremental",
        skip_unchanged="on",
    )
    response = operator_client.post(reverse("console:sync-edit", args=[sync.pk]), data)
    assert response.status_code == 302
    sync.refresh_from_db()
    assert (sync.schedule, sync.paused, sync.mode, sync.skip_unchanged) == (
        "30 7 * * *",
        True,
        "incremental",
        True,
    )
    html = operator_client.get(reverse("console:sync-detail", args=[sync.pk])).content.decode()
    words = engine.module.describe_schedule("30 7 * * *")
    assert words in html


def test_it_hides_write_back_fields_unless_the_sync_writes_to_directus(
    operator_client, sync, engine
):
    html = operator_client.get(reverse("console:sync-edit", args=[sync.pk])).content.decode()
    assert 'name="match_field"' not in html
    sync.kind = Sync.Kind.CLAY_TO_DIRECTUS
    sync.save()
    html = operator_client.get(reverse("console:sync-edit", args=[sync.pk])).content.decode()
    assert 'name="match_field"' in html
    assert 'name="write_mode"' in html


# Schedule preview


def test_it_describes_a_schedule_as_it_is_typed(operator_client, engine, db):
    response = operator_client.get(
        reverse("console:sync-schedule-preview"), {"schedule": "0 6 * * 1"}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="schedule-words"' in html
    assert "Monday" in html
    assert "<html" not in html


def test_it_explains_an_invalid_schedule_as_it_is_typed(operator_client, engine, db):
    response = operator_client.get(
        reverse("console:sync-schedule-preview"), {"schedule": "61 * * * *"}, HTTP_HX_REQUEST="true"
    )
    html = response.content.decode()
    assert 'class="bad"' in html
    with pytest.raises(ValueError) as e:
        engine.module.describe_schedule("61 * * * *")
    assert escape(str(e.value)) in html


def test_it_keeps_the_schedule_preview_from_viewers_and_outsiders(viewer_client, engine, db):
    assert viewer_client.get(reverse("console:sync-schedule-preview")).status_code == 403
    viewer_client.logout()
    assert viewer_client.get(reverse("console:sync-schedule-preview")).status_code == 302


# Detail


@pytest.mark.parametrize("who", ["admin_client", "operator_client"])
def test_it_shows_run_buttons_to_operators_and_admins(request, who, sync, engine):
    html = (
        request.getfixturevalue(who)
        .get(reverse("console:sync-detail", args=[sync.pk]))
        .content.decode()
    )
    assert "Start run" in html
    assert "Dry run" in html
    assert "Pause" in html
    assert WEBHOOK not in html


def test_it_shows_the_detail_page_read_only_to_viewers(viewer_client, sync, engine):
    run = SyncRun.objects.create(sync=sync, status=SyncRun.Status.SUCCEEDED, sent=5, total=5)
    response = viewer_client.get(reverse("console:sync-detail", args=[sync.pk]))
    html = response.content.decode()
    assert response.status_code == 200
    assert "Start run" not in html
    assert reverse("console:sync-pause", args=[sync.pk]) not in html
    assert reverse("console:run-detail", args=[run.pk]) in html
    assert "<svg" in html


def test_it_404s_for_an_unknown_sync(viewer_client, db):
    assert viewer_client.get(reverse("console:sync-detail", args=[999])).status_code == 404


# Start, dry run, pause


def test_it_starts_a_run_through_the_engine(operator_client, operator_user, sync, engine):
    response = operator_client.post(reverse("console:sync-start", args=[sync.pk]))
    run = SyncRun.objects.get(sync=sync)
    assert response.status_code == 302
    assert response["Location"] == reverse("console:run-detail", args=[run.pk])
    assert engine.start == [
        {
            "sync": sync,
            "started_by": operator_user,
            "trigger": "manual",
            "dry_run": False,
            "retry_of": None,
        }
    ]


def test_it_starts_a_dry_run(admin_client, sync, engine):
    admin_client.post(reverse("console:sync-start", args=[sync.pk]), {"dry_run": "1"})
    assert engine.start[0]["dry_run"] is True


def test_it_shows_the_engine_refusal(operator_client, sync, engine, monkeypatch):
    def refuse(sync, **kwargs):
        raise engine.module.SyncError(
            "This run would pass the destination's 50,000-submission cap."
        )

    monkeypatch.setattr(engine.module, "start_run", refuse)
    response = operator_client.post(reverse("console:sync-start", args=[sync.pk]), follow=True)
    assert "50,000-submission cap" in response.content.decode()
    assert response.redirect_chain[-1][0] == reverse("console:sync-detail", args=[sync.pk])


def test_it_does_not_start_runs_for_viewers_outsiders_or_gets(
    client, viewer_user, operator_user, sync, engine
):
    url = reverse("console:sync-start", args=[sync.pk])
    response = client.post(url)
    assert response.status_code == 302 and reverse("console:login") in response["Location"]
    client.force_login(viewer_user)
    assert client.post(url).status_code == 403
    client.force_login(operator_user)
    assert client.get(url).status_code == 405
    assert engine.start == []


def test_it_pauses_and_resumes_a_sync(operator_client, sync, engine):
    response = operator_client.post(reverse("console:sync-pause", args=[sync.pk]), {"paused": "1"})
    assert response.status_code == 302
    sync.refresh_from_db()
    assert sync.paused
    response = operator_client.post(
        reverse("console:sync-pause", args=[sync.pk]), {"paused": "0"}, HTTP_HX_REQUEST="true"
    )
    sync.refresh_from_db()
    assert not sync.paused
    html = response.content.decode()
    assert 'id="state"' in html and "Pause" in html and "<html" not in html


def test_it_keeps_pause_from_viewers(viewer_client, sync):
    assert (
        viewer_client.post(
            reverse("console:sync-pause", args=[sync.pk]), {"paused": "1"}
        ).status_code
        == 403
    )
    sync.refresh_from_db()
    assert not sync.paused


# The chart


def _finished(sync, day, **counts):
    at = timezone.make_aware(dt.datetime.combine(day, dt.time(12)))
    return SyncRun.objects.create(
        sync=sync, status="succeeded", created_at=at, started_at=at, finished_at=at, **counts
    )


def test_it_counts_rows_per_day_from_runs_and_fills_pruned_days_from_daily_stats(sync):
    today = timezone.localdate()
    _finished(sync, today, sent=90, failed=10)
    _finished(sync, today, sent=10, skipped=5)
    _finished(sync, today - dt.timedelta(days=1), sent=3)
    SyncRun.objects.create(
        sync=sync,
        status="succeeded",
        dry_run=True,
        created_at=timezone.now(),
        finished_at=timezone.now(),
        sent=1000,
    )
    # A day that still has runs is never counted twice; a pruned day comes from the stats.
    RunDailyStat.objects.create(sync=sync, day=today - dt.timedelta(days=1), sent=999)
    RunDailyStat.objects.create(sync=sync, day=today - dt.timedelta(days=5), sent=7, failed=1)
    RunDailyStat.objects.create(sync=sync, day=today - dt.timedelta(days=40), sent=7)
    days = {d["day"]: d for d in daily_rows(sync, today=today)}
    assert len(days) == 30
    assert days[today] == {"day": today, "sent": 100, "skipped": 5, "failed": 10}
    assert days[today - dt.timedelta(days=1)]["sent"] == 3
    assert days[today - dt.timedelta(days=5)] == {
        "day": today - dt.timedelta(days=5),
        "sent": 7,
        "skipped": 0,
        "failed": 1,
    }
    assert days[today - dt.timedelta(days=2)]["sent"] == 0


def test_it_counts_an_active_run_under_the_day_it_was_created(sync):
    SyncRun.objects.create(sync=sync, status="running", sent=4)
    assert daily_rows(sync)[-1]["sent"] == 4


def test_it_draws_bars_and_the_success_rate():
    day = dt.date(2025, 1, 1)
    data = chart(
        [
            {"day": day, "sent": 90, "skipped": 0, "failed": 10},
            {"day": day + dt.timedelta(days=1), "sent": 0, "skipped": 0, "failed": 0},
            {"day": day + dt.timedelta(days=2), "sent": 30, "skipped": 20, "failed": 0},
        ]
    )
    assert data["scale"] == 100
    assert data["rate"] == 92.3  # 120 sent of 130 attempted
    assert [b["rate"] for b in data["bars"]] == [90.0, None, 100.0]
    first = data["bars"][0]["rects"]
    assert [r["status"] for r in first] == ["sent", "failed"]
    assert first[0]["h"] == pytest.approx(data["plot_h"] * 0.9, abs=0.1)
    assert len(data["points"]) == 2
    assert data["points"][1]["y"] == data["top"]


def test_it_draws_nothing_for_no_rows():
    data = chart([{"day": dt.date(2025, 1, 1), "sent": 0, "skipped": 0, "failed": 0}])
    assert data["scale"] == 0 and data["rate"] is None and data["points"] == []
