"""Salted scrypt password hashes: the only form in which passwords are stored."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from concurrent.futures import ThreadPoolExecutor

# scrypt runs on a small, fixed pool: logins hash concurrently (one slow login
# does not hold the others back), and the number of threads that ever touch
# scrypt's 16 MiB buffers stays bounded. On the SSH connection threads, glibc
# gave each thread its own malloc arena and kept those buffers (20 logins:
# +97 MiB of peak RSS that never went back).
_WORKERS = max(2, min(4, os.cpu_count() or 2))
_SCRYPT_POOL = ThreadPoolExecutor(max_workers=_WORKERS, thread_name_prefix="scrypt")

_N, _R, _P = 2**14, 8, 1
_DKLEN = 32
PARAMETERS = f"n={_N},r={_R},p={_P}"
"""The only scrypt cost the agent accepts: a stored hash with another cost
(e.g. p=200, seconds per login) could be used to stall logins."""

CLEAR_TEXT_PREFIX = "$0$"
"""RFC 7317 crypt-hash: ``$0$<password>`` in an edit means "store the hash of this clear text"."""

# Hashed for a user that does not exist, so that an unknown name costs the
# same as a known one (no user enumeration by timing).
_DUMMY_SALT = secrets.token_bytes(16)


def _scrypt(password: str, salt: bytes) -> bytes:
    return _SCRYPT_POOL.submit(
        hashlib.scrypt, password.encode("utf-8"), salt=salt, n=_N, r=_R, p=_P, dklen=_DKLEN
    ).result()


def hash_password(password: str) -> str:
    """``$scrypt$n=N,r=R,p=P$SALT$HASH`` (base64) for ``password``."""
    salt = secrets.token_bytes(16)
    digest = _scrypt(password, salt)
    b64 = base64.b64encode
    return f"$scrypt${PARAMETERS}${b64(salt).decode()}${b64(digest).decode()}"


def stored_form(value: str) -> str:
    """What to store for a password-hash value written in an edit.

    ``$0$<password>`` becomes the hash of the password; any other value is
    kept as written (YANG validation then refuses hashes that are not the
    agent's own). Raises ValueError for an empty clear-text password.
    """
    if not value.startswith(CLEAR_TEXT_PREFIX):
        return value
    password = value[len(CLEAR_TEXT_PREFIX):]
    if not password:
        raise ValueError("the password after $0$ is empty")
    return hash_password(password)


def parse_hash(stored: str) -> tuple[bytes, bytes] | None:
    """(salt, digest) of a hash made with the agent's own parameters; None otherwise."""
    try:
        empty, scheme, params, salt_b64, digest_b64 = stored.split("$")
        if empty or scheme != "scrypt" or params != PARAMETERS:
            return None
        salt = base64.b64decode(salt_b64, validate=True)
        digest = base64.b64decode(digest_b64, validate=True)
    except ValueError:
        return None
    if not salt or len(digest) != _DKLEN:
        return None
    return salt, digest


def verify_password(password: str, stored: str | None) -> bool:
    """True when ``password`` matches ``stored``.

    A missing hash, a malformed one, or one with other scrypt parameters is a
    mismatch, and costs the same one scrypt as a real check.
    """
    parsed = parse_hash(stored) if stored else None
    if parsed is None:
        _scrypt(password, _DUMMY_SALT)
        return False
    salt, expected = parsed
    return hmac.compare_digest(_scrypt(password, salt), expected)


def random_password() -> str:
    """A random password for the first start (printed once, never stored in clear)."""
    return secrets.token_urlsafe(15)
