#!/usr/bin/python3
"""Record Alertmanager webhook notifications as JSON lines.

POST any path: the JSON body is appended to the log file as
{"received_at": <unix time>, "path": ..., "payload": {...}}; answers 200.
GET /healthz answers "ok". Standard library only.
Usage: alert-webhook-receiver ADDRESS PORT LOGFILE
"""

from __future__ import annotations

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    log_path = ""

    def do_GET(self) -> None:
        if self.path != "/healthz":
            self.send_error(404)
            return
        self._reply(200, b"ok\n")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        try:
            payload = json.loads(body or b"null")
        except ValueError:
            self._reply(400, b"body is not JSON\n")
            return
        line = json.dumps({"received_at": time.time(), "path": self.path, "payload": payload}, sort_keys=True)
        try:
            with LOCK, open(self.log_path, "a", encoding="utf-8") as log:
                log.write(line + "\n")
        except OSError as exc:
            self._reply(500, f"cannot record: {exc}\n".encode())
            return
        self._reply(200, b"recorded\n")

    def _reply(self, code: int, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt: str, *args: object) -> None:
        sys.stderr.write(f"{self.address_string()} {fmt % args}\n")


def main() -> None:
    address, port, Handler.log_path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    ThreadingHTTPServer((address, port), Handler).serve_forever()


if __name__ == "__main__":
    main()
