"""One local Stripe sandbox per test run (DESIGN.md §7): `manage.py stripe_sandbox` in a
subprocess on a free 127.0.0.1 port, its webhooks posted to a small recorder, and the settings
pointed at it (STRIPE_API_BASE, STRIPE_WEBHOOK_SECRET) for every payments test."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

WEBHOOK_SECRET = "whsec_ledgerline_test_sandbox"
ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class WebhookRecorder:
    """Keeps every webhook the sandbox sends (raw body and Stripe-Signature), to replay into our endpoint."""

    def __init__(self):
        self.received: list[dict] = []
        self.lock = threading.Lock()

    def wait_for(self, event_type: str, *, match=lambda obj: True, timeout: float = 10.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                for item in self.received:
                    event = json.loads(item["body"])
                    if event["type"] == event_type and match(event["data"]["object"]):
                        return item
            time.sleep(0.05)
        raise AssertionError(f"the sandbox sent no {event_type} webhook within {timeout}s")


@pytest.fixture(scope="session")
def stripe_sandbox():
    recorder = WebhookRecorder()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with recorder.lock:
                recorder.received.append({"body": body, "signature": self.headers.get("Stripe-Signature", "")})
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    receiver = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    port = _free_port()
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "billing_site.settings.base", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "stripe_sandbox", "--port", str(port),
         "--webhook-url", f"http://127.0.0.1:{receiver.server_address[1]}/", "--webhook-secret", WEBHOOK_SECRET],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    line = proc.stdout.readline()
    if "listening" not in line:
        proc.kill()
        raise RuntimeError(f"the Stripe sandbox did not start: {line}{proc.stdout.read()}")
    recorder.base = f"http://127.0.0.1:{port}"
    try:
        yield recorder
    finally:
        proc.terminate()
        proc.wait(10)
        receiver.shutdown()


@pytest.fixture(autouse=True)
def _stripe_settings(stripe_sandbox, settings):
    settings.STRIPE_API_BASE = stripe_sandbox.base
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
    settings.STRIPE_API_KEY = "sk_test_ledgerline_local"
    yield
