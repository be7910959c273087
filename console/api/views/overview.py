"""Fleet overview figures and the policy editor's defaults."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import viewsets
from rest_framework.decorators import api_view, permission_classes
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from console.api.views.base import Base
from console.fleet.queries import overview
from console.policies import spec as specs


class OverviewView(Base, viewsets.ViewSet):
    capabilities = {"list": "view"}

    @extend_schema(
        responses=OpenApiTypes.OBJECT, summary="Fleet protection figures, 30-day chart, rollout"
    )
    def list(self, request):
        data = overview()
        return Response(
            {
                "counts": data["counts"],
                "stale_days": data["stale_days"],
                "running_jobs": data["running_jobs"],
                "chart": [{**d, "day": d["day"].isoformat()} for d in data["chart"]],
                "failing_devices": [
                    {
                        "id": str(d.pk),
                        "hostname": d.hostname,
                        "consecutive_failures": d.consecutive_failures,
                        "last_error": d.last_error,
                    }
                    for d in data["failing_devices"]
                ],
                "rollout": [
                    {
                        "policy": r["policy"].pk,
                        "policy_name": r["policy"].name,
                        "revision": r["revision"].number,
                        "hash": r["revision"].hash,
                        "targeted": r["targeted"],
                        "acknowledged": r["acknowledged"],
                        "percent": r["percent"],
                    }
                    for r in data["rollout"]
                ],
            }
        )


@extend_schema(
    responses=OpenApiTypes.OBJECT, summary="Default policy spec, known folders, open-file modes"
)
@api_view(["GET"])
@permission_classes([IsAuthenticated])
def spec_defaults(request):
    return Response(
        {
            "default_spec": specs.default_spec(),
            "known_folders": specs.KNOWN_FOLDERS,
            "exclude_reasons": specs.EXCLUDE_REASONS,
            "open_file_modes": specs.OPEN_FILE_MODES,
        }
    )
