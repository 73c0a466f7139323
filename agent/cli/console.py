"""Where the CLI writes its output and reads the answers to its questions.

:class:`TerminalConsole` talks to a person at a terminal (answers typed, the
password read without echo); :class:`StreamConsole` reads answers from a
stream of lines (commands and answers piped on stdin) and echoes them so the
output reads like a router session transcript.
"""

from __future__ import annotations

import getpass
import sys
from collections.abc import Iterator
from typing import Protocol, TextIO

__all__ = ["Console", "TerminalConsole", "StreamConsole"]


class Console(Protocol):
    echoes_commands: bool
    """True when a command line is already on screen after the prompt when it runs."""

    def write(self, text: str) -> None:
        """Write output as is (the caller adds newlines)."""

    def ask(self, prompt: str) -> str | None:
        """Show ``prompt`` and read one answer line; None at the end of input."""

    def ask_secret(self, prompt: str) -> str | None:
        """Like :meth:`ask`, without echoing the answer."""


class TerminalConsole:
    """A person at a terminal: stdin is a tty."""

    def __init__(self, out: TextIO | None = None, *, echoes_commands: bool = True) -> None:
        self.out = out or sys.stdout
        self.echoes_commands = echoes_commands

    def write(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()

    def ask(self, prompt: str) -> str | None:
        self.out.flush()
        try:
            return input(prompt)
        except EOFError:
            self.write("\n")
            return None

    def ask_secret(self, prompt: str) -> str | None:
        self.out.flush()
        try:
            return getpass.getpass(prompt)
        except EOFError:
            self.write("\n")
            return None


class StreamConsole:
    """Answers (and commands) from a stream of lines, echoed after their prompts."""

    def __init__(self, lines: Iterator[str], out: TextIO | None = None, *, echoes_commands: bool = True) -> None:
        self.lines = lines
        self.out = out or sys.stdout
        self.echoes_commands = echoes_commands

    def write(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()

    def next_line(self) -> str | None:
        """The next input line without its newline; None at the end."""
        line = next(self.lines, None)
        return None if line is None else line.rstrip("\r\n")

    def ask(self, prompt: str) -> str | None:
        self.write(prompt)
        line = self.next_line()
        self.write("\n" if line is None else line + "\n")
        return line

    def ask_secret(self, prompt: str) -> str | None:
        self.write(prompt)
        line = self.next_line()
        self.write("\n")
        return line
