"""Template parsing: placeholders with positions and JSON paths, and every problem found (pure)."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from integrations.mapping.templates import parse
from integrations.mapping.templatesyntax import TemplateError


def problems_of(text):
    with pytest.raises(TemplateError) as caught:
        parse(text)
    return [(p.line, p.column, p.message) for p in caught.value.problems]


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


@settings(max_examples=300)
@given(st.text(alphabet=st.sampled_from(list('{}[]":,| \n\\ab1-etrufnl')), max_size=40))
def test_parse_either_succeeds_or_raises_template_error_with_a_position(text):
    try:
        parse(text)
    except TemplateError as exc:
        assert exc.problems
        for problem in exc.problems:
            assert problem.line >= 1 and problem.column >= 1
