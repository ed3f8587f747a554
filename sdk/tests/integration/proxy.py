"""A tiny HTTP-aware TCP proxy on 127.0.0.1 that can misbehave on purpose.

Modes: ``"pass"`` relays; ``"refuse"`` closes every client connection at once (connection
error); ``"503"`` answers every request with a 503. ``drop_response_for(path, n)`` forwards the
next *n* requests whose path contains *path* to MLflow, waits for MLflow's full answer (so the
server has committed) and then closes the client connection without relaying it: a lost response.
``stall_response_for(path, seconds)`` does the same after holding the connection *seconds*
(the server committed, then stalled past the client's timeout). ``delay_request_for(path,
seconds)`` holds the request *before* forwarding it, so MLflow commits only after the client gave
up and retried. ``delay_all`` slows every request (a slow server).
"""

from __future__ import annotations

import socket
import threading
import time


def _read_request(sock: socket.socket) -> bytes | None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        body += chunk
    # force one request per upstream connection so responses end at EOF
    lines = [
        ln
        for ln in head.split(b"\r\n")
        if not ln.lower().startswith(b"connection:") and not ln.lower().startswith(b"keep-alive")
    ]
    lines.append(b"Connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


class FlakyProxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.mode = "pass"
        self._drops: dict[str, int] = {}
        self._rules: list[list[object]] = []  # [fragment, remaining, kind, seconds]
        self.delay_all = 0.0
        self.dropped = 0
        self.in_flight = 0
        self.requests: list[str] = []
        self._lock = threading.Lock()
        self._server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(64)
        self.port = int(self._server.getsockname()[1])
        self._stop = False
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def drop_response_for(self, path_fragment: str, count: int = 1) -> None:
        with self._lock:
            self._drops[path_fragment] = count

    def stall_response_for(self, path_fragment: str, seconds: float, count: int = 1) -> None:
        with self._lock:
            self._rules.append([path_fragment, count, "stall", seconds])

    def delay_request_for(self, path_fragment: str, seconds: float, count: int = 1) -> None:
        with self._lock:
            self._rules.append([path_fragment, count, "delay", seconds])

    def _rule(self, path: str) -> tuple[str, float] | None:
        with self._lock:
            for rule in self._rules:
                fragment, remaining, kind, seconds = rule
                if int(remaining) > 0 and str(fragment) in path:  # type: ignore[call-overload]
                    rule[1] = int(remaining) - 1  # type: ignore[call-overload]
                    return str(kind), float(seconds)  # type: ignore[arg-type]
        return None

    def wait_idle(self, timeout: float = 30) -> None:
        """Until no request is being relayed (a delayed create has reached MLflow)."""
        deadline = time.monotonic() + timeout
        while self.in_flight and time.monotonic() < deadline:
            time.sleep(0.05)

    def close(self) -> None:
        self._stop = True
        self._server.close()

    def _accept_loop(self) -> None:
        while not self._stop:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(client,), daemon=True).start()

    def _handle(self, client: socket.socket) -> None:
        with client:
            client.settimeout(30)
            try:
                while True:
                    request = _read_request(client)
                    if request is None:
                        return
                    path = request.split(b" ", 2)[1].decode()
                    self.requests.append(path)
                    if self.mode == "refuse":
                        return
                    if self.mode == "401":
                        client.sendall(
                            b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 12\r\n"
                            b"Content-Type: text/plain\r\n\r\nunauthorized"
                        )
                        continue
                    if self.mode == "503":
                        client.sendall(
                            b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 11\r\n"
                            b"Content-Type: text/plain\r\n\r\nunavailable"
                        )
                        continue
                    drop = False
                    with self._lock:
                        for fragment, n in self._drops.items():
                            if n > 0 and fragment in path:
                                self._drops[fragment] = n - 1
                                drop = True
                                break
                    rule = self._rule(path)
                    with self._lock:
                        self.in_flight += 1
                    try:
                        if self.delay_all:
                            time.sleep(self.delay_all)
                        if rule is not None and rule[0] == "delay":
                            time.sleep(rule[1])
                        response = self._forward(request)
                    finally:
                        with self._lock:
                            self.in_flight -= 1
                    if rule is not None and rule[0] == "stall":
                        time.sleep(rule[1])
                        drop = True
                    if drop or response is None:
                        self.dropped += int(drop)
                        client.shutdown(socket.SHUT_RDWR)
                        return
                    client.sendall(response)
                    return  # the response says "Connection: close"
            except OSError:
                return

    def _forward(self, request: bytes) -> bytes | None:
        try:
            with socket.create_connection(("127.0.0.1", self.upstream_port), timeout=30) as up:
                up.sendall(request)
                chunks = []
                while True:
                    chunk = up.recv(65536)
                    if not chunk:
                        break
                    chunks.append(chunk)
                return b"".join(chunks)
        except OSError:
            return None
