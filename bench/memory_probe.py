"""Child process of ``generation_bench.py``: load N SmolLM2 copies, generate once each, print peak RSS as JSON.

.venv/bin/python bench/memory_probe.py 2
"""

from __future__ import annotations

import json
import os
import resource
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
MODEL_DIR = ROOT / "var" / "models" / "smollm2-135m-instruct"


def memory_probe(models: int) -> None:
    """Load ``models`` SmolLM2 copies, generate once each, print peak RSS as JSON."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "django_hf_ml.settings")
    django.setup()
    import torch  # noqa: F401  (the baseline process has torch imported too)

    from app.domain.generation import GenerationParams
    from app.services.engines.transformers_service import NLPService

    held = []
    for _ in range(models):
        service = NLPService(model=str(MODEL_DIR), task="text-generation")
        service.generate("Hello", GenerationParams(max_new_tokens=4))
        held.append(service)
    weights = sum(service.memory_bytes() for service in held)
    peak_mb = peak_rss_mb()
    print(json.dumps({"peak_rss_mb": round(peak_mb, 1), "weights_mb": round(weights / 2**20, 1)}), flush=True)
    for service in held:
        service.unload()  # stop the worker threads before the interpreter exits
    os._exit(0)  # skip interpreter teardown of torch's thread pools (it aborted once on a loaded machine)


def peak_rss_mb() -> float:
    """This process's peak resident memory. ``VmHWM`` is reset by exec; ``ru_maxrss`` is not (Linux keeps
    the parent's high-water mark across fork+exec, which would make every child look as big as this bench)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # other systems


if __name__ == "__main__":
    memory_probe(int(sys.argv[1]) if len(sys.argv) > 1 else 1)
