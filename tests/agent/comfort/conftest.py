"""The user's comfort (priority, bandwidth and CPU limits, battery and
metered networks): the recorded-command fixture is the open-file tests' own."""

from tests.agent.open_files.conftest import recorded  # noqa: F401 (a fixture)
