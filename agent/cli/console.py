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
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol, TextIO

__all__ = ["Console", "TerminalConsole", "StreamConsole"]


class Console(Protocol):
    echoes_commands: bool
    """True when a command line is already on screen after the prompt when it runs."""

    def write(self, text: str) -> None:
        """Write output as is (the caller adds newlines)."""

    def capture(self) -> AbstractContextManager[list[str]]:
        """Hold back what is written inside the ``with`` block; the list it gives holds the text written."""

    def ask(self, prompt: str) -> str | None:
        """Show ``prompt`` and read one answer line; None at the end of input."""

    def ask_secret(self, prompt: str) -> str | None:
        """Like :meth:`ask`, without echoing the answer."""


class _Output:
    """Writing, with captures: the output modifiers (``| include ...``) filter a show command's output,
    whichever module writes it, by capturing everything written while the command runs."""

    def __init__(self, out: TextIO | None) -> None:
        self.out = out or sys.stdout
        self._captures: list[list[str]] = []

    def write(self, text: str) -> None:
        if self._captures:
            self._captures[-1].append(text)
            return
        self.out.write(text)
        self.out.flush()

    @contextmanager
    def capture(self) -> Iterator[list[str]]:
        captured: list[str] = []
        self._captures.append(captured)
        try:
            yield captured
        finally:
            self._captures.remove(captured)


class TerminalConsole(_Output):
    """A person at a terminal: stdin is a tty."""

    def __init__(self, out: TextIO | None = None, *, echoes_commands: bool = True) -> None:
        super().__init__(out)
        self.echoes_commands = echoes_commands

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


class StreamConsole(_Output):
    """Answers (and commands) from a stream of lines, echoed after their prompts."""

    def __init__(self, lines: Iterator[str], out: TextIO | None = None, *, echoes_commands: bool = True) -> None:
        super().__init__(out)
        self.lines = lines
        self.echoes_commands = echoes_commands

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
