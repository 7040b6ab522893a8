"""Save query saves on the first click, with a message."""

import pytest

from console.models import User
from integrations.models import DirectusConnection, SavedQuery, Secret
from tests.browser.conftest import sign_in
from tests.browser.test_query_builder import pick

pytestmark = pytest.mark.django_db(transaction=True)


def test_typing_a_name_and_clicking_save_once_saves_the_query(page, live_server, live_directus):
    DirectusConnection.objects.create(
        name="Harness", base_url=live_directus.url, token=Secret.seal(live_directus.admin_token)
    )
    User.objects.create_user("sam", password="a-long-password-3", role=User.Role.OPERATOR)
    sign_in(page, live_server, "sam", "a-long-password-3")
    page.goto(f"{live_server.url}/queries/")
    pick(page, "collection", "articles")
    pick(page, "f.0-field", "status")
    page.fill("input[name='f.0-value']", "published")
    page.fill("input[name=name]", "Published only")

    page.click("button:has-text('Save query')")

    page.wait_for_selector("text=Saved query “Published only”.")
    saved = SavedQuery.objects.get(name="Published only")
    assert saved.query_string == "filter[status][_eq]=published"
    assert "saved=" in page.url
