"""Action endpoints: start a run, cancel, retry failed rows, resume a read, count a saved
query's matches, test a connection. Each calls the domain function the console's button calls,
asks for the role that button's view asks for, and is audited with the token's name."""

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.decorators import api_view, permission_classes
from rest_framework.response import Response

from console.access import client_ip
from console.api import shapes
from console.api.auth import needs, token_of
from console.api.errors import Refused, Unavailable
from console.api.views import CONNECTIONS, QUERIES, RUNS, get, run_body
from console.views import credentials as credential_views
from console.views import queries as query_views
from console.views import runs as run_views
from console.views import syncs as sync_views
from integrations.directus.client import DirectusError
from integrations.models import AuditEvent, Sync
from integrations.runs import sources
from integrations.runs import sync as engine

ACCEPTED = {
    202: OpenApiResponse(shapes.RunDetail, description="Accepted: poll the run's `url`."),
    409: OpenApiResponse(shapes.Error, description="Refused, with the console's sentence."),
}


def audit(request, action, target, details):
    """One audit event, as the console writes them, naming the API token that acted."""
    token = token_of(request)
    details = {**details, "via": "api", "token": token.name if token else None}
    AuditEvent.record(request.user, client_ip(request), action, target, details)


def accepted(request, run):
    body = run_body(request, run)
    return Response(body, status=202, headers={"Location": body["url"]})


class StartRun(serializers.Serializer):
    dry_run = serializers.BooleanField(
        default=False, help_text="Record what would be sent, send nothing."
    )
    mode = serializers.ChoiceField(
        choices=Sync.Mode.choices,
        required=False,
        help_text="The run's mode is the sync's (full or incremental, set in the console); "
        "give it to be refused rather than run the other way.",
    )


@extend_schema(
    request=StartRun,
    responses=ACCEPTED,
    tags=["syncs"],
    summary="Start a run (full or incremental as the sync is set, or a dry run)",
)
@api_view(["POST"])
@permission_classes([needs(sync_views.start_run)])
def start_run(request, pk):
    sync = get(Sync.objects.select_related("template"), pk, "sync")
    body = StartRun(data=request.data if isinstance(request.data, dict) else {})
    body.is_valid(raise_exception=True)
    mode = body.validated_data.get("mode")
    if mode and mode != sync.mode:
        raise Refused(
            f'"{sync.name}" is a {sync.get_mode_display().lower()} sync; change its mode on the '
            f"sync's page to run it {Sync.Mode(mode).label.lower()}.",
            code="mode_mismatch",
        )
    dry_run = body.validated_data["dry_run"]
    try:
        run = engine.start_run(sync, started_by=request.user, trigger="manual", dry_run=dry_run)
    except engine.SyncError as exc:
        raise Refused(str(exc), code="sync_refused") from None
    audit(
        request,
        AuditEvent.Action.USED,
        sync,
        {"use": "start run", "run": run.pk, "dry_run": dry_run},
    )
    return accepted(request, get(RUNS, run.pk, "run"))


@extend_schema(request=None, responses=ACCEPTED, tags=["runs"], summary="Ask a running run to stop")
@api_view(["POST"])
@permission_classes([needs(run_views.cancel_run)])
def cancel_run(request, pk):
    run = get(RUNS, pk, "run")
    if not run.is_active:
        raise Refused(
            f"Run {run.pk} already ended ({run.get_status_display()}); there is nothing to cancel.",
            code="not_active",
        )
    engine.request_cancel(run)
    audit(request, AuditEvent.Action.USED, run.sync, {"use": "cancel run", "run": run.pk})
    return accepted(request, get(RUNS, pk, "run"))


@extend_schema(
    request=None,
    responses=ACCEPTED,
    tags=["runs"],
    summary="Retry a finished run's failed rows in a new run",
)
@api_view(["POST"])
@permission_classes([needs(run_views.retry_failed_rows)])
def retry_failed_rows(request, pk):
    run = get(RUNS, pk, "run")
    if run.is_active or not run.failed:
        raise Refused(
            "Only a finished run with failed rows can have them retried.", code="nothing_to_retry"
        )
    try:
        retry = engine.retry_failed_rows(run, started_by=request.user)
    except engine.SyncError as exc:
        raise Refused(str(exc), code="sync_refused") from None
    audit(
        request,
        AuditEvent.Action.USED,
        run.sync,
        {"use": "retry failed rows", "run": run.pk, "retry": retry.pk},
    )
    return accepted(request, get(RUNS, retry.pk, "run"))


@extend_schema(
    request=None,
    responses=ACCEPTED,
    tags=["runs"],
    summary="Continue a run whose read of Directus stopped, from its checkpoint",
)
@api_view(["POST"])
@permission_classes([needs(run_views.resume_read)])
def resume_read(request, pk):
    run = get(RUNS, pk, "run")
    try:
        engine.resume_read(run, started_by=request.user)
    except engine.SyncError as exc:
        raise Refused(str(exc), code="sync_refused") from None
    audit(request, AuditEvent.Action.USED, run.sync, {"use": "resume read", "run": run.pk})
    return accepted(request, get(RUNS, pk, "run"))


@extend_schema(
    request=None,
    responses={
        200: shapes.CountOut,
        502: OpenApiResponse(shapes.Error, description="Directus refused; the reason in words."),
    },
    tags=["queries"],
    summary="Count the items a sync over this saved query would read (meta=filter_count)",
)
@api_view(["POST"])
@permission_classes([needs(query_views.count_matches)])
def count_query(request, pk):
    saved = get(QUERIES.select_related("connection__token"), pk, "saved query")
    collections = (saved.connection.schema or {}).get("collections") or {}
    key = (collections.get(saved.collection) or {}).get("primary_key") or "id"
    # The count a run starts with: the sync engine's own, for a sync over this query.
    probe = Sync(saved_query=saved, row_key=key)
    status = 200
    try:
        with saved.connection.client(rate_limit_wait=query_views.RATE_LIMIT_WAIT) as directus:
            count = sources.count_rows(directus, probe)
    except DirectusError as exc:
        status = exc.status
        raise Unavailable(f"Directus refused the count: {exc.explain()}") from None
    finally:
        audit(
            request,
            AuditEvent.Action.USED,
            saved.connection,
            {"use": "count matches", "collection": saved.collection, "status": status},
        )
    return Response(
        {"saved_query": saved.pk, "collection": saved.collection, "filter_count": count}
    )


@extend_schema(
    request=None,
    responses=shapes.Connection,
    tags=["credentials"],
    summary="Test a connection: reachability, the token (/users/me), what it may read",
)
@api_view(["POST"])
@permission_classes([needs(credential_views.test_connection)])
def test_connection(request, pk):
    connection = get(CONNECTIONS, pk, "connection")
    stages = connection.run_test()
    audit(
        request,
        AuditEvent.Action.TESTED,
        connection,
        {"ok": connection.last_test_ok, "stages": [(s["name"], s["ok"]) for s in stages]},
    )
    return Response(shapes.connection(request, connection))
