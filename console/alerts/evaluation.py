"""The evaluation pass: compare the conditions that hold now (rules.firing)
with the open alerts and move each (rule, device) through its states.

    condition seen, no open alert     → pending (started_at = now); firing at
                                         once if the open hold-down is 0
    pending, still true, held long enough → firing: notified ("fired")
    pending, gone                      → deleted (it never fired: a blip)
    firing, gone                       → clear_since = now (resolve hold-down)
    firing, back before resolve hold-down → clear_since cleared (no new alert)
    firing, gone for the resolve hold-down → resolved: notified ("resolved")

So a device that flaps produces one alert and one resolve, not a stream; and
the partial unique constraint keeps one open alert per (rule, device). Passes
are serialised by a row lock on the AlertSettings row. Writes are bulk
(one INSERT, a few UPDATEs), whatever the fleet size.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from django.db import transaction
from django.utils import timezone

from console.alerts import notify, rules
from console.alerts.models import SEVERITY, Alert, AlertSettings, AlertState

BATCH = 2000


@dataclass
class PassResult:
    conditions: int = 0
    opened: int = 0
    fired: list = field(default_factory=list)
    resolved: list = field(default_factory=list)
    discarded: int = 0
    deliveries: list = field(default_factory=list)


def settings_row(lock: bool = False) -> AlertSettings:
    row = AlertSettings.objects.order_by("pk").first()
    if row is None:
        row = AlertSettings.objects.create()
    if lock:
        row = AlertSettings.objects.select_for_update().get(pk=row.pk)
    return row


def evaluate(now=None) -> PassResult:
    """One pass over the whole fleet. Returns what moved and the deliveries
    queued (the caller enqueues them: console/alerts/tasks.py)."""
    now = now or timezone.now()
    result = PassResult()
    with transaction.atomic():
        conf = settings_row(lock=True)
        open_after = dt.timedelta(minutes=conf.open_after_minutes)
        resolve_after = dt.timedelta(minutes=conf.resolve_after_minutes)
        conditions = rules.firing(now)
        result.conditions = len(conditions)
        open_alerts = {
            (a[1], a[2]): a
            for a in Alert.objects.filter(state__in=(AlertState.PENDING, AlertState.FIRING))
            .values_list("id", "rule", "device_id", "state", "started_at", "clear_since")
            .iterator(chunk_size=BATCH)
        }
        _open_new(conditions, open_alerts, now, open_after, result)
        _move_open(conditions, open_alerts, now, open_after, resolve_after, result)
        result.deliveries = notify.queue(result.fired, result.resolved)
    return result


def _open_new(conditions, open_alerts, now, open_after, result) -> None:
    new = []
    for key, cond in conditions.items():
        if key in open_alerts:
            continue
        rule, device_id = key
        fire = not open_after
        new.append(
            Alert(
                rule=rule,
                severity=SEVERITY[rule],
                device_id=device_id,
                state=AlertState.FIRING if fire else AlertState.PENDING,
                message=cond.message[:500],
                detail=cond.detail,
                started_at=now,
                fired_at=now if fire else None,
            )
        )
    created = Alert.objects.bulk_create(new, batch_size=BATCH)
    result.opened = len(created)
    result.fired.extend(a.pk for a in created if a.state == AlertState.FIRING)


def _move_open(conditions, open_alerts, now, open_after, resolve_after, result) -> None:
    to_fire, to_discard, to_clear, to_unclear, to_resolve = [], [], [], [], []
    for key, (pk, _rule, _dev, state, started_at, clear_since) in open_alerts.items():
        holds = key in conditions
        if state == AlertState.PENDING:
            if not holds:
                to_discard.append(pk)
            elif now - started_at >= open_after:
                to_fire.append((pk, conditions[key]))
        elif holds:
            if clear_since is not None:
                to_unclear.append(pk)
        elif clear_since is None:
            to_clear.append(pk)
        elif now - clear_since >= resolve_after:
            to_resolve.append(pk)
    # held-down alerts maturing: they keep the wording of when they started
    for chunk in _chunks([pk for pk, _ in to_fire]):
        Alert.objects.filter(pk__in=chunk, state=AlertState.PENDING).update(
            state=AlertState.FIRING, fired_at=now
        )
    result.fired.extend(pk for pk, _ in to_fire)
    for chunk in _chunks(to_discard):
        result.discarded += Alert.objects.filter(pk__in=chunk, state=AlertState.PENDING).delete()[0]
    for chunk in _chunks(to_clear):
        Alert.objects.filter(pk__in=chunk).update(clear_since=now)
    for chunk in _chunks(to_unclear):
        Alert.objects.filter(pk__in=chunk).update(clear_since=None)
    for chunk in _chunks(to_resolve):
        Alert.objects.filter(pk__in=chunk, state=AlertState.FIRING).update(
            state=AlertState.RESOLVED, resolved_at=now
        )
    result.resolved.extend(to_resolve)


def _chunks(items):
    for start in range(0, len(items), BATCH):
        yield items[start : start + BATCH]
