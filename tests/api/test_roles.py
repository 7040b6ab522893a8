"""Every endpoint × every caller: anonymous, a revoked token, an expired token, and a token of
each role. Allowed callers get the endpoint's answer, a weaker role 403, the rest 401; every
answer matches the OpenAPI document, and every action is audited under the token's name."""

import pytest
from django.urls import reverse

from console import access
from console.api import actions, views
from console.views import credentials, mappings, queries, runs, syncs, writeback
from integrations.models import AuditEvent
from tests.api import openapi
from tests.api.conftest import CALLERS, RANK

# (method, URL name, args from the world, role needed, status for an allowed caller, query)
ENDPOINTS = [
    ("get", "me", lambda w: [], "viewer", 200, {}),
    ("get", "connections", lambda w: [], "viewer", 200, {}),
    ("get", "connection", lambda w: [w.connection.pk], "viewer", 200, {}),
    ("post", "connection-test", lambda w: [w.connection.pk], "operator", 200, {}),
    ("get", "destinations", lambda w: [], "viewer", 200, {}),
    ("get", "destination", lambda w: [w.destination.pk], "viewer", 200, {}),
    ("get", "queries", lambda w: [], "viewer", 200, {}),
    ("get", "query", lambda w: [w.query.pk], "viewer", 200, {}),
    ("post", "query-count", lambda w: [w.query.pk], "operator", 200, {}),
    ("get", "templates", lambda w: [], "viewer", 200, {}),
    ("get", "template", lambda w: [w.template.pk], "viewer", 200, {}),
    ("get", "syncs", lambda w: [], "viewer", 200, {}),
    ("get", "sync", lambda w: [w.sync.pk], "viewer", 200, {}),
    ("post", "sync-start", lambda w: [w.sync.pk], "operator", 202, {}),
    ("get", "runs", lambda w: [], "viewer", 200, {}),
    ("get", "run", lambda w: [w.run.pk], "viewer", 200, {}),
    ("post", "run-cancel", lambda w: [w.active.pk], "operator", 202, {}),
    ("post", "run-retry", lambda w: [w.run.pk], "operator", 202, {}),
    ("post", "run-resume", lambda w: [w.stopped.pk], "operator", 202, {}),
    ("get", "run-results", lambda w: [w.run.pk], "viewer", 200, {}),
    ("get", "run-results", lambda w: [w.run.pk], "viewer", 200, {"format": "csv"}),
    ("get", "run-results", lambda w: [w.run.pk], "viewer", 200, {"q": "bad email"}),
    ("get", "run-result", lambda w: [w.run.pk, w.row.pk], "viewer", 200, {}),
    ("get", "row-timeline", lambda w: [w.trace.kiln_row_id], "viewer", 200, {}),
]


@pytest.fixture(autouse=True)
def no_network(offline):
    """Tests and counts answer without Directus (test_flow.py uses a loopback Directus)."""


def expected_status(caller, role, ok_status):
    if caller in ("anonymous", "revoked", "expired"):
        return 401
    return ok_status if RANK[caller] >= RANK[role] else 403


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize(
    "method,name,args,role,ok_status,query",
    ENDPOINTS,
    ids=[f"{e[0]}-{e[1]}-{'-'.join(e[5]) or 'plain'}" for e in ENDPOINTS],
)
def test_every_endpoint_answers_each_caller_as_its_role_allows(
    callers, world, engine, caller, method, name, args, role, ok_status, query
):
    url = reverse(f"api:{name}", args=args(world))
    if method == "get":
        response = callers[caller].get(url, query)
    else:
        response = callers[caller].post(url, {}, content_type="application/json")
    assert response.status_code == expected_status(caller, role, ok_status), response.content
    openapi.check(response)
    if response.status_code >= 400:
        error = response.json()["error"]
        assert error["code"] and error["message"]
    if caller in ("anonymous", "revoked", "expired"):
        assert response["WWW-Authenticate"] == 'Bearer realm="kiln"'
    if method == "post" and response.status_code < 400:
        event = AuditEvent.objects.order_by("-id").first()
        assert event.details["via"] == "api"
        assert event.details["token"] == f"{caller} script"
        assert event.actor_name == caller


def test_the_table_covers_every_api_route():
    from console.api.urls import api_patterns

    covered = {e[1] for e in ENDPOINTS}
    routes = {p.name for p in api_patterns} - {"schema", "schema-yaml", "no-such-endpoint"}
    assert routes == covered


@pytest.mark.parametrize(
    "endpoint,console_view",
    [
        (actions.start_run, syncs.start_run),
        (actions.cancel_run, runs.cancel_run),
        (actions.retry_failed_rows, runs.retry_failed_rows),
        (actions.resume_read, runs.resume_read),
        (actions.count_query, queries.count_matches),
        (actions.test_connection, credentials.test_connection),
        (views.runs, runs.runs),
        (views.run_results, runs.run_detail),
        (views.row_timeline, writeback.row_timeline),
        (views.templates, mappings.templates),
        (views.connections, credentials.connections),
    ],
)
def test_each_endpoint_asks_for_the_role_of_the_console_view_that_does_the_same(
    endpoint, console_view
):
    (permission,) = endpoint.cls.permission_classes
    assert permission.role == access.required_role(console_view)


def test_revoked_and_expired_tokens_say_why(callers):
    assert callers["revoked"].get(reverse("api:me")).json()["error"]["code"] == "token_revoked"
    assert callers["expired"].get(reverse("api:me")).json()["error"]["code"] == "token_expired"
    unknown = openapi.check(
        __import__("tests.api.conftest", fromlist=["bearer"])
        .bearer("kiln_not-a-real-token")
        .get(reverse("api:me"))
    )
    assert unknown.status_code == 401
    assert unknown.json()["error"]["code"] == "token_invalid"
