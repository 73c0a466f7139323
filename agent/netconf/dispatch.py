"""Turns one framed NETCONF message into one reply: parsing, dispatch, rpc-errors.

This is the protocol core, free of SSH so it can be reasoned about (and
tested) on strings. The SSH side (agent/netconf/server.py) hands every
received message to :meth:`NetconfAgent.handle_message`.
"""

from __future__ import annotations

import datetime as dt
import enum
import logging
import threading
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from lxml import etree

from agent.clock import SYSTEM_CLOCK, Clock
from agent.datastore.store import Datastores
from agent.errors import AgentError, NetconfError
from agent.netconf.budget import Cancellation
from agent.netconf.message_parser import NotWellFormed, TooComplex, parse_message
from agent.netconf.nacm import AccessPolicy, OpenAccess
from agent.netconf.rpcerror import NC_NS, path_prefixes, rpc_error, rpc_reply, unexpected_error
from agent.netconf.scope import StateScope

log = logging.getLogger(__name__)

# :confirmed-commit:1.0 and :validate:1.0 (RFC 4741) are subsets of their 1.1 versions; clients of the
# RFC 4741 era (yuma123's yangcli) look only for 1.0 and otherwise refuse to send <commit><confirmed/>.
BASE_CAPABILITIES = (
    "urn:ietf:params:netconf:capability:writable-running:1.0",
    "urn:ietf:params:netconf:capability:candidate:1.0",
    "urn:ietf:params:netconf:capability:confirmed-commit:1.0",
    "urn:ietf:params:netconf:capability:confirmed-commit:1.1",
    "urn:ietf:params:netconf:capability:rollback-on-error:1.0",
    "urn:ietf:params:netconf:capability:validate:1.0",
    "urn:ietf:params:netconf:capability:validate:1.1",
    "urn:ietf:params:netconf:capability:xpath:1.0",
)

# Operations whose <config> values pass through the registered input converters.
_CONFIG_OPERATIONS = frozenset({
    f"{{{NC_NS}}}edit-config",
    f"{{{NC_NS}}}copy-config",
    "{urn:ietf:params:xml:ns:yang:ietf-netconf-nmda}edit-data",
})

InputConverter = Callable[[str], str]
"""Turns a value as a client wrote it into the value to store; raises AgentError to refuse it."""


@dataclass
class SessionInfo:
    """What the protocol core knows of one session (RFC 6022 /netconf-state/sessions)."""

    session_id: int
    username: str
    source_host: str
    login_time: dt.datetime
    in_rpcs: int = 0
    in_bad_rpcs: int = 0
    out_rpc_errors: int = 0
    out_notifications: int = 0
    closing: bool = False
    base11: bool = True  # chunked framing; False: a base:1.0-only client
    subscribed: bool = False  # has a notification subscription (exempt from the idle timeout)
    send: Callable[[bytes], None] | None = field(default=None, repr=False)  # queue a message, never blocks
    close_callback: Callable[[], None] | None = field(default=None, repr=False)
    abort: Callable[[str], None] | None = field(default=None, repr=False)  # end the session, saying why
    # Run once the reply of the current operation is queued (e.g. create-subscription starts its notifications).
    after_reply: list[Callable[[], None]] = field(default_factory=list, repr=False)
    # Cancelled when the session ends (or its client leaves): long work done for it stops.
    cancellation: Cancellation = field(default_factory=Cancellation, repr=False)


@dataclass(frozen=True)
class Reply:
    """What to do with one received message: send ``text`` (if any), then close if ``close``."""

    text: str | None
    close: bool = False
    reason: str = ""
    then: tuple[Callable[[], None], ...] = ()  # to run after ``text`` is queued (SessionInfo.after_reply)


class EndReason(enum.Enum):
    """Why a session ended (RFC 6470 termination-reason)."""

    CLOSED = "closed"  # <close-session>
    KILLED = "killed"  # <kill-session>
    DROPPED = "dropped"  # the transport went away
    TIMEOUT = "timeout"  # hello or idle timeout
    BAD_HELLO = "bad-hello"
    OTHER = "other"  # framing error, a client that does not read, shutdown...


@dataclass(frozen=True)
class SessionEvent:
    """A session started (``end`` None) or ended; ``killed_by`` is the session that killed it."""

    info: SessionInfo
    end: EndReason | None = None
    killed_by: int | None = None


SessionListener = Callable[[SessionEvent], None]
"""Called after a session opened or closed, in that session's thread, with no lock held; must not block."""


@dataclass
class Statistics:
    """RFC 6022 /netconf-state/statistics."""

    start_time: dt.datetime
    in_bad_hellos: int = 0
    in_sessions: int = 0
    dropped_sessions: int = 0
    in_rpcs: int = 0
    in_bad_rpcs: int = 0
    out_rpc_errors: int = 0
    out_notifications: int = 0


class RpcErrors(NetconfError):
    """Several errors in one reply (edit-config with continue-on-error)."""

    def __init__(self, errors: Sequence[AgentError]) -> None:
        super().__init__(errors[0].message if errors else "errors")
        self.errors = list(errors)


RpcHandler = Callable[["SessionInfo", etree._Element], "Iterable[etree._Element] | None"]
"""An operation: returns the reply's children (data or output leaves), None for <ok/>."""


class StateProvider(Protocol):
    def __call__(self) -> Iterable[etree._Element]:
        """Top-level state nodes (config false) to merge into <get>."""
        ...


class ScopedStateProvider(Protocol):
    def __call__(self, scope: StateScope) -> Iterable[etree._Element]:
        """Top-level state nodes for what ``scope`` can select (it may give more)."""
        ...


@dataclass(frozen=True)
class StateSource:
    """A registered state provider and what it declared about itself."""

    provider: StateProvider | ScopedStateProvider
    produces: frozenset[str] | None = None
    scoped: bool = False

    def nodes(self, scope: StateScope) -> Iterable[etree._Element]:
        """Its nodes for ``scope`` (none when the scope cannot select what it produces)."""
        if self.produces is not None and not scope.wants(self.produces):
            return ()
        if self.scoped:
            return self.provider(scope)  # type: ignore[call-arg]
        return self.provider()  # type: ignore[call-arg]


@dataclass(frozen=True)
class UnmodelledState:
    """State of a module the YANG schema does not hold, served as the provider builds it.

    For RFC 5277's ``/netconf/streams`` (nc-notifications, a module pyang
    does not ship): it joins <get> after the schema-checked state, and
    ``list_keys`` (list entry tag -> key tags, Clark) lets filters keep keys.
    """

    provider: StateProvider
    list_keys: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


class SchemaFacade(Protocol):
    """What the protocol core needs of the YANG schema (see agent/schema)."""

    def prefixes(self) -> dict[str, str]: ...

    def capabilities(self) -> list[str]: ...

    def keys_of(self, element: etree._Element) -> Sequence[str]: ...


class NetconfAgent:
    """Sessions, the operation table and the datastores of one NETCONF server."""

    def __init__(self, datastores: Datastores, schema: SchemaFacade, clock: Clock = SYSTEM_CLOCK) -> None:
        self.datastores = datastores
        self.schema = schema
        self.clock = clock
        self.statistics = Statistics(start_time=clock.now())
        self.sessions: dict[int, SessionInfo] = {}
        self.operations: dict[str, RpcHandler] = {}
        self.state_providers: list[StateProvider] = []
        self.state_sources: list[StateSource] = []
        self.access: AccessPolicy = OpenAccess()  # RFC 8341 NACM, installed by the application
        self.input_converters: dict[str, InputConverter] = {}
        self.extra_capabilities: list[str] = []  # added by the operations that need one (with-defaults...)
        self.unmodelled_state: list[UnmodelledState] = []
        self.session_listeners: list[SessionListener] = []
        self._mutex = threading.Lock()
        self._in_flight = 0  # requests being handled, up to their reply sent
        self._next_session_id = 1
        self._closing: set[int] = set()

    # -- extension points ----------------------------------------------------
    def register(self, tag: str, handler: RpcHandler) -> None:
        """Serve the operation whose element is ``tag`` (Clark notation)."""
        self.operations[tag] = handler

    def add_state_provider(
        self, provider: StateProvider | ScopedStateProvider, produces: Collection[str] | None = None,
        scoped: bool = False,
    ) -> None:
        """Merge ``provider``'s nodes into <get>.

        ``produces``: the top-level Clark tags it returns, so a filter that
        cannot select them skips it; ``scoped``: it takes the filter's
        :class:`~agent.netconf.scope.StateScope` and makes state only for
        what can be selected.
        """
        self.state_providers.append(provider)  # type: ignore[arg-type]
        self.state_sources.append(StateSource(provider, frozenset(produces) if produces else None, scoped))

    def add_unmodelled_state(self, state: UnmodelledState) -> None:
        """Serve state of a module the schema does not know (see :class:`UnmodelledState`)."""
        self.unmodelled_state.append(state)

    def add_session_listener(self, listener: SessionListener) -> None:
        """Tell ``listener`` about every session that opens or closes (RFC 6470 session events)."""
        self.session_listeners.append(listener)

    def keys_of(self, element: etree._Element) -> Sequence[str]:
        """The key tags of a list entry of the schema or of an unmodelled state tree (for filters)."""
        keys = self.schema.keys_of(element)
        if keys:
            return keys
        for state in self.unmodelled_state:
            found = state.list_keys.get(str(element.tag))
            if found:
                return found
        return ()

    def add_input_converter(self, leaf_tag: str, converter: InputConverter) -> None:
        """Pass every ``leaf_tag`` (Clark) value of an edit-config / copy-config / edit-data <config> through it.

        E.g. a clear-text ``$0$`` password becomes its hash before any
        datastore sees it.
        """
        self.input_converters[leaf_tag] = converter

    # -- sessions ------------------------------------------------------------
    def allocate_session_id(self) -> int:
        with self._mutex:
            session_id = self._next_session_id
            self._next_session_id += 1
            return session_id

    def open_session(self, info: SessionInfo) -> None:
        with self._mutex:
            self.sessions[info.session_id] = info
            self.statistics.in_sessions += 1
        log.info("session %d opened: user %s from %s", info.session_id, info.username, info.source_host)
        self._tell(SessionEvent(info))

    def close_session(
        self, session_id: int, dropped: bool, reason: str = "", end: EndReason | None = None,
        killed_by: int | None = None,
    ) -> None:
        """Release what a session held, then forget it. Safe to call twice.

        The session leaves /netconf-state only once its locks are released
        and its unconfirmed commit is rolled back, so whoever sees it gone
        sees the datastores it left. ``end`` says why, for the session
        listeners (default: dropped if ``dropped``, else closed).
        """
        with self._mutex:
            info = self.sessions.get(session_id)
            if info is None or session_id in self._closing:
                return
            self._closing.add(session_id)
        self.datastores.session_closed(session_id)
        with self._mutex:
            self._closing.discard(session_id)
            self.sessions.pop(session_id, None)
            if dropped:
                self.statistics.dropped_sessions += 1
        log.info("session %d closed%s%s", session_id, " (dropped)" if dropped else "", f": {reason}" if reason else "")
        if end is None:
            end = EndReason.DROPPED if dropped else EndReason.CLOSED
        self._tell(SessionEvent(info, end, killed_by))

    def count_bad_hello(self, refused: SessionInfo | None = None) -> None:
        """RFC 6022 in-bad-hellos: a hello that could not be accepted (``refused``: its session, never opened)."""
        with self._mutex:
            self.statistics.in_bad_hellos += 1
        if refused is not None:
            self._tell(SessionEvent(refused, EndReason.BAD_HELLO))

    def count_notification(self, session: SessionInfo) -> None:
        """RFC 6022 out-notifications: one <notification> was queued for ``session``."""
        with self._mutex:
            session.out_notifications += 1
            self.statistics.out_notifications += 1

    def _tell(self, event: SessionEvent) -> None:
        for listener in self.session_listeners:
            try:
                listener(event)
            except Exception:  # a listener's bug must not break the session
                log.exception("session listener failed")

    def kill_session(self, session_id: int, by: int | None = None) -> None:
        """Terminate another session (``by``: the killer's session id). Raises NetconfError invalid-value if unknown."""
        with self._mutex:
            info = self.sessions.get(session_id)
        if info is None:
            raise NetconfError(
                f"there is no session {session_id}", error_tag="invalid-value", error_type="protocol"
            )
        reason = f"killed by session {by}" if by is not None else "killed"
        self.close_session(session_id, dropped=False, reason=reason, end=EndReason.KILLED, killed_by=by)
        if info.close_callback is not None:
            info.close_callback()

    def capabilities(self) -> list[str]:
        return list(BASE_CAPABILITIES) + self.extra_capabilities + self.schema.capabilities()

    # -- messages ------------------------------------------------------------
    def handle_message(self, session: SessionInfo, message: bytes) -> Reply:
        """Answer one framed message.

        A message that is not a well-formed <rpc> is answered with
        malformed-message on base:1.1; a base:1.0-only client must not get
        that error-tag (RFC 6241 Appendix A), so its session is closed instead.
        A well-formed message beyond the parser's limits (attribute or
        namespace floods, agent/netconf/message_parser.py) gets too-big.
        """
        try:
            root = parse_message(message)
        except NotWellFormed as error:
            return self._malformed_reply(session, f"the message is not well-formed XML: {error}")
        except TooComplex as error:
            too_big = NetconfError(f"the message is too complex: {error}", error_tag="too-big", error_type="rpc")
            no_attributes: dict[str, str] = {}
            return Reply(self._error_reply(session, no_attributes, no_attributes, [too_big], True))
        if root.tag != f"{{{NC_NS}}}rpc":
            name = etree.QName(root).localname if isinstance(root.tag, str) else "?"
            return self._malformed_reply(session, f"expected an <rpc> in namespace {NC_NS}, got <{name}>")
        attrib: dict[str, str] = {str(name): str(value) for name, value in root.attrib.items()}
        # The rpc's own prefixes, so its other attributes come back as sent.
        nsmap = {prefix: ns for prefix, ns in root.nsmap.items() if prefix is not None}
        if "message-id" not in attrib:
            missing = NetconfError(
                "the <rpc> element has no message-id attribute",
                error_tag="missing-attribute",
                error_type="rpc",
                info={"bad-attribute": "message-id", "bad-element": "rpc"},
            )
            return Reply(self._error_reply(session, attrib, nsmap, [missing], True))
        if (root.text or "").strip() or any((child.tail or "").strip() for child in root):
            return self._malformed_reply(session, "text is not allowed directly inside <rpc>", attrib, nsmap)
        operations = [child for child in root if isinstance(child.tag, str)]
        if len(operations) != 1:
            wrong = f"an <rpc> must hold exactly one operation, it holds {len(operations)}"
            return self._malformed_reply(session, wrong, attrib, nsmap)
        operation = operations[0]
        handler = self.operations.get(operation.tag)
        with self._mutex:
            session.in_rpcs += 1
            self.statistics.in_rpcs += 1
        if handler is None:
            unsupported = NetconfError(
                f"operation {etree.QName(operation).localname!r} is not supported",
                error_tag="operation-not-supported",
                error_type="protocol",
                info={"bad-element": etree.QName(operation).localname},
            )
            return Reply(self._error_reply(session, attrib, nsmap, [unsupported], False))
        # The listeners of earlier commits ran (or run now): this request sees their effects.
        self.datastores.wait_delivered()
        with self._mutex:
            self._in_flight += 1
            alone = self._in_flight == 1
        # Alone, this request's commit has its listeners run once its reply is sent (the first of
        # ``then``), while the client reads it. With other requests in flight they run before the
        # reply, as the others would otherwise wait for them, each wake-up of the thread running
        # them costing a GIL turn among all the sessions' threads (100 sessions: 9 ms a wait).
        release = self.datastores.defer_listeners() if alone else None

        def finished() -> None:
            try:
                if release is not None:
                    release()
            finally:
                with self._mutex:
                    self._in_flight -= 1

        try:
            reply = self._run_operation(session, operation, handler, attrib, nsmap)
        except BaseException:
            finished()
            raise
        return replace(reply, then=(finished, *reply.then))

    def _run_operation(
        self, session: SessionInfo, operation: etree._Element, handler: RpcHandler, attrib: dict[str, str],
        nsmap: dict[str, str],
    ) -> Reply:
        session.after_reply.clear()
        try:
            self._admit(session, operation)
            result = handler(session, operation)
        except RpcErrors as errors:
            session.after_reply.clear()
            return Reply(self._error_reply(session, attrib, nsmap, errors.errors, False))
        except AgentError as error:
            session.after_reply.clear()
            return Reply(self._error_reply(session, attrib, nsmap, [error], False))
        except Exception as exc:  # never let a bug kill the session
            session.after_reply.clear()
            return Reply(self._error_reply(session, attrib, nsmap, [unexpected_error(exc)], False))
        children = list(result) if result is not None else [etree.Element(f"{{{NC_NS}}}ok")]
        text = etree.tostring(rpc_reply(attrib, children, nsmap), encoding="unicode")
        then = tuple(session.after_reply)
        session.after_reply.clear()
        if session.closing:
            return Reply(text, close=True, reason="<close-session>", then=then)
        return Reply(text, then=then)

    def _admit(self, session: SessionInfo, operation: etree._Element) -> None:
        """Before an operation runs: RFC 8341 exec check, then conversion of <config> values.

        Raises AgentError (access-denied, or a converter's refusal).
        """
        self.access.authorize(session.username, operation)
        if operation.tag in _CONFIG_OPERATIONS:
            for leaf_tag, convert in self.input_converters.items():
                for element in operation.iter(leaf_tag):
                    element.text = convert(element.text or "")

    def framing_error_reply(self, session: SessionInfo, reason: str) -> str | None:
        """The last words to a client whose framing broke (base:1.1 only), or None."""
        if not session.base11:
            return None
        return self._error_reply(session, {}, {}, [_malformed(reason)], True)

    def _malformed_reply(
        self, session: SessionInfo, reason: str, attrib: dict[str, str] | None = None,
        nsmap: dict[str, str] | None = None,
    ) -> Reply:
        if session.base11:
            return Reply(self._error_reply(session, attrib or {}, nsmap or {}, [_malformed(reason)], True))
        with self._mutex:
            session.in_bad_rpcs += 1
            self.statistics.in_bad_rpcs += 1
        log.warning("session %d (base:1.0): %s; closing the session", session.session_id, reason)
        return Reply(None, close=True, reason=f"malformed message: {reason}")

    def _error_reply(
        self, session: SessionInfo, attrib: dict[str, str], nsmap: dict[str, str],
        errors: Sequence[AgentError], bad_rpc: bool,
    ) -> str:
        with self._mutex:
            session.out_rpc_errors += 1
            self.statistics.out_rpc_errors += 1
            if bad_rpc:
                session.in_bad_rpcs += 1
                self.statistics.in_bad_rpcs += 1
        errors = _reported(errors)
        prefixes = self.schema.prefixes()
        declared = {**nsmap, **path_prefixes(errors, prefixes)}
        reply = rpc_reply(attrib, (rpc_error(error, prefixes) for error in errors), declared)
        for error in errors[:MAX_LOGGED_ERRORS]:
            log.info("session %d: rpc-error %s: %s", session.session_id, error.error_tag, error.message)
        if len(errors) > MAX_LOGGED_ERRORS:
            log.info("session %d: and %d more rpc-errors in the same reply", session.session_id,
                     len(errors) - MAX_LOGGED_ERRORS)
        return etree.tostring(reply, encoding="unicode")


MAX_REPORTED_ERRORS = 1000
"""rpc-errors in one reply. An edit with continue-on-error reports one per failing node: 100,000 failing deletes
(an 11 MB request) made a 33 MB reply, 20 s of CPU and 381 MB (VmHWM). The ones past this are counted in one last
rpc-error instead."""
MAX_LOGGED_ERRORS = 10  # rpc-errors of one reply logged one by one; the rest as a count


def _reported(errors: Sequence[AgentError]) -> Sequence[AgentError]:
    """``errors`` as a reply reports them: the first :data:`MAX_REPORTED_ERRORS`, then one saying how many more."""
    if len(errors) <= MAX_REPORTED_ERRORS:
        return errors
    more = NetconfError(
        f"{len(errors) - MAX_REPORTED_ERRORS} more errors, not reported: a reply reports at most "
        f"{MAX_REPORTED_ERRORS}",
        error_tag="operation-failed",
        error_type="application",
    )
    return [*errors[:MAX_REPORTED_ERRORS], more]


def _malformed(message: str) -> NetconfError:
    return NetconfError(message, error_tag="malformed-message", error_type="rpc")
