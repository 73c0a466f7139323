"""agent.netconf.buffer_budget: one cap for what all sessions hold."""

from __future__ import annotations

import pytest

from agent.netconf.buffer_budget import BufferBudget


def test_within_the_limit_nobody_is_given_up() -> None:
    budget: BufferBudget[str] = BufferBudget(100)
    assert budget.update("a", 60) is None
    assert budget.update("b", 40) is None
    assert budget.total == 100
    assert budget.update("a", 10) is None  # a finished its message: 50 back
    assert budget.total == 50


def test_over_the_limit_the_holder_of_the_most_is_given_up_and_its_bytes_come_back() -> None:
    budget: BufferBudget[str] = BufferBudget(100)
    budget.update("big", 70)
    budget.update("small", 20)
    assert budget.update("newcomer", 30) == "big"  # 120 > 100: big holds the most, not the newcomer
    assert budget.total == 50
    assert budget.update("newcomer", 90) == "newcomer"  # 110 > 100: now the newcomer holds the most
    assert budget.total == 20


def test_release_forgets_an_owner_once() -> None:
    budget: BufferBudget[str] = BufferBudget(100)
    budget.update("a", 60)
    budget.release("a")
    budget.release("a")
    assert budget.total == 0
    assert budget.update("b", 100) is None


def test_a_budget_must_be_positive() -> None:
    with pytest.raises(ValueError):
        BufferBudget(0)
