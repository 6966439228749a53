"""What the PagerDuty and Slack stand-ins share: a threaded loopback HTTP server that hands each request to
the stand-in's `handle(method, path, content_type, body)` and writes back its (status, body, headers)."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Handle = Callable[[str, str, str, bytes], tuple[int, Any, list[tuple[str, str]]]]


class StandinServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            return  # the client went away (it timed out waiting): nothing to report
        super().handle_error(request, client_address)


def handler_for(handle: Handle, content_type: str, encode: Callable[[Any], bytes]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            status, body, headers = handle(self.command, self.path, self.headers.get("Content-Type", ""), raw)
            data = encode(body)
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        do_POST = do_GET = do_PUT = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass  # request lines may carry a secret (Slack's webhook path)

    return Handler


def serve(handler: type[BaseHTTPRequestHandler], name: str) -> tuple[StandinServer, threading.Thread, str]:
    """The server on a free loopback port, serving in a daemon thread; and its base URL."""
    server = StandinServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name=name, daemon=True)
    thread.start()
    return server, thread, f"http://127.0.0.1:{server.server_address[1]}"


def stop(server: StandinServer, thread: threading.Thread) -> None:
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)
