"""Alerts: history (everyone who may view), acknowledgement (Operator,
Admin), thresholds, hold-downs and channels (Admin manages; Auditor reads).
Each view translates HTTP to a console/alerts/services.py call."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from console.alerts import services
from console.alerts.evaluation import settings_row
from console.alerts.filters import AlertFilterSet
from console.alerts.models import Alert, AlertSettings, Channel, ChannelKind, Rule, Thresholds
from console.api.views.base import Base, ListFilters, NewestFirst, actor
from console.fleet.models import DeviceGroup


def refused(exc: services.AlertError):
    return ValidationError({k: [v] for k, v in exc.errors.items()})


class AlertSerializer(serializers.ModelSerializer):
    hostname = serializers.CharField(source="device.hostname", read_only=True)
    acknowledged_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = Alert
        fields = [
            "id", "rule", "severity", "device", "hostname", "state", "message", "detail",
            "started_at", "fired_at", "clear_since", "resolved_at", "acknowledged_at",
            "acknowledged_by",
        ]  # fmt: skip
        read_only_fields = fields


class AlertCursor(NewestFirst):
    ordering = ("-started_at", "-id")


class AlertViewSet(Base, viewsets.ReadOnlyModelViewSet):
    serializer_class = AlertSerializer
    pagination_class = AlertCursor
    filter_backends = [ListFilters]
    filterset_class = AlertFilterSet
    capabilities = {"acknowledge": "alert.acknowledge"}
    queryset = Alert.objects.select_related("device", "acknowledged_by")

    @extend_schema(request=None, responses=AlertSerializer, summary="Acknowledge an alert")
    @action(detail=True, methods=["post"])
    def acknowledge(self, request, pk=None):
        try:
            alert = services.acknowledge(actor(request), self.get_object())
        except services.AlertError as exc:
            raise refused(exc) from exc
        return Response(AlertSerializer(alert).data)


class ThresholdsSerializer(serializers.ModelSerializer):
    group = serializers.PrimaryKeyRelatedField(
        queryset=DeviceGroup.objects.all(), allow_null=True, required=False,
        help_text="Empty: the organisation default",
    )  # fmt: skip

    class Meta:
        model = Thresholds
        fields = ["id", "group", *Thresholds.RULE_FIELDS, *Thresholds.VALUE_FIELDS, "updated_at"]
        read_only_fields = ["id", "updated_at"]
        validators: list = []  # one row per group: the service updates it
        # the bounds the service checks, declared (OpenAPI minimum/maximum)
        extra_kwargs = {
            name: {"min_value": low, "max_value": high}
            for name, (low, high) in services.BOUNDS.items()
        }


class ThresholdsViewSet(Base, viewsets.ModelViewSet):
    """The organisation default (group null) and per-group overrides. A
    device in several groups with overrides gets the strictest value."""

    serializer_class = ThresholdsSerializer
    capabilities = {"*": "alert.manage"}
    queryset = Thresholds.objects.select_related("group").order_by("group__name", "id")

    def _values(self, serializer) -> dict:
        return {k: v for k, v in serializer.validated_data.items() if k != "group"}

    def perform_create(self, serializer):
        group = serializer.validated_data.get("group")
        try:
            serializer.instance = services.save_thresholds(
                actor(self.request), group, self._values(serializer)
            )
        except services.AlertError as exc:
            raise refused(exc) from exc

    def perform_update(self, serializer):
        if "group" in serializer.validated_data and (
            serializer.validated_data["group"] != serializer.instance.group
        ):
            raise ValidationError({"group": ["The group of a thresholds row cannot change."]})
        try:
            serializer.instance = services.save_thresholds(
                actor(self.request), serializer.instance.group, self._values(serializer)
            )
        except services.AlertError as exc:
            raise refused(exc) from exc

    def perform_destroy(self, instance):
        try:
            services.delete_thresholds(actor(self.request), instance)
        except services.AlertError as exc:
            raise refused(exc) from exc


class ChannelSerializer(serializers.ModelSerializer):
    recipients = serializers.ListField(
        child=serializers.EmailField(max_length=254), required=False, max_length=50
    )
    rules = serializers.ListField(
        child=serializers.ChoiceField(choices=Rule.choices), required=False,
        help_text="Rules sent to this channel; empty: all",
    )  # fmt: skip
    kind = serializers.ChoiceField(choices=ChannelKind.choices)
    secret = serializers.CharField(
        write_only=True, required=False, allow_blank=True, max_length=200,
        help_text="HMAC-SHA256 key of X-Cairn-Signature; never shown again. Blank removes it.",
    )  # fmt: skip
    has_secret = serializers.SerializerMethodField()

    class Meta:
        model = Channel
        fields = [
            "id", "name", "kind", "recipients", "url", "secret", "has_secret", "rules",
            "send_resolved", "digest", "enabled", "last_digest_at", "created_at",
        ]  # fmt: skip
        read_only_fields = ["id", "has_secret", "last_digest_at", "created_at"]
        validators: list = []

    def get_has_secret(self, obj) -> bool:
        return bool(obj.secret_encrypted)

    def validate_name(self, value):  # uniqueness: the service says it
        return value


class ChannelViewSet(Base, viewsets.ModelViewSet):
    serializer_class = ChannelSerializer
    capabilities = {"*": "alert.manage"}
    queryset = Channel.objects.order_by("name")

    def _save(self, serializer, channel):
        try:
            serializer.instance = services.save_channel(
                actor(self.request), channel, dict(serializer.validated_data)
            )
        except services.AlertError as exc:
            raise refused(exc) from exc

    def perform_create(self, serializer):
        self._save(serializer, None)

    def perform_update(self, serializer):
        self._save(serializer, serializer.instance)

    def perform_destroy(self, instance):
        services.delete_channel(actor(self.request), instance)


class AlertSettingsSerializer(serializers.ModelSerializer):
    open_after_minutes = serializers.IntegerField(min_value=0, max_value=services.MAX_MINUTES)
    resolve_after_minutes = serializers.IntegerField(min_value=0, max_value=services.MAX_MINUTES)

    class Meta:
        model = AlertSettings
        fields = ["open_after_minutes", "resolve_after_minutes", "updated_at"]
        read_only_fields = ["updated_at"]


class AlertSettingsView(Base, APIView):
    """Hold-downs: how long a condition must hold before its alert fires, and
    be gone before it resolves."""

    pagination_class = None
    capabilities = {"*": "alert.manage"}

    @extend_schema(responses=AlertSettingsSerializer, summary="Alert hold-downs")
    def get(self, request):
        return Response(AlertSettingsSerializer(settings_row()).data)

    @extend_schema(
        request=AlertSettingsSerializer, responses=AlertSettingsSerializer,
        summary="Change the alert hold-downs",
    )  # fmt: skip
    def put(self, request):
        data = AlertSettingsSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        d = data.validated_data
        try:
            row = services.save_settings(
                actor(request), d["open_after_minutes"], d["resolve_after_minutes"]
            )
        except services.AlertError as exc:
            raise refused(exc) from exc
        return Response(AlertSettingsSerializer(row).data, status=status.HTTP_200_OK)
