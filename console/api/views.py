"""REST API v1: the same service functions and capabilities as the dashboard.

Authentication: session (the browser) or ``Authorization: Token <key>``
(POST /api/v1/auth/token/ issues a new one, replacing the old, shown once).
Lists are paginated (``?page=``, ``?page_size=`` up to 500; the job, command
and audit histories use cursor pagination) and filtered by query parameters
documented in the OpenAPI schema at /api/schema/ (browsable at /api/docs/).
"""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.db.models import Count
from django.shortcuts import get_object_or_404
from django.utils.dateparse import parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.decorators import action, api_view, permission_classes
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import CursorPagination, PageNumberPagination
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from console.accounts import lockout
from console.accounts import services as accounts
from console.accounts.roles import BULK_ACTIONS, CAPABILITIES, can, check, role_of
from console.accounts.services import save_user
from console.api import serializers as s
from console.api.parsers import PARSER_CLASSES
from console.api.permissions import CapabilityPermission
from console.audit.models import AuditEvent
from console.audit.queries import audit_events
from console.audit.services import Actor, client_address
from console.fleet import services as fleet
from console.fleet.models import OS, Device, DeviceGroup, EnrollmentToken
from console.fleet.queries import STATUS_CHOICES, DeviceFilter, overview
from console.jobs import queries as job_queries
from console.jobs import services as jobs
from console.jobs.models import CommandKind, CommandState, JobKind, JobState, Snapshot
from console.policies import services as policies
from console.policies import spec as specs
from console.policies.models import Policy, PolicyAssignment
from console.storage import services as storage
from console.storage.models import StorageTarget


def _actor(request) -> Actor:
    return Actor.from_request(request, via=AuditEvent.Via.API)


def _input(serializer_class, request) -> dict:
    """The request's body, validated by an input serializer (a 400 with the errors if not)."""
    data = serializer_class(data=request.data)
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


class Base:
    permission_classes = [CapabilityPermission]
    pagination_class = Pages
    capabilities: dict[str, str] = {}


def _q(name: str, description: str, type_=str, enum=None) -> OpenApiParameter:
    return OpenApiParameter(name, type_, OpenApiParameter.QUERY, description=description, enum=enum)


def _list_filters(*parameters: OpenApiParameter):
    """Class decorator: a viewset's list filters, for the OpenAPI schema."""
    return extend_schema_view(list=extend_schema(parameters=list(parameters)))


DEVICE_FILTERS = [
    _q("q", "Hostname or user contains"),
    _q(
        "status",
        "Protection or condition (default: every active device; 'all' includes revoked)",
        enum=[v for v, _ in STATUS_CHOICES if v] + ["all"],
    ),
    _q("group", "Device group id", int),
    _q("os", "Operating system", enum=list(OS.values)),
    _q("policy", "Effective policy id", int),
    _q(
        "sort",
        "Sort key",
        enum=[
            "hostname",
            "-hostname",
            "last_success",
            "-last_success",
            "last_seen",
            "-last_seen",
            "os",
            "owner",
            "policy",
        ],
    ),
]


# --- me, overview, spec defaults ---------------------------------------------------------------


@extend_schema(responses=OpenApiTypes.OBJECT, summary="The signed-in user, role and capabilities")
@api_view(["GET"])
@permission_classes([IsAuthenticated])
def me(request):
    user = request.user
    return Response(
        {
            "username": user.get_username(),
            "role": role_of(user),
            "capabilities": sorted(c for c in CAPABILITIES if can(user, c)),
        }
    )


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


class TokenLogin(ObtainAuthToken):
    """POST username and password, receive a new API token (the previous one
    stops working). Failures count toward the sign-in lockout like the login
    page's (console/accounts/lockout.py): 429 with the wait while locked."""

    def post(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        if not serializer.is_valid():
            if lockout.is_locked_out(request):
                username = str(request.data.get("username", ""))[:150]
                return Response(
                    {"detail": lockout.message(username, client_address(request))},
                    status=status.HTTP_429_TOO_MANY_REQUESTS,
                )
            raise ValidationError(serializer.errors)
        user = serializer.validated_data["user"]
        actor = Actor(user=user, address=client_address(request), via=AuditEvent.Via.API)
        return Response({"token": accounts.issue_api_token(actor, user)})

    # ObtainAuthToken names its own parsers (DRF's JSONParser among them).
    parser_classes = PARSER_CLASSES


# --- devices ----------------------------------------------------------------------------------


@_list_filters(*DEVICE_FILTERS)
class DeviceViewSet(Base, viewsets.ReadOnlyModelViewSet):
    capabilities = {
        "backup": "device.backup",
        "verify": "device.verify",
        "restore": "device.restore",
        "revoke": "device.revoke",
        "set_groups": "device.edit",
        "bulk": "view",  # the action's own capability is checked inside
    }

    def get_queryset(self):
        qs = Device.objects.select_related("effective_policy", "effective_revision", "connection")
        if self.action == "list":
            return DeviceFilter.from_params(self.request.query_params).apply(qs)
        return qs.prefetch_related("groups")

    def get_serializer_class(self):
        return s.DeviceSerializer if self.action == "list" else s.DeviceDetailSerializer

    @extend_schema(
        request=s.BulkInput,
        responses=OpenApiTypes.OBJECT,
        summary="One action on many devices (back up, verify, add to group)",
    )
    @action(detail=False, methods=["post"])
    def bulk(self, request):
        d = _input(s.BulkInput, request)
        check(request.user, BULK_ACTIONS[d["action"]])
        devices = list(Device.objects.filter(pk__in=d["devices"], revoked=False))
        actor = _actor(request)
        if d["action"] == "add_to_group":
            if d["group"] is None:
                return Response({"group": ["Choose a group."]}, status=status.HTTP_400_BAD_REQUEST)
            fleet.add_devices_to_group(actor, d["group"], devices)
            return Response({"devices": len(devices), "group": d["group"].pk})
        commands = jobs.request_for_devices(actor, d["action"], devices)
        return Response(
            {"devices": len(devices), "commands": [str(c.pk) for c in commands]},
            status=status.HTTP_202_ACCEPTED,
        )

    @extend_schema(request=None, responses=s.CommandSerializer, summary="Back up now")
    @action(detail=True, methods=["post"])
    def backup(self, request, pk=None):
        command = jobs.request_backup(_actor(request), self.get_object())
        return Response(s.CommandSerializer(command).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses=s.CommandSerializer, summary="Verify the repository")
    @action(detail=True, methods=["post"])
    def verify(self, request, pk=None):
        command = jobs.request_verify(_actor(request), self.get_object())
        return Response(s.CommandSerializer(command).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=s.RestoreInput, responses=s.CommandSerializer, summary="Restore files")
    @action(detail=True, methods=["post"])
    def restore(self, request, pk=None):
        data = _input(s.RestoreInput, request)
        command = jobs.request_restore(_actor(request), self.get_object(), **data)
        return Response(s.CommandSerializer(command).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=s.RevokeInput, responses=s.DeviceDetailSerializer, summary="Revoke")
    @action(detail=True, methods=["post"])
    def revoke(self, request, pk=None):
        data = _input(s.RevokeInput, request)
        device = fleet.revoke_device(_actor(request), self.get_object(), data["reason"])
        return Response(s.DeviceDetailSerializer(device).data)

    @extend_schema(
        request=s.DeviceGroupsInput, responses=s.DeviceDetailSerializer, summary="Set groups"
    )
    @action(detail=True, methods=["put"], url_path="groups")
    def set_groups(self, request, pk=None):
        data = _input(s.DeviceGroupsInput, request)
        device = fleet.set_device_groups(_actor(request), self.get_object(), data["groups"])
        device = self.get_queryset().get(pk=device.pk)
        return Response(s.DeviceDetailSerializer(device).data)

    @extend_schema(responses=OpenApiTypes.OBJECT, summary="Effective policy, computed now")
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


# --- groups -----------------------------------------------------------------------------------


class GroupViewSet(Base, viewsets.ModelViewSet):
    serializer_class = s.GroupSerializer
    capabilities = {"*": "group.manage"}

    def get_queryset(self):
        return DeviceGroup.objects.annotate(device_count=Count("devices")).order_by("name")

    def perform_create(self, serializer):
        d = serializer.validated_data
        serializer.instance = fleet.create_group(
            _actor(self.request), d["name"], d.get("description", "")
        )

    def perform_update(self, serializer):
        d = serializer.validated_data
        group = serializer.instance
        serializer.instance = fleet.update_group(
            _actor(self.request),
            group,
            d.get("name", group.name),
            d.get("description", group.description),
        )

    def perform_destroy(self, instance):
        fleet.delete_group(_actor(self.request), instance)

    @extend_schema(request=s.AddDevicesInput, responses=s.GroupSerializer, summary="Add devices")
    @action(detail=True, methods=["post"])
    def devices(self, request, pk=None):
        data = _input(s.AddDevicesInput, request)
        group = self.get_object()
        fleet.add_devices_to_group(_actor(request), group, data["devices"])
        return Response(s.GroupSerializer(self.get_queryset().get(pk=group.pk)).data)


# --- policies ----------------------------------------------------------------------------------


class PolicyViewSet(Base, viewsets.ModelViewSet):
    serializer_class = s.PolicySerializer
    capabilities = {"*": "policy.manage"}

    def get_queryset(self):
        return Policy.objects.select_related("current_revision__created_by").prefetch_related(
            "assignments__group", "assignments__policy"
        )

    def perform_create(self, serializer):
        d = serializer.validated_data
        serializer.instance = policies.create_policy(
            _actor(self.request),
            d["name"],
            d["spec"],
            d.get("description", ""),
            d.get("comment", ""),
        )

    def update(self, request, *args, **kwargs):
        policy = self.get_object()
        partial = kwargs.get("partial", False)
        ser = self.get_serializer(policy, data=request.data, partial=partial)
        ser.is_valid(raise_exception=True)
        d = ser.validated_data
        spec_data = d.get("spec", policy.current_revision.spec if policy.current_revision else None)
        policies.update_policy(
            _actor(request),
            policy,
            d.get("name", policy.name),
            spec_data,
            d.get("description", policy.description),
            d.get("comment", ""),
        )
        return Response(self.get_serializer(self.get_queryset().get(pk=policy.pk)).data)

    def perform_destroy(self, instance):
        policies.delete_policy(_actor(self.request), instance)

    @extend_schema(responses=s.RevisionSerializer(many=True), summary="Revision history")
    @action(detail=True, methods=["get"])
    def revisions(self, request, pk=None):
        qs = self.get_object().revisions.select_related("created_by").order_by("-number")
        page = self.paginate_queryset(qs)
        return self.get_paginated_response(s.RevisionSerializer(page, many=True).data)

    @extend_schema(
        parameters=[
            _q("against", "Compare with this revision number (default: the previous)", int)
        ],
        responses=OpenApiTypes.OBJECT,
        summary="One revision and its diff",
    )
    @action(detail=True, methods=["get"], url_path=r"revisions/(?P<number>\d+)")
    def revision(self, request, pk=None, number=None):
        policy = self.get_object()
        rev = get_object_or_404(policy.revisions, number=number)
        against = request.query_params.get("against")
        if against and against.isdigit():
            other = get_object_or_404(policy.revisions, number=int(against))
            diff = specs.diff_specs(other.spec, rev.spec)
        else:
            diff = policies.revision_diff(rev)
        return Response({**s.RevisionSerializer(rev).data, "diff": diff})

    @extend_schema(
        request=s.AssignInput, responses=s.AssignmentSerializer, summary="Assign to a group"
    )
    @action(detail=True, methods=["post"])
    def assign(self, request, pk=None):
        data = _input(s.AssignInput, request)
        assignment = policies.assign_policy(
            _actor(request),
            self.get_object(),
            data["group"],
            data["precedence"],
        )
        return Response(s.AssignmentSerializer(assignment).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses=OpenApiTypes.OBJECT, summary="Rollout progress per revision")
    @action(detail=True, methods=["get"])
    def rollout(self, request, pk=None):
        rows = policies.rollout_progress(self.get_object())
        return Response(
            [
                {
                    "revision": r["revision"].number,
                    "hash": r["revision"].hash,
                    "targeted": r["targeted"],
                    "acknowledged": r["acknowledged"],
                    "percent": r["percent"],
                }
                for r in rows
            ]
        )


class AssignmentViewSet(
    Base,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    serializer_class = s.AssignmentSerializer
    capabilities = {"*": "policy.manage"}

    def get_queryset(self):
        return PolicyAssignment.objects.select_related("policy", "group")

    def perform_destroy(self, instance):
        policies.unassign_policy(_actor(self.request), instance)


# --- jobs, commands, snapshots --------------------------------------------------------------------


@_list_filters(
    _q("device", "Device id"),
    _q("state", "State", enum=list(JobState.values)),
    _q("kind", "Kind", enum=list(JobKind.values)),
    _q("since", "Started at or after (ISO 8601)"),
)
class JobRunViewSet(Base, viewsets.ReadOnlyModelViewSet):
    serializer_class = s.JobRunSerializer
    pagination_class = NewestFirst

    def get_queryset(self):
        p = self.request.query_params
        return job_queries.job_runs(
            device=p.get("device"),
            state=p.get("state"),
            kind=p.get("kind"),
            since=parse_datetime(p.get("since", "") or ""),
        )


@_list_filters(
    _q("device", "Device id"),
    _q("state", "State", enum=list(CommandState.values)),
    _q("kind", "Kind", enum=list(CommandKind.values)),
)
class CommandViewSet(Base, viewsets.ReadOnlyModelViewSet):
    serializer_class = s.CommandSerializer
    pagination_class = CommandCursor
    capabilities = {"cancel": "device.backup"}

    def get_queryset(self):
        p = self.request.query_params
        return job_queries.commands(
            device=p.get("device"), state=p.get("state"), kind=p.get("kind")
        )

    @extend_schema(request=None, responses=s.CommandSerializer, summary="Cancel an open command")
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        command = jobs.cancel_command(_actor(request), self.get_object())
        return Response(s.CommandSerializer(command).data, status=status.HTTP_202_ACCEPTED)


@_list_filters(_q("device", "Device id"))
class SnapshotViewSet(Base, viewsets.ReadOnlyModelViewSet):
    serializer_class = s.SnapshotSerializer

    def get_queryset(self):
        qs = Snapshot.objects.order_by("-taken_at", "-id")
        if self.request.query_params.get("device"):
            qs = qs.filter(device_id=self.request.query_params["device"])
        return qs


# --- enrollment, storage, audit, users ----------------------------------------------------------


class EnrollmentTokenViewSet(
    Base,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    viewsets.GenericViewSet,
):
    serializer_class = s.EnrollmentTokenSerializer
    capabilities = {"read": "token.view", "*": "token.manage"}

    def get_queryset(self):
        return EnrollmentToken.objects.select_related("group")

    @extend_schema(
        request=s.EnrollmentTokenInput,
        responses=OpenApiTypes.OBJECT,
        summary="Create a token; the secret is in the response, once",
    )
    def create(self, request, *args, **kwargs):
        d = _input(s.EnrollmentTokenInput, request)
        token, plaintext = fleet.create_enrollment_token(
            _actor(request),
            d["name"],
            d["group"],
            expires_in=timedelta(hours=d["expires_in_hours"]),
            max_uses=d["max_uses"],
        )
        return Response(
            {**s.EnrollmentTokenSerializer(token).data, "token": plaintext},
            status=status.HTTP_201_CREATED,
        )

    @extend_schema(request=None, responses=s.EnrollmentTokenSerializer, summary="Revoke")
    @action(detail=True, methods=["post"])
    def revoke(self, request, pk=None):
        token = fleet.revoke_enrollment_token(_actor(request), self.get_object())
        return Response(s.EnrollmentTokenSerializer(token).data)


class StorageTargetViewSet(Base, viewsets.ModelViewSet):
    serializer_class = s.StorageTargetSerializer
    capabilities = {"read": "storage.view", "*": "storage.manage"}
    queryset = StorageTarget.objects.all()

    def perform_create(self, serializer):
        serializer.instance = storage.save_storage_target(
            _actor(self.request), dict(serializer.validated_data)
        )

    def perform_update(self, serializer):
        data = {
            **{f: getattr(serializer.instance, f) for f in storage.PUBLIC_FIELDS},
            **serializer.validated_data,
        }
        serializer.instance = storage.save_storage_target(
            _actor(self.request), data, serializer.instance
        )

    def perform_destroy(self, instance):
        storage.delete_storage_target(_actor(self.request), instance)


@_list_filters(
    _q("actor", "Username"),
    _q("action", "Action prefix, e.g. 'policy.'"),
    _q("target_type", "Target type, e.g. 'policy', 'device'"),
    _q("target_id", "Target id"),
    _q("via", "Through", enum=list(AuditEvent.Via.values)),
    _q("since", "At or after (ISO 8601)"),
    _q("until", "Before (ISO 8601)"),
)
class AuditEventViewSet(Base, viewsets.ReadOnlyModelViewSet):
    serializer_class = s.AuditEventSerializer
    pagination_class = AuditCursor
    capabilities = {"read": "audit.view"}

    def get_queryset(self):
        p = self.request.query_params
        return audit_events(
            actor=p.get("actor"),
            action=p.get("action"),
            target_type=p.get("target_type"),
            target_id=p.get("target_id"),
            via=p.get("via"),
            since=parse_datetime(p.get("since", "") or ""),
            until=parse_datetime(p.get("until", "") or ""),
        )


class UserViewSet(
    Base,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    serializer_class = s.UserSerializer
    capabilities = {"read": "user.manage", "*": "user.manage"}

    def get_queryset(self):
        return get_user_model().objects.order_by("username").prefetch_related("groups")

    def perform_create(self, serializer):
        d = serializer.validated_data
        serializer.instance = save_user(
            _actor(self.request),
            d["username"],
            d.get("role") or None,
            d.get("email", ""),
            d.get("password", ""),
        )

    def perform_update(self, serializer):
        d, user = serializer.validated_data, serializer.instance
        serializer.instance = save_user(
            _actor(self.request),
            d.get("username", user.username),
            d["role"] if "role" in d else role_of(user),
            d.get("email", user.email),
            d.get("password", ""),
            user,
        )

    def _answer(self, user):
        user.refresh_from_db()
        return Response(s.UserSerializer(user).data)

    @extend_schema(request=None, responses=s.UserSerializer, summary="Revoke the user's API token")
    @action(detail=True, methods=["post"], url_path="revoke-token")
    def revoke_token(self, request, pk=None):
        user = self.get_object()
        accounts.revoke_api_token(_actor(request), user)
        return self._answer(user)

    @extend_schema(
        request=None, responses=s.UserSerializer, summary="Deactivate: no sign-in, session or token"
    )
    @action(detail=True, methods=["post"])
    def deactivate(self, request, pk=None):
        return self._answer(accounts.set_user_active(_actor(request), self.get_object(), False))

    @extend_schema(request=None, responses=s.UserSerializer, summary="Reactivate")
    @action(detail=True, methods=["post"])
    def activate(self, request, pk=None):
        return self._answer(accounts.set_user_active(_actor(request), self.get_object(), True))

    @extend_schema(
        request=None, responses=OpenApiTypes.OBJECT, summary="Lift a sign-in lockout of the user"
    )
    @action(detail=True, methods=["post"])
    def unlock(self, request, pk=None):
        cleared = lockout.unlock_user(_actor(request), self.get_object())
        return Response({"cleared_failures": cleared})

    @extend_schema(
        request=s.AddressInput,
        responses=OpenApiTypes.OBJECT,
        summary="Lift a sign-in lockout of a client address",
    )
    @action(detail=False, methods=["post"], url_path="unlock-address")
    def unlock_address(self, request):
        d = _input(s.AddressInput, request)
        return Response({"cleared_failures": lockout.unlock_address(_actor(request), d["address"])})
