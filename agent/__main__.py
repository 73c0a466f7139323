"""`python -m agent` runs the agent (same as `ca-agent`)."""

import sys

from agent.main import main

sys.exit(main())
