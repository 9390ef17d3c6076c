"""The plumbing of the tests' fake servers: a threaded HTTP server on 127.0.0.1 (an ephemeral port)
whose every request goes to the subclass's ``handle(request, method)``."""
from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Tuple


class LoopbackServer:
    """Subclasses call ``super().__init__()`` and implement ``handle``; ``url`` is the base URL,
    ``start()`` serves in a daemon thread, ``stop()`` shuts down. ``METHODS`` are the HTTP methods
    answered (others get the standard 501)."""

    METHODS: Tuple[str, ...] = ("GET", "POST")

    def __init__(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep pytest output clean
                pass

        for method in self.METHODS:
            setattr(Handler, f"do_{method}", lambda request, method=method: server.handle(request, method))
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def handle(self, request: BaseHTTPRequestHandler, method: str) -> None:
        raise NotImplementedError

    def start(self):
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
