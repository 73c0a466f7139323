"""The trust commands of ``ca-cli`` (CRLs, trustpool, verify), grafted onto the mode trees of commands.py.

Kept apart so the base grammar stays as it is: :func:`graft` adds

- EXEC (and ``do`` in configuration modes): ``crypto ca crl request NAME``,
  ``crypto ca trustpool import url URL``, ``crypto ca trustpool import url
  clean``, ``crypto ca trustpool import clean url URL``, ``crypto ca verify
  [trustpoint NAME] [purpose ike|tls-client|tls-server|any]`` (our addition);
- ``show crypto ca crls`` and ``show crypto ca trustpool`` in every mode;
- config: ``crypto ca trustpool policy`` (enters ``(config-trustpool)#``) and
  its ``no`` form;
- trustpoint mode: ``crl optional`` / ``no crl optional``;

and :func:`trustpool_mode` builds ``(config-trustpool)#``: ``cabundle url
URL``, ``crl optional`` and their ``no`` forms.
"""

from __future__ import annotations

from collections.abc import Sequence

from agent.cli.grammar import Kind, Node, argument, keyword

__all__ = ["graft", "trustpool_mode", "PURPOSES"]

PURPOSES = ("ike", "tls-client", "tls-server", "any")


def _find(nodes: Sequence[Node], *words: str) -> Node | None:
    node: Node | None = None
    children = nodes
    for word in words:
        node = next((c for c in children if c.kind is Kind.KEYWORD and c.word == word), None)
        if node is None:
            return None
        children = node.children
    return node


def _exec_ca_nodes() -> list[Node]:
    url = argument("WORD", "URL of the CA bundle (http://...)", "url", action="trustpool-import-url")
    purposes = [keyword(p, f"Verify for {p}", action="ca-verify", name="purpose") for p in PURPOSES]
    trustpoint = argument("WORD", "Trustpoint name, or trustpool", "trustpoint", action="ca-verify")
    trustpoint.children = [keyword("purpose", "What the certificate is used for", *purposes)]
    return [
        keyword("crl", "Certificate revocation list",
                keyword("request", "Fetch the CRL of a trustpoint's CA now",
                        argument("WORD", "Trustpoint name", "trustpoint", action="crl-request"))),
        keyword(
            "trustpool",
            "Trustpool (CA certificates trusted without a trustpoint)",
            keyword(
                "import",
                "Import CA certificates into the trustpool",
                keyword("url", "Import a CA bundle from a URL",
                        keyword("clean", "Remove every trustpool certificate", action="trustpool-clear"), url),
                keyword("clean", "Empty the trustpool first",
                        keyword("url", "Import a CA bundle from a URL",
                                argument("WORD", "URL of the CA bundle (http://...)", "url",
                                         action="trustpool-import-clean-url"))),
            ),
        ),
        keyword(
            "verify",
            "Verify a peer certificate (pasted in PEM)",
            keyword("trustpoint", "Verify against one trustpoint (or the trustpool) only", trustpoint),
            keyword("purpose", "What the certificate is used for", *purposes),
            action="ca-verify",
        ),
    ]


def _show_ca_nodes() -> list[Node]:
    return [
        keyword("crls", "Show the CRLs of the trustpoints' CAs", action="show-crls"),
        keyword("trustpool", "Show the trustpool's CA certificates", action="show-trustpool"),
    ]


def _crl_optional(action: str) -> Node:
    return keyword("crl", "Certificate revocation list",
                   keyword("optional", "Accept certificates whose CRL cannot be obtained", action=action))


def trustpool_mode(common: list[Node]) -> list[Node]:
    """The commands of ``(config-trustpool)#``, followed by ``common`` (commit, end, exit, do, show...)."""
    url = argument("WORD", "URL of the CA bundle (http://...)", "value", action="cabundle-url")
    no = keyword(
        "no",
        "Negate a command or set its defaults",
        keyword("cabundle", "CA bundle", keyword("url", "CA bundle URL", action="no-cabundle-url")),
        _crl_optional("no-pool-crl-optional"),
    )
    return [
        keyword("cabundle", "CA bundle", keyword("url", "URL of a CA bundle, refreshed in the background", url)),
        _crl_optional("pool-crl-optional"),
        no,
        *common,
    ]


def graft(exec_tree: list[Node], config_tree: list[Node], trustpoint_tree: list[Node], trustpool_tree: list[Node]) -> None:
    """Add the trust commands to the mode trees (in place). Raises nothing."""
    trees = (exec_tree, config_tree, trustpoint_tree, trustpool_tree)
    for tree in trees:
        for path in (("crypto", "ca"), ("do", "crypto", "ca")):
            node = _find(tree, *path)
            if node is not None and (tree is exec_tree or path[0] == "do"):
                node.children.extend(_exec_ca_nodes())
        show = _find(tree, "show", "crypto", "ca")
        if show is not None:
            show.children.extend(_show_ca_nodes())
    policy = keyword("policy", "Trustpool policy", action="trustpool-policy")
    config_ca = _find(config_tree, "crypto", "ca")
    if config_ca is not None:
        config_ca.children.append(keyword("trustpool", "Trustpool", policy))
    no_ca = _find(config_tree, "no", "crypto", "ca")
    if no_ca is not None:
        no_ca.children.append(
            keyword("trustpool", "Trustpool", keyword("policy", "Trustpool policy", action="no-trustpool-policy"))
        )
    trustpoint_tree.insert(0, _crl_optional("crl-optional"))
    no_tp = _find(trustpoint_tree, "no")
    if no_tp is not None:
        no_tp.children.append(_crl_optional("no-crl-optional"))
