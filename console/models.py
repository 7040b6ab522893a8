import hashlib
import secrets
from datetime import timedelta

from django.contrib.auth.models import AbstractUser
from django.db import models
from django.utils import timezone

from integrations.outbound import http


class User(AbstractUser):
    """A console user with one of three roles; the role decides what they may see and do."""

    class Role(models.TextChoices):
        VIEWER = "viewer", "Viewer"
        OPERATOR = "operator", "Operator"
        ADMIN = "admin", "Admin"

    RANK = {Role.VIEWER: 0, Role.OPERATOR: 1, Role.ADMIN: 2}

    role = models.CharField(max_length=10, choices=Role.choices, default=Role.VIEWER)

    def has_role(self, role: str) -> bool:
        """True when this user's role is at least `role` (admin > operator > viewer)."""
        return self.is_active and self.RANK.get(self.role, -1) >= self.RANK[role]

    @property
    def is_admin(self) -> bool:
        return self.has_role(self.Role.ADMIN)

    @property
    def is_operator(self) -> bool:
        return self.has_role(self.Role.OPERATOR)


class ApiToken(models.Model):
    """A personal API token. It acts with its owner's current role; only a digest is stored.

    The token is shown once, when it is made: `kiln_` + 43 random URL-safe characters (256
    bits), so a plain SHA-256 digest is enough to find it and nothing reversible is kept.
    """

    PREFIX = "kiln_"
    # A token's last use is written at most this often, not on every request.
    TOUCH_EVERY = timedelta(seconds=60)

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    # The first characters after the prefix, so people can tell their tokens apart.
    hint = models.CharField(max_length=8)
    digest = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    last_used_ip = models.GenericIPAddressField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        db_table = "kiln_api_token"
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "name"],
                condition=models.Q(revoked_at__isnull=True),
                name="api_token_unique_live_name",
            )
        ]

    def __str__(self):
        return self.name

    @staticmethod
    def digest_of(plaintext: str) -> str:
        return hashlib.sha256(plaintext.encode("utf-8", "surrogatepass")).hexdigest()

    @classmethod
    def issue(cls, user, name: str, expires_at=None) -> tuple["ApiToken", str]:
        """A new token for `user`; returns (token, plaintext). The plaintext is never stored."""
        plaintext = cls.PREFIX + secrets.token_urlsafe(32)
        http.register_secret(plaintext)
        token = cls.objects.create(
            user=user,
            name=name,
            hint=plaintext[len(cls.PREFIX) :][:4],
            digest=cls.digest_of(plaintext),
            expires_at=expires_at,
        )
        return token, plaintext

    @classmethod
    def find(cls, plaintext: str) -> "ApiToken | None":
        """The token with this value, revoked and expired ones included; None if there is none."""
        if not plaintext.startswith(cls.PREFIX) or len(plaintext) > 200:
            return None
        token = cls.objects.select_related("user").filter(digest=cls.digest_of(plaintext)).first()
        if token is not None:
            # It is a real credential (even revoked): any log line that quotes it is redacted.
            http.register_secret(plaintext)
        return token

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()

    @property
    def is_usable(self) -> bool:
        return not self.is_revoked and not self.is_expired and self.user.is_active

    @property
    def state(self) -> str:
        """'revoked', 'expired' or 'active'."""
        if self.is_revoked:
            return "revoked"
        return "expired" if self.is_expired else "active"

    @property
    def masked(self) -> str:
        return f"{self.PREFIX}{self.hint}…"

    def touch(self, ip: str | None) -> None:
        """Record a use, at most once a minute per token (one UPDATE, not one per request)."""
        now = timezone.now()
        if self.last_used_at and now - self.last_used_at < self.TOUCH_EVERY:
            return
        self.last_used_at, self.last_used_ip = now, ip or None
        ApiToken.objects.filter(pk=self.pk).update(last_used_at=now, last_used_ip=ip or None)

    def revoke(self, by=None) -> bool:
        """Revoke the token now; False if it already was."""
        now = timezone.now()
        done = ApiToken.objects.filter(pk=self.pk, revoked_at__isnull=True).update(
            revoked_at=now, revoked_by=by
        )
        if done:
            self.revoked_at, self.revoked_by = now, by
        return bool(done)
