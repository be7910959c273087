"""What every API view shares: the actor of a request, input validation,
pagination, capability checks and list filtering."""

from __future__ import annotations

from django_filters.rest_framework import DjangoFilterBackend
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


class Pages(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500


class NewestFirst(CursorPagination):
    """Cursor pages for histories with millions of rows (no COUNT)."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500
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
        return super().filter_queryset(request, queryset, view)


class Base:
    permission_classes = [CapabilityPermission]
    pagination_class = Pages
    capabilities: dict[str, str] = {}
