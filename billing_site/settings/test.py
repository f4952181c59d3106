"""Test settings: the real PostgreSQL and Redis, a throwaway test database.

TEST_DB_SUFFIX lets several test runs share one PostgreSQL server without clashing."""

import os

from .base import *  # noqa: F401,F403
from .base import DATABASES, MIDDLEWARE

DEBUG = False
DATABASES["default"]["CONN_MAX_AGE"] = 0
DATABASES["default"]["TEST"] = {"NAME": "test_ledgerline" + os.environ.get("TEST_DB_SUFFIX", "")}
CELERY_TASK_ALWAYS_EAGER = True
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
MEDIA_ROOT = os.environ.get("TEST_MEDIA_ROOT", "/tmp/ledgerline-test-media" + os.environ.get("TEST_DB_SUFFIX", ""))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
LOGGING = {"version": 1, "disable_existing_loggers": False, "root": {"level": "WARNING"}}
MIDDLEWARE = [m for m in MIDDLEWARE if "whitenoise" not in m]
WEBHOOKS_ALLOW_PRIVATE_TARGETS = True  # receivers in tests listen on 127.0.0.1
