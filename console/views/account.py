"""Personal API tokens (make, see, revoke) and the API's docs page, drawn from its OpenAPI document."""

import functools
from datetime import timedelta

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from console.access import allowed, client_ip, viewer_required
from console.models import ApiToken
from integrations.models import AuditEvent

EXPIRY_CHOICES = [
    ("", "Never"),
    ("7", "7 days"),
    ("30", "30 days"),
    ("90", "90 days"),
    ("365", "1 year"),
]


class TokenForm(forms.Form):
    name = forms.CharField(
        max_length=100, help_text="What it is for, e.g. “deploy pipeline”; audit entries show it."
    )
    expires_in = forms.ChoiceField(choices=EXPIRY_CHOICES, required=False, label="Expires")

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user

    def clean_name(self):
        name = self.cleaned_data["name"].strip()
        if ApiToken.objects.filter(user=self.user, name=name, revoked_at__isnull=True).exists():
            raise forms.ValidationError("You already have a token with this name.")
        return name

    def expires_at(self):
        days = self.cleaned_data.get("expires_in")
        return timezone.now() + timedelta(days=int(days)) if days else None


def _audit(request, action, token, details):
    AuditEvent.record(
        request.user,
        client_ip(request),
        action,
        token,
        {"token": token.name, "owner": token.user.username, **details},
        target_type="apitoken",
    )


@viewer_required
def tokens(request):
    """Your tokens; admins also see everyone's. A new token is shown on this response only."""
    form = TokenForm(request.POST or None, user=request.user)
    new_token = None
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            token, new_token = ApiToken.issue(
                request.user, form.cleaned_data["name"], form.expires_at()
            )
            _audit(request, AuditEvent.Action.CREATED, token, {"expires_at": str(token.expires_at)})
        form = TokenForm(user=request.user)
    is_admin = allowed(request.user, "admin")
    others = (
        ApiToken.objects.exclude(user=request.user)
        .select_related("user")
        .order_by("revoked_at", "user__username", "-created_at")
        if is_admin
        else None
    )
    response = render(
        request,
        "account/tokens.html",
        {
            "form": form,
            "new_token": new_token,
            "tokens": request.user.api_tokens.all(),
            "others": others,
        },
    )
    # The page that shows a token once must not be kept by a browser or a proxy.
    response["Cache-Control"] = "no-store"
    return response


@viewer_required
@require_POST
def revoke_token(request, pk):
    """Revoke your own token; admins may revoke anyone's."""
    token = get_object_or_404(ApiToken.objects.select_related("user"), pk=pk)
    if token.user_id != request.user.pk and not allowed(request.user, "admin"):
        raise PermissionDenied("Only admins may revoke other people's tokens.")
    if token.revoke(by=request.user):
        _audit(request, AuditEvent.Action.DELETED, token, {"revoked": True})
        messages.success(request, f"Revoked the token “{token.name}” of {token.user.username}.")
    return redirect("console:api-tokens")


@functools.cache
def _document() -> dict:
    from drf_spectacular.generators import SchemaGenerator

    return SchemaGenerator().get_schema(request=None, public=True)


def endpoints(document) -> list[dict]:
    """The document's operations as rows for the docs page, in the document's order."""
    rows = []
    for path, item in document.get("paths", {}).items():
        for method, op in item.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            body = ((op.get("requestBody") or {}).get("content") or {}).get(
                "application/json"
            ) or {}
            rows.append(
                {
                    "method": method.upper(),
                    "path": path,
                    "summary": op.get("summary", ""),
                    "role": op.get("x-required-role", ""),
                    "tag": (op.get("tags") or [""])[0],
                    "parameters": [
                        {
                            "name": p["name"],
                            "where": p["in"],
                            "required": p.get("required", False),
                            "type": (p.get("schema") or {}).get("type", ""),
                            "enum": (p.get("schema") or {}).get("enum"),
                            "description": p.get("description", ""),
                        }
                        for p in op.get("parameters", [])
                    ],
                    "body": ((body.get("schema") or {}).get("$ref") or "").rsplit("/", 1)[-1],
                    "responses": [
                        {"code": code, "description": r.get("description", "")}
                        for code, r in op.get("responses", {}).items()
                    ],
                }
            )
    return rows


@viewer_required
def api_docs(request):
    return render(
        request,
        "account/api_docs.html",
        {"endpoints": endpoints(_document()), "info": _document().get("info", {})},
    )
