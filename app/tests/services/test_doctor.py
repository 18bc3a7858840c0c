"""``manage.py doctor``: one clear line per check with the fix; secrets never printed."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from pytest_django.fixtures import Settings as SettingsWrapper

from app.services import mongo_indexes, mongo_repo
from app.services.doctor.env_file import check_env_file, known_variables

KNOWN = known_variables(Path(django_settings.BASE_DIR) / ".env.example")


def env_findings(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / ".env"
    path.write_text(text)
    return [finding.line() for finding in check_env_file(path, KNOWN)]


def run_doctor() -> tuple[int, str]:
    out = StringIO()
    try:
        call_command("doctor", "--env-file", "/nonexistent/.env", stdout=out)
    except SystemExit as exc:
        return int(exc.code or 0), out.getvalue()
    return 0, out.getvalue()


def test_clean_env_file_is_ok(tmp_path: Path) -> None:
    assert env_findings(tmp_path, "DEBUG=1\nMONGO_DB_NAME=hf_ml\n") == [
        f"[OK  ] .env: {tmp_path / '.env'} parses cleanly (2 variable(s))"
    ]


def test_unknown_variable_fails_with_a_suggestion(tmp_path: Path) -> None:
    assert env_findings(tmp_path, "MONGO_URL=mongodb://x/\n") == [
        "[FAIL] .env line 1: unknown variable MONGO_URL\n"
        "       fix: did you mean MONGO_URI? see .env.example for the names"
    ]


def test_trailing_spaces_are_a_warning(tmp_path: Path) -> None:
    (line,) = env_findings(tmp_path, "MONGO_DB_NAME=hf_ml   \n")
    assert line.startswith("[WARN] .env line 1: MONGO_DB_NAME has trailing spaces")


def test_unclosed_quote_fails(tmp_path: Path) -> None:
    (line,) = env_findings(tmp_path, 'SECRET_KEY="abc\n')
    assert line.startswith('[FAIL] .env line 1: SECRET_KEY opens a " quote that is never closed')


def test_stray_closing_quote_fails(tmp_path: Path) -> None:
    (line,) = env_findings(tmp_path, "MONGO_DB_NAME=hf_ml'\n")
    assert line.startswith("[FAIL] .env line 1: MONGO_DB_NAME ends with a quote that was never opened")


def test_duplicate_variable_is_a_warning(tmp_path: Path) -> None:
    (line,) = env_findings(tmp_path, "DEBUG=1\nDEBUG=0\n")
    assert line.startswith("[WARN] .env line 2: DEBUG is set again (line 1 is ignored)")


def test_line_that_is_not_an_assignment_fails(tmp_path: Path) -> None:
    (line,) = env_findings(tmp_path, "just words\n")
    assert line.startswith("[FAIL] .env line 1: not a NAME=value line")


def test_every_documented_variable_is_known() -> None:
    assert {"MONGO_URI", "HF_MODEL", "API_TOKENS", "OUTBOX_PATH", "SECURE_SSL_REDIRECT"} <= KNOWN


@pytest.mark.usefixtures("app_settings")
def test_healthy_setup_passes_with_ok_lines(settings: SettingsWrapper) -> None:
    settings.SECRET_KEY = "k3y-" + "abcdefghij" * 6
    status, output = run_doctor()
    assert status == 0, output
    assert "[OK  ] MongoDB: " in output
    assert "[OK  ] MongoDB auth: the configured credentials can read the database" in output
    assert f"[OK  ] MongoDB indexes: all {len(mongo_indexes.INDEXES)} present" in output
    assert "[OK  ] model: " in output and "from local folder" in output
    assert "[OK  ] torch: " in output
    assert "[OK  ] outbox: empty" in output


def test_missing_indexes_fail_with_the_command_to_run(settings: SettingsWrapper, mongo_uri: str, db_name: str) -> None:
    settings.MONGO_URI = mongo_uri
    settings.MONGO_DB_NAME = db_name
    mongo_repo.reset_repository()
    mongo_repo.get_repository().collection.insert_one({"x": 1})
    try:
        status, output = run_doctor()
    finally:
        mongo_repo.get_repository().client.drop_database(db_name)
        mongo_repo.reset_repository()
    assert status == 1
    assert "[FAIL] MongoDB indexes: missing on interactions: created_at_desc" in output
    assert "fix: python manage.py ensure_indexes" in output


def test_unreachable_store_fails_without_printing_the_password(settings: SettingsWrapper) -> None:
    settings.MONGO_URI = "mongodb://admin:hunter2-secret@127.0.0.1:9/"
    settings.MONGO_TIMEOUT_MS = 200
    settings.MONGO_LOCAL = False
    settings.HF_API_TOKEN = "hf_token_value_never_shown"
    settings.API_TOKENS = ("api-token-value-never-shown-123",)
    status, output = run_doctor()
    assert status == 1
    assert "[FAIL] MongoDB: cannot reach mongodb://admin:***@127.0.0.1:9/ within 200 ms" in output
    assert "hunter2" not in output
    assert "hf_token_value_never_shown" not in output
    assert "api-token-value-never-shown" not in output
    assert "[OK  ] HF_API_TOKEN: set (26 characters)" in output
    assert "[OK  ] API_TOKENS: 1 configured" in output


def test_missing_model_folder_fails_with_the_fix(settings: SettingsWrapper, unreachable_store: SettingsWrapper) -> None:
    from app.services import nlp_service

    settings.HF_MODEL = "/nonexistent/model"
    settings.HF_TASK = "text-generation"
    nlp_service.reset_services()
    _, output = run_doctor()
    nlp_service.reset_services()
    assert "[FAIL] model: /nonexistent/model (text-generation): The folder /nonexistent/model does not exist." in output


def test_doctor_explains_settings_that_refuse_to_load(tmp_path: Path) -> None:
    env_file = tmp_path / "bad.env"
    env_file.write_text('MONGO_DB_NAME="hf ml"  \nMONGO_URI=mongodb://u:pw-secret@h/\n')
    keep = {"PATH", "HOME", "SYSTEMROOT", "TEMP", "TMP"}
    env = {k: v for k, v in os.environ.items() if k in keep}
    env.update({"ENV_FILE": str(env_file), "DATA_DIR": str(tmp_path / "data")})
    result = subprocess.run(
        [sys.executable, "manage.py", "doctor"],
        cwd=django_settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    assert "[WARN] .env line 1: MONGO_DB_NAME has trailing spaces" in result.stdout
    assert "[FAIL] settings: MONGO_DB_NAME='hf ml' is not a valid MongoDB database name" in result.stdout
    assert "pw-secret" not in result.stdout


def test_production_without_secret_key_or_hosts_names_the_missing_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.services.doctor.env_file import check_missing, env_values

    for name in ("DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "MONGO_URI"):
        monkeypatch.delenv(name, raising=False)
    env_file = tmp_path / ".env"
    env_file.write_text("DEBUG=0\n")
    lines = [finding.line().splitlines()[0] for finding in check_missing(env_values(env_file))]
    assert lines == [
        "[FAIL] missing variable: SECRET_KEY is not set while DEBUG=0",
        "[FAIL] missing variable: ALLOWED_HOSTS is not set while DEBUG=0",
        "[WARN] missing variable: MONGO_URI is not set while DEBUG=0: the local development store is expected",
    ]


def test_debug_setup_needs_no_production_variables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from app.services.doctor.env_file import check_missing, env_values

    monkeypatch.delenv("DEBUG", raising=False)
    env_file = tmp_path / ".env"
    env_file.write_text("DEBUG=1\n")
    assert check_missing(env_values(env_file)) == []


@pytest.fixture(scope="module")
def auth_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A SecantusDB with --auth and one user app/right-password (created before auth is switched on)."""
    from pymongo import MongoClient

    from app.services.local_store import server_executable, store_answers
    from app.tests.conftest import free_port

    folder, port = tmp_path_factory.mktemp("auth-store"), free_port()
    base = [server_executable(), "--host", "127.0.0.1", "--port", str(port), "--storage-path", str(folder)]

    def start(*extra: str) -> subprocess.Popen[bytes]:
        process = subprocess.Popen([*base, *extra], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while not store_answers("127.0.0.1", port) and time.monotonic() < deadline:
            time.sleep(0.1)
        return process

    process = start()
    with MongoClient("127.0.0.1", port, directConnection=True) as client:
        client.admin.command("createUser", "app", pwd="right-password", roles=["root"])
    process.terminate()
    process.wait(timeout=10)
    process = start("--auth")
    yield port
    process.terminate()
    process.wait(timeout=10)


def test_wrong_password_is_an_auth_failure_not_an_outage(settings: SettingsWrapper, auth_store: int) -> None:
    settings.MONGO_URI = f"mongodb://app:wrong-password@127.0.0.1:{auth_store}/?directConnection=true"
    settings.MONGO_LOCAL = False
    _, output = run_doctor()
    assert f"[FAIL] MongoDB auth: authentication failed for mongodb://app:***@127.0.0.1:{auth_store}/" in output
    assert "wrong-password" not in output


def test_missing_credentials_are_named(settings: SettingsWrapper, auth_store: int) -> None:
    settings.MONGO_URI = f"mongodb://127.0.0.1:{auth_store}/?directConnection=true"
    settings.MONGO_LOCAL = False
    _, output = run_doctor()
    assert "[OK  ] MongoDB: " in output
    assert "[FAIL] MongoDB auth: " in output and "requires a user and password (code 13" in output


def test_right_password_passes_auth(settings: SettingsWrapper, auth_store: int) -> None:
    settings.MONGO_URI = f"mongodb://app:right-password@127.0.0.1:{auth_store}/?directConnection=true"
    settings.MONGO_LOCAL = False
    _, output = run_doctor()
    assert "[OK  ] MongoDB auth: the configured credentials can read the database" in output
    assert "right-password" not in output


@pytest.mark.usefixtures("app_settings")
def test_doctor_reports_journaled_writes_and_where_sessions_live(settings: SettingsWrapper) -> None:
    settings.SECRET_KEY = "k3y-" + "abcdefghij" * 6
    status, output = run_doctor()
    assert status == 0, output
    assert "[OK  ] MongoDB writes: journaled: write concern {'j': True}" in output
    assert "[OK  ] database: SQLite " in output and "sessions and users on this machine only" in output


@pytest.mark.usefixtures("app_settings")
def test_doctor_warns_when_the_uri_turns_the_journal_off(settings: SettingsWrapper, mongo_uri: str) -> None:
    settings.MONGO_URI = mongo_uri.rstrip("/") + "/?journal=false"
    mongo_repo.reset_repository()
    _, output = run_doctor()
    mongo_repo.reset_repository()
    assert "[WARN] MongoDB writes: journal=false in MONGO_URI: an acknowledged interaction can be lost" in output
