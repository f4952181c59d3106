"""A real HTTP receiver on 127.0.0.1 (a port chosen by the OS) that records what it gets and answers
with the statuses it is told to, in order (the last one repeats)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


@dataclass
class Received:
    headers: dict
    body: bytes


@dataclass
class Receiver:
    statuses: list = field(default_factory=lambda: [200])
    delay: float = 0.0
    requests: list = field(default_factory=list)
    url: str = ""

    def next_status(self) -> int:
        return self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]


@pytest.fixture
def receiver():
    state = Receiver()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if state.delay:
                time.sleep(state.delay)
            with lock:
                state.requests.append(Received(headers={k.lower(): v for k, v in self.headers.items()}, body=body))
                status = state.next_status()
            payload = f"receiver says {status}".encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks"
    yield state
    server.shutdown()
    server.server_close()


class World:
    """Just enough of the catalog through the API to make subscriptions (which emit subscription.created)."""

    def __init__(self, api):
        self.api = api
        self.count = 0

    def ok(self, response):
        assert response.status_code in (200, 201, 202), response.content
        return response.json()

    def subscription(self, external_id: str | None = None) -> dict:
        self.count += 1
        if self.count == 1:
            self.ok(self.api.post("/api/v1/plans/", {"code": "basic", "name": "Basic", "currency": "USD",
                                                     "interval": "month", "amount": "10", "charges": []},
                                  format="json"))
        sid = external_id or f"sub-{self.count}"
        self.ok(self.api.post("/api/v1/customers/", {"external_id": f"cus-{sid}", "name": "Acme", "currency": "USD"},
                              format="json"))
        return self.ok(self.api.post("/api/v1/subscriptions/", {"external_id": sid, "customer": f"cus-{sid}",
                                                                "plan": "basic", "start_date": "2026-01-01"},
                                     format="json"))


@pytest.fixture
def world(admin_api):
    return World(admin_api)
