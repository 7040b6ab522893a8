"""Failed sign-ins, counted in the cache per (username, address) and per address.

Five wrong passwords for `ann` from 203.0.113.9 lock `ann` out on that address only: she can
still sign in from another one, and everyone else from this one. Many failures from one address
whatever the usernames (someone guessing names) lock the address out for everyone. Admins lift
locks on the users page. The address is console.access.client_ip (KILN_TRUSTED_PROXIES).

Every cache call goes through _store(): when the cache is down nothing is counted and nobody is
locked out (fail open, logged), because a sign-in page that answers 500 locks out the whole team.
"""

import hashlib
import logging
import time

from django.conf import settings
from django.core.cache import cache

logger = logging.getLogger(__name__)

ACCOUNT, ADDRESS = "account", "address"
# Addresses remembered per username, and locked addresses remembered in all: an attacker
# rotating addresses must not grow one cache entry without bound.
MAX_REMEMBERED = 100
_LOCKED_ADDRESSES_KEY = "login-fail:locked-addresses"


def _digest(*parts: str) -> str:
    # Usernames are typed by strangers: hash them into safe, fixed-length cache keys.
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:40]


def _name(username: str) -> str:
    return (username or "").strip().lower()


def _pair_key(username: str, address: str) -> str:
    return f"login-fail:pair:{_digest(_name(username), address)}"


def _address_key(address: str) -> str:
    return f"login-fail:address:{_digest(address)}"


def _index_key(username: str) -> str:
    return f"login-fail:index:{_digest(_name(username))}"


def _store(operation, default):
    """operation(cache), or default when the cache cannot be reached (logged: fail open)."""
    try:
        return operation(cache)
    except Exception as exc:  # each cache backend has its own errors (redis, OSError, ...)
        logger.warning(
            "Sign-in lockouts are not enforced: the cache is unavailable (%s: %s)",
            type(exc).__name__,
            exc,
        )
        return default


def _limits() -> tuple[int, int]:
    return settings.KILN_LOGIN_MAX_FAILURES, settings.KILN_LOGIN_MAX_FAILURES_PER_ADDRESS


def _remember(store, key: str, entries: dict, value: str, timeout: int) -> None:
    """Add value to a {value: expires_at} map in the cache, dropping expired and oldest ones."""
    now = time.time()
    kept = {k: until for k, until in (entries or {}).items() if until > now and k != value}
    kept[value] = now + timeout
    newest = sorted(kept.items(), key=lambda item: item[1])[-MAX_REMEMBERED:]
    store.set(key, dict(newest), timeout)


def _increment(store, key: str, timeout: int) -> int:
    store.add(key, 0, timeout)  # the window starts at the first failure
    try:
        return store.incr(key)
    except ValueError:  # expired between add and incr
        store.set(key, 1, timeout)
        return 1


def lockout(username: str, address: str) -> str:
    """Empty if username may try to sign in from address, else ACCOUNT or ADDRESS."""
    per_pair, per_address = _limits()
    keys = [_pair_key(username, address), _address_key(address)]
    counts = _store(lambda store: store.get_many(keys), {})
    if counts.get(keys[1], 0) >= per_address:
        return ADDRESS
    if counts.get(keys[0], 0) >= per_pair:
        return ACCOUNT
    return ""


def record_failure(username: str, address: str) -> None:
    """Count one failed sign-in for (username, address) and for address."""
    timeout = settings.KILN_LOGIN_LOCKOUT_SECONDS

    def count(store):
        _increment(store, _pair_key(username, address), timeout)
        from_address = _increment(store, _address_key(address), timeout)
        index_key = _index_key(username)
        _remember(store, index_key, store.get(index_key), address, timeout)
        if from_address >= _limits()[1]:
            locked = store.get(_LOCKED_ADDRESSES_KEY)
            _remember(store, _LOCKED_ADDRESSES_KEY, locked, address, timeout)

    _store(count, None)


def clear_failures(username: str, address: str) -> None:
    """Forget username's failures from address (it just signed in from there)."""
    _store(lambda store: store.delete(_pair_key(username, address)), None)


def locked_addresses_by_user(usernames: list[str]) -> dict[str, list[str]]:
    """{username: [addresses it is locked out on]} for those of usernames that are locked."""
    per_pair = _limits()[0]

    def read(store):
        indexes = store.get_many([_index_key(u) for u in usernames])
        pairs = {
            _pair_key(u, address): (u, address)
            for u in usernames
            for address in indexes.get(_index_key(u)) or {}
        }
        locked: dict[str, list[str]] = {}
        for key, failures in store.get_many(list(pairs)).items():
            if failures >= per_pair:
                username, address = pairs[key]
                locked.setdefault(username, []).append(address)
        return {u: sorted(addresses) for u, addresses in locked.items()}

    return _store(read, {})


def locked_out_addresses() -> list[str]:
    """Addresses locked out for everyone (too many failures whatever the usernames)."""
    per_address = _limits()[1]

    def read(store):
        remembered = store.get(_LOCKED_ADDRESSES_KEY) or {}
        counts = store.get_many([_address_key(a) for a in remembered])
        return sorted(a for a in remembered if counts.get(_address_key(a), 0) >= per_address)

    return _store(read, [])


def unlock_user(username: str) -> list[str]:
    """Lift username's lockouts on every address; the addresses it had failures from."""

    def lift(store):
        addresses = sorted(store.get(_index_key(username)) or {})
        store.delete_many([_pair_key(username, a) for a in addresses] + [_index_key(username)])
        return addresses

    return _store(lift, [])


def unlock_address(address: str) -> None:
    """Forget the failures counted for address (whatever the usernames)."""

    def lift(store):
        store.delete(_address_key(address))
        locked = dict(store.get(_LOCKED_ADDRESSES_KEY) or {})
        if locked.pop(address, None) is not None:
            store.set(_LOCKED_ADDRESSES_KEY, locked, settings.KILN_LOGIN_LOCKOUT_SECONDS)

    _store(lift, None)
