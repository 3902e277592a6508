"""The rehearsal's data: the quickstart's arithmetic problems in the paper's own record formats.

Training problems in `knowrl-train` (the prompt with the CSS hint already
rendered, `css_selected`/`cbrs_selected` beside it, as the authors released
them), validation and eval problems in `knowrl-annotations` (`dataset`,
`kp_list`, `*_kept_kp_index`), so the `css_main` spec reads them exactly as it
reads the Hub's copies.
"""

from __future__ import annotations

import json
from pathlib import Path

QUICKSTART = Path(__file__).resolve().parents[2] / "experiments/data/quickstart"
SUFFIX = "Please reason step by step, and put your final answer within \\boxed{}."


def _hinted(problem: str, kps: list[str]) -> str:
    hint = "\n\n## Hint\n" + "\n".join(f"{i + 1}. {k.strip()}" for i, k in enumerate(kps)) if kps else ""
    return f"{problem}{hint}\n\n{SUFFIX}"


def _rows(name: str) -> list[dict]:
    return [json.loads(line) for line in (QUICKSTART / name).read_text().splitlines() if line.strip()]


def _annotation(r: dict, dataset: str) -> dict:
    return {
        "dataset": dataset,
        "prompt": [{"role": "user", "content": f"{r['problem']}\n\n{SUFFIX}"}],
        "reward_model": {"ground_truth": r["answer"], "style": "rule"},
        "kp_list": r["kp_list"],
        "css_kept_kp_index": [0],
        "cbrs_kept_kp_index": [0, 1],
    }


def write(out: Path) -> dict[str, Path]:
    """Write train.jsonl, val.jsonl and eval.jsonl under `out`; returns their paths by role."""
    out.mkdir(parents=True, exist_ok=True)
    train = [
        {
            "data_source": "knowrl",
            "prompt": [{"role": "user", "content": _hinted(r["problem"], r["kp_list"][:1])}],
            "reward_model": {"ground_truth": r["answer"], "style": "rule"},
            "kp_list": r["kp_list"],
            "css_selected": r["kp_list"][:1],
            "cbrs_selected": r["kp_list"][:2],
        }
        for r in _rows("train.jsonl")
    ]
    val = [_annotation(r, "AIME24") for r in _rows("val.jsonl")[:4]]
    ev = [_annotation(r, "AIME25") for r in _rows("val.jsonl")[4:]]
    paths = {"train": out / "train.jsonl", "validation": out / "val.jsonl", "eval": out / "eval.jsonl"}
    for role, rows in (("train", train), ("validation", val), ("eval", ev)):
        paths[role].write_text("".join(json.dumps(r) + "\n" for r in rows))
    return paths
