"""What every API view shares: the actor of a request, input validation,
pagination, capability checks and list filtering."""

from __future__ import annotations

from django_filters import CharFilter
from django_filters.rest_framework import DjangoFilterBackend
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import CursorPagination, PageNumberPagination

from console.api import schema  # noqa: F401  (declares the filters' bounds before any schema)
from console.api.permissions import CapabilityPermission
from console.audit.models import AuditEvent
from console.audit.services import Actor


def actor(request) -> Actor:
    return Actor.from_request(request, via=AuditEvent.Via.API)


def validated(serializer_class, request) -> dict:
    """The request's body, validated by an input serializer (a 400 with the errors if not)."""
    data = serializer_class(data=request.data)
    data.is_valid(raise_exception=True)
    return data.validated_data


def validated_query(serializer_class, request) -> dict:
    """The query parameters, validated by a serializer (a 400 with the errors if not)."""
    data = serializer_class(data=request.query_params)
    data.is_valid(raise_exception=True)
    return data.validated_data


class StrictPageSize:
    """``?page_size=`` from 1 to 500, or a 400 (DRF would quietly use the default)."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500

    def get_page_size(self, request):
        given = request.query_params.get(self.page_size_query_param)
        if given is None:
            return self.page_size
        if not given.isdigit() or not 1 <= int(given) <= self.max_page_size:
            raise ValidationError(
                {self.page_size_query_param: [f"A whole number from 1 to {self.max_page_size}."]}
            )
        return int(given)


class Pages(StrictPageSize, PageNumberPagination):
    pass


class NewestFirst(StrictPageSize, CursorPagination):
    """Cursor pages for histories with millions of rows (no COUNT)."""

    ordering = ("-started_at", "-id")


class CommandCursor(NewestFirst):
    ordering = ("-created_at", "-id")


class AuditCursor(NewestFirst):
    ordering = ("-at", "-id")


class ListFilters(DjangoFilterBackend):
    """The viewset's FilterSet (console/<app>/filters.py) on its list only: a
    detail URL is not narrowed by list filters. A value a filter refuses is a
    400 naming the field."""

    def filter_queryset(self, request, queryset, view):
        if getattr(view, "action", None) != "list":
            return queryset
        filterset = self.get_filterset(request, queryset, view)
        if filterset is None:
            return queryset
        # A blank number, choice, id or date means "any" on a page's form; the
        # API says what it is given: a typed parameter is given a value or left out.
        blank = {
            name: ["Give a value or leave the parameter out."]
            for name, flt in filterset.filters.items()
            if request.query_params.get(name) == "" and not isinstance(flt, CharFilter)
        }
        if blank:
            raise ValidationError(blank)
        if not filterset.is_valid():
            raise ValidationError(filterset.errors)
        return filterset.qs


class Base:
    permission_classes = [CapabilityPermission]
    pagination_class = Pages
    capabilities: dict[str, str] = {}
