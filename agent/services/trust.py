"""Trust decisions over NETCONF: peer verification, CRLs, the trustpool.

Maps ``ca-verify-certificate``, ``ca-crl-request``, ``ca-trustpool-import``,
``ca-trustpool-clear``, the trustpoint leaves ``query-url`` / ``crl-optional``,
``/crypto/ca/trustpool/policy`` and the state (``trustpoint/crl``,
``trustpool/certificate``, ``trustpool/cabundle``) onto the backend
(agent/pki/verify.py, revocation.py, trustpool.py). It also tells
:class:`~agent.services.trustpoints.TrustpointService` which router
certificates a fetched CRL lists (:meth:`TrustService.revocation_of`), and
publishes a :class:`~agent.pki.events.CertificateRevoked` event when a
fetched CRL newly lists one (:meth:`TrustService.add_event_sink`).

The settings are read from each committed configuration (a commit listener)
and passed down as values; no lock is held while a CRL or a bundle is fetched.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from cryptography import x509
from lxml import etree

from agent.clock import SYSTEM_CLOCK, Clock
from agent.datastore.edit import ChangeSet
from agent.errors import AgentError
from agent.netconf.dispatch import NetconfAgent, SessionInfo
from agent.netconf.scope import EVERYTHING, StateScope
from agent.pki.certificate import CertificateInfo, format_serial
from agent.pki.certstore import CaNotAuthenticatedError, CertificateStore
from agent.pki.events import CertificateRevoked, PkiEvent
from agent.pki.revocation import CrlManager, CrlRecord, RevokedEntry, issuer_key
from agent.pki.trustpool import BundleUpdater, TrustPool, fetch_bundle
from agent.pki.verify import TRUSTPOOL, Anchor, PeerVerifier, Purpose, Verification
from agent.schema.model import SchemaModel
from agent.services.changes import touched_keys
from agent.services.trustpoints import TRUSTPOINT_TAGS, trustpoint_entry
from agent.services.yangio import RpcInput, container, leaf, output_leaf, tag, yang_rpc
from agent.xmltree import MANY_LOOKUPS

log = logging.getLogger(__name__)

_TP = f"{tag('crypto')}/{tag('ca')}/{tag('trustpoint')}"
_POLICY = f"{tag('crypto')}/{tag('ca')}/{tag('trustpool')}/{tag('policy')}"
_TRUSTPOOL_TAGS = (tag("crypto"), tag("ca"), tag("trustpool"))
_INFO = "%SECURITY-CEPKI-6-INFO"


@dataclass(frozen=True)
class TrustpointTrust:
    """What one trustpoint's configuration says about trust: its LDAP CRL server and crl optional."""

    name: str
    query_url: str | None = None
    crl_optional: bool = False


@dataclass(frozen=True)
class TrustSettings:
    """The trust-related configuration of one committed tree."""

    trustpoints: dict[str, TrustpointTrust]
    cabundle_url: str | None = None
    pool_crl_optional: bool = False


def _trustpoint_trust(entry: etree._Element) -> TrustpointTrust:
    name = entry.findtext(tag("name")) or ""
    query = entry.findtext(tag("query-url"))
    return TrustpointTrust(name, query or None, entry.find(tag("crl-optional")) is not None)


def trust_settings(running: etree._Element, previous: TrustSettings | None = None,
                   touched: set[str] | None = None) -> TrustSettings:
    """Read the trust settings of a configuration tree. Raises nothing.

    With the settings of the previous configuration and the names of the
    only trustpoints that may differ (``touched``), only those are read.
    """
    if previous is None or touched is None or len(touched) > MANY_LOOKUPS:
        read = (_trustpoint_trust(entry) for entry in running.iterfind(_TP))
        trustpoints = dict(sorted((tp.name, tp) for tp in read))
    else:
        trustpoints = dict(previous.trustpoints)
        added = False
        for name in touched:
            entry = trustpoint_entry(running, name)
            if entry is None:
                trustpoints.pop(name, None)
            else:
                added = added or name not in trustpoints
                trustpoints[name] = _trustpoint_trust(entry)
        if added:
            trustpoints = dict(sorted(trustpoints.items()))
    policy = running.find(_POLICY)
    url = policy.findtext(tag("cabundle-url")) if policy is not None else None
    optional = policy is not None and policy.find(tag("crl-optional")) is not None
    return TrustSettings(trustpoints, url or None, optional)


class TrustService:
    """The trust RPCs, state and configuration over the PKI backend."""

    def __init__(
        self,
        certstore: CertificateStore,
        crls: CrlManager,
        pool: TrustPool,
        updater: BundleUpdater,
        verifier: PeerVerifier,
        running: Callable[[], etree._Element],
        http_timeout: float = 30.0,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.clock = clock
        self._sinks: list[Callable[[PkiEvent], None]] = []
        self.certstore = certstore
        self.crls = crls
        self.pool = pool
        self.updater = updater
        self.verifier = verifier
        self.running = running
        self.http_timeout = http_timeout
        self._lock = threading.Lock()
        self._settings = TrustSettings({})

    def register(self, agent: NetconfAgent, model: SchemaModel) -> None:
        for name, handler in (
            ("ca-verify-certificate", self.verify_certificate),
            ("ca-crl-request", self.crl_request),
            ("ca-trustpool-import", self.trustpool_import),
            ("ca-trustpool-clear", self.trustpool_clear),
        ):
            agent.register(tag(name), yang_rpc(model, tag(name), handler))
        agent.add_state_provider(self.state, produces=[tag("crypto")], scoped=True)
        agent.datastores.add_change_listener(self.committed)
        self.crls.add_listener(self._crl_fetched)
        self._apply(trust_settings(self.running()))

    def add_event_sink(self, sink: Callable[[PkiEvent], None]) -> None:
        """Hand ``sink`` a CertificateRevoked event per router certificate a fetched CRL newly lists.

        ``sink`` must not block (the event bus's publish). Raises nothing.
        """
        self._sinks.append(sink)

    def close(self) -> None:
        """Stop the background refreshes. Raises nothing."""
        self.updater.close()
        self.crls.close()

    # -- configuration -------------------------------------------------------
    def committed(self, old: etree._Element, new: etree._Element, touched: ChangeSet = None) -> None:
        """Take the trust settings of the new running configuration (re-reading only touched trustpoints)."""
        self._apply(trust_settings(new, self.settings(), touched_keys(touched, TRUSTPOINT_TAGS)))

    def _apply(self, settings: TrustSettings) -> None:
        with self._lock:
            self._settings = settings
        self.updater.configure(settings.cabundle_url)

    def settings(self) -> TrustSettings:
        with self._lock:
            return self._settings

    # -- the router's own certificates ----------------------------------------
    def revocation_of(self, trustpoint: str, info: CertificateInfo) -> RevokedEntry | None:
        """The CRL entry of a router certificate of ``trustpoint``, if its CA's cached CRL lists it. No network I/O."""
        try:
            ca = self.certstore.ca(trustpoint)
            serial = int(info.serial_number, 16)
        except (AgentError, ValueError):
            return None
        return None if ca is None else self.crls.revoked_entry(ca, serial)

    def _crl_fetched(
        self, ca: x509.Certificate, previous: x509.CertificateRevocationList | None,
        crl: x509.CertificateRevocationList,
    ) -> None:
        """CRL listener: router certificates of that CA's trustpoints listed now and not before."""
        if not self._sinks:
            return
        key = issuer_key(ca)
        now = self.clock.now()
        for name in self.certstore.trustpoints():
            try:
                tp_ca = self.certstore.ca(name)  # from memory: only that CA's trustpoints have their files read
                if tp_ca is None or issuer_key(tp_ca) != key:
                    continue
                certificates = self.certstore.certificates(name)
            except AgentError:
                continue
            for usage, cert in certificates.items():
                if crl.get_revoked_certificate_by_serial_number(cert.serial_number) is None or (
                    previous is not None
                    and previous.get_revoked_certificate_by_serial_number(cert.serial_number) is not None
                ):
                    continue
                entry = self.crls.revoked_entry(ca, cert.serial_number)  # the new CRL, now cached
                event = CertificateRevoked(
                    name, usage, format_serial(cert.serial_number),
                    entry.date if entry is not None else None, entry.reason if entry is not None else None, now,
                )
                log.warning("%s: certificate %s of trustpoint %s is revoked (CRL of %s)", _INFO,
                            event.serial_number, name, CertificateInfo.from_x509(ca).subject)
                for sink in self._sinks:
                    sink(event)

    # -- RPCs ----------------------------------------------------------------
    def verify_certificate(self, session: SessionInfo, params: RpcInput) -> list[etree._Element]:
        anchors = self._anchors(params.text("trustpoint"))
        purpose = Purpose(params.text("purpose") or Purpose.ANY.value)
        result = self.verifier.verify(params.text("certificate") or "", anchors, purpose)
        peer = result.chain[0] if result.chain else None
        log.info(
            "%s: certificate %s (serial %s) verified for %s by %s: %s",
            _INFO,
            peer.subject if peer else "?",
            peer.serial_number if peer else "?",
            purpose.value,
            session.username,
            result.message,
        )
        return _verification_output(result)

    def crl_request(self, session: SessionInfo, params: RpcInput) -> list[etree._Element]:
        name = params.text("trustpoint") or ""
        tp = self._trustpoint(name, "ca-crl-request")
        ca = self.certstore.ca(name)
        if ca is None:
            raise CaNotAuthenticatedError(f"CA not authenticated: run ca-authenticate {name} first")
        sources = [tp.query_url] if tp.query_url else []
        for cert in self.certstore.certificates(name).values():
            sources.extend(CertificateInfo.from_x509(cert).crl_distribution_points)
        record = self.crls.fetch(ca, sources)
        return [output_leaf(n, v) for n, v in _crl_values(record)]

    def trustpool_import(self, session: SessionInfo, params: RpcInput) -> list[etree._Element]:
        url = params.text("url")
        data: bytes | str = fetch_bundle(url, self.http_timeout) if url is not None else (params.text("bundle") or "")
        result = self.pool.import_bundle(data, clean=params.flag("clean"))
        log.info("trustpool import from %s by %s", url or "an inline bundle", session.username)
        out = [
            output_leaf("added", len(result.added)),
            output_leaf("skipped", len(result.skipped)),
            output_leaf("removed", result.removed),
            output_leaf("total", result.total),
        ]
        for item in result.skipped:
            entry = container("skipped-certificate")
            leaf(entry, "subject", item.subject)
            leaf(entry, "fingerprint", item.fingerprint)
            leaf(entry, "reason", item.reason.value)
            leaf(entry, "detail", item.detail)
            out.append(entry)
        return out

    def trustpool_clear(self, session: SessionInfo, params: RpcInput) -> list[etree._Element]:
        removed = self.pool.clear()
        log.info("trustpool cleared by %s", session.username)
        return [output_leaf("removed", removed)]

    # -- state ---------------------------------------------------------------
    def state(self, scope: StateScope = EVERYTHING) -> list[etree._Element]:
        """CRL state of the trustpoints (only those ``scope`` names, when it does) and the trustpool."""
        crypto = container("crypto")
        ca_el = etree.SubElement(crypto, tag("ca"))
        wanted = scope.list_keys(TRUSTPOINT_TAGS, tag("name"))
        trustpoints = self.settings().trustpoints
        due: dict[str, float] | None = None  # seconds until each CA's next background fetch, asked once
        for name in trustpoints if wanted is None else sorted(wanted):
            if name not in trustpoints:
                continue
            try:
                ca = self.certstore.ca(name)  # from memory once read
            except AgentError:
                continue
            record = None if ca is None else self.crls.record(ca)
            if record is None:
                continue
            entry = etree.SubElement(ca_el, tag("trustpoint"))
            leaf(entry, "name", name)
            crl = etree.SubElement(entry, tag("crl"))
            for leaf_name, value in _crl_values(record):
                leaf(crl, leaf_name, value)
            if record.last_fetch is not None:
                leaf(crl, "last-fetch", record.last_fetch)
            if record.last_error:
                leaf(crl, "last-error", record.last_error)
            if record.last_attempt is not None:
                leaf(crl, "last-attempt", record.last_attempt)
            if due is None:
                due, asked = self.crls.refresh_due(), self.clock.now()
            if record.issuer_key in due:
                seconds = max(due[record.issuer_key], 0.0)
                leaf(crl, "next-fetch", asked + dt.timedelta(seconds=round(seconds)))
        if not scope.can_select(_TRUSTPOOL_TAGS):  # a <get> of trustpoints only: no trustpool to make
            return [crypto] if len(ca_el) else []  # nothing to merge for trustpoints without CRL state
        trustpool = etree.SubElement(ca_el, tag("trustpool"))
        status = self.updater.status()
        if status.url is not None:
            bundle = etree.SubElement(trustpool, tag("cabundle"))
            leaf(bundle, "url", status.url)
            if status.last_refresh is not None:
                leaf(bundle, "last-refresh", status.last_refresh)
            if status.last_error:
                leaf(bundle, "last-error", status.last_error)
        for cert in self.pool.certificates():
            info = CertificateInfo.from_x509(cert)
            entry = etree.SubElement(trustpool, tag("certificate"))
            leaf(entry, "fingerprint", info.fingerprint_sha256)
            for leaf_name, value in _summary(info):
                leaf(entry, leaf_name, value)
        return [crypto]

    # -- helpers ---------------------------------------------------------------
    def _trustpoint(self, name: str, rpc: str) -> TrustpointTrust:
        tp = self.settings().trustpoints.get(name)
        if tp is None:
            raise AgentError(
                f"trustpoint {name} is not configured (crypto ca trustpoint {name})",
                error_tag="data-missing",
                error_app_tag="no-such-trustpoint",
                path=f"/crypto:{rpc}/crypto:trustpoint",
            )
        return tp

    def _anchors(self, restrict: str | None) -> list[Anchor]:
        """The candidate anchors: authenticated trustpoints (by name), then the trustpool CAs."""
        settings = self.settings()
        pool = [Anchor(TRUSTPOOL, c, settings.pool_crl_optional) for c in self.pool.certificates()]
        if restrict is not None and restrict not in settings.trustpoints and restrict == TRUSTPOOL:
            return pool
        names = list(settings.trustpoints) if restrict is None else [self._trustpoint(restrict, "ca-verify-certificate").name]
        anchors: list[Anchor] = []
        for name in names:
            ca: x509.Certificate | None = self.certstore.ca(name)
            if ca is None:
                if restrict is not None:
                    raise CaNotAuthenticatedError(f"CA not authenticated: run ca-authenticate {name} first")
                continue
            tp = settings.trustpoints[name]
            anchors.append(Anchor(name, ca, tp.crl_optional, tp.query_url))
        return anchors if restrict is not None else anchors + pool


def _summary(info: CertificateInfo) -> list[tuple[str, object]]:
    return [
        ("subject", info.subject),
        ("issuer", info.issuer),
        ("serial-number", info.serial_number),
        ("valid-from", info.valid_from),
        ("valid-to", info.valid_to),
    ]


def _crl_values(record: CrlRecord) -> list[tuple[str, object]]:
    values: list[tuple[str, object]] = []
    if record.source:
        values.append(("source", record.source))
    values.append(("issuer", record.issuer))
    if record.der is not None:
        if record.this_update is not None:
            values.append(("this-update", record.this_update))
        if record.next_update is not None:
            values.append(("next-update", record.next_update))
        if record.crl_number is not None:
            values.append(("crl-number", record.crl_number))
        values.append(("revoked-certificates", record.revoked_count))
    return values


def _verification_output(result: Verification) -> list[etree._Element]:
    out = [output_leaf("valid", result.valid)]
    if result.trustpoint is not None:
        out.append(output_leaf("trustpoint", result.trustpoint))
    for position, info in enumerate(result.chain):
        entry = container("chain")
        leaf(entry, "position", position)
        for name, value in _summary(info):
            leaf(entry, name, value)
        leaf(entry, "fingerprint", info.fingerprint_sha256)
        out.append(entry)
    out.append(output_leaf("revocation", result.revocation.value))
    if result.revocation_date is not None:
        out.append(output_leaf("revocation-date", result.revocation_date))
    if result.revocation_reason is not None:
        out.append(output_leaf("revocation-reason", result.revocation_reason))
    if result.crl_source is not None:
        out.append(output_leaf("crl-source", result.crl_source))
    if result.failure is not None:
        out.append(output_leaf("failure", result.failure.value))
    out.append(output_leaf("message", result.message))
    return out
