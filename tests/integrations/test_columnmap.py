"""Column → field mapping (pure): names folded for the guess, casts from field types, one
row mapped the same way for a CSV line and an inbound row — and as the CSV writer's template."""

import pytest

from integrations.mapping import columnmap
from integrations.mapping.columnmap import Entry

FIELDS = {
    "id": {"type": "integer"},
    "full_name": {"type": "string"},
    "email": {"type": "string"},
    "score": {"type": "integer"},
    "revenue": {"type": "decimal"},
    "active": {"type": "boolean"},
    "signed_up": {"type": "dateTime"},
    "company": {"type": "integer"},
}


def test_columns_are_matched_to_fields_ignoring_case_spaces_and_punctuation():
    guessed = columnmap.guess(
        ["Full Name", "E-mail", "SCORE", "Revenue ($)", "Active?", "Signed Up", "Company ID"],
        FIELDS,
    )
    assert guessed == [
        Entry("Full Name", "full_name", ()),
        Entry("E-mail", "email", ()),
        Entry("SCORE", "score", ("integer",)),
        Entry("Revenue ($)", "revenue", ("number",)),
        Entry("Active?", "active", ("boolean",)),
        Entry("Signed Up", "signed_up", ("datetime",)),
    ]  # "Company ID" folds to "companyid", not "company": left unmapped


def test_a_name_is_matched_only_when_equal_after_folding():
    assert columnmap.fold("E-mail") == columnmap.fold("email")
    assert columnmap.fold("Company ID") != columnmap.fold("company")
    assert columnmap.guess(["Emails"], FIELDS) == []


def test_two_fields_that_fold_alike_are_not_guessed_and_a_field_goes_to_the_first_column():
    fields = {"fullname": {"type": "string"}, "full_name": {"type": "string"}, "email": {}}
    assert columnmap.guess(["Full Name", "Email", "E-mail"], fields) == [Entry("Email", "email")]


def test_both_stored_forms_read_as_the_same_entries():
    upload_rows = [
        {"field": "email", "source_kind": "column", "source": "Email", "casts": ["trim", "lower"]},
        {"field": "status", "source_kind": "static", "source": "draft"},  # not a column
    ]
    route_rows = [{"column": "Email", "field": "email", "cast": "trim | lower"}]
    assert columnmap.entries(upload_rows) == columnmap.entries(route_rows)
    assert columnmap.entries(route_rows) == [Entry("Email", "email", ("trim", "lower"))]
    assert Entry("Email", "email", ("trim", "lower")).stored() == route_rows[0]
    assert columnmap.entries([{"column": "x"}, "junk", None]) == []


def test_a_row_is_mapped_cast_and_unmapped_or_empty_columns_are_left_out():
    entries = [
        Entry("Full Name", "full_name"),
        Entry("Score", "score", ("integer",)),
        Entry("Email", "email", ("trim", "lower")),
    ]
    data, problems = columnmap.apply(
        entries, {"Full Name": "Ada", "Score": "1,234", "Email": "", "Notes": "x"}
    )
    assert data == {"full_name": "Ada", "score": 1234} and problems == []


@pytest.mark.parametrize(
    "value, cast, words",
    [
        ("n/a", "integer", ['Column "Score"', '"n/a" is not a number', "a whole number"]),
        ("2.5", "integer", ['"2.5" is not a whole number', "(cast: integer)"]),
        ("maybe", "boolean", ['"maybe" is not true/false', "takes true/false"]),
        ("03/04/2024", "date", ["day/month or month/day", "takes a date"]),
    ],
)
def test_a_value_that_does_not_cast_gets_a_sentence_naming_column_value_and_type(
    value, cast, words
):
    data, problems = columnmap.apply([Entry("Score", "score", (cast,))], {"Score": value})
    assert data == {} and len(problems) == 1
    for word in words:
        assert word in problems[0]
    assert 'the field "score"' in problems[0]


def test_match_values_compare_as_text_as_the_writer_compares_them():
    assert columnmap.key_text(42) == columnmap.key_text("42")
    assert columnmap.key_text(True) == "true"
    assert columnmap.key_text("Ann@X.example") != columnmap.key_text("ann@x.example")
    assert columnmap.key_text("Ann@X.example", fold_case=True) == "ann@x.example"
