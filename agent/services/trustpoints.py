"""Trustpoints: config from running -> backend, CA RPCs, and the trustpoint state.

'crypto ca authenticate|enroll|import|...' and 'show crypto ca certificates'
as YANG RPCs and state over the PKI backend (agent/pki/enrollment.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from lxml import etree

from agent.datastore.edit import ChangeSet
from agent.errors import AgentError
from agent.netconf.dispatch import NetconfAgent, SessionInfo
from agent.netconf.scope import EVERYTHING, StateScope
from agent.pki.certificate import CertificateInfo
from agent.pki.enrollment import Pki
from agent.pki.revocation import RevokedEntry
from agent.pki.trustpoint import TrustpointConfig
from agent.schema.model import SchemaModel
from agent.services.changes import touched_keys
from agent.services.keys import USAGE_NAMES
from agent.services.yangio import CRYPTO_NS, RpcInput, container, leaf, output_leaf, tag, yang_rpc
from agent.xmltree import MANY_LOOKUPS, keyed_children

log = logging.getLogger(__name__)

_NAMES_LOGGED = 10  # a bulk delete names this many trustpoints in its log line, then counts the rest

_TP = f"{{{CRYPTO_NS}}}crypto/{{{CRYPTO_NS}}}ca/{{{CRYPTO_NS}}}trustpoint"


_NAME, _ENROLLMENT, _RETRY = tag("name"), tag("enrollment"), tag("retry")
_URL, _TERMINAL, _PERIOD, _COUNT = tag("url"), tag("terminal"), tag("period"), tag("count")
_QUERY_URL, _RSAKEYPAIR, _SUBJECT = tag("query-url"), tag("rsakeypair"), tag("subject-name")


TRUSTPOINT_TAGS = (f"{{{CRYPTO_NS}}}crypto", f"{{{CRYPTO_NS}}}ca", f"{{{CRYPTO_NS}}}trustpoint")


def trustpoint_config(entry: etree._Element) -> TrustpointConfig:
    """One trustpoint entry, as the backend wants it (one pass over its children)."""
    leaves = {child.tag: child for child in entry}
    enrollment = {child.tag: child for child in leaves[_ENROLLMENT]} if _ENROLLMENT in leaves else {}
    retry = {child.tag: child.text for child in enrollment[_RETRY]} if _RETRY in enrollment else {}
    name = leaves[_NAME].text or ""
    return TrustpointConfig(
        name=name,
        enrollment_url=enrollment[_URL].text if _URL in enrollment else None,
        terminal=_TERMINAL in enrollment,
        retry_period=int(retry.get(_PERIOD) or 1),
        retry_count=int(retry.get(_COUNT) or 10),
        query_url=leaves[_QUERY_URL].text if _QUERY_URL in leaves else None,
        rsakeypair=leaves[_RSAKEYPAIR].text if _RSAKEYPAIR in leaves else None,
        subject_name=leaves[_SUBJECT].text if _SUBJECT in leaves else None,
    )


def trustpoint_configs(running: etree._Element) -> dict[str, TrustpointConfig]:
    """The trustpoints of a configuration tree, as the backend wants them."""
    configs: dict[str, TrustpointConfig] = {}
    for entry in running.iterfind(_TP):
        config = trustpoint_config(entry)
        configs[config.name] = config
    return configs


def trustpoint_entry(running: etree._Element, name: str) -> etree._Element | None:
    """The trustpoint entry ``name`` of a configuration tree (found at C speed), None if absent."""
    ca = running.find(_TP.rpartition("/")[0])
    if ca is None:
        return None
    hits = keyed_children(ca, TRUSTPOINT_TAGS[-1], (_NAME,), (name,))
    return hits[0] if hits else None


RevocationLookup = Callable[[str, CertificateInfo], "RevokedEntry | None"]
"""(trustpoint, router certificate) -> its entry in the CA's fetched CRL, None if not listed (no network I/O)."""


class TrustpointService:
    """Maps trustpoint config, the CA RPCs and trustpoint state onto :class:`Pki`."""

    def __init__(
        self,
        pki: Pki,
        running: Callable[[], etree._Element],
        revocation: RevocationLookup | None = None,
        fqdn: Callable[[], str] = lambda: "",
    ) -> None:
        self.pki = pki
        self.running = running
        self.fqdn = fqdn  # read here and passed down: the backend never calls up for it
        self.revocation = revocation  # marks router certificates a fetched CRL lists as revoked
        self._configs: dict[str, TrustpointConfig] = {}  # as of the last commit

    def register(self, agent: NetconfAgent, model: SchemaModel) -> None:
        for name, handler in (
            ("ca-authenticate", self.authenticate),
            ("ca-enroll", self.enroll),
            ("ca-cancel-enroll", self.cancel_enroll),
            ("ca-import-certificate", self.import_certificate),
            ("ca-clear-certificates", self.clear_certificates),
        ):
            agent.register(tag(name), yang_rpc(model, tag(name), handler))
        agent.add_state_provider(self.state, produces=[TRUSTPOINT_TAGS[0]], scoped=True)
        agent.datastores.add_change_listener(self.committed)
        self._configs = trustpoint_configs(self.running())
        self.pki.configure(list(self._configs.values()))

    # -- commits -------------------------------------------------------------
    def committed(self, old: etree._Element, new: etree._Element, touched: ChangeSet = None) -> None:
        """Deleted trustpoints stop polling and lose their certificates; the rest are (re)configured.

        Only the trustpoints the commit touched are read again when the
        datastore says which (``touched``).
        """
        names = touched_keys(touched, TRUSTPOINT_TAGS)
        before = self._configs
        changed: list[TrustpointConfig] = []
        removed: list[str] = []
        if names is None or len(names) > MANY_LOOKUPS:
            # Anything may have changed, or a bulk change: one pass over every entry.
            after = trustpoint_configs(new)
            removed = sorted(before.keys() - after.keys())
            changed = [tp for name, tp in after.items() if before.get(name) != tp]
        else:
            after = dict(before)
            for name in sorted(names):
                entry = trustpoint_entry(new, name)
                if entry is None:
                    if after.pop(name, None) is not None:
                        removed.append(name)
                else:
                    after[name] = trustpoint_config(entry)
                    changed.append(after[name])
        if removed:
            shown = ", ".join(removed[:_NAMES_LOGGED]) + (f" and {len(removed) - _NAMES_LOGGED} more"
                                                          if len(removed) > _NAMES_LOGGED else "")
            log.info("trustpoint%s %s deleted: polling stops and certificates are removed", "s"[: len(removed) != 1],
                     shown)
            self.pki.trustpoints_removed(removed)
        self._configs = after
        self.pki.reconfigure(changed, removed)

    def _config(self, params: RpcInput, rpc: str) -> TrustpointConfig:
        name = params.text("trustpoint") or ""
        config = self._configs.get(name)
        if config is None:
            raise AgentError(
                f"trustpoint {name} is not configured (crypto ca trustpoint {name})",
                error_tag="data-missing",
                error_app_tag="no-such-trustpoint",
                path=f"/crypto:{rpc}/crypto:trustpoint",
            )
        return config

    # -- RPCs ----------------------------------------------------------------
    def authenticate(self, session: SessionInfo, params: RpcInput) -> list[etree._Element]:
        config = self._config(params, "ca-authenticate")
        result = self.pki.authenticate(
            config,
            accept=params.flag("accept"),
            fingerprint=params.text("fingerprint"),
            ca_pem=params.text("ca-certificate"),
        )
        log.info("trustpoint %s: CA certificate %s by %s", config.name,
                 "installed" if result.installed else "shown, not installed", session.username)
        out = _certificate_leaves(result.ca, output=True)
        out.append(output_leaf("installed", result.installed))
        out.append(output_leaf("ra-certificates", len(result.ra)))
        return out

    def enroll(self, session: SessionInfo, params: RpcInput) -> list[etree._Element]:
        config = self._config(params, "ca-enroll")
        outcome = self.pki.enroll(config, params.text("challenge-password"), fqdn=self.fqdn())
        out = [output_leaf("status", outcome.status.value)]
        if outcome.transaction_id:
            out.append(output_leaf("transaction-id", outcome.transaction_id))
        out.append(output_leaf("message", outcome.message))
        for usage, request in outcome.requests.items():
            entry = container("request")
            leaf(entry, "key-usage", USAGE_NAMES[usage])
            leaf(entry, "status", request.status.value)
            if request.transaction_id:
                leaf(entry, "transaction-id", request.transaction_id)
            leaf(entry, "message", request.message)
            if request.fingerprint:
                leaf(entry, "fingerprint", request.fingerprint.upper())
            if request.serial_number:
                leaf(entry, "serial-number", request.serial_number)
            out.append(entry)
        for usage, pem in outcome.certificate_requests.items():
            entry = container("certificate-request")
            leaf(entry, "key-usage", USAGE_NAMES[usage])
            leaf(entry, "pem", pem)
            out.append(entry)
        return out

    def cancel_enroll(self, session: SessionInfo, params: RpcInput) -> list[etree._Element]:
        config = self._config(params, "ca-cancel-enroll")
        out = []
        for request in self.pki.cancel_enrollment(config.name):
            entry = container("cancelled")
            leaf(entry, "key-usage", USAGE_NAMES[request.key_usage])
            if request.transaction_id:
                leaf(entry, "transaction-id", request.transaction_id)
            out.append(entry)
        return out

    def import_certificate(self, session: SessionInfo, params: RpcInput) -> list[etree._Element]:
        config = self._config(params, "ca-import-certificate")
        imported = self.pki.import_certificate(config, params.text("certificate") or "")
        return [output_leaf("key-usage", USAGE_NAMES[imported.key_usage]), *_certificate_leaves(imported.certificate, True)]

    def clear_certificates(self, session: SessionInfo, params: RpcInput) -> list[etree._Element]:
        name = params.text("trustpoint")
        if name is not None:
            self._config(params, "ca-clear-certificates")
        cleared = self.pki.clear_certificates(name)
        return [output_leaf("cleared", n) for n in cleared]

    # -- state ---------------------------------------------------------------
    def state(self, scope: StateScope = EVERYTHING) -> list[etree._Element]:
        """Each trustpoint's certificates and enrollment (only those ``scope`` names, when it does)."""
        crypto = container("crypto")
        ca = etree.SubElement(crypto, tag("ca"))
        wanted = scope.list_keys(TRUSTPOINT_TAGS, _NAME)
        for name in sorted(n for n in wanted if n in self._configs) if wanted is not None else list(self._configs):
            tp_state = self.pki.state(name)
            if tp_state.empty:
                continue  # its entry in running already shows it: an empty one would only cost a merge
            entry = etree.SubElement(ca, tag("trustpoint"))
            leaf(entry, "name", name)
            if tp_state.requests:
                enrollment = etree.SubElement(entry, tag("enrollment"))
                for usage, request in tp_state.requests.items():
                    req = etree.SubElement(enrollment, tag("request"))
                    leaf(req, "key-usage", USAGE_NAMES[usage])
                    leaf(req, "state", request.state.value)
                    if request.transaction_id:
                        leaf(req, "transaction-id", request.transaction_id)
                    leaf(req, "attempts", request.attempts)
                    if request.next_poll is not None and not request.state.is_final:
                        leaf(req, "next-poll", request.next_poll)
                    if request.last_error:
                        leaf(req, "last-error", request.last_error)
                    leaf(req, "updated", request.updated)
            if tp_state.ca is not None:
                ca_el = etree.SubElement(entry, tag("ca-certificate"))
                ca_el.extend(_certificate_leaves(tp_state.ca))
            for ra in tp_state.ra:
                ra_el = etree.SubElement(entry, tag("ra-certificate"))
                ra_el.extend(_certificate_leaves(ra.info, key_first="fingerprint"))
                for ra_usage in ra.usages:
                    leaf(ra_el, "usage", ra_usage.value)
            for usage, certificate in tp_state.certificates.items():
                cert_el = etree.SubElement(entry, tag("certificate"))
                leaf(cert_el, "key-usage", USAGE_NAMES[usage])
                revoked = None
                if self.revocation is not None and certificate.info is not None:
                    revoked = self.revocation(name, certificate.info)
                leaf(cert_el, "status", "revoked" if revoked is not None else certificate.status.value)
                if revoked is not None:
                    leaf(cert_el, "revocation-date", revoked.date)
                    if revoked.reason is not None:
                        leaf(cert_el, "revocation-reason", revoked.reason)
                if certificate.info is not None:
                    cert_el.extend(_certificate_leaves(certificate.info))
        return [crypto] if len(ca) else []


def _certificate_leaves(info: CertificateInfo, output: bool = False, key_first: str | None = None) -> list[etree._Element]:
    """The certificate-info grouping, as output leaves or as children of a state node."""
    values: list[tuple[str, object]] = [
        ("serial-number", info.serial_number),
        ("subject", info.subject),
        ("issuer", info.issuer),
        ("valid-from", info.valid_from),
        ("valid-to", info.valid_to),
        *[("crl-distribution-point", uri) for uri in info.crl_distribution_points],
        ("fingerprint", info.fingerprint_sha256.upper()),
        ("fingerprint-md5", info.fingerprint_md5.upper()),
        ("pem", info.pem),
    ]
    if key_first is not None:  # a list key comes first (RFC 7950 7.8.5)
        values.sort(key=lambda item: item[0] != key_first)
    if output:
        return [output_leaf(name, value) for name, value in values]
    holder = container("holder")
    for name, value in values:
        leaf(holder, name, value)
    return list(holder)
