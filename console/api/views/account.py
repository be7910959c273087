"""The signed-in user, API tokens, and user management."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.decorators import action, api_view, permission_classes
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from console.accounts import lockout
from console.accounts import services as accounts
from console.accounts.roles import CAPABILITIES, can, role_of
from console.api import answers as a
from console.api import serializers as s
from console.api.parsers import PARSER_CLASSES
from console.api.views.base import Base, actor, validated
from console.audit.models import AuditEvent
from console.audit.services import Actor, client_address


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


class TokenLogin(ObtainAuthToken):
    """POST username and password, receive a new API token (the previous one
    stops working). Failures count toward the sign-in lockout like the login
    page's (console/accounts/lockout.py): 429 with the wait while locked."""

    # ObtainAuthToken names its own parsers (DRF's JSONParser among them).
    parser_classes = PARSER_CLASSES

    @extend_schema(
        request=a.TokenLoginInput,
        responses={200: a.TokenOutput},
        summary="Exchange a username and password for a new API token",
    )
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
        who = Actor(user=user, address=client_address(request), via=AuditEvent.Via.API)
        return Response({"token": accounts.issue_api_token(who, user)})


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
        serializer.instance = accounts.save_user(
            actor(self.request),
            d["username"],
            d.get("role") or None,
            d.get("email", ""),
            d.get("password", ""),
        )

    def perform_update(self, serializer):
        d, user = serializer.validated_data, serializer.instance
        serializer.instance = accounts.save_user(
            actor(self.request),
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
        accounts.revoke_api_token(actor(request), user)
        return self._answer(user)

    @extend_schema(
        request=None, responses=s.UserSerializer, summary="Deactivate: no sign-in, session or token"
    )
    @action(detail=True, methods=["post"])
    def deactivate(self, request, pk=None):
        return self._answer(accounts.set_user_active(actor(request), self.get_object(), False))

    @extend_schema(request=None, responses=s.UserSerializer, summary="Reactivate")
    @action(detail=True, methods=["post"])
    def activate(self, request, pk=None):
        return self._answer(accounts.set_user_active(actor(request), self.get_object(), True))

    @extend_schema(
        request=None, responses=a.ClearedOutput, summary="Lift a sign-in lockout of the user"
    )
    @action(detail=True, methods=["post"])
    def unlock(self, request, pk=None):
        cleared = lockout.unlock_user(actor(request), self.get_object())
        return Response({"cleared_failures": cleared})

    @extend_schema(
        request=s.AddressInput,
        responses=a.ClearedOutput,
        summary="Lift a sign-in lockout of a client address",
    )
    @action(detail=False, methods=["post"], url_path="unlock-address")
    def unlock_address(self, request):
        d = validated(s.AddressInput, request)
        return Response({"cleared_failures": lockout.unlock_address(actor(request), d["address"])})
