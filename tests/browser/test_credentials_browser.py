"""An admin signs in, adds a Directus connection, tests it against the real Directus."""

import pytest

from console.models import User
from integrations.models import DirectusConnection
from tests.browser.conftest import sign_in

pytestmark = pytest.mark.django_db(transaction=True)


def test_admin_adds_and_tests_a_connection(page, live_server, live_directus):
    User.objects.create_user("ada", password="a-long-password-1", role=User.Role.ADMIN)
    sign_in(page, live_server, "ada", "a-long-password-1")

    page.click("text=Connections")
    page.click("text=Add connection")
    page.fill("input[name=name]", "Harness")
    page.fill("input[name=base_url]", live_directus.url)
    page.select_option("select[name=environment]", "staging")
    page.fill("input[name=token]", live_directus.admin_token)
    page.fill("input[name=probe_collection]", "articles")
    page.click("button:has-text('Save')")
    page.wait_for_selector("h1:has-text('Harness')")

    page.click("button:has-text('Test connection')")
    page.wait_for_selector("#test-result li[data-stage='3']")
    stages = page.inner_text("#test-result")
    assert "passed" in stages
    assert stages.count("ok") >= 3
    # The result came back in place (HTMX), and the token is nowhere in the page.
    assert live_directus.admin_token not in page.content()
    assert DirectusConnection.objects.get(name="Harness").last_test_ok is True


def test_a_viewer_sees_the_connection_but_no_secret_and_no_actions(
    page, live_server, live_directus
):
    from integrations.models import Secret

    DirectusConnection.objects.create(
        name="Harness", base_url=live_directus.url, token=Secret.seal(live_directus.admin_token)
    )
    User.objects.create_user("vic", password="a-long-password-2", role=User.Role.VIEWER)
    sign_in(page, live_server, "vic", "a-long-password-2")
    page.click("text=Connections")
    page.click("text=Harness")
    html = page.content()
    assert live_directus.admin_token not in html
    assert "••••" not in html
    assert page.locator("text=Test connection").count() == 0
    assert page.locator("text=Edit or rotate token").count() == 0
