"""DATABASE_URL: SQLite by default, PostgreSQL when set, a clear ImproperlyConfigured otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from app.tests.config.test_settings import load_settings
from django_hf_ml.envconfig import POSTGRES_ENGINE, SQLITE_ENGINE, parse_database_url

DEFAULT = Path("/data/db.sqlite3")


def test_empty_means_the_sqlite_file_in_data_dir() -> None:
    assert parse_database_url("DATABASE_URL", "", default_sqlite=DEFAULT) == {"ENGINE": SQLITE_ENGINE, "NAME": DEFAULT}


def test_postgres_url_gives_a_persistent_health_checked_connection() -> None:
    config = parse_database_url(
        "DATABASE_URL", "postgres://app:s3cret@db.internal:5433/hf_ml?sslmode=require", default_sqlite=DEFAULT
    )
    assert config["ENGINE"] == POSTGRES_ENGINE
    assert (config["NAME"], config["USER"], config["PASSWORD"]) == ("hf_ml", "app", "s3cret")
    assert (config["HOST"], config["PORT"]) == ("db.internal", 5433)
    assert config["OPTIONS"] == {"sslmode": "require"}
    assert config["CONN_MAX_AGE"] == 60
    assert config["CONN_HEALTH_CHECKS"] is True


def test_postgresql_scheme_and_query_options_are_read() -> None:
    config = parse_database_url(
        "DATABASE_URL", "postgresql://h/db?conn_max_age=0&conn_health_checks=false", default_sqlite=DEFAULT
    )
    assert (config["ENGINE"], config["CONN_MAX_AGE"], config["CONN_HEALTH_CHECKS"]) == (POSTGRES_ENGINE, 0, False)


def test_sqlite_url_names_its_file() -> None:
    config = parse_database_url("DATABASE_URL", "sqlite:////srv/hf/db.sqlite3", default_sqlite=DEFAULT)
    assert (config["ENGINE"], config["NAME"]) == (SQLITE_ENGINE, "/srv/hf/db.sqlite3")


@pytest.mark.parametrize(
    "value",
    ["mysql://u:p@h/db", "nonsense", "http://example.com/db", "postgres//h/db"],
)
def test_unsupported_scheme_is_improperly_configured(value: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=r"^DATABASE_URL has an unsupported scheme .* postgres://USER"):
        parse_database_url("DATABASE_URL", value, default_sqlite=DEFAULT)


def test_missing_database_name_is_improperly_configured() -> None:
    with pytest.raises(ImproperlyConfigured, match="DATABASE_URL names no database"):
        parse_database_url("DATABASE_URL", "postgres://u:p@h:5432/", default_sqlite=DEFAULT)


def test_bad_port_is_improperly_configured_without_the_password() -> None:
    with pytest.raises(ImproperlyConfigured, match="DATABASE_URL is not a valid database URL") as error:
        parse_database_url("DATABASE_URL", "postgres://u:topsecret@h:port/db", default_sqlite=DEFAULT)
    assert "topsecret" not in str(error.value)


def test_settings_read_database_url_from_the_environment(tmp_path: Path) -> None:
    url = "postgres://app:pw@127.0.0.1:5432/hf_ml"
    result = load_settings(tmp_path, {"DATABASE_URL": url}, show="DATABASES['default']['ENGINE']")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == repr(POSTGRES_ENGINE)


def test_settings_refuse_a_bad_database_url_at_start(tmp_path: Path) -> None:
    result = load_settings(tmp_path, {}, dotenv="DATABASE_URL=mongodb://localhost/x\n", show="DATABASES")
    assert result.returncode != 0
    assert "ImproperlyConfigured: DATABASE_URL has an unsupported scheme ('mongodb://')" in result.stderr
