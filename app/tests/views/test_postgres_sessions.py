"""Many machines: with DATABASE_URL=postgres://… sessions and users live in one real PostgreSQL server.

A session-scoped fixture starts Debian's PostgreSQL on a free loopback port. Two app servers (two
"machines": separate processes, separate DATA_DIRs, one SECRET_KEY, one store) run with that
DATABASE_URL: a login on one is a login on the other, a logout on either ends it everywhere, and no
SQLite file is written. Skipped only when the PostgreSQL binaries are not installed.
"""

from __future__ import annotations

import http.cookiejar
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from app.services.local_store import free_port
from app.tests.postgres_server import server_bin, temporary_postgres

ROOT = Path(__file__).resolve().parents[3]
BINARIES = server_bin()
pytestmark = pytest.mark.skipif(
    BINARIES is None,
    reason="PostgreSQL is not installed (no initdb/pg_ctl in /usr/lib/postgresql/*/bin): apt-get install postgresql",
)
PASSWORD = "pg-sessions-Passw0rd!"
SECRET = "pg-sessions-secret-key-" + "x" * 40
CSRF_FIELD = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
ENV_DROPPED = ("DATABASE_URL", "MONGO_URI", "MONGO_DB_NAME", "DATA_DIR", "ENV_FILE", "DEBUG", "SECRET_KEY")


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    assert BINARIES is not None
    with temporary_postgres(BINARIES) as url:
        yield url


@dataclass
class Machine:
    url: str
    data_dir: Path
    process: subprocess.Popen[bytes]


def machine_env(postgres_url: str, mongo_uri: str, db_name: str, data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ENV_DROPPED and not k.startswith("PYTEST")}
    env.update(
        DATABASE_URL=postgres_url,
        MONGO_URI=mongo_uri,
        MONGO_DB_NAME=db_name,
        DATA_DIR=str(data_dir),
        ENV_FILE=str(data_dir / "absent.env"),
        DEBUG="1",
        SECRET_KEY=SECRET,
        HF_WARMUP="0",
        LOG_LEVEL="WARNING",
    )
    return env


def manage(env: dict[str, str], *args: str) -> None:
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


def wait_until_up(machine: Machine) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert machine.process.poll() is None, f"the app server exited with {machine.process.returncode}"
        try:
            with urllib.request.urlopen(machine.url + "/healthz", timeout=2):
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.2)
    raise AssertionError("the app server did not start")


@pytest.fixture(scope="module")
def machines(postgres_url: str, mongo_uri: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Machine]]:
    db_name = f"pg_sessions_{uuid.uuid4().hex[:8]}"
    folders = [tmp_path_factory.mktemp(f"machine{n}") for n in range(2)]
    manage(machine_env(postgres_url, mongo_uri, db_name, folders[0]), "migrate", "--noinput")
    setup_env = machine_env(postgres_url, mongo_uri, db_name, folders[0]) | {"DJANGO_SUPERUSER_PASSWORD": PASSWORD}
    manage(setup_env, "createsuperuser", "--noinput", "--username", "alice", "--email", "alice@example.com")
    started: list[Machine] = []
    try:
        for folder in folders:
            port = free_port()
            env = machine_env(postgres_url, mongo_uri, db_name, folder)
            log = (folder / "server.log").open("wb")
            command = [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"]
            process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
            started.append(Machine(url=f"http://127.0.0.1:{port}", data_dir=folder, process=process))
        for machine in started:
            wait_until_up(machine)
        yield started
    finally:
        for machine in started:
            machine.process.terminate()
            machine.process.wait(timeout=20)


class Browser:
    """One person's browser: one cookie jar, used against any machine."""

    def __init__(self) -> None:
        self.cookies = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.cookies))

    def get(self, url: str) -> str:
        with self.opener.open(url, timeout=30) as response:
            return str(response.read().decode())

    def post_form(self, url: str, page_with_form: str, fields: dict[str, str]) -> str:
        token = CSRF_FIELD.search(page_with_form)
        assert token is not None, "no CSRF token on the page"
        body = urllib.parse.urlencode({"csrfmiddlewaretoken": token.group(1), **fields}).encode()
        with self.opener.open(urllib.request.Request(url, data=body, method="POST"), timeout=30) as response:
            return str(response.read().decode())

    def cookie(self, name: str) -> str | None:
        return next((cookie.value for cookie in self.cookies if cookie.name == name), None)

    def log_in(self, machine: Machine) -> str:
        form = self.get(machine.url + "/accounts/login/?next=/history/")
        return self.post_form(
            machine.url + "/accounts/login/", form, {"username": "alice", "password": PASSWORD, "next": "/history/"}
        )


def session_keys(postgres_url: str) -> set[str]:
    with psycopg.connect(postgres_url) as connection:
        return {row[0] for row in connection.execute("SELECT session_key FROM django_session")}


def test_users_live_in_postgresql(postgres_url: str, machines: list[Machine]) -> None:
    with psycopg.connect(postgres_url) as connection:
        users = [row[0] for row in connection.execute("SELECT username FROM auth_user")]
    assert users == ["alice"]


def test_login_on_one_machine_is_a_login_on_the_other(postgres_url: str, machines: list[Machine]) -> None:
    first, second = machines
    browser = Browser()
    after_login = browser.log_in(first)
    assert "alice" in after_login and "Log out" in after_login
    session = browser.cookie("sessionid")
    assert session is not None and session in session_keys(postgres_url)
    on_second = browser.get(second.url + "/history/")
    assert "alice" in on_second and "Log out" in on_second


def test_logout_on_either_machine_ends_the_session_everywhere(postgres_url: str, machines: list[Machine]) -> None:
    first, second = machines
    browser = Browser()
    browser.log_in(first)
    session = browser.cookie("sessionid")
    page = browser.get(second.url + "/history/")
    browser.post_form(second.url + "/accounts/logout/", page, {})
    assert session not in session_keys(postgres_url)
    again = browser.get(first.url + "/history/")
    assert "Log out" not in again and "Log in" in again


def test_a_visitor_session_is_kept_in_postgresql_not_in_sqlite(postgres_url: str, machines: list[Machine]) -> None:
    first, second = machines
    browser = Browser()
    browser.get(first.url + "/")
    browser.get(second.url + "/history/")
    session = browser.cookie("sessionid")
    assert session is not None and session in session_keys(postgres_url)
    assert [
        path for machine in machines for path in machine.data_dir.glob("*.sqlite3") if "outbox" not in path.name
    ] == []


def doctor_output(env: dict[str, str]) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", "doctor", "--env-file", "/nonexistent/.env"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return result.stdout + result.stderr


def test_doctor_names_the_shared_postgresql_database(
    postgres_url: str, mongo_uri: str, machines: list[Machine], tmp_path: Path
) -> None:
    output = doctor_output(machine_env(postgres_url, mongo_uri, "pg_doctor", tmp_path))
    port = urllib.parse.urlsplit(postgres_url).port
    assert f"[OK  ] database: PostgreSQL 127.0.0.1:{port}/hf_ml: sessions and users shared by every machine" in output


def test_doctor_fails_clearly_when_postgresql_is_unreachable(mongo_uri: str, tmp_path: Path) -> None:
    url = f"postgres://postgres:never-shown@127.0.0.1:{free_port()}/hf_ml?connect_timeout=2"
    output = doctor_output(machine_env(url, mongo_uri, "pg_doctor", tmp_path))
    assert "[FAIL] database: cannot use PostgreSQL 127.0.0.1:" in output
    assert "fix: check DATABASE_URL" in output
    assert "never-shown" not in output
