from django.contrib.auth.models import AbstractUser
from django.db import models


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
