"""Cairn endpoint agent: the backup engine, the daemon, open-file snapshot
providers, the user's-comfort controls, and the CLI.

Nothing under ``agent`` imports Django: the agent runs on end-user PCs.
"""

__version__ = "0.1.0"
