"""What every example shares: --host/--port/--user, the password from $CA_AGENT_PASSWORD, plain ncclient.

Nothing here hides NETCONF: connect() is ncclient's manager.connect, rpc()
is manager.dispatch of an XML string, and run() turns errors into a message
and exit status 1.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from xml.sax.saxutils import escape

from lxml import etree
from ncclient import manager
from ncclient.operations import RPCError
from ncclient.transport.errors import TransportError

CRYPTO = "urn:ca-agent:yang:crypto"  # yang/ca-agent-crypto.yang
SYS = "urn:ca-agent:yang:system"  # yang/ca-agent-system.yang
NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
NS = {"c": CRYPTO, "s": SYS}


def parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with --host, --port and --user."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--host", default="127.0.0.1", help="agent address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8830, help="NETCONF over SSH port (default 8830)")
    p.add_argument("--user", default="admin", help="user name (default admin)")
    return p


def connect(args: argparse.Namespace) -> manager.Manager:
    """Open a NETCONF session; the password is $CA_AGENT_PASSWORD."""
    password = os.environ.get("CA_AGENT_PASSWORD")
    if not password:
        raise SystemExit("error: set CA_AGENT_PASSWORD to the agent user's password")
    return manager.connect(
        host=args.host,
        port=args.port,
        username=args.user,
        password=password,
        hostkey_verify=False,  # the agent makes its own host key at first start; pin it in production
        allow_agent=False,
        look_for_keys=False,
        timeout=300,
    )


def rpc(m: manager.Manager, name: str, body: str = "") -> etree._Element:
    """Call a ca-agent-crypto RPC; returns the <rpc-reply> (its children are the RPC's output leaves)."""
    reply = m.dispatch(etree.fromstring(f'<{name} xmlns="{CRYPTO}">{body}</{name}>'))
    return etree.fromstring(reply.xml.encode())


def leaf(name: str, value: str | int | None) -> str:
    """<name>value</name>, XML-escaped; nothing when the value is None."""
    return "" if value is None else f"<{name}>{escape(str(value))}</{name}>"


def edit_and_commit(m: manager.Manager, config: str) -> None:
    """<edit-config> of the candidate, then <commit>."""
    m.edit_config(target="candidate", config=f'<config xmlns="{NC}">{config}</config>')
    m.commit()


def run(main: Callable[[], int | None]) -> None:
    """Run an example's main(); NETCONF errors become a message and exit status 1."""
    try:
        sys.exit(main() or 0)
    except RPCError as error:
        print(f"error: the agent refused ({error.tag}): {error.message}", file=sys.stderr)
    except (TransportError, OSError) as error:
        print(f"error: NETCONF session failed: {error}", file=sys.stderr)
    sys.exit(1)
