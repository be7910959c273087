"""A download (services.Download) as a streamed HTTP response, shared by the
API and the dashboard: ranges answered with 206 and Content-Range, a zip
without a length (it is produced as it is sent), never cached."""

from __future__ import annotations

from urllib.parse import quote

from django.http import HttpResponse, StreamingHttpResponse

from console.restore.downloads import Download
from console.restore.errors import RangeNotSatisfiable


def streaming_response(dl: Download) -> StreamingHttpResponse:
    if dl.kind == "zip":
        response = StreamingHttpResponse(dl.body, content_type="application/zip")
    else:
        status = 206 if dl.content_range else 200
        response = StreamingHttpResponse(
            dl.body, content_type="application/octet-stream", status=status
        )
        response["Accept-Ranges"] = "bytes"
        if dl.content_range:
            start, end = dl.content_range
            response["Content-Range"] = f"bytes {start}-{end}/{dl.size}"
            response["Content-Length"] = str(end - start + 1)
        else:
            response["Content-Length"] = str(dl.size)
    # the stored name is untrusted: an ASCII fallback without quotes or
    # backslashes, and the exact name percent-encoded (RFC 6266)
    plain = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in dl.filename)
    response["Content-Disposition"] = (
        f"attachment; filename=\"{plain}\"; filename*=UTF-8''{quote(dl.filename, safe='')}"
    )
    response["Cache-Control"] = "no-store"
    response["X-Content-Type-Options"] = "nosniff"
    return response


def range_refused(exc: RangeNotSatisfiable) -> HttpResponse:
    response = HttpResponse(str(exc), status=416, content_type="text/plain")
    response["Content-Range"] = f"bytes */{exc.size}"
    return response
