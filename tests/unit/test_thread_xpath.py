"""xmltree.ThreadXPath: one compiled expression per evaluating thread, the same answers as etree.XPath."""

from __future__ import annotations

import threading

import pytest
from lxml import etree

from agent import xmltree

NS = "urn:test:thread-xpath"
DOC = etree.fromstring(f'<r xmlns="{NS}"><e a="1"><k>x</k></e><e><k>y</k></e></r>'.encode())


def test_answers_as_lxml_does_with_namespaces_and_variables() -> None:
    expressions = [("n:e[n:k=$v]", {"v": "y"}), ("count(n:e)", {}), ("boolean(//@a)", {}), ("string(n:e/n:k)", {})]
    for path, variables in expressions:
        ours = xmltree.ThreadXPath(path, {"n": NS})(DOC, **variables)
        theirs = etree.XPath(path, namespaces={"n": NS})(DOC, **variables)
        assert ours == theirs, path


def test_an_expression_that_does_not_compile_fails_at_once() -> None:
    with pytest.raises(etree.XPathSyntaxError):
        xmltree.ThreadXPath("n:e[")


def test_each_thread_evaluates_its_own_compiled_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    """A shared etree.XPath makes threads take turns on its lock (held while waiting for the GIL)."""
    compiled: list[tuple[int, etree.XPath]] = []
    real = etree.XPath

    def counting(path: str, **kwargs: object) -> etree.XPath:
        made = real(path, **kwargs)  # type: ignore[arg-type]
        compiled.append((threading.get_ident(), made))
        return made

    monkeypatch.setattr(xmltree.etree, "XPath", counting)
    xpath = xmltree.ThreadXPath("count(n:e)", {"n": NS})
    answers: list[float] = []
    together = threading.Barrier(4)  # all four alive at once: no thread identity reused

    def evaluate() -> None:
        for _ in range(3):  # compiled once per thread, however often it evaluates
            answers.append(xpath(DOC))
        together.wait(10)

    threads = [threading.Thread(target=evaluate) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == [2.0] * 12
    assert len(compiled) == 5  # the constructor's (checking the syntax) and one for each of the four threads
    assert len({ident for ident, _ in compiled[1:]}) == 4
    assert len({id(made) for _, made in compiled}) == 5
