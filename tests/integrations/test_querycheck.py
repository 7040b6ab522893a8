"""Validating a query against the schema: what Directus would refuse, named by field and type.

Pure tests: no database, no HTTP.
"""

import pytest

from integrations.query.filters import Condition, Group, Query
from integrations.query.querycheck import Problem, validate
from tests.integrations.query_schema import SCHEMA


def parse(qs):
    return Query.from_query_string(qs)


def only(*items, logic="_and"):
    return Group(logic, items)


def problems_for(qs, collection="articles"):
    return validate(parse(qs).with_(collection=collection), SCHEMA)


def messages_for(qs, collection="articles"):
    return [p.message for p in problems_for(qs, collection)]


def test_a_sound_query_has_no_problems():
    qs = (
        "filter[status][_in]=published,archived&filter[author][first_name][_istarts_with]=gr"
        "&filter[categories][_some][categories_id][name][_eq]=Science"
        "&filter[published_at][_between]=2024-01-01,$NOW&filter[year(date_created)][_gte]=2024"
        "&filter[_or][0][views][_gt]=1000&filter[_or][1][price][_lte]=9.99"
        "&fields=*,author.*,categories.categories_id.name,count(categories)&sort=-views,author.last_name"
        "&limit=-1&offset=0&page=1&meta=filter_count,total_count"
        "&deep[categories][_filter][categories_id][name][_eq]=Science&deep[categories][_limit]=2"
    )

    assert problems_for(qs) == []


def test_it_names_an_unknown_field_on_the_related_collection():
    assert problems_for("filter[author][compny][_eq]=Acme") == [
        Problem("filter.0", "author.compny: authors has no field compny")
    ]


def test_it_refuses_to_step_through_a_field_that_is_not_a_relation():
    assert messages_for("filter[author][company][name][_eq]=Acme") == [
        "author.company.name: company in authors is a string field, not a relation as far as "
        "this token can see: if it points to another collection, this token cannot read that "
        "collection (Directus hides such relations from it)"
    ]


def test_it_rejects_operator_for_field_type():
    assert messages_for("filter[views][_contains]=1") == [
        "_contains is not valid for integer field views (allowed: _eq, _neq, _lt, _lte, _gt, _gte,"
        " _between, _nbetween, _null, _nnull, _in, _nin)"
    ]


def test_it_rejects_operators_directus_12_4_does_not_accept_on_any_type():
    assert messages_for("filter[title][_nicontains]=x")[0].startswith(
        "_nicontains is not valid for string field title"
    )
    assert messages_for("filter[title][_regex]=^a")[0].startswith(
        "_regex is not valid for string field title"
    )


def test_it_rejects_an_unknown_operator():
    assert messages_for("filter[title][_like]=x") == [
        "_like is not a Directus filter operator (on title)"
    ]


@pytest.mark.parametrize(
    "qs, message",
    [
        ("filter[views][_eq]=abc", "views is an integer field; 'abc' is not a whole number"),
        ("filter[views][_gt]=1.5", "views is an integer field; '1.5' is not a whole number"),
        ("filter[price][_lt]=cheap", "price is a decimal field; 'cheap' is not a number"),
        ("filter[enriched][_eq]=yes", "enriched is a boolean field; 'yes' is not true or false"),
        (
            "filter[published_at][_gt]=yesterday",
            "published_at is a dateTime field; 'yesterday' is not an ISO date or date-time"
            " (e.g. 2024-01-31 or 2024-01-31T09:30:00, or $NOW)",
        ),
        (
            "filter[founded][_eq]=31/01/2024",
            "founded is a date field; '31/01/2024' is not an ISO date (e.g. 2024-01-31 or $NOW)",
        ),
        (
            "filter[opens][_gt]=9am",
            "opens is a time field; '9am' is not an ISO time (e.g. 09:30:00)",
        ),
        ("filter[id][_eq]=42", "id is a uuid field; '42' is not a UUID"),
        (
            "filter[visitors][_in]=1,x",
            "visitors is a bigInteger field; 'x' is not a whole number",
        ),
        (
            "filter[status][_eq]=publshed",
            "status has the choices published, draft, archived; 'publshed' is not one of them",
        ),
        (
            "filter[title][_eq]=",
            "_eq on title has an empty value, which Directus refuses; use _empty or _nempty",
        ),
        ("filter[deleted_at][_null]=maybe", "_null on deleted_at takes true or false, not 'maybe'"),
        (
            "filter[views][_between]=1,2,3",
            "_between on views needs exactly 2 values (from, to), not 3",
        ),
        (
            "filter[year(published_at)][_eq]=abc",
            "year(published_at) is an integer field; 'abc' is not a whole number",
        ),
        (
            "filter[count(categories)][_gt]=many",
            "count(categories) is an integer field; 'many' is not a whole number",
        ),
    ],
)
def test_it_rejects_values_of_the_wrong_type(qs, message):
    home = {"founded": "venues", "opens": "venues", "id": "venues", "visitors": "venues"}
    home["enriched"] = "leads"
    collection = home.get(qs.split("[")[1].split("]")[0], "articles")

    assert messages_for(qs, collection) == [message]


@pytest.mark.parametrize(
    "qs",
    [
        "filter[views][_eq]=1000",
        "filter[views][_eq]=-3",
        "filter[price][_gte]=9.99",
        "filter[price][_gte]=1e3",
        "filter[author][_eq]=null",
        "filter[published_at][_gte]=2024-01-31",
        "filter[published_at][_gte]=2024-01-31T09:30:00Z",
        "filter[published_at][_gte]=2024-01-31 09:30",
        "filter[deleted_at][_lt]=2025-06-01T00:00:00.000Z",
        "filter[deleted_at][_contains]=2025",
        "filter[views][_eq]=null",
        "filter[title][_eq]=null",
        "filter[status][_nin]=draft",
        "filter[title][_contains]=100%",
    ],
)
def test_it_accepts_values_of_the_right_type(qs):
    assert problems_for(qs) == []


def test_it_reads_true_false_and_null_text_as_directus_does():
    assert messages_for("filter[enriched][_eq]=false", "leads") == []
    assert messages_for("filter[enriched][_neq]=true", "leads") == []
    assert messages_for("filter[views][_eq]=true") == [
        "views is an integer field; true is not a whole number"
    ]


def test_it_checks_typed_json_values_too():
    query = Query.from_json_filter(
        {"views": {"_gt": 10}, "price": {"_lt": 9.5}, "status": {"_in": ["draft"]}},
        collection="articles",
    )
    assert validate(query, SCHEMA) == []

    query = Query.from_json_filter(
        {"views": {"_gt": True}, "title": {"_in": []}}, collection="articles"
    )
    assert [p.message for p in validate(query, SCHEMA)] == [
        "views is an integer field; true is not a whole number",
        "_in on title needs at least one value",
    ]


def test_it_needs_a_list_for_list_operators():
    query = Query(collection="articles", filter=Condition("status", "_in", "draft"))

    assert [p.message for p in validate(query, SCHEMA)] == [
        "_in on status needs a list of values, not 'draft'"
    ]


@pytest.mark.parametrize(
    "collection, qs, message",
    [
        ("articles", "filter[published_at][_gte]=$NOW(-1 year)", None),
        ("articles", "filter[deleted_at][_lt]=$NOW", None),
        ("venues", "filter[founded][_lte]=$NOW(3 days)", None),
        ("venues", "filter[owner][_eq]=$CURRENT_USER", None),
        ("venues", "filter[id][_neq]=$CURRENT_ROLE", None),
        ("venues", "filter[owner][_in]=$CURRENT_ROLES", None),
        ("articles", "filter[views][_eq]=$CURRENT_USER.age", None),
        ("articles", "filter[title][_contains]=$100", None),
        (
            "articles",
            "filter[views][_gt]=$NOW",
            "$NOW is a date and time; views is an integer field",
        ),
        (
            "articles",
            "filter[published_at][_gt]=$NOW(-1 yeer)",
            "$NOW(-1 yeer): Directus cannot read '-1 yeer'; try $NOW(-1 year)",
        ),
        (
            "articles",
            "filter[published_at][_gt]=$NOWISH",
            "$NOWISH is not a dynamic value; use $NOW or $NOW(-1 year)",
        ),
        (
            "articles",
            "filter[views][_eq]=$CURRENT_USER",
            "$CURRENT_USER is an id (UUID); views is an integer field",
        ),
        (
            "venues",
            "filter[owner][_eq]=$CURRENT_ROLES",
            "$CURRENT_ROLES is a list of ids; use it with _in or _nin",
        ),
        (
            "venues",
            "filter[owner][_eq]=$CURRENT_TEAM",
            "$CURRENT_TEAM is not a dynamic value Directus knows"
            " ($CURRENT_USER, $CURRENT_ROLE, $CURRENT_ROLES, $CURRENT_POLICIES, $NOW)",
        ),
    ],
)
def test_it_checks_dynamic_values_against_the_field_type(collection, qs, message):
    assert messages_for(qs, collection) == ([message] if message else [])


def test_it_refuses_some_on_a_field_that_is_not_to_many():
    assert messages_for("filter[author][_some][first_name][_eq]=Ada") == [
        "_some needs a to-many relation; author is a many-to-one relation"
    ]
    assert messages_for("filter[title][_none][x][_eq]=1") == [
        "_none needs a to-many relation; title is a string field"
    ]


def test_it_refuses_some_reached_through_another_relation():
    assert messages_for("filter[company][leads][_some][score][_gt]=5", "leads") == [
        "_some must sit directly on a to-many field of leads, not on company.leads"
    ]


def test_it_validates_the_nested_filter_of_some_against_the_junction():
    problems = problems_for(
        "filter[status][_eq]=draft&filter[categories][_some][categories_id][nme][_eq]=Science"
    )

    assert problems == [
        Problem("filter.1.0", "categories.categories_id.nme: categories has no field nme")
    ]


def test_problem_paths_point_into_nested_groups():
    problems = problems_for("filter[_or][0][views][_gt]=1&filter[_or][1][_and][0][views][_lt]=x")

    assert problems == [
        Problem("filter.1.0", "views is an integer field; 'x' is not a whole number")
    ]


def test_an_alias_field_takes_only_some_none_or_count():
    # Directus 12.4 compares a bare alias by junction ids and refuses string operators on it.
    assert messages_for("filter[categories][_contains]=x") == [
        "_contains is not valid for categories (a many-to-many relation): filter it with _some "
        "or _none, or compare count(categories)"
    ]
    assert messages_for("filter[count(categories)][_eq]=0") == []


def test_it_refuses_a_function_that_does_not_apply_to_the_field():
    assert messages_for("filter[year(views)][_eq]=2024") == [
        "year(views): year() does not apply to integer field views"
    ]
    assert messages_for("filter[hour(published_at)][_eq]=3") == []
    assert messages_for("filter[count(categories)][_eq]=3") == []
    assert messages_for("filter[median(views)][_eq]=3") == [
        "median(views): median() is not a Directus function"
    ]
    assert messages_for("filter[second(founded)][_eq]=3", "venues") == [
        "second(founded): second() does not apply to date field founded; date fields take year,"
        " month, week, day, weekday"
    ]


def test_json_and_geometry_fields_take_their_own_operators():
    assert messages_for("filter[enrichment][_json][industry][_eq]=SaaS", "leads") == []
    assert messages_for("filter[enrichment][_contains]=SaaS", "leads") == [
        "_contains is not valid for json field enrichment (allowed: _null, _nnull, _json)"
    ]
    geo = '{"type":"Point","coordinates":[1,2]}'
    assert messages_for(f"filter[area][_intersects]={geo}", "venues") == []
    assert messages_for("filter[area][_intersects]=here", "venues") == [
        '_intersects on area needs a GeoJSON object, such as {"type": "Point", ...}'
    ]
    # Directus 12.4 gives typed geometry fields its default list, without _intersects.
    assert messages_for(f"filter[location][_intersects]={geo}", "venues")[0].startswith(
        "_intersects is not valid for geometry.Point field location"
    )
    assert messages_for("filter[secret][_eq]=x", "venues")[0].startswith(
        "_eq is not valid for hash field secret"
    )


def test_paths_leaving_the_schema_are_not_second_guessed():
    assert messages_for("filter[owner][email][_eq]=a@example.com", "venues") == []


def test_it_checks_fields_and_sort_paths():
    problems = problems_for(
        "fields=id,author.compny,title.*,author.*,*.*&sort=-views,author.nope,*"
    )

    assert problems == [
        Problem("fields.1", "author.compny: authors has no field compny"),
        Problem("fields.2", "title.*: title is not a relation, so it has no fields"),
        Problem("sort.1", "author.nope: authors has no field nope"),
        Problem("sort.2", "*: * cannot be used here"),
    ]


def test_it_checks_limit_offset_page_and_meta():
    query = Query(collection="articles", limit=-2, offset=-1, page=0, meta=("bogus", "*"))

    assert validate(query, SCHEMA) == [
        Problem("limit", "limit must be a whole number, -1 (all rows) or more; got -2"),
        Problem("offset", "offset must be a whole number, 0 or more; got -1"),
        Problem("page", "page must be a whole number, 1 or more (pages count from 1); got 0"),
        Problem("meta.0", "meta 'bogus' is not one of total_count, filter_count, *"),
        Problem("meta.1", "meta * means all counts; use it alone"),
    ]


def test_it_checks_deep_keys_and_their_filters():
    problems = problems_for(
        "deep[author][_limit]=2&deep[title][_limit]=1&deep[categories][_filter][categories_id][nme][_eq]=x"
    )

    assert problems == [
        Problem("deep.title", "deep: articles has no relational field title"),
        Problem(
            "deep.categories._filter.0",
            "categories_id.nme: categories has no field nme",
        ),
    ]


def test_it_names_an_unknown_collection():
    assert validate(Query(collection="articlez", limit=-5), SCHEMA) == [
        Problem("collection", "articlez is not a collection in this schema"),
        Problem("limit", "limit must be a whole number, -1 (all rows) or more; got -5"),
    ]
