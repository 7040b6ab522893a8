"""Rows coming in, and the runs that work them: inbound receipts, CSV uploads, relay events.

Receiving stores first and works later: `accept()` writes the receipt and its rows in one
transaction and only then does the endpoint answer 202, so a row is never lost when workers
are busy, down or the broker is away — the periodic `sweep()` finds what waits. The same row
sent twice has the same `dedup_key` (sha256 of its canonical JSON), unique per route, so it is
stored, and applied, once.

Runs of write-back and relay syncs are worked here in batches. They use SyncRun and RowResult
like the Directus → Clay engine (same pages, counters, one result per row) and the same lease:
claimed by `sync.claim` (a conditional UPDATE of `lease_owner`/`lease_expires_at`), extended
before and after every batch, resumed by `sync.resume_stale_runs`, which hands each run to the
worker of its kind. A crashed run is taken over once its lease has passed; the rows it had in
flight (`checkpoint["inflight"]`, emptied after every recorded batch) are flagged `resent`: the
write may have gone out twice (at-least-once, as with the engine).
"""

import json
import logging
import threading
import time
import uuid
from datetime import timedelta

from django.core.cache import cache
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from integrations import jsontext
from integrations.clay import csvimport
from integrations.mapping import columnmap
from integrations.mapping import templates as mapping
from integrations.models import (
    CsvUpload,
    InboundReceipt,
    InboundRoute,
    InboundRow,
    RowResult,
    Sync,
    SyncRun,
)
from integrations.outbound import http
from integrations.runs import core, queue, roundtrip
from integrations.runs.core import Lease, LeaseLost, SyncError, heartbeat_seconds, lease_end

logger = logging.getLogger(__name__)

BATCH_ROWS = 200
# Rows failed for a reason that may pass (Directus or Clay down): tried again this many times.
MAX_ROW_ATTEMPTS = 6
RETRY_DELAYS = [10, 30, 120, 600, 1800]
WAKE_DEBOUNCE_SECONDS = 2
ROW_ID_FIELD = roundtrip.ROW_ID_FIELD
Status = RowResult.Status


class BadPayload(ValueError):
    """The request body is not what an inbound route takes; the message names the problem."""


# -- receiving ---------------------------------------------------------------------------------


def parse_body(raw: bytes, *, relay: bool) -> list[dict]:
    """The rows in a request body: one JSON object, or a list of objects (not for a relay).

    Every body Kiln could not store or process is refused with a reason (see jsontext.loads):
    nesting deeper than 64, NaN/Infinity/1e400, integers of more than 4,300 digits, and
    strings with NUL or a lone surrogate ("\\u0000", "\\ud800"), which PostgreSQL's jsonb refuses.
    """
    if not raw.strip():
        raise BadPayload("The body is empty: send one row as a JSON object, or several as a list.")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadPayload(f"The body is not UTF-8 (byte {exc.start}).") from None
    try:
        value = jsontext.loads(text)
    except json.JSONDecodeError as exc:
        raise BadPayload(
            f"Malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}."
        ) from None
    except jsontext.JSONRefused as exc:
        raise BadPayload(str(exc)) from None
    if relay:
        # Kiln's Flow sends {"trigger": {{$trigger}}, "accountability": {{$accountability}}};
        # a Flow made before (or by hand) sends the bare trigger. Both are stored as received.
        trigger = (
            value.get("trigger") if isinstance(value, dict) and "event" not in value else value
        )
        if not isinstance(trigger, dict) or not isinstance(trigger.get("event"), str):
            raise BadPayload(
                'A relay takes a Directus Flow trigger: an object with "event", '
                '"collection" and "key" or "keys" (send {"trigger": "{{$trigger}}", '
                '"accountability": "{{$accountability}}"} as the body, or {{$trigger}}).'
            )
        return [value]
    rows = value if isinstance(value, list) else [value]
    if not rows:
        raise BadPayload("The body is an empty list: send at least one row.")
    for index, row in enumerate(rows):
        if not isinstance(row, dict):
            where = f"Element {index} of the list" if isinstance(value, list) else "The body"
            raise BadPayload(f"{where} is {_json_type(row)}, not a JSON object (one row).")
    return rows


def _json_type(value) -> str:
    return {
        str: "a string",
        int: "a number",
        float: "a number",
        bool: "true/false",
        list: "a list",
        type(None): "null",
    }.get(type(value), "not an object")


def row_hash(row: dict) -> str:
    return mapping.payload_hash(row)


def accept(
    route: InboundRoute, rows: list[dict], *, size: int, remote_ip=None, relay=False
) -> InboundReceipt:
    """Store the receipt and its new rows durably; duplicates of stored rows are counted, not kept."""
    now = timezone.now()
    keyed = {}
    for row in rows:
        # A relay event is never a duplicate: two identical updates are two events.
        key = uuid.uuid4().hex if relay else row_hash(row)
        keyed.setdefault(key, row)
    with transaction.atomic():
        known = (
            set(
                InboundRow.objects.filter(route=route, dedup_key__in=list(keyed)).values_list(
                    "dedup_key", flat=True
                )
            )
            if not relay
            else set()
        )
        fresh = {k: r for k, r in keyed.items() if k not in known}
        receipt = InboundReceipt.objects.create(
            route=route,
            received_at=now,
            size=size,
            rows=len(rows),
            duplicates=len(rows) - len(fresh),
            remote_ip=remote_ip or None,
        )
        InboundRow.objects.bulk_create(
            [
                InboundRow(
                    route=route,
                    receipt=receipt,
                    dedup_key=key,
                    data=row,
                    created_at=now,
                    kiln_row_id=str(row.get(ROW_ID_FIELD) or "")[:40],
                )
                for key, row in fresh.items()
            ],
            ignore_conflicts=True,  # a concurrent request with the same row: stored once
        )
    return receipt


# route id -> when this process last knew a wake-up was queued (time.monotonic()). Under the
# asgi worker each request runs in a new thread with a cache client of its own, so asking
# Redis costs a new connection per request: a burst of rows asks it once per debounce instead.
recent_wakes: dict[int, float] = {}


def wake(route_id: int) -> bool:
    """Ask a worker to process the route soon; never fails the request (sweep() is the fallback)."""
    now = time.monotonic()
    if now - recent_wakes.get(route_id, -WAKE_DEBOUNCE_SECONDS) < WAKE_DEBOUNCE_SECONDS:
        return False  # queued moments ago: that run will see these rows too
    try:
        if not cache.add(f"kiln:inbound:wake:{route_id}", 1, WAKE_DEBOUNCE_SECONDS):
            recent_wakes[route_id] = now
            return False  # one already queued: it will see these rows too
        # A short countdown lets a burst of one-row requests become one batch.
        queue.process_route(route_id, countdown=1)
        recent_wakes[route_id] = now
        return True
    except Exception as exc:  # the broker or cache is down: rows are stored, sweep() finds them
        logger.warning(
            "Inbound route %s: could not queue processing (%s); sweep will", route_id, exc
        )
        return False


# -- runs: lease, claim, finish -----------------------------------------------------------------


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
    if not _waiting(route, now).exists():
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


def _waiting(route, now):
    return InboundRow.objects.filter(route=route, run__isnull=True).filter(
        Q(status=InboundRow.Status.PENDING)
        | Q(status=InboundRow.Status.RETRYING, next_attempt_at__lte=now)
    )


# -- working a run -------------------------------------------------------------------------------


def execute(run_id: int, worker_id: str, max_seconds: float = 50) -> bool:
    """Work a write-back or relay run for up to max_seconds; True if more remains."""

    def failed(exc):
        _release_rows(run_id)
        return f"The run stopped on an internal error: {type(exc).__name__}: {exc}"

    return core.work(
        run_id,
        worker_id,
        ("sync__connection", "sync__destination", "sync__template"),
        lambda run: RunWorker(run, worker_id, max_seconds),
        failed,
    )


def _release_rows(run_id):
    """Rows a failed or cancelled run still held wait for the next run."""
    InboundRow.objects.filter(run_id=run_id, status=InboundRow.Status.PENDING).update(run=None)


class RunWorker:
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

            self.processor = writeback.Processor(self.run, self.stop, upload=self.upload)
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
            outcomes = self._process(batch)
            self._record(batch, outcomes)

    def _process(self, batch):
        """Inbound write-back rows go through the route's column mapping first (columnmap, the
        same function CSV uploads are checked with); a row it cannot map fails here."""
        entries = self._route_mapping()
        if not entries:
            return self.processor.process(batch)
        from integrations.runs.writeback import WriteOutcome, excerpt

        refused, ready = {}, []
        for index, row in enumerate(batch):
            data, problems = columnmap.apply(entries, row.data)
            if not problems and not data and not any(e.column in row.data for e in entries):
                problems = [_nothing_mapped(entries, row.data)]
            if problems:
                refused[index] = WriteOutcome(
                    f"#{row.pk}",
                    Status.FAILED,
                    error_code="MAPPING_ERROR",
                    error_message=http.redact(" ".join(problems))[:2000],
                    request_excerpt=excerpt(row.data),
                )
                continue
            row.data = data  # in memory only: the stored row keeps what Clay sent, for replays
            ready.append(row)
        written = iter(self.processor.process(ready) if ready else [])
        return [refused[i] if i in refused else next(written) for i in range(len(batch))]

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
            _waiting(route, timezone.now()).order_by("id").values_list("pk", flat=True)[:BATCH_ROWS]
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
        results = []
        for item, o in zip(batch, outcomes, strict=True):
            ident = str(getattr(item, "number", getattr(item, "pk", "")))
            o.resent = o.resent or ident in self.resent_keys
            results.append(
                RowResult(
                    run_id=self.run.pk,
                    row_key=o.key[:200],
                    status=o.status,
                    http_status=o.http_status,
                    error_code=o.error_code[:50],
                    error_message=o.error_message,
                    attempts=o.attempts,
                    duration_ms=o.duration_ms,
                    payload_hash=getattr(o, "payload_hash", ""),
                    resent=o.resent,
                    request_excerpt=o.request_excerpt,
                    response_excerpt=o.response_excerpt,
                    created_at=now,
                )
            )
        changes = core.counters(outcomes)
        checkpoint = {"inflight": []}
        if self.upload is not None:
            checkpoint["line"] = batch[-1].number
        with transaction.atomic():
            self.lease.update(checkpoint=self._checkpoint(**checkpoint), **changes)
            RowResult.objects.bulk_create(results, ignore_conflicts=True)
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


def _nothing_mapped(entries, data) -> str:
    wanted = ", ".join(f'"{e.column}"' for e in entries[:8])
    sent = ", ".join(f'"{k}"' for k in list(data)[:8]) or "no columns"
    return (
        f"None of the route's mapped columns is in this row (the mapping reads {wanted}; the row "
        f"has {sent}): nothing to write. Add its columns to the route's mapping."
    )


# -- finding work that waits ----------------------------------------------------------------------


def sweep() -> dict:
    """Periodic: wake routes with rows waiting (runs whose worker died: sync.resume_stale_runs)."""
    now, woken = timezone.now(), 0
    # Rows held by a run that ended without them (it failed) wait for the next run.
    InboundRow.objects.filter(status=InboundRow.Status.PENDING, run__isnull=False).exclude(
        run__status__in=SyncRun.ACTIVE
    ).update(run=None)
    due = (
        InboundRow.objects.filter(run__isnull=True)
        .filter(
            Q(status=InboundRow.Status.PENDING)
            | Q(status=InboundRow.Status.RETRYING, next_attempt_at__lte=now)
        )
        .values_list("route_id", flat=True)
        .distinct()
    )
    for route_id in due:
        queue.process_route(route_id)
        woken += 1
    return {"woken": woken}


def replay(rows) -> int:
    """Put failed rows (a queryset) back in line; returns how many."""
    return rows.filter(status__in=[InboundRow.Status.FAILED, InboundRow.Status.RETRYING]).update(
        status=InboundRow.Status.PENDING, run=None, next_attempt_at=None
    )


# -- one row's round trip: see roundtrip.py ------------------------------------------------------
