"""The interactive shell: prompt_toolkit with history, Tab completion and router-style ``?`` help.

``?`` anywhere on the line lists what may be typed at that point (``show ?``,
``sh?``) and keeps the line for editing, as on the router; Ctrl-V ``?``
inserts a literal question mark. When the agent drops the session, the shell
says so at once, without waiting for the next command.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from pathlib import Path

from prompt_toolkit import PromptSession
from prompt_toolkit.application import get_app_or_none, run_in_terminal
from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document
from prompt_toolkit.history import FileHistory, History, InMemoryHistory
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent

from agent.cli.client import ConnectionLost
from agent.cli.session import CliSession, ExitCli

__all__ = ["run_shell", "default_history"]


class _GrammarCompleter(Completer):
    def __init__(self, session: CliSession) -> None:
        self.session = session

    def get_completions(self, document: Document, complete_event: CompleteEvent) -> Iterable[Completion]:
        text = document.text_before_cursor
        partial = "" if not text or text[-1].isspace() else text.split()[-1]
        for word in self.session.completions(text):
            yield Completion(word + " ", start_position=-len(partial), display=word)


def default_history() -> History:
    """History in ``$CA_CLI_HISTORY`` or ``~/.ca_cli_history``; in memory if that file cannot be used."""
    path = Path(os.environ.get("CA_CLI_HISTORY") or Path.home() / ".ca_cli_history")
    try:
        path.touch(mode=0o600, exist_ok=True)
        return FileHistory(str(path))
    except OSError:
        return InMemoryHistory()


def _bindings(session: CliSession) -> KeyBindings:
    bindings = KeyBindings()

    @bindings.add("?")
    def _help(event: KeyPressEvent) -> None:
        text = event.current_buffer.document.text_before_cursor
        prompt = session.prompt
        lines = session.help_lines(text)

        def show() -> None:
            print(prompt + text + "?")
            print("\n".join(lines), flush=True)

        run_in_terminal(show)

    return bindings


def _watch_connection(session: CliSession, lost: threading.Event) -> None:
    """Stop the prompt when the agent closes the session (a daemon thread waits for it)."""

    def watch() -> None:
        session.client.wait_closed()
        lost.set()
        app = get_app_or_none()
        if app is not None and app.is_running and app.loop is not None:
            app.loop.call_soon_threadsafe(lambda: app.exit(exception=EOFError()) if app.is_running else None)

    threading.Thread(target=watch, name="ca-cli-connection-watch", daemon=True).start()


def run_shell(session: CliSession, history: History | None = None) -> None:
    """Read and run commands until ``exit`` or end of input.

    Raises ConnectionLost when the agent drops the session.
    """
    prompt_session: PromptSession[str] = PromptSession(
        history=history if history is not None else InMemoryHistory(),
        completer=_GrammarCompleter(session),
        complete_while_typing=False,
        key_bindings=_bindings(session),
    )
    lost = threading.Event()
    _watch_connection(session, lost)
    while True:
        try:
            line = prompt_session.prompt(session.prompt)
        except KeyboardInterrupt:
            continue
        except EOFError:
            if lost.is_set():
                raise ConnectionLost(f"Connection to {session.client.where} closed by foreign host") from None
            return
        try:
            session.execute(line)
        except ExitCli:
            return
