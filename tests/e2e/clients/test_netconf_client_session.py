"""netconf-client (PyPI `netconf-client`) through the whole session, from its own virtual environment.

It needs paramiko 5, the agent pins paramiko < 4: tests/run.sh installs it into
.venv-clients/netconf-client and this test runs drive_netconf_client.py there.
"""

from __future__ import annotations

import json
from pathlib import Path

from client_session import NS, Observed, Scenario, check_agent_after, check_observed, client_venv_bin, run_client
from lxml import etree

from agentproc import ADMIN_PASSWORD, AgentProcess

DRIVER = Path(__file__).with_name("drive_netconf_client.py")
WD_ATTR = "{urn:ietf:params:xml:ns:netconf:default:1.0}default"


def test_netconf_client_full_session(agent: AgentProcess) -> None:
    python = client_venv_bin("netconf-client")
    scenario = Scenario("netconf-client")
    done = run_client([str(python), str(DRIVER), str(agent.port), ADMIN_PASSWORD, scenario.as_json()])
    seen = json.loads(done.stdout)
    operational = etree.fromstring(seen.pop("get_data_operational").encode())
    check_observed(Observed(**seen), scenario)
    hostname = operational.find("sys:hostname", NS)
    assert hostname is not None and hostname.text == scenario.committed
    assert hostname.get(WD_ATTR) is None  # set explicitly, so not tagged as a default (RFC 6243 report-all-tagged)
    check_agent_after(agent, scenario)
