"""Mapping templates: a JSON body with {{placeholders}}, parsed once and filled per row (pure).

A template is JSON in which placeholders stand for row values:

    {"email": "{{Email | trim | lower}}",      whole string: the value keeps its type
     "score": {{Score}},                         bare, in value position: the same
     "greeting": "Hello {{First Name}}!",        inside a longer string: inserted as text
     "title": "{{ $trigger.payload.title }}",    Directus Flow variables, by dot path
     "company": "{{author.company.name}}"}       item fields, by dot path

Rendering builds a Python value and json.dumps it: nothing is concatenated into JSON text,
so a row value holding `"`, `\\`, a line break or an emoji always gives valid JSON.

- Whole value (`"{{Score}}"` or bare `{{Score}}`): 42 -> 42, None -> null, {"a": 1} -> {"a": 1}.
- Embedded (`"Hi {{Name}}"`): text; None -> "", True -> "true", {"a": 1} -> '{"a":1}'.
- Missing from the row (not the same as None): the "missing" policy decides, per placeholder
  or by default: "error" (the default: the row fails), "omit" (the member or list element
  holding it is left out) or "null" (that value becomes null). It applies to the whole JSON
  value holding the placeholder, so "Hi {{Name}}" with Name missing is left out, or null.
- Casts, inline (`{{Email | trim | lower}}`) and/or in options, run left to right, inline
  first; see CASTS. `|` splits only when every part after it is a lowercase word, so a
  Clay column "Revenue | Q1" stays one name: `{{Revenue | Q1}}`. An unknown word
  (`{{Email | lowr}}`) is an error.
- Placeholders cannot be object keys; `{{}}` and an unclosed `{{` are errors. There is no
  escape for a literal `{{` in text.

Options (MappingTemplate.options):
    {"missing": "error",
     "placeholders": {"Score": {"casts": ["number"], "missing": "null"},
                      "Email": {"casts": "trim|lower"}}}
"""

import bisect
import datetime as dt
import difflib
import hashlib
import json
import math
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

MISSING_POLICIES = ("error", "omit", "null")


@dataclass
class Problem:
    """One thing wrong with a template, a row or options; positions are 1-based."""

    message: str
    line: int | None = None
    column: int | None = None
    placeholder: str | None = None

    def __str__(self):
        if self.line is None:
            return self.message
        return f"Line {self.line}, column {self.column}: {self.message}"


class TemplateError(Exception):
    """The template (or a row rendered through it) has problems; see .problems."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        super().__init__("; ".join(str(p) for p in self.problems))


class RenderError(TemplateError):
    """A row could not be rendered: missing values (policy "error") or failed casts."""


class MissingValue(LookupError):
    """The row has no value at this expression (a None value is not missing)."""

    def __init__(self, expr: str):
        self.expr = expr
        super().__init__(f"The row has no value for {{{{{expr}}}}}.")


class CastError(ValueError):
    """A value cannot be converted by a cast; the message says why, for a person."""


@dataclass
class Placeholder:
    """One {{...}} in a template: what it reads, how it is cast, where it sits."""

    expr: str
    casts: tuple[str, ...]
    line: int
    column: int
    whole_value: bool
    json_path: str
    quoted: bool = True  # False for a bare {{x}} in value position
    start: int = 0  # offsets of "{{" and just past "}}" in the template text
    end: int = 0


# ---------------------------------------------------------------------------------------------
# Casts


def _number(value):
    """Numbers stay; text like "42", " 1.5 ", "1e3", "1,234.5" parses; "" and None -> None.

    A comma counts only as a thousands separator in groups of three ("1,234"), so "1,5"
    (a European decimal) is an error rather than silently 15. Integral results are ints:
    "1.0" -> 1, 2.0 -> 2.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise CastError(f"{_show(value)} is true/false, not a number")
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
            raise CastError(f"{_show(value)} is not a number")
        if _INTEGER.fullmatch(text):
            return int(text)
        number = float(text)
    else:
        raise CastError(f"{_type_name(value)} is not a number")
    if not math.isfinite(number):
        raise CastError(f"{_show(value)} is not a finite number")
    return int(number) if number.is_integer() else number


_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
_INTEGER = re.compile(r"[+-]?\d+", re.ASCII)
_THOUSANDS = re.compile(r"[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?", re.ASCII)


def _integer(value):
    """Like number, but the result must be whole: "7" -> 7, 7.0 -> 7, 2.5 -> error."""
    number = _number(value)
    if isinstance(number, float):
        raise CastError(f"{_show(value)} is not a whole number")
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
    raise CastError(f"{_show(value)} is not true/false (use true/yes/1 or false/no/0)")


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
    raise ValueError(f"{_show(text)} is not a date")


def _make_date(text, year, month, day) -> dt.date:
    try:
        return dt.date(year, month, day)
    except ValueError:
        raise ValueError(f"{_show(text)} is not a date") from None


def _from_epoch(value) -> dt.datetime:
    # Clay and JavaScript often hold epoch milliseconds; seconds would put those past year 5000.
    seconds = value / 1000 if abs(value) > 100_000_000_000 else value
    try:
        return dt.datetime.fromtimestamp(seconds, tz=dt.UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise CastError(f"{_show(value)} is not a timestamp") from exc


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
    raise CastError(f"{_type_name(value)} is not a date")


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
            raise CastError(f"{_show(value)} is not a date and time") from exc
    raise CastError(f"{_type_name(value)} is not a date and time")


def _string(value):
    """Text as is; numbers and true/false as JSON writes them; objects as compact JSON."""
    return None if value is None else _as_text(_jsonable(value))


def _json(value):
    """Text holding JSON (a Clay cell with an object) -> that value; "" -> None."""
    if not isinstance(value, str):
        return value
    if not value.strip():
        return None
    try:
        return _strict_loads(value)
    except ValueError as exc:
        raise CastError(f"{_show(value)} is not JSON ({exc.args[0]})") from exc


def _reject_constant(name):
    raise ValueError(f"{name} is not JSON")


def _strict_loads(text: str):
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


def _cast_names(value) -> tuple[str, ...]:
    """Options may give casts as a list or as text: "trim|lower" == ["trim", "lower"]."""
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split("|") if part.strip())
    return tuple(str(part).strip() for part in value)


# ---------------------------------------------------------------------------------------------
# Looking values up


_BRACKET_INDEX = re.compile(r"\[\s*(\d+)\s*\]")


def lookup(row: dict, expr: str) -> Any:
    """The value at expr: an exact key first, then a dot path; raise MissingValue.

    lookup({"First Name": "Ada"}, "First Name") -> "Ada" (Clay column names are keys);
    "$trigger.payload.title", "author.company.name", "keys.0" and "keys[0]" walk into
    dicts and lists. At each level the longest matching key wins, so a key containing a
    dot still resolves: {"a.b": {"c": 1}} at "a.b.c" -> 1.
    """
    if isinstance(row, dict) and expr in row:
        return row[expr]
    parts = [part.strip() for part in _BRACKET_INDEX.sub(r".\1", expr).split(".")]
    if any(not part for part in parts):
        raise MissingValue(expr)
    return _walk(row, parts, expr)


def _walk(node, parts, expr):
    if not parts:
        return node
    if isinstance(node, dict):
        for size in range(len(parts), 0, -1):
            key = ".".join(parts[:size])
            if key in node:
                try:
                    return _walk(node[key], parts[size:], expr)
                except MissingValue:
                    continue
    elif isinstance(node, list) and parts[0].isascii() and parts[0].isdigit():
        index = int(parts[0])
        if index < len(node):
            return _walk(node[index], parts[1:], expr)
    raise MissingValue(expr)


# ---------------------------------------------------------------------------------------------
# Parsing


class _Lit:
    __slots__ = ("value", "line", "column")

    def __init__(self, value, line, column):
        self.value, self.line, self.column = value, line, column


class _Hole:
    __slots__ = ("ph",)

    def __init__(self, ph):
        self.ph = ph


class _Text:
    __slots__ = ("parts", "line", "column")

    def __init__(self, parts, line, column):
        self.parts, self.line, self.column = parts, line, column


class _Member:
    __slots__ = ("key", "line", "column", "node")

    def __init__(self, key, line, column, node):
        self.key, self.line, self.column, self.node = key, line, column, node


class _Obj:
    __slots__ = ("members", "line", "column")

    def __init__(self, line, column):
        self.members, self.line, self.column = [], line, column


class _Arr:
    __slots__ = ("items", "line", "column")

    def __init__(self, line, column):
        self.items, self.line, self.column = [], line, column


_CAST_WORD = re.compile(r"[a-z]+(?:_[a-z]+)*")
_PLAIN_KEY = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")
_NUMBER_TOKEN = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?", re.ASCII)
_STRING_CHUNK = re.compile(r'[^"\\\x00-\x1f]+')
_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


def split_inner(inner: str) -> tuple[str, tuple[str, ...]]:
    """The text between {{ and }} -> (expr, casts); see the module docstring for `|`."""
    parts = inner.split("|")
    if len(parts) > 1 and all(_CAST_WORD.fullmatch(part.strip()) for part in parts[1:]):
        return parts[0].strip(), tuple(part.strip() for part in parts[1:])
    return inner.strip(), ()


def _format_path(path) -> str:
    out = "$"
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _PLAIN_KEY.fullmatch(part):
            out += f".{part}"
        else:
            out += f"[{json.dumps(part, ensure_ascii=False)}]"
    return out


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.pos = 0
        self.problems: list[Problem] = []
        self.placeholders: list[Placeholder] = []
        self.line_starts = [0] + [i + 1 for i, ch in enumerate(text) if ch == "\n"]

    def where(self, offset: int) -> tuple[int, int]:
        line = bisect.bisect_right(self.line_starts, offset)
        return line, offset - self.line_starts[line - 1] + 1

    def problem(self, message, offset, placeholder=None):
        self.problems.append(Problem(message, *self.where(offset), placeholder))

    def fail(self, message, offset):
        # Past a syntax error the structure is unknown, so stop with what we have.
        self.problem(message, offset)
        raise TemplateError(self.problems)

    def found(self, offset) -> str:
        if offset >= len(self.text):
            return "the end of the template"
        return json.dumps(self.text[offset : offset + 12].split("\n")[0], ensure_ascii=False)

    def skip_ws(self):
        text, pos = self.text, self.pos
        while pos < len(text) and text[pos] in " \t\n\r":
            pos += 1
        self.pos = pos

    def document(self):
        self.skip_ws()
        if self.pos >= len(self.text):
            self.fail("The template is empty: write a JSON body, for example {}.", 0)
        root = self.value([])
        self.skip_ws()
        if self.pos < len(self.text):
            self.fail(f"Unexpected {self.found(self.pos)} after the end of the JSON.", self.pos)
        if self.problems:
            raise TemplateError(self.problems)
        return root

    def value(self, path):
        self.skip_ws()
        text, pos = self.text, self.pos
        line, column = self.where(pos)
        # "{{{" opens an object whose first key is a placeholder: {{{Key}}: 1} -> key error.
        if text.startswith("{{", pos) and not text.startswith("{{{", pos):
            return self.bare_placeholder(path)
        char = text[pos : pos + 1]
        if char == "{":
            return self.object(path)
        if char == "[":
            return self.array(path)
        if char == '"':
            return self.string_value(path)
        if char and char in "-0123456789":
            match = _NUMBER_TOKEN.match(text, pos)
            if not match:
                self.fail(f"Invalid number {self.found(pos)}.", pos)
            self.pos = match.end()
            number = json.loads(match[0])
            if isinstance(number, float) and not math.isfinite(number):
                self.fail(f"The number {match[0]} is too large.", pos)
            return _Lit(number, line, column)
        for word, literal in (("true", True), ("false", False), ("null", None)):
            if text.startswith(word, pos):
                self.pos += len(word)
                return _Lit(literal, line, column)
        self.fail(f"Expected a JSON value, found {self.found(pos)}.", pos)

    def object(self, path):
        node = _Obj(*self.where(self.pos))
        opened = self.pos
        self.pos += 1
        self.skip_ws()
        if self.text.startswith("}", self.pos):
            self.pos += 1
            return node
        seen = set()
        while True:
            self.skip_ws()
            key_at = self.pos
            if self.text.startswith("{{", key_at):
                close = self.text.find("}}", key_at + 2)
                if close < 0:
                    self.fail("This {{ is never closed with }}.", key_at)
                key = self.text[key_at : close + 2]
                self.pos = close + 2
                self.problem(
                    "Placeholders cannot be object keys: write the key as text.",
                    key_at,
                    split_inner(key[2:-2])[0],
                )
            elif self.text.startswith('"', key_at):
                key, _ = self.string()
                if "{{" in key:
                    self.problem(
                        "Placeholders cannot be object keys: write the key as text.", key_at, key
                    )
            elif key_at >= len(self.text):
                self.fail("This object is never closed: add the missing }.", opened)
            else:
                self.fail(f"Expected a quoted key, found {self.found(key_at)}.", key_at)
            if key in seen:
                self.problem(f'The key "{key}" appears twice in this object.', key_at)
            seen.add(key)
            self.skip_ws()
            if not self.text.startswith(":", self.pos):
                self.fail(f'Expected ":" after the key "{key}".', self.pos)
            self.pos += 1
            member = _Member(key, *self.where(key_at), self.value([*path, key]))
            node.members.append(member)
            if self.close_or_continue("}", opened, "object"):
                return node

    def array(self, path):
        node = _Arr(*self.where(self.pos))
        opened = self.pos
        self.pos += 1
        self.skip_ws()
        if self.text.startswith("]", self.pos):
            self.pos += 1
            return node
        while True:
            node.items.append(self.value([*path, len(node.items)]))
            if self.close_or_continue("]", opened, "list"):
                return node

    def close_or_continue(self, closer, opened, what) -> bool:
        self.skip_ws()
        char = self.text[self.pos : self.pos + 1]
        if char == closer:
            self.pos += 1
            return True
        if char == ",":
            comma = self.pos
            self.pos += 1
            self.skip_ws()
            if self.text.startswith(closer, self.pos):
                self.fail(f"Remove this comma: JSON allows none before {closer}.", comma)
            return False
        if not char:
            self.fail(f"This {what} is never closed: add the missing {closer}.", opened)
        self.fail(f'Expected "," or "{closer}", found {self.found(self.pos)}.', self.pos)

    def string(self) -> tuple[str, list[int]]:
        """Decode the JSON string at pos -> (text, source offset of each decoded character)."""
        text, start = self.text, self.pos
        pos = start + 1
        chars: list[str] = []
        offsets: list[int] = []
        while True:
            chunk = _STRING_CHUNK.match(text, pos)
            if chunk:
                chars.append(chunk[0])
                offsets.extend(range(pos, chunk.end()))
                pos = chunk.end()
            char = text[pos : pos + 1]
            if not char:
                self.fail('This string is never closed: add the missing ".', start)
            if char == '"':
                self.pos = pos + 1
                return "".join(chars), offsets
            if char != "\\":
                self.fail(
                    "A line break or control character inside a string: write it as \\n "
                    "(or \\t, \\u00XX).",
                    pos,
                )
            escape = text[pos + 1 : pos + 2]
            if escape in _ESCAPES:
                chars.append(_ESCAPES[escape])
                offsets.append(pos)
                pos += 2
                continue
            if escape != "u" or not re.fullmatch(r"[0-9a-fA-F]{4}", text[pos + 2 : pos + 6]):
                self.fail(f"Invalid escape \\{escape} in a string.", pos)
            code, after = int(text[pos + 2 : pos + 6], 16), pos + 6
            low = text[after + 2 : after + 6]
            if (
                0xD800 <= code < 0xDC00
                and text.startswith("\\u", after)
                and re.fullmatch(r"[dD][c-fC-F][0-9a-fA-F]{2}", low)
            ):
                code = 0x10000 + ((code - 0xD800) << 10) + (int(low, 16) - 0xDC00)
                after += 6
            chars.append(chr(code))
            offsets.append(pos)
            pos = after

    def string_value(self, path):
        line, column = self.where(self.pos)
        text, offsets = self.string()
        parts = []
        literal_from = 0
        search = 0
        while True:
            opening = text.find("{{", search)
            if opening < 0:
                break
            close = text.find("}}", opening + 2)
            if close < 0:
                self.problem("This {{ is never closed with }}.", offsets[opening])
                break
            inner = text[opening + 2 : close]
            if opening > literal_from:
                parts.append(text[literal_from:opening])
            start, end = offsets[opening], offsets[close + 1] + 1
            whole = opening == 0 and close + 2 == len(text)
            parts.append(self.placeholder(inner, start, end, whole, True, path))
            literal_from = search = close + 2
        if not parts:
            return _Lit(text, line, column)
        if literal_from < len(text):
            parts.append(text[literal_from:])
        if len(parts) == 1 and isinstance(parts[0], Placeholder) and parts[0].whole_value:
            return _Hole(parts[0])
        return _Text(parts, line, column)

    def bare_placeholder(self, path):
        start = self.pos
        close = self.text.find("}}", start + 2)
        if close < 0 or "\n" in self.text[start:close]:
            self.fail("This {{ is never closed with }} on its line.", start)
        self.pos = close + 2
        return _Hole(
            self.placeholder(self.text[start + 2 : close], start, close + 2, True, False, path)
        )

    def placeholder(self, inner, start, end, whole, quoted, path) -> Placeholder:
        expr, casts = split_inner(inner)
        if "{{" in inner:
            self.problem("A {{ opens inside another placeholder.", start, expr)
        elif not expr:
            self.problem("Empty placeholder {{}}: name a column or field inside.", start)
        for cast in casts:
            if cast not in CASTS:
                self.problem(
                    f"Unknown cast {cast!r}; known casts: {', '.join(CASTS)}.", start, expr
                )
        ph = Placeholder(
            expr, casts, *self.where(start), whole, _format_path(path), quoted, start, end
        )
        self.placeholders.append(ph)
        return ph


class ParsedTemplate:
    """A parsed template: its placeholders, and render() to fill it from a row."""

    def __init__(self, text: str, root, placeholders: list[Placeholder]):
        self.text = text
        self.root = root
        self.placeholders = placeholders

    def render(self, row: dict, options: dict | None = None) -> Any:
        """The JSON-ready value for this row; raise RenderError listing every problem."""
        rules, problems = _compile_options(options)
        if problems:
            raise TemplateError(problems)
        value = _render(self.root, row, rules, problems)
        if problems:
            raise RenderError(problems)
        return None if value is _OMIT else value

    def render_json(self, row: dict, options: dict | None = None) -> str:
        """render() as JSON text (UTF-8 characters kept, not \\u-escaped)."""
        return json.dumps(self.render(row, options), ensure_ascii=False, allow_nan=False)

    def as_object(self, write=None) -> Any:
        """The template as plain JSON, each placeholder written back as text by write(ph).

        Bare placeholders become strings: {"n": {{N}}} -> {"n": "{{N}}"}, which renders the
        same (a whole-string placeholder keeps the type), and is what a Directus request
        operation takes as an object body.
        """
        return _skeleton(self.root, write or placeholder_text)

    def rewrite(self, write) -> str:
        """The template text with each placeholder replaced by write(ph), layout kept."""
        out, last = [], 0
        for ph in sorted(self.placeholders, key=lambda p: p.start):
            replacement = write(ph)
            if ph.quoted:
                replacement = json.dumps(replacement, ensure_ascii=False)[1:-1]
            out += [self.text[last : ph.start], replacement]
            last = ph.end
        out.append(self.text[last:])
        return "".join(out)


def placeholder_text(ph: Placeholder) -> str:
    """{{expr | cast | cast}}, as an operator would write it."""
    return "{{" + " | ".join((ph.expr, *ph.casts)) + "}}"


def parse(template_text: str) -> ParsedTemplate:
    """Parse a template; raise TemplateError with every problem found and its position."""
    parser = _Parser(template_text)
    root = parser.document()
    return ParsedTemplate(template_text, root, parser.placeholders)


def _skeleton(node, write):
    if isinstance(node, _Lit):
        return node.value
    if isinstance(node, _Hole):
        return write(node.ph)
    if isinstance(node, _Text):
        return "".join(part if isinstance(part, str) else write(part) for part in node.parts)
    if isinstance(node, _Obj):
        return {m.key: _skeleton(m.node, write) for m in node.members}
    return [_skeleton(item, write) for item in node.items]


# ---------------------------------------------------------------------------------------------
# Rendering


_OMIT = object()  # leave the value out
_NULL = object()  # a missing value under the "null" policy (distinct from a present None)


@dataclass
class _Rules:
    missing: str
    casts: dict[str, tuple[str, ...]]
    missing_for: dict[str, str]


def _compile_options(options) -> tuple[_Rules, list[Problem]]:
    options = options or {}
    problems = []
    default = options.get("missing", "error")
    if default not in MISSING_POLICIES:
        problems.append(Problem(f'"missing" must be one of {", ".join(MISSING_POLICIES)}.'))
    rules = _Rules(default, {}, {})
    for expr, spec in (options.get("placeholders") or {}).items():
        spec = spec or {}
        casts = _cast_names(spec.get("casts"))
        for cast in casts:
            if cast not in CASTS:
                problems.append(
                    Problem(f"Unknown cast {cast!r} for {{{{{expr}}}}}.", placeholder=expr)
                )
        policy = spec.get("missing")
        if policy is not None and policy not in MISSING_POLICIES:
            problems.append(
                Problem(
                    f'"missing" for {{{{{expr}}}}} must be one of {", ".join(MISSING_POLICIES)}.',
                    placeholder=expr,
                )
            )
        rules.casts[expr] = casts
        if policy is not None:
            rules.missing_for[expr] = policy
    return rules, problems


def _render(node, row, rules, problems):
    kind = type(node)
    if kind is _Lit:
        return node.value
    if kind is _Hole:
        value = _fill(node.ph, row, rules, problems)
        return None if value is _NULL else value
    if kind is _Text:
        texts, null = [], False
        for part in node.parts:
            if isinstance(part, str):
                texts.append(part)
                continue
            value = _fill(part, row, rules, problems)
            if value is _OMIT:
                return _OMIT
            if value is _NULL:
                null = True
            else:
                texts.append(_as_text(value))
        return None if null else "".join(texts)
    if kind is _Obj:
        result = {}
        for member in node.members:
            value = _render(member.node, row, rules, problems)
            if value is not _OMIT:
                result[member.key] = value
        return result
    values = (_render(item, row, rules, problems) for item in node.items)
    return [value for value in values if value is not _OMIT]


def _fill(ph, row, rules, problems):
    try:
        value = lookup(row, ph.expr)
    except MissingValue as exc:
        policy = rules.missing_for.get(ph.expr, rules.missing)
        if policy == "null":
            return _NULL
        if policy == "error":
            problems.append(Problem(str(exc), ph.line, ph.column, ph.expr))
        return _OMIT
    try:
        return _jsonable(apply_casts(value, ph.casts + rules.casts.get(ph.expr, ())))
    except CastError as exc:
        problems.append(Problem(f"{{{{{ph.expr}}}}}: {exc}.", ph.line, ph.column, ph.expr))
        return _OMIT


def _jsonable(value):
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
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, dt.datetime):
        return _format_datetime(value)
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    raise CastError(f"a {_type_name(value)} cannot be sent as JSON")


def _as_text(value) -> str:
    """A value inserted inside a longer string: None -> "", True -> "true", {} -> "{}"."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _show(value) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


def _type_name(value) -> str:
    return {dict: "an object", list: "a list"}.get(type(value), type(value).__name__)


def payload_hash(value) -> str:
    """sha256 of canonical JSON (sorted keys, compact): equal payloads, equal hash.

    1 and 1.0 hash differently, as they are sent differently.
    """
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


# ---------------------------------------------------------------------------------------------
# Checks at save time


_INTEGER_TYPES = {"integer", "bigInteger"}
_DECIMAL_TYPES = {"float", "decimal"}
_DATE_TYPES = {"date", "dateTime", "timestamp", "time"}
_TEXT_TYPES = {"string", "text", "uuid", "hash", "csv"}
# Cast results a field type cannot take; types not listed take anything.
_CAST_CONFLICTS = {
    **dict.fromkeys(_INTEGER_TYPES | _DECIMAL_TYPES, {"boolean", "date", "datetime", "string"}),
    "boolean": {"number", "integer", "date", "datetime", "string"},
    **dict.fromkeys(_DATE_TYPES, {"number", "integer", "boolean"}),
}
_TRIGGER_KEYS = ("event", "payload", "key", "keys", "collection")
_ACCOUNTABILITY_KEYS = ("user", "role", "roles", "admin", "app", "ip", "userAgent", "origin")


def check(
    parsed: ParsedTemplate,
    *,
    columns: list[str] | None = None,
    target_fields: dict | None = None,
    options: dict | None = None,
    partial: bool = False,
) -> list[Problem]:
    """Save-time checks: known columns, required fields mapped, types that fit; with positions.

    columns: the Clay columns (or item field paths) placeholders may name; `$trigger...`
    expressions are checked against the Flow trigger's shape, and `$trigger.payload.x`
    against columns when given. target_fields: the collection's "fields" dict from the
    schema. partial=True for an update (PATCH), where required fields need not be sent.
    """
    rules, problems = _compile_options(options)
    exprs = {ph.expr for ph in parsed.placeholders}
    for expr in rules.casts:
        if expr not in exprs:
            problems.append(
                Problem(
                    f"Options name {{{{{expr}}}}}, which the template does not use.",
                    placeholder=expr,
                )
            )
    for ph in parsed.placeholders:
        message = _check_expr(ph.expr, columns)
        if message:
            problems.append(Problem(message, ph.line, ph.column, ph.expr))
    if target_fields is not None:
        for record in _records(parsed.root):
            problems += _check_record(record, target_fields, rules, partial)
    return problems


def _check_expr(expr: str, columns) -> str | None:
    if expr.startswith("$"):
        return _check_flow_expr(expr, columns)
    if columns is None or _known(expr, columns):
        return None
    return f"No column named {expr!r}.{_suggest(expr, columns)}"


def _known(expr, columns) -> bool:
    # "author.company.name" is known when a column is "author" (an object) or the full path,
    # and "author" when a column is "author.company.name" (its parent).
    parts = expr.split(".")
    prefixes = {".".join(parts[:size]) for size in range(1, len(parts) + 1)}
    return any(col in prefixes or col.startswith(expr + ".") for col in columns)


def _suggest(name, choices) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" Did you mean {close[0]!r}?" if close else ""


def _check_flow_expr(expr, columns) -> str | None:
    parts = _BRACKET_INDEX.sub(r".\1", expr).split(".")
    root, rest = parts[0], parts[1:]
    if root == "$trigger":
        if not rest:
            return None
        if rest[0] not in _TRIGGER_KEYS:
            return f"$trigger has {', '.join(_TRIGGER_KEYS)}; not {rest[0]!r}."
        if rest[0] == "payload" and len(rest) > 1 and columns is not None:
            field = ".".join(rest[1:])
            if not _known(field, columns):
                return f"The item has no field {field!r}.{_suggest(field, columns)}"
        if rest[0] == "keys" and len(rest) > 1 and not rest[1].isdigit():
            return "$trigger.keys is a list: use $trigger.keys or $trigger.keys.0."
        return None
    if root == "$accountability":
        if rest and rest[0] not in _ACCOUNTABILITY_KEYS:
            return f"$accountability has {', '.join(_ACCOUNTABILITY_KEYS)}; not {rest[0]!r}."
        return None
    if root in ("$last", "$env"):
        return None
    return f"{root} is not a Flow variable ($trigger, $accountability, $last, $env)."


def _records(root) -> list:
    """The objects that become items: the body, each element of a list, or its "data"."""
    if isinstance(root, _Arr):
        return [item for item in root.items if isinstance(item, _Obj)]
    if not isinstance(root, _Obj):
        return []
    keys = {m.key for m in root.members}
    if "data" in keys and keys <= {"data", "keys", "query"}:
        return _records(next(m.node for m in root.members if m.key == "data"))
    return [root]


def _check_record(record, fields, rules, partial) -> list[Problem]:
    problems = []
    present = set()
    for member in record.members:
        present.add(member.key)
        field = fields.get(member.key)
        if field is None:
            problems.append(
                Problem(
                    f"The collection has no field {member.key!r}.{_suggest(member.key, fields)}",
                    member.line,
                    member.column,
                )
            )
            continue
        message = _type_problem(member.node, field, rules)
        if message:
            problems.append(
                Problem(
                    f"{member.key}: {message}", member.line, member.column, _expr_of(member.node)
                )
            )
    if not partial:
        for name, field in fields.items():
            if field.get("required") and name not in present:
                problems.append(
                    Problem(f"Required field {name!r} is not mapped.", record.line, record.column)
                )
    return problems


def _expr_of(node):
    return node.ph.expr if isinstance(node, _Hole) else None


def _type_problem(node, field, rules) -> str | None:
    ftype = field.get("type") or "unknown"
    relation = field.get("relation") or {}
    if isinstance(node, _Lit):
        return _static_problem(node.value, field, ftype, relation)
    if isinstance(node, _Hole):
        ph = node.ph
        policy = rules.missing_for.get(ph.expr, rules.missing)
        if policy == "omit" and field.get("required"):
            return f"required, but {{{{{ph.expr}}}}} is left out when missing."
        if policy == "null" and field.get("nullable") is False:
            return f"cannot be null, but {{{{{ph.expr}}}}} becomes null when missing."
        kind = _cast_kind(ph.casts + rules.casts.get(ph.expr, ()))
        if kind in _CAST_CONFLICTS.get(ftype, ()):
            return f"{{{{{ph.expr}}}}} is cast to {kind}, which does not fit a {ftype} field."
        return None
    if isinstance(node, _Text):
        if ftype in _INTEGER_TYPES | _DECIMAL_TYPES | {"boolean"}:
            return f"text with placeholders does not fit a {ftype} field; use a whole-value placeholder."
        return None
    if ftype in ("json", "alias", "unknown") or relation:
        return None
    shape = "an object" if isinstance(node, _Obj) else "a list"
    if ftype == "csv" and isinstance(node, _Arr):
        return None
    return f"{shape} does not fit a {ftype} field."


def _cast_kind(casts) -> str | None:
    kind = None
    for cast in casts:
        kind = CAST_KINDS.get(cast) or kind
    return kind


def _static_problem(value, field, ftype, relation) -> str | None:
    """A fixed value against the field type: "abc" into an integer field is wrong."""
    if value is None:
        return "cannot be null." if field.get("nullable") is False else None
    choices = field.get("choices")
    if choices and isinstance(value, str) and value not in choices:
        return f"{value!r} is not one of {', '.join(map(str, choices))}."
    if ftype in _INTEGER_TYPES:
        if relation and isinstance(value, str):
            return None  # a related item's key; some collections use text keys
        try:
            _integer(value)
        except CastError:
            return f"{_show(value)} is not a whole number."
    elif ftype in _DECIMAL_TYPES:
        try:
            _number(value)
        except CastError:
            return f"{_show(value)} is not a number."
    elif ftype == "boolean" and not isinstance(value, bool):
        return f"{_show(value)} is not true or false."
    elif ftype in ("date", "dateTime", "timestamp"):
        if not isinstance(value, str):
            return f"{_show(value)} is not a date."
        try:
            _datetime(value)
        except CastError:
            return f"{_show(value)} is not a date."
    elif ftype == "time" and not (
        isinstance(value, str) and re.fullmatch(r"\d{2}:\d{2}(:\d{2})?", value)
    ):
        return f"{_show(value)} is not a time (HH:MM:SS)."
    elif ftype in _TEXT_TYPES and isinstance(value, bool):
        return f"{_show(value)} is true/false, not text."
    return None


# ---------------------------------------------------------------------------------------------
# The field mapper: rows <-> body


@dataclass(frozen=True)
class MappingRow:
    """One line of the field mapper: target field <- column, item field or static value.

    For source_kind "static", source is what the operator typed: JSON when it parses as
    JSON, else plain text. "draft" -> "draft", "10" -> 10, "true" -> true, '"10"' -> "10",
    '{"a": 1}' -> {"a": 1}.
    """

    target_field: str
    source_kind: str  # "column" | "static" | "field"
    source: str
    casts: tuple[str, ...] = ()


class MappingRows(list):
    """The rows a body could be expressed as; has_more is True when the body holds more."""

    has_more: bool = False


SOURCE_KINDS = ("column", "static", "field")


def static_value(source: str) -> Any:
    """A static row's source -> its JSON value (see MappingRow)."""
    try:
        return _strict_loads(source)
    except ValueError:
        return source


def static_source(value: Any) -> str:
    """A JSON value -> the text an operator would type for it; static_value() inverts it."""
    if isinstance(value, str):
        try:
            _strict_loads(value)
        except ValueError:
            return value
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


def body_from_mapping(rows: list[MappingRow], base: str | None = None) -> str:
    """Rows -> template text; with base, members the rows cannot express are kept as is.

    A member of base that a row could express but no row names is dropped (the operator
    removed that row); rows replace members of the same key; new rows go last.
    """
    problems = []
    by_target = {}
    for row in rows:
        message = _row_problem(row)
        if not message and row.target_field in by_target:
            message = f"Two rows map {row.target_field!r}."
        if message:
            problems.append(
                Problem(message, placeholder=row.source if row.source_kind != "static" else None)
            )
        by_target[row.target_field] = row
    if problems:
        raise TemplateError(problems)
    body = {}
    if base is not None and base.strip():
        root = parse(base).root
        if not isinstance(root, _Obj):
            raise TemplateError(
                [Problem("The body is not a JSON object; rows cannot be merged into it.")]
            )
        for member in root.members:
            if member.key in by_target:
                body[member.key] = _row_value(by_target[member.key])
            elif _row_for(member.key, member.node, "column") is None:
                body[member.key] = _skeleton(member.node, placeholder_text)
    for target, row in by_target.items():
        body.setdefault(target, _row_value(row))
    return json.dumps(body, ensure_ascii=False, indent=2)


def _row_problem(row: MappingRow) -> str | None:
    if not row.target_field:
        return "A row has no target field."
    if row.source_kind not in SOURCE_KINDS:
        return f"Unknown source kind {row.source_kind!r}."
    unknown = [cast for cast in row.casts if cast not in CASTS]
    if unknown:
        return f"Unknown cast {unknown[0]!r} on {row.target_field!r}."
    if row.source_kind == "static":
        return None
    if not row.source.strip() or "{{" in row.source or "}}" in row.source:
        return f"{row.target_field!r} needs a column or field name without {{{{ or }}}}."
    if split_inner(row.source) != (row.source.strip(), ()):
        return f"{row.source!r} reads as a name with casts; rename the column."
    return None


def _row_value(row: MappingRow):
    if row.source_kind == "static":
        return static_value(row.source)
    return "{{" + " | ".join((row.source.strip(), *row.casts)) + "}}"


def mapping_from_body(text: str, *, placeholder_kind: str = "column") -> MappingRows:
    """Template text -> mapper rows for each top-level member a row can express.

    Whole-value placeholders become rows of placeholder_kind ("column" for Clay columns,
    "field" for item fields; `$` Flow variables are always "field"); placeholder-free
    values become static rows. Embedded placeholders ("Hi {{Name}}") and placeholders
    nested in objects or lists cannot: those members set has_more.
    """
    root = parse(text).root
    rows = MappingRows()
    if not isinstance(root, _Obj):
        rows.has_more = True
        return rows
    for member in root.members:
        row = _row_for(member.key, member.node, placeholder_kind)
        if row is None:
            rows.has_more = True
        else:
            rows.append(row)
    return rows


def _row_for(key, node, placeholder_kind) -> MappingRow | None:
    if isinstance(node, _Hole):
        kind = "field" if node.ph.expr.startswith("$") else placeholder_kind
        return MappingRow(key, kind, node.ph.expr, node.ph.casts)
    if isinstance(node, _Text):
        return None
    if isinstance(node, _Lit):
        return MappingRow(key, "static", static_source(node.value))
    if _has_placeholder(node):
        return None
    return MappingRow(key, "static", static_source(_skeleton(node, placeholder_text)))


def _has_placeholder(node) -> bool:
    if isinstance(node, _Hole | _Text):
        return True
    if isinstance(node, _Obj):
        return any(_has_placeholder(m.node) for m in node.members)
    if isinstance(node, _Arr):
        return any(_has_placeholder(item) for item in node.items)
    return False
