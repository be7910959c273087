"""Building blocks of the list FilterSets (console/<app>/filters.py).

One FilterSet per list serves the dashboard page, the API endpoint, the CSV
export and the OpenAPI schema: a value that is not one of a filter's choices,
not a number or not a date is an error addressed to its field (a 400 from the
API, a message on the page), never silently ignored.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from datetime import timezone as dt_timezone
from urllib.parse import urlencode

import django_filters
from django import forms

# The largest id a filter accepts: PostgreSQL's bigint, so a larger number is
# a field error instead of a database error.
MAX_ID = 2**63 - 1


class IdFilter(django_filters.NumberFilter):
    """An integer id (NumberFilter's decimal field would accept 1.5)."""

    field_class = forms.IntegerField

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", MAX_ID)
        super().__init__(*args, **kwargs)


# What a date filter accepts, exactly (the OpenAPI schema says the same:
# format "date" or "date-time"): a full date, or an RFC 3339 date-time with
# seconds and an offset. A second of 60 (a leap second) is read as 59.
DATE_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
DATE_TIME_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?"
    r"(?:([Zz])|([+-])(\d{2}):(\d{2}))$"
)


def parse_date_or_date_time(value: str, end_of_day: bool = False) -> datetime:
    """A full date (its start, or with ``end_of_day`` the next day's start)
    or an RFC 3339 date-time; ValueError if it is neither."""
    if m := DATE_RE.match(value):
        start = datetime(*map(int, m.groups()), tzinfo=UTC)
        if not end_of_day:
            return start
        return (
            start + timedelta(days=1)
            if start.date() < date.max
            else datetime.max.replace(tzinfo=UTC)
        )
    m = DATE_TIME_RE.match(value)
    if not m:
        raise ValueError(value)
    year, month, day, hour, minute, second, fraction, z, sign, off_h, off_m = m.groups()
    if int(off_h or 0) > 23 or int(off_m or 0) > 59:
        raise ValueError(value)
    offset = timedelta(hours=int(off_h or 0), minutes=int(off_m or 0))
    tz = UTC if z or not offset else dt_timezone(-offset if sign == "-" else offset)
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    moment = datetime(
        int(year), int(month), int(day), int(hour), int(minute), min(int(second), 59), micro, tz
    )
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # the first or last hours of year 1 or 9999 in UTC: the bound
        bound = datetime.min if moment.year == 1 else datetime.max
        return bound.replace(tzinfo=UTC)


class DateOrDateTimeField(forms.Field):
    """A date or an RFC 3339 date-time (``parse_date_or_date_time``). A plain
    date is that day's start for a lower bound and, with ``end_of_day``, the
    next day's start for an exclusive upper one, so ``until=2026-12-05``
    includes the 5th."""

    default_error_messages = {
        "invalid": "Enter a date (YYYY-MM-DD) or a date and time (RFC 3339, "
        "e.g. 2026-12-05T14:30:00Z).",
    }

    def __init__(self, *args, end_of_day: bool = False, **kwargs):
        self.end_of_day = end_of_day
        super().__init__(*args, **kwargs)

    def to_python(self, value):
        value = value.strip() if isinstance(value, str) else value
        if not value:
            return None
        try:
            return parse_date_or_date_time(str(value)[:64], self.end_of_day)
        except (ValueError, OverflowError):
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid") from None


class DateOrDateTimeFilter(django_filters.Filter):
    field_class = DateOrDateTimeField


class Shown(dict):
    """A list's filter values as the page shows them (``shown.q`` in a
    template, ``shown.querystring(sort="")`` for a link)."""

    defaults: dict = {}  # values links leave out (the list's default)

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def querystring(self, **overrides) -> str:
        values = {**self, **overrides}
        return urlencode(
            {k: v for k, v in values.items() if v not in ("", None) and v != self.defaults.get(k)}
        )


class ListFilterSet(django_filters.FilterSet):
    """A FilterSet that can say what it filters by, for the page's form
    fields and links (``values``) and its error message (``error_text``)."""

    defaults: dict = {}

    def values(self) -> Shown:
        """Each filter's value as given (text), blank where it is not valid
        (or its default): what the page's form shows and its links carry."""
        self.is_valid()
        out = Shown()
        out.defaults = self.defaults
        for name in self.filters:
            value = "" if name in self.form.errors else (self.data.get(name) or "")
            value = value.strip() if isinstance(value, str) else str(value)
            out[name] = value or self.defaults.get(name, "")
        return out

    def error_text(self) -> str:
        """The field errors in one sentence for a page ('' if none)."""
        self.is_valid()
        return " ".join(f"{name}: {' '.join(errors)}" for name, errors in self.form.errors.items())
