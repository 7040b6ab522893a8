"""The production entry point: Django as ASGI, served by gunicorn's asgi worker (Dockerfile).

An event loop reads request bodies, so a client trickling one to /in/<route>/ costs a
coroutine, not a worker: sign-in stays fast under 50 such clients (bench/slowclients.py).
Views stay synchronous; Django runs each request in a thread of its own, so three "Test"
clicks hanging on a slow server block three threads, not the site.

Django's ASGI handler reads the whole body before the view runs, so the public inbound
endpoint's limits are enforced here, while the body arrives: more than KILN_INBOUND_MAX_BYTES
is 413 and a body still incomplete after INBOUND_BODY_SECONDS is 408, before Django sees it.
"""

import asyncio
import json
import os
import time

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")
django_application = get_asgi_application()

from django.conf import settings  # noqa: E402  (after setup)

INBOUND_PREFIX = "/in/"
# A Clay or Flow row is a few kB: a client that takes longer than this is not sending one.
INBOUND_BODY_SECONDS = 30


async def application(scope, receive, send):
    if scope["type"] != "http" or not scope["path"].startswith(INBOUND_PREFIX):
        return await django_application(scope, receive, send)
    limit = settings.KILN_INBOUND_MAX_BYTES
    declared = _content_length(scope)
    if declared is not None and declared > limit:
        return await _problem(
            send, 413, f"The body is {declared:,} bytes; this route takes at most {limit:,}."
        )
    # Read the body here, bounded in size and time, then hand Django the same messages.
    deadline = time.monotonic() + INBOUND_BODY_SECONDS
    messages, size = [], 0
    while True:
        try:
            message = await asyncio.wait_for(receive(), max(deadline - time.monotonic(), 0))
        except TimeoutError:
            return await _problem(
                send, 408, f"The body did not arrive within {INBOUND_BODY_SECONDS} seconds."
            )
        if message["type"] != "http.request":
            return  # the client went away
        size += len(message.get("body", b""))
        if size > limit:
            return await _problem(
                send, 413, f"The body is over {limit:,} bytes, the most this route takes."
            )
        messages.append(message)
        if not message.get("more_body", False):
            break

    async def replay():
        return messages.pop(0) if messages else await receive()

    return await django_application(scope, replay, send)


def _content_length(scope):
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _problem(send, status, message):
    body = json.dumps({"error": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
