"""The relay: Flow events stored, the full item read, delivered to a Clay-like sink with retries."""

import json

import httpx
import pytest
import respx

from bench.fakes import FakeSink
from integrations import inbound, relay, sender, tasks_inbound
from integrations.models import (
    ClayDestination,
    DirectusConnection,
    InboundRoute,
    InboundRow,
    RowResult,
    RowTrace,
    Secret,
    Sync,
    SyncRun,
)

pytestmark = pytest.mark.django_db
BASE = "http://directus.test"
TOKEN = "tok-directus-relay-0123456789"
CLAY_TOKEN = "clay-relay-auth-token-5678"
ARTICLE = {"id": 505, "title": "Flow test A", "status": "published", "views": 2}


def test_events_become_rows():
    create = {
        "event": "articles.items.create",
        "payload": {"title": "A"},
        "key": 505,
        "collection": "articles",
    }
    update = {
        "event": "articles.items.update",
        "payload": {"status": "archived"},
        "keys": [506, "507"],
        "collection": "articles",
    }
    delete = {
        "event": "articles.items.delete",
        "payload": ["9"],
        "keys": ["9"],
        "collection": "articles",
    }
    assert relay.event_rows(create) == [("505", {"title": "A", "id": 505})]
    assert relay.event_rows(update) == [
        ("506", {"status": "archived", "id": 506}),
        ("507", {"status": "archived", "id": "507"}),
    ]
    assert relay.event_rows(delete) == [("9", {"id": "9", "deleted": True})]
    with pytest.raises(relay.RelayError):
        relay.event_rows({"event": "articles.items.sort", "collection": "articles"})


@pytest.fixture
def fast(monkeypatch, settings):
    monkeypatch.setattr(sender, "RETRY_BASE_SECONDS", 0.01)
    settings.KILN_RATE_LIMIT_REDIS_URL = ""
    monkeypatch.setattr(tasks_inbound.run_inbound_slice, "delay", lambda *a: None)


def make_relay(sink):
    connection = DirectusConnection.objects.create(
        name="cms", base_url=BASE, token=Secret.seal(TOKEN)
    )
    destination = ClayDestination.objects.create(
        name="articles table",
        webhook_url=Secret.seal(sink.url + "/hook/secret-path"),
        auth_token=Secret.seal(CLAY_TOKEN),
    )
    sync = Sync.objects.create(
        name="Articles relay",
        kind=Sync.Kind.RELAY,
        connection=connection,
        collection="articles",
        destination=destination,
        rate_limit=0,
        concurrency=2,
    )
    route, _ = InboundRoute.open(sync)
    return route


def directus_answers(router):
    router.route(host="directus.test").mock(
        side_effect=lambda request: httpx.Response(200, json={"data": [dict(ARTICLE)]})
    )
    router.route(host="127.0.0.1").pass_through()


def test_an_update_is_sent_as_the_whole_item_with_a_kiln_row_id_after_429s(fast):
    with FakeSink(
        key_field="id", token=CLAY_TOKEN, script={"505": [(429, 0), (429, 0), "ok"]}
    ) as sink:
        sink.keep_bodies = True
        route = make_relay(sink)
        event = {
            "event": "articles.items.update",
            "payload": {"views": 2},
            "keys": ["505"],
            "collection": "articles",
        }
        inbound.accept(route, [event], size=100, relay=True)
        with respx.mock(assert_all_called=False) as router:
            directus_answers(router)
            tasks_inbound.process_route(route.pk)
        assert sink.accepted["505"] == 1 and sink.received["505"] == 3
        body = (
            json.loads(sink.bodies[-1])
            if isinstance(sink.bodies[-1], str | bytes)
            else sink.bodies[-1]
        )
    assert body["title"] == "Flow test A" and body["kiln_directus_key"] == "505"
    run = SyncRun.objects.get()
    assert (run.status, run.sent) == ("succeeded", 1)
    result = RowResult.objects.get()
    assert result.status == "sent" and result.attempts == 3
    trace = RowTrace.objects.get(kiln_row_id=body["kiln_row_id"])
    assert (trace.step, trace.collection, trace.directus_key) == ("sent", "articles", "505")
    assert InboundRow.objects.get().status == "done"
    assert ClayDestination.objects.get().submissions_count == 1


def test_a_delivery_that_keeps_failing_is_kept_and_can_be_replayed(fast):
    with FakeSink(key_field="id", token=CLAY_TOKEN, script={"505": [400]}) as sink:
        route = make_relay(sink)
        event = {
            "event": "articles.items.create",
            "payload": {"title": "A"},
            "key": 505,
            "collection": "articles",
        }
        inbound.accept(route, [event], size=100, relay=True)
        with respx.mock(assert_all_called=False) as router:
            directus_answers(router)
            tasks_inbound.process_route(route.pk)
            row = InboundRow.objects.get()
            assert row.status == "failed" and "400" in row.last_error
            assert inbound.replay(InboundRow.objects.all()) == 1
            tasks_inbound.process_route(route.pk)
        assert sink.accepted["505"] == 1
    assert InboundRow.objects.get().status == "done"
    assert [r.status for r in SyncRun.objects.order_by("id")] == ["failed", "succeeded"]
