"""Content-Security-Policy on every response.

The dashboard loads one script and one stylesheet from its own origin and
has no inline script, so the policy allows scripts from 'self' only: an
injected ``<script>`` or ``onerror=`` (an agent-chosen host name that slipped
past escaping) does not run. Inline ``style=""`` attributes (progress bar
widths) are allowed through ``style-src-attr``; ``<style>`` elements are
not. The API docs use drf-spectacular's split view, whose start-up script is
a separate request rather than an inline block. Django 5.2 has no CSP of its
own (6.0 adds one), so this small middleware sets the header; the value is
``settings.CAIRN_CSP``.
"""

from __future__ import annotations

from django.conf import settings

DEFAULT_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "style-src-attr 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response
        self.policy = getattr(settings, "CAIRN_CSP", DEFAULT_POLICY)

    def __call__(self, request):
        response = self.get_response(request)
        if self.policy and "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = self.policy
        return response
