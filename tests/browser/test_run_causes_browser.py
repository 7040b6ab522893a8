# ruff: noqa: F811 (pytest fixtures imported from other modules are redefined as arguments)
"""Headless Chromium: a run page groups its outcomes by cause, each group a link to its rows.
The real engine sends to a loopback Clay sink that stores two rows and then drops
the connection, refuses one row as too large, or rejects the token."""

import pytest
from django.urls import reverse

from bench.fakes import FakeSink
from console.models import User
from tests.browser.conftest import sign_in
from tests.browser.test_sync_progress import thread_worker  # noqa: F401
from tests.integrations.syncfixtures import make_sync

pytestmark = pytest.mark.django_db(transaction=True)


def start_and_wait(page, live_server, sync, status):
    page.goto(live_server.url + reverse("console:sync-detail", args=[sync.pk]))
    page.click("#start-run")
    page.wait_for_selector(f"#progress[data-status={status}]", timeout=30_000)


def test_the_run_page_groups_outcomes_by_cause_and_links_to_their_rows(
    page, live_server, directus, sink, fast_retries, thread_worker
):
    User.objects.create_user("olga", password="pw-for-browser-123", role=User.Role.OPERATOR)
    sink.script = {"3": ["store_drop", "ok"], "4": ["store_drop", "ok"], "5": [413]}
    sync = make_sync(directus, sink, label_field="email")
    sign_in(page, live_server, "olga", "pw-for-browser-123")
    start_and_wait(page, live_server, sync, "partly_failed")

    groups = page.locator("#progress .causes li")
    assert groups.count() == 3
    assert page.inner_text(".cause-sent .cause-count") == "47"
    assert page.inner_text(".cause-possibly_duplicated .cause-count") == "2"
    assert page.inner_text(".cause-too_large .cause-count") == "1"
    assert page.inner_text("#progress .count-possibly-duplicated") == "2"

    page.click(".cause-possibly_duplicated a")
    page.wait_for_url("**cause=possibly_duplicated**")
    rows = page.locator("#results tr[data-id]")
    assert rows.count() == 2
    assert rows.first.locator(".possibly-duplicated").is_visible()
    labels = set(page.locator("#results tr[data-id] .row-label").all_inner_texts())
    assert labels == {"author3@example.com", "author4@example.com"}

    page.click(".cause-too_large a")
    page.wait_for_url("**cause=too_large**")
    assert page.locator("#results tr[data-id]").count() == 1
    page.click("#results tr[data-id] a")
    page.wait_for_selector("#row-detail .attempts tr.attempt")
    assert page.locator("#row-detail tr.attempt").count() == 1


def test_a_rejected_token_is_one_group_with_a_link_to_fix_the_destination(
    page, live_server, directus, fast_retries, thread_worker
):
    User.objects.create_user("olga", password="pw-for-browser-123", role=User.Role.OPERATOR)
    with FakeSink(token="not-the-token-kiln-has") as wrong:
        sync = make_sync(directus, wrong)
        sign_in(page, live_server, "olga", "pw-for-browser-123")
        start_and_wait(page, live_server, sync, "failed")
        assert wrong.requests == 1

    assert page.locator("#progress .causes li").count() == 1
    assert page.inner_text(".cause-token_rejected .cause-count") == "50"
    assert "webhook token rejected" in page.inner_text(".cause-token_rejected")
    page.click(".cause-token_rejected a.fix")
    page.wait_for_url("**" + reverse("console:destination-detail", args=[sync.destination_id]))
