from django.apps import AppConfig


class ConsoleConfig(AppConfig):
    name = "console"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from console import (
            brokerfix,
            checks,  # noqa: F401  (registers the encryption-key check)
        )

        brokerfix.install()  # so the worker survives a Redis broker restart
