from django.apps import AppConfig


class IntegrationsConfig(AppConfig):
    name = "integrations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from integrations.models import AllowedNetwork
        from integrations.outbound import http

        def allowlist():
            return AllowedNetwork.objects.values_list("value", "port")

        # The outbound guard reads the admin's allowlist through this, at each default_policy().
        http.allowlist_provider = allowlist

        # The runs queue tasks by name (runs/queue.py): every process must know them.
        from integrations import tasks  # noqa: F401
