"""Fixtures of the NETCONF notification tests (RFC 5277, RFC 6470, ca-agent-crypto notifications)."""

from __future__ import annotations

import sys
from pathlib import Path

# lab_cas comes from tests/conftest.py
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/e2e: nacm_e2e_helpers

