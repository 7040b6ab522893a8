"""The field mapper: rows <-> template body, and static values as an operator types them (pure)."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from integrations.mapping.casts import CASTS
from integrations.mapping.fieldmapper import (
    MappingRow,
    body_from_mapping,
    mapping_from_body,
    static_source,
    static_value,
)
from integrations.mapping.templatesyntax import TemplateError

MAPPER_ROWS = [
    MappingRow("email", "column", "Email", ("trim", "lower")),
    MappingRow("first_name", "column", "First Name"),
    MappingRow("status", "static", "draft"),
    MappingRow("score", "static", "10"),
    MappingRow("code", "static", '"10"'),
    MappingRow("enriched", "static", "true"),
    MappingRow("enrichment", "static", '{"source": "clay"}'),
    MappingRow("company", "field", "author.company.name"),
]

MAPPER_BODY = """{
  "email": "{{Email | trim | lower}}",
  "first_name": "{{First Name}}",
  "status": "draft",
  "score": 10,
  "code": "10",
  "enriched": true,
  "enrichment": {
    "source": "clay"
  },
  "company": "{{author.company.name}}"
}"""


def test_body_from_mapping_writes_the_body():
    assert body_from_mapping(MAPPER_ROWS) == MAPPER_BODY


def test_mapping_from_body_reads_the_rows_back():
    rows = mapping_from_body(MAPPER_BODY)
    assert not rows.has_more
    expected = [
        row if row.source_kind != "field" else MappingRow(row.target_field, "column", row.source)
        for row in MAPPER_ROWS
    ]
    assert [r for r in rows] == [
        r
        if r.target_field != "enrichment"
        else MappingRow("enrichment", "static", '{"source": "clay"}')
        for r in expected
    ]
    assert mapping_from_body(MAPPER_BODY, placeholder_kind="field")[-1] == MappingRow(
        "company", "field", "author.company.name"
    )


def test_mapping_from_body_returns_what_it_can_and_flags_the_rest():
    body = '{"a": "{{A}}", "greeting": "Hi {{Name}}", "nested": {"x": "{{X}}"}, "list": [{{Y}}], "plain": {"k": [1]}, "t": "{{$trigger.key}}"}'
    rows = mapping_from_body(body)
    assert rows.has_more
    assert list(rows) == [
        MappingRow("a", "column", "A"),
        MappingRow("plain", "static", '{"k": [1]}'),
        MappingRow("t", "field", "$trigger.key"),
    ]


def test_mapping_from_body_of_a_non_object_flags_more():
    rows = mapping_from_body("{{$trigger}}")
    assert list(rows) == [] and rows.has_more
    empty = mapping_from_body("{}")
    assert list(empty) == [] and not empty.has_more


def test_mapping_from_body_reads_bare_placeholders_as_rows():
    assert list(mapping_from_body('{"score": {{Score | number}}}')) == [
        MappingRow("score", "column", "Score", ("number",))
    ]


def test_body_from_mapping_with_a_base_keeps_what_rows_cannot_express():
    base = '{"a": "{{A}}", "greeting": "Hi {{Name | trim}}", "b": 1, "nested": {"n": {{N}}}}'
    rows = [MappingRow("b", "static", "2"), MappingRow("c", "column", "C")]
    assert json.loads(body_from_mapping(rows, base=base)) == {
        "greeting": "Hi {{Name | trim}}",
        "b": 2,
        "nested": {"n": "{{N}}"},
        "c": "{{C}}",
    }


def test_body_from_mapping_row_replaces_an_inexpressible_member_of_the_same_key():
    base = '{"greeting": "Hi {{Name}}"}'
    assert json.loads(
        body_from_mapping([MappingRow("greeting", "column", "Greeting")], base=base)
    ) == {"greeting": "{{Greeting}}"}


def test_body_from_mapping_refuses_a_base_that_is_not_an_object():
    with pytest.raises(TemplateError, match="not a JSON object"):
        body_from_mapping([], base="[1]")


@pytest.mark.parametrize(
    ("row", "fragment"),
    [
        (MappingRow("", "column", "A"), "no target field"),
        (MappingRow("a", "formula", "A"), "Unknown source kind"),
        (MappingRow("a", "column", "A", ("nope",)), "Unknown cast"),
        (MappingRow("a", "column", "  "), "needs a column"),
        (MappingRow("a", "column", "{{A}}"), "needs a column"),
        (MappingRow("a", "column", "Plan | tier"), "reads as a name with casts"),
    ],
)
def test_body_from_mapping_refuses_bad_rows(row, fragment):
    with pytest.raises(TemplateError, match=fragment):
        body_from_mapping([row])


def test_body_from_mapping_refuses_two_rows_for_one_field():
    with pytest.raises(TemplateError, match="Two rows map 'a'"):
        body_from_mapping([MappingRow("a", "column", "A"), MappingRow("a", "static", "1")])


@pytest.mark.parametrize(
    ("source", "value"),
    [
        ("draft", "draft"),
        ("10", 10),
        ('"10"', "10"),
        ("true", True),
        ("null", None),
        ("NaN", "NaN"),
        ("", ""),
        ("[1, 2]", [1, 2]),
    ],
)
def test_static_sources_read_as_json_when_they_parse(source, value):
    assert static_value(source) == value
    assert static_value(static_source(value)) == value


column_names = st.text(min_size=1, max_size=20).filter(
    lambda s: s == s.strip() and not s.startswith("$") and not set(s) & set("{}|\n")
)
# Directus field names are identifiers (letters, digits, underscores).
target_fields = st.from_regex(r"[a-z_][a-z0-9_]{0,9}", fullmatch=True)

mapper_rows = st.lists(
    st.one_of(
        st.builds(
            MappingRow,
            target_fields,
            st.sampled_from(["column"]),
            column_names,
            st.lists(st.sampled_from(sorted(CASTS)), max_size=2).map(tuple),
        ),
        st.builds(
            MappingRow,
            target_fields,
            st.just("static"),
            st.text(max_size=10).filter(lambda s: "{{" not in s and "}}" not in s),
        ),
    ),
    max_size=6,
    unique_by=lambda row: row.target_field,
)


@settings(max_examples=200)
@given(rows=mapper_rows)
def test_rows_survive_a_trip_through_the_body(rows):
    back = mapping_from_body(body_from_mapping(rows))
    assert not back.has_more
    assert [(r.target_field, r.source_kind, r.casts) for r in back] == [
        (r.target_field, r.source_kind, r.casts) for r in rows
    ]
    for original, read in zip(rows, back, strict=True):
        if original.source_kind == "static":
            assert static_value(read.source) == static_value(original.source)
        else:
            assert read.source == original.source
