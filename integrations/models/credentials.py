"""The team credential store: encrypted secrets, Directus connections, Clay destinations, audit."""

import json
from datetime import timedelta

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from integrations import crypto
from integrations.outbound import allowlist, http


class Secret(models.Model):
    """One encrypted value. Holders point at it, so re-encryption walks a single table."""

    ciphertext = models.TextField()
    key_id = models.CharField(max_length=12, db_index=True)
    hint = models.CharField(max_length=4, blank=True)
    set_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "kiln_secret"

    def __str__(self):
        return f"Secret {self.pk} ({self.masked})"

    @classmethod
    def seal(cls, plaintext: str) -> "Secret":
        secret = cls()
        secret.set_value(plaintext)
        secret.save()
        return secret

    def set_value(self, plaintext: str) -> None:
        self.ciphertext, self.key_id = crypto.keyring().encrypt(plaintext)
        # Short values would be given away whole by their last four characters.
        self.hint = plaintext[-4:] if len(plaintext) >= 12 else ""
        self.set_at = timezone.now()

    def reveal(self) -> str:
        value = crypto.keyring().decrypt(self.ciphertext, self.key_id)
        # Any later log line or exception text that contains it gets it redacted.
        http.register_secret(value)
        return value

    def reencrypt(self) -> bool:
        """Re-encrypt with the first key; return False if it already was."""
        ring = crypto.keyring()
        if self.key_id == ring.primary_id:
            return False
        self.ciphertext, self.key_id = ring.encrypt(ring.decrypt(self.ciphertext, self.key_id))
        return True

    @property
    def masked(self) -> str:
        return f"••••{self.hint}" if self.hint else "••••••••"

    @property
    def age(self) -> timedelta:
        return timezone.now() - self.set_at

    @property
    def is_stale(self) -> bool:
        return self.age > timedelta(days=settings.KILN_TOKEN_MAX_AGE_DAYS)


class OrderedJSONField(models.TextField):
    """JSON stored as text, so an object's key order survives a round trip.

    PostgreSQL's jsonb sorts keys by length; a Directus schema's field order (id first, then as
    the collection defines them) is what people expect to see in pickers.
    """

    def from_db_value(self, value, expression, connection):
        return None if value is None else json.loads(value)

    def to_python(self, value):
        return json.loads(value) if isinstance(value, str) else value

    def get_prep_value(self, value):
        return None if value is None else json.dumps(value)


class Environment(models.TextChoices):
    DEV = "dev", "dev"
    STAGING = "staging", "staging"
    PROD = "prod", "prod"


# How long a connection's /server/info answer is trusted before a run reads it again.
SERVER_INFO_MAX_AGE = timedelta(minutes=10)


class DirectusConnection(models.Model):
    name = models.CharField(max_length=100, unique=True)
    # Not a URLField: Django's URL check refuses single-label hosts (http://directus:8055).
    base_url = models.CharField(max_length=500, validators=[allowlist.validate_url])
    environment = models.CharField(
        max_length=10, choices=Environment.choices, default=Environment.DEV
    )
    token = models.OneToOneField(Secret, on_delete=models.PROTECT, related_name="+")
    # The collection "Test connection" tries a limit=1 read of.
    probe_collection = models.CharField(max_length=100, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # Outcome of the last "Test connection", shown in the list.
    last_test_at = models.DateTimeField(null=True, blank=True)
    last_test_ok = models.BooleanField(null=True)
    last_test_result = models.JSONField(default=list, blank=True)
    # Cached schema (collections, fields, relations) for the query builder and the mapper.
    schema = OrderedJSONField(null=True, blank=True)
    schema_fetched_at = models.DateTimeField(null=True, blank=True)
    # What /server/info said last (version, queryLimit default/max, rateLimit), and when: runs
    # cap their page size to it, the sync form refuses a larger one.
    server_info = models.JSONField(default=dict, blank=True)
    server_info_at = models.DateTimeField(null=True, blank=True)
    # The Directus user id the token acts as (/users/me): a relay skips Flow events whose
    # $accountability.user is the write-back connection's own user (Kiln's own writes).
    directus_user_id = models.CharField(max_length=64, blank=True)

    class Meta:
        db_table = "kiln_directus_connection"
        ordering = ["name"]

    def __str__(self):
        return self.name

    @property
    def api_url(self) -> str:
        return self.base_url.rstrip("/")

    @property
    def display_url(self) -> str:
        """api_url as pages show it: a password in it (refused since, but older rows may have
        one) is masked."""
        return http.url_without_password(self.api_url)

    def client(self, **kwargs):
        """A Directus client authenticated as this connection (decrypts the token)."""
        from integrations.directus.client import DirectusClient

        if self.display_url != self.api_url:  # an older row with a password in its URL
            http.register_secret(self.api_url)  # redacts the password, its part
        return DirectusClient(self.api_url, self.token.reveal(), **kwargs)

    def run_test(self) -> list[dict]:
        """Run "Test connection" and store its stages on the row the list shows."""
        from dataclasses import asdict

        from integrations.directus.client import check_connection

        stages = [
            asdict(s)
            for s in check_connection(self.api_url, self.token.reveal(), self.probe_collection)
        ]
        ok = all(s["ok"] is not False for s in stages) and any(s["ok"] for s in stages)
        self.last_test_at, self.last_test_ok, self.last_test_result = timezone.now(), ok, stages
        changes = dict(last_test_at=self.last_test_at, last_test_ok=ok, last_test_result=stages)
        # The token stage also read /users/me and /server/info: keep what they said.
        facts = {k: v for s in stages for k, v in (s.get("facts") or {}).items()}
        if facts.get("user_id"):
            self.directus_user_id = changes["directus_user_id"] = facts["user_id"][:64]
        if facts.get("server_info"):
            self.server_info = changes["server_info"] = facts["server_info"]
            self.server_info_at = changes["server_info_at"] = self.last_test_at
        DirectusConnection.objects.filter(pk=self.pk).update(**changes)
        return stages

    def _read_user_id(self) -> str:
        """The Directus user the token acts as (/users/me), or "" when Directus does not say."""
        from integrations.directus.client import DirectusError

        try:
            with self.client(timeout=10) as client:
                return str((client.me(fields="id") or {}).get("id") or "")[:64]
        except DirectusError:
            return ""

    def read_server_info(self, client=None, max_age=SERVER_INFO_MAX_AGE) -> dict:
        """/server/info (version, queryLimit), cached on the row; {} when Directus won't say."""
        fresh = self.server_info_at and timezone.now() - self.server_info_at < max_age
        if fresh:
            return self.server_info
        from integrations.directus.client import DirectusError

        try:
            if client is None:
                with self.client() as own:
                    info = own.server_info() or {}
            else:
                info = client.server_info() or {}
        except DirectusError:
            return self.server_info or {}
        kept = {k: info[k] for k in ("version", "queryLimit", "rateLimit") if k in info}
        self.server_info, self.server_info_at = kept, timezone.now()
        DirectusConnection.objects.filter(pk=self.pk).update(
            server_info=kept, server_info_at=self.server_info_at
        )
        return kept

    def page_size_for(self, wanted: int, client=None) -> int:
        """`wanted`, lowered to the server's QUERY_LIMIT_MAX when it sets one."""
        from integrations.directus.client import query_limit_max

        most = query_limit_max(self.read_server_info(client))
        return min(wanted, most) if most else wanted

    def refresh_schema(self, include_system=False) -> dict:
        """Read collections, fields and relations from Directus and cache them on the row."""
        from integrations.directus.schema import fetch_schema

        with self.client() as client:
            schema = fetch_schema(client, include_system=include_system)
        self.schema, self.schema_fetched_at = schema, timezone.now()
        DirectusConnection.objects.filter(pk=self.pk).update(
            schema=schema, schema_fetched_at=self.schema_fetched_at
        )
        return schema


class WebhookState(models.TextChoices):
    """What Kiln learned about a webhook from Clay's answers; "" means usable."""

    OK = "", "working"
    AUTH_REJECTED = "auth_rejected", "token rejected"
    NOT_FOUND = "not_found", "webhook not found"
    FULL = "full", "full"


class WebhookStateMixin(models.Model):
    """A Clay webhook's health, shared by the destination's own webhook and its pool.

    Marked by the first run (or test) that gets the answer, read by every worker before and
    while it sends: a rejected token or a missing webhook stops sending at once, a full
    webhook moves sending to the next one in the destination's pool.
    """

    SUBMISSION_CAP = 50_000  # Clay caps a webhook source at 50,000 submissions for life

    state = models.CharField(max_length=15, choices=WebhookState.choices, default="", blank=True)
    state_at = models.DateTimeField(null=True, blank=True)
    state_detail = models.CharField(max_length=500, blank=True)

    class Meta:
        abstract = True

    @property
    def usable(self) -> bool:
        return self.state == WebhookState.OK

    @property
    def cap_used_percent(self) -> float:
        return round(100 * self.submissions_count / self.SUBMISSION_CAP, 1)

    @property
    def cap_remaining(self) -> int:
        if self.state == WebhookState.FULL:
            return 0
        return max(0, self.SUBMISSION_CAP - self.submissions_count)

    def mark(self, state: str, detail: str = "") -> bool:
        """Record what Clay said (conditional UPDATE); True if this call changed the state."""
        changes = dict(state=state, state_at=timezone.now(), state_detail=detail[:500])
        if state == WebhookState.FULL:  # Clay's count is what matters: the webhook is full
            changes["submissions_count"] = self.SUBMISSION_CAP
        changed = type(self).objects.filter(pk=self.pk).exclude(state=state).update(**changes)
        for name, value in changes.items():
            setattr(self, name, value)
        return bool(changed)

    def clear_state(self) -> None:
        """A passed test or a new token: the webhook is tried again."""
        if self.state in (WebhookState.AUTH_REJECTED, WebhookState.NOT_FOUND):
            type(self).objects.filter(pk=self.pk).update(state="", state_at=None, state_detail="")
            self.state, self.state_at, self.state_detail = "", None, ""

    def add_submissions(self, count: int) -> None:
        """Count accepted submissions atomically (several workers share a webhook); a webhook
        Clay called full stays at the cap."""
        type(self).objects.filter(pk=self.pk).exclude(state=WebhookState.FULL).update(
            submissions_count=models.F("submissions_count") + count
        )


class ClayDestination(WebhookStateMixin):
    name = models.CharField(max_length=100, unique=True)
    webhook_url = models.OneToOneField(Secret, on_delete=models.PROTECT, related_name="+")
    auth_token = models.OneToOneField(
        Secret, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    submissions_count = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    last_test_at = models.DateTimeField(null=True, blank=True)
    last_test_ok = models.BooleanField(null=True)
    last_test_result = models.JSONField(default=list, blank=True)

    class Meta:
        db_table = "kiln_clay_destination"
        ordering = ["name"]

    def __str__(self):
        return self.name

    @property
    def cap_level(self) -> str:
        """'ok', 'warning' (80%), 'critical' (95%) or 'full'."""
        if self.state == WebhookState.FULL or self.submissions_count >= self.SUBMISSION_CAP:
            return "full"
        if self.submissions_count >= 0.95 * self.SUBMISSION_CAP:
            return "critical"
        if self.submissions_count >= 0.80 * self.SUBMISSION_CAP:
            return "warning"
        return "ok"

    def run_test(self, sent_by: str = "") -> dict:
        """Send one clearly marked test record and store the outcome."""
        from integrations.clay import webhook as clay

        result = clay.send_test_record(self, sent_by=sent_by)
        results = [result]
        for webhook in self.pool.order_by("position", "pk"):  # the pool's webhooks too
            if webhook.state != WebhookState.FULL:
                extra = clay.send_test_record(webhook, sent_by=sent_by)
                extra["name"] = f"Send test record to {webhook.label}"
                results.append(extra)
        ok = all(r["ok"] for r in results)
        self.last_test_at, self.last_test_ok, self.last_test_result = timezone.now(), ok, results
        ClayDestination.objects.filter(pk=self.pk).update(
            last_test_at=self.last_test_at, last_test_ok=ok, last_test_result=results
        )
        return result

    # -- the webhook pool: this destination's own webhook first, then `pool` in order --------

    label = "webhook 1"

    @property
    def limiter_key(self) -> str:
        return f"clay:{self.pk}"

    def webhooks(self) -> list:
        """Every webhook of this Clay table, in the order sending uses them."""
        return [self, *self.pool.order_by("position", "pk")]

    def pool_remaining(self) -> int:
        """Submissions the pool's webhooks have left, by the database's counts (now)."""
        own = ClayDestination.objects.filter(pk=self.pk).values("submissions_count", "state")
        rows = [*own, *self.pool.values("submissions_count", "state")]
        return sum(
            max(0, self.SUBMISSION_CAP - r["submissions_count"])
            for r in rows
            if r["state"] != WebhookState.FULL
        )

    def pool_capacity(self) -> int:
        return self.SUBMISSION_CAP * len(self.webhooks())

    def pool_used_percent(self) -> float:
        capacity = self.pool_capacity()
        return round(100 * (capacity - self.pool_remaining()) / capacity, 1)

    def current_webhook(self):
        """(webhook, None) to send to, or (None, the webhook whose state stops sending).

        Full webhooks are passed over; the first one that is not full is used unless its
        token was rejected or it no longer exists, which stops sending until it is fixed.
        """
        webhooks = self.webhooks()
        for webhook in webhooks:
            if webhook.state == WebhookState.FULL:
                continue
            if webhook.state:
                return None, webhook
            return webhook, None
        return None, webhooks[-1]

    @property
    def broken(self):
        """The webhook that stops sending (token rejected, gone, or the whole pool full)."""
        return self.current_webhook()[1]


class ClayWebhook(WebhookStateMixin):
    """Another webhook on the same Clay table: sending moves here when the ones before are full."""

    destination = models.ForeignKey(ClayDestination, on_delete=models.CASCADE, related_name="pool")
    position = models.PositiveSmallIntegerField(default=1)
    webhook_url = models.OneToOneField(Secret, on_delete=models.PROTECT, related_name="+")
    auth_token = models.OneToOneField(
        Secret, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    submissions_count = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "kiln_clay_webhook"
        ordering = ["destination", "position", "pk"]

    def __str__(self):
        return f"{self.destination} {self.label}"

    @property
    def label(self) -> str:
        return f"webhook {self.position + 1}"

    @property
    def limiter_key(self) -> str:
        return f"clay:{self.destination_id}"


class AuditEvent(models.Model):
    """Who did what to which credential, when and from where. Never holds a secret value."""

    class Action(models.TextChoices):
        CREATED = "created", "created"
        CHANGED = "changed", "changed"
        ROTATED = "rotated", "rotated secret"
        TESTED = "tested", "tested"
        USED = "used", "used"
        DELETED = "deleted", "deleted"
        INSTALLED = "installed", "installed"
        LOGIN_FAILED = "login_failed", "failed login"
        ROLE_CHANGED = "role_changed", "changed role"

    at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Kept as text too, so the record survives the user's deletion.
    actor_name = models.CharField(max_length=150, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    action = models.CharField(max_length=20, choices=Action.choices)
    target_type = models.CharField(max_length=50)
    target_id = models.CharField(max_length=50, blank=True)
    target_name = models.CharField(max_length=200, blank=True)
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        db_table = "kiln_audit_event"
        ordering = ["-at", "-id"]

    def __str__(self):
        return f"{self.actor_name} {self.action} {self.target_type} {self.target_name}"

    @classmethod
    def record(cls, actor, ip, action, target, details=None, target_type=None):
        """Write one event; `actor` may be None for the system (worker, command)."""
        return cls.objects.create(
            actor=actor if getattr(actor, "pk", None) else None,
            actor_name=getattr(actor, "username", "") or "system",
            ip=ip or None,
            action=action,
            target_type=target_type or target._meta.model_name,
            target_id=str(getattr(target, "pk", "") or ""),
            target_name=str(target)[:200],
            details=details or {},
        )


class AllowedNetwork(models.Model):
    """A host name or CIDR that outbound requests may reach even though it is private
    (a Directus on the internal network is normal), like GitLab's "allow local network".
    Without a port it opens the web ports only (http.WEB_PORTS); see integrations/outbound/allowlist.py."""

    value = models.CharField(max_length=255, help_text="Host name or CIDR, e.g. 10.0.0.0/8")
    port = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(65535)],
        help_text="Empty: ports 80 and 443 only.",
    )
    note = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "kiln_allowed_network"
        ordering = ["value", "port"]
        constraints = [
            models.UniqueConstraint(fields=["value", "port"], name="allowed_network_value_port")
        ]

    def __str__(self):
        return f"{self.value} port {self.port}" if self.port else self.value

    @property
    def ports(self) -> str:
        return str(self.port) if self.port else ", ".join(map(str, http.WEB_PORTS))
