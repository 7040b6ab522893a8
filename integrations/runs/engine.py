"""One slice of a run: from its checkpoint, read a page, map, send, record, for a bounded time.

The pipeline holds two windows (Directus pages): while the sender threads work through
one, the next is read and rendered. Windows are recorded strictly in order, each in one
transaction that writes its row results, the run's counters (F() increments), the
checkpoint (the last cursor fully recorded, and the keys now in flight) and the lease.
A crash therefore loses nothing recorded, and the only rows a resumed run may send twice
are those listed as in flight: it flags them `resent` and counts them.

Rows reach the sender in grants, not whole windows: a grant is noted in the checkpoint as in
flight before it is handed over, and is sized to about a second of sending, so "in flight"
(and a resumed run's "sent twice") means rows that may really have left, not two pages of them.
At the slice's deadline no more rows are granted and the sender hands back what it has not
sent (and rows awaiting a retry); they are kept in the checkpoint (`carry`, bodies included)
and the next slice sends them first. An unreachable rate-limit store (Redis) pauses sending;
database errors are retried on a fresh connection for up to DB_OUTAGE_SECONDS. Either way the
checkpoint's `waiting` says what the run waits for, for the run page.

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

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, transaction
from django.utils import timezone

from integrations import notify
from integrations.clay import webhook as clay
from integrations.clay.sender import HELD, UNSENT, Job, RowOutcome, SenderProcess, backoff, excerpt
from integrations.directus.client import DirectusError
from integrations.mapping import templates as mapping
from integrations.models import RowResult, SyncRowState, SyncRun, WebhookState
from integrations.outbound import http
from integrations.runs import causes, core, roundtrip, sources
from integrations.runs.core import Lease, heartbeat_seconds

logger = logging.getLogger(__name__)

WINDOWS_IN_FLIGHT = 2
# How often the coordinator looks for a cancel and proves its lease is still its own.
CONTROL_INTERVAL = 0.5
READ_ATTEMPTS = 5
# A read refused by Directus's rate limiter is retried for this long, not a number of times:
# under a 20 requests/s limiter a page can be refused many times in a row.
RATE_LIMITED_READ_SECONDS = 120.0
# PostgreSQL restarting or dropping connections: the engine's writes are retried this long.
DB_OUTAGE_SECONDS = 60.0
DB_ERRORS = (OperationalError, InterfaceError)
Status = RowResult.Status
# A webhook's state → the HALT_* reason that stops sending to it.
HALT_OF_STATE = {
    WebhookState.AUTH_REJECTED: clay.HALT_AUTH,
    WebhookState.NOT_FOUND: clay.HALT_NOT_FOUND,
    WebhookState.FULL: clay.HALT_FULL,
}
STATE_OF_HALT = {halt: state for state, halt in HALT_OF_STATE.items()}
# How often progress (rows answered, not yet recorded) is written for the run page.
PROGRESS_SECONDS = 1.0


@dataclass
class Window:
    id: int
    cursor: object
    outcomes: list = field(default_factory=list)
    jobs: list = field(default_factory=list)
    pending: int = 0
    submitted: int = 0  # jobs[:submitted] were handed to the sender
    unsent: list = field(default_factory=list)  # Jobs handed back at the deadline (carried)
    labels: dict = field(default_factory=dict)  # row key -> the sync's label field value
    carried: bool = False  # the window of rows an earlier slice handed back
    queued_at: object = field(default_factory=timezone.now)  # the round-trip trace's "queued"

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
        self.returned = 0  # outcomes the sender handed back, all windows
        self.low_water = 0  # wake the coordinator when rows at the sender drop below this
        self.submitted = 0

    def put(self, item) -> None:  # the Sender's `results` interface: (window id, RowOutcome)
        window_id, outcome = item
        window = self.by_id[window_id]
        with self.lock:
            window.outcomes.append(outcome)
            window.pending -= 1
            self.returned += 1
            done = window.pending == 0
            hungry = self.submitted - self.returned == self.low_water
        if done:
            self.finished.put(window_id)
        elif hungry:
            self.finished.put(None)  # the sender runs low: grant more rows


class Slice:
    RELATED = ("sync__saved_query__connection", "sync__destination", "sync__template")

    def __init__(self, run: SyncRun, worker_id: str, max_seconds: float):
        self.run, self.sync = run, run.sync
        self.destination = self.sync.destination
        self.worker_id = worker_id
        self.lease = Lease(run.pk, worker_id)
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
        # Rows an earlier slice handed back unsent: [key, body, hash, resent, attempts].
        # A carried row that was in flight when its slice died may have gone out: flagged.
        self.carry = [
            _uncarried(entry, self.possibly_sent) for entry in checkpoint.get("carry", [])
        ]
        self.waited = checkpoint.get("waited", "")
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
        self.finishing = False  # the deadline passed: no more rows granted
        self.waiting = ""  # "redis" or "database" while the run waits for it, for the run page
        self.shown_waiting = checkpoint.get("waiting", "")  # what the database says
        self.db_down_since = None
        self.db_unsure = False  # a write failed: it may have committed before the error
        self.rate_at, self.rate_done, self.rate = time.monotonic(), 0, 0.0
        self.first_grant_at = None
        self.redis_down_since = None
        if checkpoint.get("waiting") == "redis":  # an earlier slice was waiting: still counts
            waited_for = max(0.0, time.time() - checkpoint.get("waiting_since", time.time()))
            self.redis_down_since = time.monotonic() - waited_for
        self.causes = dict(run.causes or {})
        self.answered_shown = checkpoint.get("answered", 0)
        self.last_progress = time.monotonic()
        # The pool's first webhook that is not full; a rejected token or a gone URL stops.
        self.webhook, broken = self.destination.current_webhook()
        self.halt_seen = ""  # the HALT_* this slice acted on
        self.rolling_over = False  # the webhook filled up: hand rows to the next slice
        if broken is not None:
            self._drain_for(HALT_OF_STATE.get(broken.state, clay.HALT_FULL), broken)
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
        if exhausted and not self.carry:
            self._db(self._finish)
            return False
        self._db(self._release)
        return True

    def _pipeline(self) -> bool:
        exhausted = False
        if self.carry:  # rows an earlier slice handed back go first
            window = Window(self.next_id, self._recorded_cursor(), carried=True)
            self.next_id += 1
            window.jobs = [_moved(job, window.id) for job in self.carry]
            window.labels = {job.key: job.label for job in self.carry}
            self.carry = []
            self._dispatch(window)
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
                self._dispatch(window)
            if not self.windows:
                return exhausted
            self._collect()
            if self._time_up() and not self.finishing and self._sender_had_a_moment():
                self._wrap_up()
            self._control()
            self._grant()
            while self.windows and self.windows[0].done:
                upcoming = None
                if not exhausted and not self._time_up():
                    # Read the next page first, so one write both records and covers it.
                    upcoming = self._next_window()
                    exhausted = upcoming is None
                self._flush(self.windows.popleft(), upcoming)
                if upcoming:
                    self._dispatch(upcoming)
                    self._grant()

    def _time_up(self) -> bool:
        return time.monotonic() >= self.deadline

    def _sender_had_a_moment(self) -> bool:
        # However late the first page came, its first rows get a chance to start: progress.
        return self.first_grant_at is None or time.monotonic() - self.first_grant_at >= 1.0

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
            digest = mapping.payload_hash(item)  # the item as Directus answered it
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
        if sync.label_field:
            window.labels = {key: label_of(item, sync.label_field) for key, item in items}
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
                # The round-trip fields: the enriched row Clay sends back finds this row by them.
                value = roundtrip.stamp(value, sync.pk, sync.saved_query.collection, key)
                body = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
                digest = mapping.payload_hash(value)
            except (mapping.TemplateError, ValueError, TypeError, LookupError) as exc:
                window.outcomes.append(
                    RowOutcome(
                        key,
                        Status.FAILED,
                        error_code="RENDER_ERROR",
                        error_message=http.redact(
                            f"The template could not be filled from this row: {exc}"
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
                row_id = value.get(roundtrip.ROW_ID_FIELD, "") if isinstance(value, dict) else ""
                window.jobs.append(
                    Job(
                        window.id,
                        key,
                        body,
                        digest,
                        resent=key in self.possibly_sent,
                        idempotency=clay.idempotency_key(row_id or f"{sync.pk}:{key}", digest),
                        label=window.labels.get(key, ""),
                    )
                )
        if window.jobs:
            self._hold_to_cap(window)
        return window

    def _hold_to_cap(self, window):
        """Send no row past what the pool's webhooks have left: the rest is skipped, with why."""
        left = self.destination.pool_remaining()
        in_flight = sum(len(w.jobs) for w in self.windows)
        room = max(0, left - in_flight)
        if len(window.jobs) <= room:
            return
        webhooks = len(self.destination.webhooks())
        message = (
            f"Stopped before Clay's limit of {self.destination.SUBMISSION_CAP:,} submissions per "
            f'webhook: destination "{self.destination.name}" has {left:,} left on its '
            f"{webhooks} webhook{'s' if webhooks != 1 else ''}, and they would refuse more. "
            "Create a new webhook on the same Clay table and add it to the destination's pool."
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
        """Take the window into the pipeline; its rows go to the sender in grants."""
        self.windows.append(window)
        self.by_id[window.id] = window
        with self.results.lock:
            window.pending = len(window.jobs)
        if window.jobs and (self.finishing or self.halt_seen):
            # Read before sending stopped (a halt while it was read): carried or skipped.
            if self.drain and not self.finishing:
                self._take_back(*self.drain)
            else:
                with self.results.lock:
                    window.unsent += window.jobs
                    window.jobs, window.pending = [], 0
            self.results.finished.put(window.id)
            return
        if window.jobs:
            self._sender()
            self._grant()

    def _budget(self) -> int:
        """Rows the sender may hold at once: about one control interval of its recent pace.

        Small on purpose: a crash flags these as maybe sent twice. The coordinator is woken
        when half are back (Inbox.low_water), so the sender is never left without rows.
        """
        now = time.monotonic()
        returned = self.results.returned
        elapsed = now - self.rate_at
        pace = (returned - self.rate_done) / max(elapsed, 0.05)
        if elapsed >= CONTROL_INTERVAL:
            self.rate_at, self.rate_done = now, returned
            self.rate = pace
        pace = max(pace, self.rate)
        concurrency = max(1, self.sync.concurrency)
        return max(2 * concurrency, int(pace * CONTROL_INTERVAL) + concurrency)

    def _grant(self):
        """Hand the sender more rows, after noting them in flight (a crash may send them twice)."""
        if self.sender is None or self.finishing or self.stop.is_set():
            return
        budget = self._budget()
        room = budget - (self.results.submitted - self.results.returned)
        batch = []
        for window in self.windows:
            while room > len(batch) and window.submitted < len(window.jobs):
                batch.append(window.jobs[window.submitted])
                window.submitted += 1
        if not batch:
            return
        self._db(self._write_checkpoint)
        if self.first_grant_at is None:
            self.first_grant_at = time.monotonic()
        with self.results.lock:
            self.results.submitted += len(batch)
            self.results.low_water = budget // 2
        self.sender.submit_all(batch)

    def _write_checkpoint(self):
        checkpoint = self._checkpoint()
        self.lease.update(checkpoint=checkpoint)
        self.shown_waiting = checkpoint.get("waiting", "")

    def _wrap_up(self):
        """The deadline: grant nothing more; what the sender has not sent comes back UNSENT."""
        self.finishing = True
        with self.results.lock:
            for window in self.windows:
                kept = window.jobs[window.submitted :]
                window.unsent += kept
                window.pending -= len(kept)
                del window.jobs[window.submitted :]
        if self.sender is not None:
            self.sender.finish()
        for window in self.windows:
            if window.done:
                self.results.finished.put(window.id)

    def _take_back(self, code, message):
        """Rows never handed to the sender end as skipped (a cancel)."""
        with self.results.lock:
            for window in self.windows:
                kept = window.jobs[window.submitted :]
                del window.jobs[window.submitted :]
                window.pending -= len(kept)
                window.outcomes += [
                    RowOutcome(
                        j.key,
                        Status.SKIPPED,
                        error_code=code,
                        error_message=message,
                        payload_hash=j.payload_hash,
                        attempts=j.attempts,
                        attempt_log=list(j.log),
                    )
                    for j in kept
                ]

    def _sender(self) -> SenderProcess:
        if self.sender is None:
            webhook = self.webhook
            token = webhook.auth_token.reveal() if webhook.auth_token_id else None
            post = http.WebhookPost(
                webhook.webhook_url.reveal(),
                clay.headers_for(token),
                timeout=settings.KILN_OUTBOUND_TIMEOUT,
            )
            self.sender = SenderProcess(
                post=post,  # its settings only: the sender process keeps the connections
                limit=(f"clay:{self.destination.pk}", self.sync.rate_limit),
                concurrency=max(1, self.sync.concurrency),
                stop=self.stop,
                results=self.results,
                cap_room=webhook.SUBMISSION_CAP - webhook.submissions_count,
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
        self._db(self._control_once, now)

    def _control_once(self, now):
        if self.lease.cancel_requested() and not self.cancelled:
            self._cancel()
        self._check_halt()
        if not self.halt_seen and self.webhook is not None and self.sender is not None:
            # Another worker may have found the webhook unusable: every worker stops at once.
            state = (
                type(self.webhook)
                .objects.filter(pk=self.webhook.pk)
                .values_list("state", flat=True)
                .first()
            )
            if state:
                self._on_halt(HALT_OF_STATE.get(state, clay.HALT_FULL), ours=False)
        self._note_redis((self.sender.waiting if self.sender else "") == "redis")
        answered = self._answered()
        if self.waiting != self.shown_waiting or (
            answered != self.answered_shown and now - self.last_progress >= PROGRESS_SECONDS
        ):
            self._write_checkpoint()
            self.last_heartbeat = self.last_progress = now
        elif now - self.last_heartbeat >= heartbeat_seconds():
            self.lease.update()
            self.last_heartbeat = now

    def _note_redis(self, down: bool):
        if down and self.redis_down_since is None:
            self.redis_down_since = time.monotonic()
        elif not down and self.redis_down_since is not None:
            self._waited("Redis", self.redis_down_since)
            self.redis_down_since = None
        self.waiting = "redis" if down else ""

    def _waited(self, what, since):
        seconds = time.monotonic() - since
        at = timezone.now().strftime("%H:%M:%S")
        self.waited = f"Waited {seconds:.0f} s for {what} (until {at} UTC); nothing was lost."

    # -- a webhook that cannot take rows ------------------------------------------------------

    def _check_halt(self):
        """Act on the sender's word that the webhook refused (token, URL, cap), once."""
        if not self.halt_seen and self.sender is not None and self.sender.halted:
            self._on_halt(self.sender.halted, ours=True)

    def _on_halt(self, why: str, *, ours: bool):
        self.halt_seen = why
        if self.sender is not None:
            self.sender.halt(why)  # rows it still has come back HELD, unsent
        if ours:
            self._db(self._mark_webhook, why)
        self.destination.refresh_from_db(fields=["state", "state_detail", "submissions_count"])
        if why == clay.HALT_FULL:
            following, broken = self.destination.current_webhook()
            if following is not None and following != self.webhook:
                # Roll over: end this slice; its unsent rows go first to the next webhook.
                self.rolling_over = True
                self.deadline = time.monotonic()
                self._wrap_up()
                return
            self._drain_for(HALT_OF_STATE.get(broken.state, why) if broken else why, broken)
        else:
            self._drain_for(why, self.webhook)
        self._take_back(*self.drain)
        for window in self.windows:
            if window.done:
                self.results.finished.put(window.id)

    def _mark_webhook(self, why: str):
        webhook = self.webhook
        if webhook.mark(STATE_OF_HALT[why], clay.HALT_SENTENCES[why]):
            notify.webhook_state(self.destination, webhook, why)

    def _drain_for(self, why: str, webhook):
        """Nothing more is sent this run: the rows left are skipped with one sentence."""
        self.halt_seen = why
        message = clay.HALT_SENTENCES[why]
        if why == clay.HALT_FULL:
            message = (
                "Every webhook of this destination is full: Clay refuses more rows. Create a new "
                "webhook on the same Clay table and add it to the destination's pool."
            )
        elif webhook is not None and webhook is not self.destination:
            message = f"{webhook.label.capitalize()} of the pool: {message}"
        self.drain = (clay.HALT_CODES[why], message)
        self.failure = message

    def _answered(self) -> int:
        """Rows with an outcome not yet recorded (they are recorded a window at a time)."""
        with self.results.lock:
            return sum(len(w.outcomes) for w in self.windows)

    def _cancel(self):
        self.cancelled = True
        self.stop.set()
        self.drain = ("CANCELLED", "The run was cancelled before this row was sent.")
        self._take_back(*self.drain)
        for window in self.windows:
            if window.done:
                self.results.finished.put(window.id)

    def _db(self, write, *args):
        """Run a database step, retried on a fresh connection while PostgreSQL is unreachable.

        A write that failed may still have committed (the answer was lost): `db_unsure` tells
        the step to look before it writes again. Gives up after DB_OUTAGE_SECONDS.
        """
        attempt = 0
        while True:
            try:
                result = write(*args)
            except DB_ERRORS as exc:
                now = time.monotonic()
                if self.db_down_since is None:
                    self.db_down_since = now
                    logger.warning("Run %s: waiting for the database: %s", self.run.pk, exc)
                if now - self.db_down_since >= DB_OUTAGE_SECONDS:
                    raise
                self.db_unsure, self.waiting = True, "database"
                attempt += 1
                _drop_connection()
                time.sleep(min(2.0, 0.1 * 2**attempt))
                continue
            if self.db_down_since is not None:
                logger.warning(
                    "Run %s: the database answers again after %.0f s",
                    self.run.pk,
                    time.monotonic() - self.db_down_since,
                )
                self._waited("the database", self.db_down_since)
                self.db_down_since = None
                self.waiting = "redis" if self.redis_down_since is not None else ""
            self.db_unsure = False
            return result

    def _pause(self, seconds):
        end = time.monotonic() + seconds
        while not self.stop.is_set() and time.monotonic() < end:
            time.sleep(min(CONTROL_INTERVAL, max(0.0, end - time.monotonic())))
            self._control()

    # -- recording -----------------------------------------------------------------------

    def _checkpoint(self, after=None) -> dict:
        """The run's state as the database keeps it; `after` defaults to the last recorded."""
        inflight, carry = [], [_carried(j) for j in self.carry]
        for w in self.windows:
            inflight += [j.key for j in w.jobs[: w.submitted]]
            if w.carried:  # rows handed back by an earlier slice stay carried until recorded
                carry += [_carried(j) for j in w.jobs + w.unsent]
            else:
                carry += [_carried(j) for j in w.unsent]
        checkpoint = {
            "after": self._recorded_cursor() if after is None else after,
            "inflight": inflight,
            "hwm": self.hwm,
        }
        if carry:
            checkpoint["carry"] = carry
        if self.waiting:
            checkpoint["waiting"] = self.waiting
            down_for = time.monotonic() - (self.redis_down_since or self.db_down_since or 0)
            checkpoint["waiting_since"] = time.time() - down_for
        if self.waited:
            checkpoint["waited"] = self.waited
        sending = self.results.submitted - self.results.returned
        if sending > 0:
            checkpoint["sending"] = sending
        answered = self._answered()
        self.answered_shown = answered
        if answered:
            checkpoint["answered"] = answered
        if self._incremental():
            checkpoint.update(boundary=self.boundary, at_mark=self.at_mark, cap=self.cap)
        return checkpoint

    def _recorded_cursor(self):
        return (self.run.checkpoint or {}).get("after")

    def _flush(self, window: Window, upcoming: Window | None = None):
        self.by_id.pop(window.id, None)
        now = timezone.now()
        self._check_halt()
        unsent_keys = set()
        for o in window.outcomes:
            if o.status == HELD and not self.rolling_over:  # nowhere to send it: skipped
                code, message = self.drain or (clay.HALT_CODES[o.halt], clay.HALT_SENTENCES[o.halt])
                o.status, o.error_code, o.error_message = Status.SKIPPED, code, message
                o.request_excerpt = excerpt(_job_of(window, o.key).body)
            elif o.status in (UNSENT, HELD):  # handed back: carried to the next slice, unrecorded
                job = _job_of(window, o.key)
                window.unsent.append(
                    _moved(job, -1, attempts=o.attempts, maybe=o.maybe, log=o.attempt_log)
                )
                unsent_keys.add(o.key)
        outcomes = [o for o in window.outcomes if o.status not in (UNSENT, HELD)]
        window.outcomes = outcomes
        self.carry += window.unsent
        window.unsent = []
        new_causes = causes.merged(self.causes, causes.count(outcomes))
        # A carried window does not move the cursor: its rows were read by an earlier slice.
        checkpoint = self._checkpoint(None if window.carried else window.cursor)
        changes = dict(
            core.counters(outcomes, possibly_duplicated=True),
            causes=new_causes,
            checkpoint=checkpoint,
            lease_expires_at=core.lease_end(),
        )
        rows = core.result_rows(self.run.pk, outcomes, window.labels)
        self._db(self._record, window, outcomes, changes, rows, now)
        self.causes = new_causes
        self.run.checkpoint = checkpoint
        self.shown_waiting = checkpoint.get("waiting", "")
        self.last_heartbeat = time.monotonic()

    def _record(self, window, outcomes, changes, rows, now):
        """One transaction per window: counters, checkpoint, lease and the row results."""
        if self.db_unsure and outcomes:
            # The last try may have committed before its answer was lost: never count twice.
            if RowResult.objects.filter(run=self.run, row_key=outcomes[0].key[:200]).exists():
                return
        with transaction.atomic():
            self.lease.update(**changes)
            core.insert_results(rows, now)
            roundtrip.record_window(self.run, window, outcomes, now)  # the traces: queued -> sent
            sent = [o for o in outcomes if o.status == Status.SENT]
            if sent:
                self.webhook.add_submissions(len(sent))
                notify.pool_levels(self.destination)
                if self.sync.skip_unchanged:
                    self._remember_sent(sent, now)

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
        self.lease.release(checkpoint=self._checkpoint())

    def _finish(self):
        checkpoint = {**(self.run.checkpoint or {}), "inflight": []}
        for transient in ("carry", "waiting", "waiting_since", "sending"):
            checkpoint.pop(transient, None)
        if self.read_failed:
            # The run page offers to resume reading from `after`; these rows have no result.
            checkpoint["read_failed"] = True
        changes = {}
        if self._incremental() and not self.read_failed and not self.cancelled:
            # The read is complete: the mark moves whatever happened to single rows (their
            # failures stay retryable), so the next run does not resend everything.
            changes["high_water_mark"] = self.hwm or self.run.since
        status = self.lease.finish(
            self.run,
            cancelled=self.cancelled,
            failure=self.failure,
            checkpoint=checkpoint,
            **changes,
        )
        notify.run_finished(
            self.run, status, self.failure or ("Cancelled." if self.cancelled else "")
        )


def _moved(job: Job, window_id: int, **changes) -> Job:
    """The same row in another window (or carried to the next slice, window -1)."""
    return Job(
        window_id,
        job.key,
        job.body,
        job.payload_hash,
        job.resent,
        changes.get("attempts", job.attempts),
        job.idempotency,
        changes.get("maybe", job.maybe),
        changes.get("log", job.log),
        job.label,
    )


def _job_of(window: Window, key: str) -> Job:
    return next(j for j in window.jobs if j.key == key)


def _carried(job: Job) -> list:
    return [
        job.key,
        job.body,
        job.payload_hash,
        job.resent,
        job.attempts,
        job.idempotency,
        job.maybe,
        job.log,
        job.label,
    ]


def _uncarried(entry: list, possibly_sent: set) -> Job:
    """A carried row back as a Job; a row that was in flight when its slice died is flagged."""
    key, body, digest, resent, attempts, *more = entry
    idempotency, maybe, log, label = (*more, "", False, [], "")[:4] if more else ("", False, [], "")
    return Job(
        -1,
        key,
        body,
        digest,
        resent or key in possibly_sent,
        attempts,
        idempotency,
        maybe,
        log,
        label,
    )


def label_of(item, path: str) -> str:
    """The label field's value in an item (dot paths into related objects), as text."""
    value = item
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if value is None or isinstance(value, dict | list):
        return ""
    return str(value)[:200]


def _drop_connection():
    """Close a broken connection so the next query opens a new one (not inside a transaction,
    where closing would lose it: tests run in one)."""
    if connection.in_atomic_block:
        return
    try:
        connection.close()
    except DB_ERRORS:
        pass
