"""Stored password hashes: $0$ clear text becomes the agent's hash; foreign parameters are never used."""

from __future__ import annotations

import base64
import hashlib

import pytest

from agent.passwords import PARAMETERS, hash_password, stored_form, verify_password


def test_clear_text_becomes_the_agent_s_own_hash() -> None:
    stored = stored_form("$0$s3cret pass")
    assert stored.startswith(f"$scrypt${PARAMETERS}$") and "s3cret" not in stored
    assert verify_password("s3cret pass", stored)
    assert not verify_password("other", stored)
    assert stored_form(stored) == stored  # a hash passes unchanged
    with pytest.raises(ValueError):
        stored_form("$0$")


def test_a_hash_with_other_scrypt_parameters_never_verifies() -> None:
    salt = b"0123456789abcdef"
    digest = hashlib.scrypt(b"pw", salt=salt, n=2, r=1, p=1, dklen=32)  # cheap parameters, right password
    foreign = f"$scrypt$n=2,r=1,p=1${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"
    assert not verify_password("pw", foreign)
    assert verify_password("pw", hash_password("pw"))
