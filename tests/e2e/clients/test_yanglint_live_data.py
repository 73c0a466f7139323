"""The agent's live data, validated by libyang's yanglint against the modules the agent itself serves.

Every module listed in /netconf-state/schemas is fetched with <get-schema> into
a temporary directory (never the checkout's yang/), then yanglint validates,
with zero errors or warnings allowed:
- the <get-config> reply of running as a whole configuration datastore (-t config),
- the <get> reply (-t get),
- the <get-data> replies of ds:running (-t config) and ds:operational (-t data: a complete
  datastore with state, so mandatory state nodes and leafrefs count too),
with a populated datastore: hostname, domain, an authentication key, and a
trustpoint whose CA is authenticated and whose router certificate is enrolled
from the lab CA (`ca-agent lab-ca`), so the state under /crypto is rich.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
from client_session import CRYPTO, NC, NCM, NS, SYS, fetch_schemas, require_program
from lxml import etree
from ncclient import manager
from ncclient.xml_ import to_ele

from agentproc import AgentProcess
from labcaproc import LabCaProcess

NMDA = "urn:ietf:params:xml:ns:yang:ietf-netconf-nmda"
DS = "urn:ietf:params:xml:ns:yang:ietf-datastores"
YANGLIB = "urn:ietf:params:xml:ns:yang:ietf-yang-library"


def populate(m: manager.Manager, ca_url: str, tmp_path: Path) -> None:
    m.edit_config(target="candidate", config=f"""<config xmlns="{NC}">
        <hostname xmlns="{SYS}">lint-router</hostname>
        <domain xmlns="{SYS}"><name>lint.example.com</name></domain>
        <crypto xmlns="{CRYPTO}"><ca><trustpoint><name>labca</name>
          <enrollment><url>{ca_url}</url></enrollment><rsakeypair>lint-key</rsakeypair>
          <subject-name>CN=lint-router,O=Example</subject-name>
        </trustpoint></ca></crypto></config>""")
    m.commit()
    m.dispatch(to_ele(f'<key-generate-rsa xmlns="{CRYPTO}"><label>lint-key</label><modulus>1024</modulus>'
                      "</key-generate-rsa>"))
    key = tmp_path / "auth_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "rsa", "-b", "2048", "-N", "", "-f", str(key)], check=True, timeout=60)
    m.dispatch(to_ele(f'<key-import-authentication-rsa xmlns="{CRYPTO}"><label>operator-key</label>'
                      f"<public-key>{(tmp_path / 'auth_key.pub').read_text().strip()}</public-key>"
                      "</key-import-authentication-rsa>"))
    m.dispatch(to_ele(f'<ca-authenticate xmlns="{CRYPTO}"><trustpoint>labca</trustpoint><accept/></ca-authenticate>'))
    m.dispatch(to_ele(f'<ca-enroll xmlns="{CRYPTO}"><trustpoint>labca</trustpoint>'
                      "<challenge-password>any</challenge-password></ca-enroll>"))
    deadline = time.monotonic() + 30
    while True:  # the lab CA issues at once; the certificate is installed by the enrollment
        state = m.get(filter=("xpath", "/crypto:crypto/crypto:ca/crypto:trustpoint/crypto:certificate")).data_ele
        if state.findtext(".//crypto:certificate/crypto:status", namespaces=NS) == "available":
            return
        assert time.monotonic() < deadline, etree.tostring(state).decode()
        time.sleep(0.1)


def data_file(data: etree._Element, path: Path) -> Path:
    """The children of a <data> element, one after another, as yanglint reads an instance file."""
    path.write_bytes(b"".join(etree.tostring(child) for child in data))
    return path


def yanglint(modules: list[Path], data: Path, kind: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["yanglint", "-D", "-p", str(modules[0].parent), "-t", kind, *map(str, modules), str(data)],
        capture_output=True, text=True, timeout=120, cwd=data.parent,
    )


def assert_valid(modules: list[Path], data: Path, kind: str) -> None:
    done = yanglint(modules, data, kind)
    assert done.returncode == 0 and not done.stdout.strip() and not done.stderr.strip(), (
        f"yanglint -t {kind} {data.name}: rc {done.returncode}\n{done.stdout}{done.stderr}")


def get_data(m: manager.Manager, datastore: str) -> etree._Element:
    reply = m.dispatch(to_ele(f'<get-data xmlns="{NMDA}" xmlns:ds="{DS}"><datastore>ds:{datastore}</datastore>'
                              "</get-data>"))
    data = etree.fromstring(reply.xml.encode()).find(f"{{{NMDA}}}data")
    assert data is not None, reply.xml[:500]
    return data


@pytest.fixture
def lab_ca(tmp_path: Path):
    lab = LabCaProcess(tmp_path / "lab-ca").start()
    yield lab
    lab.stop()


def test_live_replies_are_valid_against_the_served_modules(agent: AgentProcess, lab_ca: LabCaProcess,
                                                          tmp_path: Path) -> None:
    require_program("yanglint", "libyang2-tools")
    schemas = tmp_path / "schemas"
    schemas.mkdir()
    with agent.connect() as m:
        populate(m, lab_ca.url, tmp_path)
        fetched = fetch_schemas(m, schemas)
        # Implemented modules are loaded; the import-only ones are found in the same directory
        # as their importers need them (loading them all would implement them too).
        library = m.get(filter=("subtree", f'<yang-library xmlns="{YANGLIB}"><module-set><module><name/>'
                                           "</module></module-set></yang-library>")).data_ele
        implemented = {e.text for e in library.iterfind(f".//{{{YANGLIB}}}module/{{{YANGLIB}}}name")}
        modules = [p for p in fetched if p.name.split("@")[0] in implemented]
        names = {p.name.split("@")[0] for p in modules}
        assert {"ca-agent-system", "ca-agent-crypto", "ietf-netconf-monitoring", "ietf-yang-library"} <= names
        config = data_file(m.get_config("running").data_ele, tmp_path / "get-config.xml")
        everything = m.get().data_ele
        state = data_file(everything, tmp_path / "get.xml")
        running = data_file(get_data(m, "running"), tmp_path / "get-data-running.xml")
        operational = data_file(get_data(m, "operational"), tmp_path / "get-data-operational.xml")
    # the state is as rich as promised: a CA certificate and an enrolled router certificate
    tp = everything.find("crypto:crypto/crypto:ca/crypto:trustpoint", NS)
    assert tp.find("crypto:ca-certificate", NS) is not None and tp.find("crypto:certificate", NS) is not None
    assert_valid(modules, config, "config")
    assert_valid(modules, state, "get")
    assert_valid(modules, running, "config")
    assert_valid(modules, operational, "data")  # the whole operational datastore: mandatory nodes, leafrefs too


def test_yanglint_check_catches_invalid_data(agent: AgentProcess, tmp_path: Path) -> None:
    """The check can fail: an out-of-range retry period in otherwise live data is reported."""
    require_program("yanglint", "libyang2-tools")
    schemas = tmp_path / "schemas"
    schemas.mkdir()
    with agent.connect() as m:
        modules = fetch_schemas(m, schemas)
        data = m.get_config("running").data_ele
    data.append(etree.fromstring(f'<crypto xmlns="{CRYPTO}"><ca><trustpoint><name>bad</name>'
                                 "<enrollment><url>http://x/scep</url><retry><period>61</period></retry></enrollment>"
                                 "</trustpoint></ca></crypto>"))
    done = yanglint(modules, data_file(data, tmp_path / "bad.xml"), "config")
    assert done.returncode != 0 and "period" in done.stdout + done.stderr, done


def identity_namespace(element: etree._Element) -> str | None:
    """The namespace an identityref value resolves to (RFC 7950 9.10.3), from the declarations in scope."""
    prefix, _, name = (element.text or "").rpartition(":")
    return element.nsmap.get(prefix or None)


@pytest.mark.parametrize("how", ["get", "filtered get", "get-data operational"])
def test_identityref_values_resolve_to_their_modules(agent: AgentProcess, how: str) -> None:
    """ncm:yang, ncm:netconf-ssh, ds:running: every prefix declared, or none and the module's default namespace."""
    with agent.connect() as m:
        if how == "get":
            data = m.get().data_ele
        elif how == "filtered get":
            data = m.get(filter=("subtree", f'<netconf-state xmlns="{NCM}"><schemas/><sessions/></netconf-state>'
                                 )).data_ele
        else:
            data = get_data(m, "operational")
        # re-parse the reply as a client does: the declarations are those on the wire
        data = etree.fromstring(etree.tostring(data))
    formats = data.findall(".//ncm:schema/ncm:format", NS)
    transports = data.findall(".//ncm:session/ncm:transport", NS)
    names = data.findall(".//{urn:ietf:params:xml:ns:yang:ietf-yang-library}datastore/"
                         "{urn:ietf:params:xml:ns:yang:ietf-yang-library}name")
    assert formats and transports and (names or how == "filtered get")
    assert {identity_namespace(e) for e in formats + transports} == {NCM}
    assert {identity_namespace(e) for e in names} <= {DS}
