"""Input fields that take a value of the type the OpenAPI schema declares
and nothing else. DRF's own fields are lenient: a CharField takes 0 and
false as text, an IntegerField "5" and 5.0, a BooleanField "yes" and 1, a
list field a JSON object (its keys), a primary key "1" or true. The schema
says text, integer, boolean, array: the contract test
(tests/console/test_api_contract.py) sends the others and expects a 400.

A form-encoded body (the browsable API, a form post) carries only text: its
values are read as DRF reads them.
"""

from __future__ import annotations

import uuid

from django.db import models
from django.http import QueryDict
from rest_framework import serializers


def _form(field) -> bool:
    """Whether the body being read is form-encoded (every value is text)."""
    return isinstance(getattr(field.root, "initial_data", None), QueryDict)


class Text(serializers.CharField):
    def to_internal_value(self, data):
        if not isinstance(data, str) and not _form(self):
            self.fail("invalid")
        return super().to_internal_value(data)


class Email(serializers.EmailField):
    def to_internal_value(self, data):
        if not isinstance(data, str) and not _form(self):
            self.fail("invalid")
        return super().to_internal_value(data)


class Integer(serializers.IntegerField):
    def to_internal_value(self, data):
        if (isinstance(data, bool) or not isinstance(data, int)) and not _form(self):
            self.fail("invalid")
        return super().to_internal_value(data)


class Boolean(serializers.BooleanField):
    def to_internal_value(self, data):
        if _form(self):
            return super().to_internal_value(data)
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class StrictUUID(serializers.UUIDField):
    def to_internal_value(self, data):
        if not isinstance(data, str) and not _form(self):
            self.fail("invalid", value=data)
        return super().to_internal_value(data)


class PrimaryKey(serializers.PrimaryKeyRelatedField):
    """A related object's id as the schema types it: an integer, or a UUID as text."""

    def run_validation(self, data=serializers.empty):
        # DRF reads "" as null for related fields; in JSON the schema says
        # integer (or UUID text) or null, so "" is a wrong type there.
        if data == "" and not _form(self):
            self.fail("incorrect_type", data_type="str")
        return super().run_validation(data)

    def to_internal_value(self, data):
        pk = self.get_queryset().model._meta.pk
        if _form(self):
            pass
        elif isinstance(pk, models.UUIDField):
            if not isinstance(data, str):
                self.fail("incorrect_type", data_type=type(data).__name__)
            try:
                uuid.UUID(data)
            except ValueError:
                self.fail("incorrect_type", data_type="str")
        elif isinstance(data, bool) or not isinstance(data, int):
            self.fail("incorrect_type", data_type=type(data).__name__)
        return super().to_internal_value(data)


class List(serializers.ListField):
    """A JSON array (DRF's ListField refuses an object; this one says why in the same words)."""


class ModelSerializer(serializers.ModelSerializer):
    """Model fields read as the strict fields above."""

    serializer_field_mapping = {
        **serializers.ModelSerializer.serializer_field_mapping,
        models.CharField: Text,
        models.TextField: Text,
        models.SlugField: Text,
        models.EmailField: Email,
        models.BooleanField: Boolean,
        models.IntegerField: Integer,
        models.PositiveIntegerField: Integer,
        models.PositiveSmallIntegerField: Integer,
        models.SmallIntegerField: Integer,
        models.BigIntegerField: Integer,
    }
    serializer_related_field = PrimaryKey
