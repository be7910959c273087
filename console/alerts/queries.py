"""Read-only alert queries for pages that show alerts next to other things
(the device page)."""

from __future__ import annotations

from django.db.models import Case, IntegerField, Value, When
from django.db.models.functions import Coalesce

from console.alerts.models import OPEN_STATES, Alert, Rule

#: resolved alerts shown after the open ones
RECENT_RESOLVED = 5


def for_device(device, resolved: int = RECENT_RESOLVED) -> list[Alert]:
    """The device's open alerts (pending or firing, newest first), then its
    last ``resolved`` resolved ones (most recently resolved first), in ONE query.

    At most one alert per rule is open on a device (constraint
    alert_one_open_per_rule_device), so the first len(Rule) + ``resolved``
    rows ordered open-first hold every open alert and the newest resolved.
    """
    resolved = max(0, min(int(resolved), 50))
    rows = list(
        Alert.objects.filter(device=device)
        .annotate(
            open_first=Case(
                When(state__in=OPEN_STATES, then=Value(0)),
                default=Value(1),
                output_field=IntegerField(),
            ),
            ended=Coalesce("resolved_at", "started_at"),
        )
        .order_by("open_first", "-ended", "-started_at", "-id")[: len(Rule) + resolved]
    )
    open_rows = [a for a in rows if a.state in OPEN_STATES]
    return open_rows + [a for a in rows if a.state not in OPEN_STATES][:resolved]
