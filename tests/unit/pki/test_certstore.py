"""agent.pki.certstore: trustpoint certificate files and cut-and-paste import, with an OpenSSL CA."""

from __future__ import annotations

import datetime as dt
import os
import stat
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fakeclock import SetClock

import agent.pki.certstore as certstore_module
from agent.pki.certificate import CertificateInfo, InvalidCertificateError, format_router_date, load_certificate
from agent.pki.certstore import (
    CaNotAuthenticatedError,
    CertificateExpiredError,
    CertificateNotYetValidError,
    CertificateStore,
    CertificateStoreCorruptError,
    InvalidTrustpointNameError,
    KeyMismatchError,
    WrongIssuerError,
)
from agent.pki.csr import build_csr, csr_to_pem
from agent.pki.keystore import KeyNotFoundError, KeyPairType, KeyStore, KeyUsage

SEED_CA_SUBJ = "/C=US/ST=CA/L=San Jose/O=Cisco Systems/OU=HFR/CN=Root coax-u10 Certificate Manager"


def openssl(*args: str) -> str:
    return subprocess.run(["openssl", *args], check=True, capture_output=True, text=True).stdout


@dataclass
class OpensslCa:
    """A CA run by the openssl CLI."""

    folder: Path
    name: str

    @property
    def key(self) -> Path:
        return self.folder / f"{self.name}.key"

    @property
    def pem(self) -> Path:
        return self.folder / f"{self.name}.pem"

    @property
    def cert(self) -> x509.Certificate:
        return load_certificate(self.pem.read_text())

    def issue(self, csr_pem: str, serial: int, days: int = 30) -> str:
        csr_path = self.folder / f"req-{serial}.pem"
        csr_path.write_text(csr_pem)
        ext = self.folder / "ext.cnf"
        ext.write_text("keyUsage = critical, digitalSignature, keyEncipherment\n")
        return openssl(
            "x509", "-req", "-in", str(csr_path), "-CA", str(self.pem), "-CAkey", str(self.key),
            "-set_serial", str(serial), "-days", str(days), "-extfile", str(ext),
        )


def make_ca(folder: Path, name: str, subj: str) -> OpensslCa:
    ca = OpensslCa(folder, name)
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca.key), "-out", str(ca.pem),
            "-subj", subj, "-days", "3650", "-set_serial", "1")
    return ca


@pytest.fixture(scope="module")
def cas(tmp_path_factory: pytest.TempPathFactory) -> dict[str, OpensslCa]:
    folder = tmp_path_factory.mktemp("ca")
    return {
        "myca": make_ca(folder, "myca", SEED_CA_SUBJ),
        "other": make_ca(folder, "other", "/O=Elsewhere/CN=Other CA"),
        "twin": make_ca(folder, "twin", SEED_CA_SUBJ),  # same name as myca, another key
        "ra": make_ca(folder, "ra", "/CN=RA one"),
        "ra2": make_ca(folder, "ra2", "/CN=RA two"),
    }


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def clock() -> SetClock:
    # an hour ahead: certificates openssl issues during the test are already valid
    return SetClock(dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))


@pytest.fixture
def keystore(data: Path) -> KeyStore:
    return KeyStore(data / "keys")


@pytest.fixture
def store(data: Path, clock: SetClock) -> CertificateStore:
    return CertificateStore(data / "trustpoints", clock)


def request(keystore: KeyStore, label: str, usage: KeyUsage) -> str:
    return csr_to_pem(build_csr(keystore.private_key(label, usage), fqdn="myrouter.mydomain.com", key_usage=usage))


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --------------------------------------------------------------------------- CA / RA files


def test_set_ca_and_files(store: CertificateStore, data: Path, cas: dict[str, OpensslCa]) -> None:
    ca = cas["myca"].cert
    assert store.ca("myca") is None and store.ra("myca") == [] and store.trustpoints() == []
    store.set_ca("myca", ca)
    assert store.ca("myca") == ca
    assert store.ra("myca") == []
    assert store.trustpoints() == ["myca"]
    folder = data / "trustpoints" / "myca"
    assert sorted(p.name for p in folder.iterdir()) == ["ca.pem"]
    assert mode(data / "trustpoints") == 0o700 and mode(folder) == 0o700 and mode(folder / "ca.pem") == 0o600
    # openssl reads the stored file as is
    subject = openssl("x509", "-in", str(folder / "ca.pem"), "-noout", "-subject")
    assert "CN = Root coax-u10 Certificate Manager" in subject


def test_set_ca_with_ras_and_replace(store: CertificateStore, data: Path, cas: dict[str, OpensslCa]) -> None:
    folder = data / "trustpoints" / "myca"
    ra1, ra2 = cas["ra"].cert, cas["ra2"].cert
    store.set_ca("myca", cas["myca"].cert, [ra1, ra2])
    assert store.ra("myca") == [ra1, ra2]
    assert len(list(folder.glob("ra-*.pem"))) == 2
    assert all(mode(p) == 0o600 for p in folder.iterdir())
    store.set_ca("myca", cas["other"].cert, [ra2])
    assert store.ca("myca") == cas["other"].cert
    assert store.ra("myca") == [ra2]
    assert len(list(folder.glob("ra-*.pem"))) == 1  # the stale RA file is gone
    store.set_ca("myca", cas["other"].cert)
    assert store.ra("myca") == [] and not list(folder.glob("ra-*.pem"))


def test_interrupted_set_ca_shows_old_set(store: CertificateStore, data: Path, cas: dict[str, OpensslCa]) -> None:
    """New RA files written but ca.pem not yet replaced (crash): the old CA+RA set is what is seen."""
    folder = data / "trustpoints" / "myca"
    store.set_ca("myca", cas["myca"].cert, [cas["ra"].cert])
    fp = cas["ra2"].cert.fingerprint(hashes.SHA256())
    (folder / f"ra-{fp.hex()[:16]}.pem").write_bytes(cas["ra2"].cert.public_bytes(serialization.Encoding.PEM))
    assert store.ra("myca") == [cas["ra"].cert]
    assert store.ca("myca") == cas["myca"].cert


def test_readers_during_ca_replacements_see_one_whole_set(store: CertificateStore, cas: dict[str, OpensslCa]) -> None:
    """A reader never waits for a writer, yet sees the CA with its own RA set, never a mix or a missing file.

    The writer replaces the CA and its RA files back and forth (each set_ca removes the other set's RA
    file once the new ca.pem is in place) while readers read ca.pem and the RA files it lists.
    """
    sets = {cas["myca"].cert: [cas["ra"].cert], cas["other"].cert: [cas["ra2"].cert]}
    store.set_ca("myca", cas["myca"].cert, sets[cas["myca"].cert])
    stop = threading.Event()
    reads: list[int] = []
    failures: list[BaseException] = []

    def read() -> None:
        try:
            while not stop.is_set():
                ras = store.ra("myca")
                assert ras in list(sets.values()), ras
                reads.append(len(ras))
        except BaseException as error:  # noqa: BLE001 - reported by the test thread
            failures.append(error)

    readers = [threading.Thread(target=read) for _ in range(3)]
    for reader in readers:
        reader.start()
    try:
        for round_ in range(150):
            ca = cas["other"].cert if round_ % 2 == 0 else cas["myca"].cert
            store.set_ca("myca", ca, sets[ca])
    finally:
        stop.set()
        for reader in readers:
            reader.join()
    assert not failures, failures[0]
    assert len(reads) > 150


def test_a_missing_ra_file_with_its_ca_file_in_place_is_reported(
    store: CertificateStore, data: Path, cas: dict[str, OpensslCa]
) -> None:
    """A reader looks again before it calls a missing RA file damage (the set may have been replaced and put
    back meanwhile), but a file that stays missing is reported, not skipped."""
    store.set_ca("myca", cas["myca"].cert, [cas["ra"].cert])
    (ra_file,) = (data / "trustpoints" / "myca").glob("ra-*.pem")
    ra_file.unlink()
    with pytest.raises(CertificateStoreCorruptError, match=f"RA certificate file {ra_file.name} of myca is missing"):
        store.ra("myca")
    assert store.ca("myca") == cas["myca"].cert


def test_router_certificates_set_get_remove(
    store: CertificateStore, keystore: KeyStore, data: Path, cas: dict[str, OpensslCa]
) -> None:
    keystore.generate_rsa("k", KeyPairType.USAGE_KEYS, 1024)
    sig = load_certificate(cas["myca"].issue(request(keystore, "k", KeyUsage.SIGNATURE), 10))
    enc = load_certificate(cas["myca"].issue(request(keystore, "k", KeyUsage.ENCRYPTION), 11))
    store.set_certificate("tp", KeyUsage.ENCRYPTION, enc)
    store.set_certificate("tp", KeyUsage.SIGNATURE, sig)
    certs = store.certificates("tp")
    assert list(certs) == [KeyUsage.SIGNATURE, KeyUsage.ENCRYPTION]
    assert certs == {KeyUsage.SIGNATURE: sig, KeyUsage.ENCRYPTION: enc}
    folder = data / "trustpoints" / "tp"
    assert sorted(p.name for p in folder.iterdir()) == ["cert-encryption.pem", "cert-signature.pem"]
    assert store.remove_certificate("tp", KeyUsage.SIGNATURE) is True
    assert store.remove_certificate("tp", KeyUsage.SIGNATURE) is False
    assert store.certificates("tp") == {KeyUsage.ENCRYPTION: enc}
    assert store.certificates("unknown") == {}


def test_clear_one_and_all(store: CertificateStore, data: Path, cas: dict[str, OpensslCa]) -> None:
    ca = cas["myca"].cert
    for tp in ("a", "b"):
        store.set_ca(tp, ca, [cas["ra"].cert])
        store.set_certificate(tp, KeyUsage.GENERAL, cas["other"].cert)
    (store.trustpoint_dir("a") / "enrollment.json").write_text("{}")  # someone else's state
    store.clear("a")
    assert store.ca("a") is None and store.ra("a") == [] and store.certificates("a") == {}
    assert sorted(p.name for p in (data / "trustpoints" / "a").iterdir()) == ["enrollment.json"]
    assert store.ca("b") == ca and store.certificates("b")
    assert store.trustpoints() == ["a", "b"]
    store.clear()
    assert store.ca("b") is None and store.certificates("b") == {} and store.ra("b") == []
    store.clear("never-configured")  # nothing to clear: no error
    store.clear()


def test_remove_trustpoint(store: CertificateStore, data: Path, cas: dict[str, OpensslCa]) -> None:
    store.set_ca("gone", cas["myca"].cert)
    (store.trustpoint_dir("gone") / "enrollment.json").write_text("{}")
    store.set_ca("kept", cas["myca"].cert)
    store.remove_trustpoint("gone")
    assert store.trustpoints() == ["kept"]
    assert sorted(p.name for p in (data / "trustpoints").iterdir()) == ["kept"]
    store.remove_trustpoint("gone")  # absent: no error


def test_the_ca_is_read_once_and_read_again_after_each_change(
    store: CertificateStore, cas: dict[str, OpensslCa], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A verification asks every configured trustpoint's CA: 10,000 ca.pem files that are not there took 80 ms."""
    reads: list[Path] = []
    real_read = CertificateStore._read

    def counted(path: Path) -> bytes | None:
        reads.append(path)
        return real_read(path)

    monkeypatch.setattr(CertificateStore, "_read", staticmethod(counted))
    ca, other = cas["myca"].cert, cas["other"].cert
    assert store.ca("t") is None and store.ca("t") is None
    assert len(reads) == 1  # "not authenticated" is remembered too
    store.set_ca("t", ca)
    assert store.ca("t") == ca and store.ca("t") == ca
    store.set_ca("t", other)
    assert store.ca("t") == other
    store.clear("t")
    assert store.ca("t") is None
    store.set_ca("t", ca)
    store.remove_trustpoint("t")
    assert store.ca("t") is None
    assert len(reads) == 5  # once after each change


def test_a_ca_read_that_raced_with_a_change_is_not_kept(
    store: CertificateStore, cas: dict[str, OpensslCa], monkeypatch: pytest.MonkeyPatch
) -> None:
    ca, other = cas["myca"].cert, cas["other"].cert
    store.set_ca("t", ca)
    real_read = CertificateStore._read
    raced: list[bool] = []

    def read_then_change(path: Path) -> bytes | None:
        data = real_read(path)  # the old CA...
        if not raced:
            raced.append(True)
            store.set_ca("t", other)  # ...replaced before the reader keeps it
        return data

    monkeypatch.setattr(CertificateStore, "_read", staticmethod(read_then_change))
    assert store.ca("t") == ca  # what was on disk when it read
    assert store.ca("t") == other  # not the stale one kept


def test_a_ca_removed_by_a_clear_that_then_failed_is_not_remembered(
    store: CertificateStore, data: Path, cas: dict[str, OpensslCa], monkeypatch: pytest.MonkeyPatch
) -> None:
    store.set_ca("t", cas["myca"].cert)
    assert store.ca("t") == cas["myca"].cert
    real_fsync_dir = certstore_module.fsync_dir
    calls: list[object] = []

    def fails_after_ca_unlink(folder: object) -> None:
        calls.append(folder)
        if len(calls) == 2:  # clear(): the sync after ca.pem is unlinked
            raise OSError("fsync failed")
        real_fsync_dir(folder)

    monkeypatch.setattr(certstore_module, "fsync_dir", fails_after_ca_unlink)
    with pytest.raises(OSError, match="fsync failed"):
        store.clear("t")
    assert not (data / "trustpoints" / "t" / "ca.pem").exists()
    assert store.ca("t") is None


def test_leftover_removed_directory_is_cleaned(data: Path, clock: SetClock) -> None:
    CertificateStore(data / "trustpoints", clock)
    leftover = data / "trustpoints" / ".removed-x-0011aabb"
    leftover.mkdir()
    (leftover / "ca.pem").write_text("x")
    store = CertificateStore(data / "trustpoints", clock)
    assert not leftover.exists()
    assert store.trustpoints() == []


def test_trustpoint_dir(store: CertificateStore, data: Path) -> None:
    assert store.trustpoint_dir("x", create=False) == data / "trustpoints" / "x"
    assert not (data / "trustpoints" / "x").exists()
    path = store.trustpoint_dir("x")
    assert path.is_dir() and mode(path) == 0o700


@pytest.mark.parametrize("name", ["", "..", "../x", "a/b", ".hidden", "-x", "x" * 65, "a b", None])
def test_invalid_trustpoint_names(store: CertificateStore, keystore: KeyStore, data: Path, cas: dict[str, OpensslCa],
                                  name: object) -> None:
    ca = cas["myca"].cert
    calls = [
        lambda: store.set_ca(name, ca),  # type: ignore[arg-type]
        lambda: store.ca(name),  # type: ignore[arg-type]
        lambda: store.ra(name),  # type: ignore[arg-type]
        lambda: store.set_certificate(name, KeyUsage.GENERAL, ca),  # type: ignore[arg-type]
        lambda: store.certificates(name),  # type: ignore[arg-type]
        lambda: store.remove_certificate(name, KeyUsage.GENERAL),  # type: ignore[arg-type]
        lambda: store.remove_trustpoint(name),  # type: ignore[arg-type]
        lambda: store.trustpoint_dir(name),  # type: ignore[arg-type]
        lambda: store.import_certificate(name, "x", keystore, "k"),  # type: ignore[arg-type]
    ]
    if name is not None:
        calls.append(lambda: store.clear(name))  # type: ignore[arg-type]
    for call in calls:
        with pytest.raises(InvalidTrustpointNameError) as err:
            call()
        assert err.value.error_tag == "invalid-value"
    assert sorted(p.name for p in (data / "trustpoints").iterdir()) == []
    assert not (data / "x").exists()


def test_corrupt_file(store: CertificateStore, data: Path) -> None:
    store.trustpoint_dir("tp")
    (data / "trustpoints" / "tp" / "ca.pem").write_text("garbage")
    with pytest.raises(CertificateStoreCorruptError) as err:
        store.ca("tp")
    assert err.value.error_tag == "operation-failed"


def test_restart_sees_everything(
    store: CertificateStore, keystore: KeyStore, data: Path, clock: SetClock, cas: dict[str, OpensslCa]
) -> None:
    keystore.generate_rsa("mykey", KeyPairType.GENERAL_PURPOSE, 1024)
    store.set_ca("myca", cas["myca"].cert, [cas["ra"].cert])
    store.import_certificate("myca", cas["myca"].issue(request(keystore, "mykey", KeyUsage.GENERAL), 0x6E),
                             keystore, "mykey")
    again = CertificateStore(data / "trustpoints", clock)
    assert again.trustpoints() == ["myca"]
    assert again.ca("myca") == cas["myca"].cert
    assert again.ra("myca") == [cas["ra"].cert]
    assert CertificateInfo.from_x509(again.certificates("myca")[KeyUsage.GENERAL]).serial_number == "6E"


# --------------------------------------------------------------------------- cut-and-paste import


def test_import_general_purpose(store: CertificateStore, keystore: KeyStore, data: Path,
                                cas: dict[str, OpensslCa]) -> None:
    keystore.generate_rsa("mykey", KeyPairType.GENERAL_PURPOSE, 1024)
    store.set_ca("myca", cas["myca"].cert)
    pem = cas["myca"].issue(request(keystore, "mykey", KeyUsage.GENERAL), 0x6E)
    assert store.import_certificate("myca", pem, keystore, "mykey") is KeyUsage.GENERAL
    cert = store.certificates("myca")[KeyUsage.GENERAL]
    assert cert == load_certificate(pem)
    info = CertificateInfo.from_x509(cert)
    assert info.subject == "unstructuredName=myrouter.mydomain.com"
    assert info.issuer == "cn=Root coax-u10 Certificate Manager,ou=HFR,o=Cisco Systems,l=San Jose,st=CA,c=US"
    folder = data / "trustpoints" / "myca"
    assert sorted(p.name for p in folder.iterdir()) == ["ca.pem", "cert-general.pem"]
    assert mode(folder / "cert-general.pem") == 0o600
    # importing again (or a renewed certificate) replaces it
    pem2 = cas["myca"].issue(request(keystore, "mykey", KeyUsage.GENERAL), 0x6F)
    assert store.import_certificate("myca", pem2.encode(), keystore, "mykey") is KeyUsage.GENERAL
    assert store.certificates("myca")[KeyUsage.GENERAL].serial_number == 0x6F


@pytest.mark.parametrize("order", [(KeyUsage.SIGNATURE, KeyUsage.ENCRYPTION), (KeyUsage.ENCRYPTION, KeyUsage.SIGNATURE)])
def test_import_usage_keys_either_order(
    store: CertificateStore, keystore: KeyStore, cas: dict[str, OpensslCa], order: tuple[KeyUsage, KeyUsage]
) -> None:
    keystore.generate_rsa("usage", KeyPairType.USAGE_KEYS, 1024)
    store.set_ca("myca", cas["myca"].cert)
    pems = {u: cas["myca"].issue(request(keystore, "usage", u), 20 + i) for i, u in enumerate(KeyUsage) if u in order}
    first, second = order
    assert store.import_certificate("myca", pems[first], keystore, "usage") is first
    assert list(store.certificates("myca")) == [first]
    assert store.import_certificate("myca", pems[second], keystore, "usage") is second
    certs = store.certificates("myca")
    assert set(certs) == {KeyUsage.SIGNATURE, KeyUsage.ENCRYPTION}
    for usage, cert in certs.items():  # each certificate went to the usage whose key it certifies
        assert cert.public_key() == keystore.public_key("usage", usage)


def test_import_picks_router_certificate_from_pasted_chain(
    store: CertificateStore, keystore: KeyStore, cas: dict[str, OpensslCa]
) -> None:
    keystore.generate_rsa("mykey", KeyPairType.GENERAL_PURPOSE, 1024)
    store.set_ca("myca", cas["myca"].cert)
    pem = cas["myca"].issue(request(keystore, "mykey", KeyUsage.GENERAL), 0x70)
    chain = cas["myca"].pem.read_text() + pem
    assert store.import_certificate("myca", chain, keystore, "mykey") is KeyUsage.GENERAL
    assert store.certificates("myca")[KeyUsage.GENERAL] == load_certificate(pem)
    with pytest.raises(KeyMismatchError):
        store.import_certificate("myca", cas["myca"].pem.read_text() * 2, keystore, "mykey")


def test_import_after_regenerate_drops_other_type_certificates(
    store: CertificateStore, keystore: KeyStore, cas: dict[str, OpensslCa]
) -> None:
    keystore.generate_rsa("k", KeyPairType.USAGE_KEYS, 1024)
    store.set_ca("myca", cas["myca"].cert)
    for i, usage in enumerate((KeyUsage.SIGNATURE, KeyUsage.ENCRYPTION)):
        store.import_certificate("myca", cas["myca"].issue(request(keystore, "k", usage), 30 + i), keystore, "k")
    keystore.generate_rsa("k", KeyPairType.GENERAL_PURPOSE, 1024, replace=True)
    pem = cas["myca"].issue(request(keystore, "k", KeyUsage.GENERAL), 40)
    assert store.import_certificate("myca", pem, keystore, "k") is KeyUsage.GENERAL
    assert list(store.certificates("myca")) == [KeyUsage.GENERAL]


def _nothing_installed(store: CertificateStore, tp: str = "myca") -> bool:
    return store.certificates(tp) == {}


def test_refuse_not_a_certificate(store: CertificateStore, keystore: KeyStore, cas: dict[str, OpensslCa]) -> None:
    keystore.generate_rsa("mykey", KeyPairType.GENERAL_PURPOSE, 1024)
    store.set_ca("myca", cas["myca"].cert)
    for junk in ("hello", request(keystore, "mykey", KeyUsage.GENERAL), b"\x00\x01"):
        with pytest.raises(InvalidCertificateError) as err:
            store.import_certificate("myca", junk, keystore, "mykey")
        assert err.value.error_tag == "invalid-value"
    assert _nothing_installed(store)


def test_refuse_without_ca_certificate(store: CertificateStore, keystore: KeyStore,
                                       cas: dict[str, OpensslCa]) -> None:
    keystore.generate_rsa("mykey", KeyPairType.GENERAL_PURPOSE, 1024)
    pem = cas["myca"].issue(request(keystore, "mykey", KeyUsage.GENERAL), 50)
    with pytest.raises(CaNotAuthenticatedError) as err:
        store.import_certificate("myca", pem, keystore, "mykey")
    assert err.value.error_tag == "operation-failed"
    assert err.value.error_app_tag == "ca-not-authenticated"
    assert "authenticate" in err.value.message and "myca" in err.value.message
    assert _nothing_installed(store)


def test_refuse_issued_by_another_ca(store: CertificateStore, keystore: KeyStore, cas: dict[str, OpensslCa]) -> None:
    keystore.generate_rsa("mykey", KeyPairType.GENERAL_PURPOSE, 1024)
    store.set_ca("myca", cas["myca"].cert)
    pem = cas["other"].issue(request(keystore, "mykey", KeyUsage.GENERAL), 51)
    with pytest.raises(WrongIssuerError) as err:
        store.import_certificate("myca", pem, keystore, "mykey")
    assert err.value.error_tag == "invalid-value"
    assert "issued by cn=Other CA,o=Elsewhere" in err.value.message
    assert _nothing_installed(store)


def test_refuse_same_issuer_name_other_key(store: CertificateStore, keystore: KeyStore,
                                           cas: dict[str, OpensslCa]) -> None:
    keystore.generate_rsa("mykey", KeyPairType.GENERAL_PURPOSE, 1024)
    store.set_ca("myca", cas["myca"].cert)
    pem = cas["twin"].issue(request(keystore, "mykey", KeyUsage.GENERAL), 52)
    with pytest.raises(WrongIssuerError) as err:
        store.import_certificate("myca", pem, keystore, "mykey")
    assert "signature does not verify" in err.value.message
    assert _nothing_installed(store)


def test_refuse_key_of_no_pair(store: CertificateStore, keystore: KeyStore, cas: dict[str, OpensslCa]) -> None:
    keystore.generate_rsa("mykey", KeyPairType.GENERAL_PURPOSE, 1024)
    keystore.generate_rsa("otherkey", KeyPairType.USAGE_KEYS, 1024)
    store.set_ca("myca", cas["myca"].cert)
    pem = cas["myca"].issue(request(keystore, "otherkey", KeyUsage.SIGNATURE), 53)
    with pytest.raises(KeyMismatchError) as err:
        store.import_certificate("myca", pem, keystore, "mykey")
    assert err.value.error_tag == "invalid-value"
    assert "matches none of mykey's key pairs" in err.value.message
    assert _nothing_installed(store)
    # a stranger's key too
    stranger = rsa.generate_private_key(65537, 1024)
    pem = cas["myca"].issue(csr_to_pem(build_csr(stranger, fqdn="x.example.com")), 54)
    with pytest.raises(KeyMismatchError):
        store.import_certificate("myca", pem, keystore, "mykey")


def test_refuse_unknown_key_label(store: CertificateStore, keystore: KeyStore, cas: dict[str, OpensslCa]) -> None:
    keystore.generate_rsa("mykey", KeyPairType.GENERAL_PURPOSE, 1024)
    store.set_ca("myca", cas["myca"].cert)
    pem = cas["myca"].issue(request(keystore, "mykey", KeyUsage.GENERAL), 55)
    with pytest.raises(KeyNotFoundError) as err:
        store.import_certificate("myca", pem, keystore, "nokey")
    assert err.value.error_tag == "data-missing"
    assert _nothing_installed(store)


def test_refuse_expired_and_not_yet_valid(
    store: CertificateStore, keystore: KeyStore, clock: SetClock, cas: dict[str, OpensslCa]
) -> None:
    keystore.generate_rsa("mykey", KeyPairType.GENERAL_PURPOSE, 1024)
    store.set_ca("myca", cas["myca"].cert)
    pem = cas["myca"].issue(request(keystore, "mykey", KeyUsage.GENERAL), 56, days=7)
    cert = load_certificate(pem)
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc

    clock.current = end + dt.timedelta(seconds=1)
    with pytest.raises(CertificateExpiredError) as expired:
        store.import_certificate("myca", pem, keystore, "mykey")
    assert expired.value.error_tag == "invalid-value"
    assert "expired" in expired.value.message
    assert format_router_date(start) in expired.value.message and format_router_date(end) in expired.value.message

    clock.current = start - dt.timedelta(seconds=1)
    with pytest.raises(CertificateNotYetValidError) as early:
        store.import_certificate("myca", pem, keystore, "mykey")
    assert "not yet valid" in early.value.message and format_router_date(start) in early.value.message
    assert _nothing_installed(store)

    clock.current = end  # the last valid instant
    assert store.import_certificate("myca", pem, keystore, "mykey") is KeyUsage.GENERAL


def test_refusal_errors_are_distinct_classes() -> None:
    classes = {CaNotAuthenticatedError, WrongIssuerError, KeyMismatchError, CertificateExpiredError,
               CertificateNotYetValidError, InvalidCertificateError}
    assert len({c.error_app_tag for c in classes}) == len(classes)


# --------------------------------------------------------------------------- private keys stay in keys/


def test_no_private_key_bytes_outside_key_dir(
    store: CertificateStore, keystore: KeyStore, data: Path, cas: dict[str, OpensslCa]
) -> None:
    keystore.ensure_default()
    keystore.generate_rsa("mykey", KeyPairType.GENERAL_PURPOSE, 1024)
    keystore.generate_rsa("usage", KeyPairType.USAGE_KEYS, 1024)
    store.set_ca("myca", cas["myca"].cert, [cas["ra"].cert])
    store.import_certificate("myca", cas["myca"].issue(request(keystore, "mykey", KeyUsage.GENERAL), 60),
                             keystore, "mykey")
    store.set_ca("usage-tp", cas["myca"].cert)
    for i, usage in enumerate((KeyUsage.SIGNATURE, KeyUsage.ENCRYPTION)):
        pem = cas["myca"].issue(request(keystore, "usage", usage), 61 + i)
        store.import_certificate("usage-tp", pem, keystore, "usage")
    keys = [keystore.ssh_host_key(), keystore.private_key("mykey", KeyUsage.GENERAL)]
    keys += [keystore.private_key("usage", u) for u in (KeyUsage.SIGNATURE, KeyUsage.ENCRYPTION)]
    needles: list[bytes] = []
    for key in keys:
        der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption())
        key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                    serialization.NoEncryption())
        d = key.private_numbers().d
        needles += [der, d.to_bytes((d.bit_length() + 7) // 8, "big"), key_pem.splitlines()[3]]
    keydir = data / "keys"
    outside = [p for p in data.rglob("*") if p.is_file() and keydir not in p.parents]
    assert len(outside) >= 6
    for path in outside:
        content = path.read_bytes()
        assert b"PRIVATE KEY" not in content, path
        for needle in needles:
            assert needle not in content, path
    assert all(oct(mode(p)) == oct(0o600) for p in outside)
    assert all(mode(p) == 0o700 for p in data.rglob("*") if p.is_dir())
    assert os.listdir(keydir)  # the keys are there, and only there
