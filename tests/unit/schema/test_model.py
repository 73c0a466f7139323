"""SchemaModel: module list, schema sources, namespace lookups, node_info."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from agent.errors import SchemaError
from agent.schema.model import (
    Conformance,
    ModuleInfo,
    NodeInfo,
    NodeKind,
    SchemaModel,
    ietf_yang_dirs,
    own_yang_dir,
)

from .helpers import CRYPTO, SYS, TEST, TEST_MODULE, TEST_YANG_DIR, clark

REPO = Path(__file__).resolve().parents[3]


def _installed_not_copied(path: Path) -> bool:
    """Outside the checkout, or inside the Python installation (a virtual environment may live in it: .venv)."""
    return REPO not in path.parents or Path(sys.prefix).resolve() in path.resolve().parents


def _revision_in_file(path: Path) -> str:
    m = re.search(r"^\s*revision\s+\"?(\d{4}-\d{2}-\d{2})", path.read_text(), re.M)
    assert m is not None
    return m.group(1)


def _by_name(model: SchemaModel) -> dict[str, ModuleInfo]:
    return {m.name: m for m in model.modules}


# ---------------------------------------------------------------- modules


def test_own_yang_dir_is_the_checkout() -> None:
    assert own_yang_dir() == REPO / "yang"


def test_ietf_modules_come_from_pyang_not_the_repo() -> None:
    dirs = ietf_yang_dirs()
    assert any(d.name == "ietf" and (d / "ietf-yang-types.yang").is_file() for d in dirs)
    assert all(_installed_not_copied(d) for d in dirs)


def test_load_is_cached(model: SchemaModel) -> None:
    assert SchemaModel.load() is model


def test_our_modules_are_implemented_with_their_revision(model: SchemaModel) -> None:
    mods = _by_name(model)
    for path in sorted((REPO / "yang").glob("*.yang")):
        info = mods[path.stem]
        assert info.conformance is Conformance.IMPLEMENT
        assert info.revision == _revision_in_file(path)
        assert info.path == path
    assert mods["ca-agent-system"].namespace == SYS
    assert mods["ca-agent-system"].prefix == "sys"
    assert mods["ca-agent-crypto"].namespace == CRYPTO
    assert mods["ca-agent-crypto"].prefix == "crypto"


def test_served_ietf_modules(model: SchemaModel) -> None:
    mods = _by_name(model)
    ncm = mods["ietf-netconf-monitoring"]
    assert (ncm.revision, ncm.conformance) == ("2010-10-04", Conformance.IMPLEMENT)
    assert ncm.namespace == "urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring"
    yanglib = mods["ietf-yang-library"]
    assert (yanglib.revision, yanglib.conformance) == ("2019-01-04", Conformance.IMPLEMENT)
    assert mods["ietf-datastores"].conformance is Conformance.IMPLEMENT
    for name in ("ietf-inet-types", "ietf-yang-types"):
        assert mods[name].conformance is Conformance.IMPORT
        assert mods[name].revision == "2013-07-15"
    for info in model.modules:
        if info.name.startswith("ietf-"):
            assert _installed_not_copied(info.path)
            assert info.path.is_file()


def test_every_import_is_in_the_model(model: SchemaModel) -> None:
    names = {m.name for m in model.modules}
    for info in model.modules:
        imported = re.findall(r"^\s*import\s+([\w.-]+)", info.path.read_text(), re.M)
        assert set(imported) <= names, info.name


def test_capability_uri(model: SchemaModel) -> None:
    crypto = model.module("ca-agent-crypto")
    assert crypto is not None
    assert crypto.capability == f"{CRYPTO}?module=ca-agent-crypto&revision={crypto.revision}"


def test_module_set_id_is_stable(model: SchemaModel) -> None:
    assert re.fullmatch(r"[0-9a-f]{40}", model.module_set_id)


def test_extra_module_by_path(test_model: SchemaModel) -> None:
    info = test_model.module("ca-agent-test")
    assert info is not None
    assert info.conformance is Conformance.IMPLEMENT
    assert info.revision == "2026-01-02"
    assert info.path == TEST_MODULE
    # The production model is not affected.
    assert SchemaModel.load().module("ca-agent-test") is None


def test_extra_module_by_name_and_dir() -> None:
    model = SchemaModel.load(extra_modules=["ca-agent-test"], extra_dirs=[TEST_YANG_DIR])
    assert model.namespace_of("ca-agent-test") == TEST


def test_unknown_extra_module() -> None:
    with pytest.raises(SchemaError, match="no-such-module"):
        SchemaModel.load(extra_modules=["no-such-module"])


# --------------------------------------------------------------- namespaces


def test_namespace_lookups(model: SchemaModel) -> None:
    assert model.namespace_of("ca-agent-crypto") == CRYPTO
    assert model.module_of_namespace(SYS) == "ca-agent-system"
    assert model.prefix_of_namespace(CRYPTO) == "crypto"
    assert model.prefix_of_namespace("urn:ietf:params:xml:ns:yang:ietf-inet-types") == "inet"
    assert model.namespace_of("nope") is None
    assert model.module_of_namespace("urn:nope") is None
    assert model.prefix_of_namespace("urn:nope") is None


# ---------------------------------------------------------------- schema_text


@pytest.mark.parametrize("name", ["ca-agent-system", "ca-agent-crypto", "ietf-netconf-monitoring", "ietf-yang-library"])
def test_schema_text_parses_with_pyang(model: SchemaModel, name: str, tmp_path: Path) -> None:
    info = model.module(name)
    assert info is not None
    text = model.schema_text(name, info.revision)
    assert text == model.schema_text(name, None)  # single revision: version optional
    out = tmp_path / f"{name}@{info.revision}.yang"
    out.write_text(text)
    search = ":".join(str(d) for d in [own_yang_dir(), *ietf_yang_dirs()])
    proc = subprocess.run(
        [sys.executable, "-m", "pyang", "--path", search, "-f", "tree", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert f"module: {name}" in proc.stdout


def test_schema_text_unknown_identifier(model: SchemaModel) -> None:
    with pytest.raises(SchemaError) as err:
        model.schema_text("no-such-module", None)
    assert err.value.error_tag == "invalid-value"
    assert "no-such-module" in err.value.message


def test_schema_text_unknown_version(model: SchemaModel) -> None:
    with pytest.raises(SchemaError) as err:
        model.schema_text("ca-agent-crypto", "1999-01-01")
    assert err.value.error_tag == "invalid-value"
    assert "1999-01-01" in err.value.message


def test_schema_text_ambiguous_without_version(model: SchemaModel, tmp_path: Path) -> None:
    old = tmp_path / "ca-agent-crypto@2020-01-01.yang"
    old.write_text("module ca-agent-crypto { namespace urn:x; prefix x; revision 2020-01-01; }")
    crypto = model.module("ca-agent-crypto")
    assert crypto is not None
    twin = ModuleInfo(
        name=crypto.name,
        revision="2020-01-01",
        namespace=crypto.namespace,
        prefix=crypto.prefix,
        path=old,
        conformance=Conformance.IMPORT,
    )
    both = SchemaModel([*model.modules, twin], model.data_model)
    with pytest.raises(SchemaError) as err:
        both.schema_text("ca-agent-crypto", None)
    assert (err.value.error_tag, err.value.error_app_tag) == ("operation-failed", "data-not-unique")
    assert both.schema_text("ca-agent-crypto", "2020-01-01") == old.read_text()


# ------------------------------------------------------------------ node_info


def _trustpoint(model: SchemaModel) -> NodeInfo:
    crypto = model.node_info(None, clark(CRYPTO, "crypto"))
    assert crypto is not None and crypto.kind is NodeKind.CONTAINER
    ca = model.node_info(crypto.ref, clark(CRYPTO, "ca"))
    assert ca is not None
    tp = model.node_info(ca.ref, clark(CRYPTO, "trustpoint"))
    assert tp is not None
    return tp


def test_node_info_trustpoint_is_a_keyed_list(model: SchemaModel) -> None:
    tp = _trustpoint(model)
    assert tp.kind is NodeKind.LIST
    assert tp.keys == (clark(CRYPTO, "name"),)
    assert tp.config is True
    assert tp.user_ordered is False
    assert tp.qualified_name == "crypto:trustpoint"
    assert tp.ref is not None


def test_node_info_enrollment_cases(model: SchemaModel) -> None:
    enrollment = model.node_info(_trustpoint(model).ref, clark(CRYPTO, "enrollment"))
    assert enrollment is not None
    url = model.node_info(enrollment.ref, clark(CRYPTO, "url"))
    terminal = model.node_info(enrollment.ref, clark(CRYPTO, "terminal"))
    retry = model.node_info(enrollment.ref, clark(CRYPTO, "retry"))
    assert url is not None and terminal is not None and retry is not None
    assert url.other_case_tags == frozenset({clark(CRYPTO, "terminal")})
    assert terminal.other_case_tags == frozenset({clark(CRYPTO, "url")})
    assert retry.other_case_tags == frozenset()
    assert url.kind is NodeKind.LEAF and url.ref is None


def test_node_info_defaults(model: SchemaModel) -> None:
    enrollment = model.node_info(_trustpoint(model).ref, clark(CRYPTO, "enrollment"))
    assert enrollment is not None
    retry = model.node_info(enrollment.ref, clark(CRYPTO, "retry"))
    assert retry is not None and retry.presence is False
    period = model.node_info(retry.ref, clark(CRYPTO, "period"))
    assert period is not None
    assert period.default == "1"
    assert period.kind is NodeKind.LEAF
    hostname = model.node_info(None, clark(SYS, "hostname"))
    assert hostname is not None and hostname.default == "router"
    rsakeypair = model.node_info(_trustpoint(model).ref, clark(CRYPTO, "rsakeypair"))
    assert rsakeypair is not None and rsakeypair.default is None


def test_node_info_is_cached(model: SchemaModel) -> None:
    first = model.node_info(None, clark(CRYPTO, "crypto"))
    assert model.node_info(None, clark(CRYPTO, "crypto")) is first


def test_node_info_unknown(model: SchemaModel) -> None:
    assert model.node_info(None, clark(CRYPTO, "nope")) is None
    assert model.node_info(None, "{urn:nope}crypto") is None
    assert model.node_info(None, "crypto") is None
    # A leaf of a different module is not a child of ours.
    assert model.node_info(_trustpoint(model).ref, clark(SYS, "name")) is None


def test_node_info_state_data(model: SchemaModel) -> None:
    state = model.node_info(None, "{urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring}netconf-state")
    assert state is not None
    assert state.kind is NodeKind.CONTAINER
    assert state.config is False


def test_node_info_mandatory_and_leaf_list(test_model: SchemaModel) -> None:
    things = test_model.node_info(None, clark(TEST, "things"))
    assert things is not None and things.presence is True
    need = test_model.node_info(things.ref, clark(TEST, "need"))
    assert need is not None and need.mandatory is True
    tag = test_model.node_info(things.ref, clark(TEST, "tag"))
    assert tag is not None and tag.kind is NodeKind.LEAF_LIST
    # Case "b" is a container; its members are what the other case removes.
    a = test_model.node_info(things.ref, clark(TEST, "a"))
    assert a is not None and a.other_case_tags == frozenset({clark(TEST, "b")})


def test_rpcs_are_not_data_nodes(test_model: SchemaModel) -> None:
    assert test_model.node_info(None, clark(TEST, "do-thing")) is None
    assert test_model.node_info(None, clark(TEST, "count")) is None
    ref = test_model.rpc_input_ref(clark(TEST, "do-thing"))
    assert ref is not None
    count = test_model.node_info(ref, clark(TEST, "count"))
    assert count is not None and count.kind is NodeKind.LEAF and count.mandatory
    assert test_model.rpc_input_ref(clark(TEST, "nope")) is None


def test_children_in_schema_order(model: SchemaModel) -> None:
    names = [i.name for i in model.children(_trustpoint(model).ref)]
    assert names[0] == "name"
    assert {"enrollment", "query-url", "rsakeypair", "subject-name"} <= set(names)
