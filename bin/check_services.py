#!/usr/bin/env python
"""Checks PostgreSQL and Redis, says in one line what is missing, and creates the database if absent.

Exit 0 when both answer; 1 with one clear line per missing service otherwise."""

import os
import sys
from urllib.parse import urlparse

DATABASE_URL = os.environ.get("DATABASE_URL", "postgres://127.0.0.1:5432/ledgerline")
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


def check_postgres(create: bool) -> str | None:
    import psycopg

    url = urlparse(DATABASE_URL)
    dbname = url.path.lstrip("/") or "ledgerline"
    where = f"{url.hostname or 'localhost'}:{url.port or 5432}"
    params = dict(host=url.hostname, port=url.port or 5432, user=url.username, password=url.password, connect_timeout=3)
    try:
        with psycopg.connect(dbname="postgres", autocommit=True, **params) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone()
            if not exists and create:
                conn.execute(f'CREATE DATABASE "{dbname}"')
                print(f"created database {dbname}")
    except psycopg.OperationalError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        return f"PostgreSQL is not reachable at {where} ({first}); start it: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
    return None


def check_redis() -> str | None:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        return f"Redis is not reachable at {REDIS_URL} ({exc}); start it: redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save ''"
    return None


def main() -> int:
    problems = [p for p in (check_postgres(create="--create-db" in sys.argv), check_redis()) if p]
    for problem in problems:
        print(f"ERROR: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
