"""A SecantusDB process a test owns: it can SIGKILL it and restart it on the same port and data folder."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from app.services.local_store import free_port, server_executable, store_answers


class OwnedStore:
    """A SecantusDB server on a free port, its data in ``folder/data``.

    ``sync_on_commit`` makes the server fsync every commit whatever the client asks; without it only
    writes sent with a journaled write concern (``j=True``) are on disk when they are acknowledged.
    """

    def __init__(self, folder: Path, *, sync_on_commit: bool = False) -> None:
        self.port = free_port()
        self.data = folder / "data"
        self.log = folder / "secantusd.log"
        self.sync_on_commit = sync_on_commit
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/"

    def start(self) -> None:
        command = [server_executable(), "--host", "127.0.0.1", "--port", str(self.port)]
        command += ["--storage-path", str(self.data)]
        if self.sync_on_commit:
            command.append("--sync-on-commit")
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while not store_answers("127.0.0.1", self.port):
            assert self.process.poll() is None, self.log.read_text(errors="replace")[-2000:]
            assert time.monotonic() < deadline, "the test store did not start"
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL: no checkpoint, no clean shutdown."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.kill()
