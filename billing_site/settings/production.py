"""Production: debug off, secrets required from the environment."""

import os

from .base import *  # noqa: F401,F403
from .base import env_bool

DEBUG = False
SECRET_KEY = os.environ["DJANGO_SECRET_KEY"]
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# HTTPS only (issue 10): `check --deploy` is clean. Behind a TLS-terminating proxy that already
# redirects, SECURE_SSL_REDIRECT=0 avoids a double redirect; HSTS can be shortened while trying it out.
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]  # load balancers probe over plain HTTP
SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", str(365 * 24 * 3600)))
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)  # only a header; submitting to the list is a separate step

# The demo's credentials never work in production: no login with the demo password, the demo
# password cannot be set, and the demo data set (with its users) refuses to load.
AUTHENTICATION_BACKENDS = ["common.auth.RefuseDemoPasswordBackend"]
AUTH_PASSWORD_VALIDATORS = [*AUTH_PASSWORD_VALIDATORS,  # noqa: F405
                            {"NAME": "common.auth.NotTheDemoPasswordValidator"}]
DEMO_DATA_ALLOWED = False
