"""Typed errors raised by the SDK.

Every failure the SDK reports is a :class:`HokusaiError`, so callers can tell "MLflow is down"
(:class:`MlflowUnavailableError`, :class:`CircuitOpenError`) from "the request was wrong"
(:class:`MlflowRequestError`), and none of them is ever replaced by fake data.
"""

from __future__ import annotations

__all__ = [
    "AliasError",
    "CircuitOpenError",
    "HokusaiError",
    "IdempotencyConflictError",
    "MlflowRequestError",
    "MlflowUnavailableError",
    "OutboxError",
]


class HokusaiError(Exception):
    """Base class of every error raised by the SDK."""


class MlflowUnavailableError(HokusaiError):
    """MLflow could not be reached (transient failures until the retries or deadline ran out).

    ``cause`` is a short human-readable reason such as ``"connection refused"`` or ``"HTTP 503"``.
    """

    def __init__(self, message: str, *, tracking_uri: str, cause: str, attempts: int) -> None:
        super().__init__(message)
        self.tracking_uri = tracking_uri
        self.cause = cause
        self.attempts = attempts


class CircuitOpenError(MlflowUnavailableError):
    """The circuit breaker for this tracking URI is open: the call was not even attempted."""


class MlflowRequestError(HokusaiError):
    """MLflow answered and refused the request (validation, permission, ...). Never retried.

    ``error_code`` is MLflow's code, e.g. ``"INVALID_PARAMETER_VALUE"``, when it sent one.
    """

    def __init__(self, message: str, *, error_code: str | None = None) -> None:
        super().__init__(message)
        self.error_code = error_code


class OutboxError(HokusaiError):
    """The local outbox could not be read or written."""


class IdempotencyConflictError(HokusaiError, ValueError):
    """An idempotency key was reused for a *different* registration (other source, tags ...).

    Refused at once, before any request: replaying one of the two would silently drop the other.
    """


class AliasError(HokusaiError):
    """The version was created (or found) but setting an alias failed.

    ``registration`` is the receipt of that version, so a caller never loses the version number;
    retrying with ``registration.idempotency_key`` returns the same version instead of a new one.
    """

    def __init__(self, message: str, *, registration: object, alias: str) -> None:
        super().__init__(message)
        self.registration = registration
        self.alias = alias
