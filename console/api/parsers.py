"""The API's JSON body parser: bad input is a 400 with a reason, never a 500.

DRF's own ``JSONParser`` turns a ``ValueError`` into a 400 but lets the
``RecursionError`` of a deeply nested body through (a 500, also on the
unauthenticated token endpoint). This one parses with
``console.core.safejson`` (depth limit, no NaN).
"""

from __future__ import annotations

from django.conf import settings
from rest_framework import parsers
from rest_framework.exceptions import ParseError

from console.core import safejson


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            # NUL is left to the serializers, which name the field that holds it.
            return safejson.loads(stream.read().decode(encoding), refuse_nul=False)
        except (safejson.UntrustedJSONError, UnicodeDecodeError) as exc:
            raise ParseError(f"JSON parse error - {exc}") from None


# Every view parses with these (settings.REST_FRAMEWORK and views that set their own).
PARSER_CLASSES = [JSONParser, parsers.FormParser, parsers.MultiPartParser]
