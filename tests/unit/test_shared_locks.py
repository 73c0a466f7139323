"""Locks that every thread shares by accident: the agent's code uses none of the known ones."""

from __future__ import annotations

import re
from pathlib import Path

from lxml import etree

from agent.netconf.scope import StateScope, scope_of

AGENT = Path(__file__).resolve().parents[2] / "agent"
_CACHED_PROPERTY = re.compile(r"^\s*(@(functools\.)?cached_property\b|from functools import .*\bcached_property\b)", re.M)


def test_no_functools_cached_property_in_the_agent() -> None:
    """Until Python 3.12, a cached_property's first read on any instance takes one lock per property shared by
    all instances: 50 sessions making <get>s queued on the one in StateScope (a thread holding it while it
    waited for the GIL held every other), seen in a py-spy sample of the 100-session benchmark."""
    users = [str(path.relative_to(AGENT)) for path in AGENT.rglob("*.py")
             if _CACHED_PROPERTY.search(path.read_text(encoding="utf-8"))]
    assert users == []


def test_a_scope_knows_its_filters_top_level_tags_from_the_start() -> None:
    nc = "urn:ietf:params:xml:ns:netconf:base:1.0"
    crypto = "urn:ca-agent:yang:crypto"
    named = etree.fromstring(f'<filter xmlns="{nc}"><crypto xmlns="{crypto}"/><!-- x --></filter>')
    assert StateScope(named).top_tags() == frozenset({f"{{{crypto}}}crypto"})
    unnamed = etree.fromstring(f'<filter xmlns="{nc}"><crypto/></filter>')  # no namespace: any module's
    assert StateScope(unnamed).top_tags() is None
    assert StateScope().top_tags() is None
    assert scope_of(None).everything
