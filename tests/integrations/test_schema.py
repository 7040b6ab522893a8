"""build_schema on trimmed real answers of Directus 12.4 (fixtures/directus/, from the seeded harness)."""

import copy
import json
from pathlib import Path

import pytest

from integrations.directus.schema import build_schema, fetch_schema

FIXTURES = Path(__file__).parent / "fixtures" / "directus"


def load(name):
    return json.loads((FIXTURES / f"{name}.json").read_text())


@pytest.fixture(scope="module")
def raw():
    return load("collections"), load("fields"), load("relations")


@pytest.fixture(scope="module")
def schema(raw):
    return build_schema(*raw)


def fields_of(schema, collection):
    return schema["collections"][collection]["fields"]


def test_it_lists_user_collections_and_hides_system_ones(schema):
    assert set(schema["collections"]) == {
        "articles",
        "articles_categories",
        "authors",
        "categories",
        "companies",
        "leads",
    }
    assert schema["fetched_with_system"] is False


def test_it_includes_system_collections_when_asked(raw):
    schema = build_schema(*raw, include_system=True)
    users = schema["collections"]["directus_users"]
    assert users["system"] is True and users["primary_key"] == "id"
    assert users["note"] == ""  # "$t:directus_collection.directus_users" is a translation key
    assert users["fields"]["role"]["relation"] == {"kind": "m2o", "collection": "directus_roles"}
    assert schema["fetched_with_system"] is True


def test_it_accepts_answers_with_or_without_the_data_envelope(raw):
    bare = [answer["data"] for answer in raw]
    assert build_schema(*bare) == build_schema(*raw)


def test_collection_entries_have_the_agreed_shape(schema):
    articles = schema["collections"]["articles"]
    assert {k: v for k, v in articles.items() if k != "fields"} == {
        "primary_key": "id",
        "system": False,
        "singleton": False,
        "note": "",
    }


def test_the_primary_key_field(schema):
    assert fields_of(schema, "articles")["id"] == {
        "type": "integer",
        "required": False,
        "nullable": False,
        "readonly": True,
        "relation": None,
        "interface": "input",
        "special": [],
        "choices": None,
        "default": None,
    }


def test_choices_are_the_values_and_default_comes_from_the_column(schema):
    status = fields_of(schema, "articles")["status"]
    assert status["choices"] == ["published", "draft", "archived"]
    assert status["default"] == "draft"
    assert status["required"] is False  # NOT NULL, but the default fills it


def test_not_null_without_default_is_required_even_when_meta_required_is_false(schema):
    # Directus answers FAILED_VALIDATION "Value is required" for these (observed.md #43).
    assert fields_of(schema, "articles")["title"]["required"] is True
    assert fields_of(schema, "leads")["email"]["required"] is True
    assert fields_of(schema, "categories")["name"]["required"] is True
    assert fields_of(schema, "articles")["slug"]["required"] is False


def test_server_filled_fields_are_not_required(raw):
    collections, fields, relations = copy.deepcopy(raw)
    for row in fields["data"]:
        if (row["collection"], row["field"]) == ("leads", "date_created"):
            row["schema"]["is_nullable"] = False
    leads = build_schema(collections, fields, relations)["collections"]["leads"]["fields"]
    assert leads["date_created"]["required"] is False
    assert leads["date_created"]["readonly"] is True
    assert leads["date_created"]["special"] == ["date-created", "cast-timestamp"]


def test_types_come_through_as_directus_names_them(schema):
    articles = fields_of(schema, "articles")
    assert articles["price"]["type"] == "float"  # decimal(10,2) in the seed, float on SQLite
    assert articles["published_at"]["type"] == "dateTime"
    assert articles["date_created"]["type"] == "timestamp"
    leads = fields_of(schema, "leads")
    assert leads["enriched"]["type"] == "boolean" and leads["enriched"]["default"] is False
    assert leads["enrichment"]["type"] == "json"


def test_m2o(schema):
    assert fields_of(schema, "articles")["author"]["relation"] == {
        "kind": "m2o",
        "collection": "authors",
    }
    assert fields_of(schema, "leads")["company"]["relation"] == {
        "kind": "m2o",
        "collection": "companies",
    }


def test_o2m(schema):
    assert fields_of(schema, "authors")["articles"]["relation"] == {
        "kind": "o2m",
        "collection": "articles",
        "field": "author",
        "junction_field": None,
    }
    assert fields_of(schema, "companies")["leads"]["relation"]["collection"] == "leads"


def test_m2m_through_the_junction_from_both_sides(schema):
    assert fields_of(schema, "articles")["categories"]["relation"] == {
        "kind": "o2m",
        "collection": "articles_categories",
        "field": "articles_id",
        "junction_field": "categories_id",
    }
    assert fields_of(schema, "categories")["articles"]["relation"] == {
        "kind": "o2m",
        "collection": "articles_categories",
        "field": "categories_id",
        "junction_field": "articles_id",
    }
    junction = fields_of(schema, "articles_categories")
    assert junction["articles_id"]["relation"] == {"kind": "m2o", "collection": "articles"}
    assert junction["categories_id"]["relation"] == {"kind": "m2o", "collection": "categories"}


def test_alias_fields_are_nullable_and_have_no_default(schema):
    categories = fields_of(schema, "articles")["categories"]
    assert categories["type"] == "alias" and categories["special"] == ["m2m"]
    assert categories["nullable"] is True and categories["default"] is None


def test_a_relation_to_a_hidden_system_collection_is_kept(raw):
    collections, fields, relations = copy.deepcopy(raw)
    fields["data"].append(
        {
            "collection": "leads",
            "field": "owner",
            "type": "uuid",
            "schema": {"is_nullable": True, "default_value": None},
            "meta": {"special": ["m2o"], "interface": "select-dropdown-m2o"},
        }
    )
    relations["data"].append(
        {
            "collection": "leads",
            "field": "owner",
            "related_collection": "directus_users",
            "meta": {
                "many_collection": "leads",
                "many_field": "owner",
                "one_collection": "directus_users",
                "one_field": None,
            },
        }
    )
    schema = build_schema(collections, fields, relations)
    assert fields_of(schema, "leads")["owner"]["relation"] == {
        "kind": "m2o",
        "collection": "directus_users",
    }
    assert "directus_users" not in schema["collections"]


def test_folders_presentation_fields_and_m2a_are_handled():
    collections = [
        {"collection": "content", "meta": {"collection": "content"}, "schema": None},  # a folder
        {
            "collection": "pages",
            "meta": {"singleton": True, "note": "Site pages"},
            "schema": {"name": "pages"},
        },
        {"collection": "pages_blocks", "meta": None, "schema": {"name": "pages_blocks"}},
    ]
    fields = [
        {
            "collection": "pages",
            "field": "id",
            "type": "uuid",
            "schema": {"is_primary_key": True, "is_nullable": False},
            "meta": {"special": ["uuid"]},
        },
        {
            "collection": "pages",
            "field": "divider",
            "type": "alias",
            "schema": None,
            "meta": {"special": ["alias", "no-data"]},
        },
        {
            "collection": "pages",
            "field": "blocks",
            "type": "alias",
            "schema": None,
            "meta": {"special": "m2a"},
        },
        {
            "collection": "pages_blocks",
            "field": "id",
            "type": "integer",
            "schema": {"is_primary_key": True, "is_nullable": False, "has_auto_increment": True},
            "meta": None,
        },
        {
            "collection": "pages_blocks",
            "field": "item",
            "type": "string",
            "schema": {"is_nullable": True},
            "meta": None,
        },
    ]
    relations = [
        {
            "collection": "pages_blocks",
            "field": "item",
            "related_collection": None,
            "meta": {
                "many_collection": "pages_blocks",
                "many_field": "item",
                "one_collection": None,
                "one_allowed_collections": ["hero", "text"],
                "junction_field": "pages_id",
            },
        },
    ]
    schema = build_schema(collections, fields, relations)
    assert set(schema["collections"]) == {"pages", "pages_blocks"}
    pages = schema["collections"]["pages"]
    assert (pages["singleton"], pages["note"], pages["primary_key"]) == (True, "Site pages", "id")
    assert set(pages["fields"]) == {"id", "blocks"}
    assert pages["fields"]["id"]["required"] is False  # Directus generates the uuid
    assert pages["fields"]["blocks"]["special"] == ["m2a"]  # a Directus 9 CSV string
    blocks = schema["collections"]["pages_blocks"]
    assert blocks["fields"]["item"]["relation"] is None  # M2A: no single related collection
    assert blocks["fields"]["id"]["required"] is False


def test_fetch_schema_reads_the_three_answers_through_the_client(raw):
    class FakeClient:
        def collections(self):
            return raw[0]["data"]

        def fields(self):
            return raw[1]["data"]

        def relations(self):
            return raw[2]["data"]

    assert fetch_schema(FakeClient()) == build_schema(*raw)
