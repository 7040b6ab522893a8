"""Flow triggers, the simulator, the linter and the Clay/Directus export builders (pure)."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from integrations.directus import flows
from integrations.mapping.templates import TemplateError, parse

# The three `$trigger` shapes, written out as Directus 12.4 sent them (observed.md, webhook
# bodies #1 and #4) and as services/items.js deleteMany emits the delete.
CREATE = {
    "event": "articles.items.create",
    "payload": {
        "title": "Flow test A",
        "slug": "flow-test-a",
        "views": 1,
        "author": 1,
        "categories": [{"categories_id": 2}],
    },
    "key": 505,
    "collection": "articles",
}
UPDATE = {
    "event": "articles.items.update",
    "payload": {"status": "published", "views": 2},
    "keys": ["505"],
    "collection": "articles",
}
DELETE = {
    "event": "articles.items.delete",
    "payload": ["505"],
    "keys": ["505"],
    "collection": "articles",
}


def codes(warnings):
    return [w.code for w in warnings]


# --- triggers ---------------------------------------------------------------------------------


def test_sample_triggers_have_the_observed_shapes():
    assert flows.SAMPLE_TRIGGERS == {
        "items.create": CREATE,
        "items.update": UPDATE,
        "items.delete": DELETE,
    }


def test_sample_trigger_without_an_item_renames_the_collection_on_a_copy():
    trigger = flows.sample_trigger("items.update", "leads")
    assert trigger == {**UPDATE, "event": "leads.items.update", "collection": "leads"}
    trigger["payload"]["status"] = "changed"
    assert flows.SAMPLE_TRIGGERS["items.update"] == UPDATE


def test_sample_trigger_builds_each_event_from_an_item():
    item = {"id": 7, "email": "a@b.c", "score": 3}
    assert flows.sample_trigger("items.create", "leads", item) == {
        "event": "leads.items.create",
        "payload": {"email": "a@b.c", "score": 3},
        "key": 7,
        "collection": "leads",
    }
    assert flows.sample_trigger("leads.items.update", "leads", item) == {
        "event": "leads.items.update",
        "payload": {"email": "a@b.c", "score": 3},
        "keys": ["7"],
        "collection": "leads",
    }
    assert flows.sample_trigger("items.delete", "leads", item) == {
        "event": "leads.items.delete",
        "payload": ["7"],
        "keys": ["7"],
        "collection": "leads",
    }


def test_sample_trigger_honours_another_primary_key():
    trigger = flows.sample_trigger(
        "items.create", "tags", {"slug": "x", "name": "X"}, primary_key="slug"
    )
    assert trigger["key"] == "x" and trigger["payload"] == {"name": "X"}


def test_sample_trigger_refuses_unknown_events():
    with pytest.raises(ValueError, match="Unknown event 'items.upsert'"):
        flows.sample_trigger("items.upsert")


# --- Directus' own rendering ------------------------------------------------------------------


SCOPE = flows.flow_scope_data(UPDATE)


@pytest.mark.parametrize(
    ("option", "expected"),
    [
        ("{{$trigger}}", UPDATE),
        ("{{ $trigger.keys }}", ["505"]),
        ("{{$trigger.keys.0}}", "505"),
        ("{{$trigger.keys[0]}}", "505"),
        ("{{$trigger.payload.views}}", 2),
        ("{{$trigger.payload.title}}", "undefined"),
        ("id={{$trigger.keys}}", 'id=["505"]'),
        ("v{{$trigger.payload.views}}-{{$trigger.payload.title}}", "v2-undefined"),
        ("{{$accountability.admin}}!", "true!"),
        ("{{$trigger.payload.email | lower}}", "undefined"),
        ("{{$last.collection}}", "articles"),
        ("no tags", "no tags"),
        (7, 7),
    ],
)
def test_directus_render_follows_render_mustache(option, expected):
    assert flows.directus_render(option, SCOPE) == expected


def test_directus_render_walks_objects_and_lists_value_by_value():
    body = {"k": ["{{$trigger.keys.0}}", {"v": "{{$trigger.payload.views}}"}], "n": None}
    assert flows.directus_render(body, SCOPE) == {"k": ["505", {"v": 2}], "n": None}


def test_directus_render_pastes_null_as_text_inside_a_string():
    scope = flows.flow_scope_data({"payload": {"a": None, "f": 2.0}})
    assert (
        flows.directus_render("[{{$trigger.payload.a}}|{{$trigger.payload.f}}]", scope)
        == "[null|2]"
    )
    assert flows.directus_render("{{$trigger.payload.a}}", scope) is None


# --- simulator --------------------------------------------------------------------------------


def test_simulate_renders_the_whole_trigger_for_each_event():
    results = flows.simulate(parse('"{{$trigger}}"'))
    assert set(results) == {"items.create", "items.update", "items.delete"}
    for scope, trigger in (
        ("items.create", CREATE),
        ("items.update", UPDATE),
        ("items.delete", DELETE),
    ):
        result = results[scope]
        assert json.loads(result.rendered_json) == trigger
        assert json.loads(result.directus_json) == trigger
        assert result.problems == []
        assert result.trigger == trigger


def test_simulate_shows_where_a_field_is_missing():
    template = parse('{\n  "title": "{{ $trigger.payload.title }}",\n  "id": {{$trigger.key}}\n}')
    results = flows.simulate(template, events=("items.create", "items.update"))
    assert json.loads(results["items.create"].rendered_json) == {"title": "Flow test A", "id": 505}
    update = results["items.update"]
    assert update.rendered_json is None
    assert [(p.line, p.column, p.placeholder) for p in update.problems] == [
        (2, 13, "$trigger.payload.title"),
        (3, 9, "$trigger.key"),
    ]
    assert json.loads(update.directus_json) == {"title": "undefined", "id": "undefined"}


def test_simulate_applies_the_missing_policy_for_the_relay():
    template = parse('{"title": "{{$trigger.payload.title}}", "keys": {{$trigger.keys}}}')
    result = flows.simulate(template, events=["items.update"], options={"missing": "omit"})[
        "items.update"
    ]
    assert json.loads(result.rendered_json) == {"keys": ["505"]}


def test_simulate_uses_the_given_item_and_collection():
    template = parse('{"email": "{{$trigger.payload.email | lower}}", "key": {{$trigger.key}}}')
    result = flows.simulate(
        template, ["items.create"], {"id": 9, "email": "A@B.C"}, collection="leads"
    )
    created = result["items.create"]
    assert json.loads(created.rendered_json) == {"email": "a@b.c", "key": 9}
    # Directus cannot cast: it looks the whole "email | lower" up and finds nothing.
    assert json.loads(created.directus_json) == {"email": "undefined", "key": 9}


def test_simulate_reads_item_field_templates_in_flow_syntax():
    result = flows.simulate(parse('{"t": "{{title}}", "v": {{views}}}'), ["items.create"])
    assert json.loads(result["items.create"].rendered_json) == {"t": "Flow test A", "v": 1}


def test_the_object_body_keeps_values_with_quotes_valid_json():
    trigger = flows.sample_trigger("items.create", "articles", {"id": 1, "title": 'Say "hi"\\\n😀'})
    body = flows.flow_body('{"title": "{{title}}", "note": "New: {{title}}"}')
    sent = json.dumps(flows.directus_render(body, flows.flow_scope_data(trigger)))
    assert json.loads(sent) == {"title": 'Say "hi"\\\n😀', "note": 'New: Say "hi"\\\n😀'}


# --- linter -----------------------------------------------------------------------------------


def test_lint_is_quiet_about_sending_the_whole_trigger():
    assert flows.lint('"{{$trigger}}"', flows.SCOPES) == []
    assert flows.lint("{{$trigger}}", flows.SCOPES) == []


def test_lint_flags_payload_id_with_update_and_points_at_keys():
    text = '{\n  "id": "{{$trigger.payload.id}}"\n}'
    (warning,) = flows.lint(text, ["items.update"], body_as="object")
    assert (warning.code, warning.line, warning.column) == ("payload-has-no-id", 2, 10)
    assert "{{$trigger.keys}}" in warning.message
    # And it is true: the update payload has no id.
    assert "id" not in UPDATE["payload"]


def test_lint_flags_payload_id_on_create_and_points_at_key():
    (warning,) = flows.lint('{"id": {{$trigger.payload.id}}}', ["items.create"], body_as="object")
    assert warning.code == "payload-has-no-id"
    assert "{{$trigger.key}} on create" in warning.message
    assert "id" not in CREATE["payload"]


def test_lint_uses_the_given_primary_key():
    warnings = flows.lint(
        '{"id": {{$trigger.payload.uuid}}}', ["items.create"], primary_key="uuid", body_as="object"
    )
    assert codes(warnings) == ["payload-has-no-id"]


def test_lint_flags_key_when_the_scope_includes_update_or_delete():
    warnings = flows.lint(
        '{"id": {{$trigger.key}}}', ["items.create", "items.update", "items.delete"]
    )
    assert codes(warnings) == ["key-not-on-update"]
    assert "items.update, items.delete" in warnings[0].message
    assert "key" not in UPDATE and "key" not in DELETE and "key" in CREATE


def test_lint_flags_keys_when_the_scope_includes_create():
    assert codes(flows.lint('{"ids": {{$trigger.keys}}}', ["items.create"])) == [
        "keys-not-on-create"
    ]
    assert flows.lint('{"ids": {{$trigger.keys}}}', ["items.update", "items.delete"]) == []
    assert "keys" not in CREATE


def test_lint_key_on_create_only_is_fine():
    assert flows.lint('{"id": {{$trigger.key}}, "all": {{$trigger}}}', ["items.create"]) == []


def test_lint_warns_that_update_payload_fields_may_be_missing():
    text = '{"t": "{{$trigger.payload.title}}"}'
    warnings = flows.lint(text, ["items.update"], body_as="object")
    assert codes(warnings) == ["payload-field-may-be-missing"]
    assert "title" not in UPDATE["payload"]
    assert flows.lint(text, ["items.create"], body_as="object") == []


def test_lint_warns_that_the_delete_payload_is_the_key_list():
    warnings = flows.lint('{"t": "{{$trigger.payload.title}}"}', ["items.delete"], body_as="object")
    assert codes(warnings) == ["delete-payload-is-keys"]
    assert flows.lint('{"deleted": {{$trigger.payload}}}', ["items.delete"]) == []


def test_lint_flags_embedded_placeholders_in_a_text_body():
    text = '{"note": "New article: {{$trigger.payload.title}}"}'
    warnings = flows.lint(text, ["items.create"])
    assert codes(warnings) == ["embedded-placeholder"]
    assert (warnings[0].line, warnings[0].column) == (1, 24)
    # Directus pastes text raw, so a quote in the title breaks a text body:
    raw = flows.directus_render(text, flows.flow_scope_data({"payload": {"title": 'a "b"'}}))
    with pytest.raises(json.JSONDecodeError):
        json.loads(raw)


def test_lint_does_not_flag_bare_keys_in_a_text_body():
    # Directus pastes a number or a list as JSON text, so these stay valid JSON.
    assert (
        flows.lint('{"id": {{$trigger.keys}}, "all": {{$trigger.payload}}}', ["items.update"]) == []
    )


def test_lint_flags_a_bare_text_value_in_a_text_body():
    warnings = flows.lint('{"c": {{$trigger.collection}}}', ["items.update"])
    assert codes(warnings) == ["text-body"]


def test_lint_flags_whole_value_placeholders_in_a_text_body_once():
    warnings = flows.lint(
        '{"t": "{{$trigger.payload.title}}", "k": {{$trigger.key}}}', ["items.create"]
    )
    assert codes(warnings) == ["text-body"]
    assert (warnings[0].line, warnings[0].column) == (1, 8)


def test_lint_of_an_object_body_skips_the_text_body_warnings():
    text = '{"t": "{{$trigger.payload.title}}", "note": "New: {{$trigger.payload.slug}}"}'
    assert flows.lint(text, ["items.create"], body_as="object") == []


def test_lint_flags_casts_and_names_that_are_not_flow_variables():
    warnings = flows.lint(
        '{"e": {{$trigger.payload.email | lower}}, "t": {{title}}}',
        ["items.create"],
        body_as="object",
    )
    assert codes(warnings) == ["cast-ignored", "not-a-flow-variable"]
    assert "{{$trigger.payload.title}}" in warnings[1].message


def test_lint_reports_an_invalid_template_and_still_checks_placeholders():
    warnings = flows.lint('{"id": {{$trigger.payload.id}}, }', ["items.update"])
    assert codes(warnings) == ["payload-has-no-id", "invalid-template"]
    assert (warnings[1].line, warnings[1].column) == (1, 31)


def test_lint_reports_unknown_scopes():
    assert codes(flows.lint('"{{$trigger}}"', ["items.upsert"])) == ["unknown-scope"]


@pytest.mark.parametrize(
    "headers",
    [
        [{"header": "Authorization", "value": "Bearer abc.def.ghi"}],
        [{"header": "x-clay-webhook-auth", "value": "whk_0123456789"}],
        [("X-API-Key", "k")],
        [{"key": "Cookie", "value": "session=1"}],
    ],
)
def test_lint_flags_literal_secret_headers(headers):
    (warning,) = flows.lint('"{{$trigger}}"', ["items.create"], headers=headers)
    assert warning.code == "secret-in-header"
    assert "plaintext" in warning.message and "$env" in warning.message


def test_lint_accepts_secret_headers_from_env_and_harmless_headers():
    headers = [
        {"header": "Authorization", "value": "Bearer {{ $env.CLAY_TOKEN }}"},
        {"header": "x-clay-webhook-auth", "value": "{{$env.CLAY_WEBHOOK_AUTH}}"},
        {"header": "X-Source", "value": "directus-flow"},
    ]
    assert flows.lint('"{{$trigger}}"', ["items.create"], headers=headers) == []


def test_lint_flags_a_bearer_token_in_any_header_value():
    headers = [("X-Forward", "Bearer sk_live_0123456789abcdef")]
    assert codes(flows.lint('"{{$trigger}}"', ["items.create"], headers=headers)) == [
        "secret-in-options"
    ]


def test_lint_flags_a_clay_webhook_url():
    url = "https://api.clay.com/v3/sources/webhook/pull-in-data-from-a-webhook-0b9b4f7e-1234-4cde-9abc-1234567890ab"
    warnings = flows.lint('"{{$trigger}}"', ["items.create"], url=url)
    assert codes(warnings) == ["clay-webhook-url"]
    assert "relay" in warnings[0].message


def test_lint_flags_a_token_in_the_url_query():
    warnings = flows.lint(
        '"{{$trigger}}"', ["items.create"], url="https://hooks.example.com/in?token=abc"
    )
    assert codes(warnings) == ["secret-in-url"]
    assert (
        flows.lint(
            '"{{$trigger}}"', ["items.create"], url="https://hooks.example.com/in?token={{$env.T}}"
        )
        == []
    )


@pytest.mark.parametrize(
    ("body", "line", "column"),
    [
        ('{"auth": "Bearer sk_live_0123456789abcdef"}', 1, 11),
        ('{\n  "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig_abc"\n}', 2, 11),
        ('{"api_key": "hunter2hunter2"}', 1, 14),
        ('{"x": "9fQ2vL7kP0sX4mB8nR1tY6wZ3cH5jD0a"}', 1, 8),
        ('{"hook": "https://api.clay.com/v3/sources/webhook/abc"}', 1, 11),
    ],
)
def test_lint_flags_secrets_pasted_into_the_body(body, line, column):
    (warning,) = flows.lint(body, ["items.create"])
    assert warning.code in ("secret-in-options", "clay-webhook-url")
    assert (warning.line, warning.column) == (line, column)


@pytest.mark.parametrize(
    "body",
    [
        '{"id": "0b9b4f7e-1234-4cde-9abc-1234567890ab"}',
        '{"slug": "this-is-a-rather-long-article-slug-for-testing"}',
        '{"path": "/assets/images/2024/03/15/header-image-large.png"}',
        '{"status": "published", "token_type": "bearer"}',
        '{"password": "{{$env.PASSWORD}}"}',
    ],
)
def test_lint_leaves_ordinary_values_alone(body):
    assert flows.lint(body, ["items.create"], body_as="object") == []


def test_lint_warnings_come_in_reading_order_with_options_last():
    text = '{\n  "b": {{$trigger.payload.id}},\n  "a": "x {{$trigger.keys}}"\n}'
    warnings = flows.lint(text, ["items.create"], headers=[("Authorization", "Basic dXNlcjpwYXNz")])
    assert [(w.code, w.line) for w in warnings] == [
        ("payload-has-no-id", 2),
        ("text-body", 2),
        ("keys-not-on-create", 3),
        ("embedded-placeholder", 3),
        ("secret-in-header", None),
    ]


def test_warning_is_the_name_other_modules_use():
    assert flows.Warning is flows.FlowWarning


# --- Directus Flow export ---------------------------------------------------------------------


def test_directus_flow_matches_the_observed_shape():
    exported = flows.directus_flow(
        "Articles to Clay",
        ["articles"],
        ["items.create", "articles.items.update"],
        "https://api.clay.com/v3/sources/webhook/x",
        '{\n  "title": "{{ $trigger.payload.title }}",\n  "views": {{$trigger.payload.views}},\n  "note": "New: {{$trigger.payload.title}}",\n  "source": "directus"\n}',
        headers=[("X-Source", "kiln"), ("content-type", "text/plain")],
    )
    assert exported == {
        "flow": {
            "name": "Articles to Clay",
            "status": "active",
            "trigger": "event",
            "accountability": "all",
            "options": {
                "type": "action",
                "scope": ["items.create", "items.update"],
                "collections": ["articles"],
            },
        },
        "operation": {
            "name": "Webhook",
            "key": "webhook",
            "type": "request",
            "position_x": 19,
            "position_y": 1,
            "options": {
                "method": "POST",
                "url": "https://api.clay.com/v3/sources/webhook/x",
                "headers": [
                    {"header": "Content-Type", "value": "application/json"},
                    {"header": "X-Source", "value": "kiln"},
                ],
                "body": {
                    "title": "{{$trigger.payload.title}}",
                    "views": "{{$trigger.payload.views}}",
                    "note": "New: {{$trigger.payload.title}}",
                    "source": "directus",
                },
            },
        },
    }


def test_directus_flow_sends_the_whole_trigger_as_observed():
    exported = flows.directus_flow(
        "All", ["articles"], ["items.create"], "https://h.example/in", "{{$trigger}}"
    )
    assert exported["operation"]["options"]["body"] == "{{$trigger}}"


def test_directus_flow_writes_item_fields_in_flow_syntax():
    body = flows.directus_flow(
        "x",
        ["leads"],
        ["items.create"],
        "https://h/x",
        '{"e": "{{email}}", "n": "Hi {{first_name}}"}',
    )["operation"]["options"]["body"]
    assert body == {"e": "{{$trigger.payload.email}}", "n": "Hi {{$trigger.payload.first_name}}"}


def test_directus_flow_takes_an_object_body_as_is():
    body = {"k": "{{$trigger.keys}}"}
    exported = flows.directus_flow("x", ["a"], ["items.update"], "https://h/x", body)
    assert exported["operation"]["options"]["body"] == body
    assert exported["operation"]["options"]["body"] is not body


def test_directus_flow_refuses_casts_directus_cannot_apply():
    with pytest.raises(TemplateError, match="Directus cannot apply casts"):
        flows.directus_flow(
            "x", ["a"], ["items.create"], "https://h/x", '{"e": "{{email | lower}}"}'
        )


def test_directus_flow_refuses_unknown_scopes():
    with pytest.raises(ValueError, match="Unknown event"):
        flows.directus_flow("x", ["a"], ["items.sort"], "https://h/x", "{{$trigger}}")


def test_directus_flow_can_keep_no_run_log():
    exported = flows.directus_flow(
        "x", ["a"], ["items.create"], "https://h/x", "{{$trigger}}", accountability="activity"
    )
    assert exported["flow"]["accountability"] == "activity"


def test_flow_syntax_keeps_layout_and_casts():
    parsed = flows.flow_syntax('{\n  "e": "{{Email | lower}}",\n  "k": {{$trigger.key}}\n}')
    assert (
        parsed.text == '{\n  "e": "{{$trigger.payload.Email | lower}}",\n  "k": {{$trigger.key}}\n}'
    )


# --- Clay HTTP API export ---------------------------------------------------------------------


NOTE = flows.CLAY_NOTE


def test_clay_create_settings():
    body = '{"email": "{{Email}}", "score": {{Score}}}'
    assert flows.clay_http_api_settings("create", "https://cms.example.com/", "leads", body) == {
        "method": "POST",
        "url": "https://cms.example.com/items/leads",
        "query_params": [],
        "headers": [{"key": "Content-Type", "value": "application/json"}],
        "auth_account": "Directus",
        "body": body,
        "note": NOTE,
    }


def test_clay_update_settings_leave_out_kiln_casts_and_say_so():
    body = '{\n  "email": "{{Email | trim | lower}}",\n  "score": {{Score | number}}\n}'
    settings_ = flows.clay_http_api_settings(
        "update", "https://cms.example.com", "leads", body, fields=["id", "score"]
    )
    assert settings_ == {
        "method": "PATCH",
        "url": "https://cms.example.com/items/leads/{{Directus ID}}",
        "query_params": [{"key": "fields", "value": "id,score"}],
        "headers": [{"key": "Content-Type", "value": "application/json"}],
        "auth_account": "Directus",
        "body": '{\n  "email": "{{Email}}",\n  "score": {{Score}}\n}',
        "note": NOTE
        + " Kiln casts (lower, number, trim) were left out of the body: Clay does not apply them.",
    }


def test_clay_get_settings_carry_the_saved_query_rows():
    params = [("filter[status][_eq]", "published"), ("sort", "-date_created"), ("limit", "10")]
    assert flows.clay_http_api_settings(
        "get", "https://cms.example.com", "articles", None, params
    ) == {
        "method": "GET",
        "url": "https://cms.example.com/items/articles",
        "query_params": [
            {"key": "filter[status][_eq]", "value": "published"},
            {"key": "sort", "value": "-date_created"},
            {"key": "limit", "value": "10"},
        ],
        "headers": [],
        "auth_account": "Directus",
        "body": None,
        "note": NOTE,
    }


def test_clay_get_related_settings_use_dot_notation_fields():
    settings_ = flows.clay_http_api_settings(
        "get_related",
        "https://cms.example.com",
        "leads",
        item_id_placeholder="{{Lead ID}}",
        fields=["email", "company.name", "company.domain"],
    )
    assert settings_ == {
        "method": "GET",
        "url": "https://cms.example.com/items/leads/{{Lead ID}}",
        "query_params": [{"key": "fields", "value": "email,company.name,company.domain"}],
        "headers": [],
        "auth_account": "Directus",
        "body": None,
        "note": NOTE,
    }


def test_clay_fields_replace_a_fields_row_of_the_saved_query():
    settings_ = flows.clay_http_api_settings(
        "get", "https://c", "a", None, [("fields", "*"), ("limit", "1")], fields=["id"]
    )
    assert settings_["query_params"] == [
        {"key": "limit", "value": "1"},
        {"key": "fields", "value": "id"},
    ]


def test_clay_settings_refuse_unknown_kinds_and_missing_bodies():
    with pytest.raises(ValueError, match="Unknown kind"):
        flows.clay_http_api_settings("delete", "https://c", "a")
    with pytest.raises(ValueError, match="needs a body"):
        flows.clay_http_api_settings("create", "https://c", "a", "  ")
    with pytest.raises(TemplateError):
        flows.clay_http_api_settings("create", "https://c", "a", '{"a": }')


def test_clay_settings_text_for_a_create_column():
    settings_ = flows.clay_http_api_settings(
        "create",
        "https://cms.example.com",
        "leads",
        '{\n  "email": "{{Email}}",\n  "status": "new"\n}',
    )
    assert flows.clay_settings_text(settings_) == (
        "Method: POST\n"
        "Endpoint: https://cms.example.com/items/leads\n"
        "Query parameters:\n"
        "  (none)\n"
        "Headers:\n"
        "  Content-Type: application/json\n"
        "Body:\n"
        "{\n"
        '  "email": "{{Email}}",\n'
        '  "status": "new"\n'
        "}\n"
        "Account: Directus\n"
        'Note: Authorization is not set here: choose the Clay account named "Directus", which '
        "holds the Directus token, so the token never sits in the column settings.\n"
    )


def test_clay_settings_text_for_a_get_column():
    settings_ = flows.clay_http_api_settings(
        "get", "https://cms.example.com", "articles", None, [("filter[status][_eq]", "published")]
    )
    assert flows.clay_settings_text(settings_) == (
        "Method: GET\n"
        "Endpoint: https://cms.example.com/items/articles\n"
        "Query parameters:\n"
        "  filter[status][_eq]: published\n"
        "Headers:\n"
        "  (none)\n"
        "Body:\n"
        "  (none)\n"
        "Account: Directus\n"
        f"Note: {NOTE}\n"
    )


# --- properties -------------------------------------------------------------------------------


flow_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=200)
@given(
    title=flow_values,
    views=flow_values,
    prefix=st.text(min_size=1, max_size=8).filter(lambda s: "{" not in s),
)
def test_an_installed_object_body_always_sends_valid_json(title, views, prefix):
    body = flows.flow_body(
        '{"t": "{{title}}", "v": {{views}}, "n": "' + json.dumps(prefix)[1:-1] + '{{title}}"}'
    )
    trigger = flows.sample_trigger(
        "items.create", "articles", {"id": 1, "title": title, "views": views}
    )
    sent = json.loads(json.dumps(flows.directus_render(body, flows.flow_scope_data(trigger))))
    assert sent["t"] == title and sent["v"] == views
    assert sent["n"].startswith(prefix)
