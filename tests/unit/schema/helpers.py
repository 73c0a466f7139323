"""Constants and builders shared by the schema-layer tests."""

from __future__ import annotations

from pathlib import Path

from lxml import etree

TEST_YANG_DIR = Path(__file__).parent / "yang"
TEST_MODULE = TEST_YANG_DIR / "ca-agent-test.yang"

NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
SYS = "urn:ca-agent:yang:system"
CRYPTO = "urn:ca-agent:yang:crypto"
TEST = "urn:ca-agent:yang:test"


def data(body: str) -> etree._Element:
    """A ``<data>`` element (NETCONF base namespace) holding ``body``."""
    return etree.fromstring(f'<data xmlns="{NC}">{body}</data>')


def clark(ns: str, name: str) -> str:
    """``{ns}name``."""
    return f"{{{ns}}}{name}"
