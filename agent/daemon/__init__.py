"""The agent daemon: enrollment, the long-lived connection to the gateway,
the local scheduler and the job runner. No Django imports (it runs on PCs).

    python -m agent enroll --server HOST:PORT --token TOKEN [--ca-cert FILE]
    python -m agent run
    python -m agent status
"""
