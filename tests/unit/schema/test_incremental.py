"""Incremental validation (agent/schema/incremental.py) against whole-tree validation, the oracle.

Random edit sequences, run through the real edit engine (which reports what it
touched), over the production modules plus ``ca-agent-test`` (mandatory
nodes and choices, must, when, leafref, unique, min/max-elements): after
every edit both validations must accept, or both reject with the same
error-tag.

The raw incremental outcome (``confirm_errors=False``) must agree on accept or
reject: that is what catches a dependency the incremental walk missed (a
wrong accept) or a wrong reject. A tree that breaks several constraints at
once may meet them in another order incrementally, so the error-tag compared
is the one the datastore reports, which the whole tree confirms.
"""

from __future__ import annotations

import weakref
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from agent.datastore.diff import diff_trees, trees_differ
from agent.datastore.edit import NO_CHANGES, ChangeSet, ErrorOption, Operation, apply_edit, join_changes, new_root
from agent.errors import AgentError, DatastoreError, SchemaError
from agent.netconf.yang import YangSupport
from agent.schema.incremental import CookedCache, validate_changes
from agent.schema.model import SchemaModel
from agent.schema.validate import cooked_config

from .helpers import CRYPTO, NC, SYS, TEST

NAMES = ["tp0", "tp1", "tp2"]
IDS = ["1", "2", "3", "01"]


def _op(op: str | None) -> str:
    return f' nc:operation="{op}"' if op else ""


def trustpoint_edit(draw: Any) -> str:
    name = draw(st.sampled_from(NAMES))
    op = draw(st.sampled_from([None, None, "replace", "remove", "create", "delete"]))
    if op in ("remove", "delete"):
        body = ""
    else:
        period = draw(st.sampled_from(["1", "5", "60", "61", "x"]))
        enrollment = draw(st.sampled_from([
            f"<url>http://ca/{name}</url><retry><period>{period}</period></retry>",
            "<terminal/>",
            "",
        ]))
        body = f"<enrollment>{enrollment}</enrollment>" if enrollment else ""
        body += draw(st.sampled_from(["", "<rsakeypair>k1</rsakeypair>"]))
    return (f'<crypto xmlns="{CRYPTO}"><ca><trustpoint{_op(op)}><name>{name}</name>{body}'
            "</trustpoint></ca></crypto>")


def item_edit(draw: Any) -> str:
    key = draw(st.sampled_from(IDS))
    op = draw(st.sampled_from([None, None, None, "replace", "remove", "create", "delete"]))
    body = ""
    if op not in ("remove", "delete"):
        for leaf, values in (
            ("label", ["a", "b", "x", None]),
            ("trustpoint", [*NAMES, "nope", None]),
            ("low", ["1", "5", None]),
            ("high", ["1", "5", "9", None]),
            ("odd", ["1", "2", None]),
            ("extra", ["e", None]),
        ):
            value = draw(st.sampled_from([*values, None]))
            if value is not None:
                leaf_op = draw(st.sampled_from([None, None, "remove"]))
                body += f"<{leaf}{_op(leaf_op)}>{value}</{leaf}>"
    return f'<things xmlns="{TEST}"><item{_op(op)}><id>{key}</id>{body}</item></things>'


def things_edit(draw: Any) -> str:
    choice = draw(st.integers(0, 6))
    if choice == 0:
        op = draw(st.sampled_from(["remove", "delete", "create", "replace"]))
        inner = "" if op in ("remove", "delete") else "<need>n</need><a>1</a>"
        return f'<things xmlns="{TEST}"{_op(op)}>{inner}</things>'
    if choice == 1:
        return f'<things xmlns="{TEST}"><need{_op(draw(st.sampled_from([None, "remove"])))}>n</need></things>'
    if choice == 2:
        return f'<things xmlns="{TEST}"><b><deep>d</deep></b></things>'
    if choice == 3:
        return f'<things xmlns="{TEST}"><a{_op(draw(st.sampled_from([None, "remove"])))}>v</a></things>'
    if choice == 4:
        tag = draw(st.sampled_from(["t1", "t2", "t3"]))
        return f'<things xmlns="{TEST}"><tag{_op(draw(st.sampled_from([None, "remove"])))}>{tag}</tag></things>'
    if choice == 5:
        level = draw(st.sampled_from(["low", "high", "mid"]))
        return f'<things xmlns="{TEST}"><level>{level}</level></things>'
    return f'<hostname xmlns="{SYS}">{draw(st.sampled_from(["r1", "r2", "bad name"]))}</hostname>'


@st.composite
def edits(draw: Any) -> list[str]:
    count = draw(st.integers(1, 12))
    out = []
    for _ in range(count):
        kind = draw(st.sampled_from([trustpoint_edit, item_edit, item_edit, things_edit]))
        out.append(kind(draw))
    return out


def config(body: str) -> etree._Element:
    return etree.fromstring(f'<config xmlns="{NC}" xmlns:nc="{NC}">{body}</config>')


def outcome(run: Any) -> tuple[str, Any]:
    try:
        return "ok", run()
    except SchemaError as error:
        return error.error_tag, None


SEED = (
    f'<crypto xmlns="{CRYPTO}"><ca><trustpoint><name>tp0</name></trustpoint>'
    f'<trustpoint><name>tp1</name></trustpoint></ca></crypto>'
    f'<things xmlns="{TEST}"><need>n</need><a>1</a><item><id>1</id><label>a</label>'
    "<trustpoint>tp0</trustpoint></item></things>"
)


@pytest.fixture(scope="module")
def yang(test_model: SchemaModel) -> YangSupport:
    return YangSupport(test_model)


def run_sequence(yang: YangSupport, bodies: list[str], accumulate: bool) -> None:
    model = yang.model
    start = apply_edit(new_root(), config(SEED), yang, yang).root
    anchor_value = cooked_config(start, model)
    current, since = start, NO_CHANGES
    for body in bodies:
        try:
            result = apply_edit(current, config(body), yang, yang, Operation.MERGE, ErrorOption.STOP_ON_ERROR)
        except (DatastoreError, AgentError):
            continue  # refused by the edit engine (data-exists, data-missing...): nothing to validate
        whole_diff = diff_trees(current, result.root, yang, yang)
        # what a large commit asks before its diff: whether there is any change, from its first one
        assert trees_differ(current, result.root, yang, yang, result.touched) == bool(whole_diff)
        if not result.changed:
            continue
        # the commit record's diff, restricted to what the edit touched, is the whole diff
        assert diff_trees(current, result.root, yang, yang, result.touched) == whole_diff
        changes: ChangeSet = join_changes(since, result.touched)
        assert changes is not None
        whole = outcome(lambda root=result.root: cooked_config(root, model))
        step = outcome(lambda root=result.root, changes=changes, base=anchor_value: validate_changes(
            model, base, root, changes, confirm_errors=False))
        shown = f"after {body}: incremental {step[0]}, whole tree {whole[0]}\n" + etree.tostring(
            result.root, pretty_print=True).decode()
        assert (step[0] == "ok") == (whole[0] == "ok"), shown
        reported = outcome(lambda root=result.root, changes=changes, base=anchor_value: validate_changes(
            model, base, root, changes))
        assert reported[0] == whole[0], shown
        if whole[0] == "ok":
            assert step[1] == whole[1]
            anchor_value, current, since = step[1], result.root, NO_CHANGES
        elif accumulate:
            current, since = result.root, changes  # a candidate may be invalid until the commit


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(edits())
def test_incremental_agrees_with_whole_tree_edit_by_edit(yang: YangSupport, bodies: list[str]) -> None:
    run_sequence(yang, bodies, accumulate=False)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(edits())
def test_incremental_agrees_across_invalid_candidates(yang: YangSupport, bodies: list[str]) -> None:
    """Edits pile up on an invalid candidate; each is validated against the last valid tree."""
    run_sequence(yang, bodies, accumulate=True)


def test_a_deleted_trustpoint_breaks_the_leafref_of_an_untouched_item(yang: YangSupport) -> None:
    model = yang.model
    start = apply_edit(new_root(), config(SEED), yang, yang).root
    base = cooked_config(start, model)
    result = apply_edit(start, config(
        f'<crypto xmlns="{CRYPTO}"><ca><trustpoint nc:operation="delete"><name>tp0</name></trustpoint></ca></crypto>'
    ), yang, yang)
    assert result.touched == frozenset({((f"{{{CRYPTO}}}crypto",), (f"{{{CRYPTO}}}ca",),
                                         (f"{{{CRYPTO}}}trustpoint", "tp0"))})
    with pytest.raises(SchemaError) as err:
        validate_changes(model, base, result.root, result.touched or frozenset(), confirm_errors=False)
    assert err.value.error_tag == "data-missing"
    assert err.value.error_app_tag == "instance-required"


def test_a_valid_edit_keeps_the_untouched_entries_shared(yang: YangSupport) -> None:
    model = yang.model
    start = apply_edit(new_root(), config(SEED), yang, yang).root
    base = cooked_config(start, model)
    result = apply_edit(start, config(
        f'<crypto xmlns="{CRYPTO}"><ca><trustpoint><name>tp9</name><rsakeypair>k</rsakeypair></trustpoint>'
        "</ca></crypto>"), yang, yang)
    value = validate_changes(model, base, result.root, result.touched or frozenset(), confirm_errors=False)
    assert value == cooked_config(result.root, model)
    old, new = base["ca-agent-crypto:crypto"]["ca"]["trustpoint"], value["ca-agent-crypto:crypto"]["ca"]["trustpoint"]
    assert new[0] is old[0] and new[1] is old[1] and len(new) == 3


@st.composite
def bulk_edits(draw: Any) -> list[str]:
    """Edits of several entries at once (one <config> with several top-level elements)."""
    return ["".join(draw(edits())) for _ in range(draw(st.integers(1, 4)))]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bulk_edits())
def test_incremental_agrees_on_bulk_edits_with_indexed_lookups(yang: YangSupport, bodies: list[str]) -> None:
    """Several entries of one list per edit, looked up through one index (as for a bulk edit of 1,000)."""
    with mock.patch("agent.schema.incremental.MANY_LOOKUPS", 1), mock.patch("agent.datastore.diff.MANY_LOOKUPS", 1):
        run_sequence(yang, bodies, accumulate=True)


def test_ancestors_with_member_names_already_found_valid_are_not_checked_again(yang: YangSupport) -> None:
    """A new trustpoint's ancestors (root, crypto, ca) keep their member names: their mandatory and
    choice checks ran for the first such edit and are skipped after (no "when" in them)."""
    model = yang.model
    start = apply_edit(new_root(), config(SEED), yang, yang).root
    base = cooked_config(start, model)

    def add(name: str) -> int:
        result = apply_edit(start, config(
            f'<crypto xmlns="{CRYPTO}"><ca><trustpoint><name>{name}</name><rsakeypair>k</rsakeypair></trustpoint>'
            "</ca></crypto>"), yang, yang)
        from yangson.schemanode import InternalNode

        with mock.patch.object(InternalNode, "_check_schema_pattern", autospec=True,
                               side_effect=InternalNode._check_schema_pattern) as checks:
            value = validate_changes(model, base, result.root, result.touched or frozenset(), confirm_errors=False)
        assert value == cooked_config(result.root, model)
        return checks.call_count

    add("first")
    assert add("second") == 0


NACM = "urn:ietf:params:xml:ns:yang:ietf-netconf-acm"


def _rule_lists(action: str, lists: int = 3, rules: int = 12) -> str:
    body = "".join(
        f"<rule-list><name>list{n}</name><group>g{n}</group>"
        + "".join(f"<rule><name>r{n}-{r}</name><module-name>*</module-name><action>{action}</action></rule>"
                  for r in range(rules))
        + "</rule-list>"
        for n in range(lists)
    )
    return f'<nacm xmlns="{NACM}">{body}</nacm>'


def test_many_entries_of_a_list_nested_in_several_entries(yang: YangSupport) -> None:
    """Lists of the same name under several parents, each edited in many entries (indexed lookups):
    every parent's entries are found in its own list. (The indexes were keyed by the id() of a parent's
    lxml proxy, which can be freed and its id given to the next parent's.)"""
    run_sequence(yang, [_rule_lists("permit"), _rule_lists("deny"), _rule_lists("permit", lists=4, rules=9)],
                 accumulate=False)


class _Cooked:
    """A stand-in cooked value that can be watched for being freed."""


def test_the_cache_frees_a_pushed_out_tree_at_trim_not_at_put() -> None:
    """Freeing a validated tree (~2 ms at 10,000 trustpoints) waits for ``trim``, after the commit's reply;
    ``put`` keeps one tree more than its size, and frees any beyond that itself."""
    cache = CookedCache(size=2)
    roots = [etree.Element("data") for _ in range(4)]
    values = [_Cooked() for _ in roots]
    freed = [weakref.ref(value) for value in values]
    for root, value in zip(roots[:3], values[:3], strict=True):
        cache.put(root, value)  # type: ignore[arg-type]
    del values[:3], value  # the cache's references are the only ones left
    assert len(cache) == 3 and freed[0]() is not None  # pushed out, still held: nothing freed before the reply
    cache.trim()
    assert len(cache) == 2 and freed[0]() is None
    assert cache.get(roots[0]) is None and cache.get(roots[1]) is freed[1]()
    cache.put(roots[3], values.pop())  # type: ignore[arg-type]
    assert len(cache) == 3
    cache.put(roots[0], _Cooked())  # type: ignore[arg-type]  # one more without a trim: put frees the
    assert len(cache) == 3 and freed[2]() is None  # least recently used (roots[1] was asked for since)
    assert cache.get(roots[1]) is freed[1]()


def test_validation_bases_beyond_the_newest_are_released_on_request(yang: YangSupport) -> None:
    trees = [apply_edit(new_root(), config(SEED + f'<hostname xmlns="{SYS}">h{n}</hostname>'), yang, yang).root
             for n in range(7)]
    for tree in trees:
        assert yang.validate(tree, full=True)
    yang.release_old_bases()
    kept = [tree for tree in trees if yang._cooked.get(tree) is not None]
    assert kept == trees[-4:]
