"""NETCONF by hand over paramiko, and process facts from /proc, for transport tests.

ncclient hides the wire; these helpers let a test send exactly the bytes it
means (partial hellos, broken chunks, attributes) and see exactly what comes back.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import paramiko

from agentproc import ADMIN_PASSWORD, wait_until

NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
BASE10 = "urn:ietf:params:netconf:base:1.0"
BASE11 = "urn:ietf:params:netconf:base:1.1"
EOM = b"]]>]]>"
END_OF_CHUNKS = b"\n##\n"


def hello(base11: bool = True, extra: str = "") -> bytes:
    caps = f"<capability>{BASE10}</capability>"
    if base11:
        caps += f"<capability>{BASE11}</capability>"
    return f'<?xml version="1.0"?><hello xmlns="{NC}"><capabilities>{caps}</capabilities>{extra}</hello>'.encode()


def frame(message: str | bytes) -> bytes:
    raw = message.encode() if isinstance(message, str) else message
    return b"\n#%d\n" % len(raw) + raw + END_OF_CHUNKS


def ssh_client(port: int, username: str = "admin", password: str = ADMIN_PASSWORD) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    client.connect("127.0.0.1", port=port, username=username, password=password, allow_agent=False,
                   look_for_keys=False, timeout=30, banner_timeout=30, auth_timeout=30)
    return client


def open_subsystem(client: paramiko.SSHClient, pty: bool = False) -> paramiko.Channel:
    transport = client.get_transport()
    assert transport is not None
    channel = transport.open_session()
    if pty:
        channel.get_pty()
    channel.invoke_subsystem("netconf")
    return channel


def read_until(channel: paramiko.Channel, marker: bytes, timeout: float = 20.0) -> bytes:
    """Bytes up to and including ``marker``; EOFError(data) if the channel closes first."""
    data = b""
    channel.settimeout(timeout)
    while marker not in data:
        chunk = channel.recv(65536)
        if not chunk:
            raise EOFError(data)
        data += chunk
    return data


def read_to_eof(channel: paramiko.Channel, timeout: float = 20.0) -> bytes:
    data = b""
    channel.settimeout(timeout)
    while chunk := channel.recv(65536):
        data += chunk
    return data


def netconf_session(port: int, base11: bool = True, pty: bool = False) -> tuple[paramiko.SSHClient, paramiko.Channel]:
    """An SSH connection with one NETCONF session past the hellos."""
    client = ssh_client(port)
    channel = open_subsystem(client, pty=pty)
    read_until(channel, EOM)
    channel.sendall(hello(base11) + EOM)
    return client, channel


def nested_count(levels: int) -> str:
    """An XPath filter whose cost is the number of nodes to the power ``levels``: ``//*[count(//*...) > 0]``."""
    expression = "//*"
    for _ in range(levels - 1):
        expression = f"//*[count({expression}) > 0]"
    return expression


def get_config_works(client: paramiko.SSHClient, pty: bool = False) -> bool:
    """A new NETCONF session on ``client``'s connection answers a get-config of running."""
    channel = open_subsystem(client, pty)
    read_until(channel, EOM)
    channel.sendall(hello(True) + EOM)
    return b"<data" in rpc(channel, "<get-config><source><running/></source></get-config>")


def ignore_window(channel: paramiko.Channel) -> None:
    """Make a client channel send without waiting for the server's SSH window (RFC 4254 5.2), as a hostile
    client may."""
    channel._wait_for_send_window = lambda size: min(size, channel.out_max_packet_size - 64)  # type: ignore[method-assign]


def flood(channel: paramiko.Channel, total: int, piece: bytes = b"<a>" + b"x" * 32000) -> int:
    """Send up to ``total`` bytes as ``piece`` after ``piece``, stopping at the first error; the bytes sent."""
    sent = 0
    channel.settimeout(5)
    try:
        while sent < total:
            sent += channel.send(piece)
    except (OSError, EOFError, paramiko.SSHException):
        pass
    return sent


def rpc(channel: paramiko.Channel, body: str, message_id: str = "1", base11: bool = True) -> bytes:
    message = f'<rpc message-id="{message_id}" xmlns="{NC}">{body}</rpc>'
    channel.sendall(frame(message) if base11 else message.encode() + EOM)
    return read_until(channel, END_OF_CHUNKS if base11 else EOM)


def drop(client: paramiko.SSHClient) -> None:
    """Cut the TCP connection under SSH, as a crashed client or a dead link would."""
    transport = client.get_transport()
    assert transport is not None
    sock = transport.sock
    assert isinstance(sock, socket.socket)
    try:
        sock.shutdown(socket.SHUT_RDWR)
    finally:
        client.close()


# -- the agent process, as the OS sees it ------------------------------------------
def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime + stime


def wait_busy(pid: int, seconds: float = 0.5) -> None:
    """Until the agent has used ``seconds`` of CPU more than now (e.g. a long filter evaluation is running)."""
    start = cpu_seconds(pid)
    wait_until(lambda: cpu_seconds(pid) - start >= seconds, 30, "the agent to be busy")


def assert_idle(pid: int, seconds: float = 2.0) -> None:
    """The agent used under 0.3 CPU seconds a second for ``seconds``: a spinning reader or a filter evaluation
    left running burns about a CPU second per second, an idle agent almost nothing."""
    before = cpu_seconds(pid)
    time.sleep(seconds)  # measuring CPU use over an interval: there is no condition to await
    used = cpu_seconds(pid) - before
    assert used < 0.3 * seconds, f"agent used {used:.2f} s of CPU in {seconds} s while it should be idle"


def status_value(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def threads(pid: int) -> int:
    return status_value(pid, "Threads")


def rss_kib(pid: int) -> int:
    return status_value(pid, "VmRSS")
