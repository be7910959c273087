"""Service functions raise Django's ValidationError / PermissionDenied; the
API answers them as 400 with field errors / 403."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from console.policies.services import PolicyValidationError


def handler(exc, context):
    if isinstance(exc, PolicyValidationError):
        errors = {(k if k == "name" else f"spec.{k}"): v for k, v in exc.errors.items()}
        return Response(errors, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, DjangoValidationError):
        if hasattr(exc, "error_dict"):
            body = exc.message_dict
        else:
            body = {"non_field_errors": exc.messages}
        return Response(body, status=status.HTTP_400_BAD_REQUEST)
    return exception_handler(exc, context)
