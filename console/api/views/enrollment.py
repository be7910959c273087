"""Enrollment tokens."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from console.api import answers as a
from console.api import serializers as s
from console.api.views.base import Base, actor, validated
from console.fleet import services as fleet
from console.fleet.models import EnrollmentToken


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
        responses={201: a.EnrollmentTokenCreated},
        summary="Create a token; the secret is in the response, once",
    )
    def create(self, request, *args, **kwargs):
        d = validated(s.EnrollmentTokenInput, request)
        token, plaintext = fleet.create_enrollment_token(
            actor(request),
            d["name"],
            d["group"],
            expires_in_hours=d["expires_in_hours"],
            max_uses=d["max_uses"],
        )
        return Response(
            {**s.EnrollmentTokenSerializer(token).data, "token": plaintext},
            status=status.HTTP_201_CREATED,
        )

    @extend_schema(request=None, responses=s.EnrollmentTokenSerializer, summary="Revoke")
    @action(detail=True, methods=["post"])
    def revoke(self, request, pk=None):
        token = fleet.revoke_enrollment_token(actor(request), self.get_object())
        return Response(s.EnrollmentTokenSerializer(token).data)
