"""The one NETCONF session every independent client goes through, and how its outcome is checked.

Each client (ncclient, netconf-console2, netconf-client, scrapli-netconf,
yangcli, Ansible) runs the same sequence against a fresh agent, with names of
its own (``Scenario``): hello and capabilities; <get> with a filter; <get-config>
with a filter; lock the candidate; edit it (hostname, domain, a trustpoint);
validate; commit; a confirmed commit then cancel-commit (running comes back);
an edit then discard-changes (the candidate comes back); unlock; the agent's
own RPC key-generate-rsa; close-session.

A client reports what it saw as raw XML (``Observed``: the agent's replies as
the client printed or returned them); ``check_observed`` reads them, and
``check_agent_after`` checks with ncclient, after the client has gone, that the
agent holds what the session left behind.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest
from lxml import etree
from ncclient import manager
from ncclient.xml_ import to_ele

from agentproc import AgentProcess

NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
SYS = "urn:ca-agent:yang:system"
CRYPTO = "urn:ca-agent:yang:crypto"
NCM = "urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring"
NS = {"nc": NC, "sys": SYS, "crypto": CRYPTO, "ncm": NCM}
CANDIDATE = "urn:ietf:params:netconf:capability:candidate:1.0"
CONFIRMED_COMMIT = "urn:ietf:params:netconf:capability:confirmed-commit:1.1"

# Filters as the clients send them.
KEYS_SUBTREE = f'<crypto xmlns="{CRYPTO}"><key><rsa><label/></rsa></key></crypto>'
USERS_SUBTREE = f'<aaa xmlns="{SYS}"><user><name/></user></aaa>'
HOSTNAME_SUBTREE = f'<hostname xmlns="{SYS}"/>'
CANCEL_COMMIT = f'<cancel-commit xmlns="{NC}"/>'
DISCARD_CHANGES = f'<discard-changes xmlns="{NC}"/>'


@dataclass(frozen=True)
class Scenario:
    """The names one client's session uses (each client its own, so a mix-up would show)."""

    client: str

    @property
    def committed(self) -> str:
        return f"{self.client}-committed"

    @property
    def confirmed(self) -> str:
        return f"{self.client}-confirmed"

    @property
    def discarded(self) -> str:
        return f"{self.client}-discarded"

    @property
    def domain(self) -> str:
        return f"{self.client}.example.com"

    @property
    def trustpoint(self) -> str:
        return f"{self.client}-tp"

    @property
    def key_label(self) -> str:
        return f"{self.client}-key"

    def first_edit_parts(self) -> list[str]:
        """The first candidate edit, one top-level node each: hostname, domain, a trustpoint."""
        return [
            f'<hostname xmlns="{SYS}">{self.committed}</hostname>',
            f'<domain xmlns="{SYS}"><name>{self.domain}</name></domain>',
            f'<crypto xmlns="{CRYPTO}"><ca><trustpoint><name>{self.trustpoint}</name>'
            f"<enrollment><url>http://ca.example.com/scep</url></enrollment>"
            f"<rsakeypair>{self.key_label}</rsakeypair></trustpoint></ca></crypto>",
        ]

    def first_edit(self) -> str:
        """The children of <config> of the first candidate edit."""
        return "".join(self.first_edit_parts())

    def hostname_edit(self, name: str) -> str:
        return f'<hostname xmlns="{SYS}">{name}</hostname>'

    def key_generate(self) -> str:
        return f'<key-generate-rsa xmlns="{CRYPTO}"><label>{self.key_label}</label><modulus>1024</modulus></key-generate-rsa>'

    def as_json(self) -> str:
        """What a client script in another virtual environment needs to run the scenario."""
        return json.dumps({**asdict(self), "first_edit": self.first_edit(), "committed": self.committed,
                           "confirmed": self.confirmed, "discarded": self.discarded,
                           "key_generate": self.key_generate(), "key_label": self.key_label})


@dataclass
class Observed:
    """What one client saw, as XML text it printed or returned (any envelope: rpc-reply, data, or none)."""

    capabilities: list[str]
    get_keys: str  # <get> filtered on /crypto/key/rsa/label
    get_config_users: str  # <get-config source=running> filtered on /aaa/user/name
    after_confirmed: str  # hostname in running after the confirmed commit
    after_cancel: str  # hostname in running after cancel-commit
    after_discard: str  # hostname in the candidate after an edit and discard-changes
    key_reply: str  # the reply to key-generate-rsa


def texts(xml: str, name: str) -> list[str]:
    """The texts of every element ``name`` (prefix sys: or crypto:) in ``xml``, the root included."""
    prefix, local = name.split(":")
    root = etree.fromstring(xml.strip().encode())
    return [node.text or "" for node in root.iter(f"{{{NS[prefix]}}}{local}")]


def check_observed(seen: Observed, scenario: Scenario) -> None:
    """Assert that each step of the session answered as RFC 6241 and the agent's YANG say."""
    assert CANDIDATE in seen.capabilities and CONFIRMED_COMMIT in seen.capabilities, seen.capabilities
    assert any("module=ca-agent-crypto" in c for c in seen.capabilities), seen.capabilities
    assert "the_default" in texts(seen.get_keys, "crypto:label"), seen.get_keys
    assert texts(seen.get_config_users, "sys:name") == ["admin"], seen.get_config_users
    assert texts(seen.after_confirmed, "sys:hostname") == [scenario.confirmed], seen.after_confirmed
    assert texts(seen.after_cancel, "sys:hostname") == [scenario.committed], seen.after_cancel
    assert texts(seen.after_discard, "sys:hostname") == [scenario.committed], seen.after_discard
    assert texts(seen.key_reply, "crypto:label") == [scenario.key_label], seen.key_reply


def check_agent_after(agent: AgentProcess, scenario: Scenario) -> None:
    """With ncclient, after the client has closed: what the session committed, and that it is gone."""
    with agent.connect() as m:
        running = m.get_config("running").data_ele
        assert running.findtext("sys:hostname", namespaces=NS) == scenario.committed
        assert running.findtext("sys:domain/sys:name", namespaces=NS) == scenario.domain
        assert running.findtext("crypto:crypto/crypto:ca/crypto:trustpoint/crypto:name", namespaces=NS) == scenario.trustpoint
        candidate = m.get_config("candidate").data_ele
        assert candidate.findtext("sys:hostname", namespaces=NS) == scenario.committed
        keys = m.get(filter=("subtree", KEYS_SUBTREE)).data_ele
        assert scenario.key_label in [e.text for e in keys.iterfind(".//crypto:label", NS)]
        own = m.session_id

        def other_sessions() -> list[str]:
            state = m.get(filter=("subtree", f'<netconf-state xmlns="{NCM}"><sessions/></netconf-state>')).data_ele
            return [s for s in (e.text for e in state.iterfind(".//ncm:session-id", NS)) if s != own]

        deadline = time.monotonic() + 10
        while other_sessions():  # close-session (or the client's disconnect) ends the session at once
            assert time.monotonic() < deadline, f"the client's session is still open: {other_sessions()}"
            time.sleep(0.05)
        # the client's lock went with it: this session can take the candidate
        m.lock("candidate")
        m.unlock("candidate")


def fetch_schemas(m: manager.Manager, into: Path) -> list[Path]:
    """Every module of /netconf-state/schemas, through <get-schema>, as NAME@REVISION.yang."""
    schemas = m.get(filter=("subtree", f'<netconf-state xmlns="{NCM}"><schemas/></netconf-state>')).data_ele
    files = []
    for schema in schemas.iterfind(".//ncm:schema", NS):
        if schema.findtext("ncm:format", namespaces=NS).split(":")[-1] != "yang":
            continue
        name, version = schema.findtext("ncm:identifier", namespaces=NS), schema.findtext("ncm:version", namespaces=NS)
        reply = m.dispatch(to_ele(f'<get-schema xmlns="{NCM}"><identifier>{name}</identifier>'
                                  f"<version>{version}</version><format>yang</format></get-schema>"))
        text = etree.fromstring(reply.xml.encode()).findtext(f"{{{NCM}}}data")
        assert text and f"module {name}" in text, reply.xml[:500]
        path = into / f"{name}@{version}.yang"
        path.write_text(text)
        files.append(path)
    return files


def client_venv_bin(name: str, program: str = "python") -> Path:
    """``program`` in the client's own virtual environment (built by tests/run.sh); skips outside it."""
    root = os.environ.get("CA_AGENT_CLIENT_VENVS")
    if not root:
        pytest.skip(f"{name} runs from its own virtual environment: run through tests/run.sh, or set "
                    "CA_AGENT_CLIENT_VENVS to the directory it builds (.venv-clients)")
    path = Path(root) / name / "bin" / program
    assert path.exists(), f"{path} is missing although CA_AGENT_CLIENT_VENVS is set: tests/run.sh builds it"
    return path


def require_program(name: str, package: str) -> str:
    """A Debian-packaged program's path; missing, it fails under tests/run.sh (which installs it), else skips."""
    found = shutil.which(name)
    if found is None:
        if os.environ.get("CA_AGENT_CLIENT_VENVS"):
            pytest.fail(f"{name} (Debian package {package}) is missing although tests/run.sh installs it")
        pytest.skip(f"{name} (Debian package {package}) is not installed; tests/run.sh installs it")
    return found


def run_client(argv: list[str], timeout: float = 300, **kwargs: object) -> subprocess.CompletedProcess[str]:
    """Run a client program; a non-zero exit fails the test with everything it printed."""
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kwargs)  # type: ignore[call-overload]
    assert done.returncode == 0, f"{argv[0]} exited {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    return done
