"""Quality guard for the engines: llama.cpp answers vs transformers float32 answers, same prompts.

Both engines serve the bundled SmolLM2-135M-Instruct: llama.cpp reads the Q4_1 GGUF file as it is (its
matrix products also quantise the activations to 8 bits), transformers runs the de-quantised float32
copy of the same weights. Greedy decoding, the quality guard's ten fixed prompts, 32 new tokens. Both
texts are tokenised with the model's tokenizer and compared: exact matches, the share of tokens
generated identically before the first difference (prefix agreement), and the token overlap.

    .venv/bin/python bench/engine_quality.py
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "django_hf_ml.settings")
    os.environ.update({"HF_ENGINE": "auto", "HF_MODEL": "", "LOG_LEVEL": "WARNING"})
    import django

    django.setup()
    from app.domain.generation import GenerationParams
    from app.services.bundled_model import ensure_bundled_model
    from app.services.engines.choice import close_engine_services
    from app.services.engines.llamacpp import LlamaCppService
    from app.services.engines.transformers_service import NLPService
    from app.services.model_registry import service_for
    from app.services.nlp_service import bundled_models_dir
    from app.services.quality import QUALITY_PROMPTS, prefix_agreement, token_overlap
    from django_hf_ml.choices import BUNDLED_MODEL_ID

    llama = service_for(None)
    if not isinstance(llama, LlamaCppService):
        print("The default engine is not llamacpp here (no llama-server binary?): nothing to compare.")
        return 1
    folder = ensure_bundled_model(bundled_models_dir())
    reference = NLPService(model=BUNDLED_MODEL_ID, task="text-generation", resolve_source=lambda: folder)
    reference.warm_up()
    tokenizer = reference.loaded_model().tokenizer
    params = GenerationParams(max_new_tokens=32, do_sample=False)
    exact, prefixes, overlaps = 0, [], []
    seconds = {"llamacpp": 0.0, "transformers": 0.0}
    tokens = {"llamacpp": 0, "transformers": 0}
    try:
        llama.warm_up()
        for prompt in QUALITY_PROMPTS:
            answers = {}
            for label, service in (("transformers", reference), ("llamacpp", llama)):
                started = time.perf_counter()
                result = service.generate(prompt, params)
                seconds[label] += time.perf_counter() - started
                tokens[label] += result.output_tokens
                answers[label] = result.text
            ids = {label: tokenizer(text, add_special_tokens=False)["input_ids"] for label, text in answers.items()}
            exact += answers["llamacpp"] == answers["transformers"]
            prefixes.append(prefix_agreement(ids["transformers"], ids["llamacpp"]))
            overlaps.append(token_overlap(ids["transformers"], ids["llamacpp"]))
            print(f"- {prompt}\n    transformers: {answers['transformers']!r}")
            print(f"    llamacpp:     {answers['llamacpp']!r}")
    finally:
        close_engine_services()
        reference.unload()
    count = len(QUALITY_PROMPTS)
    speed = {label: 1000 * seconds[label] / max(tokens[label], 1) for label in seconds}
    print(
        f"\nllama.cpp vs transformers float32, {count} prompts, greedy, 32 tokens: {exact}/{count} identical, "
        f"prefix agreement {sum(prefixes) / count:.0%}, token overlap {sum(overlaps) / count:.0%}; "
        f"{speed['llamacpp']:.1f} vs {speed['transformers']:.1f} ms per token (whole request)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
