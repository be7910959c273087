"""AWS Signature V4 query-string pre-signing, with signed extra headers.

The ``minio`` SDK's presigner signs only ``host``; we need to sign
``if-none-match: *`` into PUT grants so that the holder of a grant can create
an object but never replace one (S3 and MinIO refuse a conditional PUT on an
existing key with 412). Kept small and dependency-free; tested against moto.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from urllib.parse import quote, urlsplit

UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"


def _sign(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def _q(value: str, safe: str = "-_.~") -> str:
    return quote(value, safe=safe)


def presign(
    method: str,
    endpoint: str,
    bucket: str,
    key: str,
    *,
    access_key: str,
    secret_key: str,
    region: str,
    expires: int,
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    now: dt.datetime | None = None,
) -> str:
    """A path-style pre-signed URL for ``method`` on ``bucket/key``
    (``key`` may be empty for bucket-level calls such as ListObjectsV2).
    Every header in ``headers`` becomes a signed header the caller must send."""
    parts = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
    host = parts.netloc
    now = now or dt.datetime.now(dt.UTC)
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    datestamp = now.strftime("%Y%m%d")
    scope = f"{datestamp}/{region}/s3/aws4_request"
    signed = {"host": host}
    for name, value in (headers or {}).items():
        signed[name.lower()] = value.strip()
    signed_names = ";".join(sorted(signed))
    path = "/" + _q(bucket) + ("/" + _q(key, safe="-_.~/") if key else "")
    params = dict(query or {})
    params.update(
        {
            "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
            "X-Amz-Credential": f"{access_key}/{scope}",
            "X-Amz-Date": amz_date,
            "X-Amz-Expires": str(int(expires)),
            "X-Amz-SignedHeaders": signed_names,
        }
    )
    canonical_query = "&".join(f"{_q(k)}={_q(v)}" for k, v in sorted(params.items()))
    canonical_headers = "".join(f"{n}:{signed[n]}\n" for n in sorted(signed))
    canonical_request = "\n".join(
        [method, path, canonical_query, canonical_headers, signed_names, UNSIGNED_PAYLOAD]
    )
    string_to_sign = "\n".join(
        [
            "AWS4-HMAC-SHA256",
            amz_date,
            scope,
            hashlib.sha256(canonical_request.encode()).hexdigest(),
        ]
    )
    k = _sign(("AWS4" + secret_key).encode(), datestamp)
    k = _sign(k, region)
    k = _sign(k, "s3")
    k = _sign(k, "aws4_request")
    signature = hmac.new(k, string_to_sign.encode(), hashlib.sha256).hexdigest()
    return f"{parts.scheme}://{host}{path}?{canonical_query}&X-Amz-Signature={signature}"
