"""How S3Store reads failures: which are worth another attempt, which mean
a missing key, bad credentials or an existing object (agent/engine/store/s3.py)."""

from __future__ import annotations

import urllib3
from minio.error import InvalidResponseError, MinioException, S3Error, ServerError

from agent.engine.store.base import ObjectExists, ObjectNotFound, StoreError

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


def store_error(
    op: str,
    key: str | None,
    exc: BaseException,
    attempts: int,
    bucket: str,
    prefix: str,
    endpoint: str,
) -> StoreError:
    """One readable line for an SDK / network failure of ``op`` on ``key`` in
    ``s3://bucket/prefix`` at ``endpoint`` (a URL)."""
    if isinstance(exc, StoreError):
        return exc
    if isinstance(exc, Exists) and key:
        return ObjectExists(key, f"s3://{bucket}/{prefix}")
    what = f"{op} {key}" if key else op
    where = f"s3://{bucket}/{prefix}"
    tries = f" after {attempts} attempts" if attempts > 1 else ""
    if isinstance(exc, S3Error):
        code = exc.code or ""
        if code in NOT_FOUND_CODES and key:
            return ObjectNotFound(key, where)
        if code == "NoSuchBucket":
            return StoreError(f"cannot {what}: bucket {bucket!r} does not exist at {endpoint}")
        if code in CREDENTIAL_CODES:
            return StoreError(
                f"cannot {what} in {where}: {endpoint} rejected the credentials "
                f"({code}: {exc.message or 'check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY'})"
            )
        if code == "AccessDenied":
            return StoreError(
                f"cannot {what} in {where}: access denied by {endpoint} "
                "(wrong credentials, or no permission for this bucket/prefix)"
            )
        status = http_status(exc)
        return StoreError(
            f"cannot {what} in {where}: S3 error {code or status}"
            f"{': ' + exc.message if exc.message else ''}{tries}"
        )
    if isinstance(exc, ServerError | InvalidResponseError):
        return StoreError(
            f"cannot {what} in {where}: {endpoint} answered HTTP {http_status(exc)}{tries}"
        )
    if isinstance(exc, urllib3.exceptions.HTTPError | OSError):
        reason = root_reason(exc)
        return StoreError(f"cannot {what} in {where}: cannot reach {endpoint}{tries}: {reason}")
    if isinstance(exc, MinioException | ValueError):
        return StoreError(f"cannot {what} in {where}: {exc}")
    return StoreError(f"cannot {what} in {where}: {type(exc).__name__}: {exc}")
