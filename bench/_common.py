"""Shared benchmark helpers: a dedicated database, Django set up against it, the web server on loopback.

Every benchmark talks only to 127.0.0.1 and runs bounded loops."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = ROOT / ".venv" / "bin" / "python"
GRANIAN = ROOT / ".venv" / "bin" / "granian"
BENCH_DB = os.environ.get("BENCH_DB", "ledgerline_bench")
BENCH_URL = f"postgres://127.0.0.1:5432/{BENCH_DB}"


def bench_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "DATABASE_URL": BENCH_URL,
        "DJANGO_SETTINGS_MODULE": "billing_site.settings.base",
        "DJANGO_DEBUG": "0",
        "LOG_LEVEL": "WARNING",
        "DB_CONN_MAX_AGE": "600",
        "PYTHONPATH": str(ROOT),
    })
    return env


def ensure_database(*, fresh: bool = False) -> None:
    """Create (or recreate) the bench database and migrate it."""
    import psycopg

    with psycopg.connect(host="127.0.0.1", port=5432, dbname="postgres", autocommit=True) as conn:
        if fresh:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                (BENCH_DB,),
            )
            conn.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}"')
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (BENCH_DB,)).fetchone():
            conn.execute(f'CREATE DATABASE "{BENCH_DB}"')
    subprocess.run([str(PYTHON), "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=bench_env(), check=True)


def setup_django() -> None:
    """Point this process's Django at the bench database."""
    for key, value in bench_env().items():
        if key != "PYTHONPATH":
            os.environ[key] = value
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def rollups_rebuild() -> dict:
    """Rebuild the daily rollups from the events (benches that generate events with SQL bypass
    ingestion, which maintains them): the product's own rebuild, `usage.rollups.usage_rollups_rebuild`."""
    setup_django()
    from usage.rollups import usage_rollups_rebuild

    return usage_rollups_rebuild()


def free_port() -> int:
    with contextlib.closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def web_server(*, workers: int = 2, threads: int = 2, port: int | None = None):
    """Run the web server as `make demo` does (granian, WSGI) on 127.0.0.1 against the bench database;
    yields the base URL. `threads` is each worker process's number of threads running Django."""
    port = port or free_port()
    cmd = [str(GRANIAN), "--interface", "wsgi", "billing_site.wsgi:application", "--host", "127.0.0.1",
           "--port", str(port), "--workers", str(workers), "--blocking-threads", str(threads), "--no-ws",
           "--backlog", "2048", "--log-level", "warning"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=bench_env())
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{base}/healthz", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("the web server did not start")
            time.sleep(0.2)
        yield base
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def celery_workers(n: int, *, env: dict[str, str] | None = None):
    """`n` real `celery worker --pool solo` processes against the bench database and Redis, each in its
    own session as a daemonized worker is (with sched_autogroup on, one session's processes share one CPU
    share); yields once every worker answers a ping, stops them with SIGTERM (a warm shutdown) after."""
    from billing_site.celery import app

    celery = str(ROOT / ".venv" / "bin" / "celery")
    workers = [subprocess.Popen([celery, "-A", "billing_site", "worker", "--pool", "solo", "-l", "WARNING",
                                 "-n", f"bench{i}@%h", "--without-gossip", "--without-mingle"],
                                cwd=ROOT, env=env or bench_env(), start_new_session=True) for i in range(n)]
    try:
        deadline = time.monotonic() + 60
        while len(app.control.ping(timeout=1.0) or []) < n:
            if time.monotonic() > deadline or any(w.poll() is not None for w in workers):
                raise RuntimeError("celery workers did not start")
        yield workers
    finally:
        for w in workers:
            w.send_signal(signal.SIGTERM)
        for w in workers:
            try:
                w.wait(timeout=30)
            except subprocess.TimeoutExpired:
                w.kill()
                w.wait()


def psql_connect():
    import psycopg

    return psycopg.connect(host="127.0.0.1", port=5432, dbname=BENCH_DB, autocommit=True)
