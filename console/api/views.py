"""Read endpoints: credentials (never a secret), queries, templates, syncs, runs, row results.

Each asks for the role of the console page that shows the same thing (`needs(...)`) and the
same query functions (integrations.runs.history), so the page and the API cannot disagree.
"""

import re

from django.db.models import OuterRef, Subquery
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import renderers, serializers
from rest_framework.decorators import api_view, permission_classes, renderer_classes
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from console.api import shapes
from console.api.auth import needs, token_of
from console.views import credentials as credential_views
from console.views import mappings as mapping_views
from console.views import queries as query_views
from console.views import runs as run_views
from console.views import syncs as sync_views
from console.views import writeback as writeback_views
from integrations.models import (
    ClayDestination,
    DirectusConnection,
    MappingTemplate,
    RowResult,
    RowTrace,
    SavedQuery,
    Sync,
    SyncRun,
)
from integrations.runs import history

BIGINT = 2**63 - 1


def get(queryset, pk, what):
    """The object, or a 404 that says what was missing."""
    obj = queryset.filter(pk=pk).first() if pk <= BIGINT else None
    if obj is None:
        raise NotFound(f"There is no {what} {pk}.")
    return obj


def _link(request, **cursor):
    """This URL with its query kept and the cursor (after= or before=) replaced."""
    params = request.query_params.copy()
    for name in ("after", "before"):
        params.pop(name, None)
    for name, value in cursor.items():
        params[name] = str(value)
    return request.build_absolute_uri(request.path) + "?" + params.urlencode()


def _page_links(request, prev_cursor, next_cursor):
    """(next, previous) page URLs; None where there is no page that way."""
    return (
        _link(request, after=next_cursor) if next_cursor is not None else None,
        _link(request, before=prev_cursor) if prev_cursor is not None else None,
    )


@extend_schema(exclude=True)
@api_view(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"])
@permission_classes([])
def no_such_endpoint(request):
    """Any other path under /api/v1/ (a mistyped id included): a JSON 404, not the HTML page."""
    raise NotFound(f"There is no API endpoint at {request.path[:200]}.")


# -- who am I --------------------------------------------------------------------------------


@extend_schema(responses=shapes.Me, tags=["account"], summary="The caller: user, role and token")
@api_view(["GET"])
def me(request):
    token = token_of(request)
    return Response(
        {
            "username": request.user.username,
            "role": request.user.role,
            "token": token.name if token else None,
        }
    )


# -- credentials -----------------------------------------------------------------------------

CONNECTIONS = DirectusConnection.objects.select_related("token")
DESTINATIONS = ClayDestination.objects.select_related("webhook_url")


@extend_schema(
    responses=shapes.listing(shapes.Connection),
    tags=["credentials"],
    summary="Directus connections, with their test and token state (never the token)",
)
@api_view(["GET"])
@permission_classes([needs(credential_views.connections)])
def connections(request):
    return Response({"results": [shapes.connection(request, c) for c in CONNECTIONS.all()]})


@extend_schema(responses=shapes.Connection, tags=["credentials"], summary="One Directus connection")
@api_view(["GET"])
@permission_classes([needs(credential_views.connection_detail)])
def connection(request, pk):
    return Response(shapes.connection(request, get(CONNECTIONS, pk, "connection")))


@extend_schema(
    responses=shapes.listing(shapes.Destination),
    tags=["credentials"],
    summary="Clay destinations, with their test state and submissions (never a secret)",
)
@api_view(["GET"])
@permission_classes([needs(credential_views.destinations)])
def destinations(request):
    return Response({"results": [shapes.destination(request, d) for d in DESTINATIONS.all()]})


@extend_schema(responses=shapes.Destination, tags=["credentials"], summary="One Clay destination")
@api_view(["GET"])
@permission_classes([needs(credential_views.destination_detail)])
def destination(request, pk):
    return Response(shapes.destination(request, get(DESTINATIONS, pk, "Clay destination")))


# -- saved queries and templates -------------------------------------------------------------

QUERIES = SavedQuery.objects.select_related("connection")


@extend_schema(
    responses=shapes.listing(shapes.SavedQuery), tags=["queries"], summary="Saved queries"
)
@api_view(["GET"])
@permission_classes([needs(query_views.saved_queries)])
def queries(request):
    return Response({"results": [shapes.saved_query(request, q) for q in QUERIES.all()]})


@extend_schema(responses=shapes.SavedQuery, tags=["queries"], summary="One saved query")
@api_view(["GET"])
@permission_classes([needs(query_views.saved_queries)])
def query(request, pk):
    return Response(shapes.saved_query(request, get(QUERIES, pk, "saved query")))


@extend_schema(
    responses=shapes.listing(shapes.Template), tags=["templates"], summary="Mapping templates"
)
@api_view(["GET"])
@permission_classes([needs(mapping_views.templates)])
def templates(request):
    return Response(
        {"results": [shapes.template(request, t) for t in MappingTemplate.objects.all()]}
    )


@extend_schema(responses=shapes.Template, tags=["templates"], summary="One mapping template")
@api_view(["GET"])
@permission_classes([needs(mapping_views.template_detail)])
def template(request, pk):
    return Response(shapes.template(request, get(MappingTemplate.objects, pk, "template")))


# -- syncs -----------------------------------------------------------------------------------


def _syncs():
    latest = SyncRun.objects.filter(sync=OuterRef("pk")).order_by("-created_at", "-id")
    return Sync.objects.annotate(
        last_run_id=Subquery(latest.values("id")[:1]),
        last_run_status=Subquery(latest.values("status")[:1]),
        last_run_created_at=Subquery(latest.values("created_at")[:1]),
    )


@extend_schema(
    responses=shapes.listing(shapes.SyncOut), tags=["syncs"], summary="Syncs with their last run"
)
@api_view(["GET"])
@permission_classes([needs(sync_views.syncs)])
def syncs(request):
    return Response({"results": [shapes.sync(request, s) for s in _syncs()]})


@extend_schema(responses=shapes.SyncOut, tags=["syncs"], summary="One sync with its last run")
@api_view(["GET"])
@permission_classes([needs(sync_views.sync_detail)])
def sync(request, pk):
    return Response(shapes.sync(request, get(_syncs(), pk, "sync")))


# -- runs ------------------------------------------------------------------------------------


class Cursor(serializers.Serializer):
    after = serializers.IntegerField(
        required=False, min_value=0, max_value=BIGINT, help_text="Page after this id."
    )
    before = serializers.IntegerField(
        required=False, min_value=0, max_value=BIGINT, help_text="Page before this id."
    )


class RunFilters(Cursor):
    sync = serializers.IntegerField(required=False, min_value=1, max_value=BIGINT)
    status = serializers.ChoiceField(choices=SyncRun.Status.choices, required=False)
    since = serializers.DateField(required=False, help_text="Created on or after this day (UTC).")
    until = serializers.DateField(required=False, help_text="Created on or before this day (UTC).")
    limit = serializers.IntegerField(required=False, min_value=1, max_value=200, default=50)


RUNS = SyncRun.objects.select_related("sync", "started_by")


def _valid(serializer_class, request):
    # A plain dict, not the QueryDict: DRF would read `?until=` as "not given"; it is invalid.
    filters = serializer_class(data=request.query_params.dict())
    filters.is_valid(raise_exception=True)
    return filters.validated_data


@extend_schema(
    parameters=[RunFilters],
    responses=shapes.RunPage,
    tags=["runs"],
    summary="Runs, newest first, filtered by sync, status and day; keyset pages",
)
@api_view(["GET"])
@permission_classes([needs(run_views.runs)])
def runs(request):
    f = _valid(RunFilters, request)
    items = history.filter_runs(
        RUNS.only(
            *(
                "id sync sync__name status trigger dry_run started_by "
                "started_by__username retry_of created_at started_at finished_at total sent "
                "skipped failed resent expected_total cancel_requested checkpoint last_error"
            ).split()
        ),
        sync_id=f.get("sync"),
        status=f.get("status", ""),
        since=f.get("since"),
        until=f.get("until"),
    )
    page, prev_cursor, next_cursor = history.keyset_page(
        items, after=f.get("after"), before=f.get("before"), size=f["limit"], descending=True
    )
    next_url, prev_url = _page_links(request, prev_cursor, next_cursor)
    return Response(
        {
            "results": [shapes.run(request, r) for r in page],
            "next": next_url,
            "previous": prev_url,
        }
    )


def run_body(request, run):
    """A run with its counts by cause and links; also the body of a 202 that started one."""
    return {
        **shapes.run(request, run),
        "causes": history.counts_by_cause(run),
        "csv_url": shapes.url(request, "run-results", run.pk, query="?format=csv"),
    }


@extend_schema(
    responses=shapes.RunDetail,
    tags=["runs"],
    summary="One run: status, counts by outcome and by cause; poll it until `active` is false",
)
@api_view(["GET"])
@permission_classes([needs(run_views.run_detail)])
def run(request, pk):
    return Response(run_body(request, get(RUNS, pk, "run")))


class ResultFilters(Cursor):
    status = serializers.ChoiceField(choices=RowResult.Status.choices, required=False)
    q = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=200,
        help_text="Error code or message contains this (failed and skipped rows).",
    )
    limit = serializers.IntegerField(required=False, min_value=1, max_value=500, default=100)


class CSVRenderer(renderers.BaseRenderer):
    """`?format=csv` or `Accept: text/csv`: the rows as a CSV file, streamed (the view's job)."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        # Only errors reach a renderer here (rows are streamed): write them as one line.
        return str((data or {}).get("error", {}).get("message", "")).encode()


@extend_schema(
    parameters=[
        ResultFilters,
        OpenApiParameter(
            "format",
            enum=["json", "csv"],
            required=False,
            description="csv: every matching row as a CSV file (ignores paging).",
        ),
    ],
    responses={
        (200, "application/json"): shapes.RowPage,
        (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="Every matching row."),
    },
    tags=["runs"],
    summary="A run's row results, filtered as on the run page; keyset pages or CSV",
)
@api_view(["GET"])
@renderer_classes([renderers.JSONRenderer, CSVRenderer])
@permission_classes([needs(run_views.run_detail)])
def run_results(request, pk):
    run = get(RUNS, pk, "run")
    f = _valid(ResultFilters, request)
    status, q = f.get("status", ""), f.get("q", "").strip()
    if request.accepted_renderer.format == "csv":
        return run_views.csv_response(request._request, run, history.filter_results(run, status, q))
    before = f.get("before")
    page = history.results_page(
        run,
        status,
        q,
        after=f.get("after"),
        before=before,
        size=f["limit"],
        window=run_views.SEARCH_WINDOW,
    )
    next_url, prev_url = _page_links(request, page.prev_cursor, page.next_cursor)
    search = None
    if page.searched is not None:
        further = None
        if page.stop is not None:
            # Search on from where this window stopped, in the direction it was going.
            further = _link(request, **{"before" if before is not None else "after": page.stop.id})
        search = {
            "window": run_views.SEARCH_WINDOW,
            "statuses": page.searched,
            "stopped_at": page.stop.id if page.stop is not None else None,
            "search_further": further,
        }
    return Response(
        {
            "results": [shapes.row(r) for r in page.rows],
            "next": next_url,
            "previous": prev_url,
            "search": search,
        }
    )


@extend_schema(responses=shapes.RowDetail, tags=["runs"], summary="One row result of a run")
@api_view(["GET"])
@permission_classes([needs(run_views.row_detail)])
def run_result(request, pk, row_pk):
    run = get(RUNS, pk, "run")
    row = get(RowResult.objects.filter(run=run), row_pk, f"row result in run {run.pk} with id")
    trace = history.trace_of(run, row)
    return Response(
        {
            **shapes.row(row),
            "payload_hash": row.payload_hash,
            "request_excerpt": row.request_excerpt,
            "response_excerpt": row.response_excerpt,
            "timeline_url": shapes.url(request, "row-timeline", trace.kiln_row_id)
            if trace
            else None,
        }
    )


ROW_ID = re.compile(r"kr_[0-9A-Za-z_]{1,37}")


@extend_schema(
    responses=shapes.Timeline,
    tags=["runs"],
    summary="A row's round trip: queued → sent to Clay → enriched row back → written to Directus",
)
@api_view(["GET"])
@permission_classes([needs(writeback_views.row_timeline)])
def row_timeline(request, kiln_row_id):
    trace = None
    if ROW_ID.fullmatch(kiln_row_id):
        trace = RowTrace.objects.select_related("sync").filter(kiln_row_id=kiln_row_id).first()
    if trace is None:
        raise NotFound(f"There is no traced row {kiln_row_id[:40]}.")
    return Response(shapes.timeline(trace, list(trace.events.all())))
