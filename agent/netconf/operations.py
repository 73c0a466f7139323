"""The RFC 6241 base operations, registered on a :class:`NetconfAgent`.

Each handler checks its parameters (unknown-element / missing-element /
invalid-value, as Appendix A asks) and maps the request onto the datastores.
"""

from __future__ import annotations

import copy
import enum
from collections.abc import Iterable

from lxml import etree

from agent.datastore.edit import ErrorOption, Operation, merge_trees, new_root
from agent.datastore.store import DEFAULT_CONFIRM_TIMEOUT, Target, TestOption
from agent.errors import NetconfError
from agent.netconf.dispatch import NetconfAgent, RpcErrors, SessionInfo
from agent.netconf.filters import apply_filter
from agent.netconf.rpcerror import NC_NS
from agent.xmltree import default_ns

_DATA = f"{{{NC_NS}}}data"


def nc(name: str) -> str:
    return f"{{{NC_NS}}}{name}"


def _params(operation: etree._Element, allowed: Iterable[str]) -> dict[str, etree._Element]:
    """The operation's parameters by local name; refuses unknown or repeated ones."""
    allowed_tags = {nc(name) for name in allowed}
    found: dict[str, etree._Element] = {}
    for child in operation:
        if not isinstance(child.tag, str):
            continue
        if child.tag not in allowed_tags:
            raise NetconfError(
                f"unexpected parameter <{etree.QName(child).localname}> in <{etree.QName(operation).localname}>",
                error_tag="unknown-element",
                error_type="protocol",
                info={"bad-element": etree.QName(child).localname},
            )
        name = etree.QName(child).localname
        if name in found:
            raise NetconfError(
                f"parameter <{name}> given twice", error_tag="bad-element", error_type="protocol",
                info={"bad-element": name},
            )
        found[name] = child
    return found


def _required(params: dict[str, etree._Element], name: str, operation: str) -> etree._Element:
    element = params.get(name)
    if element is None:
        raise NetconfError(
            f"<{operation}> needs a <{name}> parameter",
            error_tag="missing-element",
            error_type="protocol",
            info={"bad-element": name},
        )
    return element


def _datastore_choice(holder: etree._Element, allowed: Iterable[str]) -> etree._Element:
    children = [child for child in holder if isinstance(child.tag, str)]
    name = etree.QName(holder).localname
    if len(children) != 1:
        raise NetconfError(
            f"<{name}> must name exactly one datastore", error_tag="missing-element", error_type="protocol",
            info={"bad-element": name},
        )
    choice = children[0]
    allowed = list(allowed)
    if choice.tag not in {nc(a) for a in allowed}:
        raise NetconfError(
            f"<{etree.QName(choice).localname}> is not a supported {name} here; use one of: {', '.join(allowed)}",
            error_tag="invalid-value",
            error_type="protocol",
            info={"bad-element": etree.QName(choice).localname},
        )
    return choice


def _target(holder: etree._Element) -> Target:
    return Target(etree.QName(_datastore_choice(holder, ("running", "candidate"))).localname)


def _inline_config(config: etree._Element) -> etree._Element:
    root = new_root()
    for child in config:
        if isinstance(child.tag, str):
            root.append(copy.deepcopy(child))
    return root


def _enum(element: etree._Element | None, kind: type[enum.Enum], default: enum.Enum) -> enum.Enum:
    if element is None:
        return default
    value = (element.text or "").strip()
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(member.value for member in kind)
        raise NetconfError(
            f"<{etree.QName(element).localname}> must be one of {allowed}, not {value!r}",
            error_tag="invalid-value",
            error_type="protocol",
            info={"bad-element": etree.QName(element).localname},
        ) from None


class BaseOperations:
    """Handlers for the base operations; the agent's operation table points here."""

    def __init__(self, agent: NetconfAgent) -> None:
        self.agent = agent
        self.store = agent.datastores
        for name in (
            "get", "get-config", "edit-config", "copy-config", "delete-config", "lock", "unlock",
            "discard-changes", "validate", "commit", "cancel-commit", "close-session", "kill-session",
        ):
            agent.register(nc(name), getattr(self, name.replace("-", "_")))

    def _reply_data(self, tree: etree._Element, filter_el: etree._Element | None) -> list[etree._Element]:
        filtered = apply_filter(tree, filter_el, self.agent.schema.keys_of, self.agent.schema.prefixes())
        data = etree.Element(_DATA, nsmap=default_ns(NC_NS))
        data.extend(list(filtered))
        return [data]

    def get(self, session: SessionInfo, operation: etree._Element) -> list[etree._Element]:
        params = _params(operation, ("filter", "with-defaults"))
        state = new_root()
        for provider in self.agent.state_providers:
            for node in provider():
                state.append(node)
        tree = merge_trees(self.store.get(Target.RUNNING), state, self.store.schema, self.store.namer)
        self.agent.access.prune(session.username, tree)  # RFC 8341: before the filter sees it
        return self._reply_data(tree, params.get("filter"))

    def get_config(self, session: SessionInfo, operation: etree._Element) -> list[etree._Element]:
        params = _params(operation, ("source", "filter", "with-defaults"))
        source = _target(_required(params, "source", "get-config"))
        tree = self.agent.access.read_view(session.username, self.store.get(source))  # RFC 8341
        return self._reply_data(tree, params.get("filter"))

    def edit_config(self, session: SessionInfo, operation: etree._Element) -> None:
        params = _params(operation, ("target", "default-operation", "test-option", "error-option", "config", "url"))
        target = _target(_required(params, "target", "edit-config"))
        if "url" in params:
            raise NetconfError(
                "the :url capability is not supported", error_tag="operation-not-supported", error_type="protocol"
            )
        config = _required(params, "config", "edit-config")
        default_op = _enum(params.get("default-operation"), Operation, Operation.MERGE)
        if default_op in (Operation.CREATE, Operation.DELETE, Operation.REMOVE):
            raise NetconfError(
                "<default-operation> must be merge, replace or none",
                error_tag="invalid-value",
                error_type="protocol",
                info={"bad-element": "default-operation"},
            )
        test_option = _enum(params.get("test-option"), TestOption, TestOption.TEST_THEN_SET)
        error_option = _enum(params.get("error-option"), ErrorOption, ErrorOption.STOP_ON_ERROR)
        assert isinstance(default_op, Operation)
        assert isinstance(test_option, TestOption)
        assert isinstance(error_option, ErrorOption)
        result = self.store.edit(
            target, config, session.session_id, default_op, test_option, error_option,
            guard=self.agent.access.write_guard(session.username),  # RFC 8341 write checks
        )
        if result.errors:
            raise RpcErrors(result.errors)

    def copy_config(self, session: SessionInfo, operation: etree._Element) -> None:
        params = _params(operation, ("target", "source", "with-defaults"))
        target = _target(_required(params, "target", "copy-config"))
        source_holder = _required(params, "source", "copy-config")
        source = _datastore_choice(source_holder, ("running", "candidate", "config"))
        if source.tag == nc("config"):
            tree = _inline_config(source)
        else:
            source_target = Target(etree.QName(source).localname)
            if source_target is target:
                raise NetconfError(
                    "source and target are the same datastore", error_tag="invalid-value", error_type="protocol"
                )
            tree = self.store.get(source_target)
        self.store.replace(target, tree, session.session_id, guard=self.agent.access.write_guard(session.username))

    def delete_config(self, session: SessionInfo, operation: etree._Element) -> None:
        params = _params(operation, ("target",))
        target = _target(_required(params, "target", "delete-config"))
        raise NetconfError(
            f"the {target.value} datastore cannot be deleted (there is no startup datastore)",
            error_tag="operation-not-supported",
            error_type="protocol",
        )

    def lock(self, session: SessionInfo, operation: etree._Element) -> None:
        params = _params(operation, ("target",))
        self.store.lock(_target(_required(params, "target", "lock")), session.session_id)

    def unlock(self, session: SessionInfo, operation: etree._Element) -> None:
        params = _params(operation, ("target",))
        self.store.unlock(_target(_required(params, "target", "unlock")), session.session_id)

    def discard_changes(self, session: SessionInfo, operation: etree._Element) -> None:
        _params(operation, ())
        self.store.discard_changes(session.session_id)

    def validate(self, session: SessionInfo, operation: etree._Element) -> None:
        params = _params(operation, ("source",))
        source = _datastore_choice(_required(params, "source", "validate"), ("running", "candidate", "config"))
        if source.tag == nc("config"):
            tree = _inline_config(source)
        else:
            tree = self.store.get(Target(etree.QName(source).localname))
        self.store.validate(tree)

    def commit(self, session: SessionInfo, operation: etree._Element) -> None:
        params = _params(operation, ("confirmed", "confirm-timeout", "persist", "persist-id"))
        timeout_el = params.get("confirm-timeout")
        timeout = DEFAULT_CONFIRM_TIMEOUT
        if timeout_el is not None:
            text = (timeout_el.text or "").strip()
            if not text.isdigit() or not 1 <= int(text) <= 4294967295:
                raise NetconfError(
                    f"<confirm-timeout> must be a number of seconds from 1 to 4294967295, not {text!r}",
                    error_tag="invalid-value",
                    error_type="protocol",
                    info={"bad-element": "confirm-timeout"},
                )
            timeout = int(text)
        persist_el = params.get("persist")
        persist_id_el = params.get("persist-id")
        self.store.commit(
            session.session_id,
            confirmed="confirmed" in params,
            confirm_timeout=timeout,
            persist=(persist_el.text or "") if persist_el is not None else None,
            persist_id=(persist_id_el.text or "") if persist_id_el is not None else None,
            guard=self.agent.access.write_guard(session.username),  # RFC 8341 3.2.8
        )

    def cancel_commit(self, session: SessionInfo, operation: etree._Element) -> None:
        params = _params(operation, ("persist-id",))
        persist_id_el = params.get("persist-id")
        self.store.cancel_commit(
            session.session_id, (persist_id_el.text or "") if persist_id_el is not None else None
        )

    def close_session(self, session: SessionInfo, operation: etree._Element) -> None:
        _params(operation, ())
        session.closing = True

    def kill_session(self, session: SessionInfo, operation: etree._Element) -> None:
        params = _params(operation, ("session-id",))
        text = (_required(params, "session-id", "kill-session").text or "").strip()
        if not text.isdigit():
            raise NetconfError(
                f"<session-id> must be a session number, not {text!r}", error_tag="invalid-value",
                error_type="protocol", info={"bad-element": "session-id"},
            )
        target = int(text)
        if target == session.session_id:
            raise NetconfError(
                "a session cannot kill itself; use <close-session>", error_tag="invalid-value",
                error_type="protocol", info={"bad-element": "session-id"},
            )
        self.agent.kill_session(target)
