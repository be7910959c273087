"""Policies, their revisions and rollout, and their assignments to groups."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from console.api import answers as a
from console.api import serializers as s
from console.api.views.base import Base, actor, validated, validated_query
from console.policies import services as policies
from console.policies import spec as specs
from console.policies.models import Policy, PolicyAssignment


class RevisionQuery(serializers.Serializer):
    against = serializers.IntegerField(
        required=False,
        min_value=1,
        help_text="Compare with this revision number (default: the previous)",
    )


class PolicyViewSet(Base, viewsets.ModelViewSet):
    serializer_class = s.PolicySerializer
    capabilities = {"*": "policy.manage"}

    def get_queryset(self):
        return Policy.objects.select_related("current_revision__created_by").prefetch_related(
            "assignments__group", "assignments__policy"
        )

    def perform_create(self, serializer):
        d = serializer.validated_data
        policy = policies.create_policy(
            actor(self.request),
            d["name"],
            d["spec"],
            d.get("description", ""),
            d.get("comment", ""),
        )
        serializer.instance = self.get_queryset().get(pk=policy.pk)

    def update(self, request, *args, **kwargs):
        policy = self.get_object()
        partial = kwargs.get("partial", False)
        ser = self.get_serializer(policy, data=request.data, partial=partial)
        ser.is_valid(raise_exception=True)
        d = ser.validated_data
        spec_data = d.get("spec", policy.current_revision.spec if policy.current_revision else None)
        policies.update_policy(
            actor(request),
            policy,
            d.get("name", policy.name),
            spec_data,
            d.get("description", policy.description),
            d.get("comment", ""),
        )
        return Response(self.get_serializer(self.get_queryset().get(pk=policy.pk)).data)

    def perform_destroy(self, instance):
        policies.delete_policy(actor(self.request), instance)

    @extend_schema(responses=s.RevisionSerializer(many=True), summary="Revision history")
    @action(detail=True, methods=["get"])
    def revisions(self, request, pk=None):
        qs = self.get_object().revisions.select_related("created_by").order_by("-number")
        page = self.paginate_queryset(qs)
        return self.get_paginated_response(s.RevisionSerializer(page, many=True).data)

    @extend_schema(
        parameters=[
            RevisionQuery,
            OpenApiParameter("number", int, OpenApiParameter.PATH, description="Revision number"),
        ],
        responses=a.RevisionWithDiff,
        summary="One revision and its diff",
    )
    @action(detail=True, methods=["get"], url_path=r"revisions/(?P<number>\d+)")
    def revision(self, request, pk=None, number=None):
        policy = self.get_object()
        against = validated_query(RevisionQuery, request).get("against")
        rev = get_object_or_404(policy.revisions, number=number)
        if against:
            other = get_object_or_404(policy.revisions, number=against)
            diff = specs.diff_specs(other.spec, rev.spec)
        else:
            diff = policies.revision_diff(rev)
        return Response({**s.RevisionSerializer(rev).data, "diff": diff})

    @extend_schema(
        request=s.AssignInput, responses={201: s.AssignmentSerializer}, summary="Assign to a group"
    )
    @action(detail=True, methods=["post"])
    def assign(self, request, pk=None):
        data = validated(s.AssignInput, request)
        assignment = policies.assign_policy(
            actor(request),
            self.get_object(),
            data["group"],
            data["precedence"],
        )
        return Response(s.AssignmentSerializer(assignment).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses=a.RolloutRow(many=True), summary="Rollout progress per revision")
    @action(detail=True, methods=["get"], pagination_class=None)
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
        policies.unassign_policy(actor(self.request), instance)
