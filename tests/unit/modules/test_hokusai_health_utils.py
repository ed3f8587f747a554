"""module_utils/hokusai_health.py: the HTTP helper never raises; the common result shape."""

from __future__ import annotations

import io
import ssl
from email.message import Message
from urllib.error import HTTPError, URLError

import pytest
from health_helpers import hokusai_health


class FakeResponse:
    def __init__(self, status, body, headers):
        self.status, self._body, self.headers = status, body, headers

    def read(self):
        return self._body


def _headers(**values):
    msg = Message()
    for k, v in values.items():
        msg[k.replace("_", "-")] = v
    return msg


def test_ok_json_with_every_option_passed_on(monkeypatch):
    seen = {}

    def open_url(url, **kwargs):
        seen.update(kwargs, url=url)
        return FakeResponse(200, b'{"health":"true"}', _headers(Content_Type="application/json"))

    monkeypatch.setattr(hokusai_health, "open_url", open_url)
    resp = hokusai_health.http_get(
        "https://e:2379/health",
        ca_path="/ca",
        client_cert="/c",
        client_key="/k",
        username="u",
        password="p",  # noqa: S106 - a test value
        bearer_token="t",  # noqa: S106 - a test value
        timeout=3,
    )
    assert resp["status"] == 200 and resp["json"] == {"health": "true"} and resp["error"] is None
    assert resp["headers"]["content-type"] == "application/json"
    assert seen["validate_certs"] is True and seen["ca_path"] == "/ca"
    assert (seen["client_cert"], seen["client_key"], seen["timeout"]) == ("/c", "/k", 3)
    assert (seen["url_username"], seen["force_basic_auth"]) == ("u", True)
    assert seen["headers"]["Authorization"] == "Bearer t"


def test_http_error_is_an_answer(monkeypatch):
    def open_url(url, **kwargs):
        raise HTTPError(url, 503, "Service Unavailable", _headers(X_Minio_Write_Quorum="5"), io.BytesIO(b""))

    monkeypatch.setattr(hokusai_health, "open_url", open_url)
    resp = hokusai_health.http_get("https://m:9000/minio/health/cluster")
    assert resp["status"] == 503 and resp["headers"]["x-minio-write-quorum"] == "5"
    assert resp["error"] == "https://m:9000/minio/health/cluster answered HTTP 503"


@pytest.mark.parametrize(
    ("exc", "text"),
    [
        (URLError(ConnectionRefusedError(111, "Connection refused")), "Connection refused"),
        (URLError(ssl.SSLCertVerificationError("certificate verify failed")), "certificate verify failed"),
        (TimeoutError("timed out"), "timed out"),
        (ConnectionResetError(104, "reset"), "reset"),
    ],
    ids=["refused", "tls", "timeout", "reset"],
)
def test_no_answer_never_raises(monkeypatch, exc, text):
    def open_url(url, **kwargs):
        raise exc

    monkeypatch.setattr(hokusai_health, "open_url", open_url)
    resp = hokusai_health.http_get("http://x:1/")
    assert (
        resp["status"] is None
        and resp["error"].startswith("no answer from http://x:1/")
        and text in resp["error"]
    )


def test_summarize():
    ok = hokusai_health.check("db1", True, "fine")
    bad = hokusai_health.check("db2", False, "stopped")
    assert hokusai_health.summarize("etcd", [ok], leader="db1") == {
        "healthy": True,
        "problems": [],
        "checks": [ok],
        "leader": "db1",
    }
    assert hokusai_health.summarize("etcd", [ok, bad])["problems"] == ["etcd db2: stopped"]
    assert hokusai_health.summarize("etcd", [])["healthy"] is False


@pytest.mark.parametrize(
    ("value", "text"), [(0, "0 B"), (1536, "1.5 KiB"), (16777216, "16.0 MiB"), (3 * 2**40, "3072.0 GiB")]
)
def test_human_bytes(value, text):
    assert hokusai_health.human_bytes(value) == text
