"""Report schedules and the reports the console stored (API).

``/api/v1/reports/schedules/``: list and read (``report.view``: Admin,
Auditor); create, change, delete (``report.manage``: Admin), audited by
console/reports/scheduling.py. ``/api/v1/reports/past/``: the reports the
schedules generated, newest first, with their digests;
``/api/v1/reports/past/{id}/download/`` returns the stored bytes exactly
(the SHA-256 in ``X-Report-SHA256``), audited as ``report.download``.
"""

from __future__ import annotations

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from console.api.views.base import Base, actor
from console.fleet.models import DeviceGroup
from console.policies.models import Policy
from console.reports import scheduling
from console.reports.schedules import (
    MAX_RECIPIENTS,
    Frequency,
    ReportFile,
    ReportSchedule,
    ScopeKind,
)


class ReportScheduleSerializer(serializers.ModelSerializer):
    scope = serializers.SerializerMethodField(help_text="The scope in words")
    next_period = serializers.SerializerMethodField(
        help_text="The period the next run generates if it is due (first and last day)"
    )

    class Meta:
        model = ReportSchedule
        fields = [
            "id",
            "name",
            "scope_kind",
            "group",
            "policy",
            "scope",
            "frequency",
            "recipients",
            "format",
            "enabled",
            "last_period_end",
            "last_error",
            "next_period",
            "created_at",
        ]
        read_only_fields = fields

    def get_scope(self, obj) -> str:
        return scheduling.scope_label(obj)

    def get_next_period(self, obj) -> list[str]:
        start, end = scheduling.last_closed_period(obj.frequency, scheduling.timezone.now().date())
        return [start.isoformat(), end.isoformat()]


class ReportScheduleInput(serializers.Serializer):
    name = serializers.CharField(max_length=120)
    frequency = serializers.ChoiceField(choices=Frequency.choices)
    scope_kind = serializers.ChoiceField(choices=ScopeKind.choices, default=ScopeKind.ALL)
    group = serializers.PrimaryKeyRelatedField(
        queryset=DeviceGroup.objects.all(), required=False, allow_null=True
    )
    policy = serializers.PrimaryKeyRelatedField(
        queryset=Policy.objects.all(), required=False, allow_null=True
    )
    recipients = serializers.ListField(
        child=serializers.EmailField(max_length=254), min_length=1, max_length=MAX_RECIPIENTS
    )
    format = serializers.ChoiceField(choices=[("pdf", "PDF")], default="pdf")
    enabled = serializers.BooleanField(default=True)

    def to_input(self) -> scheduling.ScheduleInput:
        d = self.validated_data
        return scheduling.ScheduleInput(
            name=d["name"],
            frequency=d["frequency"],
            scope_kind=d["scope_kind"],
            group=d.get("group"),
            policy=d.get("policy"),
            recipients=tuple(d["recipients"]),
            enabled=d["enabled"],
        )


def _input(request) -> scheduling.ScheduleInput:
    data = ReportScheduleInput(data=request.data)
    data.is_valid(raise_exception=True)
    return data.to_input()


def _service(call):
    """A service's field errors as the API's 400."""
    try:
        return call()
    except scheduling.ValidationError as exc:
        raise serializers.ValidationError(exc.message_dict) from None


class ReportScheduleViewSet(
    Base,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    serializer_class = ReportScheduleSerializer
    capabilities = {"read": "report.view", "*": "report.manage"}
    queryset = ReportSchedule.objects.select_related("group", "policy").order_by("name", "id")

    @extend_schema(request=ReportScheduleInput, responses={201: ReportScheduleSerializer})
    def create(self, request):
        schedule = _service(lambda: scheduling.create_schedule(actor(request), _input(request)))
        return Response(ReportScheduleSerializer(schedule).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=ReportScheduleInput, responses=ReportScheduleSerializer)
    def update(self, request, pk=None):
        schedule = self.get_object()
        schedule = _service(
            lambda: scheduling.update_schedule(actor(request), schedule, _input(request))
        )
        return Response(ReportScheduleSerializer(schedule).data)

    @extend_schema(responses={204: None})
    def destroy(self, request, pk=None):
        scheduling.delete_schedule(actor(request), self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


class StoredReportSerializer(serializers.ModelSerializer):
    schedule = serializers.CharField(source="schedule.name", allow_null=True, default=None)
    scope = serializers.CharField(source="record.scope")
    start = serializers.DateField(source="record.start")
    end = serializers.DateField(source="record.end")
    format = serializers.CharField(source="record.format")
    generated_at = serializers.DateTimeField(source="record.generated_at")
    size = serializers.IntegerField(source="record.size")
    sha256 = serializers.CharField(source="record.sha256", help_text="SHA-256 of the file")
    report_digest = serializers.CharField(
        source="record.report_digest", help_text="SHA-256 of the report's canonical JSON"
    )

    class Meta:
        model = ReportFile
        fields = [
            "id",
            "filename",
            "schedule",
            "scope",
            "start",
            "end",
            "format",
            "generated_at",
            "size",
            "sha256",
            "report_digest",
            "emailed_to",
            "email_error",
        ]
        read_only_fields = fields


class StoredReportViewSet(Base, viewsets.ReadOnlyModelViewSet):
    serializer_class = StoredReportSerializer
    capabilities = {"read": "report.view"}
    queryset = (
        ReportFile.objects.select_related("record", "schedule")
        .defer("content")
        .order_by("-record__generated_at", "-id")
    )

    @extend_schema(
        responses={(200, "application/pdf"): OpenApiResponse(OpenApiTypes.BINARY)},
        summary="The stored report file, byte for byte",
    )
    @action(detail=True, methods=["get"])
    def download(self, request, pk=None):
        return download_response(scheduling.open_stored(actor(request), self.get_object().pk))


def download_response(stored: ReportFile) -> HttpResponse:
    response = HttpResponse(bytes(stored.content), content_type=stored.content_type)
    response["Content-Disposition"] = f'attachment; filename="{stored.filename}"'
    response["X-Report-SHA256"] = stored.record.sha256
    return response


__all__ = ["ReportScheduleViewSet", "StoredReportViewSet"]
