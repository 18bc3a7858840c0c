"""Typed, forgiving readers for environment variables.

Values are stripped of surrounding white space and one pair of matching quotes, so
``MONGO_DB_NAME = "hf_ml" `` in a hand-edited ``.env`` means ``hf_ml``. A value that
cannot be used raises ``ImproperlyConfigured`` naming the variable and what is allowed.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import environ
from django.core.exceptions import ImproperlyConfigured

from django_hf_ml.choices import (
    ALL_TASK_NAMES,
    DEVICE_CHOICES_TEXT,
    DEVICE_PATTERN,
    DEVICE_VARIABLE,
    DTYPE_ALIASES,
    DTYPE_VARIABLE,
    DTYPES,
    THREADS_MAX,
    THREADS_VARIABLE,
    normalize_task,
)

TRUE_WORDS = frozenset({"1", "true", "yes", "on", "y", "t"})
FALSE_WORDS = frozenset({"0", "false", "no", "off", "n", "f", ""})
# MongoDB refuses these in database names (plus NUL); Atlas also caps the length at 38 bytes.
_DB_NAME_FORBIDDEN = set(' /\\."$*<>:|?\x00')
_COLLECTION_FORBIDDEN = re.compile(r"^\$|\x00|^system\.")


def load_dotenv(path: Path) -> None:
    """Read ``path`` into ``os.environ`` without overriding real environment variables."""
    if not path.is_file():
        return
    _refuse_nul_bytes(path)
    environ.Env.read_env(path, overwrite=False)


def _refuse_nul_bytes(path: Path) -> None:
    """The OS cannot hold NUL in environment values: name the variable instead of crashing."""
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if "\x00" not in line:
            continue
        name, _, value = line.partition("=")
        name = name.strip().removeprefix("export ").strip()
        if name == "MONGO_DB_NAME":
            validate_db_name(name, clean(value))
        raise ImproperlyConfigured(f"{name} in {path} contains a NUL character; remove it.")


def clean(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        value = value[1:-1].strip()
    return value


def raw(name: str) -> str | None:
    value = os.environ.get(name)
    return None if value is None else clean(value)


def env_str(name: str, default: str = "") -> str:
    value = raw(name)
    return default if value is None or value == "" else value


def env_bool(name: str, default: bool) -> bool:
    value = raw(name)
    if value is None:
        return default
    word = value.lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ImproperlyConfigured(f"{name}={value!r} is not a boolean: use one of 1/0, true/false, yes/no, on/off.")


def env_int(name: str, default: int, *, minimum: int, maximum: int) -> int:
    return parse_int(name, raw(name) or "", default=default, minimum=minimum, maximum=maximum)


def parse_int(name: str, value: str, *, default: int, minimum: int, maximum: int) -> int:
    return int(_parse_number(name, value, int, "a whole number", default=default, minimum=minimum, maximum=maximum))


def _parse_number(
    name: str, value: str, kind: type[int] | type[float], noun: str, *, default: float, minimum: float, maximum: float
) -> float:
    text = value.strip()
    if not text:
        return default
    try:
        number = kind(text)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not {noun} ({minimum}..{maximum}).") from None
    if not minimum <= number <= maximum:
        raise ImproperlyConfigured(f"{name}={number} is out of range: allowed {minimum}..{maximum}.")
    return number


def parse_choice(name: str, value: str, allowed: tuple[str, ...]) -> str:
    word = value.strip().lower()
    if word not in allowed:
        raise ImproperlyConfigured(f"{name}={value!r} is not allowed: use one of {', '.join(allowed)}.")
    return word


def env_float(name: str, default: float, *, minimum: float, maximum: float) -> float:
    return _parse_number(name, raw(name) or "", float, "a number", default=default, minimum=minimum, maximum=maximum)


def env_list(name: str, default: list[str]) -> list[str]:
    value = raw(name)
    if value is None or value == "":
        return list(default)
    return [clean(item) for item in value.split(",") if clean(item)]


def validate_db_name(name: str, value: str) -> str:
    bad = sorted({repr(ch) if ch in " \x00" else ch for ch in value if ch in _DB_NAME_FORBIDDEN})
    if not value or bad or len(value.encode()) > 63:
        shown = ", ".join(bad) if bad else "none"
        raise ImproperlyConfigured(
            f"{name}={value!r} is not a valid MongoDB database name (forbidden characters found: {shown}). "
            "Use 1-63 letters, digits, '_' or '-', with no spaces, '/', '\\', '\"', '.', '$' or NUL."
        )
    return value


def validate_collection_name(name: str, value: str) -> str:
    if not value or _COLLECTION_FORBIDDEN.search(value) or len(value.encode()) > 120:
        raise ImproperlyConfigured(
            f"{name}={value!r} is not a valid MongoDB collection name: use letters, digits, '_', '-' or '.', "
            "not starting with '$' or 'system.', without NUL."
        )
    return value


def validate_mongo_uri(name: str, value: str) -> str:
    if value and not value.startswith(("mongodb://", "mongodb+srv://")):
        raise ImproperlyConfigured(
            f"{name} must start with mongodb:// or mongodb+srv:// (got a value starting with {value[:10]!r})."
        )
    return value


# --- Django's own database (sessions, users): DATABASE_URL ----------------------------------------
SQLITE_ENGINE = "django.db.backends.sqlite3"
POSTGRES_ENGINE = "django.db.backends.postgresql"
DATABASE_SCHEMES = {
    "sqlite": SQLITE_ENGINE,
    "postgres": POSTGRES_ENGINE,
    "postgresql": POSTGRES_ENGINE,
    "pgsql": POSTGRES_ENGINE,
}
DATABASE_URL_HELP = (
    "Use postgres://USER:PASSWORD@HOST:PORT/NAME (PostgreSQL, shared by every machine) or "
    "sqlite:////absolute/path/db.sqlite3; leave it empty for the SQLite file in DATA_DIR."
)
POSTGRES_CONN_MAX_AGE = 60  # seconds a worker keeps its connection (with a health check before reuse)


def parse_database_url(name: str, value: str, *, default_sqlite: Path) -> dict[str, Any]:
    """``DATABASES["default"]`` from ``DATABASE_URL`` (django-environ's parser); empty → the SQLite file."""
    if not value:
        return {"ENGINE": SQLITE_ENGINE, "NAME": default_sqlite}
    scheme, separator, _ = value.partition("://")
    engine = DATABASE_SCHEMES.get(scheme.lower())
    if not separator or engine is None:
        shown = f"{scheme}://" if separator else "no scheme"
        raise ImproperlyConfigured(f"{name} has an unsupported scheme ({shown!r}). {DATABASE_URL_HELP}")
    try:
        config: dict[str, Any] = environ.Env.db_url_config(value)
    except (ValueError, TypeError) as exc:  # e.g. a port that is not a number; never show the password
        raise ImproperlyConfigured(
            f"{name} is not a valid database URL ({exc.__class__.__name__}). {DATABASE_URL_HELP}"
        ) from None
    config["ENGINE"] = engine
    if not config.get("NAME"):
        raise ImproperlyConfigured(f"{name} names no database (the path after the host). {DATABASE_URL_HELP}")
    if engine == POSTGRES_ENGINE:
        config.setdefault("CONN_MAX_AGE", POSTGRES_CONN_MAX_AGE)
        health = str(config.get("CONN_HEALTH_CHECKS", "true")).lower()
        config["CONN_HEALTH_CHECKS"] = health in TRUE_WORDS
    return config


# --- Model, task and hardware settings -------------------------------------------------------------
DEVICE_INVALID = f"{DEVICE_VARIABLE}={{value!r}} is not a device: use {DEVICE_CHOICES_TEXT}."
DTYPE_INVALID = f"{DTYPE_VARIABLE}={{value!r}} is not a precision: use one of {', '.join(DTYPES)}."
THREADS_INVALID = (
    f"{THREADS_VARIABLE}={{value!r}} is not a thread count: use a whole number 1..{THREADS_MAX}, "
    "or leave it empty for all the cores this process may use."
)
MODELS_FORMAT_HELP = (
    "Use comma-separated id=task pairs, e.g. "
    "HF_MODELS=HuggingFaceTB/SmolLM2-135M-Instruct=text-generation,google/flan-t5-small=text2text-generation"
)


def validate_task_name(variable: str, task: str) -> str:
    """Start-up check for a task setting: ``ImproperlyConfigured`` names the variable and the choices."""
    normalized = normalize_task(task)
    if normalized is None:
        raise ImproperlyConfigured(
            f"{variable}={task!r} is not a supported task. Supported: {', '.join(ALL_TASK_NAMES)}."
        )
    return normalized


def parse_models(variable: str, text: str) -> tuple[tuple[str, str], ...]:
    """Parse ``id=task,id=task`` into (id, task) pairs; ``ImproperlyConfigured`` names the bad entry."""
    entries: list[tuple[str, str]] = []
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            continue
        model_id, separator, task = entry.rpartition("=")
        if not separator or not model_id.strip() or not task.strip():
            raise ImproperlyConfigured(f"{variable} entry {entry!r} must be id=task. {MODELS_FORMAT_HELP}.")
        try:
            normalized = validate_task_name(variable, task)
        except ImproperlyConfigured as exc:
            raise ImproperlyConfigured(f"{exc} (in the {variable} entry {entry!r})") from None
        entries.append((model_id.strip(), normalized))
    return tuple(entries)


def parse_device(value: str) -> str:
    """Normalize ``HF_DEVICE`` (case and spaces); raise ``ImproperlyConfigured`` on anything else."""
    normalized = value.strip().lower() or "auto"
    if not DEVICE_PATTERN.match(normalized):
        raise ImproperlyConfigured(DEVICE_INVALID.format(value=value))
    return normalized


def parse_dtype(value: str) -> str:
    """Normalize ``HF_DTYPE`` (``fp32``/``bf16``/``fp16`` aliases accepted); raise on anything else."""
    normalized = value.strip().lower() or "auto"
    normalized = DTYPE_ALIASES.get(normalized, normalized)
    if normalized not in DTYPES:
        raise ImproperlyConfigured(DTYPE_INVALID.format(value=value))
    return normalized


def parse_threads(value: str) -> int | None:
    """``HF_THREADS``: empty means automatic (``None``); otherwise a whole number 1..1024."""
    text = value.strip()
    if not text or text.lower() == "auto":
        return None
    try:
        number = int(text)
    except ValueError:
        number = 0
    if not 1 <= number <= THREADS_MAX:
        raise ImproperlyConfigured(THREADS_INVALID.format(value=value))
    return number
