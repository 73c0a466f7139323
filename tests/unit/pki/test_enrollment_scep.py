"""agent.pki.enrollment over SCEP, against the real lab CA served on 127.0.0.1 (no mocks)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import logging
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID
from fakeclock import SetClock

from agent.labca import LabCa, LabCaServer
from agent.labca import RequestState as LabState
from agent.pki.certstore import CaNotAuthenticatedError, CertificateStore, InvalidTrustpointNameError
from agent.pki.csr import InvalidChallengePasswordError, InvalidSubjectNameError, build_csr
from agent.pki.enrollment import Pki
from agent.pki.keystore import DEFAULT_LABEL, KeyPairType, KeyStore, KeyUsage
from agent.pki.scep import ScepClient, ScepError
from agent.pki.scep.capabilities import CaCaps, CapabilitiesCache, Capability
from agent.pki.trustpoint import (
    CaAlreadyAuthenticatedError,
    CaUnreachableError,
    CertificateStatus,
    EnrollmentRequest,
    EnrollmentStatus,
    FingerprintMismatchError,
    NoEnrollmentInProgressError,
    NoEnrollmentMethodError,
    RaUsage,
    RequestState,
    TrustpointConfig,
)

CHALLENGE = "Chall3nge-Only-Once-7f3a"
FQDN = "myrouter.mydomain.com"
WAIT = 15.0


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, tuple[LabCa, LabCaServer]]]:
    """Three lab CAs for the module: issuing at once, manual approval, and with an RA."""
    root = tmp_path_factory.mktemp("labca")
    cas = {
        "auto": LabCa(root / "auto", challenge=CHALLENGE),
        "manual": LabCa(root / "manual", challenge=CHALLENGE, manual_approval=True),
        "ra": LabCa(root / "ra", challenge=CHALLENGE, ra=True),
    }
    servers = {name: LabCaServer(ca) for name, ca in cas.items()}
    for server in servers.values():
        server.start()
    yield {name: (cas[name], servers[name]) for name in cas}
    for server in servers.values():
        server.close()


class Finished:
    """Listener that collects requests reaching a final state; tests await them (no sleeps)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.records: list[EnrollmentRequest] = []

    def __call__(self, record: EnrollmentRequest) -> None:
        with self._cond:
            self.records.append(record)
            self._cond.notify_all()

    def wait(self, count: int = 1, timeout: float = WAIT) -> list[EnrollmentRequest]:
        with self._cond:
            assert self._cond.wait_for(lambda: len(self.records) >= count, timeout), (
                f"only {len(self.records)} of {count} requests finished within {timeout} s"
            )
            return list(self.records)


@dataclass
class Env:
    root: Path
    keystore: KeyStore
    certstore: CertificateStore
    pki: Pki
    finished: Finished


EnvFactory = Callable[..., Env]


@pytest.fixture
def make_env(tmp_path: Path) -> Iterator[EnvFactory]:
    made: list[Env] = []

    def make(name: str = "data", unit: float = 0.05) -> Env:
        root = tmp_path / name
        keystore = KeyStore(root / "keys")
        certstore = CertificateStore(root / "trustpoints")
        pki = Pki(root, keystore, certstore, retry_unit_seconds=unit, http_timeout=10.0)
        finished = Finished()
        pki.add_listener(finished)
        env = Env(root, keystore, certstore, pki, finished)
        made.append(env)
        return env

    yield make
    for env in made:
        env.pki.close()


@pytest.fixture
def env(make_env: EnvFactory) -> Env:
    return make_env()


def tp_for(server: LabCaServer, name: str = "myca", **options: object) -> TrustpointConfig:
    return TrustpointConfig(name=name, enrollment_url=server.url, **options)  # type: ignore[arg-type]


def authenticated(
    env: Env,
    server: LabCaServer,
    label: str = "mykey",
    key_type: KeyPairType = KeyPairType.GENERAL_PURPOSE,
    **options: object,
) -> TrustpointConfig:
    env.keystore.generate_rsa(label, key_type, modulus=1024)
    tp = tp_for(server, rsakeypair=label, **options)
    env.pki.configure([tp])
    assert env.pki.authenticate(tp, accept=True).installed
    return tp


def openssl_verify(ca: x509.Certificate, cert: x509.Certificate, folder: Path) -> None:
    ca_path, cert_path = folder / "verify-ca.pem", folder / "verify-cert.pem"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    result = subprocess.run(
        ["openssl", "verify", "-CAfile", str(ca_path), str(cert_path)], capture_output=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def colon_hex(hex_upper: str) -> str:
    return ":".join(hex_upper[i : i + 2] for i in range(0, len(hex_upper), 2)).lower()


# --------------------------------------------------------------------------- authenticate


def test_authenticate_shows_without_installing_then_accept(env: Env, lab) -> None:
    ca, server = lab["auto"]
    tp = tp_for(server)
    shown = env.pki.authenticate(tp)
    assert not shown.installed
    assert shown.ca.subject == "cn=ca-agent Lab CA,o=ca-agent"
    assert shown.ca.serial_number and shown.ca.is_self_signed and shown.ra == ()
    assert shown.ca.fingerprint_md5 == hashlib.md5(ca.ca_certificate.public_bytes(serialization.Encoding.DER)).hexdigest().upper()
    assert "not installed" in shown.message
    assert env.certstore.ca("myca") is None and env.pki.state("myca").ca is None

    accepted = env.pki.authenticate(tp, accept=True)
    assert accepted.installed and accepted.ca == shown.ca
    assert env.certstore.ca("myca") == ca.ca_certificate
    state = env.pki.state("myca")
    assert state.ca is not None and state.ca.valid_to == ca.ca_certificate.not_valid_after_utc
    assert env.pki.authenticate(tp, accept=True).installed  # again with the same CA: harmless


def test_state_of_a_trustpoint_without_directory_is_that_of_an_empty_one(env: Env, lab) -> None:
    _, server = lab["auto"]
    env.pki.configure([tp_for(server)])
    assert not env.certstore.has_directory("myca")
    without = env.pki.state("myca")  # answered from one stat
    env.certstore.trustpoint_dir("myca")  # an empty directory: every file looked for and not found
    assert env.certstore.has_directory("myca")
    assert env.pki.state("myca") == without
    assert without.ca is None and without.ra == () and without.certificates == {} and without.requests == {}
    with pytest.raises(InvalidTrustpointNameError):
        env.pki.state("../keys")


@pytest.mark.parametrize("kind", ["md5", "sha1", "sha256"])
def test_authenticate_with_out_of_band_fingerprint(env: Env, lab, kind: str) -> None:
    ca, server = lab["auto"]
    digest = hashlib.new(kind, ca.ca_certificate.public_bytes(serialization.Encoding.DER)).hexdigest().upper()
    given = colon_hex(digest) if kind != "sha1" else " ".join(digest[i : i + 4] for i in range(0, 40, 4))
    result = env.pki.authenticate(tp_for(server), fingerprint=given)
    assert result.installed
    assert env.certstore.ca("myca") == ca.ca_certificate


def test_authenticate_fingerprint_mismatch_installs_nothing(env: Env, lab) -> None:
    ca, server = lab["auto"]
    with pytest.raises(FingerprintMismatchError) as info:
        env.pki.authenticate(tp_for(server), fingerprint="00" * 32)
    assert info.value.error_tag == "invalid-value"
    sha256 = ca.ca_certificate.fingerprint(hashes.SHA256()).hex().upper()
    assert info.value.message.startswith("fingerprint mismatch: the CA certificate's fingerprint is ")
    assert " ".join(sha256[i : i + 2] for i in range(0, 64, 2)) in info.value.message
    assert env.certstore.ca("myca") is None


def test_authenticate_errors_name_the_problem(env: Env, lab) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/scep"
    with pytest.raises(CaUnreachableError) as unreachable:
        env.pki.authenticate(TrustpointConfig("myca", enrollment_url=url), accept=True)
    assert url in unreachable.value.message and "myca" in unreachable.value.message
    with pytest.raises(NoEnrollmentMethodError) as none:
        env.pki.authenticate(TrustpointConfig("bare"), accept=True)
    assert "enrollment url" in none.value.message and "enrollment terminal" in none.value.message
    _, server = lab["auto"]
    other, other_server = lab["manual"]
    env.pki.authenticate(tp_for(server), accept=True)
    with pytest.raises(CaAlreadyAuthenticatedError) as exists:  # another CA: clear first
        env.pki.authenticate(tp_for(other_server), accept=True)
    assert exists.value.error_tag == "data-exists" and "ca-clear-certificates myca" in exists.value.message


def test_enroll_requires_authenticated_ca(env: Env, lab) -> None:
    _, server = lab["auto"]
    env.keystore.generate_rsa("mykey", modulus=1024)
    with pytest.raises(CaNotAuthenticatedError) as info:
        env.pki.enroll(tp_for(server, rsakeypair="mykey"), CHALLENGE, fqdn=FQDN)
    assert info.value.message == "CA not authenticated: run ca-authenticate myca first"


# --------------------------------------------------------------------------- enroll: issued at once


def test_enroll_general_keys_default_label_and_subject(env: Env, lab, tmp_path: Path) -> None:
    ca, server = lab["auto"]
    env.keystore.ensure_default()
    tp = tp_for(server)  # no rsakeypair: the default key pair
    env.pki.configure([tp])
    env.pki.authenticate(tp, accept=True)
    outcome = env.pki.enroll(tp, CHALLENGE, fqdn=FQDN)
    assert outcome.status is EnrollmentStatus.ISSUED, outcome.message
    assert list(outcome.requests) == [KeyUsage.GENERAL]
    request = outcome.requests[KeyUsage.GENERAL]
    assert request.serial_number and request.serial_number in outcome.message
    assert request.transaction_id == outcome.transaction_id
    lab_record = next(r for r in ca.requests() if r.transaction_id == request.transaction_id)
    assert request.fingerprint == hashlib.md5(lab_record.csr.public_bytes(serialization.Encoding.DER)).hexdigest().upper()

    cert = env.certstore.certificates("myca")[KeyUsage.GENERAL]
    assert cert.subject == x509.Name([x509.NameAttribute(NameOID.UNSTRUCTURED_NAME, FQDN)])
    assert cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) == env.keystore.get_rsa(DEFAULT_LABEL).public_keys[KeyUsage.GENERAL]
    cert.verify_directly_issued_by(ca.ca_certificate)
    openssl_verify(ca.ca_certificate, cert, tmp_path)

    state = env.pki.state("myca")
    entry = state.certificates[KeyUsage.GENERAL]
    assert entry.status is CertificateStatus.AVAILABLE and entry.info is not None
    assert entry.info.subject == f"unstructuredName={FQDN}"
    assert entry.info.serial_number == request.serial_number
    assert state.requests[KeyUsage.GENERAL].state is RequestState.ISSUED
    assert state.requests[KeyUsage.GENERAL].attempts == 1


def test_bad_request_input_is_refused_before_the_ca_is_asked(env: Env, lab) -> None:
    """The caller signs the CSRs, but their input is refused first; the trustpoint is not left busy."""
    ca, server = lab["auto"]
    tp = authenticated(env, server)
    asked = len(ca.requests())
    with pytest.raises(InvalidChallengePasswordError):
        env.pki.enroll(tp, "line\nbreak", fqdn=FQDN)
    with pytest.raises(InvalidSubjectNameError):
        env.pki.enroll(tp, CHALLENGE, fqdn="not a host name")
    named = TrustpointConfig(name="myca", enrollment_url=server.url, rsakeypair="mykey", subject_name="CN=r1,O=Example")
    env.pki.configure([named])
    assert len(ca.requests()) == asked
    outcome = env.pki.enroll(named, CHALLENGE, fqdn="")  # a subject of its own: no FQDN needed
    assert outcome.status is EnrollmentStatus.ISSUED, outcome.message
    assert env.certstore.certificates("myca")[KeyUsage.GENERAL].subject.rfc4514_string() == "CN=r1,O=Example"


def test_enroll_usage_keys_two_certificates_with_their_key_usages(env: Env, lab, tmp_path: Path) -> None:
    ca, server = lab["auto"]
    tp = authenticated(env, server, "usage", KeyPairType.USAGE_KEYS, subject_name="CN=r1-usage,O=Example")
    outcome = env.pki.enroll(tp, CHALLENGE, fqdn=FQDN)
    assert outcome.status is EnrollmentStatus.ISSUED, outcome.message
    assert list(outcome.requests) == [KeyUsage.SIGNATURE, KeyUsage.ENCRYPTION]
    certs = env.certstore.certificates("myca")
    assert set(certs) == {KeyUsage.SIGNATURE, KeyUsage.ENCRYPTION}
    sig = certs[KeyUsage.SIGNATURE].extensions.get_extension_for_class(x509.KeyUsage).value
    enc = certs[KeyUsage.ENCRYPTION].extensions.get_extension_for_class(x509.KeyUsage).value
    assert sig.digital_signature and not sig.key_encipherment
    assert enc.key_encipherment and not enc.digital_signature
    assert certs[KeyUsage.SIGNATURE].subject.rfc4514_string() == "CN=r1-usage,O=Example"
    for cert in certs.values():
        openssl_verify(ca.ca_certificate, cert, tmp_path)
    state = env.pki.state("myca")
    assert {u: c.status for u, c in state.certificates.items()} == {
        KeyUsage.SIGNATURE: CertificateStatus.AVAILABLE,
        KeyUsage.ENCRYPTION: CertificateStatus.AVAILABLE,
    }
    assert outcome.requests[KeyUsage.SIGNATURE].transaction_id != outcome.requests[KeyUsage.ENCRYPTION].transaction_id


def test_enroll_through_an_ra(env: Env, lab) -> None:
    ca, server = lab["ra"]
    tp = authenticated(env, server)
    state = env.pki.state("myca")
    assert len(state.ra) == 1
    assert state.ra[0].usages == (RaUsage.SIGNING, RaUsage.ENCRYPTION)
    assert state.ra[0].info.subject == "cn=ca-agent Lab RA,o=ca-agent"
    assert state.ca is not None and state.ca.subject == "cn=ca-agent Lab CA,o=ca-agent"
    outcome = env.pki.enroll(tp, CHALLENGE, fqdn=FQDN)
    assert outcome.status is EnrollmentStatus.ISSUED, outcome.message
    env.certstore.certificates("myca")[KeyUsage.GENERAL].verify_directly_issued_by(ca.ca_certificate)


def test_wrong_challenge_is_rejected_with_the_cas_reason(env: Env, lab) -> None:
    _, server = lab["auto"]
    tp = authenticated(env, server)
    outcome = env.pki.enroll(tp, "not-the-password", fqdn=FQDN)
    assert outcome.status is EnrollmentStatus.FAILED
    request = outcome.requests[KeyUsage.GENERAL]
    assert request.state is RequestState.REJECTED
    assert "badRequest" in request.message and "wrong or missing challenge password" in request.message
    assert "badRequest" in outcome.message
    record = env.pki.state("myca").requests[KeyUsage.GENERAL]
    assert record.state is RequestState.REJECTED and "challenge password" in (record.last_error or "")
    assert KeyUsage.GENERAL not in env.pki.state("myca").certificates
    assert [r.state for r in env.finished.records] == [RequestState.REJECTED]


# --------------------------------------------------------------------------- pending and polling


def test_pending_then_approved_is_polled_and_installed(env: Env, lab) -> None:
    ca, server = lab["manual"]
    tp = authenticated(env, server, retry_count=100)
    outcome = env.pki.enroll(tp, CHALLENGE, fqdn=FQDN)
    assert outcome.status is EnrollmentStatus.PENDING, outcome.message
    txid = outcome.transaction_id
    assert txid and txid in outcome.message
    state = env.pki.state("myca")
    assert state.certificates[KeyUsage.GENERAL].status is CertificateStatus.PENDING
    assert state.certificates[KeyUsage.GENERAL].info is None
    request = state.requests[KeyUsage.GENERAL]
    assert request.state is RequestState.PENDING and request.transaction_id == txid
    assert request.next_poll is not None and request.attempts >= 1

    ca.approve(txid)
    done = env.finished.wait()[0]
    assert done.state is RequestState.ISSUED and done.transaction_id == txid and done.attempts >= 2
    state = env.pki.state("myca")
    assert state.certificates[KeyUsage.GENERAL].status is CertificateStatus.AVAILABLE
    assert state.requests[KeyUsage.GENERAL].next_poll is None
    assert state.certificates[KeyUsage.GENERAL].info.serial_number == done.serial_number  # type: ignore[union-attr]


def test_pending_survives_a_restart(make_env: EnvFactory, lab) -> None:
    ca, server = lab["manual"]
    first = make_env("data", unit=0.05)
    tp = authenticated(first, server, retry_count=100)
    txid = first.pki.enroll(tp, CHALLENGE, fqdn=FQDN).transaction_id
    assert txid is not None
    first.pki.close()
    ca.approve(txid)
    assert KeyUsage.GENERAL not in first.certstore.certificates("myca")

    second = make_env("data", unit=0.05)  # same directories, new objects: an agent restart
    assert second.pki.state("myca").requests[KeyUsage.GENERAL].state is RequestState.PENDING
    second.pki.configure([tp])
    done = second.finished.wait()[0]
    assert done.state is RequestState.ISSUED and done.transaction_id == txid
    assert second.pki.state("myca").certificates[KeyUsage.GENERAL].status is CertificateStatus.AVAILABLE


def test_retry_count_exhausted_times_out(env: Env, lab) -> None:
    _, server = lab["manual"]
    tp = authenticated(env, server, retry_count=2)
    assert env.pki.enroll(tp, CHALLENGE, fqdn=FQDN).status is EnrollmentStatus.PENDING
    done = env.finished.wait()[0]
    assert done.state is RequestState.TIMED_OUT
    # the CA did answer (PENDING) every time: the reason says so
    assert done.last_error == (
        "the CA still held the request pending after 2 polls (the retry count): "
        "have the CA administrator approve it, then enroll again"
    )
    assert done.attempts == 3 and done.next_poll is None
    assert KeyUsage.GENERAL not in env.pki.state("myca").certificates


def test_rejected_while_pending(env: Env, lab) -> None:
    ca, server = lab["manual"]
    tp = authenticated(env, server, retry_count=100)
    txid = env.pki.enroll(tp, CHALLENGE, fqdn=FQDN).transaction_id
    assert txid is not None
    ca.reject(txid, "not on the list of routers")
    done = env.finished.wait()[0]
    assert done.state is RequestState.REJECTED
    assert "badRequest" in (done.last_error or "") and "not on the list of routers" in (done.last_error or "")


def test_enroll_again_while_pending_polls_at_once_with_same_transaction(make_env: EnvFactory, lab) -> None:
    ca, server = lab["manual"]
    env = make_env(unit=600.0)  # no background poll during the test
    tp = authenticated(env, server)
    first = env.pki.enroll(tp, CHALLENGE, fqdn=FQDN)
    assert first.status is EnrollmentStatus.PENDING
    still = env.pki.enroll(tp, None, fqdn=FQDN)  # no password needed to poll
    assert still.status is EnrollmentStatus.PENDING and still.transaction_id == first.transaction_id
    assert env.pki.state("myca").requests[KeyUsage.GENERAL].attempts == 2
    assert first.transaction_id is not None
    ca.approve(first.transaction_id)
    again = env.pki.enroll(tp, None, fqdn=FQDN)
    assert again.status is EnrollmentStatus.ISSUED, again.message
    assert again.transaction_id == first.transaction_id
    assert again.requests[KeyUsage.GENERAL].fingerprint == first.requests[KeyUsage.GENERAL].fingerprint
    assert env.pki.state("myca").requests[KeyUsage.GENERAL].attempts == 3
    assert len([r for r in ca.requests() if r.transaction_id == first.transaction_id]) == 1
    assert [r.state for r in env.finished.records] == [RequestState.ISSUED]


def test_cancel_enrollment(make_env: EnvFactory, lab) -> None:
    ca, server = lab["manual"]
    env = make_env(unit=600.0)
    tp = authenticated(env, server)
    with pytest.raises(NoEnrollmentInProgressError) as nothing:
        env.pki.cancel_enrollment("myca")
    assert nothing.value.error_tag == "data-missing" and nothing.value.message == "no enrollment in progress for myca"
    txid = env.pki.enroll(tp, CHALLENGE, fqdn=FQDN).transaction_id
    assert set(env.pki.scheduled_polls()) == {("myca", KeyUsage.GENERAL)}  # the poll is scheduled
    env.pki.cancel_enrollment("myca")
    state = env.pki.state("myca")
    assert state.requests == {} and state.certificates == {}
    assert env.pki.scheduled_polls() == {}
    assert not list((env.root / "trustpoints" / "myca").glob("enrollment-*"))
    assert state.ca is not None  # the CA stays trusted
    assert txid is not None and ca.approve(txid).state is LabState.APPROVED


def test_trustpoint_removed_stops_polling_and_removes_files(env: Env, lab) -> None:
    _, server = lab["manual"]
    tp = authenticated(env, server, retry_count=100)
    env.pki.enroll(tp, CHALLENGE, fqdn=FQDN)
    assert (env.root / "trustpoints" / "myca" / "enrollment-general.json").is_file()
    env.pki.trustpoints_removed(["myca"])
    assert not (env.root / "trustpoints" / "myca").exists()
    assert env.pki.scheduled_polls() == {}
    state = env.pki.state("myca")
    assert state.ca is None and state.requests == {} and state.certificates == {}


@pytest.mark.parametrize("bare", [1, 20], ids=["few", "many"])  # many: the directories are listed once
def test_trustpoints_removed_in_one_step_removes_each_ones_files(make_env: EnvFactory, lab, bare: int) -> None:
    """A commit deleting many trustpoints: every one with files loses them, one without files is no error."""
    # Polls a minute apart: a poll under way is not a scheduled one (0.05 s apart, a loaded machine saw one run).
    env = make_env(unit=60.0)
    _, server = lab["manual"]
    env.keystore.generate_rsa("mykey", KeyPairType.GENERAL_PURPOSE, modulus=1024)
    bare_names = [f"bare{i}" for i in range(bare)]
    names = ["ca1", "ca2", *bare_names, "kept"]
    tps = [tp_for(server, name=name, rsakeypair="mykey", retry_count=100) for name in names]
    env.pki.configure(tps)
    for tp in (tps[0], tps[1], tps[-1]):
        assert env.pki.authenticate(tp, accept=True).installed
        env.pki.enroll(tp, CHALLENGE, fqdn=FQDN)
    assert set(env.pki.scheduled_polls()) == {(n, KeyUsage.GENERAL) for n in ("ca1", "ca2", "kept")}
    env.pki.trustpoints_removed([bare_names[0], "ca1", *bare_names[1:], "ca2"])
    assert (env.root / "trustpoints" / "kept" / "ca.pem").is_file()  # not named: untouched
    assert set(env.pki.scheduled_polls()) == {("kept", KeyUsage.GENERAL)}
    env.pki.trustpoints_removed(["kept"])
    for name in names:
        assert not (env.root / "trustpoints" / name).exists()
        state = env.pki.state(name)
        assert state.ca is None and state.requests == {} and state.certificates == {}
    assert env.pki.scheduled_polls() == {}


def test_configure_applies_new_retry_settings_and_forgets_removed(make_env: EnvFactory, lab) -> None:
    _, server = lab["manual"]
    env = make_env(unit=600.0)
    tp = authenticated(env, server, retry_period=60, retry_count=50)
    env.pki.enroll(tp, CHALLENGE, fqdn=FQDN)
    before = env.pki.state("myca").requests[KeyUsage.GENERAL].next_poll
    env.pki.configure([TrustpointConfig("myca", enrollment_url=server.url, rsakeypair="mykey", retry_period=1)])
    after = env.pki.state("myca").requests[KeyUsage.GENERAL].next_poll
    assert before is not None and after is not None and after < before
    assert 0 < env.pki.scheduled_polls()[("myca", KeyUsage.GENERAL)] <= 600
    env.pki.configure([])  # removed from the configuration: no more polling, files stay
    assert env.pki.scheduled_polls() == {}
    assert env.pki.state("myca").requests[KeyUsage.GENERAL].state is RequestState.PENDING


# --------------------------------------------------------------------------- keys, clear, regenerate


def test_replaced_key_makes_certificate_key_mismatch_and_zeroized_key_missing(env: Env, lab) -> None:
    _, server = lab["auto"]
    tp = authenticated(env, server)
    env.pki.enroll(tp, CHALLENGE, fqdn=FQDN)
    assert env.pki.state("myca").certificates[KeyUsage.GENERAL].status is CertificateStatus.AVAILABLE
    old = env.keystore.get_rsa("mykey").public_keys[KeyUsage.GENERAL]
    env.keystore.generate_rsa("mykey", modulus=1024, replace=True)
    assert env.pki.state("myca").certificates[KeyUsage.GENERAL].status is CertificateStatus.KEY_MISMATCH
    found = env.pki.certificates_of_keys({old})
    assert [(c.trustpoint, c.key_usage) for c in found] == [("myca", KeyUsage.GENERAL)]
    env.keystore.zeroize_rsa("mykey")  # the keystore alone (the key service also removes the certificates)
    entry = env.pki.state("myca").certificates[KeyUsage.GENERAL]
    assert entry.status is CertificateStatus.KEY_MISSING and entry.info is not None
    assert env.pki.certificates_of_keys({old}, remove=True) == found
    assert env.pki.state("myca").certificates == {}
    assert env.pki.certificates_of_keys({old}) == []


def test_clear_certificates_one_or_all(env: Env, lab) -> None:
    _, server = lab["auto"]
    _, ra_server = lab["ra"]
    tp = authenticated(env, server)
    other = TrustpointConfig("other", enrollment_url=ra_server.url, rsakeypair="mykey")
    env.pki.configure([tp, other])
    env.pki.authenticate(other, accept=True)
    env.pki.enroll(tp, CHALLENGE, fqdn=FQDN)
    env.pki.enroll(other, CHALLENGE, fqdn=FQDN)
    assert env.pki.clear_certificates("myca") == ["myca"]
    cleared = env.pki.state("myca")
    assert cleared.ca is None and cleared.certificates == {} and cleared.requests == {}
    assert env.pki.state("other").certificates[KeyUsage.GENERAL].status is CertificateStatus.AVAILABLE
    assert env.pki.clear_certificates() == ["other"]
    gone = env.pki.state("other")
    assert gone.ca is None and gone.ra == () and gone.certificates == {}
    assert env.pki.clear_certificates() == []


def test_regenerate_flow(env: Env, lab) -> None:
    """Seed 'Regenerate the Certificate': clear, generate rsa (replace), authenticate, enroll."""
    ca, server = lab["auto"]
    tp = authenticated(env, server)
    old = env.pki.enroll(tp, CHALLENGE, fqdn=FQDN).requests[KeyUsage.GENERAL].serial_number
    old_key = env.keystore.get_rsa("mykey").public_keys[KeyUsage.GENERAL]
    assert env.pki.clear_certificates("myca") == ["myca"]
    env.keystore.generate_rsa("mykey", modulus=1024, replace=True)
    env.pki.authenticate(tp, accept=True)
    new = env.pki.enroll(tp, CHALLENGE, fqdn=FQDN)
    assert new.status is EnrollmentStatus.ISSUED
    assert new.requests[KeyUsage.GENERAL].serial_number != old
    entry = env.pki.state("myca").certificates[KeyUsage.GENERAL]
    assert entry.status is CertificateStatus.AVAILABLE and entry.info is not None
    assert entry.info.public_key_der == env.keystore.get_rsa("mykey").public_keys[KeyUsage.GENERAL] != old_key


def test_switch_to_usage_keys_replaces_the_general_certificate(env: Env, lab) -> None:
    _, server = lab["auto"]
    tp = authenticated(env, server)
    env.pki.enroll(tp, CHALLENGE, fqdn=FQDN)
    env.keystore.generate_rsa("mykey", KeyPairType.USAGE_KEYS, modulus=1024, replace=True)
    assert env.pki.enroll(tp, CHALLENGE, fqdn=FQDN).status is EnrollmentStatus.ISSUED
    state = env.pki.state("myca")
    assert set(state.certificates) == {KeyUsage.SIGNATURE, KeyUsage.ENCRYPTION}
    assert set(state.requests) == {KeyUsage.SIGNATURE, KeyUsage.ENCRYPTION}


# --------------------------------------------------------------------------- the challenge password stays secret


def test_challenge_password_never_on_disk_nor_in_logs(make_env: EnvFactory, lab, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    _, auto = lab["auto"]
    manual_ca, manual = lab["manual"]
    env = make_env(unit=0.05)
    env.keystore.generate_rsa("mykey", KeyPairType.USAGE_KEYS, modulus=1024)
    first = TrustpointConfig("first", enrollment_url=auto.url, rsakeypair="mykey")
    second = TrustpointConfig("second", enrollment_url=manual.url, rsakeypair="mykey", retry_count=100)
    env.pki.configure([first, second])
    for tp in (first, second):
        env.pki.authenticate(tp, accept=True)
    assert env.pki.enroll(first, CHALLENGE, fqdn=FQDN).status is EnrollmentStatus.ISSUED
    pending = env.pki.enroll(second, CHALLENGE, fqdn=FQDN)
    assert pending.status is EnrollmentStatus.PENDING
    for request in pending.requests.values():
        assert request.transaction_id is not None
        manual_ca.approve(request.transaction_id)
    env.finished.wait(count=4)
    wrong = "Wr0ng-" + CHALLENGE
    assert env.pki.enroll(first, wrong, fqdn=FQDN).status is EnrollmentStatus.FAILED

    secrets = [CHALLENGE.encode(), wrong.encode()]
    for secret in list(secrets):  # also as it would look base64-encoded (a PEM CSR) at any alignment
        for shift in range(3):
            encoded = base64.b64encode(b"\0" * shift + secret)[4:-4]
            secrets.append(encoded[2:-2])
    files = [p for p in env.root.rglob("*") if p.is_file()]
    assert any(p.name == "enrollment-signature.json" for p in files)
    for path in files:
        data = path.read_bytes()
        assert b"CERTIFICATE REQUEST" not in data, path
        for secret in secrets:
            assert secret not in data, f"{path} holds the challenge password"
    assert "%SECURITY-CEPKI-6-INFO: certificate enrollment for trustpoint first: issued, serial" in caplog.text
    assert CHALLENGE not in caplog.text and wrong not in caplog.text


def test_log_lines_look_like_the_router(env: Env, lab, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="agent.pki")
    _, server = lab["auto"]
    tp = authenticated(env, server)
    serial = env.pki.enroll(tp, CHALLENGE, fqdn=FQDN).requests[KeyUsage.GENERAL].serial_number
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("agent.pki")]
    assert f"%SECURITY-CEPKI-6-INFO: certificate enrollment for trustpoint myca: issued, serial {serial}" in messages
    assert any(m.startswith("%SECURITY-CEPKI-6-INFO: CA certificate of trustpoint myca installed, serial ") for m in messages)
    assert any("Fingerprint: " in m for m in messages)


# --------------------------------------------------------------------------- GetCACaps reuse


def _operations(caplog: pytest.LogCaptureFixture, operation: str) -> int:
    """How many HTTP requests for ``operation`` the lab CA logged (its access log, at DEBUG)."""
    return sum(f"operation={operation}" in r.getMessage() for r in caplog.records if r.name == "agent.labca.http")


def test_getcacaps_asked_at_authenticate_and_reused_by_enroll_and_polls(
    env: Env, lab, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="agent.labca.http")
    ca, server = lab["manual"]
    tp = authenticated(env, server, retry_count=100)
    assert _operations(caplog, "GetCACaps") == 1
    outcome = env.pki.enroll(tp, CHALLENGE, fqdn=FQDN)
    assert outcome.status is EnrollmentStatus.PENDING, outcome.message
    ca.approve(outcome.transaction_id)
    assert env.finished.wait()[0].state is RequestState.ISSUED
    assert _operations(caplog, "PKIOperation") >= 2  # the request and at least one poll
    assert _operations(caplog, "GetCACaps") == 1  # authenticate asked; enroll and polls reused its answer
    env.pki.authenticate(tp, accept=True)  # authenticate always asks again
    assert _operations(caplog, "GetCACaps") == 2


def test_a_failed_exchange_forgets_the_cas_capabilities(lab, tmp_path: Path) -> None:

    _, server = lab["auto"]
    cache = CapabilitiesCache()
    client = ScepClient(server.url, timeout=5.0, caps_cache=cache)
    ca_certs = client.get_ca_certificates()
    caps = client.get_ca_caps()
    assert cache.get(client.url) == caps
    with socket.socket() as sock:  # a port where nothing listens: the same URL's CA "went away"
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}/scep"
    cache.put(dead, caps)
    keystore = KeyStore(tmp_path / "keys")
    keystore.generate_rsa("k", KeyPairType.GENERAL_PURPOSE, modulus=1024)
    key = keystore.private_key("k", KeyUsage.GENERAL)
    csr = build_csr(key, fqdn=FQDN, challenge_password=CHALLENGE)
    with pytest.raises(ScepError):
        ScepClient(dead, timeout=5.0, caps_cache=cache).enroll(csr, key, ca_certs)
    assert cache.get(dead) is None  # the next exchange asks GetCACaps again
    assert cache.get(client.url) == caps  # other CAs keep theirs


def test_capabilities_are_reused_for_a_minute_only() -> None:

    clock = SetClock(dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    cache = CapabilitiesCache(ttl=60.0, clock=clock)
    caps = CaCaps.of(Capability.SCEP_STANDARD)
    cache.put("http://ca/scep", caps)
    clock.current += dt.timedelta(seconds=59)
    assert cache.get("http://ca/scep") == caps
    clock.current += dt.timedelta(seconds=1)
    assert cache.get("http://ca/scep") is None
