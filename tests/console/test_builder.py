"""The builder form state <-> Query conversion, and how each row asks for its value (pure)."""

import pytest
from django.http import QueryDict

from console.builder import (
    BuilderState,
    ConditionRow,
    GroupRow,
    apply_action,
    parse_pasted,
    parse_state,
    state_from_query,
    state_to_query,
    value_input,
)
from integrations.query import filters
from integrations.query.querycheck import validate
from tests.console.builder_examples import EXAMPLE_QS, SCHEMA, example_form


def as_querydict(data):
    qd = QueryDict(mutable=True)
    for key, value in data.items():
        if isinstance(value, list):
            qd.setlist(key, value)
        else:
            qd[key] = value
    return qd


def test_the_posted_form_becomes_the_issues_example_query():
    state, action = parse_state(as_querydict(example_form(type("C", (), {"pk": 1}))))
    query, index_map, problems = state_to_query(state, SCHEMA)
    assert action == "" and problems == []
    assert query.to_query_string() == EXAMPLE_QS
    assert query.filter_json() == {
        "status": {"_eq": "published"},
        "_or": [{"views": {"_gt": 1000}}, {"author": {"last_name": {"_contains": "Kn"}}}],
    }
    assert index_map == {"filter.0": "f.0", "filter.1.0": "f.1.0", "filter.1.1": "f.1.1"}


def test_state_from_a_query_posts_back_to_the_same_query():
    query = filters.Query.from_query_string(EXAMPLE_QS).with_(collection="articles")
    state = state_from_query(query, connection="1")
    assert [type(i).__name__ for i in state.root.items] == ["ConditionRow", "GroupRow"]
    assert state.root.items[1].logic == "_or"
    assert state.sorts == [("views", True)]
    again, _, _ = state_to_query(state, SCHEMA)
    assert again.to_query_string() == EXAMPLE_QS


def test_values_are_typed_by_the_field_for_the_json_filter():
    state = BuilderState(
        collection="leads",
        root=GroupRow(
            items=[
                ConditionRow("score", "_between", "10", "20"),
                ConditionRow("enriched", "_eq", "true"),
                ConditionRow("email", "_in", "a@x.com, b@x.com"),
                ConditionRow("company", "_null", ""),
                ConditionRow("date_created", "_gte", "$NOW(-1 year)"),
            ]
        ),
    )
    query, _, problems = state_to_query(state, SCHEMA)
    assert problems == []
    assert query.filter_json() == {
        "score": {"_between": [10, 20]},
        "enriched": {"_eq": True},
        "email": {"_in": ["a@x.com", "b@x.com"]},
        "company": {"_null": True},
        "date_created": {"_gte": "$NOW(-1 year)"},
    }
    assert validate(query, SCHEMA) == []


def test_half_filled_rows_are_skipped_but_kept_in_the_builder():
    state = BuilderState(
        collection="articles",
        root=GroupRow(
            items=[
                ConditionRow(),
                GroupRow("_or", [ConditionRow()]),
                ConditionRow("id", "_eq", "3"),
            ]
        ),
    )
    query, index_map, _ = state_to_query(state, SCHEMA)
    assert query.to_params() == [("filter[id][_eq]", "3")]
    assert index_map == {"filter.0": ""}  # paths are assigned by renumber() before rendering
    assert len(state.root.items) == 3


def test_actions_add_and_remove_conditions_groups_and_sorts():
    state, _ = parse_state(as_querydict(example_form(type("C", (), {"pk": 1}))))
    apply_action(state, "add-group:f")
    assert state.root.items[-1].logic == "_or"  # a group inside an AND starts as an OR
    apply_action(state, "add-condition:f.1")
    assert len(state.root.items[1].items) == 3
    apply_action(state, "remove:f.1.0")
    assert [c.field for c in state.root.items[1].items] == ["author.last_name", ""]
    apply_action(state, "remove:f")  # the root stays
    apply_action(state, "remove-sort:0")
    assert state.sorts == [] and state.root.items


@pytest.mark.parametrize(
    ("op", "ftype", "value", "kind", "html"),
    [
        ("_eq", "integer", "", "single", "number"),
        ("_eq", "dateTime", "2024-03-15T00:46:56", "single", "datetime-local"),
        ("_eq", "dateTime", "$NOW", "single", "text"),
        ("_gte", "date", "", "single", "date"),
        ("_eq", "boolean", "", "boolean", ""),
        ("_in", "string", "", "list", "text"),
        ("_between", "integer", "", "pair", "number"),
        ("_between", "dateTime", "2024-01-01", "pair", "text"),
        ("_null", "string", "", "none", ""),
        ("_nempty", "string", "", "none", ""),
        ("_contains", "integer", "", "single", "text"),
        ("_some", "alias", "", "json", "text"),
    ],
)
def test_the_value_input_fits_the_operator_and_type(op, ftype, value, kind, html):
    assert value_input(op, ftype, value) == {"kind": kind, "type": html}


@pytest.mark.parametrize(
    "pasted",
    [
        f"https://cms.example.com/items/articles?{EXAMPLE_QS}",
        f"?{EXAMPLE_QS}",
        "\n".join(f"{k}={v}" for k, v in filters.Query.from_query_string(EXAMPLE_QS).to_params()),
        "Key\tValue\n"
        + "\n".join(
            f"{k}\t{v}" for k, v in filters.Query.from_query_string(EXAMPLE_QS).to_params()
        ),
    ],
    ids=["url", "query-string", "clay-lines", "copied-rows"],
)
def test_pasted_urls_query_strings_and_clay_rows_read_back(pasted):
    query = parse_pasted(pasted)
    assert query.to_query_string() == EXAMPLE_QS
