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


def hash_password(password: str) -> str:
    """``$scrypt$n=N,r=R,p=P$SALT$HASH`` (base64) for ``password``."""
    salt = secrets.token_bytes(16)
    digest = _SCRYPT_THREAD.submit(
        hashlib.scrypt, password.encode("utf-8"), salt=salt, n=_N, r=_R, p=_P, dklen=32
    ).result()
    b64 = base64.b64encode
    return f"$scrypt$n={_N},r={_R},p={_P}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    """True when ``password`` matches ``stored``; False for any malformed hash."""
    try:
        _, scheme, params, salt_b64, digest_b64 = stored.split("$")
        if scheme != "scrypt":
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
