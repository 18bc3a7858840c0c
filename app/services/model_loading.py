"""One model load at a time per process.

``from_pretrained`` changes process-wide state while it builds a model: torch's default dtype, a meta
device context, patched init and creation functions. Two loads in two threads (the generation model
warming up while the semantic index loads all-MiniLM, two offered models loading at once) can see each
other's state and leave a model with weights still on the meta device ("Cannot copy out of meta tensor").
Loads are rare and take a second or so; serialising them costs nothing that matters.
"""

from __future__ import annotations

import threading

MODEL_LOAD_LOCK = threading.RLock()
