"""Finding or building llama-server (app/services/engines/llama_build.py): order, stamp, clear failures."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from app.services.engines import llama_build
from app.services.engines.llama_build import (
    LlamaBuildError,
    build_llama_server,
    built_binary_path,
    find_llama_server,
    is_built,
    stamp_text,
)


def _fake_binary(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def _fake_build(data_dir: Path) -> Path:
    binary = _fake_binary(built_binary_path(data_dir))
    (data_dir / "llama.cpp" / ".built").write_text(stamp_text(), encoding="utf-8")
    return binary


def test_configured_binary_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    configured = _fake_binary(tmp_path / "mine" / "llama-server")
    _fake_binary(tmp_path / "path" / "llama-server")
    monkeypatch.setenv("PATH", str(tmp_path / "path"))
    found = find_llama_server(configured=str(configured), data_dir=tmp_path / "data")
    assert found is not None
    assert (found.path, found.source) == (configured, "LLAMA_SERVER_BIN")


def test_binary_on_path_is_used_before_the_built_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    on_path = _fake_binary(tmp_path / "path" / "llama-server")
    _fake_build(tmp_path / "data")
    monkeypatch.setenv("PATH", str(tmp_path / "path"))
    found = find_llama_server(configured="", data_dir=tmp_path / "data")
    assert found is not None
    assert (found.path, found.source) == (on_path, "PATH")


def test_built_binary_is_found_only_with_its_stamp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    binary = _fake_binary(built_binary_path(tmp_path))
    assert find_llama_server(configured="", data_dir=tmp_path) is None
    (tmp_path / "llama.cpp" / ".built").write_text("llama-cpp-python==0.0.1\n", encoding="utf-8")
    assert not is_built(tmp_path)  # a build of another version does not count
    (tmp_path / "llama.cpp" / ".built").write_text(stamp_text(), encoding="utf-8")
    found = find_llama_server(configured="", data_dir=tmp_path)
    assert found is not None
    assert (found.path, found.source) == (binary, "built here")


def test_missing_configured_binary_falls_through(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert find_llama_server(configured=str(tmp_path / "nope"), data_dir=tmp_path) is None


def test_build_is_idempotent_once_stamped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    binary = _fake_build(tmp_path)

    def no_run(*args: object, **kwargs: object) -> None:
        raise AssertionError("nothing may run when the stamp matches")

    monkeypatch.setattr(llama_build, "_run", no_run)
    lines: list[str] = []
    assert build_llama_server(data_dir=tmp_path, progress=lines.append) == binary
    assert lines == []


def test_build_without_tools_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(LlamaBuildError, match=r"cmake.*apt-get install -y cmake make g\+\+"):
        build_llama_server(data_dir=tmp_path, progress=lambda line: None)
    assert not (tmp_path / "llama.cpp" / ".built").exists()
