"""A router-style command grammar: keyword trees, unique-prefix abbreviation, `?` help, Tab completion.

Pure logic, no I/O. A command language is a tree of :class:`Node` objects
(keywords and arguments); :func:`parse` walks one line through it the way
IOS XR does: a keyword may be abbreviated to any unique prefix (``show runn``),
an exact match wins over prefixes (``rsa`` vs ``rsakeypair``), keywords win
over arguments, and errors say *where* the line went wrong so the caller can
put the ``^`` marker under it.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

__all__ = [
    "Node",
    "Kind",
    "Token",
    "Parsed",
    "ParseError",
    "ErrorKind",
    "tokenize",
    "parse",
    "help_entries",
    "format_help",
    "completions",
    "keyword",
    "argument",
    "rest_of_line",
    "integer_range",
    "ValueSource",
]


class Kind(enum.Enum):
    KEYWORD = "keyword"
    ARGUMENT = "argument"  # one word
    REST = "rest"  # the rest of the line, spaces included


@dataclass(eq=False)
class Node:
    """One position of the grammar: a keyword or an argument, with what may follow it."""

    word: str
    """The keyword, or the placeholder shown in help (``WORD``, ``<1-60>``, ``LINE``)."""
    help: str
    kind: Kind = Kind.KEYWORD
    name: str | None = None
    """Where the matched word is stored in :attr:`Parsed.args` (arguments, and keywords that set a flag)."""
    children: list[Node] = field(default_factory=list)
    action: str | None = None
    """The command a line may end with here (None: the line is incomplete here)."""
    hidden: bool = False
    """Hidden keywords match only when typed in full and are not offered in help or completion."""
    check: Callable[[str], bool] | None = None
    """For arguments: whether a word is acceptable (None: any word)."""
    values: str | None = None
    """For arguments: the name of a set of values known only at run time (e.g. the commit ids), which
    ``?`` and Tab offer through the caller's :data:`ValueSource`."""


def keyword(
    word: str,
    help_text: str,
    *children: Node,
    action: str | None = None,
    name: str | None = None,
    hidden: bool = False,
) -> Node:
    """A keyword node. Raises nothing."""
    return Node(word, help_text, Kind.KEYWORD, name, list(children), action, hidden)


def argument(
    placeholder: str,
    help_text: str,
    name: str,
    *children: Node,
    action: str | None = None,
    check: Callable[[str], bool] | None = None,
    values: str | None = None,
) -> Node:
    """A one-word argument node (``values``: see :attr:`Node.values`). Raises nothing."""
    return Node(placeholder, help_text, Kind.ARGUMENT, name, list(children), action, False, check, values)


def rest_of_line(placeholder: str, help_text: str, name: str, *, action: str) -> Node:
    """An argument that takes the rest of the line (spaces included). Raises nothing."""
    return Node(placeholder, help_text, Kind.REST, name, [], action)


def integer_range(low: int, high: int) -> Callable[[str], bool]:
    """A check accepting decimal integers in ``low..high``. Raises nothing."""

    def check(word: str) -> bool:
        return word.isdigit() and low <= int(word) <= high

    return check


@dataclass(frozen=True)
class Token:
    text: str
    start: int


@dataclass(frozen=True)
class Parsed:
    """A complete command: which action, with which arguments."""

    action: str
    args: dict[str, str]
    end: Node
    positions: dict[str, int] = field(default_factory=dict)
    """Offset in the line of each argument's word."""


class ErrorKind(enum.Enum):
    INVALID = "invalid"
    INCOMPLETE = "incomplete"
    AMBIGUOUS = "ambiguous"


@dataclass
class ParseError(Exception):
    """A line the grammar does not accept; ``position`` is the offset of the offending word."""

    kind: ErrorKind
    position: int
    word: str = ""

    def __str__(self) -> str:
        return self.message

    @property
    def message(self) -> str:
        """The router's error line."""
        if self.kind is ErrorKind.INCOMPLETE:
            return "% Incomplete command."
        if self.kind is ErrorKind.AMBIGUOUS:
            return f'% Ambiguous command: "{self.word}"'
        return "% Invalid input detected at '^' marker."


ValueSource = Callable[[str], Sequence[tuple[str, str]]]
"""Given a :attr:`Node.values` name, the (value, help) pairs to offer now; it must not raise."""

_WORD = re.compile(r"\S+")


def tokenize(line: str) -> list[Token]:
    """Split a line into words with their offsets. Raises nothing."""
    return [Token(m.group(), m.start()) for m in _WORD.finditer(line)]


def _match(children: Sequence[Node], word: str) -> list[Node]:
    """The children a word may stand for: an exact keyword, else unique keyword prefixes, else arguments."""
    lowered = word.lower()
    exact = [c for c in children if c.kind is Kind.KEYWORD and c.word == lowered]
    if exact:
        return exact[:1]
    prefixed = [c for c in children if c.kind is Kind.KEYWORD and not c.hidden and c.word.startswith(lowered)]
    if prefixed:
        return prefixed
    return [c for c in children if c.kind is not Kind.KEYWORD and (c.check is None or c.check(word))]


def _walk(
    root: Sequence[Node], line: str, tokens: Sequence[Token], positions: dict[str, int] | None = None
) -> tuple[Node | None, dict[str, str]]:
    """Follow complete tokens from the root; returns (last node, args), recording argument offsets in ``positions``.

    Raises ParseError for an invalid or ambiguous word.
    """
    children: Sequence[Node] = root
    node: Node | None = None
    args: dict[str, str] = {}
    positions = {} if positions is None else positions
    index = 0
    while index < len(tokens):
        token = tokens[index]
        matches = _match(children, token.text)
        if not matches:
            raise ParseError(ErrorKind.INVALID, token.start, token.text)
        if len(matches) > 1 and matches[0].kind is Kind.KEYWORD:
            raise ParseError(ErrorKind.AMBIGUOUS, token.start, token.text)
        node = matches[0]
        if node.kind is Kind.REST:
            args[node.name or node.word] = line[token.start :].rstrip()
            positions[node.name or node.word] = token.start
            return node, args
        if node.name is not None:
            args[node.name] = token.text if node.kind is Kind.ARGUMENT else node.word
            positions[node.name] = token.start
        children = node.children
        index += 1
    return node, args


def parse(root: Sequence[Node], line: str) -> Parsed:
    """Parse one command line.

    Raises ParseError: INVALID (with the offset of the word to mark),
    AMBIGUOUS (a prefix of several keywords) or INCOMPLETE (the line stops
    where no command ends).
    """
    tokens = tokenize(line)
    positions: dict[str, int] = {}
    node, args = _walk(root, line, tokens, positions)
    if node is None or node.action is None:
        raise ParseError(ErrorKind.INCOMPLETE, len(line.rstrip()))
    return Parsed(node.action, args, node, positions)


def _visible(children: Iterable[Node]) -> list[Node]:
    return [c for c in children if not c.hidden]


def help_entries(root: Sequence[Node], text: str, values: ValueSource | None = None) -> list[tuple[str, str]]:
    """What ``?`` lists after ``text``: (word, help) pairs, ``<cr>`` when a command may end there.

    ``show ?`` lists what may follow ``show``; ``sh?`` lists the keywords
    starting with ``sh``; an argument with run-time values is followed by
    those (from ``values``) that start with the word typed. Raises
    ParseError when ``text`` itself is invalid.
    """
    tokens = tokenize(text)
    partial = ""
    if tokens and not text[-1:].isspace():
        partial = tokens[-1].text.lower()
        tokens = tokens[:-1]
    node, _ = _walk(root, text, tokens)
    if node is not None and node.kind is Kind.REST:
        return [("<cr>", "")]
    children = root if node is None else node.children
    entries: list[tuple[str, str]] = []
    for child in sorted(_visible(children), key=lambda c: (c.kind is not Kind.KEYWORD, c.word)):
        if child.kind is Kind.KEYWORD:
            if child.word.startswith(partial):
                entries.append((child.word, child.help))
        else:
            if not partial or child.check is None or child.check(partial):
                entries.append((child.word, child.help))
            entries.extend(_values_of(child, partial, values))
    if not partial and node is not None and node.action is not None:
        entries.append(("<cr>", ""))
    return entries


def format_help(entries: Sequence[tuple[str, str]]) -> list[str]:
    """Help lines as the router aligns them: two spaces, the word padded, its help. Raises nothing."""
    if not entries:
        return []
    width = max(len(word) for word, _ in entries)
    return [f"  {word:<{width}}  {text}".rstrip() for word, text in entries]


def _values_of(node: Node, partial: str, values: ValueSource | None) -> list[tuple[str, str]]:
    if node.values is None or values is None:
        return []
    return [(value, text) for value, text in values(node.values) if value.lower().startswith(partial)]


def completions(root: Sequence[Node], text: str, values: ValueSource | None = None) -> list[str]:
    """Keywords (and run-time values, see :func:`help_entries`) completing the last (partial) word of ``text``.

    Empty if the text is invalid. Raises nothing.
    """
    tokens = tokenize(text)
    partial = ""
    if tokens and not text[-1:].isspace():
        partial = tokens[-1].text.lower()
        tokens = tokens[:-1]
    try:
        node, _ = _walk(root, text, tokens)
    except ParseError:
        return []
    children = root if node is None else node.children
    words = [c.word for c in _visible(children) if c.kind is Kind.KEYWORD and c.word.startswith(partial)]
    for child in children:
        if child.kind is Kind.ARGUMENT:
            words.extend(value for value, _ in _values_of(child, partial, values))
    return words
