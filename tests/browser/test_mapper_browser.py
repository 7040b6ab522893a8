"""The mapper end to end in a browser: map a Clay lead row to `leads` by clicking, preview it on a
row whose name holds a quote, test it on one row against the real Directus, copy the Clay settings."""

import json
import uuid

import pytest

from console.models import User
from integrations.directus.client import DirectusClient
from integrations.models import DirectusConnection, MappingTemplate, Secret
from integrations.outbound import http
from tests.browser.conftest import sign_in
from tests.live.conftest import live_directus  # noqa: F401  (the real Directus fixture)

pytestmark = pytest.mark.django_db(transaction=True)


def body_of(page) -> str:
    return page.input_value("textarea[name=body]")


def test_an_operator_maps_previews_tests_and_copies(page, live_server, live_directus):  # noqa: F811
    connection = DirectusConnection.objects.create(
        name="Harness", base_url=live_directus.url, token=Secret.seal(live_directus.admin_token)
    )
    connection.refresh_schema()
    User.objects.create_user("olga", password="a-long-password-3", role=User.Role.OPERATOR)
    email = f"browser-{uuid.uuid4().hex[:10]}@example.com"
    name = 'Shaquille "Shaq" O\'Neal'
    row = {"Email": email, "First Name": name, "Company Domain": "acme.example", "Score": "91"}

    sign_in(page, live_server, "olga", "a-long-password-3")
    page.click("nav >> text=Templates")
    page.click("text=New template")
    page.fill("input[name=name]", "Clay lead to leads")
    page.select_option("select[name=collection]", "leads")
    page.wait_for_selector("tr[data-target=email]")
    assert "required" in page.inner_text("tr[data-target=email]")

    # The sample row's columns become sources to pick from.
    page.fill("textarea[name=sample]", json.dumps(row))
    page.press("textarea[name=sample]", "Tab")
    page.wait_for_selector("tr[data-target=email] option[value='col:Email']", state="attached")

    for target, column, casts in [
        ("email", "Email", "trim | lower"),
        ("first_name", "First Name", ""),
        ("score", "Score", "number"),
        ("enrichment", "Company Domain", ""),
    ]:
        page.select_option(f"tr[data-target={target}] select", f"col:{column}")
        page.wait_for_function(
            "c => document.querySelector('textarea[name=body]').value.includes('{{' + c)",
            arg=column,
        )
        if casts:
            page.fill(f"tr[data-target={target}] input[name$=-casts]", casts)
            page.press(f"tr[data-target={target}] input[name$=-casts]", "Tab")
            page.wait_for_function(
                "s => document.querySelector('textarea[name=body]').value.includes(s)",
                arg=f"{{{{{column} | {casts}}}}}",
            )
    assert json.loads(body_of(page)) == {
        "email": "{{Email | trim | lower}}",
        "first_name": "{{First Name}}",
        "score": "{{Score | number}}",
        "enrichment": "{{Company Domain}}",
    }

    # Preview on the row whose name holds a quote: valid JSON, types kept.
    page.click("button:has-text('Preview on the sample row')")
    page.wait_for_selector("#preview-json")
    rendered = json.loads(page.inner_text("#preview-json"))
    assert rendered == {
        "email": email,
        "first_name": name,
        "score": 91,
        "enrichment": "acme.example",
    }

    page.click("button:has-text('Save template')")
    page.wait_for_selector("h1:has-text('Clay lead to leads')")
    template = MappingTemplate.objects.get(name="Clay lead to leads")

    # Test on one row: nothing is sent before the confirmation.
    page.fill("textarea[name=sample]", json.dumps(row))
    page.click("button:has-text('Test on one row')")
    page.wait_for_selector("text=Send this for real?")
    admin = DirectusClient(
        live_directus.url,
        live_directus.admin_token,
        client=http.make_client(policy=http.OutboundPolicy(allow_private=True)),
    )
    try:
        assert admin.list_items("leads", {"filter[email][_eq]": email}).data == []
        page.click("button:has-text('Yes, send it')")
        page.wait_for_selector("#test-result h3:has-text('Directus answered 200')")
        created = admin.list_items("leads", {"filter[email][_eq]": email, "fields": "*"}).data
        assert len(created) == 1
        assert created[0]["first_name"] == name and created[0]["score"] == 91
    finally:
        found = admin.list_items("leads", {"filter[email][_eq]": email, "fields": "id"}).data
        if found:
            admin.delete_items("leads", [item["id"] for item in found])
        admin.close()

    # Exports: the Clay HTTP API settings as text, and the copy button.
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    page.click("text=Exports: Clay settings and Directus Flow")
    text = page.inner_text("#clay-settings-text")
    assert "Method: POST" in text
    assert f"Endpoint: {live_directus.url}/items/leads" in text
    assert '"email": "{{Email}}"' in text  # Clay cannot apply Kiln casts: left out
    assert live_directus.admin_token not in page.content()
    page.click("#copy-clay")
    page.wait_for_selector("#copy-clay:has-text('Copied')")
    assert page.evaluate("navigator.clipboard.readText()") == text.rstrip("\n") + "\n" or (
        "Method: POST" in page.evaluate("navigator.clipboard.readText()")
    )
    assert template.pk
