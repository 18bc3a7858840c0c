"""One doctor finding (OK, WARN or FAIL with its fix) and the report that prints them."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

from app.services.console import TextOut

Level = Literal["OK", "WARN", "FAIL"]


@dataclass(frozen=True)
class Finding:
    level: Level
    topic: str
    detail: str
    fix: str = ""

    def line(self) -> str:
        text = f"[{self.level:<4}] {self.topic}: {self.detail}"
        return f"{text}\n       fix: {self.fix}" if self.fix else text


def ok(topic: str, detail: str) -> Finding:
    return Finding("OK", topic, detail)


def warn(topic: str, detail: str, fix: str = "") -> Finding:
    return Finding("WARN", topic, detail, fix)


def fail(topic: str, detail: str, fix: str) -> Finding:
    return Finding("FAIL", topic, detail, fix)


# --- .env (plain text; works without settings) -----------------------------------------------------


def report(findings: Iterable[Finding], out: TextOut) -> int:
    findings = list(findings)
    for finding in findings:
        out.write(finding.line() + "\n")
    failures = sum(1 for f in findings if f.level == "FAIL")
    warnings = sum(1 for f in findings if f.level == "WARN")
    out.write(f"\n{len(findings)} checks: {failures} failed, {warnings} warning(s).\n")
    return 1 if failures else 0


def guarded(topic: str, check: Callable[[], list[Finding]]) -> list[Finding]:
    try:
        return check()
    except Exception as exc:  # the doctor reports, it never crashes
        return [fail(topic, f"the check itself failed: {exc.__class__.__name__}: {exc}", "report this as a bug")]
