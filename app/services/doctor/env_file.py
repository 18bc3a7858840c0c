"""Checks of the ``.env`` file read as text: unknown names, quotes, spaces, missing values."""

from __future__ import annotations

import difflib
import os
import re
import sys
from pathlib import Path
from typing import TextIO

from django.core.exceptions import ImproperlyConfigured

from app.services.doctor.findings import Finding, fail, ok, report, warn

ROOT = Path(__file__).resolve().parents[3]

# Variables the app reads that .env.example does not list as NAME= lines.
EXTRA_KNOWN = frozenset(
    {
        "ENV_FILE",
        "TEST_MONGO_URI",
        "HF_HUB_OFFLINE",
        "HF_HOME",
        "HF_HUB_CACHE",
        "TRANSFORMERS_OFFLINE",
        "DJANGO_SETTINGS_MODULE",
        "CHROMIUM_PATH",
        "CI",
        "SECURE_COOKIES",
    }
)
SECRET_NAMES = frozenset({"SECRET_KEY", "HF_API_TOKEN", "API_TOKENS", "METRICS_TOKEN"})
_ASSIGNMENT = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=(.*)$")
_EXAMPLE_NAME = re.compile(r"^#?\s*([A-Z][A-Z0-9_]*)=", re.MULTILINE)


def known_variables(example: Path) -> set[str]:
    names = set(EXTRA_KNOWN)
    if example.is_file():
        names |= set(_EXAMPLE_NAME.findall(example.read_text(encoding="utf-8", errors="replace")))
    return names


def check_env_file(path: Path, known: set[str]) -> list[Finding]:
    """Quotes, trailing spaces, unknown and duplicated names in a hand-edited ``.env``."""
    if not path.is_file():
        return [
            warn(
                ".env",
                f"no {path.name} found; defaults and real environment variables are used",
                f"copy .env.example to {path.name} and edit it if you need other values",
            )
        ]
    findings: list[Finding] = []
    seen: dict[str, int] = {}
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        where = f".env line {number}"
        match = _ASSIGNMENT.match(line)
        if match is None:
            findings.append(fail(where, "not a NAME=value line", "write it as NAME=value or comment it out with #"))
            continue
        name, raw_value = match.group(1), match.group(2)
        if name in seen:
            findings.append(
                warn(where, f"{name} is set again (line {seen[name]} is ignored)", f"keep one {name}= line")
            )
        seen[name] = number
        if name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            findings.append(fail(where, f"unknown variable {name}", f"{hint}see .env.example for the names"))
        findings.extend(_check_value(where, name, raw_value))
    if not findings:
        findings.append(ok(".env", f"{path} parses cleanly ({len(seen)} variable(s))"))
    return findings


def env_values(path: Path) -> dict[str, str]:
    """The effective values: ``.env`` lines overridden by real environment variables (as settings do)."""
    from django_hf_ml.envconfig import clean

    values: dict[str, str] = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            match = _ASSIGNMENT.match(line)
            if match and not line.lstrip().startswith("#"):
                values[match.group(1)] = clean(match.group(2))
    values.update({name: clean(value) for name, value in os.environ.items()})
    return values


def check_missing(values: dict[str, str]) -> list[Finding]:
    """Variables a deployment needs but does not set (only with DEBUG off)."""
    from django_hf_ml.envconfig import FALSE_WORDS

    if values.get("DEBUG", "1").lower() not in FALSE_WORDS:  # same reading as settings.env_bool
        return []
    findings: list[Finding] = []
    secret_fix = 'set SECRET_KEY from `python -c "import secrets; print(secrets.token_urlsafe(50))"`'
    needed = {
        "SECRET_KEY": secret_fix,
        "ALLOWED_HOSTS": "set ALLOWED_HOSTS to the host names the site is served under",
    }
    for name, fix in needed.items():
        if not values.get(name):
            findings.append(fail("missing variable", f"{name} is not set while DEBUG=0", fix))
    if not values.get("MONGO_URI"):
        findings.append(
            warn(
                "missing variable",
                "MONGO_URI is not set while DEBUG=0: the local development store is expected",
                "set MONGO_URI to your MongoDB/Atlas URI (…/?retryWrites=true&w=majority)",
            )
        )
    return findings


def _check_value(where: str, name: str, raw_value: str) -> list[Finding]:
    findings: list[Finding] = []
    value = raw_value.strip()
    if "\x00" in raw_value:
        findings.append(fail(where, f"{name} contains a NUL character", "retype the value"))
    if raw_value != raw_value.rstrip():
        findings.append(
            warn(
                where,
                f"{name} has trailing spaces (the app strips them; other tools may not)",
                "remove the spaces after the value",
            )
        )
    if raw_value.startswith((" ", "\t")) and raw_value.strip():
        findings.append(warn(where, f"{name} has spaces after '='", f"write {name}=value"))
    if value[:1] in {'"', "'"}:
        quote = value[0]
        if len(value) < 2 or value[-1] != quote:
            findings.append(
                fail(
                    where,
                    f"{name} opens a {quote} quote that is never closed",
                    f"close the quote or remove it: {name}=value",
                )
            )
        elif value[1:-1] != value[1:-1].strip():
            findings.append(
                warn(
                    where,
                    f"{name} has spaces inside its quotes (they are stripped)",
                    "remove the spaces inside the quotes",
                )
            )
    elif value[-1:] in {'"', "'"}:
        findings.append(fail(where, f"{name} ends with a quote that was never opened", f"write {name}=value"))
    return findings


def env_file_path() -> Path:
    return Path(os.environ.get("ENV_FILE", "").strip() or ROOT / ".env")


def run_if_settings_broken(out: TextIO = sys.stdout) -> None:
    """Called by manage.py for ``doctor``: when the settings refuse to load, report why and exit."""
    try:
        import django

        django.setup()
    except (ImproperlyConfigured, ValueError) as exc:
        path = env_file_path()
        findings = check_env_file(path, known_variables(ROOT / ".env.example"))
        findings += check_missing(env_values(path))
        findings.append(fail("settings", str(exc), "fix the variable named above in .env or the environment"))
        sys.exit(report(findings, out))
