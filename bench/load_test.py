#!/usr/bin/env python3
"""Bounded load test on loopback: N clients for S seconds on the prompt, history and search pages.

Everything is throwaway and started here: a SecantusDB store in memory on a free port, a temporary
DATA_DIR (sessions, outbox, collected static files), a tiny locally-built causal model, and the app
under gunicorn (``--workers W --threads T``, no ``--preload``) with production settings (DEBUG=0).
Without gunicorn (Windows) Django's threaded ``runserver`` is used instead. The run stops by itself
and prints requests/s, latency percentiles and the error count (goal: 0 errors); the exit status is
1 when any request failed.

    .venv/bin/python bench/load_test.py            # 50 clients, 60 s
    .venv/bin/python bench/load_test.py --quick    # 10 clients, 10 s
"""

from __future__ import annotations

import argparse
import http.client
import http.cookies
import os
import random
import re
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SEARCH_WORDS = ["capital", "france", "paris", "hello", "model", "tea", "cap", "zz", "river"]
PROMPTS = ["What is the capital of France?", "Say hello to the river", "Tea or coffee?", "Name a model"]
CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


def wait_for_port(port: int, process: subprocess.Popen[bytes], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{what} exited with code {process.returncode} while starting")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"{what} did not listen on port {port} within {seconds:.0f} s")


def stop(process: subprocess.Popen[bytes] | None) -> None:
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


@dataclass
class Stats:
    latencies: dict[str, list[float]] = field(default_factory=dict)
    statuses: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, kind: str, seconds: float, status: int | str) -> None:
        with self.lock:
            self.latencies.setdefault(kind, []).append(seconds)
            self.statuses[f"{kind} {status}"] += 1
            if not isinstance(status, int) or status >= 400:
                self.errors[f"{kind} {status}"] += 1


class Visitor:
    """One browser-like client: keeps its cookies, one keep-alive connection, sends CSRF on POST."""

    def __init__(self, port: int, stats: Stats) -> None:
        self.port = port
        self.stats = stats
        self.cookies: dict[str, str] = {}
        self.csrf = ""
        self.stale_retries = 0
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def request(self, kind: str, method: str, path: str, body: str | None = None) -> tuple[int, str]:
        headers = {"Host": "127.0.0.1", "Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        if body is not None:
            headers.update({"Content-Type": "application/x-www-form-urlencoded", "X-CSRFToken": self.csrf})
            headers["Referer"] = f"http://127.0.0.1:{self.port}/"
        started = time.perf_counter()
        try:
            try:
                response = self._send(method, path, body, headers)
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # The server closed an idle keep-alive connection just as we reused it: like a
                # browser, send once more on a fresh connection (not an application error).
                self.stale_retries += 1
                self.connection.close()
                self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
                response = self._send(method, path, body, headers)
            text = response.read().decode("utf-8", errors="replace")
        except (OSError, http.client.HTTPException) as exc:
            self.stats.record(kind, time.perf_counter() - started, exc.__class__.__name__)
            self.connection.close()
            self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            return 0, ""
        self.stats.record(kind, time.perf_counter() - started, response.status)
        for header in response.headers.get_all("Set-Cookie") or []:
            cookie = http.cookies.SimpleCookie(header)
            for name, morsel in cookie.items():
                self.cookies[name] = morsel.value
        match = CSRF_INPUT.search(text)
        if match:
            self.csrf = match.group(1)
        return response.status, text

    def _send(self, method: str, path: str, body: str | None, headers: dict[str, str]) -> http.client.HTTPResponse:
        self.connection.request(method, path, body=body, headers=headers)
        return self.connection.getresponse()

    def prompt(self) -> None:
        body = urlencode({"prompt": random.choice(PROMPTS), "max_new_tokens": "4"})
        self.request("POST /prompt/", "POST", "/prompt/", body)

    def step(self) -> None:
        roll = random.random()
        if roll < 0.05:
            self.prompt()
        elif roll < 0.30:
            self.request("GET /", "GET", "/")
        elif roll < 0.60:
            self.request("GET /history/", "GET", "/history/")
        else:
            query = urlencode({"q": random.choice(SEARCH_WORDS)})
            self.request("GET /history/?q=", "GET", f"/history/?{query}")

    def close(self) -> None:
        self.connection.close()


def run_clients(port: int, clients: int, seconds: float) -> tuple[Stats, float, int]:
    stats = Stats()
    visitors = [Visitor(port, stats) for _ in range(clients)]
    for visitor in visitors:  # each visitor opens the page and asks twice: its history has content
        visitor.request("GET / (setup)", "GET", "/")
        visitor.prompt()
        visitor.prompt()
    stats.latencies.clear()
    stats.statuses.clear()
    setup_errors = Counter(stats.errors)
    stats.errors.clear()
    stats.errors.update({f"setup: {k}": v for k, v in setup_errors.items()})
    deadline = time.monotonic() + seconds

    def loop(visitor: Visitor) -> None:
        while time.monotonic() < deadline:
            visitor.step()
        visitor.close()

    threads = [threading.Thread(target=loop, args=(v,), daemon=True) for v in visitors]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 120)
    return stats, time.perf_counter() - started, sum(v.stale_retries for v in visitors)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def print_report(stats: Stats, elapsed: float, args: argparse.Namespace, server: str) -> None:
    every = [value for values in stats.latencies.values() for value in values]
    total = len(every)
    print(f"\nLoad test: {args.clients} clients for {args.duration:.0f} s against {server}")
    print(f"{'request':<20} {'count':>7} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}")
    for kind, values in sorted(stats.latencies.items()):
        print(
            f"{kind:<20} {len(values):>7} {statistics.median(values) * 1000:>8.1f} "
            f"{percentile(values, 0.95) * 1000:>8.1f} {percentile(values, 0.99) * 1000:>8.1f}"
        )
    if every:
        print(
            f"{'all':<20} {total:>7} {statistics.median(every) * 1000:>8.1f} "
            f"{percentile(every, 0.95) * 1000:>8.1f} {percentile(every, 0.99) * 1000:>8.1f}"
        )
    print(f"\nrequests/s: {total / elapsed:.1f}   p95: {percentile(every, 0.95) * 1000 if every else 0:.1f} ms")
    errors = sum(stats.errors.values())
    print(f"errors: {errors}" + (f"  {dict(stats.errors)}" if errors else ""))


def prepare(workdir: Path, store_port: int, model_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "MONGO_", "HF_"))}
    env.update(
        {
            "ENV_FILE": str(workdir / "none.env"),
            "DEBUG": "0",
            "SECRET_KEY": secrets.token_urlsafe(50),
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "SECURE_COOKIES": "0",  # plain HTTP on loopback
            "SECURE_HSTS_SECONDS": "0",
            "DATA_DIR": str(workdir / "data"),
            "MONGO_URI": f"mongodb://127.0.0.1:{store_port}/?directConnection=true",
            "MONGO_DB_NAME": "load_test",
            "HF_MODEL": str(model_dir),
            "HF_TASK": "text-generation",
            "HF_WARMUP": "1",
            "LOG_LEVEL": "WARNING",
            # The load test measures serving, not the per-visitor rate limit.
            "RATE_LIMIT_PER_MINUTE": "100000",
            "RATE_LIMIT_BURST": "100000",
        }
    )
    python = sys.executable
    for command in (["migrate", "--noinput", "-v", "0"], ["collectstatic", "--noinput", "-v", "0"], ["ensure_indexes"]):
        subprocess.run([python, "manage.py", *command], cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
    return env


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load after the warm-up")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=8, help="gunicorn threads per worker")
    parser.add_argument("--quick", action="store_true", help="10 clients for 10 s")
    args = parser.parse_args()
    if args.quick:
        args.clients, args.duration = 10, 10.0

    from app.services.local_store import free_port, server_executable
    from app.tests.tiny_models import build_tiny_llama

    workdir = Path(tempfile.mkdtemp(prefix="hf-load-"))
    store = server = None
    try:
        print("Building the tiny model, starting the store and the server…", flush=True)
        model_dir = build_tiny_llama(workdir / "tiny-llama")
        store_port, app_port = free_port(), free_port()
        store = subprocess.Popen(
            [server_executable(), "--host", "127.0.0.1", "--port", str(store_port), "--storage-path", ":memory:"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(store_port, store, 30, "SecantusDB")
        env = prepare(workdir, store_port, model_dir)
        gunicorn = shutil.which("gunicorn", path=str(Path(sys.executable).parent)) or shutil.which("gunicorn")
        if gunicorn:
            command = [
                gunicorn, "django_hf_ml.wsgi:application", "--bind", f"127.0.0.1:{app_port}",
                "--workers", str(args.workers), "--threads", str(args.threads), "--worker-class", "gthread",
                "--timeout", "120", "--log-level", "warning",
            ]  # fmt: skip
            label = f"gunicorn --workers {args.workers} --threads {args.threads}"
        else:
            command = [sys.executable, "manage.py", "runserver", f"127.0.0.1:{app_port}", "--noreload"]
            label = "Django runserver (threaded; gunicorn not installed)"
        server = subprocess.Popen(command, cwd=ROOT, env=env)
        wait_for_port(app_port, server, 120, "the app server")
        stats, elapsed, stale = run_clients(app_port, args.clients, args.duration)
        print_report(stats, elapsed, args, label)
        print(f"keep-alive connections closed by the server and re-sent (as browsers do): {stale}")
        return 1 if stats.errors else 0
    finally:
        stop(server)
        stop(store)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
