"""Checks of the loaded settings and what they point at: the store, the model, torch, static files, outbox."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from django.contrib.staticfiles import finders
from pymongo import MongoClient
from pymongo.errors import ConfigurationError, OperationFailure, PyMongoError

from app.services.device import RuntimeUnavailable, available_cpus, describe_runtime
from app.services.doctor.database import check_database, check_write_concern
from app.services.doctor.env_file import SECRET_NAMES
from app.services.doctor.findings import Finding, fail, guarded, ok, warn
from app.services.engines.choice import default_engine_facts
from app.services.health import hub_offline, model_status
from app.services.mongo_indexes import INDEXES
from app.services.mongo_repo import redact_uri
from app.services.outbox import OutboxError, get_outbox
from django_hf_ml.envconfig import validate_db_name


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
    """HF_DEVICE / HF_DTYPE / HF_THREADS resolved on this machine: what the model will run on."""

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


def check_engine(settings: Any) -> list[Finding]:
    """The default model's engine: llamacpp with its binary, a fallback to transformers, openai."""
    facts = default_engine_facts()
    detail = f"{facts['engine']} ({facts['reason']})"
    if facts.get("warning"):
        return [warn("engine", f"{detail}: {facts['warning']}", "python -m app.services.engines.llama_build")]
    if facts["engine"] == "llamacpp" and not facts.get("binary"):
        return [fail("engine", f"{detail}: no llama-server binary", "python -m app.services.engines.llama_build")]
    if facts["engine"] == "llamacpp":
        return [ok("engine", f"{detail}; llama-server {facts['binary']}")]
    return [ok("engine", detail)]


def settings_checks(settings: Any) -> list[Finding]:
    findings = check_core(settings)
    findings += guarded("MongoDB", lambda: check_mongo(settings))
    findings += guarded("MongoDB writes", lambda: check_write_concern(settings))
    findings += guarded("database", lambda: check_database(settings))
    findings += guarded("model", lambda: check_model(settings))
    findings += guarded("torch", check_torch)
    findings += guarded("device", lambda: check_runtime(settings))
    findings += guarded("engine", lambda: check_engine(settings))
    findings += guarded("static files", lambda: check_static(settings))
    findings += guarded("outbox", check_outbox)
    return findings
