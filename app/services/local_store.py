"""Start a local SecantusDB server (a MongoDB wire-protocol server) when no MONGO_URI is set.

SecantusDB is GPL-2.0 and runs as its own process: the app only talks to it over the MongoDB
protocol through PyMongo, exactly as it talks to Atlas.
"""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pymongo import MongoClient
from pymongo.errors import PyMongoError

from app.errors import StoreUnavailable

logger = logging.getLogger(__name__)

SERVER_COMMAND = "secantusd-py"
START_TIMEOUT_SECONDS = 30.0


@dataclass
class LocalStore:
    """A SecantusDB server this process started (``process`` is None when one already answered)."""

    host: str
    port: int
    process: subprocess.Popen[bytes] | None

    @property
    def uri(self) -> str:
        return f"mongodb://{self.host}:{self.port}/"

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)
        logger.info("Local MongoDB store on %s:%s stopped", self.host, self.port)


def store_answers(host: str, port: int, timeout_ms: int = 500) -> bool:
    """True when a MongoDB server answers ``ping`` at host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout_ms / 1000):
            pass
    except OSError:
        return False
    client: MongoClient[dict[str, object]] = MongoClient(
        host, port, serverSelectionTimeoutMS=timeout_ms, connectTimeoutMS=timeout_ms, directConnection=True
    )
    try:
        client.admin.command("ping")
        return True
    except PyMongoError:
        return False
    finally:
        client.close()


def server_executable() -> str:
    """``secantusd-py`` next to this interpreter (the virtual environment), else on PATH."""
    folder = Path(sys.executable).parent
    for name in (SERVER_COMMAND, f"{SERVER_COMMAND}.exe"):
        candidate = folder / name
        if candidate.is_file():
            return str(candidate)
    found = shutil.which(SERVER_COMMAND)
    if found is None:
        raise StoreUnavailable(
            "No MONGO_URI is set and the local store command secantusd-py is not installed. "
            "Run the README's setup command (it installs secantusdb), or set MONGO_URI to a MongoDB/Atlas URI."
        )
    return found


def start_local_store(*, host: str, port: int, storage_dir: Path, log_file: Path) -> LocalStore:
    """Reuse a server already answering at host:port, or start one on ``storage_dir`` and wait for it."""
    if store_answers(host, port):
        logger.info("Local MongoDB store already answering on %s:%s; reusing it", host, port)
        return LocalStore(host=host, port=port, process=None)
    storage_dir.mkdir(parents=True, exist_ok=True)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    command = [server_executable(), "--host", host, "--port", str(port), "--storage-path", str(storage_dir)]
    logger.info("Starting local MongoDB store (SecantusDB) on %s:%s with data in %s", host, port, storage_dir)
    with log_file.open("ab") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    store = LocalStore(host=host, port=port, process=process)
    _wait_until_ready(store, log_file)
    return store


def _wait_until_ready(store: LocalStore, log_file: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if store.process is not None and store.process.poll() is not None:
            raise StoreUnavailable(
                f"The local store exited with code {store.process.returncode} while starting. "
                f"Last lines of {log_file}:\n{_tail(log_file)}"
            )
        if store_answers(store.host, store.port):
            logger.info("Local MongoDB store ready on %s:%s", store.host, store.port)
            return
        time.sleep(0.2)
    store.stop()
    raise StoreUnavailable(f"The local store did not answer within {START_TIMEOUT_SECONDS:.0f} s; see {log_file}.")


def _tail(path: Path, lines: int = 10) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now (for throwaway servers)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@contextmanager
def temporary_store(prefix: str = "hf-ml-store-") -> Iterator[LocalStore]:
    """A throwaway local store on a free port, its data in a temporary folder (benchmarks, tests)."""
    with tempfile.TemporaryDirectory(prefix=prefix) as folder:
        store = start_local_store(
            host="127.0.0.1",
            port=free_port(),
            storage_dir=Path(folder) / "data",
            log_file=Path(folder) / "secantusd.log",
        )
        try:
            yield store
        finally:
            store.stop()
