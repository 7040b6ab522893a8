import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.db import connection
from django.test import override_settings

from integrations import crypto
from integrations.models import Secret
from tests.testenv import TEST_KEY

pytestmark = pytest.mark.django_db


def raw_ciphertext(secret_id):
    with connection.cursor() as cursor:
        cursor.execute("SELECT ciphertext, key_id FROM kiln_secret WHERE id = %s", [secret_id])
        return cursor.fetchone()


def test_the_database_column_never_holds_the_plaintext():
    secret = Secret.seal("directus-token-PLAINTEXT-MARKER-123")
    ciphertext, key_id = raw_ciphertext(secret.pk)
    assert "PLAINTEXT-MARKER" not in ciphertext
    assert key_id == crypto.key_id(TEST_KEY)
    assert Secret.objects.get(pk=secret.pk).reveal() == "directus-token-PLAINTEXT-MARKER-123"


def test_it_shows_only_the_last_four_characters_and_hides_short_values_whole():
    assert Secret.seal("abcdefghijkl-wxyz").masked == "••••wxyz"
    assert Secret.seal("short").masked == "••••••••"


def test_a_wrong_key_raises_a_typed_error_never_garbage():
    secret = Secret.seal("some-token-value-1234")
    with override_settings(KILN_ENCRYPTION_KEYS=[Fernet.generate_key().decode()]):
        with pytest.raises(crypto.DecryptionError):
            Secret.objects.get(pk=secret.pk).reveal()


def test_reencrypt_moves_every_secret_to_the_first_key(capsys):
    secrets = [Secret.seal(f"token-number-{i}-abcdef") for i in range(7)]
    new_key = Fernet.generate_key().decode()
    with override_settings(KILN_ENCRYPTION_KEYS=[new_key, TEST_KEY]):
        call_command("reencrypt_secrets", "--report")
        assert "7 secret(s) still on older keys" in capsys.readouterr().out
        call_command("reencrypt_secrets", "--batch-size", "3")
        call_command("reencrypt_secrets", "--report")
        assert "older keys can be removed" in capsys.readouterr().out
    # The old key can now be dropped: everything decrypts with the new one alone.
    with override_settings(KILN_ENCRYPTION_KEYS=[new_key]):
        for i, secret in enumerate(secrets):
            fresh = Secret.objects.get(pk=secret.pk)
            assert fresh.key_id == crypto.key_id(new_key)
            assert fresh.reveal() == f"token-number-{i}-abcdef"


def test_a_stale_secret_is_flagged_for_rotation(settings):
    secret = Secret.seal("token-value-for-age-check")
    assert not secret.is_stale
    settings.KILN_TOKEN_MAX_AGE_DAYS = -1
    assert secret.is_stale
