"""Helpers of the ca-cli end-to-end tests: the CLI in a pseudo-terminal (pexpect) or one-shot."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pexpect

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "unit" / "cli"))  # cli_seed_text

from agentproc import ADMIN_PASSWORD, AgentProcess  # noqa: E402

REPO = Path(__file__).resolve().parents[3]
CHALLENGE = "lab-challenge"
FAST = ["--retry-period-unit", "0.2"]  # one 'minute' of enrollment retry period = 0.2 s
ANSI = re.compile(r"\x1b(?:\[[0-9;?]*[ -/]*[@-~]|[()][A-Za-z0-9]|[=>])")
PROMPT = re.compile(r"RP/0/RP0/CPU0:[^\s#]*#")
PROMPT_STARTS = "\x1b[?2004h"  # prompt_toolkit turns bracketed paste on as each prompt starts...
PROMPT_ENDS = "\x1b[?2004l"  # ...and off when the line is accepted


def clean(text: str) -> str:
    return ANSI.sub("", text).replace("\r", "")


def cli_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ, CA_AGENT_PASSWORD=ADMIN_PASSWORD, TERM="xterm", PROMPT_TOOLKIT_NO_CPR="1",
               CA_CLI_HISTORY=str(tmp_path / "cli-history"), PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


class Cli:
    """`python -m agent.cli` in a pseudo-terminal, driven like a person would."""

    def __init__(self, agent: AgentProcess, tmp_path: Path, *args: str, cwd: Path = REPO,
                 password: bool = True) -> None:
        """``password=False``: no $CA_AGENT_PASSWORD (the CLI finds it, or asks)."""
        env = cli_env(tmp_path)
        if not password:
            del env["CA_AGENT_PASSWORD"]
        self.child = pexpect.spawn(
            sys.executable, ["-m", "agent.cli", "--port", str(agent.port), *args],
            env=env, cwd=str(cwd), encoding="utf-8", timeout=60, dimensions=(50, 250),
        )
        self.prompt = ""
        self._seen = ""  # output consumed by answer() since the last accepted line
        self.wait_prompt()

    def wait_prompt(self) -> list[str]:
        """Wait for the next prompt; returns the output lines printed since the last accepted line."""
        self.child.expect_exact(PROMPT_STARTS)
        output = clean(self._seen + self.child.before)
        self._seen = ""
        self.child.expect(PROMPT)
        self.prompt = self.child.after
        lines = output.split("\n")
        while lines and not lines[-1]:
            lines.pop()
        return lines

    def send(self, line: str) -> None:
        """Type a command and Enter; returns once the shell accepted it."""
        self.child.sendline(line)
        self.child.expect_exact(PROMPT_ENDS)
        self._seen = ""

    def run(self, line: str) -> list[str]:
        """Run a command without questions; returns its output lines."""
        self.send(line)
        return self.wait_prompt()

    def answer(self, question: str, answer: str) -> None:
        self.child.expect_exact(question)
        self._seen += self.child.before + self.child.after
        self.child.sendline(answer)

    def close(self) -> int | None:
        if self.child.isalive():
            self.child.sendline("exit")
            self.child.expect(pexpect.EOF)
        self.child.close()
        return self.child.exitstatus


def run_cli(agent: AgentProcess, tmp_path: Path, *args: str, stdin: str = "", cwd: Path = REPO,
            **env: str) -> subprocess.CompletedProcess[str]:
    """ca-cli one-shot (stdin not a terminal); returns the finished process. An empty env value unsets it."""
    environment = {k: v for k, v in cli_env(tmp_path, **env).items() if v != ""}
    return subprocess.run(
        [sys.executable, "-m", "agent.cli", "--port", str(agent.port), *args],
        input=stdin, capture_output=True, text=True, timeout=120, cwd=str(cwd), env=environment,
    )
