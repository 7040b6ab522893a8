"""Deliver rendered rows to a Clay webhook: bounded concurrency on one pool, retries, pacing.

Threads, each with its own kept-alive connection (http.WebhookPost), not asyncio: on this
2-core box httpx's async client got slower as concurrency rose, while a few threads keep a
socket busy whenever one of them waits for an answer. Each row is retried here and its final outcome
handed back as a `RowOutcome`; nothing in this module touches the database.

Two things are waited out rather than turned into failed rows: the rate limiter's store being
unreachable (`ratelimit.Unavailable`: sending pauses, the engine is told what it waits for), and
the end of a slice (`finish()`): rows not yet sent, and rows between two tries, come back
`UNSENT` with the tries they had, for the next slice to send; a try already on the wire ends
within the request timeout.
"""

import ctypes
import logging
import multiprocessing.connection
import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings

from integrations.clay import webhook as clay
from integrations.outbound import http, ratelimit
from integrations.outcome import Outcome

logger = logging.getLogger(__name__)

# Timeouts, dropped connections and 5xx: the first try and up to three retries.
MAX_ATTEMPTS = 4
# 429/503 mean "later", not "broken": they get more tries before the row fails.
MAX_RATE_LIMITED_ATTEMPTS = 8
RETRY_BASE_SECONDS = 0.5
RETRY_MAX_SECONDS = 60.0
# A Retry-After longer than this is capped: the row fails after its tries rather than idling.
RETRY_AFTER_CAP_SECONDS = 300.0
EXCERPT_CHARS = 500
# A row handed back at the end of a slice, neither sent nor failed: the engine records nothing.
UNSENT = "unsent"
# A row not sent because the webhook cannot take rows (token rejected, gone, full): the engine
# sends it to the pool's next webhook, or records it skipped.
HELD = "held"
# A 403 when this few of the webhook's submissions are left is the cap, whatever it says.
NEAR_CAP = 500
# How long a sender waits before asking an unreachable rate-limit store again.
STORE_RETRY_SECONDS = 1.0


@dataclass
class Job:
    """One row to send: its key, the JSON body and what the row result will show of it."""

    window: int
    key: str
    body: str
    payload_hash: str
    resent: bool = False
    attempts: int = 0  # tries an earlier slice already made (it handed the row back UNSENT)
    idempotency: str = ""  # the Idempotency-Key header (clay.idempotency_key)
    maybe: bool = False  # an earlier try may have reached Clay (no answer after the body went)
    log: list = field(default_factory=list)  # earlier tries, as RowOutcome.attempt_log
    label: str = ""  # the sync's label field value (engine only, never sent)


@dataclass
class RowOutcome(Outcome):
    """A row's outcome from Clay. Sent through the pipe as a tuple: fields keep their order."""

    halt: str = ""  # clay.HALT_*: this answer stopped sending to the webhook
    maybe: bool = False  # a try may have reached Clay (kept when the row is handed back)


def excerpt(body: str) -> str:
    return http.redacted_excerpt(body, EXCERPT_CHARS)


@dataclass(frozen=True)
class Retries:
    """How many tries a Sender gives a row and how long it waits between them."""

    max_attempts: int
    max_rate_limited_attempts: int
    base_seconds: float
    max_seconds: float

    @classmethod
    def current(cls) -> "Retries":
        """This module's values as they are now (tests shorten them)."""
        return cls(MAX_ATTEMPTS, MAX_RATE_LIMITED_ATTEMPTS, RETRY_BASE_SECONDS, RETRY_MAX_SECONDS)


def backoff(attempt: int, retries: Retries | None = None) -> float:
    """Exponential with full jitter: 0.5 s, 1 s, 2 s... times a random 0.5-1.5."""
    retries = retries or Retries.current()
    return min(retries.max_seconds, retries.base_seconds * 2 ** (attempt - 1)) * random.uniform(
        0.5, 1.5
    )


class Sender:
    """`concurrency` threads taking Jobs from a queue and putting (window, RowOutcome) on `results`."""

    def __init__(
        self,
        *,
        post,
        limiter,
        concurrency,
        stop: threading.Event,
        results,
        on_wait=None,
        hold=False,
        cap_room=None,
        retries: Retries | None = None,
    ):
        self.post = post  # an http.WebhookPost: one kept-alive connection per thread
        # Once an answer says the webhook cannot take rows (clay.HALT_*), nothing more is sent:
        # rows come back HELD (hold=True, the engine decides) or skipped with the sentence.
        self.halted = ""
        self.hold = hold
        # Submissions the webhook had left when sending began (None: unknown): a 403 near it
        # is the cap, not the token.
        self.cap_room = cap_room
        self.retries = retries or Retries.current()
        self.accepted = 0
        # Until one row was accepted, one request at a time: a wrong token or URL costs one
        # refused request per sender, whatever the concurrency.
        self.proven = threading.Event()
        self._probe = threading.Lock()
        self.limiter = limiter
        self.stop = stop
        self.results = results
        # Set by finish(): hand rows back instead of starting or retrying them.
        self.finishing = threading.Event()
        # Called with "redis" while the limiter's store is unreachable, and "" once it answers.
        self.on_wait = on_wait or (lambda what: None)
        self._store_down = 0  # 1 while the limiter's store is unreachable
        self._store_down_at = 0.0
        self._store_lock = threading.Lock()
        self.jobs = queue.SimpleQueue()
        # A 429 holds back this worker's other threads too, even with no shared limit set.
        self._paused_until = 0.0
        self._threads = [
            threading.Thread(target=self._work, name=f"kiln-sender-{i}", daemon=True)
            for i in range(max(1, concurrency))
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, job: Job) -> None:
        self.jobs.put(job)

    def finish(self) -> None:
        """The slice is over: queued rows and rows awaiting a retry come back UNSENT."""
        self.finishing.set()

    def halt(self, why: str) -> None:
        """Send nothing more (the webhook cannot take rows); the first reason stays."""
        if not self.halted:
            self.halted = why

    def close(self) -> None:
        for _ in self._threads:
            self.jobs.put(None)
        for thread in self._threads:
            thread.join()

    def _work(self):
        while True:
            job = self.jobs.get()
            if job is None:
                return
            try:
                outcome = self.deliver(job)
            except Exception as exc:  # a bug must not lose the row: record it as failed
                outcome = RowOutcome(
                    job.key,
                    "failed",
                    error_code="INTERNAL",
                    error_message=http.redact(repr(exc)),
                    payload_hash=job.payload_hash,
                    request_excerpt=excerpt(job.body),
                    maybe=job.maybe,
                )
            self.results.put((job.window, outcome))

    def _wait(self, seconds: float) -> bool:
        """Sleep unless stopped or finishing; True if the run was stopped meanwhile."""
        end = time.monotonic() + seconds
        while not self.finishing.is_set():
            left = end - time.monotonic()
            if left <= 0:
                return False
            if self.stop.wait(min(left, 0.1)):
                return True
        return self.stop.is_set()

    def _take_slot(self) -> bool:
        """Wait for the limiter's slot; False if stopped, finishing, or the store is down."""
        asked_at = time.monotonic()
        try:
            taken = self.limiter.acquire(_Either(self.stop, self.finishing))
        except ratelimit.Unavailable as exc:
            self._report_store(down=True, error=exc)
            self._wait(STORE_RETRY_SECONDS)
            return False
        # A slot reserved before the store went away proves nothing about it now.
        if self._store_down and asked_at > self._store_down_at:
            self._report_store(down=False)
        return taken

    def _report_store(self, *, down: bool, error=None):
        with self._store_lock:
            if bool(self._store_down) == down:
                return
            self._store_down = int(down)
            self._store_down_at = time.monotonic()
        if down:
            logger.warning("Rate-limit store unreachable, sending paused: %s", error)
        else:
            logger.warning("Rate-limit store answers again, sending resumed")
        self.on_wait("redis" if down else "")

    def _attempt(self, job: Job):
        """One POST; None if sending halted while this row waited for the first answer."""
        if not self.proven.is_set():
            with self._probe:
                if self.halted:
                    return None
                if not self.proven.is_set():
                    delivery = clay.deliver_prepared(self.post, job.body, job.idempotency)
                    if delivery.ok:
                        self.proven.set()
                    return delivery
        return clay.deliver_prepared(self.post, job.body, job.idempotency)

    def _classify_halt(self, delivery) -> str:
        halt = delivery.halt
        if (
            halt == clay.HALT_AUTH
            and delivery.status == 403
            and self.cap_room is not None
            and self.cap_room - self.accepted <= NEAR_CAP
        ):
            return clay.HALT_FULL  # refused at (or near) the count Kiln keeps: the cap
        return halt

    def deliver(self, job: Job) -> RowOutcome:
        started = time.perf_counter()
        attempts, last = job.attempts, None
        state = {"maybe": job.maybe, "log": list(job.log)}
        while True:
            if self.halted:
                return self._held(job, attempts, last, started, state)
            if self.stop.is_set() or self._wait(self._paused_until - time.monotonic()):
                return self._stopped(job, attempts, last, started, state)
            if self.finishing.is_set():
                return self._unsent(job, attempts, last, started, state)
            if not self._take_slot():
                continue
            if self.halted:
                return self._held(job, attempts, last, started, state)
            delivery = self._attempt(job)
            if delivery is None:
                return self._held(job, attempts, last, started, state)
            attempts, last = attempts + 1, delivery
            state["log"].append(
                {
                    "at": round(time.time(), 3),
                    "status": last.status,
                    "ms": last.elapsed_ms,
                    "error": last.code,
                    "maybe": last.maybe_delivered,
                }
            )
            if last.ok:
                self.accepted += 1
                return self._outcome(job, "sent", attempts, last, started, state)
            if last.halt:
                return self._halted_by(job, attempts, last, started, state)
            state["maybe"] = state["maybe"] or last.maybe_delivered
            rate_limited = last.status in (429, 503)
            retries = self.retries
            budget = retries.max_rate_limited_attempts if rate_limited else retries.max_attempts
            if not last.transient or attempts >= budget:
                return self._outcome(job, "failed", attempts, last, started, state)
            if rate_limited:
                pause = min(
                    RETRY_AFTER_CAP_SECONDS,
                    last.retry_after
                    if last.retry_after is not None
                    else backoff(attempts, retries),
                )
                self._paused_until = max(self._paused_until, time.monotonic() + pause)
                if self.limiter.rate > 0:
                    try:
                        self.limiter.slow_down(pause)
                    except ratelimit.Unavailable:  # this worker's own pause still holds
                        pass
            elif self._wait(backoff(attempts, retries)):
                return self._stopped(job, attempts, last, started, state)

    def _halted_by(self, job, attempts, last, started, state) -> RowOutcome:
        """This answer was about the webhook: stop sending; a full webhook did not store it."""
        why = self._classify_halt(last)
        self.halt(why)
        if why == clay.HALT_FULL:
            last.message, last.code = clay.HALT_SENTENCES[why], clay.HALT_CODES[why]
            return self._held(job, attempts, last, started, state, why=why)
        outcome = self._outcome(job, "failed", attempts, last, started, state)
        outcome.error_code, outcome.halt = clay.HALT_CODES[why], why
        outcome.error_message = clay.HALT_SENTENCES[why]
        return outcome

    def _held(self, job, attempts, last, started, state, why="") -> RowOutcome:
        """Not sent (or refused as over the cap): the engine sends it elsewhere or skips it."""
        why = why or self.halted
        if not self.hold:
            outcome = self._unsent(job, attempts, last, started, state)
            outcome.status = "skipped"
            outcome.error_code = clay.HALT_CODES[why]
            outcome.error_message = clay.HALT_SENTENCES[why]
            outcome.request_excerpt = excerpt(job.body)
            return outcome
        outcome = self._unsent(job, attempts, last, started, state)
        outcome.status, outcome.halt = HELD, why
        return outcome

    def _unsent(self, job, attempts, last, started, state=None) -> RowOutcome:
        """Handed back at the end of a slice: the next slice sends it, its tries counted."""
        state = state or {"maybe": job.maybe, "log": list(job.log)}
        outcome = RowOutcome(
            job.key,
            UNSENT,
            attempts=attempts,
            payload_hash=job.payload_hash,
            resent=job.resent,
            duration_ms=int((time.perf_counter() - started) * 1000),
            attempt_log=state["log"],
            maybe=state["maybe"],
        )
        if last is not None:
            outcome.http_status, outcome.error_code = last.status, last.code
            outcome.error_message = last.message
        return outcome

    def _outcome(self, job, status, attempts, delivery, started, state=None) -> RowOutcome:
        state = state or {"maybe": job.maybe, "log": list(job.log)}
        message = delivery.message
        if status == "failed" and state["maybe"]:
            message += (
                " An earlier try may have reached Clay: the connection dropped after the row "
                "was sent."
            )
        return RowOutcome(
            key=job.key,
            status=status,
            http_status=delivery.status,
            error_code=delivery.code,
            error_message=message,
            attempts=attempts,
            duration_ms=int((time.perf_counter() - started) * 1000),
            payload_hash=job.payload_hash,
            request_excerpt=excerpt(job.body),
            response_excerpt=delivery.response_excerpt,
            resent=job.resent and attempts > 0,
            possibly_duplicated=status == "sent" and state["maybe"],
            attempt_log=state["log"],
            maybe=state["maybe"],
        )

    def _stopped(self, job, attempts, last, started, state=None) -> RowOutcome:
        if last is None:  # never left this worker
            return RowOutcome(
                job.key,
                "skipped",
                error_code="CANCELLED",
                error_message="The run was cancelled before this row was sent.",
                payload_hash=job.payload_hash,
                request_excerpt=excerpt(job.body),
                resent=False,
                attempt_log=list(job.log),
                maybe=job.maybe,
            )
        outcome = self._outcome(job, "failed", attempts, last, started, state)
        outcome.error_message = f"{last.message} The run was cancelled before it was retried."
        return outcome


class _Either:
    """Two events seen as one by Limiter.acquire: set when either is."""

    def __init__(self, a: threading.Event, b: threading.Event):
        self.a, self.b = a, b

    def is_set(self) -> bool:
        return self.a.is_set() or self.b.is_set()

    def wait(self, seconds: float) -> bool:
        end = time.monotonic() + seconds
        while not self.is_set():
            left = end - time.monotonic()
            if left <= 0:
                return False
            self.a.wait(min(left, 0.1))
        return True


# -- the sender process ----------------------------------------------------------------------

# The outcome tuples that cross the pipe, in RowOutcome's field order after the window id.
_OUTCOME_FIELDS = list(RowOutcome.__dataclass_fields__)
# How long the child gathers outcomes before it sends them on: fewer, larger messages.
BATCH_SECONDS = 0.002
CLOSE_TIMEOUT = 10.0
SENDER_LOST = (
    "The sending process stopped before this row's answer came back; Clay may have received it."
)
_ROOT = str(Path(__file__).resolve().parents[2])  # the project: integrations/clay/sender.py


class SenderProcess:
    """The Sender in a child process: the engine's reading, rendering and recording no longer
    share a GIL with the HTTP work.

    On two cores, one process that read, rendered, recorded and sent reached 60 % of what its
    own client stack could send (bench/README.md): every row's Python work waited for the
    GIL the sender threads held. The child is a fresh interpreter that imports only the
    sending modules (about 33 MiB), not a fork: a forked child kept the pages the engine
    went on changing, and the pair grew by 30 MiB over a 100k-row run. It never touches the
    database. What it needs (the webhook URL and headers, the guard's policy, the limit, the
    secrets to redact) goes over a private socket pair, never argv or the environment; then
    jobs go over in one message per window and outcomes come back in small batches. It dies
    with its worker (PR_SET_PDEATHSIG, and EOF on the socket), so a worker killed with kill -9
    leaves no sender behind; rows it had in flight are the checkpoint's "inflight" ones,
    flagged `resent` if the run sends them again.
    """

    def __init__(self, *, post, limit, concurrency, stop: threading.Event, results, cap_room=None):
        """post: an http.WebhookPost (its settings are used, not its connections);
        limit: (limiter name, rows per second) as for ratelimit.limiter_for;
        cap_room: submissions the webhook has left by Kiln's count (a 403 near it is the cap).
        Rows the webhook could not take come back HELD, and `halted` says why."""
        self.stop, self.results = stop, results
        self.halted = ""  # clay.HALT_* once an answer (or halt()) stopped sending
        self.outstanding: dict = {}  # (window, key) -> Job until its outcome comes back
        self.lost = False
        self.waiting = ""  # what the child waits for ("redis"), from its last word on it
        self._send_lock = threading.Lock()
        self._stop_sent = False
        self._closing = False
        ours, theirs = multiprocessing.Pipe()
        env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [_ROOT, env.get("PYTHONPATH")]))
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from integrations.clay.sender import serve; serve()",
                str(theirs.fileno()),
                str(os.getpid()),
            ],
            pass_fds=[theirs.fileno()],
            stdin=subprocess.DEVNULL,
            cwd=_ROOT,
            env=env,
        )
        theirs.close()
        self.conn = ours
        self.pid = self.process.pid
        self._send(
            {
                "post": post.spec(),
                "max_response_bytes": http.max_response_bytes(),
                "limit": tuple(limit),
                "redis_url": settings.KILN_RATE_LIMIT_REDIS_URL,
                "concurrency": concurrency,
                "cap_room": cap_room,
                "secrets": http.registered_secrets(),
                # The engine's values, so both retry alike (tests shorten them).
                "retries": Retries.current(),
            }
        )
        self.reader = threading.Thread(target=self._read, name="kiln-sender-reader", daemon=True)
        self.reader.start()

    def submit_all(self, jobs: list) -> None:
        if self.lost:
            for job in jobs:
                self.results.put((job.window, _lost(job)))
            return
        for job in jobs:
            self.outstanding[job.window, job.key] = job
        self._send(
            (
                "jobs",
                [
                    (
                        j.window,
                        j.key,
                        j.body,
                        j.payload_hash,
                        j.resent,
                        j.attempts,
                        j.idempotency,
                        j.maybe,
                        j.log,
                    )
                    for j in jobs
                ],
            )
        )

    def halt(self, why: str) -> None:
        """Another worker found the webhook unusable: send nothing more, hand rows back HELD."""
        if not self.halted:
            self.halted = why
        self._send(("halt", why))

    def finish(self) -> None:
        """The slice is over: the child hands back every row it has not sent (UNSENT)."""
        self._send(("finish", None))

    def close(self) -> None:
        self._closing = True
        self._pass_stop()
        self._send(("close", None))
        self.reader.join(CLOSE_TIMEOUT)
        try:
            self.process.wait(CLOSE_TIMEOUT)
        except subprocess.TimeoutExpired:  # stuck past every timeout: do not wait forever
            self.process.kill()
            self.process.wait()
        self.conn.close()

    def _send(self, message) -> None:
        with self._send_lock:
            try:
                self.conn.send(message)
            except OSError:  # the child is gone; _read reports its rows
                pass

    def _pass_stop(self) -> None:
        if self.stop.is_set() and not self._stop_sent:
            self._stop_sent = True
            self._send(("stop", None))

    def _read(self):
        """Hand each outcome to the engine's inbox; watch the stop event meanwhile."""
        put, outstanding = self.results.put, self.outstanding
        while True:
            self._pass_stop()
            try:
                if not self.conn.poll(0.05):
                    continue
                batch = self.conn.recv()
            except (EOFError, OSError):
                break
            if batch is None:  # the child finished its last row and is leaving
                break
            for window, *fields in batch:
                if window is None:  # not an outcome: what the child now waits for
                    self.waiting = fields[0]
                    continue
                outstanding.pop((window, fields[0]), None)
                outcome = RowOutcome(*fields)
                if outcome.halt and not self.halted:
                    self.halted = outcome.halt
                put((window, outcome))
        if not self._closing or outstanding:
            self.lost = True
            for job in list(outstanding.values()):
                put((job.window, _lost(job)))
            outstanding.clear()


def _lost(job: Job) -> RowOutcome:
    return RowOutcome(
        job.key,
        "failed",
        error_code="SENDER_LOST",
        error_message=SENDER_LOST,
        payload_hash=job.payload_hash,
        request_excerpt=excerpt(job.body),
        resent=job.resent,
        attempt_log=list(job.log),
        maybe=True,  # it may have been on the wire
    )


class _Outbox:
    """The child's `results`: gathers outcomes and sends them to the engine in batches."""

    def __init__(self, conn):
        self.conn, self.items = conn, []
        self.ready = threading.Condition()
        self.closed = False
        self.thread = threading.Thread(target=self._run, name="kiln-sender-outbox", daemon=True)
        self.thread.start()

    def put(self, item) -> None:
        window, o = item
        row = (window, *(getattr(o, name) for name in _OUTCOME_FIELDS))
        with self.ready:
            self.items.append(row)
            if len(self.items) == 1:
                self.ready.notify()

    def put_waiting(self, what: str) -> None:
        with self.ready:
            self.items.append((None, what))
            if len(self.items) == 1:
                self.ready.notify()

    def close(self) -> None:
        with self.ready:
            self.closed = True
            self.ready.notify()
        self.thread.join()

    def _run(self):
        while True:
            with self.ready:
                while not self.items and not self.closed:
                    self.ready.wait()
                if not self.items:
                    break
            time.sleep(BATCH_SECONDS)  # let the other threads' answers join this batch
            with self.ready:
                batch, self.items = self.items, []
            try:
                self.conn.send(batch)
            except OSError:
                return
        try:
            self.conn.send(None)
        except OSError:
            pass


def serve():
    """The child's entry point: send what the engine passes, until it says close or goes away."""
    fd, engine_pid = int(sys.argv[1]), int(sys.argv[2])
    _die_with_parent(engine_pid)
    # Ctrl-C or a worker's warm shutdown is for the engine, which closes this process itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    conn = multiprocessing.connection.Connection(fd)
    try:
        spec = conn.recv()
    except (EOFError, OSError):
        return
    settings.configure(KILN_MAX_RESPONSE_BYTES=spec["max_response_bytes"])
    handler = logging.StreamHandler()
    handler.addFilter(http.RedactingFilter())
    logging.basicConfig(level=logging.WARNING, handlers=[handler])
    for secret in spec["secrets"]:
        http.register_secret(secret)
    post = http.WebhookPost(**spec["post"])
    limiter = ratelimit.limiter_for(*spec["limit"], redis_url=spec["redis_url"])
    stop = threading.Event()
    outbox = _Outbox(conn)
    sender = Sender(
        post=post,
        limiter=limiter,
        concurrency=spec["concurrency"],
        stop=stop,
        results=outbox,
        on_wait=outbox.put_waiting,
        hold=True,
        cap_room=spec.get("cap_room"),
        retries=spec["retries"],
    )
    try:
        while True:
            kind, payload = conn.recv()
            if kind == "jobs":
                for fields in payload:
                    sender.submit(Job(*fields))
            elif kind == "stop":
                stop.set()
            elif kind == "halt":
                sender.halt(payload)
            elif kind == "finish":
                sender.finish()
            else:
                break
    except (EOFError, OSError):  # the engine is gone: send nothing more
        stop.set()
    except BaseException:
        logger.exception("The sender process failed")
        raise
    finally:
        sender.close()
        outbox.close()
        post.close()


def _die_with_parent(engine_pid):
    """Ask Linux to SIGKILL this process when the engine that started it ends."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the socket's EOF still stops the child
        pass
    if os.getppid() != engine_pid:  # the engine died before prctl took effect
        os._exit(0)
