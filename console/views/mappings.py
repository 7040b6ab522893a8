"""Mapping templates: list, editor with the field mapper, preview, test on one row, exports, Flow install.

The editor is one form. Its mapper rows are named `m-<i>-target`, `m-<i>-source` (a choice:
"col:Email", "fld:author.name", "col*"/"fld*" for a typed name, "static"), `m-<i>-text` and
`m-<i>-casts`. Every HTMX call posts the whole form to `template-mapper` with `sync` saying
what changed: "mapper" rewrites the body from the rows (fieldmapper.body_from_mapping), "body"
rewrites the rows from the body (fieldmapper.mapping_from_body), anything else re-renders the
editor. Without JavaScript the same URL returns the whole page.
"""

import csv
import io
import json
from dataclasses import dataclass, field

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import ProtectedError
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from console.access import client_ip, operator_required, viewer_required
from console.forms import MappingTemplateForm
from integrations import jsontext
from integrations.directus import fieldpaths, flows
from integrations.directus.client import DirectusError
from integrations.mapping import fieldmapper, templatecheck
from integrations.mapping import templates as mapping
from integrations.mapping.casts import CASTS
from integrations.models import (
    AuditEvent,
    DirectusConnection,
    MappingTemplate,
    SavedQuery,
)
from integrations.query import filters

Kind = MappingTemplate.Kind
# Kinds whose body becomes a Directus item, so its targets are the collection's fields.
WRITE_KINDS = (Kind.CREATE, Kind.UPDATE)
# Kinds whose body is filled from a Directus item (or a Flow's $trigger).
ITEM_KINDS = (Kind.CLAY_ROW, Kind.FLOW)
CLAY_KINDS = (Kind.CREATE, Kind.UPDATE, Kind.GET, Kind.GET_RELATED)
DEFAULT_ID_COLUMN = "Directus ID"
FLOW_VARIABLES = [
    "$trigger",
    "$trigger.key",
    "$trigger.keys",
    "$trigger.event",
    "$trigger.collection",
]


# -- editor state ---------------------------------------------------------------------------


@dataclass
class EditorRow:
    """One mapper row as the form shows it."""

    target: str
    choice: str = ""  # "", "col:X", "fld:P", "col*", "fld*", "static"
    text: str = ""
    casts: str = ""
    fixed: bool = False  # the target is a schema field, not typed
    type: str = ""
    required: bool = False


@dataclass
class Editor:
    """Everything the editor page shows, built from a template or a posted form."""

    name: str = ""
    kind: str = Kind.CREATE
    connection: DirectusConnection | None = None
    collection: str = ""
    saved_query: SavedQuery | None = None
    body: str = "{}"
    missing: str = "error"
    id_column: str = DEFAULT_ID_COLUMN
    fields: str = ""  # get_related: dot-notation fields
    columns_text: str = ""
    sample: str = ""
    item_id: str = ""
    placeholders: dict = field(default_factory=dict)  # options["placeholders"], kept as is
    rows: list = field(default_factory=list)
    has_more: bool = False
    body_problems: list = field(default_factory=list)
    mapper_problems: list = field(default_factory=list)

    @property
    def schema_fields(self) -> dict | None:
        schema = self.connection.schema if self.connection else None
        if not schema or not self.collection:
            return None
        found = (schema.get("collections") or {}).get(self.collection)
        return None if found is None else found.get("fields") or {}

    @property
    def collections(self) -> list[str]:
        schema = self.connection.schema if self.connection else None
        return sorted((schema or {}).get("collections") or {})

    @property
    def sample_columns(self) -> list[str]:
        try:
            return list(parse_sample(self.sample)) if self.sample.strip() else []
        except ValueError:
            return []

    @property
    def columns(self) -> list[str]:
        typed = [c.strip() for c in self.columns_text.replace(",", "\n").splitlines()]
        return list(dict.fromkeys([c for c in typed if c] + self.sample_columns))

    @property
    def field_paths(self) -> list[str]:
        schema = self.connection.schema if self.connection else None
        if not schema or not self.collection:
            return []
        paths = [p for p, _ in fieldpaths.field_choices(schema, self.collection, depth=2)]
        if self.kind == Kind.FLOW:
            return FLOW_VARIABLES + [
                f"$trigger.payload.{name}" for name in self.schema_fields or {}
            ]
        return paths

    @property
    def placeholders_json(self) -> str:
        return json.dumps(self.placeholders) if self.placeholders else ""

    @property
    def options(self) -> dict:
        options = {"missing": self.missing}
        if self.placeholders:
            options["placeholders"] = self.placeholders
        if self.columns:
            options["columns"] = self.columns
        if self.kind in (Kind.UPDATE, Kind.GET_RELATED):
            options["id_column"] = self.id_column or DEFAULT_ID_COLUMN
        if self.kind == Kind.GET_RELATED and self.fields.strip():
            options["fields"] = self.fields.strip()
        return options

    def check(self) -> list[mapping.Problem]:
        """templatecheck.check against what this kind's placeholders and targets may name."""
        if self.kind in (Kind.GET, Kind.GET_RELATED) and not self.body.strip():
            return []
        try:
            parsed = mapping.parse(self.body)
        except mapping.TemplateError as exc:
            return exc.problems
        fields = self.schema_fields
        if self.kind in WRITE_KINDS:
            columns, targets = self.columns or None, fields
        elif self.kind == Kind.CLAY_ROW:
            columns, targets = (self.field_paths or None), None
        elif self.kind == Kind.FLOW:
            columns, targets = (list(fields) if fields else None), None
        else:
            columns, targets = self.columns or None, None
        problems = templatecheck.check(
            parsed,
            columns=columns,
            target_fields=targets,
            options=self.options,
            partial=self.kind == Kind.UPDATE,
        )
        if self.kind == Kind.FLOW and columns is not None:
            # Plain item-field names become $trigger.payload.x when installed: check them too.
            problems = [p for p in problems if not _is_flow_field(p, columns)]
        return problems


def _is_flow_field(problem, columns) -> bool:
    return (
        bool(problem.placeholder)
        and not problem.placeholder.startswith("$")
        and (problem.placeholder.split(".")[0] in columns)
    )


def editor_from_template(template: MappingTemplate) -> Editor:
    options = template.options or {}
    editor = Editor(
        name=template.name,
        kind=template.kind,
        connection=template.connection,
        collection=template.collection,
        saved_query=template.saved_query,
        body=template.body,
        missing=options.get("missing", "error"),
        id_column=options.get("id_column", DEFAULT_ID_COLUMN),
        fields=options.get("fields", ""),
        columns_text="\n".join(options.get("columns") or []),
        placeholders=options.get("placeholders") or {},
    )
    rows_from_body(editor)
    return editor


def editor_from_post(data) -> Editor:
    connection = pick(DirectusConnection, data.get("connection"))
    saved_query = pick(SavedQuery, data.get("saved_query"))
    try:
        placeholders = jsontext.loads(data.get("placeholders") or "{}")
    except ValueError:
        placeholders = {}
    editor = Editor(
        name=data.get("name", "").strip(),
        kind=data.get("kind") if data.get("kind") in Kind.values else Kind.CREATE,
        connection=connection,
        collection=data.get("collection", "").strip(),
        saved_query=saved_query,
        body=data.get("body", ""),
        missing=data.get("missing") if data.get("missing") in mapping.MISSING_POLICIES else "error",
        id_column=data.get("id_column", DEFAULT_ID_COLUMN).strip(),
        fields=data.get("fields", ""),
        columns_text=data.get("columns", ""),
        sample=data.get("sample", ""),
        item_id=data.get("item_id", "").strip(),
        placeholders=placeholders if isinstance(placeholders, dict) else {},
    )
    if editor.kind == Kind.GET and saved_query and not editor.collection:
        editor.collection = saved_query.collection
    return editor


def pick(model, pk):
    """The object with primary key pk (as posted), or None for a missing or bad one."""
    try:
        return model.objects.filter(pk=int(pk)).first() if pk else None
    except (TypeError, ValueError):
        return None


def posted_rows(data) -> list[fieldmapper.MappingRow]:
    """The mapper rows the form holds; rows with no source or no target are left out."""
    rows = []
    try:
        count = min(int(data.get("m-count", 0)), 500)
    except ValueError:
        count = 0
    for i in range(count):
        target = data.get(f"m-{i}-target", "").strip()
        choice = data.get(f"m-{i}-source", "")
        text = data.get(f"m-{i}-text", "")
        if not target or not choice:
            continue
        kind, _, name = choice.partition(":")
        if choice in ("col*", "fld*"):
            kind, name = choice[:3], text.strip()
            if not name:
                continue
        casts = tuple(
            c for c in data.get(f"m-{i}-casts", "").replace(",", "|").split("|") if c.strip()
        )
        casts = tuple(c.strip() for c in casts)
        if kind == "static":
            rows.append(fieldmapper.MappingRow(target, "static", text))
        else:
            rows.append(
                fieldmapper.MappingRow(target, "column" if kind == "col" else "field", name, casts)
            )
    return rows


def rows_from_body(editor: Editor) -> None:
    """Fill editor.rows from its body (every schema field for write kinds, mapped or not)."""
    kind = "field" if editor.kind in ITEM_KINDS else "column"
    try:
        found = fieldmapper.mapping_from_body(editor.body or "{}", placeholder_kind=kind)
    except mapping.TemplateError as exc:
        editor.body_problems = exc.problems
        found = fieldmapper.MappingRows()
    editor.has_more = found.has_more
    editor.rows = view_rows(editor, list(found))


def view_rows(editor: Editor, found: list[fieldmapper.MappingRow]) -> list[EditorRow]:
    by_target = {row.target_field: row for row in found}
    rows = []
    fields = editor.schema_fields if editor.kind in WRITE_KINDS else None
    for name, info in (fields or {}).items():
        row = by_target.pop(name, None)
        if info.get("readonly") and row is None:
            continue
        rows.append(
            _editor_row(
                editor,
                name,
                row,
                fixed=True,
                type=info.get("type") or "",
                required=bool(info.get("required")),
            )
        )
    for name, row in by_target.items():
        rows.append(_editor_row(editor, name, row, fixed=False))
    if fields is None:
        rows.append(EditorRow(target=""))  # a blank row to add a member
    return rows


def _editor_row(editor, target, row, **kwargs) -> EditorRow:
    out = EditorRow(target=target, **kwargs)
    if row is None:
        return out
    out.casts = " | ".join(row.casts)
    if row.source_kind == "static":
        out.choice, out.text = "static", row.source
    elif row.source_kind == "column" and editor.kind not in ITEM_KINDS:
        known = row.source in editor.columns
        out.choice, out.text = ("col:" + row.source, "") if known else ("col*", row.source)
    else:
        known = row.source in editor.field_paths
        out.choice, out.text = ("fld:" + row.source, "") if known else ("fld*", row.source)
    return out


def body_from_rows(editor: Editor, rows: list[fieldmapper.MappingRow]) -> None:
    """Rewrite editor.body from the mapper rows, keeping what rows cannot express."""
    try:
        base = editor.body if editor.body.strip() else None
        if base is not None:
            mapping.parse(base)
    except mapping.TemplateError:
        base = None  # an unparsable body is replaced by what the rows say
    try:
        editor.body = fieldmapper.body_from_mapping(rows, base=base)
    except mapping.TemplateError as exc:
        editor.mapper_problems = exc.problems
    rows_from_body(editor)


# -- sample rows ----------------------------------------------------------------------------


def parse_sample(text: str) -> dict:
    """A pasted sample row -> dict: a JSON object (or the first of a list), or CSV's first data row.

    CSV needs a header row; a byte-order mark, quoted cells ("O""Brien", "a, b") and line
    breaks inside quotes are handled; tab- or semicolon-separated text (pasted from a
    spreadsheet) works too. CSV values stay text: casts turn "42" into 42.
    """
    text = text.lstrip("\ufeff").strip()
    if not text:
        raise ValueError("Paste a sample row first: a JSON object, or CSV with a header row.")
    if text[0] in "{[":
        try:
            value = jsontext.loads(text)
        except ValueError as exc:
            raise ValueError(f"The sample row is not valid JSON: {exc}.") from None
        if isinstance(value, list):
            value = next((item for item in value if isinstance(item, dict)), None)
        if not isinstance(value, dict):
            raise ValueError("The sample row must be a JSON object (or a list of objects).")
        return value
    first_line = text.splitlines()[0]
    delimiter = (
        "\t"
        if "\t" in first_line
        else (";" if first_line.count(";") > first_line.count(",") else ",")
    )
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = [name.strip().lstrip("\ufeff") for name in next(reader)]
    for record in reader:
        if any(cell.strip() for cell in record):
            break
    else:
        raise ValueError("The CSV has a header row but no data row.")
    if len(record) > len(header):
        raise ValueError(
            f"The first data row has {len(record)} cells but the header names {len(header)} "
            "columns: check the quotes."
        )
    record += [""] * (len(header) - len(record))
    return dict(zip(header, record, strict=True))


# -- pages ----------------------------------------------------------------------------------


@viewer_required
def templates(request):
    items = MappingTemplate.objects.select_related("connection", "saved_query")
    return render(request, "mappings/list.html", {"templates": items})


@operator_required
def add_template(request):
    if request.method == "POST":
        return _save(request, None)
    editor = Editor(connection=DirectusConnection.objects.first())
    kind = request.GET.get("kind")
    if kind in Kind.values:
        editor.kind = kind
    rows_from_body(editor)
    return _page(request, editor, None)


@viewer_required
def template_detail(request, pk):
    template = get_object_or_404(
        MappingTemplate.objects.select_related("connection", "saved_query"), pk=pk
    )
    if request.method == "POST":
        if not request.user.is_operator:
            raise PermissionDenied("This needs the operator role.")
        return _save(request, template)
    return _page(request, editor_from_template(template), template)


def _save(request, template):
    editor = editor_from_post(request.POST)
    form = MappingTemplateForm(request.POST, instance=template)
    problems = editor.check()
    if form.is_valid() and not problems:
        with transaction.atomic():
            saved = form.save(commit=False)
            if saved.kind == Kind.GET and not saved.collection and saved.saved_query:
                saved.collection = saved.saved_query.collection
            saved.options = editor.options
            if template is None:
                saved.created_by = request.user
            saved.save()
        messages.success(request, f"Saved template “{saved.name}”.")
        return redirect("console:template-detail", pk=saved.pk)
    editor.body_problems = problems
    rows_from_body(editor)
    editor.body_problems = problems or editor.body_problems
    return _page(request, editor, template, form=form, status=400)


def _page(request, editor, template, *, form=None, status=200, extra=None, partial=None):
    context = {
        "editor": editor,
        "template": template,
        "form": form,
        "kinds": Kind.choices,
        "connections": DirectusConnection.objects.all(),
        "saved_queries": SavedQuery.objects.filter(connection=editor.connection)
        if editor.connection
        else SavedQuery.objects.none(),
        "casts": list(CASTS),
        "missing_policies": mapping.MISSING_POLICIES,
        "write_kinds": WRITE_KINDS,
        "item_kinds": ITEM_KINDS,
        "can_edit": request.user.is_operator,
        "flow_sim": _flow_sim(editor) if editor.kind == Kind.FLOW else None,
        **(extra or {}),
    }
    name = "mappings/editor.html" + (f"#{partial}" if partial else "")
    return render(request, name, context, status=status)


def _flow_sim(editor: Editor, item: dict | None = None) -> dict:
    """Linter warnings and the three simulated events, for the Flow editor."""
    warnings = flows.lint(editor.body, flows.SCOPES)
    try:
        parsed = mapping.parse(editor.body)
    except mapping.TemplateError as exc:
        return {"warnings": warnings, "problems": exc.problems, "events": []}
    results = flows.simulate(
        parsed, item=item, collection=editor.collection or "articles", options=editor.options
    )
    events = [
        {
            "scope": scope,
            "trigger": json.dumps(result.trigger, indent=2, ensure_ascii=False),
            "kiln": _pretty(result.rendered_json),
            "directus": _pretty(result.directus_json),
            "problems": result.problems,
        }
        for scope, result in results.items()
    ]
    return {"warnings": warnings, "problems": [], "events": events}


def _pretty(text):
    return None if text is None else json.dumps(json.loads(text), indent=2, ensure_ascii=False)


@operator_required
@require_POST
def sync_mapper(request):
    """Keep the mapper and the body in sync; HTMX gets the part that changed."""
    editor = editor_from_post(request.POST)
    sync = request.POST.get("sync", "")
    if request.POST.get("refresh_schema") and editor.connection:
        try:
            editor.connection.refresh_schema()
        except DirectusError as exc:
            messages.error(request, f"Could not read the schema: {exc.explain()}")
    if sync in ("mapper", "sample") and "m-count" in request.POST:
        # A new sample row brings new columns; the rows as they stand stay what counts.
        body_from_rows(editor, posted_rows(request.POST))
    else:
        rows_from_body(editor)
    if request.htmx:
        partial = {"mapper": "mapper-changed", "body": "body-changed", "sample": "mapper-changed"}
        # The mapper is swapped only when it must be (new columns, or a blank row to add):
        # replacing the select the operator just used would drop the next click's request.
        refresh = sync == "sample" or not (editor.kind in WRITE_KINDS and editor.schema_fields)
        return _page(
            request,
            editor,
            None,
            partial=partial.get(sync, "editor"),
            extra={"refresh_mapper": refresh},
        )
    template = pick(MappingTemplate, request.POST.get("template"))
    return _page(request, editor, template)


@operator_required
@require_POST
def preview_template(request):
    """Render the body on the pasted sample row, or on a real item fetched by id."""
    editor = editor_from_post(request.POST)
    rows_from_body(editor)
    preview = _preview(request, editor, request.POST.get("preview_source", "sample"))
    if request.htmx:
        return _page(request, editor, None, partial="preview", extra={"preview": preview})
    template = pick(MappingTemplate, request.POST.get("template"))
    return _page(request, editor, template, extra={"preview": preview})


def _preview(request, editor, source) -> dict:
    if source == "item":
        if not (editor.connection and editor.collection and editor.item_id):
            return {
                "kind": "error",
                "message": "Pick a connection and collection and type an item id.",
            }
        try:
            with editor.connection.client() as client:
                row = client.get_item(editor.collection, editor.item_id)
        except DirectusError as exc:
            _audit_use(request, editor, "preview on item", exc.status)
            return {"kind": "error", "message": exc.explain()}
        _audit_use(request, editor, "preview on item", 200)
        label = f"item {editor.item_id} of {editor.collection}"
    else:
        try:
            row = parse_sample(editor.sample)
        except ValueError as exc:
            return {"kind": "error", "message": str(exc)}
        label = "the sample row"
    shown_row = json.dumps(row, indent=2, ensure_ascii=False)
    if editor.kind == Kind.FLOW:
        return {"kind": "flow", "label": label, "row": shown_row, "sim": _flow_sim(editor, row)}
    try:
        rendered = mapping.parse(editor.body).render_json(row, editor.options)
    except mapping.TemplateError as exc:
        return {"kind": "problems", "label": label, "row": shown_row, "problems": exc.problems}
    return {"kind": "ok", "label": label, "row": shown_row, "json": _pretty(rendered)}


def _audit_use(request, editor, use, status):
    AuditEvent.record(
        request.user,
        client_ip(request),
        AuditEvent.Action.USED,
        editor.connection,
        {"use": use, "template": editor.name, "collection": editor.collection, "status": status},
    )


@operator_required
@require_POST
def test_template(request):
    """Test on one row: first show exactly what would be sent; send only when confirmed."""
    editor = editor_from_post(request.POST)
    rows_from_body(editor)
    request_plan = _plan_request(editor)
    if request.POST.get("confirm") == "yes" and "error" not in request_plan:
        request_plan["result"] = _send(request, editor, request_plan)
    if request.htmx:
        return _page(request, editor, None, partial="test-result", extra={"test": request_plan})
    template = pick(MappingTemplate, request.POST.get("template"))
    return _page(request, editor, template, extra={"test": request_plan})


def _plan_request(editor) -> dict:
    """Method, path, params and body the test would send, or {"error": sentence}."""
    if editor.kind not in CLAY_KINDS:
        return {
            "error": "Test on one row sends Create, Update, Get and Get Related templates; "
            "use Preview (or the Flow simulator) for this kind."
        }
    if not (editor.connection and editor.collection):
        return {"error": "Pick a connection and a collection first."}
    try:
        row = parse_sample(editor.sample)
    except ValueError as exc:
        return {"error": str(exc)}
    items = f"/items/{editor.collection}"
    plan = {"connection": editor.connection.name, "params": [], "body": None}
    if editor.kind in WRITE_KINDS:
        problems = editor.check()
        if problems:
            return {"error": "Not sent: the body has problems.", "problems": problems}
        try:
            body = mapping.parse(editor.body).render(row, editor.options)
        except mapping.TemplateError as exc:
            return {"error": "Not sent: the row does not fill the body.", "problems": exc.problems}
        plan["body"] = body
        plan["body_json"] = json.dumps(body, indent=2, ensure_ascii=False)
    if editor.kind in (Kind.UPDATE, Kind.GET_RELATED):
        column = editor.id_column or DEFAULT_ID_COLUMN
        try:
            item_id = mapping.lookup(row, column)
        except mapping.MissingValue:
            return {"error": f"The row has no “{column}” column holding the item id."}
        if item_id in (None, ""):
            return {"error": f"The row's “{column}” is empty: there is no item to address."}
        plan["item_id"] = item_id
        items = f"{items}/{item_id}"
    if editor.kind == Kind.GET:
        if not editor.saved_query:
            return {"error": "Pick the saved query this Get runs."}
        try:
            plan["params"] = _fill_params(editor.saved_query.to_query().to_params(), row, editor)
        except (mapping.TemplateError, filters.QueryParseError) as exc:
            return {"error": f"The saved query could not be filled from the row: {exc}"}
    if editor.kind == Kind.GET_RELATED:
        fields = editor.fields.strip() or (
            ",".join(editor.saved_query.to_query().fields) if editor.saved_query else ""
        )
        if fields:
            plan["params"] = [("fields", fields)]
    plan["method"] = {Kind.CREATE: "POST", Kind.UPDATE: "PATCH"}.get(editor.kind, "GET")
    plan["path"] = items
    plan["url"] = editor.connection.display_url + items
    return plan


def _fill_params(params, row, editor) -> list[tuple[str, str]]:
    """Query parameter values may hold placeholders (`filter[email][_eq]={{Email}}`)."""
    filled = []
    for key, value in params:
        if "{{" in value:
            rendered = mapping.parse(json.dumps(value)).render(row, editor.options)
            value = rendered if isinstance(rendered, str) else json.dumps(rendered)
        filled.append((key, value))
    return filled


def _send(request, editor, plan) -> dict:
    kind = editor.kind
    try:
        with editor.connection.client() as client:
            # The raw response gives the real status (PATCH of a missing id answers 204).
            response = client.items_request(
                plan["method"],
                editor.collection,
                plan.get("item_id"),
                params=plan["params"] or None,
                body=plan["body"] if kind in WRITE_KINDS else None,
            )
            elapsed = client.last_elapsed_ms
    except DirectusError as exc:
        _audit_use(request, editor, "test on one row", exc.status)
        return {"ok": False, "status": exc.status, "code": exc.code, "message": exc.explain()}
    _audit_use(request, editor, "test on one row", response.status_code)
    try:
        answer = (
            json.dumps(response.json(), indent=2, ensure_ascii=False) if response.content else ""
        )
    except ValueError:
        answer = response.text[:2000]
    note = ""
    if response.status_code == 204 and kind == Kind.UPDATE:
        note = "Directus answers 204 with no body when no item has this id: nothing was updated."
    return {
        "ok": True,
        "status": response.status_code,
        "elapsed_ms": elapsed,
        "answer": answer,
        "note": note,
    }


@operator_required
def delete_template(request, pk):
    template = get_object_or_404(MappingTemplate, pk=pk)
    if request.method == "POST":
        try:
            template.delete()
        except ProtectedError:
            messages.error(request, f"“{template.name}” is used by syncs; change those first.")
            return redirect("console:template-detail", pk=pk)
        messages.success(request, f"Deleted template “{template.name}”.")
        return redirect("console:templates")
    return render(request, "mappings/confirm_delete.html", {"template": template})
