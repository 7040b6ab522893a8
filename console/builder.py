"""The query builder's form: its state, and the state <-> Query conversion (pure).

The whole builder is one form whose inputs are named by their place in the filter tree:
`f-logic` is the root group, `f.1-logic` its second item (a group), `f.1.0-field` the first
condition in that group; sorts are `s.0-field`/`s.0-dir`. `parse_state` reads the posted form,
`apply_action` adds or removes a row, `state_to_query` and `state_from_query` convert to and
from a Query, and `annotate` tells each row what the schema offers it (types, operators,
choices, how to ask for the value). No request, no database: tested with plain values.
"""

import json
import math
import re
from dataclasses import dataclass, field

from integrations import jsontext
from integrations.directus import fieldpaths, operators
from integrations.query import filters

ROOT = "f"
# Posted names with groups nested deeper than the builder shows, or indexes no form has, are
# ignored: f.0.0.0... 5,000 deep would otherwise recurse past Python's limit.
_NODE_KEY = re.compile(r"^(f(?:\.\d{1,4}){0,32})-(logic|field|op|value|value2|was)$")
_SORT_KEY = re.compile(r"^s\.(\d{1,4})-(field|dir)$")
# Longer digit strings stay text (int() refuses 4,300 digits; validate() names the problem).
_WHOLE = re.compile(r"\s*[+-]?\d{1,1000}\s*")
_NUMBER = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*")
# What an <input type=...> can hold; a value that does not fit gets a text input instead,
# because the browser would silently blank it (`2024-01-01` in a datetime-local input).
_FITS = {
    "number": _NUMBER,
    "date": re.compile(r"\d{4}-\d{2}-\d{2}"),
    "datetime-local": re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?"),
    "time": re.compile(r"\d{2}:\d{2}(:\d{2})?"),
}
_HTML_TYPES = {
    **dict.fromkeys(("integer", "bigInteger", "float", "decimal"), "number"),
    "date": "date",
    "dateTime": "datetime-local",
    "timestamp": "datetime-local",
    "time": "time",
}
_JSON_OPS = operators.GEOMETRY_OPS | {"_json", *operators.RELATION_OPS}


# -- state and conversion -------------------------------------------------------------------


@dataclass
class ConditionRow:
    field: str = ""
    op: str = ""
    value: str = ""
    value2: str = ""  # the upper bound of _between / _nbetween
    was: str = ""  # the field when the form was rendered: tells a changed field apart
    path: str = ""
    is_group = False


@dataclass
class GroupRow:
    logic: str = "_and"
    items: list = field(default_factory=list)
    path: str = ROOT
    is_group = True


@dataclass
class BuilderState:
    connection: str = ""
    collection: str = ""
    was_collection: str = ""
    show_system: bool = False
    root: GroupRow = field(default_factory=GroupRow)
    fields: str = ""
    sorts: list = field(default_factory=list)  # [(path, descending)]
    limit: str = ""
    offset: str = ""
    page: str = ""
    search: str = ""
    meta: list = field(default_factory=list)
    deep: str = ""  # JSON text
    paste: str = ""
    name: str = ""


def parse_state(data) -> tuple[BuilderState, str]:
    """Read the posted builder form (a QueryDict) into a state and the clicked action."""
    nodes: dict[str, dict] = {}
    sorts: dict[int, dict] = {}
    for key in data:
        if match := _NODE_KEY.match(key):
            nodes.setdefault(match.group(1), {})[match.group(2)] = data.get(key, "")
        elif match := _SORT_KEY.match(key):
            sorts.setdefault(int(match.group(1)), {})[match.group(2)] = data.get(key, "")
    fields_text = data.get("fields", "").strip()
    if data.get("fields_add"):
        fields_text = ",".join(filter(None, [fields_text, data.get("fields_add")]))
    state = BuilderState(
        connection=data.get("connection", ""),
        collection=data.get("collection", "").strip(),
        was_collection=data.get("was_collection", ""),
        show_system=bool(data.get("show_system")),
        root=_parse_group(nodes, ROOT),
        fields=fields_text,
        sorts=[
            (row["field"], row.get("dir") == "desc")
            for _, row in sorted(sorts.items())
            if row.get("field")
        ],
        limit=data.get("limit", "").strip(),
        offset=data.get("offset", "").strip(),
        page=data.get("page", "").strip(),
        search=data.get("search", ""),
        meta=[m for m in data.getlist("meta") if m],
        deep=data.get("deep", "").strip(),
        paste=data.get("paste", ""),
        name=data.get("name", "").strip(),
    )
    return state, data.get("action", "")


def _parse_group(nodes, path) -> GroupRow:
    logic = nodes.get(path, {}).get("logic")
    group = GroupRow(logic=logic if logic in operators.LOGIC else "_and", path=path)
    depth = path.count(".") + 1
    children = sorted(
        (int(p.rsplit(".", 1)[1]), p)
        for p in nodes
        if p.count(".") == depth and p.startswith(path + ".")
    )
    for _, child in children:
        if "logic" in nodes[child]:
            group.items.append(_parse_group(nodes, child))
        else:
            row = nodes[child]
            group.items.append(
                ConditionRow(
                    field=row.get("field", "").strip(),
                    op=row.get("op", ""),
                    value=row.get("value", ""),
                    value2=row.get("value2", ""),
                    was=row.get("was", ""),
                    path=child,
                )
            )
    return group


def apply_action(state: BuilderState, action: str) -> None:
    """Add or remove a condition, group or sort; `action` is `verb:path` as the button posts it."""
    verb, _, target = action.partition(":")
    if verb == "remove-sort":
        if target.isdigit() and int(target) < len(state.sorts):
            del state.sorts[int(target)]
        return
    if verb == "remove" and target != ROOT:
        parent = _find(state.root, target.rsplit(".", 1)[0])
        if parent is not None:
            parent.items = [item for item in parent.items if item.path != target]
        return
    group = _find(state.root, target)
    if group is None or not group.is_group:
        return
    if verb == "add-condition":
        group.items.append(ConditionRow())
    elif verb == "add-group":
        # A group inside an AND is almost always an OR (and the other way round).
        logic = "_or" if group.logic == "_and" else "_and"
        group.items.append(GroupRow(logic=logic, items=[ConditionRow()]))


def _find(group: GroupRow, path: str):
    if group.path == path:
        return group
    for item in group.items:
        if item.path == path:
            return item
        if item.is_group and path.startswith(item.path + "."):
            return _find(item, path)
    return None


def renumber(group: GroupRow, path: str = ROOT) -> None:
    """Give every node the input-name prefix of its current place."""
    group.path = path
    for index, item in enumerate(group.items):
        if item.is_group:
            renumber(item, f"{path}.{index}")
        else:
            item.path = f"{path}.{index}"


def coerce(text: str, field_type: str | None):
    """A typed value for the JSON form: `"1000"` on an integer field is `1000`; else the text."""
    if field_type in ("integer", "bigInteger") and _WHOLE.fullmatch(text):
        return int(text)
    if field_type in ("float", "decimal") and _NUMBER.fullmatch(text):
        number = float(text)
        if not math.isfinite(number):
            return text  # 1e400: not a number JSON can carry
        return int(number) if _WHOLE.fullmatch(text) else number
    if field_type == "boolean" and text in ("true", "false"):
        return text == "true"
    return text


def list_value(text: str, field_type: str | None) -> list:
    """`a, b` -> ["a", "b"]; a JSON array keeps items that hold commas as they are:
    `["red, white & blue", "green"]` -> ["red, white & blue", "green"]."""
    stripped = text.strip()
    if stripped.startswith("["):
        try:
            items = jsontext.loads(stripped)
        except ValueError:
            items = None
        if isinstance(items, list):
            return [coerce(v, field_type) if isinstance(v, str) else v for v in items]
    return [coerce(part.strip(), field_type) for part in text.split(",") if part.strip()]


def condition_value(row: ConditionRow, field_type: str | None):
    """The model value of one condition row; raises ValueError with a sentence."""
    op = row.op
    if op in operators.VALUELESS_OPS:
        return row.value.strip() != "false"
    if op in operators.PAIR_OPS:
        return [coerce(row.value.strip(), field_type), coerce(row.value2.strip(), field_type)]
    if op in operators.LIST_OPS:
        return list_value(row.value, field_type)
    if op in operators.RELATION_OPS:
        try:
            return filters.filter_from_json(row.value) or filters.Group("_and", ())
        except filters.QueryParseError as error:
            raise ValueError(f"{row.field} {op}: {error}") from None
    if op in _JSON_OPS:
        try:
            return jsontext.loads(row.value)
        except ValueError:
            return row.value  # validate() names what is wrong with it
    return coerce(row.value, field_type)


def state_to_query(state: BuilderState, schema: dict | None = None):
    """(Query, {"filter.0.1": node path}, [(node path, message)]) for the current state.

    Conditions without a field and groups left empty are skipped, so a half-filled builder
    still previews; the index map lets validation problems find their row.
    """
    index_map: dict[str, str] = {}
    problems: list[tuple[str, str]] = []

    def type_of(path):
        return fieldpaths.field_type(schema, state.collection, path) if schema else None

    def build(group: GroupRow, where: str) -> filters.Group:
        items = []
        for node in group.items:
            here = f"{where}.{len(items)}"
            if node.is_group:
                built = build(node, here)
                if built.items:
                    items.append(built)
                continue
            if not node.field:
                continue
            op = node.op or "_eq"
            if op in operators.LOGIC:
                problems.append((node.path, f"{op} is a group, not an operator"))
                continue
            try:
                value = condition_value(node, type_of(node.field))
            except ValueError as error:
                problems.append((node.path, str(error)))
                continue
            if op in operators.RELATION_OPS and isinstance(value, filters.Group):
                value = value if value.items else _any_related(schema, state.collection, node)
            index_map[here] = node.path
            items.append(filters.Condition(node.field, op, value))
        return filters.Group(group.logic, tuple(items))

    deep = {}
    if state.deep:
        try:
            deep = jsontext.loads(state.deep)
        except ValueError as error:
            problems.append(("deep", f"deep is not valid JSON: {error}"))
        if not isinstance(deep, dict):
            problems.append(("deep", "deep must be a JSON object"))
            deep = {}
    query = filters.Query(
        collection=state.collection,
        filter=build(state.root, "filter"),
        fields=state.fields,
        sort=tuple(("-" if desc else "") + path for path, desc in state.sorts),
        limit=_int_or_text(state.limit),
        offset=_int_or_text(state.offset),
        page=_int_or_text(state.page),
        search=state.search,
        meta=tuple(state.meta),
        deep=deep,
    )
    return query, index_map, problems


def _any_related(schema, collection, node: ConditionRow) -> filters.Group:
    """ "Has some" / "has none" with no condition: any related item, `{"id": {"_nnull": true}}`.

    Directus refuses an empty `_none` (`filter[tags][_none]=` is 400: "You can't filter for an
    empty string"), so the builder names the related key and asks for it to be set.
    """
    relation = {}
    if schema:
        info = (fieldpaths.fields_of(schema, collection) or {}).get(node.field) or {}
        relation = info.get("relation") or {}
    related = ((schema or {}).get("collections") or {}).get(relation.get("collection")) or {}
    key = related.get("primary_key") or "id"
    return filters.Group("_and", (filters.Condition(key, "_nnull", True),))


def _int_or_text(text: str):
    if not text:
        return None
    return int(text) if _WHOLE.fullmatch(text) else text


def state_from_query(query: filters.Query, **extra) -> BuilderState:
    """The builder state showing `query`; `extra` sets connection, name, show_system."""
    state = BuilderState(
        collection=query.collection,
        was_collection=query.collection,
        root=_group_row(query.filter) if query.filter else GroupRow(),
        fields=",".join(query.fields),
        sorts=[(s.removeprefix("-"), s.startswith("-")) for s in query.sort],
        limit="" if query.limit is None else str(query.limit),
        offset="" if query.offset is None else str(query.offset),
        page="" if query.page is None else str(query.page),
        search=query.search,
        meta=list(query.meta),
        deep=json.dumps(query.deep) if query.deep else "",
        **extra,
    )
    renumber(state.root)
    return state


def _group_row(group: filters.Group) -> GroupRow:
    row = GroupRow(logic=group.logic)
    for item in group.items:
        if isinstance(item, filters.Group):
            row.items.append(_group_row(item))
        else:
            value, value2 = _value_text(item), ""
            if (
                item.op in operators.PAIR_OPS
                and isinstance(item.value, list)
                and len(item.value) == 2
            ):
                value, value2 = as_text(item.value[0]), as_text(item.value[1])
            row.items.append(ConditionRow(item.field, item.op, value, value2, was=item.field))
    return row


def _value_text(cond: filters.Condition) -> str:
    if cond.op in operators.RELATION_OPS and isinstance(cond.value, filters.Group):
        return json.dumps(filters.filter_to_json(cond.value) or {})
    if cond.op in operators.LIST_OPS and isinstance(cond.value, list):
        texts = [as_text(v) for v in cond.value]
        if any("," in t for t in texts):  # a comma inside an item: show the items as JSON
            return json.dumps(cond.value, ensure_ascii=False)
        return ",".join(texts)
    return as_text(cond.value)


def as_text(value) -> str:
    """A value as the builder shows it: text as is, anything else as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def parse_pasted(text: str) -> filters.Query:
    """Read what a person pastes: a URL, a query string, or Clay rows, one per line.

    `https://cms.example.com/items/articles?filter[status][_eq]=published` (collection too),
    `?limit=10&sort=-views`, or lines `filter[status][_eq]=published` / `key<TAB>value`
    (as copied from the Clay rows table; a `Key	Value` header line is skipped). Rows are
    taken as typed, not percent-decoded. Raises QueryParseError.
    """
    text = text.strip()
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) <= 1 and "\t" not in text:
        return filters.Query.from_query_string(text)
    rows = []
    for line in lines:
        key, tab, value = line.partition("\t")
        if not tab:
            key, _, value = line.partition("=")
        key = key.strip()
        if key.lower() == "key" and value.strip().lower() == "value":
            continue
        rows.append((key, value.strip()))
    return filters.Query.from_params(rows)


# -- what each row offers ---------------------------------------------------------------------


def value_input(op: str, field_type: str | None, value: str = "", value2: str = "") -> dict:
    """How to ask for a condition's value: `kind` none/json/list/pair/boolean/single + html type."""
    if op in operators.VALUELESS_OPS:
        return {"kind": "none", "type": ""}
    if op in _JSON_OPS:
        return {"kind": "json", "type": "text"}
    if op in ("_in", "_nin"):
        return {"kind": "list", "type": "text"}
    html = "text" if op in operators.PATTERN_OPS else _HTML_TYPES.get(field_type or "", "text")
    pattern = _FITS.get(html)
    if pattern and any(v and not pattern.fullmatch(v) for v in (value, value2)):
        html = "text"  # `$NOW(-1 year)` or a date in a datetime field: keep it visible
    if op in operators.PAIR_OPS:
        return {"kind": "pair", "type": html}
    if field_type == "boolean" and value in ("", "true", "false"):
        return {"kind": "boolean", "type": ""}
    return {"kind": "single", "type": html}


def annotate(group: GroupRow, schema, collection, problems_by_path, choices):
    """Give each condition row what the page shows: type, operators, value input, problems."""
    known = {path for path, _ in choices}
    for item in group.items:
        if item.is_group:
            annotate(item, schema, collection, problems_by_path, choices)
            continue
        ftype = (
            fieldpaths.field_type(schema, collection, item.field) if schema and item.field else None
        )
        ops = (
            fieldpaths.operators_for_field(schema, collection, item.field)
            if schema and item.field
            else []
        )
        if not ops and item.field not in known:
            ops = list(operators.OPERATOR_LABELS)  # no schema, or a field it does not have
        item.type = ftype
        item.known = item.field in known
        item.ops = [(op, operators.OPERATOR_LABELS.get(op, op)) for op in ops]
        item.op_valid = item.op in ops
        item.input = value_input(item.op, ftype, item.value, item.value2)
        item.choices = _choices(schema, collection, item.field)
        item.problems = problems_by_path.get(item.path, [])


def _choices(schema, collection, path):
    """Enum choices of the field at `path`, for a datalist."""
    if not schema or not path:
        return []
    *relations, name = path.split(".")
    current = collection
    for segment in relations:
        info = ((schema["collections"].get(current) or {}).get("fields") or {}).get(segment) or {}
        current = (info.get("relation") or {}).get("collection")
        if not current:
            return []
    info = ((schema["collections"].get(current) or {}).get("fields") or {}).get(name) or {}
    return [c for c in info.get("choices") or [] if c is not None]


def normalize_ops(group: GroupRow, schema, collection):
    """A new or changed field gets an operator its type allows; a pasted wrong one is kept
    (and reported), so nothing changes behind the user's back."""
    for item in group.items:
        if item.is_group:
            normalize_ops(item, schema, collection)
        elif item.field and (not item.op or item.field != item.was):
            ops = fieldpaths.operators_for_field(schema, collection, item.field) if schema else []
            if not item.op or (ops and item.op not in ops):
                item.op = "_eq" if not ops or "_eq" in ops else ops[0]
        elif not item.op:
            item.op = "_eq"


def node_for(problem_path: str, index_map: dict) -> str | None:
    """The builder row a `filter.0.1...` problem belongs to (the longest matching prefix)."""
    parts = problem_path.split(".")
    while parts:
        found = index_map.get(".".join(parts))
        if found:
            return found
        parts.pop()
    return None
