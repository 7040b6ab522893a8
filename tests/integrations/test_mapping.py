"""Template parsing, rendering, casts, checks and the field mapper (pure: no database)."""

import datetime as dt
import hashlib
import json
import math
from decimal import Decimal

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from integrations import mapping
from integrations.mapping import (
    MappingRow,
    MissingValue,
    RenderError,
    TemplateError,
    apply_casts,
    body_from_mapping,
    check,
    lookup,
    mapping_from_body,
    parse,
    payload_hash,
)

LEADS = {
    "id": {"type": "integer", "required": False, "nullable": False, "relation": None},
    "email": {"type": "string", "required": True, "nullable": False, "relation": None},
    "first_name": {"type": "string", "required": False, "nullable": True, "relation": None},
    "score": {"type": "integer", "required": False, "nullable": True, "relation": None},
    "enriched": {"type": "boolean", "required": False, "nullable": True, "relation": None},
    "enrichment": {"type": "json", "required": False, "nullable": True, "relation": None},
    "date_created": {"type": "timestamp", "required": False, "nullable": True, "relation": None},
    "status": {
        "type": "string",
        "required": False,
        "nullable": True,
        "relation": None,
        "choices": ["new", "qualified", "lost"],
    },
    "company": {
        "type": "integer",
        "required": False,
        "nullable": True,
        "relation": {"kind": "m2o", "collection": "companies"},
    },
}


def problems_of(text):
    with pytest.raises(TemplateError) as caught:
        parse(text)
    return [(p.line, p.column, p.message) for p in caught.value.problems]


def render(text, row, options=None):
    return parse(text).render(row, options)


# --- parsing ----------------------------------------------------------------------------------


def test_it_lists_placeholders_with_positions_paths_and_casts():
    text = '{\n  "data": {\n    "email": "{{Email | trim | lower}}",\n    "score": {{Score}},\n    "hi": "Hello {{First Name}}!"\n  },\n  "tags": ["a", {{Tag}}]\n}'
    phs = parse(text).placeholders
    assert [
        (p.expr, p.casts, p.line, p.column, p.whole_value, p.quoted, p.json_path) for p in phs
    ] == [
        ("Email", ("trim", "lower"), 3, 15, True, True, "$.data.email"),
        ("Score", (), 4, 14, True, False, "$.data.score"),
        ("First Name", (), 5, 18, False, True, "$.data.hi"),
        ("Tag", (), 7, 17, True, False, "$.tags[1]"),
    ]


def test_placeholder_offsets_cover_the_braces():
    text = '{"a": "x {{B}} y", "c": {{D}}}'
    phs = parse(text).placeholders
    assert [text[p.start : p.end] for p in phs] == ["{{B}}", "{{D}}"]


def test_it_reads_directus_flow_placeholders_with_inner_spaces():
    (ph,) = parse('{"title": "{{ $trigger.payload.title }}"}').placeholders
    assert ph.expr == "$trigger.payload.title"
    assert ph.whole_value


def test_it_keeps_column_names_with_spaces_and_punctuation():
    (ph,) = parse('{"a": "{{Company (LinkedIn) - URL?}}"}').placeholders
    assert ph.expr == "Company (LinkedIn) - URL?"


def test_a_pipe_followed_by_a_non_cast_word_is_part_of_the_column_name():
    (ph,) = parse('{"a": "{{Revenue | Q1}}"}').placeholders
    assert (ph.expr, ph.casts) == ("Revenue | Q1", ())


def test_json_path_quotes_keys_that_are_not_identifiers():
    (ph,) = parse('{"First Name": {{x}}}').placeholders
    assert ph.json_path == '$["First Name"]'


def test_a_placeholder_string_with_surrounding_spaces_is_embedded_not_whole():
    (ph,) = parse('{"a": " {{X}}"}').placeholders
    assert not ph.whole_value


def test_a_whole_template_can_be_one_placeholder():
    assert parse("{{$trigger}}").render({"$trigger": {"a": [1]}}) == {"a": [1]}
    assert parse('"{{$trigger}}"').render({"$trigger": {"a": [1]}}) == {"a": [1]}


def test_plain_json_parses_to_itself():
    text = '{"a": [1, -2.5e3, true, false, null, "x\\u00e9\\ud83d\\ude00\\n"], "b": {}}'
    assert parse(text).render({}) == json.loads(text)


@pytest.mark.parametrize(
    ("text", "line", "column", "fragment"),
    [
        ("", 1, 1, "empty"),
        ("   \n  ", 1, 1, "empty"),
        ('{"a": }', 1, 7, "Expected a JSON value"),
        ('{"a" 1}', 1, 6, 'Expected ":"'),
        ('{"a": 1,}', 1, 8, "Remove this comma"),
        ("[1, 2,]", 1, 6, "Remove this comma"),
        ("[1 2]", 1, 4, 'Expected "," or "]"'),
        ('{"a": 1', 1, 1, "never closed"),
        ('{"a": "b', 1, 7, "never closed"),
        ('{"a": "x\ny"}', 1, 9, "line break"),
        ('{"a": "\\q"}', 1, 8, "Invalid escape"),
        ('{"a": "\\u12"}', 1, 8, "Invalid escape"),
        ('{"a": 1}}', 1, 9, "after the end"),
        ("{'a': 1}", 1, 2, "quoted key"),
        ('{"a": 01}', 1, 8, 'Expected ","'),
        ('{"a": tru}', 1, 7, "Expected a JSON value"),
        ('{"a": 1e999}', 1, 7, "too large"),
        ('{\n  "a": "{{Email"\n}', 2, 9, "never closed"),
        ('{"a": {{Email}', 1, 7, "never closed"),
        ('{"a": {{}}}', 1, 7, "Empty placeholder"),
        ('{"a": "{{  }}"}', 1, 8, "Empty placeholder"),
        ('{"{{Key}}": 1}', 1, 2, "cannot be object keys"),
        ('{"x {{Key}}": 1}', 1, 2, "cannot be object keys"),
        ("{{{Key}}: 1}", 1, 2, "cannot be object keys"),
        ('{"a": "{{Email | lowr}}"}', 1, 8, "Unknown cast 'lowr'"),
        ('{"a": "{{x {{y}}"}', 1, 8, "inside another placeholder"),
        ('{"a": 1, "a": 2}', 1, 10, "appears twice"),
    ],
)
def test_it_reports_invalid_templates_with_positions(text, line, column, fragment):
    problems = problems_of(text)
    assert (problems[0][0], problems[0][1]) == (line, column), problems
    assert fragment in problems[0][2]


def test_it_reports_every_non_fatal_problem_at_once():
    problems = problems_of('{"{{k}}": "{{a | nope}}", "b": {{}}}')
    assert [(line, col) for line, col, _ in problems] == [(1, 2), (1, 12), (1, 32)]


def test_a_fatal_syntax_error_keeps_the_problems_found_before_it():
    problems = problems_of('{"{{k}}": 1, "b" 2}')
    assert len(problems) == 2
    assert "object keys" in problems[0][2] and 'Expected ":"' in problems[1][2]


def test_template_error_message_names_positions():
    with pytest.raises(TemplateError, match=r"Line 1, column 7: Expected a JSON value"):
        parse('{"a": }')


def test_columns_count_characters_not_bytes():
    problems = problems_of('{"é😀": "{{x | bad}}"}')
    assert problems[0][:2] == (1, 9)


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


# --- casts ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (42, 42),
        (2.0, 2),
        (2.5, 2.5),
        ("42", 42),
        (" -7 ", -7),
        ("1.0", 1),
        ("1.25", 1.25),
        (".5", 0.5),
        ("1e3", 1000),
        ("1,234", 1234),
        ("1,234,567.5", 1234567.5),
        ("", None),
        ("   ", None),
        (None, None),
        (Decimal("2.50"), 2.5),
        ("12345678901234567890", 12345678901234567890),
    ],
)
def test_number_cast(value, expected):
    result = apply_casts(value, ["number"])
    assert result == expected and type(result) is type(expected)


@pytest.mark.parametrize(
    "value", ["abc", "1,5", "12,34", "1.2.3", "0x10", "inf", "NaN", "1e999", True, [1], {"a": 1}]
)
def test_number_cast_refuses(value):
    with pytest.raises(mapping.CastError):
        apply_casts(value, ["number"])


def test_integer_cast():
    assert apply_casts("7", ["integer"]) == 7
    assert apply_casts(7.0, ["integer"]) == 7
    assert apply_casts("", ["integer"]) is None
    with pytest.raises(mapping.CastError, match="whole number"):
        apply_casts("7.5", ["integer"])


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("true", True),
        ("YES", True),
        (" 1 ", True),
        ("False", False),
        ("no", False),
        ("0", False),
        (1, True),
        (0, False),
        (True, True),
        ("", None),
        (None, None),
    ],
)
def test_boolean_cast(value, expected):
    assert apply_casts(value, ["boolean"]) is expected


@pytest.mark.parametrize("value", ["maybe", "y", 2, 0.5, [True]])
def test_boolean_cast_refuses(value):
    with pytest.raises(mapping.CastError, match="true/false"):
        apply_casts(value, ["boolean"])


@pytest.mark.parametrize(
    "value",
    [
        "2024-03-15",
        "2024/03/15",
        "2024.3.15",
        "20240315",
        "2024-03-15T10:00:00Z",
        "2024-03-15 23:59:59+05:00",
        "15 Mar 2024",
        "15 March 2024",
        "March 15, 2024",
        "Mar 15 2024",
        "15-Mar-2024",
        "15/03/2024",
        "03/15/2024",
        "15.03.2024",
        dt.date(2024, 3, 15),
        dt.datetime(2024, 3, 15, 8, 30),
    ],
)
def test_date_cast_reads_common_forms(value):
    assert apply_casts(value, ["date"]) == "2024-03-15"


def test_date_cast_refuses_ambiguous_and_invalid_dates():
    with pytest.raises(mapping.CastError, match="day/month or month/day"):
        apply_casts("03/04/2024", ["date"])
    with pytest.raises(mapping.CastError, match="not a date"):
        apply_casts("2024-02-30", ["date"])
    with pytest.raises(mapping.CastError, match="not a date"):
        apply_casts("31/31/2024", ["date"])
    with pytest.raises(mapping.CastError, match="not a date"):
        apply_casts("soon", ["date"])
    assert apply_casts("04/04/2024", ["date"]) == "2024-04-04"


def test_date_and_datetime_casts_read_epoch_seconds_and_milliseconds():
    assert apply_casts(1710496800, ["datetime"]) == "2024-03-15T10:00:00Z"
    assert apply_casts(1710496800000, ["datetime"]) == "2024-03-15T10:00:00Z"
    assert apply_casts(1710496800, ["date"]) == "2024-03-15"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-03-15T10:00:00Z", "2024-03-15T10:00:00Z"),
        ("2024-03-15T10:00:00+00:00", "2024-03-15T10:00:00Z"),
        ("2024-03-15T10:00:00+02:00", "2024-03-15T10:00:00+02:00"),
        ("2024-03-15 10:00", "2024-03-15T10:00:00"),
        ("2024-03-15T10:00:00.123", "2024-03-15T10:00:00.123000"),
        ("2024-03-15", "2024-03-15T00:00:00"),
        ("15 Mar 2024", "2024-03-15T00:00:00"),
        (dt.date(2024, 3, 15), "2024-03-15T00:00:00"),
        ("", None),
    ],
)
def test_datetime_cast(value, expected):
    assert apply_casts(value, ["datetime"]) == expected


def test_datetime_cast_refuses_text_that_is_no_date():
    with pytest.raises(mapping.CastError, match="date and time"):
        apply_casts("tomorrow at noon", ["datetime"])


@pytest.mark.parametrize(
    ("value", "expected"),
    [("x", "x"), (7, "7"), (1.5, "1.5"), (True, "true"), ({"a": [1]}, '{"a":[1]}'), (None, None)],
)
def test_string_cast(value, expected):
    assert apply_casts(value, ["string"]) == expected


def test_text_casts_pass_other_types_through():
    assert apply_casts("  MiXed ", ["trim", "lower"]) == "mixed"
    assert apply_casts("\u00a0x\u00a0", ["trim", "upper"]) == "X"
    assert apply_casts(5, ["trim", "lower", "upper"]) == 5
    assert apply_casts(None, ["trim"]) is None


def test_json_cast_parses_text_holding_json():
    assert apply_casts('{"a": [1, 2]}', ["json"]) == {"a": [1, 2]}
    assert apply_casts({"a": 1}, ["json"]) == {"a": 1}
    assert apply_casts(" ", ["json"]) is None
    with pytest.raises(mapping.CastError, match="not JSON"):
        apply_casts("{oops", ["json"])
    with pytest.raises(mapping.CastError, match="not JSON"):
        apply_casts("NaN", ["json"])


def test_a_failing_cast_in_a_chain_is_named():
    with pytest.raises(mapping.CastError, match=r"^number: "):
        apply_casts("  abc ", ["trim", "number"])


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


# --- check ------------------------------------------------------------------------------------


def messages(problems):
    return [(p.line, p.column, p.message) for p in problems]


def test_check_passes_a_good_template():
    template = parse(
        '{"email": "{{Email | trim | lower}}", "score": {{Score | number}}, "enriched": true}'
    )
    assert check(template, columns=["Email", "Score"], target_fields=LEADS) == []


def test_check_flags_unknown_columns_with_a_suggestion_and_position():
    template = parse('{\n  "email": "{{Emial}}"\n}')
    (problem,) = check(template, columns=["Email", "Score"])
    assert (problem.line, problem.column, problem.placeholder) == (2, 13, "Emial")
    assert "No column named 'Emial'. Did you mean 'Email'?" == problem.message


def test_check_accepts_dot_paths_under_a_known_column_and_parents_of_known_paths():
    template = parse('{"a": "{{author.company.name}}", "b": "{{enrichment}}"}')
    assert check(template, columns=["author", "enrichment.company"]) == []


def test_check_validates_flow_variables_against_the_trigger_shape():
    template = parse(
        '{"a": "{{$trigger.payload.title}}", "b": "{{$trigger.keys.0}}", "c": "{{$trigger.nope}}", '
        '"d": "{{$trigger.payload.titel}}", "e": "{{$accountability.user}}", "f": "{{$foo}}", '
        '"g": "{{$env.X}}", "h": "{{$trigger.keys.first}}"}'
    )
    found = {p.placeholder: p.message for p in check(template, columns=["title", "slug"])}
    assert set(found) == {"$trigger.nope", "$trigger.payload.titel", "$foo", "$trigger.keys.first"}
    assert "Did you mean 'title'" in found["$trigger.payload.titel"]


def test_check_without_columns_skips_column_checks():
    assert check(parse('{"a": "{{Anything}}"}')) == []


def test_check_requires_required_fields_unless_partial():
    template = parse('{\n "first_name": "{{First}}"\n}')
    assert messages(check(template, target_fields=LEADS)) == [
        (1, 1, "Required field 'email' is not mapped.")
    ]
    assert check(template, target_fields=LEADS, partial=True) == []


def test_check_flags_fields_the_collection_does_not_have():
    (problem,) = check(parse('{"email": "x", "emial2": 1}'), target_fields=LEADS)
    assert problem.message.startswith("The collection has no field 'emial2'.")
    assert (problem.line, problem.column) == (1, 16)


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ('"score": "abc"', '"abc" is not a whole number'),
        ('"score": 2.5', "2.5 is not a whole number"),
        ('"score": true', "true is not a whole number"),
        ('"enriched": "yes"', "not true or false"),
        ('"enriched": 1', "not true or false"),
        ('"date_created": "soon"', "not a date"),
        ('"date_created": 5', "not a date"),
        ('"first_name": false', "not text"),
        ('"status": "won"', "not one of new, qualified, lost"),
        ('"id": null', "cannot be null"),
        ('"first_name": {"a": 1}', "an object does not fit a string field"),
        ('"score": [1]', "a list does not fit a integer field"),
        ('"score": "{{S | boolean}}"', "cast to boolean"),
        ('"enriched": "{{S | number}}"', "cast to number"),
        ('"date_created": {{S | integer}}', "cast to integer"),
        ('"score": "#{{S}}"', "text with placeholders"),
    ],
)
def test_check_flags_values_that_do_not_fit_the_field_type(body, fragment):
    problems = check(parse('{"email": "a@b.c", ' + body + "}"), target_fields=LEADS)
    assert len(problems) == 1, problems
    assert fragment in problems[0].message
    assert (problems[0].line, problems[0].column) == (1, 20)


@pytest.mark.parametrize(
    "body",
    [
        '"score": "42"',
        '"score": 42',
        '"score": "{{S | number}}"',
        '"first_name": "{{S | number}}"',
        '"first_name": 7',
        '"enrichment": {"a": [1, {{S}}]}',
        '"enrichment": "{{S | json}}"',
        '"company": {"name": "Acme"}',
        '"company": "{{S}}"',
        '"date_created": "2024-03-15T10:00:00Z"',
        '"date_created": "{{S | date}}"',
        '"first_name": "Hi {{S}}"',
        '"status": "qualified"',
        '"first_name": null',
    ],
)
def test_check_accepts_values_that_fit(body):
    assert check(parse('{"email": "a@b.c", ' + body + "}"), target_fields=LEADS) == []


def test_check_looks_inside_batch_shapes():
    update = parse('{"keys": [1, 2], "data": {"score": "abc"}}')
    assert [p.message for p in check(update, target_fields=LEADS, partial=True)] == [
        'score: "abc" is not a whole number.'
    ]
    batch = parse('[{"email": "a"}, {"score": 1}]')
    assert [p.message for p in check(batch, target_fields=LEADS)] == [
        "Required field 'email' is not mapped."
    ]


def test_check_skips_field_checks_for_a_whole_body_placeholder():
    assert check(parse("{{$trigger}}"), target_fields=LEADS) == []


def test_check_flags_missing_policies_that_break_the_field():
    template = parse('{"email": "{{E}}", "id": "{{I}}"}')
    options = {"placeholders": {"E": {"missing": "omit"}, "I": {"missing": "null"}}}
    found = [p.message for p in check(template, target_fields=LEADS, options=options)]
    assert found == [
        "email: required, but {{E}} is left out when missing.",
        "id: cannot be null, but {{I}} becomes null when missing.",
    ]


def test_check_reports_bad_options():
    template = parse('{"email": "{{E}}"}')
    found = [
        p.message
        for p in check(
            template, options={"missing": "skip", "placeholders": {"X": {"casts": "nope"}}}
        )
    ]
    assert any("missing" in m for m in found)
    assert any("Unknown cast 'nope'" in m for m in found)
    assert "Options name {{X}}, which the template does not use." in found


# --- payload hash -----------------------------------------------------------------------------


def test_payload_hash_is_sha256_of_canonical_json():
    value = {"b": [1, {"d": "é", "c": None}], "a": True}
    canonical = '{"a":true,"b":[1,{"c":null,"d":"é"}]}'
    assert payload_hash(value) == hashlib.sha256(canonical.encode()).hexdigest()


def test_payload_hash_ignores_key_order_but_not_values():
    assert payload_hash({"a": 1, "b": 2}) == payload_hash({"b": 2, "a": 1})
    assert payload_hash({"a": 1}) != payload_hash({"a": "1"})
    assert payload_hash({"a": 1}) != payload_hash({"a": 1.0})


# --- field mapper -----------------------------------------------------------------------------


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
    assert mapping.static_value(source) == value
    assert mapping.static_value(mapping.static_source(value)) == value


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
    assert out["embedded"] == prefix + mapping._as_text(embedded) + suffix
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


@settings(max_examples=300)
@given(st.text(alphabet=st.sampled_from(list('{}[]":,| \n\\ab1-etrufnl')), max_size=40))
def test_parse_either_succeeds_or_raises_template_error_with_a_position(text):
    try:
        parse(text)
    except TemplateError as exc:
        assert exc.problems
        for problem in exc.problems:
            assert problem.line >= 1 and problem.column >= 1


# Directus field names are identifiers (letters, digits, underscores).
target_fields = st.from_regex(r"[a-z_][a-z0-9_]{0,9}", fullmatch=True)

mapper_rows = st.lists(
    st.one_of(
        st.builds(
            MappingRow,
            target_fields,
            st.sampled_from(["column"]),
            column_names,
            st.lists(st.sampled_from(sorted(mapping.CASTS)), max_size=2).map(tuple),
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
            assert mapping.static_value(read.source) == mapping.static_value(original.source)
        else:
            assert read.source == original.source
