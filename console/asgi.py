"""The production entry point: Django as ASGI, served by gunicorn's asgi worker (Dockerfile).

An event loop reads request bodies, so a client trickling one to /in/<route>/ costs a
coroutine, not a worker: sign-in stays fast under 50 such clients (bench/slowclients.py).
Views stay synchronous; Django runs each request in a thread of its own, so three "Test"
clicks hanging on a slow server block three threads, not the site.

The public inbound endpoint's limits are enforced here, while the body arrives: more than
KILN_INBOUND_MAX_BYTES is 413 and a body still incomplete after INBOUND_BODY_SECONDS is 408,
before Django sees it. Its requests then go to InboundHandler: Django's handler and
middleware, run on a small pool of threads in one call per request (see there why).
"""

import asyncio
import io
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import sync_to_async
from django.core import signals
from django.core.asgi import get_asgi_application
from django.core.handlers.asgi import get_script_prefix
from django.core.handlers.base import BaseHandler
from django.urls import set_script_prefix

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
    # Read the body here, bounded in size and time, then hand it to InboundHandler.
    deadline = time.monotonic() + INBOUND_BODY_SECONDS
    chunks, size = [], 0
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
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break

    response = await inbound_handler.respond(scope, b"".join(chunks))
    await django_application.send_response(response, send)
    if response.streaming:
        await sync_to_async(response.close, thread_sensitive=False, executor=INBOUND_THREADS)()


class InboundHandler(BaseHandler):
    """Django's handler for /in/, run as its WSGI handler runs: one call per request, in a thread.

    Django's ASGI handler gives every request a thread of its own and crosses between the event
    loop and threads several times (signals, each sync middleware, the view, closing). For the
    console's pages that costs nothing that matters; for the inbound endpoint, which Clay calls
    once per row, it was most of the time per request (py-spy, bench/inbound.py). Here the whole
    request (request_started, every middleware of settings.MIDDLEWARE, the view, closing)
    runs in one call on a thread of a small fixed pool, so a request crosses once each way and
    threads (and their database connections) are reused. Behaviour is Django's own: the same
    middleware, URLconf, views and error handling.
    """

    def __init__(self):
        super().__init__()
        self.load_middleware(is_async=False)

    async def respond(self, scope, body: bytes):
        return await sync_to_async(self._respond, thread_sensitive=False, executor=INBOUND_THREADS)(
            scope, body
        )

    def _respond(self, scope, body: bytes):
        set_script_prefix(get_script_prefix(scope))
        signals.request_started.send(sender=self.__class__, scope=scope)
        # Django's own request building, with its answers to a bad path (400) or size (413).
        request, response = django_application.create_request(scope, io.BytesIO(body))
        if request is not None:
            response = self.get_response(request)
        if not response.streaming:
            response.close()  # request_finished: the database connection goes back
        return response


# Threads for /in/ requests, per process. Each holds a database connection while it works
# (under the pool's DATABASE_POOL_MAX_SIZE, 10 by default, which the console's pages share);
# requests beyond them wait on the event loop, their bodies already read. 2, 4 and 6 measured
# alike on two cores (bench/inbound.py): the database's round trips, not threads, set the pace,
# and 4 leaves room for a database further away than loopback.
INBOUND_THREAD_COUNT = 4
INBOUND_THREADS = ThreadPoolExecutor(INBOUND_THREAD_COUNT, thread_name_prefix="inbound")
inbound_handler = InboundHandler()


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
