"""What the page views share: the actor of a request, form errors from a service, paging without COUNT, safe redirects, CSV streaming."""

from __future__ import annotations

import csv
from contextlib import contextmanager

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import StreamingHttpResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme

from console.audit.models import AuditEvent
from console.audit.services import Actor
from console.core.spreadsheet import safe_row

PAGE_SIZE = 50


def actor(request) -> Actor:
    return Actor.from_request(request, via=AuditEvent.Via.UI)


def errors_to_form(form, exc: ValidationError) -> None:
    if hasattr(exc, "error_dict"):
        for field, errs in exc.message_dict.items():
            form.add_error(field if field in form.fields else None, errs)
    else:
        form.add_error(None, exc.messages)


@contextmanager
def errors_onto(form, *also: type[Exception]):
    """Run a form's service call and what follows its success: a ValidationError
    it raises (or one of ``also``, by its text) is shown on the form instead, and
    the view goes on to render the form again."""
    try:
        yield
    except ValidationError as exc:
        errors_to_form(form, exc)
    except also as exc:
        form.add_error(None, str(exc))


class Window:
    """Newer/older paging without COUNT(*) (the job history has millions of rows)."""

    def __init__(self, qs, request, size=PAGE_SIZE):
        try:
            self.number = max(1, int(request.GET.get("page", 1)))
        except ValueError:
            self.number = 1
        start = (self.number - 1) * size
        rows = list(qs[start : start + size + 1])
        self.object_list = rows[:size]
        self.has_next = len(rows) > size
        self.has_previous = self.number > 1
        self.next_page_number = self.number + 1
        self.previous_page_number = self.number - 1

    def __iter__(self):
        return iter(self.object_list)


def next_url(request, default: str) -> str:
    """The page a POST came from (its ``next`` field) if on this site, else the
    page named ``default``: never an open redirect."""
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        target = reverse(default)
    return target


def params_without_page(request) -> str:
    params = request.GET.copy()
    params.pop("page", None)
    return params.urlencode()


class _Echo:
    def write(self, value):
        return value


def csv_response(filename: str, header: list[str], rows) -> StreamingHttpResponse:
    writer = csv.writer(_Echo())

    def stream():
        yield writer.writerow(header)
        for row in rows:
            # Host names, user names, errors: chosen by agents or callers.
            yield writer.writerow(safe_row(row))

    response = StreamingHttpResponse(stream(), content_type="text/csv; charset=utf-8")
    stamp = timezone.now().strftime("%Y%m%d-%H%M")
    response["Content-Disposition"] = f'attachment; filename="{filename}-{stamp}.csv"'
    return response


def iso(value) -> str:
    return value.isoformat() if value else ""


def shown(request, flt):
    """A list's FilterSet (console/<app>/filters.py) for a page: a value it
    refuses is said on the page, and the other filters still apply."""
    if flt.errors:
        messages.error(request, f"Filter not applied: {flt.error_text()}")
    return flt
