"""Results a person can read, in Chromium against the real Directus: a
120 KB text shows clipped with "show all" and whole in the raw JSON; a one-to-many list cut at
Directus's nested default of 100 is flagged and read whole with one click."""

import json
from urllib.parse import urlencode

import pytest

from console.models import User
from integrations.models import DirectusConnection, Secret
from tests.browser.conftest import sign_in
from tests.browser.test_query_builder import changed, click
from tests.live.catalog import BIG_TEXT, catalog_fixture

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def catalog(live_directus):
    yield from catalog_fixture(live_directus)


def open_builder(page, live_server, live_directus, collection, query):
    DirectusConnection.objects.create(
        name="Harness", base_url=live_directus.url, token=Secret.seal(live_directus.admin_token)
    )
    User.objects.create_user("rita", password="a-long-password-3", role=User.Role.OPERATOR)
    sign_in(page, live_server, "rita", "a-long-password-3")
    link = urlencode({"collection": collection, "q": query})
    page.goto(f"{live_server.url}/queries/?{link}")
    page.wait_for_selector("#query-url")


def test_a_120_kb_text_is_clipped_with_show_all_and_whole_in_the_raw_json(
    page, live_server, live_directus, catalog
):
    open_builder(
        page,
        live_server,
        live_directus,
        catalog.products,
        "filter[label][_eq]=plain&fields=name,notes,tags,label",
    )
    changed(page, lambda: page.click("button:has-text('Send test request')"), target="result")
    cell = page.locator("table.items td:has(details.show-all)")
    assert cell.count() == 1
    assert cell.bounding_box()["height"] < 400  # not ~100,000 px
    assert "show all (120,000 characters)" in cell.inner_text()
    clipped = cell.locator(".cell-text.clipped")
    # Whitespace is kept: the two spaces and the tab of the seed text are there.
    assert clipped.inner_text().startswith("A long description line with  two spaces,\ta tab")
    assert page.evaluate(
        "getComputedStyle(document.querySelector('.cell-text.clipped')).whiteSpace"
    ) == ("pre-wrap")
    cell.locator("summary").click()
    assert cell.locator(".cell-text.full").inner_text().rstrip("\n") == BIG_TEXT.rstrip("\n")
    raw = json.loads(page.text_content("#raw-json"))
    assert raw["data"][0]["notes"] == BIG_TEXT


def test_empty_values_are_told_apart(page, live_server, live_directus, catalog):
    open_builder(
        page,
        live_server,
        live_directus,
        catalog.products,
        "filter[label][_starts_with]=red&fields=label,notes,tags,price,weight",
    )
    changed(page, lambda: page.click("button:has-text('Send test request')"), target="result")
    texts = page.locator("table.items tbody tr:first-child td").all_inner_texts()
    # label, notes "" (stored empty), tags [] (no links), price 5, weight null
    assert texts == ["red, white & blue", '""', "[]", "5", "null"]


def test_a_nested_list_cut_at_100_is_flagged_and_read_whole_with_one_click(
    page, live_server, live_directus, catalog
):
    open_builder(
        page,
        live_server,
        live_directus,
        catalog.suppliers,
        "filter[code][_eq]=big&fields=code,products.id",
    )
    changed(page, lambda: page.click("button:has-text('Send test request')"), target="result")
    raw = json.loads(page.text_content("#raw-json"))
    assert len(raw["data"][0]["products"]) == 100
    assert "came back with exactly 100 items" in page.inner_text("#result")

    click(page, "button[value='deep-limit:products']")
    assert json.loads(page.input_value("#deep")) == {"products": {"_limit": -1}}
    changed(page, lambda: page.click("button:has-text('Send test request')"), target="result")
    raw = json.loads(page.text_content("#raw-json"))
    assert len(raw["data"][0]["products"]) == 120
    assert "came back with exactly" not in page.inner_text("#result")
