"""agent.pki.keystore: RSA key pairs and authentication keys, through the public API and the files on disk."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import math
import os
import shutil
import stat
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from fakeclock import SetClock

from agent.errors import PkiError
from agent.pki.keystore import (
    DEFAULT_LABEL,
    AuthKeyInfo,
    InvalidKeyDataError,
    InvalidLabelError,
    InvalidModulusError,
    InvalidUserNameError,
    KeyExistsError,
    KeyNotFoundError,
    KeyPairInfo,
    KeyPairType,
    KeyStore,
    KeyStoreCorruptError,
    KeyUsage,
    label_for_fqdn,
    validate_label,
)

T0 = dt.datetime(2003, 9, 18, 17, 33, 23, tzinfo=dt.UTC)


@pytest.fixture
def clock() -> SetClock:
    return SetClock(T0)


@pytest.fixture
def keydir(tmp_path: Path) -> Path:
    return tmp_path / "data" / "keys"


@pytest.fixture
def store(keydir: Path, clock: SetClock) -> KeyStore:
    return KeyStore(keydir, clock)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def spki(key: rsa.RSAPublicKey | rsa.RSAPrivateKey) -> bytes:
    pub = key.public_key() if isinstance(key, rsa.RSAPrivateKey) else key
    return pub.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def private_needles(key: rsa.RSAPrivateKey) -> list[bytes]:
    """Byte strings any copy of the private key would contain."""
    numbers = key.private_numbers()
    pkcs1 = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )
    body_lines = [line for line in pem.splitlines() if line and not line.startswith(b"-----")]
    d_bytes = numbers.d.to_bytes((numbers.d.bit_length() + 7) // 8, "big")
    p_bytes = numbers.p.to_bytes((numbers.p.bit_length() + 7) // 8, "big")
    return [pkcs1, d_bytes, p_bytes, d_bytes.hex().encode(), p_bytes.hex().upper().encode(), *body_lines[2:5]]


# --------------------------------------------------------------------------- enums


def test_enums_values_and_display() -> None:
    assert [t.value for t in KeyPairType] == ["general-purpose", "usage-keys"]
    assert [u.value for u in KeyUsage] == ["general", "signature", "encryption"]
    assert KeyPairType.GENERAL_PURPOSE.usages == (KeyUsage.GENERAL,)
    assert KeyPairType.USAGE_KEYS.usages == (KeyUsage.SIGNATURE, KeyUsage.ENCRYPTION)
    assert KeyPairType.GENERAL_PURPOSE.display == "RSA General purpose"  # show crypto key mypubkey rsa
    assert KeyUsage.GENERAL.display == "General Purpose"  # show crypto ca certificates


# --------------------------------------------------------------------------- generate


def test_generate_general_purpose(store: KeyStore, keydir: Path) -> None:
    info = store.generate_rsa("mykey", KeyPairType.GENERAL_PURPOSE, 1024)
    assert isinstance(info, KeyPairInfo)
    assert info.label == "mykey"
    assert info.key_type is KeyPairType.GENERAL_PURPOSE
    assert info.size == 1024
    assert info.created == T0 and info.created.tzinfo is not None
    assert list(info.public_keys) == [KeyUsage.GENERAL]
    public = serialization.load_der_public_key(info.public_keys[KeyUsage.GENERAL])
    assert isinstance(public, rsa.RSAPublicKey) and public.key_size == 1024
    assert public.public_numbers().e == 65537
    assert store.get_rsa("mykey") == info
    assert store.list_rsa() == [info]
    # one file, private dir and file modes
    assert sorted(p.name for p in keydir.iterdir()) == ["authentication", "mykey.rsa.json"]
    assert mode(keydir) == 0o700
    assert mode(keydir / "authentication") == 0o700
    assert mode(keydir / "mykey.rsa.json") == 0o600
    record = json.loads((keydir / "mykey.rsa.json").read_text())
    assert record["type"] == "general-purpose" and record["size"] == 1024
    assert list(record["keys"]) == ["general"]
    assert record["keys"]["general"].startswith("-----BEGIN RSA PRIVATE KEY-----")  # PKCS#1


def test_generate_default_arguments(store: KeyStore) -> None:
    info = store.generate_rsa("k")
    assert info.key_type is KeyPairType.GENERAL_PURPOSE and info.size == 2048


def test_generate_usage_keys(store: KeyStore, keydir: Path) -> None:
    info = store.generate_rsa("usage", KeyPairType.USAGE_KEYS, 1024)
    assert info.key_type is KeyPairType.USAGE_KEYS
    assert list(info.public_keys) == [KeyUsage.SIGNATURE, KeyUsage.ENCRYPTION]
    assert info.usages == (KeyUsage.SIGNATURE, KeyUsage.ENCRYPTION)
    assert info.public_keys[KeyUsage.SIGNATURE] != info.public_keys[KeyUsage.ENCRYPTION]
    for usage in info.usages:
        assert spki(store.private_key("usage", usage)) == info.public_keys[usage]
        assert spki(store.public_key("usage", usage)) == info.public_keys[usage]
    # both pairs in one file
    assert [p.name for p in keydir.glob("*.rsa.json")] == ["usage.rsa.json"]
    assert list(json.loads((keydir / "usage.rsa.json").read_text())["keys"]) == ["signature", "encryption"]
    with pytest.raises(KeyNotFoundError) as err:
        store.private_key("usage", KeyUsage.GENERAL)
    assert err.value.error_tag == "data-missing"
    with pytest.raises(KeyNotFoundError):
        store.public_key("usage", KeyUsage.GENERAL)


def test_cryptography_refuses_rsa_below_1024() -> None:
    """Why the floor is 1024 and not the router's 512."""
    with pytest.raises(ValueError):
        rsa.generate_private_key(public_exponent=65537, key_size=512)


@pytest.mark.parametrize("modulus", [360, 512, 1023, 4097, 8192, 0, -1024, True])
def test_modulus_out_of_range(store: KeyStore, keydir: Path, modulus: int) -> None:
    with pytest.raises(InvalidModulusError) as err:
        store.generate_rsa("k", KeyPairType.GENERAL_PURPOSE, modulus)
    assert err.value.error_tag == "invalid-value"
    assert err.value.error_app_tag == "invalid-modulus"
    assert "1024 to 4096" in err.value.message
    assert isinstance(err.value, PkiError)
    assert not list(keydir.glob("*.rsa.json"))


@pytest.mark.parametrize("modulus", [1024, 1536, 4096])
def test_modulus_in_range(store: KeyStore, modulus: int) -> None:
    info = store.generate_rsa(f"k{modulus}", KeyPairType.GENERAL_PURPOSE, modulus)
    assert info.size == modulus == store.private_key(f"k{modulus}", KeyUsage.GENERAL).key_size


@pytest.mark.parametrize(
    "label",
    ["", "../evil", "..", ".", "a/b", "/etc/passwd", ".hidden", "-x", "_x", "a b", "a\n", "x" * 65, "é", "a\\b", None],
)
def test_invalid_labels_refused(store: KeyStore, tmp_path: Path, label: object) -> None:
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    with pytest.raises(InvalidLabelError) as err:
        store.generate_rsa(label, KeyPairType.GENERAL_PURPOSE, 1024)  # type: ignore[arg-type]
    assert err.value.error_tag == "invalid-value"
    calls: list[Callable[[Any], object]] = [store.get_rsa]
    if label is not None:  # zeroize_rsa(None) means "all"
        calls.append(store.zeroize_rsa)
    for call in calls:
        with pytest.raises(InvalidLabelError):
            call(label)
    with pytest.raises(InvalidLabelError):
        store.private_key(label, KeyUsage.GENERAL)  # type: ignore[arg-type]
    with pytest.raises(InvalidLabelError):
        store.import_authentication_rsa(label, spki(rsa.generate_private_key(65537, 1024)), "admin")  # type: ignore[arg-type]
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before


def test_valid_label_edge_cases(store: KeyStore) -> None:
    for label in ["a", "x" * 64, "My.Key-1_2", "0"]:
        assert store.generate_rsa(label, KeyPairType.GENERAL_PURPOSE, 1024).label == label
    assert [i.label for i in store.list_rsa()] == sorted(["a", "x" * 64, "My.Key-1_2", "0"])


def _sha8(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]


LONG_DOMAIN = ".".join(["a" * 60, "b" * 60, "c" * 60, "example.com"])  # 194 characters, a valid domain name


@pytest.mark.parametrize(
    ("fqdn", "label"),
    [
        ("myrouter.mydomain.com", "myrouter.mydomain.com"),  # the FQDN itself whenever it is a label
        ("router", "router"),
        ("r1.example.com.", "r1.example.com"),
        ("r1.my_dom.com", "r1.my_dom.com"),
        ("x" * 64, "x" * 64),
        ("x" * 65, "x" * 55 + "-" + _sha8("x" * 65)),
        (f"r1.{LONG_DOMAIN}", "r1." + "a" * 52 + "-" + _sha8(f"r1.{LONG_DOMAIN}")),
        ("_ldap.example.com", "key_ldap.example.com-" + _sha8("_ldap.example.com")),
        ("r1.ex ample.com", "r1.ex-ample.com"),
        (".", "key-" + _sha8(".")),
    ],
)
def test_default_label_for_fqdn(fqdn: str, label: str) -> None:
    assert label_for_fqdn(fqdn) == label
    assert validate_label(label) == label


def test_default_labels_of_long_fqdns_differ_when_the_fqdns_do() -> None:
    one, two = label_for_fqdn(f"r1.{LONG_DOMAIN}"), label_for_fqdn(f"r1.{LONG_DOMAIN}.net")
    assert one != two and one[:55] == two[:55] and len(one) == len(two) == 64
    assert label_for_fqdn(f"r1.{LONG_DOMAIN}") == one  # stable: the same host gets the same label


def test_existing_label_without_replace(store: KeyStore, keydir: Path) -> None:
    first = store.generate_rsa("mykey", KeyPairType.GENERAL_PURPOSE, 1024)
    content = (keydir / "mykey.rsa.json").read_bytes()
    for key_type in KeyPairType:
        with pytest.raises(KeyExistsError) as err:
            store.generate_rsa("mykey", key_type, 1024)
        assert err.value.error_tag == "data-exists"
        assert err.value.error_app_tag == "key-exists"
        assert "You already have keys defined for mykey" in err.value.message
    assert (keydir / "mykey.rsa.json").read_bytes() == content
    assert store.get_rsa("mykey") == first


def test_replace_is_one_atomic_rename_and_scrubs_old(
    store: KeyStore, keydir: Path, clock: SetClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.generate_rsa("mykey", KeyPairType.GENERAL_PURPOSE, 1024)
    path = keydir / "mykey.rsa.json"
    old_key = store.private_key("mykey", KeyUsage.GENERAL)
    old_content = path.read_bytes()
    old_inode = path.stat().st_ino
    link = keydir.parent / "old-link"
    os.link(path, link)  # keeps the old inode reachable

    renames: list[tuple[str, str]] = []
    real_replace = os.replace

    def spy(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        renames.append((os.fspath(src), os.fspath(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    clock.current = T0 + dt.timedelta(days=1)
    new = store.generate_rsa("mykey", KeyPairType.USAGE_KEYS, 1024, replace=True)
    monkeypatch.undo()

    # exactly one rename, onto the label's file
    assert len(renames) == 1 and renames[0][1] == str(path)
    assert path.stat().st_ino != old_inode
    record = json.loads(path.read_text())
    assert record["type"] == "usage-keys" and list(record["keys"]) == ["signature", "encryption"]
    assert new.key_type is KeyPairType.USAGE_KEYS and new.created == T0 + dt.timedelta(days=1)
    assert store.get_rsa("mykey") == new
    assert old_key.public_key().public_numbers() not in [
        store.public_key("mykey", u).public_numbers() for u in new.usages
    ]
    # the replaced file's bytes were overwritten, not just unlinked
    assert link.stat().st_ino == old_inode
    scrubbed = link.read_bytes()
    assert scrubbed != old_content
    assert b"PRIVATE KEY" not in scrubbed
    for needle in private_needles(old_key):
        assert needle not in scrubbed
    # no temporary files left behind
    assert sorted(p.name for p in keydir.iterdir()) == ["authentication", "mykey.rsa.json"]


def test_replace_back_to_general(store: KeyStore) -> None:
    store.generate_rsa("k", KeyPairType.USAGE_KEYS, 1024)
    info = store.generate_rsa("k", KeyPairType.GENERAL_PURPOSE, 1024, replace=True)
    assert list(info.public_keys) == [KeyUsage.GENERAL]
    with pytest.raises(KeyNotFoundError):
        store.private_key("k", KeyUsage.SIGNATURE)


def test_replace_on_new_label_just_creates(store: KeyStore) -> None:
    assert store.generate_rsa("fresh", KeyPairType.GENERAL_PURPOSE, 1024, replace=True).label == "fresh"


def test_concurrent_generate_only_one_wins(store: KeyStore) -> None:
    results: list[object] = []

    def run() -> None:
        try:
            results.append(store.generate_rsa("race", KeyPairType.GENERAL_PURPOSE, 1024))
        except KeyExistsError as exc:
            results.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(isinstance(r, KeyPairInfo) for r in results) == 1
    assert sum(isinstance(r, KeyExistsError) for r in results) == 3


# --------------------------------------------------------------------------- zeroize


def test_zeroize_one_label_overwrites_before_unlink(store: KeyStore, keydir: Path) -> None:
    store.generate_rsa("victim", KeyPairType.USAGE_KEYS, 1024)
    store.generate_rsa("keeper", KeyPairType.GENERAL_PURPOSE, 1024)
    keys = [store.private_key("victim", u) for u in (KeyUsage.SIGNATURE, KeyUsage.ENCRYPTION)]
    path = keydir / "victim.rsa.json"
    old = path.read_bytes()
    link = keydir.parent / "victim-link"
    os.link(path, link)

    assert store.zeroize_rsa("victim") == ["victim"]

    assert not path.exists()
    leftover = link.read_bytes()
    assert len(leftover) >= len(old) and leftover != old
    assert b"PRIVATE KEY" not in leftover and b"victim" not in leftover
    for key in keys:
        for needle in private_needles(key):
            assert needle not in leftover
    assert [i.label for i in store.list_rsa()] == ["keeper"]
    with pytest.raises(KeyNotFoundError):
        store.get_rsa("victim")


def test_zeroize_all(store: KeyStore, keydir: Path) -> None:
    assert store.zeroize_rsa() == []
    for label in ("b", "a", DEFAULT_LABEL):
        store.generate_rsa(label, KeyPairType.GENERAL_PURPOSE, 1024)
    store.import_authentication_rsa("auth", spki(rsa.generate_private_key(65537, 1024)), "admin")
    assert store.zeroize_rsa() == ["a", "b", DEFAULT_LABEL]
    assert store.list_rsa() == []
    assert not list(keydir.glob("*.rsa.json"))
    # authentication keys are a separate command (not zeroized)
    assert [a.label for a in store.list_authentication_rsa()] == ["auth"]


def test_zeroize_unknown_label(store: KeyStore) -> None:
    with pytest.raises(KeyNotFoundError) as err:
        store.zeroize_rsa("nothere")
    assert err.value.error_tag == "data-missing"
    assert err.value.error_app_tag == "key-not-found"
    assert "nothere" in err.value.message


# --------------------------------------------------------------------------- reads


def test_get_unknown_label(store: KeyStore) -> None:
    for call in (store.get_rsa,):
        with pytest.raises(KeyNotFoundError) as err:
            call("nothere")
        assert err.value.error_tag == "data-missing"
    with pytest.raises(KeyNotFoundError):
        store.private_key("nothere", KeyUsage.GENERAL)


def test_private_key_signs_for_public(store: KeyStore) -> None:
    store.generate_rsa("signer", KeyPairType.GENERAL_PURPOSE, 1024)
    signature = store.private_key("signer", KeyUsage.GENERAL).sign(b"msg", padding.PKCS1v15(), hashes.SHA256())
    store.public_key("signer", KeyUsage.GENERAL).verify(signature, b"msg", padding.PKCS1v15(), hashes.SHA256())


def test_corrupt_file(store: KeyStore, keydir: Path) -> None:
    store.generate_rsa("good", KeyPairType.GENERAL_PURPOSE, 1024)
    secret = rsa.generate_private_key(65537, 1024)
    pem = secret.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    ).decode()
    # a file whose key is damaged: the error must not quote any of it
    record = {"format": "ca-agent-rsa-keypair/1", "label": "bad", "type": "general-purpose", "size": 1024,
              "created": T0.isoformat(), "keys": {"general": pem[:200] + "!!" + pem[200:]}}
    (keydir / "bad.rsa.json").write_text(json.dumps(record))
    with pytest.raises(KeyStoreCorruptError) as err:
        store.get_rsa("bad")
    assert err.value.error_tag == "operation-failed"
    assert "bad" in err.value.message
    assert "MII" not in err.value.message and "PRIVATE" not in err.value.message
    assert [i.label for i in store.list_rsa()] == ["good"]  # skipped, with a warning
    (keydir / "bad.rsa.json").write_text("{ not json")
    with pytest.raises(KeyStoreCorruptError):
        store.private_key("bad", KeyUsage.GENERAL)


def _key_file(keydir: Path, label: str, numbers: rsa.RSAPrivateNumbers) -> rsa.RSAPrivateKey:
    """Write a well-formed key-pair file holding ``numbers``, whatever they are; returns its key."""
    key = numbers.private_key(unsafe_skip_rsa_key_validation=True)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    ).decode()
    record = {"format": "ca-agent-rsa-keypair/1", "label": label, "type": "general-purpose",
              "size": key.key_size, "created": T0.isoformat(), "keys": {"general": pem}}
    (keydir / f"{label}.rsa.json").write_text(json.dumps(record))
    return key


def test_keys_read_from_disk_are_listed_unchecked_and_checked_before_signing(
    store: KeyStore, keydir: Path, clock: SetClock
) -> None:
    """Showing keys after a restart needs only their public halves; signing needs the checked private key.

    OpenSSL's consistency check of an RSA private key took ~30 ms for 2048
    bits: listing 1,000 key pairs read from disk took half a minute while
    it ran for each. A key whose private numbers are inconsistent (a wrong
    CRT exponent: well-formed PEM) shows that the listing runs no check,
    and that signing still does.
    """
    good = store.generate_rsa("good", KeyPairType.GENERAL_PURPOSE, 1024)
    numbers = rsa.generate_private_key(65537, 1024).private_numbers()
    damaged = _key_file(keydir, "bad", rsa.RSAPrivateNumbers(
        p=numbers.p, q=numbers.q, d=numbers.d, dmp1=numbers.dmp1 + 2, dmq1=numbers.dmq1, iqmp=numbers.iqmp,
        public_numbers=numbers.public_numbers,
    ))

    reopened = KeyStore(keydir, clock)  # as after a restart: nothing cached
    listed = {info.label: info for info in reopened.list_rsa()}
    assert listed["good"] == good
    assert listed["bad"].public_keys[KeyUsage.GENERAL] == spki(damaged)
    assert spki(reopened.public_key("bad", KeyUsage.GENERAL)) == spki(damaged)
    with pytest.raises(KeyStoreCorruptError) as err:
        reopened.private_key("bad", KeyUsage.GENERAL)
    assert "bad" in err.value.message and "PRIVATE" not in err.value.message and "MII" not in err.value.message
    with pytest.raises(KeyStoreCorruptError):  # every time, not only the first
        reopened.private_key("bad", KeyUsage.GENERAL)
    signature = reopened.private_key("good", KeyUsage.GENERAL).sign(b"data", padding.PKCS1v15(), hashes.SHA256())
    reopened.public_key("good", KeyUsage.GENERAL).verify(signature, b"data", padding.PKCS1v15(), hashes.SHA256())


@pytest.mark.parametrize("damage", ["d", "dmp1", "dmq1", "iqmp", "swapped"])
def test_a_damaged_private_key_is_refused_before_its_first_signature(
    keydir: Path, clock: SetClock, damage: str
) -> None:
    """Each private number of a key file, changed alone, makes the key unusable (the file stays listed)."""
    good = rsa.generate_private_key(65537, 1024).private_numbers()
    fields = {"p": good.p, "q": good.q, "d": good.d, "dmp1": good.dmp1, "dmq1": good.dmq1, "iqmp": good.iqmp}
    if damage == "swapped":  # p and q exchanged, the CRT values left as they were
        fields["p"], fields["q"] = good.q, good.p
    else:
        fields[damage] += 2
    KeyStore(keydir, clock)  # the directory
    _key_file(keydir, "bad", rsa.RSAPrivateNumbers(**fields, public_numbers=good.public_numbers))
    _key_file(keydir, "good", good)
    store = KeyStore(keydir, clock)
    assert [info.label for info in store.list_rsa()] == ["bad", "good"]
    with pytest.raises(KeyStoreCorruptError):
        store.private_key("bad", KeyUsage.GENERAL)
    signature = store.private_key("good", KeyUsage.GENERAL).sign(b"data", padding.PKCS1v15(), hashes.SHA256())
    store.public_key("good", KeyUsage.GENERAL).verify(signature, b"data", padding.PKCS1v15(), hashes.SHA256())


def test_a_key_whose_arithmetic_holds_but_whose_p_is_not_prime_is_refused(keydir: Path, clock: SetClock) -> None:
    """The arithmetic check does not test primality; the key's own signature, verified, catches what it misses.

    p is the product of two primes: every CRT value is computed from p and
    q as for a real key, so only the signature shows that the key is broken
    (OpenSSL's primality check refused it too).
    """
    first = rsa.generate_private_key(65537, 1024).private_numbers()
    second = rsa.generate_private_key(65537, 1024).private_numbers()
    p, q, e = first.p * second.p, first.q, 65537
    lam = (p - 1) * (q - 1) // math.gcd(p - 1, q - 1)
    d = pow(e, -1, lam)
    numbers = rsa.RSAPrivateNumbers(
        p=p, q=q, d=d, dmp1=rsa.rsa_crt_dmp1(d, p), dmq1=rsa.rsa_crt_dmq1(d, q), iqmp=rsa.rsa_crt_iqmp(p, q),
        public_numbers=rsa.RSAPublicNumbers(e, p * q),
    )
    assert (e * d - 1) % (p - 1) == 0 and (e * d - 1) % (q - 1) == 0  # the arithmetic holds
    KeyStore(keydir, clock)  # the directory
    _key_file(keydir, "composite", numbers)
    store = KeyStore(keydir, clock)
    with pytest.raises(KeyStoreCorruptError):
        store.private_key("composite", KeyUsage.GENERAL)


def test_stale_temp_files_are_securely_removed_on_open(keydir: Path, clock: SetClock) -> None:
    KeyStore(keydir, clock)
    stale = keydir / ".mykey.rsa.json.0123456789ab.tmp"
    stale.write_bytes(b"-----BEGIN RSA PRIVATE KEY-----\nhalf written")
    link = keydir.parent / "stale-link"
    os.link(stale, link)
    KeyStore(keydir, clock)
    assert not stale.exists()
    assert b"PRIVATE KEY" not in link.read_bytes()


def test_existing_directory_gets_private_mode(tmp_path: Path) -> None:
    keydir = tmp_path / "keys"
    keydir.mkdir(mode=0o755)
    os.chmod(keydir, 0o755)
    KeyStore(keydir)
    assert mode(keydir) == 0o700


# --------------------------------------------------------------------------- default key


def test_ensure_default_and_ssh_host_key(store: KeyStore, keydir: Path) -> None:
    with pytest.raises(KeyNotFoundError):
        store.ssh_host_key()
    info = store.ensure_default()
    assert DEFAULT_LABEL == "the_default"
    assert info.label == DEFAULT_LABEL
    assert info.key_type is KeyPairType.GENERAL_PURPOSE and info.size == 2048
    assert (keydir / "the_default.rsa.json").is_file()
    assert store.ensure_default() == info  # not regenerated
    host = store.ssh_host_key()
    assert isinstance(host, rsa.RSAPrivateKey)
    assert spki(host) == info.public_keys[KeyUsage.GENERAL]
    # a restart keeps the same host key
    assert spki(KeyStore(keydir).ssh_host_key()) == spki(host)
    assert KeyStore(keydir).ensure_default() == info


def test_ssh_host_key_after_zeroize_and_with_usage_keys(store: KeyStore) -> None:
    store.ensure_default()
    store.zeroize_rsa(DEFAULT_LABEL)
    with pytest.raises(KeyNotFoundError) as err:
        store.ssh_host_key()
    assert err.value.error_tag == "data-missing"
    info = store.generate_rsa(DEFAULT_LABEL, KeyPairType.USAGE_KEYS, 1024)
    assert spki(store.ssh_host_key()) == info.public_keys[KeyUsage.SIGNATURE]
    assert store.ensure_default() == info  # present: left alone


# --------------------------------------------------------------------------- persistence


def test_restart_sees_everything(keydir: Path, clock: SetClock) -> None:
    first = KeyStore(keydir, clock)
    gen = first.generate_rsa("gen", KeyPairType.GENERAL_PURPOSE, 1024)
    use = first.generate_rsa("use", KeyPairType.USAGE_KEYS, 1024)
    auth = first.import_authentication_rsa("laptop", spki(rsa.generate_private_key(65537, 1024)), "admin")
    numbers = first.private_key("use", KeyUsage.ENCRYPTION).private_numbers()

    second = KeyStore(keydir)
    assert second.list_rsa() == [gen, use]
    assert second.get_rsa("use").created == T0
    assert second.private_key("use", KeyUsage.ENCRYPTION).private_numbers() == numbers
    assert second.list_authentication_rsa() == [auth]
    assert len(second.authorized_keys("admin")) == 1


# --------------------------------------------------------------------------- authentication keys


@pytest.fixture(scope="module")
def ssh_keypair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, rsa.RSAPublicKey]:
    """An RSA key made by ssh-keygen (not by this code base)."""
    if shutil.which("ssh-keygen") is None:
        pytest.skip("ssh-keygen not installed")
    folder = tmp_path_factory.mktemp("ssh")
    path = folder / "id_rsa"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "rsa", "-b", "2048", "-N", "", "-C", "alice@laptop", "-f", str(path)], check=True
    )
    key = serialization.load_ssh_public_key((folder / "id_rsa.pub").read_bytes())
    assert isinstance(key, rsa.RSAPublicKey)
    return path, key


def ssh_keygen_export(path: Path, fmt: str) -> str:
    return subprocess.run(
        ["ssh-keygen", "-e", "-m", fmt, "-f", f"{path}.pub"], check=True, capture_output=True, text=True
    ).stdout


def hex_groups(der: bytes) -> str:
    """DER as ``show crypto key mypubkey rsa`` prints it: 8-digit groups, 8 per line."""
    digits = der.hex().upper()
    groups = [digits[i : i + 8] for i in range(0, len(digits), 8)]
    return "\n".join("  " + " ".join(groups[i : i + 8]) for i in range(0, len(groups), 8))


def formats(path: Path, key: rsa.RSAPublicKey) -> dict[str, str | bytes]:
    der = spki(key)
    pkcs1 = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    return {
        "openssh line": (Path(f"{path}.pub")).read_text(),
        "openssh line bytes": (Path(f"{path}.pub")).read_bytes(),
        "rfc4716": ssh_keygen_export(path, "RFC4716"),
        "pem spki": ssh_keygen_export(path, "PKCS8"),
        "pem pkcs1": ssh_keygen_export(path, "PEM"),
        "hex router style": hex_groups(der),
        "hex colons lower": ":".join(f"{b:02x}" for b in der),
        "hex pkcs1": pkcs1.hex(),
        "base64 der": base64.encodebytes(der).decode(),
        "base64 pkcs1": base64.b64encode(pkcs1).decode(),
        "raw der bytes": der,
    }


FORMAT_NAMES = [
    "openssh line",
    "openssh line bytes",
    "rfc4716",
    "pem spki",
    "pem pkcs1",
    "hex router style",
    "hex colons lower",
    "hex pkcs1",
    "base64 der",
    "base64 pkcs1",
    "raw der bytes",
]


@pytest.mark.parametrize("fmt", FORMAT_NAMES)
def test_import_authentication_formats(
    store: KeyStore, keydir: Path, ssh_keypair: tuple[Path, rsa.RSAPublicKey], fmt: str
) -> None:
    path, key = ssh_keypair
    info = store.import_authentication_rsa("laptop", formats(path, key)[fmt], "alice")
    assert isinstance(info, AuthKeyInfo)
    assert info == AuthKeyInfo("laptop", "alice", 2048, T0, spki(key))
    assert store.list_authentication_rsa() == [info]
    assert [k.public_numbers() for k in store.authorized_keys("alice")] == [key.public_numbers()]
    assert store.authorized_keys("bob") == []
    assert mode(keydir / "authentication" / "laptop.json") == 0o600
    assert not list(keydir.glob("*.rsa.json"))  # not a key pair of the host


def test_import_openssl_pubout(store: KeyStore, tmp_path: Path) -> None:
    keyfile = tmp_path / "k.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(keyfile), "2048"], check=True, capture_output=True)
    pub = subprocess.run(
        ["openssl", "rsa", "-in", str(keyfile), "-pubout"], check=True, capture_output=True, text=True
    ).stdout
    der = subprocess.run(
        ["openssl", "rsa", "-in", str(keyfile), "-pubout", "-outform", "DER"], check=True, capture_output=True
    ).stdout
    assert store.import_authentication_rsa("o", pub, "admin").public_key == der


def test_import_replaces_same_label(store: KeyStore, clock: SetClock) -> None:
    first = rsa.generate_private_key(65537, 1024)
    second = rsa.generate_private_key(65537, 1024)
    store.import_authentication_rsa("k", spki(first), "alice")
    clock.current = T0 + dt.timedelta(hours=1)
    info = store.import_authentication_rsa("k", spki(second), "bob")
    assert store.list_authentication_rsa() == [info]
    assert info.user == "bob" and info.created == T0 + dt.timedelta(hours=1)
    assert store.authorized_keys("alice") == []
    assert [k.public_numbers() for k in store.authorized_keys("bob")] == [second.public_key().public_numbers()]


def test_authorized_keys_several(store: KeyStore) -> None:
    keys = [rsa.generate_private_key(65537, 1024) for _ in range(3)]
    store.import_authentication_rsa("a1", spki(keys[0]), "alice")
    store.import_authentication_rsa("a2", spki(keys[1]), "alice")
    store.import_authentication_rsa("b1", spki(keys[2]), "bob")
    assert sorted(k.public_numbers().n for k in store.authorized_keys("alice")) == sorted(
        k.public_key().public_numbers().n for k in keys[:2]
    )
    assert [a.label for a in store.list_authentication_rsa()] == ["a1", "a2", "b1"]


def _ec_pem() -> str:
    return (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def _ed25519_line() -> str:
    return (
        ed25519.Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
        + " bob@host"
    )


def _private_pem() -> str:
    return (
        rsa.generate_private_key(65537, 1024)
        .private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        .decode()
    )


def _small_rsa_pem(tmp: Path) -> str:
    keyfile = tmp / "small.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(keyfile), "512"], check=True, capture_output=True)
    return subprocess.run(
        ["openssl", "rsa", "-in", str(keyfile), "-pubout"], check=True, capture_output=True, text=True
    ).stdout


MALFORMED: list[tuple[str, object, str]] = [
    ("empty", "   \n", "empty"),
    ("prose", "hello world, this is not a key", "not PEM, hex DER, base64 DER or an ssh-rsa line"),
    ("ed25519", "ED25519", "an ssh-ed25519 key is not an RSA key"),
    ("ec pem", "EC", "EC (secp256r1) key is not an RSA key"),
    ("private pem", "PRIVATE", "'PRIVATE KEY' block is not a public key"),
    ("hex not a key", "30 03 02 01 01", "not a DER SubjectPublicKeyInfo or PKCS#1 RSAPublicKey"),
    ("base64 not a key", base64.b64encode(b"just some bytes here").decode(), "not a DER SubjectPublicKeyInfo"),
    ("bad pem base64", "-----BEGIN PUBLIC KEY-----\n!!!!\n-----END PUBLIC KEY-----", "not valid base64"),
    ("pem without end", "-----BEGIN PUBLIC KEY-----\nMIIB\n", "no matching BEGIN/END"),
    ("ssh-rsa broken", "ssh-rsa AAAAB3NzaC1yc2EAAAA bob", "ssh-rsa line's key data is malformed"),
    ("ssh-rsa no data", "ssh-rsa", "has no key data"),
    ("odd hex", "30819F3", "not PEM, hex DER, base64 DER or an ssh-rsa line"),
    ("binary junk", b"\xff\xfe\x00\x01", "not a DER SubjectPublicKeyInfo"),
    ("small rsa", "SMALL", "512 bits is not accepted"),
    ("not text", 12345, "must be text or bytes"),
]


@pytest.mark.parametrize(("name", "data", "words"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_import_malformed(store: KeyStore, tmp_path: Path, name: str, data: object, words: str) -> None:
    if data == "ED25519":
        data = _ed25519_line()
    elif data == "EC":
        data = _ec_pem()
    elif data == "PRIVATE":
        data = _private_pem()
    elif data == "SMALL":
        data = _small_rsa_pem(tmp_path)
    with pytest.raises(InvalidKeyDataError) as err:
        store.import_authentication_rsa("k", data, "alice")  # type: ignore[arg-type]
    assert err.value.error_tag == "invalid-value"
    assert err.value.error_app_tag == "invalid-key-data"
    assert words in err.value.message
    if isinstance(data, str) and "PRIVATE KEY" in data:
        body = data.splitlines()[3]
        assert body not in err.value.message and body not in str(err.value)
    assert store.list_authentication_rsa() == []


@pytest.mark.parametrize("user", ["", "bad user", "1abc", "a/b", "x" * 65, None])
def test_import_invalid_user(store: KeyStore, user: object) -> None:
    with pytest.raises(InvalidUserNameError) as err:
        store.import_authentication_rsa("k", spki(rsa.generate_private_key(65537, 1024)), user)  # type: ignore[arg-type]
    assert err.value.error_tag == "invalid-value"


# --------------------------------------------------------------------------- no private bytes outside keys/


def test_no_private_key_bytes_outside_key_dir(tmp_path: Path) -> None:
    data = tmp_path / "data"
    store = KeyStore(data / "keys")
    store.ensure_default()
    store.generate_rsa("gen", KeyPairType.GENERAL_PURPOSE, 1024)
    store.generate_rsa("use", KeyPairType.USAGE_KEYS, 1024)
    store.generate_rsa("gen", KeyPairType.GENERAL_PURPOSE, 1024, replace=True)
    store.import_authentication_rsa("laptop", spki(rsa.generate_private_key(65537, 1024)), "admin")
    # things a caller might persist or log: the public info objects
    (data / "state.txt").write_text(repr(store.list_rsa()) + repr(store.list_authentication_rsa()))
    keys = [store.ssh_host_key(), store.private_key("gen", KeyUsage.GENERAL)]
    keys += [store.private_key("use", u) for u in (KeyUsage.SIGNATURE, KeyUsage.ENCRYPTION)]
    needles = [n for key in keys for n in private_needles(key)]
    outside = [p for p in data.rglob("*") if p.is_file() and (data / "keys") not in p.parents]
    assert outside
    outside += [p for p in (data / "keys" / "authentication").iterdir()]
    for path in outside:
        content = path.read_bytes()
        assert b"PRIVATE KEY" not in content
        for needle in needles:
            assert needle not in content, path
    # ...while the key files do hold them (the search works)
    inside = b"".join(p.read_bytes() for p in (data / "keys").glob("*.rsa.json"))
    assert any(line in inside for line in private_needles(keys[1])[5:])
