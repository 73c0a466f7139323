# Sourced by ./ca-agent, ./ca-cli and tests/run.sh: make sure the project's virtual environment exists
# and holds this checkout (editable) with its dependencies, then use it.
#
#   . tools/venv.sh && ensure_venv [EXTRAS]      # e.g. ensure_venv test
#
# Why a virtual environment: Debian 12's python3 has no pip and refuses 'pip install' outside one (PEP 668).
# Debian's python3 needs the python3-venv package for 'python3 -m venv'; run as root, this installs it
# (and python3 itself) with apt-get when missing. Elsewhere (e.g. a pyenv Python with pip) the same works.
# The environment is $CA_AGENT_VENV, default .venv in the checkout; it is (re)installed only when
# setup.cfg or the extras asked for change.

ca_agent_root=$(cd "$(dirname "$0")" && while [ ! -f setup.cfg ] && [ "$PWD" != / ]; do cd ..; done && pwd)

_venv_say() { echo "ca-agent setup: $*" >&2; }

_venv_apt_install() {
    if ! command -v apt-get >/dev/null 2>&1 || [ "$(id -u)" != 0 ]; then
        _venv_say "please install: $* (e.g. sudo apt-get install $*), then run this again"
        return 1
    fi
    _venv_say "installing $* with apt-get"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

_venv_python() {
    # The Python to build the environment from: python3, at least 3.11.
    if ! command -v python3 >/dev/null 2>&1; then
        _venv_apt_install python3 python3-venv || return 1
    fi
    if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
        _venv_say "python3 is $(python3 -V 2>&1); ca-agent needs Python 3.11 or later"
        return 1
    fi
}

ensure_venv() {
    extras=${1:-}
    venv=${CA_AGENT_VENV:-$ca_agent_root/.venv}
    spec="$ca_agent_root"
    [ -n "$extras" ] && spec="$ca_agent_root[$extras]"
    stamp="$(cksum <"$ca_agent_root/setup.cfg" | cut -d' ' -f1) $extras"
    if [ ! -x "$venv/bin/python" ] || [ "$(cat "$venv/.ca-agent-installed" 2>/dev/null)" != "$stamp" ]; then
        _venv_python || return 1
        if [ ! -x "$venv/bin/python" ]; then
            # Debian's python3 without python3-venv has no ensurepip: venv creation fails half-way.
            if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
                _venv_apt_install python3-venv || return 1
            fi
            _venv_say "creating the virtual environment $venv"
            rm -rf "$venv"
            python3 -m venv "$venv" || return 1
        fi
        _venv_say "installing ca-agent${extras:+ [$extras]} and its dependencies into $venv"
        "$venv/bin/python" -m pip install -q --disable-pip-version-check -e "$spec" || return 1
        echo "$stamp" >"$venv/.ca-agent-installed"
    fi
    VIRTUAL_ENV=$venv
    PATH="$venv/bin:$PATH"
    export VIRTUAL_ENV PATH
}
