"""Issue 5 end to end: cut-and-paste enrollment, import, clear and regenerate.

The CA here is `openssl` (req -x509 / x509 -req), driven as an operator
would: the PEM request that ca-enroll returns is pasted into it, and the
certificate it signs is pasted back with ca-import-certificate.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from lxml import etree
from ncclient.operations import RPCError

from agentproc import AgentProcess

CRYPTO = "urn:ca-agent:yang:crypto"
NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
NS = {"c": CRYPTO}


def rpc(m, name: str, body: str = "") -> etree._Element:
    reply = m.dispatch(etree.fromstring(f'<{name} xmlns="{CRYPTO}">{body}</{name}>'))
    return etree.fromstring(reply.xml.encode())


def configure(m, xml: str) -> None:
    m.edit_config(target="candidate", config=f'<config xmlns="{NC}">{xml}</config>')
    m.commit()


def terminal_trustpoint(name: str, label: str = "mykey") -> str:
    return (
        f'<crypto xmlns="{CRYPTO}"><ca><trustpoint><name>{name}</name>'
        f"<enrollment><terminal/></enrollment><rsakeypair>{label}</rsakeypair></trustpoint></ca></crypto>"
    )


def certificates(m, name: str) -> dict[str, etree._Element]:
    data = m.get(filter=("xpath", f"/crypto:crypto/crypto:ca/crypto:trustpoint[crypto:name='{name}']")).data_ele
    return {c.findtext("c:key-usage", namespaces=NS): c for c in data.findall(".//c:certificate", NS)}


def escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;")


class OpensslCa:
    """A CA made and operated with the openssl command line."""

    def __init__(self, directory: Path, name: str) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.dir = directory
        self.key = directory / "ca.key"
        self.cert = directory / "ca.pem"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(self.key), "-out", str(self.cert),
             "-days", "3650", "-subj", f"/C=US/ST=CA/L=San Jose/O=Cisco Systems/OU=HFR/CN={name}"],
            check=True, capture_output=True, timeout=60,
        )

    def sign(self, request_pem: str) -> str:
        req = self.dir / f"req-{secrets.token_hex(4)}.pem"
        out = req.with_suffix(".crt")
        req.write_text(request_pem)
        subprocess.run(
            ["openssl", "x509", "-req", "-in", str(req), "-CA", str(self.cert), "-CAkey", str(self.key),
             "-CAcreateserial", "-days", "365", "-out", str(out)],
            check=True, capture_output=True, timeout=60,
        )
        return out.read_text()


@pytest.fixture
def openssl_ca(tmp_path: Path) -> OpensslCa:
    return OpensslCa(tmp_path / "openssl-ca", "Root coax-u10 Certificate Manager")


def authenticate_terminal(m, name: str, ca: OpensslCa) -> None:
    pem = escape(ca.cert.read_text())
    shown = rpc(m, "ca-authenticate", f"<trustpoint>{name}</trustpoint><ca-certificate>{pem}</ca-certificate>")
    assert shown.findtext("c:installed", namespaces=NS) == "false"
    fingerprint = shown.findtext("c:fingerprint-md5", namespaces=NS)
    spaced = " ".join(fingerprint[i : i + 2] for i in range(0, len(fingerprint), 2))  # as the router shows it
    done = rpc(m, "ca-authenticate", f"<trustpoint>{name}</trustpoint><ca-certificate>{pem}</ca-certificate><fingerprint>{spaced}</fingerprint>")
    assert done.findtext("c:installed", namespaces=NS) == "true"
    assert "cn=Root coax-u10 Certificate Manager,ou=HFR,o=Cisco Systems,l=San Jose,st=CA,c=US" == done.findtext(
        "c:subject", namespaces=NS
    )


def test_cut_and_paste_general_keys(agent: AgentProcess, openssl_ca: OpensslCa) -> None:
    with agent.connect() as m:
        rpc(m, "key-generate-rsa", "<label>mykey</label><modulus>2048</modulus>")
        configure(m, terminal_trustpoint("myca"))
        with pytest.raises(RPCError) as no_pem:
            rpc(m, "ca-authenticate", "<trustpoint>myca</trustpoint><accept/>")
        assert "ca-certificate" in no_pem.value.message or "paste" in no_pem.value.message
        authenticate_terminal(m, "myca", openssl_ca)
        out = rpc(m, "ca-enroll", "<trustpoint>myca</trustpoint>")
        assert out.findtext("c:status", namespaces=NS) == "requested"
        requests = {r.findtext("c:key-usage", namespaces=NS): r.findtext("c:pem", namespaces=NS) for r in out.findall("c:certificate-request", NS)}
        assert list(requests) == ["general-purpose"]
        assert requests["general-purpose"].startswith("-----BEGIN CERTIFICATE REQUEST-----")
        assert certificates(m, "myca")["general-purpose"].findtext("c:status", namespaces=NS) == "pending"
        signed = openssl_ca.sign(requests["general-purpose"])
        imported = rpc(m, "ca-import-certificate", f"<trustpoint>myca</trustpoint><certificate>{escape(signed)}</certificate>")
        assert imported.findtext("c:key-usage", namespaces=NS) == "general-purpose"
        cert = certificates(m, "myca")["general-purpose"]
        assert cert.findtext("c:status", namespaces=NS) == "available"
        assert cert.findtext("c:subject", namespaces=NS) == "unstructuredName=router"


@pytest.mark.parametrize("order", [("signature", "encryption"), ("encryption", "signature")])
def test_cut_and_paste_usage_keys_either_order(agent: AgentProcess, openssl_ca: OpensslCa, order: tuple[str, str]) -> None:
    with agent.connect() as m:
        rpc(m, "key-generate-rsa", "<label>mykey</label><usage-keys/><modulus>1024</modulus>")
        configure(m, terminal_trustpoint("myca"))
        authenticate_terminal(m, "myca", openssl_ca)
        out = rpc(m, "ca-enroll", "<trustpoint>myca</trustpoint>")
        requests = {r.findtext("c:key-usage", namespaces=NS): r.findtext("c:pem", namespaces=NS) for r in out.findall("c:certificate-request", NS)}
        assert set(requests) == {"signature", "encryption"}
        for usage in order:
            signed = openssl_ca.sign(requests[usage])
            landed = rpc(m, "ca-import-certificate", f"<trustpoint>myca</trustpoint><certificate>{escape(signed)}</certificate>")
            assert landed.findtext("c:key-usage", namespaces=NS) == usage
        certs = certificates(m, "myca")
        assert {u: certs[u].findtext("c:status", namespaces=NS) for u in ("signature", "encryption")} == {
            "signature": "available",
            "encryption": "available",
        }


def _cert_for(key: rsa.RSAPrivateKey, issuer_key, issuer_name: x509.Name, not_before: dt.datetime, days: int) -> str:
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "r1")]))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_before + dt.timedelta(days=days))
        .sign(issuer_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def test_import_refusals(agent: AgentProcess, openssl_ca: OpensslCa, tmp_path: Path) -> None:
    other_ca = OpensslCa(tmp_path / "other", "Other CA")
    with agent.connect() as m:
        rpc(m, "key-generate-rsa", "<label>mykey</label><modulus>1024</modulus>")
        configure(m, terminal_trustpoint("myca"))
        authenticate_terminal(m, "myca", openssl_ca)
        request = rpc(m, "ca-enroll", "<trustpoint>myca</trustpoint>").findtext("c:certificate-request/c:pem", namespaces=NS)

        def refused(pem: str) -> RPCError:
            with pytest.raises(RPCError) as error:
                rpc(m, "ca-import-certificate", f"<trustpoint>myca</trustpoint><certificate>{escape(pem)}</certificate>")
            return error.value

        # another CA signed our request
        wrong_ca = refused(other_ca.sign(request))
        assert "issued by" in wrong_ca.message.lower() or "another ca" in wrong_ca.message.lower()
        # the right CA, but for a key that is not ours
        stranger = rsa.generate_private_key(public_exponent=65537, key_size=1024)
        ca_key = serialization.load_pem_private_key(openssl_ca.key.read_bytes(), password=None)
        ca_cert = x509.load_pem_x509_certificate(openssl_ca.cert.read_bytes())
        now = dt.datetime.now(dt.UTC)
        wrong_key = refused(_cert_for(stranger, ca_key, ca_cert.subject, now - dt.timedelta(days=1), 30))
        assert "key" in wrong_key.message.lower() and "mykey" in wrong_key.message
        # our key, the right CA, but expired
        ours = (agent.data_dir / "keys" / "mykey.rsa.json").read_text()
        our_key = serialization.load_pem_private_key(json.loads(ours)["keys"]["general"].encode(), password=None)
        expired = refused(_cert_for(our_key, ca_key, ca_cert.subject, now - dt.timedelta(days=30), 10))
        assert "expired" in expired.message.lower()
        # not a certificate at all
        garbage = refused("this is not a certificate")
        assert garbage.tag == "invalid-value" and "certificate" in garbage.message.lower()
        assert certificates(m, "myca")["general-purpose"].findtext("c:status", namespaces=NS) == "pending"


def test_clear_certificates(agent: AgentProcess, openssl_ca: OpensslCa) -> None:
    with agent.connect() as m:
        rpc(m, "key-generate-rsa", "<label>mykey</label><modulus>1024</modulus>")
        configure(m, terminal_trustpoint("myca") + terminal_trustpoint("other"))
        authenticate_terminal(m, "myca", openssl_ca)
        authenticate_terminal(m, "other", openssl_ca)
        request = rpc(m, "ca-enroll", "<trustpoint>myca</trustpoint>").findtext("c:certificate-request/c:pem", namespaces=NS)
        rpc(m, "ca-import-certificate", f"<trustpoint>myca</trustpoint><certificate>{escape(openssl_ca.sign(request))}</certificate>")
        out = rpc(m, "ca-clear-certificates", "<trustpoint>myca</trustpoint>")
        assert out.xpath("c:cleared/text()", namespaces=NS) == ["myca"]
        data = m.get(filter=("subtree", f'<crypto xmlns="{CRYPTO}"><ca/></crypto>')).data_ele
        tps = {t.findtext("c:name", namespaces=NS): t for t in data.findall(".//c:trustpoint", NS)}
        assert tps["myca"].find("c:ca-certificate", NS) is None and tps["myca"].find("c:certificate", NS) is None
        assert tps["other"].find("c:ca-certificate", NS) is not None
        everything = rpc(m, "ca-clear-certificates")
        assert everything.xpath("c:cleared/text()", namespaces=NS) == ["other"]


def test_get_of_one_trustpoint_shows_what_the_whole_get_shows_of_it(agent: AgentProcess, openssl_ca: OpensslCa) -> None:
    """A <get> filtered to one trustpoint (whose state is made for that trustpoint only, and left out when it
    has none) gives the same entry as the whole <get>: authenticated, with a certificate, pending, cleared, bare."""
    names = ("authed", "certified", "pending", "cleared", "bare")
    with agent.connect() as m:
        rpc(m, "key-generate-rsa", "<label>mykey</label><modulus>1024</modulus>")
        configure(m, "".join(terminal_trustpoint(name) for name in names))
        for name in names[:4]:
            authenticate_terminal(m, name, openssl_ca)
        for name in ("certified", "pending"):
            request = rpc(m, "ca-enroll", f"<trustpoint>{name}</trustpoint>").findtext(
                "c:certificate-request/c:pem", namespaces=NS)
            if name == "certified":
                signed = escape(openssl_ca.sign(request))
                rpc(m, "ca-import-certificate", f"<trustpoint>{name}</trustpoint><certificate>{signed}</certificate>")
        rpc(m, "ca-clear-certificates", "<trustpoint>cleared</trustpoint>")

        def entries(data: etree._Element) -> dict[str, bytes]:
            return {t.findtext("c:name", namespaces=NS): etree.tostring(t, method="c14n")
                    for t in data.findall("c:crypto/c:ca/c:trustpoint", NS)}

        whole = entries(m.get().data_ele)
        assert list(whole) == list(names)
        for name in names:
            one = ("subtree", f'<crypto xmlns="{CRYPTO}"><ca><trustpoint><name>{name}</name></trustpoint></ca></crypto>')
            assert entries(m.get(filter=one).data_ele) == {name: whole[name]}, name
        children = {name: [etree.QName(c).localname for c in etree.fromstring(whole[name])] for name in names}
        assert children["bare"] == children["cleared"] == ["name", "enrollment", "rsakeypair"]
        assert "ca-certificate" in children["authed"] and "certificate" not in children["authed"]
        assert "certificate" in children["certified"] and "enrollment" in children["pending"]
        missing = ("subtree", f'<crypto xmlns="{CRYPTO}"><ca><trustpoint><name>nope</name></trustpoint></ca></crypto>')
        assert entries(m.get(filter=missing).data_ele) == {}


def test_regenerate_flow_against_scepserver(scepserver, agent: AgentProcess) -> None:
    """clear -> key-generate-rsa replace -> ca-authenticate -> ca-enroll (the seed's 'Regenerate the Certificate')."""
    with agent.connect() as m:
        rpc(m, "key-generate-rsa", "<label>mykey</label><modulus>2048</modulus>")
        configure(
            m,
            f'<crypto xmlns="{CRYPTO}"><ca><trustpoint><name>myca</name><enrollment><url>{scepserver.url}</url></enrollment>'
            f"<rsakeypair>mykey</rsakeypair><subject-name>CN=regen-{secrets.token_hex(4)}</subject-name></trustpoint></ca></crypto>",
        )
        rpc(m, "ca-authenticate", "<trustpoint>myca</trustpoint><accept/>")
        assert rpc(m, "ca-enroll", f"<trustpoint>myca</trustpoint><challenge-password>{scepserver.challenge}</challenge-password>").findtext("c:status", namespaces=NS) == "issued"
        old = certificates(m, "myca")["general-purpose"]
        old_serial = old.findtext("c:serial-number", namespaces=NS)

        rpc(m, "ca-clear-certificates", "<trustpoint>myca</trustpoint>")
        assert certificates(m, "myca") == {}
        rpc(m, "key-generate-rsa", "<label>mykey</label><modulus>2048</modulus><replace>true</replace>")
        configure(m, f'<crypto xmlns="{CRYPTO}"><ca><trustpoint><name>myca</name><subject-name>CN=regen-{secrets.token_hex(4)}</subject-name></trustpoint></ca></crypto>')
        rpc(m, "ca-authenticate", "<trustpoint>myca</trustpoint><accept/>")
        out = rpc(m, "ca-enroll", f"<trustpoint>myca</trustpoint><challenge-password>{scepserver.challenge}</challenge-password>")
        assert out.findtext("c:status", namespaces=NS) == "issued"
        new = certificates(m, "myca")["general-purpose"]
        assert new.findtext("c:status", namespaces=NS) == "available"
        assert new.findtext("c:serial-number", namespaces=NS) != old_serial
        # the new certificate is bound to the new key
        key_data = m.get(filter=("xpath", "/crypto:crypto/crypto:key/crypto:rsa[crypto:label='mykey']")).data_ele
        spki_hex = key_data.findtext(".//c:public-key", namespaces=NS)
        cert = x509.load_pem_x509_certificate(new.findtext("c:pem", namespaces=NS).encode())
        der = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        assert der.hex().upper() == spki_hex
