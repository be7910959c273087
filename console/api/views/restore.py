"""Restore without the device (issue 11), thin over console/restore/services.py.

``GET devices/{id}/snapshots/{snapshot}/tree/?path=&cursor=``,
``GET devices/{id}/snapshots/{snapshot}/compare/?with=&path=``,
``GET devices/{id}/snapshots/{snapshot}/download/?path=`` (a file with Range,
or a folder as a streamed zip) and ``GET files/search/?q=[&device=]``.
All need ``device.download`` (Admin, Operator): file names and contents are
the users' data, an Auditor sees neither. A search without ``device`` covers
the fleet and is for an Admin only.
"""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import APIException, NotFound, PermissionDenied
from rest_framework.response import Response
from rest_framework.views import APIView

from console.accounts.roles import ADMIN, roles_of
from console.api.views.base import Base, actor, validated_query
from console.fleet.models import Device
from console.restore import services
from console.restore.responses import range_refused, streaming_response

UNAVAILABLE = OpenApiResponse(
    description="The device's repository cannot be read now (storage settings or storage down)"
)


class _Refused(APIException):
    def __init__(self, exc: services.RestoreError):
        self.status_code = exc.status
        super().__init__(str(exc))


def _device(device_id) -> Device:
    device = Device.objects.filter(pk=device_id).first()
    if device is None:
        raise NotFound("No such device.")
    return device


class TreeQuery(serializers.Serializer):
    path = serializers.RegexField(
        services.PATH_PATTERN, default="/", max_length=services.MAX_PATH, trim_whitespace=False
    )
    # not trimmed: a cursor is an opaque token, checked as given (a whitespace
    # one is "not one this listing gave", never quietly blank)
    cursor = serializers.RegexField(
        r"^[^\x00]*$", required=False, max_length=64, trim_whitespace=False
    )
    limit = serializers.IntegerField(
        default=services.PAGE, min_value=1, max_value=services.MAX_PAGE
    )


class EntrySerializer(serializers.Serializer):
    name = serializers.CharField()
    type = serializers.CharField(help_text="file, dir, symlink, ...")
    size = serializers.IntegerField(allow_null=True)
    mtime = serializers.DateTimeField(allow_null=True)
    children = serializers.IntegerField(allow_null=True, help_text="Entries in a folder")


class TreeSerializer(serializers.Serializer):
    snapshot = serializers.CharField(source="snapshot.id")
    snapshot_time = serializers.CharField(source="snapshot.time")
    path = serializers.CharField()
    total = serializers.IntegerField(help_text="Entries in the folder (safe names)")
    entries = EntrySerializer(many=True)
    skipped = serializers.ListField(
        child=serializers.CharField(), help_text="Stored names refused as unsafe (not listed)"
    )
    next_cursor = serializers.CharField(allow_null=True)


class CompareQuery(serializers.Serializer):
    vars()["with"] = serializers.CharField(max_length=64, help_text="The snapshot to compare to")
    path = serializers.RegexField(
        services.PATH_PATTERN, default="/", max_length=services.MAX_PATH, trim_whitespace=False
    )


class DiffSerializer(serializers.Serializer):
    path = serializers.CharField()
    type = serializers.CharField()
    size = serializers.IntegerField(allow_null=True)
    mtime = serializers.DateTimeField(allow_null=True)


class CompareSerializer(serializers.Serializer):
    base = serializers.CharField(source="base.id")
    other = serializers.CharField(source="other.id")
    path = serializers.CharField()
    added = DiffSerializer(many=True)
    changed = DiffSerializer(many=True)
    removed = DiffSerializer(many=True)
    skipped = serializers.ListField(child=serializers.CharField())
    truncated = serializers.BooleanField()


class DownloadQuery(serializers.Serializer):
    path = serializers.RegexField(
        services.PATH_PATTERN, max_length=services.MAX_PATH, trim_whitespace=False
    )


class SearchQuery(serializers.Serializer):
    q = serializers.RegexField(
        services.PATTERN_PATTERN,
        max_length=services.MAX_PATTERN,
        help_text="One file name: a substring (any case) or a glob (* ? [...])",
    )
    device = serializers.UUIDField(required=False, help_text="Only this device (else the fleet)")
    limit = serializers.IntegerField(
        default=services.SEARCH_LIMIT, min_value=1, max_value=services.MAX_SEARCH_LIMIT
    )


class VersionSerializer(serializers.Serializer):
    device = serializers.UUIDField()
    hostname = serializers.CharField()
    snapshot = serializers.CharField()
    snapshot_time = serializers.CharField()
    path = serializers.CharField()
    size = serializers.IntegerField()
    mtime = serializers.DateTimeField(allow_null=True)


class SearchSerializer(serializers.Serializer):
    versions = VersionSerializer(many=True)
    truncated = serializers.BooleanField(help_text="The result or time bound was reached")
    devices_searched = serializers.IntegerField()
    snapshots_searched = serializers.IntegerField()
    seconds = serializers.FloatField()


def _call(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except services.RestoreError as exc:
        raise _Refused(exc) from None


class SnapshotTreeView(Base, APIView):
    capabilities = {"read": "device.download"}

    @extend_schema(
        parameters=[TreeQuery],
        responses={200: TreeSerializer, 409: UNAVAILABLE},
        summary="A folder of a snapshot (id, unique prefix or latest), paged",
    )
    def get(self, request, device_id, snapshot):
        q = validated_query(TreeQuery, request)
        listing = _call(
            services.list_folder,
            _device(device_id),
            snapshot,
            q["path"],
            q.get("cursor"),
            q["limit"],
        )
        return Response(TreeSerializer(listing).data)


class SnapshotCompareView(Base, APIView):
    capabilities = {"read": "device.download"}

    @extend_schema(
        parameters=[CompareQuery],
        responses={200: CompareSerializer, 409: UNAVAILABLE},
        summary="What was added, changed and removed in a folder between two snapshots",
    )
    def get(self, request, device_id, snapshot):
        q = validated_query(CompareQuery, request)
        result = _call(services.compare, _device(device_id), snapshot, q["with"], q["path"])
        return Response(CompareSerializer(result).data)


class SnapshotDownloadView(Base, APIView):
    capabilities = {"read": "device.download"}

    @extend_schema(
        parameters=[
            DownloadQuery,
            OpenApiParameter("Range", str, OpenApiParameter.HEADER, required=False),
        ],
        responses={
            (200, "application/octet-stream"): OpenApiResponse(OpenApiTypes.BINARY),
            (206, "application/octet-stream"): OpenApiResponse(OpenApiTypes.BINARY),
            (200, "application/zip"): OpenApiResponse(OpenApiTypes.BINARY),
            416: OpenApiResponse(description="The range is outside the file"),
            409: UNAVAILABLE,
        },
        summary="Download a file (Range supported) or a folder as a streamed zip",
    )
    def get(self, request, device_id, snapshot):
        q = validated_query(DownloadQuery, request)
        device = _device(device_id)
        try:
            dl = services.download(
                actor(request), device, snapshot, q["path"], request.headers.get("Range")
            )
        except services.RangeNotSatisfiable as exc:
            return range_refused(exc)
        except services.RestoreError as exc:
            raise _Refused(exc) from None
        return streaming_response(dl)


class FileSearchView(Base, APIView):
    capabilities = {"read": "device.download"}

    @extend_schema(
        parameters=[SearchQuery],
        responses={200: SearchSerializer, 404: OpenApiResponse(description="No such device")},
        summary="Files by name (substring or glob) across a device's snapshots or the fleet",
    )
    def get(self, request):
        q = validated_query(SearchQuery, request)
        if "device" in q:
            devices = [_device(q["device"])]
        else:
            if ADMIN not in roles_of(request.user):
                raise PermissionDenied("A search across the fleet is for an Admin: give a device.")
            devices = list(Device.objects.order_by("hostname", "pk"))
        result = _call(services.search, q["q"], devices, limit=q["limit"])
        return Response(SearchSerializer(result).data)
