"""Template syntax: JSON with {{placeholders}}, parsed into a tree with positions (pure).

The language itself (whole and embedded placeholders, casts after `|`, dot paths) is
described in mapping.py, which builds on this parser. Here: the tree a template parses
into, the Placeholder it records for each {{...}} (line, column, JSON path, offsets), and
the Problem/TemplateError that report what is wrong, every problem at once where the
structure allows, with its 1-based line and column.
"""

import bisect
import json
import math
import re
from dataclasses import dataclass

from integrations import jsontext
from integrations.mapping.casts import CASTS


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
# The tree: Lit (a JSON value without placeholders), Hole (a whole-value placeholder),
# Text (a string with embedded placeholders), Obj of Members, and Arr.


class Lit:
    __slots__ = ("value", "line", "column")

    def __init__(self, value, line, column):
        self.value, self.line, self.column = value, line, column


class Hole:
    __slots__ = ("ph",)

    def __init__(self, ph):
        self.ph = ph


class Text:
    __slots__ = ("parts", "line", "column")

    def __init__(self, parts, line, column):
        self.parts, self.line, self.column = parts, line, column


class Member:
    __slots__ = ("key", "line", "column", "node")

    def __init__(self, key, line, column, node):
        self.key, self.line, self.column, self.node = key, line, column, node


class Obj:
    __slots__ = ("members", "line", "column")

    def __init__(self, line, column):
        self.members, self.line, self.column = [], line, column


class Arr:
    __slots__ = ("items", "line", "column")

    def __init__(self, line, column):
        self.items, self.line, self.column = [], line, column


# ---------------------------------------------------------------------------------------------
# Parsing


_CAST_WORD = re.compile(r"[a-z]+(?:_[a-z]+)*")
_PLAIN_KEY = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")
_NUMBER_TOKEN = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?", re.ASCII)
_STRING_CHUNK = re.compile(r'[^"\\\x00-\x1f]+')
_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


def split_inner(inner: str) -> tuple[str, tuple[str, ...]]:
    """The text between {{ and }} -> (expr, casts); see mapping.py's docstring for `|`."""
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
            try:
                number = json.loads(match[0])
            except ValueError:  # int() refuses 4,300 digits and more
                self.fail(f"The number {match[0][:20]}… has too many digits.", pos)
            if isinstance(number, float) and not math.isfinite(number):
                self.fail(f"The number {match[0]} is too large.", pos)
            return Lit(number, line, column)
        for word, literal in (("true", True), ("false", False), ("null", None)):
            if text.startswith(word, pos):
                self.pos += len(word)
                return Lit(literal, line, column)
        self.fail(f"Expected a JSON value, found {self.found(pos)}.", pos)

    def too_deep(self, path):
        if len(path) >= jsontext.MAX_DEPTH:
            self.fail(
                f"The template is nested more than {jsontext.MAX_DEPTH} levels deep.", self.pos
            )

    def object(self, path):
        self.too_deep(path)
        node = Obj(*self.where(self.pos))
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
            member = Member(key, *self.where(key_at), self.value([*path, key]))
            node.members.append(member)
            if self.close_or_continue("}", opened, "object"):
                return node

    def array(self, path):
        self.too_deep(path)
        node = Arr(*self.where(self.pos))
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
            elif 0xD800 <= code < 0xE000:
                self.fail(
                    f"\\u{code:04x} is half of a character (a lone surrogate): write the "
                    "character itself, or both halves of its pair.",
                    pos,
                )
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
            return Lit(text, line, column)
        if literal_from < len(text):
            parts.append(text[literal_from:])
        if len(parts) == 1 and isinstance(parts[0], Placeholder) and parts[0].whole_value:
            return Hole(parts[0])
        return Text(parts, line, column)

    def bare_placeholder(self, path):
        start = self.pos
        close = self.text.find("}}", start + 2)
        if close < 0 or "\n" in self.text[start:close]:
            self.fail("This {{ is never closed with }} on its line.", start)
        self.pos = close + 2
        return Hole(
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


def placeholder_text(ph: Placeholder) -> str:
    """{{expr | cast | cast}}, as an operator would write it."""
    return "{{" + " | ".join((ph.expr, *ph.casts)) + "}}"


def parse_tree(template_text: str) -> tuple[object, list[Placeholder]]:
    """(root node, placeholders) of a template; raise TemplateError with every problem found."""
    parser = _Parser(template_text)
    root = parser.document()
    return root, parser.placeholders


def skeleton(node, write):
    """The tree as plain JSON, each placeholder replaced by write(ph)."""
    if isinstance(node, Lit):
        return node.value
    if isinstance(node, Hole):
        return write(node.ph)
    if isinstance(node, Text):
        return "".join(part if isinstance(part, str) else write(part) for part in node.parts)
    if isinstance(node, Obj):
        return {m.key: skeleton(m.node, write) for m in node.members}
    return [skeleton(item, write) for item in node.items]
