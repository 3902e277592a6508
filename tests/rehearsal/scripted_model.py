"""A tiny model that sometimes answers right: the rehearsal's policy, so DAPO's filter keeps some groups.

`knowrl model tiny` writes a random Qwen2-style model; every answer it samples is wrong, every group of samples
scores 0, and DAPO's dynamic sampling (kept by the smoke profile) drops every group until verl gives up after
`max_num_gen_batches` -- the fork's real behaviour, and no step is trained. This rewrites that model's weights
into a bigram chain that, sampled at temperature 1, writes `SCRIPT` (`</think>\\boxed{5}`) and ends in about 6
of 10 samples and otherwise wanders: rewards in a group differ, groups survive the filter, advantages are not 0.

How: every layer's attention and MLP output projections are zeroed, so the residual stream at a position is the
embedding of its token; an untied `lm_head` then maps each token of the script to the next one, and every
other token to the script's first (a constant channel in the embeddings acts as the bias Qwen2 has not).
The tokenizer is the tiny model's, written with a class both transformers 4.51 (the fork's pin) and 5 read.

    python tests/rehearsal/scripted_model.py TINY OUT
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

SCRIPT = "</think>\\boxed{5}"
FOLLOW, START = 8.0, 4.0
"""Logit of the next script token after a script token, and of the first one after any other token."""


def build(tiny: Path, out: Path, script: str = SCRIPT, seed: int = 0) -> Path:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny)
    chain = [*tok.encode(script, add_special_tokens=False), tok.eos_token_id]
    assert len(set(chain)) == len(chain), f"{script!r} repeats a token: a bigram chain cannot write it"
    model = AutoModelForCausalLM.from_pretrained(tiny, dtype=torch.float32)
    model.config.tie_word_embeddings = False
    vocab, hidden = model.config.vocab_size, model.config.hidden_size
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        e = torch.randn(vocab, hidden, generator=g)
        e[:, 0] = 0.0
        e = torch.nn.functional.normalize(e, dim=-1) * hidden**0.5
        e[:, 0] = hidden**0.5  # the constant channel
        model.model.embed_tokens.weight.copy_(e)
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        model.model.norm.weight.fill_(1.0)
        normed = e / e.pow(2).mean(-1, keepdim=True).sqrt()
        head = torch.zeros(vocab, hidden)
        head[chain[0], 0] = START / normed[0, 0]
        for a, b in zip(chain, chain[1:], strict=False):
            unit = normed[a].clone()
            unit[0] = 0.0
            head[b] += FOLLOW * unit / unit.pow(2).sum()
        model.lm_head = torch.nn.Linear(hidden, vocab, bias=False)
        model.lm_head.weight.copy_(head)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    for f in tiny.iterdir():
        if f.name.startswith(("tokenizer", "chat_template", "special_tokens")):
            shutil.copy(f, out / f.name)
    cfg_path = out / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["tokenizer_class"] = "PreTrainedTokenizerFast"  # transformers 5's `TokenizersBackend` is unknown to 4.51
    cfg_path.write_text(json.dumps(cfg, indent=2))
    return out


if __name__ == "__main__":
    print(build(Path(sys.argv[1]), Path(sys.argv[2])))
