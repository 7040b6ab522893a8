"""Casts: the conversions a template applies to a row value, `{{Score | number}}` (pure).

CASTS names them; each takes a value and returns the converted one, or raises CastError
with a sentence for a person (see each cast for what it reads). jsonable and as_text turn
any value into what rendering sends: a JSON value, or text inside a longer string.
"""

import datetime as dt
import json
import math
import re
from decimal import Decimal
from typing import Any


class CastError(ValueError):
    """A value cannot be converted by a cast; the message says why, for a person."""


def _number(value):
    """Numbers stay; text like "42", " 1.5 ", "1e3", "1,234.5" parses; "" and None -> None.

    A comma counts only as a thousands separator in groups of three ("1,234"), so "1,5"
    (a European decimal) is an error rather than silently 15. Integral results are ints:
    "1.0" -> 1, 2.0 -> 2.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise CastError(f"{show(value)} is true/false, not a number")
    if isinstance(value, int):
        return value
    if isinstance(value, float | Decimal):
        number = float(value)
    elif isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        if _THOUSANDS.fullmatch(text):
            text = text.replace(",", "")
        if not _NUMBER.fullmatch(text):
            raise CastError(f"{show(value)} is not a number")
        if _INTEGER.fullmatch(text):
            return int(text)
        number = float(text)
    else:
        raise CastError(f"{type_name(value)} is not a number")
    if not math.isfinite(number):
        raise CastError(f"{show(value)} is not a finite number")
    return int(number) if number.is_integer() else number


_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
_INTEGER = re.compile(r"[+-]?\d+", re.ASCII)
_THOUSANDS = re.compile(r"[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?", re.ASCII)


def _integer(value):
    """Like number, but the result must be whole: "7" -> 7, 7.0 -> 7, 2.5 -> error."""
    number = _number(value)
    if isinstance(number, float):
        raise CastError(f"{show(value)} is not a whole number")
    return number


_TRUE = {"true", "yes", "1"}
_FALSE = {"false", "no", "0"}


def _boolean(value):
    """true/yes/1 and false/no/0 in any case, 1/0 as numbers; "" and None -> None."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if not text:
            return None
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    raise CastError(f"{show(value)} is not true/false (use true/yes/1 or false/no/0)")


_DMY = re.compile(r"(\d{1,2})[/.-](\d{1,2})[/.-](\d{4})", re.ASCII)
_YMD = re.compile(r"(\d{4})[/.](\d{1,2})[/.](\d{1,2})", re.ASCII)
_NAMED_DATE_FORMATS = ("%d %b %Y", "%d %B %Y", "%b %d %Y", "%B %d %Y", "%d-%b-%Y")


def _parse_date(text: str) -> dt.date:
    """ISO and common forms -> date; day/month order is guessed only when unambiguous.

    "2024-03-15", "2024/03/15", "20240315", "2024-03-15T10:00:00Z" (the date as written),
    "15 Mar 2024", "March 15, 2024", "15/03/2024" and "03/15/2024" all give 2024-03-15;
    "03/04/2024" is an error (3 April or March 4?).
    """
    text = text.strip()
    match = _YMD.fullmatch(text)
    if match:
        return _make_date(text, int(match[1]), int(match[2]), int(match[3]))
    match = _DMY.fullmatch(text)
    if match:
        first, second, year = int(match[1]), int(match[2]), int(match[3])
        if first > 12 or first == second:
            return _make_date(text, year, second, first)
        if second > 12:
            return _make_date(text, year, first, second)
        raise ValueError(f"{text} could be day/month or month/day; write it as YYYY-MM-DD")
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        pass
    try:
        return dt.datetime.fromisoformat(text).date()
    except ValueError:
        pass
    cleaned = " ".join(text.replace(",", " ").split())
    for fmt in _NAMED_DATE_FORMATS:
        try:
            return dt.datetime.strptime(cleaned, fmt).date()
        except ValueError:
            continue
    raise ValueError(f"{show(text)} is not a date")


def _make_date(text, year, month, day) -> dt.date:
    try:
        return dt.date(year, month, day)
    except ValueError:
        raise ValueError(f"{show(text)} is not a date") from None


def _from_epoch(value) -> dt.datetime:
    # Clay and JavaScript often hold epoch milliseconds; seconds would put those past year 5000.
    seconds = value / 1000 if abs(value) > 100_000_000_000 else value
    try:
        return dt.datetime.fromtimestamp(seconds, tz=dt.UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise CastError(f"{show(value)} is not a timestamp") from exc


def _date(value):
    """Dates, datetimes, text (see _parse_date) and epoch seconds/ms -> "YYYY-MM-DD"."""
    if value is None:
        return None
    if isinstance(value, dt.datetime | dt.date):
        return (value.date() if isinstance(value, dt.datetime) else value).isoformat()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _from_epoch(value).date().isoformat()
    if isinstance(value, str):
        if not value.strip():
            return None
        try:
            return _parse_date(value).isoformat()
        except ValueError as exc:
            raise CastError(str(exc)) from exc
    raise CastError(f"{type_name(value)} is not a date")


def _format_datetime(value: dt.datetime) -> str:
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _datetime(value):
    """ISO 8601 text (zone kept, UTC as Z), a date (-> midnight) or epoch seconds/ms.

    "2024-03-15 10:00" -> "2024-03-15T10:00:00"; "2024-03-15T10:00:00+00:00" ->
    "2024-03-15T10:00:00Z"; 1710496800 -> "2024-03-15T10:00:00Z".
    """
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return _format_datetime(value)
    if isinstance(value, dt.date):
        return dt.datetime.combine(value, dt.time()).isoformat()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _format_datetime(_from_epoch(value))
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        try:
            return _format_datetime(dt.datetime.fromisoformat(text))
        except ValueError:
            pass
        try:
            return dt.datetime.combine(_parse_date(text), dt.time()).isoformat()
        except ValueError as exc:
            raise CastError(f"{show(value)} is not a date and time") from exc
    raise CastError(f"{type_name(value)} is not a date and time")


def _string(value):
    """Text as is; numbers and true/false as JSON writes them; objects as compact JSON."""
    return None if value is None else as_text(jsonable(value))


def _json(value):
    """Text holding JSON (a Clay cell with an object) -> that value; "" -> None."""
    if not isinstance(value, str):
        return value
    if not value.strip():
        return None
    try:
        return strict_loads(value)
    except ValueError as exc:
        raise CastError(f"{show(value)} is not JSON ({exc.args[0]})") from exc


def _reject_constant(name):
    raise ValueError(f"{name} is not JSON")


def strict_loads(text: str):
    # Python's json accepts NaN and Infinity, which no JSON receiver does.
    return json.loads(text, parse_constant=_reject_constant)


def _text_only(function):
    # trim/lower/upper touch text and pass everything else through unchanged.
    return lambda value: function(value) if isinstance(value, str) else value


CASTS = {
    "number": _number,
    "integer": _integer,
    "boolean": _boolean,
    "date": _date,
    "datetime": _datetime,
    "string": _string,
    "json": _json,
    "trim": _text_only(str.strip),
    "lower": _text_only(str.lower),
    "upper": _text_only(str.upper),
}
# What each cast leaves behind, for type checks against a target field; None keeps the kind.
CAST_KINDS = {
    "number": "number",
    "integer": "integer",
    "boolean": "boolean",
    "date": "date",
    "datetime": "datetime",
    "string": "string",
    "json": "any",
    "trim": None,
    "lower": None,
    "upper": None,
}


def apply_casts(value, casts) -> Any:
    """Run casts left to right; raise CastError naming the cast that failed."""
    for name in casts:
        function = CASTS.get(name)
        if function is None:
            raise CastError(f"unknown cast {name!r}")
        try:
            value = function(value)
        except CastError as exc:
            raise CastError(f"{name}: {exc}") from None
    return value


def cast_names(value) -> tuple[str, ...]:
    """Options may give casts as a list or as text: "trim|lower" == ["trim", "lower"]."""
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split("|") if part.strip())
    return tuple(str(part).strip() for part in value)


def jsonable(value):
    """A copy made only of JSON types: Decimal -> number, dates -> ISO text, tuples -> lists."""
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float | Decimal):
        if not math.isfinite(value):
            raise CastError(f"{value} is not a finite number")
        if isinstance(value, Decimal):
            return int(value) if value == value.to_integral_value() else float(value)
        return value
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    if isinstance(value, dt.datetime):
        return _format_datetime(value)
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    raise CastError(f"a {type_name(value)} cannot be sent as JSON")


def as_text(value) -> str:
    """A value inserted inside a longer string: None -> "", True -> "true", {} -> "{}"."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def show(value) -> str:
    """A value as JSON for a message, cut to 40 characters."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


def type_name(value) -> str:
    """For a message: "an object", "a list", else the Python type's name."""
    return {dict: "an object", list: "a list"}.get(type(value), type(value).__name__)
