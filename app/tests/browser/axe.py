"""axe-core in a Playwright page: the accessibility bar every page is held to.

``python3 dev.py test`` installs axe-core from the npm registry into ``var/npm`` (``dev.ensure_axe_core``);
the script is injected into the page under test, so the app never serves it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

AXE_SCRIPT = Path(__file__).resolve().parents[3] / "var" / "npm" / "node_modules" / "axe-core" / "axe.min.js"
BLOCKING_IMPACTS = ("serious", "critical")


def axe_violations(page: Any, *, impacts: tuple[str, ...] = BLOCKING_IMPACTS) -> list[dict[str, Any]]:
    """The page's axe-core violations of the given impacts (``[]`` when it passes)."""
    if not AXE_SCRIPT.exists():
        raise AssertionError(f"{AXE_SCRIPT} is missing: `python3 dev.py test` installs axe-core from npm")
    # Evaluated rather than added as a <script>: the app's CSP (script-src 'self') blocks an injected inline script.
    page.evaluate(AXE_SCRIPT.read_text(encoding="utf-8"))
    results = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [violation for violation in results["violations"] if violation.get("impact") in impacts]


def assert_accessible(page: Any) -> None:
    """Fail with each serious or critical violation, its rule and the offending elements."""
    violations = axe_violations(page)
    summary = [
        {"rule": v["id"], "impact": v["impact"], "help": v["help"], "nodes": [n["target"] for n in v["nodes"]][:5]}
        for v in violations
    ]
    assert not violations, "axe-core violations:\n" + json.dumps(summary, indent=2)
