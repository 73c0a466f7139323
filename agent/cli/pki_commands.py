"""The key and CA commands of the EXEC mode, with the router's dialogs.

Each dialog turns the router's questions into explicit RPC inputs (see
yang/ca-agent-crypto.yang): "Do you really want to replace them?" is
``replace``, the modulus question is ``modulus``, "Do you accept this
certificate??" is a second ``ca-authenticate`` carrying the fingerprint that
was shown, the challenge password is ``challenge-password``.
"""

from __future__ import annotations

from lxml import etree

from agent.cli.client import AgentClient, CliError
from agent.cli.commands import DEFAULT_MODULUS, MODULUS_RANGE
from agent.cli.console import Console
from agent.cli.render import (
    CRYPTO_NS,
    CertificateView,
    fingerprint_groups,
    fqdn_of,
    key_usage_name,
    render_authenticate,
)
from agent.pki.keystore import label_for_fqdn

__all__ = ["PkiCommands", "pem_from_paste", "ENROLL_INTRO", "DEFAULT_RETRY_PERIOD", "DEFAULT_RETRY_COUNT"]

# Defaults of enrollment/retry/period and enrollment/retry/count in yang/ca-agent-crypto.yang.
DEFAULT_RETRY_PERIOD = "1"
DEFAULT_RETRY_COUNT = "10"
# The key pair of a trustpoint without rsakeypair (the seed: "the trustpoint uses the default RSA key").
DEFAULT_KEY_LABEL = "the_default"

ENROLL_INTRO = (
    "% Start certificate enrollment ...\n"
    "% Create a challenge password. You will need to verbally provide this\n"
    "  password to the CA Administrator in order to revoke your certificate.\n"
    "% For security reasons your password will not be saved in the configuration.\n"
    "% Please make a note of it.\n"
    "\n"
)
_CERTS_REMOVED = "% All router certs issued using these keys will also be removed."
_PASTE_END = 'End with a blank line or the word "quit" on a line by itself\n'
_REQUEST_END = "---End - This line not part of the certificate request---"


def _c(name: str) -> str:
    return f"{{{CRYPTO_NS}}}{name}"


def pem_from_paste(lines: list[str], label: str = "CERTIFICATE") -> str:
    """A PEM from pasted lines: kept as is if armored, else the base64 body is wrapped. Raises nothing."""
    text = "\n".join(line.strip() for line in lines if line.strip())
    if "-----BEGIN" in text:
        return text + "\n"
    return f"-----BEGIN {label}-----\n{text}\n-----END {label}-----\n"


class PkiCommands:
    """``crypto key ...``, ``crypto ca ...`` and ``clear crypto ca certificates``."""

    def __init__(self, client: AgentClient, console: Console) -> None:
        self.client = client
        self.console = console

    # ------------------------------------------------------------------ helpers

    def _say(self, *lines: str) -> None:
        self.console.write("".join(line + "\n" for line in lines))

    def _yes_no(self, prompt: str) -> bool:
        """Ask until yes or no; the end of input counts as no."""
        while True:
            answer = self.console.ask(prompt)
            if answer is None:
                return False
            choice = answer.strip().lower()
            if choice in ("y", "ye", "yes"):
                return True
            if choice in ("n", "no"):
                return False
            self._say("% Please answer 'yes' or 'no'.")

    def _paste(self, intro: str) -> list[str]:
        """Read pasted lines until a blank line (after some text), ``quit`` or the end of input."""
        self.console.write(intro + _PASTE_END)
        lines: list[str] = []
        while True:
            line = self.console.ask("")
            if line is None or line.strip().lower() == "quit":
                break
            if not line.strip():
                if lines:
                    break
                continue
            lines.append(line)
        if not lines:
            raise CliError("Nothing was entered")
        return lines

    def _key_labels(self) -> list[str]:
        data = self.client.state("key")
        return [e.text or "" for e in data.iterfind(f"{_c('crypto')}/{_c('key')}/{_c('rsa')}/{_c('label')}")]

    def _trustpoint_config(self, name: str) -> etree._Element | None:
        for element in self.client.running().iterfind(f"{_c('crypto')}/{_c('ca')}/{_c('trustpoint')}"):
            if element.findtext(_c("name")) == name:
                return element
        return None

    def _fqdn(self) -> str:
        return fqdn_of(self.client.running())

    def _trustpoints_with_certificates_of(self, label: str) -> list[str]:
        """The trustpoints whose key pair is ``label`` and that hold a router certificate for it."""
        users = set()
        for element in self.client.running().iterfind(f"{_c('crypto')}/{_c('ca')}/{_c('trustpoint')}"):
            if (element.findtext(_c("rsakeypair")) or DEFAULT_KEY_LABEL) == label:
                users.add(element.findtext(_c("name")) or "")
        state = self.client.state("ca")
        return sorted(
            element.findtext(_c("name")) or ""
            for element in state.iterfind(f"{_c('crypto')}/{_c('ca')}/{_c('trustpoint')}")
            if element.findtext(_c("name")) in users and element.find(_c("certificate")) is not None
        )

    # ------------------------------------------------------------------ keys

    def key_generate(self, key_type: str | None, label: str | None) -> None:
        """``crypto key generate rsa [general-keys | usage-keys] [LABEL]``. Raises CliError, ConnectionLost."""
        usage_keys = key_type in ("usage-keys", "usage")
        name = label or label_for_fqdn(self._fqdn())  # the agent's own default: valid for any FQDN
        self._say(f"The name for the keys will be: {name}")
        replace = False
        if name in self._key_labels():
            self._say(f"% You already have keys defined for {name}")
            users = self._trustpoints_with_certificates_of(name)
            if users:
                self._say(
                    f"% Trustpoint(s) {', '.join(users)} use these keys: their router certificates will not match "
                    "the new keys (Key mismatch) until you enroll again."
                )
            if not self._yes_no("Do you really want to replace them? [yes/no]: "):
                return
            replace = True
        low, high = MODULUS_RANGE
        kind = "Signature and Encryption Keypairs" if usage_keys else "General Purpose Keypair"
        self._say(
            f"Choose the size of the key modulus in the range of {low} to {high} for your {kind}. "
            "Choosing a key modulus greater than 512 may take a few minutes."
        )
        answer = self.console.ask(f"How many bits in the modulus [{DEFAULT_MODULUS}]: ")
        if answer is None:
            raise CliError("Key generation aborted")
        modulus = answer.strip() or str(DEFAULT_MODULUS)
        if not modulus.isdigit() or not low <= int(modulus) <= high:
            raise CliError(f"The key modulus must be a number in the range of {low} to {high}")
        self._say("Generating RSA keys ...")
        leaves: list[tuple[str, str | None]] = [("label", name), ("usage-keys" if usage_keys else "general-keys", None)]
        leaves += [("modulus", modulus), ("replace", "true" if replace else "false")]
        self.client.rpc("key-generate-rsa", leaves)
        self._say("Done w/ crypto generate keypair", "[OK]")

    def key_zeroize(self, label: str | None) -> None:
        """``crypto key zeroize rsa [LABEL]``. Raises CliError, ConnectionLost."""
        labels = self._key_labels()
        if label is not None:
            if label not in labels:
                raise CliError(f"RSA key pair {label} does not exist")
            self._say(f"% Keys to be removed are named {label}", _CERTS_REMOVED)
        else:
            if not labels:
                raise CliError("There are no RSA keys to remove")
            self._say("% All keys will be removed.", _CERTS_REMOVED)
        if not self._yes_no("Do you really want to remove these keys ?? [yes/no]: "):
            return
        reply = self.client.rpc("key-zeroize-rsa", [] if label is None else [("label", label)])
        zeroized = [e.text or "" for e in reply.iterfind(_c("zeroized"))]
        if zeroized:
            self._say(f"% Keys removed: {', '.join(zeroized)}")
        for removed in reply.iterfind(_c("removed-certificate")):
            usage = key_usage_name(removed.findtext(_c("key-usage")))
            self._say(
                f"% Router certificate of trustpoint {removed.findtext(_c('trustpoint'))} ({usage}, "
                f"serial number {removed.findtext(_c('serial-number'))}) removed"
            )

    def key_import(self, key_type: str | None, label: str | None) -> None:
        """``crypto key import authentication rsa [general-keys] [LABEL]``: paste a user's public key.

        The label defaults to the user name of this session; the key logs that user in.
        Raises CliError, ConnectionLost.
        """
        if key_type in ("usage-keys", "usage"):
            raise CliError("Usage keys cannot be imported for authentication: import one general-keys public key")
        name = label or self.client.username
        lines = self._paste("Enter the RSA public key (PEM, base 64 encoded DER, or an OpenSSH 'ssh-rsa' line).\n")
        public_key = "\n".join(line.strip() for line in lines) + "\n"
        reply = self.client.rpc("key-import-authentication-rsa", [("label", name), ("public-key", public_key)])
        user = reply.findtext(_c("user")) or self.client.username
        size = reply.findtext(_c("size")) or "?"
        self._say(f"% Public key {name} ({size} bits) imported: user {user} can log in with it")

    # ------------------------------------------------------------------ CA

    def ca_authenticate(self, name: str) -> None:
        """``crypto ca authenticate NAME``: show the CA certificate, ask, install what was accepted.

        Raises CliError, ConnectionLost.
        """
        leaves: list[tuple[str, str | None]] = [("trustpoint", name)]
        config = self._trustpoint_config(name)
        if config is not None and config.find(f"{_c('enrollment')}/{_c('terminal')}") is not None:
            pasted = self._paste("Enter the base 64 encoded CA certificate.\n")
            leaves.append(("ca-certificate", pem_from_paste(pasted)))
        reply = self.client.rpc("ca-authenticate", leaves)
        cert = CertificateView.from_element(reply)
        self._say(*render_authenticate(cert))
        if reply.findtext(_c("installed")) == "true":
            return  # nothing to accept: the agent says it is trusted already
        if not self._yes_no("Do you accept this certificate?? [yes/no]:"):
            self._say("% Certificate not accepted.")
            return
        if not cert.display_fingerprint:
            raise CliError("The agent gave no fingerprint for the CA certificate")
        confirmed = self.client.rpc("ca-authenticate", [*leaves, ("fingerprint", cert.display_fingerprint)])
        if confirmed.findtext(_c("installed")) != "true":
            raise CliError("The CA certificate was not installed")

    def ca_enroll(self, name: str) -> None:
        """``crypto ca enroll NAME``: challenge password twice, then the request fingerprint and the outcome.

        Raises CliError, ConnectionLost.
        """
        self.console.write(ENROLL_INTRO)
        while True:
            password = self.console.ask_secret("Password: ")
            if password is None:
                raise CliError("Enrollment aborted")
            again = self.console.ask_secret("Re-enter Password: ")
            if again is None:
                raise CliError("Enrollment aborted")
            if again == password:
                break
            self._say("% Passwords do not match. Please try again.")
        leaves: list[tuple[str, str | None]] = [("trustpoint", name)]
        if password:
            leaves.append(("challenge-password", password))
        reply = self.client.rpc("ca-enroll", leaves)
        self._enroll_outcome(name, reply)

    def _enroll_outcome(self, name: str, reply: etree._Element) -> None:
        requests = list(reply.iterfind(_c("request")))
        self._say("")
        for request in requests:
            fingerprint = request.findtext(_c("fingerprint"))
            if not fingerprint:
                continue
            usage = request.findtext(_c("key-usage")) or "general-purpose"
            if len(requests) == 1 or usage == "general-purpose":
                self._say(f"Fingerprint: {fingerprint_groups(fingerprint)}")
            else:
                self._say(f"{key_usage_name(usage)} Certificate Request Fingerprint:", f" {fingerprint_groups(fingerprint)}")
        status = reply.findtext(_c("status")) or ""
        if status == "failed":
            reasons = [r.findtext(_c("message")) for r in requests if r.findtext(_c("status")) == "failed"]
            reason = next((r for r in reasons if r), None) or reply.findtext(_c("message")) or "refused by the CA"
            raise CliError(f"Certificate enrollment failed: {reason}")
        if status == "issued":
            serials = [r.findtext(_c("serial-number")) for r in requests if r.findtext(_c("serial-number"))]
            detail = f" (serial number {', '.join(s for s in serials if s)})" if serials else ""
            self._say(f"% Certificate received from the CA and installed{detail}.")
        elif status == "pending":
            config = self._trustpoint_config(name)
            retry = None if config is None else config.find(f"{_c('enrollment')}/{_c('retry')}")
            period = (retry.findtext(_c("period")) if retry is not None else None) or DEFAULT_RETRY_PERIOD
            count = (retry.findtext(_c("count")) if retry is not None else None) or DEFAULT_RETRY_COUNT
            txid = reply.findtext(_c("transaction-id"))
            self._say(
                "% Certificate request sent to the CA; it is pending"
                + (f" (transaction ID {txid})." if txid else "."),
                f"% The router will poll the CA every {period} minute(s), up to {count} times.",
                "% 'show crypto ca certificates' shows the certificate once it is issued.",
            )
        elif status == "requested":
            for request in reply.iterfind(_c("certificate-request")):
                usage = key_usage_name(request.findtext(_c("key-usage")))
                pem = (request.findtext(_c("pem")) or "").strip()
                self._say(f"% Certificate Request ({usage} key) follows:", "", pem, "", _REQUEST_END)
            self._say(
                "% Paste the request into the CA, then install the issued certificate with",
                f"% 'crypto ca import {name} certificate'.",
            )
        else:
            message = reply.findtext(_c("message"))
            if message:
                self._say(f"% {message}")

    def ca_cancel_enroll(self, name: str) -> None:
        """``crypto ca cancel-enroll NAME``: says which requests were cancelled. Raises CliError, ConnectionLost."""
        reply = self.client.rpc("ca-cancel-enroll", [("trustpoint", name)])
        for cancelled in reply.iterfind(_c("cancelled")):
            usage = key_usage_name(cancelled.findtext(_c("key-usage")))
            txid = cancelled.findtext(_c("transaction-id"))
            self._say(
                f"% Enrollment request of trustpoint {name} ({usage} key"
                + (f", transaction ID {txid}" if txid else "")
                + ") cancelled"
            )

    def ca_import(self, name: str) -> None:
        """``crypto ca import NAME certificate``: paste the router certificate the CA issued.

        Raises CliError, ConnectionLost.
        """
        pem = pem_from_paste(self._paste("Enter the base 64 encoded certificate.\n"))
        reply = self.client.rpc("ca-import-certificate", [("trustpoint", name), ("certificate", pem)])
        usage = reply.findtext(_c("key-usage"))
        detail = f" ({key_usage_name(usage)} key)" if usage and usage != "general-purpose" else ""
        self._say(f"% Router Certificate successfully imported{detail}")

    def ca_clear(self, name: str | None) -> None:
        """``clear crypto ca certificates [NAME]``: says whose certificates were removed.

        Raises CliError, ConnectionLost.
        """
        reply = self.client.rpc("ca-clear-certificates", [] if name is None else [("trustpoint", name)])
        cleared = [e.text or "" for e in reply.iterfind(_c("cleared"))]
        for trustpoint in cleared:
            self._say(f"% Certificates of trustpoint {trustpoint} cleared (CA, RA and router certificates)")
        if not cleared:
            self._say(f"% Trustpoint {name} has no certificates to clear" if name else "% No certificates to clear")
