"""Every operator the builder offers is one Directus takes, on a schema Kiln has never seen:
each field type of a uuid-keyed, capitalised collection, through an m2o
to a string-keyed collection and an m2m through a junction. Each one is sent."""

import pytest

from console.builder import (
    BuilderState,
    ConditionRow,
    GroupRow,
    state_from_query,
    state_to_query,
)
from integrations.directus import fieldpaths
from integrations.directus.client import DirectusClient, DirectusError
from integrations.directus.schema import fetch_schema
from integrations.outbound import http
from integrations.query import querycheck
from integrations.query.querycheck import validate
from tests.live.catalog import catalog_fixture, narrow_token

SAMPLE = {
    "string": "a",
    "text": "a",
    "integer": "1",
    "bigInteger": "1",
    "float": "1.5",
    "decimal": "1.5",
    "dateTime": "2024-01-01T00:00:00",
    "timestamp": "2024-01-01T00:00:00",
    "date": "2024-01-01",
    "time": "12:00:00",
    "boolean": "true",
    "uuid": "8171264a-8f69-4bca-a55c-4b113fa772c8",
    "json": '{"a": {"_eq": 1}}',
}


@pytest.fixture(scope="module")
def catalog(live_directus):
    yield from catalog_fixture(live_directus)


def client(url, token):
    policy = http.OutboundPolicy(allow_private=True)
    return DirectusClient(url, token, client=http.make_client(policy=policy, timeout=20))


@pytest.fixture(scope="module")
def admin(live_directus):
    with client(live_directus.url, live_directus.admin_token) as directus:
        yield directus


@pytest.fixture(scope="module")
def schema(admin, catalog):
    return fetch_schema(admin)


def row(path, op, ftype):
    value = "" if op in ("_some", "_none") else SAMPLE.get(ftype or "", "a")
    if op in ("_null", "_nnull", "_empty", "_nempty"):
        value = "true"
    if op in ("_in", "_nin"):
        value = f"{value},{value}"
    return ConditionRow(path, op, value, value2=value if op.endswith("between") else "")


def built(schema, collection, *rows, logic="_and"):
    state = BuilderState(collection=collection, root=GroupRow(logic, list(rows)))
    query, _, problems = state_to_query(state, schema)
    assert problems == [] and validate(query, schema) == [], (problems, validate(query, schema))
    return query


def count(directus, query) -> int:
    params = query.with_(limit=0, meta=("filter_count",)).to_params()
    return directus.list_items(query.collection, params).meta["filter_count"]


def test_every_operator_offered_on_every_field_is_accepted_by_directus(admin, schema, catalog):
    refused, sent = [], 0
    for collection in (catalog.products, catalog.suppliers):
        for path, _ in fieldpaths.field_choices(schema, collection, functions=True):
            ftype = fieldpaths.field_type(schema, collection, path)
            for op in fieldpaths.operators_for_field(schema, collection, path):
                query = built(schema, collection, row(path, op, ftype))
                try:
                    count(admin, query)
                    sent += 1
                except DirectusError as error:
                    refused.append(
                        f"{collection} {path} {op}: {query.to_query_string()} -> "
                        f"{error.status} {error.message}"
                    )
    assert refused == []
    assert sent > 300


def test_the_alias_fields_are_offered_only_some_and_none(schema, catalog):
    assert fieldpaths.operators_for_field(schema, catalog.products, "tags") == ["_some", "_none"]
    assert fieldpaths.operators_for_field(schema, catalog.suppliers, "products") == [
        "_some",
        "_none",
    ]
    paths = [p for p, _ in fieldpaths.field_choices(schema, catalog.products)]
    assert "supplier.products" in paths
    assert not any(p.startswith("supplier.products.") for p in paths)


def test_has_no_tags_built_by_clicking_returns_the_right_count(admin, schema, catalog):
    none = built(schema, catalog.products, ConditionRow("tags", "_none", ""))
    some = built(schema, catalog.products, ConditionRow("tags", "_some", ""))
    assert count(admin, none) == catalog.untagged
    assert count(admin, some) == catalog.tagged
    no_products = built(schema, catalog.suppliers, ConditionRow("products", "_none", ""))
    assert count(admin, no_products) == 0


def test_a_relation_the_token_cannot_read_is_explained_as_such(live_directus, catalog):
    actions = {
        catalog.products: ["read"],
        "directus_collections": ["read"],
        "directus_fields": ["read"],
        "directus_relations": ["read"],
    }
    with narrow_token(live_directus, actions) as token, client(live_directus.url, token) as narrow:
        narrow_schema = fetch_schema(narrow)
        state = BuilderState(
            collection=catalog.products,
            root=GroupRow("_and", [ConditionRow("supplier.name", "_eq", "Big")]),
        )
        query, _, _ = state_to_query(state, narrow_schema)
        [problem] = validate(query, narrow_schema)
        assert "this token cannot read that collection" in problem.message
        with pytest.raises(DirectusError) as refused:
            narrow.list_items(catalog.products, query.to_params())
    assert f'"{catalog.suppliers}"' in refused.value.explain()
    assert 'reached through "supplier"' in refused.value.explain()


# -- values Directus coerces, lists with commas (point 3) ----------------------------------


def test_a_filter_on_the_text_null_warns_because_directus_matches_something_else(
    admin, schema, catalog
):
    for text in ("null", "true", "false"):
        query = built(schema, catalog.products, ConditionRow("label", "_eq", text))
        [warning] = querycheck.warnings(query, schema)
        assert f'label _eq "{text}": Directus reads the text "{text}" as {text}' in (
            warning.message
        )
        # What the warning is about: Directus does not match the item labelled so.
        assert count(admin, query) == 0
        # The way out it names keeps the text.
        way_out = built(
            schema,
            catalog.products,
            ConditionRow("label", "_starts_with", text),
            ConditionRow("label", "_ends_with", text),
        )
        assert querycheck.warnings(way_out, schema) == []
        assert count(admin, way_out) == 1
    plain = built(schema, catalog.products, ConditionRow("label", "_eq", "plain"))
    assert querycheck.warnings(plain, schema) == [] and count(admin, plain) == 1


def test_a_comma_value_typed_into_in_as_a_json_list_matches_in_every_rendering(
    admin, schema, catalog
):
    row = ConditionRow("label", "_in", '["red, white & blue", "plain"]')
    query = built(schema, catalog.products, row)
    assert query.filter.items[0].value == ["red, white & blue", "plain"]
    # URL / Clay rows: indexed keys, one item each.
    assert ("filter[label][_in][0]", "red, white & blue") in query.to_params()
    assert count(admin, query) == 2
    # The JSON filter form, and the body of a SEARCH.
    json_params = query.with_(limit=0, meta=("filter_count",)).to_json_params()
    assert admin.list_items(catalog.products, json_params).meta["filter_count"] == 2
    searched = admin.search_items(
        catalog.products, {"filter": query.filter_json(), "limit": 0, "meta": ["filter_count"]}
    )
    assert searched.meta["filter_count"] == 2
    # Read back into the builder, the list shows as JSON again (a comma list would split it).
    state = state_from_query(query)
    assert state.root.items[0].value == '["red, white & blue", "plain"]'
