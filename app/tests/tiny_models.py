"""Tiny models built locally from a config, for tests that must not download anything.

Each builder trains a ~200-token Unigram tokenizer on a few sentences with the ``tokenizers``
library and saves a randomly initialised model next to it. Random weights give random text:
tests assert shapes, determinism and plumbing, never wording. Building one takes a few seconds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast, T5Config, T5ForConditionalGeneration

TRAINING_SENTENCES: tuple[str, ...] = (
    "The quick brown fox jumps over the lazy dog.",
    "Paris is the capital of France and Berlin is the capital of Germany.",
    "Summarize the following text in one short sentence.",
    "Translate English to German: the house is wonderful.",
    "Machine learning models turn a prompt into new text, one token at a time.",
    "What is the weather like today? It is sunny, warm and bright.",
    "Hello world! How are you doing this fine morning?",
    "Numbers such as 1, 2, 3, 42 and 1024 appear in prompts too.",
    "Django serves the page, htmx swaps the fragment and MongoDB keeps the history.",
    "Every interaction records its prompt, its answer, the model and how long it took.",
    "A tokenizer splits words into pieces; a model predicts which piece comes next.",
    "Please write a short poem about the sea, the wind and the silver moon.",
    "Explain why the sky looks blue during the day but red at sunset.",
    "Seven zebras quietly jogged past the frozen lake by the village.",
)
VOCAB_SIZE = 200
SEQ2SEQ_SPECIAL_TOKENS = ["<pad>", "</s>", "<unk>"]
CAUSAL_SPECIAL_TOKENS = ["<pad>", "<s>", "</s>", "<unk>", "<|user|>", "<|assistant|>"]
CAUSAL_CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>{{ message['content'] }}</s>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
SUMMARIZATION_PREFIX = "summarize: "


def train_unigram_tokenizer(special_tokens: list[str], *, append_eos: bool) -> Tokenizer:
    """A Unigram tokenizer over ``TRAINING_SENTENCES``; special tokens get ids 0, 1, 2… in order."""
    tokenizer = Tokenizer(models.Unigram())
    tokenizer.normalizer = normalizers.NFKC()
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    trainer = trainers.UnigramTrainer(vocab_size=VOCAB_SIZE, special_tokens=special_tokens, unk_token="<unk>")
    tokenizer.train_from_iterator(TRAINING_SENTENCES, trainer=trainer)
    if append_eos:
        tokenizer.post_processor = processors.TemplateProcessing(
            single="$A </s>", special_tokens=[("</s>", tokenizer.token_to_id("</s>"))]
        )
    return tokenizer


def build_tiny_t5(folder: Path) -> Path:
    """Save a 2+2-layer T5 (d_model 32) and its tokenizer to ``folder``; return ``folder``."""
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=train_unigram_tokenizer(SEQ2SEQ_SPECIAL_TOKENS, append_eos=True),
        pad_token="<pad>",
        eos_token="</s>",
        unk_token="<unk>",
    )
    # Generic PreTrainedConfig fields, not declared on the (strict dataclass) T5Config itself.
    generic_config: dict[str, Any] = {
        "decoder_start_token_id": tokenizer.pad_token_id,
        "task_specific_params": {"summarization": {"prefix": SUMMARIZATION_PREFIX}},
    }
    config = T5Config(
        vocab_size=len(tokenizer),
        d_model=32,
        d_kv=8,
        d_ff=64,
        num_layers=2,
        num_decoder_layers=2,
        num_heads=4,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        **generic_config,
    )
    torch.manual_seed(0)
    _save(T5ForConditionalGeneration(config), tokenizer, folder)
    return folder


def build_tiny_llama(folder: Path) -> Path:
    """Save a 2-layer Llama-style causal model (hidden 32) with a chat template to ``folder``."""
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=train_unigram_tokenizer(CAUSAL_SPECIAL_TOKENS, append_eos=False),
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        additional_special_tokens=["<|user|>", "<|assistant|>"],
    )
    tokenizer.chat_template = CAUSAL_CHAT_TEMPLATE
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,  # tied random weights just echo the last input token (a special one)
    )
    torch.manual_seed(0)
    _save(LlamaForCausalLM(config), tokenizer, folder)
    return folder


def _save(model: torch.nn.Module, tokenizer: PreTrainedTokenizerFast, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)  # type: ignore[operator]
    tokenizer.save_pretrained(folder)
