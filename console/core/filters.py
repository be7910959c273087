"""Building blocks of the list FilterSets (console/<app>/filters.py).

One FilterSet per list serves the dashboard page, the API endpoint, the CSV
export and the OpenAPI schema: a value that is not one of a filter's choices,
not a number or not a date is an error addressed to its field (a 400 from the
API, a message on the page), never silently ignored.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from urllib.parse import urlencode

import django_filters
from django import forms
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

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


class DateOrDateTimeField(forms.CharField):
    """An ISO 8601 date or date-time. A plain date is that day's start for a
    lower bound (``end_of_day=False``) and the next day's start for an upper,
    exclusive one, so ``until=2026-12-05`` includes the 5th."""

    def __init__(self, *args, end_of_day: bool = False, **kwargs):
        self.end_of_day = end_of_day
        kwargs.setdefault("max_length", 40)
        super().__init__(*args, **kwargs)

    def to_python(self, value):
        value = super().to_python(value)
        if not value:
            return None
        try:
            parsed = parse_datetime(value)
            if parsed is None:
                day = parse_date(value)
                if day is None:
                    raise ValueError(value)
                parsed = datetime.combine(day, time.min)
                if self.end_of_day:
                    parsed += timedelta(days=1)
        except ValueError:
            raise forms.ValidationError(
                "Enter a date (YYYY-MM-DD) or a date and time (ISO 8601).", code="invalid"
            ) from None
        if timezone.is_naive(parsed):
            parsed = timezone.make_aware(parsed, timezone.get_current_timezone())
        return parsed


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
