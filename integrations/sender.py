"""Deliver rendered rows to a Clay webhook: bounded concurrency on one pool, retries, pacing.

Threads, each with its own kept-alive connection (http.WebhookPost), not asyncio: on this
2-core box httpx's async client got slower as concurrency rose, while a few threads keep a
socket busy whenever one of them waits for an answer. Each row is retried here and its final outcome
handed back as a `RowOutcome`; nothing in this module touches the database.
"""

import queue
import random
import threading
import time
from dataclasses import dataclass

from integrations import clay, http

# Timeouts, dropped connections and 5xx: the first try and up to three retries.
MAX_ATTEMPTS = 4
# 429/503 mean "later", not "broken": they get more tries before the row fails.
MAX_RATE_LIMITED_ATTEMPTS = 8
RETRY_BASE_SECONDS = 0.5
RETRY_MAX_SECONDS = 60.0
# A Retry-After longer than this is capped: the row fails after its tries rather than idling.
RETRY_AFTER_CAP_SECONDS = 300.0
EXCERPT_CHARS = 500


@dataclass
class Job:
    """One row to send: its key, the JSON body and what the row result will show of it."""

    window: int
    key: str
    body: str
    payload_hash: str
    resent: bool = False


@dataclass
class RowOutcome:
    key: str
    status: str  # RowResult.Status value
    http_status: int | None = None
    error_code: str = ""
    error_message: str = ""
    attempts: int = 0
    duration_ms: int = 0
    payload_hash: str = ""
    request_excerpt: str = ""
    response_excerpt: str = ""
    resent: bool = False


def excerpt(body: str) -> str:
    return http.redact(body[:EXCERPT_CHARS])


def backoff(attempt: int) -> float:
    """Exponential with full jitter: 0.5 s, 1 s, 2 s... times a random 0.5-1.5."""
    return min(RETRY_MAX_SECONDS, RETRY_BASE_SECONDS * 2 ** (attempt - 1)) * random.uniform(
        0.5, 1.5
    )


class Sender:
    """`concurrency` threads taking Jobs from a queue and putting (window, RowOutcome) on `results`."""

    def __init__(self, *, post, limiter, concurrency, stop: threading.Event, results):
        self.post = post  # an http.WebhookPost: one kept-alive connection per thread
        self.limiter = limiter
        self.stop = stop
        self.results = results
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
                )
            self.results.put((job.window, outcome))

    def _wait(self, seconds: float) -> bool:
        """Sleep unless stopped; True if the run was stopped meanwhile."""
        return seconds > 0 and self.stop.wait(seconds)

    def deliver(self, job: Job) -> RowOutcome:
        started = time.perf_counter()
        attempts, last = 0, None
        while True:
            if self.stop.is_set() or self._wait(self._paused_until - time.monotonic()):
                return self._stopped(job, attempts, last, started)
            if not self.limiter.acquire(self.stop):
                continue
            attempts += 1
            last = clay.deliver_prepared(self.post, job.body)
            if last.ok:
                return self._outcome(job, "sent", attempts, last, started)
            rate_limited = last.status in (429, 503)
            budget = MAX_RATE_LIMITED_ATTEMPTS if rate_limited else MAX_ATTEMPTS
            if not last.transient or attempts >= budget:
                return self._outcome(job, "failed", attempts, last, started)
            if rate_limited:
                pause = min(
                    RETRY_AFTER_CAP_SECONDS,
                    last.retry_after if last.retry_after is not None else backoff(attempts),
                )
                self._paused_until = max(self._paused_until, time.monotonic() + pause)
                if self.limiter.rate > 0:
                    self.limiter.slow_down(pause)
            elif self._wait(backoff(attempts)):
                return self._stopped(job, attempts, last, started)

    def _outcome(self, job, status, attempts, delivery, started) -> RowOutcome:
        return RowOutcome(
            key=job.key,
            status=status,
            http_status=delivery.status,
            error_code=delivery.code,
            error_message=delivery.message,
            attempts=attempts,
            duration_ms=int((time.perf_counter() - started) * 1000),
            payload_hash=job.payload_hash,
            request_excerpt=excerpt(job.body),
            response_excerpt=delivery.response_excerpt,
            resent=job.resent and attempts > 0,
        )

    def _stopped(self, job, attempts, last, started) -> RowOutcome:
        if last is None:  # never left this worker
            return RowOutcome(
                job.key,
                "skipped",
                error_code="CANCELLED",
                error_message="The run was cancelled before this row was sent.",
                payload_hash=job.payload_hash,
                request_excerpt=excerpt(job.body),
                resent=False,
            )
        outcome = self._outcome(job, "failed", attempts, last, started)
        outcome.error_message = f"{last.message} The run was cancelled before it was retried."
        return outcome
