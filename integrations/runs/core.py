"""The run core: how every kind of run is claimed, kept, recorded and ended.

A run is worked in short slices by whichever worker claims it. The database is the source of
truth: a claim is a conditional UPDATE that takes the run's lease; every write a slice makes to
its run goes through that lease (`Lease.update`, which raises LeaseLost once another worker has
taken the run) and extends it; a slice that dies leaves the lease to expire, and
sync.resume_stale_runs queues the run again so the next slice resumes from the checkpoint.

Both directions use this module: engine.Slice (Directus → Clay) and inbound_run.RunWorker
(write-back and relay runs). What differs between them (reading, sending, writing) stays there.
"""

import json
import logging
from datetime import timedelta

from django.conf import settings
from django.db import InterfaceError, OperationalError, transaction
from django.db.models import F, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from integrations.models import RunDailyStat, SyncRun
from integrations.models.syncs import RowResult
from integrations.outbound import http
from integrations.runs import bulk

logger = logging.getLogger(__name__)

Status = RowResult.Status


class SyncError(Exception):
    """A run that cannot start, retry or resume; the message is for a person."""


class LeaseLost(Exception):
    """Another worker holds the run now: this slice must stop without writing anything more."""


def lease_seconds() -> float:
    return float(getattr(settings, "KILN_SYNC_LEASE_SECONDS", 20))


def heartbeat_seconds() -> float:
    return lease_seconds() / 4


def lease_end():
    """When a lease taken or extended now runs out (also a queued run's pick-up deadline)."""
    return timezone.now() + timedelta(seconds=lease_seconds())


def claim(run_id: int, worker_id: str) -> bool:
    """Take the run's lease if it is free (released, or expired with its worker gone)."""
    now = timezone.now()
    return bool(
        SyncRun.objects.filter(pk=run_id, status__in=SyncRun.ACTIVE)
        .filter(Q(lease_owner="") | Q(lease_expires_at__lt=now) | Q(lease_expires_at__isnull=True))
        .update(
            status=SyncRun.Status.RUNNING,
            lease_owner=worker_id,
            lease_expires_at=now + timedelta(seconds=lease_seconds()),
            started_at=Coalesce(F("started_at"), now),
            slices=F("slices") + 1,
        )
    )


def cancel_requested(run_id, worker_id) -> bool:
    """Whether a cancel was asked for; raises LeaseLost if worker_id no longer holds the run."""
    row = SyncRun.objects.filter(pk=run_id).values_list("lease_owner", "cancel_requested").first()
    if row is None or row[0] != worker_id:
        raise LeaseLost()
    return row[1]


def work(run_id: int, worker_id: str, slice_class, max_seconds: float, failure_message) -> bool:
    """Claim the run and work one slice of it for up to max_seconds; True if more remains.

    slice_class(run, worker_id, max_seconds).work() does the slice, the run read with
    slice_class.RELATED (the objects it needs, in one query). A lost lease ends the slice
    quietly; a database that stays away ends it too, leaving the lease to run out so the run
    resumes once the database is back (nothing unsent is failed). Anything else fails the run
    with failure_message(exc): a run must end with a reason, not stay "running" forever.
    """
    if not claim(run_id, worker_id):
        return False
    run = SyncRun.objects.select_related(*slice_class.RELATED).get(pk=run_id)
    try:
        return slice_class(run, worker_id, max_seconds).work()
    except LeaseLost:
        logger.warning("Run %s: lease taken over by another worker; this slice stops", run_id)
        return False
    except (OperationalError, InterfaceError):
        logger.exception("Run %s: the database is unreachable; the run resumes later", run_id)
        return False
    except Exception as exc:
        logger.exception("Run %s failed", run_id)
        Lease(run_id, worker_id).fail(failure_message(exc))
        return False


class Lease:
    """The run as one worker holds it: every write checks the lease is still this worker's."""

    def __init__(self, run_id: int, worker_id: str):
        self.run_id, self.worker_id = run_id, worker_id

    def owned(self):
        return SyncRun.objects.filter(pk=self.run_id, lease_owner=self.worker_id)

    def update(self, **changes) -> None:
        """Write to the run and extend the lease; LeaseLost if another worker holds it."""
        changes.setdefault("lease_expires_at", lease_end())
        if not self.owned().update(**changes):
            raise LeaseLost()

    def cancel_requested(self) -> bool:
        return cancel_requested(self.run_id, self.worker_id)

    def release(self, **changes) -> None:
        """End this slice: the next one (queued by the task) may claim the run at once."""
        self.owned().update(lease_owner="", lease_expires_at=lease_end(), **changes)

    def finish(self, run, *, cancelled=False, failure="", checkpoint=None, **changes) -> str:
        """End the run: its final status from its counters, the day's stats; returns the status."""
        counts = SyncRun.objects.filter(pk=self.run_id).values("total", "sent", "skipped", "failed")
        counts = counts.get()
        status = SyncRun.final_status(counts, cancelled=cancelled, failure=failure)
        if checkpoint is None:
            checkpoint = {**(run.checkpoint or {}), "inflight": []}
        changes.update(
            status=status,
            finished_at=timezone.now(),
            lease_owner="",
            lease_expires_at=None,
            checkpoint=checkpoint,
        )
        if failure or cancelled:
            changes["last_error"] = failure or "Cancelled."
        with transaction.atomic():
            self.update(**changes)
            record_daily_stat(run.sync_id, counts)
        return status

    def fail(self, message: str) -> None:
        """End the run as failed with a sentence (redacted: it may quote a URL)."""
        self.owned().update(
            status=SyncRun.Status.FAILED,
            finished_at=timezone.now(),
            lease_owner="",
            lease_expires_at=None,
            last_error=http.redact(message)[:2000],
        )


def counters(outcomes, *, possibly_duplicated=False) -> dict:
    """The run's counter changes for recorded outcomes, and its last error if one failed.

    An outcome counts as sent when the receiver took it: written into Directus (created,
    updated) or answered by Clay (sent).
    """
    counts = {Status.SENT: 0, Status.SKIPPED: 0, Status.FAILED: 0}
    resent = duplicated = 0
    for o in outcomes:
        counts[Status.SENT if o.status in (Status.CREATED, Status.UPDATED) else o.status] += 1
        resent += bool(o.resent)
        duplicated += bool(getattr(o, "possibly_duplicated", False))
    changes = dict(
        total=F("total") + len(outcomes),
        sent=F("sent") + counts[Status.SENT],
        skipped=F("skipped") + counts[Status.SKIPPED],
        failed=F("failed") + counts[Status.FAILED],
        resent=F("resent") + resent,
    )
    if possibly_duplicated:
        changes["possibly_duplicated"] = F("possibly_duplicated") + duplicated
    failures = [o for o in outcomes if o.status == Status.FAILED]
    if failures:
        changes["last_error"] = f"Row {failures[-1].key}: {failures[-1].error_message}"[:2000]
    return changes


# The order of the tuples result_rows makes.
RESULT_FIELDS = [
    "run",
    "row_key",
    "status",
    "http_status",
    "error_code",
    "error_message",
    "attempts",
    "duration_ms",
    "payload_hash",
    "resent",
    "request_excerpt",
    "response_excerpt",
    "possibly_duplicated",
    "label",
    "attempt_log",
]


def result_rows(run_id: int, outcomes, labels=None) -> list[tuple]:
    """The RowResult rows for outcomes (outcome.Outcome), as tuples in RESULT_FIELDS order."""
    labels = labels or {}
    return [
        (
            run_id,
            o.key[:200],
            o.status,
            o.http_status,
            o.error_code[:50],
            o.error_message,
            o.attempts,
            o.duration_ms,
            o.payload_hash,
            o.resent,
            o.request_excerpt,
            o.response_excerpt,
            o.possibly_duplicated,
            labels.get(o.key, "")[:200],
            json.dumps(o.attempt_log, separators=(",", ":")),
        )
        for o in outcomes
    ]


def insert_results(rows: list[tuple], now) -> None:
    """Record result_rows in one INSERT; a row already recorded for its run is kept as it was.

    Plain tuples: bulk_create's per-field compiling cost the engine more CPU than sending.
    """
    bulk.insert(
        RowResult, RESULT_FIELDS, rows, constants={"created_at": now}, ignore_conflicts=True
    )


def record_daily_stat(sync_id, counts):
    stat, _ = RunDailyStat.objects.get_or_create(sync_id=sync_id, day=timezone.now().date())
    RunDailyStat.objects.filter(pk=stat.pk).update(
        sent=F("sent") + counts["sent"],
        skipped=F("skipped") + counts["skipped"],
        failed=F("failed") + counts["failed"],
    )
