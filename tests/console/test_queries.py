"""The query builder pages: who may do what, previews, sending, counting, pasting, saving."""

import json

import pytest
from django.urls import reverse

from console.views import queries
from console.views.queries import _with_deep_limit, item_table, nested_limit_hits
from integrations.directus.client import DirectusError, ItemsPage
from integrations.models import AuditEvent, DirectusConnection, SavedQuery, Secret
from integrations.query import filters
from tests.console.builder_examples import EXAMPLE_QS, SCHEMA, example_form

TOKEN = "tok-QUERY-BUILDER-SECRET-1234"


@pytest.fixture
def connection(db, admin_user):
    return DirectusConnection.objects.create(
        name="CMS",
        base_url="https://cms.example.com",
        token=Secret.seal(TOKEN),
        schema=SCHEMA,
        created_by=admin_user,
    )


class FakeClient:
    """Stands in for DirectusClient: records the params and answers a page or raises."""

    calls: list = []
    rate_limited_ms = 0

    def __init__(self, answer):
        self.answer = answer

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def list_items(self, collection, params):
        FakeClient.calls.append((collection, list(params)))
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


@pytest.fixture
def fake_directus(monkeypatch):
    FakeClient.calls = []
    holder = {"answer": ItemsPage([], None, 200, 5)}
    monkeypatch.setattr(
        DirectusConnection, "client", lambda self, **kw: FakeClient(holder["answer"])
    )
    return holder


# -- what a result looks like ---------------------------------------------------------------


def test_nested_items_become_readable_columns_and_small_tables():
    table = item_table(
        [
            {
                "id": 1,
                "author": {"first_name": "Ada", "company": None},
                "categories": [{"categories_id": {"name": "Science"}}],
                "tags": ["a", "b"],
            },
            {"id": 2, "author": None, "categories": []},
        ]
    )
    assert table["columns"] == [
        "id",
        "author.first_name",
        "author.company",
        "categories",
        "tags",
        "author",
    ]
    first, second = table["rows"]
    null = {"text": "null", "muted": True, "kind": "null"}
    assert first[1] == {"text": "Ada"} and first[2] == null
    assert first[3]["table"]["columns"] == ["categories_id.name"]
    assert first[4] == {"text": "a, b"}
    assert second[5] == null and second[1]["muted"]
    assert second[3] == {"text": "[]", "muted": True, "kind": "empty"}


def test_empty_text_an_empty_list_and_null_are_told_apart():
    text, listed, nothing = _one(""), _one([]), _one(None)
    assert text["text"] == '""' and listed["text"] == "[]" and nothing["text"] == "null"
    missing = item_table([{"a": 1}, {}])["rows"][1][0]
    assert missing == {"text": "", "muted": True}


def _one(value):
    return item_table([{"v": value}])["rows"][0][0]


def test_a_long_text_is_clipped_with_its_length_and_kept_whole_for_show_all():
    long = "  indented\tline\n" * 10_000
    cell = _one(long)
    assert cell["text"] == long and cell["length"] == len(long)
    assert len(cell["head"]) <= 300 and cell["head"].startswith("  indented\tline")
    assert "head" not in _one("short text")


def test_a_nested_list_of_exactly_the_default_limit_is_flagged_unless_deep_limits_it():
    items = [{"id": 1, "products": [{"id": n} for n in range(100)], "tags": [1]}]
    assert nested_limit_hits(items, {}) == ["products"]
    assert nested_limit_hits(items, {"products": {"_limit": 200}}) == []
    assert _with_deep_limit("", "products") == '{"products": {"_limit": -1}}'
    assert _with_deep_limit('{"products": {"_sort": "id"}}', "products") == (
        '{"products": {"_sort": "id", "_limit": -1}}'
    )


# -- who may do what -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("client_fixture", "status"),
    [("admin_client", 200), ("operator_client", 200), ("viewer_client", 200), ("client", 302)],
)
def test_the_builder_and_saved_queries_are_open_to_every_role_anonymous_users_sign_in(
    request, connection, client_fixture, status
):
    client = request.getfixturevalue(client_fixture)
    for response in [
        client.get(reverse("console:query-builder")),
        client.get(reverse("console:saved-queries")),
        client.post(reverse("console:query-builder"), example_form(connection)),
    ]:
        assert response.status_code == status
        if status == 302:
            assert "/login/" in response["Location"]


@pytest.mark.parametrize(
    "name", ["query-send", "query-count", "query-save", "query-schema-refresh"]
)
@pytest.mark.parametrize(
    ("client_fixture", "allowed"),
    [
        ("admin_client", True),
        ("operator_client", True),
        ("viewer_client", False),
        ("client", False),
    ],
)
def test_sending_counting_saving_and_refreshing_need_an_operator(
    request, connection, fake_directus, monkeypatch, name, client_fixture, allowed
):
    monkeypatch.setattr(
        DirectusConnection, "refresh_schema", lambda self, include_system=False: SCHEMA
    )
    client = request.getfixturevalue(client_fixture)
    response = client.post(reverse(f"console:{name}"), example_form(connection, name="Mine"))
    if allowed:
        assert response.status_code in (200, 302)
    else:
        assert response.status_code == (403 if client_fixture == "viewer_client" else 302)
        assert FakeClient.calls == [] and not SavedQuery.objects.exists()


def test_a_viewer_sees_the_builder_without_send_or_save(viewer_client, connection):
    body = viewer_client.post(
        reverse("console:query-builder"), example_form(connection)
    ).content.decode()
    assert "filter[status][_eq]" in body
    assert "Send test request" not in body and "Save query" not in body
    assert "needs the operator role" in body


def test_deleting_a_saved_query_needs_an_operator(viewer_client, connection):
    saved = SavedQuery.objects.create(connection=connection, name="q", collection="articles")
    url = reverse("console:saved-query-delete", args=[saved.pk])
    assert viewer_client.post(url).status_code == 403
    assert SavedQuery.objects.filter(pk=saved.pk).exists()


# -- the page ----------------------------------------------------------------------------------


def test_the_three_previews_show_the_issues_example(operator_client, connection):
    response = operator_client.post(
        reverse("console:query-builder"), example_form(connection), HTTP_HX_REQUEST="true"
    )
    body = response.content.decode()
    assert "<html" not in body and 'id="builder"' in body  # the partial only
    rows = filters.Query.from_query_string(EXAMPLE_QS).to_params()
    for key, value in rows:
        assert f'<td class="mono">{key}</td><td class="mono">{value}</td>' in body
    assert TOKEN not in body
    response = operator_client.post(reverse("console:query-builder"), example_form(connection))
    assert response.context["clay_rows_text"] == "\n".join(f"{k}\t{v}" for k, v in rows)
    assert json.loads(response.context["filter_json"]) == {
        "status": {"_eq": "published"},
        "_or": [{"views": {"_gt": 1000}}, {"author": {"last_name": {"_contains": "Kn"}}}],
    }
    assert response.context["url"] == f"https://cms.example.com/items/articles?{EXAMPLE_QS}"
    assert response.context["curl"] == (
        'curl --globoff -H "Authorization: Bearer $DIRECTUS_TOKEN" '
        f"'https://cms.example.com/items/articles?{EXAMPLE_QS}'"
    )
    assert response.context["problems"] == []
    assert TOKEN not in response.content.decode()


def test_an_htmx_request_for_the_previews_renders_only_them(operator_client, connection):
    response = operator_client.post(
        reverse("console:query-builder"),
        example_form(connection),
        HTTP_HX_REQUEST="true",
        HTTP_HX_TARGET="previews",
    )
    body = response.content.decode()
    assert body.lstrip().startswith('<section id="previews"') and "<form" not in body


def test_without_javascript_a_post_returns_the_whole_page(operator_client, connection):
    response = operator_client.post(
        reverse("console:query-builder"), example_form(connection, action="add-condition:f.1")
    )
    body = response.content.decode()
    assert "<html" in body and 'name="f.1.2-field"' in body


def test_the_operator_list_follows_the_field_type_and_a_new_field_gets_a_valid_one(
    operator_client, connection
):
    data = example_form(
        connection, **{"f.0-field": "views", "f.0-op": "_contains", "f.0-value": "12"}
    )
    context = operator_client.post(reverse("console:query-builder"), data).context
    condition = context["state"].root.items[0]
    assert condition.op == "_eq"  # _contains was for the old string field
    ops = [op for op, _ in condition.ops]
    assert "_gt" in ops and "_contains" not in ops
    assert condition.input == {"kind": "single", "type": "number"}


def test_changing_the_collection_starts_a_fresh_filter(operator_client, connection):
    data = example_form(connection, collection="leads")
    state = operator_client.post(reverse("console:query-builder"), data).context["state"]
    assert state.collection == "leads" and state.fields == "" and state.sorts == []
    assert [c.field for c in state.root.items] == [""]


def test_a_wrong_operator_is_refused_before_sending_naming_field_and_type(
    operator_client, connection, fake_directus
):
    data = example_form(connection, **{"f.1.0-op": "_contains"})
    response = operator_client.post(
        reverse("console:query-send"), data, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="result"
    )
    body = response.content.decode()
    assert FakeClient.calls == []
    assert "Not sent" in body
    message = "_contains is not valid for integer field views"
    assert message in body
    # The problem also sits next to its condition in the builder.
    page = operator_client.post(reverse("console:query-builder"), data).content.decode()
    row = page.split('id="f.1.0"', 1)[1].split('class="cond', 1)[0]
    assert message in row


def test_send_runs_the_query_and_shows_status_meta_table_and_raw_json(
    operator_client, connection, fake_directus
):
    fake_directus["answer"] = ItemsPage(
        [{"id": 7, "title": "Knuth on Rust", "author": {"first_name": "Donald"}}],
        {"filter_count": 1},
        200,
        42,
    )
    data = example_form(connection, meta="filter_count")
    response = operator_client.post(
        reverse("console:query-send"), data, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="result"
    )
    body = response.content.decode()
    assert body.lstrip().startswith('<section id="result"')
    assert FakeClient.calls == [
        ("articles", filters.Query.from_query_string(EXAMPLE_QS + "&meta=filter_count").to_params())
    ]
    assert 'HTTP <span class="ok">200</span> · 42 ms' in body
    assert "filter_count = 1" in body
    assert '<th class="mono">author.first_name</th>' in body and "Donald" in body
    assert "&quot;title&quot;: &quot;Knuth on Rust&quot;" in body  # the raw JSON, pretty
    event = AuditEvent.objects.get(action="used")
    assert event.details == {"use": "test request", "collection": "articles", "status": 200}


def test_a_directus_error_is_explained_with_what_to_check(
    operator_client, connection, fake_directus
):
    fake_directus["answer"] = DirectusError(
        'You don\'t have permission to access field "nope" in collection "articles" or it does not exist.',
        status=403,
        code="FORBIDDEN",
        field="nope",
        collection="articles",
        method="GET",
        path="/items/articles",
    )
    response = operator_client.post(reverse("console:query-send"), example_form(connection))
    body = response.content.decode()
    assert "<html" in body  # without JavaScript the page comes back with the result
    assert "403 FORBIDDEN" in body
    assert "field &quot;nope&quot; does not exist in &quot;articles&quot;" in body
    assert "What to check" in body


def test_count_matches_asks_only_for_the_filter_count(operator_client, connection, fake_directus):
    fake_directus["answer"] = ItemsPage([], {"filter_count": 17}, 200, 3)
    response = operator_client.post(
        reverse("console:query-count"), example_form(connection, meta="total_count")
    )
    ((collection, params),) = FakeClient.calls
    assert dict(params)["meta"] == "filter_count" and dict(params)["limit"] == "0"
    assert not {"fields", "sort", "offset", "page"} & {k for k, _ in params}
    assert [k for k, _ in params if k.startswith("filter")] == [
        "filter[status][_eq]", "filter[_or][0][views][_gt]", "filter[_or][1][author][last_name][_contains]"
    ]  # fmt: skip
    assert '<span class="ok" id="match-count">17</span>' in response.content.decode()


def test_a_count_waits_out_the_rate_limiter_and_says_so(operator_client, connection, monkeypatch):
    import httpx
    import respx

    from integrations.directus.client import DirectusClient

    limited = httpx.Response(
        429,
        headers={"Retry-After": "0"},
        json={"errors": [{"message": "Too many requests, retry after 300ms.",
                          "extensions": {"code": "REQUESTS_EXCEEDED"}}]},
    )  # fmt: skip
    answered = httpx.Response(200, json={"meta": {"filter_count": 4}, "data": []})
    monkeypatch.setattr(
        DirectusConnection,
        "client",
        lambda self, **kw: DirectusClient(self.api_url, TOKEN, client=httpx.Client(), **kw),
    )
    with respx.mock(base_url="https://cms.example.com") as router:
        router.get("/items/articles").mock(side_effect=[limited, answered])
        response = operator_client.post(reverse("console:query-count"), example_form(connection))
    html = response.content.decode()
    assert '<span class="ok" id="match-count">4</span>' in html
    assert "for the Directus rate limit" in html


def test_pasting_a_url_fills_the_builder_and_round_trips(operator_client, connection):
    data = {
        "connection": str(connection.pk),
        "paste": f"https://cms.example.com/items/articles?{EXAMPLE_QS}",
        "action": "paste",
    }
    context = operator_client.post(reverse("console:query-builder"), data).context
    state = context["state"]
    assert state.collection == "articles" and state.paste == ""
    assert state.root.items[1].items[1].field == "author.last_name"
    assert context["query"].to_query_string() == EXAMPLE_QS


def test_a_pasted_wrong_operator_is_kept_and_reported(operator_client, connection):
    data = {
        "connection": str(connection.pk),
        "collection": "articles",
        "paste": "filter[views][_contains]=12",
        "action": "paste",
    }
    response = operator_client.post(reverse("console:query-builder"), data)
    condition = response.context["state"].root.items[0]
    assert condition.op == "_contains" and not condition.op_valid
    assert "(not valid for integer)" in response.content.decode()


def test_an_unreadable_paste_says_why(operator_client, connection):
    data = {"connection": str(connection.pk), "paste": "filter[status][_eq=x", "action": "paste"}
    body = operator_client.post(reverse("console:query-builder"), data).content.decode()
    assert "The pasted text cannot be read" in body and "check its brackets" in body


def test_an_operator_saves_a_query_and_opens_it_again(operator_client, operator_user, connection):
    response = operator_client.post(
        reverse("console:query-save"), example_form(connection, name="Kn or popular")
    )
    saved = SavedQuery.objects.get()
    assert response.status_code == 302 and response["Location"].endswith(f"?saved={saved.pk}")
    assert (saved.name, saved.collection, saved.created_by) == (
        "Kn or popular",
        "articles",
        operator_user,
    )
    assert saved.query_string == EXAMPLE_QS

    page = operator_client.get(response["Location"])
    assert page.context["query"].to_query_string() == EXAMPLE_QS
    assert page.context["state"].name == "Kn or popular"
    assert "Kn or popular" in operator_client.get(reverse("console:saved-queries")).content.decode()

    # Saving the same name again updates it.
    operator_client.post(
        reverse("console:query-save"), example_form(connection, name="Kn or popular", limit="5")
    )
    assert SavedQuery.objects.get().query_string.endswith("limit=5")

    operator_client.post(reverse("console:saved-query-delete", args=[saved.pk]))
    assert not SavedQuery.objects.exists()


def test_saving_over_htmx_redirects_the_browser(operator_client, connection):
    response = operator_client.post(
        reverse("console:query-save"), example_form(connection, name="q"), HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200 and response["HX-Redirect"].endswith(
        f"?saved={SavedQuery.objects.get().pk}"
    )


def test_saving_needs_a_name_and_a_valid_query(operator_client, connection):
    response = operator_client.post(reverse("console:query-save"), example_form(connection))
    assert response.status_code == 400 and "Give the query a name" in response.content.decode()
    response = operator_client.post(
        reverse("console:query-save"),
        example_form(connection, name="bad", **{"f.1.0-op": "_contains"}),
    )
    assert "Not saved" in response.content.decode()
    assert not SavedQuery.objects.exists()


def test_the_schema_is_read_on_first_use_and_refreshed_on_request(
    operator_client, connection, monkeypatch
):
    calls = []

    def fake_refresh(self, include_system=False):
        calls.append(include_system)
        self.schema = SCHEMA
        return SCHEMA

    monkeypatch.setattr(DirectusConnection, "refresh_schema", fake_refresh)
    DirectusConnection.objects.filter(pk=connection.pk).update(schema=None)
    page = operator_client.get(reverse("console:query-builder"), {"connection": connection.pk})
    assert calls == [False] and "articles" in page.context["collections"]
    operator_client.post(reverse("console:query-schema-refresh"), {"connection": connection.pk})
    assert calls == [False, False]


def test_system_collections_are_hidden_unless_asked_for(operator_client, connection, monkeypatch):
    with_system = json.loads(json.dumps(SCHEMA))
    with_system["collections"]["directus_users"] = {
        "system": True,
        "primary_key": "id",
        "fields": {},
    }
    with_system["fetched_with_system"] = True
    monkeypatch.setattr(
        DirectusConnection, "refresh_schema", lambda self, include_system=False: with_system
    )
    DirectusConnection.objects.filter(pk=connection.pk).update(schema=with_system)
    url = reverse("console:query-builder")
    assert (
        "directus_users"
        not in operator_client.post(url, {"connection": connection.pk}).context["collections"]
    )
    shown = operator_client.post(url, {"connection": connection.pk, "show_system": "1"}).context[
        "collections"
    ]
    assert "directus_users" in shown


def test_a_schema_that_cannot_be_read_is_explained(operator_client, connection, monkeypatch):
    def failing(self, include_system=False):
        raise DirectusError("Invalid user credentials.", status=401, code="INVALID_CREDENTIALS")

    monkeypatch.setattr(DirectusConnection, "refresh_schema", failing)
    DirectusConnection.objects.filter(pk=connection.pk).update(schema=None)
    body = operator_client.get(
        reverse("console:query-builder"), {"connection": connection.pk}
    ).content.decode()
    assert "Could not read the schema: Directus rejected the token" in body


def test_open_with_a_query_string_link(viewer_client, connection):
    response = viewer_client.get(
        reverse("console:query-builder"),
        {"connection": connection.pk, "collection": "articles", "q": EXAMPLE_QS},
    )
    assert response.context["query"].to_query_string() == EXAMPLE_QS


def test_the_module_keeps_the_token_out_of_the_curl_command():
    assert "$DIRECTUS_TOKEN" in queries.curl_command("https://x/items/a?limit=1")


# -- who may read the schema from Directus; what a paste echoes ------------------------------


@pytest.fixture
def schema_reads(monkeypatch):
    calls = []

    def fake_refresh(self, include_system=False):
        calls.append(include_system)
        return SCHEMA

    monkeypatch.setattr(DirectusConnection, "refresh_schema", fake_refresh)
    return calls


def test_a_viewer_never_makes_kiln_read_the_schema_from_directus(
    viewer_client, connection, schema_reads
):
    url = reverse("console:query-builder")
    response = viewer_client.post(url, {"connection": connection.pk, "show_system": "1"})
    assert response.status_code == 200 and schema_reads == []
    assert "an operator can refresh it" in response.content.decode()
    connection.refresh_from_db()
    assert connection.schema == SCHEMA  # the cached schema is not rewritten
    DirectusConnection.objects.filter(pk=connection.pk).update(schema=None)
    response = viewer_client.get(url, {"connection": connection.pk})
    assert schema_reads == [] and "No schema is cached" in response.content.decode()
    assert viewer_client.post(reverse("console:query-schema-refresh")).status_code == 403


@pytest.mark.parametrize("fixture", ["operator_client", "admin_client"])
def test_an_operator_reads_system_collections_on_request(
    request, fixture, connection, schema_reads
):
    client = request.getfixturevalue(fixture)
    client.post(reverse("console:query-builder"), {"connection": connection.pk, "show_system": "1"})
    assert schema_reads == [True]


def test_an_outsider_cannot_open_the_builder_to_read_a_schema(client, connection, schema_reads):
    response = client.post(
        reverse("console:query-builder"), {"connection": connection.pk, "show_system": "1"}
    )
    assert response.status_code == 302 and schema_reads == []


@pytest.mark.parametrize("fixture", ["admin_client", "operator_client", "viewer_client"])
def test_a_huge_paste_is_not_echoed_back_whole(request, fixture, connection):
    client = request.getfixturevalue(fixture)
    pasted = "filter[title][_eq]=" + "x" * 1_000_000
    response = client.post(
        reverse("console:query-builder"),
        {"connection": connection.pk, "collection": "articles", "paste": pasted},
    )
    body = response.content.decode()
    assert response.status_code == 200
    assert len(body) < 200_000
    cut = len(pasted) - queries.PASTE_ECHO_CHARS
    assert (
        f"Only the first 10,000 characters of the pasted text are shown here; {cut:,} were cut"
        in body
    )
