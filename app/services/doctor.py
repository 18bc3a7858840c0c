"""``python manage.py doctor``: one OK/WARN/FAIL line per check, each failure with its fix.

The ``.env`` checks read the file as text, so they also run when the settings refuse to load
(``manage.py`` calls :func:`run_if_settings_broken` first). Passwords in MongoDB URIs and tokens are
never printed: URIs go through ``redact_uri`` and secrets are reported as "set (N characters)".
"""

from __future__ import annotations

import difflib
import importlib.util
import os
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TextIO

Level = Literal["OK", "WARN", "FAIL"]
ROOT = Path(__file__).resolve().parent.parent.parent

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


@dataclass(frozen=True)
class Finding:
    level: Level
    topic: str
    detail: str
    fix: str = ""

    def line(self) -> str:
        text = f"[{self.level:<4}] {self.topic}: {self.detail}"
        return f"{text}\n       fix: {self.fix}" if self.fix else text


def ok(topic: str, detail: str) -> Finding:
    return Finding("OK", topic, detail)


def warn(topic: str, detail: str, fix: str = "") -> Finding:
    return Finding("WARN", topic, detail, fix)


def fail(topic: str, detail: str, fix: str) -> Finding:
    return Finding("FAIL", topic, detail, fix)


# --- .env (plain text; works without settings) -----------------------------------------------------


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


# --- settings-level checks ---------------------------------------------------------------------------


def check_core(settings: Any) -> list[Finding]:
    findings: list[Finding] = []
    if settings.DEBUG:
        findings.append(
            warn(
                "DEBUG",
                "on: detailed error pages, development only",
                "set DEBUG=0 (with SECRET_KEY and ALLOWED_HOSTS) for any shared deployment",
            )
        )
    else:
        findings.append(ok("DEBUG", "off"))
    key = settings.SECRET_KEY
    if key == getattr(settings, "DEV_SECRET_KEY", None):
        level = warn if settings.DEBUG else fail
        findings.append(
            level(
                "SECRET_KEY",
                "the built-in development key is used",
                'set SECRET_KEY from `python -c "import secrets; print(secrets.token_urlsafe(50))"`',
            )
        )
    elif len(key) < 50 or len(set(key)) < 5:
        findings.append(
            warn("SECRET_KEY", f"set ({len(key)} characters): short or repetitive", "use at least 50 random characters")
        )
    else:
        findings.append(ok("SECRET_KEY", f"set ({len(key)} characters)"))
    hosts = ", ".join(settings.ALLOWED_HOSTS) or "(none)"
    if not settings.ALLOWED_HOSTS:
        findings.append(fail("ALLOWED_HOSTS", "empty: every request is refused", "list your host names"))
    elif "*" in settings.ALLOWED_HOSTS and not settings.DEBUG:
        findings.append(warn("ALLOWED_HOSTS", "'*' accepts any Host header", "list your real host names"))
    else:
        findings.append(ok("ALLOWED_HOSTS", hosts))
    if not settings.DEBUG:
        https = bool(settings.SECURE_SSL_REDIRECT or settings.SECURE_PROXY_SSL_HEADER)
        findings.append(
            ok("HTTPS", "redirect or proxy header configured")
            if https
            else warn(
                "HTTPS",
                "neither SECURE_SSL_REDIRECT nor SECURE_PROXY_SSL_HEADER is on",
                "behind a TLS proxy set SECURE_PROXY_SSL_HEADER=1; serving TLS yourself set SECURE_SSL_REDIRECT=1",
            )
        )
    for name in sorted(SECRET_NAMES - {"SECRET_KEY"}):
        value = getattr(settings, name, None)
        if isinstance(value, (list, tuple)):
            findings.append(ok(name, f"{len(value)} configured" if value else "not set"))
        elif value:
            findings.append(ok(name, f"set ({len(str(value))} characters)"))
    return findings


def check_mongo(settings: Any) -> list[Finding]:
    from pymongo import MongoClient
    from pymongo.errors import ConfigurationError, OperationFailure, PyMongoError

    from app.services.mongo_repo import INDEXES, redact_uri
    from django_hf_ml.envconfig import validate_db_name

    findings: list[Finding] = []
    uri = settings.MONGO_URI
    shown = redact_uri(uri)
    try:
        validate_db_name("MONGO_DB_NAME", settings.MONGO_DB_NAME)
        findings.append(ok("MONGO_DB_NAME", f"{settings.MONGO_DB_NAME!r} is a valid database name"))
    except Exception as exc:
        return [fail("MONGO_DB_NAME", str(exc), "use 1-63 letters, digits, '_' or '-'")]
    timeout = min(int(settings.MONGO_TIMEOUT_MS), 5000)
    try:
        client: MongoClient[dict[str, Any]] = MongoClient(
            uri, serverSelectionTimeoutMS=timeout, connectTimeoutMS=timeout, appname="django_hf_ml-doctor"
        )
    except ConfigurationError as exc:
        return [
            *findings,
            fail("MongoDB", f"{shown}: {exc}", "check MONGO_URI (for mongodb+srv:// the DNS name must resolve)"),
        ]
    try:
        try:
            client.admin.command("ping")
        except OperationFailure as exc:
            return [*findings, _auth_failure(shown, exc)]
        except PyMongoError as exc:
            fix = (
                "start it with `python manage.py serve` (or `python3 dev.py run`)"
                if settings.MONGO_LOCAL
                else "check the host, the port, your network and (Atlas) the IP access list"
            )
            return [
                *findings,
                fail("MongoDB", f"cannot reach {shown} within {timeout} ms ({exc.__class__.__name__})", fix),
            ]
        findings.append(ok("MongoDB", f"{shown} answers"))
        collection = client[settings.MONGO_DB_NAME][settings.MONGO_COLLECTION]
        try:
            present = {index["name"] for index in collection.list_indexes()}
        except OperationFailure as exc:
            if exc.code in {13, 18} or "auth" in str(exc).lower():
                return [*findings, _auth_failure(shown, exc)]
            raise
        findings.append(ok("MongoDB auth", "the configured credentials can read the database"))
        wanted = [index.document["name"] for index in INDEXES]
        missing = [name for name in wanted if name not in present]
        if missing:
            findings.append(
                fail(
                    "MongoDB indexes",
                    f"missing on {settings.MONGO_COLLECTION}: {', '.join(missing)}",
                    "python manage.py ensure_indexes",
                )
            )
        else:
            findings.append(ok("MongoDB indexes", f"all {len(wanted)} present"))
    except PyMongoError as exc:
        findings.append(fail("MongoDB", f"{shown}: {exc.__class__.__name__}", "see the server log"))
    finally:
        client.close()
    return findings


def _auth_failure(shown: str, exc: Any) -> Finding:
    if exc.code == 13:
        detail = f"{shown} requires a user and password (code 13: unauthorized)"
    else:
        detail = f"authentication failed for {shown} (code {exc.code})"
    return fail(
        "MongoDB auth",
        detail,
        "check the user and password in MONGO_URI (percent-encode @ : / in the password) and authSource",
    )


def check_model(settings: Any) -> list[Finding]:
    from app.services.health import hub_offline, model_status

    status = model_status()
    findings = []
    if status.loadable:
        findings.append(ok("model", f"{status.name} ({status.task}) from {status.source}"))
    else:
        fix = (
            "set HF_MODEL to a local model folder, fill the hub cache on a connected machine, "
            "or unset HF_MODEL to use the bundled model"
        )
        findings.append(fail("model", f"{status.name} ({status.task}): {status.error}", fix))
    if settings.HF_MODEL and not status.source.startswith(("local", "loaded")):
        findings.append(
            ok("hub", "offline (HF_HUB_OFFLINE=1): only the cache is used")
            if hub_offline()
            else ok("hub", "online: a model missing from the cache is downloaded on first use")
        )
    return findings


def check_torch() -> list[Finding]:
    if importlib.util.find_spec("torch") is None:
        return [fail("torch", "not installed", "pip install torch==2.13.0 (first, before the other requirements)")]
    try:
        import torch
    except Exception as exc:
        return [fail("torch", f"cannot be imported: {exc}", "reinstall torch==2.13.0 in this virtual environment")]
    cuda = torch.cuda.is_available()
    device = f"CUDA ({torch.cuda.get_device_name(0)})" if cuda else "CPU only"
    return [ok("torch", f"{torch.__version__}, {device}, {torch.get_num_threads()} thread(s)")]


def check_static(settings: Any) -> list[Finding]:
    from django.contrib.staticfiles import finders

    missing = [name for name in ("app/app.js", "app/app.css") if finders.find(name) is None]
    if missing:
        return [fail("static files", f"missing sources: {', '.join(missing)}", "restore the static/ folder")]
    backend = settings.STORAGES["staticfiles"]["BACKEND"]
    manifest = Path(settings.STATIC_ROOT) / "staticfiles.json"
    if "Manifest" in backend and not manifest.is_file():
        return [
            fail(
                "static files", f"not collected into {settings.STATIC_ROOT}", "python manage.py collectstatic --noinput"
            )
        ]
    return [
        ok("static files", f"collected in {settings.STATIC_ROOT}" if "Manifest" in backend else "served from static/")
    ]


def check_outbox() -> list[Finding]:
    from app.services.outbox import OutboxError, get_outbox

    try:
        outbox = get_outbox()
        depth, failed = outbox.depth(), outbox.failed_count()
    except OutboxError as exc:
        return [fail("outbox", f"cannot be read: {exc}", "make DATA_DIR writable")]
    findings = [
        ok("outbox", f"empty ({outbox.path})")
        if depth == 0
        else warn(
            "outbox", f"{depth} interaction(s) wait for MongoDB", "python manage.py replay_outbox once MongoDB answers"
        )
    ]
    if failed:
        findings.append(
            warn(
                "outbox",
                f"{failed} interaction(s) were refused by MongoDB and set aside",
                f"inspect them in {outbox.path} (table outbox, state 'failed')",
            )
        )
    return findings


def check_runtime(settings: Any) -> list[Finding]:
    """HF_DEVICE / HF_DTYPE / HF_THREADS resolved on this machine (issue 6): what the model will run on."""
    from app.services.device import RuntimeUnavailable, available_cpus, describe_runtime

    try:
        profile = describe_runtime()
    except RuntimeUnavailable as exc:
        return [fail("device", str(exc), "set HF_DEVICE/HF_DTYPE to what this machine has, or auto")]
    findings = [ok("device", profile.describe())]
    cores = available_cpus()
    if profile.threads > cores:
        findings.append(
            warn(
                "device",
                f"HF_THREADS={profile.threads} is more than the {cores} core(s) this process may use",
                f"set HF_THREADS to at most {cores} (and workers x HF_THREADS <= cores)",
            )
        )
    if profile.dtype == "int8":
        findings.append(
            warn("device", "int8 answers differ from float32 ones", "python manage.py quality_guard shows how much")
        )
    return findings


# Other helpers add checks here (e.g. the device/dtype line) as functions taking the settings.
EXTRA_CHECKS: list[Callable[[Any], list[Finding]]] = [check_runtime]


def settings_checks(settings: Any) -> list[Finding]:
    findings = check_core(settings)
    findings += _guarded("MongoDB", lambda: check_mongo(settings))
    findings += _guarded("model", lambda: check_model(settings))
    findings += _guarded("torch", check_torch)
    for extra in EXTRA_CHECKS:
        findings += _guarded(getattr(extra, "__name__", "check"), lambda extra=extra: extra(settings))  # type: ignore[misc]
    findings += _guarded("static files", lambda: check_static(settings))
    findings += _guarded("outbox", check_outbox)
    return findings


def _guarded(topic: str, check: Callable[[], list[Finding]]) -> list[Finding]:
    try:
        return check()
    except Exception as exc:  # the doctor reports, it never crashes
        return [fail(topic, f"the check itself failed: {exc.__class__.__name__}: {exc}", "report this as a bug")]


def env_file_path() -> Path:
    return Path(os.environ.get("ENV_FILE", "").strip() or ROOT / ".env")


def report(findings: Iterable[Finding], out: TextIO) -> int:
    findings = list(findings)
    for finding in findings:
        out.write(finding.line() + "\n")
    failures = sum(1 for f in findings if f.level == "FAIL")
    warnings = sum(1 for f in findings if f.level == "WARN")
    out.write(f"\n{len(findings)} checks: {failures} failed, {warnings} warning(s).\n")
    return 1 if failures else 0


def run_if_settings_broken(out: TextIO = sys.stdout) -> None:
    """Called by manage.py for ``doctor``: when the settings refuse to load, report why and exit."""
    from django.core.exceptions import ImproperlyConfigured

    try:
        import django

        django.setup()
    except (ImproperlyConfigured, ValueError) as exc:
        path = env_file_path()
        findings = check_env_file(path, known_variables(ROOT / ".env.example"))
        findings += check_missing(env_values(path))
        findings.append(fail("settings", str(exc), "fix the variable named above in .env or the environment"))
        sys.exit(report(findings, out))
