"""The ops dashboard: what is failing now, what is running, each sync's last runs (queries only).

Every query here reads small tables or an index with a bound (runs of the last 24 h by
`created_at`, active runs by `status`, a sync's last runs by `(sync, -created_at)`, stuck
rows by `(step, step_at)`): none touches the row results, so the page stays fast with
millions of them.
"""

import contextlib
import hashlib
from dataclasses import dataclass
from datetime import timedelta

from django.core.cache import cache
from django.db import connection
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from integrations.models import (
    ClayDestination,
    DirectusConnection,
    RowTrace,
    Sync,
    SyncRun,
    WebhookState,
)
from integrations.query import drift
from integrations.runs.sync import next_run_at

FAILED_WINDOW = timedelta(hours=24)
STUCK_AFTER = timedelta(hours=1)
LATE_AFTER = timedelta(minutes=5)  # a schedule this far past due without a run is late
NEAR_CAP = 0.8
STRIP_RUNS = 10
LIST_AT_MOST = 20
DRIFT_CACHE_SECONDS = 300


@dataclass
class Problem:
    """One thing failing now: what kind, a sentence, where it is fixed."""

    kind: str  # run, destination, connection, drift, stuck, schedule
    title: str
    detail: str
    url: str
    severity: str = "bad"  # bad or warn


def failing_now(now=None) -> list:
    now = now or timezone.now()
    problems = []
    problems += _failed_runs(now)
    problems += _destinations()
    problems += _connections()
    syncs = list(Sync.objects.select_related("saved_query", "template").order_by("name")[:200])
    problems += _drift(syncs)
    problems += _stuck_rows(now)
    problems += _late_schedules(syncs, now)
    return problems


def _failed_runs(now) -> list:
    runs = (
        SyncRun.objects.filter(
            created_at__gte=now - FAILED_WINDOW,
            status__in=(SyncRun.Status.FAILED, SyncRun.Status.PARTLY_FAILED),
        )
        .select_related("sync")
        .order_by("-created_at")[:LIST_AT_MOST]
    )
    out = []
    for run in runs:
        what = "failed" if run.status == SyncRun.Status.FAILED else "partly failed"
        detail = run.last_error[:200] if run.last_error else f"{run.failed:,} rows failed"
        out.append(
            Problem(
                "run",
                f'Run #{run.pk} of "{run.sync.name}" {what}',
                detail,
                reverse("console:run-detail", args=[run.pk]),
                "bad" if run.status == SyncRun.Status.FAILED else "warn",
            )
        )
    return out


def _destinations() -> list:
    near = int(NEAR_CAP * ClayDestination.SUBMISSION_CAP)
    found = ClayDestination.objects.filter(
        ~Q(state=WebhookState.OK) | Q(submissions_count__gte=near)
    ).order_by("name")[:LIST_AT_MOST]
    out = []
    for d in found:
        url = reverse("console:destination-detail", args=[d.pk])
        if d.state == WebhookState.AUTH_REJECTED:
            title, detail = (
                f'Clay rejected the token of "{d.name}"',
                d.state_detail or ("Clay answered 401/403: set the webhook's auth token again."),
            )
        elif d.state == WebhookState.NOT_FOUND:
            title, detail = (
                f'The webhook of "{d.name}" is gone',
                d.state_detail or ("Clay answered 404: the webhook source was deleted."),
            )
        elif d.state == WebhookState.FULL:
            title, detail = f'"{d.name}" is full', "Clay's 50,000 submissions are used up."
        else:
            title = f'"{d.name}" is near its cap'
            detail = f"{d.cap_used_percent}% of Clay's 50,000 submissions used."
        out.append(Problem("destination", title, detail, url, "warn" if not d.state else "bad"))
    return out


def _connections() -> list:
    out = []
    connections = DirectusConnection.objects.select_related("token").defer("schema")
    for c in connections.order_by("name")[:200]:
        url = reverse("console:connection-detail", args=[c.pk])
        if c.last_test_ok is False:
            failed = next(
                (
                    s
                    for s in c.last_test_result or []
                    if isinstance(s, dict) and s.get("ok") is False
                ),
                {},
            )
            out.append(
                Problem(
                    "connection",
                    f'The last test of "{c.name}" failed',
                    f"{failed.get('name', 'Test')}: {failed.get('summary', '')}"[:200],
                    url,
                )
            )
        if c.token.is_stale:
            out.append(
                Problem(
                    "connection",
                    f'The token of "{c.name}" is {c.token.age.days} days old',
                    "Older than the rotation age: rotate it.",
                    url,
                    "warn",
                )
            )
    return out


def _drift(syncs) -> list:
    found_by_sync = _cached_drift(syncs)
    out = []
    for sync_id, found in found_by_sync.items():
        sync = next(s for s in syncs if s.pk == sync_id)
        fields = ", ".join(sorted({f'"{d.field}"' for d in found if d.field})) or "a field"
        out.append(
            Problem(
                "drift",
                f'"{sync.name}" no longer fits the Directus schema: {fields}',
                str(found[0])[:200],
                reverse("console:sync-detail", args=[sync.pk]),
            )
        )
    return out


def _cached_drift(syncs) -> dict:
    """drift.drifted() for the syncs, kept until a schema, sync, query or template changes:
    reading every cached schema and checking every sync costs more than the rest of the page."""
    ids = {s.saved_query.connection_id for s in syncs if s.saved_query_id}
    fetched = DirectusConnection.objects.filter(pk__in=ids).values_list("pk", "schema_fetched_at")
    version = repr(
        (
            sorted(fetched),
            [
                (
                    s.pk,
                    s.updated_at,
                    s.saved_query and s.saved_query.updated_at,
                    s.template and s.template.updated_at,
                )
                for s in syncs
            ],
        )
    )
    key = "kiln:dashboard:drift:" + hashlib.sha256(version.encode()).hexdigest()
    try:
        hit = cache.get(key)
    except Exception:  # a cache that is down only costs the check
        hit = None
    if hit is not None:
        return {sync_id: [drift.Drift(*d) for d in found] for sync_id, found in hit}
    schemas = dict(DirectusConnection.objects.filter(pk__in=ids).values_list("pk", "schema"))
    found = drift.drifted(syncs, schemas)
    with contextlib.suppress(Exception):
        cache.set(
            key,
            [(i, [(d.field, d.where, d.message) for d in f]) for i, f in found.items()],
            DRIFT_CACHE_SECONDS,
        )
    return found


def _stuck_rows(now) -> list:
    stuck = RowTrace.objects.filter(
        step=RowTrace.Step.SENT, ok=True, step_at__lt=now - STUCK_AFTER
    ).values_list("pk", flat=True)[:1000]
    count = len(stuck)
    if not count:
        return []
    shown = "1,000 or more" if count >= 1000 else f"{count:,}"
    return [
        Problem(
            "stuck",
            f"{shown} rows sent to Clay have not come back",
            "Sent more than an hour ago and no write-back arrived.",
            reverse("console:writeback-stuck"),
            "warn",
        )
    ]


def _late_schedules(syncs, now) -> list:
    out = []
    for sync in syncs:
        if not sync.schedule.strip() or sync.paused:
            continue
        try:
            due = next_run_at(sync)
        except (ValueError, StopIteration):
            continue  # an invalid cron is shown on the syncs page
        if due and due < now - LATE_AFTER:
            out.append(
                Problem(
                    "schedule",
                    f'"{sync.name}" did not run when due',
                    f"Due {due:%Y-%m-%d %H:%M} UTC; is the Celery beat and worker running?",
                    reverse("console:sync-detail", args=[sync.pk]),
                    "warn",
                )
            )
    return out


def runs_in_progress() -> list:
    return list(
        SyncRun.objects.filter(status__in=SyncRun.ACTIVE)
        .select_related("sync")
        .order_by("-created_at")[:LIST_AT_MOST]
    )


def run_strips(syncs) -> list:
    """[(sync, [strip cells, newest first])] with the last STRIP_RUNS runs of each sync.

    One indexed read per sync on `(sync, -created_at)`: on PostgreSQL all in one statement
    (LATERAL), elsewhere one query each. Cells are plain dicts with the link and the title
    made here: the template renders hundreds of them, and a `{% url %}` each is most of the
    page's time.
    """
    ids = [sync.pk for sync in syncs]
    if not ids:
        return []
    if connection.vendor == "postgresql":
        runs = SyncRun.objects.raw(
            """SELECT r.id, r.sync_id, r.status, r.created_at, r.total, r.failed
                FROM unnest(%s::bigint[]) AS s(id) CROSS JOIN LATERAL (
                  SELECT id, sync_id, status, created_at, total, failed FROM kiln_sync_run
                  WHERE sync_id = s.id ORDER BY created_at DESC, id DESC LIMIT %s) AS r""",
            [ids, STRIP_RUNS],
        )
    else:
        runs = [
            run
            for sync_id in ids
            for run in SyncRun.objects.filter(sync_id=sync_id)
            .order_by("-created_at", "-id")
            .only("id", "sync_id", "status", "created_at", "total", "failed")[:STRIP_RUNS]
        ]
    marker = 987654321
    link = reverse("console:run-detail", args=[marker]).replace(str(marker), "{}")
    labels = dict(SyncRun.Status.choices)
    by_sync = {pk: [] for pk in ids}
    for run in runs:
        label = labels.get(run.status, run.status)
        by_sync[run.sync_id].append(
            {
                "created_at": run.created_at,
                "pk": run.pk,
                "url": link.format(run.pk),
                "status": run.status,
                "letter": label[:1],
                "title": f"#{run.pk} {label} {run.created_at:%Y-%m-%d %H:%M}: "
                f"{run.total:,} rows, {run.failed:,} failed",
            }
        )
    for cells in by_sync.values():
        cells.sort(key=lambda c: (c["created_at"], c["pk"]), reverse=True)
    return [(sync, by_sync[sync.pk]) for sync in syncs]
