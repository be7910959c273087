"""Serializers of API v1, one module per subject. Output serializers are
read-only views of the models; input serializers only shape the request for a
service function. The views use them as ``serializers.<Name>`` (re-exported
here); the class names are the OpenAPI component names, so they do not change."""

from console.api.serializers.accounts import AddressInput, IPAddress, UserSerializer
from console.api.serializers.audit import AuditEventSerializer
from console.api.serializers.devices import (
    BulkInput,
    DefinedInSerializer,
    DeviceConnectionSerializer,
    DeviceDetailSerializer,
    DeviceGroupsInput,
    DeviceSerializer,
    GroupRefSerializer,
    ReplaceInput,
    RestoreInput,
    RevokeInput,
)
from console.api.serializers.enrollment import EnrollmentTokenInput, EnrollmentTokenSerializer
from console.api.serializers.groups import AddDevicesInput, GroupSerializer
from console.api.serializers.jobs import CommandSerializer, JobRunSerializer, SnapshotSerializer
from console.api.serializers.policies import (
    AssignInput,
    AssignmentSerializer,
    PolicySerializer,
    RevisionSerializer,
)
from console.api.serializers.storage import (
    BUCKET_MESSAGE,
    BUCKET_PATTERN,
    StorageTargetSerializer,
)

__all__ = [
    "BUCKET_MESSAGE",
    "BUCKET_PATTERN",
    "AddDevicesInput",
    "AddressInput",
    "AssignInput",
    "AssignmentSerializer",
    "AuditEventSerializer",
    "BulkInput",
    "CommandSerializer",
    "DefinedInSerializer",
    "DeviceConnectionSerializer",
    "DeviceDetailSerializer",
    "DeviceGroupsInput",
    "DeviceSerializer",
    "EnrollmentTokenInput",
    "EnrollmentTokenSerializer",
    "GroupRefSerializer",
    "GroupSerializer",
    "IPAddress",
    "JobRunSerializer",
    "PolicySerializer",
    "ReplaceInput",
    "RestoreInput",
    "RevisionSerializer",
    "RevokeInput",
    "SnapshotSerializer",
    "StorageTargetSerializer",
    "UserSerializer",
]
