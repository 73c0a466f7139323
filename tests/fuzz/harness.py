"""The fuzz targets: the framing reader, the <rpc> parser and dispatch, the edit-config engine.

Each target takes bytes and either returns normally or raises
:class:`Finding` (a crash: an exception other than the agent's own error
types, an ``internal error`` rpc-error, a reply that is not well-formed XML,
or a broken invariant). Hangs are caught by the caller's per-input deadline
(tests/fuzz/run.py).

The <rpc> target runs the protocol core of a real agent in process, built
as agent/app.py builds it (datastores on a temporary directory, the YANG
schema, access control with the first-start task groups, the base, NMDA and
monitoring operations), without SSH and without the PKI services, whose
RPCs do key generation and network I/O (they are reached over SSH by the
session part of run.py).
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from lxml import etree

from agent.datastore.edit import ChangeSet, ErrorOption, Operation, apply_edit, new_root
from agent.datastore.store import Datastores, Target
from agent.errors import AgentError
from agent.netconf.dispatch import NetconfAgent, SessionInfo
from agent.netconf.framing import FrameDecoder, FramingError, encode_message
from agent.netconf.monitoring import Monitoring
from agent.netconf.nacm import AccessControl
from agent.netconf.nmda import NmdaOperations
from agent.netconf.operations import BaseOperations
from agent.netconf.yang import YangSupport
from agent.passwords import hash_password
from agent.schema.model import SchemaModel
from agent.services.accounts import PASSWORD_HASH_TAG, password_input
from agent.services.taskgroups import ADMIN_USER, admin_account, default_access_config

NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
FILTER_BUDGET = 0.5  # CPU seconds per filter inside the fuzz agent (well under any per-input deadline)
# A file whose content must never show up in a reply (XXE, external entities, XInclude).
CANARY_TEXT = "ca-agent-fuzz-canary-7f3e9b"


class Finding(Exception):
    """A crash or broken invariant, with the input's target."""


_SCHEMA: SchemaModel | None = None


def schema() -> SchemaModel:
    global _SCHEMA
    if _SCHEMA is None:
        _SCHEMA = SchemaModel.load()
    return _SCHEMA


class _Unexpected(logging.Handler):
    """Records the 'unexpected error' tracebacks the dispatcher logs for bugs it turned into replies."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@dataclass
class CoreAgent:
    """The protocol core of one agent on a temporary data directory."""

    directory: Path
    agent: NetconfAgent
    yang: YangSupport
    unexpected: _Unexpected

    @classmethod
    def build(cls) -> CoreAgent:
        directory = Path(tempfile.mkdtemp(prefix="ca-agent-fuzz-"))
        model = schema()
        yang = YangSupport(model)
        root = new_root()
        root.append(admin_account(hash_password("fuzz-admin")))
        root.append(default_access_config(ADMIN_USER))
        holder: dict[str, Datastores] = {}
        access = AccessControl(yang, lambda: holder["store"].get(Target.RUNNING))

        def validate(
            tree: etree._Element, *, full: bool, base: etree._Element | None = None, changes: ChangeSet = None
        ) -> bool:  # as agent/app.py wires it: NACM's config checks, then incremental validation
            access.check_config(tree)
            return yang.validate(tree, full=full, base=base, changes=changes)

        store = Datastores(directory, yang, yang, validate, root)
        holder["store"] = store
        agent = NetconfAgent(store, yang)
        agent.access = access
        agent.add_state_provider(access.state)
        agent.add_input_converter(PASSWORD_HASH_TAG, password_input)
        NmdaOperations(agent, BaseOperations(agent, model, FILTER_BUDGET), model)
        Monitoring(agent, model).register()
        unexpected = _Unexpected()
        logging.getLogger("agent").addHandler(unexpected)
        return cls(directory, agent, yang, unexpected)

    def close(self) -> None:
        logging.getLogger("agent").removeHandler(self.unexpected)
        self.agent.datastores.close()
        shutil.rmtree(self.directory, ignore_errors=True)

    # -- the <rpc> target -------------------------------------------------------------
    answered: int = 0
    def rpc(self, message: bytes, username: str = ADMIN_USER, base11: bool = True) -> str | None:
        """Answer ``message`` in a fresh session (closed afterwards, as a dropped client's would be).

        Returns the reply text. Raises Finding.
        """
        agent = self.agent
        self.answered += 1
        session = SessionInfo(agent.allocate_session_id(), username, "127.0.0.1", dt.datetime.now(dt.UTC),
                              base11=base11)
        agent.open_session(session)
        before = len(self.unexpected.records)
        try:
            reply = agent.handle_message(session, message)
        except Exception as error:
            raise Finding(f"handle_message raised {type(error).__name__}: {error}") from error
        finally:
            agent.close_session(session.session_id, dropped=True)
        if len(self.unexpected.records) > before:
            record = self.unexpected.records[-1]
            raise Finding(f"an unexpected error became an rpc-error: {record.exc_info[1]!r}") from (
                record.exc_info[1] if record.exc_info else None)
        if reply.text is None:
            if base11 or not reply.close:
                raise Finding("no reply, and the session is not closed")
            return None
        try:
            root = etree.fromstring(reply.text.encode("utf-8"))
        except etree.XMLSyntaxError as error:
            raise Finding(f"the reply is not well-formed XML: {error}") from error
        if root.tag != f"{{{NC}}}rpc-reply":
            raise Finding(f"the reply is a {root.tag}, not an rpc-reply")
        if CANARY_TEXT in reply.text:
            raise Finding("a file's content leaked into the reply (external entity or XInclude)")
        if len(agent.sessions) > 0:
            raise Finding(f"sessions left behind: {sorted(agent.sessions)}")
        return reply.text


class FuzzAgents:
    """A :class:`CoreAgent` replaced by a fresh one every ``fresh_every`` messages.

    Fuzzed edits and commits accumulate (a pending persistent confirmed
    commit, /nacm rules that lock admin out...), which would leave later
    inputs nothing to reach; a fresh agent starts again from the first-start
    configuration.
    """

    def __init__(self, fresh_every: int = 250) -> None:
        self.fresh_every = fresh_every
        self._core: CoreAgent | None = None

    @property
    def core(self) -> CoreAgent:
        if self._core is not None and self._core.answered >= self.fresh_every:
            self._core.close()
            self._core = None
        if self._core is None:
            self._core = CoreAgent.build()
        return self._core

    def close(self) -> None:
        if self._core is not None:
            self._core.close()
            self._core = None


# -- the framing target ---------------------------------------------------------------
def framing(stream: bytes, cuts: list[int], chunked: bool, hello: bool, max_size: int = 4096) -> list[bytes]:
    """Feed ``stream`` cut at ``cuts``; return the messages. Raises Finding for anything but FramingError."""
    decoder = FrameDecoder(max_size)
    decoder.chunked = chunked
    messages: list[bytes] = []
    pieces = _split(stream, cuts)
    try:
        for piece in pieces:
            decoder.feed(piece)
            while True:
                if hello and not messages:
                    decoder.chunked = decoder.starts_chunked()
                message = decoder.next_message()
                if message is None:
                    break
                if len(message) > max_size:
                    raise Finding(f"a message of {len(message)} bytes passed a cap of {max_size}")
                messages.append(message)
                if hello and len(messages) == 1:
                    decoder.chunked = chunked
            # Memory stays bounded: a message in progress is refused once it is known to be too large.
            if decoder.buffered > 2 * max_size + len(piece) + 64:
                raise Finding(f"{decoder.buffered} bytes buffered with a cap of {max_size}")
    except FramingError:
        pass
    except Finding:
        raise
    except Exception as error:
        raise Finding(f"FrameDecoder raised {type(error).__name__}: {error}") from error
    return messages


def framing_round_trip(messages: list[bytes], cuts: list[int], chunked: bool) -> None:
    """Framed messages, read back in any cutting, are the messages sent. Raises Finding."""
    stream = b"".join(encode_message(message, chunked) for message in messages)
    decoded = framing(stream, cuts, chunked, hello=False, max_size=1 << 20)
    if chunked:
        expected = [m for m in messages]
    else:
        # End-of-message framing cannot carry "]]>]]>" inside a message: expect what the wire says.
        expected = stream.split(b"]]>]]>")[:-1]
    if decoded != expected:
        raise Finding(f"framing round trip: sent {len(expected)} messages, read {len(decoded)} different ones")


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts}) if data else []
    pieces, start = [], 0
    for point in points:
        pieces.append(data[start:point])
        start = point
    pieces.append(data[start:])
    return [p for p in pieces if p] or [b""]


# -- the edit-config target -----------------------------------------------------------
_OPERATIONS = list(Operation)
_ERROR_OPTIONS = list(ErrorOption)


def edit(yang: YangSupport, base: etree._Element, config: bytes, default_op: int, error_option: int) -> etree._Element:
    """apply_edit of ``config`` (a <config> document) on ``base``; returns the new root, or base if refused.

    Raises Finding for an exception other than AgentError, for a changed
    input, or for a result that cannot be serialized and read back.
    """
    parser = etree.XMLParser(resolve_entities=False, no_network=True, remove_comments=True, huge_tree=False)
    try:
        config_el = etree.fromstring(config, parser)
    except etree.XMLSyntaxError:
        return base
    before_base = etree.tostring(base, method="c14n")
    before_config = etree.tostring(config_el, method="c14n")
    operation = _OPERATIONS[default_op % len(_OPERATIONS)]
    option = _ERROR_OPTIONS[error_option % len(_ERROR_OPTIONS)]
    try:
        result = apply_edit(base, config_el, yang, yang, operation, option)
    except AgentError:
        result = None
    except Exception as error:
        raise Finding(f"apply_edit raised {type(error).__name__}: {error}") from error
    if etree.tostring(base, method="c14n") != before_base:
        raise Finding("apply_edit changed the published tree")
    if etree.tostring(config_el, method="c14n") != before_config:
        raise Finding("apply_edit changed its input")
    if result is None:
        return base
    for error in result.errors:
        if not isinstance(error, AgentError):
            raise Finding(f"a skipped error that is not an AgentError: {error!r}")
    try:
        etree.fromstring(etree.tostring(result.root))
    except etree.XMLSyntaxError as error:
        raise Finding(f"the edited tree does not serialize to XML: {error}") from error
    return result.root
