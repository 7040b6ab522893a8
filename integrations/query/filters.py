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

Encoding. `to_query_string` percent-encodes like a browser address bar, so the string reads
like the Directus docs; see querystring.py, which reads and writes the rows.

The operators and which field types take them are operators.py; field paths through a schema
are fieldpaths.py; validate(), everything Directus would refuse, is querycheck.py.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote, unquote_plus

from integrations.directus.fieldpaths import split_list, split_path
from integrations.directus.operators import (
    GEOMETRY_OPS,
    LIST_OPS,
    LOGIC,
    RELATION_OPS,
    VALUELESS_OPS,
)
from integrations.query.querystring import (
    PARAMS,
    QueryParseError,
    compact,
    encode,
    flatten,
    int_or_text,
    load_json,
    read_tree_param,
    split_key,
    unsupported,
)

# ----------------------------------------------------------------------------- the model


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
                self, name, tuple(split_list(value) if isinstance(value, str) else value)
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
            rows += [("filter", compact(obj))] if json_form else flatten("filter", obj)
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
                [("deep", compact(self.deep))]
                if json_form
                else flatten("deep", self.deep, raw=True)
            )
        return rows

    @classmethod
    def from_params(cls, rows, collection: str = "") -> Query:
        """Read Clay rows / decoded query parameters; either filter form, `fields[]=` too."""
        by_name: dict[str, list[tuple[str, str, list[str]]]] = {}
        for key, value in rows:
            key = key.strip()  # pasted Clay rows often carry stray spaces around the key
            segments = split_key(key)
            if segments[0] not in PARAMS:
                raise QueryParseError(unsupported(segments[0]))
            by_name.setdefault(segments[0], []).append((key, value, segments[1:]))
        found: dict[str, Any] = {"collection": collection}
        for name, group in by_name.items():
            if name in ("filter", "deep"):
                found[name] = read_tree_param(name, group)
            elif name in ("fields", "sort", "meta"):
                found[name] = tuple(part for _, value, _ in group for part in split_list(value))
            else:
                if len(group) > 1 or group[0][2]:
                    raise QueryParseError(f"{name} must be given once, as {name}=value")
                value = group[0][1]
                found[name] = value if name == "search" else int_or_text(value)
        if found.get("filter") is not None:
            found["filter"] = filter_from_json(found["filter"])
        return cls(**found)

    # -- query strings and URLs

    def to_query_string(self, json_filter: bool = False) -> str:
        """The encoded query string (no `?`); `json_filter=True` sends filter/deep as JSON."""
        rows = self.to_json_params() if json_filter else self.to_params()
        return "&".join(f"{encode(key)}={encode(value)}" for key, value in rows)

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
        obj = load_json(obj, "filter") if obj.strip() else None
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
        key = item.logic if isinstance(item, Group) else split_path(item.field)[0]
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
    for segment in reversed(split_path(item.field)):
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
