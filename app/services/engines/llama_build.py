"""Find a ``llama-server`` binary, or build it once from the llama.cpp source pinned by llama-cpp-python.

Where the binary comes from, first match wins:

1. ``LLAMA_SERVER_BIN`` (a path or a command name) when it is set;
2. ``llama-server`` on ``PATH`` (a package manager or a llama.cpp release);
3. the copy built here, ``DATA_DIR/llama.cpp/build/bin/llama-server``, whose stamp file says which
   source it was built from.

The build downloads the sdist of ``llama-cpp-python==0.3.36`` with pip (it vendors the whole llama.cpp
tree, the server included), configures it with cmake and builds only the ``llama-server`` target. It
needs cmake and a C++ compiler and takes about 4 minutes on 2 cores. The shared libraries it links
stay next to the binary in ``build/bin`` (the build tree's run path points there).

This module is plain standard library (no Django, no torch) so ``dev.py`` and tests can use it anywhere.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

LLAMA_CPP_PYTHON = "llama-cpp-python"
LLAMA_CPP_PYTHON_VERSION = "0.3.36"
SERVER_NAME = "llama-server"
BUILD_DIR_NAME = "llama.cpp"
STAMP_NAME = ".built"
CMAKE_OPTIONS: tuple[str, ...] = (
    "-DLLAMA_BUILD_SERVER=ON",
    "-DLLAMA_CURL=OFF",
    "-DLLAMA_OPENSSL=OFF",
    "-DCMAKE_BUILD_TYPE=Release",
)
BUILD_TOOLS_MISSING = (
    "building llama-server needs cmake, make and a C++ compiler ({missing} not found); "
    "install them (Debian/Ubuntu: apt-get install -y cmake make g++) or put a llama-server binary on PATH"
)
_PERCENT = re.compile(r"^\[\s*(\d+)%\]")

Progress = Callable[[str], None]


class LlamaBuildError(RuntimeError):
    """The binary could not be built; the message says why and what to do."""


@dataclass(frozen=True)
class LlamaBinary:
    """A usable ``llama-server`` and where it was found ("LLAMA_SERVER_BIN", "PATH" or "built here")."""

    path: Path
    source: str

    def describe(self) -> str:
        return f"{self.path} ({self.source})"


def build_root(data_dir: Path) -> Path:
    """Where the build lives: ``DATA_DIR/llama.cpp`` (download, src, build, stamp)."""
    return data_dir / BUILD_DIR_NAME


def built_binary_path(data_dir: Path) -> Path:
    return build_root(data_dir) / "build" / "bin" / SERVER_NAME


def stamp_text() -> str:
    return f"{LLAMA_CPP_PYTHON}=={LLAMA_CPP_PYTHON_VERSION} {' '.join(CMAKE_OPTIONS)}\n"


def is_built(data_dir: Path) -> bool:
    """True when this data folder holds a finished build of the pinned source (the stamp is written last)."""
    stamp = build_root(data_dir) / STAMP_NAME
    try:
        return stamp.read_text(encoding="utf-8") == stamp_text() and _is_executable(built_binary_path(data_dir))
    except OSError:
        return False


def find_llama_server(*, configured: str, data_dir: Path) -> LlamaBinary | None:
    """The binary to run, or None when there is none yet (``configured`` is LLAMA_SERVER_BIN, may be empty)."""
    if configured:
        resolved = shutil.which(configured) if os.sep not in configured else configured
        if resolved and _is_executable(Path(resolved)):
            return LlamaBinary(Path(resolved), "LLAMA_SERVER_BIN")
        logger.warning("LLAMA_SERVER_BIN=%s is not an executable file; looking on PATH and in %s", configured, data_dir)
    on_path = shutil.which(SERVER_NAME)
    if on_path:
        return LlamaBinary(Path(on_path), "PATH")
    if is_built(data_dir):
        return LlamaBinary(built_binary_path(data_dir), "built here")
    return None


def missing_build_tools() -> list[str]:
    """What the build needs and this machine lacks (empty when it can build)."""
    missing = [] if shutil.which("cmake") else ["cmake"]
    if not any(shutil.which(name) for name in ("make", "ninja")):
        missing.append("make")
    if not any(shutil.which(name) for name in ("c++", "g++", "clang++")):
        missing.append("a C++ compiler (g++ or clang++)")
    return missing


def ensure_llama_server(*, configured: str, data_dir: Path, progress: Progress, jobs: int = 2) -> LlamaBinary:
    """The binary, building it once when none is found; ``LlamaBuildError`` when that is impossible."""
    found = find_llama_server(configured=configured, data_dir=data_dir)
    if found is not None:
        return found
    path = build_llama_server(data_dir=data_dir, progress=progress, jobs=jobs)
    return LlamaBinary(path, "built here")


def build_llama_server(*, data_dir: Path, progress: Progress, jobs: int = 2) -> Path:
    """Download the pinned source and build ``llama-server`` into ``DATA_DIR/llama.cpp`` (idempotent)."""
    if is_built(data_dir):
        return built_binary_path(data_dir)
    missing = missing_build_tools()
    if missing:
        raise LlamaBuildError(BUILD_TOOLS_MISSING.format(missing=", ".join(missing)))
    root = build_root(data_dir)
    root.mkdir(parents=True, exist_ok=True)
    (root / STAMP_NAME).unlink(missing_ok=True)
    started = time.monotonic()
    source = _fetch_source(root, progress)
    build = root / "build"
    progress(f"Configuring llama.cpp with cmake in {build}")
    _run(
        ["cmake", "-S", str(source), "-B", str(build), *CMAKE_OPTIONS],
        log=root / "cmake-configure.log",
        progress=progress,
    )
    progress(f"Building llama-server with {jobs} job(s) (about 4 minutes on 2 cores)")
    _run(
        ["cmake", "--build", str(build), "--target", SERVER_NAME, f"-j{jobs}"],
        log=root / "cmake-build.log",
        progress=progress,
        show_percent=True,
    )
    binary = built_binary_path(data_dir)
    if not _is_executable(binary):
        raise LlamaBuildError(f"the build finished but {binary} is missing; see {root / 'cmake-build.log'}")
    (root / STAMP_NAME).write_text(stamp_text(), encoding="utf-8")
    progress(f"llama-server built in {time.monotonic() - started:.0f} s: {binary}")
    return binary


def _fetch_source(root: Path, progress: Progress) -> Path:
    """``root/src/vendor/llama.cpp`` from the sdist (downloaded with pip unless already unpacked)."""
    source = root / "src" / "vendor" / "llama.cpp"
    if (source / "CMakeLists.txt").is_file():
        return source
    download = root / "download"
    download.mkdir(parents=True, exist_ok=True)
    archives = sorted(download.glob("llama_cpp_python-*.tar.gz"))
    if not archives:
        progress(f"Downloading the {LLAMA_CPP_PYTHON}=={LLAMA_CPP_PYTHON_VERSION} source (77 MB) with pip")
        requirement = f"{LLAMA_CPP_PYTHON}=={LLAMA_CPP_PYTHON_VERSION}"
        pip = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", requirement]
        _run([*pip, "-d", str(download), "-q"], log=root / "pip-download.log", progress=progress)
        archives = sorted(download.glob("llama_cpp_python-*.tar.gz"))
        if not archives:
            raise LlamaBuildError(f"pip downloaded no source archive; see {root / 'pip-download.log'}")
    progress(f"Unpacking {archives[-1].name}")
    unpacked = root / "src"
    shutil.rmtree(unpacked, ignore_errors=True)
    unpacked.mkdir()
    with tarfile.open(archives[-1]) as archive:
        prefix = archive.getnames()[0].split("/", 1)[0] + "/"
        members = []
        for member in archive.getmembers():
            if member.name.startswith(prefix):
                member.name = member.name[len(prefix) :]
                if member.name:
                    members.append(member)
        archive.extractall(unpacked, members=members, filter="data")
    if not (source / "CMakeLists.txt").is_file():
        raise LlamaBuildError(f"the archive {archives[-1].name} holds no vendor/llama.cpp")
    return source


def _run(command: Sequence[str], *, log: Path, progress: Progress, show_percent: bool = False) -> None:
    """Run ``command`` with its output in ``log``; with ``show_percent``, pass cmake's progress on every 10 %."""
    shown = -10
    with log.open("w", encoding="utf-8") as out:
        process = subprocess.Popen(
            list(command), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL
        )
        assert process.stdout is not None
        for line in process.stdout:
            out.write(line)
            match = _PERCENT.match(line)
            if show_percent and match and int(match.group(1)) >= shown + 10:
                shown = int(match.group(1))
                progress(f"  llama-server build {shown}%")
        code = process.wait()
    if code != 0:
        tail = "\n".join(log.read_text(encoding="utf-8", errors="replace").splitlines()[-15:])
        raise LlamaBuildError(f"{' '.join(command[:3])} … failed with exit code {code}; see {log}:\n{tail}")


def _is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m app.services.engines.llama_build [DATA_DIR]``: find or build the binary, print its path."""
    args = list(sys.argv[1:] if argv is None else argv)
    data_dir = Path(args[0] if args else os.environ.get("DATA_DIR", "var")).resolve()
    try:
        binary = ensure_llama_server(
            configured=os.environ.get("LLAMA_SERVER_BIN", "").strip(),
            data_dir=data_dir,
            progress=lambda line: print(f"[llama.cpp] {line}", flush=True),
        )
    except LlamaBuildError as exc:
        print(f"[llama.cpp] {exc}", file=sys.stderr, flush=True)
        return 1
    print(binary.path, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
