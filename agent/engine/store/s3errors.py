"""How S3Store reads failures: which are worth another attempt, which mean
a missing key, bad credentials or an existing object (agent/engine/store/s3.py)."""

from __future__ import annotations

import urllib3
from minio.error import InvalidResponseError, S3Error, ServerError

from agent.engine.store.base import StoreError

#: S3 error codes worth another attempt even when the HTTP status is not 5xx.
RETRY_CODES = frozenset(
    {
        "SlowDown",
        "RequestTimeout",
        "RequestTimeTooSkewed",
        "InternalError",
        "ServiceUnavailable",
        "OperationAborted",
        "ConditionalRequestConflict",  # two conditional writes raced: AWS says retry
        "XMinioServerNotInitialized",
    }
)
CREDENTIAL_CODES = frozenset(
    {
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "InvalidToken",
        "ExpiredToken",
        "TokenRefreshRequired",
        "AuthorizationHeaderMalformed",
        "InvalidSecurity",
    }
)
NOT_FOUND_CODES = frozenset({"NoSuchKey", "NoSuchObject", "NoSuchVersion"})


class Retry(Exception):
    """Internal: a failure that another attempt may cure (carries the cause)."""


class Exists(Exception):
    """Internal: the conditional write was refused (translated to ObjectExists)."""


class NotImplementedByServer(Exception):
    """Internal: the server does not implement conditional writes."""


def http_status(exc: BaseException) -> int | None:
    if isinstance(exc, S3Error):
        return getattr(exc.response, "status", None)
    if isinstance(exc, ServerError):
        return exc.status_code
    if isinstance(exc, InvalidResponseError):
        return getattr(exc, "_code", None)
    return None


def is_retriable(exc: BaseException) -> bool:
    if isinstance(exc, Retry):
        return True
    if isinstance(exc, Exists | NotImplementedByServer | StoreError):
        return False
    if isinstance(exc, S3Error):
        status = http_status(exc) or 0
        return exc.code in RETRY_CODES or status >= 500 or status == 429
    if isinstance(exc, ServerError | InvalidResponseError):
        status = http_status(exc) or 0
        return status >= 500 or status in (408, 429)
    # Refused/reset connections, timeouts, truncated bodies (IncompleteRead).
    return isinstance(exc, urllib3.exceptions.HTTPError | ConnectionError | TimeoutError | OSError)


def root_reason(exc: BaseException) -> str:
    """The root cause of a urllib3 error, without its object reprs."""
    inner = getattr(exc, "reason", None) or exc.__cause__ or exc.__context__
    seen = 0
    while inner is not None and seen < 5 and not isinstance(inner, str):
        exc = inner
        inner = getattr(inner, "reason", None) or inner.__cause__
        seen += 1
    text = str(exc)
    # "<urllib3.connection.HTTPConnection object at 0x..>: Failed to establish a new
    # connection: [Errno 111] Connection refused" -> the part after the repr.
    if text.startswith("<") and ">: " in text:
        text = text.split(">: ", 1)[1]
    return text or type(exc).__name__
