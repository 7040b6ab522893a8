"""Save-time checks of a template: known columns, required fields, types that fit (pure).

check() reports every problem with its line and column, before a template is saved or used:
a placeholder naming no column ({{Emial}} -> "Did you mean 'Email'?"), a Flow variable the
trigger does not have, a target field the collection lacks or a required one left unmapped,
and a value that cannot fit its field (a placeholder cast to boolean into an integer field).
"""

import difflib
import re

from integrations.mapping.casts import CAST_KINDS, CASTS, CastError, show
from integrations.mapping.templates import BRACKET_INDEX, ParsedTemplate, compile_options
from integrations.mapping.templatesyntax import Arr, Hole, Lit, Obj, Problem, Text

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
    rules, problems = compile_options(options)
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
    parts = BRACKET_INDEX.sub(r".\1", expr).split(".")
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
    if isinstance(root, Arr):
        return [item for item in root.items if isinstance(item, Obj)]
    if not isinstance(root, Obj):
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
    return node.ph.expr if isinstance(node, Hole) else None


def _type_problem(node, field, rules) -> str | None:
    ftype = field.get("type") or "unknown"
    relation = field.get("relation") or {}
    if isinstance(node, Lit):
        return _static_problem(node.value, field, ftype, relation)
    if isinstance(node, Hole):
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
    if isinstance(node, Text):
        if ftype in _INTEGER_TYPES | _DECIMAL_TYPES | {"boolean"}:
            return f"text with placeholders does not fit a {ftype} field; use a whole-value placeholder."
        return None
    if ftype in ("json", "alias", "unknown") or relation:
        return None
    shape = "an object" if isinstance(node, Obj) else "a list"
    if ftype == "csv" and isinstance(node, Arr):
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
            CASTS["integer"](value)
        except CastError:
            return f"{show(value)} is not a whole number."
    elif ftype in _DECIMAL_TYPES:
        try:
            CASTS["number"](value)
        except CastError:
            return f"{show(value)} is not a number."
    elif ftype == "boolean" and not isinstance(value, bool):
        return f"{show(value)} is not true or false."
    elif ftype in ("date", "dateTime", "timestamp"):
        if not isinstance(value, str):
            return f"{show(value)} is not a date."
        try:
            CASTS["datetime"](value)
        except CastError:
            return f"{show(value)} is not a date."
    elif ftype == "time" and not (
        isinstance(value, str) and re.fullmatch(r"\d{2}:\d{2}(:\d{2})?", value)
    ):
        return f"{show(value)} is not a time (HH:MM:SS)."
    elif ftype in _TEXT_TYPES and isinstance(value, bool):
        return f"{show(value)} is true/false, not text."
    return None
