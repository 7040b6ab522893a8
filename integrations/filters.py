"""The Directus query model: a filter tree plus fields, sort, paging, search, meta and deep.

Pure Python (no Django, no HTTP). One value object, three forms, converted both ways:

- the model: `Query`, whose `filter` is a `Group` of `Condition`s and nested `Group`s;
- query-string rows, the form Clay's query-parameter table and Directus URLs use
  (`filter[author][company][name][_eq]=Acme`, `sort=-date_created,title`);
- the JSON form of the filter (`filter={"status":{"_eq":"published"}}`).

Canonical forms. Parsing accepts everything Directus accepts; serialising always emits one form:
- The top-level filter is always a Group. Several top-level keys are Directus's implicit AND, so
  `filter[status][_eq]=x&filter[views][_gt]=5` is `Group("_and", (status, views))`. A top-level
  `_and` group is written flat (one key per item, no `[_and][i]`) when the keys cannot collide or
  be misread: no two items share their first key, no item is itself an `_and` group, and it is not
  a lone group. Otherwise it is written explicitly as `filter[_and][0]...`. A top-level `_or` is
  always `filter[_or][i]...`. The same rule applies to the nested filter of `_some`/`_none`.
- Nested groups are always explicit (`[_or][0][_and][1]...`); a condition is always written with
  its operator (`filter[status]=x`, Directus shorthand for `_eq`, is read but never written).
- Several operators on one field (`{"views": {"_gt": 1, "_lt": 9}}`) are read, as Directus does, as
  an AND of two conditions; they are written as two conditions.
- An empty filter is `None`; empty nested groups exist only in the JSON form.

Types. Query-string values are strings, so parsing them keeps strings: `filter[views][_gt]=1000`
gives `"1000"`, while the JSON form keeps `1000` an int. Writing a typed model to the query string
gives `1000`, `true`, `false`, `null` (Directus reads the last three back as booleans and null).
Exceptions, all matching what Directus itself does with the text: `_null`/`_nnull`/`_empty`/
`_nempty` take `True`/`False` (`"true"`, `"false"` and a missing value read as booleans); list
operators (`_in`, `_nin`, `_between`, `_nbetween`) always hold a list (`a,b` splits on commas; an
element containing a comma is written indexed, `[_in][0]=a,b`); geometry operators read a JSON
text as GeoJSON. So model -> query string -> model is exact for string-valued models, and
model -> JSON -> model is exact for any JSON-valued model.

Encoding. `to_query_string` percent-encodes like a browser address bar: space is `%20`, `+`, `&`,
`=`, `#`, `%`, quotes and braces are encoded, and `[ ] , . ( ) * $ : / @` stay readable (Directus
parses them literally), so the string reads like the Directus docs.

Operators per field type mirror Directus 12.4 exactly (`getFilterOperatorsForType` in
@directus/utils 13.5.5, used by both Studio's filter menu and the API's validation); see
`operators_for_type`.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import re
from dataclasses import dataclass, field
from datetime import datetime, time
from typing import Any
from urllib.parse import quote, unquote, unquote_plus

# ----------------------------------------------------------------------------- operators

# Labels as Studio shows them (app/src/lang/translations/en-US.yaml `operators:`). Studio has no
# label for _nicontains, _some and _none; those three are ours, in the same style.
OPERATOR_LABELS: dict[str, str] = {
    "_eq": "Equals",
    "_neq": "Doesn't equal",
    "_lt": "Less than",
    "_lte": "Less than or equal to",
    "_gt": "Greater than",
    "_gte": "Greater than or equal to",
    "_in": "Is one of",
    "_nin": "Is not one of",
    "_null": "Is null",
    "_nnull": "Isn't null",
    "_contains": "Contains",
    "_ncontains": "Doesn't contain",
    "_icontains": "Contains (insensitive)",
    "_nicontains": "Doesn't contain (insensitive)",
    "_starts_with": "Starts with",
    "_nstarts_with": "Doesn't start with",
    "_istarts_with": "Starts with (insensitive)",
    "_nistarts_with": "Doesn't start with (insensitive)",
    "_ends_with": "Ends with",
    "_nends_with": "Doesn't end with",
    "_iends_with": "Ends with (insensitive)",
    "_niends_with": "Doesn't end with (insensitive)",
    "_between": "Is between",
    "_nbetween": "Isn't between",
    "_empty": "Is empty",
    "_nempty": "Isn't empty",
    "_intersects": "Intersects",
    "_nintersects": "Doesn't intersect",
    "_intersects_bbox": "Intersects bounding box",
    "_nintersects_bbox": "Doesn't intersect bounding box",
    "_regex": "Matches RegExp",
    "_some": "Some related items match",
    "_none": "No related items match",
    "_json": "JSON",
}
FUNCTION_LABELS: dict[str, str] = {
    "year": "Year",
    "month": "Month",
    "week": "Week",
    "day": "Day",
    "weekday": "Weekday",
    "hour": "Hour",
    "minute": "Minute",
    "second": "Second",
    "count": "Count",
}
LOGIC = ("_and", "_or")
RELATION_OPS = ("_some", "_none")
VALUELESS_OPS = frozenset({"_null", "_nnull", "_empty", "_nempty"})
LIST_OPS = frozenset({"_in", "_nin", "_between", "_nbetween"})
PAIR_OPS = frozenset({"_between", "_nbetween"})
GEOMETRY_OPS = frozenset({"_intersects", "_nintersects", "_intersects_bbox", "_nintersects_bbox"})
PATTERN_OPS = frozenset(
    op for op in OPERATOR_LABELS if op.endswith(("contains", "starts_with", "ends_with"))
)

_STRING_OPS = (
    *("_contains", "_ncontains", "_icontains"),
    *("_starts_with", "_nstarts_with", "_istarts_with", "_nistarts_with"),
    *("_ends_with", "_nends_with", "_iends_with", "_niends_with"),
    *("_eq", "_neq", "_empty", "_nempty", "_null", "_nnull", "_in", "_nin"),
)
_RANGE_OPS = (
    *("_eq", "_neq", "_lt", "_lte", "_gt", "_gte", "_between", "_nbetween"),
    *("_null", "_nnull", "_in", "_nin"),
)
_DEFAULT_OPS = (
    *("_contains", "_ncontains", "_eq", "_neq", "_lt", "_lte", "_gt", "_gte", "_between"),
    *("_nbetween", "_empty", "_nempty", "_null", "_nnull", "_in", "_nin"),
)
_OPS_BY_TYPE = {
    **dict.fromkeys(("binary", "string", "text", "csv"), _STRING_OPS),
    "hash": ("_empty", "_nempty", "_null", "_nnull"),
    "uuid": ("_eq", "_neq", "_null", "_nnull", "_in", "_nin"),
    "json": ("_null", "_nnull", "_json"),
    "boolean": ("_eq", "_neq", "_null", "_nnull"),
    **dict.fromkeys(("bigInteger", "integer", "decimal", "float"), _RANGE_OPS),
    **dict.fromkeys(("dateTime", "date", "time"), _RANGE_OPS),
    "geometry": (
        *("_eq", "_neq", "_null", "_nnull"),
        *("_intersects", "_nintersects", "_intersects_bbox", "_nintersects_bbox"),
    ),
}
# getFunctionsForType (the `json` function is selection-only, so it is left out here).
_FUNCTIONS_BY_TYPE = {
    **dict.fromkeys(("dateTime", "timestamp"), tuple(FUNCTION_LABELS)[:8]),
    "date": ("year", "month", "week", "day", "weekday"),
    "time": ("hour", "minute", "second"),
    "json": ("count",),
    "alias": ("count",),
}
_DATE_TYPES = frozenset({"date", "dateTime", "time", "timestamp"})
_ID_TYPES = frozenset({"uuid", "string", "text"})
_META = ("total_count", "filter_count", "*")


def operators_for_type(field_type: str) -> list[str]:
    """The filter operators Directus offers (Studio) and accepts (API) for a field type, in order.

    This is Directus's own table, quirks included: `timestamp`, `alias` and the typed geometry
    types (`geometry.Point`, ...) are not in its switch, so they get the default list
    (`_contains ... _nin`, no `_intersects`). Use `operators_for_field` for a field in a schema:
    it follows Studio in using the key type for relational alias fields.
    """
    return list(_OPS_BY_TYPE.get(field_type, _DEFAULT_OPS))


# ----------------------------------------------------------------------------- the model


class QueryParseError(ValueError):
    """A query string, row set or JSON filter that cannot be read; the message says where."""


@dataclass(frozen=True)
class Condition:
    """One rule: `field` (dot path, maybe a function: `year(published_at)`) `op` `value`.

    For `_some`/`_none` the value is the nested filter, a `Group` over the related collection.
    """

    field: str
    op: str
    value: Any = None

    def __post_init__(self):
        if self.op in LOGIC:
            raise ValueError(f"{self.op} is a group, not a condition operator")
        # Directus treats a missing value of _null & co as true; store that, so forms agree.
        if self.op in VALUELESS_OPS and self.value is None:
            object.__setattr__(self, "value", True)


@dataclass(frozen=True)
class Group:
    """Conditions and groups joined by `_and` or `_or`."""

    logic: str = "_and"
    items: tuple[Condition | Group, ...] = ()

    def __post_init__(self):
        if self.logic not in LOGIC:
            raise ValueError(f"group logic must be _and or _or, not {self.logic!r}")
        object.__setattr__(self, "items", tuple(self.items))
        for item in self.items:
            if not isinstance(item, Condition | Group):
                raise TypeError(f"a group holds conditions and groups, not {item!r}")


@dataclass(frozen=True)
class Problem:
    """A validation finding: where (`filter.0.1`, `fields.2`, `limit`) and what, in a sentence."""

    path: str
    message: str


_PARAMS = ("filter", "fields", "sort", "limit", "offset", "page", "search", "meta", "deep")


@dataclass(frozen=True)
class Query:
    """A whole Directus items query; `collection` is not part of the query string."""

    collection: str = ""
    filter: Group | None = None
    fields: tuple[str, ...] = ()
    sort: tuple[str, ...] = ()
    limit: int | None = None
    offset: int | None = None
    page: int | None = None
    search: str = ""
    meta: tuple[str, ...] = ()
    deep: dict = field(default_factory=dict)

    def __post_init__(self):
        # Normalise what callers may pass loosely, so equal queries compare equal.
        for name in ("fields", "sort", "meta"):
            value = getattr(self, name)
            object.__setattr__(
                self, name, tuple(_split_list(value) if isinstance(value, str) else value)
            )
        if isinstance(self.filter, Condition):
            object.__setattr__(self, "filter", Group("_and", (self.filter,)))
        if isinstance(self.filter, Group) and not self.filter.items:
            object.__setattr__(self, "filter", None)
        if self.deep is None:
            object.__setattr__(self, "deep", {})

    def with_(self, **changes) -> Query:
        """A copy with some attributes changed."""
        return dataclasses.replace(self, **changes)

    # -- query-string rows

    def to_params(self) -> list[tuple[str, str]]:
        """The Clay rows (Key | Value), unencoded, in canonical order."""
        return self._rows(json_form=False)

    def to_json_params(self) -> list[tuple[str, str]]:
        """Like `to_params`, but `filter` and `deep` are one JSON parameter each (types kept)."""
        return self._rows(json_form=True)

    def _rows(self, json_form: bool) -> list[tuple[str, str]]:
        rows: list[tuple[str, str]] = []
        if self.filter is not None:
            obj = filter_to_json(self.filter)
            rows += [("filter", _compact(obj))] if json_form else _flatten("filter", obj)
        if self.fields:
            rows.append(("fields", ",".join(self.fields)))
        if self.sort:
            rows.append(("sort", ",".join(self.sort)))
        for name in ("limit", "offset", "page"):
            if getattr(self, name) is not None:
                rows.append((name, str(getattr(self, name))))
        if self.search:
            rows.append(("search", self.search))
        if self.meta:
            rows.append(("meta", ",".join(self.meta)))
        if self.deep:
            rows += (
                [("deep", _compact(self.deep))]
                if json_form
                else _flatten("deep", self.deep, raw=True)
            )
        return rows

    @classmethod
    def from_params(cls, rows, collection: str = "") -> Query:
        """Read Clay rows / decoded query parameters; either filter form, `fields[]=` too."""
        by_name: dict[str, list[tuple[str, str, list[str]]]] = {}
        for key, value in rows:
            key = key.strip()  # pasted Clay rows often carry stray spaces around the key
            segments = _split_key(key)
            if segments[0] not in _PARAMS:
                raise QueryParseError(_unsupported(segments[0]))
            by_name.setdefault(segments[0], []).append((key, value, segments[1:]))
        found: dict[str, Any] = {"collection": collection}
        for name, group in by_name.items():
            if name in ("filter", "deep"):
                found[name] = _read_tree_param(name, group)
            elif name in ("fields", "sort", "meta"):
                found[name] = tuple(part for _, value, _ in group for part in _split_list(value))
            else:
                if len(group) > 1 or group[0][2]:
                    raise QueryParseError(f"{name} must be given once, as {name}=value")
                value = group[0][1]
                found[name] = value if name == "search" else _int_or_text(value)
        if found.get("filter") is not None:
            found["filter"] = filter_from_json(found["filter"])
        return cls(**found)

    # -- query strings and URLs

    def to_query_string(self, json_filter: bool = False) -> str:
        """The encoded query string (no `?`); `json_filter=True` sends filter/deep as JSON."""
        rows = self.to_json_params() if json_filter else self.to_params()
        return "&".join(f"{_encode(key)}={_encode(value)}" for key, value in rows)

    @classmethod
    def from_query_string(cls, qs: str) -> Query:
        """Read a query string, with or without `?`, or a whole `.../items/<collection>?...` URL."""
        text, collection = qs.strip(), ""
        if text.startswith(("http://", "https://", "/")):
            text = text.split("#", 1)[0]
            path, _, text = text.partition("?")
            match = re.search(r"/items/([^/]+)/?$", path)
            collection = unquote(match.group(1)) if match else ""
        text = text.removeprefix("?")
        rows = []
        for part in text.split("&"):
            if part:
                key, _, value = part.partition("=")
                rows.append((unquote_plus(key), unquote_plus(value)))
        return cls.from_params(rows, collection=collection)

    def to_url(self, base_url: str, json_filter: bool = False) -> str:
        """`<base_url>/items/<collection>?<query string>`."""
        qs = self.to_query_string(json_filter=json_filter)
        url = f"{base_url.rstrip('/')}/items/{quote(self.collection, safe='')}"
        return f"{url}?{qs}" if qs else url

    # -- JSON filter

    def filter_json(self) -> dict | None:
        """The filter in Directus's JSON form, or None."""
        return filter_to_json(self.filter)

    @classmethod
    def from_json_filter(cls, obj, collection: str = "") -> Query:
        """A query holding just this JSON filter (a dict or its JSON text)."""
        return cls(collection=collection, filter=filter_from_json(obj))


# ----------------------------------------------------------------------------- filter <-> JSON


def filter_to_json(group: Group | None) -> dict | None:
    """The JSON form of a filter tree, `{"status": {"_eq": "published"}}`; None for no filter."""
    return None if group is None else _root_obj(group)


def filter_from_json(obj) -> Group | None:
    """Read a JSON filter (a dict, or its text) the way Directus reads it; None when empty."""
    if isinstance(obj, str):
        obj = _load_json(obj, "filter") if obj.strip() else None
    if obj is None:
        return None
    if not isinstance(obj, dict):
        raise QueryParseError('filter must be a JSON object, such as {"status":{"_eq":"x"}}')
    group = _root_group(obj, "filter")
    return group if group.items else None


def _root_obj(group: Group) -> dict:
    if group.logic == "_and" and _can_flatten(group.items):
        merged: dict = {}
        for item in group.items:
            merged.update(_item_obj(item))
        return merged
    return {group.logic: [_item_obj(item) for item in group.items]}


def _can_flatten(items) -> bool:
    # A flat root reads back as the implicit AND of its keys, so each key must be unique and
    # must not read back as something else: a lone group would become the root itself, and an
    # `_and` key at the root is the explicit form.
    if len(items) == 1 and isinstance(items[0], Group):
        return False
    keys = set()
    for item in items:
        if isinstance(item, Group) and item.logic == "_and":
            return False
        key = item.logic if isinstance(item, Group) else _split_path(item.field)[0]
        if key in keys:
            return False
        keys.add(key)
    return True


def _item_obj(item: Condition | Group) -> dict:
    if isinstance(item, Group):
        return {item.logic: [_item_obj(child) for child in item.items]}
    if item.op in RELATION_OPS and isinstance(item.value, Group):
        node: dict = {item.op: _root_obj(item.value)}
    else:
        node = {item.op: copy.deepcopy(item.value)}
    for segment in reversed(_split_path(item.field)):
        node = {segment: node}
    return node


def _root_group(obj: dict, where: str) -> Group:
    items = _parse_node(obj, [], where)
    if len(items) == 1 and isinstance(items[0], Group):
        return items[0]
    return Group("_and", tuple(items))


def _parse_node(obj: dict, prefix: list[str], where: str) -> list[Condition | Group]:
    """The items of one filter object; `prefix` is the relational path walked so far."""
    items: list[Condition | Group] = []
    for key, value in obj.items():
        here = ".".join([*prefix, key])
        if key in LOGIC:
            if not isinstance(value, list):
                raise QueryParseError(f"{where}: {here} needs a list of conditions")
            elements = [_parse_element(e, prefix, f"{where}: {here}") for e in value]
            items.append(Group(key, tuple(elements)))
        elif key.startswith("_"):
            if not prefix:
                raise QueryParseError(f"{where}: the operator {key} needs a field before it")
            items.append(_condition(".".join(prefix), key, value, where))
        elif isinstance(value, dict):
            if not value:
                raise QueryParseError(f"{where}: {here} has no operator")
            items.extend(_parse_node(value, [*prefix, key], where))
        elif isinstance(value, list):
            raise QueryParseError(f"{where}: {here} needs an operator, such as _in, before a list")
        else:
            # `filter[status]=published` is Directus shorthand for _eq.
            items.append(_condition(here, "_eq", value, where))
    return items


def _parse_element(obj, prefix: list[str], where: str) -> Condition | Group:
    if not isinstance(obj, dict):
        raise QueryParseError(f"{where} holds {obj!r}, not a condition object")
    items = _parse_node(obj, prefix, where)
    return items[0] if len(items) == 1 else Group("_and", tuple(items))


def _condition(path: str, op: str, value, where: str) -> Condition:
    if op in RELATION_OPS:
        if value in ("", None):
            return Condition(path, op, Group("_and", ()))
        if not isinstance(value, dict):
            raise QueryParseError(f"{where}: {path} {op} needs a nested filter, not {value!r}")
        return Condition(path, op, _root_group(value, where))
    return Condition(path, op, _parse_value(op, value))


def _parse_value(op: str, value):
    """Read an operator's value as Directus does (see the module docstring, Types)."""
    if op in VALUELESS_OPS:
        if isinstance(value, str) and value in ("true", ""):
            return True
        return False if value == "false" else value
    if op in LIST_OPS:
        if isinstance(value, str):
            return value.split(",")
        if isinstance(value, dict):  # qs turns indices above 20 into keys; Directus takes values
            return list(value.values())
        return value if isinstance(value, list) else [value]
    if op in GEOMETRY_OPS and isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            return value
        return parsed if isinstance(parsed, dict | list) else value
    return value


# ----------------------------------------------------------------------------- rows <-> tree


def _flatten(key: str, node, parent: str = "", raw: bool = False) -> list[tuple[str, str]]:
    """Bracket rows for a JSON-like tree. `raw` (deep, `_json`) writes every list indexed."""
    if isinstance(node, dict):
        if not raw and parent in GEOMETRY_OPS:
            return [(key, _compact(node))]
        if not node and parent in RELATION_OPS:
            return [(key, "")]  # `_some` with no conditions: "has any related item"
        rows = []
        for name, child in node.items():
            rows += _flatten(f"{key}[{name}]", child, name, raw or name == "_json")
        return rows
    if isinstance(node, list):
        if not raw and parent in GEOMETRY_OPS:
            return [(key, _compact(node))]
        if not raw and parent in LIST_OPS:
            texts = [_text(v) for v in node]
            if not any("," in t for t in texts) and not any(
                isinstance(v, dict | list) for v in node
            ):
                # An empty list has no query-string form; validate() reports it before sending.
                return [(key, ",".join(texts))]
        rows = []
        for index, child in enumerate(node):
            rows += _flatten(f"{key}[{index}]", child, "", raw)
        return rows
    return [(key, _text(node))]


def _split_key(key: str) -> list[str]:
    """`filter[author][name][_eq]` -> ["filter", "author", "name", "_eq"]."""
    head, bracket, rest = key.partition("[")
    if not bracket:
        return [key]
    segments, position, rest = [head], 0, bracket + rest
    for match in re.finditer(r"\[([^\[\]]*)\]", rest):
        if match.start() != position:
            break
        segments.append(match.group(1))
        position = match.end()
    if position != len(rest):
        raise QueryParseError(f"{key!r} is not a valid parameter name (check its brackets)")
    return segments


def _read_tree_param(name: str, rows):
    """One `filter`/`deep` parameter: a single JSON text, or bracket rows nested like qs does."""
    if any(not segments for _, _, segments in rows):
        if len(rows) > 1:
            raise QueryParseError(f"{name} is given as JSON and also in another row")
        text = rows[0][1]
        if not text.strip():
            return None
        value = _load_json(text, name)
        if name == "deep" and not isinstance(value, dict):
            raise QueryParseError("deep must be a JSON object")
        return value
    root: dict = {}
    for key, value, segments in rows:
        node = root
        for index, segment in enumerate(segments):
            if segment == "":  # `[]` appends
                segment = str(len(node))
            if index == len(segments) - 1:
                if segment in node:
                    raise QueryParseError(f"{key} is given more than once, or clashes with a row")
                node[segment] = value
                break
            node = node.setdefault(segment, {})
            if not isinstance(node, dict):
                prefix = name + "".join(f"[{s}]" for s in segments[: index + 1])
                raise QueryParseError(f"{key} clashes with the row that gives {prefix} a value")
    tree = _listify(root)
    if not isinstance(tree, dict):
        raise QueryParseError(f"{name} rows must start with a field name, not an index")
    return tree


def _listify(node):
    """Dicts keyed 0, 1, 2... become lists, as the qs parser Directus uses makes them."""
    if not isinstance(node, dict):
        return node
    node = {key: _listify(value) for key, value in node.items()}
    if node and all(key.isascii() and key.isdigit() for key in node):
        return [node[key] for key in sorted(node, key=int)]
    return node


def _unsupported(name: str) -> str:
    if name == "access_token":
        return "access_token does not belong in a saved query: Kiln sends the connection's token"
    return f"{name!r} is not a query parameter Kiln's query builder supports ({', '.join(_PARAMS)})"


# ----------------------------------------------------------------------------- small helpers

_SAFE = "[](),*$:/@"  # kept readable by _encode, besides letters, digits and -._~


def _encode(text: str) -> str:
    return quote(text, safe=_SAFE)


def _compact(value) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _text(value) -> str:
    """A value as query-string text: JSON spelling for numbers, booleans and null."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float) or value is None:
        return json.dumps(value)
    return _compact(value)


def _load_json(text: str, name: str):
    try:
        return json.loads(text)
    except ValueError as error:
        raise QueryParseError(f"{name} is not valid JSON: {error}") from None


def _int_or_text(value: str):
    # Kept as text when not an integer, so validate() can say what is wrong with it.
    return int(value) if re.fullmatch(r"\s*[+-]?\d+\s*", value) else value


def _split_path(path: str) -> list[str]:
    """Split a dot path, leaving dots inside function parentheses alone."""
    return _split_outside_parens(path, ".")


def _split_list(text: str) -> list[str]:
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


def _split_function(segment: str) -> tuple[str | None, str]:
    """`year(published_at)` -> ("year", "published_at"); `title` -> (None, "title")."""
    match = re.fullmatch(r"\s*(\w+)\(\s*([^()]+?)\s*\)\s*", segment)
    return (match.group(1), match.group(2)) if match else (None, segment)


def _show(value) -> str:
    return f"'{value}'" if isinstance(value, str) else _text(value)


# ----------------------------------------------------------------------------- schema walking


class _PathError(Exception):
    pass


@dataclass
class _Target:
    """Where a field path ends: `collection` is None when it leaves the schema (system tables)."""

    collection: str | None
    name: str = ""
    info: dict = field(default_factory=dict)
    type: str | None = None
    function: str | None = None


def _fields_of(schema: dict, collection: str) -> dict | None:
    found = (schema.get("collections") or {}).get(collection)
    return None if found is None else found.get("fields") or {}


def _resolve(schema: dict, collection: str, path: str) -> _Target:
    """Walk a dot path through relations; raise _PathError with a sentence when it breaks."""
    segments = _split_path(path)
    current = collection
    for index, segment in enumerate(segments):
        fields = _fields_of(schema, current)
        if fields is None:
            return _Target(None)
        function, name = _split_function(segment)
        info = fields.get(name)
        if info is None:
            raise _PathError(f"{path}: {current} has no field {name}")
        ftype = info.get("type")
        if function:
            allowed = _FUNCTIONS_BY_TYPE.get(ftype, ())
            if function not in FUNCTION_LABELS:
                raise _PathError(f"{path}: {function}() is not a Directus function")
            if function not in allowed:
                hint = f"; {ftype} fields take {', '.join(allowed)}" if allowed else ""
                raise _PathError(
                    f"{path}: {function}() does not apply to {ftype} field {name}{hint}"
                )
            if index < len(segments) - 1:
                raise _PathError(f"{path}: nothing can follow the function {segment}")
            return _Target(current, name, info, "integer", function)
        if index == len(segments) - 1:
            return _Target(current, name, info, ftype)
        relation = info.get("relation")
        if not relation:
            raise _PathError(
                f"{path}: {name} in {current} is {_article(ftype)} {ftype} field, not a relation"
            )
        if not relation.get("collection"):  # many-to-any: the target depends on the row
            return _Target(None)
        current = relation["collection"]
    return _Target(None)


def _article(word: str | None) -> str:
    word = (word or "x").lower()
    return "an" if word[0] in "aeiou" and not word.startswith("uu") else "a"


def _is_to_many(info: dict) -> bool:
    return (info.get("relation") or {}).get("kind") in ("o2m", "m2m", "m2a", "o2a")


def _describe_relation(info: dict) -> str:
    relation = info.get("relation") or {}
    kind = relation.get("kind")
    if kind == "m2o":
        return "a many-to-one relation"
    if kind == "m2m" or (kind == "o2m" and relation.get("junction_field")):
        return "a many-to-many relation"
    if kind == "o2m":
        return "a one-to-many relation"
    return f"{_article(info.get('type'))} {info.get('type')} field"


def _key_type(schema: dict, info: dict) -> str:
    """The type an alias field is compared as: its relation's key field (Studio's rule)."""
    relation = info.get("relation") or {}
    fields = _fields_of(schema, relation.get("collection") or "") or {}
    key = fields.get(relation.get("field") or "")
    if key is None:
        primary = (schema.get("collections") or {}).get(relation.get("collection"), {})
        key = fields.get(primary.get("primary_key") or "id") or {}
    return key.get("type") or "integer"


def field_type(schema: dict, collection: str, path: str) -> str | None:
    """The type at a dot path (`author.company.name`), `integer` for functions; None if unknown."""
    try:
        return _resolve(schema, collection, path).type
    except _PathError:
        return None


def operators_for_field(schema: dict, collection: str, path: str) -> list[str]:
    """Operators to offer for a field path: Studio's list, plus `_some`/`_none` for to-many."""
    try:
        target = _resolve(schema, collection, path)
    except _PathError:
        return []
    ftype = target.type or "unknown"
    if ftype == "alias" and not target.function:
        ops = operators_for_type(_key_type(schema, target.info))
        # Studio offers these through its field list rather than the operator menu; Directus
        # takes them only on a to-many field of the collection itself.
        direct = len(_split_path(path)) == 1
        return ops + list(RELATION_OPS) if direct and _is_to_many(target.info) else ops
    return operators_for_type(ftype)


def field_choices(schema: dict, collection: str, depth: int = 3, functions: bool = False):
    """Selectable `(path, type)` pairs, walking relations up to `depth` hops, for field pickers.

    With `functions=True`, each date field is followed by its function keys (`year(published_at)`)
    and each to-many field by `count(...)`, typed `integer`.
    """
    found: list[tuple[str, str]] = []

    def walk(name: str, prefix: str, hops: int):
        for field_name, info in (_fields_of(schema, name) or {}).items():
            ftype = info.get("type")
            found.append((prefix + field_name, ftype))
            if functions:
                for fn in _FUNCTIONS_BY_TYPE.get(ftype, ()):
                    found.append((f"{prefix}{fn}({field_name})", "integer"))
            related = (info.get("relation") or {}).get("collection")
            if related and hops < depth:
                walk(related, f"{prefix}{field_name}.", hops + 1)

    walk(collection, "", 0)
    return found


# ----------------------------------------------------------------------------- validation


def validate(query: Query, schema: dict) -> list[Problem]:
    """Everything Directus would refuse, or silently mishandle, named by field and type."""
    problems: list[Problem] = []
    if _fields_of(schema, query.collection) is None:
        name = query.collection or "(none)"
        problems.append(Problem("collection", f"{name} is not a collection in this schema"))
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


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_path(schema, collection, path, where, problems, wildcard=False):
    segments = _split_path(path)
    if "*" in segments:
        if not wildcard:
            problems.append(Problem(where, f"{path}: * cannot be used here"))
            return
        prefix = segments[: segments.index("*")]
        if not prefix:
            return
        path = ".".join(prefix)
    try:
        target = _resolve(schema, collection, path)
    except _PathError as error:
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
            info = (_fields_of(schema, collection) or {}).get(key)
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
        target = _resolve(schema, collection, cond.field)
    except _PathError as error:
        return f"{shown_prefix}{error}"
    if target.collection is None:
        return None  # the path leaves the schema (e.g. directus_users): nothing to check against
    if cond.op in RELATION_OPS:
        if not _is_to_many(target.info) or target.function:
            return (
                f"{cond.op} needs a to-many relation; {shown} is {_describe_relation(target.info)}"
            )
        if len(_split_path(cond.field)) > 1:
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
        compared_as = _key_type(schema, target.info)
        label = f"{shown} ({_describe_relation(target.info)}, compared by its {compared_as} key)"
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
    # Directus reads these texts as JSON literals anywhere in a filter (parseFilter's deepMap).
    if isinstance(value, str):
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
    if choices and _text(value) not in {_text(c) for c in choices}:
        listed = ", ".join(_text(c) for c in choices)
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
            return True, f"$NOW is a date and time; {shown} is {_article(ftype)} {ftype} field"
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
        return True, f"{value} is an id (UUID); {shown} is {_article(ftype)} {ftype} field"
    if root in ("$CURRENT_ROLES", "$CURRENT_POLICIES") and op not in ("_in", "_nin"):
        return True, f"{value} is a list of ids; use it with _in or _nin"
    return True, None


_EXAMPLES = {
    "date": "an ISO date (e.g. 2024-01-31 or $NOW)",
    "time": "an ISO time (e.g. 09:30:00)",
    "dateTime": "an ISO date or date-time (e.g. 2024-01-31 or 2024-01-31T09:30:00, or $NOW)",
}


def _type_problem(value, ftype, shown) -> str | None:
    field_words = f"{shown} is {_article(ftype)} {ftype} field"
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
