"""Doctor checks for what N workers on many machines share: Django's database and durable store writes."""

from __future__ import annotations

from typing import Any

from django.db import DatabaseError, connections
from django.db.migrations.executor import MigrationExecutor
from pymongo import MongoClient
from pymongo.errors import ConfigurationError

from app.services.doctor.findings import Finding, fail, ok, warn
from app.services.mongo_repo import durable_write_concern

SHARE_HINT = "set DATABASE_URL=postgres://USER:PASSWORD@HOST:5432/NAME on every machine to share them"


def describe_database(config: dict[str, Any]) -> str:
    """Where Django's tables live, without the password."""
    engine = str(config.get("ENGINE", ""))
    if engine.endswith("sqlite3"):
        return f"SQLite {config.get('NAME')}"
    host, port, name = config.get("HOST") or "localhost", config.get("PORT") or 5432, config.get("NAME")
    return f"PostgreSQL {host}:{port}/{name}"


def check_database(settings: Any) -> list[Finding]:
    """Django's own tables (sessions, users): reachable, migrated, and shared or not."""
    connection = connections["default"]
    where = describe_database(settings.DATABASES["default"])
    try:
        connection.ensure_connection()
        executor = MigrationExecutor(connection)
        pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
    except DatabaseError as exc:
        return [
            fail(
                "database",
                f"cannot use {where}: {exc.__class__.__name__}",
                "check DATABASE_URL (host, port, user, password, database) and that the server accepts this machine",
            )
        ]
    findings: list[Finding] = []
    if pending:
        detail = f"{len(pending)} migration(s) not applied on {where}"
        findings.append(warn("database", detail, "python manage.py migrate --noinput"))
    if connection.vendor == "sqlite":
        findings.append(ok("database", f"{where}: sessions and users on this machine only ({SHARE_HINT})"))
    else:
        findings.append(ok("database", f"{where}: sessions and users shared by every machine using it"))
    return findings


def check_write_concern(settings: Any) -> list[Finding]:
    """Whether an acknowledged interaction survives a crash of the store (``j=True`` unless the URI says)."""
    try:
        client: MongoClient[dict[str, Any]] = MongoClient(settings.MONGO_URI, connect=False)
    except ConfigurationError:
        return []  # check_mongo reports the URI itself
    try:
        concern = durable_write_concern(client.write_concern)
    finally:
        client.close()
    document = concern.document
    if not concern.acknowledged:
        return [
            fail(
                "MongoDB writes",
                "w=0 in MONGO_URI: writes are not acknowledged, lost interactions go unnoticed",
                "remove w=0 from MONGO_URI (use w=majority on a replica set such as Atlas)",
            )
        ]
    if document.get("j") is False:
        return [
            warn(
                "MongoDB writes",
                "journal=false in MONGO_URI: an acknowledged interaction can be lost if the store crashes",
                "remove journal=false from MONGO_URI (the app then asks for j=True)",
            )
        ]
    return [ok("MongoDB writes", f"journaled: write concern {document}")]
