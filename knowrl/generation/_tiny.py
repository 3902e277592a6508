"""A tiny Qwen2-style model with a BPE tokenizer and a chat template, built offline from a seed.

Tests, the quickstart and benchmarks need a real causal LM that loads through
the same `from_pretrained` path as OpenMath-Nemotron, without a model hub.
"""

from __future__ import annotations

from pathlib import Path

SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
THINK = ["<think>", "</think>"]
"""Added but not special, as in the R1-style Qwen2 tokenizers: decoding with skip_special_tokens keeps them."""
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
_CORPUS = [
    "Please reason step by step, and put your final answer within \\boxed{}.",
    "## Hint\n1. **Knowledge Point**: Addition of integers.\n   **Key Considerations**: carry the tens.",
    "What is 12 + 35? The answer is \\boxed{47}. What is 6 times 7? \\boxed{42}.",
    "Let $x$ be a real number such that $x^2 = 4$. Then $x = 2$ or $x = -2$, so \\frac{1}{2} and \\sqrt{2}.",
    "The sum of the first n integers is n(n+1)/2. 0 1 2 3 4 5 6 7 8 9 + - * / = ( ) [ ] { } ^ _ $ \\",
    "Therefore the final answer is 3. We verify the result and conclude. Find the value of the expression.",
]


def build_tiny_model(out: str | Path, *, seed: int = 0, hidden: int = 64, layers: int = 2, vocab: int = 512) -> Path:
    """Write a deterministic tiny Qwen2 causal LM + tokenizer to `out`; return the folder."""
    import torch
    import transformers
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    transformers.utils.logging.disable_progress_bar()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    bpe = Tokenizer(models.BPE(unk_token=None))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab,
        special_tokens=SPECIAL,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    bpe.train_from_iterator(_CORPUS * 4, trainer)
    bpe.add_tokens([AddedToken(t, special=False, normalized=False) for t in THINK])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|endoftext|>", bos_token=None, unk_token=None
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.padding_side = "left"
    tokenizer.save_pretrained(out)

    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=hidden // 32,  # head_dim 32: vLLM's CPU attention has no kernel for 16
        num_key_value_heads=max(1, hidden // 64),
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out)
    return out
