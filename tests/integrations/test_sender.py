"""The engine's sender process (sender.SenderProcess) against the loopback Clay-like sink."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from bench.fakes import FakeSink
from integrations.clay import sender
from integrations.clay.sender import Job, SenderProcess
from integrations.outbound import http
from integrations.outbound.http import OutboundPolicy

ROOT = Path(__file__).resolve().parents[2]
LOOPBACK = OutboundPolicy(allow_private=False, allowlist=["127.0.0.1/32"])


class Inbox:
    def __init__(self):
        self.items, self.lock, self.changed = [], threading.Lock(), threading.Condition()

    def put(self, item):
        with self.changed:
            self.items.append(item)
            self.changed.notify_all()

    def wait_for(self, n, timeout=10):
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.items) >= n, timeout), self.items
        return {outcome.key: (window, outcome) for window, outcome in self.items}


@pytest.fixture
def fast(monkeypatch):
    monkeypatch.setattr(sender, "RETRY_BASE_SECONDS", 0.01)


def start(sink, inbox, stop=None, concurrency=4):
    post = http.WebhookPost(sink.url + "/hook", {"x-clay-webhook-auth": "tok"}, policy=LOOPBACK)
    return SenderProcess(
        post=post,
        limit=(f"test-sender-{time.monotonic()}", 0),
        concurrency=concurrency,
        stop=stop or threading.Event(),
        results=inbox,
    )


def job(window, key, **extra):
    return Job(window, str(key), json.dumps({"id": key, **extra}), f"hash-{key}")


def test_rows_are_sent_from_a_child_process_and_every_outcome_comes_back_whole(fast):
    inbox = Inbox()
    with FakeSink(token="tok", script={"2": [500, "ok"], "3": [400]}) as sink:
        process = start(sink, inbox)
        assert process.pid != os.getpid()
        process.submit_all([job(0, 1), job(0, 2), job(1, 3)])
        process.submit_all([Job(1, "4", json.dumps({"id": 4}), "hash-4", resent=True)])
        outcomes = inbox.wait_for(4)
        process.close()
    assert {k: (w, o.status, o.http_status, o.attempts) for k, (w, o) in outcomes.items()} == {
        "1": (0, "sent", 200, 1),
        "2": (0, "sent", 200, 2),
        "3": (1, "failed", 400, 1),
        "4": (1, "sent", 200, 1),
    }
    failed = outcomes["3"][1]
    assert failed.error_code == "HTTP_400" and "will not be retried" in failed.error_message
    assert failed.payload_hash == "hash-3" and failed.request_excerpt == '{"id": 3}'
    assert outcomes["4"][1].resent is True and outcomes["1"][1].resent is False
    assert sink.accepted == {"1": 1, "2": 1, "4": 1}
    assert process.process.returncode == 0  # it finished its rows and left when told


def test_stop_reaches_the_child_and_queued_rows_come_back_cancelled():
    inbox, stop = Inbox(), threading.Event()
    with FakeSink(token="tok", delay=0.2) as sink:
        process = start(sink, inbox, stop=stop, concurrency=2)
        process.submit_all([job(0, i) for i in range(1, 41)])
        time.sleep(0.3)
        stop.set()
        started = time.monotonic()
        outcomes = inbox.wait_for(40)
        process.close()
        elapsed = time.monotonic() - started
    statuses = [o.status for _, o in outcomes.values()]
    assert statuses.count("skipped") >= 30  # two threads at 0.2 s a row got a few out
    assert {o.error_code for _, o in outcomes.values() if o.status == "skipped"} == {"CANCELLED"}
    assert len(sink.received) == statuses.count("sent") < 10
    assert elapsed < 2


def test_rows_in_flight_when_the_child_dies_are_failed_and_later_rows_too(fast):
    inbox = Inbox()
    with FakeSink(token="tok", delay=5) as sink:
        process = start(sink, inbox, concurrency=2)
        process.submit_all([job(0, 1), job(0, 2), job(0, 3)])
        deadline = time.monotonic() + 5
        while len(sink.received) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(process.pid, signal.SIGKILL)
        outcomes = inbox.wait_for(3)
        process.submit_all([job(1, 4)])
        outcomes = inbox.wait_for(4)
        process.close()
    assert {o.status for _, o in outcomes.values()} == {"failed"}
    assert {o.error_code for _, o in outcomes.values()} == {"SENDER_LOST"}
    assert "may have received it" in outcomes["1"][1].error_message
    assert outcomes["4"][1].payload_hash == "hash-4"


CHILD_OF_A_KILLED_ENGINE = """
import json, os, queue, sys, threading, django
django.setup()
from integrations.outbound import http
from integrations.clay.sender import Job, SenderProcess
policy = http.OutboundPolicy(allow_private=False, allowlist=["127.0.0.1/32"])
post = http.WebhookPost(sys.argv[1], policy=policy)
process = SenderProcess(post=post, limit=("x", 0), concurrency=2,
                        stop=threading.Event(), results=queue.SimpleQueue())
process.submit_all([Job(0, str(i), "{}", "") for i in range(50)])
print(process.pid, flush=True)
threading.Event().wait()
"""


def test_the_child_dies_with_the_engine_process(tmp_path):
    with FakeSink(delay=2) as sink:
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "console.settings"}
        engine = subprocess.Popen(
            [sys.executable, "-c", CHILD_OF_A_KILLED_ENGINE, sink.url + "/hook"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        child = int(engine.stdout.readline())
        deadline = time.monotonic() + 10
        while not sink.received and time.monotonic() < deadline:
            time.sleep(0.02)
        assert sink.received  # the child was busy sending when its engine died
        engine.kill()
        engine.wait(5)
        deadline = time.monotonic() + 5
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(child)


def _alive(pid) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie waits for init, it runs nothing
