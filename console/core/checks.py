"""System checks of the console's own deployment rules."""

from __future__ import annotations

from django.conf import settings
from django.core import checks

from console.core import keys


@checks.register(checks.Tags.security, deploy=True)
def keys_exist(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """Production never creates the organisation key or the CA on use: a
    deployment without them is not ready (``manage.py check --deploy``)."""
    if not settings.PRODUCTION:
        return []
    return [
        checks.Error(f"{what} does not exist", hint=keys.INIT_HINT, id="cairn.E001")
        for what in keys.missing_keys()
    ]
