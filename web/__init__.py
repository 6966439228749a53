"""The web app (a face: it imports every layer, and nothing but the CLI imports it): Twilio status
callbacks and inbound STOP/START/HELP, email unsubscribe links, a health check.

`create_app` builds it over any parts (tests, the demo); `build_web_app` over the Redis parts from
settings (`forewarn web`); `serve` runs it from a thread, `run` (also `run_web`) in the foreground.
"""

from forewarn.web.app import build_web_app, create_app, keyword, run_web
from forewarn.web.server import WebServer, run, serve

__all__ = ["WebServer", "build_web_app", "create_app", "keyword", "run", "run_web", "serve"]
