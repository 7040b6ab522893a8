"""The mapping template pages: editor, mapper <-> body sync, preview, test on one row, exports."""

import json
from pathlib import Path

import pytest
import respx
from django.urls import reverse

from console.views.mappings import parse_sample
from integrations.directus.schema import build_schema
from integrations.models import (
    AuditEvent,
    ClayDestination,
    DirectusConnection,
    MappingTemplate,
    SavedQuery,
    Secret,
)

pytestmark = pytest.mark.django_db

BASE = "https://cms.example.com"
TOKEN = "tok-MAPPINGS-SECRET-0123456789"
WEBHOOK = "https://api.clay.com/v3/sources/webhook/pull-in-data-from-a-webhook-HOOKSECRET-77"
FIXTURES = Path(__file__).resolve().parents[1] / "integrations" / "fixtures" / "directus"
SCHEMA = build_schema(
    *(
        json.loads((FIXTURES / name).read_text())
        for name in ("collections.json", "fields.json", "relations.json")
    )
)
LEAD_BODY = (
    '{\n  "email": "{{Email | trim | lower}}",\n  "first_name": "{{First Name}}",\n'
    '  "score": "{{Score | number}}",\n  "enriched": false\n}'
)
QUOTED_ROW = {"Email": " Ada@Example.com ", "First Name": 'Ada "The Countess"', "Score": "42"}


@pytest.fixture
def connection(admin_user):
    return DirectusConnection.objects.create(
        name="CMS", base_url=BASE, token=Secret.seal(TOKEN), schema=SCHEMA, created_by=admin_user
    )


@pytest.fixture
def lead_template(connection):
    return MappingTemplate.objects.create(
        name="New lead",
        kind="create",
        connection=connection,
        collection="leads",
        body=LEAD_BODY,
        options={"missing": "error", "columns": ["Email", "First Name", "Score"]},
    )


@pytest.fixture
def flow_template(connection):
    return MappingTemplate.objects.create(
        name="Articles to Clay",
        kind="flow",
        connection=connection,
        collection="articles",
        body='{"id": "{{$trigger.key}}", "title": "{{$trigger.payload.title}}"}',
    )


@pytest.fixture
def destination():
    return ClayDestination.objects.create(
        name="Leads table",
        webhook_url=Secret.seal(WEBHOOK),
        auth_token=Secret.seal("clay-auth-AUTHSECRET-55"),
    )


@pytest.fixture
def fake():
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        yield router


def form(connection, **extra):
    data = {
        "name": "New lead",
        "kind": "create",
        "connection": str(connection.pk),
        "collection": "leads",
        "body": LEAD_BODY,
        "missing": "error",
        "columns": "Email\nFirst Name\nScore",
        "sample": json.dumps(QUOTED_ROW),
    }
    data.update(extra)
    return data


def htmx(client, name, data, **kwargs):
    return client.post(reverse(name), data, HTTP_HX_REQUEST="true", **kwargs)


# -- access --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "client_fixture, status",
    [("admin_client", 200), ("operator_client", 200), ("viewer_client", 200)],
)
def test_every_role_sees_the_list_detail_and_exports(
    request, client_fixture, status, lead_template
):
    client = request.getfixturevalue(client_fixture)
    for url in [
        reverse("console:templates"),
        reverse("console:template-detail", args=[lead_template.pk]),
        reverse("console:template-exports", args=[lead_template.pk]),
    ]:
        assert client.get(url).status_code == status, url


def test_anonymous_users_are_sent_to_login(client, lead_template):
    for url in [
        reverse("console:templates"),
        reverse("console:template-detail", args=[lead_template.pk]),
        reverse("console:template-exports", args=[lead_template.pk]),
    ]:
        response = client.get(url)
        assert response.status_code == 302 and "/login/" in response["Location"]


@pytest.mark.parametrize(
    "name",
    [
        "console:template-add",
        "console:template-mapper",
        "console:template-preview",
        "console:template-test",
    ],
)
def test_a_viewer_cannot_build_preview_or_test(viewer_client, connection, name):
    assert viewer_client.post(reverse(name), form(connection)).status_code == 403


def test_a_viewer_sees_the_editor_read_only_and_cannot_save_delete_or_install(
    viewer_client, lead_template, flow_template
):
    page = viewer_client.get(reverse("console:template-detail", args=[lead_template.pk]))
    html = page.content.decode()
    assert '<fieldset class="plain" disabled>' in html
    assert "Save template" not in html and "Test on one row" not in html
    url = reverse("console:template-detail", args=[lead_template.pk])
    assert viewer_client.post(url, form(lead_template.connection)).status_code == 403
    url = reverse("console:template-delete", args=[lead_template.pk])
    assert viewer_client.post(url).status_code == 403
    url = reverse("console:template-install", args=[flow_template.pk])
    assert viewer_client.post(url, {"scope": "items.create"}).status_code == 403
    exports = viewer_client.get(reverse("console:template-exports", args=[flow_template.pk]))
    assert "Install in Directus" not in exports.content.decode()


def test_an_admin_may_build_too(admin_client, connection):
    response = admin_client.post(reverse("console:template-add"), form(connection))
    assert response.status_code == 302


# -- saving and its checks -----------------------------------------------------------------


def test_an_operator_saves_a_template_with_its_options(operator_client, connection):
    response = operator_client.post(reverse("console:template-add"), form(connection))
    template = MappingTemplate.objects.get(name="New lead")
    assert response["Location"] == reverse("console:template-detail", args=[template.pk])
    assert template.body == LEAD_BODY and template.kind == "create"
    assert template.options["columns"] == ["Email", "First Name", "Score"]
    assert template.created_by.username == "operator"


def test_save_time_problems_are_listed_with_line_and_column(operator_client, connection):
    body = '{\n  "email": "{{Emial}}",\n  "score": "{{Score | boolean}}",\n  "nope": 1\n}'
    response = operator_client.post(reverse("console:template-add"), form(connection, body=body))
    assert response.status_code == 400
    html = response.content.decode()
    assert "2:13" in html and "No column named &#x27;Emial&#x27;" in html
    assert "Did you mean &#x27;Email&#x27;?" in html
    assert "3:3" in html and "does not fit a integer field" in html
    assert "4:3" in html and "no field &#x27;nope&#x27;" in html
    assert not MappingTemplate.objects.exists()


def test_invalid_json_and_a_missing_required_field_block_saving(operator_client, connection):
    response = operator_client.post(
        reverse("console:template-add"), form(connection, body='{"first_name": "{{First Name}}",}')
    )
    assert response.status_code == 400
    assert "1:" in response.content.decode()
    response = operator_client.post(
        reverse("console:template-add"), form(connection, body='{"first_name": "{{First Name}}"}')
    )
    assert "Required field &#x27;email&#x27; is not mapped" in response.content.decode()
    assert not MappingTemplate.objects.exists()


def test_an_update_need_not_map_required_fields(operator_client, connection):
    data = form(connection, kind="update", body='{"score": "{{Score | number}}"}')
    response = operator_client.post(reverse("console:template-add"), data)
    assert response.status_code == 302
    assert MappingTemplate.objects.get().options["id_column"] == "Directus ID"


def test_editing_keeps_the_pk_and_deleting_asks_first(operator_client, lead_template):
    url = reverse("console:template-detail", args=[lead_template.pk])
    data = form(lead_template.connection, name="Lead v2")
    assert operator_client.post(url, data).status_code == 302
    lead_template.refresh_from_db()
    assert lead_template.name == "Lead v2"
    delete = reverse("console:template-delete", args=[lead_template.pk])
    assert "cannot be undone" in operator_client.get(delete).content.decode()
    assert operator_client.post(delete).status_code == 302
    assert not MappingTemplate.objects.exists()


# -- the mapper and the body stay in sync ------------------------------------------------


def test_the_mapper_lists_the_collections_fields_with_required_and_types(
    operator_client, lead_template
):
    html = operator_client.get(
        reverse("console:template-detail", args=[lead_template.pk])
    ).content.decode()
    assert 'data-target="email"' in html and "required" in html
    assert 'data-target="id"' not in html  # read-only fields are not offered
    assert '<option value="col:Email" selected>' in html
    assert 'value="trim | lower"' in html


def test_changing_a_row_rewrites_the_body(operator_client, connection):
    data = form(connection, body="{}", sync="mapper")
    data.update(
        {
            "m-count": "3",
            "m-0-target": "email",
            "m-0-source": "col:Email",
            "m-0-casts": "trim | lower",
            "m-1-target": "score",
            "m-1-source": "col*",
            "m-1-text": "Score",
            "m-1-casts": "number",
            "m-2-target": "enriched",
            "m-2-source": "static",
            "m-2-text": "false",
        }
    )
    response = htmx(operator_client, "console:template-mapper", data)
    html = response.content.decode()
    assert html.lstrip().startswith('<section id="body-panel"')
    # The rows the operator is clicking stay in place; only the notes under them change.
    assert '<div id="mapper-notes" hx-swap-oob="true"' in html
    assert '<section id="mapper"' not in html
    body = html.split('aria-label="JSON body"')[1].split(">", 1)[1].split("</textarea>")[0]
    assert json.loads(body.replace("&quot;", '"')) == {
        "email": "{{Email | trim | lower}}",
        "score": "{{Score | number}}",
        "enriched": False,
    }


def test_unmapping_a_row_removes_it_and_keeps_what_rows_cannot_show(operator_client, connection):
    base = '{"email": "{{Email}}", "first_name": "Hi {{First Name}}", "score": "{{Score}}"}'
    data = form(connection, body=base, sync="mapper")
    data.update(
        {
            "m-count": "2",
            "m-0-target": "email",
            "m-0-source": "col:Email",
            "m-1-target": "score",
            "m-1-source": "",
        }
    )
    html = htmx(operator_client, "console:template-mapper", data).content.decode()
    assert "Hi {{First Name}}" in html and "{{Score}}" not in html


def test_editing_the_body_rewrites_the_rows_and_says_when_it_holds_more(
    operator_client, connection
):
    body = '{"email": "{{Email}}", "first_name": "Dear {{First Name}}", "score": 5}'
    response = htmx(
        operator_client, "console:template-mapper", form(connection, body=body, sync="body")
    )
    html = response.content.decode()
    assert html.lstrip().startswith('<section id="mapper"')
    assert '<option value="col:Email" selected>' in html
    assert 'id="has-more"' in html  # "Dear {{First Name}}" is not a row
    assert 'value="5"' in html  # the static score
    assert 'id="body-problems" hx-swap-oob="true"' in html


def test_a_body_that_does_not_parse_shows_its_problem_with_position(operator_client, connection):
    data = form(connection, body='{"email": {{Email}', sync="body")
    html = htmx(operator_client, "console:template-mapper", data).content.decode()
    assert "1:" in html and "problem" in html


def test_a_sample_row_offers_its_columns_as_sources(operator_client, connection):
    data = form(
        connection,
        columns="",
        sample="Email,First Name,Company Domain,Score\na@b.c,Ada,x.io,1",
        sync="sample",
    )
    html = htmx(operator_client, "console:template-mapper", data).content.decode()
    assert '<option value="col:Company Domain"' in html


def test_without_javascript_the_mapper_returns_the_whole_page(operator_client, connection):
    response = operator_client.post(
        reverse("console:template-mapper"), form(connection, sync="body")
    )
    assert "<html" in response.content.decode()


# -- sample rows and preview ----------------------------------------------------------------


def test_parse_sample_reads_json_and_the_first_csv_row_with_bom_and_quotes():
    assert parse_sample('[{"a": 1}, {"a": 2}]') == {"a": 1}
    text = '\ufeffEmail,First Name,Score\n"o\'neil@x.io","Ada ""The Countess"", Jr",42\nb,c,d\n'
    assert parse_sample(text) == {
        "Email": "o'neil@x.io",
        "First Name": 'Ada "The Countess", Jr',
        "Score": "42",
    }
    assert parse_sample("A\tB\n1\t2") == {"A": "1", "B": "2"}
    with pytest.raises(ValueError, match="no data row"):
        parse_sample("A,B\n")
    with pytest.raises(ValueError, match="not valid JSON"):
        parse_sample("{nope")


def test_preview_renders_a_json_row_whose_name_has_a_quote(operator_client, connection):
    response = htmx(operator_client, "console:template-preview", form(connection))
    html = response.content.decode()
    rendered = html.split('id="preview-json">')[1].split("</pre>")[0]
    value = json.loads(rendered.replace("&quot;", '"').replace("&#x27;", "'"))
    assert value == {
        "email": "ada@example.com",
        "first_name": 'Ada "The Countess"',
        "score": 42,
        "enriched": False,
    }


def test_preview_renders_a_csv_row(operator_client, connection):
    sample = 'Email,First Name,Score\n ada@x.io ,"O""Brien, Ada",7\n'
    html = htmx(
        operator_client, "console:template-preview", form(connection, sample=sample)
    ).content.decode()
    rendered = html.split('id="preview-json">')[1].split("</pre>")[0]
    value = json.loads(rendered.replace("&quot;", '"'))
    assert value["first_name"] == 'O"Brien, Ada' and value["score"] == 7


def test_preview_shows_the_problems_when_the_row_lacks_a_column(operator_client, connection):
    data = form(connection, sample='{"Email": "a@b.c"}')
    html = htmx(operator_client, "console:template-preview", data).content.decode()
    assert "does not fill the body" in html and "First Name" in html


def test_preview_on_a_real_item_fetches_it(operator_client, connection, fake):
    fake.get("/items/leads/7").respond(
        json={"data": {"id": 7, "Email": "x@y.z", "First Name": "Bo", "Score": 3}}
    )
    data = form(connection, item_id="7", preview_source="item")
    html = htmx(operator_client, "console:template-preview", data).content.decode()
    assert "item 7 of leads" in html and "x@y.z" in html
    assert AuditEvent.objects.filter(action="used", target_type="directusconnection").exists()


# -- test on one row ------------------------------------------------------------------------


def test_test_on_one_row_asks_for_confirmation_before_sending(operator_client, connection, fake):
    route = fake.post("/items/leads").respond(json={"data": {"id": 2001}})
    html = htmx(operator_client, "console:template-test", form(connection)).content.decode()
    assert "Send this for real?" in html and "POST https://cms.example.com/items/leads" in html
    assert "It creates a real item" in html
    assert not route.called


def test_a_confirmed_create_posts_the_rendered_row(operator_client, connection, fake):
    route = fake.post("/items/leads").respond(
        json={"data": {"id": 2001, "email": "ada@example.com"}}
    )
    html = htmx(
        operator_client, "console:template-test", form(connection, confirm="yes")
    ).content.decode()
    sent = json.loads(route.calls.last.request.content)
    assert sent == {
        "email": "ada@example.com",
        "first_name": 'Ada "The Countess"',
        "score": 42,
        "enriched": False,
    }
    assert "Directus answered 200" in html and "2001" in html and " ms" in html
    event = AuditEvent.objects.get(action="used")
    assert event.details["use"] == "test on one row" and event.details["status"] == 200
    assert TOKEN not in html


def test_a_confirmed_update_patches_the_item_named_by_the_rows_id(
    operator_client, connection, fake
):
    route = fake.patch("/items/leads/12").respond(json={"data": {"id": 12, "score": 42}})
    data = form(
        connection,
        kind="update",
        body='{"score": "{{Score | number}}"}',
        confirm="yes",
        sample=json.dumps({**QUOTED_ROW, "Directus ID": 12}),
    )
    html = htmx(operator_client, "console:template-test", data).content.decode()
    assert json.loads(route.calls.last.request.content) == {"score": 42}
    assert "PATCH https://cms.example.com/items/leads/12" in html


def test_an_update_without_the_id_column_is_not_sent(operator_client, connection, fake):
    data = form(connection, kind="update", body='{"score": "{{Score}}"}', confirm="yes")
    html = htmx(operator_client, "console:template-test", data).content.decode()
    assert "no “Directus ID” column" in html


def test_a_get_runs_the_saved_query_with_the_rows_values(operator_client, connection, fake):
    query = SavedQuery.objects.create(
        connection=connection,
        name="Lead by email",
        collection="leads",
        query_string="filter[email][_eq]={{Email | trim | lower}}&fields=id,email",
    )
    route = fake.get("/items/leads").respond(json={"data": [{"id": 3}]})
    data = form(connection, kind="get", body="", saved_query=str(query.pk), confirm="yes")
    html = htmx(operator_client, "console:template-test", data).content.decode()
    params = dict(route.calls.last.request.url.params)
    assert params["filter[email][_eq]"] == "ada@example.com" and params["fields"] == "id,email"
    assert "Directus answered 200" in html


def test_a_get_related_reads_one_item_with_dot_fields(operator_client, connection, fake):
    route = fake.get("/items/leads/12").respond(json={"data": {"id": 12, "company": {"name": "X"}}})
    data = form(
        connection,
        kind="get_related",
        body="",
        fields="id,company.name",
        confirm="yes",
        sample=json.dumps({"Directus ID": "12"}),
    )
    htmx(operator_client, "console:template-test", data)
    assert dict(route.calls.last.request.url.params) == {"fields": "id,company.name"}


def test_a_refusal_is_explained(operator_client, connection, fake):
    fake.post("/items/leads").respond(
        400,
        json={
            "errors": [
                {
                    "message": "Value is required",
                    "extensions": {"code": "FAILED_VALIDATION", "field": "email"},
                }
            ]
        },
    )
    html = htmx(
        operator_client, "console:template-test", form(connection, confirm="yes")
    ).content.decode()
    assert "Directus answered 400" in html and "field &quot;email&quot; is required" in html


# -- Flow templates: linter and simulator ---------------------------------------------------


def test_a_flow_template_shows_warnings_and_the_three_events(operator_client, flow_template):
    html = operator_client.get(
        reverse("console:template-detail", args=[flow_template.pk])
    ).content.decode()
    assert 'data-code="key-not-on-update"' in html
    for scope in ("items.create", "items.update", "items.delete"):
        assert f'data-scope="{scope}"' in html
    assert "Flow test A" in html  # the real-shaped create payload


def test_a_flow_body_change_updates_the_simulator_too(operator_client, connection):
    data = form(
        connection,
        kind="flow",
        collection="articles",
        body='{"t": "{{$trigger.payload.id}}"}',
        sync="body",
    )
    html = htmx(operator_client, "console:template-mapper", data).content.decode()
    assert (
        '<section id="flow-sim" class="card" hx-swap-oob="true"' in html
        and "payload-has-no-id" in html
    )


# -- exports -------------------------------------------------------------------------------


def test_exports_show_the_clay_settings_as_text_with_a_copy_button(viewer_client, lead_template):
    html = viewer_client.get(
        reverse("console:template-exports", args=[lead_template.pk])
    ).content.decode()
    assert 'id="copy-clay"' in html
    text = html.split('id="clay-settings-text" class="copy-text">')[1].split("</pre>")[0]
    assert "Method: POST" in text and "Endpoint: https://cms.example.com/items/leads" in text
    assert "Account: Directus" in text and TOKEN not in html


def test_the_flow_export_masks_a_destinations_webhook_url_and_warns(
    viewer_client, flow_template, destination
):
    url = reverse("console:template-exports", args=[flow_template.pk])
    html = viewer_client.get(
        url,
        {
            "scope": ["items.create", "items.update"],
            "collections": "articles",
            "target": "destination",
            "destination": destination.pk,
        },
    ).content.decode()
    assert WEBHOOK not in html and "AUTHSECRET" not in html
    assert "plaintext" in html and "relay" in html
    assert "the webhook URL of Clay destination" in html
    flow_json = html.split('id="flow-json">')[1].split("</pre>")[0].replace("&quot;", '"')
    spec = json.loads(
        flow_json.replace("&#x27;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
    )
    assert spec["flow"]["options"]["scope"] == ["items.create", "items.update"]
    assert spec["operation"]["options"]["body"] == {
        "id": "{{$trigger.key}}",
        "title": "{{$trigger.payload.title}}",
    }


def flow_api(fake, flow_id="f-1", op_id="o-1"):
    routes = {
        "create_flow": fake.post("/flows").respond(json={"data": {"id": flow_id}}),
        "create_op": fake.post("/operations").respond(json={"data": {"id": op_id}}),
        "link": fake.patch(f"/flows/{flow_id}").respond(json={"data": {"id": flow_id}}),
    }
    return routes


def test_install_needs_the_plaintext_confirmation_for_a_destination(
    admin_client, flow_template, destination, fake
):
    routes = flow_api(fake)
    url = reverse("console:template-install", args=[flow_template.pk])
    data = {
        "scope": "items.create",
        "collections": "articles",
        "target": "destination",
        "destination": destination.pk,
    }
    response = admin_client.post(url, data)
    assert response.status_code == 400 and "Tick the box" in response.content.decode()
    assert not routes["create_flow"].called
    response = admin_client.post(url, {**data, "confirm_plaintext": "1"})
    assert response.status_code == 200
    operation = json.loads(routes["create_op"].calls.last.request.content)
    assert operation["options"]["url"] == WEBHOOK and operation["flow"] == "f-1"
    assert {"header": "x-clay-webhook-auth", "value": "clay-auth-AUTHSECRET-55"} in operation[
        "options"
    ]["headers"]
    html = response.content.decode()
    assert WEBHOOK not in html and "AUTHSECRET" not in html
    assert "Installed Flow" in html and f"{BASE}/admin/settings/flows/f-1" in html
    flow_template.refresh_from_db()
    assert (flow_template.flow_id, flow_template.flow_operation_id) == ("f-1", "o-1")
    event = AuditEvent.objects.get(action="installed")
    assert event.target_type == "mappingtemplate" and event.details["flow_id"] == "f-1"
    assert "HOOKSECRET" not in json.dumps(event.details) and "AUTHSECRET" not in json.dumps(
        event.details
    )
    assert event.details["plaintext_secrets"] is True
    used = AuditEvent.objects.get(action="used", target_type="claydestination")
    assert used.target_id == str(destination.pk) and used.actor_name == "admin"
    assert used.details["secrets"] == ["webhook_url", "auth_token"]
    assert used.details["flow_id"] == "f-1"


INSTALL_TO_DESTINATION = {
    "scope": "items.create",
    "collections": "articles",
    "target": "destination",
    "confirm_plaintext": "1",
}


def test_an_operator_may_not_install_a_destinations_secrets_into_a_flow(
    operator_client, flow_template, destination, fake
):
    routes = flow_api(fake)
    url = reverse("console:template-install", args=[flow_template.pk])
    data = {**INSTALL_TO_DESTINATION, "destination": destination.pk}
    response = operator_client.post(url, data)
    html = response.content.decode()
    assert response.status_code == 403 and "Only an admin may install" in html
    assert not routes["create_flow"].called and not routes["create_op"].called
    htmx_html = operator_client.post(url, data, HTTP_HX_REQUEST="true").content.decode()
    assert "Only an admin may install" in htmx_html
    assert not AuditEvent.objects.filter(action__in=["installed", "used"]).exists()
    # The page tells an operator up front instead of offering the confirmation box.
    page = operator_client.get(
        reverse("console:template-exports", args=[flow_template.pk]),
        {"scope": "items.create", "target": "destination", "destination": destination.pk},
    ).content.decode()
    assert 'name="confirm_plaintext"' not in page and "Only an admin may install" in page


def test_a_viewer_and_an_outsider_cannot_install_a_flow(
    client, viewer_user, flow_template, destination, fake
):
    routes = flow_api(fake)
    url = reverse("console:template-install", args=[flow_template.pk])
    data = {**INSTALL_TO_DESTINATION, "destination": destination.pk}
    response = client.post(url, data)
    assert response.status_code == 302 and "/login/" in response["Location"]
    client.force_login(viewer_user)
    assert client.post(url, data).status_code == 403
    assert not routes["create_flow"].called


def test_reinstalling_updates_the_same_flow(operator_client, flow_template, fake):
    MappingTemplate.objects.filter(pk=flow_template.pk).update(
        flow_id="f-1", flow_operation_id="o-1"
    )
    fake.get("/flows/f-1").respond(
        json={"data": {"id": "f-1", "operation": "o-1", "operations": [{"id": "o-1"}]}}
    )
    patch_flow = fake.patch("/flows/f-1").respond(json={"data": {"id": "f-1"}})
    patch_op = fake.patch("/operations/o-1").respond(json={"data": {"id": "o-1"}})
    create = fake.post("/flows").respond(json={"data": {"id": "f-2"}})
    url = reverse("console:template-install", args=[flow_template.pk])
    data = {
        "scope": "items.create",
        "collections": "articles",
        "target": "custom",
        "url": "https://hooks.example.com/in",
    }
    html = operator_client.post(url, data, HTTP_HX_REQUEST="true").content.decode()
    assert "Updated Flow" in html and not create.called
    assert patch_flow.called and patch_op.called
    assert (
        json.loads(patch_op.calls.last.request.content)["options"]["url"]
        == "https://hooks.example.com/in"
    )


def test_a_403_on_install_is_explained(operator_client, flow_template, fake):
    fake.post("/flows").respond(
        403,
        json={
            "errors": [
                {
                    "message": "You don't have permission to access this.",
                    "extensions": {"code": "FORBIDDEN"},
                }
            ]
        },
    )
    url = reverse("console:template-install", args=[flow_template.pk])
    data = {
        "scope": "items.create",
        "collections": "articles",
        "target": "custom",
        "url": "https://hooks.example.com/in",
    }
    html = operator_client.post(url, data).content.decode()
    assert "Not installed." in html and "may not manage Flows" in html
    assert not AuditEvent.objects.filter(action="installed").exists()


def test_a_clay_row_template_maps_item_fields_to_keys_and_offers_a_new_row(
    operator_client, connection
):
    data = form(connection, kind="clay_row", collection="articles", body="{}", sync="mapper")
    data.update({"m-count": "1", "m-0-target": "Title", "m-0-source": "fld:author.first_name"})
    html = htmx(operator_client, "console:template-mapper", data).content.decode()
    body = html.split('aria-label="JSON body"')[1].split(">", 1)[1].split("</textarea>")[0]
    assert json.loads(body.replace("&quot;", '"')) == {"Title": "{{author.first_name}}"}
    assert '<section id="mapper" class="card" hx-swap-oob="true"' in html
    assert 'name="m-count" value="2"' in html  # the filled row plus a blank one
    assert '<option value="fld:author.first_name" selected>' in html


def test_a_clay_row_template_saves_with_item_fields_checked(operator_client, connection):
    data = form(connection, kind="clay_row", collection="articles", body='{"T": "{{titel}}"}')
    response = operator_client.post(reverse("console:template-add"), data)
    assert (
        response.status_code == 400
        and "Did you mean &#x27;title&#x27;?" in response.content.decode()
    )
    data["body"] = '{"T": "{{title}}", "Author": "{{author.last_name}}"}'
    assert operator_client.post(reverse("console:template-add"), data).status_code == 302
