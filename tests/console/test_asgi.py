"""The production ASGI entry point: inbound bodies are bounded in size and time before Django
reads them; everything else passes straight through (Dockerfile, bench/slowclients.py)."""

import asyncio
import json

import pytest

from console import asgi


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


def test_an_inbound_body_reaches_django_whole(settings):
    status, body, seen = call("/in/x/", [chunk(b'{"a":', True), chunk(b"1}")])
    assert status == 202 and b"".join(m["body"] for m in seen) == b'{"a":1}'


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
