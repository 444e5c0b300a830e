"""Settings for Workstation Inventory, read from the environment.

One module for every shape: the embedded default (SQLite + locmem, no service needed) and
production (PostgreSQL + Redis). Every value a deployment may change comes from an environment
variable listed in the README; nothing else in the code reads the environment.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import dj_database_url
from csp.constants import NONCE, NONE, SELF
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be an integer, got {value!r}") from exc


DJANGO_ENV = os.environ.get("DJANGO_ENV", "development").strip().lower()
if DJANGO_ENV not in {"development", "production"}:
    raise ImproperlyConfigured("DJANGO_ENV must be 'development' or 'production'.")
PRODUCTION = DJANGO_ENV == "production"

VAR_DIR = Path(os.environ.get("VAR_DIR", BASE_DIR / "var"))


def _development_secret_key() -> str:
    """Read the development key from var/, creating it on first run (never committed).

    Processes that start together on a fresh var/ (a server's workers, a command beside it)
    all get the first key made, whole: each writes its own under a name of its own and links
    it into place, which fails if a key is there already; then every one reads the key that
    is. A file written in place could be read empty by another process, between its creation
    and its write, and two processes could each keep a key of their own."""
    path = VAR_DIR / "secret_key"
    if path.exists():
        key = path.read_text().strip()
        if key:
            return key
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    made = VAR_DIR / f".secret_key.{os.getpid()}.{secrets.token_hex(8)}"
    made.write_text(secrets.token_urlsafe(50))
    made.chmod(0o600)
    try:
        os.link(made, path)
    except FileExistsError:
        if not path.read_text().strip():  # (left empty by a write in place that never ended)
            os.replace(made, path)
    finally:
        made.unlink(missing_ok=True)
    return path.read_text().strip()


#: What ``check --deploy`` (security.W009) calls strong enough: Django's own thresholds.
SECRET_KEY_MIN_LENGTH = 50
SECRET_KEY_MIN_UNIQUE_CHARACTERS = 5

SECRET_KEY = os.environ.get("SECRET_KEY", "")
if PRODUCTION and (
    len(SECRET_KEY) < SECRET_KEY_MIN_LENGTH
    or len(set(SECRET_KEY)) < SECRET_KEY_MIN_UNIQUE_CHARACTERS
    or SECRET_KEY.startswith("django-insecure-")
):
    # Refused at start-up rather than left to a warning: sessions, password-reset tokens and
    # the throttles' keys are all signed with it.
    raise ImproperlyConfigured(
        "SECRET_KEY is missing or weak; DJANGO_ENV=production needs a random value of at least "
        f"{SECRET_KEY_MIN_LENGTH} characters (python -c 'import secrets; "
        "print(secrets.token_urlsafe(50))')."
    )
if not SECRET_KEY:
    SECRET_KEY = _development_secret_key()

DEBUG = env_bool("DEBUG", False)
if PRODUCTION and DEBUG:
    # DEBUG pages show settings, SQL and local variables (request bodies, passwords) to anyone.
    raise ImproperlyConfigured("DEBUG must be off when DJANGO_ENV=production.")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "project.apps.InventoryAdminConfig",  # django.contrib.admin, our site (admin_site.py)
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    # The change history of the inventory (workstations/history.py).
    "auditlog",
    "performance",
    "workstations",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "project.csp.CSPMiddleware",
    "performance.middleware.RequestMetricsMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

# Django's fallback storage (a signed cookie, then the session), made only for a request that
# reads or adds a message: an API request never does (project/messages.py).
MESSAGE_STORAGE = "project.messages.DeferredFallbackStorage"

ROOT_URLCONF = "project.urls"
WSGI_APPLICATION = "project.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "project" / "templates"],
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

# Database: a SQLite file under var/ unless DATABASE_URL says otherwise.
DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}",
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    # WAL lets readers run while a writer commits: the embedded server has several threads.
    DATABASES["default"].setdefault("OPTIONS", {})
    DATABASES["default"]["OPTIONS"].update(
        {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        }
    )

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Cache: Redis through django-redis when REDIS_URL or REDIS_SENTINELS is set, otherwise local
# memory. REDIS_URL names one server, or a primary and its replicas (comma-separated, the
# primary first); REDIS_SENTINELS asks Sentinel which server is the primary of
# REDIS_SENTINEL_MASTER (docs/design.md, "Redis deployments").
REDIS_URL = os.environ.get("REDIS_URL", "").strip()
REDIS_SENTINELS = env_list("REDIS_SENTINELS", "")
REDIS_SENTINEL_MASTER = os.environ.get("REDIS_SENTINEL_MASTER", "").strip()
REDIS_DB = os.environ.get("REDIS_DB", "").strip()
REDIS_PASSWORD = os.environ.get("REDIS_PASSWORD", "")
CACHE_TTL = env_int("CACHE_TTL", 300)
CACHE_KEY_PREFIX = os.environ.get("CACHE_KEY_PREFIX", "wsinv").strip() or "wsinv"
#: locmem: entries at most (Django's bound: a third of them, least recently used, go when it is
#: reached). Far above what the byte bound below lets through for the entries this service
#: makes — a list page, a detail, one rendered row each (about 1 KB) for every workstation
#: listed —, so that bytes are what binds, one entry at a time.
CACHE_MAX_ENTRIES = env_int("CACHE_MAX_ENTRIES", 100_000)
#: locmem: bytes the cached entries may hold together (least recently used out first), and one
#: entry at most (a larger value is not cached). A list page of 50 is about 30 KB, of 500 about
#: 300 KB; the largest page the text bounds allow is about 1.4 MB, and is not cached.
CACHE_MAX_BYTES = env_int("CACHE_MAX_BYTES", 64 * 1024 * 1024)
CACHE_MAX_ENTRY_BYTES = env_int("CACHE_MAX_ENTRY_BYTES", 1024 * 1024)
#: Bytes of cached responses each process keeps copies of for warm hits, on Redis (0: none).
CACHE_HOT_BYTES = env_int("CACHE_HOT_BYTES", 16 * 1024 * 1024)
#: Fraction by which TTLs are stretched at random, so entries stored together expire apart.
CACHE_TTL_JITTER = 0.1
#: Circuit breaker around Redis: open after this many consecutive failures, retry after this long.
CACHE_BREAKER_FAIL_MAX = env_int("CACHE_BREAKER_FAIL_MAX", 3)
CACHE_BREAKER_RESET_TIMEOUT = float(os.environ.get("CACHE_BREAKER_RESET_TIMEOUT", "5"))
#: Seconds between two sweeps of invalidations that could not reach the cache.
CACHE_SWEEP_INTERVAL = float(os.environ.get("CACHE_SWEEP_INTERVAL", "0.5"))
#: Warm the common responses in the background when a server process starts.
CACHE_WARM_ON_START = env_bool("CACHE_WARM_ON_START", False)
#: Hosts (as clients send them in Host) and scheme the warmer fills responses for.
CACHE_WARM_HOSTS = env_list("CACHE_WARM_HOSTS", "127.0.0.1:8000,localhost:8000")
CACHE_WARM_SCHEME = os.environ.get("CACHE_WARM_SCHEME", "https" if PRODUCTION else "http")

#: Cache values are MessagePack (bytes and plain data), never pickles: the Redis may be shared,
#: and a pickle would run code when read (docs/design.md, "Invariants", 4). Both shapes alike,
#: so that a value that works embedded works on Redis.
CACHE_SERIALIZER = "django_redis.serializers.msgpack.MSGPackSerializer"


def redis_location(
    url: str, sentinels: list[str], master: str, db: str, password: str
) -> tuple[str | list[str], dict[str, object]]:
    """The Redis cache's ``LOCATION`` and the ``OPTIONS`` that choose its client, from the
    ``REDIS_*`` variables (the README's "Configuration"); what cannot work is refused here."""
    options: dict[str, object] = {"PASSWORD": password} if password else {}
    if sentinels:
        if url:
            raise ImproperlyConfigured(
                "Set REDIS_URL or REDIS_SENTINELS, not both: with Sentinel, the servers are "
                "the ones Sentinel names (REDIS_SENTINEL_MASTER, REDIS_DB, REDIS_PASSWORD)."
            )
        if not master:
            raise ImproperlyConfigured(
                "REDIS_SENTINELS needs REDIS_SENTINEL_MASTER: the name the Sentinels know the "
                "primary by (their 'sentinel monitor <name> ...')."
            )
        if db and not db.isdigit():
            raise ImproperlyConfigured(f"REDIS_DB must be a database number, got {db!r}.")
        options.update(
            CLIENT_CLASS="performance.cache.redis.InventorySentinelClient",
            CONNECTION_FACTORY="django_redis.pool.SentinelConnectionFactory",
            SENTINELS=[_sentinel_address(item) for item in sentinels],
        )
        return f"redis://{master}/{db or 0}", options
    if master or db:
        raise ImproperlyConfigured(
            "REDIS_SENTINEL_MASTER and REDIS_DB apply with REDIS_SENTINELS only; with "
            "REDIS_URL, name the database in the URL (redis://host:6379/2)."
        )
    urls = [item.strip() for item in url.split(",") if item.strip()]
    for n, item in enumerate(urls, start=1):
        scheme, _, rest = item.partition("://")
        if scheme not in {"redis", "rediss", "unix"} or not rest.strip("/"):
            # Not echoed: the URL may hold a password.
            raise ImproperlyConfigured(
                f"REDIS_URL: item {n} is not a redis://, rediss:// or unix:// URL."
            )
    options["CLIENT_CLASS"] = "performance.cache.redis.InventoryRedisClient"
    # One URL as django-redis's string; several as its list: the primary, then its replicas.
    return (urls[0] if len(urls) == 1 else urls), options


def _sentinel_address(item: str) -> tuple[str, int]:
    host, sep, port = item.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ImproperlyConfigured(f"REDIS_SENTINELS: {item!r} is not host:port.")
    return host.strip("[]"), int(port)


if REDIS_URL or REDIS_SENTINELS:
    _location, _options = redis_location(
        REDIS_URL, REDIS_SENTINELS, REDIS_SENTINEL_MASTER, REDIS_DB, REDIS_PASSWORD
    )
    CACHES = {
        "default": {
            "BACKEND": "performance.cache.redis.InstrumentedRedisCache",
            "LOCATION": _location,
            "TIMEOUT": CACHE_TTL,
            "KEY_PREFIX": CACHE_KEY_PREFIX,
            "OPTIONS": {
                **_options,
                "SOCKET_CONNECT_TIMEOUT": float(os.environ.get("REDIS_CONNECT_TIMEOUT", "0.25")),
                "SOCKET_TIMEOUT": float(os.environ.get("REDIS_SOCKET_TIMEOUT", "0.25")),
                "SERIALIZER": CACHE_SERIALIZER,
            },
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "performance.cache.locmem.InstrumentedLocMemCache",
            "LOCATION": "workstation-inventory",
            "TIMEOUT": CACHE_TTL,
            "KEY_PREFIX": CACHE_KEY_PREFIX,
            "OPTIONS": {
                "MAX_ENTRIES": CACHE_MAX_ENTRIES,
                "MAX_BYTES": CACHE_MAX_BYTES,
                "MAX_ENTRY_BYTES": CACHE_MAX_ENTRY_BYTES,
                "SERIALIZER": CACHE_SERIALIZER,
            },
        }
    }

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # whitenoise warns when it is missing
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
# Tests and a fresh checkout run before collectstatic: fall back to unhashed names.
WHITENOISE_MANIFEST_STRICT = False

# The change history (django-auditlog, workstations/history.py): before and after as JSON values
# (numbers stay numbers, an empty value is null), and a related object as its name when the
# change was made ("who had this machine" reads "zoe", not an id that may be reused or renamed).
AUDITLOG_STORE_JSON_CHANGES = True
AUDITLOG_USE_FK_STRING_REPRESENTATION = True

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Token first: its WWW-Authenticate header makes anonymous requests 401, not 403.
        "performance.auth.CachedTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["workstations.api.permissions.ModelPermissions"],
    "DEFAULT_RENDERER_CLASSES": [
        "project.renderers.FastJSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_FILTER_BACKENDS": [
        # django-filter's, skipped when the query names no filter; search bounded in length;
        # ordering strict. Each names the query parameters it reads (StrictQueryMixin).
        "workstations.api.filters.FilterBackend",
        "workstations.api.base.SearchFilter",
        "workstations.api.base.OrderingFilter",
    ],
    "DEFAULT_PAGINATION_CLASS": "workstations.api.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "project.api.InventoryAutoSchema",
    "EXCEPTION_HANDLER": "project.api.exception_handler",
    "DEFAULT_THROTTLE_CLASSES": [
        "performance.throttling.AnonRateThrottle",
        "performance.throttling.UserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "user": os.environ.get("THROTTLE_USER_RATE", "5000/min"),
        "anon": os.environ.get("THROTTLE_ANON_RATE", "60/min"),
        "cache_actions": os.environ.get("THROTTLE_CACHE_ACTIONS_RATE", "30/min"),
        # Logging in (POST /api/auth/token/ and the admin's form): every attempt per address;
        # failures per username and address (that pair's lockout); failures per username (then
        # an address that failed for it and never logged in as it waits). performance/throttling.py
        "login_address": os.environ.get("THROTTLE_LOGIN_ADDRESS_RATE", "10/min"),
        "login_failures": os.environ.get("THROTTLE_LOGIN_FAILURE_RATE", "20/hour"),
        "login_username": os.environ.get("THROTTLE_LOGIN_USERNAME_RATE", "10/min"),
    },
    # Proxies in front of the service that append to X-Forwarded-For. 0 ignores the header, so
    # a client cannot choose the address it is throttled under; production sits behind one
    # (it already trusts the proxy's X-Forwarded-Proto).
    "NUM_PROXIES": env_int("NUM_PROXIES", 1 if PRODUCTION else 0),
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}

#: Days an address a user logged in from stays known: failures from elsewhere never lock it out.
LOGIN_KNOWN_ADDRESS_DAYS = env_int("LOGIN_KNOWN_ADDRESS_DAYS", 30)
API_DESCRIPTION = """The organisation's workstations: what each machine is, where, who has it,
and what state it is in.

**Authentication.** Get a token with `POST /api/auth/token/` (`{"username": ..., "password":
...}`), then send `Authorization: Bearer <token>` with every request. Reading needs an account;
writing needs Django's model permissions (the *Inventory editors* group has them).

**Errors** are JSON: `{"detail": ...}`, or, for a 400, each field or query parameter in error
with its messages. A query parameter an endpoint does not read is a 400 too: a misspelt filter
never widens a query.

**Caching.** Reads carry an `ETag`; send it back in `If-None-Match` to get `304 Not Modified`
while nothing changed. A write is seen by the very next read.
"""

SPECTACULAR_SETTINGS = {
    "TITLE": "Workstation Inventory API",
    "DESCRIPTION": API_DESCRIPTION,
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Request bodies are published as JSON only: the form parsers stay for the browsable API's
    # forms (and curl -d), but published as alternatives they make generated clients send
    # every body three ways at once.
    "PARSER_WHITELIST": ["rest_framework.parsers.JSONParser"],
    # Docstrings are written for developers; what API users read is written for them, with
    # extend_schema and extend_schema_serializer.
    "DISABLE_DOCSTRING_DESCRIPTIONS": True,
    "ENUM_NAME_OVERRIDES": {
        "StatusEnum": "workstations.choices.Status",
        "FormFactorEnum": "workstations.choices.FormFactor",
        "ObjectTypeEnum": "workstations.choices.ObjectType",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "project.api.name_parameter_enums",
    ],
}

# /metrics is open to staff sessions, to "Authorization: Bearer <METRICS_TOKEN>", and to these
# networks (loopback by default, where a local Prometheus agent scrapes).
METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "")
METRICS_ALLOWED_NETWORKS = env_list("METRICS_ALLOWED_NETWORKS", "127.0.0.0/8,::1/128")

#: gunicorn's address (project/gunicorn.conf.py reads the same variable, with the same default):
#: the login notice of ``bootstrap`` prints it.
BIND = os.environ.get("BIND", "127.0.0.1:8000").strip() or "127.0.0.1:8000"

# The browsable API's "Log in" link (rest_framework:login) sends the visitor back where they
# were; without a ?next=, to the API's root.
LOGIN_REDIRECT_URL = "/api/"

LOG_LEVEL = os.environ.get("LOG_LEVEL", "INFO").upper()
LOG_FORMAT = os.environ.get("LOG_FORMAT", "plain").strip().lower()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # One line per record whatever a client sent: control characters are escaped (project/logs.py).
    "formatters": {
        "plain": {
            "()": "project.logs.PlainFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(message)s",
        },
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json" if LOG_FORMAT == "json" else "plain",
        }
    },
    "filters": {"disallowed_host": {"()": "project.logs.DisallowedHostFilter"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # The request log replaces django.request's duplicate warnings for 4xx.
        "django.request": {"level": "ERROR"},
        # A Host the service does not serve: one line per host per minute, no traceback.
        "django.security.DisallowedHost": {"filters": ["disallowed_host"]},
        # django-health-check logs a traceback with every failed probe; /health/ logs one line
        # per failed check (performance.health). Its errors (a check that crashed) stay.
        "health_check": {"level": "ERROR"},
        "performance.requests": {"level": os.environ.get("REQUEST_LOG_LEVEL", "INFO")},
    },
}

# Request limits: a body over the limit is refused with 413 before it is parsed (no uploads
# here; the largest legitimate body, a workstation, is a few kilobytes).
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 1024 * 1024)
DATA_UPLOAD_MAX_NUMBER_FIELDS = 1000
DATA_UPLOAD_MAX_NUMBER_FILES = 10

# Security headers and cookies. Those that cost nothing over plain HTTP apply in every shape
# (Django's defaults, stated so that a change is deliberate); HTTPS-only ones in production.
X_FRAME_OPTIONS = "DENY"
# Content-Security-Policy (django-csp; Django has its own only from 6.0): scripts, styles and
# everything else from this origin only, no inline script, no eval; the few inline <style>
# blocks carry the response's nonce (the console, Swagger UI). Swagger UI's and the admin's
# icons are data: URIs.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF, NONCE],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"

if PRODUCTION:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    # Load balancers probe over plain HTTP inside the network.
    SECURE_REDIRECT_EXEMPT = [r"^health/$"]
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31_536_000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
