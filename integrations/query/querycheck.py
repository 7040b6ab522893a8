"""Validating a query against a Directus schema: what Directus would refuse or misread (pure).

validate() names each problem by where it is (`filter.0.1`, `fields.2`, `limit`) and says
what is wrong in a sentence, with the field and its type: an unknown field, an operator the
field type does not take (Directus 12.4's own table, see operators.py), a value of the wrong
type, a dynamic value (`$NOW`, `$CURRENT_USER`) that cannot apply, bad paging or meta.
"""

import math
import re
from dataclasses import dataclass
from datetime import datetime, time

from integrations.directus.fieldpaths import (
    PathError,
    article,
    describe_relation,
    did_you_mean,
    fields_of,
    is_to_many,
    resolve,
    split_path,
)
from integrations.directus.operators import (
    GEOMETRY_OPS,
    LIST_OPS,
    OPERATOR_LABELS,
    PAIR_OPS,
    PATTERN_OPS,
    RELATION_OPS,
    VALUELESS_OPS,
    operators_for_type,
)
from integrations.query.filters import Group, Query, QueryParseError, filter_from_json
from integrations.query.querystring import value_text


@dataclass(frozen=True)
class Problem:
    """A validation finding: where (`filter.0.1`, `fields.2`, `limit`) and what, in a sentence."""

    path: str
    message: str


_DATE_TYPES = frozenset({"date", "dateTime", "time", "timestamp"})
_ID_TYPES = frozenset({"uuid", "string", "text"})
_META = ("total_count", "filter_count", "*")


def validate(query: Query, schema: dict) -> list[Problem]:
    """Everything Directus would refuse, or silently mishandle, named by field and type."""
    problems: list[Problem] = []
    if fields_of(schema, query.collection) is None:
        name = query.collection or "(none)"
        hint = did_you_mean(name, (schema.get("collections") or {}).keys())
        message = f"{name} is not a collection in this schema" + (f".{hint}" if hint else "")
        problems.append(Problem("collection", message))
    else:
        if query.filter is not None:
            _check_group(schema, query.collection, query.filter, "filter", "", problems)
        for index, path in enumerate(query.fields):
            _check_path(schema, query.collection, path, f"fields.{index}", problems, wildcard=True)
        for index, path in enumerate(query.sort):
            _check_path(schema, query.collection, path.removeprefix("-"), f"sort.{index}", problems)
        _check_deep(schema, query.collection, query.deep, "deep", problems)
    for name, lowest, words in (
        ("limit", -1, "-1 (all rows) or more"),
        ("offset", 0, "0 or more"),
        ("page", 1, "1 or more (pages count from 1)"),
    ):
        value = getattr(query, name)
        if value is not None and (not _is_int(value) or value < lowest):
            problems.append(
                Problem(name, f"{name} must be a whole number, {words}; got {_show(value)}")
            )
    for index, item in enumerate(query.meta):
        if item not in _META:
            problems.append(
                Problem(f"meta.{index}", f"meta {_show(item)} is not one of {', '.join(_META)}")
            )
        elif item == "*" and len(query.meta) > 1:
            problems.append(Problem(f"meta.{index}", "meta * means all counts; use it alone"))
    return problems


# Directus reads these texts as null/true/false in both query syntaxes for equality and list
# operators (12.4: `label _eq "null"` matches no item labelled "null"), and its insensitive
# pattern operators then fail with 500 (`_icontains "null"`: "Cannot read properties of
# null"). The case-sensitive pattern operators keep them as text.
_COERCED_TEXTS = ("null", "true", "false")
_COERCING_OPS = frozenset({"_eq", "_neq", "_in", "_nin"})
_TEXT_TYPES = frozenset({"string", "text", "csv", "hash", "uuid"})


def warnings(query: Query, schema: dict) -> list[Problem]:
    """What Directus would take but read differently from what was typed: a text value of
    "null", "true" or "false" on a text field (see _COERCED_TEXTS)."""
    found: list[Problem] = []
    if query.filter is not None and fields_of(schema, query.collection) is not None:
        _coerced(schema, query.collection, query.filter, "filter", "", found)
    return found


def _coerced(schema, collection, group, where, prefix, found):
    for index, item in enumerate(group.items):
        here = f"{where}.{index}"
        if isinstance(item, Group):
            _coerced(schema, collection, item, here, prefix, found)
            continue
        try:
            target = resolve(schema, collection, item.field)
        except PathError:
            continue
        if item.op in RELATION_OPS and isinstance(item.value, Group):
            related = (target.info.get("relation") or {}).get("collection")
            if related:
                _coerced(schema, related, item.value, here, f"{prefix}{item.field}.", found)
            continue
        if target.type not in _TEXT_TYPES or target.function:
            continue
        values = item.value if isinstance(item.value, list) else [item.value]
        texts = [v for v in values if isinstance(v, str) and v in _COERCED_TEXTS]
        if not texts:
            continue
        shown, text = f"{prefix}{item.field}", texts[0]
        if item.op in _COERCING_OPS:
            found.append(
                Problem(
                    here,
                    f'{shown} {item.op} "{text}": Directus reads the text "{text}" as {text} '
                    "(in the URL and in JSON alike), so this matches something else. To match "
                    f'the text, use _starts_with "{text}" together with _ends_with "{text}" '
                    "(those keep it as text), or filter by the item's id.",
                )
            )
        elif item.op.startswith(("_i", "_ni")) and item.op in PATTERN_OPS:
            plain = item.op.replace("_ni", "_n").replace("_i", "_")
            found.append(
                Problem(
                    here,
                    f'{shown} {item.op} "{text}": Directus reads the text as {text} and fails '
                    f"(500) on it; use {plain}, which keeps it as text.",
                )
            )


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_path(schema, collection, path, where, problems, wildcard=False):
    segments = split_path(path)
    if "*" in segments:
        if not wildcard:
            problems.append(Problem(where, f"{path}: * cannot be used here"))
            return
        prefix = segments[: segments.index("*")]
        if not prefix:
            return
        path = ".".join(prefix)
    try:
        target = resolve(schema, collection, path)
    except PathError as error:
        problems.append(Problem(where, str(error)))
        return
    if "*" in segments and target.collection and not target.info.get("relation"):
        problems.append(Problem(where, f"{path}.*: {path} is not a relation, so it has no fields"))


def _check_deep(schema, collection, deep, where, problems):
    for key, value in (deep or {}).items():
        here = f"{where}.{key}"
        if key == "_filter" and where != "deep":
            try:
                group = filter_from_json(value)
            except QueryParseError as error:
                problems.append(Problem(here, str(error)))
                continue
            if group is not None:
                _check_group(schema, collection, group, here, "", problems)
        elif not key.startswith("_"):
            info = (fields_of(schema, collection) or {}).get(key)
            related = (info or {}).get("relation") or {}
            if info is None or not related.get("collection"):
                problems.append(Problem(here, f"deep: {collection} has no relational field {key}"))
            elif isinstance(value, dict):
                _check_deep(schema, related["collection"], value, here, problems)


def _check_group(schema, collection, group, where, shown_prefix, problems):
    for index, item in enumerate(group.items):
        here = f"{where}.{index}"
        if isinstance(item, Group):
            _check_group(schema, collection, item, here, shown_prefix, problems)
        else:
            message = _condition_problem(schema, collection, item, here, shown_prefix, problems)
            if message:
                problems.append(Problem(here, message))


def _condition_problem(schema, collection, cond, where, shown_prefix, problems) -> str | None:
    shown = shown_prefix + cond.field
    if cond.op not in OPERATOR_LABELS:
        return f"{cond.op} is not a Directus filter operator (on {shown})"
    try:
        target = resolve(schema, collection, cond.field)
    except PathError as error:
        return f"{shown_prefix}{error}"
    if target.collection is None:
        return None  # the path leaves the schema (e.g. directus_users): nothing to check against
    if cond.op in RELATION_OPS:
        if not is_to_many(target.info) or target.function:
            return (
                f"{cond.op} needs a to-many relation; {shown} is {describe_relation(target.info)}"
            )
        if len(split_path(cond.field)) > 1:
            return f"{cond.op} must sit directly on a to-many field of {collection}, not on {shown}"
        if not isinstance(cond.value, Group):
            return f"{cond.op} on {shown} needs a nested filter"
        related = target.info["relation"]["collection"]
        _check_group(schema, related, cond.value, where, f"{shown}.", problems)
        return None
    ftype = target.type or "unknown"
    compared_as = ftype
    label = f"{ftype} field {shown}"
    if ftype == "alias" and not target.function:
        return (
            f"{cond.op} is not valid for {shown} ({describe_relation(target.info)}): filter it "
            f"with _some or _none, or compare count({target.name})"
        )
    allowed = operators_for_type(compared_as)
    if cond.op not in allowed:
        return f"{cond.op} is not valid for {label} (allowed: {', '.join(allowed)})"
    return _value_problem(cond.op, cond.value, compared_as, shown, target.info)


def _value_problem(op, value, ftype, shown, info) -> str | None:
    if op in VALUELESS_OPS:
        return (
            None
            if isinstance(value, bool)
            else f"{op} on {shown} takes true or false, not {_show(value)}"
        )
    if op == "_json":
        if isinstance(value, dict) and value:
            return None
        return f'_json on {shown} needs JSON paths with conditions, e.g. {{"color": {{"_eq": "blue"}}}}'
    if op in GEOMETRY_OPS:
        if value is None or (isinstance(value, dict) and "type" in value):
            return None
        return f'{op} on {shown} needs a GeoJSON object, such as {{"type": "Point", ...}}'
    if op in LIST_OPS:
        if value in ("$CURRENT_ROLES", "$CURRENT_POLICIES") and op in ("_in", "_nin"):
            return None
        if not isinstance(value, list):
            return f"{op} on {shown} needs a list of values, not {_show(value)}"
        if not value:
            return f"{op} on {shown} needs at least one value"
        if op in PAIR_OPS and len(value) != 2:
            return f"{op} on {shown} needs exactly 2 values (from, to), not {len(value)}"
        for element in value:
            if isinstance(element, dict | list):
                return f"{op} on {shown} takes plain values, not {_show(element)}"
            message = _scalar_problem(op, element, ftype, shown, info)
            if message:
                return message
        return None
    if isinstance(value, dict | list):
        return f"{op} on {shown} takes one value, not {_show(value)}"
    return _scalar_problem(op, value, ftype, shown, info)


def _scalar_problem(op, value, ftype, shown, info) -> str | None:
    # Directus reads these texts as JSON literals in a filter (parseFilter's deepMap), except
    # for its case-sensitive pattern operators, which keep them as text (seen on 12.4).
    keeps_text = op in PATTERN_OPS and not op.startswith(("_i", "_ni"))
    if isinstance(value, str) and not keeps_text:
        value = {"true": True, "false": False, "null": None, "NULL": None}.get(value, value)
    if value is None:
        return None if op in ("_eq", "_neq") else f"{op} on {shown} needs a value"
    if value == "":
        return f"{op} on {shown} has an empty value, which Directus refuses; use _empty or _nempty"
    if isinstance(value, str) and value.startswith("$"):
        handled, message = _dynamic_problem(op, value, ftype, shown)
        if handled:
            return message
    if op in PATTERN_OPS:
        return None  # a text match: any text goes
    message = _type_problem(value, ftype, shown)
    if message or op not in ("_eq", "_neq", "_in", "_nin"):
        return message
    choices = [c.get("value") if isinstance(c, dict) else c for c in info.get("choices") or []]
    if choices and value_text(value) not in {value_text(c) for c in choices}:
        listed = ", ".join(value_text(c) for c in choices)
        return f"{shown} has the choices {listed}; {_show(value)} is not one of them"
    return None


# Directus's adjustDate: `-1 year`, `+2 hours`, `3d`; a bare number counts days.
_ADJUSTMENT = re.compile(
    r"[+-]?(-?\d*\.?\d+) *(milliseconds?|msecs?|ms|seconds?|secs?|s|minutes?|mins?|m|hours?|"
    r"hrs?|h|days?|d|weeks?|w|months?|mth|mo|years?|yrs?|y)?",
    re.IGNORECASE,
)


def _dynamic_problem(op, value, ftype, shown) -> tuple[bool, str | None]:
    """(is this a dynamic variable, what is wrong with it here)."""
    if value.startswith("$NOW"):
        match = re.fullmatch(r"\$NOW(?:\((.*)\))?", value)
        if not match:
            return True, f"{value} is not a dynamic value; use $NOW or $NOW(-1 year)"
        if match.group(1) is not None and not _ADJUSTMENT.fullmatch(match.group(1).strip()):
            return True, f"{value}: Directus cannot read {match.group(1)!r}; try $NOW(-1 year)"
        if ftype not in _DATE_TYPES:
            return True, f"$NOW is a date and time; {shown} is {article(ftype)} {ftype} field"
        return True, None
    if not value.startswith("$CURRENT_"):
        return False, None  # an ordinary text that starts with $
    root, dot, _ = value.partition(".")
    if root not in ("$CURRENT_USER", "$CURRENT_ROLE", "$CURRENT_ROLES", "$CURRENT_POLICIES"):
        known = "$CURRENT_USER, $CURRENT_ROLE, $CURRENT_ROLES, $CURRENT_POLICIES, $NOW"
        return True, f"{value} is not a dynamic value Directus knows ({known})"
    if dot:
        return True, None  # a field of the user or role: its type depends on that field
    if ftype not in _ID_TYPES:
        return True, f"{value} is an id (UUID); {shown} is {article(ftype)} {ftype} field"
    if root in ("$CURRENT_ROLES", "$CURRENT_POLICIES") and op not in ("_in", "_nin"):
        return True, f"{value} is a list of ids; use it with _in or _nin"
    return True, None


_EXAMPLES = {
    "date": "an ISO date (e.g. 2024-01-31 or $NOW)",
    "time": "an ISO time (e.g. 09:30:00)",
    "dateTime": "an ISO date or date-time (e.g. 2024-01-31 or 2024-01-31T09:30:00, or $NOW)",
}


def _type_problem(value, ftype, shown) -> str | None:
    field_words = f"{shown} is {article(ftype)} {ftype} field"
    if ftype in ("integer", "bigInteger"):
        whole = (
            (_is_int(value))
            or (isinstance(value, float) and value.is_integer())
            or (isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value))
        )
        return None if whole else f"{field_words}; {_show(value)} is not a whole number"
    if ftype in ("float", "decimal"):
        number = (
            isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        ) or (
            isinstance(value, str)
            and re.fullmatch(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*", value)
        )
        return None if number else f"{field_words}; {_show(value)} is not a number"
    if ftype == "boolean":
        if isinstance(value, bool) or value in ("true", "false"):
            return None
        return f"{field_words}; {_show(value)} is not true or false"
    if ftype in _DATE_TYPES:
        parse = time.fromisoformat if ftype == "time" else datetime.fromisoformat
        try:
            parse(value.strip())
        except (AttributeError, ValueError):
            example = _EXAMPLES.get(ftype, _EXAMPLES["dateTime"])
            return f"{field_words}; {_show(value)} is not {example}"
        return None
    if ftype == "uuid":
        uuid = re.fullmatch(
            r"[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}", str(value).strip()
        )
        return None if uuid else f"{field_words}; {_show(value)} is not a UUID"
    return None


def _show(value) -> str:
    return f"'{value}'" if isinstance(value, str) else value_text(value)
