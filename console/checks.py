from django.conf import settings
from django.core import checks

from integrations import crypto


@checks.register(checks.Tags.security, deploy=False)
def check_encryption_keys(app_configs, **kwargs):
    """Refuse to start with missing or malformed keys rather than fail at the first secret."""
    try:
        crypto.parse_keys(list(settings.KILN_ENCRYPTION_KEYS))
    except crypto.KeyConfigError as exc:
        return [checks.Error(str(exc), id="kiln.E001")]
    return []
