"""Output modifiers of the show commands: ``| include REGEX``, ``| exclude REGEX``, ``| begin REGEX``, ``| count``.

Pure logic, no I/O. A show command line may end with any number of
modifiers, each after a ``|`` word, applied left to right::

    show running-config | begin crypto | exclude retry | count

Modifier keywords abbreviate like every keyword (``| i trustpoint``); the
regular expression is the rest of its segment (Python ``re`` syntax, searched
anywhere in a line, as the router's ``include`` does).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from agent.cli.grammar import (
    ErrorKind,
    Node,
    ParseError,
    completions,
    help_entries,
    keyword,
    parse,
    rest_of_line,
    tokenize,
)

__all__ = [
    "PIPE",
    "PIPE_HELP",
    "OutputModifier",
    "split_pipe",
    "parse_modifiers",
    "modifier_help",
    "modifier_completions",
    "apply_modifiers",
]

PIPE = "|"
PIPE_HELP = (PIPE, "Output modifiers")


def _regex(action: str, text: str) -> Node:
    return rest_of_line("LINE", text, "regex", action=action)


_MODIFIERS: list[Node] = [
    keyword("begin", "Begin with the line that matches", _regex("begin", "Regular expression")),
    keyword("count", "Count the lines of the output (that match)",
            _regex("count", "Regular expression (count only the lines that match)"), action="count"),
    keyword("exclude", "Exclude lines that match", _regex("exclude", "Regular expression")),
    keyword("include", "Include only the lines that match", _regex("include", "Regular expression")),
]


@dataclass(frozen=True)
class OutputModifier:
    """One ``| KEYWORD [REGEX]`` of a show command."""

    action: str
    """``begin``, ``count``, ``exclude`` or ``include``."""
    pattern: re.Pattern[str] | None


def split_pipe(line: str) -> tuple[str, str | None]:
    """Split a line at its first ``|`` word: (command, the rest from the ``|`` on), or (line, None).

    A ``|`` inside a word (``a|b``) does not split. Raises nothing.
    """
    for token in tokenize(line):
        if token.text == PIPE:
            return line[: token.start], line[token.start :]
    return line, None


def _segments(text: str, offset: int) -> list[tuple[str, int]]:
    """The parts of ``| a | b`` after each ``|`` word, with their offsets in the whole line."""
    starts = [t.start for t in tokenize(text) if t.text == PIPE]
    segments = []
    for index, start in enumerate(starts):
        end = starts[index + 1] if index + 1 < len(starts) else len(text)
        segments.append((text[start + 1 : end], offset + start + 1))
    return segments


def parse_modifiers(text: str, offset: int = 0) -> list[OutputModifier]:
    """The modifiers in ``text`` (starting with ``|``), which begins at ``offset`` of the command line.

    Raises ParseError (positions in the whole line): an unknown or missing
    modifier, a missing or invalid regular expression (INVALID, under its
    first character).
    """
    modifiers: list[OutputModifier] = []
    for segment, start in _segments(text, offset):
        try:
            parsed = parse(_MODIFIERS, segment)
        except ParseError as error:
            raise ParseError(error.kind, error.position + start, error.word) from None
        source = parsed.args.get("regex")
        pattern = None
        if source is not None:
            try:
                pattern = re.compile(source)
            except re.error:
                raise ParseError(ErrorKind.INVALID, parsed.positions["regex"] + start, source) from None
        elif parsed.action != "count":
            raise ParseError(ErrorKind.INCOMPLETE, start + len(segment.rstrip()))
        modifiers.append(OutputModifier(parsed.action, pattern))
    return modifiers


def modifier_help(text: str) -> list[tuple[str, str]]:
    """What ``?`` lists in the modifier part of a line (``text`` starts with ``|``).

    Raises ParseError when an earlier word is invalid.
    """
    segments = _segments(text, 0)
    return help_entries(_MODIFIERS, segments[-1][0] if segments else "")


def modifier_completions(text: str) -> list[str]:
    """Keywords completing the last word of the modifier part (``text`` starts with ``|``). Raises nothing."""
    segments = _segments(text, 0)
    return completions(_MODIFIERS, segments[-1][0] if segments else "")


def apply_modifiers(modifiers: Sequence[OutputModifier], lines: list[str]) -> list[str]:
    """Filter a show command's output lines through ``modifiers``, in order. Raises nothing."""
    for modifier in modifiers:
        pattern = modifier.pattern
        if modifier.action == "include" and pattern is not None:
            lines = [line for line in lines if pattern.search(line)]
        elif modifier.action == "exclude" and pattern is not None:
            lines = [line for line in lines if not pattern.search(line)]
        elif modifier.action == "begin" and pattern is not None:
            first = next((i for i, line in enumerate(lines) if pattern.search(line)), len(lines))
            lines = lines[first:]
        elif modifier.action == "count":
            matching = [line for line in lines if pattern is None or pattern.search(line)]
            lines = [f"Number of lines which match regexp = {len(matching)}"]
    return lines
