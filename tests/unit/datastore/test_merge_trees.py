"""``merge_trees`` (config and state joined for <get>) makes what a merge with the edit engine makes.

The edit engine (``apply_edit`` with operation merge) is the oracle: random
configurations and random state overlays, on the real YANG schema, must give
the same tree, byte for byte, and the same errors.
"""

from __future__ import annotations

import copy
import random

import pytest
from lxml import etree

from agent.datastore.edit import apply_edit, merge_trees, new_root
from agent.errors import DatastoreError
from agent.netconf.yang import YangSupport
from agent.schema.model import SchemaModel

CRYPTO = "urn:ca-agent:yang:crypto"
SYS = "urn:ca-agent:yang:system"


@pytest.fixture(scope="module")
def yang() -> YangSupport:
    return YangSupport(SchemaModel.load())


def _leaf(name: str, value: str) -> str:
    return f"<{name}>{value}</{name}>"


def _cert_leaves(rng: random.Random, alert: bool = True) -> str:
    leaves = [_leaf("serial-number", str(rng.randint(1, 3))), _leaf("subject", f"CN=s{rng.randint(1, 3)}")]
    leaves += [_leaf("crl-distribution-point", f"http://cdp{i}") for i in range(rng.randint(0, 2))]
    if alert and rng.random() < 0.3:
        leaves.append("<expiry-alert>" + _leaf("next-mode", "syslog") + "</expiry-alert>")
    rng.shuffle(leaves)
    return "".join(leaves)


def _trustpoint_config(rng: random.Random, name: str) -> str:
    parts = []
    if rng.random() < 0.5:
        parts.append(f"<enrollment><url>http://ca{rng.randint(1, 3)}</url></enrollment>")
    if rng.random() < 0.5:
        parts.append(_leaf("rsakeypair", f"k{rng.randint(1, 3)}"))
    if rng.random() < 0.3:
        parts.append(_leaf("subject-name", f"CN=x{rng.randint(1, 3)}"))
    rng.shuffle(parts)
    return f"<trustpoint><name>{name}</name>{''.join(parts)}</trustpoint>"


def _trustpoint_state(rng: random.Random, name: str) -> str:
    parts = []
    if rng.random() < 0.4:
        requests = "".join(
            f"<request><key-usage>{usage}</key-usage>{_leaf('state', rng.choice(['pending', 'issued']))}"
            f"{_leaf('attempts', str(rng.randint(0, 3)))}</request>"
            for usage in rng.sample(["general-purpose", "signature", "encryption"], rng.randint(1, 2))
        )
        parts.append(f"<enrollment>{requests}</enrollment>")
    if rng.random() < 0.4:
        parts.append(f"<ca-certificate>{_cert_leaves(rng)}</ca-certificate>")
    for fingerprint in rng.sample(["aa01", "bb02", "cc03"], rng.randint(0, 2)):
        usages = "".join(_leaf("usage", u) for u in rng.sample(["signature", "encryption"], rng.randint(0, 2)))
        parts.append(f"<ra-certificate>{_leaf('fingerprint', fingerprint)}{_cert_leaves(rng, alert=False)}{usages}</ra-certificate>")
    for usage in rng.sample(["general-purpose", "signature"], rng.randint(0, 2)):
        parts.append(f"<certificate>{_cert_leaves(rng)}<key-usage>{usage}</key-usage></certificate>")
    if rng.random() < 0.3:
        parts.append(f"<crl>{_leaf('source', 'http://crl')}{_leaf('crl-number', str(rng.randint(1, 9)))}</crl>")
    if rng.random() < 0.2:  # a config leaf in the overlay: the same value or another one
        parts.append(_leaf("rsakeypair", f"k{rng.randint(1, 3)}"))
    rng.shuffle(parts)
    return f"<trustpoint><name>{name}</name>{''.join(parts)}</trustpoint>"


def _trustpool(rng: random.Random) -> str:
    certs = "".join(
        f"<certificate>{_leaf('fingerprint', fp)}{_leaf('subject', 'CN=pool')}</certificate>"
        for fp in rng.sample(["01", "02", "03"], rng.randint(0, 2))
    )
    bundle = "<cabundle><url>http://bundle</url></cabundle>" if rng.random() < 0.5 else ""
    return f"<trustpool>{bundle}{certs}</trustpool>"


def _crypto(body: str) -> str:
    return f'<crypto xmlns="{CRYPTO}"><ca>{body}</ca></crypto>'


def _random_pair(rng: random.Random) -> tuple[etree._Element, etree._Element]:
    names = [f"tp{i}" for i in range(rng.randint(0, 4))]
    base_body = "".join(_trustpoint_config(rng, n) for n in names if rng.random() < 0.8)
    base_xml = _crypto(base_body) if base_body or rng.random() < 0.5 else ""
    if rng.random() < 0.5:
        base_xml += f'<hostname xmlns="{SYS}">r{rng.randint(1, 2)}</hostname>'
    base = etree.fromstring(f'<data xmlns="urn:ietf:params:xml:ns:netconf:base:1.0">{base_xml}</data>')
    # State comes from several providers, each with a <crypto> of its own, as in operational().
    overlay = new_root()
    for _ in range(rng.randint(1, 3)):
        chosen = rng.sample(names + ["tp9"], rng.randint(0, min(3, len(names) + 1)))
        body = "".join(_trustpoint_state(rng, n) for n in chosen)
        if rng.random() < 0.3:
            body += _trustpool(rng)
        overlay.append(etree.fromstring(_crypto(body)))
    return base, overlay


def test_merge_trees_equals_the_edit_engines_merge(yang: YangSupport) -> None:
    rng = random.Random(20261130)
    for _ in range(400):
        base, overlay = _random_pair(rng)
        before = etree.tostring(base)
        expected = etree.tostring(apply_edit(base, overlay, yang, yang).root)  # type: ignore[arg-type]
        merged = merge_trees(base, overlay, yang, yang)  # type: ignore[arg-type]
        assert etree.tostring(merged) == expected
        assert etree.tostring(base) == before  # copied first
        own = copy.deepcopy(base)
        assert merge_trees(own, overlay, yang, yang, in_place=True) is own  # type: ignore[arg-type]
        assert etree.tostring(own) == expected


def test_merge_trees_refuses_unknown_nodes_and_entries_without_key(yang: YangSupport) -> None:
    base = new_root()
    for body, tag in (
        (_crypto("<trustpoint><name>a</name><bogus>1</bogus></trustpoint>"), "unknown-element"),
        (_crypto("<trustpoint><name>a</name><ca-certificate><bogus/></ca-certificate></trustpoint>"), "unknown-element"),
        (_crypto("<trustpoint><rsakeypair>k</rsakeypair></trustpoint>"), "missing-element"),
    ):
        overlay = new_root()
        overlay.append(etree.fromstring(body))
        with pytest.raises(DatastoreError) as engine:
            apply_edit(base, overlay, yang, yang)  # type: ignore[arg-type]
        with pytest.raises(DatastoreError) as merged:
            merge_trees(base, overlay, yang, yang)  # type: ignore[arg-type]
        assert merged.value.error_tag == engine.value.error_tag == tag
        assert merged.value.path == engine.value.path
