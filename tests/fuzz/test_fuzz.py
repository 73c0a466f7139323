"""The short fuzz run of CI: the regression corpus, then a few thousand generated hostile inputs.

The long run (100,000 executions, per-input deadline, and the session part
against a real agent over SSH) is ``python tests/fuzz/run.py``; see
tests/fuzz/README.md.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from lxml import etree

from agent.datastore.edit import new_root

from . import strategies
from .harness import CANARY_TEXT, FuzzAgents, edit, framing, framing_round_trip

CORPUS = Path(__file__).parent / "corpus"
# A generated input that takes longer than this is a hang (the long run kills it; here it fails the test).
PER_INPUT = timedelta(seconds=20)
FUZZ = settings(
    database=None, deadline=PER_INPUT, phases=[Phase.explicit, Phase.generate, Phase.shrink],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)


@pytest.fixture(scope="module")
def agents() -> Iterator[FuzzAgents]:
    strategies.write_canary()
    made = FuzzAgents()
    yield made
    made.close()


def corpus(kind: str) -> list[Path]:
    return sorted((CORPUS / kind).iterdir())


# -- the regression corpus --------------------------------------------------------------------
@pytest.mark.parametrize("path", corpus("rpc"), ids=lambda p: p.stem)
def test_rpc_corpus(agents: FuzzAgents, path: Path) -> None:
    message = path.read_bytes()
    for username, base11 in (("admin", True), ("admin", False), ("nobody", True)):
        reply = agents.core.rpc(message, username=username, base11=base11)
        assert reply is None or CANARY_TEXT not in reply


@pytest.mark.parametrize("path", corpus("framing"), ids=lambda p: p.stem)
def test_framing_corpus(path: Path) -> None:
    stream = path.read_bytes()
    for chunked in (False, True):
        for hello in (False, True):
            for cuts in ([], [1], list(range(len(stream)))):
                framing(stream, cuts, chunked, hello)


@pytest.mark.parametrize("path", corpus("edit"), ids=lambda p: p.stem)
def test_edit_corpus(agents: FuzzAgents, path: Path) -> None:
    yang = agents.core.yang
    base = edit(yang, new_root(), (CORPUS / "edit" / "trustpoint.xml").read_bytes(), 0, 0)
    config = path.read_bytes()
    for default_op in range(6):
        for error_option in range(3):
            edit(yang, new_root(), config, default_op, error_option)
            edit(yang, base, config, default_op, error_option)


def test_known_crash_classes_are_answered_as_rfc_6241_says(agents: FuzzAgents) -> None:
    """A few corpus entries whose answer matters, not only that there is one."""
    expected = {
        "deep-nesting-filter": "malformed-message",
        "billion-laughs": "malformed-message",
        "xxe-file": "malformed-message",
        "text-mixed-into-rpc": "malformed-message",
        "unknown-element-in-rpc": "malformed-message",
        "unknown-parameter": "unknown-element",
        "attribute-flood-rpc": "too-big",
        "namespace-flood-many-leaves": "too-big",
        "no-message-id": "missing-attribute",
        "xpath-nested-count": "operation-failed",
    }
    for name, tag in expected.items():
        reply = agents.core.rpc((CORPUS / "rpc" / f"{name}.xml").read_bytes())
        assert reply is not None
        assert etree.fromstring(reply.encode()).findtext(".//{*}error-tag") == tag, name


# -- generated inputs -----------------------------------------------------------------------------
@settings(FUZZ, max_examples=1000)
@given(strategies.rpc_messages(), st.sampled_from(["admin", "nobody"]), st.booleans())
def test_generated_rpc_messages(agents: FuzzAgents, message: bytes, username: str, base10: bool) -> None:
    agents.core.rpc(message, username=username, base11=not base10)


@settings(FUZZ, max_examples=1000)
@given(strategies.framed_streams())
def test_generated_framed_streams(stream: tuple[bytes, list[int], bool, bool]) -> None:
    framing(*stream)


@settings(FUZZ, max_examples=300)
@given(st.lists(st.binary(min_size=1, max_size=200), max_size=5), st.lists(st.integers(0, 2000), max_size=8),
       st.booleans())
def test_framing_round_trip(messages: list[bytes], cuts: list[int], chunked: bool) -> None:
    framing_round_trip(messages, cuts, chunked)


@settings(FUZZ, max_examples=500)
@given(strategies.config_documents(), strategies.config_documents())
def test_generated_edits(agents: FuzzAgents, first: tuple[bytes, int, int], second: tuple[bytes, int, int]) -> None:
    yang = agents.core.yang
    base = edit(yang, new_root(), *first)
    edit(yang, base, *second)
