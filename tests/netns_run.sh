#!/bin/sh
# Run a command inside a private network namespace that has only loopback (up),
# with CA_AGENT_NETNS=1 set so tests that start all-interfaces servers
# (micromdm scepserver) know they are isolated. Nothing inside can reach, or be
# reached from, any real network.
#
#   bash tests/netns_run.sh python -m pytest tests/e2e/scep -q
#
# Unprivileged, -r maps the caller to root in a new user namespace (where user
# namespaces are allowed). Root needs none, and must not ask for one: the kernel
# refuses a user namespace inside a chroot (e.g. a debootstrap'ed Debian).
set -eu
if [ "$#" -eq 0 ]; then
    echo "usage: $0 COMMAND [ARG...]" >&2
    exit 2
fi
if ! command -v unshare >/dev/null 2>&1; then
    echo "$0: unshare (util-linux) is required" >&2
    exit 127
fi
if [ "$(id -u)" = 0 ]; then
    flags=-n
else
    flags=-rn
fi
exec unshare "$flags" sh -c 'ip link set lo up && CA_AGENT_NETNS=1 exec "$@"' sh "$@"
