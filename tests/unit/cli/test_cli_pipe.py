"""Output modifiers: parsing (with the '^' position of a mistake), help, and filtering."""

from __future__ import annotations

import pytest

from agent.cli.grammar import ErrorKind, ParseError
from agent.cli.pipe import apply_modifiers, modifier_completions, modifier_help, parse_modifiers, split_pipe

OUTPUT = [
    "Building configuration...",
    "hostname myrouter",
    "crypto ca trustpoint myca",
    " enrollment url http://ca",
    " enrollment retry count 25",
    "!",
    "end",
]


def run(line: str) -> list[str]:
    command, rest = split_pipe(line)
    assert rest is not None
    return apply_modifiers(parse_modifiers(rest, len(command)), OUTPUT)


def test_split_only_at_a_pipe_word() -> None:
    assert split_pipe("show run | include a|b") == ("show run ", "| include a|b")
    assert split_pipe("show run a|b") == ("show run a|b", None)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("show run | include enrollment", [" enrollment url http://ca", " enrollment retry count 25"]),
        ("show run | i url|count", [" enrollment url http://ca", " enrollment retry count 25"]),
        ("show run | exclude ^ |^!", ["Building configuration...", "hostname myrouter", "crypto ca trustpoint myca",
                                      "end"]),
        ("show run | begin trustpoint", OUTPUT[2:]),
        ("show run | begin nothing-matches", []),
        ("show run | count", ["Number of lines which match regexp = 7"]),
        ("show run | count enrollment", ["Number of lines which match regexp = 2"]),
        ("show run | begin crypto | exclude retry | count", ["Number of lines which match regexp = 4"]),
        ("show run | inc trust point", []),  # the regex is the rest of the segment, spaces included
    ],
)
def test_modifiers_filter_in_order(line: str, expected: list[str]) -> None:
    assert run(line) == expected


@pytest.mark.parametrize(
    ("line", "kind", "position"),
    [
        ("show run | grep x", ErrorKind.INVALID, 11),
        ("show run | include", ErrorKind.INCOMPLETE, 18),
        ("show run |", ErrorKind.INCOMPLETE, 10),
        ("show run | include [unclosed", ErrorKind.INVALID, 19),
        ("show run | include a | ", ErrorKind.INCOMPLETE, 22),
    ],
)
def test_mistakes_are_placed(line: str, kind: ErrorKind, position: int) -> None:
    command, rest = split_pipe(line)
    assert rest is not None
    with pytest.raises(ParseError) as error:
        parse_modifiers(rest, len(command))
    assert (error.value.kind, error.value.position) == (kind, position)


def test_help_and_completion() -> None:
    assert [word for word, _ in modifier_help("| ")] == ["begin", "count", "exclude", "include"]
    assert modifier_help("| include ") == [("LINE", "Regular expression")]
    assert [word for word, _ in modifier_help("| count ")] == ["LINE", "<cr>"]
    assert modifier_completions("| inc") == ["include"]
    assert modifier_completions("| include x | e") == ["exclude"]
