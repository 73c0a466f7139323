"""Parsing a received message: XML refusals and the limits on attribute and namespace floods."""

from __future__ import annotations

import pytest

from agent.netconf.message_parser import (
    MAX_ATTRIBUTES,
    MAX_NAMESPACES_IN_SCOPE,
    MAX_TAGS,
    NotWellFormed,
    TooComplex,
    parse_message,
)

NC = "urn:ietf:params:xml:ns:netconf:base:1.0"


def rpc(body: str = "<get/>", attributes: str = "") -> bytes:
    return f'<rpc message-id="1" xmlns="{NC}"{attributes}>{body}</rpc>'.encode()


def test_an_ordinary_message_parses_with_leading_whitespace() -> None:
    root = parse_message(b"\n  " + rpc())
    assert root.get("message-id") == "1"


@pytest.mark.parametrize("prefix", [
    '<!DOCTYPE rpc [<!ENTITY x "y">]>',
    '<!DOCTYPE rpc SYSTEM "http://127.0.0.1:9/x.dtd">',
])
def test_a_document_type_declaration_is_refused(prefix: str) -> None:
    with pytest.raises(NotWellFormed):
        parse_message(prefix.encode() + rpc())


def test_an_undeclared_entity_is_not_well_formed() -> None:
    with pytest.raises(NotWellFormed):
        parse_message(rpc("<get/>&x;"))


@pytest.mark.parametrize("where", ["rpc", "nested"])
def test_an_element_with_too_many_attributes_is_too_complex(where: str) -> None:
    flood = "".join(f' a{i}="v"' for i in range(MAX_ATTRIBUTES + 1))
    message = rpc(attributes=flood) if where == "rpc" else rpc(f"<get><filter{flood}/></get>")
    with pytest.raises(TooComplex) as refused:
        parse_message(message)
    assert f"more than {MAX_ATTRIBUTES} attributes" in str(refused.value)


def test_attributes_up_to_the_limit_on_every_element_are_fine() -> None:
    attributes = "".join(f' a{i}="v"' for i in range(MAX_ATTRIBUTES - 1))
    parse_message(rpc(f"<get{attributes}><filter{attributes}/></get>", attributes))


def test_too_many_namespaces_in_scope_is_too_complex() -> None:
    flood = "".join(f' xmlns:p{i}="urn:p{i}"' for i in range(MAX_NAMESPACES_IN_SCOPE))
    with pytest.raises(TooComplex) as refused:
        parse_message(rpc(attributes=flood))  # plus the default namespace: one too many
    assert "namespace declarations in scope" in str(refused.value)


def test_many_declarations_that_are_never_in_scope_together_are_fine() -> None:
    siblings = "".join(f'<x{i} xmlns="urn:s{i}"/>' for i in range(3 * MAX_NAMESPACES_IN_SCOPE))
    root = parse_message(rpc(f"<get><filter>{siblings}</filter></get>"))
    assert len(root[0][0]) == 3 * MAX_NAMESPACES_IN_SCOPE


def test_a_flood_of_100_000_attributes_is_refused() -> None:
    """Answering it took 105 s: lxml hands attributes over in quadratic time; the check looks once."""
    flood = "".join(f' a{i}="v"' for i in range(100_000))
    with pytest.raises(TooComplex):
        parse_message(rpc(attributes=flood))


def test_a_flood_of_elements_is_refused_before_it_is_parsed() -> None:
    head = f'<rpc message-id="1" xmlns="{NC}"><get>'.encode()
    end = b"</get></rpc>"
    room = MAX_TAGS - head.count(b"<") - end.count(b"<")
    assert parse_message(head + b"<a/>" * room + end).tag.endswith("rpc")  # up to the limit: parsed
    with pytest.raises(TooComplex, match=f"more than {MAX_TAGS} tags"):
        parse_message(head + b"<a/>" * (room + 1) + end)


def test_a_small_message_is_not_held_up_by_another_threads_large_one() -> None:
    # Sessions parse on their own threads. With one parser shared by all, lxml makes them take
    # turns: a small <get> waited for another session's large edit to be parsed (and, under load,
    # for that thread to get the GIL back).
    import threading
    import time

    large = rpc("<edit-config>" + f"<x>{'a' * 20}</x>" * 450_000 + "</edit-config>")  # 12 MB, under MAX_TAGS
    finished: list[str] = []
    started = threading.Event()

    def parse_large() -> None:
        started.set()
        parse_message(large)
        finished.append("large")

    thread = threading.Thread(target=parse_large)
    thread.start()
    started.wait()
    time.sleep(0.005)  # the large parse is under way
    parse_message(rpc())
    finished.append("small")
    thread.join()
    assert finished == ["small", "large"]
