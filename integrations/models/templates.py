"""Mapping templates: a JSON body with placeholders, filled from a row (see mapping.py)."""

from django.conf import settings
from django.db import models

from .credentials import DirectusConnection
from .queries import SavedQuery


class MappingTemplate(models.Model):
    class Kind(models.TextChoices):
        CREATE = "create", "Create Item in Collection"
        UPDATE = "update", "Update Item in Collection"
        GET = "get", "Get Item from Collection"
        GET_RELATED = "get_related", "Get Related Item Details"
        CLAY_ROW = "clay_row", "Clay webhook row"
        FLOW = "flow", "Directus Flow payload"

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    connection = models.ForeignKey(
        DirectusConnection,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="templates",
    )
    collection = models.CharField(max_length=100, blank=True)
    saved_query = models.ForeignKey(
        SavedQuery, null=True, blank=True, on_delete=models.SET_NULL, related_name="templates"
    )
    body = models.TextField(blank=True, default="{}")
    # Per-placeholder casts and the missing-value policy, see mapping.py.
    options = models.JSONField(default=dict, blank=True)
    # Set once "Install in Directus" created the Flow, so a re-install updates it.
    flow_id = models.CharField(max_length=64, blank=True)
    flow_operation_id = models.CharField(max_length=64, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "kiln_mapping_template"
        ordering = ["name"]

    def __str__(self):
        return self.name
