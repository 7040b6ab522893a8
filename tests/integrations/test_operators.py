"""Operators per field type, as Directus 12.4 offers and accepts them (pure)."""

import pytest

from integrations.directus.fieldpaths import operators_for_field
from integrations.directus.operators import (
    FUNCTION_LABELS,
    OPERATOR_LABELS,
    operators_for_type,
)
from tests.integrations.query_schema import SCHEMA

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


def test_to_many_fields_take_only_some_and_none_and_only_at_the_top():
    assert operators_for_field(SCHEMA, "articles", "categories") == ["_some", "_none"]
    assert operators_for_field(SCHEMA, "articles", "author") == RANGE_OPS
    assert operators_for_field(SCHEMA, "articles", "author.articles") == []  # not top level
    assert operators_for_field(SCHEMA, "articles", "author.first_name") == STRING_OPS
    assert operators_for_field(SCHEMA, "articles", "year(published_at)") == RANGE_OPS
    assert operators_for_field(SCHEMA, "articles", "count(categories)") == RANGE_OPS
    assert operators_for_field(SCHEMA, "articles", "nope") == []
