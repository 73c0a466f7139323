"""One NETCONF session on one SSH channel: hellos, the message loop, the writer.

Two threads per session, and no lock held across I/O:
- the reader reads the channel, splits messages (agent/netconf/framing.py),
  hands each to the protocol core and queues the reply;
- the writer sends queued messages (replies and, later, notifications), so a
  client that stops reading never blocks whoever produced a message; past
  ``max_pending_output`` unsent bytes the session is dropped.

What the sessions hold of unfinished requests, and of replies their clients
have not read, counts against two budgets shared by all of them
(agent/netconf/buffer_budget.py): over one, the session holding the most of
it is ended.

The session ends at once when the channel reports EOF or an error (a dropped
TCP connection, in either framing, at any point): the protocol core then
releases its locks and rolls back its unconfirmed commit (RFC 6241 8.4).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from lxml import etree

from agent.netconf.budget import Cancellation
from agent.netconf.buffer_budget import DEFAULT_MAX_BUFFERED_INPUT, DEFAULT_MAX_BUFFERED_OUTPUT, BufferBudget
from agent.netconf.channel_watch import send_window
from agent.netconf.deadlines import Deadline, Deadlines
from agent.netconf.dispatch import EndReason, NetconfAgent, SessionInfo
from agent.netconf.framing import DEFAULT_MAX_MESSAGE_SIZE, FrameDecoder, FramingError, encode_message
from agent.netconf.message_parser import hello_parser
from agent.netconf.rpcerror import NC_NS
from agent.xmltree import default_ns, has_doctype

log = logging.getLogger(__name__)

BASE_10 = "urn:ietf:params:netconf:base:1.0"
BASE_11 = "urn:ietf:params:netconf:base:1.1"
_READ_SIZE = 256 * 1024
_SMALL_INPUT = 64 * 1024  # what a session may hold of an unfinished request without counting it in the budget
_SMALL_OUTPUT = 256 * 1024  # the same for its unsent replies


@dataclass(frozen=True)
class SessionLimits:
    """Timeouts and sizes of every session (``ca-agent`` flags)."""

    hello_timeout: float = 30.0
    idle_timeout: float | None = None  # None: sessions may stay idle for ever
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    max_pending_output: int = 64 * 1024 * 1024
    # Shared by every session given these limits: what they hold of unfinished requests, together.
    input_budget: BufferBudget[Any] = field(default_factory=lambda: BufferBudget(DEFAULT_MAX_BUFFERED_INPUT))
    # The same for their unsent replies and notifications (each session also stops at max_pending_output).
    output_budget: BufferBudget[Any] = field(default_factory=lambda: BufferBudget(DEFAULT_MAX_BUFFERED_OUTPUT))


class Channel(Protocol):
    """What a session needs of its transport channel (a paramiko.Channel)."""

    def recv(self, nbytes: int) -> bytes: ...

    def sendall(self, data: bytes) -> None: ...

    def close(self) -> None: ...


class BadHello(Exception):
    """The client's <hello> cannot be accepted (the message says why)."""


def parse_client_hello(message: bytes) -> set[str]:
    """The capabilities of a client <hello>.

    Leading whitespace is accepted (scrapli sends a newline before
    ``<?xml``). Raises BadHello for anything that is not a hello of base
    1.0 or 1.1, for a DTD, and for a <session-id> (RFC 6241 8.1).
    """
    try:
        root = etree.fromstring(message.lstrip(), hello_parser())
    except etree.XMLSyntaxError as error:
        raise BadHello(f"not well-formed XML: {error}") from None
    if has_doctype(root):
        raise BadHello("a document type declaration is not allowed")
    if root.tag != f"{{{NC_NS}}}hello":
        raise BadHello(f"expected <hello> in {NC_NS}, got {root.tag!r}")
    if root.find(f"{{{NC_NS}}}session-id") is not None:
        raise BadHello("the client sent a <session-id> (RFC 6241 8.1)")
    capabilities = {
        (element.text or "").strip() for element in root.iterfind(f"{{{NC_NS}}}capabilities/{{{NC_NS}}}capability")
    }
    if not capabilities & {BASE_10, BASE_11}:
        raise BadHello("the client supports neither base:1.0 nor base:1.1")
    return capabilities


def server_hello(session_id: int, capabilities: list[str]) -> bytes:
    hello = etree.Element(f"{{{NC_NS}}}hello", nsmap=default_ns(NC_NS))
    caps = etree.SubElement(hello, f"{{{NC_NS}}}capabilities")
    for uri in (BASE_10, BASE_11, *capabilities):
        etree.SubElement(caps, f"{{{NC_NS}}}capability").text = uri
    etree.SubElement(hello, f"{{{NC_NS}}}session-id").text = str(session_id)
    return etree.tostring(hello, xml_declaration=True, encoding="UTF-8")


class NetconfSession:
    """Runs one session to its end on its own threads; :meth:`abort` ends it from anywhere."""

    def __init__(
        self,
        channel: Channel,
        agent: NetconfAgent,
        username: str,
        source_host: str,
        deadlines: Deadlines,
        limits: SessionLimits,
        on_end: Callable[[NetconfSession], None],
    ) -> None:
        self.channel = channel
        self.agent = agent
        self.username = username
        self.source_host = source_host
        self.limits = limits
        self._deadlines = deadlines
        self._on_end = on_end
        self.session_id = agent.allocate_session_id()
        self.info: SessionInfo | None = None
        # Cancelled as the session ends; the transport also cancels it when the
        # client leaves while a request is being answered (agent/netconf/ssh.py).
        self.cancellation = Cancellation()
        self._decoder = FrameDecoder(limits.max_message_size)
        self._counted_input = 0  # what the input budget holds for this session
        self._counted_output = 0  # what the output budget holds for this session
        self._chunked = False
        self._outbox: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._pending = 0  # bytes queued and not yet sent
        self._pending_lock = threading.Lock()
        self._send_lock = threading.Lock()  # one sender at a time: the writer thread, or a reply sent inline
        self._ended = threading.Event()
        self._end_reason = ""
        self._end_kind = EndReason.OTHER  # RFC 6470 termination-reason, set with _end_reason
        self._last_activity = time.monotonic()
        self._idle: Deadline | None = None
        self._reader = threading.Thread(target=self._run, name=f"netconf-session-{self.session_id}", daemon=True)
        self._writer = threading.Thread(target=self._write_loop, name=f"netconf-writer-{self.session_id}", daemon=True)

    def start(self) -> None:
        self._writer.start()
        self._reader.start()

    # -- output ----------------------------------------------------------------
    def send(self, message: bytes) -> None:
        """Send or queue one message (framed now, with the framing in force). Never blocks on the client.

        A reply (sent by the session's own thread) when nothing else is queued
        or being sent, and which the client's SSH window can take at once, is
        sent right here: handing it to the writer thread would cost a thread
        switch per RPC. Everything else goes through the writer thread, so
        a client that stops reading never holds up the thread that sends.
        """
        if self._ended.is_set():
            return
        framed = encode_message(message, self._chunked)
        inline = False
        with self._pending_lock:
            if self._pending == 0 and threading.current_thread() is self._reader:
                inline = self._send_lock.acquire(blocking=False)
            self._pending += len(framed)
            backlog = self._pending
        if inline:
            try:
                if send_window(self.channel) >= len(framed):
                    self._transmit(framed)
                    return
            finally:
                self._send_lock.release()
        if backlog > self.limits.max_pending_output:
            self.abort(f"the client does not read its replies ({backlog} bytes unsent)", EndReason.OTHER)
            return
        self._outbox.put(framed)
        if backlog > _SMALL_OUTPUT or self._counted_output:
            self._count_output(backlog)

    def _transmit(self, data: bytes) -> bool:
        """Send ``data`` (the send lock held); False when the channel is dead (the session is aborted)."""
        try:
            self.channel.sendall(data)
        except Exception as error:  # paramiko raises SSHException/OSError/EOFError on a dead channel
            self.abort(f"send failed: {error}", EndReason.DROPPED)
            return False
        with self._pending_lock:  # before the send lock is released: "nothing pending" means nothing in flight
            self._pending -= len(data)
        return True

    def _write_loop(self) -> None:
        while True:
            data = self._outbox.get()
            if data is None:
                return
            with self._send_lock:
                if not self._transmit(data):
                    return
            if self._counted_output:  # after the send lock: ending another session is not done under it
                self._count_output(self._pending)

    def _count_output(self, held: int) -> None:
        """Tell the shared output budget what this session has not sent yet; over it, end the largest holder."""
        held = held if held > _SMALL_OUTPUT else 0
        self._counted_output = held
        over = self.limits.output_budget.update(self, held)
        if over is not None:
            reason = (f"the sessions' unsent replies went over {self.limits.output_budget.limit} bytes, "
                      "and this session had the most")
            log.warning("session %d from %s: %s; closing", over.session_id, over.source_host, reason)
            over.abort(reason, EndReason.OTHER)

    # -- input -----------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._serve()
        except Exception:  # a bug must end this session only, and visibly
            log.exception("session %d: unexpected error", self.session_id)
            self._end("internal error", EndReason.OTHER)
        finally:
            self._finish()

    def _serve(self) -> None:
        self.send(server_hello(self.session_id, self.agent.capabilities()))
        hello_deadline = self._deadlines.after(
            self.limits.hello_timeout,
            lambda: self.abort(f"no <hello> within {self.limits.hello_timeout:g} s", EndReason.TIMEOUT),
        )
        try:
            capabilities = self._read_hello()
        finally:
            hello_deadline.cancel()
        if capabilities is None:
            return
        self._chunked = self._decoder.chunked = BASE_11 in capabilities
        self.info = SessionInfo(
            session_id=self.session_id,
            username=self.username,
            source_host=self.source_host,
            login_time=self.agent.clock.now(),
            base11=self._chunked,
            send=self.send,
            close_callback=lambda: self.abort("killed by <kill-session>", EndReason.KILLED),
            abort=lambda reason: self.abort(reason, EndReason.OTHER),
            cancellation=self.cancellation,
        )
        self.agent.open_session(self.info)
        self._arm_idle()
        while not self._ended.is_set():
            message = self._next_message()
            if message is None:
                return
            self._last_activity = time.monotonic()
            reply = self.agent.handle_message(self.info, message)
            if reply.text is not None:
                self.send(reply.text.encode("utf-8"))
            for then in reply.then:  # after the reply, e.g. a new subscription's first notifications
                then()
            if reply.close:
                self._end_reason = reply.reason or "closed"
                self._end_kind = EndReason.CLOSED if self.info.closing else EndReason.OTHER
                return

    def _read_hello(self) -> set[str] | None:
        # ncclient may send its hello chunk-framed once it has seen base:1.1
        # (ncclient issue 524): RFC 6242 wants end-of-message framing here,
        # but refusing would only break a widely used client.
        message = self._next_message(hello=True)
        if message is None:
            if not self._end_reason:
                self._end_reason = "connection closed before the client's <hello>"
            return None
        try:
            return parse_client_hello(message)
        except BadHello as error:
            self._end(f"bad <hello>: {error}", EndReason.BAD_HELLO)
            self.agent.count_bad_hello(
                SessionInfo(self.session_id, self.username, self.source_host, self.agent.clock.now())
            )
            log.warning("session %d from %s: %s; closing", self.session_id, self.source_host, self._end_reason)
            return None

    def _next_message(self, hello: bool = False) -> bytes | None:
        """The next message; None when the session must end (EOF, error, framing)."""
        decoder = self._decoder
        while True:
            try:
                if hello:
                    decoder.chunked = decoder.starts_chunked()
                message = decoder.next_message()
            except FramingError as error:
                self._framing_error(str(error))
                return None
            if message is not None:
                if hello:
                    decoder.chunked = False
                if self._counted_input and not self._count_input():
                    return None
                return message
            try:
                data = self.channel.recv(_READ_SIZE)
            except Exception as error:  # a dead transport raises rather than returning b""
                self._end(f"receive failed: {error}", EndReason.DROPPED)
                return None
            if not data:
                self._end("connection closed by the client", EndReason.DROPPED)
                return None
            decoder.feed(data)
            if (self._counted_input or decoder.buffered > _SMALL_INPUT) and not self._count_input():
                return None

    def _count_input(self) -> bool:
        """Tell the shared input budget what this session holds now; False when this session must end for it."""
        held = self._decoder.buffered
        held = held if held > _SMALL_INPUT else 0
        self._counted_input = held
        over = self.limits.input_budget.update(self, held)
        if over is None:
            return True
        reason = (f"the sessions' unfinished requests went over {self.limits.input_budget.limit} bytes, "
                  "and this session's was the largest")
        log.warning("session %d from %s: %s; closing", over.session_id, over.source_host, reason)
        if over is self:
            self._counted_input = 0
            self._end(reason, EndReason.OTHER)
            return False
        over.abort(reason, EndReason.OTHER)  # its reader sees the channel close, ends, and releases the rest
        return True

    def _framing_error(self, reason: str) -> None:
        """RFC 6242 4.2: a framing error ends the session; base:1.1 clients hear why first."""
        self._end_reason = f"framing error: {reason}"
        self._end_kind = EndReason.OTHER
        log.warning("session %d: %s", self.session_id, self._end_reason)
        if self.info is not None:
            reply = self.agent.framing_error_reply(self.info, reason)
            if reply is not None:
                self.send(reply.encode("utf-8"))

    # -- idle timeout ------------------------------------------------------------
    def _arm_idle(self) -> None:
        timeout = self.limits.idle_timeout
        if timeout:
            due = self._last_activity + timeout - time.monotonic()
            self._idle = self._deadlines.after(max(due, 0.0), self._idle_check)

    def _idle_check(self) -> None:
        timeout = self.limits.idle_timeout
        if self._ended.is_set() or not timeout:
            return
        info = self.info
        subscribed = info is not None and info.subscribed
        if not subscribed and time.monotonic() - self._last_activity >= timeout:
            self.abort(f"idle for {timeout:g} s", EndReason.TIMEOUT)
        else:
            self._arm_idle()

    # -- ending ------------------------------------------------------------------
    def abort(self, reason: str, kind: EndReason = EndReason.OTHER) -> None:
        """End the session from any thread: the reader wakes up and finishes; ``kind`` is why (RFC 6470)."""
        self._end(reason, kind)
        self.cancellation.cancel()
        try:
            self.channel.close()
        except Exception:  # already dead: nothing more to close
            pass

    def _end(self, reason: str, kind: EndReason) -> None:
        """Record why the session ends, unless an earlier reason was recorded."""
        if not self._end_reason:
            self._end_reason = reason
            self._end_kind = kind

    def _finish(self) -> None:
        if self._ended.is_set():
            return
        self._ended.set()
        # A session object can outlive its end in reference cycles until a garbage collection: what it held of
        # an unfinished request (up to --max-message-size) went with it only then.
        self._decoder.discard()
        self.limits.input_budget.release(self)
        self.cancellation.cancel()
        if self._idle is not None:
            self._idle.cancel()
        # Let queued replies (e.g. the <ok/> of close-session) go out, then close.
        self._outbox.put(None)
        self._writer.join(timeout=5.0)
        try:  # what a client that stopped reading left queued goes now (see the input buffer below)
            while True:
                self._outbox.get_nowait()
        except queue.Empty:
            pass
        self.limits.output_budget.release(self)
        try:
            self.channel.close()
        except Exception:
            pass
        if self.info is not None:
            self.agent.close_session(
                self.info.session_id, dropped=not self.info.closing, reason=self._end_reason, end=self._end_kind
            )
        else:
            log.info("session %d from %s ended before its hello: %s", self.session_id, self.source_host,
                     self._end_reason)
        self._on_end(self)

    @property
    def ended(self) -> bool:
        return self._ended.is_set()
