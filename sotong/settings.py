"""Sotong's one settings module: every value comes from an environment variable.

Defaults give the embedded mode (SQLite under `var/`, jobs on the same database), so
`make run` needs nothing else. The README lists every variable.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import dj_database_url
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("SOTONG_VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def _secret_key() -> str:
    """The key from the environment, or one generated once per installation and kept in var/."""
    if key := os.environ.get("SOTONG_SECRET_KEY"):
        return key
    key_file = VAR_DIR / "secret_key"
    if not key_file.exists():
        key_file.write_text(secrets.token_urlsafe(50))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = env_bool("SOTONG_DEBUG", False)
ALLOWED_HOSTS = env_list("SOTONG_ALLOWED_HOSTS", "127.0.0.1,localhost,[::1],testserver")
CSRF_TRUSTED_ORIGINS = env_list("SOTONG_CSRF_TRUSTED_ORIGINS", "")
PUBLIC_URL = os.environ.get("SOTONG_PUBLIC_URL", "http://127.0.0.1:8000").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "django_q",
    "csp",
    "sotong.directory",
    "sotong.inbox",
    "sotong.triage",
    "sotong.cases",
    "sotong.workbench",
    "sotong.portal",
    "sotong.jobs",
    "sotong.channels",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "sotong.errors.DomainErrorMiddleware",
]

ROOT_URLCONF = "sotong.urls"
WSGI_APPLICATION = "sotong.wsgi.application"
AUTH_USER_MODEL = "directory.Officer"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "workbench:home"
LOGOUT_REDIRECT_URL = "portal:home"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "sotong" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# Database: SQLite file under var/ by default; any dj-database-url URL otherwise.
DATABASE_URL = os.environ.get("SOTONG_DATABASE_URL") or f"sqlite:///{VAR_DIR / 'sotong.sqlite3'}"
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web server read while the worker writes; IMMEDIATE transactions take
    # the write lock up front, so two processes queue for it instead of failing with
    # "database is locked" half-way through a transaction. Connections are kept (60 s, as
    # on PostgreSQL): opening one and setting WAL on every request halved the webhooks'
    # throughput (bench/channels.py: 526 → 1,011 deliveries/s on one core).
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # Tests use a file, not memory, so a worker process started by a test sees the same data.
    DATABASES["default"]["TEST"] = {
        # One file per test run, so that two runs on one machine never share it.
        "NAME": os.environ.get("SOTONG_TEST_SQLITE_FILE")
        or str(VAR_DIR / f"test-sotong-{os.getpid()}.sqlite3")
    }
else:
    # One test database per test run as well: two runs against one server (a developer's
    # and CI's) would otherwise drop each other's test_<name> half-way.
    DATABASES["default"]["TEST"] = {
        "NAME": f"test_{DATABASES['default']['NAME']}_{os.getpid()}"[:63]
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "ko"
LANGUAGES = [("ko", _("Korean")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "sotong" / "locale"]
TIME_ZONE = os.environ.get("SOTONG_TIME_ZONE", "Asia/Seoul")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "sotong" / "static"]
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True
MEDIA_ROOT = VAR_DIR / "media"

# Bodies larger than this are refused before they are parsed (413 on the API).
DATA_UPLOAD_MAX_MEMORY_SIZE = int(os.environ.get("SOTONG_MAX_BODY_BYTES", 256 * 1024))
SOTONG_MAX_TEXT_CHARS = int(os.environ.get("SOTONG_MAX_TEXT_CHARS", 20_000))
# Call-center imports (sotong/inbox/imports.py): largest file and most rows per file.
SOTONG_IMPORT_MAX_BYTES = int(os.environ.get("SOTONG_IMPORT_MAX_BYTES", 20 * 1024 * 1024))
SOTONG_IMPORT_MAX_ROWS = int(os.environ.get("SOTONG_IMPORT_MAX_ROWS", 50_000))

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env_bool("SOTONG_SECURE_COOKIES", False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
# Content-Security-Policy (django-csp 4.0): scripts, styles and fetches from this site only,
# never inline and never eval, so that a citizen's text that slipped past escaping could
# still run nothing. Pages carry no <script> without src, no on*= handler, no style=
# attribute and no <style> element; htmx is told not to add its indicator <style>
# (the htmx-config meta beside {% htmx_script %}). Inline SVG charts are styled by classes
# from static CSS; images may also be data: URIs.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    },
}

# E-mail for reminders and escalations; in-app notifications are always written.
EMAIL_BACKEND = os.environ.get(
    "SOTONG_EMAIL_BACKEND",
    "django.core.mail.backends.smtp.EmailBackend"
    if os.environ.get("SOTONG_EMAIL_HOST")
    else "django.core.mail.backends.dummy.EmailBackend",
)
EMAIL_HOST = os.environ.get("SOTONG_EMAIL_HOST", "localhost")
EMAIL_PORT = int(os.environ.get("SOTONG_EMAIL_PORT", 25))
DEFAULT_FROM_EMAIL = os.environ.get("SOTONG_EMAIL_FROM", "sotong@localhost")

# Trained triage models (files); the database says which is active.
SOTONG_MODEL_DIR = os.environ.get("SOTONG_MODEL_DIR", str(VAR_DIR / "models"))
# Triage: decisions at or above this confidence route themselves.
SOTONG_AUTO_ROUTE_CONFIDENCE = float(os.environ.get("SOTONG_AUTO_ROUTE_CONFIDENCE", 0.6))
# Deadline sweep: remind the officer once this share of the time to the deadline has passed.
SOTONG_REMIND_AT_FRACTION = float(os.environ.get("SOTONG_REMIND_AT_FRACTION", 0.75))

# The channel connectors this installation offers (see sotong/channels/connectors/).
SOTONG_CONNECTORS: list[str] = [
    "sotong.channels.connectors.meta.MetaConnector",
    "sotong.channels.connectors.threads.ThreadsConnector",
    "sotong.channels.connectors.email.EmailConnector",
    "sotong.channels.connectors.youtube.YouTubeConnector",
    "sotong.channels.connectors.sms.SmsConnector",
    "sotong.channels.connectors.x.XConnector",
    "sotong.channels.connectors.kakao.KakaoConnector",
    "sotong.channels.connectors.mastodon.MastodonConnector",
    "sotong.channels.connectors.bluesky.BlueskyConnector",
]
# The local outbox: replies are recorded as sent ("local:<key>") and posted to no platform.
# `sotong serve` turns it on while the demo runs (SOTONG_DEMO, the default of `make run`),
# so a trial installation never answers anyone; set SOTONG_LOCAL_OUTBOX=0 to go live.
SOTONG_LOCAL_OUTBOX = env_bool("SOTONG_LOCAL_OUTBOX", False)
# Fernet key(s) for the accounts' credentials, comma-separated, the first encrypts (the
# others still decrypt, for rotation). Unset: derived from SECRET_KEY (sotong/channels/
# credentials.py), so changing SECRET_KEY then makes stored credentials unreadable.
SOTONG_CREDENTIALS_KEY = os.environ.get("SOTONG_CREDENTIALS_KEY", "")

# Jobs: django-q2 on the database by default (no extra server); Redis when asked.
SOTONG_QUEUE = os.environ.get("SOTONG_QUEUE", "database")
Q_CLUSTER: dict[str, object] = {
    # Workers take jobs from the queue of this name: one per deployment.
    "name": os.environ.get("SOTONG_QUEUE_NAME", "sotong"),
    "workers": int(os.environ.get("SOTONG_WORKERS", 2)),
    "timeout": int(os.environ.get("SOTONG_JOB_TIMEOUT_SECONDS", 300)),
    # A job not acknowledged within `retry` seconds (its worker died) is handed out again.
    "retry": int(os.environ.get("SOTONG_JOB_RETRY_SECONDS", 330)),
    "max_attempts": 10,
    "ack_failures": True,
    "catch_up": False,
    "save_limit": 1000,
    "poll": float(os.environ.get("SOTONG_JOB_POLL_SECONDS", 0.5)),
    "sync": env_bool("SOTONG_JOBS_SYNC", False),
    "label": _("Jobs"),
}
if SOTONG_QUEUE == "redis":
    Q_CLUSTER["redis"] = os.environ.get("SOTONG_REDIS_URL", "redis://127.0.0.1:6379/0")
else:
    Q_CLUSTER["orm"] = "default"

# Caches. "default" is shared by every process (the web form's rate limits and used form
# tokens): a table in the database (`sotong createcachetable`, which `make run` and
# `sotong serve` run), or Redis when the queue is on Redis. "local" is each process's own
# memory, for figures that may be a second old (the public overview).
CACHES: dict[str, dict[str, object]] = {
    "default": {
        "BACKEND": "django.core.cache.backends.db.DatabaseCache",
        "LOCATION": "sotong_cache",
    },
    "local": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "sotong"},
}
if SOTONG_QUEUE == "redis":
    CACHES["default"] = {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": os.environ.get("SOTONG_REDIS_URL", "redis://127.0.0.1:6379/0"),
        "KEY_PREFIX": os.environ.get("SOTONG_QUEUE_NAME", "sotong"),
    }

# The public portal (sotong/portal). The web form's defences: the least time a person takes
# to fill it in, how long a form stays valid, rate limits per address ("count/seconds",
# comma-separated), the proxies whose X-Forwarded-For is believed, the largest photo.
SOTONG_FORM_MIN_SECONDS = float(os.environ.get("SOTONG_FORM_MIN_SECONDS", 3))
SOTONG_FORM_MAX_AGE_SECONDS = int(os.environ.get("SOTONG_FORM_MAX_AGE_SECONDS", 6 * 3600))
SOTONG_FORM_RATE_LIMITS = os.environ.get("SOTONG_FORM_RATE_LIMITS", "5/600,30/86400")
SOTONG_FORM_CACHE = "default"
SOTONG_TRUSTED_PROXIES = os.environ.get("SOTONG_TRUSTED_PROXIES", "")
SOTONG_FORM_MAX_PHOTO_BYTES = int(os.environ.get("SOTONG_FORM_MAX_PHOTO_BYTES", 10 * 1024 * 1024))
# The districts' outlines for the map (GeoJSON); the Seoul directory's file by default.
SOTONG_DISTRICT_GEOMETRY = os.environ.get("SOTONG_DISTRICT_GEOMETRY") or None
# The licence the city publishes its open data under, and its Open311 jurisdiction_id.
SOTONG_OPEN_DATA_LICENCE = os.environ.get(
    "SOTONG_OPEN_DATA_LICENCE", "공공누리 제1유형 (KOGL Type 1)"
)
SOTONG_OPEN311_JURISDICTION = os.environ.get("SOTONG_OPEN311_JURISDICTION", "seoul.go.kr")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("SOTONG_LOG_LEVEL", "INFO")},
    "loggers": {"django-q": {"level": os.environ.get("SOTONG_JOB_LOG_LEVEL", "WARNING")}},
}
