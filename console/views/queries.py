"""The query builder: build a Directus query by clicking, see it three ways, send it, save it.

The whole builder is one form whose inputs are named by their place in the filter tree:
`f-logic` is the root group, `f.1-logic` its second item (a group), `f.1.0-field` the first
condition in that group. Every change re-posts the form and the server re-renders it, so HTMX
swaps the builder in place and, without JavaScript, the same POST returns the whole page.
The state <-> Query conversion (`parse_state`, `state_to_query`, `state_from_query`,
`parse_pasted`) is pure and tested without a database.
"""

import json
import re
import shlex
from dataclasses import dataclass, field

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST
from django_htmx.http import HttpResponseClientRedirect

from console.access import client_ip, operator_required, viewer_required
from integrations import filters
from integrations.directus import DirectusError
from integrations.models import AuditEvent, DirectusConnection, SavedQuery

ROOT = "f"
_NODE_KEY = re.compile(r"^(f(?:\.\d+)*)-(logic|field|op|value|value2|was)$")
_SORT_KEY = re.compile(r"^s\.(\d+)-(field|dir)$")
_WHOLE = re.compile(r"\s*[+-]?\d+\s*")
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
_JSON_OPS = filters.GEOMETRY_OPS | {"_json", *filters.RELATION_OPS}
_TABLE_ROWS = 200
_WHAT_TO_CHECK = {
    400: "Check the operators and values of the filter, and limit, offset, page and meta.",
    401: "Check the connection's token: an admin can rotate it on the connection page.",
    403: "Check the field and collection names against the schema (Refresh schema if it "
    "changed) and what this connection's token may read.",
    404: "Check the connection's base URL: it must be the Directus API address.",
    429: "Wait a moment and send again.",
}


# -- builder state (pure) -------------------------------------------------------------------


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
    group = GroupRow(logic=logic if logic in filters.LOGIC else "_and", path=path)
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
        return int(number) if _WHOLE.fullmatch(text) else number
    if field_type == "boolean" and text in ("true", "false"):
        return text == "true"
    return text


def condition_value(row: ConditionRow, field_type: str | None):
    """The model value of one condition row; raises ValueError with a sentence."""
    op = row.op
    if op in filters.VALUELESS_OPS:
        return row.value.strip() != "false"
    if op in filters.PAIR_OPS:
        return [coerce(row.value.strip(), field_type), coerce(row.value2.strip(), field_type)]
    if op in filters.LIST_OPS:
        return [coerce(part.strip(), field_type) for part in row.value.split(",") if part.strip()]
    if op in filters.RELATION_OPS:
        try:
            return filters.filter_from_json(row.value) or filters.Group("_and", ())
        except filters.QueryParseError as error:
            raise ValueError(f"{row.field} {op}: {error}") from None
    if op in _JSON_OPS:
        try:
            return json.loads(row.value)
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
        return filters.field_type(schema, state.collection, path) if schema else None

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
            if op in filters.LOGIC:
                problems.append((node.path, f"{op} is a group, not an operator"))
                continue
            try:
                value = condition_value(node, type_of(node.field))
            except ValueError as error:
                problems.append((node.path, str(error)))
                continue
            index_map[here] = node.path
            items.append(filters.Condition(node.field, op, value))
        return filters.Group(group.logic, tuple(items))

    deep = {}
    if state.deep:
        try:
            deep = json.loads(state.deep)
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
                item.op in filters.PAIR_OPS
                and isinstance(item.value, list)
                and len(item.value) == 2
            ):
                value, value2 = _text(item.value[0]), _text(item.value[1])
            row.items.append(ConditionRow(item.field, item.op, value, value2, was=item.field))
    return row


def _value_text(cond: filters.Condition) -> str:
    if cond.op in filters.RELATION_OPS and isinstance(cond.value, filters.Group):
        return json.dumps(filters.filter_to_json(cond.value) or {})
    if cond.op in filters.LIST_OPS and isinstance(cond.value, list):
        return ",".join(_text(v) for v in cond.value)
    return _text(cond.value)


def _text(value) -> str:
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


# -- what the page shows ----------------------------------------------------------------------


def value_input(op: str, field_type: str | None, value: str = "", value2: str = "") -> dict:
    """How to ask for a condition's value: `kind` none/json/list/pair/boolean/single + html type."""
    if op in filters.VALUELESS_OPS:
        return {"kind": "none", "type": ""}
    if op in _JSON_OPS:
        return {"kind": "json", "type": "text"}
    if op in ("_in", "_nin"):
        return {"kind": "list", "type": "text"}
    html = "text" if op in filters.PATTERN_OPS else _HTML_TYPES.get(field_type or "", "text")
    pattern = _FITS.get(html)
    if pattern and any(v and not pattern.fullmatch(v) for v in (value, value2)):
        html = "text"  # `$NOW(-1 year)` or a date in a datetime field: keep it visible
    if op in filters.PAIR_OPS:
        return {"kind": "pair", "type": html}
    if field_type == "boolean" and value in ("", "true", "false"):
        return {"kind": "boolean", "type": ""}
    return {"kind": "single", "type": html}


def item_table(items: list, nested: bool = False) -> dict:
    """Columns and cells for items: nested objects become `author.first_name` columns, lists of
    objects small tables in their cell (one level; deeper lists are compact JSON)."""
    flat = [_flatten_item(item) if isinstance(item, dict) else {"value": item} for item in items]
    columns: list[str] = []
    for row in flat:
        columns += [key for key in row if key not in columns]
    rows = [[_cell(row.get(c, _MISSING), nested) for c in columns] for row in flat]
    return {"columns": columns, "rows": rows}


_MISSING = object()


def _flatten_item(item: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in item.items():
        if isinstance(value, dict) and value:
            out.update(_flatten_item(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


def _cell(value, nested: bool) -> dict:
    if value is _MISSING:
        return {"text": "", "muted": True}
    if value is None:
        return {"text": "null", "muted": True}
    if isinstance(value, list):
        if value and all(isinstance(v, dict) for v in value) and not nested:
            return {"table": item_table(value, nested=True)}
        if all(not isinstance(v, dict | list) for v in value):
            return {"text": ", ".join(_text(v) for v in value)}
        return {"text": json.dumps(value, ensure_ascii=False)}
    if isinstance(value, dict):
        return {"text": json.dumps(value, ensure_ascii=False)}
    return {"text": _text(value)}


def curl_command(url: str) -> str:
    # --globoff: curl would read the [ ] of filter keys as its own URL ranges.
    return f'curl --globoff -H "Authorization: Bearer $DIRECTUS_TOKEN" {shlex.quote(url)}'


def _connection_schema(connection, show_system: bool, force: bool = False):
    """(schema, error sentence); reads and caches the schema the first time it is needed."""
    if connection is None:
        return None, ""
    schema = connection.schema
    stale = schema is None or (show_system and not schema.get("fetched_with_system"))
    if force or stale:
        try:
            schema = connection.refresh_schema(include_system=show_system)
        except DirectusError as error:
            return connection.schema, f"Could not read the schema: {error.explain()}"
    return schema, ""


def _visible_collections(schema, show_system):
    found = (schema or {}).get("collections") or {}
    return sorted(
        name
        for name, info in found.items()
        if show_system or not (info.get("system") or name.startswith("directus_"))
    )


def _annotate(group: GroupRow, schema, collection, problems_by_path, choices):
    known = {path for path, _ in choices}
    for item in group.items:
        if item.is_group:
            _annotate(item, schema, collection, problems_by_path, choices)
            continue
        ftype = (
            filters.field_type(schema, collection, item.field) if schema and item.field else None
        )
        ops = (
            filters.operators_for_field(schema, collection, item.field)
            if schema and item.field
            else list(filters.OPERATOR_LABELS)
        ) or list(filters.OPERATOR_LABELS)
        item.type = ftype
        item.known = item.field in known
        item.ops = [(op, filters.OPERATOR_LABELS.get(op, op)) for op in ops]
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


def _normalize_ops(group: GroupRow, schema, collection):
    """A new or changed field gets an operator its type allows; a pasted wrong one is kept
    (and reported), so nothing changes behind the user's back."""
    for item in group.items:
        if item.is_group:
            _normalize_ops(item, schema, collection)
        elif item.field and (not item.op or item.field != item.was):
            ops = filters.operators_for_field(schema, collection, item.field) if schema else []
            if not item.op or (ops and item.op not in ops):
                item.op = "_eq" if not ops or "_eq" in ops else ops[0]
        elif not item.op:
            item.op = "_eq"


def _build(request, state: BuilderState, action: str = "", refresh: bool = False) -> dict:
    """Everything the builder template shows, after applying `action` to `state`."""
    connections = list(DirectusConnection.objects.order_by("name"))
    if not state.connection and len(connections) == 1:
        state.connection = str(connections[0].pk)
    connection = next((c for c in connections if str(c.pk) == state.connection), None)
    schema, schema_error = _connection_schema(connection, state.show_system, force=refresh)
    paste_error = ""
    if action == "paste":
        try:
            pasted = parse_pasted(state.paste)
        except filters.QueryParseError as error:
            paste_error = str(error)
        else:
            state = state_from_query(
                pasted.with_(collection=pasted.collection or state.collection),
                connection=state.connection,
                show_system=state.show_system,
                name=state.name,
            )
    elif state.was_collection and state.collection != state.was_collection:
        # Another collection: the old conditions and fields mean nothing there.
        state.root, state.fields, state.sorts, state.deep = GroupRow(), "", [], ""
    else:
        apply_action(state, action)
    if state.collection and not state.root.items:
        state.root.items.append(ConditionRow())
    renumber(state.root)
    _normalize_ops(state.root, schema, state.collection)

    query, index_map, state_problems = state_to_query(state, schema)
    problems = [filters.Problem(path, message) for path, message in state_problems]
    if schema and state.collection:
        problems += filters.validate(query, schema)
    by_node: dict[str, list[str]] = {}
    general = []
    for problem in problems:
        node = _node_for(problem.path, index_map)
        if node:
            by_node.setdefault(node, []).append(problem.message)
        elif problem.path.startswith(ROOT):
            by_node.setdefault(problem.path, []).append(problem.message)
        else:
            general.append(problem.message)

    collections = _visible_collections(schema, state.show_system)
    choices = filters.field_choices(schema, state.collection, functions=True) if schema else []
    _annotate(state.root, schema, state.collection, by_node, choices)
    plain = [(p, t) for p, t in choices if "(" not in p]
    to_many = {p for p, t in plain if t == "alias"}
    sortable = [
        (p, t)
        for p, t in plain
        if p not in to_many and not any(p.startswith(a + ".") for a in to_many)
    ]
    url = query.to_url(connection.api_url) if connection and state.collection else ""
    filter_json = query.filter_json()
    rows = query.to_params() if state.collection else []
    return {
        "state": state,
        "connections": connections,
        "connection": connection,
        "schema": schema,
        "schema_error": schema_error,
        "collections": collections,
        "field_choices": choices,
        "pick_fields": [("*", "all fields"), *plain],
        "sort_choices": sortable,
        "sort_choices_paths": {p for p, _ in sortable},
        "query": query,
        "problems": [p.message for p in problems],
        "general_problems": general,
        "paste_error": paste_error,
        "clay_rows": rows,
        "clay_rows_text": "\n".join(f"{k}\t{v}" for k, v in rows),
        "filter_json": json.dumps(filter_json, indent=2, ensure_ascii=False) if filter_json else "",
        "url": url,
        "curl": curl_command(url) if url else "",
        "meta_choices": ["filter_count", "total_count"],
        "logic_choices": [("_and", "All of (AND)"), ("_or", "Any of (OR)")],
    }


def _node_for(problem_path: str, index_map: dict) -> str | None:
    """The builder row a `filter.0.1...` problem belongs to (the longest matching prefix)."""
    parts = problem_path.split(".")
    while parts:
        found = index_map.get(".".join(parts))
        if found:
            return found
        parts.pop()
    return None


def _render(request, context, status=200):
    template = "queries/builder.html"
    if request.htmx:
        target = request.htmx.target
        part = target if target in ("previews", "result") else "builder"
        template = f"{template}#{part}"
    return render(request, template, context, status=status)


def _state_from_get(request) -> BuilderState:
    saved_pk = request.GET.get("saved", "")
    if saved_pk.isdigit():
        saved = get_object_or_404(SavedQuery, pk=saved_pk)
        try:
            query = saved.to_query().with_(collection=saved.collection)
        except filters.QueryParseError as error:
            messages.error(request, f"The saved query “{saved.name}” cannot be read: {error}")
            query = filters.Query(collection=saved.collection)
        return state_from_query(query, connection=str(saved.connection_id), name=saved.name)
    query = filters.Query(collection=request.GET.get("collection", ""))
    if request.GET.get("q"):
        try:
            query = parse_pasted(request.GET["q"]).with_(collection=query.collection)
        except filters.QueryParseError as error:
            messages.error(request, f"The query in the link cannot be read: {error}")
    return state_from_query(query, connection=request.GET.get("connection", ""))


def _audit_use(request, connection, details):
    AuditEvent.record(request.user, client_ip(request), AuditEvent.Action.USED, connection, details)


def _error_result(error: DirectusError) -> dict:
    return {
        "kind": "error",
        "status": error.status,
        "code": error.code,
        "sentence": error.explain(),
        "check": _WHAT_TO_CHECK.get(error.status, ""),
    }


# -- views -------------------------------------------------------------------------------------


@viewer_required
def query_builder(request):
    """The builder page; a POST re-renders it from the posted form after the clicked action."""
    if request.method == "POST":
        state, action = parse_state(request.POST)
    else:
        state, action = _state_from_get(request), ""
    return _render(request, _build(request, state, action))


@operator_required
@require_POST
def refresh_schema(request):
    state, _ = parse_state(request.POST)
    return _render(request, _build(request, state, refresh=True))


@operator_required
@require_POST
def send_query(request):
    """Run the query for real as the chosen connection, refusing it while validation fails."""
    state, _ = parse_state(request.POST)
    context = _build(request, state)
    context["result"] = _run(request, context, count_only=False)
    return _render(request, context)


@operator_required
@require_POST
def count_matches(request):
    """Ask Directus how many items match: `meta=filter_count&limit=0`, nothing else."""
    state, _ = parse_state(request.POST)
    context = _build(request, state)
    context["result"] = _run(request, context, count_only=True)
    return _render(request, context)


def _run(request, context, count_only: bool) -> dict:
    connection, query = context["connection"], context["query"]
    if connection is None or not query.collection:
        return {"kind": "refused", "message": "Pick a connection and a collection first."}
    if context["problems"]:
        return {
            "kind": "refused",
            "message": "Not sent: Directus would refuse or misread this query.",
            "problems": context["problems"],
        }
    if count_only:
        query = query.with_(
            fields=(), sort=(), limit=0, offset=None, page=None, meta=("filter_count",), deep={}
        )
    try:
        with connection.client() as client:
            page = client.list_items(query.collection, query.to_params())
    except DirectusError as error:
        _audit_use(request, connection, _use_details(query, count_only, error.status))
        return _error_result(error)
    _audit_use(request, connection, _use_details(query, count_only, page.status))
    if count_only:
        return {
            "kind": "count",
            "status": page.status,
            "elapsed_ms": page.elapsed_ms,
            "filter_count": (page.meta or {}).get("filter_count"),
        }
    return {
        "kind": "items",
        "status": page.status,
        "elapsed_ms": page.elapsed_ms,
        "meta": page.meta,
        "count": len(page.data),
        "table": item_table(page.data[:_TABLE_ROWS]),
        "truncated": len(page.data) > _TABLE_ROWS,
        "raw": json.dumps(
            {"data": page.data, **({"meta": page.meta} if page.meta else {})},
            indent=2,
            ensure_ascii=False,
        ),
    }


def _use_details(query, count_only, status):
    return {
        "use": "count matches" if count_only else "test request",
        "collection": query.collection,
        "status": status,
    }


@operator_required
@require_POST
def save_query(request):
    """Save the builder's query under a name (saving an existing name again updates it)."""
    state, _ = parse_state(request.POST)
    context = _build(request, state)
    connection, query = context["connection"], context["query"]
    refusal = ""
    if connection is None or not query.collection:
        refusal = "Pick a connection and a collection before saving."
    elif not state.name:
        refusal = "Give the query a name to save it."
    elif context["problems"]:
        refusal = "Not saved: fix the problems listed first."
    if refusal:
        context["save_error"] = refusal
        return _render(request, context, status=400 if not request.htmx else 200)
    saved, created = SavedQuery.objects.update_or_create(
        connection=connection,
        name=state.name[:100],
        defaults={"collection": query.collection, "query_string": query.to_query_string()},
        create_defaults={
            "collection": query.collection,
            "query_string": query.to_query_string(),
            "created_by": request.user,
        },
    )
    verb = "Saved" if created else "Updated"
    messages.success(request, f"{verb} query “{saved.name}”.")
    url = f"{reverse('console:query-builder')}?saved={saved.pk}"
    if request.htmx:
        return HttpResponseClientRedirect(url)
    return redirect(url)


@viewer_required
def saved_queries(request):
    queries = SavedQuery.objects.select_related("connection", "created_by")
    return render(request, "queries/saved.html", {"queries": queries})


@operator_required
@require_POST
def delete_saved_query(request, pk):
    saved = get_object_or_404(SavedQuery, pk=pk)
    if saved.syncs.exists():
        messages.error(request, f"“{saved.name}” is used by syncs; change those first.")
    else:
        saved.delete()
        messages.success(request, f"Deleted saved query “{saved.name}”.")
    return redirect("console:saved-queries")
