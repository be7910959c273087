"""API v1 serializers: Storage targets."""

from __future__ import annotations

from django.core.validators import RegexValidator
from rest_framework import serializers

from console.api import fields as f
from console.storage.models import StorageTarget

BUCKET_PATTERN = r"^[a-z0-9.-]*[a-z0-9][a-z0-9.-]*$"
BUCKET_MESSAGE = "3–63 characters: lower-case letters, digits, dots and hyphens."


class StorageTargetSerializer(f.ModelSerializer):
    """Credentials are write-only: the API never returns them."""

    access_key = f.Text(write_only=True, required=False, allow_blank=True, default="")
    secret_key = f.Text(write_only=True, required=False, allow_blank=True, default="")
    has_credentials = serializers.BooleanField(read_only=True)

    class Meta:
        model = StorageTarget
        fields = [
            "id",
            "name",
            "endpoint",
            "bucket",
            "region",
            "prefix",
            "use_tls",
            "is_default",
            "access_key",
            "secret_key",
            "has_credentials",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "created_at", "updated_at", "has_credentials"]
        extra_kwargs = {
            "name": {"validators": []},
            # The S3 rule the service enforces (console/storage/services.py), declared.
            "bucket": {
                "min_length": 3,
                "max_length": 63,
                "validators": [RegexValidator(BUCKET_PATTERN, BUCKET_MESSAGE)],
            },
        }
