"""The shared rate limit, against a real Redis (db 15) and in-process."""

import threading
import time

import pytest
import redis

from integrations import ratelimit

REDIS_URL = "redis://127.0.0.1:6379/15"


def redis_available():
    try:
        return redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.RedisError:
        return False


needs_redis = pytest.mark.skipif(not redis_available(), reason="no Redis on 127.0.0.1:6379")


def paced_rate(limiters, takes_each):
    """Rows/s the limiters let through together, over the span of the takes.

    The first and last 2% are left out: on a busy 2-core machine one thread waking late at
    the very end would otherwise stretch the span it measures.
    """
    stamps, lock = [], threading.Lock()

    def take(limiter):
        for _ in range(takes_each):
            limiter.acquire()
            with lock:
                stamps.append(time.monotonic())

    threads = [threading.Thread(target=take, args=(limiter,)) for limiter in limiters]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stamps.sort()
    trim = len(stamps) // 50
    kept = stamps[trim : len(stamps) - trim]
    return (len(kept) - 1) / (kept[-1] - kept[0])


@pytest.fixture
def bucket(request):
    name = f"test:{request.node.name}"
    ratelimit.reset(name, REDIS_URL)
    yield name
    ratelimit.reset(name, REDIS_URL)


@needs_redis
@pytest.mark.parametrize("rate,takes", [(10, 31), (200, 601)])
def test_it_holds_the_rate_within_three_percent_in_redis(bucket, rate, takes):
    limiter = ratelimit.limiter_for(bucket, rate, REDIS_URL)
    assert isinstance(limiter, ratelimit.RedisLimiter)
    assert paced_rate([limiter], takes) == pytest.approx(rate, rel=0.03)


@needs_redis
@pytest.mark.parametrize("rate", [10, 200])
def test_two_workers_on_one_destination_share_the_rate(bucket, rate):
    # Separate clients, as two worker processes would have.
    first = ratelimit.RedisLimiter(
        ratelimit.KEY_PREFIX + bucket, rate, redis.Redis.from_url(REDIS_URL)
    )
    second = ratelimit.RedisLimiter(
        ratelimit.KEY_PREFIX + bucket, rate, redis.Redis.from_url(REDIS_URL)
    )
    takes = 16 if rate == 10 else 300
    assert paced_rate([first, second], takes) == pytest.approx(rate, rel=0.03)


@needs_redis
def test_it_sends_no_burst_after_being_idle(bucket):
    limiter = ratelimit.limiter_for(bucket, 10, REDIS_URL)
    limiter.acquire()
    time.sleep(0.5)
    waits = [limiter.reserve() for _ in range(4)]
    # An idle bucket does not bank tokens: the second slot is 100 ms after the first.
    assert waits[0] == pytest.approx(0, abs=0.01)
    assert waits[1:] == pytest.approx([0.1, 0.2, 0.3], abs=0.01)


@needs_redis
def test_a_429_pauses_every_worker_and_halves_the_rate(bucket):
    limiter = ratelimit.limiter_for(bucket, 100, REDIS_URL)
    other = ratelimit.RedisLimiter(
        ratelimit.KEY_PREFIX + bucket, 100, redis.Redis.from_url(REDIS_URL)
    )
    started = time.monotonic()
    assert limiter.slow_down(1.0) == pytest.approx(0.5)
    # A burst of 429s from the same moment is one signal, not four.
    for _ in range(3):
        limiter.slow_down(1.0)
    asked_first, first, got_first = time.monotonic(), other.reserve(), time.monotonic()
    asked_second, second, got_second = time.monotonic(), other.reserve(), time.monotonic()
    # The pause counts from the first 429: whatever time this test lost since then (a loaded
    # machine) comes off the wait, never on top of it.
    elapsed = got_first - started
    assert 1.0 - elapsed - 0.01 <= first <= 1.0 + 0.01
    # Waits are relative to when Redis ran each script (somewhere between asking and getting
    # the answer); the slots themselves are 1/50 s apart.
    shortest_gap = (asked_second + second) - (got_first + first)
    longest_gap = (got_second + second) - (asked_first + first)
    assert shortest_gap - 0.002 <= 1 / 50 <= longest_gap + 0.002


def test_the_local_bucket_paces_threads_of_one_process():
    name = "test:local"
    ratelimit.reset(name, "")
    limiter = ratelimit.limiter_for(name, 200, "")
    assert isinstance(limiter, ratelimit.LocalLimiter)
    assert paced_rate([limiter, ratelimit.limiter_for(name, 200, "")], 150) == pytest.approx(
        200, rel=0.03
    )


def test_the_local_bucket_slows_down_and_recovers(monkeypatch):
    name = "test:local-slow"
    ratelimit.reset(name, "")
    limiter = ratelimit.limiter_for(name, 10, "")
    assert limiter.slow_down(0.2) == pytest.approx(0.5)
    assert limiter.reserve() == pytest.approx(0.2, abs=0.02)
    assert limiter.reserve() == pytest.approx(0.4, abs=0.02)  # 5/s after the slow-down


def test_a_stopped_acquire_returns_at_once():
    name = "test:local-stop"
    ratelimit.reset(name, "")
    limiter = ratelimit.limiter_for(name, 1, "")
    limiter.acquire()
    stop = threading.Event()
    threading.Timer(0.1, stop.set).start()
    started = time.monotonic()
    assert limiter.acquire(stop) is False
    assert time.monotonic() - started < 0.5


def test_no_limit_means_no_wait():
    limiter = ratelimit.limiter_for("test:none", 0, "")
    started = time.monotonic()
    assert all(limiter.acquire() for _ in range(1000))
    assert time.monotonic() - started < 0.1
