"""`python -m agent` runs the agent (same as `ca-agent`)."""

from agent.main import run

run()
