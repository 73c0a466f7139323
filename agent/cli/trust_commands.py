"""The trust commands of ``ca-cli``: CRLs, the trustpool, ``crypto ca verify``, and their show commands.

Handlers for the actions of :mod:`agent.cli.trust_grammar`; every one is a
NETCONF call (RPC, edit-config of the candidate, or ``<get>``), rendered in
the router's style. ``show crypto ca crls`` follows IOS XR's ``CRL Entry``
block; ``show crypto ca trustpool`` its ``CA certificate`` blocks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from lxml import etree

from agent.cli.client import AgentClient, CliError, edit_config_element
from agent.cli.commands import Mode
from agent.cli.console import Console
from agent.cli.grammar import Parsed
from agent.cli.pki_commands import pem_from_paste
from agent.cli.render import CRYPTO_NS, router_date

__all__ = ["TrustCommands", "render_crls", "render_trustpool", "render_verification"]

_RULE = "=" * 47


def _c(name: str) -> str:
    return f"{{{CRYPTO_NS}}}{name}"


def _t(element: etree._Element | None, name: str) -> str | None:
    return None if element is None else element.findtext(_c(name))


class SessionState(Protocol):
    """What the trust and alert commands need of :class:`agent.cli.session.CliSession`."""

    mode: Mode
    trustpoint: str | None

    def stage_command(self, edit: etree._Element, context: str | None = None, shown: bool = True) -> None:
        """Keep the command being executed for this configuration session's commit."""
        ...


# --------------------------------------------------------------------------- renderers


def render_crls(data: etree._Element) -> list[str]:
    """``show crypto ca crls`` from a <data> holding /crypto/ca state. Raises nothing."""
    lines: list[str] = []
    for tp in data.iterfind(f"{_c('crypto')}/{_c('ca')}/{_c('trustpoint')}"):
        crl = tp.find(_c("crl"))
        if crl is None:
            continue
        if lines:
            lines.append("")
        lines += ["CRL Entry", _RULE, f"Trustpoint : {_t(tp, 'name') or ''}", f"Issuer : {_t(crl, 'issuer') or ''}"]
        if _t(crl, "this-update"):
            lines.append(f"Last Update : {router_date(_t(crl, 'this-update'))}")
        if _t(crl, "next-update"):
            lines.append(f"Next Update : {router_date(_t(crl, 'next-update'))}")
        if _t(crl, "revoked-certificates") is not None:
            lines.append(f"Revoked Certificates : {_t(crl, 'revoked-certificates')}")
        if _t(crl, "source"):
            lines += ["CRL Distribution Point :", f"{_t(crl, 'source')}"]
        if _t(crl, "last-fetch"):
            lines.append(f"Last Fetch : {router_date(_t(crl, 'last-fetch'))}")
        if _t(crl, "last-error"):
            lines.append(f"Last Error : {_t(crl, 'last-error')}")
            if _t(crl, "last-attempt"):
                lines.append(f"Last Attempt : {router_date(_t(crl, 'last-attempt'))}")
        if _t(crl, "next-fetch"):
            lines.append(f"Next Fetch : {router_date(_t(crl, 'next-fetch'))}")
    return lines


def render_trustpool(data: etree._Element) -> list[str]:
    """``show crypto ca trustpool``: one ``CA certificate`` block per pool certificate. Raises nothing."""
    lines: list[str] = []
    pool = data.find(f"{_c('crypto')}/{_c('ca')}/{_c('trustpool')}")
    bundle = None if pool is None else pool.find(_c("cabundle"))
    if bundle is not None:
        lines.append(f"CA bundle URL   : {_t(bundle, 'url') or ''}")
        if _t(bundle, "last-refresh"):
            lines.append(f"Last Refresh    : {router_date(_t(bundle, 'last-refresh'))}")
        if _t(bundle, "last-error"):
            lines.append(f"Last Error      : {_t(bundle, 'last-error')}")
    for cert in [] if pool is None else pool.iterfind(_c("certificate")):
        lines += [
            "",
            _RULE,
            "CA certificate",
            f"  Serial Number  : {_t(cert, 'serial-number') or ''}",
            "  Subject        :",
            f"        {_t(cert, 'subject') or ''}",
            "  Issued By      :",
            f"        {_t(cert, 'issuer') or ''}",
            f"  Validity Start : {router_date(_t(cert, 'valid-from'))}",
            f"  Validity End   : {router_date(_t(cert, 'valid-to'))}",
            "  SHA256 Fingerprint:",
            f"        {_t(cert, 'fingerprint') or ''}",
        ]
    return lines if any(lines) else ["% The trustpool is empty"]


def render_verification(reply: etree._Element) -> list[str]:
    """The ``ca-verify-certificate`` output as ``crypto ca verify`` prints it. Raises nothing."""
    valid = _t(reply, "valid") == "true"
    where = _t(reply, "trustpoint")
    lines = [f"Certificate is {'VALID' if valid else 'NOT VALID'}" + (f" (trustpoint {where})" if where else "")]
    revocation = _t(reply, "revocation") or ""
    detail = ""
    if revocation == "revoked":
        detail = f" at {router_date(_t(reply, 'revocation-date'))}"
        if _t(reply, "revocation-reason"):
            detail += f", reason {_t(reply, 'revocation-reason')}"
    if _t(reply, "crl-source"):
        detail += f" (CRL {_t(reply, 'crl-source')})"
    lines.append(f"  Revocation : {revocation}{detail}")
    lines.append("  Chain      :")
    for entry in reply.iterfind(_c("chain")):
        lines.append(f"    [{_t(entry, 'position')}] {_t(entry, 'subject')}")
        lines.append(f"        Issued By : {_t(entry, 'issuer')}, Serial Number : {_t(entry, 'serial-number')}")
        lines.append(f"        Validity  : {router_date(_t(entry, 'valid-from'))} - {router_date(_t(entry, 'valid-to'))}")
    lines.append(f"  {_t(reply, 'message') or ''}")
    return lines


# --------------------------------------------------------------------------- commands


class TrustCommands:
    """Handlers for the trust actions; :meth:`handlers` maps action names to them."""

    def __init__(self, client: AgentClient, console: Console, session: SessionState) -> None:
        self.client = client
        self.console = console
        self.session = session

    def handlers(self) -> dict[str, Callable[[Parsed], None]]:
        """Action name -> handler, for :class:`agent.cli.session.CliSession`. Raises nothing."""
        return {
            "crl-request": self.crl_request,
            "show-crls": lambda p: self._say(*render_crls(self.client.state("ca"))),
            "show-trustpool": lambda p: self._say(*render_trustpool(self.client.state("ca"))),
            "trustpool-import-url": lambda p: self.trustpool_import(p.args["url"], clean=False),
            "trustpool-import-clean-url": lambda p: self.trustpool_import(p.args["url"], clean=True),
            "trustpool-clear": self.trustpool_clear,
            "ca-verify": self.verify,
            "crl-optional": lambda p: self._tp_leaf("crl-optional", remove=False),
            "no-crl-optional": lambda p: self._tp_leaf("crl-optional", remove=True),
            "trustpool-policy": self.trustpool_policy,
            "no-trustpool-policy": lambda p: self._policy((), remove=True),
            "cabundle-url": lambda p: self._policy(("cabundle-url",), value=p.args["value"]),
            "no-cabundle-url": lambda p: self._policy(("cabundle-url",), remove=True),
            "pool-crl-optional": lambda p: self._policy(("crl-optional",)),
            "no-pool-crl-optional": lambda p: self._policy(("crl-optional",), remove=True),
        }

    def _say(self, *lines: str) -> None:
        if lines:
            self.console.write("".join(line + "\n" for line in lines))

    # -- exec ------------------------------------------------------------------
    def crl_request(self, parsed: Parsed) -> None:
        """``crypto ca crl request NAME``. Raises CliError, ConnectionLost."""
        name = parsed.args["trustpoint"]
        reply = self.client.rpc("ca-crl-request", [("trustpoint", name)])
        self._say(
            f"% CRL of {_t(reply, 'issuer')} received from {_t(reply, 'source')}: "
            f"{_t(reply, 'revoked-certificates') or '0'} revoked certificate(s), "
            f"next update {router_date(_t(reply, 'next-update'))}"
        )

    def trustpool_import(self, url: str, clean: bool) -> None:
        """``crypto ca trustpool import [clean] url URL``. Raises CliError, ConnectionLost."""
        leaves: list[tuple[str, str | None]] = [("url", url)]
        if clean:
            leaves.append(("clean", None))
        reply = self.client.rpc("ca-trustpool-import", leaves)
        reasons: dict[str, int] = {}
        for skipped in reply.iterfind(_c("skipped-certificate")):
            reason = _t(skipped, "reason") or "?"
            reasons[reason] = reasons.get(reason, 0) + 1
        why = f" ({', '.join(f'{n} {r}' for r, n in sorted(reasons.items()))})" if reasons else ""
        self._say(
            f"% {_t(reply, 'added')} CA certificate(s) added to the trustpool, {_t(reply, 'skipped')} skipped{why}",
            f"% The trustpool holds {_t(reply, 'total')} CA certificate(s)",
        )

    def trustpool_clear(self, parsed: Parsed) -> None:
        """``crypto ca trustpool import url clean``. Raises CliError, ConnectionLost."""
        reply = self.client.rpc("ca-trustpool-clear")
        self._say(f"% Trustpool cleared: {_t(reply, 'removed')} CA certificate(s) removed")

    def verify(self, parsed: Parsed) -> None:
        """``crypto ca verify [trustpoint NAME] [purpose P]``: paste the peer's PEM, print the verdict.

        Raises CliError (not valid, or refused), ConnectionLost.
        """
        self.console.write(
            "Enter the peer's certificate in PEM, then any CA certificates it sent.\n"
            'End with a blank line after the last certificate or the word "quit" on a line by itself\n'
        )
        lines: list[str] = []
        while True:
            line = self.console.ask("")
            if line is None or line.strip().lower() == "quit":
                break
            if not line.strip() and lines and lines[-1].startswith("-----END"):
                break
            if line.strip():
                lines.append(line.strip())
        if not lines:
            raise CliError("Nothing was entered")
        leaves: list[tuple[str, str | None]] = [("certificate", pem_from_paste(lines))]
        for name in ("trustpoint", "purpose"):
            if parsed.args.get(name):
                leaves.append((name, parsed.args[name]))
        reply = self.client.rpc("ca-verify-certificate", leaves)
        self._say(*render_verification(reply))
        if _t(reply, "valid") != "true":
            raise CliError(f"Certificate verification failed: {_t(reply, 'failure') or 'not valid'}")

    # -- configuration ---------------------------------------------------------
    def _tp_leaf(self, leaf: str, remove: bool) -> None:
        name = self.session.trustpoint
        if name is None:
            raise CliError("Not in trustpoint configuration mode")
        path: list[str | tuple[str, str, str]] = ["crypto", "ca", ("trustpoint", "name", name), leaf]
        self.session.stage_command(edit_config_element(CRYPTO_NS, path, operation="remove" if remove else None),
                                   f"crypto ca trustpoint {name}")

    def trustpool_policy(self, parsed: Parsed) -> None:
        """``crypto ca trustpool policy``: enter ``(config-trustpool)#``. Raises CliError, ConnectionLost."""
        self.session.stage_command(edit_config_element(CRYPTO_NS, ["crypto", "ca", "trustpool", "policy"]),
                                   "crypto ca trustpool policy", shown=False)
        self.session.mode, self.session.trustpoint = Mode.TRUSTPOOL, None

    def _policy(self, leaf: tuple[str, ...], value: str | None = None, remove: bool = False) -> None:
        path: list[str | tuple[str, str, str]] = ["crypto", "ca", "trustpool", "policy", *leaf]
        self.session.stage_command(edit_config_element(CRYPTO_NS, path, value, operation="remove" if remove else None),
                                   "crypto ca trustpool policy")
