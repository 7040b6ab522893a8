from django.apps import AppConfig


class ConsoleConfig(AppConfig):
    name = "console"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from console import checks  # noqa: F401  (registers the encryption-key check)
