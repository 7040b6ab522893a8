"""The query builder end to end, clicked through in Chromium against the real Directus.

An operator builds `status = published AND (views > 1000 OR author.last_name contains "Kn")`,
sorted by -views, fields id,title,author.first_name, limit 10, without typing a key; copies the
Clay rows; sends it and sees the same items Directus gives for that query; a wrong operator for
a field is refused before sending, naming the field and its type.
"""

import json

import pytest

from console.models import User
from integrations.directus.client import DirectusClient
from integrations.models import DirectusConnection, Secret
from integrations.query import filters
from tests.browser.conftest import sign_in

pytestmark = pytest.mark.django_db(transaction=True)

EXPECTED_QS = (
    "filter[status][_eq]=published&filter[_or][0][views][_gt]=1000"
    "&filter[_or][1][author][last_name][_contains]=Kn"
    "&fields=id,title,author.first_name&sort=-views&limit=10"
)


@pytest.fixture
def clipboard_page(browser):
    context = browser.new_context(permissions=["clipboard-read", "clipboard-write"])
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


def changed(page, action, target="builder"):
    """Do `action` and wait until the HTMX request it causes has swapped a new `#target` in
    and htmx has processed it (acting on the old elements would be lost)."""

    def answered(response):
        request = response.request
        return request.method == "POST" and request.headers.get("hx-target") == target

    page.evaluate(
        "t => { const el = document.getElementById(t); if (el) el.dataset.old = '1'; }", target
    )
    with page.expect_response(answered):
        action()
    page.wait_for_function(
        """t => {
            const el = document.getElementById(t);
            return el && !el.dataset.old
                && !document.querySelector('.htmx-request, .htmx-swapping, .htmx-settling');
        }""",
        arg=target,
    )


def pick(page, name, value):
    changed(page, lambda: page.select_option(f"select[name='{name}']", value))


def click(page, selector):
    changed(page, lambda: page.click(selector))


def test_an_operator_builds_copies_and_sends_the_issues_query(
    clipboard_page,
    live_server,
    live_directus,
):
    page = clipboard_page
    DirectusConnection.objects.create(
        name="Harness", base_url=live_directus.url, token=Secret.seal(live_directus.admin_token)
    )
    User.objects.create_user("olga", password="a-long-password-3", role=User.Role.OPERATOR)
    sign_in(page, live_server, "olga", "a-long-password-3")

    page.click("nav >> text=Queries")
    # One connection: it is picked already, and its schema was read on the way in.
    assert page.locator("select[name=connection] option:checked").inner_text().startswith("Harness")
    pick(page, "collection", "articles")

    # status = published
    pick(page, "f.0-field", "status")
    assert page.locator("select[name='f.0-op']").input_value() == "_eq"
    page.fill("input[name='f.0-value']", "published")
    # AND ( views > 1000 OR author.last_name contains "Kn" )
    click(page, "button[value='add-group:f']")
    assert page.locator("select[name='f.1-logic']").input_value() == "_or"
    pick(page, "f.1.0-field", "views")
    pick(page, "f.1.0-op", "_gt")
    assert page.locator("input[name='f.1.0-value']").get_attribute("type") == "number"
    page.fill("input[name='f.1.0-value']", "1000")
    click(page, "button[value='add-condition:f.1']")
    pick(page, "f.1.1-field", "author.last_name")
    pick(page, "f.1.1-op", "_contains")
    page.fill("input[name='f.1.1-value']", "Kn")
    # sort -views; fields id, title, author.first_name; limit 10
    pick(page, "s.0-field", "views")
    pick(page, "s.0-dir", "desc")
    for path in ("id", "title", "author.first_name"):
        pick(page, "fields_add", path)
    assert page.locator("input[name=fields]").input_value() == "id,title,author.first_name"
    # Typing refreshes only the previews.
    changed(page, lambda: page.fill("input[name=limit]", "10"), target="previews")

    # The three previews.
    expected = filters.Query.from_query_string(EXPECTED_QS).with_(collection="articles")
    rows = [
        tuple(cell.inner_text() for cell in row.locator("td").all())
        for row in page.locator(".clay-rows tbody tr").all()
    ]
    assert rows == expected.to_params()
    assert json.loads(page.inner_text("#filter-json")) == {
        "status": {"_eq": "published"},
        "_or": [{"views": {"_gt": 1000}}, {"author": {"last_name": {"_contains": "Kn"}}}],
    }
    url = f"{live_directus.url}/items/articles?{EXPECTED_QS}"
    assert page.inner_text("#query-url") == url
    assert page.inner_text("#query-curl") == (
        f"curl --globoff -H \"Authorization: Bearer $DIRECTUS_TOKEN\" '{url}'"
    )
    assert live_directus.admin_token not in page.content()

    # Copy the Clay rows.
    page.click("button:has-text('Copy rows')")
    page.wait_for_selector("button:has-text('Copied')")
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied == "\n".join(f"{k}\t{v}" for k, v in expected.to_params())

    # Send it: the items are the ones Directus gives for this query.
    changed(page, lambda: page.click("button:has-text('Send test request')"), target="result")
    page.wait_for_selector("#item-count")
    with DirectusClient(live_directus.url, live_directus.admin_token) as client:
        truth = client.list_items("articles", expected.to_params()).data
    assert 0 < len(truth) <= 10
    assert int(page.inner_text("#item-count")) == len(truth)
    headers = page.locator("table.items thead th").all_inner_texts()
    assert headers == ["id", "title", "author.first_name"]
    shown_ids = [
        int(t) for t in page.locator("table.items tbody tr td:first-child").all_inner_texts()
    ]
    assert shown_ids == [item["id"] for item in truth]
    assert "HTTP 200" in page.inner_text("#result")

    # A wrong operator for a field is refused before anything is sent.
    page.fill("textarea[name=paste]", "filter[views][_contains]=12")
    click(page, "button:has-text('Read into builder')")
    assert "not valid for integer" in page.inner_text("select[name='f.0-op'] option:checked")
    changed(page, lambda: page.click("button:has-text('Send test request')"), target="result")
    result = page.inner_text("#result")
    assert "Not sent" in result
    assert "_contains is not valid for integer field views" in result
