"""The alert webhook receiver (roles/alert_webhook_receiver/files/alert_webhook_receiver.py),
served on loopback: what Alertmanager posts is recorded as one JSON line each, what is not
JSON is refused and not recorded, a log it cannot write is a 500 (Alertmanager retries)."""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest
from sourceload import load_source

receiver = load_source("roles/alert_webhook_receiver/files/alert_webhook_receiver.py")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    log = tmp_path / "alerts.jsonl"

    class Handler(receiver.Handler):
        log_path = str(log)

        def log_message(self, fmt: str, *args: object) -> None:  # quiet in tests
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], log
    server.shutdown()
    server.server_close()


def call(port: int, method: str, path: str, body: bytes | None = None) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request(method, path, body=body, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, resp.read().decode()
    finally:
        conn.close()


def test_each_notification_is_one_json_line_with_its_path(served: tuple[int, Path]) -> None:
    port, log = served
    first = {"status": "firing", "alerts": [{"labels": {"alertname": "PatroniNoLeader"}}]}
    assert call(port, "POST", "/critical", json.dumps(first).encode()) == (200, "recorded\n")
    assert call(port, "POST", "/default", b'{"status": "resolved"}')[0] == 200
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(r["path"], r["payload"]) for r in lines] == [
        ("/critical", first),
        ("/default", {"status": "resolved"}),
    ]
    assert all(isinstance(r["received_at"], float) for r in lines)


def test_what_is_not_json_is_refused_and_not_recorded(served: tuple[int, Path]) -> None:
    port, log = served
    assert call(port, "POST", "/critical", b"status=firing") == (400, "body is not JSON\n")
    assert not log.exists()


def test_health_answers_and_other_reads_do_not(served: tuple[int, Path]) -> None:
    port, _ = served
    assert call(port, "GET", "/healthz") == (200, "ok\n")
    assert call(port, "GET", "/alerts")[0] == 404


def test_a_log_it_cannot_write_is_a_server_error(served: tuple[int, Path]) -> None:
    port, log = served
    log.mkdir()  # a directory where the file should be
    status, body = call(port, "POST", "/critical", b"{}")
    assert status == 500 and body.startswith("cannot record:")


def test_concurrent_notifications_are_whole_lines(served: tuple[int, Path]) -> None:
    port, log = served
    payload = json.dumps({"alerts": ["x" * 5000]}).encode()
    threads = [threading.Thread(target=call, args=(port, "POST", f"/p{i}", payload)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lines = log.read_text().splitlines()
    assert len(lines) == 20
    assert sorted(json.loads(line)["path"] for line in lines) == sorted(f"/p{i}" for i in range(20))
