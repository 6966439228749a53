"""Serving the web app with uvicorn: from a thread (`serve`, for tests and in-process use) or in the
foreground (`run`, for `forewarn web`).

The same threaded server as the observability endpoint (`forewarn.connectors.observability`), with the
web app's settings named in its errors. Access logs are off: the URLs carry message ids and unsubscribe
tokens. The socket is bound before uvicorn starts, so a taken port fails at once with a ConfigError.
"""

from __future__ import annotations

import logging

import uvicorn
from starlette.applications import Starlette

from forewarn.connectors.observability import ObservabilityServer, listen_socket, uvicorn_config

log = logging.getLogger(__name__)

WebServer = ObservabilityServer
"""The app served from a daemon thread; `stop()` ends it (also a context manager)."""


def serve(app: Starlette, host: str = "127.0.0.1", port: int = 0) -> ObservabilityServer:
    """Serve `app` from a thread (port 0: a free one, see `.port` / `.url`); `.stop()` ends it."""
    return ObservabilityServer(app, host, port, "web.port", host_setting="web.host", what="the web app",
                               name="forewarn-web").start()


def run(app: Starlette, host: str, port: int) -> None:
    """Serve `app` in the foreground until SIGINT or SIGTERM (uvicorn's handlers: a graceful stop)."""
    sock = listen_socket(host, port, "web.port", "web.host", "the web app")
    log.info("web app on http://%s:%d", host, port)
    uvicorn.Server(uvicorn_config(app, host, port)).run(sockets=[sock])
