"""Typed, forgiving readers for environment variables.

Values are stripped of surrounding white space and one pair of matching quotes, so
``MONGO_DB_NAME = "hf_ml" `` in a hand-edited ``.env`` means ``hf_ml``. A value that
cannot be used raises ``ImproperlyConfigured`` naming the variable and what is allowed.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

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
    value = raw(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not a whole number ({minimum}..{maximum}).") from None
    if not minimum <= number <= maximum:
        raise ImproperlyConfigured(f"{name}={number} is out of range: allowed {minimum}..{maximum}.")
    return number


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
