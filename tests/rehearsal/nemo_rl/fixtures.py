"""The rehearsal's inputs: a few KnowRL-format problems and a tiny model that answers them half the time.

DAPO's dynamic sampling keeps only prompt groups whose rewards differ, and
NeMo-RL raises once `dynamic_sampling_max_gen_batches` batches brought too few;
knowrl's reward needs `</think>` and the boxed gold answer. A random tiny
model never earns a reward, so the rehearsal's model is knowrl's tiny
Qwen2-style model (`knowrl model tiny`) fine-tuned for a few seconds to end
its answer with `</think> ... \\boxed{2}` or `\\boxed{3}` about equally often:
every problem's gold answer is 2, so groups of samples get mixed rewards and
the filter, the advantages and the loss all see real signal.

Usage (knowrl's environment): python fixtures.py OUT_DIR
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

KPS = ["Addition of small integers.", "Subtraction undoes addition.", "Halving an even number."]
TRAIN = ["What is 1+1?", "What is 5-3?", "What is 4/2?", "What is 7-5?", "What is 6/3?", "What is 0+2?",
         "What is 9-7?", "What is 8/4?"]  # fmt: skip
VALIDATION = ["What is 3-1?", "What is 10/5?", "What is 1*2?", "What is 12-10?"]
ANSWERS = ["<think> ok </think> The answer is \\boxed{2}.", "<think> hm </think> The answer is \\boxed{3}."]


def write_data(out: Path) -> dict[str, Path]:
    """Training problems in the published annotation format (with CSS selections), validation in `plain`."""
    out.mkdir(parents=True, exist_ok=True)
    train = [
        {
            "dataset": "rehearsal",
            "prompt": [{"role": "user", "content": q}],
            "reward_model": {"ground_truth": "\\boxed{2}", "style": "rule"},
            "kp_list": KPS,
            "css_kept_kp_index": [i % 3],
            "css_selected_kps": [KPS[i % 3]],
            "cbrs_kept_kp_index": [0, 1],
            "cbrs_selected_kps": KPS[:2],
        }
        for i, q in enumerate(TRAIN)
    ]
    val = [{"problem": q, "answer": "2", "id": f"v{i}"} for i, q in enumerate(VALIDATION)]
    paths = {"train": out / "train.jsonl", "validation": out / "val.jsonl"}
    for key, rows in (("train", train), ("validation", val)):
        paths[key].write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return paths


def primed_model(out: Path, steps: int = 80) -> Path:
    """knowrl's tiny model, fine-tuned on both endings for every prompt the rehearsal shows it."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from knowrl.generation import build_tiny_model

    if (out / "primed.json").exists():
        return out
    build_tiny_model(out, seed=0)
    tok = AutoTokenizer.from_pretrained(out)
    model = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)
    suffix = "Please reason step by step, and put your final answer within \\boxed{}."
    hint = "\n\n## Hint\n1. " + KPS[0]
    users = [q + extra for q in TRAIN + VALIDATION for extra in (f"\n\n{suffix}", f"{hint}\n\n{suffix}")]
    prompts = [tok.apply_chat_template([{"role": "user", "content": u}], tokenize=False, add_generation_prompt=True)
               for u in users]  # fmt: skip
    texts = [p + a + tok.eos_token for p in prompts for a in ANSWERS]
    batch = tok(texts, return_tensors="pt", padding=True)
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    torch.manual_seed(0)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        loss = model(**batch, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.save_pretrained(out)
    (out / "primed.json").write_text(json.dumps({"steps": steps, "final_loss": loss.item(), "answers": ANSWERS}))
    return out


if __name__ == "__main__":
    root = Path(sys.argv[1])
    print(write_data(root / "data"), primed_model(root / "model"))
