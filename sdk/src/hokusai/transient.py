"""Classify MLflow client exceptions as transient (worth retrying) or not.

MLflow's REST layer wraps transport errors into a plain ``MlflowException`` (the original
``requests`` exception stays reachable through ``__cause__``/``__context__``) and HTTP errors into
``RestException``/``MlflowException`` carrying an error code. Only these are transient:

* connection errors and timeouts;
* HTTP 429, 502, 503 and 504 (and the MLflow error codes that map to them);
* MLflow's "Model Version creation error ... Giving up after 3 attempts" (concurrent creates
  fought over version numbers).

Everything else -- 400 validation errors, 404, 403, 500 -- is not retried and never spooled.
Neither are TLS failures (a bad certificate or a plain-HTTP port does not heal by waiting) nor
DNS answers that the name does not exist; a *temporary* resolver failure (``EAI_AGAIN``) is
transient. :func:`is_auth_error` tells 401/403 apart: a flush stops on them instead of marking
rows failed.
"""

from __future__ import annotations

import re
import socket

__all__ = ["TRANSIENT_HTTP_STATUSES", "classify", "is_auth_error", "is_transient"]

TRANSIENT_HTTP_STATUSES = frozenset({429, 502, 503, 504})

_TRANSIENT_ERROR_CODES = frozenset(
    {"TEMPORARILY_UNAVAILABLE", "DEADLINE_EXCEEDED", "REQUEST_LIMIT_EXCEEDED", "RESOURCE_EXHAUSTED"}
)
# "API request to endpoint /x failed with error code 503 != 200" (non-JSON error body)
_STATUS_IN_MESSAGE = re.compile(r"failed with error code (\d{3})")
# urllib3 ResponseError: "too many 503 error responses"
_TOO_MANY = re.compile(r"too many (\d{3}) error responses")
_AUTH_CODES = frozenset({"UNAUTHENTICATED", "PERMISSION_DENIED"})
_AUTH_STATUS = re.compile(r"failed with error code (401|403)\b")
_DNS_PERMANENT = frozenset(
    {getattr(socket, n) for n in ("EAI_NONAME", "EAI_NODATA", "EAI_FAIL") if hasattr(socket, n)}
)
_DNS_PERMANENT_TEXT = (
    "Name or service not known",
    "No address associated",
    "nodename nor servname",
)


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

    chain = _chain(exc)
    for err in chain:
        # TLS and "no such host" never heal by retrying: fail now instead of spooling
        if isinstance(err, requests.exceptions.SSLError) or type(err).__name__ in (
            "SSLError",
            "SSLCertVerificationError",
        ):
            return None
        if isinstance(err, socket.gaierror) and err.errno in _DNS_PERMANENT:
            return None
        if type(err).__name__ == "NameResolutionError" and any(
            t in str(err) for t in _DNS_PERMANENT_TEXT
        ):
            return None
    for err in chain:
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
        if "Model Version creation error" in str(err):
            # MLflow gave up after 3 IntegrityErrors: version-number contention between
            # concurrent creates (a taken idempotency key is handled before this is consulted)
            return "version contention"
    return None


def is_auth_error(exc: BaseException) -> bool:
    """``True`` for 401/403 answers (``UNAUTHENTICATED``, ``PERMISSION_DENIED``).

    >>> from mlflow.exceptions import RestException
    >>> is_auth_error(RestException({"error_code": "PERMISSION_DENIED", "message": "no"}))
    True
    """
    for err in _chain(exc):
        code = getattr(err, "error_code", None)
        if isinstance(code, str) and code in _AUTH_CODES:
            return True
        if _AUTH_STATUS.search(str(err)):
            return True
    return False


def is_transient(exc: BaseException) -> bool:
    """``True`` when *exc* is a connection error, timeout, 429, 502, 503 or 504."""
    return classify(exc) is not None
