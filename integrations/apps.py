from django.apps import AppConfig


class IntegrationsConfig(AppConfig):
    name = "integrations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # The runs queue tasks by name (runs/queue.py): every process must know them.
        from integrations import tasks  # noqa: F401
