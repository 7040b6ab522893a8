"""A redis-server of the test's own, on its own port, that a test may stop and start again.

Never the machine's Redis on 6379: other tests (and people) use it. Needs the redis-server
binary; without it the test is skipped on a developer machine and fails in CI.
"""

import os
import shutil
import subprocess
import time

import pytest
import redis


class PrivateRedis:
    def __init__(self, port, directory):
        self.port, self.directory = port, directory
        self.process = None

    def url(self, db=0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self):
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:  # the port is taken: not ours to stop
                raise AssertionError(f"redis-server could not start on port {self.port}")
            try:
                redis.Redis(port=self.port, socket_connect_timeout=0.5).ping()
                return self
            except redis.RedisError:
                time.sleep(0.05)
        raise AssertionError(f"redis-server did not start on port {self.port}")

    def stop(self):
        """Stop it as an outage would: the process is gone, connections refused."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.process = None


def private_redis(port, tmp_path):
    """Start a redis-server on `port` for one test (a generator for a fixture)."""
    if shutil.which("redis-server") is None:
        message = "redis-server is not installed: these tests start their own Redis"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    server = PrivateRedis(port, tmp_path).start()
    try:
        yield server
    finally:
        server.stop()
