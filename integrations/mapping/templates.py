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
  first; see casts.py. `|` splits only when every part after it is a lowercase word, so a
  Clay column "Revenue | Q1" stays one name: `{{Revenue | Q1}}`. An unknown word
  (`{{Email | lowr}}`) is an error.
- Placeholders cannot be object keys; `{{}}` and an unclosed `{{` are errors. There is no
  escape for a literal `{{` in text.

Options (MappingTemplate.options):
    {"missing": "error",
     "placeholders": {"Score": {"casts": ["number"], "missing": "null"},
                      "Email": {"casts": "trim|lower"}}}

The parser is templatesyntax.py, the casts casts.py; save-time checks against columns and
target fields are templatecheck.py, and the field mapper's rows fieldmapper.py.
"""

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from integrations.mapping.casts import CASTS, CastError, apply_casts, as_text, cast_names, jsonable

# Still importable from here for integrations/runs/writeback.py; new code imports fieldmapper.
from integrations.mapping.fieldmapper import MappingRow, body_from_mapping  # noqa: F401
from integrations.mapping.templatesyntax import (
    Hole,
    Lit,
    Obj,
    Placeholder,
    Problem,
    TemplateError,
    Text,
    parse_tree,
    placeholder_text,
    skeleton,
)

MISSING_POLICIES = ("error", "omit", "null")


class RenderError(TemplateError):
    """A row could not be rendered: missing values (policy "error") or failed casts."""


class MissingValue(LookupError):
    """The row has no value at this expression (a None value is not missing)."""

    def __init__(self, expr: str):
        self.expr = expr
        super().__init__(f"The row has no value for {{{{{expr}}}}}.")


# ---------------------------------------------------------------------------------------------
# Looking values up


BRACKET_INDEX = re.compile(r"\[\s*(\d+)\s*\]")


def lookup(row: dict, expr: str) -> Any:
    """The value at expr: an exact key first, then a dot path; raise MissingValue.

    lookup({"First Name": "Ada"}, "First Name") -> "Ada" (Clay column names are keys);
    "$trigger.payload.title", "author.company.name", "keys.0" and "keys[0]" walk into
    dicts and lists. At each level the longest matching key wins, so a key containing a
    dot still resolves: {"a.b": {"c": 1}} at "a.b.c" -> 1.
    """
    if isinstance(row, dict) and expr in row:
        return row[expr]
    parts = [part.strip() for part in BRACKET_INDEX.sub(r".\1", expr).split(".")]
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
# Parsed templates


class ParsedTemplate:
    """A parsed template: its placeholders, and render() to fill it from a row."""

    def __init__(self, text: str, root, placeholders: list[Placeholder]):
        self.text = text
        self.root = root
        self.placeholders = placeholders

    def render(self, row: dict, options: dict | None = None) -> Any:
        """The JSON-ready value for this row; raise RenderError listing every problem."""
        rules, problems = compile_options(options)
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
        return skeleton(self.root, write or placeholder_text)

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


def parse(template_text: str) -> ParsedTemplate:
    """Parse a template; raise TemplateError with every problem found and its position."""
    root, placeholders = parse_tree(template_text)
    return ParsedTemplate(template_text, root, placeholders)


# ---------------------------------------------------------------------------------------------
# Rendering


_OMIT = object()  # leave the value out
_NULL = object()  # a missing value under the "null" policy (distinct from a present None)


@dataclass
class Rules:
    """Options read once: the default missing policy, and casts and policies per expression."""

    missing: str
    casts: dict[str, tuple[str, ...]]
    missing_for: dict[str, str]


def compile_options(options) -> tuple[Rules, list[Problem]]:
    """Options (see the module docstring) -> Rules, and what is wrong with them."""
    options = options or {}
    problems = []
    default = options.get("missing", "error")
    if default not in MISSING_POLICIES:
        problems.append(Problem(f'"missing" must be one of {", ".join(MISSING_POLICIES)}.'))
    rules = Rules(default, {}, {})
    placeholders = options.get("placeholders") or {}
    if not isinstance(placeholders, dict):
        problems.append(Problem('"placeholders" must be an object of {"expr": {...}}.'))
        placeholders = {}
    for expr, spec in placeholders.items():
        spec = spec or {}
        if not isinstance(spec, dict):
            problems.append(
                Problem(
                    f'The options for {{{{{expr}}}}} must be an object, such as {{"casts": []}}.',
                    placeholder=expr,
                )
            )
            continue
        casts = cast_names(spec.get("casts"))
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
    if kind is Lit:
        return node.value
    if kind is Hole:
        value = _fill(node.ph, row, rules, problems)
        return None if value is _NULL else value
    if kind is Text:
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
                texts.append(as_text(value))
        return None if null else "".join(texts)
    if kind is Obj:
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
        return jsonable(apply_casts(value, ph.casts + rules.casts.get(ph.expr, ())))
    except CastError as exc:
        problems.append(Problem(f"{{{{{ph.expr}}}}}: {exc}.", ph.line, ph.column, ph.expr))
        return _OMIT


def payload_hash(value) -> str:
    """sha256 of canonical JSON (sorted keys, compact): equal payloads, equal hash.

    1 and 1.0 hash differently, as they are sent differently.
    """
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()
