"""Write-back pages: CSV upload → preview → map → confirm → a run; inbound routes and the relay;
one row's round trip."""

import hashlib
import json
import uuid
from datetime import timedelta
from pathlib import Path

from django import forms
from django.conf import settings
from django.contrib import messages
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from console.access import admin_required, client_ip, operator_required, viewer_required
from integrations.clay import csvimport
from integrations.directus import flow_installer
from integrations.directus.client import DirectusError
from integrations.mapping import columnmap
from integrations.mapping import templates as mapping
from integrations.models import (
    AuditEvent,
    CsvUpload,
    InboundRoute,
    InboundRow,
    MappingTemplate,
    RowTrace,
    RowTraceEvent,
    Sync,
    SyncRun,
)
from integrations.runs import inbound, inbound_run, relay

WRITE_KINDS = (Sync.Kind.CLAY_TO_DIRECTUS, Sync.Kind.RELAY)
# A CSV column that finds items for updates through their round trip (Clay exports it as is).
ROW_ID_COLUMN = inbound.ROW_ID_FIELD
STUCK_HOURS = 1


class WriteBackSyncForm(forms.ModelForm):
    class Meta:
        model = Sync
        fields = [
            "name",
            "kind",
            "connection",
            "collection",
            "write_mode",
            "match_field",
            "match_ignore_case",
            "row_key",
            "destination",
            "template",
            "rate_limit",
        ]
        labels = {
            "connection": "Directus connection",
            "row_key": "Primary key field",
            "destination": "Clay destination (relay)",
            "template": "Clay row template (relay)",
            "rate_limit": "Rate limit (requests per second; 0 = none)",
            "match_ignore_case": "Ignore letter case",
        }
        help_texts = {
            "collection": "Written to (write-back) or watched (relay).",
            "match_field": "Upsert: the field that tells an existing item, e.g. email.",
            "match_ignore_case": "Upsert: Ann@X.com matches an item with ann@x.com. Off: an "
            "item that differs only in letter case is not matched, and the row says so.",
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["kind"].choices = [(k.value, k.label) for k in WRITE_KINDS]
        self.fields["connection"].required = True
        self.fields["collection"].required = True
        self.fields["template"].queryset = MappingTemplate.objects.filter(
            kind=MappingTemplate.Kind.CLAY_ROW
        )
        self.fields["template"].empty_label = "Send the item as is"

    def clean(self):
        data = super().clean()
        if data.get("kind") == Sync.Kind.RELAY and not data.get("destination"):
            self.add_error("destination", "A relay needs a Clay destination to deliver to.")
        if (
            data.get("kind") == Sync.Kind.CLAY_TO_DIRECTUS
            and data.get("write_mode") == Sync.WriteMode.UPSERT
            and not data.get("match_field")
        ):
            self.add_error("match_field", "Upsert needs a match field.")
        return data


class UploadForm(forms.Form):
    sync = forms.ModelChoiceField(
        Sync.objects.filter(kind=Sync.Kind.CLAY_TO_DIRECTUS), label="Write into"
    )
    file = forms.FileField(label="Clay CSV export")


class RouteSettingsForm(forms.ModelForm):
    """A relay route's settings (operators change them; viewers see them)."""

    class Meta:
        model = InboundRoute
        fields = ["relay_own_writes"]
        labels = {"relay_own_writes": "Relay Kiln's own writes"}
        help_texts = {
            "relay_own_writes": (
                "Off (the default): a change Kiln's own write-back made in Directus is not sent "
                "to Clay again, so an enriched row does not loop Clay → Directus → Clay. The "
                "Flow must be installed (or re-installed) from Kiln to say who made a change."
            )
        }


def _write_syncs():
    return Sync.objects.filter(kind__in=WRITE_KINDS).select_related(
        "connection", "destination", "inbound_route"
    )


@viewer_required
def writeback_home(request):
    return render(
        request,
        "writeback/home.html",
        {
            "syncs": _write_syncs(),
            "uploads": CsvUpload.objects.select_related("sync", "run")[:20],
            "upload_form": UploadForm(),
            "sync_form": WriteBackSyncForm(
                initial={"kind": Sync.Kind.CLAY_TO_DIRECTUS, "rate_limit": 10}
            ),
        },
    )


@operator_required
@require_POST
def add_writeback_sync(request):
    form = WriteBackSyncForm(request.POST)
    if not form.is_valid():
        context = {
            "syncs": _write_syncs(),
            "uploads": CsvUpload.objects.all()[:20],
            "upload_form": UploadForm(),
            "sync_form": form,
        }
        return render(request, "writeback/home.html", context, status=400)
    sync = form.save(commit=False)
    sync.created_by = request.user
    sync.save()
    messages.success(request, f"Saved “{sync.name}”.")
    return redirect("console:writeback")


# -- CSV upload -------------------------------------------------------------------------------------

CHECK_CACHE_SECONDS = 300
# "Will update / will create" looks the match values up in Directus, 100 per request, when a
# file has at most this many distinct ones (20 requests); a bigger file says why it does not.
LOOKUP_MAX_KEYS = 2000
LOOKUP_CHUNK = 100


def _upload_dir() -> Path:
    path = Path(settings.VAR_DIR) / "uploads"
    path.mkdir(parents=True, exist_ok=True)
    return path


@operator_required
@require_POST
def upload_csv(request):
    form = UploadForm(request.POST, request.FILES)
    if not form.is_valid():
        messages.error(request, "Choose a write-back sync and a CSV file.")
        return redirect("console:writeback")
    sync, incoming = form.cleaned_data["sync"], form.cleaned_data["file"]
    target = _upload_dir() / f"{uuid.uuid4().hex}.csv"
    with open(target, "wb") as out:
        for chunk in incoming.chunks():  # streamed: a large export is never held in memory
            out.write(chunk)
    try:
        preview = csvimport.inspect(target)
    except csvimport.CsvFileError as exc:
        target.unlink(missing_ok=True)
        messages.error(request, f"{incoming.name}: {exc}")
        return redirect("console:writeback")
    # The guess needs the collection's fields: read them now if the connection has none cached.
    fields, unknown = _collection_fields(sync, read=True)
    if unknown:
        messages.error(request, unknown)
    upload = CsvUpload.objects.create(
        sync=sync,
        path=str(target),
        original_name=incoming.name[:255],
        size=target.stat().st_size,
        delimiter=preview.delimiter,
        columns=preview.columns,
        preview=preview.rows,
        row_count=preview.row_count,
        bad_line_count=preview.bad_line_count,
        bad_lines=preview.bad_lines,
        mapping=_guess_mapping(preview.columns, fields),
        uploaded_by=request.user,
    )
    for warning in preview.warnings:
        messages.warning(request, warning)
    return redirect("console:writeback-upload-detail", upload.pk)


def _cached_fields(sync) -> dict:
    schema = (sync.connection.schema or {}) if sync.connection_id else {}
    collection = (schema.get("collections") or {}).get(sync.collection) or {}
    return collection.get("fields") or {}


def _collection_fields(sync, *, read=False, force=False) -> tuple[dict, str]:
    """(the sync's collection's fields, "" or a sentence saying why they are not known).

    read: ask Directus when the cached schema lacks the collection (force: even when not).
    """
    if not sync.connection_id or not sync.collection:
        return {}, "This sync has no Directus connection or collection: edit the sync first."
    fields = _cached_fields(sync)
    if (fields and not force) or not (read or force):
        return fields, "" if fields else _fields_unknown(sync)
    try:
        sync.connection.refresh_schema()
    except DirectusError as exc:
        return {}, (
            f"Kiln could not read the fields of “{sync.collection}” from Directus: "
            f"{exc.explain()} A token without read access to the schema (directus_fields) "
            "cannot tell Kiln the field names and types. " + _BY_HAND
        )
    fields = _cached_fields(sync)
    return fields, "" if fields else _fields_unknown(sync)


_BY_HAND = (
    "So no column is mapped for you and no cast is chosen from a field type: map the columns "
    "by hand (field names cannot be checked), or give the token access and read the fields again."
)


def _fields_unknown(sync) -> str:
    if sync.connection.schema is None:
        return f"Kiln has not read the fields of “{sync.collection}” from Directus yet. " + _BY_HAND
    return (
        f"The schema Kiln read from Directus has no collection “{sync.collection}” (or no "
        "fields in it): it does not exist, or this token may not read its schema. " + _BY_HAND
    )


def _guess_mapping(columns, fields) -> list:
    """Columns named like a field ("Full Name" → full_name) are mapped, with the type's cast;
    with no known fields nothing is guessed."""
    return [_mapping_row(e.field, e.column, e.casts) for e in columnmap.guess(columns, fields)]


def _mapping_row(field, column, casts) -> dict:
    return {"field": field, "source_kind": "column", "source": column, "casts": list(casts)}


@viewer_required
def csv_upload(request, pk):
    upload = get_object_or_404(CsvUpload.objects.select_related("sync__connection", "run"), pk=pk)
    sync, problems = upload.sync, []
    if request.method == "POST":
        if not request.user.is_operator:
            fields, unknown = _collection_fields(sync)
            context = _upload_context(upload, fields, unknown)
            return render(request, "writeback/upload.html", context, status=403)
        if upload.run_id:
            messages.info(request, "This file was already written; here is its run.")
            return redirect("console:run-detail", upload.run_id)
        if request.POST.get("action") == "read-fields":
            return _read_fields(request, upload)
        fields, unknown = _collection_fields(sync)
        upload.mapping, problems = _mapping_from_post(request.POST, upload.columns, fields)
        if not problems:
            CsvUpload.objects.filter(pk=upload.pk).update(mapping=upload.mapping)
            messages.success(request, "Mapping saved. Check the rows below, then confirm.")
    else:
        fields, unknown = _collection_fields(sync)
    context = _upload_context(upload, fields, unknown, problems=problems)
    return render(request, "writeback/upload.html", context, status=400 if problems else 200)


def _read_fields(request, upload):
    fields, unknown = _collection_fields(upload.sync, force=True)
    if unknown:
        messages.error(request, unknown)
    elif not upload.mapping:
        upload.mapping = _guess_mapping(upload.columns, fields)
        CsvUpload.objects.filter(pk=upload.pk).update(mapping=upload.mapping)
        messages.success(
            request, f"Read {len(fields)} fields; {len(upload.mapping)} columns are mapped by name."
        )
    else:
        messages.success(request, f"Read {len(fields)} fields; your mapping is kept as it is.")
    return redirect("console:writeback-upload-detail", upload.pk)


def _upload_context(upload, fields, unknown, problems=()):
    problems = list(problems)
    chosen = {m["source"]: m for m in upload.mapping if m.get("source_kind", "column") == "column"}
    rows = []
    for column in upload.columns:
        field = (chosen.get(column) or {}).get("field", "")
        rows.append(
            {
                "column": column,
                "field": field,
                "casts": " | ".join((chosen.get(column) or {}).get("casts") or []),
                "type": (fields.get(field) or {}).get("type", "") if field else "",
            }
        )
    blocking = [] if problems else _mapping_problems(upload)
    entries = columnmap.entries(upload.mapping)
    sample, sample_problems = None, []
    if entries and upload.preview and not blocking:
        data, sample_problems = columnmap.apply(entries, upload.preview[0])
        sample = json.dumps(data, indent=2, ensure_ascii=False)
    check = None
    if entries and not blocking and not problems and not upload.run_id:
        check = _checked(upload, entries)
    return {
        "upload": upload,
        "rows": rows,
        "fields": sorted(fields),
        "fields_unknown": unknown,
        "casts": sorted(mapping.CASTS),
        "problems": problems,
        "blocking": blocking,
        "sample": sample,
        "sample_problems": sample_problems,
        "check": check,
        "can_confirm": bool(
            upload.mapping and not problems and not blocking and check and check["ready"]
        ),
    }


def _key_field(sync) -> str:
    if sync.write_mode == Sync.WriteMode.UPSERT:
        return sync.match_field
    if sync.write_mode == Sync.WriteMode.UPDATE:
        return sync.row_key or "id"
    return ""


def _mapping_problems(upload) -> list[str]:
    """Why this mapping cannot be confirmed (each a sentence); [] when it can."""
    sync = upload.sync
    mapped = {m.get("field") for m in upload.mapping}
    if not upload.mapping:
        return ["No column is mapped to a field yet: map at least one column."]
    problems = []
    if sync.write_mode == Sync.WriteMode.UPSERT and sync.match_field not in mapped:
        problems.append(
            f"Upsert matches items on “{sync.match_field}”, and no column is mapped to it: "
            "every row would be refused. Map the column that holds it."
        )
    key = _key_field(sync)
    if (
        sync.write_mode == Sync.WriteMode.UPDATE
        and key not in mapped
        and ROW_ID_COLUMN not in upload.columns
    ):
        problems.append(
            f"Update finds items by “{key}”, and no column is mapped to it (nor is there a "
            f"{ROW_ID_COLUMN} column to find them through their round trip)."
        )
    unknown = sorted(
        {c for e in columnmap.entries(upload.mapping) for c in e.casts if c not in mapping.CASTS}
    )
    if unknown:
        problems.append(f"Unknown cast{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}.")
    return problems


def _checked(upload, entries) -> dict:
    """The whole-file check and the create/update lookup, kept a few minutes per mapping."""
    sync = upload.sync
    key = _key_field(sync)
    fold_case = bool(getattr(sync, "match_ignore_case", False)) and key == sync.match_field
    state = json.dumps(
        [upload.path, upload.mapping, sync.write_mode, key, fold_case], sort_keys=True
    )
    cache_key = "kiln:csvcheck:" + hashlib.sha256(state.encode()).hexdigest()
    found = cache.get(cache_key)
    if found is not None:
        return found
    try:
        result = csvimport.check(
            upload.path,
            entries,
            key,
            fold_case=fold_case,
            row_id_column=ROW_ID_COLUMN if sync.write_mode == Sync.WriteMode.UPDATE else "",
            max_keys=LOOKUP_MAX_KEYS,
        )
    except (OSError, csvimport.CsvFileError) as exc:
        return {"error": f"The uploaded file cannot be read again: {exc}", "ready": 0}
    checked = {
        "key": key,
        "rows": result.rows,
        "bad_lines": result.bad_lines,
        "ready": result.ready,
        "refused": result.refused,
        "bad_value": result.bad_value,
        "blank_key": result.blank_key,
        "duplicates": result.duplicates,
        "distinct_keys": result.distinct_keys,
        "keep": 20,
        **_creates_and_updates(sync, result, fold_case),
    }
    cache.set(cache_key, checked, CHECK_CACHE_SECONDS)
    return checked


def _creates_and_updates(sync, result, fold_case) -> dict:
    """{"creates", "updates"} from a lookup of the match values, or {"unsplit": why not}."""
    if sync.write_mode == Sync.WriteMode.CREATE:
        return {"creates": result.ready, "updates": 0}
    if sync.write_mode == Sync.WriteMode.UPDATE:
        return {"creates": 0, "updates": result.ready}
    if not result.ready:
        return {"creates": 0, "updates": 0}
    if fold_case:
        return {
            "unsplit": "this sync matches ignoring case, which Directus cannot look up in one "
            "request per chunk (it has no case-insensitive “in”); the run looks each value up."
        }
    if result.keys is None:
        return {
            "unsplit": f"the file holds more than {LOOKUP_MAX_KEYS:,} distinct match values; "
            f"this page looks up at most that many ({LOOKUP_MAX_KEYS // LOOKUP_CHUNK} requests), "
            "the run looks the rest up as it writes."
        }
    existing = 0
    try:
        with sync.connection.client() as client:
            for start in range(0, len(result.keys), LOOKUP_CHUNK):
                chunk = result.keys[start : start + LOOKUP_CHUNK]
                existing += _count_existing(client, sync, chunk)
    except DirectusError as exc:
        return {"unsplit": f"Kiln could not look the match values up: {exc.explain()}"}
    # Each new value is created once (by its first row); every other ready row is an update.
    creates = result.distinct_keys - existing
    return {"creates": creates, "updates": result.ready - creates, "looked_up": True}


def _count_existing(client, sync, values) -> int:
    field = sync.match_field
    query = {"filter": {field: {"_in": values}}, "fields": [field], "limit": len(values) + 1}
    page = client.read_items(sync.collection, query)  # SEARCH when too long for a URL
    wanted = {columnmap.key_text(v) for v in values}
    found = {
        columnmap.key_text(item.get(field))
        for item in page.data
        if isinstance(item, dict) and item.get(field) is not None
    }
    return len(wanted & found)


def _mapping_from_post(post, columns, fields):
    rows, problems, seen = [], [], set()
    for index, column in enumerate(columns):
        field = post.get(f"field-{index}", "").strip()
        if not field:
            continue
        if fields and field not in fields:
            problems.append(f'"{field}" is not a field of the collection (column "{column}").')
            continue
        if field in seen:
            problems.append(f'Two columns are mapped to "{field}".')
            continue
        seen.add(field)
        casts, unknown = _casts_from(post.get(f"casts-{index}", ""))
        if unknown:
            problems.append(f'Unknown cast "{unknown}" on column "{column}".')
            continue
        rows.append(_mapping_row(field, column, casts))
    if not rows:
        problems.append("Map at least one column to a field.")
    return rows, problems


def _casts_from(text) -> tuple[list, str]:
    """("trim | lower" → ["trim", "lower"], the first unknown cast or "")."""
    casts = [c.strip() for c in str(text).split("|") if c.strip()]
    unknown = next((c for c in casts if c not in mapping.CASTS), "")
    return casts, unknown


@operator_required
@require_POST
def confirm_upload(request, pk):
    upload = get_object_or_404(CsvUpload.objects.select_related("sync"), pk=pk)
    if upload.run_id:
        messages.info(request, "This file was already written; here is its run.")
        return redirect("console:run-detail", upload.run_id)
    problems = _mapping_problems(upload)
    if problems:
        messages.error(request, " ".join(problems))
        return redirect("console:writeback-upload-detail", upload.pk)
    sync = upload.sync
    run = inbound_run.start_csv_run(upload, started_by=request.user)
    messages.success(
        request,
        f"Writing {upload.row_count:,} rows of {upload.original_name} to “{sync.collection}”.",
    )
    return redirect("console:run-detail", run.pk)


# -- routes --------------------------------------------------------------------------------------------


def _route_context(route, secret=None, **extra):
    rows = route.rows.filter(
        status__in=[InboundRow.Status.FAILED, InboundRow.Status.RETRYING]
    ).order_by("-id")[:50]
    waiting = route.rows.filter(status=InboundRow.Status.PENDING).count()
    context = {
        "route": route,
        "secret": secret,
        "failed_rows": rows,
        "waiting": waiting,
        "receipts": route.receipts.all()[:20],
        "header": InboundRoute.SECRET_HEADER,
        "flow_url": flow_installer.flow_admin_url(route.sync.connection.api_url, route.flow_id)
        if route.flow_id and route.sync.connection_id
        else "",
    }
    if route.sync.kind == Sync.Kind.RELAY:
        context["settings_form"] = RouteSettingsForm(instance=route)
    else:
        context.update(_route_mapping_context(route, extra.pop("mapping_rows", None)))
    return {**context, **extra}


# Blank rows the route's mapping form offers for new columns; the most rows a POST may carry.
BLANK_MAPPING_ROWS = 3
MAX_MAPPING_ROWS = 200


def _route_mapping_context(route, posted_rows=None) -> dict:
    """The mapping form: saved entries, then columns seen in recent rows (guessed), then blanks."""
    fields, unknown = _collection_fields(route.sync)
    if posted_rows is not None:
        rows = posted_rows
    else:
        rows = [e.stored() for e in columnmap.entries(route.mapping)]
        mapped = {row["column"] for row in rows}
        seen = []
        for data in route.rows.order_by("-id").values_list("data", flat=True)[:20]:
            for column in data if isinstance(data, dict) else ():
                if column not in mapped and column not in seen and not column.startswith("kiln_"):
                    seen.append(column)
        guessed = {e.column: e for e in columnmap.guess(seen, fields)}
        for column in seen:
            entry = guessed.get(column)
            rows.append(
                entry.stored() | {"suggested": True}
                if entry
                else {"column": column, "field": "", "cast": "", "suggested": True}
            )
        rows += [{"column": "", "field": "", "cast": ""} for _ in range(BLANK_MAPPING_ROWS)]
    for row in rows:
        row["type"] = (fields.get(row.get("field")) or {}).get("type", "")
    return {
        "mapping_rows": rows,
        "fields": sorted(fields),
        "fields_unknown": unknown,
        "casts": sorted(mapping.CASTS),
    }


def _route_mapping_from_post(post, sync, fields) -> tuple[list, list, list]:
    """(entries to store, the rows as posted, sentences for what is wrong)."""
    entries, rows, problems, targets = [], [], [], set()
    try:
        count = min(int(post.get("m-count", "")), MAX_MAPPING_ROWS)
    except ValueError:
        count = 0
        problems.append("The form's row count is not a number: reload the page and try again.")
    for index in range(max(count, 0)):
        column = post.get(f"column-{index}", "").strip()
        field = post.get(f"field-{index}", "").strip()
        cast_text = post.get(f"casts-{index}", "").strip()
        rows.append({"column": column, "field": field, "cast": cast_text})
        if not field:
            continue  # an unmapped column is ignored
        if not column:
            problems.append(f"Row {index + 1}: the field “{field}” needs the column it comes from.")
            continue
        if fields and field not in fields:
            problems.append(
                f"Row {index + 1}: “{field}” is not a field of “{sync.collection}” "
                f"(column “{column}”)."
            )
            continue
        if field in targets:
            problems.append(f"Two columns are mapped to “{field}”.")
            continue
        targets.add(field)
        casts, unknown = _casts_from(cast_text)
        if unknown:
            problems.append(f"Row {index + 1}: unknown cast “{unknown}” on column “{column}”.")
            continue
        entries.append(columnmap.Entry(column, field, tuple(casts)).stored())
    if entries and sync.write_mode == Sync.WriteMode.UPSERT and sync.match_field not in targets:
        problems.append(
            f"Upsert matches items on “{sync.match_field}”: map the column Clay sends it in, "
            "or every row would fail."
        )
    return entries, rows, problems


@admin_required
@require_POST
def open_route(request, pk):
    sync = get_object_or_404(Sync, pk=pk, kind__in=WRITE_KINDS)
    if InboundRoute.objects.filter(sync=sync).exists():
        messages.info(request, "This sync already has a route; rotate its secret to get a new one.")
        return redirect("console:writeback-route", sync.inbound_route.pk)
    route, secret = InboundRoute.open(sync, created_by=request.user)
    AuditEvent.record(
        request.user,
        client_ip(request),
        AuditEvent.Action.CREATED,
        route,
        target_type="inbound route",
    )
    return render(request, "writeback/route.html", _route_context(route, secret))


@viewer_required
def route_detail(request, pk):
    """The route page; an operator's POST saves a relay's settings or a write-back's mapping."""
    route = get_object_or_404(InboundRoute.objects.select_related("sync__connection"), pk=pk)
    if request.method != "POST":
        return render(request, "writeback/route.html", _route_context(route))
    if not request.user.is_operator:
        raise PermissionDenied("Changing a route's settings needs the operator role.")
    if route.sync.kind == Sync.Kind.RELAY:
        return _save_relay_settings(request, route)
    return _save_route_mapping(request, route)


def _save_relay_settings(request, route):
    form = RouteSettingsForm(request.POST, instance=route)
    if not form.is_valid():
        messages.error(request, "Only a relay route has these settings.")
        return redirect("console:writeback-route", route.pk)
    own = form.cleaned_data["relay_own_writes"]
    # Only this column: a rotation or an install may be saving the route's other fields.
    InboundRoute.objects.filter(pk=route.pk).update(relay_own_writes=own)
    AuditEvent.record(
        request.user,
        client_ip(request),
        AuditEvent.Action.CHANGED,
        route,
        {"relay_own_writes": own},
        target_type="inbound route",
    )
    messages.success(
        request,
        "Saved: changes made by Kiln's own write-back are "
        + ("relayed to Clay too." if own else "not relayed to Clay."),
    )
    return redirect("console:writeback-route", route.pk)


def _save_route_mapping(request, route):
    sync = route.sync
    if request.POST.get("action") == "read-fields":
        fields, unknown = _collection_fields(sync, force=True)
        if unknown:
            messages.error(request, unknown)
        else:
            messages.success(request, f"Read {len(fields)} fields of “{sync.collection}”.")
        return redirect("console:writeback-route", route.pk)
    if "m-count" not in request.POST:
        context = _route_context(
            route, mapping_problems=["Nothing to save: the form sent no mapping rows."]
        )
        return render(request, "writeback/route.html", context, status=400)
    fields, _ = _collection_fields(sync)
    entries, rows, problems = _route_mapping_from_post(request.POST, sync, fields)
    if problems:
        context = _route_context(route, mapping_rows=rows, mapping_problems=problems)
        return render(request, "writeback/route.html", context, status=400)
    if entries != route.mapping:
        InboundRoute.objects.filter(pk=route.pk).update(mapping=entries)
        AuditEvent.record(
            request.user,
            client_ip(request),
            AuditEvent.Action.CHANGED,
            route,
            {"mapping": [f"{e['column']} → {e['field']}" for e in entries]},
            target_type="inbound route",
        )
    messages.success(
        request,
        f"Mapping saved: {len(entries)} column{'s' if len(entries) != 1 else ''} mapped."
        if entries
        else "Mapping cleared: rows are written with their own names as field names.",
    )
    return redirect("console:writeback-route", route.pk)


@admin_required
@require_POST
def rotate_secret(request, pk):
    route = get_object_or_404(InboundRoute.objects.select_related("sync__connection"), pk=pk)
    secret = route.rotate()
    AuditEvent.record(
        request.user,
        client_ip(request),
        AuditEvent.Action.ROTATED,
        route,
        target_type="inbound route",
    )
    messages.success(
        request,
        "New secret below. The previous one keeps working for 7 days, or until you revoke it.",
    )
    return render(request, "writeback/route.html", _route_context(route, secret))


@admin_required
@require_POST
def revoke_previous_secret(request, pk):
    route = get_object_or_404(InboundRoute, pk=pk)
    route.revoke_previous()
    AuditEvent.record(
        request.user,
        client_ip(request),
        AuditEvent.Action.CHANGED,
        route,
        {"previous_secret": "revoked"},
        target_type="inbound route",
    )
    messages.success(request, "The previous secret no longer works.")
    return redirect("console:writeback-route", route.pk)


@operator_required
@require_POST
def replay_rows(request, pk):
    route = get_object_or_404(InboundRoute, pk=pk)
    rows = route.rows.all()
    if request.POST.get("row"):
        row = _int(request.POST["row"])
        if row is None:
            messages.error(request, "No such row to replay: the row is given by its number.")
            return redirect("console:writeback-route", route.pk)
        rows = rows.filter(pk=row)
    count = inbound.replay(rows)
    inbound.wake(route.pk)
    messages.success(request, f"{count} row{'s' if count != 1 else ''} queued again.")
    return redirect("console:writeback-route", route.pk)


@admin_required
@require_POST
def install_relay(request, pk):
    route = get_object_or_404(
        InboundRoute.objects.select_related("sync__connection"), pk=pk, sync__kind=Sync.Kind.RELAY
    )
    try:
        result, _ = relay.install(route)
    except (relay.RelayError, flow_installer.InstallError) as exc:
        messages.error(request, str(exc))
        return redirect("console:writeback-route", route.pk)
    AuditEvent.record(
        request.user,
        client_ip(request),
        AuditEvent.Action.INSTALLED,
        route,
        {"flow": result.flow_id},
        target_type="inbound route",
    )
    messages.success(
        request,
        ("Created" if result.created else "Updated") + " the Flow in Directus; it sends "
        f"“{route.sync.collection}” events to this relay with a new secret. {result.note}",
    )
    return redirect("console:writeback-route", route.pk)


# -- the round trip ----------------------------------------------------------------------------------


@viewer_required
def row_timeline(request, kiln_row_id):
    trace = get_object_or_404(RowTrace.objects.select_related("sync"), kiln_row_id=kiln_row_id)
    events = list(trace.events.select_related("run"))
    return render(
        request,
        "writeback/timeline.html",
        {"trace": trace, "events": events, "steps": RowTrace.Step},
    )


@viewer_required
def stuck_rows(request):
    """Rows whose last step is `step` for more than `hours`, optionally of one sync or one run."""
    step = request.GET.get("step", RowTrace.Step.SENT)
    if step not in RowTrace.Step.values:
        step = RowTrace.Step.SENT
    hours = _int(request.GET.get("hours"))
    hours = STUCK_HOURS if hours is None or hours < 0 else hours
    traces = RowTrace.objects.filter(
        step=step, ok=True, step_at__lt=timezone.now() - timedelta(hours=hours)
    )
    sync = Sync.objects.filter(pk=_int(request.GET.get("sync"))).first()
    if sync:
        traces = traces.filter(sync=sync)
    run = SyncRun.objects.select_related("sync").filter(pk=_int(request.GET.get("run"))).first()
    if run:
        # The run that took the row to this step (each event names its run).
        traces = traces.filter(
            pk__in=RowTraceEvent.objects.filter(run=run, step=step).values("trace_id")
        )
    traces = traces.select_related("sync").order_by("step_at")[:200]
    return render(
        request,
        "writeback/stuck.html",
        {
            "traces": traces,
            "step": step,
            "steps": RowTrace.Step.choices,
            "hours": hours,
            "sync": sync,
            "run": run,
        },
    )


def _int(value):
    """A 64-bit number from a form or link, else None (a larger one could not be an id)."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if abs(number) < 2**63 else None
