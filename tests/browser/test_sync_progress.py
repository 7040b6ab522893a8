"""Headless Chromium: an operator starts a sync and watches its progress to the end.

The real engine runs: `start_run` queues the real `run_sync_slice` task, whose `.delay` is
pointed at a background thread (the "worker"), reading a loopback Directus fake and sending
to a loopback Clay sink that refuses one row. The rate limit makes the run last a few
seconds so the page's 1 s polling sees it move.
"""

import threading

import pytest
from django.db import connection
from django.urls import reverse

from console.models import User
from integrations import tasks
from integrations.models import SyncRun
from tests.browser.conftest import sign_in
from tests.integrations.syncfixtures import make_sync

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def thread_worker(monkeypatch):
    """Run queued slices in threads, as a Celery worker process would."""
    threads = []

    def work(run_id):
        try:
            tasks.run_sync_slice(run_id)
        finally:
            connection.close()

    def delay(run_id):
        thread = threading.Thread(target=work, args=(run_id,), daemon=True)
        threads.append(thread)
        thread.start()

    monkeypatch.setattr(tasks.run_sync_slice, "delay", delay)
    yield threads
    for thread in threads:
        thread.join(timeout=30)


def test_an_operator_starts_a_sync_and_watches_it_finish(
    page,
    live_server,
    directus,
    sink,
    fast_retries,
    thread_worker,  # noqa: F811
):
    User.objects.create_user("olga", password="pw-for-browser-123", role=User.Role.OPERATOR)
    sink.script = {"7": [400]}
    sync = make_sync(directus, sink, rate_limit=15)
    seen = []
    page.on("response", lambda r: seen.append(r.status) if "/progress/" in r.url else None)

    sign_in(page, live_server, "olga", "pw-for-browser-123")
    page.goto(live_server.url + reverse("console:sync-detail", args=[sync.pk]))
    page.click("#start-run")

    page.wait_for_selector("#progress[data-status=queued], #progress[data-status=running]")
    run = SyncRun.objects.get(sync=sync)
    assert page.url.endswith(reverse("console:run-detail", args=[run.pk]))
    # The bar moves while the page stays put: a value between the ends goes by.
    page.wait_for_function(
        "() => { const n = +document.querySelector('#progress .percent')?.textContent;"
        " return n > 0 && n < 100; }",
        timeout=20_000,
    )
    page.wait_for_selector("#progress[data-status=partly_failed]", timeout=30_000)
    assert page.inner_text("#progress .percent") == "100"
    assert page.inner_text("#progress .count-sent") == "49"
    assert page.inner_text("#progress .count-failed") == "1"
    assert page.is_visible("text=Retry 1 failed row")
    # The 286 stopped the polling, and the results table reloaded itself once.
    page.wait_for_selector("#results tr[data-id]", timeout=5_000)
    assert page.locator("#results tr[data-id]").count() == 50
    polls = len(seen)
    page.wait_for_timeout(2_500)
    assert len(seen) == polls
    assert seen[-1] == 286
    assert sink.stats()["accepted"] == 49
