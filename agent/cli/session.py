"""One CLI session: the modes (exec, config, config-trustp), configuration editing, show commands.

Configuration commands are this session's own until committed
(:class:`~agent.cli.target_config.TargetConfig`): each is checked by the
agent as it is typed (so a bad value is refused at once, as on the router)
and kept by the CLI; ``commit`` applies them as one locked change;
``show configuration`` lists them; ``end`` asks ``Uncommitted changes found,
commit them? [yes]:`` when there are any; ``abort`` forgets them. Every show
command's output can be filtered (``| include REGEX`` ..., see
:mod:`agent.cli.pipe`). The prompt follows the committed hostname, whoever
changed it. The key and CA commands are in :mod:`agent.cli.pki_commands`,
the commit database (``commit label``, ``show configuration commit ...``,
``rollback configuration``) in :mod:`agent.cli.history_commands`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from lxml import etree

from agent.cli.alert_commands import AlertCommands
from agent.cli.client import AgentClient, CliError, ConnectionLost, commit_element, edit_config_element
from agent.cli.commands import Mode, is_show, tree
from agent.cli.console import Console
from agent.cli.grammar import ErrorKind, Parsed, ParseError, completions, format_help, help_entries, parse
from agent.cli.history_commands import HistoryCommands
from agent.cli.pipe import (
    PIPE_HELP,
    OutputModifier,
    apply_modifiers,
    modifier_completions,
    modifier_help,
    parse_modifiers,
    split_pipe,
)
from agent.cli.pki_commands import PkiCommands
from agent.cli.render import (
    CRYPTO_NS,
    DEFAULT_HOSTNAME,
    SYS_NS,
    render_authentication_keys,
    render_certificates,
    render_mypubkey,
    render_running_config,
)
from agent.cli.target_config import PendingChange, TargetConfig
from agent.cli.trust_commands import TrustCommands

__all__ = ["CliSession", "ExitCli", "PROMPT_PREFIX"]

PROMPT_PREFIX = "RP/0/RP0/CPU0:"


class ExitCli(Exception):
    """``exit`` at the EXEC prompt."""


_YES = ("y", "ye", "yes")
_NO = ("n", "no")

# How 'show configuration' spells a configuration leaf (as 'show running-config' does); others: the path words.
_SYSTEM_WORDS = {("hostname",): "hostname", ("domain", "name"): "domain name"}
_TRUSTPOINT_WORDS = {
    ("enrollment", "url"): "enrollment url",
    ("enrollment", "terminal"): "enrollment terminal",
    ("enrollment", "retry", "period"): "enrollment retry period",
    ("enrollment", "retry", "count"): "enrollment retry count",
    ("query-url",): "query url",
    ("rsakeypair",): "rsakeypair",
    ("subject-name",): "subject-name",
}
_LOCKED = ("lock-denied", "in-use")


class CliSession:
    """The state of one operator's session: the mode, the trustpoint being edited, the hostname for the prompt."""

    def __init__(self, client: AgentClient, console: Console) -> None:
        self.client = client
        self.console = console
        self.mode = Mode.EXEC
        self.trustpoint: str | None = None
        self.hostname = DEFAULT_HOSTNAME
        self.target = TargetConfig(client)
        self.pki = PkiCommands(client, console)
        self._handlers: dict[str, Callable[[Parsed], None]] = {
            "configure": lambda p: self._enter(Mode.CONFIG),
            "exit": self._exit,
            "end": lambda p: self._end(),
            "abort": lambda p: self._abort(),
            "commit": lambda p: self._commit(p.args.get("label"), p.args.get("comment")),
            "show-running": self._show_running,
            "show-configuration": lambda p: self._write_lines(self.target.render()),
            "show-mypubkey": self._show_mypubkey,
            "show-authkeys": self._show_authkeys,
            "show-certificates": self._show_certificates,
            "hostname": lambda p: self._set_system(("hostname",), p),
            "no-hostname": lambda p: self._unset_system(("hostname",)),
            "domain": lambda p: self._set_system(("domain", "name"), p),
            "no-domain": lambda p: self._unset_system(("domain", "name")),
            "trustpoint": self._trustpoint,
            "no-trustpoint": self._no_trustpoint,
            "enrollment-url": lambda p: self._set_tp(("enrollment", "url"), p),
            "no-enrollment-url": lambda p: self._unset_tp(("enrollment", "url")),
            "enrollment-terminal": lambda p: self._set_tp(("enrollment", "terminal"), None),
            "no-enrollment-terminal": lambda p: self._unset_tp(("enrollment", "terminal")),
            "retry-period": lambda p: self._set_tp(("enrollment", "retry", "period"), p),
            "no-retry-period": lambda p: self._unset_tp(("enrollment", "retry", "period")),
            "retry-count": lambda p: self._set_tp(("enrollment", "retry", "count"), p),
            "no-retry-count": lambda p: self._unset_tp(("enrollment", "retry", "count")),
            "query-url": lambda p: self._set_tp(("query-url",), p),
            "no-query-url": lambda p: self._unset_tp(("query-url",)),
            "rsakeypair": lambda p: self._set_tp(("rsakeypair",), p),
            "no-rsakeypair": lambda p: self._unset_tp(("rsakeypair",)),
            "subject-name": lambda p: self._set_tp(("subject-name",), p),
            "no-subject-name": lambda p: self._unset_tp(("subject-name",)),
            "key-generate": lambda p: self.pki.key_generate(p.args.get("type"), p.args.get("label")),
            "key-zeroize": lambda p: self.pki.key_zeroize(p.args.get("label")),
            "key-import": lambda p: self.pki.key_import(p.args.get("type"), p.args.get("label")),
            "ca-authenticate": lambda p: self.pki.ca_authenticate(p.args["trustpoint"]),
            "ca-enroll": lambda p: self.pki.ca_enroll(p.args["trustpoint"]),
            "ca-cancel-enroll": lambda p: self.pki.ca_cancel_enroll(p.args["trustpoint"]),
            "ca-import": lambda p: self.pki.ca_import(p.args["trustpoint"]),
            "ca-clear": lambda p: self.pki.ca_clear(p.args.get("trustpoint")),
        }
        self.current_line = ""  # the command being executed, as typed (staged config shows it)
        self._handlers.update(TrustCommands(client, console, self).handlers())
        self._handlers.update(AlertCommands(client, console, self).handlers())
        self.history = HistoryCommands(client, console)
        self._handlers.update(self.history.handlers())

    # ------------------------------------------------------------------ prompt, help, completion

    @property
    def prompt(self) -> str:
        """``RP/0/RP0/CPU0:router#``, ``...(config)#``, ``...(config-trustp)#``."""
        suffix = "" if self.mode is Mode.EXEC else f"({self.mode.value})"
        return f"{PROMPT_PREFIX}{self.hostname}{suffix}#"

    def refresh_hostname(self) -> None:
        """Read the committed hostname for the prompt. Raises CliError, ConnectionLost."""
        self.hostname = self.client.hostname()

    def _follow_hostname(self) -> None:
        """Keep the prompt on the committed hostname, which another session may have changed."""
        try:
            self.refresh_hostname()
        except CliError:
            pass  # the prompt keeps the last name known

    def _trees(self) -> list[Mode]:
        # In a submode, a command of the parent mode also works (and leaves the submode), as on the router.
        return [self.mode, Mode.CONFIG] if self.mode in (Mode.TRUSTPOINT, Mode.TRUSTPOOL) else [self.mode]

    def _is_show(self, text: str) -> bool:
        """Whether ``text`` is a complete show command of the current mode."""
        try:
            return is_show(parse(tree(self.mode), text).action)
        except ParseError:
            return False

    def help_lines(self, text: str) -> list[str]:
        """What ``?`` shows after ``text`` in the current mode. Raises nothing."""
        command, modifiers = split_pipe(text)
        try:
            if modifiers is not None and self._is_show(command):
                entries = modifier_help(modifiers)
            else:
                entries = help_entries(tree(self.mode), text, self.history.values)
                if ("<cr>", "") in entries and self._is_show(text):
                    entries.insert(entries.index(("<cr>", "")), PIPE_HELP)
        except ParseError as error:
            return [error.message]
        if not entries:
            return ["% Unrecognized command"]
        return format_help(entries)

    def completions(self, text: str) -> list[str]:
        """Keywords completing the last word of ``text`` (Tab). Raises nothing."""
        command, modifiers = split_pipe(text)
        if modifiers is not None and self._is_show(command):
            return modifier_completions(modifiers)
        return completions(tree(self.mode), text, self.history.values)

    # ------------------------------------------------------------------ running one line

    def execute(self, line: str) -> bool:
        """Run one command line; False if it failed (the error is printed as ``% ...``).

        Raises ExitCli for ``exit`` at the EXEC prompt, ConnectionLost when the
        session to the agent is gone.
        """
        try:
            return self._execute(line)
        finally:
            self._follow_hostname()

    def _execute(self, line: str) -> bool:
        stripped = line.strip()
        if not stripped or stripped.startswith("!") or stripped.startswith("#"):
            return True  # blank lines and comments, as in the seed's configuration example
        if stripped.endswith("?"):
            self._write_lines(self.help_lines(line.rstrip()[:-1]))
            return True
        shown_prompt = self.prompt  # what the line was typed after, for the '^' marker
        try:
            parsed, mode, modifiers = self._parse_line(line)
        except ParseError as error:
            self._report(line, error, shown_prompt)
            return False
        if mode is not self.mode:  # a parent-mode command typed in a submode
            self.mode, self.trustpoint = mode, None
        self.current_line = stripped
        try:
            if modifiers:
                self._run_filtered(parsed, modifiers)
            else:
                self._handlers[parsed.action](parsed)
        except CliError as error:
            self._report_cli_error(line, parsed, error, shown_prompt)
            return False
        except KeyboardInterrupt:
            self.console.write("\n% Aborted\n")
            return False
        except (ConnectionLost, ExitCli):
            raise
        except Exception as error:  # noqa: BLE001 - a bug must read like a router error, not a traceback
            self.console.write(f"% Internal error: {type(error).__name__}: {error}\n")
            return False
        return True

    def _parse_line(self, line: str) -> tuple[Parsed, Mode, list[OutputModifier]]:
        """The command, the mode whose grammar took it, and the output modifiers of a show command.

        Raises ParseError.
        """
        command, rest = split_pipe(line)
        if rest is not None:
            try:
                parsed, mode = self._parse(command)
            except ParseError:
                pass  # not a command before the '|': the whole line is judged below
            else:
                if is_show(parsed.action):
                    return parsed, mode, parse_modifiers(rest, len(command))
        parsed, mode = self._parse(line)
        return parsed, mode, []

    def _run_filtered(self, parsed: Parsed, modifiers: list[OutputModifier]) -> None:
        """Run a show command with its output held back, then print what the modifiers keep."""
        with self.console.capture() as captured:
            self._handlers[parsed.action](parsed)
        self._write_lines(apply_modifiers(modifiers, "".join(captured).splitlines()))

    def _parse(self, line: str) -> tuple[Parsed, Mode]:
        best: ParseError | None = None
        for mode in self._trees():
            try:
                return parse(tree(mode), line), mode
            except ParseError as error:
                if best is None or error.position > best.position:
                    best = error
        assert best is not None
        raise best

    def _report(self, line: str, error: ParseError, shown_prompt: str) -> None:
        if error.kind is ErrorKind.INVALID:
            offset = error.position
            if self.console.echoes_commands:
                offset += len(shown_prompt)
            else:
                self.console.write(line.rstrip() + "\n")
            self.console.write(" " * offset + "^\n")
        self.console.write(error.message + "\n")

    def _report_cli_error(self, line: str, parsed: Parsed, error: CliError, shown_prompt: str) -> None:
        position = parsed.positions.get("value")
        if error.tag == "invalid-value" and position is not None and self.mode is not Mode.EXEC:
            self._report(line, ParseError(ErrorKind.INVALID, position), shown_prompt)
        self.console.write(f"% {error.message}\n")

    def _write_lines(self, lines: list[str]) -> None:
        if lines:
            self.console.write("\n".join(lines) + "\n")

    # ------------------------------------------------------------------ modes

    def _enter(self, mode: Mode) -> None:
        self.mode = mode

    def _exit(self, parsed: Parsed) -> None:
        if self.mode is Mode.EXEC:
            raise ExitCli()
        if self.mode in (Mode.TRUSTPOINT, Mode.TRUSTPOOL):
            self.mode, self.trustpoint = Mode.CONFIG, None
            return
        self._end()

    def has_uncommitted_changes(self) -> bool:
        """Whether this session has configuration changes not yet committed. Raises nothing."""
        return bool(self.target)

    def _end(self) -> None:
        if self.target:
            while True:
                answer = self.console.ask("Uncommitted changes found, commit them? [yes]:")
                choice = "cancel" if answer is None else (answer.strip().lower() or "yes")
                if choice in _YES:
                    self._commit_changes()
                    break
                if choice in _NO:
                    self.target.clear()
                    break
                if "cancel".startswith(choice):
                    return  # stay in configuration mode, changes kept
                self.console.write("% Please answer 'yes', 'no' or 'cancel'.\n")
        self.mode, self.trustpoint = Mode.EXEC, None

    def _abort(self) -> None:
        self.target.clear()
        self.mode, self.trustpoint = Mode.EXEC, None

    def _commit(self, label: str | None = None, comment: str | None = None) -> None:
        if not self.target:
            self.console.write("% No configuration changes to commit.\n")
            return
        self._commit_changes(label, comment)

    def _commit_changes(self, label: str | None = None, comment: str | None = None) -> None:
        """Commit this session's changes (``commit label L comment C``: with them in the commit database);
        on failure they are kept. Raises CliError, ConnectionLost.
        """
        try:
            self.target.commit(commit_element(label, comment) if label is not None or comment is not None else None)
        except CliError as error:
            if error.tag in _LOCKED:
                holder = error.holder_session
                who = f"session {holder}" if holder else error.message
                raise CliError(
                    f"Failed to commit: another session holds the configuration ({who}). "
                    "Your changes are kept: 'commit' again once it is released, or 'abort' them.",
                    error.tag,
                ) from error
            raise CliError(f"Failed to commit the configuration changes: {error.message}", error.tag) from error
        self.refresh_hostname()

    def finish(self) -> None:
        """Leaving the CLI: uncommitted changes of this session are discarded, as the router does.

        Raises nothing.
        """
        if self.target:
            self.target.clear()
            self.console.write("% Uncommitted configuration changes were discarded.\n")
        self.mode = Mode.EXEC

    # ------------------------------------------------------------------ configuration edits

    def _stage(self, edit: etree._Element, line: str | None, context: str | None = None) -> None:
        """Keep one configuration command for this session's next commit (the agent checks it first)."""
        self.target.add(PendingChange(edit, line, context))

    def stage_command(self, edit: etree._Element, context: str | None = None, shown: bool = True) -> None:
        """Stage the command being executed (as typed) for this session's next commit.

        ``context`` is the submode line it belongs under in ``show configuration``;
        ``shown`` False stages an edit with no line of its own (entering a submode).
        """
        self._stage(edit, self.current_line if shown else None, context)

    def _set_system(self, path: tuple[str, ...], parsed: Parsed) -> None:
        value = parsed.args["value"]
        words = _SYSTEM_WORDS.get(path, " ".join(path))
        self._stage(edit_config_element(SYS_NS, path, value), f"{words} {value}")

    def _unset_system(self, path: tuple[str, ...]) -> None:
        words = _SYSTEM_WORDS.get(path, " ".join(path))
        self._stage(edit_config_element(SYS_NS, path, operation="remove"), f"no {words}")

    def _tp_path(self, name: str, leaf: tuple[str, ...]) -> list[str | tuple[str, str, str]]:
        return ["crypto", "ca", ("trustpoint", "name", name), *leaf]

    def _trustpoint(self, parsed: Parsed) -> None:
        name = parsed.args["trustpoint"]
        self._stage(edit_config_element(CRYPTO_NS, self._tp_path(name, ())), None, f"crypto ca trustpoint {name}")
        self.mode, self.trustpoint = Mode.TRUSTPOINT, name

    def _no_trustpoint(self, parsed: Parsed) -> None:
        name = parsed.args["trustpoint"]
        path = self._tp_path(name, ())
        self._stage(edit_config_element(CRYPTO_NS, path, operation="remove"), f"no crypto ca trustpoint {name}")

    def _set_tp(self, leaf: tuple[str, ...], parsed: Parsed | None) -> None:
        assert self.trustpoint is not None
        value = None if parsed is None else parsed.args["value"]
        words = _TRUSTPOINT_WORDS.get(leaf, " ".join(leaf))
        edit = edit_config_element(CRYPTO_NS, self._tp_path(self.trustpoint, leaf), value)
        self._stage(edit, words if value is None else f"{words} {value}", f"crypto ca trustpoint {self.trustpoint}")

    def _unset_tp(self, leaf: tuple[str, ...]) -> None:
        assert self.trustpoint is not None
        path = self._tp_path(self.trustpoint, leaf)
        words = _TRUSTPOINT_WORDS.get(leaf, " ".join(leaf))
        edit = edit_config_element(CRYPTO_NS, path, operation="remove")
        self._stage(edit, f"no {words}", f"crypto ca trustpoint {self.trustpoint}")

    # ------------------------------------------------------------------ show

    def _show_running(self, parsed: Parsed) -> None:
        self._write_lines(render_running_config(self.client.running(), parsed.args.get("section")))

    def _show_mypubkey(self, parsed: Parsed) -> None:
        label = parsed.args.get("label")
        lines = render_mypubkey(self.client.state("key"), label)
        if not lines and label is not None:
            raise CliError(f"No RSA key pair named {label}")
        self._write_lines(lines)

    def _show_authkeys(self, parsed: Parsed) -> None:
        label = parsed.args.get("label")
        lines = render_authentication_keys(self.client.state("key"), label)
        if not lines and label is not None:
            raise CliError(f"No authentication key named {label}")
        self._write_lines(lines)

    def _show_certificates(self, parsed: Parsed) -> None:
        name = parsed.args.get("trustpoint")
        lines = render_certificates(self.client.state("ca"), name, now=dt.datetime.now(dt.UTC))
        if not lines and name is not None:
            raise CliError(f"Trustpoint {name} is not configured")
        self._write_lines(lines)
