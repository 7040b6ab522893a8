"""Keep the Celery worker alive across a Redis broker restart (kombu 5.7.0).

kombu 5.7.0 keeps each Redis transport's `on_poll_start` in the event loop's on_tick set after
its connection drops (celery/kombu#2492, so that a reconnect is not left without a poller). The
worker's reconnect closes the old connection, which sets its transport's `client` to None, but
the old callback stays in the loop; when it next asks its stale channels for a Redis client,
`Channel._connparams` reads `None.hostname` and the AttributeError, not being a connection
error, ends the worker: `Unrecoverable error: AttributeError("'NoneType' object has no
attribute 'hostname'")`. Here a poller forgets channels whose connection is closed
before it polls, and a closed channel asked for a client raises a connection error, which the
consumer recovers from, instead of an AttributeError.
"""

from kombu.transport import redis as kombu_redis


def _closed(channel) -> bool:
    transport = getattr(channel, "connection", None)
    return transport is None or getattr(transport, "client", None) is None


def install() -> None:
    poller = kombu_redis.MultiChannelPoller
    if getattr(poller, "_kiln_patched", False):
        return
    poll_start, connparams = poller.on_poll_start, kombu_redis.Channel._connparams

    def on_poll_start(self):
        for channel in [c for c in self._channels if _closed(c)]:
            self.discard(channel)
        return poll_start(self)

    def _connparams(self, asynchronous=False):
        if _closed(self):
            raise kombu_redis.redis.exceptions.ConnectionError("The broker connection was closed.")
        return connparams(self, asynchronous=asynchronous)

    poller.on_poll_start = on_poll_start
    kombu_redis.Channel._connparams = _connparams
    poller._kiln_patched = True
