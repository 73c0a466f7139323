"""Issue 11 end to end over NETCONF: a subject-name with control characters, a very long FQDN."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from lxml import etree
from ncclient.operations import RPCError

from agentproc import ADMIN_PASSWORD, AgentProcess

CRYPTO = "urn:ca-agent:yang:crypto"
SYS = "urn:ca-agent:yang:system"
NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
NS = {"c": CRYPTO, "s": SYS}
LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")
LONG_DOMAIN = ".".join(["a" * 60, "b" * 60, "c" * 60, "example.com"])  # 194 characters: a valid domain name


def rpc(m, name: str, body: str = "") -> etree._Element:
    reply = m.dispatch(etree.fromstring(f'<{name} xmlns="{CRYPTO}">{body}</{name}>'))
    return etree.fromstring(reply.xml.encode())


def trustpoint(subject_xml: str) -> str:
    return (
        f'<config xmlns="{NC}"><crypto xmlns="{CRYPTO}"><ca><trustpoint><name>myca</name>'
        f"<enrollment><terminal/></enrollment><subject-name>{subject_xml}</subject-name>"
        "</trustpoint></ca></crypto></config>"
    )


CONTROL = ["CN=r1&#10;O=evil", "CN=r1&#13;O=x", "CN=a&#9;b", "CN=a&#x7f;b", "CN=a&#x85;b", "CN=a&#x2028;b"]
SUBJECT_PATH = "/crypto:crypto/crypto:ca/crypto:trustpoint[crypto:name='myca']/crypto:subject-name"


def test_subject_name_with_control_characters_is_refused(agent: AgentProcess) -> None:
    """Newline, carriage return, tab, DEL, NEL (C1) and LINE SEPARATOR, on candidate and running."""
    with agent.connect() as m:
        for target in ("candidate", "running"):
            for subject_xml in CONTROL:
                with pytest.raises(RPCError) as caught:
                    m.edit_config(target=target, config=trustpoint(subject_xml))
                error = caught.value
                assert error.tag == "invalid-value", subject_xml
                assert error.path.strip() == SUBJECT_PATH
                assert error.message.strip() == "The subject name must not contain control characters (newline, tab...)."
                app_tag = error.xml.find(f"{{{NC}}}error-app-tag")
                assert app_tag is not None and app_tag.text == "invalid-subject-name"
                for source in ("candidate", "running"):
                    assert m.get_config(source).data_ele.find("c:crypto/c:ca/c:trustpoint", NS) is None
        # Leading and trailing whitespace of a leaf value is trimmed (as for every leaf): no control is kept.
        m.edit_config(target="running", config=trustpoint("&#10;  CN=r1,O=Acme&#13;&#10;"))
        tp = m.get_config("running").data_ele.find("c:crypto/c:ca/c:trustpoint", NS)
        assert tp is not None and tp.findtext("c:subject-name", namespaces=NS) == "CN=r1,O=Acme"


def key_labels(m) -> list[str | None]:
    data = m.get(filter=("subtree", f'<crypto xmlns="{CRYPTO}"><key/></crypto>')).data_ele
    return [e.findtext("c:label", namespaces=NS) for e in data.iterfind("c:crypto/c:key/c:rsa", NS)]


def test_default_key_label_from_a_long_fqdn(agent: AgentProcess) -> None:
    """hostname r1 + a 194-character domain: key-generate-rsa without a label still works."""
    with agent.connect() as m:
        m.edit_config(
            target="running",
            config=f'<config xmlns="{NC}"><hostname xmlns="{SYS}">r1</hostname>'
            f'<domain xmlns="{SYS}"><name>{LONG_DOMAIN}</name></domain></config>',
        )
        label = rpc(m, "key-generate-rsa", "<modulus>1024</modulus>").findtext("c:label", namespaces=NS)
        assert label is not None and LABEL.fullmatch(label) and len(label) == 64
        assert label.startswith("r1." + "a" * 10)
        assert label in key_labels(m)
        # the same host, the same default label: a second plain generate finds it
        with pytest.raises(RPCError) as again:
            rpc(m, "key-generate-rsa", "<modulus>1024</modulus>")
        assert again.value.tag == "data-exists" and label in again.value.message
        replaced = rpc(m, "key-generate-rsa", "<modulus>1024</modulus><replace>true</replace>")
        assert replaced.findtext("c:label", namespaces=NS) == label
        zeroized = rpc(m, "key-zeroize-rsa", f"<label>{label}</label>")
        assert zeroized.findtext("c:zeroized", namespaces=NS) == label
        assert label not in key_labels(m)


def test_ca_cli_default_key_label_from_a_long_fqdn(agent: AgentProcess, tmp_path: Path) -> None:
    """ca-cli names the keys as the agent would, instead of sending the too-long FQDN as a label."""
    with agent.connect() as m:
        m.edit_config(
            target="running",
            config=f'<config xmlns="{NC}"><hostname xmlns="{SYS}">r1</hostname>'
            f'<domain xmlns="{SYS}"><name>{LONG_DOMAIN}</name></domain></config>',
        )
    env = dict(os.environ, CA_AGENT_PASSWORD=ADMIN_PASSWORD, CA_CLI_HISTORY=str(tmp_path / "history"))
    done = subprocess.run(
        [sys.executable, "-m", "agent.cli", "--port", str(agent.port)],
        input="crypto key generate rsa\n1024\n",
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    names = [line.split(": ", 1)[1] for line in done.stdout.splitlines() if line.startswith("The name for the keys will be: ")]
    assert len(names) == 1 and LABEL.fullmatch(names[0]) and names[0].startswith("r1.aaaa")
    with agent.connect() as m:
        assert names[0] in key_labels(m)
