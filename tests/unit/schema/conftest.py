"""Fixtures for the schema-layer tests."""

from __future__ import annotations

import pytest

from agent.schema.model import SchemaModel

from .helpers import TEST_MODULE


@pytest.fixture(scope="session")
def model() -> SchemaModel:
    """The production data model."""
    return SchemaModel.load()


@pytest.fixture(scope="session")
def test_model() -> SchemaModel:
    """The production data model plus the test-only module ``ca-agent-test``."""
    return SchemaModel.load(extra_modules=[str(TEST_MODULE)])
