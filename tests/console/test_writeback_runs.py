"""Write-back and relay runs on the engine's lease: claimed, resumed and retried like any run."""

import datetime as dt
from unittest import mock

import httpx
import pytest
import respx
from django.urls import reverse
from django.utils import timezone

from bench.fakes import FakeSink
from integrations import tasks
from integrations.clay import sender
from integrations.models import (
    CsvUpload,
    DirectusConnection,
    InboundRoute,
    InboundRow,
    Secret,
    Sync,
    SyncRun,
)
from integrations.runs import core, inbound, inbound_run, sync
from tests.integrations.directus_fake import BASE, TOKEN, FakeLeads
from tests.integrations.test_relay import make_relay

pytestmark = pytest.mark.django_db
CLAY_TOKEN = "clay-relay-auth-token-5678"


@pytest.fixture
def queued(monkeypatch, settings):
    """Slices queued after commit are collected here, to be worked by the test."""
    settings.KILN_RATE_LIMIT_REDIS_URL = ""
    monkeypatch.setattr(sender, "RETRY_BASE_SECONDS", 0.01)
    calls = []
    monkeypatch.setattr(tasks.run_inbound_slice, "delay_on_commit", calls.append)
    monkeypatch.setattr(tasks.run_inbound_slice, "delay", calls.append)
    monkeypatch.setattr(tasks.process_route, "apply_async", lambda *a, **k: None)
    return calls


def leads_route():
    connection = DirectusConnection.objects.create(
        name="cms", base_url=BASE, token=Secret.seal(TOKEN)
    )
    sync_ = Sync.objects.create(
        name="Leads back",
        kind=Sync.Kind.CLAY_TO_DIRECTUS,
        connection=connection,
        collection="leads",
        write_mode="upsert",
        match_field="email",
        rate_limit=0,
    )
    return InboundRoute.open(sync_)[0]


def test_the_engine_task_hands_a_write_back_run_to_the_write_back_worker(queued):
    route = leads_route()
    inbound.accept(route, [{"email": f"{n}@x.example"} for n in range(3)], size=10)
    run = inbound_run.start_route_run(route.pk)
    assert run.lease_expires_at is not None  # resumed like any run if no worker picks it up
    with respx.mock(assert_all_called=False) as router:
        FakeLeads().mount(router)
        tasks.run_sync_slice(run.pk)
    run.refresh_from_db()
    assert (run.status, run.sent, run.lease_owner, run.lease_expires_at) == (
        "succeeded",
        3,
        "",
        None,
    )


def test_a_write_back_run_whose_worker_died_is_resumed_by_its_own_worker(queued):
    route = leads_route()
    inbound.accept(route, [{"email": "a@x.example"}], size=10)
    run = inbound_run.start_route_run(route.pk)
    assert core.claim(run.pk, "dead-worker")
    assert not core.claim(run.pk, "second-worker")  # its lease still holds
    SyncRun.objects.filter(pk=run.pk).update(
        lease_expires_at=timezone.now() - dt.timedelta(seconds=1)
    )
    with mock.patch.object(tasks.run_sync_slice, "delay") as engine_delay:
        assert sync.resume_stale_runs() == 1
    engine_delay.assert_not_called()
    assert queued == [run.pk]
    with respx.mock(assert_all_called=False) as router:
        FakeLeads().mount(router)
        tasks.run_inbound_slice(run.pk)
    run.refresh_from_db()
    assert (run.status, run.sent, run.slices) == ("succeeded", 1, 2)


def relay_route(sink):
    route = make_relay(sink)
    InboundRoute.objects.filter(pk=route.pk).update(fetch_full_item=False)
    return route


def test_retry_failed_rows_of_a_relay_run_sends_those_events_again(operator_client, queued):
    with FakeSink(key_field="id", token=CLAY_TOKEN, script={"505": [400]}) as sink:
        route = relay_route(sink)
        events = [
            {
                "event": "articles.items.create",
                "payload": {"title": t},
                "key": k,
                "collection": "articles",
            }
            for k, t in ((505, "A"), (506, "B"))
        ]
        inbound.accept(route, events, size=100, relay=True)
        tasks.process_route(route.pk)
        first = SyncRun.objects.get()
        assert (first.status, first.sent, first.failed) == ("partly_failed", 1, 1)

        response = operator_client.post(reverse("console:run-retry", args=[first.pk]))
        retry = SyncRun.objects.exclude(pk=first.pk).get()
        assert response.url == reverse("console:run-detail", args=[retry.pk])
        assert (retry.retry_of_id, retry.trigger, retry.expected_total) == (first.pk, "retry", 1)
        assert queued == [retry.pk]
        tasks.run_inbound_slice(retry.pk)
        assert sink.accepted["505"] == 1 and sink.accepted["506"] == 1
    retry.refresh_from_db()
    assert (retry.status, retry.sent, retry.total) == ("succeeded", 1, 1)
    assert set(InboundRow.objects.values_list("status", flat=True)) == {"done"}
    # Nothing is left to retry in the first run.
    operator_client.post(reverse("console:run-retry", args=[first.pk]))
    assert SyncRun.objects.count() == 2


def test_retry_failed_rows_of_a_csv_run_is_refused_with_what_to_do(
    operator_client, queued, tmp_path
):
    route = leads_route()
    path = tmp_path / "leads.csv"
    path.write_text("Email\nnot-an-email\n")
    upload = CsvUpload.objects.create(
        sync=route.sync,
        path=str(path),
        original_name="leads.csv",
        columns=["Email"],
        mapping=[{"field": "email", "source": "Email"}],
    )
    run = inbound_run.start_csv_run(upload)
    SyncRun.objects.filter(pk=run.pk).update(status="failed", failed=1, total=1)
    response = operator_client.post(reverse("console:run-retry", args=[run.pk]), follow=True)
    assert "upload the corrected file" in response.content.decode()
    assert SyncRun.objects.count() == 1


def test_a_relay_batch_keeps_its_lease_while_clay_makes_it_wait(queued, monkeypatch, settings):
    settings.KILN_SYNC_LEASE_SECONDS = 0.4  # heartbeat every 0.1 s
    with FakeSink(key_field="id", token=CLAY_TOKEN, script={"505": [("slow", 2)]}) as sink:
        route = relay_route(sink)
        inbound.accept(
            route,
            [
                {
                    "event": "articles.items.create",
                    "payload": {},
                    "key": 505,
                    "collection": "articles",
                }
            ],
            size=10,
            relay=True,
        )
        run = inbound_run.start_route_run(route.pk)
        seen = []
        original = inbound_run.RunWorker.heartbeat

        def heartbeat(worker):
            original(worker)
            seen.append(SyncRun.objects.get(pk=run.pk).lease_expires_at)

        monkeypatch.setattr(inbound_run.RunWorker, "heartbeat", heartbeat)
        with respx.mock(assert_all_called=False) as router:
            router.route(host="127.0.0.1").pass_through()
            router.route(host="directus.test").mock(
                return_value=httpx.Response(200, json={"data": []})
            )
            tasks.run_inbound_slice(run.pk)
    run.refresh_from_db()
    assert run.status == "succeeded"
    assert len(seen) >= 2 and seen[-1] > seen[0]  # extended while waiting for the slow answer
