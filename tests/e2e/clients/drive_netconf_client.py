"""The client session (client_session.py) with netconf-client, in its own virtual environment.

    python drive_netconf_client.py PORT PASSWORD SCENARIO_JSON  ->  the Observed JSON on stdout

netconf-client needs paramiko 5 while the agent pins paramiko < 4, so this runs
in .venv-clients/netconf-client (tests/run.sh) and imports nothing of ours.
"""

from __future__ import annotations

import json
import sys

from netconf_client.connect import connect_ssh
from netconf_client.ncclient import Manager

SYS = "urn:ca-agent:yang:system"
NC = "urn:ietf:params:xml:ns:netconf:base:1.0"


def config(children: str) -> str:
    return f'<config xmlns="{NC}">{children}</config>'


def main(port: int, password: str, scenario: dict[str, str]) -> dict[str, object]:
    hostname = f'<filter><hostname xmlns="{SYS}"/></filter>'
    with connect_ssh(host="127.0.0.1", port=port, username="admin", password=password, general_timeout=60) as session:
        m = Manager(session, timeout=60)
        seen: dict[str, object] = {"capabilities": list(session.server_capabilities)}
        seen["get_keys"] = m.get(
            filter='<filter><crypto xmlns="urn:ca-agent:yang:crypto"><key><rsa><label/></rsa></key></crypto></filter>'
        ).data_xml.decode()
        seen["get_config_users"] = m.get_config(
            source="running", filter=f'<filter><aaa xmlns="{SYS}"><user><name/></user></aaa></filter>'
        ).data_xml.decode()
        m.lock(target="candidate")
        m.edit_config(config(scenario["first_edit"]), target="candidate")
        m.validate(source="candidate")
        m.commit()
        m.edit_config(config(f'<hostname xmlns="{SYS}">{scenario["confirmed"]}</hostname>'), target="candidate")
        m.commit(confirmed=True, confirm_timeout=120)
        seen["after_confirmed"] = m.get_config(source="running", filter=hostname).data_xml.decode()
        m.cancel_commit()
        seen["after_cancel"] = m.get_config(source="running", filter=hostname).data_xml.decode()
        m.edit_config(config(f'<hostname xmlns="{SYS}">{scenario["discarded"]}</hostname>'), target="candidate")
        m.discard_changes()
        seen["after_discard"] = m.get_config(source="candidate", filter=hostname).data_xml.decode()
        m.unlock(target="candidate")
        reply = m.dispatch(scenario["key_generate"]).xml
        seen["key_reply"] = reply.decode() if isinstance(reply, bytes) else reply
        # NMDA and with-defaults, as netconf-client users send them: the operational hostname, tagged
        seen["get_data_operational"] = m.get_data(
            datastore="ds:operational", filter=f'<subtree-filter><hostname xmlns="{SYS}"/></subtree-filter>',
            with_defaults="report-all-tagged",
        ).data_xml.decode()
        m.close_session()
    return seen


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3]))))
