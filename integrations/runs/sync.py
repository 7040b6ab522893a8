"""The sync engine's front door: start, retry, cancel, claim and resume runs; schedules; pruning.

A run is worked in short slices (engine.Slice), each claimed by a conditional UPDATE that
takes a lease. The database is the source of truth, so a redelivered Celery message is
harmless and a worker killed mid-run only delays the run until its lease expires and
`resume_stale_runs` queues it again. Delivery is at least once: rows a crash may have sent
twice are flagged and counted, never hidden.

Dry runs record every row as skipped with error_code "DRY_RUN" (its payload hash and request
excerpt filled in): nothing was sent, so "sent" would be a lie.
"""

import logging
from datetime import timedelta

from cronsim import CronSim, CronSimError
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from integrations import notify
from integrations.directus.client import DirectusError
from integrations.mapping import templates as mapping
from integrations.models import ClayDestination, RowResult, Sync, SyncRun
from integrations.outbound import http
from integrations.query import drift
from integrations.runs import core, queue, sources
from integrations.runs.core import SyncError, lease_end
from integrations.runs.engine import Slice

logger = logging.getLogger(__name__)


# Seconds a run's start (its count) waits out Directus's rate limiter before it gives up.
RATE_LIMIT_WAIT = 10.0


# -- starting --------------------------------------------------------------------------------


def start_run(sync, *, started_by=None, trigger="manual", dry_run=False, retry_of=None) -> SyncRun:
    """Create a queued run and queue its first slice after commit; SyncError if it may not run."""
    _check_runnable(sync, trigger)
    since, at_mark = "", {}
    if sync.mode == Sync.Mode.INCREMENTAL and retry_of is None:
        since, at_mark = sources.last_mark(sync)
    expected = retry_of.failed if retry_of is not None else _count(sync, since)
    if not dry_run and expected is not None:
        _check_cap(sync.destination, expected)
    with transaction.atomic():
        # Lock the sync so two clicks cannot both see "no active run" (PostgreSQL; SQLite
        # serialises writers anyway).
        Sync.objects.select_for_update().filter(pk=sync.pk).first()
        active = SyncRun.objects.filter(sync=sync, status__in=SyncRun.ACTIVE).first()
        if active:
            raise SyncError(
                f'"{sync.name}" is already running (run #{active.pk}); wait for it or cancel it.'
            )
        run = SyncRun.objects.create(
            sync=sync,
            trigger=trigger,
            started_by=started_by,
            dry_run=dry_run,
            retry_of=retry_of,
            expected_total=expected,
            since=since,
            checkpoint={"at_mark": at_mark} if at_mark else {},
            # Also the deadline for a worker to pick it up before resume_stale_runs re-queues it.
            lease_expires_at=lease_end(),
        )
        queue.run_slice(run.pk, engine=True, on_commit=True)
    return run


def retry_failed_rows(run, *, started_by=None) -> SyncRun:
    """A new run over only the failed rows of `run` (write-back and relay runs: inbound.py)."""
    if run.is_active:
        raise SyncError("Wait for the run to finish before retrying its failed rows.")
    if not run.failed:
        raise SyncError("This run has no failed rows to retry.")
    if run.sync.kind != Sync.Kind.DIRECTUS_TO_CLAY:
        from integrations.runs import inbound_run

        return inbound_run.retry_failed_rows(run, started_by=started_by)
    return start_run(run.sync, started_by=started_by, trigger=SyncRun.Trigger.RETRY, retry_of=run)


def resume_read(run, *, started_by=None) -> SyncRun:
    """Continue a run whose read of Directus stopped, from its checkpoint; SyncError if it can't.

    The run keeps its results: rows recorded before the stop are not read or sent again.
    """
    if run.is_active:
        raise SyncError("This run is still running.")
    if not run.read_failed or run.sync.kind != Sync.Kind.DIRECTUS_TO_CLAY:
        raise SyncError("Only a run whose read of Directus stopped can resume reading.")
    with transaction.atomic():
        Sync.objects.select_for_update().filter(pk=run.sync_id).first()
        active = SyncRun.objects.filter(sync=run.sync_id, status__in=SyncRun.ACTIVE).first()
        if active:
            raise SyncError(
                f'"{run.sync.name}" is already running (run #{active.pk}); wait for it or cancel it.'
            )
        checkpoint = {k: v for k, v in (run.checkpoint or {}).items() if k != "read_failed"}
        SyncRun.objects.filter(pk=run.pk).update(
            status=SyncRun.Status.QUEUED,
            finished_at=None,
            last_error="",
            cancel_requested=False,
            checkpoint=checkpoint,
            lease_owner="",
            lease_expires_at=lease_end(),
        )
        logger.info("Run %s: resuming its read (asked by %s)", run.pk, started_by or "a script")
        queue.run_slice(run.pk, engine=True, on_commit=True)
    run.refresh_from_db()
    return run


def _check_runnable(sync, trigger):
    if sync.kind != Sync.Kind.DIRECTUS_TO_CLAY:
        raise SyncError(
            f"{sync.get_kind_display()} syncs are not started here: their runs begin when rows "
            "reach their inbound route, or from a CSV upload (Write-back page)."
        )
    if sync.saved_query_id is None or sync.destination_id is None:
        raise SyncError("Choose a saved query and a Clay destination before running this sync.")
    if trigger == SyncRun.Trigger.SCHEDULE and sync.paused:
        raise SyncError(f'"{sync.name}" is paused; its schedule does not start runs.')
    if sync.template_id:
        try:
            mapping.parse(sync.template.body)
        except mapping.TemplateError as exc:
            problems = "; ".join(str(p) for p in exc.problems)
            raise SyncError(
                f'The template "{sync.template.name}" has problems: {problems}'
            ) from None
    # The schema may have moved under the sync since it was set up: refuse before sending.
    changed = drift.refusal(sync)
    if changed:
        raise SyncError(changed)


def _count(sync, since) -> int | None:
    try:
        with sync.saved_query.connection.client(rate_limit_wait=RATE_LIMIT_WAIT) as directus:
            return sources.count_rows(directus, sync, since)
    except DirectusError as exc:
        raise SyncError(f"Could not count the rows to send: {exc.explain()}") from None


def _check_cap(destination, expected):
    """Refuse a run that would not fit in what the destination's webhooks have left."""
    left = destination.pool_remaining()
    if expected > left:
        webhooks = len(destination.webhooks())
        raise SyncError(
            f"This run would send up to {expected:,} rows, but the Clay destination "
            f'"{destination.name}" has {left:,} submissions left on its {webhooks} '
            f"webhook{'s' if webhooks != 1 else ''} (Clay allows "
            f"{ClayDestination.SUBMISSION_CAP:,} per webhook). Create a new webhook on the same "
            "Clay table and add it to the destination's pool, or narrow the query."
        )


def request_cancel(run) -> None:
    """Ask a run to stop; a queued run that no worker holds is cancelled at once."""
    now = timezone.now()
    SyncRun.objects.filter(pk=run.pk, status__in=SyncRun.ACTIVE).update(cancel_requested=True)
    SyncRun.objects.filter(pk=run.pk, status=SyncRun.Status.QUEUED, lease_owner="").update(
        status=SyncRun.Status.CANCELLED, finished_at=now, last_error="Cancelled before it started."
    )
    run.refresh_from_db()


# -- working ---------------------------------------------------------------------------------


def is_engine_run(run_id: int) -> bool:
    """True for a Directus → Clay run; write-back and relay runs are worked by inbound_run.execute."""
    kind = SyncRun.objects.filter(pk=run_id).values_list("sync__kind", flat=True).first()
    return kind in (None, Sync.Kind.DIRECTUS_TO_CLAY)


def execute_slice(run_id: int, *, worker_id: str, max_seconds: float = 50) -> bool:
    """Work the run for up to max_seconds from its checkpoint; True if more remains."""
    return core.work(run_id, worker_id, Slice, max_seconds, _failure_message)


def _failure_message(exc) -> str:
    if isinstance(exc, DirectusError):
        return f"Reading Directus failed: {exc.explain()}"
    if isinstance(exc, mapping.TemplateError):
        return "The template has problems: " + "; ".join(str(p) for p in exc.problems)
    return http.redact(f"The run stopped on an internal error: {type(exc).__name__}: {exc}")[:2000]


def resume_stale_runs() -> int:
    """Queue again the active runs whose lease expired (their worker died or never came).

    Each run goes to the slice task of its kind: Directus → Clay runs to this engine,
    write-back and relay runs to inbound_run.execute.
    """
    now = timezone.now()
    resumed = 0
    stale = SyncRun.objects.filter(status__in=SyncRun.ACTIVE, lease_expires_at__lt=now)
    for run_id, expired_at, kind in stale.values_list("pk", "lease_expires_at", "sync__kind"):
        # Release the dead lease and set a new pick-up deadline; only one caller wins.
        if SyncRun.objects.filter(pk=run_id, lease_expires_at=expired_at).update(
            lease_owner="", lease_expires_at=lease_end()
        ):
            logger.info("Run %s: lease expired, queued again", run_id)
            queue.run_slice(run_id, engine=kind == Sync.Kind.DIRECTUS_TO_CLAY)
            resumed += 1
    return resumed


# -- retention -------------------------------------------------------------------------------


def prune_row_results(older_than_days: int | None = None, batch_size: int = 20000) -> int:
    """Delete row results older than the retention, in batches; runs and daily stats stay."""
    days = settings.KILN_ROW_RESULT_RETENTION_DAYS if older_than_days is None else older_than_days
    cutoff = timezone.now() - timedelta(days=days)
    deleted = 0
    while True:
        batch = RowResult.objects.filter(created_at__lt=cutoff).values("pk")[:batch_size]
        # One DELETE ... WHERE id IN (SELECT ... LIMIT n) per batch: short transactions.
        # Nothing cascades from a row result, so Django deletes without loading the rows.
        count, _ = RowResult.objects.filter(pk__in=batch).delete()
        deleted += count
        if count < batch_size:
            return deleted


# -- schedules -------------------------------------------------------------------------------


def describe_schedule(cron: str) -> str:
    """Plain words for a cron expression; ValueError with a clear message if it is invalid."""
    cron = (cron or "").strip()
    if not cron:
        return "Not scheduled"
    try:
        schedule = CronSim(cron, timezone.now())
    except CronSimError as exc:
        raise ValueError(f'"{cron}" is not a valid cron expression: {exc}') from None
    return f"{schedule.explain()} (UTC)"


def next_run_at(sync, after=None):
    """When the sync's schedule is next due after `after` (its last start), or None."""
    if not sync.schedule.strip():
        return None
    base = after or sync.last_scheduled_at or sync.created_at
    return next(CronSim(sync.schedule.strip(), base))


def dispatch_scheduled_syncs(now=None) -> list[SyncRun]:
    """Start every unpaused sync whose cron time has come (beat calls this every minute)."""
    now = now or timezone.now()
    started = []
    for sync in Sync.objects.exclude(schedule="").filter(paused=False).select_related("template"):
        try:
            due = next_run_at(sync)
        except CronSimError:
            logger.warning("Sync %s has an invalid schedule %r", sync.pk, sync.schedule)
            continue
        if due is None or due > now:
            continue
        # Several beats, or a slow one: only the caller that moves the mark starts the run.
        # Missed slots (beat was down) give one catch-up run, not a burst.
        if not Sync.objects.filter(pk=sync.pk, last_scheduled_at=sync.last_scheduled_at).update(
            last_scheduled_at=now
        ):
            continue
        try:
            started.append(start_run(sync, trigger=SyncRun.Trigger.SCHEDULE))
        except SyncError as exc:
            logger.warning("Scheduled run of %s not started: %s", sync, exc)
            notify.schedule_late(sync, due, f"It did not start: {exc}")
            continue
        if now - due > LATE_AFTER:  # beat was down: the catch-up run started late
            notify.schedule_late(sync, due, f"It started {_minutes(now - due)} late.")
    return started


# A scheduled run that starts this long after its cron time is told as late.
LATE_AFTER = timedelta(minutes=5)


def _minutes(delta) -> str:
    return f"{int(delta.total_seconds() // 60)} min"
