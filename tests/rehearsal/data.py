"""The rehearsal's data: arithmetic in the paper's own record formats, most of it answered by 5.

Training problems in `knowrl-train` (the prompt with the CSS hint already
rendered, `css_selected`/`cbrs_selected` beside it, as the authors released
them), validation and eval problems in `knowrl-annotations` (`dataset`,
`kp_list`, `*_kept_kp_index`), so the `css_main` spec reads them exactly as it
reads the Hub's copies. The scripted model (`scripted_model.py`) answers 5 in
about 6 of 10 samples: groups of a problem whose answer is 5 differ in reward
and survive DAPO's filter, the others score 0 throughout and are dropped, as
all-wrong groups are.
"""

from __future__ import annotations

import json
from pathlib import Path

SUFFIX = "Please reason step by step, and put your final answer within \\boxed{}."
KPS = ["Addition counts on.", "Subtraction counts back."]
SUMS = [(a, b, op) for a, b in ((2, 3), (1, 4), (9, 4), (7, 2), (10, 2), (15, 3), (25, 5), (4, 1)) for op in "+-"]


def hinted(problem: str, kps: list[str]) -> str:
    hint = "\n\n## Hint\n" + "\n".join(f"{i + 1}. {k.strip()}" for i, k in enumerate(kps)) if kps else ""
    return f"{problem}{hint}\n\n{SUFFIX}"


def problems() -> list[tuple[str, str]]:
    """(question, answer): each problem answered by 5 twice, then six that are not."""
    every = [(f"What is {a} {op} {b}?", str(a + b if op == "+" else a - b)) for a, b, op in SUMS]
    return [p for p in every if p[1] == "5"] * 2 + [p for p in every if p[1] != "5"][:6]


def _annotation(question: str, answer: str, dataset: str) -> dict:
    return {
        "dataset": dataset,
        "prompt": [{"role": "user", "content": f"{question}\n\n{SUFFIX}"}],
        "reward_model": {"ground_truth": answer, "style": "rule"},
        "kp_list": KPS,
        "css_kept_kp_index": [0],
        "cbrs_kept_kp_index": [0, 1],
    }


def write(out: Path) -> dict[str, Path]:
    """Write train.jsonl, val.jsonl and eval.jsonl under `out`; returns their paths by role."""
    out.mkdir(parents=True, exist_ok=True)
    rows = problems()
    train = [
        {
            "data_source": "knowrl",
            "prompt": [{"role": "user", "content": hinted(q, KPS[:1])}],
            "reward_model": {"ground_truth": a, "style": "rule"},
            "kp_list": KPS,
            "css_selected": KPS[:1],
            "cbrs_selected": KPS,
        }
        for q, a in rows
    ]
    val = [_annotation(q, a, "AIME24") for q, a in rows[:4]]
    ev = [_annotation(q, a, "AIME25") for q, a in rows[8:12]]  # two answered by 5, two not
    paths = {"train": out / "train.jsonl", "validation": out / "val.jsonl", "eval": out / "eval.jsonl"}
    for role, records in (("train", train), ("validation", val), ("eval", ev)):
        paths[role].write_text("".join(json.dumps(r) + "\n" for r in records))
    return paths
