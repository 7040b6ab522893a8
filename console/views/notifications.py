"""Notification channels (admins): email addresses and chat webhooks that hear about failures."""

from django import forms
from django.contrib import messages
from django.db import transaction
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from console.access import admin_required, client_ip
from console.forms import SecretField
from integrations import notify
from integrations.models import AuditEvent, Notification, NotificationChannel, Secret
from integrations.outbound import allowlist


class ChannelForm(forms.ModelForm):
    url = SecretField(
        label="Webhook URL",
        help_text="Slack or Teams incoming webhook, or any URL that takes JSON. A secret: stored "
        "encrypted, never shown again.",
        max_length=2000,
    )

    class Meta:
        model = NotificationChannel
        fields = ["name", "kind", "recipients"]
        labels = {"recipients": "Email addresses"}
        help_texts = {"recipients": "Comma-separated, for an email channel."}

    def clean_url(self):
        url = self.cleaned_data.get("url", "")
        if url:
            try:
                allowlist.validate_url(url)
            except forms.ValidationError:
                raise forms.ValidationError("This is not a valid URL.") from None
            if not url.lower().startswith(("https://", "http://")):
                raise forms.ValidationError("Use an https:// URL.")
        return url

    def clean(self):
        data = super().clean()
        if data.get("kind") == NotificationChannel.Kind.EMAIL:
            addresses = [a.strip() for a in (data.get("recipients") or "").split(",") if a.strip()]
            if not addresses:
                self.add_error("recipients", "Give at least one email address.")
            for address in addresses:
                try:
                    forms.EmailField().clean(address)
                except forms.ValidationError:
                    self.add_error("recipients", f"{address} is not an email address.")
        elif data.get("kind") == NotificationChannel.Kind.WEBHOOK and not data.get("url"):
            self.add_error("url", "Give the webhook URL.")
        return data


def _audit(request, action, channel, details=None):
    AuditEvent.record(request.user, client_ip(request), action, channel, details)


@admin_required
def channels(request):
    form = ChannelForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            channel = form.save(commit=False)
            if channel.kind == NotificationChannel.Kind.WEBHOOK:
                channel.url = Secret.seal(form.cleaned_data["url"])
                channel.recipients = ""
            channel.save()
            _audit(request, AuditEvent.Action.CREATED, channel, {"kind": channel.kind})
        messages.success(request, f"Added notification channel “{channel.name}”.")
        return redirect("console:notifications")
    return render(
        request,
        "notifications/channels.html",
        {
            "form": form,
            "channels": NotificationChannel.objects.select_related("url"),
            "recent": Notification.objects.exclude(event="test")[:20],
        },
    )


@admin_required
@require_POST
def test_channel(request, pk):
    channel = get_object_or_404(NotificationChannel.objects.select_related("url"), pk=pk)
    error = notify.send_test(channel, request.user.username)
    _audit(request, AuditEvent.Action.TESTED, channel, {"ok": not error})
    if error:
        messages.error(request, f"The test notification to “{channel.name}” failed: {error}")
    else:
        messages.success(request, f"Sent a test notification to “{channel.name}”.")
    return redirect("console:notifications")


@admin_required
@require_POST
def delete_channel(request, pk):
    channel = get_object_or_404(NotificationChannel, pk=pk)
    with transaction.atomic():
        _audit(request, AuditEvent.Action.DELETED, channel)
        secret = channel.url
        channel.delete()
        if secret:
            secret.delete()
    messages.success(request, f"Deleted notification channel “{channel.name}”.")
    return redirect("console:notifications")
