"""Salted scrypt password hashes: the only form in which passwords are stored."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from concurrent.futures import ThreadPoolExecutor

# Every scrypt runs on this one thread. scrypt allocates 16 MiB per call; on
# the SSH connection threads, glibc gave each thread its own malloc arena and
# kept those buffers (20 logins: +97 MiB of peak RSS that never went back).
_SCRYPT_THREAD = ThreadPoolExecutor(max_workers=1, thread_name_prefix="scrypt")

_N, _R, _P = 2**14, 8, 1
PARAMETERS = f"n={_N},r={_R},p={_P}"
"""The only scrypt parameters the agent stores or verifies: others would change what a login costs."""

CLEAR_TEXT_PREFIX = "$0$"
"""RFC 7317 crypt-hash: ``$0$<password>`` in an edit means "store the hash of this clear text"."""


def hash_password(password: str) -> str:
    """``$scrypt$n=N,r=R,p=P$SALT$HASH`` (base64) for ``password``."""
    salt = secrets.token_bytes(16)
    digest = _SCRYPT_THREAD.submit(
        hashlib.scrypt, password.encode("utf-8"), salt=salt, n=_N, r=_R, p=_P, dklen=32
    ).result()
    b64 = base64.b64encode
    return f"$scrypt$n={_N},r={_R},p={_P}${b64(salt).decode()}${b64(digest).decode()}"


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


def verify_password(password: str, stored: str) -> bool:
    """True when ``password`` matches ``stored``.

    False for any malformed hash, and without hashing for one whose scrypt
    parameters are not the agent's own (a costly hash must not slow logins).
    """
    try:
        _, scheme, params, salt_b64, digest_b64 = stored.split("$")
        if scheme != "scrypt" or params != PARAMETERS:
            return False
        values = dict(item.split("=") for item in params.split(","))
        salt = base64.b64decode(salt_b64, validate=True)
        expected = base64.b64decode(digest_b64, validate=True)
        digest = _SCRYPT_THREAD.submit(
            hashlib.scrypt,
            password.encode("utf-8"),
            salt=salt,
            n=int(values["n"]),
            r=int(values["r"]),
            p=int(values["p"]),
            dklen=len(expected),
            maxmem=2**26,
        ).result()
    except (ValueError, KeyError):
        return False
    return hmac.compare_digest(digest, expected)


def random_password() -> str:
    """A random password for the first start (printed once, never stored in clear)."""
    return secrets.token_urlsafe(15)
