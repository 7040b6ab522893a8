"""The field mapper: a template body as rows, target field <- column, item field or value (pure).

The mapper page edits a body one row per top-level member. body_from_mapping writes rows
as template text; mapping_from_body reads the rows back from a body, and says (has_more)
when the body holds what rows cannot express, which is then kept as is.
"""

import json
from dataclasses import dataclass
from typing import Any

from integrations.mapping.casts import CASTS, strict_loads
from integrations.mapping.templatesyntax import (
    Arr,
    Hole,
    Lit,
    Obj,
    Problem,
    TemplateError,
    Text,
    parse_tree,
    placeholder_text,
    skeleton,
    split_inner,
)


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
        return strict_loads(source)
    except ValueError:
        return source


def static_source(value: Any) -> str:
    """A JSON value -> the text an operator would type for it; static_value() inverts it."""
    if isinstance(value, str):
        try:
            strict_loads(value)
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
        root = parse_tree(base)[0]
        if not isinstance(root, Obj):
            raise TemplateError(
                [Problem("The body is not a JSON object; rows cannot be merged into it.")]
            )
        for member in root.members:
            if member.key in by_target:
                body[member.key] = _row_value(by_target[member.key])
            elif _row_for(member.key, member.node, "column") is None:
                body[member.key] = skeleton(member.node, placeholder_text)
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
    root = parse_tree(text)[0]
    rows = MappingRows()
    if not isinstance(root, Obj):
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
    if isinstance(node, Hole):
        kind = "field" if node.ph.expr.startswith("$") else placeholder_kind
        return MappingRow(key, kind, node.ph.expr, node.ph.casts)
    if isinstance(node, Text):
        return None
    if isinstance(node, Lit):
        return MappingRow(key, "static", static_source(node.value))
    if _has_placeholder(node):
        return None
    return MappingRow(key, "static", static_source(skeleton(node, placeholder_text)))


def _has_placeholder(node) -> bool:
    if isinstance(node, Hole | Text):
        return True
    if isinstance(node, Obj):
        return any(_has_placeholder(m.node) for m in node.members)
    if isinstance(node, Arr):
        return any(_has_placeholder(item) for item in node.items)
    return False
