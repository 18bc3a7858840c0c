"""CSRF for every browser write, bearer tokens for the API, security headers, deploy checks."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.test import Client
from pytest_django.fixtures import Settings as SettingsWrapper

from app.middleware import CONTENT_SECURITY_POLICY, METHOD_NOT_ALLOWED, TOKEN_INVALID, TOKEN_MALFORMED
from app.services.api_tokens import token_scope
from app.services.mongo_repo import get_repository
from app.views.errors import CSRF_FAILED, CSRF_FAILED_API, NOT_FOUND

TOKEN = "test-token-" + "x" * 32
OTHER_TOKEN = "other-token-" + "y" * 32
HTMX = {"HTTP_HX_REQUEST": "true"}
BODY = {"prompt": "Hello", "params": {"max_new_tokens": 2}}


@pytest.fixture
def tokens(settings: SettingsWrapper) -> SettingsWrapper:
    settings.API_TOKENS = (TOKEN, OTHER_TOKEN)
    return settings


@pytest.fixture
def csrf_client() -> Client:
    return Client(enforce_csrf_checks=True)


def csrf_token_of(client: Client) -> str:
    client.get("/")
    return str(client.cookies["csrftoken"].value)


def api_post(client: Client, **headers: str) -> object:
    return client.post("/api/generate", BODY, content_type="application/json", headers=headers)


# --- CSRF on the pages ----------------------------------------------------------------------


@pytest.mark.usefixtures("app_settings")
def test_form_post_without_csrf_token_is_refused_with_a_clear_page(csrf_client: Client) -> None:
    response = csrf_client.post("/prompt/", {"prompt": "Hello"})
    assert response.status_code == 403
    assert CSRF_FAILED in response.content.decode()
    assert get_repository().collection.count_documents({}) == 0


@pytest.mark.usefixtures("app_settings")
def test_htmx_post_without_csrf_header_is_refused_with_a_fragment(csrf_client: Client) -> None:
    csrf_token_of(csrf_client)
    response = csrf_client.post("/prompt/", {"prompt": "Hello"}, **HTMX)
    assert response.status_code == 403
    body = response.content.decode()
    assert CSRF_FAILED in body
    assert "<html" not in body


@pytest.mark.usefixtures("app_settings")
def test_htmx_post_with_the_header_htmx_sends_is_accepted(csrf_client: Client) -> None:
    token = csrf_token_of(csrf_client)
    response = csrf_client.post(
        "/prompt/", {"prompt": "Hello", "max_new_tokens": "2"}, headers={"X-CSRFToken": token}, **HTMX
    )
    assert response.status_code == 200


@pytest.mark.usefixtures("app_settings")
def test_page_puts_the_csrf_token_into_htmx_headers(csrf_client: Client) -> None:
    response = csrf_client.get("/")
    assert f'hx-headers=\'{{"x-csrftoken": "{response.context["csrf_token"]}"}}\'' in response.content.decode()


# --- the JSON API: session + CSRF, or a bearer token ------------------------------------------


@pytest.mark.usefixtures("app_settings")
def test_api_session_post_without_csrf_header_is_403_json(csrf_client: Client) -> None:
    csrf_token_of(csrf_client)
    response = api_post(csrf_client)
    assert response.status_code == 403  # type: ignore[attr-defined]
    assert response.json() == {"error": CSRF_FAILED_API}  # type: ignore[attr-defined]


@pytest.mark.usefixtures("app_settings")
def test_api_session_post_with_csrf_header_is_accepted(csrf_client: Client) -> None:
    token = csrf_token_of(csrf_client)
    response = api_post(csrf_client, **{"X-CSRFToken": token})
    assert response.status_code == 201  # type: ignore[attr-defined]


@pytest.mark.usefixtures("app_settings", "tokens")
def test_bearer_token_needs_no_cookie_or_csrf(csrf_client: Client) -> None:
    response = api_post(csrf_client, Authorization=f"Bearer {TOKEN}")
    assert response.status_code == 201  # type: ignore[attr-defined]
    assert "sessionid" not in response.cookies  # type: ignore[attr-defined]
    stored = get_repository().collection.find_one({"prompt": "Hello"})
    assert stored is not None and stored["session_id"] == token_scope(TOKEN).session_id


@pytest.mark.usefixtures("app_settings", "tokens")
def test_unknown_bearer_token_is_401_json(csrf_client: Client) -> None:
    response = api_post(csrf_client, Authorization="Bearer not-a-configured-token-at-all")
    assert response.status_code == 401  # type: ignore[attr-defined]
    assert response.json() == {"error": TOKEN_INVALID}  # type: ignore[attr-defined]
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'  # type: ignore[index]


@pytest.mark.usefixtures("app_settings", "tokens")
def test_empty_bearer_token_is_401_json(csrf_client: Client) -> None:
    response = api_post(csrf_client, Authorization="Bearer ")
    assert response.status_code == 401  # type: ignore[attr-defined]
    assert response.json() == {"error": TOKEN_MALFORMED}  # type: ignore[attr-defined]


@pytest.mark.usefixtures("app_settings", "tokens")
def test_basic_auth_from_a_proxy_falls_back_to_session_and_csrf(csrf_client: Client) -> None:
    token = csrf_token_of(csrf_client)
    basic = "Basic dXNlcjpwYXNz"
    assert api_post(csrf_client, Authorization=basic).status_code == 403  # type: ignore[attr-defined]
    accepted = api_post(csrf_client, Authorization=basic, **{"X-CSRFToken": token})
    assert accepted.status_code == 201  # type: ignore[attr-defined]


@pytest.mark.usefixtures("app_settings")
def test_bearer_token_is_refused_when_no_tokens_are_configured(csrf_client: Client) -> None:
    response = api_post(csrf_client, Authorization=f"Bearer {TOKEN}")
    assert response.status_code == 401  # type: ignore[attr-defined]


@pytest.mark.usefixtures("app_settings", "tokens")
def test_token_clients_and_sessions_do_not_see_each_others_interactions(client: Client) -> None:
    created = api_post(client, Authorization=f"Bearer {TOKEN}").json()  # type: ignore[attr-defined]
    path = f"/api/interactions/{created['id']}"
    assert client.get(path, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    assert client.get(path, headers={"Authorization": f"Bearer {OTHER_TOKEN}"}).status_code == 404
    assert client.get(path).status_code == 404


def test_too_short_api_token_refuses_to_start(tmp_path: Path) -> None:
    result = run_manage(["check"], {"API_TOKENS": "short"}, tmp_path)
    assert result.returncode != 0
    assert "API_TOKENS has an entry shorter than 16 characters" in result.stderr
    assert "short" not in result.stderr.replace("shorter", "")


# --- JSON errors and pages for errors ---------------------------------------------------------


def test_api_wrong_method_is_405_json(client: Client) -> None:
    response = client.get("/api/generate")
    assert response.status_code == 405
    assert response.json() == {"error": METHOD_NOT_ALLOWED.format(method="GET", allowed="POST")}
    assert response["Allow"] == "POST"


def test_unknown_api_path_is_404_json(client: Client, settings: SettingsWrapper) -> None:
    settings.DEBUG = False
    response = client.get("/api/nothing-here")
    assert response.status_code == 404
    assert response.json() == {"error": NOT_FOUND}


def test_unknown_page_is_a_friendly_404_page(client: Client, settings: SettingsWrapper) -> None:
    settings.DEBUG = False
    response = client.get("/nothing-here/")
    assert response.status_code == 404
    assert NOT_FOUND in response.content.decode()
    assert "Back to the prompt" in response.content.decode()


# --- headers ------------------------------------------------------------------------------------


@pytest.mark.usefixtures("app_settings")
def test_pages_carry_csp_and_security_headers(client: Client) -> None:
    response = client.get("/")
    assert response["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert "script-src 'self'" in response["Content-Security-Policy"]
    assert "unsafe-inline" not in response["Content-Security-Policy"]
    assert "unsafe-eval" not in response["Content-Security-Policy"]
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"


@pytest.mark.usefixtures("app_settings")
def test_htmx_is_configured_without_eval_or_inline_scripts(client: Client) -> None:
    body = client.get("/").content.decode()
    assert '"allowEval": false' in body
    assert '"allowScriptTags": false' in body
    assert '"includeIndicatorStyles": false' in body


def test_templates_and_scripts_need_no_eval_or_inline_code() -> None:
    root = Path(django_settings.BASE_DIR)
    offenders = []
    for path in [*root.glob("templates/**/*.html"), *root.glob("app/templates/**/*.html")]:
        text = path.read_text()
        for needle in ("hx-on", "<script>", "javascript:", " onclick=", " onload=", " onerror=", "js:"):
            if needle in text:
                offenders.append(f"{path.name}: {needle}")
        for _, trigger in re.findall(r"hx-trigger\s*=\s*([\"'])(.*?)\1", text):
            if "[" in trigger:
                offenders.append(f"{path.name}: hx-trigger filter {trigger!r}")
    for script in root.glob("static/app/**/*.js"):
        for needle in ("eval(", "new Function", 'setTimeout("', 'setInterval("'):
            if needle in script.read_text():
                offenders.append(f"{script.name}: {needle}")
    assert offenders == []


# --- production settings -------------------------------------------------------------------------


def production_env(tmp_path: Path) -> dict[str, str]:
    return {
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "hf.example.com",
        "CSRF_TRUSTED_ORIGINS": "https://hf.example.com",
        "SECURE_SSL_REDIRECT": "1",
        "SECURE_PROXY_SSL_HEADER": "1",
        "SECURE_HSTS_PRELOAD": "1",
        "DATA_DIR": str(tmp_path / "data"),
        "ENV_FILE": str(tmp_path / "no.env"),
    }


def run_manage(args: list[str], extra_env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    # A clean environment: nothing from the test process (e.g. DJANGO_ALLOW_ASYNC_UNSAFE) leaks in.
    keep = {"PATH", "HOME", "SYSTEMROOT", "TEMP", "TMP", "TMPDIR", "HF_HOME", "HF_HUB_OFFLINE"}
    env = {k: v for k, v in os.environ.items() if k in keep}
    env.update({"ENV_FILE": str(tmp_path / "no.env"), "DATA_DIR": str(tmp_path / "data"), **extra_env})
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=django_settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_is_clean_with_production_settings(tmp_path: Path) -> None:
    result = run_manage(["check", "--deploy", "--fail-level", "WARNING"], production_env(tmp_path), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_production_cookies_are_secure_and_hsts_is_on(tmp_path: Path) -> None:
    code = (
        "from django.conf import settings as s; "
        "print(s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SECURE_HSTS_SECONDS, s.SECURE_PROXY_SSL_HEADER)"
    )
    result = run_manage(["shell", "-c", code], production_env(tmp_path), tmp_path)
    assert result.stdout.strip().splitlines()[-1] == "True True 31536000 ('HTTP_X_FORWARDED_PROTO', 'https')"


def test_server_error_is_json_under_api_and_a_page_elsewhere(rf: Any) -> None:
    from app.views.errors import SERVER_ERROR, server_error

    api = server_error(rf.get("/api/generate"))
    assert api.status_code == 500
    assert json.loads(api.content) == {"error": SERVER_ERROR}
    page = server_error(rf.get("/history/"))
    assert page.status_code == 500
    assert SERVER_ERROR in page.content.decode()


@pytest.mark.usefixtures("app_settings")
def test_htmx_swaps_403_so_a_csrf_failure_is_shown(client: Client) -> None:
    assert '{"code": "403", "swap": true, "error": false}' in client.get("/").content.decode()
