from __future__ import annotations

import pytest
import requests
from mlflow.exceptions import MlflowException, RestException

from hokusai.transient import classify, is_transient


def wrapped(inner: BaseException) -> MlflowException:
    """How MLflow's REST layer wraps transport errors: implicit chaining."""
    try:
        raise inner
    except Exception:
        try:
            raise MlflowException(f"API request to http://x failed with exception {inner}")
        except MlflowException as exc:
            return exc


@pytest.mark.parametrize(
    ("exc", "cause"),
    [
        (wrapped(requests.exceptions.ConnectionError("refused")), "connection error"),
        (wrapped(requests.exceptions.ReadTimeout("slow")), "timeout"),
        (MlflowException("API request to http://x failed with timeout exception boom"), "timeout"),
        (wrapped(requests.exceptions.RetryError("too many 503 error responses")), "HTTP 503"),
        (wrapped(requests.exceptions.RetryError("too many 429 error responses")), "HTTP 429"),
        (RestException({"error_code": "TEMPORARILY_UNAVAILABLE", "message": "m"}), "TEMPORARILY"),
        (RestException({"error_code": "REQUEST_LIMIT_EXCEEDED", "message": "m"}), "REQUEST_LIMIT"),
        (
            MlflowException("API request to endpoint /a failed with error code 502 != 200"),
            "HTTP 502",
        ),
        (
            MlflowException("API request to endpoint /a failed with error code 504 != 200"),
            "HTTP 504",
        ),
        (ConnectionResetError(), "connection error"),
        (TimeoutError(), "timeout"),
    ],
)
def test_transient(exc: BaseException, cause: str) -> None:
    assert (classify(exc) or "").startswith(cause)
    assert is_transient(exc)


@pytest.mark.parametrize(
    "exc",
    [
        RestException({"error_code": "INVALID_PARAMETER_VALUE", "message": "bad source"}),
        RestException({"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "no model"}),
        RestException({"error_code": "PERMISSION_DENIED", "message": "no"}),
        RestException({"error_code": "INTERNAL_ERROR", "message": "bug"}),
        MlflowException("API request to endpoint /a failed with error code 500 != 200"),
        MlflowException("API request to endpoint /a failed with error code 400 != 200"),
        wrapped(requests.exceptions.RetryError("too many 500 error responses")),
        ValueError("bad"),
    ],
)
def test_not_transient(exc: BaseException) -> None:
    assert classify(exc) is None
    assert not is_transient(exc)
