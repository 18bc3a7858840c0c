"""The baseline of bench/generation_bench.py: plain ``transformers`` ``generate()``, one request at a time."""

from __future__ import annotations

import statistics
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MODEL_DIR = Path(__file__).resolve().parent.parent / "var" / "models" / "smollm2-135m-instruct"


@dataclass
class Run:
    label: str
    wall: float
    tokens: int
    latencies: list[float] = field(default_factory=list)
    first_tokens: list[float] = field(default_factory=list)

    @property
    def throughput(self) -> float:
        return self.tokens / self.wall if self.wall else 0.0


def in_thread(function: Any, *args: Any) -> Any:
    """Run ``function`` in a fresh thread, as a web server's request thread would (and as our worker does).

    Measured here: under CPU contention, torch ops in the main thread (2 OpenMP threads) ran up to 10x
    slower than the same ops in a non-main thread, so both sides are timed from threads to compare alike.
    """
    box: list[Any] = []
    thread = threading.Thread(target=lambda: box.append(function(*args)))
    thread.start()
    thread.join()
    return box[0]


def load_plain() -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(MODEL_DIR)
    model = AutoModelForCausalLM.from_pretrained(MODEL_DIR, dtype=torch.float32).eval()
    return tokenizer, model


def plain_inputs(tokenizer: Any, prompt: str) -> Any:
    messages = [{"role": "user", "content": prompt}]
    return tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)


def baseline(tokenizer: Any, model: Any, prompts: list[str], max_new_tokens: int) -> Run:
    import torch

    run = Run("baseline", wall=0.0, tokens=0)
    started = time.perf_counter()
    for prompt in prompts:
        t0 = time.perf_counter()
        inputs = plain_inputs(tokenizer, prompt)
        with torch.inference_mode():
            output = model.generate(
                **inputs, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.eos_token_id
            )
        new = output[0, inputs["input_ids"].shape[-1] :].tolist()
        eos = tokenizer.eos_token_id
        run.tokens += new.index(eos) + 1 if eos in new else len(new)
        run.latencies.append(time.perf_counter() - t0)
    run.wall = time.perf_counter() - started
    return run


def one_forward_pass(tokenizer: Any, model: Any, prompt: str, repeats: int = 7) -> float:
    import torch

    inputs = plain_inputs(tokenizer, prompt)
    times = []
    with torch.inference_mode():
        for _ in range(repeats):
            t0 = time.perf_counter()
            model(**inputs)
            times.append(time.perf_counter() - t0)
    return statistics.median(times)
