"""The shared rate limit, against a real Redis (db 15) and in-process."""

import threading
import time

import pytest
import redis

from integrations.outbound import ratelimit
from tests.conftest import require_redis

REDIS_URL = "redis://127.0.0.1:6379/15"


@pytest.fixture
def needs_redis():
    require_redis(REDIS_URL)


def booked_slots(limiters, count):
    """Book `count` slots round-robin across the limiters: [(earliest, latest, wait)].

    Each wait is relative to the moment the bucket ran (between asking and getting the answer),
    so a slot's time is known within that round trip. Checking the schedule the bucket hands
    out, rather than timing sleeping threads, keeps a loaded machine from failing the test; the
    wall-clock pacing is measured in bench/run.py.
    """
    slots = []
    for i in range(count):
        asked = time.monotonic()
        wait = limiters[i % len(limiters)].reserve()
        got = time.monotonic()
        slots.append((asked + wait, got + wait, wait))
    return slots


def assert_rate(limiters, rate, count):
    interval = 1 / rate
    slots = booked_slots(limiters, count)
    # A caller that falls behind (this process paused) gets its slot at once: the bucket
    # banks nothing, so the schedule restarts there. Measure the runs booked ahead of time.
    runs, run = [], [slots[0]]
    for slot in slots[1:]:
        if slot[2] > 0:
            run.append(slot)
        else:
            runs.append(run)
            run = [slot]
    runs.append(run)
    runs = [r for r in runs if len(r) > 1]
    pairs = sum(len(r) - 1 for r in runs)
    assert pairs >= count // 2, "the bucket was hardly ever ahead of its caller"
    shortest = sum(r[-1][0] - r[0][1] for r in runs)
    longest = sum(r[-1][1] - r[0][0] for r in runs)
    expected = pairs * interval
    assert expected * 0.97 <= shortest and longest <= expected * 1.03, (shortest, longest, expected)
    # Never two slots closer than the interval (no burst), behind or not.
    assert all(b[1] - a[0] >= interval * 0.97 for a, b in zip(slots, slots[1:], strict=False))


@pytest.fixture
def bucket(request):
    name = f"test:{request.node.name}"
    ratelimit.reset(name, REDIS_URL)
    yield name
    ratelimit.reset(name, REDIS_URL)


@pytest.mark.usefixtures("needs_redis")
@pytest.mark.parametrize("rate,takes", [(10, 31), (200, 201)])
def test_it_holds_the_rate_within_three_percent_in_redis(bucket, rate, takes):
    limiter = ratelimit.limiter_for(bucket, rate, REDIS_URL)
    assert isinstance(limiter, ratelimit.RedisLimiter)
    assert_rate([limiter], rate, takes)


@pytest.mark.usefixtures("needs_redis")
@pytest.mark.parametrize("rate", [10, 200])
def test_two_workers_on_one_destination_share_the_rate(bucket, rate):
    # Separate clients, as two worker processes would have.
    first = ratelimit.RedisLimiter(
        ratelimit.KEY_PREFIX + bucket, rate, redis.Redis.from_url(REDIS_URL)
    )
    second = ratelimit.RedisLimiter(
        ratelimit.KEY_PREFIX + bucket, rate, redis.Redis.from_url(REDIS_URL)
    )
    assert_rate([first, second], rate, 31 if rate == 10 else 201)


@pytest.mark.usefixtures("needs_redis")
def test_it_sends_no_burst_after_being_idle(bucket):
    limiter = ratelimit.limiter_for(bucket, 10, REDIS_URL)
    limiter.acquire()
    time.sleep(0.5)
    waits = [limiter.reserve() for _ in range(4)]
    # An idle bucket does not bank tokens: the second slot is 100 ms after the first.
    assert waits[0] == pytest.approx(0, abs=0.01)
    assert waits[1:] == pytest.approx([0.1, 0.2, 0.3], abs=0.01)


@pytest.mark.usefixtures("needs_redis")
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
    assert_rate([limiter, ratelimit.limiter_for(name, 200, "")], 200, 201)


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
