import sys

from agent.daemon.cli import main

sys.exit(main())
