"""The production ASGI entry point: inbound bodies are bounded in size and time before Django
reads them, then served by Django's handler on the inbound threads; everything else passes
straight through (Dockerfile, bench/slowclients.py, bench/inbound.py)."""

import asyncio
import json
import threading

import pytest
from django.db import connections

from console import asgi
from integrations.models import InboundReceipt, InboundRow
from integrations.runs import inbound
from tests.console.test_inbound import make_route


def call(path, messages, headers=(), hang=False):
    """Run the app on one request; (status, body) of its answer, or what Django got."""
    sent, seen = [], []
    queue = list(messages)

    async def receive():
        if queue:
            return queue.pop(0)
        if hang:
            await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    async def django(scope, receive, send):
        while True:
            message = await receive()
            seen.append(message)
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 202, "headers": []})
        await send({"type": "http.response.body", "body": b"django"})

    scope = {"type": "http", "path": path, "method": "POST", "headers": list(headers)}
    original = asgi.django_application
    asgi.django_application = django
    try:
        asyncio.run(asgi.application(scope, receive, send))
    finally:
        asgi.django_application = original
    return sent[0]["status"], sent[1]["body"], seen


def chunk(body, more=False):
    return {"type": "http.request", "body": body, "more_body": more}


def test_a_declared_length_over_the_limit_is_413_before_any_body(settings):
    settings.KILN_INBOUND_MAX_BYTES = 10
    status, body, seen = call("/in/x/", [], headers=[(b"content-length", b"11")])
    assert status == 413 and "at most 10" in json.loads(body)["error"] and not seen


def test_a_chunked_body_growing_over_the_limit_is_413(settings):
    settings.KILN_INBOUND_MAX_BYTES = 10
    status, body, seen = call("/in/x/", [chunk(b"x" * 6, True), chunk(b"x" * 6, True)])
    assert status == 413 and not seen


def test_a_body_trickled_past_the_deadline_is_408(monkeypatch):
    monkeypatch.setattr(asgi, "INBOUND_BODY_SECONDS", 0.2)
    status, body, seen = call("/in/x/", [chunk(b"[", True)], hang=True)
    assert status == 408 and not seen


@pytest.mark.parametrize("path", ["/login/", "/runs/"])
def test_other_paths_go_straight_to_django(path, settings):
    settings.KILN_INBOUND_MAX_BYTES = 1
    status, _, seen = call(path, [chunk(b"x" * 100)], headers=[(b"content-length", b"100")])
    assert status == 202 and seen[0]["body"] == b"x" * 100


# -- /in/ requests, served for real: Django's handler, middleware and view on the inbound threads


def serve(path, messages, headers=(), host=b"localhost"):
    """The production app on one request, down to the database: (status, headers, body)."""
    sent, queue = [], list(messages)

    async def receive():
        return queue.pop(0) if queue else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": path,
        "query_string": b"",
        "scheme": "http",
        "server": ("localhost", 8000),
        "client": ("203.0.113.9", 40000),
        "headers": [(b"host", host), (b"content-type", b"application/json"), *headers],
    }
    asyncio.run(asgi.application(scope, receive, send))
    start, body = sent[0], b"".join(m.get("body", b"") for m in sent[1:])
    return start["status"], dict(start["headers"]), body


def secret_header(secret):
    return [(b"x-kiln-secret", secret.encode())]


@pytest.fixture
def queued(monkeypatch):
    calls = []
    monkeypatch.setattr(inbound, "wake", lambda route_id: calls.append(route_id))
    return calls


def open_connections() -> int:
    """How many inbound threads hold a database connection now (each thread answers once)."""
    barrier = threading.Barrier(asgi.INBOUND_THREAD_COUNT)

    def held():
        barrier.wait(5)  # every thread of the pool takes one of these
        return connections["default"].connection is not None

    futures = [asgi.INBOUND_THREADS.submit(held) for _ in range(asgi.INBOUND_THREAD_COUNT)]
    return sum(f.result() for f in futures)


@pytest.mark.django_db(transaction=True)
def test_a_row_in_two_chunks_is_stored_and_answered_by_the_real_view(queued):
    route, secret = make_route()
    status, headers, body = serve(
        route.path, [chunk(b'{"email": "ann@', True), chunk(b'x.com"}')], secret_header(secret)
    )
    assert status == 202, body
    answer = json.loads(body)
    assert answer["status"] == "accepted" and answer["rows"] == 1
    assert [r.data for r in InboundRow.objects.filter(route=route)] == [{"email": "ann@x.com"}]
    assert InboundReceipt.objects.get(pk=answer["receipt"]).remote_ip == "203.0.113.9"
    assert queued == [route.pk]
    assert open_connections() == 0  # each request gives its connection back


@pytest.mark.django_db(transaction=True)
def test_the_consoles_middleware_runs_for_inbound_requests(queued):
    route, secret = make_route()
    status, headers, _ = serve(route.path, [chunk(b'{"a": 1}')], secret_header(secret))
    assert status == 202
    # SecurityMiddleware and XFrameOptionsMiddleware set these on every answer.
    assert headers[b"X-Content-Type-Options"] == b"nosniff"
    assert headers[b"X-Frame-Options"] == b"DENY"
    # CommonMiddleware refuses a host that is not allowed, before the view stores anything.
    status, _, _ = serve(
        route.path, [chunk(b'{"a": 2}')], secret_header(secret), host=b"evil.example"
    )
    assert status == 400 and InboundRow.objects.count() == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("path", ["/in/nosuchroute/", "/in/a/b/", "/in/"])
def test_what_no_route_answers_under_in_is_404(path, queued):
    make_route()
    status, _, _ = serve(path, [chunk(b'{"a": 1}')])
    assert status == 404 and not InboundRow.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_wrong_secret_is_401_through_the_handler(queued):
    route, _ = make_route()
    status, _, body = serve(route.path, [chunk(b'{"a": 1}')], secret_header("wrong"))
    assert status == 401 and "secret" in json.loads(body)["error"]
    assert not InboundRow.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_an_error_in_the_view_is_djangos_500_and_the_connection_still_goes_back(
    queued, monkeypatch
):
    route, secret = make_route()

    def broken(raw, relay):
        raise RuntimeError("a bug")

    monkeypatch.setattr(inbound, "parse_body", broken)
    status, _, _ = serve(route.path, [chunk(b'{"a": 1}')], secret_header(secret))
    assert status == 500
    assert open_connections() == 0
