"""The team credential store: Directus connections, Clay destinations, allowed networks, audit."""

from django.contrib import messages
from django.core.paginator import Paginator
from django.db import transaction
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from console.access import admin_required, client_ip, operator_required, viewer_required
from console.forms import AllowedNetworkForm, ConnectionForm, DestinationForm, PoolWebhookForm
from integrations.models import (
    AllowedNetwork,
    AuditEvent,
    ClayDestination,
    ClayWebhook,
    DirectusConnection,
    Secret,
)


def _audit(request, action, target, details=None, target_type=None):
    AuditEvent.record(request.user, client_ip(request), action, target, details, target_type)


def _changed_fields(form):
    return sorted(name for name in form.changed_data if name in form.Meta.fields)


# Directus connections


@viewer_required
def connections(request):
    items = DirectusConnection.objects.select_related("token")
    return render(request, "credentials/connections.html", {"connections": items})


@viewer_required
def connection_detail(request, pk):
    connection = get_object_or_404(DirectusConnection.objects.select_related("token"), pk=pk)
    events = AuditEvent.objects.filter(target_type="directusconnection", target_id=str(pk))[:20]
    return render(
        request,
        "credentials/connection_detail.html",
        {"connection": connection, "events": events},
    )


@admin_required
def add_connection(request):
    form = ConnectionForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            connection = form.save(commit=False)
            connection.token = Secret.seal(form.cleaned_data["token"])
            connection.created_by = request.user
            connection.save()
            _audit(
                request,
                AuditEvent.Action.CREATED,
                connection,
                {"environment": connection.environment},
            )
        messages.success(
            request,
            f"Saved connection “{connection.name}”. Test it to see what the token may read.",
        )
        return redirect("console:connection-detail", pk=connection.pk)
    return render(request, "credentials/connection_form.html", {"form": form})


@admin_required
def edit_connection(request, pk):
    connection = get_object_or_404(DirectusConnection.objects.select_related("token"), pk=pk)
    form = ConnectionForm(request.POST or None, instance=connection)
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            connection = form.save()
            changed = _changed_fields(form)
            if changed:
                _audit(request, AuditEvent.Action.CHANGED, connection, {"fields": changed})
            if "base_url" in changed:
                # Another server: its version and page limit are unknown until read again.
                DirectusConnection.objects.filter(pk=pk).update(
                    server_info={}, server_info_at=None, directus_user_id=""
                )
            if form.cleaned_data["token"]:
                connection.token.set_value(form.cleaned_data["token"])
                connection.token.save()
                # A new token invalidates what we knew about the old one, including the
                # Directus user it acts as (the relay compares Flow events with it).
                DirectusConnection.objects.filter(pk=pk).update(
                    last_test_ok=None, last_test_at=None, directus_user_id=""
                )
                _audit(request, AuditEvent.Action.ROTATED, connection, {"secret": "token"})
        messages.success(request, f"Saved connection “{connection.name}”.")
        return redirect("console:connection-detail", pk=connection.pk)
    return render(
        request, "credentials/connection_form.html", {"form": form, "connection": connection}
    )


@admin_required
def delete_connection(request, pk):
    connection = get_object_or_404(DirectusConnection, pk=pk)
    if request.method == "POST":
        if connection.templates.exists() or connection.syncs.exists():
            messages.error(
                request, "This connection is used by templates or syncs; remove those first."
            )
            return redirect("console:connection-detail", pk=pk)
        with transaction.atomic():
            _audit(request, AuditEvent.Action.DELETED, connection)
            token = connection.token
            connection.delete()
            token.delete()
        messages.success(request, f"Deleted connection “{connection.name}” and its token.")
        return redirect("console:connections")
    return render(
        request, "credentials/confirm_delete.html", {"object": connection, "kind": "connection"}
    )


@operator_required
def test_connection(request, pk):
    """Run the three-stage check; HTMX gets the result partial, a plain POST the page."""
    connection = get_object_or_404(DirectusConnection.objects.select_related("token"), pk=pk)
    if request.method != "POST":
        return redirect("console:connection-detail", pk=pk)
    stages = connection.run_test()
    _audit(
        request,
        AuditEvent.Action.TESTED,
        connection,
        {"ok": connection.last_test_ok, "stages": [(s["name"], s["ok"]) for s in stages]},
    )
    if request.htmx:
        return render(
            request, "credentials/connection_detail.html#test-result", {"connection": connection}
        )
    return redirect("console:connection-detail", pk=pk)


# Clay destinations


@viewer_required
def destinations(request):
    items = ClayDestination.objects.select_related("webhook_url", "auth_token")
    return render(request, "credentials/destinations.html", {"destinations": items})


@viewer_required
def destination_detail(request, pk):
    destination = get_object_or_404(
        ClayDestination.objects.select_related("webhook_url", "auth_token"), pk=pk
    )
    events = AuditEvent.objects.filter(target_type="claydestination", target_id=str(pk))[:20]
    return render(
        request,
        "credentials/destination_detail.html",
        {"destination": destination, "events": events, "pool_form": PoolWebhookForm()},
    )


@admin_required
@require_POST
def add_pool_webhook(request, pk):
    """Add a webhook of the same Clay table to the destination's pool, last in order."""
    destination = get_object_or_404(ClayDestination, pk=pk)
    form = PoolWebhookForm(request.POST)
    if not form.is_valid():
        for errors in form.errors.values():
            messages.error(request, " ".join(errors))
        return redirect("console:destination-detail", pk=pk)
    with transaction.atomic():
        last = destination.pool.order_by("-position").values_list("position", flat=True).first()
        webhook = ClayWebhook.objects.create(
            destination=destination,
            position=(last or 0) + 1,
            webhook_url=Secret.seal(form.cleaned_data["webhook_url"]),
            auth_token=Secret.seal(form.cleaned_data["auth_token"])
            if form.cleaned_data["auth_token"]
            else None,
        )
        _audit(
            request,
            AuditEvent.Action.CHANGED,
            destination,
            {"pool": f"added {webhook.label}", "auth_token": bool(webhook.auth_token_id)},
        )
    messages.success(request, f"Added {webhook.label} to “{destination.name}”.")
    return redirect("console:destination-detail", pk=pk)


@admin_required
@require_POST
def remove_pool_webhook(request, pk, webhook_pk):
    destination = get_object_or_404(ClayDestination, pk=pk)
    webhook = get_object_or_404(ClayWebhook, destination=destination, pk=webhook_pk)
    with transaction.atomic():
        _audit(
            request, AuditEvent.Action.CHANGED, destination, {"pool": f"removed {webhook.label}"}
        )
        secrets = [webhook.webhook_url, webhook.auth_token]
        webhook.delete()
        for secret in secrets:
            if secret:
                secret.delete()
    messages.success(request, f"Removed {webhook.label} from “{destination.name}”.")
    return redirect("console:destination-detail", pk=pk)


@admin_required
def add_destination(request):
    form = DestinationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            destination = form.save(commit=False)
            destination.webhook_url = Secret.seal(form.cleaned_data["webhook_url"])
            if form.cleaned_data["auth_token"]:
                destination.auth_token = Secret.seal(form.cleaned_data["auth_token"])
            destination.created_by = request.user
            destination.save()
            _audit(
                request,
                AuditEvent.Action.CREATED,
                destination,
                {"auth_token": bool(destination.auth_token_id)},
            )
        messages.success(request, f"Saved Clay destination “{destination.name}”.")
        return redirect("console:destination-detail", pk=destination.pk)
    return render(request, "credentials/destination_form.html", {"form": form})


@admin_required
def edit_destination(request, pk):
    destination = get_object_or_404(
        ClayDestination.objects.select_related("webhook_url", "auth_token"), pk=pk
    )
    form = DestinationForm(request.POST or None, instance=destination)
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            destination = form.save()
            changed = _changed_fields(form)
            if changed:
                _audit(request, AuditEvent.Action.CHANGED, destination, {"fields": changed})
            if form.cleaned_data["webhook_url"] or form.cleaned_data["auth_token"]:
                destination.clear_state()  # a new URL or token: runs may try it again
            if form.cleaned_data["webhook_url"]:
                destination.webhook_url.set_value(form.cleaned_data["webhook_url"])
                destination.webhook_url.save()
                _audit(request, AuditEvent.Action.ROTATED, destination, {"secret": "webhook_url"})
            if form.cleaned_data.get("clear_auth_token") and destination.auth_token_id:
                old = destination.auth_token
                destination.auth_token = None
                destination.save(update_fields=["auth_token"])
                old.delete()
                _audit(
                    request,
                    AuditEvent.Action.ROTATED,
                    destination,
                    {"secret": "auth_token", "removed": True},
                )
            elif form.cleaned_data["auth_token"]:
                if destination.auth_token_id:
                    destination.auth_token.set_value(form.cleaned_data["auth_token"])
                    destination.auth_token.save()
                else:
                    destination.auth_token = Secret.seal(form.cleaned_data["auth_token"])
                    destination.save(update_fields=["auth_token"])
                _audit(request, AuditEvent.Action.ROTATED, destination, {"secret": "auth_token"})
        messages.success(request, f"Saved Clay destination “{destination.name}”.")
        return redirect("console:destination-detail", pk=destination.pk)
    return render(
        request, "credentials/destination_form.html", {"form": form, "destination": destination}
    )


@admin_required
def delete_destination(request, pk):
    destination = get_object_or_404(ClayDestination, pk=pk)
    if request.method == "POST":
        if destination.syncs.exists():
            messages.error(request, "This destination is used by syncs; remove those first.")
            return redirect("console:destination-detail", pk=pk)
        with transaction.atomic():
            _audit(request, AuditEvent.Action.DELETED, destination)
            secrets = [destination.webhook_url, destination.auth_token]
            destination.delete()
            for secret in secrets:
                if secret:
                    secret.delete()
        messages.success(request, f"Deleted Clay destination “{destination.name}” and its secrets.")
        return redirect("console:destinations")
    return render(
        request,
        "credentials/confirm_delete.html",
        {"object": destination, "kind": "Clay destination"},
    )


@operator_required
def test_destination(request, pk):
    """Send one clearly marked test record, only after the user confirmed (it costs a submission)."""
    destination = get_object_or_404(
        ClayDestination.objects.select_related("webhook_url", "auth_token"), pk=pk
    )
    if request.method != "POST" or request.POST.get("confirm") != "yes":
        return render(
            request,
            "credentials/destination_detail.html",
            {"destination": destination, "confirming": True},
        )
    destination.run_test(sent_by=request.user.username)
    _audit(request, AuditEvent.Action.TESTED, destination, {"ok": destination.last_test_ok})
    if request.htmx:
        return render(
            request, "credentials/destination_detail.html#test-result", {"destination": destination}
        )
    return redirect("console:destination-detail", pk=pk)


# Allowed private networks


@admin_required
def allowed_networks(request):
    form = AllowedNetworkForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        network = form.save(commit=False)
        network.created_by = request.user
        network.save()
        details = {"value": network.value, "port": network.port}
        if form.needs_confirmation:
            details["confirmed_risk"] = True
        _audit(request, AuditEvent.Action.CREATED, network, details)
        messages.success(
            request, f"Outbound requests may now reach {network.value} on port {network.ports}."
        )
        for warning in form.warnings:
            messages.warning(request, warning)
        return redirect("console:allowed-networks")
    return render(
        request,
        "credentials/allowed_networks.html",
        {"form": form, "networks": AllowedNetwork.objects.all()},
    )


@admin_required
@require_POST
def delete_allowed_network(request, pk):
    network = get_object_or_404(AllowedNetwork, pk=pk)
    _audit(request, AuditEvent.Action.DELETED, network, {"value": network.value})
    network.delete()
    messages.success(request, f"Removed {network.value} from the allowed networks.")
    return redirect("console:allowed-networks")


# Audit log


@admin_required
def audit_log(request):
    events = AuditEvent.objects.select_related("actor")
    filters = {
        "action": request.GET.get("action", ""),
        "target_type": request.GET.get("target_type", ""),
        "actor": request.GET.get("actor", ""),
        "q": request.GET.get("q", "").strip(),
    }
    if filters["action"]:
        events = events.filter(action=filters["action"])
    if filters["target_type"]:
        events = events.filter(target_type=filters["target_type"])
    if filters["actor"]:
        events = events.filter(actor_name=filters["actor"])
    if filters["q"]:
        events = events.filter(target_name__icontains=filters["q"])
    page = Paginator(events, 50).get_page(request.GET.get("page"))
    target_types = AuditEvent.objects.order_by().values_list("target_type", flat=True).distinct()
    return render(
        request,
        "credentials/audit.html",
        {
            "page": page,
            "filters": filters,
            "actions": AuditEvent.Action.choices,
            "target_types": sorted(set(target_types)),
        },
    )
