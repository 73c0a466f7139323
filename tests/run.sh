#!/usr/bin/env bash
# Installs everything the tests need on a fresh Debian 12 machine, then runs them:
# YANG lint (pyang, yanglint), ruff, mypy and pytest. .ci/run calls this.
#
# Python packages go into the project's virtual environment (tools/venv.sh: .venv, or $CA_AGENT_VENV),
# created here when missing: Debian's python3 has no pip and refuses 'pip install' outside one (PEP 668).
set -euo pipefail
cd "$(dirname "$0")/.."

if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends \
    python3 python3-venv \
    scep slapd ldap-utils snmptrapd snmp netconfd yangcli libyang2-tools openssh-server \
    iproute2 openssl util-linux >/dev/null
fi
. tools/venv.sh
ensure_venv test
python="$VIRTUAL_ENV/bin/python"

# Independent NETCONF clients whose dependencies clash with the agent's (netconf-client and Ansible bring
# paramiko 5, the agent pins paramiko < 4; pyangbind brings enum34) get a virtual environment each, under
# $CA_AGENT_CLIENT_VENVS (default .venv-clients), rebuilt only when their package list changes. tests/e2e/clients/ runs them from there; without the
# variable (pytest run by hand) those tests skip and say why.
export CA_AGENT_CLIENT_VENVS=${CA_AGENT_CLIENT_VENVS:-$PWD/.venv-clients}
ensure_client_venv() {  # NAME PACKAGE...
  local dir="$CA_AGENT_CLIENT_VENVS/$1"; shift
  if [ ! -x "$dir/bin/python" ] || [ "$(cat "$dir/.installed" 2>/dev/null)" != "$*" ]; then
    echo "== client virtual environment $dir: $*"
    rm -rf "$dir"
    python3 -m venv "$dir"
    "$dir/bin/python" -m pip install -q --disable-pip-version-check "$@"
    echo "$*" >"$dir/.installed"
  fi
}
ensure_client_venv netconf-client netconf-client==3.6.0
ensure_client_venv ansible ansible==12.3.0 ncclient==0.7.1 jxmlease==1.0.3 xmltodict==1.0.4
ensure_client_venv pyangbind pyangbind==0.8.7  # it installs enum34: never next to the agent

echo "== YANG: pyang --lint and yanglint (no warnings allowed)"
out=$(pyang --lint -p yang yang/*.yang 2>&1) || { echo "$out"; exit 1; }
[ -z "$out" ] || { echo "$out"; exit 1; }
# ietf-netconf-acm (imported for its default-deny extensions) is not built into libyang: use pyang's copy.
ietf_dir=$(python3 -c 'from agent.schema.model import ietf_yang_dirs; print(ietf_yang_dirs()[0])')
out=$(yanglint -p yang -p "$ietf_dir" yang/*.yang 2>&1) || { echo "$out"; exit 1; }
[ -z "$out" ] || { echo "$out"; exit 1; }

echo "== ruff and mypy"
ruff check agent tests
mypy agent

echo "== bytecode of the agent and the client examples, once"
# The suite starts the agent (and ca-cli, and the client examples) hundreds of times. Where
# PYTHONDONTWRITEBYTECODE is set (it is on our CI machines) Python writes no __pycache__, so every start
# compiled all of agent/ again: ~0.7 s of a 3 s start on a slow 2-core machine. compileall writes the .pyc
# files regardless; Python still reads them. (tests/ is imported once per worker, bench/ not at all.)
"$python" -m compileall -q -j 0 agent client_examples >/dev/null

echo "== pytest, in a private network namespace (scepserver listens on every interface)"
# Two workers (pytest-xdist), a test file each at a time: most tests wait on an agent they started (~360
# agent starts of 1-2 s), so one worker left a 2-core machine half idle and the suite took 19 min here.
# --no-loadscope-reorder: the files in collection order (end-to-end first, unit tests last), not sorted by
# their number of tests, which put the two-test file of 100 kill -9 restarts (4 min on a slow machine) near
# the end, for one worker to run alone while the other had nothing left.
bash tests/netns_run.sh "$python" -m pytest -q -p no:cacheprovider -n 2 --dist loadfile --no-loadscope-reorder "$@"
