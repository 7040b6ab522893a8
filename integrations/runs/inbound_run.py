"""The runs over rows that came in: write-back (inbound routes, CSV uploads) and relay runs.

They are worked in batches by RunWorker on the run core (core.Lease: claimed, extended before
and after every batch, released, finished; resumed by sync.resume_stale_runs like every run) and
use SyncRun and RowResult as the Directus → Clay engine does (counters, one result per row).
What a batch does is its processor's: writeback.Processor writes rows into Directus,
relay.Processor sends Flow events on to Clay. A crashed run is taken over once its lease has
passed; the rows it had in flight (`checkpoint["inflight"]`, emptied after every recorded batch)
are flagged `resent`: the write may have gone out twice (at-least-once, as with the engine).
"""

import logging
import threading
import time
from datetime import timedelta

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from integrations.clay import csvimport
from integrations.mapping import columnmap
from integrations.models import CsvUpload, InboundRoute, InboundRow, RowResult, Sync, SyncRun
from integrations.runs import core, inbound, queue
from integrations.runs.core import Lease, LeaseLost, SyncError, heartbeat_seconds, lease_end

logger = logging.getLogger(__name__)

BATCH_ROWS = 200
# Rows failed for a reason that may pass (Directus or Clay down): tried again this many times.
MAX_ROW_ATTEMPTS = 6
RETRY_DELAYS = [10, 30, 120, 600, 1800]
Status = RowResult.Status


# -- starting runs -----------------------------------------------------------------------------


def start_csv_run(upload: CsvUpload, started_by=None) -> SyncRun:
    """The run that writes an uploaded, mapped CSV; queued after commit."""
    with transaction.atomic():
        run = SyncRun.objects.create(
            sync=upload.sync,
            trigger=SyncRun.Trigger.MANUAL,
            started_by=started_by,
            expected_total=upload.row_count + upload.bad_line_count,
            # The deadline for a worker to pick it up before resume_stale_runs queues it again.
            lease_expires_at=lease_end(),
        )
        CsvUpload.objects.filter(pk=upload.pk).update(run=run)
        queue.run_slice(run.pk, engine=False, on_commit=True)
    return run


def start_route_run(route_id: int) -> SyncRun | None:
    """A run for the route's waiting rows, unless one is active (it takes new rows as it goes)."""
    now = timezone.now()
    route = InboundRoute.objects.select_related("sync").get(pk=route_id)
    if not inbound.waiting(route, now).exists():
        return None
    with transaction.atomic():
        Sync.objects.select_for_update().filter(pk=route.sync_id).first()
        active = SyncRun.objects.filter(sync_id=route.sync_id, status__in=SyncRun.ACTIVE).first()
        if active:
            return active
        return SyncRun.objects.create(
            sync_id=route.sync_id,
            trigger=SyncRun.Trigger.INBOUND,
            checkpoint={"route": route.pk},
            lease_expires_at=lease_end(),
        )


def retry_failed_rows(run, started_by=None) -> SyncRun:
    """A new run over the rows of `run` that failed for good; sync.SyncError when it cannot be."""

    if CsvUpload.objects.filter(run=run).exists():
        raise SyncError(
            "The failed rows of a CSV upload are lines of that file: export them with the "
            '"failed" filter, fix them, and upload the corrected file (upsert makes uploading '
            "rows that were already written again harmless)."
        )
    with transaction.atomic():
        Sync.objects.select_for_update().filter(pk=run.sync_id).first()
        active = SyncRun.objects.filter(sync_id=run.sync_id, status__in=SyncRun.ACTIVE).first()
        if active:
            raise SyncError(f"Run #{active.pk} of this sync is working; retry when it is done.")
        failed = InboundRow.objects.filter(run=run, status=InboundRow.Status.FAILED)
        count = failed.count()
        if not count:
            raise SyncError(
                "None of this run's failed rows is still waiting for a retry: rows that failed for a "
                "reason that may pass are retried on their own, and replayed rows have run again "
                "(see the route's page)."
            )
        retry = SyncRun.objects.create(
            sync_id=run.sync_id,
            trigger=SyncRun.Trigger.RETRY,
            started_by=started_by,
            retry_of=run,
            expected_total=count,
            checkpoint={"retry": True},
            lease_expires_at=lease_end(),
        )
        failed.update(run=retry, status=InboundRow.Status.PENDING, next_attempt_at=None)
        queue.run_slice(retry.pk, engine=False, on_commit=True)
    return retry


# -- working a run -------------------------------------------------------------------------------


def execute(run_id: int, worker_id: str, max_seconds: float = 50) -> bool:
    """Work a write-back or relay run for up to max_seconds; True if more remains."""

    def failed(exc):
        _release_rows(run_id)
        return f"The run stopped on an internal error: {type(exc).__name__}: {exc}"

    return core.work(run_id, worker_id, RunWorker, max_seconds, failed)


def _release_rows(run_id):
    """Rows a failed or cancelled run still held wait for the next run."""
    InboundRow.objects.filter(run_id=run_id, status=InboundRow.Status.PENDING).update(run=None)


class RunWorker:
    RELATED = ("sync__connection", "sync__destination", "sync__template")

    def __init__(self, run, worker_id, max_seconds):
        self.run, self.sync, self.worker_id = run, run.sync, worker_id
        self.lease = Lease(run.pk, worker_id)
        self.deadline = time.monotonic() + max_seconds
        self.stop = threading.Event()
        checkpoint = run.checkpoint or {}
        # Every recorded batch empties "inflight": keys still there are from a slice that died.
        self.resent_keys = set(checkpoint.get("inflight", []))
        self.last_heartbeat = time.monotonic()
        self.upload = CsvUpload.objects.filter(run=run).first()
        self.route_id = checkpoint.get("route")
        if self.route_id is None and self.upload is None and not checkpoint.get("retry"):
            route = InboundRoute.objects.filter(sync=self.sync).first()
            self.route_id = route.pk if route else None

    def work(self) -> bool:
        if self.sync.kind == Sync.Kind.RELAY:
            from integrations.runs import relay

            self.processor = relay.Processor(self.run, self.stop, heartbeat=self.heartbeat)
        else:
            from integrations.runs import writeback

            self.processor = writeback.Processor(
                self.run, self.stop, upload=self.upload, columns=self._route_mapping()
            )
        try:
            more = self._loop()
        except LeaseLost:
            self.stop.set()  # another worker has the run: send nothing more from here
            raise
        finally:
            self.processor.close()
        if more:
            # Released: the next slice (queued by the task) may claim at once.
            self.lease.release()
            return True
        return False

    def _checkpoint(self, **changes):
        self.run.checkpoint = {**(self.run.checkpoint or {}), **changes}
        return self.run.checkpoint

    def _loop(self) -> bool:
        while True:
            if self.lease.cancel_requested():
                self._cancel()
                return False
            if time.monotonic() >= self.deadline:
                return True
            batch = self._next_batch()
            if batch is None:
                self.lease.finish(self.run)
                return False
            self._note_inflight(batch)
            outcomes = self.processor.process(batch)
            self._record(batch, outcomes)

    def _route_mapping(self):
        """The route's column → field entries; none for CSV runs and relays (read once a slice)."""
        if not hasattr(self, "_entries"):
            self._entries = []
            if self.upload is None and self.sync.kind == Sync.Kind.CLAY_TO_DIRECTUS:
                stored = (
                    InboundRoute.objects.filter(sync=self.sync)
                    .values_list("mapping", flat=True)
                    .first()
                )
                self._entries = columnmap.entries(stored)
        return self._entries

    # -- sources -------------------------------------------------------------------------

    def _next_batch(self):
        if self.upload is not None:
            return self._csv_batch()
        return self._inbound_batch()

    def _csv_batch(self):
        after = (self.run.checkpoint or {}).get("line", 0)
        if not hasattr(self, "_lines") or self._lines_after != after:
            self._lines = csvimport.read_rows(self.upload.path, after_line=after)
        batch = []
        for line in self._lines:
            batch.append(line)
            if len(batch) >= BATCH_ROWS:
                break
        self._lines_after = batch[-1].number if batch else after
        return batch or None

    def _inbound_batch(self):
        mine = InboundRow.objects.filter(run=self.run, status=InboundRow.Status.PENDING).order_by(
            "id"
        )
        batch = list(mine[:BATCH_ROWS])
        if batch or self.route_id is None:
            return batch or None
        route = InboundRoute.objects.get(pk=self.route_id)
        ids = list(
            inbound.waiting(route, timezone.now())
            .order_by("id")
            .values_list("pk", flat=True)[:BATCH_ROWS]
        )
        if ids:
            # Conditional: a row another run took meanwhile stays with it.
            InboundRow.objects.filter(pk__in=ids, run__isnull=True).update(
                run=self.run, status=InboundRow.Status.PENDING
            )
        return list(mine[:BATCH_ROWS]) or None

    # -- recording -----------------------------------------------------------------------

    def _note_inflight(self, batch):
        keys = [str(getattr(item, "number", getattr(item, "pk", ""))) for item in batch]
        self.lease.update(checkpoint=self._checkpoint(inflight=keys))
        self.last_heartbeat = time.monotonic()

    def heartbeat(self):
        """Extend the lease during a long batch (the relay calls it while it waits for Clay)."""
        if time.monotonic() - self.last_heartbeat >= heartbeat_seconds():
            self.lease.update()
            self.last_heartbeat = time.monotonic()

    def _record(self, batch, outcomes):
        """One transaction: row results, counters, checkpoint, inbound rows, traces."""
        now = timezone.now()
        for item, o in zip(batch, outcomes, strict=True):
            ident = str(getattr(item, "number", getattr(item, "pk", "")))
            o.resent = o.resent or ident in self.resent_keys
        rows = core.result_rows(self.run.pk, outcomes)
        changes = core.counters(outcomes)
        checkpoint = {"inflight": []}
        if self.upload is not None:
            checkpoint["line"] = batch[-1].number
        with transaction.atomic():
            self.lease.update(checkpoint=self._checkpoint(**checkpoint), **changes)
            core.insert_results(rows, now)
            if self.upload is None:
                self._settle_rows(batch, outcomes, now)
            self.processor.after_record(batch, outcomes, now)

    def _settle_rows(self, batch, outcomes, now):
        done, failed, retry = [], [], []
        for row, o in zip(batch, outcomes, strict=True):
            if o.status != Status.FAILED:
                done.append(row.pk)
            elif getattr(o, "transient", False) and row.attempts + 1 < MAX_ROW_ATTEMPTS:
                retry.append((row, o))
            else:
                failed.append((row, o))
        if done:
            InboundRow.objects.filter(pk__in=done).update(
                status=InboundRow.Status.DONE,
                done_at=now,
                attempts=F("attempts") + 1,
                last_error="",
            )
        for row, o in failed:
            InboundRow.objects.filter(pk=row.pk).update(
                status=InboundRow.Status.FAILED,
                attempts=F("attempts") + 1,
                last_error=o.error_message[:2000],
            )
        for row, o in retry:
            delay = RETRY_DELAYS[min(row.attempts, len(RETRY_DELAYS) - 1)]
            InboundRow.objects.filter(pk=row.pk).update(
                status=InboundRow.Status.RETRYING,
                run=None,
                attempts=F("attempts") + 1,
                next_attempt_at=now + timedelta(seconds=delay),
                last_error=o.error_message[:2000],
            )

    def _cancel(self):
        if self.upload is not None:
            self._skip_rest_of_csv()
        else:
            _release_rows(self.run.pk)
        self.lease.finish(self.run, cancelled=True)

    def _skip_rest_of_csv(self):
        after = (self.run.checkpoint or {}).get("line", 0)
        now, chunk, skipped = timezone.now(), [], 0
        for line in csvimport.read_rows(self.upload.path, after_line=after):
            chunk.append(
                RowResult(
                    run_id=self.run.pk,
                    row_key=f"line {line.number}",
                    status=Status.SKIPPED,
                    error_code="CANCELLED",
                    error_message="The run was cancelled before this row was written.",
                    created_at=now,
                )
            )
            if len(chunk) >= 2000:
                skipped += self._flush_skipped(chunk)
                chunk = []
        if chunk:
            skipped += self._flush_skipped(chunk)

    def _flush_skipped(self, chunk):
        with transaction.atomic():
            RowResult.objects.bulk_create(chunk, ignore_conflicts=True)
            self.lease.update(total=F("total") + len(chunk), skipped=F("skipped") + len(chunk))
        return len(chunk)
