"""``python -m agent``: the agent's command line (agent/cli.py)."""

import sys

from agent.cli import main

sys.exit(main())
