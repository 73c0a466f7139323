"""Ansible (ansible.netcommon over ansible_connection=ansible.netcommon.netconf) through the whole session.

ansible-playbook runs from its own virtual environment (.venv-clients/ansible,
built by tests/run.sh with ansible, ncclient, jxmlease and xmltodict): it
brings paramiko 5, the agent pins paramiko < 4. The playbook is
ansible_session.yml; it writes what it saw to a JSON file.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

from client_session import Observed, Scenario, check_agent_after, check_observed, client_venv_bin, run_client

from agentproc import ADMIN_PASSWORD, AgentProcess

PLAYBOOK = Path(__file__).with_name("ansible_session.yml")


def test_ansible_playbook_full_session(agent: AgentProcess, tmp_path: Path) -> None:
    playbook = client_venv_bin("ansible", "ansible-playbook")
    scenario = Scenario("ansible")
    inventory = tmp_path / "inventory.ini"
    inventory.write_text(
        f"r1 ansible_host=127.0.0.1 ansible_port={agent.port} ansible_user=admin ansible_password={ADMIN_PASSWORD} "
        "ansible_connection=ansible.netcommon.netconf ansible_network_os=default\n"
    )
    observed = tmp_path / "observed.json"
    extra = tmp_path / "scenario.json"
    extra.write_text(json.dumps({"first_edit": scenario.first_edit(), "confirmed": scenario.confirmed,
                                 "discarded": scenario.discarded, "key_label": scenario.key_label,
                                 "observed_file": str(observed), "second_trustpoint": "ansible-terminal"}))
    env = dict(
        os.environ,
        PATH=f"{playbook.parent}{os.pathsep}{os.environ['PATH']}",
        ANSIBLE_HOST_KEY_CHECKING="False",
        ANSIBLE_HOME=str(tmp_path / "ansible-home"),
        ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-tmp"),
        ANSIBLE_REMOTE_TEMP=str(tmp_path / "ansible-remote-tmp"),  # the copy task runs on localhost
        ANSIBLE_PERSISTENT_CONTROL_PATH_DIR=str(tmp_path / "pc"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_RETRY_FILES_ENABLED="False",
    )
    env.pop("PYTHONPATH", None)  # ansible's python is the client venv's, not ours
    run_client([str(playbook), "-i", str(inventory), "-e", f"@{extra}", str(PLAYBOOK)], env=env, cwd=tmp_path)
    seen = json.loads(observed.read_text())
    seen["key_reply"] = base64.b64decode(seen["key_reply"]).decode()  # netconf_rpc's stdout is bytes
    check_observed(Observed(**seen), scenario)
    check_agent_after(agent, scenario)
    with agent.connect() as m:
        names = m.get_config("running", filter=("xpath", "/crypto:crypto/crypto:ca/crypto:trustpoint/crypto:name"))
        assert "ansible-terminal" in names.data_xml
