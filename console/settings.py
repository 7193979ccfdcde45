"""Throughline settings, read from the environment (12-factor, via django-environ).

THROUGHLINE_ENV=development (the default) runs on the embedded defaults: SQLite in var/, a
filesystem Celery broker that needs no server, DEBUG on and development keys.
THROUGHLINE_ENV=production refuses to start unless SECRET_KEY, CONNECTION_SECRETS_KEY,
ALLOWED_HOSTS and DATABASE_URL are set, and turns on the secure-cookie/HTTPS settings that
`manage.py check --deploy` asks for. See README.md for every variable.
"""

from __future__ import annotations

import base64
import hashlib
from decimal import Decimal
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(environ.Env().str("THROUGHLINE_VAR_DIR", default=str(BASE_DIR / "var")))

env = environ.Env()
ENVIRONMENT = env.str("THROUGHLINE_ENV", default="development")
if ENVIRONMENT not in ("development", "production"):
    raise ImproperlyConfigured("THROUGHLINE_ENV must be 'development' or 'production'")
PRODUCTION = ENVIRONMENT == "production"

if PRODUCTION:
    missing = [
        name
        for name in ("SECRET_KEY", "CONNECTION_SECRETS_KEY", "ALLOWED_HOSTS", "DATABASE_URL")
        if not env.str(name, default="")
    ]
    if missing:
        raise ImproperlyConfigured(
            "production needs these environment variables: " + ", ".join(missing)
        )

DEBUG = env.bool("DEBUG", default=not PRODUCTION)
SECRET_KEY = env.str("SECRET_KEY", default="dev-only-insecure-key-change-me-for-any-real-use-0000")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])


def _dev_fernet_key(secret: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(f"fernet:{secret}".encode()).digest()).decode()


#: Fernet keys for connection secrets, newest first (comma-separated; older keys still decrypt).
CONNECTION_SECRETS_KEYS = env.list("CONNECTION_SECRETS_KEY", default=[_dev_fernet_key(SECRET_KEY)])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "console",
    "integrations",
    "exceptions",
    "reconciliation",
    "dashboards",
    "reporting",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "console.urls"
WSGI_APPLICATION = "console.wsgi.application"
ASGI_APPLICATION = "console.asgi.application"
AUTH_USER_MODEL = "console.User"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

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
                "console.context_processors.navigation",
            ]
        },
    }
]

# -- database ------------------------------------------------------------------------------
VAR_DIR.mkdir(parents=True, exist_ok=True)
DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'throughline.sqlite3'}")
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web, worker and beat share one file: WAL lets readers run beside the writer, IMMEDIATE
    # transactions take the write lock up front instead of failing mid-transaction.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    DATABASES["default"].setdefault("TEST", {})["NAME"] = str(VAR_DIR / "test.sqlite3")
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-gb"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if PRODUCTION
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}

# -- security (production) -------------------------------------------------------------------
if PRODUCTION:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True

# -- REST API --------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Throughline API",
    "DESCRIPTION": "Connections, sync runs and exception queues of the Throughline console.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# -- Celery ----------------------------------------------------------------------------------
BROKER_DIR = VAR_DIR / "broker"
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://localhost//")
if CELERY_BROKER_URL.startswith("filesystem://"):
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
    }
    for _folder in ("queue", "processed", "control"):
        (BROKER_DIR / _folder).mkdir(parents=True, exist_ok=True)
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = "UTC"
#: one queue per connection (integrations.queues); the worker consumes the default queue and
#: every enabled connection's queue (`manage.py celery_queues`)
CELERY_QUEUE_PER_CONNECTION = env.bool("CELERY_QUEUE_PER_CONNECTION", default=True)
CELERY_TASK_DEFAULT_QUEUE = "celery"
CELERY_TASK_CREATE_MISSING_QUEUES = True
CELERY_BEAT_SCHEDULE = {
    "poll-crm-closed-won": {
        "task": "integrations.poll_all_crm_connections",
        "schedule": env.float("POLL_INTERVAL_SECONDS", default=15.0),
    },
    "outbox-sweep": {"task": "integrations.sweep_outbox", "schedule": 5.0},
    "detect-stuck-transactions": {"task": "integrations.detect_stuck", "schedule": 60.0},
    "poll-psa-events": {
        "task": "integrations.poll_all_psa_connections",
        "schedule": env.float("POLL_INTERVAL_SECONDS", default=15.0),
    },
    "sync-payment-status": {"task": "integrations.sync_all_payments", "schedule": 60.0},
    "collect-time-entries": {"task": "integrations.collect_all_time_entries", "schedule": 60.0},
    "sync-assignments": {"task": "integrations.sync_all_assignments", "schedule": 300.0},
    "demo-traffic": {
        "task": "console.demo_traffic",
        "schedule": env.float("DEMO_TRAFFIC_INTERVAL_SECONDS", default=20.0),
    },
    "reference-data": {
        "task": "integrations.sync_reference_data",
        "schedule": env.float("REFERENCE_DATA_INTERVAL_SECONDS", default=3600.0),
    },
    # what the ERP recognised: revenue lines of the accounting periods it closed
    "recognised-revenue": {
        "task": "integrations.sync_all_recognised_revenue",
        "schedule": env.float("RECOGNISED_REVENUE_INTERVAL_SECONDS", default=300.0),
    },
    "exceptions-check-sla": {
        "task": "exceptions.check_sla",
        "schedule": env.float("SLA_CHECK_INTERVAL_SECONDS", default=300.0),
    },
    # KPI rollups against the raw records of the last two days; a difference is logged and
    # those days are rebuilt (dashboards.rollups)
    "kpi-rollups-verify": {
        "task": "dashboards.verify_rollups",
        "schedule": env.float("ROLLUP_VERIFY_INTERVAL_SECONDS", default=21600.0),
    },
}

# -- Throughline -----------------------------------------------------------------------------
#: Where the demo's vendor stand-ins listen (used by `manage.py seed_demo`).
STANDIN_HOST = env.str("STANDIN_HOST", default="127.0.0.1")
STANDIN_PORTS = {
    "salesforce": env.int("STANDIN_SALESFORCE_PORT", default=8101),
    "netsuite": env.int("STANDIN_NETSUITE_PORT", default=8102),
    "kantata": env.int("STANDIN_KANTATA_PORT", default=8103),
    "netsuite_legacy": env.int("STANDIN_NETSUITE_LEGACY_PORT", default=8104),
}
STANDIN_KEYS_DIR = Path(env.str("STANDIN_KEYS_DIR", default=str(VAR_DIR / "standin-keys")))
#: Retry policy of every connector client: attempts per call and exponential backoff (seconds);
#: a vendor's Retry-After wins over the backoff (capped by the client).
CONNECTOR_RETRY = {
    "max_attempts": env.int("CONNECTOR_MAX_ATTEMPTS", default=4),
    "backoff_initial": env.float("CONNECTOR_BACKOFF_INITIAL", default=0.5),
    "backoff_max": env.float("CONNECTOR_BACKOFF_MAX", default=30.0),
}
#: How long a business transaction may take to reach a milestone before it counts as stuck
#: (seconds): a closed-won deal gets its project, a completed milestone its invoice.
EXPECTATIONS = {
    "project_provisioned": env.int("EXPECT_PROJECT_WITHIN_SECONDS", default=3600),
    "invoice_created": env.int("EXPECT_INVOICE_WITHIN_SECONDS", default=86400),
}
#: Expenses at or above this amount (in their own currency) need a receipt to be posted.
EXPENSE_RECEIPT_THRESHOLD = Decimal(env.str("EXPENSE_RECEIPT_THRESHOLD", default="75.00"))
#: Status of posted entries goes back to the PSA this many seconds after each batch posts
#: (one PSA call per entry: postings to the ERP go first in a month-end burst).
POSTING_STATUS_DELAY_SECONDS = env.int("POSTING_STATUS_DELAY_SECONDS", default=10)
#: The demo's traffic generator (console.demo_traffic): `make run` turns it on.
DEMO_TRAFFIC = env.bool("DEMO_TRAFFIC", default=False)
#: A run left "running" longer than this is taken over by the next worker (a lost worker).
RUN_LEASE_SECONDS = env.int("RUN_LEASE_SECONDS", default=600)
#: runs a poll hands to one worker task: the batch's steps use the vendors' bulk APIs
#: (Kantata creates at most 100 workspaces per call, Salesforce updates 200 records)
RUN_BATCH_SIZE = env.int("RUN_BATCH_SIZE", default=50)

#: One cache shared by web, worker and beat (connector health: worker status and API budgets
#: that beat tasks refresh): a folder in var/ by default, Redis with CACHE_URL=redis://...
CACHES = {"default": env.cache("CACHE_URL", default=f"filecache://{VAR_DIR / 'cache'}")}
#: Connector health (dashboards.health): thresholds of the verdicts, see README
CONNECTOR_HEALTH = {
    "p95_warning_ms": env.float("HEALTH_P95_WARNING_MS", default=2000.0),
    "headroom_warning": env.float("HEALTH_HEADROOM_WARNING", default=0.10),
    "error_rate_red": env.float("HEALTH_ERROR_RATE_RED", default=0.50),
}
CELERY_BEAT_SCHEDULE |= {
    "health-worker-status": {"task": "dashboards.refresh_worker_status", "schedule": 30.0},
    "health-api-budgets": {"task": "dashboards.refresh_api_budgets", "schedule": 300.0},
    # KPI and queue thresholds: open, raise and recover MetricAlerts (dashboards.thresholds)
    "kpi-thresholds-evaluate": {
        "task": "dashboards.evaluate_thresholds",
        "schedule": env.float("THRESHOLD_EVALUATE_INTERVAL_SECONDS", default=60.0),
    },
}
#: /metrics (Prometheus) answers without a login only to these addresses (CIDR allowed; the
#: peer address, never X-Forwarded-For) or to `Authorization: Bearer <METRICS_TOKEN>`
METRICS_ALLOWED_IPS = env.list("METRICS_ALLOWED_IPS", default=["127.0.0.1", "::1"])
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
#: The silent-failure audit (reconciliation.silent_audit): every source event received in the
#: last SILENT_AUDIT_WINDOW_SECONDS ended applied or as an exception; events younger than
#: SILENT_AUDIT_GRACE_SECONDS count as in flight. Runs every SILENT_AUDIT_INTERVAL_SECONDS.
SILENT_AUDIT_INTERVAL_SECONDS = env.float("SILENT_AUDIT_INTERVAL_SECONDS", default=900.0)
SILENT_AUDIT_WINDOW_SECONDS = env.int("SILENT_AUDIT_WINDOW_SECONDS", default=86400)
SILENT_AUDIT_GRACE_SECONDS = env.int("SILENT_AUDIT_GRACE_SECONDS", default=900)
CELERY_BEAT_SCHEDULE["silent-failure-audit"] = {
    "task": "reconciliation.silent_failure_audit",
    "schedule": SILENT_AUDIT_INTERVAL_SECONDS,
}
#: Reporting extracts (reporting.extracts): every extract writes into a folder under this root;
#: rows changed in the last EXTRACTS_SETTLE_SECONDS wait for the next run (a transaction still
#: committing may hold an older change time)
EXTRACTS_ROOT = Path(env.str("EXTRACTS_ROOT", default=str(VAR_DIR / "extracts")))
EXTRACTS_SETTLE_SECONDS = env.int("EXTRACTS_SETTLE_SECONDS", default=5)

#: Incident alerts: e-mail through Django's backend (the console backend prints them in
#: development; set EMAIL_BACKEND/EMAIL_HOST/... for SMTP), webhooks with this timeout, links
#: to CONSOLE_URL (the console's public address).
EMAIL_BACKEND = env.str(
    "EMAIL_BACKEND",
    default="django.core.mail.backends.smtp.EmailBackend"
    if PRODUCTION
    else "django.core.mail.backends.console.EmailBackend",
)
EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=10)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Throughline <throughline@localhost>")
CONSOLE_URL = env.str("CONSOLE_URL", default="http://127.0.0.1:8000")
ALERT_WEBHOOK_TIMEOUT_SECONDS = env.float("ALERT_WEBHOOK_TIMEOUT_SECONDS", default=5.0)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"httpx": {"level": "WARNING"}, "httpcore": {"level": "WARNING"}},
}
