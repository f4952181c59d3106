"""Settings shared by every environment. Everything configurable comes from the environment
(DESIGN.md §9) with defaults that work on a developer machine."""

import os
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "dev-insecure-ledgerline-secret-key-change-me")
DEBUG = env_bool("DJANGO_DEBUG", False)  # opt in with DJANGO_DEBUG=1 on a developer machine
ALLOWED_HOSTS = [h.strip() for h in os.environ.get("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver").split(",") if h.strip()]

INSTALLED_APPS = [
    "common.admin_site.LedgerlineAdminConfig",  # django.contrib.admin with the guarded site
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "simple_history",
    "django_celery_beat",
    "common",
    "customers",
    "catalog",
    "usage",
    "subscriptions",
    "invoicing",
    "payments",
    "dunning",
    "revrec",
    "analytics",
    "webhooks",
    "django_htmx",
    "backoffice",
    "demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "common.middleware.RejectNulMiddleware",
    "common.middleware.DatabaseUnavailableMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "billing_site.page_middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "billing_site.page_middleware.AuthenticationMiddleware",
    "billing_site.page_middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "billing_site.page_middleware.HistoryRequestMiddleware",
    "billing_site.idempotency.IdempotencyKeyMiddleware",
    "billing_site.page_middleware.HtmxMiddleware",
    "billing_site.event_fast_path.SingleEventMiddleware",  # last: every layer above applies to its answers
]

ROOT_URLCONF = "billing_site.urls"
WSGI_APPLICATION = "billing_site.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", "postgres://127.0.0.1:5432/ledgerline"),
        conn_max_age=int(os.environ.get("DB_CONN_MAX_AGE", "60")),
        conn_health_checks=True,  # a pooled connection that died with a database restart is replaced, not used
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "var" / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", BASE_DIR / "var" / "media"))
MEDIA_URL = "media/"

# --- REST API -------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["billing_site.api_auth.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["billing_site.api_auth.HasScope"],
    "DEFAULT_PARSER_CLASSES": ["common.parsers.StrictJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PAGINATION_CLASS": "common.pagination.PagePagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "common.errors.api_exception_handler",
    "UNAUTHENTICATED_USER": None,
    "COERCE_DECIMAL_TO_STRING": True,
    "DEFAULT_THROTTLE_CLASSES": ["billing_site.ratelimit.ApiKeyRateThrottle"],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Ledgerline API",
    "DESCRIPTION": "Usage in, correct invoice out. Authenticate with `Authorization: Bearer <key>`.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "COMPONENT_SPLIT_REQUEST": True,
    # Self-hosted Swagger UI assets: the docs work without internet access.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums",
                             "billing_site.idempotency.document_idempotency_header"],
    "ENUM_NAME_OVERRIDES": {
        "CouponKindEnum": "catalog.models.CouponKind",
        "InvoiceLineKindEnum": "invoicing.models.LineKind",
        "ChangeTimingEnum": "subscriptions.services.EFFECTIVE_CHOICES",
    },
}

# --- Celery ---------------------------------------------------------------------------------
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = REDIS_URL
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = 30 * 60
CELERY_TASK_SOFT_TIME_LIMIT = 25 * 60
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = "UTC"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

# --- Stripe ---------------------------------------------------------------------------------
STRIPE_API_KEY = os.environ.get("STRIPE_API_KEY", "sk_test_ledgerline_local")
STRIPE_API_BASE = os.environ.get("STRIPE_API_BASE", "")
STRIPE_WEBHOOK_SECRET = os.environ.get("STRIPE_WEBHOOK_SECRET", "")

# --- E-mail ---------------------------------------------------------------------------------
EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = int(os.environ.get("EMAIL_PORT", "25"))
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "billing@ledgerline.local")
EMAIL_FILE_PATH = os.environ.get("EMAIL_FILE_PATH", str(BASE_DIR / "var" / "mail"))  # file-based backend (the demo)
# Dunning e-mails link here to update the payment method ({customer}: external id, {invoice}: invoice id).
DUNNING_UPDATE_PAYMENT_URL = os.environ.get("DUNNING_UPDATE_PAYMENT_URL", "https://billing.example.com/customers/{customer}/payment-method")

# --- Seller (printed on invoices) -----------------------------------------------------------
SELLER = {
    "name": os.environ.get("SELLER_NAME", "Ledgerline Demo Inc."),
    "address": os.environ.get("SELLER_ADDRESS", "1 Market Street, San Francisco, CA 94105, US"),
    "email": os.environ.get("SELLER_EMAIL", "billing@ledgerline.local"),
    "tax_id": os.environ.get("SELLER_TAX_ID", ""),
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
}

# --- API platform: idempotency keys, rate limits, outbound webhooks (DESIGN.md §14) ---------------
IDEMPOTENCY_KEY_TTL_HOURS = int(os.environ.get("IDEMPOTENCY_KEY_TTL_HOURS", "24"))
API_RATE_LIMIT = os.environ.get("API_RATE_LIMIT", "6000/min")  # per API key; "0" turns it off
API_RATE_LIMIT_INGESTION = os.environ.get("API_RATE_LIMIT_INGESTION", "120000/min")  # POST /events/, /events/batch/
# POST /api/v1/events/ served below DRF's view cycle (billing_site/event_fast_path.py); 0 sends it through the view.
EVENT_FAST_PATH = env_bool("EVENT_FAST_PATH", True)
# Webhook targets on loopback/private networks (tests, the demo, an on-premise receiver). Link-local and
# cloud metadata addresses are refused even then.
WEBHOOKS_ALLOW_PRIVATE_TARGETS = env_bool("WEBHOOKS_ALLOW_PRIVATE_TARGETS", False)
WEBHOOKS_TIMEOUT_SECONDS = float(os.environ.get("WEBHOOKS_TIMEOUT_SECONDS", "10"))
WEBHOOKS_DISABLE_AFTER_DAYS = int(os.environ.get("WEBHOOKS_DISABLE_AFTER_DAYS", "5"))
# --- Billing runs (invoicing/billing_run.py) ------------------------------------------------
# A synchronous POST /billing_runs/ over more due subscriptions than this is refused (409) with a
# hint to send "wait": false; a queued or running run whose heartbeat is older than the stale
# limit is taken over by the next run.
BILLING_RUN_SYNC_MAX_SUBSCRIPTIONS = int(os.environ.get("BILLING_RUN_SYNC_MAX_SUBSCRIPTIONS", "2000"))
BILLING_RUN_STALE_SECONDS = int(os.environ.get("BILLING_RUN_STALE_SECONDS", "300"))
BILLING_RUN_CHUNK_SIZE = int(os.environ.get("BILLING_RUN_CHUNK_SIZE", "1000"))
# --- Usage intelligence (analytics/anomalies.py, invoicing/explanations.py) ------------------
# Print "what changed since the previous invoice" (the explanation's drivers) on invoice PDFs. Off by
# default: the explanation is always on the invoice page and GET /invoices/{id}/explanation/.
INVOICE_PDF_EXPLANATION = env_bool("INVOICE_PDF_EXPLANATION", False)
# Invoice PDFs: "canvas" draws them with ReportLab (invoicing/pdf_canvas.py, ~10x faster; text outside
# the bundled font still goes to WeasyPrint), "weasyprint" renders templates/invoicing/invoice_pdf.html
# (use it when that template is customised: the canvas draws the stock layout only).
INVOICE_PDF_ENGINE = os.environ.get("INVOICE_PDF_ENGINE", "canvas")
if INVOICE_PDF_ENGINE not in ("canvas", "weasyprint"):
    raise ValueError(f"INVOICE_PDF_ENGINE must be 'canvas' or 'weasyprint', not {INVOICE_PDF_ENGINE!r}")
