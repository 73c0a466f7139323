"""ca-agent-crypto notifications over NETCONF, from real PKI events with the lab CA as its own process.

enrollment-complete when the CA approves a pending request (the agent polls
in the background), enrollment-failed when it rejects one, and
certificate-revoked when a fetched CRL lists the router's certificate. Each
is validated by yanglint against yang/ca-agent-crypto.yang.
"""

from __future__ import annotations

from pathlib import Path

from lxml import etree
from notif_helpers import CRYPTO, NC, NS, Receiver, commit_hostname, event_of, name_of, text, yanglint_notification

from agentproc import AgentProcess

FAST = ["--retry-period-unit", "0.2"]  # one 'minute' of retry period = 0.2 s


def rpc(m, name: str, body: str = "") -> etree._Element:
    reply = m.dispatch(etree.fromstring(f'<{name} xmlns="{CRYPTO}">{body}</{name}>'))
    return etree.fromstring(reply.xml.encode())


def trustpoint(m, name: str, url: str, extra: str = "") -> None:
    """A key pair and a trustpoint of the lab CA, authenticated."""
    rpc(m, "key-generate-rsa", f"<label>{name}-key</label><modulus>1024</modulus>")
    m.edit_config(target="candidate", config=(
        f'<config xmlns="{NC}"><crypto xmlns="{CRYPTO}"><ca><trustpoint><name>{name}</name>'
        f"<enrollment><url>{url}</url>{extra}</enrollment><rsakeypair>{name}-key</rsakeypair>"
        f"<subject-name>CN={name}-router,O=Example</subject-name></trustpoint></ca></crypto></config>"))
    m.commit()
    assert text(rpc(m, "ca-authenticate", f"<trustpoint>{name}</trustpoint><accept/>"), "c:installed") == "true"


def router_certificate(m, name: str) -> etree._Element:
    data = m.get(filter=("xpath", f"/crypto:crypto/crypto:ca/crypto:trustpoint[crypto:name='{name}']")).data_ele
    return data.find("c:crypto/c:ca/c:trustpoint/c:certificate", NS)


def assert_valid(notifications: list[etree._Element], tmp_path: Path) -> None:
    failures = [f for f in (yanglint_notification(n, tmp_path) for n in notifications
                            if etree.QName(event_of(n)).namespace == CRYPTO) if f]
    assert not failures, "\n".join(failures)


def test_enrollment_complete_after_approval_and_failed_after_rejection(
    lab_cas, agent_factory, tmp_path: Path
) -> None:
    lab = lab_cas("lab", "--challenge", "pw", "--manual-approval")
    agent: AgentProcess = agent_factory(args=FAST).start()
    retry = "<retry><period>1</period><count>100</count></retry>"
    with agent.connect() as m:
        receiver = Receiver(m)
        m.create_subscription()
        trustpoint(m, "approved", lab.url, retry)
        trustpoint(m, "refused", lab.url, retry)
        first = rpc(m, "ca-enroll", "<trustpoint>approved</trustpoint><challenge-password>pw</challenge-password>")
        second = rpc(m, "ca-enroll", "<trustpoint>refused</trustpoint><challenge-password>pw</challenge-password>")
        assert text(first, "c:status") == text(second, "c:status") == "pending"
        approved, refused = text(first, "c:transaction-id"), text(second, "c:transaction-id")

        lab.command("approve", approved)  # another process, as the CA's administrator would
        done, _ = receiver.until("enrollment-complete")
        event = event_of(done)
        assert (text(event, "c:trustpoint"), text(event, "c:key-usage")) == ("approved", "general-purpose")
        assert text(event, "c:transaction-id") == approved
        assert text(event, "c:serial-number") == text(router_certificate(m, "approved"), "c:serial-number")

        lab.command("reject", refused, "--reason", "not this one")
        failed, _ = receiver.until("enrollment-failed")
        event = event_of(failed)
        assert (text(event, "c:trustpoint"), text(event, "c:transaction-id")) == ("refused", refused)
        assert text(event, "c:state") == "rejected" and text(event, "c:reason")

    # the PKI events are in the replay log like the others
    with agent.connect() as m:
        replay = Receiver(m)
        m.create_subscription(start_time="2000-01-01T00:00:00Z")
        _, replayed = replay.until("replayComplete")
        assert {"enrollment-complete", "enrollment-failed"} <= {name_of(n) for n in replayed}
    assert_valid(receiver.seen, tmp_path)


def test_certificate_revoked_when_a_fetched_crl_lists_ours(lab_cas, agent: AgentProcess, tmp_path: Path) -> None:
    lab = lab_cas("ca-a", "--subject", "CN=Domain A CA,O=Example")
    with agent.connect() as m:
        trustpoint(m, "A", lab.url)
        assert text(rpc(m, "ca-enroll", "<trustpoint>A</trustpoint>"), "c:status") == "issued"
        serial = text(router_certificate(m, "A"), "c:serial-number")
        receiver = Receiver(m)
        m.create_subscription()
        rpc(m, "ca-crl-request", "<trustpoint>A</trustpoint>")  # the CDP of our certificate: not listed yet
        lab.command("revoke", serial, "--reason", "keyCompromise")
        rpc(m, "ca-crl-request", "<trustpoint>A</trustpoint>")
        revoked, before = receiver.until("certificate-revoked")
        assert "certificate-revoked" not in [name_of(n) for n in before]
        event = event_of(revoked)
        assert (text(event, "c:trustpoint"), text(event, "c:key-usage")) == ("A", "general-purpose")
        assert (text(event, "c:serial-number"), text(event, "c:reason")) == (serial, "keyCompromise")
        assert text(event, "c:revocation-date")

        # The same CRL fetched again lists nothing new: no second notification before the next commit's.
        rpc(m, "ca-crl-request", "<trustpoint>A</trustpoint>")
        commit_hostname(m, "after-the-crl")
        _, between = receiver.until("netconf-config-change")
        assert "certificate-revoked" not in [name_of(n) for n in between]
    assert_valid(receiver.seen, tmp_path)


def test_certificate_expiring_for_a_short_lived_certificate(lab_cas, agent: AgentProcess, tmp_path: Path) -> None:
    lab = lab_cas("short", "--validity-days", "5")
    with agent.connect() as m:
        receiver = Receiver(m)
        m.create_subscription()
        trustpoint(m, "short", lab.url)
        assert text(rpc(m, "ca-enroll", "<trustpoint>short</trustpoint>"), "c:status") == "issued"
        serial = text(router_certificate(m, "short"), "c:serial-number")
        # installed inside the last week: reported at once, in alert mode
        expiring, _ = receiver.until("certificate-expiring", where=lambda e: text(e, "c:trustpoint") == "short")
        event = event_of(expiring)
        assert (text(event, "c:certificate-type"), text(event, "c:key-usage")) == ("id", "general-purpose")
        assert (text(event, "c:serial-number"), text(event, "c:mode")) == (serial, "alert")
        assert 0 < int(text(event, "c:seconds-left")) <= 5 * 86400
    assert_valid(receiver.seen, tmp_path)
