"""Legal holds and offboarding records (API).

``/api/v1/holds/``: list, read and export (``hold.view``: Admin, Auditor);
place and release (``hold.manage``: Admin), each audited by
console/holds/services.py. ``?state=active|released`` filters the list.
``/api/v1/holds/export/`` is the CSV (audited as ``hold.export``).
``/api/v1/offboardings/``: the revoked devices whose data was deleted.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import HttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from console.api.views.base import Base, actor, validated, validated_query
from console.fleet.models import Device
from console.holds import services
from console.holds.models import LegalHold, Offboarding, Scope


class LegalHoldSerializer(serializers.ModelSerializer):
    state = serializers.SerializerMethodField()
    subject = serializers.CharField(read_only=True)
    created_by = serializers.CharField(source="created_by.username", default=None, allow_null=True)
    released_by = serializers.CharField(
        source="released_by.username", default=None, allow_null=True
    )

    class Meta:
        model = LegalHold
        fields = [
            "id",
            "state",
            "scope",
            "device",
            "owner",
            "snapshot_id",
            "subject",
            "case_name",
            "reason",
            "created_at",
            "created_by",
            "released_at",
            "released_by",
            "release_reason",
        ]
        read_only_fields = fields

    def get_state(self, obj) -> str:
        return "active" if obj.active else "released"


class HoldInput(serializers.Serializer):
    scope = serializers.ChoiceField(choices=Scope.choices)
    case_name = serializers.CharField(max_length=services.MAX_CASE)
    reason = serializers.CharField(max_length=services.MAX_TEXT)
    device = serializers.PrimaryKeyRelatedField(
        queryset=Device.objects.all(), required=False, allow_null=True
    )
    owner = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")
    snapshot_id = serializers.CharField(
        max_length=128, required=False, allow_blank=True, default=""
    )


class ReleaseInput(serializers.Serializer):
    reason = serializers.CharField(max_length=services.MAX_TEXT)


class HoldQuery(serializers.Serializer):
    # ?state= (blank) is read as absent, as a query form sends it: say so
    state = serializers.ChoiceField(
        choices=[("active", "active"), ("released", "released")], required=False, allow_blank=True
    )


def _service(call):
    try:
        return call()
    except DjangoValidationError as exc:
        raise serializers.ValidationError(exc.message_dict) from None


class LegalHoldViewSet(
    Base, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    serializer_class = LegalHoldSerializer
    capabilities = {"read": "hold.view", "export": "hold.view", "*": "hold.manage"}
    queryset = LegalHold.objects.select_related("device", "created_by", "released_by")

    def get_queryset(self):
        qs = super().get_queryset().order_by("-created_at", "-id")
        if self.action in ("list", "export"):
            state = validated_query(HoldQuery, self.request).get("state")
            if state == "active":
                qs = qs.filter(released_at__isnull=True)
            elif state == "released":
                qs = qs.filter(released_at__isnull=False)
        return qs

    @extend_schema(parameters=[HoldQuery])
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    @extend_schema(request=HoldInput, responses={201: LegalHoldSerializer})
    def create(self, request):
        d = validated(HoldInput, request)
        hold = _service(lambda: services.place(actor(request), services.HoldInput(**d)))
        return Response(LegalHoldSerializer(hold).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=ReleaseInput, responses=LegalHoldSerializer)
    @action(detail=True, methods=["post"])
    def release(self, request, pk=None):
        reason = validated(ReleaseInput, request)["reason"]
        hold = _service(lambda: services.release(actor(request), self.get_object(), reason))
        return Response(LegalHoldSerializer(hold).data)

    @extend_schema(
        # no ?format=: DRF reads that parameter as a renderer name (404 for csv)
        parameters=[HoldQuery],
        responses={
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.BINARY, description="One row a hold")
        },
        summary="The holds as CSV (audited)",
    )
    @action(detail=False, methods=["get"])
    def export(self, request):
        data = services.export_csv(actor(request), self.get_queryset())
        response = HttpResponse(data, content_type="text/csv; charset=utf-8")
        stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
        response["Content-Disposition"] = f'attachment; filename="cairn-legal-holds-{stamp}.csv"'
        return response


class OffboardingSerializer(serializers.ModelSerializer):
    class Meta:
        model = Offboarding
        fields = [
            "id",
            "device",
            "hostname",
            "owner",
            "revoked_at",
            "deleted_at",
            "deleted_by",
            "deleted_bytes",
            "deleted_objects",
            "snapshots",
        ]
        read_only_fields = fields


class OffboardingViewSet(Base, viewsets.ReadOnlyModelViewSet):
    serializer_class = OffboardingSerializer
    capabilities = {"read": "hold.view"}
    queryset = Offboarding.objects.order_by("-deleted_at", "-id")


__all__ = ["LegalHoldViewSet", "OffboardingViewSet"]
