"""Compliance reports (JSON, CSV, PDF) and the check of a copy handed out.

``GET /api/v1/reports/compliance/?from=&to=[&group=|&policy=]&format=json|csv|pdf``
builds the report from the daily device history (console/reports/compliance.py),
keeps the SHA-256 of the exact bytes returned and audits the export;
``POST /api/v1/reports/verify/`` with the file answers whether it is, byte for
byte, a report the console handed out. Admins and Auditors (``report.view``).
"""

from __future__ import annotations

from django.http import HttpResponse
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, viewsets
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from console.api.parsers import PARSER_CLASSES
from console.api.views.base import Base, actor, validated, validated_query
from console.reports import compliance, exports
from console.reports.history import last_closed_day
from console.reports.models import ReportFormat


class ComplianceQuerySerializer(serializers.Serializer):
    vars()["from"] = serializers.DateField(help_text="First day (UTC), YYYY-MM-DD")
    to = serializers.DateField(help_text="Last day (UTC), YYYY-MM-DD, a closed day")
    group = serializers.IntegerField(
        required=False, min_value=1, max_value=2**31 - 1, help_text="Only this group's days"
    )
    policy = serializers.IntegerField(
        required=False, min_value=1, max_value=2**31 - 1, help_text="Only this policy's days"
    )
    format = serializers.ChoiceField(choices=ReportFormat.choices, default=ReportFormat.JSON)

    def validate(self, data):
        start, end = data["from"], data["to"]
        if "group" in data and "policy" in data:
            raise serializers.ValidationError({"policy": ["Give a group or a policy, not both."]})
        if end < start:
            raise serializers.ValidationError({"to": ["The period ends before it starts."]})
        if end > last_closed_day():
            raise serializers.ValidationError(
                {"to": ["The history covers closed days: give a day before today (UTC)."]}
            )
        if (end - start).days + 1 > compliance.MAX_DAYS:
            raise serializers.ValidationError(
                {"from": [f"A report covers at most {compliance.MAX_DAYS} days."]}
            )
        return data


class FleetTotalsSerializer(serializers.Serializer):
    devices = serializers.IntegerField()
    within_rpo_share = serializers.FloatField(help_text="Device-time within RPO, 0-1")
    never_backed_up = serializers.IntegerField()
    not_seen = serializers.IntegerField()
    failures = serializers.IntegerField()
    bytes_added = serializers.IntegerField()
    repository_bytes = serializers.IntegerField()
    verified = serializers.IntegerField()
    test_restored = serializers.IntegerField()


class DeviceRowSerializer(serializers.Serializer):
    device_id = serializers.UUIDField()
    hostname = serializers.CharField()
    groups = serializers.ListField(child=serializers.CharField())
    rpo_hours = serializers.FloatField()
    achieved_share = serializers.FloatField()
    last_good_backup = serializers.DateTimeField(allow_null=True)
    last_seen = serializers.DateTimeField(allow_null=True)
    successes = serializers.IntegerField()
    failures = serializers.IntegerField()
    bytes_added = serializers.IntegerField()
    repository_bytes = serializers.IntegerField()
    encryption = serializers.CharField()
    retention = serializers.CharField()
    immutability = serializers.CharField()
    last_verification = serializers.DateTimeField(allow_null=True)
    verification_result = serializers.CharField()
    last_test_restore = serializers.DateTimeField(allow_null=True)
    test_restore_result = serializers.CharField()
    rto_seconds = serializers.FloatField(allow_null=True)
    restore_throughput_bps = serializers.FloatField(allow_null=True)
    status = serializers.ChoiceField(choices=list(compliance.STATUS_ORDER))


class ControlEvidenceSerializer(serializers.Serializer):
    framework = serializers.CharField()
    control = serializers.CharField()
    title = serializers.CharField()
    evidenced_by = serializers.CharField()
    result = serializers.CharField()


class ComplianceReportSerializer(serializers.Serializer):
    generated_at = serializers.DateTimeField()
    start = serializers.DateField()
    end = serializers.DateField()
    scope_label = serializers.CharField()
    source = serializers.CharField()
    totals = FleetTotalsSerializer()
    devices = DeviceRowSerializer(many=True)
    controls = ControlEvidenceSerializer(many=True)
    digest = serializers.CharField(help_text="SHA-256 of the report's canonical JSON")


class VerifyInputSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="A report file as it was handed out")

    def validate_file(self, value):
        if value.size > exports.MAX_VERIFY_BYTES:
            raise serializers.ValidationError(
                f"At most {exports.MAX_VERIFY_BYTES // (1024 * 1024)} MiB."
            )
        return value


class GeneratedReportSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.CharField()
    scope = serializers.CharField()
    start = serializers.DateField()
    end = serializers.DateField()
    format = serializers.CharField()
    generated_at = serializers.DateTimeField()
    generated_by = serializers.CharField(source="generated_by_name")
    report_digest = serializers.CharField()


class VerifyResultSerializer(serializers.Serializer):
    match = serializers.BooleanField()
    sha256 = serializers.CharField()
    message = serializers.CharField()
    report = GeneratedReportSerializer(allow_null=True)


def _scope(data) -> compliance.Scope:
    try:
        if "group" in data:
            return compliance.Scope.group(data["group"])
        if "policy" in data:
            return compliance.Scope.policy(data["policy"])
    except compliance.ScopeError as exc:
        field = "group" if "group" in data else "policy"
        raise serializers.ValidationError({field: [str(exc)]}) from None
    return compliance.Scope.all()


class _JSONOnly:
    """``?format=`` names the report's format here, not DRF's renderer:
    errors are always JSON, the report's bytes are returned as they are."""

    renderer_classes = [JSONRenderer]

    def perform_content_negotiation(self, request, force=False):
        return JSONRenderer(), JSONRenderer.media_type


class _OneReport(AutoSchema):
    """GET on the collection URL answers one report, not a list of them."""

    def _is_list_view(self, serializer=None) -> bool:
        return False


class ComplianceReportView(_JSONOnly, Base, viewsets.ViewSet):
    capabilities = {"list": "report.view"}
    pagination_class = None
    schema = _OneReport()

    @extend_schema(
        parameters=[ComplianceQuerySerializer],
        responses={
            (200, "application/json"): ComplianceReportSerializer,
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.BINARY, description="One row a device"),
            (200, "application/pdf"): OpenApiResponse(OpenApiTypes.BINARY),
        },
        summary="Compliance report for a period and a scope (JSON, CSV or PDF)",
    )
    def list(self, request):
        query = validated_query(ComplianceQuerySerializer, request)
        scope = _scope(query)
        report = compliance.build_compliance_report(query["from"], query["to"], scope)
        fmt = query["format"]
        data, kept = exports.export(actor(request), report, scope, fmt)
        response = HttpResponse(data, content_type=exports.CONTENT_TYPES[fmt])
        name = f"cairn-compliance-{report.start}-{report.end}-{kept.pk}.{fmt}"
        if fmt != ReportFormat.JSON:
            response["Content-Disposition"] = f'attachment; filename="{name}"'
        response["X-Report-SHA256"] = kept.sha256
        response["X-Report-Digest"] = report.digest
        return response


class ReportVerifyView(_JSONOnly, Base, viewsets.ViewSet):
    capabilities = {"create": "report.view"}
    parser_classes = PARSER_CLASSES

    @extend_schema(
        request={"multipart/form-data": VerifyInputSerializer},
        responses={200: VerifyResultSerializer},  # an answer, nothing created
        summary="Is this file, byte for byte, a report the console handed out?",
    )
    def create(self, request):
        upload = validated(VerifyInputSerializer, request)["file"]
        verdict = exports.verify(actor(request), b"".join(upload.chunks()))
        kept = verdict.report
        return Response(
            VerifyResultSerializer(
                {
                    "match": verdict.match,
                    "sha256": verdict.sha256,
                    "message": verdict.message,
                    "report": kept,
                }
            ).data
        )


__all__ = ["ComplianceReportView", "ReportVerifyView"]
