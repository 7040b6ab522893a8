"""Run history queries, shared by the console pages and the JSON API.

Runs filtered and keyset-paged, a run's row results filtered and keyset-paged or searched in
bounded windows, its counts by cause and its results as CSV lines. Plain values in and out, no
request objects: console/views/runs.py and console/api/ call the same functions, so a page and
the API answer the same query with the same SQL.
"""

import csv
import datetime as dt
from dataclasses import dataclass

from django.db import connection
from django.db.models import Count, Q
from django.utils import timezone

from integrations.models import RowResult, RowTrace, SyncRun
from integrations.runs import causes as row_causes

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
    "possibly_duplicated",
    "label",
]
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
    "possibly_duplicated",
    "label",
]


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


# -- runs ------------------------------------------------------------------------------------


def start_of(day: dt.date):
    return timezone.make_aware(dt.datetime.combine(day, dt.time.min))


def filter_runs(runs, *, sync_id=None, status="", since=None, until=None):
    """Runs of one sync, of one status, created from day `since` through day `until`."""
    if sync_id:
        runs = runs.filter(sync_id=sync_id)
    if status in SyncRun.Status.values:
        runs = runs.filter(status=status)
    if since:
        runs = runs.filter(created_at__gte=start_of(since))
    if until:
        runs = runs.filter(created_at__lt=start_of(until + dt.timedelta(days=1)))
    return runs


# -- a run's row results ---------------------------------------------------------------------


def filter_results(run, status="", q=""):
    """A run's row results of one status whose error code or message contains q.

    Only failed and skipped rows carry an error (sent, created and updated rows have none),
    so the text search reads those through the (run, status, id) index instead of scanning
    every row of the run: 1M results, 2 % failed → 20k rows read, not 1M.
    """
    results = RowResult.objects.filter(run=run).only(*RESULT_COLUMNS)
    status = status if status in RowResult.Status.values else ""
    if status:
        results = results.filter(status=status)
    if q:
        if not status:
            results = results.filter(status__in=WITH_ERRORS)
        elif status not in WITH_ERRORS:
            return results.none()
        results = results.filter(Q(error_code__icontains=q) | Q(error_message__icontains=q))
    return results


@dataclass
class ResultsPage:
    rows: list
    prev_cursor: int | None
    next_cursor: int | None
    # An error-text search: the statuses it read, and the last row its window reached (None
    # when it covered every row that way).
    searched: list | None = None
    stop: RowResult | None = None


def results_page(
    run,
    status="",
    q="",
    after=None,
    before=None,
    size=RESULTS_PER_PAGE,
    window=SEARCH_WINDOW,
    cause="",
) -> ResultsPage:
    """One page of a run's results as the filters ask: keyset-paged, or a bounded text search;
    `cause` (integrations/runs/causes.py) lists one group of the run page's headline."""
    condition = row_causes.condition(cause) if cause else None
    if condition is not None:
        rows, prev_cursor, next_cursor = keyset_page(
            filter_results(run).filter(condition), after=after, before=before, size=size
        )
        return ResultsPage(rows, prev_cursor, next_cursor)
    status = status if status in RowResult.Status.values else ""
    if q and (not status or status in WITH_ERRORS):
        statuses = [status] if status else list(WITH_ERRORS)
        rows, prev_cursor, next_cursor, stop = search_page(
            run, statuses, q, after=after, before=before, size=size, window=window
        )
        return ResultsPage(rows, prev_cursor, next_cursor, statuses, stop)
    rows, prev_cursor, next_cursor = keyset_page(
        filter_results(run, status, q), after=after, before=before, size=size
    )
    return ResultsPage(rows, prev_cursor, next_cursor)


def cause_groups(run) -> list[dict]:
    """The run page's headline: rows per cause (sent, possibly duplicated, token rejected...),
    from the counters the engine keeps as it records (no GROUP BY over the results)."""
    return row_causes.headline(run.causes or {})


def counts_by_cause(run) -> list[dict]:
    """How many failed and skipped rows the run has per error code, most frequent first."""
    rows = (
        RowResult.objects.filter(run=run, status__in=WITH_ERRORS)
        .values("status", "error_code")
        .annotate(count=Count("id"))
        .order_by("-count", "status", "error_code")
    )
    return list(rows)


def trace_of(run, row):
    """The round trip of a row result, when its run traced it (rows sent to Clay, written back)."""
    return (
        RowTrace.objects.filter(events__run=run)
        .filter(Q(directus_key=row.row_key) | Q(kiln_row_id=row.row_key))
        .first()
    )


class _Echo:
    """A file-like object whose write returns the line, for csv.writer in a stream."""

    def write(self, value):
        return value


def csv_cell(value):
    """Neutralise spreadsheet formulas in text from outside (`=HYPERLINK(...)` → `'=HYPERLINK(...)`)."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return value


def csv_lines(results):
    """The results (a filtered queryset) as CSV lines in id order, header first, streamed."""
    rows = results.order_by("id").values_list(*CSV_COLUMNS).iterator(chunk_size=2000)
    writer = csv.writer(_Echo())
    yield writer.writerow(CSV_COLUMNS)
    for row in rows:
        yield writer.writerow([csv_cell(v) for v in row])
