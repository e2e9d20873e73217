"""botocore's errors, mapped at the edge to salesflow's Transient/Terminal errors.

Throttling, timeouts and 5xx answers pass on retry; everything else (a missing bucket, an
access denial, a malformed request) will not, so it fails the file. Callers keep the SDK error
as the cause with ``raise translate(exc, ...) from exc``.
"""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from salesflow.errors import SalesflowError, TerminalError, TransientError

THROTTLING = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "Throttling",
        "ThrottledException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "SlowDown",
    }
)
TRANSIENT = THROTTLING | {
    "InternalServerError",
    "InternalError",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "TransactionConflictException",
    "RequestTimeout",
    "RequestTimeoutException",
    "KMSThrottlingException",
}


def error_code(exc: BaseException) -> str:
    """The AWS error code of a ``ClientError`` (``""`` for anything else)."""
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def is_throttling(exc: BaseException) -> bool:
    """Whether AWS asked us to slow down (retry with backoff)."""
    return error_code(exc) in THROTTLING


def is_transient(exc: BaseException) -> bool:
    """Whether retrying the same call later may succeed."""
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return error_code(exc) in TRANSIENT or int(status or 0) >= 500
    return isinstance(exc, BotoConnectionError | HTTPClientError)


def translate(exc: ClientError | BotoCoreError, what: str) -> SalesflowError:
    """A salesflow error for a failed AWS call; ``what`` names the call and its target.

    >>> raise translate(exc, "s3 put inbox/a.csv") from exc  # doctest: +SKIP
    """
    code = error_code(exc) or type(exc).__name__
    if is_transient(exc):
        return TransientError(
            f"{what} failed: {code}: {exc}", hint="AWS is throttling or busy; retry later"
        )
    return TerminalError(
        f"{what} failed: {code}: {exc}",
        hint="check the resource names (stack outputs) and the IAM permissions",
    )
