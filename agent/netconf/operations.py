"""The RFC 6241 base operations, registered on a :class:`NetconfAgent`.

Each handler checks its parameters (unknown-element / missing-element /
invalid-value, as Appendix A asks) and maps the request onto the datastores.
"""

from __future__ import annotations

import copy
import enum
from collections.abc import Iterable, Mapping

from lxml import etree

from agent.datastore.edit import ErrorOption, Operation, merge_trees, new_root
from agent.datastore.store import DEFAULT_CONFIRM_TIMEOUT, CommitNote, Principal, Target, TestOption
from agent.errors import DatastoreError, NetconfError
from agent.netconf.budget import DEFAULT_XPATH_BUDGET, FilterBudget
from agent.netconf.defaults import CAPABILITY as WD_CAPABILITY
from agent.netconf.defaults import WD_NS, WithDefaults, apply_with_defaults, parse_with_defaults
from agent.netconf.dispatch import NetconfAgent, RpcErrors, SessionInfo
from agent.netconf.filters import apply_filter
from agent.netconf.rpcerror import NC_NS
from agent.netconf.scope import EVERYTHING, StateScope, pruned, scope_of
from agent.schema.model import SchemaModel
from agent.schema.validate import validate_rpc_input
from agent.xmltree import default_ns, publish

_DATA = f"{{{NC_NS}}}data"


def nc(name: str) -> str:
    return f"{{{NC_NS}}}{name}"


_SYS_NS = "urn:ca-agent:yang:system"
_COMMIT_EXTENSIONS = {f"{{{_SYS_NS}}}label": "label", f"{{{_SYS_NS}}}comment": "comment"}
"""What ca-agent-system adds to <commit> (IOS XR 'commit label L comment C'): Clark tag -> name."""


def commit_note(params: Mapping[str, etree._Element]) -> CommitNote | None:
    """The label/comment given on a <commit>, as the datastore records them (None if neither)."""
    label = params.get("label")
    comment = params.get("comment")
    if label is None and comment is None:
        return None
    return CommitNote(
        label=(label.text or "").strip() if label is not None else None,
        comment=(comment.text or "") if comment is not None else None,
    )


_WITH_DEFAULTS = {f"{{{WD_NS}}}with-defaults": "with-defaults"}  # RFC 6243 augments get, get-config, copy-config


def _params(
    operation: etree._Element, allowed: Iterable[str], extensions: Mapping[str, str] | None = None
) -> dict[str, etree._Element]:
    """The operation's parameters by local name; refuses unknown or repeated ones.

    ``extensions`` maps the Clark tags of parameters other modules add
    (augments, e.g. RFC 6243's with-defaults) to their names.
    """
    allowed_tags = {nc(name) for name in allowed}
    extensions = extensions or {}
    found: dict[str, etree._Element] = {}
    for child in operation:
        if not isinstance(child.tag, str):
            continue
        if child.tag in extensions:
            found[extensions[child.tag]] = child
            continue
        # A parameter without a namespace (e.g. <config xmlns:xc="...base:1.0">,
        # as Ansible's netconf_config documents it) is read as the base one,
        # as routers and ncclient do.
        if child.tag in allowed and etree.QName(child).namespace is None:
            child_tag = nc(child.tag)
        else:
            child_tag = child.tag
        if child_tag not in allowed_tags:
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


def principal(session: SessionInfo) -> Principal:
    """The datastore's view of who is asking."""
    return Principal(session.session_id, session.username, session.source_host)


def _persist_id_path(error: DatastoreError, operation: str) -> DatastoreError:
    # The datastore cannot know which operation carried the persist-id.
    if error.error_app_tag == "persist-id-mismatch":
        error.path = f"/nc:rpc/nc:{operation}/nc:persist-id"
    return error


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
    if choice.tag not in {nc(a) for a in allowed} | set(allowed):  # no namespace: read as base, as above
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

    def __init__(self, agent: NetconfAgent, model: SchemaModel, filter_budget: float = DEFAULT_XPATH_BUDGET) -> None:
        """``filter_budget``: CPU seconds one filter may use (agent/netconf/budget.py)."""
        self.agent = agent
        self.model = model
        self.store = agent.datastores
        self.filter_budget = filter_budget
        # Lists ((path of Clark tags, key tag)) whose entries a <get> filter naming their keys narrows
        # before state is merged in.
        self.scoped_lists: list[tuple[tuple[str, ...], str]] = []
        agent.extra_capabilities.append(WD_CAPABILITY)
        for name in (
            "get", "get-config", "edit-config", "copy-config", "delete-config", "lock", "unlock",
            "discard-changes", "validate", "commit", "cancel-commit", "close-session", "kill-session",
        ):
            agent.register(nc(name), getattr(self, name.replace("-", "_")))

    def operational(self, scope: StateScope = EVERYTHING) -> etree._Element:
        """Running with every state provider's nodes merged in (what <get> and ds:operational show).

        ``scope`` (what a <get> filter can select) leaves out what the filter
        would drop anyway: state providers that produce nothing selectable,
        and the unselected parts of running (agent/netconf/scope.py). State of
        modules the schema does not hold (``agent.unmodelled_state``) is
        appended as built, after the schema-checked merge.
        """
        running = self.store.get(Target.RUNNING)
        if not scope.everything:
            # A filtered read looks entries up by key (here and in the state providers): let the
            # (never changed) running tree keep key indexes for the next reads.
            publish(running)
        state = new_root()
        for source in self.agent.state_sources:
            for node in source.nodes(scope):
                state.append(node)
        if scope.everything:
            merged = merge_trees(running, state, self.store.schema, self.store.namer)
        else:  # the pruned copy is this read's own: state is merged into it in place
            merged = merge_trees(pruned(running, scope, self.scoped_lists), state, self.store.schema,
                                 self.store.namer, in_place=True)
        for unmodelled in self.agent.unmodelled_state:
            merged.extend(unmodelled.provider())  # merge_trees returned a new tree: running is not touched
        return merged

    def reply_data(
        self,
        session: SessionInfo,
        tree: etree._Element,
        filter_el: etree._Element | None,
        with_defaults: WithDefaults,
        include_state: bool,
        data_tag: str = _DATA,
    ) -> list[etree._Element]:
        """The <data> of a reply: defaults as asked, then what the user may read (RFC 8341), then the filter."""
        tree = apply_with_defaults(tree, with_defaults, self.model, include_state)
        tree = self.agent.access.read_view(session.username, tree)  # before the filter sees it
        budget = FilterBudget(self.filter_budget, session.cancellation)
        filtered = apply_filter(tree, filter_el, self.agent.keys_of, self.agent.schema.prefixes(), budget)
        data = etree.Element(data_tag, nsmap=default_ns(etree.QName(data_tag).namespace))
        data.extend(list(filtered))
        return [data]

    def get(self, session: SessionInfo, operation: etree._Element) -> list[etree._Element]:
        params = _params(operation, ("filter",), _WITH_DEFAULTS)
        mode = parse_with_defaults(params.get("with-defaults"))
        filter_el = params.get("filter")
        return self.reply_data(session, self.operational(scope_of(filter_el)), filter_el, mode, include_state=True)

    def get_config(self, session: SessionInfo, operation: etree._Element) -> list[etree._Element]:
        params = _params(operation, ("source", "filter"), _WITH_DEFAULTS)
        source = _target(_required(params, "source", "get-config"))
        mode = parse_with_defaults(params.get("with-defaults"))
        filter_el = params.get("filter")
        tree = self.store.get(source)
        scope = scope_of(filter_el)
        if not scope.everything:  # only what the filter can select, as for <get> (agent/netconf/scope.py)
            publish(tree)
            tree = pruned(tree, scope, self.scoped_lists)
        return self.reply_data(session, tree, filter_el, mode, include_state=False)

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
            target, config, principal(session), default_op, test_option, error_option,
            guard=self.agent.access.write_guard(session.username),  # RFC 8341 write checks
        )
        if result.errors:
            raise RpcErrors(result.errors)

    def copy_config(self, session: SessionInfo, operation: etree._Element) -> None:
        params = _params(operation, ("target", "source"), _WITH_DEFAULTS)
        target = _target(_required(params, "target", "copy-config"))
        # Only a copy to a URL (not supported) would show defaults differently;
        # the mode is still checked.
        parse_with_defaults(params.get("with-defaults"))
        source_holder = _required(params, "source", "copy-config")
        source = _datastore_choice(source_holder, ("running", "candidate", "config"))
        if etree.QName(source).localname == "config":
            tree = _inline_config(source)
        else:
            source_target = Target(etree.QName(source).localname)
            if source_target is target:
                raise NetconfError(
                    "source and target are the same datastore", error_tag="invalid-value", error_type="protocol"
                )
            tree = self.store.get(source_target)
        self.store.replace(target, tree, principal(session), guard=self.agent.access.write_guard(session.username))

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
        self.store.lock(_target(_required(params, "target", "lock")), principal(session))

    def unlock(self, session: SessionInfo, operation: etree._Element) -> None:
        params = _params(operation, ("target",))
        self.store.unlock(_target(_required(params, "target", "unlock")), principal(session))

    def discard_changes(self, session: SessionInfo, operation: etree._Element) -> None:
        _params(operation, ())
        self.store.discard_changes(principal(session))

    def validate(self, session: SessionInfo, operation: etree._Element) -> None:
        params = _params(operation, ("source",))
        source = _datastore_choice(_required(params, "source", "validate"), ("running", "candidate", "config"))
        if etree.QName(source).localname == "config":
            tree = _inline_config(source)
        else:
            tree = self.store.get(Target(etree.QName(source).localname))
        self.store.validate(tree)

    def commit(self, session: SessionInfo, operation: etree._Element) -> None:
        params = _params(operation, ("confirmed", "confirm-timeout", "persist", "persist-id"), _COMMIT_EXTENSIONS)
        note = commit_note(params)
        if note is not None:  # the label and comment are checked against ca-agent-system's types
            validate_rpc_input(nc("commit"), operation, self.model)
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
        try:
            self.store.commit(
                principal(session),
                confirmed="confirmed" in params,
                confirm_timeout=timeout,
                persist=(persist_el.text or "") if persist_el is not None else None,
                persist_id=(persist_id_el.text or "") if persist_id_el is not None else None,
                note=note,
                guard=self.agent.access.write_guard(session.username),  # RFC 8341 3.2.8
            )
        except DatastoreError as error:
            raise _persist_id_path(error, "commit") from None

    def cancel_commit(self, session: SessionInfo, operation: etree._Element) -> None:
        params = _params(operation, ("persist-id",))
        persist_id_el = params.get("persist-id")
        try:
            self.store.cancel_commit(
                principal(session), (persist_id_el.text or "") if persist_id_el is not None else None
            )
        except DatastoreError as error:
            raise _persist_id_path(error, "cancel-commit") from None

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
        self.agent.kill_session(target, by=session.session_id)
