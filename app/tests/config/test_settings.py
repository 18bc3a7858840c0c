"""Settings read from the environment and .env, in a fresh interpreter each time (as at start-up)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from django_hf_ml.envconfig import clean

ROOT = Path(__file__).resolve().parents[3]
MANAGED = [
    "DEBUG",
    "SECRET_KEY",
    "ALLOWED_HOSTS",
    "MONGO_URI",
    "MONGO_DB_NAME",
    "MONGO_COLLECTION",
    "HF_MODEL",
    "HF_TASK",
    "HF_API_TOKEN",
    "CSRF_TRUSTED_ORIGINS",
    "DATA_DIR",
    "LOG_LEVEL",
    "PROMPT_MAX_CHARS",
    "MONGO_TIMEOUT_MS",
    "LOCAL_MONGO_PORT",
    "ENV_FILE",
    "DATABASE_URL",
]


def load_settings(
    tmp_path: Path, env: dict[str, str], dotenv: str = "", show: str = "MONGO_DB_NAME"
) -> subprocess.CompletedProcess[str]:
    env_file = tmp_path / "test.env"
    env_file.write_text(dotenv)
    child_env = {k: v for k, v in os.environ.items() if k not in MANAGED}
    child_env.update({"ENV_FILE": str(env_file), "DATA_DIR": str(tmp_path / "data"), **env})
    code = (
        "import os; os.environ['DJANGO_SETTINGS_MODULE'] = 'django_hf_ml.settings';"
        f"from django.conf import settings; print(repr(settings.{show}))"
    )
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=child_env, capture_output=True, text=True)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [('"hf_ml"', "hf_ml"), ("'hf_ml'  ", "hf_ml"), ("hf_ml   ", "hf_ml"), ('  " hf_ml "  ', "hf_ml"), ('"', '"')],
)
def test_clean_strips_quotes_and_spaces(raw: str, expected: str) -> None:
    assert clean(raw) == expected


def test_quoted_values_with_trailing_spaces_in_dotenv_are_accepted(tmp_path: Path) -> None:
    result = load_settings(tmp_path, {}, dotenv='MONGO_DB_NAME="my_history"   \n')
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "'my_history'"


def test_real_environment_wins_over_dotenv(tmp_path: Path) -> None:
    result = load_settings(tmp_path, {"MONGO_DB_NAME": "from_env"}, dotenv="MONGO_DB_NAME=from_file\n")
    assert result.stdout.strip() == "'from_env'"


@pytest.mark.parametrize("bad_name", ["my db", "a/b", "a\\b", 'a"b', "a.b", "a$b", "a\x00b"])
def test_invalid_database_name_stops_start_up_naming_the_variable(tmp_path: Path, bad_name: str) -> None:
    if "\x00" in bad_name:  # the OS refuses NUL in environment values: pass it through .env instead
        result = load_settings(tmp_path, {}, dotenv=f"MONGO_DB_NAME={bad_name}\n")
    else:
        result = load_settings(tmp_path, {"MONGO_DB_NAME": bad_name})
    assert result.returncode != 0
    assert "MONGO_DB_NAME" in result.stderr
    assert "not a valid MongoDB database name" in result.stderr


def test_debug_off_without_secret_key_refuses_to_start(tmp_path: Path) -> None:
    result = load_settings(tmp_path, {"DEBUG": "0"})
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


def test_debug_off_with_placeholder_secret_key_refuses_to_start(tmp_path: Path) -> None:
    result = load_settings(tmp_path, {"DEBUG": "false", "SECRET_KEY": "change-me"})
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


def test_debug_off_with_real_secret_key_starts(tmp_path: Path) -> None:
    result = load_settings(
        tmp_path, {"DEBUG": "0", "SECRET_KEY": "x" * 50, "ALLOWED_HOSTS": "hf.example.com"}, show="DEBUG"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_debug_with_public_hosts_refuses_to_start(tmp_path: Path) -> None:
    result = load_settings(tmp_path, {"DEBUG": "1", "ALLOWED_HOSTS": "hf.example.com"})
    assert result.returncode != 0
    assert "ALLOWED_HOSTS" in result.stderr


def test_bad_boolean_names_the_variable(tmp_path: Path) -> None:
    result = load_settings(tmp_path, {"DEBUG": "maybe"})
    assert result.returncode != 0
    assert "DEBUG='maybe' is not a boolean" in result.stderr


def test_unknown_task_lists_the_supported_ones(tmp_path: Path) -> None:
    result = load_settings(tmp_path, {"HF_TASK": "image-classification"})
    assert result.returncode != 0
    assert "HF_TASK" in result.stderr
    assert "text2text-generation" in result.stderr
    assert "text-generation" in result.stderr


def test_seed_task_name_is_kept_for_a_configured_model(tmp_path: Path) -> None:
    result = load_settings(tmp_path, {"HF_MODEL": "google/flan-t5-small"}, show="HF_TASK")
    assert result.stdout.strip() == "'text2text-generation'"


def test_bundled_model_defaults_to_text_generation(tmp_path: Path) -> None:
    result = load_settings(tmp_path, {}, show="HF_TASK")
    assert result.stdout.strip() == "'text-generation'"


def test_empty_mongo_uri_points_at_the_local_store(tmp_path: Path) -> None:
    result = load_settings(tmp_path, {"MONGO_URI": '""', "LOCAL_MONGO_PORT": "27555"}, show="MONGO_URI")
    assert result.stdout.strip() == "'mongodb://127.0.0.1:27555/'"


def test_atlas_uri_is_accepted_unchanged(tmp_path: Path) -> None:
    uri = "mongodb+srv://user:pw@cluster0.example.net/?retryWrites=true&w=majority"
    result = load_settings(tmp_path, {"MONGO_URI": f"'{uri}' "}, show="MONGO_URI")
    assert result.stdout.strip() == repr(uri)


def test_non_mongodb_uri_is_refused(tmp_path: Path) -> None:
    result = load_settings(tmp_path, {"MONGO_URI": "postgres://x"})
    assert result.returncode != 0
    assert "MONGO_URI must start with mongodb://" in result.stderr


def test_csrf_origin_without_scheme_is_refused(tmp_path: Path) -> None:
    result = load_settings(tmp_path, {"CSRF_TRUSTED_ORIGINS": "example.com"})
    assert result.returncode != 0
    assert "CSRF_TRUSTED_ORIGINS" in result.stderr


def test_wsgi_application_setting() -> None:
    from django.conf import settings

    assert settings.WSGI_APPLICATION == "django_hf_ml.wsgi.application"


def test_app_package_imports_nothing() -> None:
    assert (ROOT / "app" / "__init__.py").read_text().strip() == ""


def test_manage_py_check_is_clean(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in MANAGED}
    env.update({"ENV_FILE": str(tmp_path / "none.env"), "DATA_DIR": str(tmp_path / "data")})
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout
