"""The query model: query string <-> model <-> JSON, operators per type, and validation.

Pure tests: no database, no HTTP. The schema fixture follows the harness seed
(/work/shared/directus/seed.py) in the shape the Directus introspection produces, plus a
`venues` collection that carries the field types the seed does not use.
"""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from integrations.filters import (
    FUNCTION_LABELS,
    GEOMETRY_OPS,
    LIST_OPS,
    LOGIC,
    OPERATOR_LABELS,
    RELATION_OPS,
    VALUELESS_OPS,
    Condition,
    Group,
    Problem,
    Query,
    QueryParseError,
    field_choices,
    field_type,
    filter_from_json,
    filter_to_json,
    operators_for_field,
    operators_for_type,
    validate,
)


def f(name, type_, relation=None, **extra):
    return {"type": type_, "required": False, "nullable": True, "relation": relation, **extra}


def m2o(collection):
    return {"kind": "m2o", "collection": collection}


def collection(fields, pk="id"):
    return {"primary_key": pk, "system": False, "singleton": False, "fields": fields}


SCHEMA = {
    "collections": {
        "articles": collection(
            {
                "id": f("id", "integer"),
                "status": f("status", "string", choices=["published", "draft", "archived"]),
                "title": f("title", "string"),
                "slug": f("slug", "string"),
                "content": f("content", "text"),
                "views": f("views", "integer"),
                "price": f("price", "decimal"),
                "published_at": f("published_at", "dateTime"),
                "deleted_at": f("deleted_at", "timestamp"),
                "author": f("author", "integer", m2o("authors")),
                "categories": f(
                    "categories",
                    "alias",
                    {
                        "kind": "o2m",
                        "collection": "articles_categories",
                        "field": "articles_id",
                        "junction_field": "categories_id",
                    },
                ),
                "date_created": f("date_created", "timestamp"),
                "date_updated": f("date_updated", "timestamp"),
            }
        ),
        "authors": collection(
            {
                "id": f("id", "integer"),
                "first_name": f("first_name", "string"),
                "last_name": f("last_name", "string"),
                "email": f("email", "string"),
                "company": f("company", "string"),
                "articles": f(
                    "articles",
                    "alias",
                    {"kind": "o2m", "collection": "articles", "field": "author"},
                ),
            }
        ),
        "categories": collection(
            {
                "id": f("id", "integer"),
                "name": f("name", "string"),
                "articles": f(
                    "articles",
                    "alias",
                    {
                        "kind": "o2m",
                        "collection": "articles_categories",
                        "field": "categories_id",
                        "junction_field": "articles_id",
                    },
                ),
            }
        ),
        "articles_categories": collection(
            {
                "id": f("id", "integer"),
                "articles_id": f("articles_id", "integer", m2o("articles")),
                "categories_id": f("categories_id", "integer", m2o("categories")),
            }
        ),
        "companies": collection(
            {
                "id": f("id", "integer"),
                "name": f("name", "string"),
                "domain": f("domain", "string"),
                "employees": f("employees", "integer"),
                "leads": f(
                    "leads", "alias", {"kind": "o2m", "collection": "leads", "field": "company"}
                ),
            }
        ),
        "leads": collection(
            {
                "id": f("id", "integer"),
                "email": f("email", "string"),
                "first_name": f("first_name", "string"),
                "last_name": f("last_name", "string"),
                "company": f("company", "integer", m2o("companies")),
                "enriched": f("enriched", "boolean"),
                "enrichment": f("enrichment", "json"),
                "score": f("score", "integer"),
                "date_created": f("date_created", "timestamp"),
                "date_updated": f("date_updated", "timestamp"),
            }
        ),
        "venues": collection(
            {
                "id": f("id", "uuid"),
                "owner": f("owner", "uuid", m2o("directus_users")),
                "location": f("location", "geometry.Point"),
                "area": f("area", "geometry"),
                "opens": f("opens", "time"),
                "founded": f("founded", "date"),
                "tags": f("tags", "csv"),
                "secret": f("secret", "hash"),
                "rating": f("rating", "float"),
                "visitors": f("visitors", "bigInteger"),
            }
        ),
    }
}


def parse(qs):
    return Query.from_query_string(qs)


def only(*items, logic="_and"):
    return Group(logic, items)


def problems_for(qs, collection="articles"):
    return validate(parse(qs).with_(collection=collection), SCHEMA)


def messages_for(qs, collection="articles"):
    return [p.message for p in problems_for(qs, collection)]


# ----------------------------------------------------------------------------- the brief's examples


def test_it_reads_and_writes_a_simple_condition():
    query = parse("filter[status][_eq]=published")

    assert query.filter == only(Condition("status", "_eq", "published"))
    assert query.to_params() == [("filter[status][_eq]", "published")]
    assert query.to_query_string() == "filter[status][_eq]=published"


def test_relational_paths_nest_one_bracket_per_step():
    query = parse("filter[author][company][name][_eq]=Acme")

    assert query.filter == only(Condition("author.company.name", "_eq", "Acme"))
    assert query.to_query_string() == "filter[author][company][name][_eq]=Acme"
    assert query.filter_json() == {"author": {"company": {"name": {"_eq": "Acme"}}}}


def test_a_top_level_or_is_written_with_indices():
    query = parse("filter[_or][0][views][_gt]=1000")

    assert query.filter == only(Condition("views", "_gt", "1000"), logic="_or")
    assert query.to_query_string() == "filter[_or][0][views][_gt]=1000"


@pytest.mark.parametrize(
    "qs, attribute, expected",
    [
        ("sort=-date_created,title", "sort", ("-date_created", "title")),
        ("fields=id,author.first_name", "fields", ("id", "author.first_name")),
        ("meta=filter_count", "meta", ("filter_count",)),
        ("fields=*.*", "fields", ("*.*",)),
        ("meta=*", "meta", ("*",)),
        ("limit=-1", "limit", -1),
        ("offset=10", "offset", 10),
        ("page=3", "page", 3),
        ("search=Directus", "search", "Directus"),
    ],
)
def test_query_parameters_read_and_write_back_exactly(qs, attribute, expected):
    query = parse(qs)

    assert getattr(query, attribute) == expected
    assert query.to_query_string() == qs


def test_deep_is_kept_as_the_raw_nested_dict():
    qs = "deep[categories][_filter][categories_id][name][_eq]=Science&deep[articles][_limit]=2"
    query = parse(qs)

    assert query.deep == {
        "categories": {"_filter": {"categories_id": {"name": {"_eq": "Science"}}}},
        "articles": {"_limit": "2"},
    }
    assert query.to_query_string() == qs


def test_the_json_filter_form_reads_into_the_same_model():
    from_json = parse('filter={"status":{"_eq":"published"}}')

    assert from_json.filter == parse("filter[status][_eq]=published").filter
    assert from_json.to_json_params() == [("filter", '{"status":{"_eq":"published"}}')]
    assert (
        from_json.to_query_string(json_filter=True)
        == "filter=%7B%22status%22:%7B%22_eq%22:%22published%22%7D%7D"
    )


def test_the_json_form_reads_percent_encoded_as_directus_logs_show_it():
    query = parse("filter=%7B%22status%22%3A%7B%22_eq%22%3A%22published%22%7D%7D&limit=1")

    assert query.filter == only(Condition("status", "_eq", "published"))
    assert query.limit == 1


def test_list_operators_are_comma_separated_in_the_query_string_and_arrays_in_json():
    query = parse(
        "filter[status][_in]=published,archived&filter[published_at][_between]=2024-01-01,2024-12-31"
    )

    assert query.filter == only(
        Condition("status", "_in", ["published", "archived"]),
        Condition("published_at", "_between", ["2024-01-01", "2024-12-31"]),
    )
    assert query.filter_json() == {
        "status": {"_in": ["published", "archived"]},
        "published_at": {"_between": ["2024-01-01", "2024-12-31"]},
    }
    assert query.to_query_string() == (
        "filter[status][_in]=published,archived"
        "&filter[published_at][_between]=2024-01-01,2024-12-31"
    )


def test_some_wraps_a_nested_filter_over_the_related_collection():
    query = parse("filter[categories][_some][categories_id][name][_eq]=Science")

    nested = only(Condition("categories_id.name", "_eq", "Science"))
    assert query.filter == only(Condition("categories", "_some", nested))
    assert query.filter_json() == {
        "categories": {"_some": {"categories_id": {"name": {"_eq": "Science"}}}}
    }
    assert query.to_query_string() == "filter[categories][_some][categories_id][name][_eq]=Science"


def test_none_with_an_or_inside_round_trips():
    qs = "filter[categories][_none][_or][0][categories_id][name][_eq]=Science&filter[categories][_none][_or][1][categories_id][name][_eq]=Sports"
    query = parse(qs)

    nested = only(
        Condition("categories_id.name", "_eq", "Science"),
        Condition("categories_id.name", "_eq", "Sports"),
        logic="_or",
    )
    assert query.filter == only(Condition("categories", "_none", nested))
    assert query.to_query_string() == qs


def test_some_with_no_conditions_means_has_any_related_item():
    query = Query(filter=Condition("categories", "_some", Group("_and", ())))

    assert query.to_params() == [("filter[categories][_some]", "")]
    assert query.filter_json() == {"categories": {"_some": {}}}
    assert parse(query.to_query_string()) == query
    assert Query.from_json_filter(query.filter_json()) == query


def test_a_whole_query_is_written_in_canonical_order():
    query = Query(
        collection="articles",
        deep={"articles": {"_limit": "2"}},
        meta=("filter_count",),
        search="Directus",
        page=2,
        offset=10,
        limit=5,
        sort=("-date_created", "title"),
        fields=("id", "author.first_name"),
        filter=Condition("status", "_eq", "published"),
    )

    assert query.to_query_string() == (
        "filter[status][_eq]=published&fields=id,author.first_name&sort=-date_created,title"
        "&limit=5&offset=10&page=2&search=Directus&meta=filter_count&deep[articles][_limit]=2"
    )
    assert query.to_url("https://cms.example.com/") == (
        "https://cms.example.com/items/articles?" + query.to_query_string()
    )


# ----------------------------------------------------------------------------- canonical filter forms


def test_several_top_level_conditions_are_an_implicit_and():
    query = parse("filter[status][_eq]=published&filter[views][_gt]=5")

    assert query.filter == only(
        Condition("status", "_eq", "published"), Condition("views", "_gt", "5")
    )


def test_an_explicit_top_level_and_reads_as_the_flat_form_and_writes_flat():
    explicit = parse("filter[_and][0][status][_eq]=published&filter[_and][1][views][_gt]=5")

    assert explicit.filter == parse("filter[status][_eq]=published&filter[views][_gt]=5").filter
    assert explicit.to_query_string() == "filter[status][_eq]=published&filter[views][_gt]=5"


def test_conditions_sharing_a_first_key_are_written_with_an_explicit_and():
    query = Query(
        filter=only(Condition("views", "_gt", "1"), Condition("views", "_lt", "9")),
    )

    assert query.to_query_string() == "filter[_and][0][views][_gt]=1&filter[_and][1][views][_lt]=9"
    assert query.filter_json() == {"_and": [{"views": {"_gt": "1"}}, {"views": {"_lt": "9"}}]}
    assert parse(query.to_query_string()) == query


def test_two_operators_on_one_field_read_as_two_conditions():
    group = filter_from_json({"views": {"_gt": 1, "_lt": 9}})

    assert group == only(Condition("views", "_gt", 1), Condition("views", "_lt", 9))


def test_two_fields_through_one_relation_read_as_two_conditions():
    group = filter_from_json({"author": {"first_name": {"_eq": "Ada"}, "email": {"_nnull": True}}})

    assert group == only(
        Condition("author.first_name", "_eq", "Ada"), Condition("author.email", "_nnull", True)
    )


def test_logic_under_a_relation_is_shifted_up_as_directus_does():
    group = filter_from_json(
        {"author": {"_or": [{"first_name": {"_eq": "Ada"}}, {"id": {"_eq": 3}}]}}
    )

    assert group == only(
        Condition("author.first_name", "_eq", "Ada"), Condition("author.id", "_eq", 3), logic="_or"
    )


def test_a_lone_nested_group_is_written_inside_an_explicit_and():
    inner = only(Condition("views", "_gt", "1"), Condition("title", "_null", True), logic="_or")
    query = Query(filter=only(inner))

    assert query.to_query_string() == (
        "filter[_and][0][_or][0][views][_gt]=1&filter[_and][0][_or][1][title][_null]=true"
    )
    assert parse(query.to_query_string()) == query


def test_a_condition_next_to_an_or_group_is_written_flat():
    qs = "filter[status][_eq]=published&filter[_or][0][views][_gt]=1000&filter[_or][1][title][_contains]=Directus"
    query = parse(qs)

    assert query.filter == only(
        Condition("status", "_eq", "published"),
        only(
            Condition("views", "_gt", "1000"),
            Condition("title", "_contains", "Directus"),
            logic="_or",
        ),
    )
    assert query.to_query_string() == qs


def test_or_inside_and_inside_or_nests_explicitly_in_both_forms():
    tree = only(
        Condition("status", "_eq", "draft"),
        only(
            only(
                Condition("views", "_gt", "1000"),
                Condition("author.last_name", "_eq", "Hopper"),
                logic="_or",
            ),
            Condition("published_at", "_nnull", True),
        ),
        logic="_or",
    )
    query = Query(filter=tree)

    assert query.to_params() == [
        ("filter[_or][0][status][_eq]", "draft"),
        ("filter[_or][1][_and][0][_or][0][views][_gt]", "1000"),
        ("filter[_or][1][_and][0][_or][1][author][last_name][_eq]", "Hopper"),
        ("filter[_or][1][_and][1][published_at][_nnull]", "true"),
    ]
    assert query.filter_json() == {
        "_or": [
            {"status": {"_eq": "draft"}},
            {
                "_and": [
                    {
                        "_or": [
                            {"views": {"_gt": "1000"}},
                            {"author": {"last_name": {"_eq": "Hopper"}}},
                        ]
                    },
                    {"published_at": {"_nnull": True}},
                ]
            },
        ]
    }
    assert parse(query.to_query_string()) == query
    assert Query.from_json_filter(query.filter_json()) == query


def test_an_or_element_with_several_keys_is_an_and_group():
    group = filter_from_json({"_or": [{"status": {"_eq": "draft"}, "views": {"_gt": 5}}]})

    assert group == only(
        only(Condition("status", "_eq", "draft"), Condition("views", "_gt", 5)), logic="_or"
    )


def test_the_eq_shorthand_is_read_but_written_with_its_operator():
    query = parse("filter[status]=published")

    assert query.filter == only(Condition("status", "_eq", "published"))
    assert query.to_query_string() == "filter[status][_eq]=published"


def test_empty_nested_groups_survive_only_the_json_form():
    group = only(Condition("status", "_eq", "x"), Group("_or", ()))

    assert filter_to_json(group) == {"status": {"_eq": "x"}, "_or": []}
    assert filter_from_json(filter_to_json(group)) == group


def test_an_empty_filter_is_none():
    assert Query(filter=Group("_and", ())).filter is None
    assert Query(filter=Group("_or", ())).filter is None
    assert filter_from_json({}) is None
    assert parse("filter=").filter is None
    assert parse("").filter is None


# ----------------------------------------------------------------------------- every operator


def sample_value(op):
    if op in VALUELESS_OPS:
        return True
    if op in ("_between", "_nbetween"):
        return ["10", "20"]
    if op in LIST_OPS:
        return ["a", "b"]
    if op in GEOMETRY_OPS:
        return {"type": "Point", "coordinates": [4.9, 52.37]}
    if op == "_json":
        return {"color": {"_eq": "blue"}}
    return "abc"


PLAIN_OPS = [op for op in OPERATOR_LABELS if op not in RELATION_OPS]

EXPECTED_ROWS = {
    "_null": [("filter[f][_null]", "true")],
    "_in": [("filter[f][_in]", "a,b")],
    "_between": [("filter[f][_between]", "10,20")],
    "_intersects": [("filter[f][_intersects]", '{"type":"Point","coordinates":[4.9,52.37]}')],
    "_json": [("filter[f][_json][color][_eq]", "blue")],
    "_eq": [("filter[f][_eq]", "abc")],
}


def test_the_operator_list_is_complete():
    brief = (
        "_eq _neq _lt _lte _gt _gte _in _nin _null _nnull _contains _ncontains _icontains"
        " _nicontains _starts_with _nstarts_with _istarts_with _nistarts_with _ends_with"
        " _nends_with _iends_with _niends_with _between _nbetween _empty _nempty _intersects"
        " _nintersects _intersects_bbox _nintersects_bbox _regex _some _none"
    ).split()

    assert set(brief) <= set(OPERATOR_LABELS)
    assert set(OPERATOR_LABELS) - set(brief) == {"_json"}  # Directus 12.4's JSON-path operator


@pytest.mark.parametrize("op", PLAIN_OPS)
def test_every_operator_round_trips_in_both_forms(op):
    query = Query(filter=Condition("f", op, sample_value(op)))

    rows = query.to_params()
    assert rows == EXPECTED_ROWS.get(op, rows)
    assert rows[0][0].startswith(f"filter[f][{op}]")
    assert parse(query.to_query_string()) == query
    assert query.filter_json() == {"f": {op: sample_value(op)}}
    assert Query.from_json_filter(json.loads(json.dumps(query.filter_json()))) == query


@pytest.mark.parametrize("op", RELATION_OPS)
def test_relation_operators_round_trip_in_both_forms(op):
    query = Query(filter=Condition("categories", op, only(Condition("categories_id", "_eq", "3"))))

    assert query.to_params() == [(f"filter[categories][{op}][categories_id][_eq]", "3")]
    assert parse(query.to_query_string()) == query
    assert Query.from_json_filter(query.filter_json()) == query


@pytest.mark.parametrize(
    "qs, value",
    [
        ("filter[deleted_at][_null]=true", True),
        ("filter[deleted_at][_null]", True),
        ("filter[deleted_at][_null]=", True),
        ("filter[deleted_at][_null]=false", False),
    ],
)
def test_valueless_operators_read_true_and_false(qs, value):
    assert parse(qs).filter == only(Condition("deleted_at", "_null", value))


def test_valueless_operators_take_true_when_given_no_value():
    assert Condition("deleted_at", "_empty").value is True
    assert filter_from_json({"deleted_at": {"_nnull": None}}) == only(
        Condition("deleted_at", "_nnull", True)
    )


def test_a_list_element_holding_a_comma_is_written_with_indices():
    query = Query(filter=Condition("title", "_in", ["Hello, world", "Other"]))

    assert query.to_params() == [
        ("filter[title][_in][0]", "Hello, world"),
        ("filter[title][_in][1]", "Other"),
    ]
    assert parse(query.to_query_string()) == query


def test_list_operators_read_a_single_value_and_qs_objects_as_lists():
    assert parse("filter[status][_in]=draft").filter == only(Condition("status", "_in", ["draft"]))
    assert filter_from_json({"status": {"_nin": "a,b"}}) == only(
        Condition("status", "_nin", ["a", "b"])
    )
    assert filter_from_json({"id": {"_in": 5}}) == only(Condition("id", "_in", [5]))


def test_geometry_values_are_read_from_json_text():
    qs = 'filter[area][_intersects_bbox]={"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,0]]]}'

    value = parse(qs).filter.items[0].value
    assert value == {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]}


# ----------------------------------------------------------------------------- functions and dynamic values


@pytest.mark.parametrize(
    "qs, path",
    [
        ("filter[year(published_at)][_eq]=2024", "year(published_at)"),
        ("filter[month(published_at)][_gte]=6", "month(published_at)"),
        ("filter[week(date_created)][_eq]=12", "week(date_created)"),
        ("filter[day(date_created)][_eq]=1", "day(date_created)"),
        ("filter[weekday(date_created)][_eq]=1", "weekday(date_created)"),
        ("filter[hour(date_created)][_lt]=9", "hour(date_created)"),
        ("filter[minute(date_created)][_eq]=30", "minute(date_created)"),
        ("filter[second(date_created)][_eq]=0", "second(date_created)"),
        ("filter[count(categories)][_gt]=2", "count(categories)"),
        ("filter[author][year(date_created)][_eq]=2024", "author.year(date_created)"),
    ],
)
def test_functions_are_field_keys(qs, path):
    query = parse(qs)

    assert query.filter.items[0].field == path
    assert query.to_query_string() == qs
    assert validate(query.with_(collection="articles"), SCHEMA) == [] or path.startswith("author.")


@pytest.mark.parametrize(
    "value, encoded",
    [
        ("$NOW", "$NOW"),
        ("$NOW(-1 year)", "$NOW(-1%20year)"),
        ("$NOW(+2 hours)", "$NOW(%2B2%20hours)"),
        ("$CURRENT_USER", "$CURRENT_USER"),
        ("$CURRENT_ROLE", "$CURRENT_ROLE"),
        ("$CURRENT_USER.email", "$CURRENT_USER.email"),
    ],
)
def test_dynamic_values_are_kept_as_written(value, encoded):
    query = Query(filter=Condition("published_at", "_gte", value))

    assert query.to_query_string() == f"filter[published_at][_gte]={encoded}"
    assert parse(query.to_query_string()) == query


# ----------------------------------------------------------------------------- types and encoding


def test_the_json_form_keeps_numbers_while_the_query_string_gives_text():
    from_json = Query.from_json_filter({"views": {"_gt": 1000}})
    from_qs = parse("filter[views][_gt]=1000")

    assert from_json.filter == only(Condition("views", "_gt", 1000))
    assert from_qs.filter == only(Condition("views", "_gt", "1000"))
    assert from_json.to_query_string() == from_qs.to_query_string()
    assert parse(from_json.to_query_string(json_filter=True)) == from_json


def test_typed_values_are_written_in_json_spelling():
    query = Query(
        filter=only(
            Condition("views", "_gt", 1000),
            Condition("price", "_lt", 9.5),
            Condition("enriched", "_eq", True),
            Condition("author", "_eq", None),
            Condition("id", "_in", [1, 2]),
        )
    )

    assert [value for _, value in query.to_params()] == ["1000", "9.5", "true", "null", "1,2"]


def test_values_are_percent_encoded_like_a_browser_but_brackets_stay_readable():
    query = Query(
        filter=Condition("title", "_contains", 'a+b & c=d #1 "50%"'),
        search="café, crème",
        fields=("*", "author.*"),
    )

    assert query.to_query_string() == (
        "filter[title][_contains]=a%2Bb%20%26%20c%3Dd%20%231%20%2250%25%22"
        "&fields=*,author.*&search=caf%C3%A9,%20cr%C3%A8me"
    )
    assert parse(query.to_query_string()) == query


def test_a_plus_in_a_pasted_query_string_is_a_space_as_directus_reads_it():
    assert parse("search=hello+world").search == "hello world"


def test_a_whole_url_gives_the_collection_too():
    query = parse("https://cms.example.com/items/articles?filter[status][_eq]=draft&limit=2#top")

    assert query.collection == "articles"
    assert query.limit == 2
    assert query.filter == only(Condition("status", "_eq", "draft"))


def test_a_leading_question_mark_is_ignored_and_a_question_mark_in_a_value_is_kept():
    assert parse("?limit=5").limit == 5
    assert parse("search=what?").search == "what?"


def test_clay_rows_with_stray_spaces_around_the_key_are_read():
    rows = [(" filter[status][_eq] ", "published"), ("limit ", "5")]

    assert Query.from_params(rows) == Query(filter=Condition("status", "_eq", "published"), limit=5)


def test_array_forms_of_fields_sort_and_meta_are_read():
    query = parse("fields[]=id&fields[]=title&sort[]=-views&meta=total_count,filter_count")

    assert query.fields == ("id", "title")
    assert query.sort == ("-views",)
    assert query.meta == ("total_count", "filter_count")
    assert query.to_query_string() == "fields=id,title&sort=-views&meta=total_count,filter_count"


def test_fields_are_trimmed_and_functions_keep_their_commas():
    assert parse("fields=id, title,,count(categories)").fields == (
        "id",
        "title",
        "count(categories)",
    )


def test_a_limit_that_is_not_a_number_is_kept_for_validation_to_report():
    query = parse("limit=abc")

    assert query.limit == "abc"
    assert validate(query.with_(collection="articles"), SCHEMA) == [
        Problem("limit", "limit must be a whole number, -1 (all rows) or more; got 'abc'")
    ]


def test_deep_can_be_json():
    query = parse('deep={"articles":{"_limit":2}}')

    assert query.deep == {"articles": {"_limit": 2}}
    assert query.to_json_params() == [("deep", '{"articles":{"_limit":2}}')]


def test_the_model_normalises_loose_input():
    query = Query(
        filter=Condition("status", "_eq", "x"), fields="id, title", sort=["-views"], deep=None
    )

    assert query.filter == only(Condition("status", "_eq", "x"))
    assert query.fields == ("id", "title")
    assert query.sort == ("-views",)
    assert query.deep == {}


def test_with_returns_a_changed_copy():
    query = parse("filter[status][_eq]=draft")

    changed = query.with_(limit=5, collection="articles")
    assert (changed.limit, changed.collection, changed.filter) == (5, "articles", query.filter)
    assert query.limit is None


def test_the_model_refuses_impossible_shapes():
    with pytest.raises(ValueError):
        Group("_xor", ())
    with pytest.raises(TypeError):
        Group("_and", ("status",))
    with pytest.raises(ValueError):
        Condition("status", "_and", [])


@pytest.mark.parametrize(
    "qs, message",
    [
        ("filter[_eq]=x", "the operator _eq needs a field before it"),
        ("filter[status][_eq=x", "is not a valid parameter name"),
        ("filter[status][_eq]=a&filter[status][_eq]=b", "given more than once"),
        ("filter[status]=a&filter[status][_eq]=b", "clashes"),
        ("filter={nope", "filter is not valid JSON"),
        ("filter=[1]", "filter must be a JSON object"),
        ("filter={}&filter[status][_eq]=x", "given as JSON and also in another row"),
        ("filter[_or]=x", "_or needs a list of conditions"),
        ("filter[_or][0]=x", "not a condition object"),
        ("filter[categories][_some]=x", "_some needs a nested filter"),
        ("filter[status][0]=x", "needs an operator, such as _in, before a list"),
        ("filter[0][status][_eq]=x", "must start with a field name"),
        ("limit=1&limit=2", "limit must be given once"),
        ("aggregate[count]=*", "'aggregate' is not a query parameter"),
        ("access_token=secret", "access_token does not belong in a saved query"),
        ("deep=[1]", "deep must be a JSON object"),
    ],
)
def test_unreadable_input_raises_a_parse_error_saying_where(qs, message):
    with pytest.raises(QueryParseError, match=message.replace("[", r"\[").replace("(", r"\(")):
        parse(qs)


# ----------------------------------------------------------------------------- operators per type


STRING_OPS = [
    "_contains", "_ncontains", "_icontains", "_starts_with", "_nstarts_with", "_istarts_with",
    "_nistarts_with", "_ends_with", "_nends_with", "_iends_with", "_niends_with", "_eq", "_neq",
    "_empty", "_nempty", "_null", "_nnull", "_in", "_nin",
]  # fmt: skip
RANGE_OPS = [
    "_eq", "_neq", "_lt", "_lte", "_gt", "_gte", "_between", "_nbetween", "_null", "_nnull",
    "_in", "_nin",
]  # fmt: skip
DEFAULT_OPS = [
    "_contains", "_ncontains", "_eq", "_neq", "_lt", "_lte", "_gt", "_gte", "_between",
    "_nbetween", "_empty", "_nempty", "_null", "_nnull", "_in", "_nin",
]  # fmt: skip
GEOMETRY_LIST = [
    "_eq", "_neq", "_null", "_nnull", "_intersects", "_nintersects", "_intersects_bbox",
    "_nintersects_bbox",
]  # fmt: skip


@pytest.mark.parametrize(
    "field_type_, expected",
    [
        ("string", STRING_OPS),
        ("text", STRING_OPS),
        ("csv", STRING_OPS),
        ("binary", STRING_OPS),
        ("uuid", ["_eq", "_neq", "_null", "_nnull", "_in", "_nin"]),
        ("hash", ["_empty", "_nempty", "_null", "_nnull"]),
        ("integer", RANGE_OPS),
        ("bigInteger", RANGE_OPS),
        ("float", RANGE_OPS),
        ("decimal", RANGE_OPS),
        ("date", RANGE_OPS),
        ("dateTime", RANGE_OPS),
        ("time", RANGE_OPS),
        ("boolean", ["_eq", "_neq", "_null", "_nnull"]),
        ("json", ["_null", "_nnull", "_json"]),
        ("geometry", GEOMETRY_LIST),
        # Not in Directus's switch, so they get its default list (Studio and API alike).
        ("timestamp", DEFAULT_OPS),
        ("geometry.Point", DEFAULT_OPS),
        ("alias", DEFAULT_OPS),
    ],
)
def test_operators_for_type_follow_directus_12_4(field_type_, expected):
    assert operators_for_type(field_type_) == expected


def test_every_offered_operator_has_a_label():
    offered = {op for t in ("string", "json", "geometry", "alias") for op in operators_for_type(t)}

    assert offered <= set(OPERATOR_LABELS)
    assert OPERATOR_LABELS["_neq"] == "Doesn't equal"
    assert OPERATOR_LABELS["_in"] == "Is one of"
    assert OPERATOR_LABELS["_icontains"] == "Contains (insensitive)"
    assert FUNCTION_LABELS["weekday"] == "Weekday"


def test_operators_for_field_use_the_key_type_for_to_many_fields_and_add_some_and_none():
    assert operators_for_field(SCHEMA, "articles", "categories") == RANGE_OPS + ["_some", "_none"]
    assert operators_for_field(SCHEMA, "articles", "author") == RANGE_OPS
    assert operators_for_field(SCHEMA, "articles", "author.articles") == RANGE_OPS  # not direct
    assert operators_for_field(SCHEMA, "articles", "author.first_name") == STRING_OPS
    assert operators_for_field(SCHEMA, "articles", "year(published_at)") == RANGE_OPS
    assert operators_for_field(SCHEMA, "articles", "count(categories)") == RANGE_OPS
    assert operators_for_field(SCHEMA, "articles", "nope") == []


# ----------------------------------------------------------------------------- schema helpers


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
    assert choices["author.articles.author.email"] == "string"
    assert "author.articles.author.articles.id" not in choices  # three hops is the default


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


# ----------------------------------------------------------------------------- validation


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
        "author.company.name: company in authors is a string field, not a relation"
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


def test_an_alias_field_compared_directly_uses_its_key_type():
    assert messages_for("filter[categories][_null]=true") == []
    assert messages_for("filter[categories][_contains]=x") == [
        "_contains is not valid for categories (a many-to-many relation, compared by its integer"
        " key) (allowed: _eq, _neq, _lt, _lte, _gt, _gte, _between, _nbetween, _null, _nnull, _in,"
        " _nin)"
    ]


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


# ----------------------------------------------------------------------------- properties

NAMES = st.sampled_from(
    ["status", "title", "views", "author", "company", "name", "published_at", "categories_id"]
) | st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True)
FUNCTION_KEYS = st.sampled_from(["year(published_at)", "month(date_created)", "count(categories)"])
PATHS = st.lists(NAMES, min_size=1, max_size=3).map(".".join) | st.builds(
    lambda prefix, fn: ".".join([*prefix, fn]), st.lists(NAMES, max_size=2), FUNCTION_KEYS
)
TEXT = st.text(max_size=12)
GEOJSON = st.fixed_dictionaries(
    {
        "type": st.just("Point"),
        "coordinates": st.lists(
            st.floats(allow_nan=False, allow_infinity=False), min_size=2, max_size=2
        ),
    }
)
JSON_PATHS = st.from_regex(r"[a-z][a-z.]{0,8}", fullmatch=True)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(10**15), 10**15)
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT
)


def qs_value(op):
    """Values a query string carries exactly: text, except where the module says otherwise."""
    if op in VALUELESS_OPS:
        return st.booleans()
    if op in LIST_OPS:
        return st.lists(TEXT, min_size=1, max_size=4)
    if op in GEOMETRY_OPS:
        return GEOJSON
    if op == "_json":
        inner = st.dictionaries(st.sampled_from(["_eq", "_contains"]), TEXT, min_size=1, max_size=1)
        return st.dictionaries(JSON_PATHS, inner, min_size=1, max_size=2)
    return TEXT


def json_value(op):
    """Any JSON value the JSON form carries exactly."""
    if op in VALUELESS_OPS:
        return st.booleans()
    if op in LIST_OPS:
        return st.lists(SCALARS, max_size=4)
    if op in GEOMETRY_OPS:
        return GEOJSON | st.none()
    if op == "_json":
        inner = st.dictionaries(st.sampled_from(["_eq", "_gt"]), SCALARS, min_size=1, max_size=1)
        return st.dictionaries(JSON_PATHS, inner, min_size=1, max_size=2)
    return SCALARS


def filters(value_for, min_items):
    condition = st.sampled_from(PLAIN_OPS).flatmap(
        lambda op: st.builds(Condition, PATHS, st.just(op), value_for(op))
    )

    def extend(children):
        group = st.builds(
            Group, st.sampled_from(LOGIC), st.lists(children, min_size=min_items, max_size=3)
        )
        related = st.builds(Condition, NAMES, st.sampled_from(RELATION_OPS), group)
        return group | related

    tree = st.recursive(condition, extend, max_leaves=8)
    return st.builds(Group, st.sampled_from(LOGIC), st.lists(tree, min_size=1, max_size=4))


FIELD_PATHS = PATHS | st.sampled_from(["*", "*.*", "author.*"])
DEEP = st.recursive(
    TEXT,
    lambda children: st.dictionaries(
        NAMES | st.sampled_from(["_limit", "_sort", "_filter"]), children, min_size=1, max_size=3
    ),
    max_leaves=6,
).filter(lambda value: isinstance(value, dict))


def queries(value_for, min_items, deep):
    return st.builds(
        Query,
        filter=st.none() | filters(value_for, min_items),
        fields=st.lists(FIELD_PATHS, max_size=3).map(tuple),
        sort=st.lists(
            st.builds(lambda minus, p: minus + p, st.sampled_from(["", "-"]), PATHS), max_size=2
        ).map(tuple),
        limit=st.none() | st.integers(-5, 10**6),
        offset=st.none() | st.integers(0, 10**6),
        page=st.none() | st.integers(0, 10**4),
        search=TEXT,
        meta=st.lists(st.sampled_from(["total_count", "filter_count", "*"]), max_size=2).map(tuple),
        deep=st.just({}) | deep,
    )


QS_QUERIES = queries(qs_value, min_items=1, deep=DEEP)
JSON_QUERIES = queries(
    json_value,
    min_items=0,
    deep=st.dictionaries(
        NAMES, st.dictionaries(st.just("_limit"), st.integers(), min_size=1), max_size=2
    ),
)
PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(QS_QUERIES)
def test_model_to_query_string_to_model_is_exact(query):
    assert Query.from_query_string(query.to_query_string()) == query
    assert Query.from_params(query.to_params()) == query


@PROPERTY
@given(QS_QUERIES)
def test_canonical_query_strings_parse_and_write_back_unchanged(query):
    canonical = query.to_query_string()

    assert Query.from_query_string(canonical).to_query_string() == canonical


@PROPERTY
@given(filters(json_value, min_items=0))
def test_model_to_json_to_model_is_exact(group):
    text = json.dumps(filter_to_json(group))

    assert filter_from_json(json.loads(text)) == (group if group.items else None)
    assert Query.from_json_filter(text) == Query(filter=group)


@PROPERTY
@given(JSON_QUERIES)
def test_json_params_keep_types_for_the_whole_query(query):
    assert Query.from_params(query.to_json_params()) == query
    assert Query.from_query_string(query.to_query_string(json_filter=True)) == query


@PROPERTY
@given(
    st.lists(
        st.tuples(
            st.sampled_from(
                [
                    "filter",
                    "filter[a]",
                    "filter[a][_in]",
                    "filter[_or][0]",
                    "filter[_or][0][b][_eq]",
                    "filter[a][_some]",
                    "filter[a][_some][_and][0][c][_null]",
                    "filter[]",
                    "deep[x]",
                    "deep[x][]",
                    "fields[]",
                    "limit",
                    "sort",
                    "meta",
                    "search",
                    "filter[a][b",
                    "x",
                ]
            )
            | st.text(max_size=8),
            st.sampled_from(["", "1", "true", "a,b", "{}", '{"a":{"_eq":1}}', "[1]", "{"])
            | st.text(max_size=6),
        ),
        max_size=5,
    )
)
def test_any_input_reads_or_raises_a_parse_error(rows):
    try:
        query = Query.from_params(rows)
    except QueryParseError:
        return
    assert isinstance(query.to_query_string(), str)
    assert isinstance(validate(query.with_(collection="articles"), SCHEMA), list)
