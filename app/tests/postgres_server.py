"""A throwaway PostgreSQL server for tests (Debian's ``postgresql`` package), on a free loopback port.

PostgreSQL refuses to run as root, so when the tests run as root the server's folder belongs to the
``postgres`` user and every server command runs as that user (``runuser``).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from app.services.local_store import free_port

BIN_DIRS = [Path(f"/usr/lib/postgresql/{version}/bin") for version in (17, 16, 15, 14, 13)]
DATABASE = "hf_ml"


def server_bin() -> Path | None:
    """The folder holding ``initdb``/``pg_ctl``/``postgres``, or None when PostgreSQL is not installed."""
    candidates = [*BIN_DIRS]
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.insert(0, Path(on_path).parent)
    for folder in candidates:
        if all((folder / name).is_file() for name in ("initdb", "pg_ctl", "postgres", "createdb")):
            return folder
    return None


def _as_server_user(command: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *command]
    return command


@contextmanager
def temporary_postgres(binaries: Path) -> Iterator[str]:
    """Start a server, create database ``hf_ml``, yield its ``postgres://`` URL; stop it afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="hf-ml-pg-"))
    port = free_port()
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        os.chown(folder, user.pw_uid, user.pw_gid)
    data, log = folder / "data", folder / "log"

    def run(*command: str | Path) -> None:
        subprocess.run(_as_server_user([str(part) for part in command]), check=True, capture_output=True, timeout=60)

    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off"
    try:
        run(binaries / "initdb", "-D", data, "-A", "trust", "-U", "postgres", "-E", "UTF8")
        run(binaries / "pg_ctl", "-D", data, "-o", options, "-l", log, "-w", "-t", "30", "start")
        run(binaries / "createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", DATABASE)
        yield f"postgres://postgres@127.0.0.1:{port}/{DATABASE}"
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run(
                _as_server_user([str(binaries / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]),
                capture_output=True,
                timeout=60,
            )
        shutil.rmtree(folder, ignore_errors=True)
