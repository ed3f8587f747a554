"""Classify MLflow client exceptions as transient (worth retrying) or not.

MLflow's REST layer wraps transport errors into a plain ``MlflowException`` (the original
``requests`` exception stays reachable through ``__cause__``/``__context__``) and HTTP errors into
``RestException``/``MlflowException`` carrying an error code. Only these are transient:

* connection errors and timeouts;
* HTTP 429, 502, 503 and 504 (and the MLflow error codes that map to them).

Everything else -- 400 validation errors, 404, 403, 500 -- is not retried and never spooled.
"""

from __future__ import annotations

import re
import socket

__all__ = ["TRANSIENT_HTTP_STATUSES", "classify", "is_transient"]

TRANSIENT_HTTP_STATUSES = frozenset({429, 502, 503, 504})

_TRANSIENT_ERROR_CODES = frozenset(
    {"TEMPORARILY_UNAVAILABLE", "DEADLINE_EXCEEDED", "REQUEST_LIMIT_EXCEEDED", "RESOURCE_EXHAUSTED"}
)
# "API request to endpoint /x failed with error code 503 != 200" (non-JSON error body)
_STATUS_IN_MESSAGE = re.compile(r"failed with error code (\d{3})")
# urllib3 ResponseError: "too many 503 error responses"
_TOO_MANY = re.compile(r"too many (\d{3}) error responses")


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and all(cur is not s for s in seen) and len(seen) < 16:
        seen.append(cur)
        cur = cur.__cause__ or cur.__context__
    return seen


def classify(exc: BaseException) -> str | None:
    """Return a short cause (``"connection error"``, ``"HTTP 503"`` ...) if *exc* is transient.

    Returns ``None`` for errors that must not be retried.

    >>> classify(ConnectionRefusedError("refused"))
    'connection error: ConnectionRefusedError'
    >>> classify(ValueError("bad name")) is None
    True
    """
    import requests  # local: keep `import hokusai` cheap

    for err in _chain(exc):
        if isinstance(err, requests.exceptions.RetryError):
            match = _TOO_MANY.search(str(err))
            if match and int(match.group(1)) in TRANSIENT_HTTP_STATUSES:
                return f"HTTP {match.group(1)}"
            return None
        if isinstance(err, requests.exceptions.Timeout | socket.timeout | TimeoutError):
            return f"timeout: {type(err).__name__}"
        if isinstance(err, requests.exceptions.ConnectionError | ConnectionError):
            return f"connection error: {type(err).__name__}"
        code = getattr(err, "error_code", None)
        if isinstance(code, str) and code in _TRANSIENT_ERROR_CODES:
            return code
        match = _STATUS_IN_MESSAGE.search(str(err))
        if match and int(match.group(1)) in TRANSIENT_HTTP_STATUSES:
            return f"HTTP {match.group(1)}"
        if "failed with timeout exception" in str(err):
            return "timeout"
    return None


def is_transient(exc: BaseException) -> bool:
    """``True`` when *exc* is a connection error, timeout, 429, 502, 503 or 504."""
    return classify(exc) is not None
