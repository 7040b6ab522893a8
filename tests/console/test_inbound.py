"""The public inbound endpoint: every bad request stores nothing; good ones are stored before 202;
duplicates are recognised; rows wait while workers are down and are written when they return."""

import datetime as dt
import io
import json
import threading
from unittest import mock

import pytest
import respx
from django.urls import reverse
from django.utils import timezone

from integrations import tasks
from integrations.models import (
    DirectusConnection,
    InboundReceipt,
    InboundRoute,
    InboundRow,
    RowResult,
    RowTrace,
    Secret,
    Sync,
    SyncRun,
)
from integrations.runs import core, inbound, inbound_run, roundtrip, sync
from tests.integrations.directus_fake import BASE, TOKEN, FakeLeads

pytestmark = pytest.mark.django_db


@pytest.fixture
def queued(monkeypatch):
    """Record what would go to the broker instead of sending it."""
    calls = []
    monkeypatch.setattr(
        tasks.process_route, "apply_async", lambda *a, **k: calls.append(("route", a, k))
    )
    monkeypatch.setattr(tasks.process_route, "delay", lambda *a: calls.append(("route", a, {})))
    monkeypatch.setattr(tasks.run_inbound_slice, "delay", lambda *a: calls.append(("slice", a, {})))
    return calls


def make_route(kind=Sync.Kind.CLAY_TO_DIRECTUS, **options):
    connection = DirectusConnection.objects.create(
        name="cms", base_url=BASE, token=Secret.seal(TOKEN)
    )
    sync = Sync.objects.create(
        name="Leads back",
        kind=kind,
        connection=connection,
        collection="leads",
        write_mode="upsert",
        match_field="email",
        rate_limit=0,
        **options,
    )
    return InboundRoute.open(sync)


def post(client, route, body, secret, **headers):
    data = body if isinstance(body, bytes | str) else json.dumps(body)
    extra = {"HTTP_X_KILN_SECRET": secret} if secret is not None else {}
    extra.update(headers)
    return client.post(
        reverse("console:inbound", args=[route.slug]),
        data=data,
        content_type="application/json",
        **extra,
    )


def nothing_stored():
    return not InboundReceipt.objects.exists() and not InboundRow.objects.exists()


def test_it_stores_a_row_and_answers_202_with_a_receipt(client, queued):
    route, secret = make_route()
    response = post(client, route, {"email": "a@x.example", "Score": 5}, secret)
    assert response.status_code == 202
    receipt = InboundReceipt.objects.get()
    assert response.json() == {
        "receipt": receipt.pk,
        "rows": 1,
        "duplicates": 0,
        "status": "accepted",
    }
    row = InboundRow.objects.get()
    assert row.data == {"email": "a@x.example", "Score": 5} and row.status == "pending"
    assert queued and queued[0][0] == "route"


def test_it_takes_several_rows_in_a_list(client, queued):
    route, secret = make_route()
    response = post(client, route, [{"email": "a@x.example"}, {"email": "b@x.example"}], secret)
    assert response.status_code == 202 and response.json()["rows"] == 2
    assert InboundRow.objects.count() == 2


def test_it_needs_no_login_and_no_csrf_token(queued):
    from django.test import Client

    route, secret = make_route()
    response = post(Client(enforce_csrf_checks=True), route, {"email": "a@x.example"}, secret)
    assert response.status_code == 202


@pytest.mark.parametrize("secret", [None, "", "wrong-secret"])
def test_a_missing_or_wrong_secret_is_401_and_stores_nothing(client, queued, secret):
    route, _ = make_route()
    response = post(client, route, {"email": "a@x.example"}, secret)
    assert response.status_code == 401
    assert "X-Kiln-Secret" in response.json()["error"]
    assert nothing_stored() and not queued


def test_the_secret_may_come_as_a_bearer_token(client, queued):
    route, secret = make_route()
    response = post(
        client, route, {"email": "a@x.example"}, None, HTTP_AUTHORIZATION=f"Bearer {secret}"
    )
    assert response.status_code == 202


@pytest.mark.parametrize(
    "body, words",
    [
        ('{"email": "a@x.example",', "Malformed JSON at line 1"),
        ("", "empty"),
        ("[]", "empty list"),
        ('"just text"', "a string, not a JSON object"),
        ('[{"email": "a"}, 42]', "Element 1 of the list is a number"),
        (b"\xff\xfe{}", "not UTF-8"),
    ],
)
def test_a_malformed_body_is_400_naming_the_problem_and_stores_nothing(client, queued, body, words):
    route, secret = make_route()
    response = post(client, route, body, secret)
    assert response.status_code == 400
    assert words in response.json()["error"]
    assert nothing_stored()


@pytest.mark.parametrize(
    "body, words",
    [
        ("[" * 2000 + "]" * 2000, "nested more than 64 levels"),
        ('{"a": ' + "[" * 65 + "]" * 65 + "}", "nested more than 64 levels"),
        ("[" * 100_000, "nested more than 64 levels"),
        ('{"score": NaN}', "NaN"),
        ('{"score": Infinity}', "Infinity"),
        ('{"score": -Infinity}', "-Infinity"),
        ('{"score": 1e400}', "too large"),
        ('{"score": -1e400}', "too large"),
        ('{"id": ' + "9" * 5000 + "}", "more than 4,300 digits"),
        ('{"name": "a\\u0000b"}', "NUL"),
        ('{"a\\u0000": 1}', "NUL"),
        ('{"name": "\\ud800"}', "lone surrogate (\\ud800)"),
        ('{"\\udfff": 1}', "lone surrogate"),
        ('[{"email": "a@x"}, {"deep": {"list": ["\\ud83d"]}}]', "lone surrogate"),
    ],
)
def test_an_unstorable_body_is_400_with_a_json_reason_and_stores_nothing(
    client, queued, body, words
):
    route, secret = make_route()
    response = post(client, route, body, secret)
    assert response.status_code == 400
    assert words in response.json()["error"]
    assert nothing_stored()


def test_a_row_64_levels_deep_with_escaped_emoji_and_a_4300_digit_number_is_stored(client, queued):
    route, secret = make_route()
    deep = "[" * 63 + "]" * 63
    body = '{"email": "a@x.example", "note": "\\ud83d\\ude00 ok", "n": ' + "9" * 4300
    response = post(client, route, body + ', "deep": ' + deep + "}", secret)
    assert response.status_code == 202, response.content
    assert InboundRow.objects.get().data["note"] == "\U0001f600 ok"


def chunked(body) -> dict:
    """What a server hands Django for a chunked body: no Content-Length, the decoded stream."""
    data = json.dumps(body).encode()
    return {
        "CONTENT_LENGTH": "",
        "HTTP_TRANSFER_ENCODING": "chunked",
        "wsgi.input": io.BytesIO(data),
    }


def test_a_chunked_body_without_content_length_is_read(client, queued):
    route, secret = make_route()
    response = post(client, route, "", secret, **chunked({"email": "a@x.example"}))
    assert response.status_code == 202, response.content
    assert InboundRow.objects.get().data == {"email": "a@x.example"}


def test_a_chunked_body_over_the_limit_is_413(client, queued, settings):
    settings.KILN_INBOUND_MAX_BYTES = 100
    route, secret = make_route()
    rows = [{"email": f"{n}@x.example"} for n in range(20)]
    response = post(client, route, "", secret, **chunked(rows))
    assert response.status_code == 413
    assert nothing_stored()


def test_a_body_the_server_cannot_read_is_400(client, queued, monkeypatch):
    from django.core.handlers.wsgi import WSGIRequest

    def broken(self, *args):
        raise OSError("connection reset")

    monkeypatch.setattr(WSGIRequest, "read", broken)
    route, secret = make_route()
    response = post(client, route, {"email": "a@x.example"}, secret)
    assert response.status_code == 400
    assert "could not be read" in response.json()["error"]
    assert nothing_stored()


def test_a_body_over_the_limit_is_413_and_stores_nothing(client, queued, settings):
    settings.KILN_INBOUND_MAX_BYTES = 100
    route, secret = make_route()
    response = post(client, route, [{"email": f"{n}@x.example"} for n in range(20)], secret)
    assert response.status_code == 413
    assert "at most 100" in response.json()["error"]
    assert nothing_stored()


def test_an_unknown_route_is_404_and_stores_nothing(client, queued):
    make_route()
    response = client.post("/in/no-such-route/", data="{}", content_type="application/json")
    assert response.status_code == 404
    assert nothing_stored()


@pytest.mark.parametrize("kind", [Sync.Kind.CLAY_TO_DIRECTUS, Sync.Kind.RELAY])
def test_the_endpoints_route_lookup_has_the_secrets_and_the_syncs_kind(kind):
    route, secret = make_route(kind=kind)
    route.mapping = [{"column": "Email", "field": "email", "cast": ""}]
    route.save()
    found = InboundRoute.receiving(route.slug)
    assert found.pk == route.pk and found.sync_kind == kind
    assert found.accepts(secret) and not found.accepts(secret + "x")
    assert found.mapping == route.mapping  # a field the lookup leaves out loads when read


@pytest.mark.parametrize("slug", ["no-such-route", "x' OR '1'='1", "%", ""])
def test_the_route_lookup_finds_nothing_for_an_unknown_slug(slug):
    make_route()
    assert InboundRoute.receiving(slug) is None


def test_only_post_is_accepted(client, queued):
    route, secret = make_route()
    assert (
        client.get(
            reverse("console:inbound", args=[route.slug]), HTTP_X_KILN_SECRET=secret
        ).status_code
        == 405
    )


def test_the_same_row_sent_twice_is_stored_once(client, queued):
    route, secret = make_route()
    post(client, route, {"email": "a@x.example", "Score": 5}, secret)
    # Same content, keys in another order: the same row.
    response = post(
        client, route, [{"Score": 5, "email": "a@x.example"}, {"email": "b@x.example"}], secret
    )
    assert response.status_code == 202
    assert response.json()["duplicates"] == 1
    assert InboundRow.objects.count() == 2


def test_every_column_of_the_receipt_and_row_is_stored_as_the_orm_would(client, queued):
    route, secret = make_route()
    before = timezone.now()
    body = {"email": "a@x.example", "kiln_row_id": "kr_" + "7" * 50, "note": "çà 'quoted' 🚀"}
    response = post(client, route, body, secret, REMOTE_ADDR="203.0.113.9")
    receipt = InboundReceipt.objects.get()
    assert response.json()["receipt"] == receipt.pk
    assert (receipt.route, receipt.rows, receipt.duplicates) == (route, 1, 0)
    assert receipt.size == len(json.dumps(body)) and receipt.remote_ip == "203.0.113.9"
    row = InboundRow.objects.get()
    assert (row.receipt, row.route, row.data) == (receipt, route, body)
    assert row.dedup_key == inbound.row_hash(body) and row.kiln_row_id == ("kr_" + "7" * 50)[:40]
    assert (row.status, row.attempts, row.last_error, row.run, row.next_attempt_at) == (
        "pending",
        0,
        "",
        None,
        None,
    )
    assert before <= receipt.received_at == row.created_at <= timezone.now()


def test_a_body_over_the_one_statement_size_is_stored_and_counted_the_same(client, queued):
    route, secret = make_route()
    post(client, route, {"n": 0}, secret)
    rows = [{"n": n} for n in range(inbound.ONE_STATEMENT_ROWS + 5)] + [{"n": 1}]
    response = post(client, route, rows, secret)
    # {"n": 0} was stored before; {"n": 1} appears twice in this body.
    assert response.json()["rows"] == len(rows) and response.json()["duplicates"] == 2
    assert InboundRow.objects.count() == inbound.ONE_STATEMENT_ROWS + 5
    assert InboundReceipt.objects.get(pk=response.json()["receipt"]).duplicates == 2


@pytest.mark.django_db(transaction=True)
def test_the_same_row_sent_at_once_on_many_connections_is_stored_once_and_counted_once(queued):
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connections

    route, _ = make_route()
    barrier = threading.Barrier(6)

    def send(n):
        barrier.wait()
        try:
            # Two rows each: one every request shares, one of its own.
            return inbound.accept(route, [{"same": True}, {"own": n}], size=0).duplicates
        finally:
            connections.close_all()

    with ThreadPoolExecutor(6) as pool:
        duplicates = sorted(pool.map(send, range(6)))
    assert duplicates == [0, 1, 1, 1, 1, 1]
    assert InboundRow.objects.filter(data={"same": True}).count() == 1
    assert InboundRow.objects.count() == 7


def test_during_a_rotation_both_secrets_work_until_the_old_one_is_revoked(client, queued):
    route, old = make_route()
    new = route.rotate()
    assert post(client, route, {"n": 1}, old).status_code == 202
    assert post(client, route, {"n": 2}, new).status_code == 202
    route.revoke_previous()
    assert post(client, route, {"n": 3}, old).status_code == 401
    assert post(client, route, {"n": 4}, new).status_code == 202


def test_the_endpoint_answers_when_the_broker_is_down(client, monkeypatch):
    route, secret = make_route()

    def broker_down(*args, **kwargs):
        raise ConnectionError("Error 111 connecting to redis:6379. Connection refused.")

    monkeypatch.setattr(tasks.process_route, "apply_async", broker_down)
    response = post(client, route, {"email": "a@x.example"}, secret)
    assert response.status_code == 202
    assert InboundRow.objects.filter(status="pending").count() == 1


def test_rows_that_arrive_while_workers_are_down_wait_and_are_written_once_they_return(
    client, queued
):
    route, secret = make_route()
    fake = FakeLeads([{"email": "known@x.example", "score": 1}])
    for n in range(30):
        assert (
            post(client, route, {"email": f"r{n}@x.example", "score": n}, secret).status_code == 202
        )
    assert post(client, route, {"email": "known@x.example", "score": 99}, secret).status_code == 202
    # No worker ran: everything waits, nothing is lost.
    assert InboundRow.objects.filter(status="pending", run__isnull=True).count() == 31
    # A worker comes back; the periodic sweep finds the waiting route.
    queued.clear()
    assert inbound.sweep()["woken"] == 1
    with respx.mock(assert_all_called=False) as router:
        fake.mount(router)
        tasks.process_route(route.pk)
    run = SyncRun.objects.get(sync=route.sync)
    assert run.status == "succeeded" and run.trigger == "inbound"
    assert (run.total, run.sent, run.failed) == (31, 31, 0)
    assert RowResult.objects.filter(run=run, status="created").count() == 30
    assert RowResult.objects.get(run=run, status="updated").row_key.endswith("known@x.example")
    assert fake.by_email("known@x.example")["score"] == 99
    assert InboundRow.objects.filter(status="done").count() == 31
    # A duplicate arriving later is not applied again.
    response = post(client, route, {"email": "r3@x.example", "score": 3}, secret)
    assert response.json()["duplicates"] == 1
    assert not InboundRow.objects.filter(status="pending").exists()


def test_a_row_directus_refuses_is_kept_with_its_reason_and_others_are_written(client, queued):
    route, secret = make_route()
    route.sync.write_mode = "create"
    route.sync.save()
    fake = FakeLeads([{"email": "taken@x.example"}])
    post(
        client,
        route,
        [{"email": "ok@x.example"}, {"email": "taken@x.example"}, {"first_name": "none"}],
        secret,
    )
    with respx.mock(assert_all_called=False) as router:
        fake.mount(router)
        tasks.process_route(route.pk)
    run = SyncRun.objects.get()
    assert (run.sent, run.failed, run.status) == (1, 2, "partly_failed")
    codes = set(
        RowResult.objects.filter(run=run, status="failed").values_list("error_code", flat=True)
    )
    assert codes == {"RECORD_NOT_UNIQUE", "FAILED_VALIDATION"}
    failed = InboundRow.objects.filter(status="failed")
    assert failed.count() == 2 and all(row.last_error for row in failed)


def test_directus_down_makes_rows_retry_later_not_fail(client, queued):
    route, secret = make_route()
    post(client, route, {"email": "a@x.example"}, secret)
    with respx.mock(assert_all_called=False) as router:
        import httpx

        router.route(host="directus.test").mock(side_effect=httpx.ConnectError("refused"))
        inbound_module = inbound
        tasks.process_route(route.pk)
    row = InboundRow.objects.get()
    assert row.status == "retrying" and row.next_attempt_at and row.run_id is None
    assert inbound_module.replay(InboundRow.objects.all()) == 1
    assert InboundRow.objects.get().status == "pending"


def test_a_crashed_run_is_taken_over_after_its_lease_and_its_rows_are_not_lost(client, queued):
    route, secret = make_route()
    fake = FakeLeads()
    post(client, route, [{"email": f"{n}@x.example"} for n in range(5)], secret)
    run = inbound_run.start_route_run(route.pk)
    # A worker claimed it and died before recording anything.
    assert core.claim(run.pk, "dead-worker")
    InboundRow.objects.update(run=run)
    assert not core.claim(run.pk, "second-worker")  # its lease still holds
    SyncRun.objects.filter(pk=run.pk).update(
        lease_expires_at=timezone.now() - dt.timedelta(seconds=1)
    )
    # The engine's periodic resume hands it to the write-back slice worker, not its own.
    with (
        mock.patch.object(tasks.run_inbound_slice, "delay") as inbound_delay,
        mock.patch.object(tasks.run_sync_slice, "delay") as engine_delay,
    ):
        assert sync.resume_stale_runs() == 1
    inbound_delay.assert_called_once_with(run.pk)
    engine_delay.assert_not_called()
    with respx.mock(assert_all_called=False) as router:
        fake.mount(router)
        tasks.run_inbound_slice(run.pk)
    run.refresh_from_db()
    assert run.status == "succeeded" and run.sent == 5
    assert RowResult.objects.filter(run=run).count() == 5


def test_an_enriched_row_carrying_a_kiln_row_id_is_linked_to_its_trace(client, queued):
    route, secret = make_route()
    roundtrip.start_traces(route.sync, "leads", [("17", "kr_test_1")])
    roundtrip.record_steps(
        [
            (
                "kr_test_1",
                RowTrace.Step.SENT,
                True,
                "Clay accepted the row.",
                RowTrace.objects.get().created_at,
                None,
            )
        ]
    )
    fake = FakeLeads()
    post(client, route, {"email": "a@x.example", "kiln_row_id": "kr_test_1", "score": 3}, secret)
    with respx.mock(assert_all_called=False) as router:
        fake.mount(router)
        tasks.process_route(route.pk)
    trace = RowTrace.objects.get()
    assert trace.step == "written" and trace.ok
    assert list(trace.events.values_list("step", flat=True)) == [
        "queued",
        "sent",
        "received",
        "written",
    ]
    # kiln_* bookkeeping columns are not written into Directus.
    assert "kiln_row_id" not in fake.by_email("a@x.example")


# -- a route's column mapping: Clay sends its own column names -----------------------------------

CLAY_MAPPING = [
    {"column": "Full Name", "field": "full_name", "cast": ""},
    {"column": "Email", "field": "email", "cast": "trim | lower"},
    {"column": "Score", "field": "score", "cast": "integer"},
]


def test_a_route_with_a_mapping_takes_clays_column_names_and_writes_the_fields(client, queued):
    route, secret = make_route()
    InboundRoute.objects.filter(pk=route.pk).update(mapping=CLAY_MAPPING)
    fake = FakeLeads([{"email": "known@x.example", "full_name": "Old"}])
    sent = [
        {"Full Name": "Ada Lovelace", "Email": " Ada@X.example ", "Score": "7", "Notes": "x"},
        {"Full Name": "Known Again", "Email": "known@x.example"},
    ]
    assert post(client, route, sent, secret).status_code == 202
    with respx.mock(assert_all_called=False) as router:
        fake.mount(router)
        tasks.process_route(route.pk)
    run = SyncRun.objects.get()
    assert (run.sent, run.failed) == (2, 0)
    created = fake.by_email("ada@x.example")
    assert {k: v for k, v in created.items() if k != "id"} == {
        "full_name": "Ada Lovelace",
        "email": "ada@x.example",
        "score": 7,
    }  # "Notes" is not in the mapping: ignored
    assert fake.by_email("known@x.example")["full_name"] == "Known Again"
    # The stored row keeps what Clay sent, so a replay after a mapping fix maps it again.
    assert InboundRow.objects.filter(data__Email=" Ada@X.example ").exists()


def test_a_value_that_does_not_cast_fails_its_row_naming_column_value_and_type(client, queued):
    route, secret = make_route()
    InboundRoute.objects.filter(pk=route.pk).update(mapping=CLAY_MAPPING)
    fake = FakeLeads()
    sent = [
        {"Email": "bad@x.example", "Score": "n/a"},
        {"Email": "good@x.example", "Score": 3},
    ]
    post(client, route, sent, secret)
    with respx.mock(assert_all_called=False) as router:
        fake.mount(router)
        tasks.process_route(route.pk)
    run = SyncRun.objects.get()
    assert (run.sent, run.failed) == (1, 1)
    failed = InboundRow.objects.get(status="failed")
    assert failed.data["Email"] == "bad@x.example"
    assert 'Column "Score"' in failed.last_error and '"n/a"' in failed.last_error
    assert "whole number" in failed.last_error and 'field "score"' in failed.last_error
    result = RowResult.objects.get(run=run, status="failed")
    assert result.error_code == "MAPPING_ERROR"
    assert fake.by_email("good@x.example")["score"] == 3 and fake.by_email("bad@x.example") is None


def test_a_row_with_none_of_the_mapped_columns_fails_saying_what_it_has(client, queued):
    route, secret = make_route()
    route.sync.write_mode = "create"
    route.sync.save()
    InboundRoute.objects.filter(pk=route.pk).update(mapping=CLAY_MAPPING)
    fake = FakeLeads()
    post(client, route, {"E-mail address": "a@x.example"}, secret)
    with respx.mock(assert_all_called=False) as router:
        fake.mount(router)
        tasks.process_route(route.pk)
    row = InboundRow.objects.get()
    assert row.status == "failed"
    assert '"E-mail address"' in row.last_error and '"Email"' in row.last_error
    assert not fake.items  # no empty item created


def test_a_burst_of_requests_queues_one_wake_up_and_asks_the_cache_once(monkeypatch):
    from integrations import tasks
    from integrations.runs import inbound

    class Cache:
        keys, asked = set(), 0

        def add(self, key, value, timeout):
            Cache.asked += 1
            if key in Cache.keys:
                return False
            Cache.keys.add(key)
            return True

    queued = []
    monkeypatch.setattr(tasks.process_route, "apply_async", lambda args, **kw: queued.append(args))
    monkeypatch.setattr(inbound, "cache", Cache())
    assert inbound.wake(7) is True
    assert [inbound.wake(7) for _ in range(20)] == [False] * 20
    assert queued == [(7,)] and Cache.asked == 1
    inbound.recent_wakes[7] -= inbound.WAKE_DEBOUNCE_SECONDS  # the debounce has passed
    Cache.keys.clear()  # and so has the cache entry's timeout
    assert inbound.wake(7) is True and queued == [(7,), (7,)]
