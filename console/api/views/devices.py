"""Devices: the filtered list, details, commands to one device, bulk actions."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from console.api import answers as a
from console.api import serializers as s
from console.api.views.base import Base, ListFilters, actor, validated
from console.fleet import services as fleet
from console.fleet.filters import DeviceFilterSet
from console.fleet.models import Device
from console.jobs import bulk
from console.jobs import services as jobs
from console.policies import services as policies
from console.restore import onto, takeover
from console.storage import verification


class DeviceViewSet(Base, viewsets.ReadOnlyModelViewSet):
    capabilities = {
        "backup": "device.backup",
        "verify": "device.verify",
        "restore": "device.restore",
        "revoke": "device.revoke",
        "replace": "device.revoke",  # it revokes this device
        "set_groups": "device.edit",
        "bulk": "view",  # the action's own capability is checked by the service
    }
    filter_backends = [ListFilters]
    filterset_class = DeviceFilterSet

    def get_queryset(self):
        qs = Device.objects.select_related("effective_policy", "effective_revision", "connection")
        return qs if self.action == "list" else qs.prefetch_related("groups")

    def get_serializer_class(self):
        return s.DeviceSerializer if self.action == "list" else s.DeviceDetailSerializer

    @extend_schema(
        request=s.BulkInput,
        responses={202: a.BulkOutput, 200: a.BulkOutput},
        summary="One action on many devices (back up, verify: 202; add to group: 200)",
    )
    @action(detail=False, methods=["post"])
    def bulk(self, request):
        d = validated(s.BulkInput, request)
        done = bulk.run_bulk_action(actor(request), d["action"], d["devices"], d.get("group"))
        if done.action == bulk.ADD_TO_GROUP:
            return Response({"devices": len(done.devices), "group": done.group.pk})
        return Response(
            {"devices": len(done.devices), "commands": [str(c.pk) for c in done.commands]},
            status=status.HTTP_202_ACCEPTED,
        )

    def _accepted(self, command) -> Response:
        return Response(s.CommandSerializer(command).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses={202: s.CommandSerializer}, summary="Back up now")
    @action(detail=True, methods=["post"])
    def backup(self, request, pk=None):
        return self._accepted(jobs.request_backup(actor(request), self.get_object()))

    @extend_schema(
        request=None,
        responses={202: s.JobRunSerializer},
        summary="Verify the repository now",
        description="Run by the console's workers on the device's repository with the "
        "organisation key (works while the PC is offline): the structure, and the next "
        "share of the data in the policy's rotation. Answers the verification's job, "
        "running; its result is in the job's `verification` when it finishes.",
    )
    @action(detail=True, methods=["post"])
    def verify(self, request, pk=None):
        run = verification.request_verify(actor(request), self.get_object())
        return Response(s.JobRunSerializer(run).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        request=s.RestoreInput,
        responses={202: s.CommandSerializer},
        summary="Restore files (here, or onto another device with target_device)",
    )
    @action(detail=True, methods=["post"])
    def restore(self, request, pk=None):
        data = validated(s.RestoreInput, request)
        target, source_home = data.pop("target_device"), data.pop("source_home")
        if target is not None:
            return self._accepted(
                onto.request_restore_onto(
                    actor(request),
                    self.get_object(),
                    target,
                    data["snapshot_id"],
                    data["paths"],
                    source_home=source_home,
                    folder=data["target"],
                    overwrite=data["overwrite"],
                )
            )
        return self._accepted(jobs.request_restore(actor(request), self.get_object(), **data))

    @extend_schema(
        request=s.ReplaceInput,
        responses={202: s.CommandSerializer},
        summary="Replace this device: another device takes over its history, policy and groups",
        description="The repository is copied server-side into the replacement's prefix and "
        "the replacement gets a new key to it (a takeover command); this device's groups go "
        "to it and this device is revoked. Refused when the replacement has backups of its own.",
    )
    @action(detail=True, methods=["post"])
    def replace(self, request, pk=None):
        data = validated(s.ReplaceInput, request)
        return self._accepted(
            takeover.take_over(actor(request), self.get_object(), data["replacement"])
        )

    @extend_schema(request=s.RevokeInput, responses=s.DeviceDetailSerializer, summary="Revoke")
    @action(detail=True, methods=["post"])
    def revoke(self, request, pk=None):
        data = validated(s.RevokeInput, request)
        device = fleet.revoke_device(actor(request), self.get_object(), data["reason"])
        return Response(s.DeviceDetailSerializer(device).data)

    @extend_schema(
        request=s.DeviceGroupsInput, responses=s.DeviceDetailSerializer, summary="Set groups"
    )
    @action(detail=True, methods=["put"], url_path="groups")
    def set_groups(self, request, pk=None):
        data = validated(s.DeviceGroupsInput, request)
        device = fleet.set_device_groups(actor(request), self.get_object(), data["groups"])
        device = self.get_queryset().get(pk=device.pk)
        return Response(s.DeviceDetailSerializer(device).data)

    @extend_schema(responses=a.EffectivePolicyOutput, summary="Effective policy, computed now")
    @action(detail=True, methods=["get"], url_path="effective-policy")
    def effective_policy(self, request, pk=None):
        eff = policies.effective_policy_for_device(self.get_object())
        return Response(
            {
                "policy": eff.policy.pk if eff.policy else None,
                "revision": eff.revision.number if eff.revision else None,
                "hash": eff.hash,
                "spec": eff.spec,
                "contributors": [
                    {"policy": p.pk, "revision": r.number, "group": g.pk, "precedence": prec}
                    for p, r, g, prec in eff.contributors
                ],
            }
        )
