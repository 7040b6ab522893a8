"""Secret encryption at rest: Fernet keys from KILN_ENCRYPTION_KEYS, first encrypts, all decrypt."""

import base64
import binascii
import hashlib
import threading

from cryptography.fernet import Fernet, InvalidToken


class KeyConfigError(Exception):
    """The encryption keys are missing or malformed: refuse to run rather than store garbage."""


class DecryptionError(Exception):
    """A stored secret cannot be decrypted with any configured key."""


def key_id(key: str) -> str:
    """A short, stable fingerprint of a key, stored next to each ciphertext (never the key)."""
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def parse_keys(keys: list[str]) -> list[str]:
    """Validate keys and return them in order; raise KeyConfigError naming which one is wrong."""
    if not keys:
        raise KeyConfigError(
            "KILN_ENCRYPTION_KEYS is not set. Generate a key with "
            "`python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'`."
        )
    for position, key in enumerate(keys, start=1):
        try:
            raw = base64.urlsafe_b64decode(key.encode())
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) != 32:
            raise KeyConfigError(
                f"KILN_ENCRYPTION_KEYS key #{position} is not a Fernet key "
                "(32 url-safe base64-encoded bytes)."
            )
    if len(set(keys)) != len(keys):
        raise KeyConfigError("KILN_ENCRYPTION_KEYS lists the same key twice.")
    return keys


class Keyring:
    """Encrypts with the first key, decrypts with any; reports which key a ciphertext used."""

    def __init__(self, keys: list[str]):
        self.keys = parse_keys(list(keys))
        self.fernets = [Fernet(k.encode()) for k in self.keys]
        self.ids = [key_id(k) for k in self.keys]

    @property
    def primary_id(self) -> str:
        return self.ids[0]

    def encrypt(self, plaintext: str) -> tuple[str, str]:
        """Return (ciphertext, key id of the key that encrypted it)."""
        return self.fernets[0].encrypt(plaintext.encode()).decode(), self.primary_id

    def decrypt(self, ciphertext: str, stored_key_id: str = "") -> str:
        fernets = self.fernets
        if stored_key_id in self.ids:
            # Try the recorded key first; fall back to all in case the record is stale.
            index = self.ids.index(stored_key_id)
            fernets = [self.fernets[index]] + self.fernets
        for fernet in fernets:
            try:
                return fernet.decrypt(ciphertext.encode()).decode()
            except InvalidToken:
                continue
        # Never include the ciphertext or any key material in the message.
        raise DecryptionError(
            "A stored secret cannot be decrypted with any key in KILN_ENCRYPTION_KEYS "
            f"(it was encrypted with key {stored_key_id or 'unknown'}). "
            "Was a key removed before `manage.py reencrypt_secrets` finished?"
        )


_lock = threading.Lock()
_cache: dict[tuple[str, ...], Keyring] = {}


def keyring() -> Keyring:
    """The keyring for the current settings (cached per key list, so tests can override)."""
    from django.conf import settings

    keys = tuple(settings.KILN_ENCRYPTION_KEYS)
    with _lock:
        if keys not in _cache:
            _cache[keys] = Keyring(list(keys))
        return _cache[keys]


def generate_key() -> str:
    return Fernet.generate_key().decode()
