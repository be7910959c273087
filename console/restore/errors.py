"""Refusals of the restore services, each with the HTTP status it maps to."""

from __future__ import annotations


class RestoreError(Exception):
    """A refusal with the HTTP status it maps to."""

    status = 400


class NotFound(RestoreError):
    status = 404


class Unavailable(RestoreError):
    """The repository cannot be read now (storage settings, storage down,
    damage): 409, the state of the installation, not a server fault."""

    status = 409


class RangeNotSatisfiable(RestoreError):
    status = 416

    def __init__(self, message: str, size: int):
        super().__init__(message)
        self.size = size
