"""Helpers of the notification tests: waiting for notifications with ncclient, validating them with yanglint."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from lxml import etree
from ncclient import manager
from ncclient.operations import RPCError

from agent.schema.model import ietf_yang_dirs

NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
NOTIF = "urn:ietf:params:xml:ns:netconf:notification:1.0"
NETMOD = "urn:ietf:params:xml:ns:netmod:notification"
NCN = "urn:ietf:params:xml:ns:yang:ietf-netconf-notifications"
CRYPTO = "urn:ca-agent:yang:crypto"
SYS = "urn:ca-agent:yang:system"
NACM = "urn:ietf:params:xml:ns:yang:ietf-netconf-acm"
NCM = "urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring"
NS = {"nc": NC, "notif": NOTIF, "nm": NETMOD, "ncn": NCN, "c": CRYPTO, "s": SYS, "nacm": NACM, "ncm": NCM}

REPO = Path(__file__).resolve().parents[3]
YUMA_DERIVED = Path("/usr/share/yuma/modules/ietf-derived")  # nc-notifications (Debian netconfd)
YUMA_NCX = Path("/usr/share/yuma/modules/netconfcentral")


def utc(seconds_from_now: float = 0.0) -> str:
    """A yang:date-and-time relative to now (the agent runs on this host's clock)."""
    when = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds_from_now)
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event_of(notification: etree._Element) -> etree._Element:
    """The event element of a <notification> (its child other than eventTime)."""
    events = [c for c in notification if isinstance(c.tag, str) and c.tag != f"{{{NOTIF}}}eventTime"]
    assert len(events) == 1, etree.tostring(notification)
    return events[0]


def name_of(notification: etree._Element) -> str:
    return etree.QName(event_of(notification)).localname


def is_session_start_of(session_id: str | int) -> Callable[[etree._Element], bool]:
    """For :meth:`Receiver.until`: the event of ``session_id``'s netconf-session-start.

    ncclient's connect returns once it has the agent's hello; the agent opens
    the session (and publishes this) only once it has read the client's, so a
    test that needs the session open waits for this.
    """
    return lambda event: text(event, "ncn:session-id") == str(session_id)


class Receiver:
    """The notifications one ncclient session receives, every one kept (for yanglint) in arrival order."""

    def __init__(self, m: manager.Manager) -> None:
        self.m = m
        self.seen: list[etree._Element] = []

    def next(self, timeout: float = 30.0) -> etree._Element:
        """The next notification; AssertionError if none comes within ``timeout`` s."""
        received = self.m.take_notification(block=True, timeout=timeout)
        assert received is not None, f"no notification within {timeout} s"
        element = etree.fromstring(received.notification_xml.encode())
        assert element.tag == f"{{{NOTIF}}}notification"
        self.seen.append(element)
        return element

    def until(
        self, name: str, where: Callable[[etree._Element], bool] | None = None, timeout: float = 30.0
    ) -> tuple[etree._Element, list[etree._Element]]:
        """Take notifications until one named ``name`` (and matching ``where``); returns it and those before."""
        before: list[etree._Element] = []
        while True:
            notification = self.next(timeout)
            if name_of(notification) == name and (where is None or where(event_of(notification))):
                return notification, before
            before.append(notification)


def text(element: etree._Element, path: str) -> str | None:
    return element.findtext(path, namespaces=NS)


def bad_element(error: RPCError) -> str | None:
    return error.xml.findtext(f"{{{NC}}}error-info/{{{NC}}}bad-element")


def commit_hostname(m: manager.Manager, name: str) -> None:
    m.edit_config(target="candidate", config=f'<config xmlns="{NC}"><hostname xmlns="{SYS}">{name}</hostname></config>')
    m.commit()


def _ietf(name: str) -> str:
    for directory in ietf_yang_dirs():
        path = Path(directory) / f"{name}.yang"
        if path.exists():
            return str(path)
    raise FileNotFoundError(name)


def yanglint_notification(notification: etree._Element, tmp_path: Path, operational: etree._Element | None = None) -> str:
    """Run yanglint ``-t nc-notif`` on one <notification>; returns its output ("" when valid).

    ``operational`` is a <data> whose children yanglint uses to resolve
    instance-identifiers (netconf-config-change targets must exist).
    replayComplete / notificationComplete need RFC 5277's nc-notifications,
    which only netconfd's package ships (skipped without it).
    """
    if shutil.which("yanglint") is None:
        pytest.skip("yanglint (libyang2-tools) is not installed")
    path = tmp_path / f"notification-{len(list(tmp_path.glob('notification-*')))}.xml"
    path.write_bytes(etree.tostring(notification))
    paths = ["-p", str(REPO / "yang"), *(f"-p{d}" for d in ietf_yang_dirs())]
    if etree.QName(event_of(notification)).namespace == NETMOD:
        if not (YUMA_DERIVED / "nc-notifications.yang").exists():
            pytest.skip("nc-notifications.yang (Debian netconfd) is not installed")
        modules = ["-p", str(YUMA_DERIVED), "-p", str(YUMA_NCX), str(YUMA_DERIVED / "nc-notifications.yang")]
    else:
        modules = [
            _ietf("ietf-netconf-notifications"), _ietf("ietf-netconf-acm"),
            str(REPO / "yang" / "ca-agent-system.yang"), str(REPO / "yang" / "ca-agent-crypto.yang"),
        ]
    extra: list[str] = []
    if operational is not None:
        data = tmp_path / f"operational-{len(list(tmp_path.glob('operational-*')))}.xml"
        data.write_bytes(b"".join(etree.tostring(child) for child in operational))  # top-level nodes, no wrapper
        extra = ["-O", str(data)]
    done = subprocess.run(
        ["yanglint", *paths, "-t", "nc-notif", *extra, *modules, str(path)],
        capture_output=True, text=True, timeout=60,
    )
    return "" if done.returncode == 0 else f"{etree.tostring(notification).decode()}\n{done.stdout}{done.stderr}"
