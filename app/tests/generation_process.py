"""A serving process for the crash tests: the app's own generation service behind a line protocol.

``python -m app.tests.generation_process`` with the store, model and data folder in the environment
(``MONGO_URI``, ``MONGO_DB_NAME``, ``HF_MODEL``, ``OUTBOX_PATH``…). It starts like every serving process
(``start_serving_process``: outbox replay, reaper), prints ``{"ready": pid}``, then reads one JSON
order per line from stdin and answers one JSON line on stdout:

* ``{"prompt": …, "max_new_tokens": n}`` → ``{"id": …}`` once the stream has started (its record is
  written ahead), or ``{"error": …}``;
* ``{"stop": id}`` → ``{"stopped": status}`` (Stop sent to this process, wherever the stream runs).

Each generation step sleeps ``GEN_TOKEN_DELAY`` seconds and never ends early (``SlowNoEos``), so an
answer lasts about ``n × delay`` seconds. The tests kill it with real signals.
"""

from __future__ import annotations

import json
import os
import sys
import threading

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "django_hf_ml.settings")
django.setup()

from app.domain.generation import Ask, GenerationParams  # noqa: E402  (needs the configured app registry)
from app.domain.interaction import Scope  # noqa: E402
from app.errors import DomainError  # noqa: E402
from app.services import generation  # noqa: E402
from app.services.engines.transformers_batch import LocalBackend  # noqa: E402
from app.services.engines.transformers_service import NLPService  # noqa: E402
from app.services.model_registry import service_for  # noqa: E402
from app.services.serving import start_serving_process  # noqa: E402
from app.tests.services.test_inference import SlowNoEos  # noqa: E402

SCOPE = Scope(session_id=os.environ.get("GEN_SESSION", "crash-visitor"))


def answer(order: dict[str, object]) -> dict[str, object]:
    try:
        if "stop" in order:
            stream = generation.stop_stream(str(order["stop"]), SCOPE, wait_seconds=5.0)
            status = stream.interaction.status if stream.interaction is not None else "pending"
            return {"stopped": status}
        max_new_tokens = order.get("max_new_tokens", 20)
        params = GenerationParams(max_new_tokens=int(max_new_tokens) if isinstance(max_new_tokens, int) else 20)
        stream = generation.start_stream(Ask(prompt=str(order["prompt"]), params=params, use_cache=False), SCOPE)
        return {"id": stream.id}
    except DomainError as exc:
        return {"error": exc.message}


def main() -> None:
    service = service_for(None)
    assert isinstance(service, NLPService)
    service.warm_up()
    delay = float(os.environ.get("GEN_TOKEN_DELAY", "0.02"))
    LocalBackend.extra_logits_processors = (SlowNoEos(sorted(service.loaded_model().eos_token_ids), delay=delay),)
    start_serving_process()
    print(json.dumps({"ready": os.getpid()}), flush=True)
    for line in sys.stdin:
        if line.strip():
            print(json.dumps(answer(json.loads(line))), flush=True)
    threading.Event().wait()  # stdin closed: keep generating until killed


if __name__ == "__main__":
    main()
