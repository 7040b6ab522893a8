"""The query builder: build a Directus query by clicking, see it three ways, send it, save it.

The builder is one form (see console/builder.py for its state and the Query conversion).
Every change re-posts the form and the server re-renders it, so HTMX swaps the builder in
place and, without JavaScript, the same POST returns the whole page.
"""

import json
import shlex

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST
from django_htmx.http import HttpResponseClientRedirect

from console.access import client_ip, operator_required, viewer_required
from console.builder import (
    ROOT,
    BuilderState,
    ConditionRow,
    GroupRow,
    annotate,
    apply_action,
    as_text,
    node_for,
    normalize_ops,
    parse_pasted,
    parse_state,
    renumber,
    state_from_query,
    state_to_query,
)
from integrations.directus import fieldpaths
from integrations.directus.client import DirectusError
from integrations.directus.fieldpaths import did_you_mean
from integrations.models import AuditEvent, DirectusConnection, SavedQuery
from integrations.query import filters, querycheck

_TABLE_ROWS = 200
_WHAT_TO_CHECK = {
    400: "Check the operators and values of the filter, and limit, offset, page and meta.",
    401: "Check the connection's token: an admin can rotate it on the connection page.",
    403: "Check the field and collection names against the schema (Refresh schema if it "
    "changed) and what this connection's token may read.",
    404: "Check the connection's base URL: it must be the Directus API address.",
    429: "Wait a moment and send again.",
}

# Cells longer than this (or with more lines) show their start and "show all".
CELL_CHARS = 300
CELL_LINES = 6
# Directus answers at most this many items of a nested list unless deep[field][_limit] says.
NESTED_DEFAULT_LIMIT = 100
# Seconds a test request or count waits out Directus's rate limiter (429) before it fails.
RATE_LIMIT_WAIT = 5.0
# The most of a paste the page sends back: a megabyte pasted is not a megabyte echoed.
PASTE_ECHO_CHARS = 10_000


# -- what the page shows ----------------------------------------------------------------------


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
    """What a table cell shows. `""`, `[]`, `{}` and null are shown as such (muted), so they
    are told apart from each other and from a field that is not in the item (blank)."""
    if value is _MISSING:
        return {"text": "", "muted": True}
    if value is None:
        return {"text": "null", "muted": True, "kind": "null"}
    if value == "" or value == [] or value == {}:
        return {"text": json.dumps(value), "muted": True, "kind": "empty"}
    if isinstance(value, list):
        if all(isinstance(v, dict) for v in value) and not nested:
            return {"table": item_table(value, nested=True)}
        if all(not isinstance(v, dict | list) for v in value):
            return _clipped(", ".join(as_text(v) for v in value))
        return _clipped(json.dumps(value, ensure_ascii=False))
    if isinstance(value, dict):
        return _clipped(json.dumps(value, ensure_ascii=False))
    return _clipped(as_text(value))


def _clipped(text: str) -> dict:
    """A long text shows its start, with "show all" for the rest (the raw JSON has it all)."""
    if len(text) <= CELL_CHARS and text.count("\n") < CELL_LINES:
        return {"text": text}
    head = "\n".join(text[:CELL_CHARS].split("\n")[:CELL_LINES])
    return {"text": text, "head": head, "length": len(text)}


def nested_limit_hits(items: list, deep: dict) -> list[str]:
    """Fields whose list came back with exactly Directus's default nested limit (100) in some
    item, with no `deep` limit set for them: the list is probably cut."""
    hits = []
    for item in items:
        for key, value in item.items() if isinstance(item, dict) else ():
            if (
                isinstance(value, list)
                and len(value) == NESTED_DEFAULT_LIMIT
                and "_limit" not in ((deep or {}).get(key) or {})
                and key not in hits
            ):
                hits.append(key)
    return hits


def curl_command(url: str) -> str:
    # --globoff: curl would read the [ ] of filter keys as its own URL ranges.
    return f'curl --globoff -H "Authorization: Bearer $DIRECTUS_TOKEN" {shlex.quote(url)}'


def _connection_schema(connection, show_system: bool, force: bool = False, may_read=True):
    """(schema, error sentence); reads and caches the schema the first time it is needed.

    Only operators make Kiln call Directus (may_read): a viewer sees the cached schema."""
    if connection is None:
        return None, ""
    schema = connection.schema
    stale = schema is None or (show_system and not schema.get("fetched_with_system"))
    if (force or stale) and not may_read:
        if schema is None:
            return None, "No schema is cached for this connection yet: an operator can read it."
        return schema, (
            "System collections are not in the cached schema: an operator can refresh it."
        )
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


def _build(request, state: BuilderState, action: str = "", refresh: bool = False) -> dict:
    """Everything the builder template shows, after applying `action` to `state`."""
    connections = list(DirectusConnection.objects.order_by("name"))
    if not state.connection and len(connections) == 1:
        state.connection = str(connections[0].pk)
    connection = next((c for c in connections if str(c.pk) == state.connection), None)
    schema, schema_error = _connection_schema(
        connection, state.show_system, force=refresh, may_read=request.user.is_operator
    )
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
    elif action.startswith("deep-limit:"):
        state.deep = _with_deep_limit(state.deep, action.removeprefix("deep-limit:"))
    else:
        apply_action(state, action)
    if state.collection and not state.root.items:
        state.root.items.append(ConditionRow())
    renumber(state.root)
    normalize_ops(state.root, schema, state.collection)

    query, index_map, state_problems = state_to_query(state, schema)
    problems = [querycheck.Problem(path, message) for path, message in state_problems]
    if schema and state.collection:
        problems += querycheck.validate(query, schema)
    by_node: dict[str, list[str]] = {}
    general = []
    for problem in problems:
        node = node_for(problem.path, index_map)
        if node:
            by_node.setdefault(node, []).append(problem.message)
        elif problem.path.startswith(ROOT):
            by_node.setdefault(problem.path, []).append(problem.message)
        else:
            general.append(problem.message)

    warnings = querycheck.warnings(query, schema) if schema and state.collection else []
    warn_by_node: dict[str, list[str]] = {}
    for warning in warnings:
        warn_by_node.setdefault(node_for(warning.path, index_map) or "", []).append(warning.message)

    collections = _visible_collections(schema, state.show_system)
    choices = fieldpaths.field_choices(schema, state.collection, functions=True) if schema else []
    annotate(state.root, schema, state.collection, by_node, choices)
    _attach_warnings(state.root, warn_by_node)
    plain = [(p, t) for p, t in choices if "(" not in p]
    to_many = {p for p, t in plain if t == "alias"}
    sortable = [
        (p, t)
        for p, t in plain
        if p not in to_many and not any(p.startswith(a + ".") for a in to_many)
    ]
    paste_cut = max(0, len(state.paste) - PASTE_ECHO_CHARS)
    if paste_cut:
        state.paste = state.paste[:PASTE_ECHO_CHARS]
    url = query.to_url(connection.display_url) if connection and state.collection else ""
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
        "warnings": [w.message for w in warnings],
        "general_problems": general,
        "paste_error": paste_error[:500],
        "paste_cut": paste_cut,
        "clay_rows": rows,
        "clay_rows_text": "\n".join(f"{k}\t{v}" for k, v in rows),
        "filter_json": json.dumps(filter_json, indent=2, ensure_ascii=False) if filter_json else "",
        "url": url,
        "curl": curl_command(url) if url else "",
        "meta_choices": ["filter_count", "total_count"],
        "logic_choices": [("_and", "All of (AND)"), ("_or", "Any of (OR)")],
    }


def _with_deep_limit(deep_text: str, field: str) -> str:
    """The deep JSON with `{field: {"_limit": -1}}` merged in (all nested items)."""
    try:
        deep = json.loads(deep_text) if deep_text.strip() else {}
    except ValueError:
        return deep_text  # leave a broken deep alone: the builder says what is wrong with it
    if not isinstance(deep, dict) or not field:
        return deep_text
    node = deep.get(field) if isinstance(deep.get(field), dict) else {}
    deep[field] = {**node, "_limit": -1}
    return json.dumps(deep)


def _attach_warnings(group, warn_by_node):
    """Each condition row gets the warnings about it (shown under the row, never blocking)."""
    for item in group.items:
        if item.is_group:
            _attach_warnings(item, warn_by_node)
        else:
            item.warnings = warn_by_node.get(item.path, [])


def _render(request, context, status=200):
    template = "queries/builder.html"
    if request.htmx:
        target = request.htmx.target
        part = target if target in ("previews", "result") else "builder"
        template = f"{template}#{part}"
    return render(request, template, context, status=status)


def _state_from_get(request) -> BuilderState:
    saved_pk = request.GET.get("saved", "")
    if saved_pk.isdigit() and len(saved_pk) < 19:  # longer cannot be an id
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
    # A click waits out Directus's rate limiter for a few seconds and says so.
    with connection.client(rate_limit_wait=RATE_LIMIT_WAIT) as client:
        try:
            page = client.list_items(query.collection, query.to_params())
        except DirectusError as error:
            _audit_use(request, connection, _use_details(query, count_only, error.status))
            result = {**_error_result(error), "waited_ms": client.rate_limited_ms}
            if error.status == 403:
                names = ((context["schema"] or {}).get("collections") or {}).keys()
                result["sentence"] += did_you_mean(query.collection, names)
            return result
        waited_ms = client.rate_limited_ms
    _audit_use(request, connection, _use_details(query, count_only, page.status))
    if count_only:
        return {
            "kind": "count",
            "status": page.status,
            "elapsed_ms": page.elapsed_ms,
            "waited_ms": waited_ms,
            "filter_count": (page.meta or {}).get("filter_count"),
        }
    return {
        "kind": "items",
        "waited_ms": waited_ms,
        "status": page.status,
        "elapsed_ms": page.elapsed_ms,
        "meta": page.meta,
        "count": len(page.data),
        "table": item_table(page.data[:_TABLE_ROWS]),
        "cut_lists": nested_limit_hits(page.data, query.deep),
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
