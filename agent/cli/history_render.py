"""Renderers of the commit database: ``show configuration commit list [detail]`` and ``... changes``.

Pure functions, no I/O. The layouts are IOS XR's: the list is its ``SNo.
Label/ID User Line Client Time Stamp`` table, newest first; ``detail`` its
``CommitId: ... Label: ...`` blocks; the changes print as configuration
lines (``hostname r2``, ``no crypto ca trustpoint x``, submode lines under
their ``crypto ca trustpoint myca`` header), or with ``diff`` as ``+``/``-``
lines. A change recorded for a node the CLI has no command for prints its
instance-identifier (``/nacm:nacm/nacm:enable-nacm true``); a change recorded
for a whole container (the agent records the highest node that changed,
e.g. ``/crypto:crypto`` created by the first trustpoint) is a ``!!`` comment,
since the record holds no detail below it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from lxml import etree

from agent.cli.dates import DAYS, MONTHS, parse_date_time

__all__ = [
    "ChangeView",
    "CommitView",
    "commits_of",
    "render_commit_list",
    "render_commit_detail",
    "render_commit_changes",
    "change_lines",
    "classify_change",
    "ChangeLine",
    "parse_instance_identifier",
    "Step",
    "list_time",
]

SYS_NS = "urn:ca-agent:yang:system"

# What made a commit (the YANG 'kind'), in the list's Client column.
_CLIENT = {
    "initial-configuration": "Startup",
    "commit": "Commit",
    "edit-config": "Edit-config",
    "copy-config": "Copy-config",
    "rollback": "Rollback",
    "confirmed-commit-rollback": "Unconfirmed",
}


def _s(name: str) -> str:
    return f"{{{SYS_NS}}}{name}"


@dataclass(frozen=True)
class ChangeView:
    """One change of a commit: the node (a prefixed instance-identifier), how it changed, leaf values."""

    target: str
    operation: str  # create | delete | replace
    old_value: str | None = None
    new_value: str | None = None


@dataclass(frozen=True)
class CommitView:
    """One commit of the commit database (``/commit-history/commit``)."""

    commit_id: str
    user: str = ""
    session_id: str = ""
    timestamp: str = ""
    kind: str = ""
    label: str | None = None
    comment: str | None = None
    changes: tuple[ChangeView, ...] = ()

    @classmethod
    def from_element(cls, element: etree._Element) -> CommitView:
        """Read one ``<commit>`` entry. Raises nothing."""
        changes = sorted(element.iterfind(_s("change")), key=lambda c: int(c.findtext(_s("index")) or 0))
        return cls(
            commit_id=element.findtext(_s("id")) or "",
            user=element.findtext(_s("user")) or "",
            session_id=element.findtext(_s("session-id")) or "",
            timestamp=element.findtext(_s("timestamp")) or "",
            kind=element.findtext(_s("kind")) or "",
            label=element.findtext(_s("label")),
            comment=element.findtext(_s("comment")),
            changes=tuple(
                ChangeView(c.findtext(_s("target")) or "", c.findtext(_s("operation")) or "",
                           c.findtext(_s("old-value")), c.findtext(_s("new-value")))
                for c in changes
            ),
        )

    @property
    def name(self) -> str:
        """What the list's Label/ID column shows: the label if the commit has one, else its id."""
        return self.label or self.commit_id

    @property
    def line(self) -> str:
        """The list's Line column: the NETCONF session that committed (``agent`` for the agent itself)."""
        return "agent" if self.session_id in ("", "0") else f"session {self.session_id}"

    @property
    def client(self) -> str:
        return _CLIENT.get(self.kind, self.kind)


def commits_of(data: etree._Element) -> list[CommitView]:
    """The commits in a <get> of /commit-history, newest first (as the router lists them). Raises nothing."""
    commits = [CommitView.from_element(e) for e in data.iterfind(f"{_s('commit-history')}/{_s('commit')}")]
    return sorted(commits, key=lambda c: int(c.commit_id) if c.commit_id.isdigit() else 0, reverse=True)


def list_time(value: str) -> str:
    """A yang:date-and-time as the commit list prints it (UTC): ``Sun Nov  3 05:47:53 2024``.

    Returns the value unchanged if it is not a date-and-time. Raises nothing.
    """
    utc = parse_date_time(value)
    if utc is None:
        return value
    return f"{DAYS[utc.weekday()]} {MONTHS[utc.month - 1]} {utc.day:>2} {utc:%H:%M:%S} {utc.year:04d}"


# --------------------------------------------------------------------------- the list

_COLUMNS = (("SNo.", 5), ("Label/ID", 22), ("User", 10), ("Line", 20), ("Client", 12), ("Time Stamp", 0))


def _row(cells: Sequence[str]) -> str:
    """Cells in the list's columns; a cell longer than its column pushes the rest right (one space)."""
    line = ""
    for (_, width), cell in zip(_COLUMNS, cells, strict=True):
        line += f"{cell:<{width - 1}} " if width else cell
    return line.rstrip()


def render_commit_list(commits: Sequence[CommitView]) -> list[str]:
    """``show configuration commit list``: the table, one row per commit in the order given. Raises nothing."""
    lines = [_row([title for title, _ in _COLUMNS]), _row(["~" * len(title) for title, _ in _COLUMNS])]
    for number, commit in enumerate(commits, 1):
        lines.append(_row([str(number), commit.name, commit.user, commit.line, commit.client,
                           list_time(commit.timestamp)]))
    return lines


def render_commit_detail(commits: Sequence[CommitView]) -> list[str]:
    """``show configuration commit list detail``: one block per commit, blank lines between. Raises nothing."""
    lines: list[str] = []
    for number, commit in enumerate(commits, 1):
        if lines:
            lines.append("")
        head = f"{number:>4}) "
        pad = " " * len(head)
        lines += [
            f"{head}{'CommitId: ' + commit.commit_id:<37}Label: {commit.label or 'NONE'}",
            f"{pad}{'UserId:   ' + commit.user:<37}Line:  {commit.line}",
            f"{pad}{'Client:   ' + commit.client:<37}Time:  {list_time(commit.timestamp)}",
            f"{pad}Comment:  {commit.comment or 'NONE'}",
        ]
    return lines


# --------------------------------------------------------------------------- the changes


@dataclass(frozen=True)
class Step:
    """One node of an instance-identifier: ``prefix:name`` and its key predicates (``.`` for a leaf-list)."""

    prefix: str
    name: str
    keys: tuple[tuple[str, str], ...] = ()


def _literal(text: str, index: int) -> tuple[str, int]:
    """An XPath string literal (quoted, or ``concat(...)`` of quoted parts) at ``index``; (value, next index).

    Raises ValueError if there is none.
    """
    if text.startswith("concat(", index):
        index += len("concat(")
        parts: list[str] = []
        while True:
            while index < len(text) and text[index] in " ,":
                index += 1
            if index < len(text) and text[index] == ")":
                return "".join(parts), index + 1
            part, index = _literal(text, index)
            parts.append(part)
    if index >= len(text) or text[index] not in "'\"":
        raise ValueError(f"no string literal at {index}")
    end = text.find(text[index], index + 1)
    if end < 0:
        raise ValueError("unterminated string literal")
    return text[index + 1 : end], end + 1


def _local(qualified: str) -> tuple[str, str]:
    prefix, _, name = qualified.rpartition(":")
    return prefix, name


def parse_instance_identifier(path: str) -> list[Step]:
    """The steps of a prefixed instance-identifier such as ``/crypto:crypto/crypto:ca/crypto:trustpoint[crypto:name='x']``.

    Raises ValueError if ``path`` is not one.
    """
    steps: list[Step] = []
    index = 0
    while index < len(path):
        if path[index] != "/":
            raise ValueError(f"expected '/' at {index}")
        end = index + 1
        while end < len(path) and path[end] not in "/[":
            end += 1
        prefix, name = _local(path[index + 1 : end])
        if not name:
            raise ValueError(f"empty node name at {index}")
        keys: list[tuple[str, str]] = []
        index = end
        while index < len(path) and path[index] == "[":
            equals = path.find("=", index)
            if equals < 0:
                raise ValueError("predicate without '='")
            key = _local(path[index + 1 : equals].strip())[1]
            value, index = _literal(path, equals + 1)
            if index >= len(path) or path[index] != "]":
                raise ValueError("unterminated predicate")
            keys.append((key, value))
            index += 1
        steps.append(Step(prefix, name, tuple(keys)))
    return steps


# The CLI's words for a node, where they are not the node's name (by the names on its path, keys left out).
_WORDS: dict[tuple[str, ...], str] = {
    ("aaa", "user"): "username",
    ("aaa", "user", "password-hash"): "secret",
    ("crypto", "ca", "trustpoint", "query-url"): "query url",
    ("crypto", "ca", "trustpoint", "crl-optional"): "crl optional",
    ("crypto", "ca", "trustpool", "policy", "cabundle-url"): "cabundle url",
    ("crypto", "ca", "trustpool", "policy", "crl-optional"): "crl optional",
    ("logging", "buffered", "size"): "",
    ("snmp-server", "host", "port"): "udp-port",
}
_HIDDEN_WORDS = {("aaa",)}  # containers that have no word of their own in the CLI
_SUBMODES = {("crypto", "ca", "trustpoint"), ("crypto", "ca", "trustpool", "policy"), ("aaa", "user")}
_SECRETS = {("aaa", "user", "password-hash")}  # never recorded with a value
_CLI_MODULES = ("sys", "crypto")  # the modules whose configuration the CLI has commands for


@dataclass(frozen=True)
class ChangeLine:
    """One change as configuration: the submode header it belongs under (None at the top) and its words."""

    context: str | None
    words: str
    """The node's words (``enrollment url``, ``hostname``, ``crypto ca trustpoint myca``)."""
    kind: str
    """``leaf`` (words + value), ``entry`` (a list entry: the words alone), ``submode`` (a list entry or
    container that opens a submode: its header), ``container`` (a coarse record: no detail below it is
    known) or ``raw`` (an instance-identifier: the CLI has no syntax for it)."""
    secret: bool = False


def _words(steps: Sequence[Step]) -> str:
    words: list[str] = []
    names: tuple[str, ...] = ()
    for step in steps:
        names += (step.name,)
        if names in _HIDDEN_WORDS:
            continue
        word = _WORDS.get(names, step.name)
        if word:
            words.append(word)
        words.extend(value for key, value in step.keys if key != ".")
    return " ".join(words)


def classify_change(change: ChangeView) -> ChangeLine:
    """Where a change goes in the configuration and what its words are. Raises nothing."""
    try:
        steps = parse_instance_identifier(change.target)
    except ValueError:
        steps = []
    has_value = change.new_value is not None or change.old_value is not None
    if not steps or any(step.prefix not in _CLI_MODULES for step in steps):
        return ChangeLine(None, change.target, "raw" if has_value else "container")
    names = tuple(step.name for step in steps)
    secret = names in _SECRETS
    if has_value or secret:
        kind = "leaf"
    elif names in _SUBMODES:
        kind = "submode"
    else:
        kind = "entry" if steps[-1].keys else "container"
    for size in range(len(steps) - 1, 0, -1):
        if names[:size] in _SUBMODES:
            context = _words(steps[:size])
            return ChangeLine(context, _words(steps)[len(context) :].strip(), kind, secret)
    return ChangeLine(None, _words(steps), kind, secret)


def _with_value(line: ChangeLine, value: str | None) -> str:
    if line.kind not in ("leaf", "raw"):
        return line.words
    if line.secret and value is None:
        return f"{line.words} <not shown>"
    return f"{line.words} {value}" if value else line.words


def _comment(change: ChangeView, line: ChangeLine) -> str:
    verb = {"create": "created", "delete": "deleted"}.get(change.operation, "changed")
    return f"!! {line.words or change.target}: {verb}"


def _signed(change: ChangeView, line: ChangeLine) -> list[tuple[str, str]]:
    """The change as (sign, text) pairs: ``-`` what went, ``+`` what came."""
    old, new = _with_value(line, change.old_value), _with_value(line, change.new_value)
    if change.operation == "delete":
        return [("-", old)]
    if change.operation == "create":
        return [("+", new)]
    return [("-", old), ("+", new)]


def change_lines(changes: Iterable[ChangeView], diff: bool = False) -> list[str]:
    """The changes as configuration lines, each submode's lines under its header and closed by ``!``.

    Deleted nodes print as their ``no`` form. With ``diff``, as ``+``/``-``
    lines with the old and new values, the header of a submode whose lines
    changed marked ``#`` (``+`` if it was created). Raises nothing.
    """
    lines: list[str] = []
    context: str | None = None

    def enter(header: str | None, sign: str = "#") -> None:
        nonlocal context
        if header == context:
            return
        if context is not None:
            lines.append("  !" if diff else "!")
        if header is not None:
            lines.append(f"{sign} {header}" if diff else header)
        context = header

    changes = list(changes)
    deleted: str | None = None  # the last deletion printed: changes inside it follow it at once
    for index, change in enumerate(changes):
        if deleted is not None and change.target.startswith(deleted + "/"):
            continue  # inside a node whose deletion is printed already ('no ...': records made before
            # deletions were recorded once list what the node held)
        line = classify_change(change)
        following = changes[index + 1].target if index + 1 < len(changes) else ""
        detailed = following.startswith(change.target + "/")
        deleted = change.target if change.operation == "delete" else None
        if change.operation != "delete" and line.kind in ("container", "raw") and detailed and change.new_value is None:
            continue  # created together with the leaves that follow: they say it all
        if line.kind == "submode" and change.operation != "delete":
            enter(line.words, "+" if change.operation == "create" else "#")
            continue
        enter(line.context)
        indent = " " if context is not None else ""
        if line.kind == "container":
            lines.append(indent + _comment(change, line))
        elif diff:
            lines += [f"{sign} {indent}{text}" for sign, text in _signed(change, line)]
        elif change.operation == "delete":
            lines.append(f"{indent}no {line.words}")
        else:
            lines.append(indent + _with_value(line, change.new_value))
    enter(None)
    return lines


def render_commit_changes(commits: Sequence[CommitView], diff: bool = False) -> list[str]:
    """``show configuration commit changes ID|last N [diff]``: the changes of ``commits`` (oldest first).

    Raises nothing.
    """
    changes = [change for commit in commits for change in commit.changes]
    return ["Building configuration...", *change_lines(changes, diff), "end"]
