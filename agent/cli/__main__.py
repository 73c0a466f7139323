"""``python -m agent.cli``: the same as the ``ca-cli`` console script."""

import sys

from agent.cli.main import main

sys.exit(main())
