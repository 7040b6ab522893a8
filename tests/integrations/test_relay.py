"""The relay: Flow events stored, the full item read, delivered to a Clay-like sink with retries."""

import json

import httpx
import pytest
import respx
from django.urls import reverse

from bench.fakes import FakeSink
from integrations import tasks
from integrations.clay import sender
from integrations.models import (
    ClayDestination,
    DirectusConnection,
    InboundRoute,
    InboundRow,
    MappingTemplate,
    RowResult,
    RowTrace,
    Secret,
    Sync,
    SyncRun,
)
from integrations.runs import inbound, relay

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
    monkeypatch.setattr(tasks.run_inbound_slice, "delay", lambda *a: None)


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
            tasks.process_route(route.pk)
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
            tasks.process_route(route.pk)
            row = InboundRow.objects.get()
            assert row.status == "failed" and "400" in row.last_error
            assert inbound.replay(InboundRow.objects.all()) == 1
            tasks.process_route(route.pk)
        assert sink.accepted["505"] == 1
    assert InboundRow.objects.get().status == "done"
    assert [r.status for r in SyncRun.objects.order_by("id")] == ["failed", "succeeded"]


# -- Kiln's own writes: events caused by the write-back are not relayed back to Clay ----------

KILN_USER = "9b1c4c55-6f0e-4c7a-9d44-1f3f0c0a7e01"  # the write-back token's Directus user
PERSON = "11a5e857-d266-4b97-94ee-03a2d488ca84"  # someone editing in the Directus app


def flow_event(key, user, **changes):
    """What the Flow Kiln installs sends (seen live on Directus 12.4)."""
    return {
        "trigger": {
            "event": "articles.items.update",
            "payload": changes or {"views": 2},
            "keys": [str(key)],
            "collection": "articles",
        },
        "accountability": None
        if user is None
        else {
            "role": "3f123f45-8407-4159-8fad-30669c474f37",
            "user": user,
            "roles": ["3f123f45-8407-4159-8fad-30669c474f37"],
            "admin": True,
            "app": False,
            "ip": "127.0.0.1",
            "userAgent": "python-httpx/0.28",
        },
    }


def writeback_sync(base_url=BASE, user_id="", name="Articles back"):
    connection = DirectusConnection.objects.create(
        name=f"{name} cms",
        base_url=base_url,
        token=Secret.seal(f"tok-writeback-{name}-0123456789"),
        directus_user_id=user_id,
    )
    return Sync.objects.create(
        name=name,
        kind=Sync.Kind.CLAY_TO_DIRECTUS,
        connection=connection,
        collection="articles",
        write_mode="update",
        rate_limit=0,
    )


def directus_with_users(router, me_status=200):
    """Items read back (fetch the full item) and /users/me, which answers KILN_USER."""
    me = router.get(url__regex=r"^http://directus\.test/users/me").mock(
        return_value=httpx.Response(me_status, json={"data": {"id": KILN_USER}})
        if me_status == 200
        else httpx.Response(
            me_status, json={"errors": [{"message": "down", "extensions": {"code": "X"}}]}
        )
    )

    def items(request):
        wanted = json.loads(request.url.params.get("filter") or "{}")["id"]["_in"]
        return httpx.Response(
            200, json={"data": [{**ARTICLE, "id": int(k), "title": f"T{k}"} for k in wanted]}
        )

    router.get(url__regex=r"^http://directus\.test/items/").mock(side_effect=items)
    router.route(host="127.0.0.1").pass_through()
    return me


def bodies(sink):
    return [json.loads(b) if isinstance(b, str | bytes) else b for b in sink.bodies]


def sent_keys(sink):
    return sorted(str(b["kiln_directus_key"]) for b in bodies(sink))


def test_a_change_made_by_kilns_write_back_is_skipped_as_own_write_and_others_are_relayed(fast):
    with FakeSink(key_field="id", token=CLAY_TOKEN) as sink:
        sink.keep_bodies = True
        route = make_relay(sink)
        writer = writeback_sync()  # same Directus; its user id is not known yet
        events = [
            flow_event(1, KILN_USER),
            flow_event(2, PERSON),
            flow_event(3, None),  # no accountability (a public request)
            {  # the bare trigger a Flow installed before this change sends
                "event": "articles.items.update",
                "payload": {"views": 4},
                "keys": ["4"],
                "collection": "articles",
            },
            flow_event(5, KILN_USER),
        ]
        inbound.accept(route, events, size=100, relay=True)
        with respx.mock(assert_all_called=False) as router:
            me = directus_with_users(router)
            tasks.process_route(route.pk)
        assert sent_keys(sink) == ["2", "3", "4"]
        assert me.call_count == 1  # asked once, then stored
    writer.connection.refresh_from_db()
    assert writer.connection.directus_user_id == KILN_USER
    run = SyncRun.objects.get()
    assert (run.status, run.total, run.sent, run.skipped, run.failed) == (
        "succeeded",
        5,
        3,
        2,
        0,
    )
    skipped = RowResult.objects.filter(run=run, status="skipped").order_by("row_key")
    assert [r.error_code for r in skipped] == ["OWN_WRITE", "OWN_WRITE"]
    assert skipped[0].error_message == relay.OWN_WRITE_MESSAGE
    assert skipped[0].row_key.endswith("articles:1") and skipped[1].row_key.endswith("articles:5")
    assert set(InboundRow.objects.values_list("status", flat=True)) == {"done"}
    # Only what went to Clay has a round trip to follow.
    assert RowTrace.objects.count() == 3
    assert ClayDestination.objects.get().submissions_count == 3


def test_the_route_option_relays_kilns_own_writes_too(fast):
    with FakeSink(key_field="id", token=CLAY_TOKEN) as sink:
        sink.keep_bodies = True
        route = make_relay(sink)
        InboundRoute.objects.filter(pk=route.pk).update(relay_own_writes=True)
        writeback_sync(user_id=KILN_USER)
        inbound.accept(route, [flow_event(1, KILN_USER)], size=100, relay=True)
        with respx.mock(assert_all_called=False) as router:
            me = directus_with_users(router)
            tasks.process_route(route.pk)
        assert sent_keys(sink) == ["1"] and me.call_count == 0
    run = SyncRun.objects.get()
    assert (run.sent, run.skipped) == (1, 0)


def test_only_write_back_connections_to_the_same_directus_count(fast):
    with FakeSink(key_field="id", token=CLAY_TOKEN) as sink:
        sink.keep_bodies = True
        route = make_relay(sink)
        # Kiln's user on another Directus, and a Directus → Clay sync's user on this one.
        writeback_sync(base_url="http://other-directus.test", user_id=KILN_USER, name="Other")
        outbound = DirectusConnection.objects.create(
            name="reader", base_url=BASE + "/", token=Secret.seal(TOKEN), directus_user_id=PERSON
        )
        Sync.objects.create(
            name="Articles out", kind=Sync.Kind.DIRECTUS_TO_CLAY, connection=outbound
        )
        writeback_sync(base_url=BASE.upper() + "/", user_id="someone-else", name="Same")
        inbound.accept(
            route, [flow_event(1, KILN_USER), flow_event(2, PERSON)], size=100, relay=True
        )
        with respx.mock(assert_all_called=False) as router:
            directus_with_users(router)
            tasks.process_route(route.pk)
        assert sent_keys(sink) == ["1", "2"]
    assert relay.writeback_user_ids(BASE) == {"someone-else"}


def test_when_directus_cannot_say_who_kiln_writes_as_the_event_waits_and_nothing_is_sent(fast):
    with FakeSink(key_field="id", token=CLAY_TOKEN) as sink:
        route = make_relay(sink)
        writer = writeback_sync()
        inbound.accept(
            route, [flow_event(1, KILN_USER), flow_event(2, PERSON)], size=100, relay=True
        )
        with respx.mock(assert_all_called=False) as router:
            me = directus_with_users(router, me_status=503)
            tasks.process_route(route.pk)
        assert sink.total_received == 0
        assert me.call_count >= 1
    rows = InboundRow.objects.order_by("id")
    assert [r.status for r in rows] == ["retrying", "retrying"]
    assert "Could not tell whether Kiln's own write-back" in rows[0].last_error
    writer.connection.refresh_from_db()
    assert writer.connection.directus_user_id == ""


def test_a_write_back_token_directus_refuses_is_left_out_and_events_are_relayed(fast):
    with FakeSink(key_field="id", token=CLAY_TOKEN) as sink:
        sink.keep_bodies = True
        route = make_relay(sink)
        writeback_sync()
        inbound.accept(route, [flow_event(1, KILN_USER)], size=100, relay=True)
        with respx.mock(assert_all_called=False) as router:
            directus_with_users(router, me_status=401)
            tasks.process_route(route.pk)
        assert sent_keys(sink) == ["1"]


def test_the_template_can_read_the_accountability(fast):
    with FakeSink(key_field="id", token=CLAY_TOKEN) as sink:
        sink.keep_bodies = True
        route = make_relay(sink)
        template = MappingTemplate.objects.create(
            name="row",
            kind=MappingTemplate.Kind.CLAY_ROW,
            body='{"id": "{{id}}", "by": "{{$accountability.user}}", "e": "{{$trigger.event}}"}',
        )
        Sync.objects.filter(pk=route.sync_id).update(template=template)
        inbound.accept(route, [flow_event(2, PERSON)], size=100, relay=True)
        with respx.mock(assert_all_called=False) as router:
            directus_with_users(router)
            tasks.process_route(route.pk)
        (body,) = bodies(sink)
    assert (body["by"], body["e"], body["kiln_directus_key"]) == (
        PERSON,
        "articles.items.update",
        "2",
    )
    assert body["kiln_row_id"].startswith("kr_")


def test_the_relay_endpoint_takes_the_trigger_with_its_accountability_and_the_bare_trigger(
    client, fast, monkeypatch
):
    monkeypatch.setattr(tasks.process_route, "apply_async", lambda *a, **k: None)
    with FakeSink(key_field="id", token=CLAY_TOKEN) as sink:
        route = make_relay(sink)
    secret = route.rotate()
    url = reverse("console:inbound", args=[route.slug])
    for body in (flow_event(1, KILN_USER), flow_event(2, None)["trigger"]):
        response = client.post(
            url, json.dumps(body), content_type="application/json", HTTP_X_KILN_SECRET=secret
        )
        assert response.status_code == 202, response.content
    stored = [r.data for r in InboundRow.objects.order_by("id")]
    assert stored == [flow_event(1, KILN_USER), flow_event(2, None)["trigger"]]
    assert relay.split_event(stored[0]) == (
        flow_event(1, KILN_USER)["trigger"],
        flow_event(1, KILN_USER)["accountability"],
    )
    assert relay.split_event(stored[1]) == (stored[1], None)
    bad = client.post(
        url,
        json.dumps({"trigger": {"payload": {}}, "accountability": None}),
        content_type="application/json",
        HTTP_X_KILN_SECRET=secret,
    )
    assert bad.status_code == 400 and '"event"' in bad.json()["error"]


def test_install_sends_the_trigger_and_the_accountability_as_whole_objects(settings):
    settings.KILN_PUBLIC_URL = "https://kiln.example"
    connection = DirectusConnection.objects.create(
        name="cms", base_url=BASE, token=Secret.seal(TOKEN)
    )
    destination = ClayDestination.objects.create(
        name="t", webhook_url=Secret.seal("https://api.clay.com/hook/x")
    )
    sync = Sync.objects.create(
        name="Articles relay",
        kind=Sync.Kind.RELAY,
        connection=connection,
        collection="articles",
        destination=destination,
    )
    route, _ = InboundRoute.open(sync)
    with respx.mock(base_url=BASE) as router:
        router.post("/flows").mock(return_value=httpx.Response(200, json={"data": {"id": "f1"}}))
        operation = router.post("/operations").mock(
            return_value=httpx.Response(200, json={"data": {"id": "o1"}})
        )
        router.patch("/flows/f1").mock(return_value=httpx.Response(200, json={"data": {}}))
        relay.install(route)
    options = json.loads(operation.calls.last.request.content)["options"]
    assert options["body"] == {"trigger": "{{$trigger}}", "accountability": "{{$accountability}}"}
    assert options["url"] == route.url


def test_testing_a_connection_stores_the_directus_user_its_token_acts_as():
    connection = DirectusConnection.objects.create(
        name="cms", base_url=BASE, token=Secret.seal(TOKEN), directus_user_id="old-user"
    )

    def directus(router, me):
        router.get("/server/ping").mock(return_value=httpx.Response(200, text="pong"))
        router.get("/users/me").mock(return_value=me)
        router.get("/server/info").mock(
            return_value=httpx.Response(200, json={"data": {"version": "12.4.0"}})
        )
        router.route().mock(return_value=httpx.Response(200, json={"data": []}))

    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        directus(router, httpx.Response(200, json={"data": {"id": KILN_USER}}))
        connection.run_test()
    connection.refresh_from_db()
    assert connection.directus_user_id == KILN_USER and connection.last_test_ok is True

    # A token Directus rejects leaves the id it had.
    rejected = httpx.Response(
        401,
        json={
            "errors": [
                {
                    "message": "Invalid user credentials.",
                    "extensions": {"code": "INVALID_CREDENTIALS"},
                }
            ]
        },
    )
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        directus(router, rejected)
        connection.run_test()
    connection.refresh_from_db()
    assert connection.directus_user_id == KILN_USER and connection.last_test_ok is False
