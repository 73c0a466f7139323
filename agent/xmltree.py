"""Small lxml helpers shared by the layers."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import cast

from lxml import etree


def default_ns(namespace: str | None) -> Mapping[str, str]:
    """An nsmap making ``namespace`` the default one.

    lxml accepts ``None`` as the key of the default namespace; lxml-stubs
    types the keys as ``str``, hence the cast in this one place.
    """
    return cast("Mapping[str, str]", {None: namespace} if namespace else {})


def yang_date_and_time(value: datetime.datetime) -> str:
    """A yang:date-and-time (RFC 6991) in UTC, e.g. 2026-11-26T19:33:52Z."""
    return value.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def has_doctype(root: etree._Element) -> bool:
    """True when the document of ``root`` carries a DOCTYPE (never allowed in NETCONF input)."""
    docinfo = root.getroottree().docinfo
    return bool(getattr(docinfo, "doctype", "")) or docinfo.internalDTD is not None
