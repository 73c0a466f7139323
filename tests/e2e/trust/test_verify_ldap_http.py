"""Issue 13 end to end: verifying a peer of another domain, with CRLs over LDAP (slapd) and HTTP (lab CA CDP).

Real peers only: two `ca-agent lab-ca` CAs (domains A and B), two agents (the
router under test, enrolled in A, and a peer router enrolled in B), slapd
publishing B's CRL. The agent is driven over NETCONF (ncclient).
"""

from __future__ import annotations

import urllib.request

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree
from ncclient.operations import RPCError
from trust_e2e_helpers import CRYPTO, NS, configure, enroll, rpc, text, tp_state

from labcaproc import LabCaProcess

B_DN = "cn=Domain B CA,o=Example"


def crl_of(lab_ca) -> bytes:
    with urllib.request.urlopen(lab_ca.url.replace("/scep", "/crl"), timeout=30) as answer:
        return answer.read()


def verify(m, pem: str, extra: str = "") -> etree._Element:
    return rpc(m, "ca-verify-certificate", f"<certificate>{pem}</certificate>{extra}")


def set_tp(m, name: str, body: str) -> None:
    configure(m, f'<crypto xmlns="{CRYPTO}"><ca><trustpoint><name>{name}</name>{body}</trustpoint></ca></crypto>')


def remove_tp_leaf(m, name: str, leaf: str) -> None:
    set_tp(m, name, f'<{leaf} xmlns:nc="urn:ietf:params:xml:ns:netconf:base:1.0" nc:operation="remove"/>')


def test_peer_of_domain_b_with_crl_over_ldap(two_agents, lab_cas, slapd) -> None:
    router, peer = two_agents
    ca_a = lab_cas("ca-a", "--subject", "CN=Domain A CA,O=Example")
    ldap_cdp = f"{slapd.url}/{B_DN}"
    ca_b = lab_cas("ca-b", "--subject", "CN=Domain B CA,O=Example", "--crl-url", ldap_cdp)
    with router.connect() as r, peer.connect() as p:
        enroll(r, "A", ca_a.url, "router-a")
        peer_cert = enroll(p, "B", ca_b.url, "peer-b")
        pem = text(peer_cert, "c:pem")
        serial = text(peer_cert, "c:serial-number")
        assert text(peer_cert, "c:crl-distribution-point") == ldap_cdp  # as the seed's CDP: ldap://host/CN=...,O=...

        # Domain B is unknown to the router: refused until B's CA is configured and authenticated.
        out = verify(r, pem, "<purpose>ike</purpose>")
        assert text(out, "c:valid") == "false" and text(out, "c:failure") == "unknown-ca"
        assert "unknown CA" in text(out, "c:message")
        set_tp(r, "B", f"<enrollment><url>{ca_b.url}</url></enrollment><query-url>{slapd.url}</query-url>")
        assert text(verify(r, pem), "c:failure") == "unknown-ca"  # configured, not authenticated yet
        rpc(r, "ca-authenticate", "<trustpoint>B</trustpoint><accept/>")

        # slapd is not running: the CRL is unreachable -> refused, unless crl optional.
        out = verify(r, pem, "<purpose>ike</purpose>")
        assert text(out, "c:valid") == "false" and text(out, "c:failure") == "crl-unreachable"
        assert text(out, "c:revocation") == "unknown" and text(out, "c:trustpoint") == "B"
        set_tp(r, "B", "<crl-optional/>")
        out = verify(r, pem)
        assert text(out, "c:valid") == "true" and text(out, "c:revocation") == "unknown"
        assert "crl optional" in text(out, "c:message")
        crl_state = tp_state(r, "B").find("c:crl", NS)
        assert "ldap://127.0.0.1" in text(crl_state, "c:last-error")
        remove_tp_leaf(r, "B", "crl-optional")

        # slapd publishes B's CRL: good (the query url has no DN: the CA's own DN is searched, as the router does).
        slapd.start()
        ca_der = x509.load_pem_x509_certificate(ca_b.ca_pem.read_bytes()).public_bytes(Encoding.DER)
        slapd.publish(B_DN, ca_der, crl_of(ca_b))
        # The failure is remembered until the background retry; ca-crl-request fetches at once.
        assert text(verify(r, pem), "c:failure") == "crl-unreachable"
        rpc(r, "ca-crl-request", "<trustpoint>B</trustpoint>")
        out = verify(r, pem, "<purpose>ike</purpose>")
        assert text(out, "c:valid") == "true", etree.tostring(out).decode()
        assert text(out, "c:revocation") == "good" and text(out, "c:crl-source") == slapd.url
        chain = out.findall("c:chain", NS)
        assert [text(c, "c:subject") for c in chain] == ["cn=peer-b,o=Example", "cn=Domain B CA,o=Example"]
        crl_state = tp_state(r, "B").find("c:crl", NS)
        assert text(crl_state, "c:source") == slapd.url and text(crl_state, "c:revoked-certificates") == "0"
        assert text(crl_state, "c:issuer") == "cn=Domain B CA,o=Example"
        assert text(crl_state, "c:last-error") is None and text(crl_state, "c:next-update")
        # fetched again in the background before its nextUpdate
        assert text(crl_state, "c:last-attempt") == text(crl_state, "c:last-fetch")
        assert text(crl_state, "c:last-fetch") < text(crl_state, "c:next-fetch") < text(crl_state, "c:next-update")

        # The lab CA revokes the peer; the new CRL replaces the old one in LDAP; ca-crl-request fetches it.
        ca_b.command("revoke", serial, "--reason", "keyCompromise")
        slapd.replace_crl(B_DN, crl_of(ca_b))
        assert text(verify(r, pem), "c:revocation") == "good"  # the cached CRL is used until its nextUpdate
        fetched = rpc(r, "ca-crl-request", "<trustpoint>B</trustpoint>")
        assert text(fetched, "c:revoked-certificates") == "1" and text(fetched, "c:source") == slapd.url
        out = verify(r, pem, "<purpose>ike</purpose>")
        assert text(out, "c:valid") == "false" and text(out, "c:revocation") == "revoked"
        assert text(out, "c:failure") == "revoked" and text(out, "c:revocation-reason") == "keyCompromise"
        assert text(out, "c:revocation-date") and "revoked" in text(out, "c:message")

        # A CRL signed by the wrong key is refused (and the good cached one stays).
        impostor = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        forged = x509.load_der_x509_crl(crl_of(ca_b))
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(forged.issuer)
            .last_update(forged.last_update_utc)
            .next_update(forged.next_update_utc)
            .add_extension(x509.CRLNumber(10**6), critical=False)
        )
        slapd.replace_crl(B_DN, builder.sign(impostor, hashes.SHA256()).public_bytes(Encoding.DER))
        with pytest.raises(RPCError) as refused:
            rpc(r, "ca-crl-request", "<trustpoint>B</trustpoint>")
        assert refused.value.tag == "operation-failed" and "signature does not verify" in refused.value.message
        assert "signature does not verify" in text(tp_state(r, "B").find("c:crl", NS), "c:last-error")
        assert text(verify(r, pem), "c:revocation") == "revoked"

        # slapd stopped: a fetch fails with the reason.
        slapd.stop()
        with pytest.raises(RPCError) as unreachable:
            rpc(r, "ca-crl-request", "<trustpoint>B</trustpoint>")
        assert unreachable.value.tag == "operation-failed"
        with pytest.raises(RPCError) as missing:
            rpc(r, "ca-crl-request", "<trustpoint>nosuch</trustpoint>")
        assert missing.value.tag == "data-missing"


def test_http_cdp_and_our_own_certificate_revoked(two_agents, lab_cas) -> None:
    router, peer = two_agents
    ca_a = lab_cas("ca-a", "--subject", "CN=Domain A CA,O=Example")
    ca_c = lab_cas("ca-c", "--subject", "CN=Domain C CA,O=Example")
    with router.connect() as r, peer.connect() as p:
        mine = enroll(r, "A", ca_a.url, "router-a")
        peer_cert = enroll(p, "C", ca_c.url, "peer-c")
        pem, serial = text(peer_cert, "c:pem"), text(peer_cert, "c:serial-number")
        cdp = text(peer_cert, "c:crl-distribution-point")
        assert cdp == ca_c.url.replace("/scep", "/crl")
        set_tp(r, "C", f"<enrollment><url>{ca_c.url}</url></enrollment>")  # no query url: the CDP is used
        rpc(r, "ca-authenticate", "<trustpoint>C</trustpoint><accept/>")
        out = verify(r, pem, "<trustpoint>C</trustpoint><purpose>ike</purpose>")
        assert text(out, "c:valid") == "true" and text(out, "c:revocation") == "good"
        assert text(out, "c:crl-source") == cdp
        assert text(verify(r, pem, "<trustpoint>A</trustpoint>"), "c:failure") == "unknown-ca"

        ca_c.command("revoke", serial, "--reason", "superseded")
        fetched = rpc(r, "ca-crl-request", "<trustpoint>C</trustpoint>")  # the CDP learned from the peer's certificate
        assert text(fetched, "c:source") == cdp and text(fetched, "c:revoked-certificates") == "1"
        out = verify(r, pem)
        assert text(out, "c:revocation") == "revoked" and text(out, "c:revocation-reason") == "superseded"

        # Our own certificate: Available, then Revoked once a fetched CRL lists it.
        assert text(mine, "c:status") == "available"
        rpc(r, "ca-crl-request", "<trustpoint>A</trustpoint>")  # the CDP of our own certificate
        assert text(tp_state(r, "A").find("c:certificate", NS), "c:status") == "available"
        ca_a.command("revoke", text(mine, "c:serial-number"), "--reason", "keyCompromise")
        rpc(r, "ca-crl-request", "<trustpoint>A</trustpoint>")
        cert = tp_state(r, "A").find("c:certificate", NS)
        assert text(cert, "c:status") == "revoked" and text(cert, "c:revocation-reason") == "keyCompromise"
        assert text(cert, "c:revocation-date")


def test_http_cdp_unreachable_then_served(two_agents, lab_cas) -> None:
    router, peer = two_agents
    ca_c = lab_cas("ca-c", "--subject", "CN=Domain C CA,O=Example")
    with router.connect() as r, peer.connect() as p:
        pem = text(enroll(p, "C", ca_c.url, "peer-c"), "c:pem")
        set_tp(r, "C", f"<enrollment><url>{ca_c.url}</url></enrollment>")
        rpc(r, "ca-authenticate", "<trustpoint>C</trustpoint><accept/>")
        port = ca_c.url.split(":")[2].split("/")[0]
        ca_c.stop()  # the CDP is down
        out = verify(r, pem)
        assert text(out, "c:valid") == "false" and text(out, "c:failure") == "crl-unreachable"
        set_tp(r, "C", "<crl-optional/>")
        assert text(verify(r, pem), "c:valid") == "true"
        again = LabCaProcess(ca_c.data_dir, "--port", port).start()  # the same URL serves the CRL again
        try:
            # The failure is remembered until the background retry (5 minutes), so that an unreachable CDP does
            # not cost every verification its timeout; ca-crl-request fetches at once.
            out = verify(r, pem)
            assert text(out, "c:revocation") == "unknown" and "ca-crl-request" in text(out, "c:message")
            rpc(r, "ca-crl-request", "<trustpoint>C</trustpoint>")  # knows the CDP learnt from the peer
            out = verify(r, pem)
            assert text(out, "c:revocation") == "good" and text(out, "c:valid") == "true"
        finally:
            again.stop()
