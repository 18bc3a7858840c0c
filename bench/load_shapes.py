"""Load shapes for the engine benchmark: one client, N concurrent clients (one wave, or closed loops of mixed
lengths), open-loop Poisson arrivals.

A ``Client`` streams one answer and reports when it was submitted, when its first token came and how
many tokens it got; each shape drives any client the same way, so the app and a raw server compare.
"""

from __future__ import annotations

import random
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

PROMPTS = (
    "Write a long story about a dragon who learns to bake bread.",
    "Explain in detail how a bicycle works.",
    "Describe a walk through a busy market in the morning.",
    "Write a letter to a friend about your summer holidays.",
    "Tell the history of the city of Paris in many sentences.",
    "Explain how plants grow from seeds, step by step.",
    "Write a detailed recipe for a chocolate cake.",
    "Describe the planets of the solar system one by one.",
)


SUBJECTS = (
    "a lighthouse keeper",
    "a glacier",
    "the printing press",
    "a chess tournament",
    "volcanoes",
    "a night train",
    "honey bees",
    "the first telescope",
    "a mountain village",
    "tides",
    "a violin maker",
    "desert plants",
    "a lost wallet",
    "the Roman roads",
    "northern lights",
    "a robot gardener",
    "coral reefs",
    "paper money",
)
OPENINGS = ("Tell a short story about", "Explain to a child", "Write a few sentences on", "Describe")


def fresh_prompt(index: int, seed: int) -> str:
    """A prompt no earlier request of the run has sent (a server's prompt cache cannot answer it from memory)."""
    rng = random.Random(seed * 100_003 + index)
    return f"{rng.choice(OPENINGS)} {rng.choice(SUBJECTS)} and {rng.choice(SUBJECTS)} (request {seed}-{index})."


@dataclass
class Sample:
    submitted: float
    first_token: float | None
    done: float
    tokens: int

    @property
    def ttft(self) -> float:
        return (self.first_token or self.done) - self.submitted

    @property
    def decode_per_token(self) -> float | None:
        if self.first_token is None or self.tokens < 2:
            return None
        return (self.done - self.first_token) / (self.tokens - 1)


Client = Callable[[str, int], Sample]


def decode_ms(client: Client, repeats: int) -> float:
    values = []
    for index in range(repeats):
        sample = client(PROMPTS[index % len(PROMPTS)], 128)
        if sample.decode_per_token is not None:
            values.append(sample.decode_per_token * 1000)
    return statistics.median(values)


def concurrent_throughput(client: Client, clients: int, max_tokens: int) -> float:
    samples: list[Sample] = []
    lock = threading.Lock()

    def one(index: int) -> None:
        sample = client(PROMPTS[index % len(PROMPTS)], max_tokens)
        with lock:
            samples.append(sample)

    seconds = _in_threads(one, clients)
    return sum(sample.tokens for sample in samples) / seconds


def closed_loop_throughput(client: Client, clients: int, requests_each: int, *, seed: int) -> float:
    """``clients`` users, each sending ``requests_each`` requests one after another (the next as soon as its
    answer ends), lengths drawn from 24–160 tokens: total tokens/s. Unlike one wave of equal answers this is
    what a batch that waits for its longest row pays for: the users whose answers ended early wait too."""
    rng = random.Random(seed)
    plans = [[rng.randint(24, 160) for _ in range(requests_each)] for _ in range(clients)]
    tokens = [0] * clients

    def user(index: int) -> None:
        for turn, length in enumerate(plans[index]):
            tokens[index] += client(PROMPTS[(index + turn) % len(PROMPTS)], length).tokens

    seconds = _in_threads(user, clients)
    return sum(tokens) / seconds


def _in_threads(work: Callable[[int], None], count: int) -> float:
    """Run ``work(0)`` … ``work(count - 1)`` in as many threads at once; the seconds until all have ended."""
    started = time.perf_counter()
    threads = [threading.Thread(target=work, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started


def idle_ttft(client: Client, repeats: int, *, fresh_seed: int | None = None) -> float:
    """Median first-token time with nothing else running; ``fresh_seed``: never-seen prompts (``fresh_prompt``)."""
    return statistics.median(client(_prompt(index, fresh_seed), 24).ttft for index in range(repeats))


def _prompt(index: int, fresh_seed: int | None) -> str:
    return PROMPTS[index % len(PROMPTS)] if fresh_seed is None else fresh_prompt(index, fresh_seed)


def poisson_ttfts(client: Client, *, rate: float, count: int, seed: int, fresh_seed: int | None = None) -> list[float]:
    """Open loop: requests arrive by a Poisson process whatever the server does; lengths uniform in 24–160.

    The prompts cycle through ``PROMPTS`` (a server's prompt cache may hold them from earlier requests), or with
    ``fresh_seed`` each one is new (``fresh_prompt``): the first token then pays for the whole prompt."""
    rng = random.Random(seed)
    plan = []
    at = 0.0
    for index in range(count):
        at += rng.expovariate(rate)
        plan.append((at, _prompt(index, fresh_seed), rng.randint(24, 160)))
    ttfts: list[float] = []
    lock = threading.Lock()

    def one(prompt: str, length: int) -> None:
        sample = client(prompt, length)
        with lock:
            ttfts.append(sample.ttft)

    threads = []
    origin = time.perf_counter()
    for start_at, prompt, length in plan:
        delay = origin + start_at - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        thread = threading.Thread(target=one, args=(prompt, length))
        thread.start()
        threads.append(thread)
    for thread in threads:
        thread.join()
    return ttfts


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
