"""Run history: the runs list, a run's live progress, its row results (keyset-paged) and CSV."""

import csv
import datetime as dt
from urllib.parse import urlencode

from django.contrib import messages
from django.db import connection
from django.db.models import Q
from django.http import StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from console.access import operator_required, viewer_required
from integrations import sync as engine
from integrations.models import RowResult, RowTrace, Sync, SyncRun

RUNS_PER_PAGE = 50
RESULTS_PER_PAGE = 100
# The statuses whose rows carry an error code and message.
WITH_ERRORS = [RowResult.Status.FAILED, RowResult.Status.SKIPPED]
# An error-text search reads at most this many rows that carry an error per page request,
# then offers "search further" from where it stopped (bench/README.md: the results page).
SEARCH_WINDOW = 5000
# The columns the results table shows.
RESULT_COLUMNS = [
    "id",
    "row_key",
    "status",
    "http_status",
    "error_code",
    "error_message",
    "attempts",
    "duration_ms",
    "resent",
    "created_at",
]
# htmx stops polling when a poll answers with this status.
STOP_POLLING = 286


def _int(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _date(value):
    try:
        return dt.date.fromisoformat(value)
    except (TypeError, ValueError):
        return None


def keyset_page(queryset, after=None, before=None, size=RESULTS_PER_PAGE, descending=False):
    """One page ordered by id, from the id after or before a cursor; no OFFSET, no COUNT.

    Returns (rows, newer_cursor, older_cursor) where a cursor is None when there is no page
    that way; "next" walks in the list's direction (ascending ids for results, descending
    for runs). Example: ids 1..250 ascending, after=100 → rows 101..200, prev 101, next 200.
    """
    forward, backward = ("-id", "id") if descending else ("id", "-id")
    gt, lt = ("id__lt", "id__gt") if descending else ("id__gt", "id__lt")
    if before is not None:
        rows = list(queryset.filter(**{lt: before}).order_by(backward)[: size + 1])
        has_prev = len(rows) > size
        rows = rows[:size][::-1]
        has_next = True
    else:
        qs = queryset.filter(**{gt: after}) if after is not None else queryset
        rows = list(qs.order_by(forward)[: size + 1])
        has_next = len(rows) > size
        rows = rows[:size]
        has_prev = after is not None
    prev_cursor = rows[0].id if rows and has_prev else None
    next_cursor = rows[-1].id if rows and has_next else None
    return rows, prev_cursor, next_cursor


def search_page(
    run, statuses, text, after=None, before=None, size=RESULTS_PER_PAGE, window=SEARCH_WINDOW
):
    """One page of a run's rows of these statuses whose error code or message contains text.

    A bounded search: it reads at most `window` rows of the statuses, the next ones in id
    order from the cursor (after it, or before it going back), each status through the
    (run, status, id) index, and keeps those that match. Returns (rows, prev_cursor,
    next_cursor, stop): rows in ascending id order; stop is None when the search covered
    every row that way, else the last row it read before the page filled — the page then
    offers to search on from stop.id (after it, or before it when going back). No OFFSET,
    no COUNT: one query, which stops as soon as the page is full.
    """
    backward = before is not None
    cursor = before if backward else after
    order, op = ("DESC", "<") if backward else ("ASC", ">")
    table, quote = RowResult._meta.db_table, connection.ops.quote_name
    columns = ", ".join(quote(c) for c in RESULT_COLUMNS)
    # Only quoted column names and fixed keywords are put into the SQL; every value is a
    # parameter.
    after_cursor = f" AND {quote('id')} {op} %s" if cursor is not None else ""
    branch = (
        f"SELECT * FROM (SELECT {columns} FROM {quote(table)}"  # noqa: S608
        f" WHERE {quote('run_id')} = %s AND {quote('status')} = %s{after_cursor}"
        f" ORDER BY {quote('id')} {order} LIMIT %s) AS branch_{{n}}"
    )
    branches, params = [], []
    for n, status in enumerate(statuses):
        branches.append(branch.format(n=n))
        params += [run.pk, status] + ([cursor] if cursor is not None else []) + [window]
    like = "%" + connection.ops.prep_for_like_query(text) + "%"
    # The window: each status's next rows merged in id order, cut at `window`; then the
    # matches in it, numbered, plus the window's last row (pos = window) if it was reached.
    sql = f"""
        SELECT * FROM (
            SELECT candidate.*,
                ROW_NUMBER() OVER (ORDER BY {quote("id")} {order}) AS pos,
                (UPPER({quote("error_code")}) LIKE UPPER(%s) ESCAPE '\\'
                 OR UPPER({quote("error_message")}) LIKE UPPER(%s) ESCAPE '\\') AS matched
            FROM ({" UNION ALL ".join(branches)} ORDER BY {quote("id")} {order} LIMIT %s)
                AS candidate
        ) AS searched
        WHERE matched OR pos = %s
        ORDER BY {quote("id")} {order}
        LIMIT %s"""  # noqa: S608
    params = [like, like, *params, window, window, size + 1]
    found = list(RowResult.objects.raw(sql, params))
    matches = [row for row in found if row.matched]
    stop = None
    if len(matches) > size:
        matches, more = matches[:size], True
    else:
        # Everything the window held came back; its last row, if read, is where it stopped.
        stop = next((row for row in found if row.pos == window), None)
        more = False
    if backward:
        rows = matches[::-1]
        prev_cursor = rows[0].id if rows and more else None
        next_cursor = rows[-1].id if rows else None
    else:
        rows = matches
        prev_cursor = rows[0].id if rows and after is not None else None
        next_cursor = rows[-1].id if rows and more else None
    return rows, prev_cursor, next_cursor, stop


def duration_text(run):
    """A run's duration in short words: 0.4 s, 42 s, 3 min 5 s, 2 h 10 min; "" before it starts."""
    if run.duration is None:
        return ""
    seconds = run.duration.total_seconds()
    if seconds < 10:
        return f"{seconds:.1f} s"
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def with_durations(runs):
    for run in runs:
        run.duration_text = duration_text(run)
    return runs


# Runs list


@viewer_required
def runs(request):
    filters = {
        "sync": request.GET.get("sync", ""),
        "status": request.GET.get("status", ""),
        "since": request.GET.get("since", ""),
        "until": request.GET.get("until", ""),
    }
    items = SyncRun.objects.select_related("sync", "started_by", "retry_of")
    if _int(filters["sync"]):
        items = items.filter(sync_id=_int(filters["sync"]))
    if filters["status"] in SyncRun.Status.values:
        items = items.filter(status=filters["status"])
    since, until = _date(filters["since"]), _date(filters["until"])
    if since:
        items = items.filter(created_at__gte=_start_of(since))
    if until:
        items = items.filter(created_at__lt=_start_of(until + dt.timedelta(days=1)))
    page, prev_cursor, next_cursor = keyset_page(
        items,
        after=_int(request.GET.get("after")),
        before=_int(request.GET.get("before")),
        size=RUNS_PER_PAGE,
        descending=True,
    )
    return render(
        request,
        "runs/list.html",
        {
            "runs": with_durations(page),
            "filters": filters,
            "query": _query(filters),
            "prev_cursor": prev_cursor,
            "next_cursor": next_cursor,
            "syncs": Sync.objects.only("id", "name"),
            "statuses": SyncRun.Status.choices,
        },
    )


def _start_of(day):
    return timezone.make_aware(dt.datetime.combine(day, dt.time.min))


def _query(filters):
    """The filters as a query string prefix for paging links (`status=failed&q=x&`)."""
    kept = {k: v for k, v in filters.items() if v}
    return urlencode(kept) + "&" if kept else ""


# One run


def _get_run(pk):
    run = get_object_or_404(
        SyncRun.objects.select_related("sync__destination", "started_by"), pk=pk
    )
    run.duration_text = duration_text(run)
    return run


def _results(request, run):
    filters = {"status": request.GET.get("status", ""), "q": request.GET.get("q", "").strip()}
    results = RowResult.objects.filter(run=run).only(*RESULT_COLUMNS)
    status = filters["status"] if filters["status"] in RowResult.Status.values else ""
    if status:
        results = results.filter(status=status)
    if filters["q"]:
        # Only failed and skipped rows carry an error (sent, created and updated rows have none),
        # so the text search reads those through the (run, status, id) index instead of
        # scanning every row of the run: 1M results, 2 % failed → 20k rows read, not 1M.
        if not status:
            results = results.filter(status__in=WITH_ERRORS)
        elif status not in WITH_ERRORS:
            return results.none(), filters
        results = results.filter(
            Q(error_code__icontains=filters["q"]) | Q(error_message__icontains=filters["q"])
        )
    return results, filters


@viewer_required
def run_detail(request, pk):
    run = _get_run(pk)
    results, filters = _results(request, run)
    after, before = _int(request.GET.get("after")), _int(request.GET.get("before"))
    status = filters["status"] if filters["status"] in RowResult.Status.values else ""
    search = None
    if filters["q"] and (not status or status in WITH_ERRORS):
        # Error text: a bounded search window per request (see search_page).
        statuses = [status] if status else WITH_ERRORS
        rows, prev_cursor, next_cursor, stop = search_page(
            run, statuses, filters["q"], after=after, before=before, window=SEARCH_WINDOW
        )
        search = {
            "window": SEARCH_WINDOW,
            "rows_label": f"{status} rows" if status else "failed and skipped rows",
            "stop": stop,
            "backward": before is not None,
        }
    else:
        rows, prev_cursor, next_cursor = keyset_page(results, after=after, before=before)
    context = {
        "run": run,
        "rows": rows,
        "filters": filters,
        "query": _query(filters),
        "prev_cursor": prev_cursor,
        "next_cursor": next_cursor,
        "search": search,
        "statuses": RowResult.Status.choices,
    }
    if request.htmx and request.htmx.target == "results":
        return render(request, "runs/detail.html#results", context)
    return render(request, "runs/detail.html", context)


@viewer_required
def run_progress(request, pk):
    """The #progress partial for polling; 286 once the run is done so htmx stops asking."""
    run = _get_run(pk)
    if not request.htmx:
        return redirect("console:run-detail", pk=pk)
    response = render(request, "runs/detail.html#progress", {"run": run})
    if not run.is_active:
        response.status_code = STOP_POLLING
        # The results table listens for this and reloads itself once.
        response["HX-Trigger"] = "run-finished"
    return response


@operator_required
@require_POST
def cancel_run(request, pk):
    run = _get_run(pk)
    if run.is_active:
        engine.request_cancel(run)
        run = _get_run(pk)
        if not request.htmx:
            messages.success(request, "Cancel requested; unsent rows will be recorded as skipped.")
    if request.htmx:
        response = render(request, "runs/detail.html#progress", {"run": run})
        if not run.is_active:  # a queued run no worker held is cancelled at once
            response["HX-Trigger"] = "run-finished"
        return response
    return redirect("console:run-detail", pk=pk)


@operator_required
@require_POST
def resume_read(request, pk):
    """Continue a run whose read of Directus stopped, from its checkpoint."""
    run = _get_run(pk)
    try:
        engine.resume_read(run, started_by=request.user)
    except engine.SyncError as e:
        messages.error(request, str(e))
    else:
        messages.success(request, f"Run {run.pk} resumes reading where it stopped.")
    return redirect("console:run-detail", pk=pk)


@operator_required
@require_POST
def retry_failed_rows(request, pk):
    run = _get_run(pk)
    if run.is_active or not run.failed:
        messages.error(request, "Only a finished run with failed rows can have them retried.")
        return redirect("console:run-detail", pk=pk)
    try:
        retry = engine.retry_failed_rows(run, started_by=request.user)
    except engine.SyncError as e:
        messages.error(request, str(e))
        return redirect("console:run-detail", pk=pk)
    messages.success(request, f"Retrying the {run.failed} failed rows of run {run.pk}.")
    return redirect("console:run-detail", pk=retry.pk)


@viewer_required
def row_detail(request, pk, row_pk):
    run = _get_run(pk)
    row = get_object_or_404(RowResult, run=run, pk=row_pk)
    # The row's round trip, when this run traced it (rows sent to Clay, rows written back).
    trace = (
        RowTrace.objects.filter(events__run=run)
        .filter(Q(directus_key=row.row_key) | Q(kiln_row_id=row.row_key))
        .first()
    )
    template = "runs/row.html#detail" if request.htmx else "runs/row.html"
    return render(request, template, {"run": run, "row": row, "trace": trace})


# CSV export

CSV_COLUMNS = [
    "id",
    "row_key",
    "status",
    "http_status",
    "error_code",
    "error_message",
    "attempts",
    "duration_ms",
    "resent",
    "payload_hash",
    "created_at",
]


class _Echo:
    """A file-like object whose write returns the line, for csv.writer in a stream."""

    def write(self, value):
        return value


def _cell(value):
    """Neutralise spreadsheet formulas in text from outside (`=HYPERLINK(...)` → `'=HYPERLINK(...)`)."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return value


@viewer_required
def export_results(request, pk):
    """Stream the run's results (honouring the status and error filters) as CSV, in id order."""
    run = _get_run(pk)
    results, _ = _results(request, run)
    rows = results.order_by("id").values_list(*CSV_COLUMNS).iterator(chunk_size=2000)
    writer = csv.writer(_Echo())

    def lines():
        yield writer.writerow(CSV_COLUMNS)
        for row in rows:
            yield writer.writerow([_cell(v) for v in row])

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="kiln-run-{run.pk}-results.csv"'
    return response
