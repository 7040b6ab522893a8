"""Save-time checks of a template against columns, Flow variables and target fields (pure)."""

import pytest

from integrations.mapping.templatecheck import check
from integrations.mapping.templates import parse

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
