"""An ASGI app under uvicorn on a loopback port, in a thread of the test's own process.

For the tests that need a real HTTP server (a browser, tuspy, the portal's own CLI, schemathesis)
but the app's objects in reach: the same settings, clock and database as the test.

The socket is bound here, before uvicorn starts, and handed to it: a port picked free and bound
later could be taken in between by another worker's server, a start-up that fails by chance.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from starlette.types import ASGIApp

from .waiting import wait_until


@contextmanager
def serving(app: ASGIApp) -> Iterator[str]:
    """Serve ``app`` until the block ends; yields its base URL (``http://127.0.0.1:PORT``)."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [listener]}, name=f"uvicorn-{port}", daemon=True
    )
    thread.start()
    # A server that failed to start ends its thread: reported at once, not at the cap.
    wait_until(lambda: server.started or not thread.is_alive(), what="uvicorn's start", every=0.01)
    try:
        assert server.started, "uvicorn stopped before it started (see the log above)"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        listener.close()
