"""Django settings for the Cairn console, gateway and workers.

12-factor: every value comes from the environment. Without any environment the
whole platform runs on embedded defaults (SQLite and a local object store
under var/, a Celery broker on the local filesystem, a development CA).
``CAIRN_ENV=production`` switches to the real services and refuses to start
with anything that is only fit for development.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from console.core.middleware import DEFAULT_POLICY as DEFAULT_CSP
from console.env import env_bool, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("CAIRN_VAR_DIR", str(BASE_DIR / "var"))).resolve()

CAIRN_ENV = env_str("CAIRN_ENV", "development")
if CAIRN_ENV not in {"development", "production"}:
    raise ImproperlyConfigured(f"CAIRN_ENV={CAIRN_ENV!r}: use development or production")
PRODUCTION = CAIRN_ENV == "production"

# --- core -------------------------------------------------------------------
DEV_SECRET_KEY = "cairn-development-only-secret-key-never-use-in-production"
SECRET_KEY = env_str("SECRET_KEY", DEV_SECRET_KEY)
if PRODUCTION and (
    SECRET_KEY == DEV_SECRET_KEY or len(SECRET_KEY) < 50 or len(set(SECRET_KEY)) < 5
):
    raise ImproperlyConfigured(
        "CAIRN_ENV=production needs SECRET_KEY set to a random value of at least 50 characters"
    )
DEBUG = env_bool("DEBUG", not PRODUCTION)
if PRODUCTION and DEBUG:
    # Debug pages show settings, SQL and stack traces to anyone who triggers an error.
    raise ImproperlyConfigured("CAIRN_ENV=production refuses DEBUG=true: unset DEBUG")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", [] if PRODUCTION else ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    # Read-only, never mounted in production (console/accounts/admin_site.py).
    "console.accounts.admin_site.ReadOnlyAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI and Redoc served locally, no CDN
    "axes",  # sign-in lockout, before console.accounts (console/accounts/lockout.py)
    "console.core",
    "console.accounts",
    "console.fleet",
    "console.policies",
    "console.jobs",
    "console.storage",
    "console.reports",
    "console.restore",
    "console.audit",
    "console.alerts",
    "console.holds",
    "console.dashboard",
    "console.api",
    "console.gateway",
]
if not PRODUCTION:
    # `make demo`, seed_demo: never installed in production (console/demo/apps.py).
    INSTALLED_APPS.append("console.demo")

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "console.core.middleware.ContentSecurityPolicyMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",  # turns a sign-in lockout into its page
]

if PRODUCTION:
    # Static files straight from the app servers, compressed and cache-busted.
    MIDDLEWARE.insert(1, "whitenoise.middleware.WhiteNoiseMiddleware")

ROOT_URLCONF = "console.urls"
WSGI_APPLICATION = "console.wsgi.application"
ASGI_APPLICATION = "console.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "console" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "console.accounts.roles.context",
                "console.dashboard.context.demo",
            ],
        },
    },
]

# --- database: SQLite under var/ unless DATABASE_URL names a server ---------
DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'cairn.sqlite3'}"),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60 if PRODUCTION else 0),
    )
}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # The embedded database is shared by the web server, gateway and workers:
    # wait for a writer instead of failing, and take the write lock up front so
    # two processes never deadlock upgrading read locks; WAL lets readers
    # (the dashboard) run while the gateway writes.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        timeout=30, transaction_mode="IMMEDIATE", init_command="PRAGMA journal_mode=WAL;"
    )
if PRODUCTION and DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    raise ImproperlyConfigured("CAIRN_ENV=production needs DATABASE_URL (PostgreSQL)")
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "login"

# Sign-in lockout (django-axes, console/accounts/lockout.py): failures are
# counted in the database, shared by every console process, per account and
# per address; either reaching the limit locks sign-in for the cool-off time
# (login page and API token endpoint alike). An Admin unlocks a user early.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"
AXES_FAILURE_LIMIT = env_int("CAIRN_SIGNIN_FAILURE_LIMIT", 10)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("CAIRN_SIGNIN_LOCKOUT_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
# A lockout lasts its cool-off from the locking failure: attempts while locked
# neither extend it nor count (so "try again in N minutes" holds).
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
# Not on success: one valid account of an attacker's own would wipe its
# address's failures against others' accounts; failures age out instead.
AXES_RESET_ON_SUCCESS = False
AXES_CLIENT_IP_CALLABLE = "console.accounts.lockout.client_ip"
AXES_LOCKOUT_CALLABLE = "console.accounts.lockout.lockout_response"
AXES_DISABLE_ACCESS_LOG = True  # sign-ins are in the audit log already
AXES_VERBOSE = False

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# The image collects them at build time (deploy/Dockerfile) outside the state volume.
STATIC_ROOT = Path(env_str("CAIRN_STATIC_ROOT", str(VAR_DIR / "static")))
STATICFILES_DIRS = [BASE_DIR / "console" / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# --- Redis, Celery ----------------------------------------------------------
REDIS_URL = env_str("REDIS_URL", "")
if PRODUCTION and not REDIS_URL:
    raise ImproperlyConfigured("CAIRN_ENV=production needs REDIS_URL")
CELERY_BROKER_DIR = VAR_DIR / "celery"
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS: dict = {}
    CELERY_RESULT_BACKEND = REDIS_URL
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
    }
else:
    # Embedded default: kombu's filesystem transport needs no server at all.
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(CELERY_BROKER_DIR / "queue"),
        "data_folder_out": str(CELERY_BROKER_DIR / "queue"),
        "processed_folder": str(CELERY_BROKER_DIR / "processed"),
        "control_folder": str(CELERY_BROKER_DIR / "control"),
        "store_processed": False,
    }
    CELERY_RESULT_BACKEND = f"file://{CELERY_BROKER_DIR / 'results'}"
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
# A separate queue name per deployment (or per test session sharing one Redis).
CELERY_TASK_DEFAULT_QUEUE = env_str("CELERY_QUEUE", "cairn")
# Prefix for every Redis key Cairn writes itself (gateway registry, locks).
REDIS_KEY_PREFIX = env_str("CAIRN_REDIS_PREFIX", "cairn:")
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TIMEZONE = TIME_ZONE
# Beat: periodic work (each app's tasks.py: gateway, jobs, fleet, policies, storage).
CELERY_BEAT_SCHEDULE = {
    "mark-offline": {"task": "gateway.mark_offline", "schedule": 60.0},
    "expire-commands": {"task": "jobs.expire_commands", "schedule": 300.0},
    "redeliver-pending": {"task": "jobs.redeliver_pending", "schedule": 120.0},
    "recompute-protection": {"task": "fleet.recompute_protection", "schedule": 600.0},
    "converge-policies": {"task": "policies.converge_policies", "schedule": 3600.0},
    "maintain-repositories": {"task": "storage.maintain_all", "schedule": 86400.0},
    "verify-repositories": {"task": "storage.verify_due", "schedule": 3600.0},
    "fill-device-history": {"task": "reports.fill_history", "schedule": 3600.0},
    "report-schedules": {"task": "reports.run_due_schedules", "schedule": 3600.0},
    "evaluate-alerts": {"task": "alerts.evaluate", "schedule": 60.0},
    "offboard-revoked": {"task": "holds.offboard_due", "schedule": 86400.0},
    "alert-digests": {"task": "alerts.digest", "schedule": 3600.0},
}
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
# Offboarding (console/holds/offboarding.py): a revoked device's data is kept
# this many days after revocation, then deleted unless a legal hold covers it.
CAIRN_REVOKED_RETENTION_DAYS = env_int("CAIRN_REVOKED_RETENTION_DAYS", 90)
# Disaster recovery of the console (console/storage/recovery.py): a sealed bundle
# to the storage target every CAIRN_CONSOLE_BACKUP_HOURS (0: no schedule),
# sealed by the passphrase in CAIRN_RECOVERY_PASSPHRASE_FILE; the newest
# CAIRN_CONSOLE_BACKUP_KEEP bundles are kept.
CAIRN_RECOVERY_PASSPHRASE_FILE = env_str("CAIRN_RECOVERY_PASSPHRASE_FILE", "")
CAIRN_CONSOLE_BACKUP_HOURS = env_int("CAIRN_CONSOLE_BACKUP_HOURS", 0)
CAIRN_CONSOLE_BACKUP_KEEP = env_int("CAIRN_CONSOLE_BACKUP_KEEP", 14)
if CAIRN_CONSOLE_BACKUP_HOURS > 0:
    CELERY_BEAT_SCHEDULE["backup-console"] = {
        "task": "storage.backup_console",
        "schedule": CAIRN_CONSOLE_BACKUP_HOURS * 3600.0,
    }

# --- e-mail (alert notifications, console/alerts/notify.py): SMTP when
# EMAIL_HOST is set; embedded, each message is written under var/mail/ ------
EMAIL_HOST = env_str("EMAIL_HOST", "")
if EMAIL_HOST:
    EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    EMAIL_PORT = env_int("EMAIL_PORT", 587)
    EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
    EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
    EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", True)
    EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 20)
else:
    EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    EMAIL_FILE_PATH = str(VAR_DIR / "mail")
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "cairn@localhost")

# --- object storage: a local directory unless S3_ENDPOINT names MinIO/S3 ----
S3_ENDPOINT = env_str("S3_ENDPOINT", "")
S3_BUCKET = env_str("S3_BUCKET", "cairn")
S3_REGION = env_str("S3_REGION", "us-east-1")
S3_ACCESS_KEY = env_str("S3_ACCESS_KEY", env_str("AWS_ACCESS_KEY_ID", ""))
S3_SECRET_KEY = env_str("S3_SECRET_KEY", env_str("AWS_SECRET_ACCESS_KEY", ""))
# The endpoint agents reach storage at, when it differs from the console's
# (compose: the console says http://minio:9000, PCs https://s3.example.org).
# Grants are signed for its host (SigV4 signs the Host header).
S3_PUBLIC_ENDPOINT = env_str("S3_PUBLIC_ENDPOINT", "")
# `manage.py init_installation` creates the bucket with versioning; with this
# also S3 Object Lock (it can only be turned on when the bucket is created).
S3_OBJECT_LOCK = env_bool("S3_OBJECT_LOCK", False)
LOCAL_STORAGE_DIR = Path(env_str("CAIRN_LOCAL_STORAGE_DIR", str(VAR_DIR / "storage")))
if PRODUCTION and not S3_ENDPOINT:
    raise ImproperlyConfigured("CAIRN_ENV=production needs S3_ENDPOINT (MinIO or any S3)")
CAIRN_ORG = env_str("CAIRN_ORG", "default")
# Key that encrypts secrets stored in the database (S3 credentials); defaults
# to a derivation of SECRET_KEY (console/storage/crypto.py).
CAIRN_SECRETS_KEY = env_str("CAIRN_SECRETS_KEY", "")
# A device not seen for this many days is flagged on the overview.
CAIRN_STALE_DAYS = env_int("CAIRN_STALE_DAYS", 7)
# Commands that are not delivered in time expire (hours).
CAIRN_COMMAND_TTL_HOURS = env_int("CAIRN_COMMAND_TTL_HOURS", 72)
# Behind a reverse proxy: take the audit log's source address from X-Forwarded-For.
CAIRN_TRUST_X_FORWARDED_FOR = env_bool("CAIRN_TRUST_X_FORWARDED_FOR", False)

# --- keys and TLS -------------------------------------------------------------
# The organisation key wraps every device repository's keys (docs/security.md).
ORG_KEY_FILE = Path(env_str("CAIRN_ORG_KEY_FILE", str(VAR_DIR / "keys" / "org.key")))
# The CA that signs device certificates; generated on first start in development.
PKI_DIR = Path(env_str("CAIRN_PKI_DIR", str(VAR_DIR / "pki")))
GATEWAY_BIND = env_str("CAIRN_GATEWAY_BIND", "127.0.0.1:7443")
GATEWAY_PUBLIC_ADDRESS = env_str("CAIRN_GATEWAY_ADDRESS", GATEWAY_BIND)

# --- metrics (docs/operations.md, "Metrics") --------------------------------
# Bearer token a Prometheus scrape must send to /metrics and to the gateway's
# and workers' exporters; unset: development answers anyone, production no one.
CAIRN_METRICS_TOKEN = env_str("CAIRN_METRICS_TOKEN", "")
CAIRN_METRICS_CACHE_SECONDS = env_int("CAIRN_METRICS_CACHE_SECONDS", 5)
# host:port of the gateway's and the workers' exporters; empty: none.
GATEWAY_METRICS_BIND = env_str("CAIRN_GATEWAY_METRICS_BIND", "")
WORKER_METRICS_BIND = env_str("CAIRN_WORKER_METRICS_BIND", "")

# --- REST API -----------------------------------------------------------------
REST_FRAMEWORK = {
    # Token first: a request without credentials is a 401 with a Token challenge
    # (the session comes second, CSRF-checked, for the browser).
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "console.api.exceptions.handler",
    # Deeply nested JSON is a 400, not a RecursionError (console/api/parsers.py).
    "DEFAULT_PARSER_CLASSES": [
        "console.api.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Cairn console API",
    "DESCRIPTION": "Fleet, policies, jobs, restores and audit for Cairn backup.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    # one name for the alert rules wherever they appear (alert, channel)
    "ENUM_NAME_OVERRIDES": {"AlertRuleEnum": "console.alerts.models.Rule"},
    "REDOC_DIST": "SIDECAR",
    # API clients sign in with a token; the session cookie is the browser's.
    "AUTHENTICATION_WHITELIST": ["rest_framework.authentication.TokenAuthentication"],
    # Error answers, bounds of ids and pages (console/api/schema.py).
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "console.api.schema.postprocess",
    ],
}

# --- security: strict in production -----------------------------------------
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = PRODUCTION
CSRF_COOKIE_SECURE = PRODUCTION
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Content-Security-Policy (console/core/middleware.py); empty turns it off.
CAIRN_CSP = env_str("CAIRN_CSP", DEFAULT_CSP)
if PRODUCTION:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    # TLS terminates at the load balancer, which sets X-Forwarded-Proto.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    # axes logs every failed sign-in at WARNING already; its INFO lines are noise.
    "loggers": {"django.db.backends": {"level": "WARNING"}, "axes": {"level": "WARNING"}},
}
