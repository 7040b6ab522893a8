"""Field paths through a Directus schema: `author.company.name`, `year(published_at)` (pure).

Splitting paths and path lists, walking a path through relations to the field it ends at
(with a sentence when it breaks), the type found there, the operators to offer for it, and
the selectable paths for a field picker. The schema is the dict integrations.directus.schema builds.
"""

import re
from dataclasses import dataclass, field

from integrations.directus.operators import (
    FUNCTION_LABELS,
    FUNCTIONS_BY_TYPE,
    RELATION_OPS,
    operators_for_type,
)


def split_path(path: str) -> list[str]:
    """Split a dot path, leaving dots inside function parentheses alone."""
    return _split_outside_parens(path, ".")


def split_list(text: str) -> list[str]:
    """`id, author.first_name` -> ["id", "author.first_name"]; commas in parentheses stay."""
    return [part.strip() for part in _split_outside_parens(text, ",") if part.strip()]


def _split_outside_parens(text: str, separator: str) -> list[str]:
    parts, depth, current = [], 0, []
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth = max(0, depth - 1)
        if char == separator and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def split_function(segment: str) -> tuple[str | None, str]:
    """`year(published_at)` -> ("year", "published_at"); `title` -> (None, "title")."""
    match = re.fullmatch(r"\s*(\w+)\(\s*([^()]+?)\s*\)\s*", segment)
    return (match.group(1), match.group(2)) if match else (None, segment)


class PathError(Exception):
    """A path that does not lead to a field; the message says where it breaks."""


@dataclass
class Target:
    """Where a field path ends: `collection` is None when it leaves the schema (system tables)."""

    collection: str | None
    name: str = ""
    info: dict = field(default_factory=dict)
    type: str | None = None
    function: str | None = None


def fields_of(schema: dict, collection: str) -> dict | None:
    """The fields of a collection, or None when the schema does not have it."""
    found = (schema.get("collections") or {}).get(collection)
    return None if found is None else found.get("fields") or {}


def resolve(schema: dict, collection: str, path: str) -> Target:
    """Walk a dot path through relations; raise PathError with a sentence when it breaks."""
    segments = split_path(path)
    current = collection
    for index, segment in enumerate(segments):
        fields = fields_of(schema, current)
        if fields is None:
            return Target(None)
        function, name = split_function(segment)
        info = fields.get(name)
        if info is None:
            raise PathError(f"{path}: {current} has no field {name}")
        ftype = info.get("type")
        if function:
            allowed = FUNCTIONS_BY_TYPE.get(ftype, ())
            if function not in FUNCTION_LABELS:
                raise PathError(f"{path}: {function}() is not a Directus function")
            if function not in allowed:
                hint = f"; {ftype} fields take {', '.join(allowed)}" if allowed else ""
                raise PathError(
                    f"{path}: {function}() does not apply to {ftype} field {name}{hint}"
                )
            if index < len(segments) - 1:
                raise PathError(f"{path}: nothing can follow the function {segment}")
            return Target(current, name, info, "integer", function)
        if index == len(segments) - 1:
            return Target(current, name, info, ftype)
        relation = info.get("relation")
        if not relation:
            raise PathError(_not_a_relation(path, name, current, info))
        if not relation.get("collection"):  # many-to-any: the target depends on the row
            return Target(None)
        current = relation["collection"]
    return Target(None)


def _not_a_relation(path, name, current, info) -> str:
    """Directus hides a relation to a collection the token cannot read: /fields shows the
    foreign key as a plain column and /relations leaves it out (seen on 12.4)."""
    ftype = info.get("type")
    said = f"{path}: {name} in {current} is {article(ftype)} {ftype} field, not a relation"
    if ftype == "alias" or info.get("special") and set(info["special"]) & _RELATIONAL_SPECIAL:
        return f"{path}: {name} in {current} is a relation this token cannot read"
    if ftype in _KEY_TYPES:
        return (
            f"{said} as far as this token can see: if it points to another collection, this "
            "token cannot read that collection (Directus hides such relations from it)"
        )
    return said


_RELATIONAL_SPECIAL = {"m2o", "o2m", "m2m", "m2a", "files", "file", "translations"}
_KEY_TYPES = {"integer", "bigInteger", "string", "uuid"}
# Field pickers walk relations this many hops at most (author.company.name).
PICKER_DEPTH = 2


def article(word: str | None) -> str:
    """ "a" or "an" before a type name, for messages: "an integer field"."""
    word = (word or "x").lower()
    return "an" if word[0] in "aeiou" and not word.startswith("uu") else "a"


def is_to_many(info: dict) -> bool:
    """Whether a field is the "many" side of a relation (o2m, m2m, m2a)."""
    return (info.get("relation") or {}).get("kind") in ("o2m", "m2m", "m2a", "o2a")


def describe_relation(info: dict) -> str:
    """What kind of field this is, for messages: "a many-to-one relation"."""
    relation = info.get("relation") or {}
    kind = relation.get("kind")
    if kind == "m2o":
        return "a many-to-one relation"
    if kind == "m2m" or (kind == "o2m" and relation.get("junction_field")):
        return "a many-to-many relation"
    if kind == "o2m":
        return "a one-to-many relation"
    return f"{article(info.get('type'))} {info.get('type')} field"


def key_type(schema: dict, info: dict) -> str:
    """The type an alias field is compared as: its relation's key field (Studio's rule)."""
    relation = info.get("relation") or {}
    fields = fields_of(schema, relation.get("collection") or "") or {}
    key = fields.get(relation.get("field") or "")
    if key is None:
        primary = (schema.get("collections") or {}).get(relation.get("collection"), {})
        key = fields.get(primary.get("primary_key") or "id") or {}
    return key.get("type") or "integer"


def field_type(schema: dict, collection: str, path: str) -> str | None:
    """The type at a dot path (`author.company.name`), `integer` for functions; None if unknown."""
    try:
        return resolve(schema, collection, path).type
    except PathError:
        return None


def operators_for_field(schema: dict, collection: str, path: str) -> list[str]:
    """Operators to offer for a field path: Studio's list, plus `_some`/`_none` for to-many."""
    try:
        target = resolve(schema, collection, path)
    except PathError:
        return []
    ftype = target.type or "unknown"
    if ftype == "alias" and not target.function:
        # A to-many field takes _some/_none (Directus 12.4: "_some can only be used with top
        # level relational alias field"; comparing it directly compares junction ids), or
        # count(field) as an integer. Nothing else is offered, nested or not.
        direct = len(split_path(path)) == 1
        return list(RELATION_OPS) if direct and is_to_many(target.info) else []
    return operators_for_type(ftype)


def field_choices(
    schema: dict, collection: str, depth: int = PICKER_DEPTH, functions: bool = False
):
    """Selectable `(path, type)` pairs, walking relations up to `depth` hops, for field pickers.

    A relation back to a collection already on the path is listed but not walked into, so
    `supplier.products.supplier.products…` never appears. With `functions=True`, each date
    field is followed by its function keys (`year(published_at)`) and each to-many field by
    `count(...)`, typed `integer`.
    """
    found: list[tuple[str, str]] = []

    def walk(name: str, prefix: str, hops: int, seen: frozenset):
        for field_name, info in (fields_of(schema, name) or {}).items():
            ftype = info.get("type")
            found.append((prefix + field_name, ftype))
            if functions:
                for fn in FUNCTIONS_BY_TYPE.get(ftype, ()):
                    found.append((f"{prefix}{fn}({field_name})", "integer"))
            related = (info.get("relation") or {}).get("collection")
            if related and hops < depth and related not in seen:
                walk(related, f"{prefix}{field_name}.", hops + 1, seen | {related})

    walk(collection, "", 0, frozenset({collection}))
    return found


def did_you_mean(name: str, names) -> str:
    """' Did you mean "Products"? Collection names are case-sensitive.' or ""."""
    twins = [n for n in names if n != name and n.casefold() == (name or "").casefold()]
    if not twins:
        return ""
    shown = " or ".join(f'"{n}"' for n in twins)
    return f" Did you mean {shown}? Collection names are case-sensitive."
