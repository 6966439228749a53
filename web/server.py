"""Serving the web app with uvicorn: from a thread (`serve`, for tests and in-process use) or in the
foreground (`run`, for `forewarn web`).

Access logs are off: the URLs carry message ids and unsubscribe tokens. The socket is bound before
uvicorn starts, so a taken port fails at once with a ConfigError naming the setting.
"""

from __future__ import annotations

import logging
import socket
import threading
import time

import uvicorn
from starlette.applications import Starlette

from forewarn.settings import ConfigError

log = logging.getLogger(__name__)


def _config(app: Starlette, host: str, port: int) -> uvicorn.Config:
    return uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False, lifespan="off",
                          loop="asyncio", http="h11", server_header=False, timeout_graceful_shutdown=5)


def listen(host: str, port: int, setting: str = "web.port") -> socket.socket:
    """A listening socket on host:port (0: any free port), or a ConfigError naming the setting."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as exc:
        raise ConfigError(f"web.host {host!r} is not an address to listen on ({exc.strerror}): use e.g. "
                          "127.0.0.1, or 0.0.0.0 inside a container") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port} for the web app ({exc.strerror}): another process holds "
                          f"the port, or the address is not this machine's; change {setting} or web.host") from None
    sock.setblocking(False)
    return sock


class WebServer:
    """The app served from a daemon thread; `stop()` ends it."""

    def __init__(self, app: Starlette, host: str, port: int) -> None:
        self.app = app
        self.host = host
        self.port = port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def start(self, timeout: float = 5.0) -> WebServer:
        sock = listen(self.host, self.port)
        self.port = int(sock.getsockname()[1])
        server = uvicorn.Server(_config(self.app, self.host, self.port))
        self._server = server
        self._thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="forewarn-web",
                                        daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                server.should_exit = True
                sock.close()
                raise RuntimeError(f"the web app on {self.host}:{self.port} did not start within {timeout:g}s")
            time.sleep(0.01)
        log.info("web app on %s", self.url)
        return self

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def stop(self, timeout: float = 10.0) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)

    def __enter__(self) -> WebServer:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def serve(app: Starlette, host: str = "127.0.0.1", port: int = 0) -> WebServer:
    """Serve `app` from a thread (port 0: a free one, see `.port` / `.url`); `.stop()` ends it."""
    return WebServer(app, host, port).start()


def run(app: Starlette, host: str, port: int) -> None:
    """Serve `app` in the foreground until SIGINT or SIGTERM (uvicorn's handlers: a graceful stop)."""
    sock = listen(host, port)
    log.info("web app on http://%s:%d", host, port)
    uvicorn.Server(_config(app, host, port)).run(sockets=[sock])
