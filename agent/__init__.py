"""Cairn endpoint agent: the backup engine, its CLI, and (later) the daemon.

Nothing under ``agent`` imports Django: the agent runs on end-user PCs.
"""

__version__ = "0.1.0"
