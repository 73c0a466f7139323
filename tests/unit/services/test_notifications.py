"""Each PKI event as its YANG notification, validated by libyang's yanglint against yang/ca-agent-crypto.yang."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
from pathlib import Path

import pytest
from lxml import etree

from agent.pki.events import (
    AlertMode,
    CertificateExpiring,
    CertificateInstalled,
    CertificateRef,
    CertificateRevoked,
    CertificateType,
    EnrollmentCompleted,
    EnrollmentFailed,
    PkiEvent,
    enrollment_event,
)
from agent.pki.keystore import KeyUsage
from agent.pki.trustpoint import EnrollmentRequest, RequestState
from agent.schema.model import ietf_yang_dirs
from agent.services.notifications import notification_element

YANG = Path(__file__).resolve().parents[3] / "yang"
NOW = dt.datetime(2026, 11, 6, 7, 8, 9, tzinfo=dt.UTC)
C = "{urn:ca-agent:yang:crypto}"
REF = CertificateRef(
    trustpoint="check",
    cert_type=CertificateType.ID,
    key_usage=KeyUsage.GENERAL,
    serial_number="02EC",
    subject="CN=cisco.com",
    issuer="CN=cacert,OU=SPBU,O=CSCO,L=BGL,ST=KA,C=IN",
    not_before=NOW - dt.timedelta(days=300),
    not_after=NOW + dt.timedelta(days=2),
    fingerprint_sha256="00" * 32,
)


def yanglint_notification(element: etree._Element, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    if shutil.which("yanglint") is None:
        pytest.skip("yanglint (libyang2-tools) is not installed")
    path = tmp_path / "notification.xml"
    path.write_bytes(etree.tostring(element))
    return subprocess.run(
        ["yanglint", "-p", str(YANG), *(f"-p{d}" for d in ietf_yang_dirs()), "-t", "notif",
         str(YANG / "ca-agent-crypto.yang"), str(path)],
        capture_output=True, text=True, timeout=60,
    )


EVENTS: list[PkiEvent] = [
    CertificateExpiring(REF, AlertMode.ALERT, dt.timedelta(days=1, hours=23, minutes=59, seconds=41), NOW),
    CertificateExpiring(
        CertificateRef(**{**REF.__dict__, "cert_type": CertificateType.CA, "key_usage": None}),
        AlertMode.WARNING, dt.timedelta(days=53), NOW,
    ),
    EnrollmentCompleted("check", KeyUsage.SIGNATURE, "4F2A", "02EC", NOW),
    EnrollmentCompleted("check", KeyUsage.GENERAL, None, "02EC", NOW),
    EnrollmentFailed("check", KeyUsage.GENERAL, "4F2A", RequestState.REJECTED, "badRequest", NOW),
    CertificateRevoked("check", KeyUsage.GENERAL, "02EC", NOW, "keyCompromise", NOW),
]


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: type(e).__name__)
def test_notification_is_valid_yang(event: PkiEvent, tmp_path: Path) -> None:
    element = notification_element(event)
    assert element is not None
    done = yanglint_notification(element, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


def test_certificate_expiring_leaves() -> None:
    element = notification_element(EVENTS[0])
    assert element is not None and element.tag == f"{C}certificate-expiring"
    assert {etree.QName(child).localname: child.text for child in element} == {
        "trustpoint": "check",
        "certificate-type": "id",
        "key-usage": "general-purpose",
        "serial-number": "02EC",
        "issuer": "CN=cacert,OU=SPBU,O=CSCO,L=BGL,ST=KA,C=IN",
        "subject": "CN=cisco.com",
        "not-after": "2026-11-08T07:08:09Z",
        "seconds-left": str(2 * 86400 - 19),
        "mode": "alert",
    }


def test_a_broken_notification_fails_yanglint(tmp_path: Path) -> None:
    element = notification_element(EVENTS[0])
    assert element is not None
    element.find(f"{C}mode").text = "urgent"  # type: ignore[union-attr]
    assert yanglint_notification(element, tmp_path).returncode != 0


def test_install_has_no_notification() -> None:
    assert notification_element(CertificateInstalled(REF, NOW)) is None


def test_enrollment_events_from_final_records_only() -> None:
    record = EnrollmentRequest(
        trustpoint="check", key_usage=KeyUsage.GENERAL, key_label="k", public_key_sha256="AA",
        state=RequestState.PENDING, fingerprint="BB", subject_der=b"", created=NOW, updated=NOW,
        transaction_id="4F2A",
    )
    assert enrollment_event(record, NOW) is None
    issued = enrollment_event(record.evolve(state=RequestState.ISSUED, serial_number="02EC"), NOW)
    assert issued == EnrollmentCompleted("check", KeyUsage.GENERAL, "4F2A", "02EC", NOW)
    failed = enrollment_event(record.evolve(state=RequestState.TIMED_OUT, last_error="no answer"), NOW)
    assert failed == EnrollmentFailed("check", KeyUsage.GENERAL, "4F2A", RequestState.TIMED_OUT, "no answer", NOW)
