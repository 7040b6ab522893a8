"""The API fuzzed from its own OpenAPI document (schemathesis): no 500, no answer that breaks
the document, no endpoint that works without a token. Bounded: a few hundred requests."""

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from console.wsgi import application

EXAMPLES = 25

# The document as the API serves it, and the app to call in-process (same database as the test).
schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", application)


@pytest.fixture
def unthrottled(monkeypatch):
    """Fuzzing sends hundreds of requests a second from one token."""
    from console.api.auth import PerTokenThrottle

    monkeypatch.setattr(PerTokenThrottle, "allow_request", lambda self, request, view: True)


@pytest.fixture
def in_process():
    """Keep the test's database connection open across requests, as Django's test Client does
    (a WSGI request closes it when it ends, and the test's transaction with it)."""
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_the_api_holds_to_its_document_whatever_it_is_sent(
    case, world, tokens, engine, offline, unthrottled, in_process
):
    case.call_and_validate(headers={"Authorization": f"Bearer {tokens['admin']}"})
