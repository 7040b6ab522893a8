import pytest
from cryptography.fernet import Fernet

from integrations import crypto


def test_it_encrypts_with_the_first_key_and_decrypts_with_any():
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    ciphertext, key_id = crypto.Keyring([old]).encrypt("s3cret-value")
    ring = crypto.Keyring([new, old])
    assert ring.decrypt(ciphertext, key_id) == "s3cret-value"
    again, again_id = ring.encrypt("s3cret-value")
    assert again_id == crypto.key_id(new) != key_id
    assert crypto.Keyring([new]).decrypt(again, again_id) == "s3cret-value"


def test_it_fails_loudly_when_no_key_can_decrypt():
    ciphertext, key_id = crypto.Keyring([Fernet.generate_key().decode()]).encrypt("value")
    other = crypto.Keyring([Fernet.generate_key().decode()])
    with pytest.raises(crypto.DecryptionError) as exc:
        other.decrypt(ciphertext, key_id)
    assert ciphertext not in str(exc.value)
    assert "reencrypt_secrets" in str(exc.value)


@pytest.mark.parametrize(
    "keys, message",
    [
        ([], "not set"),
        (["not-a-key"], "key #1 is not a Fernet key"),
        ([Fernet.generate_key().decode(), "c2hvcnQ="], "key #2 is not a Fernet key"),
    ],
)
def test_it_rejects_missing_or_malformed_keys(keys, message):
    with pytest.raises(crypto.KeyConfigError, match=message):
        crypto.Keyring(keys)


def test_it_rejects_a_duplicated_key():
    key = Fernet.generate_key().decode()
    with pytest.raises(crypto.KeyConfigError, match="twice"):
        crypto.Keyring([key, key])


def test_key_ids_are_stable_and_do_not_reveal_the_key():
    key = Fernet.generate_key().decode()
    assert crypto.key_id(key) == crypto.key_id(key)
    assert crypto.key_id(key) not in key
