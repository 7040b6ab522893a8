"""One slice of a run: from its checkpoint, read a page, map, send, record, for a bounded time.

The pipeline holds two windows (Directus pages): while the sender threads work through
one, the next is read and rendered. Windows are recorded strictly in order, each in one
transaction that writes its row results, the run's counters (F() increments), the
checkpoint (the last cursor fully recorded, and the keys now in flight) and the lease.
A crash therefore loses nothing recorded, and the only rows a resumed run may send twice
are those listed as in flight: it flags them `resent` and counts them.

Only the coordinating thread touches the database. The rows are sent by a sender
process (sender.SenderProcess), so reading, rendering and recording here do not wait for the
GIL its HTTP threads hold.
"""

import json
import logging
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from integrations import bulk, clay, http, mapping, roundtrip, sources
from integrations.directus import DirectusError
from integrations.models import ClayDestination, RowResult, RunDailyStat, SyncRowState, SyncRun
from integrations.sender import Job, RowOutcome, SenderProcess, backoff, excerpt

logger = logging.getLogger(__name__)

WINDOWS_IN_FLIGHT = 2
# How often the coordinator looks for a cancel and proves its lease is still its own.
CONTROL_INTERVAL = 0.5
READ_ATTEMPTS = 5
# A read refused by Directus's rate limiter is retried for this long, not a number of times:
# under a 20 requests/s limiter a page can be refused many times in a row.
RATE_LIMITED_READ_SECONDS = 120.0
Status = RowResult.Status
# The order of the row tuples _flush writes.
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
]


def lease_seconds() -> float:
    return float(getattr(settings, "KILN_SYNC_LEASE_SECONDS", 20))


def heartbeat_seconds() -> float:
    return lease_seconds() / 4


def cancel_requested(run_id, worker_id) -> bool:
    """Whether a cancel was asked for; raises LeaseLost if worker_id no longer holds the run."""
    row = SyncRun.objects.filter(pk=run_id).values_list("lease_owner", "cancel_requested").first()
    if row is None or row[0] != worker_id:
        raise LeaseLost()
    return row[1]


class LeaseLost(Exception):
    """Another worker took the run over (our lease expired): stop at once, record nothing."""


@dataclass
class Window:
    id: int
    cursor: object
    outcomes: list = field(default_factory=list)
    jobs: list = field(default_factory=list)
    pending: int = 0
    queued_at: object = field(default_factory=timezone.now)  # issue 6: the trace's "queued"

    @property
    def done(self) -> bool:
        return self.pending == 0


class Inbox:
    """Where the sender threads hand back outcomes: straight into their window.

    The coordinator is woken once per finished window, not once per row: on two cores each
    wake-up took the GIL from the sender threads (~50,000 wake-ups per 100k rows before).
    """

    def __init__(self, by_id: dict):
        self.by_id = by_id
        self.lock = threading.Lock()
        self.finished = queue.SimpleQueue()  # ids of windows whose last row came back

    def put(self, item) -> None:  # the Sender's `results` interface: (window id, RowOutcome)
        window_id, outcome = item
        window = self.by_id[window_id]
        with self.lock:
            window.outcomes.append(outcome)
            window.pending -= 1
            done = window.pending == 0
        if done:
            self.finished.put(window_id)


class Slice:
    def __init__(self, run: SyncRun, worker_id: str, max_seconds: float):
        self.run, self.sync = run, run.sync
        self.destination = self.sync.destination
        self.worker_id = worker_id
        self.deadline = time.monotonic() + max_seconds
        checkpoint = run.checkpoint or {}
        self.cursor = checkpoint.get("after")
        # Rows at the high-water mark: {key: item hash}. Directus answers dateTime values in
        # whole seconds, so the next run reads `>= mark` and skips these if unchanged.
        self.at_mark = checkpoint.get("at_mark") or {}  # the previous run's boundary
        self.hwm = checkpoint.get("hwm", run.since)
        self.boundary = dict(checkpoint.get("boundary", self.at_mark))
        self.cap = checkpoint.get("cap")  # newest change time when the read began
        self.possibly_sent = set(checkpoint.get("inflight", []))
        self.already_recorded = (
            set(
                RowResult.objects.filter(run=run, row_key__in=self.possibly_sent).values_list(
                    "row_key", flat=True
                )
            )
            if self.possibly_sent
            else set()
        )
        self.stop = threading.Event()
        self.windows: deque[Window] = deque()
        self.by_id: dict[int, Window] = {}
        self.results = Inbox(self.by_id)
        self.next_id = 0
        self.drain: tuple[str, str] | None = None  # (error code, message) once nothing more is sent
        self.failure = ""  # a run-level error: the run ends failed with it
        self.read_failed = False
        self.cancelled = False
        self.last_control = 0.0
        self.last_heartbeat = time.monotonic()
        self.sender = None
        if run.cancel_requested:
            self._cancel()

    # -- the loop ------------------------------------------------------------------------

    def work(self) -> bool:
        """Work until the source ends or time is up; True if the run has more to do."""
        self.render = self._renderer()
        connection = self.sync.saved_query.connection
        with connection.client() as directus:
            self.directus = directus
            self.page_size = connection.page_size_for(self.sync.page_size, directus)
            if self.cap is None and self._incremental():
                self.cap = sources.newest_change(directus, self.sync, self.run.since) or ""
            self.source = self._open_source(self.cursor)
            try:
                if not self.run.dry_run and not self.drain:
                    # Start the sender process now: it loads while the first page is read.
                    self._sender()
                exhausted = self._pipeline()
            finally:
                if self.windows:  # leaving early (lease lost, error): unsent rows stay unsent
                    self.stop.set()
                if self.sender:
                    self.sender.close()
        if exhausted:
            self._finish()
            return False
        self._release()
        return True

    def _pipeline(self) -> bool:
        exhausted = False
        while True:
            # Every slice reads at least one window, however slow its start: progress, always.
            while (
                not exhausted
                and len(self.windows) < WINDOWS_IN_FLIGHT
                and (self.next_id == 0 or not self._time_up())
            ):
                window = self._next_window()
                if window is None:
                    exhausted = True
                    break
                self._save_inflight(window)
                self._dispatch(window)
            if not self.windows:
                return exhausted
            self._collect()
            self._control()
            while self.windows and self.windows[0].done:
                upcoming = None
                if not exhausted and not self._time_up():
                    # Read the next page first, so one write both records and covers it.
                    upcoming = self._next_window()
                    exhausted = upcoming is None
                self._flush(self.windows.popleft(), upcoming)
                if upcoming:
                    self._dispatch(upcoming)

    def _time_up(self) -> bool:
        return time.monotonic() >= self.deadline

    # -- reading and preparing rows ------------------------------------------------------

    def _incremental(self) -> bool:
        return self.sync.mode == self.sync.Mode.INCREMENTAL and not self.run.retry_of_id

    def _open_source(self, after):
        if self.run.retry_of_id:
            return sources.retry_windows(
                self.directus, self.run, after=after, page_size=self.page_size
            )
        return sources.query_windows(
            self.directus, self.sync, since=self.run.since, after=after, page_size=self.page_size
        )

    def _next_window(self) -> Window | None:
        """Read and prepare the next page; None when the source is exhausted (or failed)."""
        if self.read_failed:
            return None
        attempt, limited_until = 0, None
        while True:
            try:
                page = next(self.source)
                break
            except StopIteration:
                return None
            except DirectusError as exc:
                attempt += 1
                if exc.status == 429:
                    # Waited out for a while, however many refusals that takes.
                    limited_until = limited_until or time.monotonic() + RATE_LIMITED_READ_SECONDS
                    give_up = time.monotonic() >= limited_until
                else:
                    give_up = not exc.transient or attempt >= READ_ATTEMPTS
                if give_up:
                    # Rows never read get no result: the run ends saying how many were not read.
                    self.failure = f"Reading Directus failed: {exc.explain()}"
                    self.read_failed = True
                    return None
                self._pause(exc.retry_after if exc.retry_after is not None else backoff(attempt))
                # A generator that raised is finished: reopen it after the last page read.
                self.source = self._open_source(self.cursor)
        self.cursor = page.cursor
        return self._prepare(page)

    def _not_yet_recorded(self, items):
        """After a read started over: drop rows this run already recorded or has in flight."""
        keys = [key for key, _ in items]
        taken = set(
            RowResult.objects.filter(run=self.run, row_key__in=keys).values_list(
                "row_key", flat=True
            )
        )
        for window in self.windows:
            taken.update(j.key for j in window.jobs)
            taken.update(o.key for o in window.outcomes)
        return [(key, item) for key, item in items if key not in taken]

    def _track_mark(self, items):
        """Move the high-water mark over the rows read; drop rows the last run saw at its mark.

        Rows changed after the read began (newer than `cap`) do not move the mark: the next
        run reads them again, so a change made mid-run is never missed.
        """
        kept, seen = [], []
        for key, item in items:
            stamp = sources.timestamp_of(item, self.sync)
            digest = sources.item_hash(item)
            if stamp and stamp == self.run.since and self.at_mark.get(key) == digest:
                seen.append(key)  # read by the last run at its mark, unchanged since
                continue
            kept.append((key, item))
            if not stamp or (self.cap and stamp > self.cap):
                continue
            if stamp > self.hwm:
                self.hwm, self.boundary = stamp, {key: digest}
            elif stamp == self.hwm:
                self.boundary[key] = digest
        return kept, seen

    def _prepare(self, page) -> Window:
        window = Window(self.next_id, page.cursor)
        self.next_id += 1
        pk, sync = self.sync.row_key, self.sync
        items = [(sources.key_of(item, pk), item) for item in page.items]
        items = [(key, item) for key, item in items if key not in self.already_recorded]
        if getattr(page, "rescanned", False):
            items = self._not_yet_recorded(items)
        if self._incremental():
            items, seen = self._track_mark(items)
            window.outcomes += [
                RowOutcome(
                    key,
                    Status.SKIPPED,
                    error_code="AT_MARK",
                    error_message="Unchanged since the last run read it at its high-water mark: "
                    "not sent again.",
                )
                for key in seen
            ]
        for key in page.missing:
            window.outcomes.append(
                RowOutcome(
                    key,
                    Status.FAILED,
                    error_code="NOT_FOUND",
                    error_message="The item no longer exists in Directus (or the token may not read it).",
                )
            )
        if self.drain:
            code, message = self.drain
            window.outcomes += [
                RowOutcome(key, Status.SKIPPED, error_code=code, error_message=message)
                for key, _ in items
            ]
            return window
        known = {}
        if sync.skip_unchanged and not self.run.dry_run and items:
            known = dict(
                SyncRowState.objects.filter(
                    sync=sync, row_key__in=[k for k, _ in items]
                ).values_list("row_key", "payload_hash")
            )
        for key, item in items:
            try:
                value = self.render(item)
                value = roundtrip.stamp(value, sync.pk, sync.saved_query.collection, key)  # issue 6
                body = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
                digest = mapping.payload_hash(value)
            except (mapping.TemplateError, ValueError, TypeError, LookupError) as exc:
                problems = getattr(exc, "problems", None)
                message = "; ".join(str(p) for p in problems) if problems else str(exc)
                window.outcomes.append(
                    RowOutcome(
                        key,
                        Status.FAILED,
                        error_code="RENDER_ERROR",
                        error_message=http.redact(
                            f"The template could not be filled from this row: {message}"
                        ),
                    )
                )
                continue
            if self.run.dry_run:
                window.outcomes.append(
                    RowOutcome(
                        key,
                        Status.SKIPPED,
                        error_code="DRY_RUN",
                        error_message="Dry run: rendered, not sent.",
                        payload_hash=digest,
                        request_excerpt=excerpt(body),
                    )
                )
            elif known.get(key) == digest:
                window.outcomes.append(
                    RowOutcome(
                        key,
                        Status.SKIPPED,
                        error_code="UNCHANGED",
                        error_message="Unchanged since this sync last sent it.",
                        payload_hash=digest,
                        request_excerpt=excerpt(body),
                    )
                )
            else:
                window.jobs.append(
                    Job(window.id, key, body, digest, resent=key in self.possibly_sent)
                )
        if window.jobs:
            self._hold_to_cap(window)
        return window

    def _hold_to_cap(self, window):
        """Send no row past Clay's lifetime cap: the rest of the run is skipped with a reason."""
        used = (
            ClayDestination.objects.filter(pk=self.destination.pk)
            .values_list("submissions_count", flat=True)
            .first()
            or 0
        )
        in_flight = sum(len(w.jobs) for w in self.windows)
        room = max(0, ClayDestination.SUBMISSION_CAP - used - in_flight)
        if len(window.jobs) <= room:
            return
        message = (
            f"Stopped before Clay's limit of {ClayDestination.SUBMISSION_CAP:,} submissions for "
            f'destination "{self.destination.name}" ({used:,} used): the webhook would refuse more. '
            "Create a new webhook source in Clay and a new destination for it."
        )
        over, window.jobs = window.jobs[room:], window.jobs[:room]
        window.outcomes += [
            RowOutcome(
                j.key,
                Status.SKIPPED,
                error_code="CAP_REACHED",
                error_message=message,
                payload_hash=j.payload_hash,
            )
            for j in over
        ]
        self.drain, self.failure = ("CAP_REACHED", message), message

    def _renderer(self):
        template = self.sync.template
        if template is None:
            return lambda item: item  # "send the item as is"
        parsed = mapping.parse(template.body)
        options = template.options or {}
        return lambda item: parsed.render(item, options)

    # -- sending -------------------------------------------------------------------------

    def _dispatch(self, window: Window):
        self.windows.append(window)
        self.by_id[window.id] = window
        window.pending = len(window.jobs)
        if window.jobs:
            self._sender().submit_all(window.jobs)

    def _sender(self) -> SenderProcess:
        if self.sender is None:
            token = self.destination.auth_token.reveal() if self.destination.auth_token_id else None
            post = http.WebhookPost(
                self.destination.webhook_url.reveal(),
                clay.headers_for(token),
                timeout=settings.KILN_OUTBOUND_TIMEOUT,
            )
            self.sender = SenderProcess(
                post=post,  # its settings only: the sender process keeps the connections
                limit=(f"clay:{self.destination.pk}", self.sync.rate_limit),
                concurrency=max(1, self.sync.concurrency),
                stop=self.stop,
                results=self.results,
            )
        return self.sender

    def _collect(self):
        """Wait up to CONTROL_INTERVAL for a window to finish (the sender fills it in place)."""
        if all(w.done for w in self.windows):
            return
        try:
            self.results.finished.get(timeout=CONTROL_INTERVAL)
        except queue.Empty:
            return
        while True:  # drain: the pipeline looks at every window's `done` itself
            try:
                self.results.finished.get_nowait()
            except queue.Empty:
                return

    # -- control: cancel, heartbeat, lease ---------------------------------------------------

    def _control(self, force=False):
        now = time.monotonic()
        if not force and now - self.last_control < CONTROL_INTERVAL:
            return
        self.last_control = now
        if cancel_requested(self.run.pk, self.worker_id) and not self.cancelled:
            self._cancel()
        if now - self.last_heartbeat >= heartbeat_seconds():
            self._owned().update(
                lease_expires_at=timezone.now() + timedelta(seconds=lease_seconds())
            ) or self._lost()
            self.last_heartbeat = now

    def _cancel(self):
        self.cancelled = True
        self.stop.set()
        self.drain = ("CANCELLED", "The run was cancelled before this row was sent.")

    def _pause(self, seconds):
        end = time.monotonic() + seconds
        while not self.stop.is_set() and time.monotonic() < end:
            time.sleep(min(CONTROL_INTERVAL, max(0.0, end - time.monotonic())))
            self._control()

    def _owned(self):
        return SyncRun.objects.filter(pk=self.run.pk, lease_owner=self.worker_id)

    def _lost(self):
        raise LeaseLost()

    # -- recording -----------------------------------------------------------------------

    def _checkpoint(self, after, upcoming=None) -> dict:
        inflight = [j.key for w in self.windows for j in w.jobs]
        if upcoming:
            inflight += [j.key for j in upcoming.jobs]
        checkpoint = {"after": after, "inflight": inflight, "hwm": self.hwm}
        if self._incremental():
            checkpoint.update(boundary=self.boundary, at_mark=self.at_mark, cap=self.cap)
        return checkpoint

    def _save_inflight(self, window: Window):
        """Before its rows go out, note them as in flight (a crash may then send them twice)."""
        if window.jobs:
            checkpoint = self._checkpoint(self._recorded_cursor(), window)
            self._owned().update(
                checkpoint=checkpoint, lease_expires_at=self._lease_end()
            ) or self._lost()

    def _recorded_cursor(self):
        return (self.run.checkpoint or {}).get("after")

    def _lease_end(self):
        return timezone.now() + timedelta(seconds=lease_seconds())

    def _flush(self, window: Window, upcoming: Window | None):
        self.by_id.pop(window.id, None)
        now = timezone.now()
        outcomes = window.outcomes
        counts = {Status.SENT: 0, Status.SKIPPED: 0, Status.FAILED: 0}
        resent = 0
        for o in outcomes:
            counts[o.status] += 1
            resent += o.resent
        failures = [o for o in outcomes if o.status == Status.FAILED]
        checkpoint = self._checkpoint(window.cursor, upcoming)
        changes = dict(
            total=F("total") + len(outcomes),
            sent=F("sent") + counts[Status.SENT],
            skipped=F("skipped") + counts[Status.SKIPPED],
            failed=F("failed") + counts[Status.FAILED],
            resent=F("resent") + resent,
            checkpoint=checkpoint,
            lease_expires_at=self._lease_end(),
        )
        if failures:
            changes["last_error"] = f"Row {failures[-1].key}: {failures[-1].error_message}"[:2000]
        run_id = self.run.pk
        rows = [
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
            )
            for o in outcomes
        ]
        with transaction.atomic():
            self._owned().update(**changes) or self._lost()
            # Plain tuples in one INSERT: bulk_create's per-field compiling cost more than sending.
            bulk.insert(
                RowResult, RESULT_FIELDS, rows, constants={"created_at": now}, ignore_conflicts=True
            )
            roundtrip.record_window(self.run, window, outcomes, now)  # issue 6: queued -> sent
            if counts[Status.SENT]:
                self.destination.add_submissions(counts[Status.SENT])
                if self.sync.skip_unchanged:
                    self._remember_sent([o for o in outcomes if o.status == Status.SENT], now)
        self.run.checkpoint = checkpoint
        self.last_heartbeat = time.monotonic()

    def _remember_sent(self, sent, now):
        SyncRowState.objects.bulk_create(
            [
                SyncRowState(
                    sync_id=self.sync.pk,
                    row_key=o.key[:200],
                    payload_hash=o.payload_hash,
                    sent_at=now,
                )
                for o in sent
            ],
            update_conflicts=True,
            unique_fields=["sync", "row_key"],
            update_fields=["payload_hash", "sent_at"],
        )

    def _release(self):
        """End this slice: the next one (already queued by the task) may claim at once."""
        self._owned().update(lease_owner="", lease_expires_at=self._lease_end())

    def _finish(self):
        counts = (
            SyncRun.objects.filter(pk=self.run.pk)
            .values("total", "sent", "skipped", "failed")
            .get()
        )
        status = SyncRun.final_status(counts, cancelled=self.cancelled, failure=self.failure)
        checkpoint = {**(self.run.checkpoint or {}), "inflight": []}
        if self.read_failed:
            # The run page offers to resume reading from `after`; these rows have no result.
            checkpoint["read_failed"] = True
        changes = dict(
            status=status,
            finished_at=timezone.now(),
            lease_owner="",
            lease_expires_at=None,
            checkpoint=checkpoint,
        )
        if self._incremental() and not self.read_failed and not self.cancelled:
            # The read is complete: the mark moves whatever happened to single rows (their
            # failures stay retryable), so the next run does not resend everything.
            changes["high_water_mark"] = self.hwm or self.run.since
        if self.failure:
            changes["last_error"] = self.failure
        elif self.cancelled:
            changes["last_error"] = "Cancelled."
        with transaction.atomic():
            self._owned().update(**changes) or self._lost()
            record_daily_stat(self.sync.pk, counts)


def record_daily_stat(sync_id, counts):
    stat, _ = RunDailyStat.objects.get_or_create(sync_id=sync_id, day=timezone.now().date())
    RunDailyStat.objects.filter(pk=stat.pk).update(
        sent=F("sent") + counts["sent"],
        skipped=F("skipped") + counts["skipped"],
        failed=F("failed") + counts["failed"],
    )
