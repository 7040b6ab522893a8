"""Field paths through a schema: the type at a path, and the choices for a field picker (pure)."""

import pytest

from integrations.directus.fieldpaths import field_choices, field_type
from tests.integrations.query_schema import SCHEMA


@pytest.mark.parametrize(
    "path, expected",
    [
        ("status", "string"),
        ("author", "integer"),
        ("author.first_name", "string"),
        ("categories", "alias"),
        ("categories.categories_id.name", "string"),
        ("year(published_at)", "integer"),
        ("author.articles.views", "integer"),
        ("author.compny", None),
        ("title.length", None),
        ("year(title)", None),
    ],
)
def test_field_type_walks_relations(path, expected):
    assert field_type(SCHEMA, "articles", path) == expected


def test_field_choices_walk_relations_for_the_picker():
    choices = dict(field_choices(SCHEMA, "articles"))

    assert choices["status"] == "string"
    assert choices["author.first_name"] == "string"
    assert choices["categories.categories_id.name"] == "string"
    assert choices["author.articles"] == "alias"
    # A relation back to a collection already on the path is listed, never walked into.
    assert "author.articles.title" not in choices
    assert "author.articles.author.email" not in choices


def test_field_choices_list_each_field_before_its_related_fields():
    paths = [path for path, _ in field_choices(SCHEMA, "leads", depth=1)]

    assert paths[:5] == ["id", "email", "first_name", "last_name", "company"]
    assert paths[5:10] == [
        "company.id",
        "company.name",
        "company.domain",
        "company.employees",
        "company.leads",
    ]
    assert "company.leads.email" not in paths


def test_field_choices_can_offer_functions():
    choices = field_choices(SCHEMA, "articles", depth=0, functions=True)

    assert ("year(published_at)", "integer") in choices
    assert ("second(date_created)", "integer") in choices
    assert ("count(categories)", "integer") in choices
    assert not any(path.startswith("year(views") for path, _ in choices)


def test_field_choices_stop_at_collections_outside_the_schema():
    assert ("owner", "uuid") in field_choices(SCHEMA, "venues")
    assert not any(path.startswith("owner.") for path, _ in field_choices(SCHEMA, "venues"))
