"""A per-destination rate limit shared by every worker: a paced token bucket in Redis.

Celery's own `rate_limit` is per worker, so the limit lives in Redis and each take is one
atomic Lua script. The bucket holds no burst: it hands out evenly spaced send times
(GCRA, "virtual scheduling"), so a run at 10 rows/s sends one row every 100 ms, not 40 at
once and then nothing. A take reserves the next free slot and says how long to wait for it.

A 429 or 503 from the destination slows the shared limit down for every worker at once:
nobody sends before Retry-After has passed, and the rate is halved, then recovers linearly
(additive increase, multiplicative decrease, as TCP does).

Without Redis (the embedded mode) the same bucket lives in the process. When the Redis store
cannot be reached, a take raises `Unavailable`: the sender waits it out, it never sends unpaced
and never turns the outage into failed rows.
"""

import functools
import threading
import time

from django.conf import settings

# After a slow-down the rate climbs back by this fraction of the configured rate per second.
RECOVERY_PER_SECOND = 0.02
SLOWDOWN = 0.5
MIN_FACTOR = 0.05
# Several rows answered 429 together are one signal, not several: halve at most this often.
SLOWDOWN_GUARD_SECONDS = 1.0
KEY_PREFIX = "kiln:ratelimit:"

# KEYS[1]: the bucket hash. ARGV: rate (per second), recovery per second, ttl (ms).
# Returns the seconds to wait for the reserved slot, as a string (Lua numbers become integers).
_TAKE = """
local now = redis.call('TIME')
local t = tonumber(now[1]) + tonumber(now[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tat', 'factor', 'factor_at')
local tat = tonumber(state[1]) or 0
local factor = tonumber(state[2]) or 1
local factor_at = tonumber(state[3]) or t
factor = math.min(1, factor + (t - factor_at) * tonumber(ARGV[2]))
if tat < t then tat = t end
local interval = 1 / (tonumber(ARGV[1]) * factor)
redis.call('HSET', KEYS[1], 'tat', tostring(tat + interval), 'factor', tostring(factor), 'factor_at', tostring(t))
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return tostring(tat - t)
"""

# KEYS[1]: the bucket hash. ARGV: pause seconds, slowdown, min factor, guard seconds, recovery, ttl.
_SLOW_DOWN = """
local now = redis.call('TIME')
local t = tonumber(now[1]) + tonumber(now[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tat', 'factor', 'factor_at', 'slowed_at')
local tat = tonumber(state[1]) or 0
local factor = tonumber(state[2]) or 1
local factor_at = tonumber(state[3]) or t
local slowed_at = tonumber(state[4]) or 0
factor = math.min(1, factor + (t - factor_at) * tonumber(ARGV[5]))
if t - slowed_at >= tonumber(ARGV[4]) then
  factor = math.max(tonumber(ARGV[3]), factor * tonumber(ARGV[2]))
  slowed_at = t
end
local resume = t + tonumber(ARGV[1])
if tat < resume then tat = resume end
redis.call('HSET', KEYS[1], 'tat', tostring(tat), 'factor', tostring(factor), 'factor_at', tostring(t), 'slowed_at', tostring(slowed_at))
redis.call('PEXPIRE', KEYS[1], ARGV[6])
return tostring(factor)
"""


class Unavailable(Exception):
    """The shared store (Redis) did not answer: wait and take again, send nothing meanwhile."""


class Limiter:
    """Paces takes to `rate` per second; `rate` <= 0 means no limit."""

    def __init__(self, key: str, rate: float):
        self.key = key
        self.rate = float(rate or 0)

    def reserve(self) -> float:
        """Reserve the next send slot; return the seconds until it."""
        raise NotImplementedError

    def slow_down(self, pause: float) -> float:
        """Nobody sends for `pause` seconds, and the rate is cut; return the new rate factor."""
        raise NotImplementedError

    def acquire(self, stop: threading.Event | None = None) -> bool:
        """Wait for a slot; False if `stop` was set while waiting."""
        if self.rate <= 0:
            return not (stop and stop.is_set())
        wait = self.reserve()
        if wait > 0:
            if stop is None:
                time.sleep(wait)
            elif stop.wait(wait):
                return False
        return not (stop and stop.is_set())


class RedisLimiter(Limiter):
    def __init__(self, key, rate, client):
        super().__init__(key, rate)
        self.client = client
        self._take = client.register_script(_TAKE)
        self._slow = client.register_script(_SLOW_DOWN)

    def _ttl_ms(self, extra=0.0) -> int:
        # Long enough to outlive the slowest pacing and any pause; an idle bucket then vanishes.
        return int(1000 * (120 + extra + (1 / self.rate if self.rate > 0 else 0) / MIN_FACTOR))

    def reserve(self) -> float:
        try:
            return float(
                self._take(keys=[self.key], args=[self.rate, RECOVERY_PER_SECOND, self._ttl_ms()])
            )
        except redis_errors() as exc:
            raise Unavailable(str(exc)) from exc

    def slow_down(self, pause: float) -> float:
        args = [max(0.0, pause), SLOWDOWN, MIN_FACTOR, SLOWDOWN_GUARD_SECONDS, RECOVERY_PER_SECOND]
        try:
            return float(self._slow(keys=[self.key], args=[*args, self._ttl_ms(pause)]))
        except redis_errors() as exc:
            raise Unavailable(str(exc)) from exc


class LocalLimiter(Limiter):
    """The same bucket in this process: threads of one worker share it, other workers do not."""

    _states: dict = {}
    _lock = threading.Lock()

    def _state(self, now):
        return self._states.setdefault(
            self.key, {"tat": 0.0, "factor": 1.0, "factor_at": now, "slowed_at": -1e9}
        )

    def _recover(self, state, now):
        state["factor"] = min(
            1.0, state["factor"] + (now - state["factor_at"]) * RECOVERY_PER_SECOND
        )
        state["factor_at"] = now

    def reserve(self) -> float:
        with self._lock:
            now = time.monotonic()
            state = self._state(now)
            self._recover(state, now)
            tat = max(state["tat"], now)
            state["tat"] = tat + 1 / (self.rate * state["factor"])
            return tat - now

    def slow_down(self, pause: float) -> float:
        with self._lock:
            now = time.monotonic()
            state = self._state(now)
            self._recover(state, now)
            if now - state["slowed_at"] >= SLOWDOWN_GUARD_SECONDS:
                state["factor"] = max(MIN_FACTOR, state["factor"] * SLOWDOWN)
                state["slowed_at"] = now
            state["tat"] = max(state["tat"], now + max(0.0, pause))
            return state["factor"]


def redis_errors() -> tuple:
    import redis

    # ResponseError too: a Redis still loading its data set answers LOADING/BUSY for a while.
    return (redis.ConnectionError, redis.TimeoutError, redis.ResponseError, OSError)


@functools.cache
def _redis(url: str):
    import redis

    return redis.Redis.from_url(
        url, socket_timeout=5, socket_connect_timeout=5, health_check_interval=30
    )


def limiter_for(name: str, rate: float, redis_url: str | None = None) -> Limiter:
    """The shared limiter for one destination (`name` like "clay:12")."""
    url = settings.KILN_RATE_LIMIT_REDIS_URL if redis_url is None else redis_url
    if url:
        return RedisLimiter(KEY_PREFIX + name, rate, _redis(url))
    return LocalLimiter(KEY_PREFIX + name, rate)


def reset(name: str, redis_url: str | None = None) -> None:
    """Forget a bucket's state (tests and the benchmark start from a clean slate)."""
    url = settings.KILN_RATE_LIMIT_REDIS_URL if redis_url is None else redis_url
    if url:
        _redis(url).delete(KEY_PREFIX + name)
    with LocalLimiter._lock:
        LocalLimiter._states.pop(KEY_PREFIX + name, None)
