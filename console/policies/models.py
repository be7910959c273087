"""Policies with immutable, hashed revisions, assigned to device groups.

Every save of a policy is a new PolicyRevision (number, canonical spec,
SHA-256 of the spec). Revisions are never changed or deleted. The spec format
and its validation live in console/policies/spec.py; the merge into a
device's effective policy in console/policies/services.py.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone


class Policy(models.Model):
    name = models.CharField(max_length=120, unique=True)
    description = models.TextField(blank=True)
    current_revision = models.ForeignKey(
        "policies.PolicyRevision",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    is_demo = models.BooleanField(default=False, help_text="Created by seed_demo")

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "policies"

    def __str__(self) -> str:
        return self.name


class PolicyRevision(models.Model):
    """One immutable version of a policy's spec."""

    policy = models.ForeignKey(Policy, on_delete=models.CASCADE, related_name="revisions")
    number = models.PositiveIntegerField()
    spec = models.JSONField()
    hash = models.CharField(max_length=64, db_index=True, help_text="SHA-256 of the canonical spec")
    comment = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )

    class Meta:
        ordering = ["policy", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["policy", "number"], name="policy_revision_number_uniq")
        ]

    def __str__(self) -> str:
        return f"{self.policy.name} r{self.number}"

    def save(self, *args, **kwargs):
        if self.pk is not None and not kwargs.pop("_allow_update", False):
            raise ValidationError("Policy revisions are immutable; save a new revision instead.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValidationError("Policy revisions are immutable and cannot be deleted.")

    @property
    def short_hash(self) -> str:
        return self.hash[:10]


class PolicyAssignment(models.Model):
    """A policy applied to a device group. Lower precedence number wins (1 = first)."""

    policy = models.ForeignKey(Policy, on_delete=models.CASCADE, related_name="assignments")
    group = models.ForeignKey(
        "fleet.DeviceGroup", on_delete=models.CASCADE, related_name="assignments"
    )
    precedence = models.PositiveIntegerField(default=100)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["precedence", "id"]
        constraints = [
            models.UniqueConstraint(fields=["policy", "group"], name="policy_group_uniq")
        ]

    def __str__(self) -> str:
        return f"{self.policy} → {self.group} (precedence {self.precedence})"
