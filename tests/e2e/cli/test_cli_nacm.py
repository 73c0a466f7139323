"""ca-cli under access control: a refused command reads as on the router, `show` leaves out what is hidden."""

from __future__ import annotations

from pathlib import Path

from cli_e2e_helpers import run_cli

from agentproc import AgentProcess

NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
SYS = "urn:ca-agent:yang:system"
CRYPTO = "urn:ca-agent:yang:crypto"
NACM = "urn:ietf:params:xml:ns:yang:ietf-netconf-acm"
P = "RP/0/RP0/CPU0:router"
HIDE_TRUSTPOINT = (
    f'<rule-list xmlns:c="{CRYPTO}"><name>auditors</name><group>auditor</group>'
    f"<rule><name>hide</name><path>/c:crypto/c:ca/c:trustpoint[c:name='secretca']</path>"
    f"<access-operations>read</access-operations><action>deny</action></rule></rule-list>"
)


def setup(agent: AgentProcess) -> None:
    users = "".join(f"<user><name>{n}</name><password-hash>$0${n}-pw</password-hash></user>" for n in ("oper", "audit"))
    with agent.connect() as m:
        m.edit_config(target="running", config=(
            f'<config xmlns="{NC}"><aaa xmlns="{SYS}">{users}</aaa>'
            f'<nacm xmlns="{NACM}"><groups><group><name>operator</name><user-name>oper</user-name></group>'
            f"<group><name>auditor</name><user-name>audit</user-name></group></groups>{HIDE_TRUSTPOINT}</nacm>"
            f'<crypto xmlns="{CRYPTO}"><ca><trustpoint><name>openca</name><enrollment><terminal/></enrollment>'
            f"</trustpoint><trustpoint><name>secretca</name><enrollment><terminal/></enrollment></trustpoint>"
            f"</ca></crypto></config>"))


def test_refused_commands_say_not_authorized(agent: AgentProcess, tmp_path: Path) -> None:
    setup(agent)
    done = run_cli(agent, tmp_path, "--user", "oper", CA_AGENT_PASSWORD="oper-pw", stdin=(
        "crypto key zeroize rsa\nyes\n"
        "crypto key generate rsa k1\n1024\n"
        "clear crypto ca certificates openca\n"
        "configure\nhostname evil\nend\n"
        "show crypto key mypubkey rsa\n"
    ))
    out = done.stdout.splitlines()
    assert out.count("% This command is not authorized") >= 3, done.stdout
    assert f"{P}(config)#hostname evil" in out
    assert out[out.index(f"{P}(config)#hostname evil") + 1] == "% This command is not authorized"
    assert "Key label: the_default" in done.stdout  # reading is allowed: the key is still there
    with agent.connect() as m:
        assert "evil" not in m.get_config(source="running").data_xml


def test_show_commands_leave_out_what_the_user_may_not_read(agent: AgentProcess, tmp_path: Path) -> None:
    setup(agent)
    admin = run_cli(agent, tmp_path, "-c", "show running-config")
    audit = run_cli(agent, tmp_path, "--user", "audit", "-c", "show running-config", CA_AGENT_PASSWORD="audit-pw")
    assert admin.returncode == 0 and audit.returncode == 0, audit.stderr
    assert "crypto ca trustpoint secretca" in admin.stdout
    assert "crypto ca trustpoint openca" in audit.stdout and "secretca" not in audit.stdout
    assert " secret $scrypt$" in admin.stdout and "secret" not in audit.stdout
    assert "taskgroup" in admin.stdout and "taskgroup" not in audit.stdout  # /nacm is default-deny-all
    # the auditor's view is the administrator's with lines left out, nothing else changed
    remaining = iter(admin.stdout.splitlines())
    assert all(any(line == other for other in remaining) for line in audit.stdout.splitlines())
    certificates = run_cli(agent, tmp_path, "--user", "audit", "-c", "show crypto ca certificates",
                           CA_AGENT_PASSWORD="audit-pw")
    assert certificates.returncode == 0 and "secretca" not in certificates.stdout
