"""NETCONF event notifications (RFC 5277): the stream, subscriptions, replay, delivery.

Anything may :meth:`Notifications.publish` a notification's event element
(``<netconf-config-change xmlns=...>``, ``<enrollment-complete ...>``): the
call only numbers it and queues it, so it never blocks and may come from any
thread under any lock. One dispatcher thread (a
:class:`~agent.serial.SerialExecutor`) then, in publication order, wraps it
in ``<notification><eventTime>``, appends it to the stream's replay log
(agent/netconf/replaylog.py) and hands it to every active subscription's own
thread (its *lane*, another SerialExecutor): there it checks RFC 8341
(``may_receive``, 3.4.6), applies its filter, and queues the message with its
session's non-blocking ``send``. A slow or dead client therefore never holds
anyone up (its session drops itself when its backlog grows too large), and
neither does a costly filter: it delays its own subscription only. With one
thread for all, three subscribers whose filters ran out of their budget
delayed everyone's notifications of ten commits by 23 s, and one replaying a
full log through such a filter held them for minutes. A subscription more
than :data:`MAX_PENDING` notifications behind ends its session.

``create-subscription`` (one per session; RPCs keep working on a subscribed
session: ``:interleave``) validates its input by hand -- pyang ships no YANG
module for RFC 5277 -- registers the subscription, and once its ``<ok/>`` is
queued (``SessionInfo.after_reply``) the dispatcher activates it: a replay
subscription (``startTime``) gets the logged notifications from
``startTime`` (to ``stopTime``), then ``<replayComplete>``; any subscription
gets what was published after it was accepted, then everything live. At
``stopTime`` the subscription ends with ``<notificationComplete>`` and the
session stays open. The dispatcher hands a subscription its replay and then
each live notification in publication order, and its lane runs them in that
order: nothing is sent twice or lost between replay and live.

``/netconf/streams`` (RFC 5277 section 3.4, module ``nc-notifications``) is
served as XML through :class:`~agent.netconf.dispatch.UnmodelledState`, as the
schema cannot hold it; RFC 8341 reads of it are decided by rules without a
path for module ``nc-notifications`` (agent/netconf/nacm.py).
"""

from __future__ import annotations

import copy
import datetime as dt
import functools
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from lxml import etree

from agent.clock import SYSTEM_CLOCK, Clock
from agent.errors import NetconfError
from agent.netconf.deadlines import Deadline, Deadlines
from agent.netconf.dispatch import NetconfAgent, SessionEvent, SessionInfo, UnmodelledState
from agent.netconf.filters import FilterBudget, apply_filter
from agent.netconf.replaylog import DEFAULT_MAX_BYTES, DEFAULT_MAX_ENTRIES, LoggedNotification, ReplayLog
from agent.netconf.rpcerror import NC_NS
from agent.serial import ExecutorClosedError, SerialExecutor
from agent.xmltree import default_ns, yang_date_and_time

__all__ = [
    "INTERLEAVE_CAPABILITY",
    "NETCONF_STREAM",
    "NETMOD_NOTIF_NS",
    "NOTIFICATION_CAPABILITY",
    "NOTIF_NS",
    "Notifications",
    "MAX_PENDING",
    "Stream",
    "event_time_text",
    "notification_message",
]

log = logging.getLogger(__name__)

_NOTIFICATION_FILTER_BUDGET = 0.5  # CPU seconds per notification and subscriber
MAX_PENDING = 1000
"""Notifications one subscription may have waiting for its lane; one more ends its session (logged)."""

NOTIF_NS = "urn:ietf:params:xml:ns:netconf:notification:1.0"
NETMOD_NOTIF_NS = "urn:ietf:params:xml:ns:netmod:notification"
NOTIFICATION_CAPABILITY = "urn:ietf:params:netconf:capability:notification:1.0"
INTERLEAVE_CAPABILITY = "urn:ietf:params:netconf:capability:interleave:1.0"

_DATE_AND_TIME = re.compile(
    r"(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})\Z", re.IGNORECASE
)
_PARAMETERS = ("stream", "filter", "startTime", "stopTime")


@dataclass(frozen=True)
class Stream:
    """An event stream of /netconf/streams."""

    name: str
    description: str
    replay_support: bool


NETCONF_STREAM = Stream(
    "NETCONF",
    "The default stream: every notification of the agent (RFC 6470 base notifications "
    "and the PKI notifications of ca-agent-crypto)",
    True,
)


@dataclass(eq=False)
class _Subscription:
    """One session's subscription. ``active`` and ``deadline`` change on the dispatcher thread only;
    ``pending`` under the Notifications lock."""

    session: SessionInfo
    stream: Stream
    filter_el: etree._Element | None
    start: dt.datetime | None
    stop: dt.datetime | None
    after: int  # the last sequence number published before the subscription was accepted
    lane: SerialExecutor = field(repr=False)  # its own thread: what its filter costs delays no other subscription
    active: bool = False
    deadline: Deadline | None = field(default=None, repr=False)
    pending: int = 0  # jobs handed to the lane and not yet started


def event_time_text(when: dt.datetime) -> str:
    """An eventTime (yang:date-and-time in UTC, with microseconds when there are any). Raises nothing."""
    utc = when.astimezone(dt.UTC)
    if utc.microsecond:
        return f"{utc:%Y-%m-%dT%H:%M:%S}.{utc.microsecond:06d}Z"
    return yang_date_and_time(utc)


def notification_message(event: etree._Element, when: dt.datetime) -> etree._Element:
    """``<notification><eventTime/>event</notification>`` (RFC 5277 section 4); ``event`` is moved in. Raises nothing."""
    notification = etree.Element(f"{{{NOTIF_NS}}}notification", nsmap=default_ns(NOTIF_NS))
    etree.SubElement(notification, f"{{{NOTIF_NS}}}eventTime").text = event_time_text(when)
    notification.append(event)
    return notification


def _event_of(notification: etree._Element) -> etree._Element | None:
    for child in notification:
        if isinstance(child.tag, str) and child.tag != f"{{{NOTIF_NS}}}eventTime":
            return child
    return None


def _parse_time(element: etree._Element) -> dt.datetime:
    """A startTime/stopTime (yang:date-and-time). Raises NetconfError invalid-value."""
    name = etree.QName(element).localname
    text = (element.text or "").strip()
    match = _DATE_AND_TIME.match(text)
    when: dt.datetime | None = None
    if match is not None:
        date, clock_time, fraction, zone = match.groups()
        zone = "+00:00" if zone.upper() == "Z" or zone == "-00:00" else zone
        micro = f".{(fraction or '')[:6].ljust(6, '0')}" if fraction else ""
        try:
            when = dt.datetime.fromisoformat(f"{date}T{clock_time}{micro}{zone}")
        except ValueError:
            when = None
    if when is None:
        raise NetconfError(
            f"<{name}> must be a date and time such as 2026-01-31T12:00:00Z, not {text!r}",
            error_tag="invalid-value",
            error_type="protocol",
            info={"bad-element": name},
        )
    return when


def _bad(message: str, element: str, error_tag: str = "bad-element") -> NetconfError:
    return NetconfError(message, error_tag=error_tag, error_type="protocol", info={"bad-element": element})


class Notifications:
    """The NETCONF stream of one agent: publishing, the replay log, subscriptions, /netconf/streams."""

    def __init__(
        self,
        agent: NetconfAgent,
        directory: Path,
        *,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        max_bytes: int = DEFAULT_MAX_BYTES,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        """Open the replay log in ``directory``; nothing is served until :meth:`register`.

        Raises OSError if the directory cannot be used.
        """
        self.agent = agent
        self.clock = clock
        self.stream = NETCONF_STREAM
        self.log = ReplayLog(directory, max_entries=max_entries, max_bytes=max_bytes, clock=clock)
        self._lock = threading.Lock()  # the sequence counter and the subscriptions; never held across a send
        self._sequence = self.log.last_sequence
        self._subscriptions: dict[int, _Subscription] = {}
        self._closed = False
        self._dispatcher = SerialExecutor("netconf-notifications")
        self._deadlines = Deadlines("netconf-notification-stop")

    def register(self, streams_modelled: bool = False) -> None:
        """Serve create-subscription, the capabilities and /netconf/streams. Raises nothing.

        ``streams_modelled``: the schema holds RFC 5277's nc-notifications
        (found installed, see agent/schema/model.py), so /netconf/streams is
        ordinary state; otherwise it is served as unmodelled XML.
        """
        self.agent.register(f"{{{NOTIF_NS}}}create-subscription", self.create_subscription)
        self.agent.extra_capabilities.extend((NOTIFICATION_CAPABILITY, INTERLEAVE_CAPABILITY))
        if streams_modelled:
            self.agent.add_state_provider(self.streams_state, produces=[f"{{{NETMOD_NOTIF_NS}}}netconf"])
        else:
            self.agent.add_unmodelled_state(
                UnmodelledState(self.streams_state, {f"{{{NETMOD_NOTIF_NS}}}stream": (f"{{{NETMOD_NOTIF_NS}}}name",)})
            )
        self.agent.add_session_listener(self._session_event)

    # -- publishing ------------------------------------------------------------
    def publish(self, event: etree._Element, event_time: dt.datetime | None = None) -> None:
        """Queue one notification (its event element, which the caller hands over). Never blocks.

        ``event_time`` defaults to now. Ignored after :meth:`close`. Raises nothing.
        """
        when = event_time if event_time is not None else self.clock.now()
        with self._lock:
            if self._closed:
                return
            self._sequence += 1
            sequence = self._sequence
            # Queued under the lock, so the queue's order is the numbering's order.
            self._dispatcher.submit(lambda: self._dispatch(sequence, event, when))

    def flush(self) -> None:
        """Wait until everything published so far was logged and delivered. Raises nothing."""
        with self._lock:
            if self._closed:
                return
        self._dispatcher.run(lambda: None)
        with self._lock:
            subscriptions = list(self._subscriptions.values())
        for subscription in subscriptions:
            try:
                subscription.lane.run(lambda: None)
            except ExecutorClosedError:  # ended meanwhile
                pass

    def close(self, timeout: float = 5.0) -> None:
        """Deliver what is queued (bounded by ``timeout``), then stop and close the log. Raises nothing."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        ends = time.monotonic() + timeout
        self._dispatcher.close(timeout)
        self._deadlines.stop()
        with self._lock:
            subscriptions = list(self._subscriptions.values())
        for subscription in subscriptions:  # one deadline for them all
            subscription.lane.close(max(ends - time.monotonic(), 0.0))
        self.log.close()

    # -- create-subscription -------------------------------------------------------
    def create_subscription(self, session: SessionInfo, operation: etree._Element) -> None:
        """RFC 5277 2.1.1: check the request, register the subscription, start it after the <ok/>.

        Raises NetconfError: in-use (the session has a subscription),
        unknown-element / bad-element (parameters), invalid-value (unknown
        stream, a time that does not parse, a bad filter), missing-element
        (stopTime without startTime), bad-element (startTime in the future,
        stopTime before startTime), operation-failed (replay asked of a
        stream without replay).
        """
        params = _subscription_parameters(operation)
        stream_el = params.get("stream")
        stream_name = (stream_el.text or "").strip() if stream_el is not None else self.stream.name
        if stream_name != self.stream.name:
            raise _bad(f"there is no event stream {stream_name!r}; the agent has {self.stream.name!r}", "stream",
                       "invalid-value")
        start = _parse_time(params["startTime"]) if "startTime" in params else None
        stop = _parse_time(params["stopTime"]) if "stopTime" in params else None
        now = self.clock.now()
        if start is not None and start > now:
            raise _bad("<startTime> is later than the current time", "startTime")
        if stop is not None and start is None:
            raise _bad("<stopTime> needs a <startTime>", "startTime", "missing-element")
        if start is not None and stop is not None and stop < start:
            raise _bad("<stopTime> is earlier than <startTime>", "stopTime")
        if start is not None and not self.stream.replay_support:
            raise NetconfError(f"stream {stream_name!r} does not support replay", error_tag="operation-failed",
                               error_type="protocol")
        filter_el = _own_filter(params.get("filter"))
        if filter_el is not None:
            # A filter that cannot work is refused now (bad type, XPath that does not parse...).
            apply_filter(etree.Element("data"), filter_el, self.agent.keys_of, self.agent.schema.prefixes())
        with self._lock:
            if session.session_id in self._subscriptions:
                raise NetconfError(
                    "this session already has a notification subscription (one per session; "
                    "open another session for another subscription)",
                    error_tag="in-use",
                    error_type="protocol",
                )
            # (A session's RPCs run one at a time: no other create-subscription of it can come in between.)
            subscription = _Subscription(session, self.stream, filter_el, start, stop, self._sequence,
                                         SerialExecutor(f"netconf-subscription-{session.session_id}"))
            self._subscriptions[session.session_id] = subscription
        session.subscribed = True  # exempt from the idle timeout
        session.after_reply.append(lambda: self._dispatcher.submit(lambda: self._activate(subscription)))
        log.info(
            "session %d subscribed to stream %s%s%s%s", session.session_id, stream_name,
            f" from {start.isoformat()}" if start else "", f" to {stop.isoformat()}" if stop else "",
            " with a filter" if filter_el is not None else "",
        )

    # -- /netconf/streams --------------------------------------------------------------
    def streams_state(self) -> list[etree._Element]:
        """RFC 5277 ``/netconf/streams`` (namespace of nc-notifications). Raises nothing."""
        netconf = etree.Element(f"{{{NETMOD_NOTIF_NS}}}netconf", nsmap=default_ns(NETMOD_NOTIF_NS))
        streams = etree.SubElement(netconf, f"{{{NETMOD_NOTIF_NS}}}streams")
        entry = etree.SubElement(streams, f"{{{NETMOD_NOTIF_NS}}}stream")
        for name, value in (
            ("name", self.stream.name),
            ("description", self.stream.description),
            ("replaySupport", "true" if self.stream.replay_support else "false"),
            ("replayLogCreationTime", yang_date_and_time(self.log.created)),
        ):
            etree.SubElement(entry, f"{{{NETMOD_NOTIF_NS}}}{name}").text = value
        return [netconf]

    # -- the dispatcher thread -------------------------------------------------------------
    def _dispatch(self, sequence: int, event: etree._Element, when: dt.datetime) -> None:
        notification = notification_message(event, when)
        xml = etree.tostring(notification)
        self.log.append(sequence, when, xml)
        with self._lock:
            active = [s for s in self._subscriptions.values() if s.active]
        for subscription in active:
            if subscription.stop is not None and when > subscription.stop:
                subscription.active = False
                self._on_lane(subscription, functools.partial(self._complete, subscription))
            else:
                self._on_lane(subscription, functools.partial(self._deliver_xml, subscription, sequence, xml))

    def _activate(self, subscription: _Subscription) -> None:
        """Hand the subscription's lane what the log holds for it (replay or catch-up), then make it live."""
        if not self._registered(subscription):
            return
        start, stop = subscription.start, subscription.stop
        if start is None:
            wanted = [entry for entry in self.log.entries() if entry.sequence > subscription.after]
        else:
            wanted = [entry for entry in self.log.entries()
                      if entry.event_time >= start and (stop is None or entry.event_time <= stop)]
        ends_now = stop is not None and stop <= self.clock.now()
        self._on_lane(subscription, lambda: self._replay(subscription, wanted, ends_now))
        if ends_now:
            return
        subscription.active = True
        if stop is not None:
            delay = max((stop - self.clock.now()).total_seconds(), 0.0)
            subscription.deadline = self._deadlines.after(
                delay, lambda: self._dispatcher.submit(lambda: self._stop_due(subscription))
            )

    def _stop_due(self, subscription: _Subscription) -> None:
        if self._registered(subscription) and subscription.active:
            subscription.active = False
            self._on_lane(subscription, lambda: self._complete(subscription))

    def _on_lane(self, subscription: _Subscription, job: Callable[[], None]) -> None:
        """Run ``job`` on the subscription's lane, after what was handed to it before, while it is registered."""
        with self._lock:
            behind = subscription.pending >= MAX_PENDING
            if not behind:
                subscription.pending += 1
        if behind:
            self._fell_behind(subscription)
            return

        def run() -> None:
            with self._lock:
                subscription.pending -= 1
            if self._registered(subscription):
                job()

        subscription.lane.submit(run)

    def _fell_behind(self, subscription: _Subscription) -> None:
        session = subscription.session
        if not self._registered(subscription):
            return
        self._forget(subscription)
        log.warning("session %d: closing it: its subscription is more than %d notifications behind (its filter "
                    "takes longer than notifications come)", session.session_id, MAX_PENDING)
        if session.abort is not None:  # on a thread of its own: closing a channel may wait, the dispatcher must not
            threading.Thread(target=session.abort, name=f"netconf-subscription-{session.session_id}-end",
                             args=(f"its subscription fell more than {MAX_PENDING} notifications behind",),
                             daemon=True).start()

    # -- a subscription's lane --------------------------------------------------------
    def _replay(self, subscription: _Subscription, entries: list[LoggedNotification], ends: bool) -> None:
        for entry in entries:
            if not self._registered(subscription):  # the session ended half-way
                return
            self._deliver_xml(subscription, entry.sequence, entry.xml)
        if subscription.start is not None:
            self._send(subscription.session, _complete_message("replayComplete", self.clock.now()))
        if ends:
            self._complete(subscription)

    def _complete(self, subscription: _Subscription) -> None:
        """stopTime is reached: <notificationComplete>, then the subscription is over (the session stays)."""
        self._send(subscription.session, _complete_message("notificationComplete", self.clock.now()))
        self._forget(subscription)
        log.info("session %d: subscription ended at its stopTime", subscription.session.session_id)

    def _deliver_xml(self, subscription: _Subscription, sequence: int, xml: bytes) -> None:
        # Each lane reads a tree of its own, parsed here: lxml trees are not to be shared between threads.
        try:
            notification = etree.fromstring(xml)
        except etree.XMLSyntaxError:
            log.warning("replay log: notification %d is not XML; skipped", sequence)
            return
        self._deliver(subscription, notification, xml)

    def _deliver(self, subscription: _Subscription, notification: etree._Element, xml: bytes) -> None:
        """Send one notification if the user may receive it (RFC 8341 3.4.6) and the filter selects it."""
        session = subscription.session
        if not self.agent.access.may_receive(session.username, notification):
            return
        if subscription.filter_el is not None:
            event = _event_of(notification)
            if event is None:
                return
            data = etree.Element("data")
            data.append(copy.deepcopy(event))
            try:
                # Each notification, for each subscriber: a short budget.
                budget = FilterBudget(_NOTIFICATION_FILTER_BUDGET, session.cancellation)
                selected = list(apply_filter(data, subscription.filter_el, self.agent.keys_of,
                                             self.agent.schema.prefixes(), budget))
            except NetconfError as error:
                log.warning("session %d: notification filter failed: %s", session.session_id, error.message)
                return
            if not selected:
                return
            time_text = notification.findtext(f"{{{NOTIF_NS}}}eventTime") or ""
            filtered = etree.Element(f"{{{NOTIF_NS}}}notification", nsmap=default_ns(NOTIF_NS))
            etree.SubElement(filtered, f"{{{NOTIF_NS}}}eventTime").text = time_text
            filtered.append(selected[0])
            xml = etree.tostring(filtered)
        self._send(session, xml)

    def _send(self, session: SessionInfo, xml: bytes) -> None:
        if session.send is not None:
            session.send(xml)
            self.agent.count_notification(session)

    # -- subscriptions ----------------------------------------------------------------
    def _registered(self, subscription: _Subscription) -> bool:
        with self._lock:
            return self._subscriptions.get(subscription.session.session_id) is subscription

    def _forget(self, subscription: _Subscription) -> None:
        with self._lock:
            if self._subscriptions.get(subscription.session.session_id) is subscription:
                del self._subscriptions[subscription.session.session_id]
        subscription.session.subscribed = False
        self._stopped(subscription)

    @staticmethod
    def _stopped(subscription: _Subscription) -> None:
        """Its timer cancelled, its lane told to stop (what it still holds is skipped: it is not registered)."""
        if subscription.deadline is not None:
            subscription.deadline.cancel()
        subscription.lane.close(timeout=0)

    def _session_event(self, event: SessionEvent) -> None:
        """A session that ends takes its subscription with it."""
        if event.end is None:
            return
        with self._lock:
            subscription = self._subscriptions.pop(event.info.session_id, None)
        if subscription is not None:
            self._stopped(subscription)


def _complete_message(name: str, when: dt.datetime) -> bytes:
    """<replayComplete/> or <notificationComplete/> (nc-notifications), in a <notification>."""
    event = etree.Element(f"{{{NETMOD_NOTIF_NS}}}{name}", nsmap=default_ns(NETMOD_NOTIF_NS))
    return etree.tostring(notification_message(event, when))


def _subscription_parameters(operation: etree._Element) -> dict[str, etree._Element]:
    """create-subscription's parameters by name; refuses unknown or repeated ones.

    They are in RFC 5277's namespace; ``<filter>`` is also accepted in the
    base namespace (ncclient sends it there) and, like the base operations,
    a parameter without a namespace is read as RFC 5277's.
    Raises NetconfError unknown-element, bad-element.
    """
    found: dict[str, etree._Element] = {}
    for child in operation:
        if not isinstance(child.tag, str):
            continue
        qname = etree.QName(child)
        name = qname.localname
        known = name in _PARAMETERS and (
            qname.namespace in (NOTIF_NS, None) or (name == "filter" and qname.namespace == NC_NS)
        )
        if not known:
            raise NetconfError(
                f"unexpected parameter <{name}> in <create-subscription>",
                error_tag="unknown-element",
                error_type="protocol",
                info={"bad-element": name},
            )
        if name in found:
            raise _bad(f"parameter <{name}> given twice", name)
        found[name] = child
    return found


def _own_filter(filter_el: etree._Element | None) -> etree._Element | None:
    """A copy of the request's <filter> that keeps every namespace in scope (select may use any of them)."""
    if filter_el is None:
        return None
    nsmap = cast("Mapping[str, str]", filter_el.nsmap)  # the default namespace's key is None (see xmltree)
    attributes = {str(name): str(value) for name, value in filter_el.attrib.items()}
    copied = etree.Element(str(filter_el.tag), attrib=attributes, nsmap=nsmap)
    for child in filter_el:
        if isinstance(child.tag, str):
            copied.append(copy.deepcopy(child))
    return copied
