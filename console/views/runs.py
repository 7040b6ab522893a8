"""Run history: the runs list, a run's live progress, its row results (keyset-paged) and CSV."""

import datetime as dt
import itertools
from urllib.parse import urlencode

from asgiref.sync import sync_to_async
from django.contrib import messages
from django.http import StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from console.access import operator_required, viewer_required
from integrations.models import RowResult, Sync, SyncRun
from integrations.runs import causes, history
from integrations.runs import sync as engine
from integrations.runs.history import (  # noqa: F401  (kept importable from here for older callers)
    RESULTS_PER_PAGE,
    RUNS_PER_PAGE,
    SEARCH_WINDOW,
    WITH_ERRORS,
    keyset_page,
    search_page,
)

# htmx stops polling when a poll answers with this status.
STOP_POLLING = 286


# Ids and cursors are 64-bit: a larger number in a link matches nothing (it would not fit).
MAX_ID = 2**63 - 1
# Longer search text is cut: SQLite refuses LIKE patterns over 50,000 bytes, and no error
# message is that long.
MAX_SEARCH = 200


def _int(value):
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if -MAX_ID <= number <= MAX_ID else None


def _filters(request) -> dict:
    cause = request.GET.get("cause", "")
    return {
        "status": request.GET.get("status", ""),
        "q": request.GET.get("q", "").strip()[:MAX_SEARCH],
        "cause": cause if cause in causes.LABELS else "",
    }


def _date(value):
    try:
        return dt.date.fromisoformat(value)
    except (TypeError, ValueError):
        return None


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
    items = history.filter_runs(
        SyncRun.objects.select_related("sync", "started_by", "retry_of"),
        sync_id=_int(filters["sync"]),
        status=filters["status"],
        since=_date(filters["since"]),
        until=_date(filters["until"]),
    )
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
    filters = _filters(request)
    results = history.filter_results(run, filters["status"], filters["q"])
    if filters["cause"]:
        results = history.filter_results(run).filter(causes.condition(filters["cause"]))
    return results, filters


@viewer_required
def run_detail(request, pk):
    run = _get_run(pk)
    filters = _filters(request)
    after, before = _int(request.GET.get("after")), _int(request.GET.get("before"))
    # Error text: a bounded search window per request (see history.search_page).
    page = history.results_page(
        run,
        filters["status"],
        filters["q"],
        after=after,
        before=before,
        window=SEARCH_WINDOW,
        cause=filters["cause"],
    )
    rows, prev_cursor, next_cursor = page.rows, page.prev_cursor, page.next_cursor
    search = None
    if page.searched is not None:
        search = {
            "window": SEARCH_WINDOW,
            "rows_label": f"{page.searched[0]} rows"
            if len(page.searched) == 1
            else "failed and skipped rows",
            "stop": page.stop,
            "backward": before is not None,
        }
    context = {
        "run": run,
        "causes": history.cause_groups(run),
        "cause_label": causes.LABELS.get(filters["cause"], ""),
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
    response = render(
        request, "runs/detail.html#progress", {"run": run, "causes": history.cause_groups(run)}
    )
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
        response = render(
            request, "runs/detail.html#progress", {"run": run, "causes": history.cause_groups(run)}
        )
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
    trace = history.trace_of(run, row)
    attempts = [
        {**a, "at": dt.datetime.fromtimestamp(a.get("at") or 0, tz=dt.UTC)}
        for a in row.attempt_log or []
        if isinstance(a, dict)
    ]
    template = "runs/row.html#detail" if request.htmx else "runs/row.html"
    return render(request, template, {"run": run, "row": row, "trace": trace, "attempts": attempts})


# CSV export


@viewer_required
def export_results(request, pk):
    """Stream the run's results (honouring the status and error filters) as CSV, in id order."""
    run = _get_run(pk)
    results, _ = _results(request, run)
    return csv_response(request, run, results)


def csv_response(request, run, results) -> StreamingHttpResponse:
    """The results as a CSV download, streamed under WSGI and ASGI alike (also the API's)."""
    lines = history.csv_lines(results)
    if "wsgi.input" not in request.META:  # an ASGI request (the API's Request passes META on)
        # Under ASGI Django buffers a synchronous iterator whole (a million rows in memory):
        # hand it an async one that reads the next few hundred lines in the sync thread.
        lines = _async_batches(lines)
    response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="kiln-run-{run.pk}-results.csv"'
    return response


# Lines read per trip to the sync thread when streaming a CSV under ASGI.
CSV_BATCH_LINES = 500


async def _async_batches(lines):
    iterator = iter(lines)
    take = sync_to_async(
        lambda: "".join(itertools.islice(iterator, CSV_BATCH_LINES)), thread_sensitive=True
    )
    while chunk := await take():
        yield chunk
