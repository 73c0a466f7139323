"""pyangbind (PyPI) classes generated from the modules the agent serves: the XML they serialise is accepted.

pyangbind's encoder wraps a module's data in an element named after the module;
its children go inside <config>. Runs drive_pyangbind.py in .venv-clients/pyangbind.
"""

from __future__ import annotations

import json
from pathlib import Path

from client_session import NC, NS, client_venv_bin, fetch_schemas, run_client
from lxml import etree

from agentproc import AgentProcess

DRIVER = Path(__file__).with_name("drive_pyangbind.py")


def test_pyangbind_serialised_config_is_committed(agent: AgentProcess, tmp_path: Path) -> None:
    python = client_venv_bin("pyangbind")
    schemas = tmp_path / "schemas"
    schemas.mkdir()
    out = tmp_path / "binding"
    out.mkdir()
    with agent.connect() as m:
        fetch_schemas(m, schemas)
        serialised = json.loads(run_client([str(python), str(DRIVER), str(schemas), str(out)]).stdout)
        config = etree.Element(f"{{{NC}}}config", nsmap={None: NC})
        for module in ("ca-agent-system", "ca-agent-crypto"):
            wrapper = etree.fromstring(serialised[module].encode())
            assert etree.QName(wrapper).localname == module
            config.extend(list(wrapper))
        m.edit_config(target="candidate", config=config)
        m.validate("candidate")
        m.commit()
        running = m.get_config("running").data_ele
    assert running.findtext("sys:hostname", namespaces=NS) == "pybind-router"
    assert running.findtext("sys:domain/sys:name", namespaces=NS) == "pybind.example.com"
    tp = running.find("crypto:crypto/crypto:ca/crypto:trustpoint[crypto:name='pybind-tp']", NS)
    assert tp is not None
    assert tp.findtext("crypto:enrollment/crypto:retry/crypto:period", namespaces=NS) == "5"
    assert tp.findtext("crypto:subject-name", namespaces=NS) == "CN=pybind-router,O=Example"
