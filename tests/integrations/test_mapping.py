"""Rendering a template for a row: types, missing values, options, lookup, payload hash (pure)."""

import datetime as dt
import hashlib
import json
import math
from decimal import Decimal

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from integrations.mapping.casts import as_text
from integrations.mapping.templates import (
    MissingValue,
    RenderError,
    TemplateError,
    lookup,
    parse,
    payload_hash,
)


def render(text, row, options=None):
    return parse(text).render(row, options)


# --- rendering --------------------------------------------------------------------------------


def test_whole_value_placeholders_keep_the_row_type():
    text = '{"n": "{{N}}", "f": {{F}}, "b": "{{B}}", "z": {{Z}}, "o": "{{O}}", "l": {{L}}, "s": "{{S}}"}'
    row = {
        "N": 42,
        "F": 1.5,
        "B": False,
        "Z": None,
        "O": {"a": {"b": [1]}},
        "L": [1, "x"],
        "S": "42",
    }
    assert render(text, row) == {
        "n": 42,
        "f": 1.5,
        "b": False,
        "z": None,
        "o": {"a": {"b": [1]}},
        "l": [1, "x"],
        "s": "42",
    }


def test_embedded_placeholders_insert_text():
    text = '{"a": "<{{S}}|{{N}}|{{F}}|{{T}}|{{Z}}|{{O}}|{{L}}>"}'
    row = {"S": "x", "N": 7, "F": 0.1, "T": True, "Z": None, "O": {"k": "é"}, "L": [1, None]}
    assert render(text, row) == {"a": '<x|7|0.1|true||{"k":"é"}|[1,null]>'}


@pytest.mark.parametrize(
    "value",
    [
        'He said "hi"',
        "back\\slash",
        "line\nbreak\r\ttab",
        "emoji 😀🎉",
        "\x00\x1f\x7f",
        "}}{{",
        '"}',
    ],
)
def test_values_with_json_special_characters_always_give_valid_json(value):
    template = parse('{"whole": "{{V}}", "bare": {{V}}, "embedded": "pre {{V}} post"}')
    text = template.render_json({"V": value})
    assert json.loads(text) == {"whole": value, "bare": value, "embedded": f"pre {value} post"}


def test_render_json_keeps_unicode_readable():
    assert parse('{"a": "{{A}}"}').render_json({"A": "é😀"}) == '{"a": "é😀"}'


def test_it_reads_item_fields_and_flow_variables_by_dot_path():
    row = {
        "author": {"company": {"name": "Acme"}},
        "$trigger": {"payload": {"title": "T"}, "keys": ["505"]},
    }
    text = '{"c": "{{author.company.name}}", "t": "{{$trigger.payload.title}}", "k": "{{$trigger.keys.0}}", "k2": "{{$trigger.keys[0]}}", "ks": {{$trigger.keys}}}'
    assert render(text, row) == {"c": "Acme", "t": "T", "k": "505", "k2": "505", "ks": ["505"]}


def test_the_rendered_value_is_a_copy_not_the_row_object():
    row = {"O": {"a": [1]}}
    out = render('{"o": {{O}}}', row)
    out["o"]["a"].append(2)
    assert row == {"O": {"a": [1]}}


def test_missing_values_are_errors_by_default_with_positions():
    template = parse('{\n  "a": "{{A}}",\n  "b": "x {{B}}"\n}')
    with pytest.raises(RenderError) as caught:
        template.render({})
    assert [(p.line, p.column, p.placeholder) for p in caught.value.problems] == [
        (2, 9, "A"),
        (3, 11, "B"),
    ]
    assert "no value for {{A}}" in str(caught.value)


def test_none_is_a_value_not_a_missing_one():
    assert render('{"a": "{{A}}", "b": "x{{A}}y"}', {"A": None}) == {"a": None, "b": "xy"}


def test_omit_leaves_out_the_member_or_list_element():
    text = '{"a": "{{A}}", "b": "hi {{B}}", "c": [1, {{C}}, 3], "d": "{{D}}"}'
    assert render(text, {"D": 4}, {"missing": "omit"}) == {"c": [1, 3], "d": 4}


def test_null_sets_the_value_holding_the_placeholder_to_null():
    text = '{"a": "{{A}}", "b": "hi {{B}}", "c": [{{C}}]}'
    assert render(text, {}, {"missing": "null"}) == {"a": None, "b": None, "c": [None]}


def test_a_per_placeholder_policy_overrides_the_default():
    options = {
        "missing": "omit",
        "placeholders": {"A": {"missing": "null"}, "B": {"missing": "error"}},
    }
    template = parse('{"a": "{{A}}", "b": "{{B}}", "c": "{{C}}"}')
    with pytest.raises(RenderError) as caught:
        template.render({}, options)
    assert [p.placeholder for p in caught.value.problems] == ["B"]
    assert template.render({"B": 1}, options) == {"a": None, "b": 1}


def test_an_omitted_top_level_placeholder_renders_null():
    assert render("{{X}}", {}, {"missing": "omit"}) is None


def test_it_never_sends_the_literal_placeholder():
    for policy in ("omit", "null"):
        text = parse('{"a": "{{A}}", "b": "x {{B}}"}').render_json({}, {"missing": policy})
        assert "{{" not in text


def test_inline_and_option_casts_chain_inline_first():
    options = {"placeholders": {"Email": {"casts": "upper"}}}
    assert render('{"e": "{{Email | trim | lower}}"}', {"Email": "  A@B.io "}, options) == {
        "e": "A@B.IO"
    }


def test_option_casts_may_be_a_list():
    options = {"placeholders": {"Score": {"casts": ["trim", "number"]}}}
    assert render('{"s": {{Score}}}', {"Score": " 1,234 "}, options) == {"s": 1234}


def test_a_failed_cast_is_a_render_error_with_position():
    template = parse('{\n "s": {{Score | integer}}\n}')
    with pytest.raises(RenderError) as caught:
        template.render({"Score": "2.5"})
    (problem,) = caught.value.problems
    assert (problem.line, problem.column, problem.placeholder) == (2, 7, "Score")
    assert "integer" in problem.message and "whole number" in problem.message


def test_casts_apply_to_embedded_placeholders_too():
    assert render('{"a": "n={{N | number}}"}', {"N": "1.50"}) == {"a": "n=1.5"}


def test_bad_options_are_a_template_error():
    with pytest.raises(TemplateError, match="missing"):
        render('{"a": 1}', {}, {"missing": "skip"})
    with pytest.raises(TemplateError, match="Unknown cast 'nope'"):
        render('{"a": 1}', {}, {"placeholders": {"A": {"casts": "nope"}}})


def test_values_that_are_not_json_are_converted_or_refused():
    row = {
        "D": Decimal("1.50"),
        "I": Decimal("3"),
        "T": dt.datetime(2024, 3, 15, 10, 0, tzinfo=dt.UTC),
        "Tu": (1, 2),
    }
    assert render('{"d": {{D}}, "i": {{I}}, "t": {{T}}, "tu": {{Tu}}}', row) == {
        "d": 1.5,
        "i": 3,
        "t": "2024-03-15T10:00:00Z",
        "tu": [1, 2],
    }
    with pytest.raises(RenderError, match="finite"):
        render('{"a": {{A}}}', {"A": math.nan})
    with pytest.raises(RenderError, match="finite"):
        render('{"a": {{A}}}', {"A": {"deep": [math.inf]}})
    with pytest.raises(RenderError, match="cannot be sent as JSON"):
        render('{"a": {{A}}}', {"A": object()})


# --- lookup -----------------------------------------------------------------------------------


def test_lookup_prefers_an_exact_column_name_over_a_path():
    row = {"a.b": 1, "a": {"b": 2}}
    assert lookup(row, "a.b") == 1
    assert lookup({"a": {"b": 2}}, "a.b") == 2


def test_lookup_finds_keys_that_contain_dots_at_any_level():
    assert lookup({"x": {"a.b": {"c": 3}}}, "x.a.b.c") == 3


def test_lookup_walks_lists_by_index():
    row = {"items": [{"n": 1}, {"n": 2}]}
    assert lookup(row, "items.1.n") == 2
    assert lookup(row, "items[0].n") == 1


@pytest.mark.parametrize("expr", ["nope", "items.5", "items.x", "a.b.c", "items.-1", "a..b", "s.0"])
def test_lookup_raises_missing_value(expr):
    with pytest.raises(MissingValue) as caught:
        lookup({"items": [1], "a": {"b": None}, "s": "str"}, expr)
    assert caught.value.expr == expr


def test_lookup_returns_none_values():
    assert lookup({"a": {"b": None}}, "a.b") is None


# --- payload hash -----------------------------------------------------------------------------


def test_payload_hash_is_sha256_of_canonical_json():
    value = {"b": [1, {"d": "é", "c": None}], "a": True}
    canonical = '{"a":true,"b":[1,{"c":null,"d":"é"}]}'
    assert payload_hash(value) == hashlib.sha256(canonical.encode()).hexdigest()


def test_payload_hash_ignores_key_order_but_not_values():
    assert payload_hash({"a": 1, "b": 2}) == payload_hash({"b": 2, "a": 1})
    assert payload_hash({"a": 1}) != payload_hash({"a": "1"})
    assert payload_hash({"a": 1}) != payload_hash({"a": 1.0})


# --- properties -------------------------------------------------------------------------------


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**20), max_value=10**20)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
column_names = st.text(min_size=1, max_size=20).filter(
    lambda s: s == s.strip() and not s.startswith("$") and not set(s) & set("{}|\n")
)
literal_text = st.text(min_size=1, max_size=10).filter(
    lambda s: "{{" not in s and "}" not in s and "{" not in s
)


@settings(max_examples=300)
@given(
    whole=json_values,
    embedded=json_values,
    bare=json_values,
    names=st.lists(column_names, min_size=3, max_size=3, unique=True),
    prefix=literal_text,
    suffix=literal_text,
)
def test_rendering_always_gives_json_that_round_trips_the_row_values(
    whole, embedded, bare, names, prefix, suffix
):
    a, b, c = names
    template_obj = {
        "whole": "{{" + a + "}}",
        "embedded": prefix + "{{" + b + "}}" + suffix,
        "list": ["{{" + a + "}}", 1],
    }
    text = json.dumps(template_obj)[:-1] + ', "bare": {{' + c + "}}}"
    template = parse(text)
    row = {a: whole, b: embedded, c: bare}
    out = json.loads(template.render_json(row))
    assert out["whole"] == whole
    assert out["list"] == [whole, 1]
    assert out["bare"] == bare
    assert out["embedded"] == prefix + as_text(embedded) + suffix
    if isinstance(embedded, str):
        assert out["embedded"] == prefix + embedded + suffix


@settings(max_examples=200)
@given(value=json_values)
def test_any_json_document_without_braces_in_text_parses_to_itself(value):
    assume(not any("{{" in s for s in _strings(value)))
    text = json.dumps(value, ensure_ascii=False, indent=1)
    assert parse(text).render({}) == value


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
