"""A mapping template's exports: Clay HTTP API column settings, the Directus Flow JSON, and
"Install in Directus" (integrations/directus/flow_installer.py), which is audited."""

import json

from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_POST

from console.access import client_ip, operator_required, viewer_required
from console.views.mappings import CLAY_KINDS, DEFAULT_ID_COLUMN, ITEM_KINDS, WRITE_KINDS, pick
from integrations.directus import flow_installer, flows
from integrations.mapping import templates as mapping
from integrations.models import AuditEvent, ClayDestination, MappingTemplate

Kind = MappingTemplate.Kind
RELAY_ADVICE = (
    "Directus stores a Flow's Request URL and headers in plaintext (and, with accountability "
    '"all", in every run log), so anyone who can read Flows in Directus gets this Clay webhook '
    "URL and can add rows to the table. Kiln's relay (coming soon) keeps it encrypted in Kiln "
    "instead; prefer it once it is available."
)


def _flow_choices(data, template) -> dict:
    """The Flow export's settings from the query string (GET) or form (POST)."""
    scopes = [s for s in data.getlist("scope") if s in flows.SCOPES] if data else []
    collections = [c for c in data.getlist("collections") if c] if data else []
    target = data.get("target", "custom") if data else "custom"
    return {
        "scopes": scopes if data and "target" in data else scopes or ["items.create"],
        "collections": collections or ([template.collection] if template.collection else []),
        "target": target if target in ("destination", "custom") else "custom",
        "destination": pick(ClayDestination, data.get("destination")) if data else None,
        "url": (data.get("url") or "").strip() if data else "",
        "confirm": bool(data.get("confirm_plaintext")) if data else False,
        "inactive": bool(data.get("inactive")) if data else False,
    }


def _flow_export(template, choices, *, reveal=False) -> dict:
    """The Flow JSON (URL masked unless reveal) and lint warnings, or the problems."""
    problems = []
    if not choices["scopes"]:
        problems.append("Tick at least one event (items.create, items.update, items.delete).")
    if not choices["collections"]:
        problems.append("Tick at least one collection.")
    headers = []
    if choices["target"] == "destination":
        destination = choices["destination"]
        if destination is None:
            problems.append("Pick the Clay destination the Flow sends to.")
            url = ""
        else:
            url = (
                destination.webhook_url.reveal()
                if reveal
                else (
                    f"«the webhook URL of Clay destination “{destination.name}”, filled in when installing»"
                )
            )
            if destination.auth_token_id:
                value = destination.auth_token.reveal() if reveal else "«its webhook auth token»"
                headers.append(("x-clay-webhook-auth", value))
    else:
        url = choices["url"]
        if not url.lower().startswith(("http://", "https://")):
            problems.append("Type the http(s) URL the Flow should POST to.")
    if problems:
        return {"problems": problems}
    try:
        spec = flows.directus_flow(
            f"Kiln: {template.name}",
            choices["collections"],
            choices["scopes"],
            url,
            template.body,
            headers,
        )
    except mapping.TemplateError as exc:
        return {"problems": [str(p) for p in exc.problems]}
    if choices["inactive"]:
        spec["flow"]["status"] = "inactive"
    flow_text = flows.flow_syntax(template.body).text
    warnings = flows.lint(
        flow_text,
        choices["scopes"],
        url=None if choices["target"] == "destination" else url,
        body_as="object",
    )
    return {
        "spec": spec,
        "json": json.dumps(spec, indent=2, ensure_ascii=False),
        "warnings": warnings,
    }


def _clay_export(template) -> dict | None:
    if template.kind not in CLAY_KINDS or not template.connection or not template.collection:
        return None
    options = template.options or {}
    params = template.saved_query.to_query().to_params() if template.saved_query else []
    fields = None
    if template.kind == Kind.GET_RELATED:
        text = options.get("fields") or (
            ",".join(template.saved_query.to_query().fields) if template.saved_query else ""
        )
        fields = [f.strip() for f in text.split(",") if f.strip()] or None
    id_column = options.get("id_column", DEFAULT_ID_COLUMN)
    try:
        settings = flows.clay_http_api_settings(
            template.kind,
            template.connection.display_url,
            template.collection,
            body_text=template.body if template.kind in WRITE_KINDS else None,
            query_params=params,
            item_id_placeholder="{{" + id_column + "}}",
            fields=fields,
        )
    except (ValueError, mapping.TemplateError) as exc:
        return {"error": str(exc)}
    return {"settings": settings, "text": flows.clay_settings_text(settings)}


def _exports_context(template, choices, **extra) -> dict:
    schema = template.connection.schema if template.connection else None
    return {
        "template": template,
        "clay": _clay_export(template),
        "flow_kind": template.kind in ITEM_KINDS,
        "choices": choices,
        "flow": _flow_export(template, choices) if template.kind in ITEM_KINDS else None,
        "scopes": flows.SCOPES,
        "all_collections": sorted((schema or {}).get("collections") or {}),
        "destinations": ClayDestination.objects.all(),
        "relay_advice": RELAY_ADVICE,
        "flow_link": flow_installer.flow_admin_url(template.connection.api_url, template.flow_id)
        if template.flow_id and template.connection
        else "",
        **extra,
    }


@viewer_required
def template_exports(request, pk):
    template = get_object_or_404(MappingTemplate.objects.select_related("connection"), pk=pk)
    choices = _flow_choices(request.GET if request.GET else None, template)
    return render(request, "mappings/exports.html", _exports_context(template, choices))


@operator_required
@require_POST
def install_flow(request, pk):
    """Create the Flow in Directus, or update the one installed before; audited."""
    template = get_object_or_404(MappingTemplate.objects.select_related("connection"), pk=pk)
    choices = _flow_choices(request.POST, template)
    outcome = _install(request, template, choices)
    context = _exports_context(template, choices, install=outcome)
    if request.htmx:
        return render(request, "mappings/exports.html#install-result", context)
    status = 200 if outcome["ok"] else outcome.get("status", 400)
    return render(request, "mappings/exports.html", context, status=status)


def _install(request, template, choices) -> dict:
    if choices["target"] == "destination" and not request.user.is_admin:
        # The Flow would hold the destination's webhook URL and auth token in plaintext:
        # secrets that only admins manage (and nobody can read back in Kiln).
        return {
            "ok": False,
            "status": 403,
            "message": "Only an admin may install a Flow that sends to a Clay destination: "
            "its webhook URL and auth token would be stored in Directus in plaintext. "
            "Ask an admin, or send to a custom URL.",
        }
    if template.kind not in ITEM_KINDS:
        return {"ok": False, "message": "Only Flow and Clay-row templates install as a Flow."}
    if template.connection is None:
        return {"ok": False, "message": "The template has no connection to install into."}
    if choices["target"] == "destination" and not choices["confirm"]:
        return {
            "ok": False,
            "message": "Tick the box to confirm the Clay webhook URL may be "
            "stored in Directus in plaintext, or use a custom URL.",
        }
    export = _flow_export(template, choices, reveal=True)
    if "problems" in export:
        return {"ok": False, "message": " ".join(export["problems"])}
    try:
        with template.connection.client() as client:
            result = flow_installer.install_flow(
                client, export["spec"], template.flow_id, template.flow_operation_id
            )
    except flow_installer.InstallError as exc:
        return {"ok": False, "message": exc.explain()}
    MappingTemplate.objects.filter(pk=template.pk).update(
        flow_id=result.flow_id, flow_operation_id=result.operation_id
    )
    template.flow_id, template.flow_operation_id = result.flow_id, result.operation_id
    target = (
        f"Clay destination {choices['destination'].name}"
        if choices["target"] == "destination"
        else "custom URL"
    )
    AuditEvent.record(
        request.user,
        client_ip(request),
        AuditEvent.Action.INSTALLED,
        template,
        {
            "flow_id": result.flow_id,
            "operation_id": result.operation_id,
            "created": result.created,
            "scopes": choices["scopes"],
            "collections": choices["collections"],
            "target": target,
            "connection": template.connection.name,
            "plaintext_secrets": choices["target"] == "destination",
        },
    )
    if choices["target"] == "destination":
        # The destination's own history says where its secrets went.
        AuditEvent.record(
            request.user,
            client_ip(request),
            AuditEvent.Action.USED,
            choices["destination"],
            {
                "use": "installed in a Directus Flow in plaintext",
                "flow_id": result.flow_id,
                "template": template.name,
                "connection": template.connection.name,
                "secrets": ["webhook_url"]
                + (["auth_token"] if choices["destination"].auth_token_id else []),
            },
        )
    return {
        "ok": True,
        "created": result.created,
        "flow_id": result.flow_id,
        "note": result.note,
        "link": flow_installer.flow_admin_url(template.connection.api_url, result.flow_id),
    }
