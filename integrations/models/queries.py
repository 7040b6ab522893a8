"""Saved Directus queries, reused by the builder, templates and syncs."""

from django.conf import settings
from django.db import models

from .credentials import DirectusConnection


class SavedQuery(models.Model):
    connection = models.ForeignKey(
        DirectusConnection, on_delete=models.CASCADE, related_name="queries"
    )
    name = models.CharField(max_length=100)
    collection = models.CharField(max_length=100)
    # The canonical query-string form (`filter[status][_eq]=published&sort=-views`), see filters.py.
    query_string = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "kiln_saved_query"
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["connection", "name"], name="saved_query_unique_name")
        ]

    def __str__(self):
        return self.name

    def to_query(self):
        from integrations.query import filters

        return filters.Query.from_query_string(self.query_string)
