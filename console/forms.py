"""Forms for the console. Secret fields are write-only: empty means "keep the stored value"."""

from urllib.parse import urlsplit

from django import forms
from django.contrib.auth.forms import SetPasswordMixin
from django.core.validators import MaxValueValidator, MinValueValidator

from console.models import User
from integrations.directus.client import query_limit_max
from integrations.models import (
    AllowedNetwork,
    ClayDestination,
    DirectusConnection,
    MappingTemplate,
    SavedQuery,
    Sync,
)
from integrations.outbound import allowlist, http
from integrations.runs import sync as sync_engine


class SecretField(forms.CharField):
    """A password input that never renders its value back."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("required", False)
        kwargs.setdefault("strip", True)
        kwargs.setdefault(
            "widget",
            forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        )
        super().__init__(*args, **kwargs)


def _has_credentials(url: str) -> bool:
    """True for `https://user:pass@host` (or `user@host`): the user info part of a URL."""
    try:
        return "@" in urlsplit(url).netloc
    except ValueError:
        return False


class ConnectionForm(forms.ModelForm):
    token = SecretField(
        label="Static token",
        help_text="Stored encrypted. Leave empty to keep the current token.",
        max_length=2000,
    )

    class Meta:
        model = DirectusConnection
        fields = ["name", "base_url", "environment", "probe_collection"]
        labels = {"base_url": "Base URL", "probe_collection": "Collection to test reading"}
        widgets = {"base_url": forms.URLInput()}
        help_texts = {
            "base_url": "The Directus API root, e.g. https://cms.example.com",
            "probe_collection": "Optional: 'Test connection' reads one item from it.",
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not self.instance.pk:
            self.fields["token"].required = True
            self.fields["token"].help_text = "Stored encrypted; never shown again after saving."
        elif not self.is_bound:
            # An older row may hold a password in its URL: never send it back to the browser.
            self.initial["base_url"] = self.instance.display_url

    def clean_base_url(self):
        url = self.cleaned_data["base_url"].strip().rstrip("/")
        if not url.lower().startswith(("http://", "https://")):
            raise forms.ValidationError("Use an http:// or https:// URL.")
        if _has_credentials(url):
            # Not even echoed back into the form.
            self.data = self.data.copy()
            self.data[self.add_prefix("base_url")] = http.url_without_password(url)
            raise forms.ValidationError(
                "Remove the user name and password from the URL: the base URL is not stored "
                "encrypted and is shown on several pages. Directus needs only the static token."
            )
        return url

    def clean_token(self):
        token = self.cleaned_data.get("token", "")
        if token.lower().startswith("bearer "):
            raise forms.ValidationError("Paste the token alone, without 'Bearer '.")
        if token and any(c.isspace() for c in token):
            raise forms.ValidationError(
                "A Directus static token has no spaces; check what was pasted."
            )
        return token


class DestinationForm(forms.ModelForm):
    webhook_url = SecretField(
        label="Webhook URL",
        help_text="The Clay table's webhook URL. It is a secret: stored encrypted, never shown again.",
        max_length=2000,
    )
    auth_token = SecretField(
        label="Webhook auth token",
        help_text="Optional; sent as the x-clay-webhook-auth header. Leave empty to keep the current one.",
        max_length=2000,
    )
    clear_auth_token = forms.BooleanField(required=False, label="Remove the stored auth token")

    class Meta:
        model = ClayDestination
        fields = ["name"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not self.instance.pk:
            self.fields["webhook_url"].required = True
            del self.fields["clear_auth_token"]
        elif not self.instance.auth_token_id:
            del self.fields["clear_auth_token"]

    def clean_webhook_url(self):
        url = self.cleaned_data.get("webhook_url", "")
        if url:
            try:
                allowlist.validate_url(url)  # http://clay-sink:8057 (compose) is a URL too
            except forms.ValidationError:
                raise forms.ValidationError("This is not a valid URL.") from None
            if not url.lower().startswith("https://") and not url.lower().startswith("http://"):
                raise forms.ValidationError("Use an https:// URL.")
            if _has_credentials(url):
                raise forms.ValidationError(
                    "Remove the user name and password from the URL: a Clay webhook URL has "
                    "none. Put a secret the webhook expects in the auth token field."
                )
        return url


class PoolWebhookForm(forms.Form):
    """Another webhook on the same Clay table: sending moves to it when the ones before are full."""

    webhook_url = SecretField(
        label="Webhook URL",
        required=True,
        help_text="A new webhook on the same Clay table. Stored encrypted, never shown again.",
        max_length=2000,
    )
    auth_token = SecretField(
        label="Webhook auth token",
        help_text="Optional; sent as the x-clay-webhook-auth header.",
        max_length=2000,
    )
    clean_webhook_url = DestinationForm.clean_webhook_url


class AllowedNetworkForm(forms.ModelForm):
    confirm_risk = forms.BooleanField(
        required=False, label="I mean it: allow this even though it turns part of the guard off"
    )

    class Meta:
        model = AllowedNetwork
        fields = ["value", "port", "note"]
        labels = {"value": "Host or CIDR", "port": "Port"}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.warnings: list[str] = []
        self.needs_confirmation = False
        self.fields["port"].widget.attrs.update(min=1, max=65535, placeholder="80, 443")

    def clean_value(self):
        try:
            entry = allowlist.parse_entry(self.cleaned_data["value"])
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None
        self.needs_confirmation = bool(entry.risks)
        if entry.risks and not self.data.get(self.add_prefix("confirm_risk")):
            raise forms.ValidationError(
                "; ".join(entry.risks) + ". Tick the box below to allow it anyway."
            )
        self.warnings = entry.warnings
        return entry.value

    def validate_unique(self):
        # The database constraint checks (value, port) but lets NULL ports repeat.
        value, port = self.cleaned_data.get("value"), self.cleaned_data.get("port")
        if value and port is None and AllowedNetwork.objects.filter(value=value, port=None):
            self.add_error("value", "This host or network is already allowed on ports 80, 443.")
        super().validate_unique()


class UserForm(SetPasswordMixin, forms.ModelForm):
    password1, password2 = SetPasswordMixin.create_password_fields()

    class Meta:
        model = User
        fields = ["username", "email", "role", "is_active"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["password1"].required = False
            self.fields["password2"].required = False
            self.fields["password1"].help_text = "Leave empty to keep the current password."

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("password1") or cleaned.get("password2") or not self.instance.pk:
            self.validate_passwords()
            self.validate_password_for_user(self.instance)
        return cleaned

    def save(self, commit=True):
        user = super().save(commit=False)
        if self.cleaned_data.get("password1"):
            user.set_password(self.cleaned_data["password1"])
        if commit:
            user.save()
        return user


class SyncForm(forms.ModelForm):
    """A sync's source, destination, mapping and settings; the schedule is checked by the engine."""

    WRITE_BACK_FIELDS = [
        "connection",
        "collection",
        "write_mode",
        "match_field",
        "match_ignore_case",
    ]

    class Meta:
        model = Sync
        fields = [
            "name",
            "saved_query",
            "destination",
            "template",
            "row_key",
            "label_field",
            "rate_limit",
            "concurrency",
            "page_size",
            "mode",
            "timestamp_field",
            "skip_unchanged",
            "schedule",
            "paused",
            "connection",
            "collection",
            "write_mode",
            "match_field",
            "match_ignore_case",
        ]
        labels = {
            "match_ignore_case": "Ignore letter case",
            "saved_query": "Source (saved query)",
            "destination": "Clay destination",
            "template": "Mapping",
            "rate_limit": "Rate limit (rows per second)",
            "skip_unchanged": "Skip unchanged rows",
            "schedule": "Schedule (cron, UTC)",
            "paused": "Paused",
            "connection": "Write to connection",
        }
        help_texts = {
            "row_key": "The item's primary key field; each row gets one result under this key.",
            "label_field": "Shown beside each row's key on the run page (e.g. sku or name; dot paths "
            "such as author.name read related fields the query returns).",
            "rate_limit": "Shared by every worker sending to this destination. Clay takes about 10/s; 0 means no limit.",
            "concurrency": "Requests in flight at once.",
            "page_size": "Items read from Directus per page.",
            "mode": "Incremental sends only items changed since the last successful run.",
            "timestamp_field": "For incremental mode; falls back to date_created when empty on an item.",
            "skip_unchanged": "Do not resend a row whose payload equals the last one sent successfully.",
            "schedule": "e.g. 0 6 * * 1-5 for 06:00 on weekdays. Empty: run only on demand.",
            "paused": "A paused sync does not run on its schedule.",
            "match_ignore_case": "Upsert: Ann@X.com matches an item with ann@x.com.",
        }
        widgets = {"schedule": forms.TextInput(attrs={"autocomplete": "off", "class": "mono"})}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["template"].queryset = MappingTemplate.objects.filter(
            kind=MappingTemplate.Kind.CLAY_ROW
        )
        self.fields["template"].empty_label = "Send the item as is"
        self.fields["saved_query"].queryset = SavedQuery.objects.select_related("connection")
        self.fields["saved_query"].label_from_instance = lambda q: (
            f"{q.name} ({q.connection.name} · {q.collection})"
        )
        self.fields["destination"].required = True
        for name, low, high in [("concurrency", 1, 64), ("page_size", 1, 10000)]:
            field = self.fields[name]
            field.validators += [MinValueValidator(low), MaxValueValidator(high)]
            field.widget.attrs.update(min=low, max=high)
        self.fields["rate_limit"].widget.attrs.update(min=0, step="any")
        if self.instance.kind == Sync.Kind.CLAY_TO_DIRECTUS:
            del self.fields["saved_query"]
        else:
            self.fields["saved_query"].required = True
            for name in self.WRITE_BACK_FIELDS:
                del self.fields[name]

    def clean(self):
        cleaned = super().clean()
        query, size = cleaned.get("saved_query"), cleaned.get("page_size")
        if query and size:
            # What the connection's last test or run read from /server/info: no call here.
            most = query_limit_max(query.connection.server_info)
            if most and size > most:
                self.add_error(
                    "page_size",
                    f'The Directus of "{query.connection.name}" answers at most {most} items per '
                    f"page (its QUERY_LIMIT_MAX): use {most} or fewer.",
                )
        return cleaned

    def clean_rate_limit(self):
        value = self.cleaned_data["rate_limit"]
        if value is not None and value < 0:
            raise forms.ValidationError(
                "Use 0 for no limit, or a positive number of rows per second."
            )
        return value

    def clean_schedule(self):
        cron = " ".join(self.cleaned_data.get("schedule", "").split())
        if cron:
            try:
                sync_engine.describe_schedule(cron)
            except ValueError as e:
                raise forms.ValidationError(str(e)) from None
        return cron


class MappingTemplateForm(forms.ModelForm):
    """A mapping template's own fields; the body's checks run in console/views/mappings.py."""

    class Meta:
        model = MappingTemplate
        fields = ["name", "kind", "connection", "collection", "saved_query", "body"]
        labels = {"saved_query": "Saved query", "body": "JSON body"}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["connection"].required = True
        self.fields["saved_query"].queryset = SavedQuery.objects.select_related("connection")
        self.fields["body"].required = False
        self.fields["body"].strip = False

    def clean(self):
        cleaned = super().clean()
        kind = cleaned.get("kind")
        if kind and kind != MappingTemplate.Kind.GET and not cleaned.get("collection"):
            self.add_error("collection", "Pick the collection this template reads or writes.")
        if kind == MappingTemplate.Kind.GET and not cleaned.get("saved_query"):
            self.add_error("saved_query", "A Get template runs a saved query: pick one.")
        query, connection = cleaned.get("saved_query"), cleaned.get("connection")
        if query and connection and query.connection_id != connection.pk:
            self.add_error("saved_query", "This saved query belongs to another connection.")
        return cleaned
