"""SSH authentication for NETCONF sessions, and the failed-login throttle.

The NETCONF layer knows nothing of where users and keys come from: it asks an
:class:`Authenticator` supplied by the services layer. Each SSH connection has
its own :class:`SshAuthController` (the authenticated user must never leak
between connections), and all of them share one :class:`LoginThrottle`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import paramiko

log = logging.getLogger(__name__)


class Authenticator(Protocol):
    def check_password(self, username: str, password: str) -> bool:
        """True when ``password`` is the user's password (same cost for unknown users)."""
        ...

    def authorized_keys(self, username: str) -> Sequence[bytes]:
        """SSH wire-format public key blobs the user may log in with."""
        ...


@dataclass
class _Source:
    failures: int = 0
    last_failure: float = 0.0
    next_slot: float = 0.0


class LoginThrottle:
    """Per-source back-off after failed password logins.

    The first ``free_failures`` failures from an address cost nothing (typos);
    after that every attempt from the address, on any connection, waits for
    its own slot, and the slots move apart by ``base_delay``, doubled with
    each further failure, up to ``max_delay``. So parallel connections do not multiply the
    guessing rate. A success clears the address; so does ``forget_after``
    seconds without a failure. At most ``max_sources`` addresses are tracked.
    """

    def __init__(
        self,
        free_failures: int = 3,
        base_delay: float = 1.0,
        max_delay: float = 30.0,
        forget_after: float = 900.0,
        max_sources: int = 10_000,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.free_failures = free_failures
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.forget_after = forget_after
        self.max_sources = max_sources
        self._now = monotonic
        self._lock = threading.Lock()
        self._sources: OrderedDict[str, _Source] = OrderedDict()

    def delay_for(self, failures: int) -> float:
        """The spacing of attempts after ``failures`` consecutive failures (0 for the free ones)."""
        if failures <= self.free_failures:
            return 0.0
        return min(self.max_delay, self.base_delay * 2 ** (failures - self.free_failures - 1))

    def admit(self, source: str) -> float:
        """Reserve the next attempt slot of ``source``; returns the seconds to wait for it."""
        now = self._now()
        with self._lock:
            entry = self._sources.get(source)
            if entry is None:
                return 0.0
            if now - entry.last_failure > self.forget_after:
                del self._sources[source]
                return 0.0
            delay = self.delay_for(entry.failures)
            if not delay:
                return 0.0
            start = max(now, entry.next_slot)
            entry.next_slot = start + delay
            return start - now

    def failed(self, source: str) -> int:
        """Record a failure; returns the consecutive failures of ``source``."""
        now = self._now()
        with self._lock:
            entry = self._sources.pop(source, None) or _Source()
            entry.failures += 1
            entry.last_failure = now
            entry.next_slot = max(entry.next_slot, now + self.delay_for(entry.failures))
            self._sources[source] = entry  # most recent last
            while len(self._sources) > self.max_sources:
                self._sources.popitem(last=False)
            return entry.failures

    def succeeded(self, source: str) -> None:
        with self._lock:
            self._sources.pop(source, None)


class SshAuthController(paramiko.ServerInterface):
    """Password and public-key authentication of one SSH connection."""

    def __init__(self, authenticator: Authenticator, throttle: LoginThrottle, source: str) -> None:
        self.authenticator = authenticator
        self.throttle = throttle
        self.source = source
        self.username: str | None = None

    def get_allowed_auths(self, username: str) -> str:
        return "publickey,password"

    def check_auth_none(self, username: str) -> int:
        return paramiko.AUTH_FAILED

    def check_auth_password(self, username: str, password: str) -> int:
        # Runs on this connection's own transport thread: waiting here delays
        # this client only.
        wait = self.throttle.admit(self.source)
        if wait > 0:
            time.sleep(wait)
        if username and password and self.authenticator.check_password(username, password):
            self.throttle.succeeded(self.source)
            self.username = username
            log.info("user %s authenticated by password from %s", username, self.source)
            return paramiko.AUTH_SUCCESSFUL
        failures = self.throttle.failed(self.source)
        delay = self.throttle.delay_for(failures)
        log.warning(
            "password authentication failed for user %r from %s (%d consecutive failure%s%s)",
            username, self.source, failures, "" if failures == 1 else "s",
            f"; next attempt from there delayed {delay:g} s" if delay else "",
        )
        return paramiko.AUTH_FAILED

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        blob = key.asbytes()
        if any(blob == allowed for allowed in self.authenticator.authorized_keys(username)):
            self.username = username
            log.info("user %s authenticated by public key from %s", username, self.source)
            return paramiko.AUTH_SUCCESSFUL
        return paramiko.AUTH_FAILED
