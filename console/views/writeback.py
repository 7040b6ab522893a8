"""Write-back pages: CSV upload → preview → map → confirm → a run; inbound routes and the relay;
one row's round trip."""

import uuid
from datetime import timedelta
from pathlib import Path

from django import forms
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from console.access import admin_required, client_ip, operator_required, viewer_required
from integrations import csvimport, flow_installer, inbound, mapping, relay
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

WRITE_KINDS = (Sync.Kind.CLAY_TO_DIRECTUS, Sync.Kind.RELAY)
# A field of these Directus types gets this cast when mapped from a CSV column (text).
AUTO_CASTS = {
    "integer": "integer",
    "bigInteger": "integer",
    "float": "number",
    "decimal": "number",
    "boolean": "boolean",
    "json": "json",
}
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
        }
        help_texts = {
            "collection": "Written to (write-back) or watched (relay).",
            "match_field": "Upsert: the field that tells an existing item, e.g. email.",
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
        mapping=_guess_mapping(sync, preview.columns),
        uploaded_by=request.user,
    )
    for warning in preview.warnings:
        messages.warning(request, warning)
    return redirect("console:writeback-upload-detail", upload.pk)


def _target_fields(sync) -> dict:
    schema = (sync.connection.schema or {}) if sync.connection_id else {}
    collection = (schema.get("collections") or {}).get(sync.collection) or {}
    return collection.get("fields") or {}


def _guess_mapping(sync, columns) -> list:
    """Columns whose name matches a field ("First Name" → first_name) are mapped already."""
    fields = _target_fields(sync)
    names = {_simple(f): f for f in fields} if fields else {_simple(c): c for c in columns}
    rows = []
    for column in columns:
        field = names.get(_simple(column))
        if field:
            rows.append(_mapping_row(field, column, fields))
    return rows


def _simple(name) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


def _mapping_row(field, column, fields) -> dict:
    ftype = (fields.get(field) or {}).get("type")
    cast = AUTO_CASTS.get(ftype)
    return {
        "field": field,
        "source_kind": "column",
        "source": column,
        "casts": [cast] if cast else [],
    }


@viewer_required
def csv_upload(request, pk):
    upload = get_object_or_404(CsvUpload.objects.select_related("sync__connection", "run"), pk=pk)
    fields = _target_fields(upload.sync)
    problems, sample = [], None
    if request.method == "POST":
        if not request.user.is_operator:
            return render(
                request, "writeback/upload.html", _upload_context(upload, fields), status=403
            )
        upload.mapping, problems = _mapping_from_post(request.POST, upload.columns, fields)
        if not problems:
            CsvUpload.objects.filter(pk=upload.pk).update(mapping=upload.mapping)
            messages.success(request, "Mapping saved. Check the sample below, then confirm.")
    if upload.mapping and upload.preview:
        try:
            template, options = _template(upload)
            sample = template.render(
                {k: v for k, v in upload.preview[0].items() if v != ""}, options
            )
        except mapping.TemplateError as exc:
            problems += [str(p) for p in exc.problems]
    context = _upload_context(upload, fields, problems=problems, sample=sample)
    return render(request, "writeback/upload.html", context, status=400 if problems else 200)


def _template(upload):
    from integrations.writeback import template_for

    return template_for(upload.sync, upload)


def _upload_context(upload, fields, **extra):
    chosen = {m["source"]: m for m in upload.mapping if m.get("source_kind", "column") == "column"}
    rows = [
        {
            "column": c,
            "field": (chosen.get(c) or {}).get("field", ""),
            "casts": " | ".join((chosen.get(c) or {}).get("casts") or []),
        }
        for c in upload.columns
    ]
    return {
        "upload": upload,
        "rows": rows,
        "fields": sorted(fields),
        "casts": sorted(mapping.CASTS),
        **extra,
    }


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
        casts = [c.strip() for c in post.get(f"casts-{index}", "").split("|") if c.strip()]
        unknown = [c for c in casts if c not in mapping.CASTS]
        if unknown:
            problems.append(f'Unknown cast "{unknown[0]}" on column "{column}".')
            continue
        rows.append({"field": field, "source_kind": "column", "source": column, "casts": casts})
    if not rows:
        problems.append("Map at least one column to a field.")
    return rows, problems


@operator_required
@require_POST
def confirm_upload(request, pk):
    upload = get_object_or_404(CsvUpload.objects.select_related("sync"), pk=pk)
    if upload.run_id:
        messages.info(request, "This file was already written; here is its run.")
        return redirect("console:run-detail", upload.run_id)
    if not upload.mapping:
        messages.error(request, "Map the columns first.")
        return redirect("console:writeback-upload-detail", upload.pk)
    sync = upload.sync
    if sync.write_mode == Sync.WriteMode.UPSERT and sync.match_field not in {
        m["field"] for m in upload.mapping
    }:
        messages.error(request, f'Upsert matches on "{sync.match_field}": map a column to it.')
        return redirect("console:writeback-upload-detail", upload.pk)
    run = inbound.start_csv_run(upload, started_by=request.user)
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
    return {
        "route": route,
        "secret": secret,
        "failed_rows": rows,
        "waiting": waiting,
        "receipts": route.receipts.all()[:20],
        "header": InboundRoute.SECRET_HEADER,
        "flow_url": flow_installer.flow_admin_url(route.sync.connection.api_url, route.flow_id)
        if route.flow_id and route.sync.connection_id
        else "",
        "settings_form": RouteSettingsForm(instance=route),
        **extra,
    }


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
    """The route's page; a POST (operators) saves its settings."""
    route = get_object_or_404(InboundRoute.objects.select_related("sync__connection"), pk=pk)
    if request.method == "POST":
        if not request.user.is_operator:
            raise PermissionDenied("Changing a route's settings needs the operator role.")
        form = RouteSettingsForm(request.POST, instance=route)
        if route.sync.kind != Sync.Kind.RELAY or not form.is_valid():
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
    return render(request, "writeback/route.html", _route_context(route))


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
        rows = rows.filter(pk=request.POST["row"])
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
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
