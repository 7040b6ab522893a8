"""Casts: number, integer, boolean, date, datetime, string, json and the text casts (pure)."""

import datetime as dt
from decimal import Decimal

import pytest

from integrations.mapping.casts import CastError, apply_casts


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
    with pytest.raises(CastError):
        apply_casts(value, ["number"])


def test_integer_cast():
    assert apply_casts("7", ["integer"]) == 7
    assert apply_casts(7.0, ["integer"]) == 7
    assert apply_casts("", ["integer"]) is None
    with pytest.raises(CastError, match="whole number"):
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
    with pytest.raises(CastError, match="true/false"):
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
    with pytest.raises(CastError, match="day/month or month/day"):
        apply_casts("03/04/2024", ["date"])
    with pytest.raises(CastError, match="not a date"):
        apply_casts("2024-02-30", ["date"])
    with pytest.raises(CastError, match="not a date"):
        apply_casts("31/31/2024", ["date"])
    with pytest.raises(CastError, match="not a date"):
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
    with pytest.raises(CastError, match="date and time"):
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
    with pytest.raises(CastError, match="not JSON"):
        apply_casts("{oops", ["json"])
    with pytest.raises(CastError, match="not JSON"):
        apply_casts("NaN", ["json"])


def test_a_failing_cast_in_a_chain_is_named():
    with pytest.raises(CastError, match=r"^number: "):
        apply_casts("  abc ", ["trim", "number"])
