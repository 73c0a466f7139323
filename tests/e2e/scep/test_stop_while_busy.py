"""The agent stops promptly on SIGTERM even while background work waits on a CA that does not answer.

Background polls and CRL refreshes run on worker pools; Python waits at exit
for every running pool job, and a job waiting on a CA that never answers ends
only at its deadline (30 s for SCEP, 10 s per CRL source).
"""

from __future__ import annotations

import socket
import time
import urllib.parse

from lxml import etree
from test_ca_over_netconf import NS, configure, rpc, trustpoint

FAST = ["--retry-period-unit", "0.05"]  # a retry period of 1 'minute' polls every 0.05 s


def test_sigterm_while_a_poll_waits_on_a_dead_ca_stops_at_once(lab_cas, agent_factory) -> None:
    lab = lab_cas("ca", "--challenge", "pw", "--manual-approval")
    agent = agent_factory(args=FAST).start()
    with agent.connect() as m:
        rpc(m, "key-generate-rsa", "<label>mykey</label><modulus>1024</modulus>")
        configure(m, trustpoint("myca", lab.url))
        rpc(m, "ca-authenticate", "<trustpoint>myca</trustpoint><accept/>")
        out = rpc(m, "ca-enroll", "<trustpoint>myca</trustpoint><challenge-password>pw</challenge-password>")
        assert out.findtext("c:status", namespaces=NS) == "pending", etree.tostring(out).decode()
    port = urllib.parse.urlsplit(lab.url).port
    lab.stop()
    dead = socket.socket()
    dead.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    dead.bind(("127.0.0.1", port))
    dead.listen(64)  # the CA's port now takes connections and never answers
    try:
        time.sleep(1.0)  # the next polls connect and wait for an answer
        start = time.monotonic()
        code = agent.stop(timeout=40.0)
        took = time.monotonic() - start
    finally:
        dead.close()
    assert code == 0, code
    assert took < 5.0, f"the agent took {took:.1f} s to stop"
