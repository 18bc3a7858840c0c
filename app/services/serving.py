"""What every serving process does when it starts (gunicorn/uvicorn workers, ``manage.py serve``).

Management commands never call this, so they load nothing and start no threads.
"""

from __future__ import annotations

import threading

from app.services.reaper import start_reaper
from app.services.records import replay_leftovers
from app.services.warmup import warm_up_serving_process


def start_serving_process() -> threading.Thread | None:
    """Replay what an earlier run left in the outbox, start the reaper of dead generations (a pass now,
    then every few seconds) and, with ``HF_WARMUP=1``, start loading the model.

    Returns the warm-up thread (tests join it), or None when the model loads on first use.
    """
    replay_leftovers()
    start_reaper()
    return warm_up_serving_process()
