"""The commit database in ``ca-cli``: its show commands, ``rollback configuration``, ``commit label|comment``.

IOS XR's commands over the agent's ``/commit-history`` state and its
``rollback-configuration`` RPC (ca-agent-system)::

    show configuration commit list [<1-100>] [detail]
    show configuration commit changes {ID | LABEL | last <1-100>} [diff]
    rollback configuration {last <1-99> | to {ID | LABEL}} [label L] [comment TEXT]   (EXEC)
    commit [label L] [comment TEXT]                                                    (configuration modes)

A label stands for the newest commit that has it, wherever an id is taken;
``?`` and Tab offer the ids and labels of the commits kept. ``commit``'s
options go into the ``<commit>`` of the session's locked commit
(:mod:`agent.cli.session`); everything else is a ``<get>`` or the RPC.
:mod:`agent.cli.commands` mounts the grammar, the session the handlers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from agent.cli.client import AgentClient, CliError, ConnectionLost
from agent.cli.console import Console
from agent.cli.grammar import Node, Parsed, argument, integer_range, keyword, rest_of_line
from agent.cli.history_render import (
    CommitView,
    commits_of,
    render_commit_changes,
    render_commit_detail,
    render_commit_list,
)

__all__ = [
    "HistoryCommands",
    "show_nodes",
    "rollback_node",
    "commit_option_nodes",
    "COMMIT_VALUES",
    "LIST_RANGE",
    "ROLLBACK_RANGE",
]

COMMIT_VALUES = "commit"
"""The run-time value set of the commit id arguments (ids and labels of the commits kept)."""
LIST_RANGE = (1, 100)  # the agent keeps the last 100 commits
ROLLBACK_RANGE = (1, 99)  # yang/ca-agent-system.yang: rollback-configuration/last


def _commit_argument(action: str, help_text: str, *children: Node) -> Node:
    return argument("WORD", help_text, "commit", *children, action=action, values=COMMIT_VALUES)


def _count(range_: tuple[int, int], help_text: str, *children: Node, action: str) -> Node:
    low, high = range_
    return argument(f"<{low}-{high}>", help_text, "count", *children, action=action, check=integer_range(low, high))


def show_nodes() -> list[Node]:
    """What follows ``show configuration``: ``commit list ...`` and ``commit changes ...``. Raises nothing."""
    detail = keyword("detail", "Display detailed information of each commit", action="show-commit-list",
                     name="detail")
    diff = keyword("diff", "Show the changes as lines added (+) and removed (-)", action="show-commit-changes",
                   name="diff")
    return [
        keyword(
            "commit",
            "Commit database (the last 100 commits of running)",
            keyword("list", "List the commits, newest first",
                    _count(LIST_RANGE, "Number of commits to list", detail, action="show-commit-list"),
                    detail, action="show-commit-list"),
            keyword("changes", "Show the changes a commit made",
                    keyword("last", "Changes made in the most recent <n> commits",
                            _count(LIST_RANGE, "Number of commits", diff, action="show-commit-changes")),
                    _commit_argument("show-commit-changes", "Commit ID or label", diff)),
        ),
    ]


def _note_options(action: str) -> list[Node]:
    """``[label WORD] [comment LINE]`` (the comment takes the rest of the line, so it comes last)."""
    comment = keyword("comment", "Assign a comment to this commit",
                      rest_of_line("LINE", "Comment text (one line)", "comment", action=action))
    label = keyword("label", "Assign a label to this commit",
                    argument("WORD", "Label (a letter, then letters, digits, '_', '.', '-')", "label", comment,
                             action=action))
    return [comment, label]


def rollback_node() -> Node:
    """``rollback configuration last N | to ID`` (EXEC). Raises nothing."""
    return keyword(
        "rollback",
        "Roll back the configuration to an earlier commit",
        keyword(
            "configuration",
            "Roll back the configuration",
            keyword("last", "Roll back the last <n> commits made",
                    _count(ROLLBACK_RANGE, "Number of commits to roll back", *_note_options("rollback"),
                           action="rollback")),
            keyword("to", "Roll back to the configuration a specific commit made",
                    _commit_argument("rollback", "Commit ID or label", *_note_options("rollback"))),
        ),
    )


def commit_option_nodes() -> list[Node]:
    """What may follow ``commit`` in the configuration modes: ``label L``, ``comment TEXT``. Raises nothing."""
    return _note_options("commit")


class HistoryCommands:
    """The handlers of the commit database commands."""

    def __init__(self, client: AgentClient, console: Console) -> None:
        self.client = client
        self.console = console

    def handlers(self) -> dict[str, Callable[[Parsed], None]]:
        return {
            "show-commit-list": self.show_list,
            "show-commit-changes": self.show_changes,
            "rollback": self.rollback,
        }

    def commits(self) -> list[CommitView]:
        """The commits kept, newest first. Raises CliError, ConnectionLost."""
        return commits_of(self.client.state("history"))

    def values(self, name: str) -> Sequence[tuple[str, str]]:
        """``?``/Tab values of the commit arguments: ids, then labels, newest first. Raises nothing."""
        if name != COMMIT_VALUES:
            return []
        try:
            commits = self.commits()
        except (CliError, ConnectionLost):
            return []
        labels = list(dict.fromkeys(c.label for c in commits if c.label))
        return [(c.commit_id, "Commit ID") for c in commits] + [(label, "Commit label") for label in labels]

    @staticmethod
    def find(commits: Sequence[CommitView], word: str) -> CommitView:
        """The commit with id ``word``, else the newest with label ``word``.

        Raises CliError if there is none.
        """
        for commit in commits:
            if commit.commit_id == word:
                return commit
        for commit in commits:
            if commit.label == word:
                return commit
        kept = f"(the last {len(commits)} commits are kept)"
        if word.isdigit():
            raise CliError(f"Commit {word} is not in the commit database {kept}")
        raise CliError(f"No commit labelled '{word}' in the commit database {kept}")

    def show_list(self, parsed: Parsed) -> None:
        commits = self.commits()
        if "count" in parsed.args:
            commits = commits[: int(parsed.args["count"])]
        lines = render_commit_detail(commits) if "detail" in parsed.args else render_commit_list(commits)
        self.console.write("\n".join(lines) + "\n")

    def show_changes(self, parsed: Parsed) -> None:
        commits = self.commits()
        if "commit" in parsed.args:
            chosen = [self.find(commits, parsed.args["commit"])]
        else:
            chosen = list(reversed(commits[: int(parsed.args["count"])]))
        lines = render_commit_changes(chosen, diff="diff" in parsed.args)
        self.console.write("\n".join(lines) + "\n")

    def rollback(self, parsed: Parsed) -> None:
        """``rollback configuration ...``: one RPC, with the router's progress and result lines.

        Raises CliError (no such commit, locked, a confirmed commit pending, not authorized), ConnectionLost.
        """
        label, comment = parsed.args.get("label"), parsed.args.get("comment")
        if "commit" in parsed.args:
            target = parsed.args["commit"]
            if not target.isdigit():  # a label: the newest commit that has it
                target = self.find(self.commits(), target).commit_id
            last = None
        else:
            target, last = None, int(parsed.args["count"])
        try:
            commit_id = self.client.rollback_configuration(last=last, to=target, label=label, comment=comment)
        except CliError as error:
            if error.tag == "access-denied":
                raise
            raise CliError(f"Failed to roll back: {error.message}", error.tag, error.info) from error
        if commit_id is None:
            was = f"the configuration of commit {target}" if target is not None else f"what it was {last} " \
                f"commit{'s' if last != 1 else ''} ago"
            self.console.write(f"No configuration changes to roll back: the running configuration already is {was}.\n")
            return
        items = next((len(c.changes) for c in self.commits() if c.commit_id == commit_id), 0)
        done = f"to '{target}'" if target is not None else f"{last} commit{'s' if last != 1 else ''}"
        self.console.write(
            "Loading Rollback Changes.\nCommitting.\n"
            f"{items} item{'s' if items != 1 else ''} committed.\n"
            f"Configuration successfully rolled back {done} (commit {commit_id}).\n"
        )
