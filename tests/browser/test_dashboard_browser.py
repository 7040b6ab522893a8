"""The home page answers "what is failing now?" in Chromium: a failed run,
an auth-rejected destination and a drifted sync, each a link to where it is fixed."""

import pytest

from console.models import User
from integrations.models import SyncRun, WebhookState
from tests.browser.conftest import sign_in
from tests.console.test_dashboard import make_world

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_home_page_links_each_failing_thing_to_where_it_is_fixed(page, live_server):
    _, destination, fine, drifted = make_world()
    failed = SyncRun.objects.create(
        sync=fine, status=SyncRun.Status.FAILED, last_error="Clay answered 401."
    )
    running = SyncRun.objects.create(
        sync=fine, status=SyncRun.Status.RUNNING, total=10, expected_total=40
    )
    destination.mark(WebhookState.AUTH_REJECTED, "Clay answered 401 Unauthorized.")
    User.objects.create_user("vera", password="a-long-password-3", role=User.Role.VIEWER)
    sign_in(page, live_server, "vera", "a-long-password-3")

    failing = page.locator("#failing-now")
    assert failing.locator("li").count() == 3
    # Progress of the run in progress updates by itself (htmx polls the partial).
    assert page.locator("#in-progress progress").get_attribute("value") == "10"
    SyncRun.objects.filter(pk=running.pk).update(total=30)
    page.wait_for_function(
        "document.querySelector('#in-progress progress').getAttribute('value') === '30'",
        timeout=10_000,
    )

    failing.locator(f"a:has-text('Run #{failed.pk}')").click()
    page.wait_for_url(f"{live_server.url}/runs/{failed.pk}/")
    page.goto(f"{live_server.url}/")
    page.locator("#failing-now a:has-text('Clay rejected the token')").click()
    page.wait_for_url(f"{live_server.url}/destinations/{destination.pk}/")
    page.goto(f"{live_server.url}/")
    page.locator("#failing-now a:has-text('no longer fits the Directus schema')").click()
    page.wait_for_url(f"{live_server.url}/syncs/{drifted.pk}/")
