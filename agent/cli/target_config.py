"""One configuration session's own uncommitted changes (IOS XR's "target configuration").

Each ``ca-cli`` session keeps the configuration commands typed since its last
commit here, in order, rather than in the agent's shared candidate: another
session (or a NETCONF script) never sees them, commits them or discards them.
``commit`` applies them as one locked change of the candidate
(:meth:`agent.cli.client.AgentClient.commit_changes`); ``abort``, ``end``
answered "no" and leaving the CLI just forget them.

Values are still refused as they are typed: each edit is checked by the agent
with ``<edit-config>`` test-only, which changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from lxml import etree

from agent.cli.client import AgentClient

__all__ = ["PendingChange", "TargetConfig"]


@dataclass(frozen=True)
class PendingChange:
    """One configuration command not yet committed."""

    edit: etree._Element
    """The edit-config ``<config>`` that applies it."""
    line: str | None
    """The command as ``show configuration`` prints it (``enrollment url http://ca``); None when the
    command only enters a submode (``crypto ca trustpoint myca``)."""
    context: str | None = None
    """The submode it was typed in, as its header line (``crypto ca trustpoint myca``); None at ``(config)``."""


class TargetConfig:
    """The pending changes of one configuration session."""

    def __init__(self, client: AgentClient) -> None:
        self.client = client
        self._changes: list[PendingChange] = []

    @property
    def changes(self) -> Sequence[PendingChange]:
        """The pending changes, oldest first. Raises nothing."""
        return tuple(self._changes)

    def __bool__(self) -> bool:
        return bool(self._changes)

    def add(self, change: PendingChange) -> None:
        """Check the change's values with the agent, then keep it for the next commit.

        Raises CliError (the agent refused a value: nothing is kept), ConnectionLost.
        """
        self.client.check_edit(change.edit)
        self._changes.append(change)

    def clear(self) -> None:
        """Forget every pending change (``abort``, ``end`` answered no). Raises nothing."""
        self._changes.clear()

    def commit(self, commit: etree._Element | None = None) -> None:
        """Apply the pending changes to the running configuration, then forget them.

        ``commit`` is passed on to :meth:`AgentClient.commit_changes` (a
        ``<commit>`` carrying options). On failure the changes are kept.
        Raises CliError, ConnectionLost.
        """
        self.client.commit_changes([change.edit for change in self._changes], commit)
        self._changes.clear()

    def render(self) -> list[str]:
        """``show configuration``: the pending changes as configuration lines, submodes closed by ``!``.

        Raises nothing.
        """
        lines = ["Building configuration..."]
        context: str | None = None
        for change in self._changes:
            if change.context != context:
                if context is not None:
                    lines.append("!")
                if change.context is not None:
                    lines.append(change.context)
                context = change.context
            if change.line is not None:
                lines.append(f" {change.line}" if context is not None else change.line)
        if context is not None:
            lines.append("!")
        lines.append("end")
        return lines
