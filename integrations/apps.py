from django.apps import AppConfig


class IntegrationsConfig(AppConfig):
    name = "integrations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from integrations import http
        from integrations.models import AllowedNetwork

        def allowlist():
            return AllowedNetwork.objects.values_list("value", "port")

        # The outbound guard reads the admin's allowlist through this, at each default_policy().
        http.allowlist_provider = allowlist
