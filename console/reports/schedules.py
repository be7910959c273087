"""Scheduled compliance reports and the reports the console generated (models).

A ``ReportSchedule`` names a scope (all devices, a group or a policy), a
frequency (weekly: Monday to Sunday; monthly: a calendar month), recipients
and a format (PDF). The beat task ``reports.run_due_schedules``
(console/reports/scheduling.py) generates each schedule's last closed period
once, records it (``GeneratedReport``, console/reports/models.py: who, scope,
period, SHA-256 of the file, digest of the data), keeps its bytes in a
``ReportFile`` and e-mails it with the PDF attached.

A ``ReportFile`` keeps the document's bytes **in the database**: a
compliance PDF is a few hundred kB to a few MB, it must outlive any change
to devices and policies exactly as it was handed out, and the database is
what the console's own backup already covers, transactionally with the row
that records its digest. The console's object storage holds device
repositories under create-only, per-device grants; reports do not belong
there. The record's ``sha256`` is the digest of those exact bytes (what an
auditor checks a copy against); its ``report_digest`` is the digest of the
report's data that the document prints in its footer.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class Frequency(models.TextChoices):
    WEEKLY = "weekly", "Weekly (Monday to Sunday)"
    MONTHLY = "monthly", "Monthly (calendar month)"


class ScopeKind(models.TextChoices):
    ALL = "all", "All devices"
    GROUP = "group", "A group"
    POLICY = "policy", "A policy"


MAX_RECIPIENTS = 50


class ReportSchedule(models.Model):
    name = models.CharField(max_length=120, unique=True)
    scope_kind = models.CharField(max_length=8, choices=ScopeKind.choices, default=ScopeKind.ALL)
    # A schedule whose group or policy is deleted stays (and says so) rather
    # than silently widening to the whole fleet or vanishing.
    group = models.ForeignKey(
        "fleet.DeviceGroup", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    policy = models.ForeignKey(
        "policies.Policy", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    frequency = models.CharField(max_length=8, choices=Frequency.choices, default=Frequency.MONTHLY)
    recipients = models.JSONField(default=list, help_text="E-mail addresses the PDF is sent to")
    format = models.CharField(max_length=4, choices=[("pdf", "PDF")], default="pdf")
    enabled = models.BooleanField(default=True)
    # The last day of the last period generated (None: none yet).
    last_period_end = models.DateField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True, default="")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        app_label = "reports"
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ReportFile(models.Model):
    """The bytes of a generated report the console keeps (scheduled reports),
    beside the digest record every handed-out copy has (GeneratedReport)."""

    record = models.OneToOneField(
        "reports.GeneratedReport", on_delete=models.CASCADE, related_name="file"
    )
    schedule = models.ForeignKey(
        ReportSchedule, null=True, blank=True, on_delete=models.SET_NULL, related_name="files"
    )
    filename = models.CharField(max_length=200)
    content = models.BinaryField()
    emailed_to = models.JSONField(default=list, blank=True)
    email_error = models.CharField(max_length=500, blank=True, default="")

    class Meta:
        app_label = "reports"

    def __str__(self) -> str:
        return self.filename

    @property
    def content_type(self) -> str:
        return "application/pdf" if self.filename.endswith(".pdf") else "text/csv"
