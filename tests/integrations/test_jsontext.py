"""JSON typed or sent by people is read with limits, and every refusal is a ValueError with a
sentence; the parsers built on it (templates, filters, pasted queries) refuse deep nesting too."""

import pytest

from console import builder
from integrations import jsontext
from integrations.mapping import templates as mapping
from integrations.mapping.templatesyntax import TemplateError
from integrations.query import filters


@pytest.mark.parametrize(
    "text, words",
    [
        ("[" * 5000 + "]" * 5000, "nested more than 64"),
        ('{"a": ' * 65 + "1" + "}" * 65, "nested more than 64"),
        ('{"n": NaN}', "NaN"),
        ("[Infinity]", "Infinity"),
        ("1e400", "too large"),
        ("9" * 5000, "more than 4,300 digits"),
        ('"a\\u0000"', "NUL"),
        ('{"\\ud800": 1}', "lone surrogate (\\ud800)"),
    ],
)
def test_it_refuses_what_kiln_cannot_process_with_a_sentence(text, words):
    with pytest.raises(jsontext.JSONRefused) as refused:
        jsontext.loads(text)
    assert words in str(refused.value)


def test_it_takes_64_levels_escaped_pairs_and_4300_digits():
    assert jsontext.loads("[" * 64 + "]" * 64)
    assert jsontext.loads('"\\ud83d\\ude00"') == "\U0001f600"
    assert jsontext.loads("9" * 4300) == int("9" * 4300)


def test_a_template_nested_5000_deep_is_a_template_error():
    with pytest.raises(TemplateError, match="nested more than 64 levels"):
        mapping.parse('{"a": ' * 5000 + "1" + "}" * 5000)


def test_a_template_number_of_5000_digits_is_a_template_error():
    with pytest.raises(TemplateError, match="too many digits"):
        mapping.parse('{"a": ' + "9" * 5000 + "}")


def test_a_template_with_a_lone_surrogate_is_a_template_error():
    with pytest.raises(TemplateError, match="lone surrogate"):
        mapping.parse('{"a": "\\ud800"}')


def test_placeholder_options_that_are_not_objects_are_problems_not_crashes():
    _, problems = mapping.compile_options({"placeholders": {"a": 1}})
    assert "must be an object" in problems[0].message
    _, problems = mapping.compile_options({"placeholders": "x"})
    assert "must be an object" in problems[0].message


def test_a_pasted_filter_nested_5000_deep_is_a_parse_error():
    with pytest.raises(filters.QueryParseError, match="nested more than 64"):
        filters.Query.from_query_string("filter" + "[a]" * 5000 + "[_eq]=1")
    with pytest.raises(filters.QueryParseError, match="nested more than 64"):
        filters.filter_from_json('{"_and":[' * 2500 + "{}" + "]}" * 2500)


def test_a_pasted_number_of_5000_digits_stays_text():
    assert filters.Query.from_query_string("limit=" + "9" * 5000).limit == "9" * 5000


def test_builder_groups_nested_past_what_it_shows_are_ignored():
    from django.http import QueryDict

    key = "f" + ".0" * 5000 + "-field"
    state, _ = builder.parse_state(QueryDict(f"{key}=a&s.{'9' * 5000}-field=b"))
    assert state.root.items == [] and state.sorts == []


def test_builder_values_too_large_for_a_float_stay_text():
    assert builder.coerce("1e400", "float") == "1e400"
    assert builder.coerce("9" * 5000, "integer") == "9" * 5000
