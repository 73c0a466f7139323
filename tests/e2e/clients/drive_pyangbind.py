"""Python classes from the agent's own modules with pyangbind, and configuration serialised by them.

    python drive_pyangbind.py SCHEMA_DIR OUT_DIR  ->  {"ca-agent-system": XML, "ca-agent-crypto": XML}

Runs in .venv-clients/pyangbind (tests/run.sh): pyangbind installs enum34, which
has no place in the agent's environment. SCHEMA_DIR holds the modules fetched
with <get-schema>; the bindings are generated from them with pyang's pybind plugin.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pyangbind
from pyangbind.lib.serialise import pybindIETFXMLEncoder


def main(schemas: Path, out: Path) -> dict[str, str]:
    plugin = Path(os.path.dirname(pyangbind.__file__)) / "plugin"
    pyang = Path(sys.executable).with_name("pyang")
    modules = [str(p) for p in schemas.glob("ca-agent-*.yang")]
    subprocess.run([str(pyang), "--plugindir", str(plugin), "-f", "pybind", "-p", str(schemas),
                    "-o", str(out / "agent_binding.py"), *modules], check=True)
    sys.path.insert(0, str(out))
    binding = importlib.import_module("agent_binding")
    system = binding.ca_agent_system()
    system.hostname = "pybind-router"
    system.domain.name = "pybind.example.com"
    crypto = binding.ca_agent_crypto()
    tp = crypto.crypto.ca.trustpoint.add("pybind-tp")
    tp.enrollment.url = "http://ca.example.com/scep"
    tp.enrollment.retry.period = 5
    tp.enrollment.retry.count = 20
    tp.rsakeypair = "pybind-key"
    tp.subject_name = "CN=pybind-router,O=Example"
    try:  # the binding itself enforces the module's range (1..60 minutes)
        tp.enrollment.retry.period = 61
    except ValueError:
        pass
    else:
        raise SystemExit("pyangbind accepted a retry period of 61")
    return {"ca-agent-system": pybindIETFXMLEncoder.serialise(system),
            "ca-agent-crypto": pybindIETFXMLEncoder.serialise(crypto)}


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]), Path(sys.argv[2]))))
